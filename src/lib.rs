//! sluice replays web-server access logs against another server at a controlled rate, for a set
//! time, and records what came back, one CSV row per request.
//!
//! ```text
//! access logs (.log, .gz, stdin)
//!   │  source: reader thread, line splitting, gzip, line numbers
//!   ▼
//! sluice_parsers: line → Entry (borrowed, zero-copy)
//!   │  plan: method filter, target rewriting, headers → ReplayRequest
//!   ▼
//! bounded queue                                ← backpressure: memory flat for any log size
//!   │
//! pacer task: the plan T0 + n/N (batches of B), governor as the cap, timerfd sleeps
//!   │
//! replay: tokio senders (own HTTP/1.1, or reqwest), at most C in flight → Outcome { scheduled, sent, status | error, … }
//!   ▼
//! sink: writer thread — CSV rows, HDR histograms, live progress
//!   ▼
//! report: summary (text, JSON) and exit code
//!
//! results CSV ──▶ analysis: streaming fold into HDR histograms per route and time slice
//!   ▼
//! `sluice report` / `replay --report`: routes, logged vs replayed status, over time; assertions
//! ```
//!
//! Everything is driven through [`Run`]: the CLI, the daemon and the tests build a
//! [`ReplayConfig`], start a run, watch it, cancel it and wait for its [`Summary`].

pub mod analysis;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod display;
pub mod filter;
pub mod http1;
pub mod pacer;
pub mod parse_command;
pub mod plan;
pub mod replay;
pub mod replay_command;
pub mod report;
pub mod report_command;
pub mod run;
pub mod safety;
pub mod sink;
pub mod source;
mod timer;
pub mod tls;
pub mod transport;

pub use config::{Rate, ReplayConfig, Target};
pub use report::Summary;
pub use run::{Run, RunError, RunHandle};

/// How a command ended, as an exit code: 0 ok, 1 an assertion failed, 2 bad input or usage,
/// 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    AssertionFailed,
    BadInput,
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::AssertionFailed => 1,
            Outcome::BadInput => 2,
            Outcome::Interrupted => 130,
        }
    }
}

/// An error caused by what the user gave us (flags, files, formats): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<config::ConfigError> for UsageError {
    fn from(e: config::ConfigError) -> Self {
        UsageError(e.to_string())
    }
}

/// Run errors that come from the user's input become usage errors; the rest stay internal.
pub fn run_error(e: RunError) -> anyhow::Error {
    match e {
        RunError::Internal(_) => anyhow::Error::new(e),
        other => anyhow::Error::new(UsageError(other.to_string())),
    }
}

/// The mock server `--target mock` starts: a realistic mix for demos (mostly 200, some 404 and
/// 500, a few milliseconds of latency), seeded so a replay is repeatable.
pub fn demo_mock_config() -> sluice_mock::MockConfig {
    let statuses = "200:90,404:6,500:3,503:1".parse().expect("static status mix");
    let latency = "lognormal:2ms,20ms".parse().expect("static latency model");
    // Counts are enough for a demo; an in-process mock need not keep every request in memory.
    sluice_mock::MockConfig::default()
        .with_seed(42)
        .with_statuses(statuses)
        .with_latency(latency)
        .without_memory_record()
}
