//! sluice replays web-server access logs against another server at a controlled rate, for a set
//! time, and records what came back, one CSV row per request.
//!
//! The modules, in the order data flows through them (imports point down this list):
//!
//! ```text
//! cli/  (faces: parse, replay, report, runs, import; progress line)   daemon/  (the HTTP API)
//!   │  scenario/: Tsung configurations → a generated log
//!   │  config/: ReplayOptions (flags, TOML, daemon JSON) → ReplayConfig, validated once
//!   ▼
//! run/: Run wires the stages below; summary, dry run       control: what the stages share
//!   │
//! source/: files, gzip, stdin, line limits, HAR recordings; sniff: --format auto
//!   │  sluice_parsers: line → Entry (borrowed, zero-copy)
//!   ▼
//! plan/: reader thread, rules, filters, safety, sessions, the mix, the log's clock (--speed)
//!   │    → ReplayRequest, into a queue bounded in requests and bytes: memory flat for any log
//!   ▼
//! pace/: schedule (the pure plan: rate, stages, Poisson, logged timing), shard (--shard),
//!   │    the pacer (governor as the cap, timerfd sleeps)
//!   ▼
//! send/: tokio senders (own HTTP/1.1, or reqwest), at most C in flight, one request per
//!   │    session at a time (session_gate) → Outcome
//!   ▼
//! sink/: the writer thread — CSV rows (results: the columns), the Tally (stats), metrics,
//!        --abort-on
//!
//! prom: the target's own metrics in a Prometheus — `prom:` assertions after the run and
//!       `--abort-on 'prom:…'` while it goes (a thread of the run's)
//!
//! results CSV ──▶ analysis/: streaming fold into HDR histograms per route and time slice
//!   ▼
//! `sluice report` / `replay --report`: routes, logged vs replayed status, over time; assertions
//!   │
//! export/: the CSV and its report as an Excel workbook (`--xlsx`), after the run
//!
//! shard/: a shard's manifest (written when its run ends), the check that a set of shards is one
//!         whole run, and `sluice merge`'s k-way merge of their CSVs in seq order
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
pub mod exit;
pub mod export;
pub mod pace;
pub mod plan;
pub mod prom;
pub mod results;
pub mod run;
pub mod scenario;
pub mod send;
pub mod shard;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod stats;

pub use config::{Rate, ReplayConfig, Target};
pub use run::summary::Summary;
pub use run::{Run, RunError, RunHandle};
