//! Raw command-line flags (clap derive). Nothing here is validated beyond its syntax: see
//! [`crate::config`] for the checks that turn flags into a run's configuration.

pub mod import;
pub mod k8s;
pub mod merge;
pub mod metrics_server;
pub mod parse;
pub mod progress;
pub mod push;
pub mod replay;
pub mod report;
pub mod runs;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::ReplayOptions;

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
    Replay(Box<ReplayOptions>),
    /// Report on results CSVs: summary, routes, logged vs replayed status, over time; assertions for CI.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Join the shard CSVs of one run (--shard I/K) into one, in seq order; manifests checked first.
    #[command(after_help = crate::cli::merge::EXAMPLES)]
    Merge(crate::cli::merge::MergeArgs),
    /// Run the built-in mock HTTP server (a test target on 127.0.0.1).
    #[command(after_help = MOCK_EXAMPLES)]
    Mock(sluice_mock::MockArgs),
    /// Run replays on request over an HTTP API (loopback by default), with /metrics.
    #[command(after_help = DAEMON_EXAMPLES)]
    Daemon(crate::daemon::DaemonArgs),
    /// Submit, list, watch, stop and download runs of a `sluice daemon`.
    #[command(after_help = RUNS_EXAMPLES)]
    Runs(crate::cli::runs::RunsArgs),
    /// Turn a Tsung scenario into an access log and the config that replays it.
    #[command(after_help = crate::cli::import::EXAMPLES)]
    Import(crate::cli::import::ImportArgs),
    /// Print the Kubernetes manifests of a run sharded over many pods (Indexed Job + merge Job).
    #[command(after_help = crate::cli::k8s::EXAMPLES)]
    K8s(crate::cli::k8s::K8sArgs),
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
  sluice replay --config staging.toml access.log.gz
  # Each request to the candidate and the current release at once; then
  # `sluice report ab.csv` says where their statuses, bodies and latency differ
  sluice replay access.log --target http://candidate:8080 \\
      --compare http://current:8080 --ignore-json-path '$.now' \\
      --rate 100 --out ab.csv";

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
  sluice report results.csv --route-rule '^/sku/[^/]+=/sku/{sku}'
  # This run beside last week's: which routes got slower; a gate on p99
  sluice report new.csv --baseline old.csv --assert 'p99 < 1.1 of baseline'
  # The rows as a spreadsheet with typed cells, a Summary and a Routes sheet
  sluice report results.csv --xlsx results.xlsx";

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
apache-vhost, traefik, json, 'nginx:<log_format string>', 'apache:<LogFormat string>', or har (a browser's \
HAR recording)";

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

    /// The rate the run aimed at, in requests/s, or `max` for none. By default the plan is read
    /// from scheduled_at: a steady plan gives one rate; a plan that varies (--stages, --speed)
    /// is the target slice by slice (planned requests in the slice ÷ its length), and
    /// 'rate >= 95% of target' must then hold in every window of full slices (consecutive slices
    /// until they plan 50 requests); a failure names the window that missed.
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

    /// Report the shards given when some of their run are missing or incomplete (the report says
    /// "3 of 4 shards"). Without it, shard CSVs (those with a manifest beside them) must be every
    /// shard of their run, each complete.
    #[arg(long)]
    pub allow_partial: bool,

    /// An earlier run of the same log (its CSVs, repeatable): each route's requests, error rate
    /// and p50/p99 beside the baseline's, with the change and a 95% bootstrap interval of the
    /// ratio; a route is flagged slower or faster when the whole interval is beyond ±10% and the
    /// percentile moved by 1 ms or more, once the shift most routes share (the run's, not a
    /// route's) is taken out. Assertions may name it: 'p99 < 1.1 of baseline'.
    #[arg(long, value_name = "OLD.csv")]
    pub baseline: Vec<PathBuf>,
    /// Also write the rows and this report as an Excel workbook: typed cells, a Summary, a
    /// Routes and an Over time sheet, Results sheets of up to 1,048,575 rows each.
    #[arg(long, value_name = "FILE.xlsx")]
    pub xlsx: Option<PathBuf>,
}

const ASSERT_HELP: &str = "Check a metric: `[route:PATTERN] METRIC OP VALUE [UNIT]`, e.g. 'p99 < 250ms', \
'error_rate < 1%', 'status_5xx == 0', 'rate >= 95% of target', 'mismatch_rate < 0.5%', \
'route:/api/* p99 < 100ms'. OP is <, <=, >, >=, == or !=. Latencies take a unit (us, ms, s); shares \
a percentage or a fraction; `route:` matches the path or its route template (`*` is any text). \
Repeatable; each prints PASS or FAIL with the measured value, and any failure exits 1.

Metrics: p50 p90 p95 p99 p999 max mean (latency of answered requests, from the send; with no \
answered request a latency assertion fails); the same with _from_schedule (from the planned send \
time); lag_p50 … lag_max (behind the plan); requests (sent) responses errors (no answer) failed \
(no answer or 5xx) not_sent (never left) bytes; error_rate (failed share) transport_error_rate; \
mismatches mismatch_rate (logged vs replayed status class); status_NNN status_Nxx and their \
_rate shares; error_KIND and error_KIND_rate (KIND: timeout connect reset tls protocol aborted \
local other); rate (requests/s, or N% of target).

Comparing: any metric against the same metric of the --baseline run, e.g. 'p99 < 1.1 of baseline' or 'error_rate <= 100% of baseline' (per route with route:). On a --compare run's CSV: status_mismatches status_mismatch_rate (target and baseline statuses differ) body_mismatches body_mismatch_rate (bodies differ, of rows where both answered), noise aside; b_p50_ratio … b_p99_ratio b_max_ratio b_mean_ratio (target ÷ baseline latency, e.g. 'b_p99_ratio < 1.2').";
