//! Raw command-line flags (clap derive). Nothing here is validated beyond its syntax: see
//! [`crate::config`] for the checks that turn flags into a run's configuration.

pub mod parse;
pub mod progress;
pub mod replay;
pub mod report;
pub mod runs;

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
    Parse(ParseArgs),
    /// Replay access logs against a target at a controlled rate and write the results as CSV.
    Replay(Box<ReplayArgs>),
    /// Report on results CSVs: summary, routes, logged vs replayed status, over time; assertions for CI.
    Report(ReportArgs),
    /// Run the built-in mock HTTP server (a test target on 127.0.0.1).
    Mock(sluice_mock::MockArgs),
    /// Run replays on request over an HTTP API (loopback by default), with /metrics.
    Daemon(crate::daemon::DaemonArgs),
    /// Submit, list, watch, stop and download runs of a `sluice daemon`.
    Runs(crate::cli::runs::RunsArgs),
}

const FORMAT_HELP: &str = "Log format: auto, nginx, nginx-main, apache-common, apache-combined, \
apache-vhost, traefik, json, 'nginx:<log_format string>' or 'apache:<LogFormat string>'";

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

    /// Longest log line read, in bytes (without its line ending); a longer one is skipped as it
    /// is read and counted as a bad line. 1024 to 16777216 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<u64>,
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

    /// Stop the run early when a condition holds: any assertion expression, judged once a second
    /// on every request so far, or with `for D` on the requests that finished in the last D
    /// (once the run has gone for D), e.g. 'error_rate > 50% for 10s', 'p99 > 2s for 1m'.
    /// Scheduling stops, requests in flight drain, the summary names the condition; exit 1.
    /// Repeatable.
    #[arg(long = "abort-on", value_name = "CONDITION", help_heading = "Report")]
    pub abort_on: Vec<String>,

    /// Longest log line read, in bytes (without its line ending); a longer one is skipped as it
    /// is read and counted as a bad line. 1024 to 16777216 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<u64>,
}

/// `sluice report`: flags only; checked in [`crate::cli::report`].
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
