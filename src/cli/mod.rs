//! Raw command-line flags (clap derive). Nothing here is validated beyond its syntax: see
//! [`crate::config`] for the checks that turn flags into a run's configuration.

pub mod parse;
pub mod progress;
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
    Parse(ParseArgs),
    /// Replay access logs against a target at a controlled rate and write the results as CSV.
    Replay(Box<ReplayOptions>),
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
