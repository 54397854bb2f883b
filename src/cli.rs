//! Raw command-line flags (clap derive). Nothing here is validated beyond its syntax: see
//! [`crate::config`] for the checks that turn flags into a run's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Replay web-server access logs against another server at a controlled rate, and record what came back",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read access logs and show how sluice understands each line (nothing is sent).
    #[command(after_help = PARSE_EXAMPLES)]
    Parse(ParseArgs),
    /// Replay access logs against a target at a controlled rate and write the results as CSV.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(Box<ReplayArgs>),
    /// Report on results CSVs: summary, routes, logged vs replayed status, over time; assertions for CI.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Run the built-in mock HTTP server (a test target on 127.0.0.1).
    #[command(after_help = MOCK_EXAMPLES)]
    Mock(sluice_mock::MockArgs),
    /// Run replays on request over an HTTP API (loopback by default), with /metrics.
    #[command(after_help = DAEMON_EXAMPLES)]
    Daemon(crate::daemon::DaemonArgs),
    /// Submit, list, watch, stop and download runs of a `sluice daemon`.
    #[command(after_help = RUNS_EXAMPLES)]
    Runs(crate::client::RunsArgs),
}

// The examples under each command's --help: the commands a newcomer types first, each one
// complete and working as shown (given the files and hosts it names). Lines stay within 80
// columns, so clap does not wrap them in the middle of a command.

const PARSE_EXAMPLES: &str = "\
Examples:
  # How each line is read, as JSON; unreadable lines go to stderr, with why
  sluice parse access.log | head
  # Count good and bad lines of a compressed log, and the parsing speed
  sluice parse access.log.gz --format nginx --output none
  # A log written with your own nginx log_format
  sluice parse custom.log \\
      --format 'nginx:$remote_addr [$time_local] \"$request\" $status'";

const REPLAY_EXAMPLES: &str = "\
Examples:
  # Try it: the bundled log against the built-in mock server, 10 s at 200/s
  sluice replay fixtures/demo-access.log --target mock --rate 200 \\
      --duration 10s --out results.csv
  # Show what would be sent to staging, and send nothing
  sluice replay access.log.gz --target http://staging.internal:8080 \\
      --rate 200 --dry-run
  # A 6-hour soak test on real traffic without bots; exit 1 if p99 > 250 ms
  sluice replay access.log.gz --target http://staging.internal:8080 \\
      --rate 200 --duration 6h --exclude-user-agent '(?i)bot|spider' \\
      --assert 'p99 < 250ms'
  # As fast as 128 requests in flight allow, for one minute
  sluice replay access.log --target http://staging.internal:8080 \\
      --rate max --concurrency 128 --duration 1m
  # The same options from a file (flags given here still win)
  sluice replay --config staging.toml access.log.gz";

const REPORT_EXAMPLES: &str = "\
Examples:
  # Summary, routes, logged vs replayed status, and the run over time
  sluice report results.csv
  # One HTML page with charts to share (also: json, markdown)
  sluice report results.csv --format html --out report.html
  # A CI gate on the shards of one run: exit 1 if an assertion fails
  sluice report shard-1.csv shard-2.csv \\
      --assert 'p99 < 250ms' --assert 'error_rate < 1%'
  # Fold /sku/<anything> into one route
  sluice report results.csv --route-rule '^/sku/[^/]+=/sku/{sku}'";

const MOCK_EXAMPLES: &str = "\
Examples:
  # 90% 200, 5% 404, 5% 500, a long tail of latency; prints its URL first
  sluice mock --status 200:90,404:5,500:5 --latency lognormal:5ms,80ms
  # A fixed port; /api/* slow and failing, /login resetting, requests kept
  sluice mock --listen 127.0.0.1:8080 --rule '/api/*=503,50ms' \\
      --rule /login=reset --record received.jsonl";

const DAEMON_EXAMPLES: &str = "\
Examples:
  # Next to staging: runs may only send there; the API on 127.0.0.1:7878
  sluice daemon --state-dir /var/lib/sluice \\
      --allow-target http://staging.internal:8080
  # Reachable from CI machines: any other address requires a token
  sluice daemon --listen 0.0.0.0:7878 --token-file /etc/sluice/token \\
      --state-dir /var/lib/sluice --allow-target 'https://*.staging.example'
  # The same options from a file (deploy/sluice.toml is an example)
  sluice daemon --config /etc/sluice/sluice.toml";

const RUNS_EXAMPLES: &str = "\
Examples:
  # Upload a log, submit a run, follow it; prints the run's ID. run.json:
  #   {\"target\":\"http://staging.internal:8080\",\"rate\":200,\"duration\":\"10m\"}
  sluice runs submit --upload access.log.gz --follow run.json
  sluice runs list
  sluice runs show ID
  sluice runs results ID --out results.csv
  sluice runs stop ID
  # Another daemon (the token comes from $SLUICE_TOKEN, never from a flag)
  sluice runs --daemon http://replayer.internal:7878 list";

const FORMAT_HELP: &str = "Log format: auto, nginx, nginx-main, apache-common, apache-combined, \
apache-vhost, json, 'nginx:<log_format string>' or 'apache:<LogFormat string>'";

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Log files, read in order; .gz is decompressed; `-` reads standard input.
    #[arg(value_name = "FILES", required = true)]
    pub files: Vec<PathBuf>,

    #[arg(short, long, default_value = "auto", value_name = "FMT", help = FORMAT_HELP)]
    pub format: String,

    /// What to print for each accepted line on stdout.
    #[arg(short, long, value_enum, default_value_t = ParseOutput::Jsonl)]
    pub output: ParseOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParseOutput {
    /// One JSON object per accepted line.
    Jsonl,
    /// A CSV table, header first.
    Csv,
    /// Nothing: only count (and measure speed).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A progress line when stderr is a terminal.
    Auto,
    Always,
    Never,
}

/// Every option of `sluice replay`. The same struct is read from the command line (clap) and from
/// a `--config` TOML file (serde, keys named like the long flags, `-` or `_`); flags win.
/// Defaults are applied later, in [`crate::config`], so "not given" stays visible for merging.
#[derive(Debug, Default, Clone, Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayArgs {
    /// Log files, read in order; .gz is decompressed; `-` reads standard input.
    #[arg(value_name = "FILES")]
    #[serde(alias = "logs")]
    pub files: Vec<PathBuf>,

    /// Read options from a TOML file (keys named like the long flags); flags given here win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where to send: http(s)://host:port[/prefix] (the logged path and query are appended), or
    /// `mock` to start the built-in mock server on 127.0.0.1. Required.
    #[arg(short, long, value_name = "URL")]
    pub target: Option<String>,

    /// Requests per second, or `max` for as fast as the in-flight limit allows. Required.
    #[arg(short, long, value_name = "N|max", allow_negative_numbers = true)]
    #[serde(deserialize_with = "string_or_number")]
    pub rate: Option<String>,

    /// Stop scheduling after this long (e.g. 90s, 10m, 1h30m); the log loops if it runs out.
    /// Without it the log is replayed once.
    #[arg(short, long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Replay the log a single time, even with --duration.
    #[arg(long)]
    pub once: bool,

    #[arg(short, long, value_name = "FMT", help = FORMAT_HELP_AUTO)]
    pub format: Option<String>,

    /// Most requests in flight at once; when all are busy, sending waits and the lag is recorded [default: 64].
    #[arg(short, long, value_name = "C")]
    pub concurrency: Option<usize>,

    /// Release B requests at once, B/N seconds apart [default: 1].
    #[arg(short, long, value_name = "B")]
    pub batch: Option<u32>,

    /// Per-request timeout (connect + response + body) [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// After scheduling stops, how long in-flight requests may still finish before they are
    /// recorded as aborted [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,

    /// The results CSV (one row per request) [default: sluice-<date>-<time>.csv].
    #[arg(short, long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Live progress on stderr [default: auto: when stderr is a terminal].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub progress: Option<ProgressMode>,

    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    #[serde(skip)] // a listening socket is a command-line decision, not a shared config file's
    pub metrics_listen: Option<SocketAddr>,

    /// Parsed requests buffered ahead of the pacer (memory stays flat whatever the log size) [default: 8192].
    #[arg(long, value_name = "N")]
    pub queue_capacity: Option<usize>,

    /// Most unreadable log lines before the run stops: a count (100) or a share (5%).
    #[arg(long, value_name = "N|P%")]
    #[serde(deserialize_with = "string_or_number")]
    pub max_bad_lines: Option<String>,

    /// Threads that send requests; one is the most efficient next to a local target [default: 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    // ---- safety --------------------------------------------------------------------------
    /// Methods to replay, comma separated, or `all`; others are skipped and counted [default: GET,HEAD,OPTIONS].
    #[arg(long, value_name = "METHODS", help_heading = "Safety")]
    pub allow_methods: Option<String>,

    /// Follow redirects, and only to the target's own host (never to another).
    #[arg(long, help_heading = "Safety")]
    pub follow_redirects: bool,

    /// Use the proxy from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (ignored by default).
    #[arg(long, help_heading = "Safety")]
    pub use_env_proxy: bool,

    /// Refuse targets whose name or resolved address matches: a host (`db.prod.example`), a
    /// wildcard (`*.prod.example`), an address or a CIDR block (`10.0.0.0/8`). Repeatable.
    #[arg(long = "deny-host", value_name = "PATTERN", help_heading = "Safety")]
    #[serde(alias = "deny_hosts")]
    pub deny_host: Vec<String>,

    /// Only allow targets matching one of these patterns (same forms as --deny-host). Repeatable.
    #[arg(long = "allow-host", value_name = "PATTERN", help_heading = "Safety")]
    #[serde(alias = "allow_hosts")]
    pub allow_host: Vec<String>,

    /// Replay even though the log says it was served by the target's own host.
    #[arg(long = "i-know-this-is-production", help_heading = "Safety")]
    pub i_know_this_is_production: bool,

    /// Header values never shown in any output (besides Authorization, Proxy-Authorization,
    /// Cookie and Set-Cookie, which never are). Repeatable.
    #[arg(long = "redact-header", value_name = "NAME", help_heading = "Safety")]
    pub redact_header: Vec<String>,

    /// Query parameters whose value is masked in the CSV's url column (the request still carries
    /// them): a regex on the parameter name [default: token|key|secret|password|sig].
    #[arg(long, value_name = "REGEX", help_heading = "Safety")]
    pub mask_query_params: Option<String>,

    /// Parse, filter and rewrite, show what would be sent, and send nothing.
    #[arg(long, help_heading = "Safety")]
    pub dry_run: bool,

    // ---- rewriting -----------------------------------------------------------------------
    /// Send this Host header.
    #[arg(long, value_name = "NAME", help_heading = "Rewriting")]
    pub host_header: Option<String>,

    /// Send the Host the log recorded ($host, %v …) when the format has one.
    #[arg(long, help_heading = "Rewriting")]
    pub preserve_host: bool,

    /// Add a header to every request: 'Name: value', or 'Name: @file' to read the value from a
    /// file (keeps secrets out of `ps`). Repeatable; replaces a logged header of the same name.
    #[arg(short = 'H', long = "header", value_name = "HEADER", help_heading = "Rewriting")]
    #[serde(alias = "headers")]
    pub header: Vec<String>,

    /// Do not send this logged header. Repeatable.
    #[arg(long = "drop-header", value_name = "NAME", help_heading = "Rewriting")]
    pub drop_header: Vec<String>,

    /// Skip requests whose method carries a body (POST, PUT, PATCH) when the log has no body for
    /// them, instead of sending an empty body.
    #[arg(long, help_heading = "Rewriting")]
    pub skip_bodyless: bool,

    // ---- filters -------------------------------------------------------------------------
    /// Only replay requests whose path and query match this regex. Repeatable (any may match).
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    pub include: Vec<String>,

    /// Skip requests whose path and query match this regex. Repeatable.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    pub exclude: Vec<String>,

    /// Only replay requests whose logged status is in this list: codes and classes, e.g. 2xx,304.
    #[arg(long, value_name = "LIST", help_heading = "Filters")]
    #[serde(deserialize_with = "string_or_number")]
    pub orig_status: Option<String>,

    /// Only replay requests logged at or after this time (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' in UTC).
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    pub from: Option<String>,

    /// Only replay requests logged before this time (same forms as --from).
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    pub until: Option<String>,

    /// Skip requests whose user agent matches this regex (e.g. 'bot|crawler|spider'). Repeatable.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    pub exclude_user_agent: Vec<String>,

    /// Replay only this share of the log's lines, chosen by line, the same lines every run (e.g. 10%).
    #[arg(long, value_name = "P%", help_heading = "Filters")]
    #[serde(deserialize_with = "string_or_number")]
    pub sample: Option<String>,

    /// Seed for --sample: another seed picks other lines [default: 0].
    #[arg(long, value_name = "N", help_heading = "Filters")]
    pub sample_seed: Option<u64>,

    // ---- report --------------------------------------------------------------------------
    /// After the run, also print the per-route table and the logged-vs-replayed status matrix.
    #[arg(long, help_heading = "Report")]
    pub report: bool,

    /// Check a metric after the run, e.g. 'p99 < 250ms', 'error_rate < 1%', 'rate >= 95% of target',
    /// 'route:/api/* p99 < 100ms' (see `sluice report --help`). Repeatable; a failure exits 1.
    #[arg(long = "assert", value_name = "ASSERTION", help_heading = "Report")]
    #[serde(alias = "assertions")]
    pub assert: Vec<String>,
}

/// `sluice report`: flags only; checked in [`crate::report_command`].
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Results CSVs written by `sluice replay`, reported as one (e.g. the shards of a run); `-`
    /// reads standard input.
    #[arg(value_name = "FILES.csv", required = true)]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::analysis::ReportFormat::Text)]
    pub format: crate::analysis::ReportFormat,

    /// Write the report to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Length of the over-time slices (e.g. 1s, 10s, 1m) [default: the shortest of 1s, 2s, 10s,
    /// 20s, 1m, … that gives at most 60 rows; charts use finer slices].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,

    /// Routes listed one by one, most troubled first; the rest are merged into `other`.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub routes: usize,

    /// Fold paths into a route of your own: the part the regex matches becomes TEMPLATE (`$1`
    /// refers to a group), e.g. '^/sku/[^/]+=/sku/{sku}'. Tried in order before the automatic
    /// folding of numbers, UUIDs and hex ids. Repeatable.
    #[arg(long = "route-rule", value_name = "REGEX=TEMPLATE")]
    pub route_rule: Vec<String>,

    /// The rate the run aimed at, in requests/s, or `max` for none [default: inferred from the
    /// CSV's plan: scheduled_at against seq].
    #[arg(long, value_name = "N|max")]
    pub target_rate: Option<String>,

    /// Check a metric: `[route:PATTERN] METRIC OP VALUE`, e.g. 'p99 < 250ms', 'error_rate < 1%',
    /// 'status_5xx == 0', 'rate >= 95% of target', 'mismatch_rate < 0.5%', 'route:/api/* p99 < 100ms'.
    /// Repeatable; any failure exits 1.
    #[arg(long = "assert", value_name = "ASSERTION", long_help = ASSERT_HELP)]
    pub assert: Vec<String>,

    /// Stop at the first row that cannot be read (exit 2) instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

const ASSERT_HELP: &str = "Check a metric: `[route:PATTERN] METRIC OP VALUE [UNIT]`, e.g. 'p99 < 250ms', \
'error_rate < 1%', 'status_5xx == 0', 'rate >= 95% of target', 'mismatch_rate < 0.5%', \
'route:/api/* p99 < 100ms'. OP is <, <=, >, >=, == or !=. Latencies take a unit (us, ms, s); shares \
a percentage or a fraction; `route:` matches the path or its route template (`*` is any text). \
Repeatable; each prints PASS or FAIL with the measured value, and any failure exits 1.

Metrics: p50 p90 p95 p99 p999 max mean (latency from the send); the same with _from_schedule \
(from the planned send time); lag_p50 … lag_max (behind the plan); requests responses errors (no \
answer) failed (no answer or 5xx) bytes; error_rate (failed share) transport_error_rate; \
mismatches mismatch_rate (logged vs replayed status class); status_NNN status_Nxx and their \
_rate shares; error_KIND and error_KIND_rate (KIND: timeout connect reset tls protocol aborted \
other); rate (requests/s, or N% of target).";

const FORMAT_HELP_AUTO: &str = "Log format: auto, nginx, nginx-main, apache-common, apache-combined, \
apache-vhost, json, 'nginx:<log_format string>' or 'apache:<LogFormat string>' [default: auto]";

/// TOML and JSON users write `rate = 200` as often as `rate = "200"`; both mean the same.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    Ok(match <Option<Raw> as serde::Deserialize>::deserialize(d)? {
        None => None,
        Some(Raw::Text(s)) => Some(s),
        Some(Raw::Int(n)) => Some(n.to_string()),
        Some(Raw::Float(x)) => Some(x.to_string()),
    })
}
