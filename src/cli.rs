//! Raw command-line flags (clap derive). Nothing here is validated beyond its syntax: see
//! [`crate::config`] for the checks that turn flags into a run's configuration.

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
    /// Run the built-in mock HTTP server (a test target on 127.0.0.1).
    Mock(sluice_mock::MockArgs),
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A progress line when stderr is a terminal.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Log files, read in order; .gz is decompressed; `-` reads standard input.
    #[arg(value_name = "FILES", required = true)]
    pub files: Vec<PathBuf>,

    /// Where to send: http(s)://host:port[/prefix] (the logged path and query are appended), or
    /// `mock` to start the built-in mock server on 127.0.0.1.
    #[arg(short, long, value_name = "URL")]
    pub target: String,

    /// Requests per second, or `max` for as fast as the in-flight limit allows.
    #[arg(short, long, value_name = "N|max")]
    pub rate: String,

    /// Stop scheduling after this long (e.g. 90s, 10m, 1h30m); the log loops if it runs out.
    /// Without it the log is replayed once.
    #[arg(short, long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Replay the log a single time, even with --duration.
    #[arg(long)]
    pub once: bool,

    #[arg(short, long, default_value = "auto", value_name = "FMT", help = FORMAT_HELP)]
    pub format: String,

    /// Most requests in flight at once; when all are busy, sending waits and the lag is recorded.
    #[arg(short, long, default_value_t = 64, value_name = "C")]
    pub concurrency: usize,

    /// Release B requests at once, B/N seconds apart.
    #[arg(short, long, default_value_t = 1, value_name = "B")]
    pub batch: u32,

    /// Per-request timeout (connect + response + body).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,

    /// After scheduling stops, how long in-flight requests may still finish before they are recorded as aborted.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub drain_timeout: String,

    /// The results CSV (one row per request); default sluice-<date>-<time>.csv in the current directory.
    #[arg(short, long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Parsed requests buffered ahead of the pacer (memory stays flat whatever the log size).
    #[arg(long, default_value_t = 8192, value_name = "N")]
    pub queue_capacity: usize,

    /// Methods to replay, comma separated, or `all`. Others are skipped and counted.
    #[arg(long, default_value = "GET,HEAD,OPTIONS", value_name = "METHODS")]
    pub allow_methods: String,

    /// Stop when more log lines than this are unreadable: a count (100) or a share (5%).
    #[arg(long, value_name = "N|P%")]
    pub max_bad_lines: Option<String>,

    /// Threads that send requests. One is the most efficient when the target runs on the same machine.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
}
