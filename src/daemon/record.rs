//! A daemon run as a client reads it: its record, its states, its progress figures.
//!
//! [`RunRecord`] is both what the API answers for a run and what `run.json` holds (see
//! [`super::store`]), so what a client sees survives a restart unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::request::RunRequest;
use crate::control::{Progress, StatusClasses};
use crate::pace::schedule::Shape;

/// A scheduled run whose start time passed at most this long ago (while the daemon was down, or
/// in a request that took a moment to arrive) is still started; one that is later than this is
/// not (a soak test meant for 02:00 should not begin at 09:00 because the daemon came back then).
pub const LATE_START_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for a free slot (`--max-concurrent-runs`).
    Queued,
    /// Waiting for its `start_at`.
    Scheduled,
    Running,
    /// Asked to stop (or the daemon is shutting down): no new requests, in-flight ones draining.
    Stopping,
    /// Ran to its end: the log replayed, or the duration reached.
    Completed,
    /// Stopped through the API.
    Stopped,
    /// Could not start, or ended on an error (unreadable logs, too many bad lines, …).
    Failed,
    /// The daemon stopped while the run was running (SIGTERM, a crash, SIGKILL). Never resumed.
    Interrupted,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Queued,
        RunState::Scheduled,
        RunState::Running,
        RunState::Stopping,
        RunState::Completed,
        RunState::Stopped,
        RunState::Failed,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Scheduled => "scheduled",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Completed => "completed",
            RunState::Stopped => "stopped",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Completed | RunState::Stopped | RunState::Failed | RunState::Interrupted)
    }

    /// Running or draining: holding one of the `--max-concurrent-runs` slots.
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Running | RunState::Stopping)
    }
}

/// A run's live figures (or its last ones, once it ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressView {
    pub elapsed_seconds: f64,
    /// Requests released to the senders.
    pub sent: u64,
    /// Requests answered with a status.
    pub completed: u64,
    /// Requests that got no answer (timeouts, resets, …).
    pub errors: u64,
    /// Answered requests by status class: `{"1xx":0,"2xx":1546,"3xx":0,"4xx":259,"5xx":195}`.
    #[serde(default)]
    pub classes: StatusClasses,
    /// Requests per second over the last second (0 once the run ended).
    pub current_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lag_p99_ms: f64,
    pub lines_rejected: u64,
    /// Requests per second the run's plan calls for now; absent when the plan has no rate of its
    /// own (`rate: max`, `speed`) and once the run ended. The web page draws it beside `current_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_rate: Option<f64>,
}

impl ProgressView {
    pub fn of(p: &Progress, current_rate: f64) -> ProgressView {
        ProgressView {
            elapsed_seconds: p.elapsed.as_secs_f64(),
            sent: p.sent,
            completed: p.live.completed,
            errors: p.live.errors,
            classes: p.live.classes,
            current_rate,
            p50_ms: p.live.p50_ms,
            p99_ms: p.live.p99_ms,
            lag_p99_ms: p.live.lag_p99_ms,
            lines_rejected: p.lines_rejected,
            planned_rate: None,
        }
    }

    /// With the rate `shape` calls for at this point of the run, when it has a rate of its own.
    pub fn with_plan(mut self, shape: &Shape) -> ProgressView {
        let elapsed = std::time::Duration::from_secs_f64(self.elapsed_seconds);
        self.planned_rate = matches!(shape, Shape::Curve { .. }).then(|| shape.rate_at(elapsed));
        self
    }
}

/// What the API shows for a run, and what `run.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run failed, was stopped or interrupted, in words.
    #[serde(default)]
    pub message: Option<String>,
    /// The format the logs are read as (what `auto` chose), once started.
    #[serde(default)]
    pub format: Option<String>,
    pub options: RunRequest,
    /// Live while running; the last figures once ended.
    #[serde(default)]
    pub progress: Option<ProgressView>,
    /// The summary (as `--summary-json` writes it), once ended.
    #[serde(default)]
    pub summary: Option<serde_json::Value>,
}

impl RunRecord {
    /// A run just submitted: nothing about it has happened yet.
    pub fn new(id: String, state: RunState, created_at: DateTime<Utc>, options: RunRequest) -> RunRecord {
        RunRecord {
            id,
            state,
            created_at,
            started_at: None,
            finished_at: None,
            message: None,
            format: None,
            options,
            progress: None,
            summary: None,
        }
    }

    /// Ends the run now in `state`, saying why.
    pub fn end(&mut self, state: RunState, message: impl Into<String>) {
        self.state = state;
        self.finished_at = Some(Utc::now());
        self.message = Some(message.into());
    }
}
