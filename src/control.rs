//! The state one run's stages share: the stop (and why), the requests that left, the plan's T0,
//! the live figures for progress displays, what the reader found so far, and the first failure
//! messages. The stages read and write it; [`crate::run`] creates it and wires them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::plan::read_ahead::{READ_AHEAD_BYTES, ReadAheadBudget};
use crate::plan::reader::ReaderStats;
use crate::send::outcome::FailureSamples;
use crate::stats::Tally;

/// Why scheduling stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `--duration` elapsed.
    Deadline,
    /// The log ran out (with `--once`, or input that cannot loop).
    EndOfLog,
    /// Cancelled: Ctrl-C, SIGTERM, a stop request, or too many bad log lines.
    Cancelled,
    /// An `--abort-on` condition held.
    AbortCondition,
    /// The results could not be written (a full disk).
    OutputError,
}

/// A small live view of the writer's statistics, for progress displays.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct LiveStats {
    /// Requests that got an HTTP status.
    pub completed: u64,
    /// Requests that got no answer (connect, timeout, reset, …).
    pub errors: u64,
    /// Answered requests by status class.
    pub classes: StatusClasses,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lag_p99_ms: f64,
}

/// Answered requests by status class, as a progress line shows them (`2xx 1546 4xx 259 5xx 195`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirect: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl StatusClasses {
    pub fn of(statuses: &BTreeMap<u16, u64>) -> StatusClasses {
        let mut c = StatusClasses::default();
        for (&status, &n) in statuses {
            match status / 100 {
                1 => c.informational += n,
                2 => c.success += n,
                3 => c.redirect += n,
                4 => c.client_error += n,
                _ => c.server_error += n,
            }
        }
        c
    }

    /// `2xx 1546 4xx 259 5xx 195`: the classes seen (2xx always), in order.
    pub fn to_text(&self) -> String {
        let all = [
            ("1xx", self.informational),
            ("2xx", self.success),
            ("3xx", self.redirect),
            ("4xx", self.client_error),
            ("5xx", self.server_error),
        ];
        all.iter()
            .filter(|(name, n)| *n > 0 || *name == "2xx")
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A progress snapshot.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Progress {
    /// Since the first request was released.
    pub elapsed: Duration,
    /// Requests that have left so far.
    pub sent: u64,
    pub live: LiveStats,
    pub lines_rejected: u64,
}

/// State shared by the stages of one run.
pub struct RunControl {
    stopping: AtomicBool,
    /// Why scheduling stopped early, when it did: the first reason given wins.
    stop_reason: OnceLock<StopReason>,
    stop: CancellationToken,
    /// Closes the hand-off to the senders (set by whoever wires them).
    on_stop: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// Requests that actually left (a sender started sending them).
    sent: AtomicU64,
    t0: OnceLock<(Instant, chrono::DateTime<chrono::Utc>)>,
    duration: Option<Duration>,
    /// Requests have plan times (not `--rate max`).
    paced: bool,
    live: Mutex<LiveStats>,
    /// What the reader has found so far (the reader thread publishes it).
    pub(crate) reader: Mutex<ReaderStats>,
    pub(crate) failures: FailureSamples,
    /// The `--abort-on` condition that stopped the run, with what was measured.
    pub(crate) aborted_by: Mutex<Option<String>>,
    /// Bytes of requests between the reader and the pacer.
    pub(crate) read_ahead: ReadAheadBudget,
}

impl RunControl {
    pub(crate) fn new(duration: Option<Duration>, paced: bool) -> RunControl {
        RunControl {
            stopping: AtomicBool::new(false),
            stop_reason: OnceLock::new(),
            stop: CancellationToken::new(),
            on_stop: Mutex::new(None),
            sent: AtomicU64::new(0),
            t0: OnceLock::new(),
            duration,
            paced,
            live: Mutex::new(LiveStats::default()),
            reader: Mutex::new(ReaderStats::default()),
            failures: FailureSamples::default(),
            aborted_by: Mutex::new(None),
            read_ahead: ReadAheadBudget::new(READ_AHEAD_BYTES),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether a request taken now may still leave: scheduling has not stopped and the duration
    /// has not run out (nothing is sent after `--duration`, however late the senders are).
    pub fn may_send(&self, now: Instant) -> bool {
        !self.is_stopping()
            && match (self.t0.get(), self.duration) {
                (Some((t0, _)), Some(d)) => now < *t0 + d,
                _ => true,
            }
    }

    pub fn is_paced(&self) -> bool {
        self.paced
    }

    /// Why scheduling stopped early, if something stopped it.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason.get().copied()
    }

    /// Stops scheduling (a user's cancel, a bad log, a full disk, an abort condition, the end of
    /// the duration): wakes the pacer out of any sleep or queue wait, and closes the hand-off to
    /// the senders, so a pacer blocked on busy senders returns at once; what was already handed
    /// over is recorded as not sent.
    pub fn stop_because(&self, reason: StopReason) {
        let _ = self.stop_reason.set(reason);
        self.stopping.store(true, Ordering::Relaxed);
        self.stop.cancel();
        if let Some(close) = self.on_stop.lock().expect("not poisoned").as_ref() {
            close();
        }
    }

    /// What a stop must also do: close the hand-off to the senders.
    pub(crate) fn on_stop(&self, close: impl Fn() + Send + 'static) {
        *self.on_stop.lock().expect("not poisoned") = Some(Box::new(close));
    }

    /// A progress snapshot.
    pub fn progress(&self) -> Progress {
        Progress {
            elapsed: self.t0.get().map(|(t0, _)| t0.elapsed()).unwrap_or_default(),
            sent: self.sent.load(Ordering::Relaxed),
            live: *self.live.lock().expect("not poisoned"),
            lines_rejected: self.reader.lock().expect("not poisoned").parse.rejected,
        }
    }

    pub fn stop(&self) {
        self.stop_because(StopReason::Cancelled)
    }

    /// A token cancelled when the run is stopped.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The run's first release, once it happened.
    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().map(|(at, _)| *at)
    }

    /// T0 on the wall clock, taken once when T0 is set, so that every reader (the manifest, the
    /// pushed points, the `prom:` window) sees the same instant.
    pub fn t0_wall(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.t0.get().map(|(_, wall)| *wall)
    }

    pub fn set_t0(&self, t0: Instant) {
        let since = Instant::now().saturating_duration_since(t0);
        let wall = chrono::Utc::now() - chrono::Duration::from_std(since).unwrap_or_default();
        let _ = self.t0.set((t0, wall));
    }

    pub fn publish(&self, live: LiveStats) {
        *self.live.lock().expect("not poisoned") = live;
    }
}

impl From<&Tally> for LiveStats {
    fn from(t: &Tally) -> Self {
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e3 }
        };
        LiveStats {
            completed: t.responses(),
            errors: t.errors(),
            classes: StatusClasses::of(&t.statuses),
            p50_ms: ms(&t.latency, 0.5),
            p99_ms: ms(&t.latency, 0.99),
            lag_p99_ms: ms(&t.lag, 0.99),
        }
    }
}
