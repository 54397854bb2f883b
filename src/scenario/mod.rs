//! Scenarios written for other load tools, replayed by sluice as a **generated access log**.
//!
//! A scenario (today: a Tsung configuration, [`tsung`]) is read into a [`Scenario`]: arrival
//! phases that start simulated users, and sessions — lists of requests and think times — that each
//! user plays once. [`generate`] then writes one JSON-lines log line per request, in time order:
//! the time is the user's start plus the think times before that request, and `remote_user` names
//! the user (`u1`, `u2`, …). Replayed with `--format json --speed 1`, that log reproduces the
//! scenario's timing; `--speed 2` plays it twice as fast. The log goes through the same reader,
//! filters, safety rules and pacer as any other, so a scenario gets nothing sluice does not check.
//!
//! User start times come from sluice's own schedule ([`crate::pace::schedule`]): each phase is a
//! steady stage at its users-per-second rate, with Poisson arrivals — the model Tsung itself uses
//! (exponential inter-arrival times). Every random draw (arrivals, the session a user picks,
//! random think times) is a pure function of (seed, user, step), so a seed repeats a scenario
//! exactly, in any process.

pub mod generate;
pub mod tsung;

use std::fmt;
use std::time::Duration;

/// A scenario, as read from another tool's file: who arrives when, and what each user does.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The arrival phases, one after the other (already repeated when the load loops).
    pub phases: Vec<Phase>,
    /// What a user plays; each user picks one by its share.
    pub sessions: Vec<Session>,
    /// Nothing is sent at or after this time from the start (Tsung's `<load duration>`).
    pub cutoff: Option<Duration>,
    /// What was read but does not change the traffic (another tool's own cluster, logging, …),
    /// and how some things were mapped: shown to the user, written into an imported config.
    pub notes: Vec<String>,
}

/// A stretch of time during which users arrive at a steady mean rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// The phase's own number in the source file (for messages and the summary).
    pub number: u32,
    pub duration: Duration,
    /// New users per second (the mean of the Poisson arrivals).
    pub users_per_second: f64,
    /// At most this many users start in this phase; the rest of the phase starts none.
    pub max_users: Option<u64>,
}

/// What one user does, from its start.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub name: String,
    /// The share of users that play it, relative to the other sessions' (they need not sum to 1).
    pub share: f64,
    pub steps: Vec<Step>,
    /// Where it is defined in the source file.
    pub line: u32,
}

impl Session {
    pub fn requests(&self) -> impl Iterator<Item = &Request> {
        self.steps.iter().filter_map(|s| match s {
            Step::Request(r) => Some(r),
            Step::Think(_) => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this request (the next step follows at once: a simulated user does not wait for the
    /// answer in the generated plan; sessions keyed on the user, when enabled, do).
    Request(Request),
    /// Wait this long before the next step.
    Think(Think),
}

/// A think time: fixed, or drawn per user from a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Think {
    Fixed(Duration),
    /// Exponentially distributed with this mean.
    Exponential {
        mean: Duration,
    },
    /// Uniform in [min, max].
    Uniform {
        min: Duration,
        max: Duration,
    },
}

/// One HTTP request of a session, as it will be logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// Path and query, starting with `/`.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub protocol: String,
    /// Headers in the order given (names as written).
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Where it is defined in the source file.
    pub line: u32,
}

/// Why a scenario file was refused: where, which element, and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line; 0 when the problem is the whole file (unreadable, too large).
    pub line: u32,
    /// The element (`<dyn_variable>`) or attribute (`<http method>`) concerned, if any.
    pub element: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(element) = &self.element {
            write!(f, ": {element}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}
