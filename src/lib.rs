//! sluice replays web-server access logs against another server at a controlled rate, for a set
//! time, and records what came back, one CSV row per request.
//!
//! The modules, in the order data flows through them (imports point down this list):
//!
//! ```text
//! cli/  (faces: parse, replay, report, runs; the progress line)    daemon/  (the HTTP API)
//!   │  config/: ReplayOptions (flags, TOML, daemon JSON) → ReplayConfig, validated once
//!   ▼
//! run/: Run wires the stages below; summary, dry run       control: what the stages share
//!   │
//! source/: files, gzip, stdin, line limits; sniff: --format auto
//!   │  sluice_parsers: line → Entry (borrowed, zero-copy)
//!   ▼
//! plan/: reader thread, rules, filters, safety → ReplayRequest, into a queue bounded in
//!   │    requests and bytes (read_ahead): memory flat for any log
//!   ▼
//! pace/: the plan T0 + n/N (batches of B), governor as the cap, timerfd sleeps
//!   │
//! send/: tokio senders (own HTTP/1.1, or reqwest), at most C in flight → Outcome
//!   ▼
//! sink/: the writer thread — CSV rows (results: the columns), stats, metrics, --abort-on
//!
//! results CSV ──▶ analysis/: streaming fold into HDR histograms per route and time slice
//!   ▼
//! `sluice report` / `replay --report`: routes, logged vs replayed status, over time; assertions
//! ```
//!
//! Everything is driven through [`Run`]: the CLI, the daemon and the tests build a
//! [`ReplayConfig`], start a run, watch it, cancel it and wait for its [`Summary`].

pub mod analysis;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod display;
pub mod duration;
pub mod pace;
pub mod plan;
pub mod results;
pub mod run;
pub mod send;
pub mod sink;
pub mod source;
pub mod stats;

pub use config::{Rate, ReplayConfig, Target};
pub use run::summary::Summary;
pub use run::{Run, RunError, RunHandle};

/// How a command ended, as an exit code: 0 ok, 1 an assertion failed (or an `--abort-on`
/// condition stopped the run), 2 bad input or usage (or the results could not be written),
/// 3 the input stopped early (a truncated `.gz`) but what was read of it was used, 4 no request
/// got an answer, 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    AssertionFailed,
    BadInput,
    NothingAnswered,
    InputIncomplete,
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::AssertionFailed => 1,
            Outcome::BadInput => 2,
            Outcome::NothingAnswered => 4,
            Outcome::InputIncomplete => 3,
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
