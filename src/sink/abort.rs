//! `--abort-on 'error_rate > 50% for 10s'`: conditions judged once a second while a run goes,
//! stopping it when one holds (k6's `abortOnFail`).
//!
//! A condition is any assertion expression (see [`crate::analysis::assert`]), measured from the
//! same aggregator `sluice report` folds ([`Tally`]), so `p99 > 2s` means here what it
//! means after the run. Without `for D` it is judged on every request so far; with `for D` on the
//! requests that finished in the last `D`, once the run has been going for `D`. The window slides
//! in steps of a tenth of `D` (at least a second), which keeps memory at eleven groups per
//! condition whatever `D` is.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::analysis::assert::{Assertion, evaluate_group};
use crate::analysis::routes::{Router, path_of};
use crate::results::Row;
use crate::stats::Tally;

/// How often conditions are judged.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest window a condition may have.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Steps a window slides in.
const STEPS: u32 = 10;

/// One `--abort-on` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortCondition {
    /// As written.
    pub text: String,
    pub assertion: Assertion,
    /// `for D`: judged on the last `D` only.
    pub window: Option<Duration>,
}

impl AbortCondition {
    /// `EXPR` or `EXPR for DURATION`.
    pub fn parse(text: &str) -> Result<AbortCondition, String> {
        let text = text.trim();
        let (expr, window) = match text.rsplit_once(" for ") {
            Some((expr, d)) => {
                let window = crate::duration::parse_duration(d).map_err(|m| format!("'{text}': after `for`: {m}"))?;
                if window > MAX_WINDOW {
                    return Err(format!("'{text}': a window may be at most 24h"));
                }
                (expr, Some(window))
            }
            None => (text, None),
        };
        let assertion = Assertion::parse(expr).map_err(|e| e.to_string().replacen("--assert", "--abort-on", 1))?;
        Ok(AbortCondition { text: text.to_string(), assertion, window })
    }
}

/// What one condition has seen.
struct Watched {
    condition: AbortCondition,
    /// Everything so far (no window), or the current step of the window.
    current: Tally,
    /// Finished steps of the window, newest last, at most [`STEPS`].
    steps: VecDeque<Tally>,
    step: Duration,
    step_started: Instant,
}

/// The conditions of one run and what they have seen; fed by the writer thread.
pub struct AbortWatch {
    watched: Vec<Watched>,
    /// The run's T0 (its first send), once known.
    started: Option<Instant>,
    last_check: Instant,
    target_rate: Option<f64>,
    /// Route folding for `route:` conditions (reused buffer).
    router: Router,
    route: String,
}

impl AbortWatch {
    pub fn new(conditions: &[AbortCondition], target_rate: Option<f64>) -> Option<AbortWatch> {
        if conditions.is_empty() {
            return None;
        }
        let now = Instant::now();
        let watched = conditions
            .iter()
            .map(|c| Watched {
                condition: c.clone(),
                current: Tally::default(),
                steps: VecDeque::new(),
                step: c.window.map_or(Duration::MAX, |w| (w / STEPS).max(Duration::from_secs(1))),
                step_started: now,
            })
            .collect();
        Some(AbortWatch {
            watched,
            started: None,
            last_check: now,
            target_rate,
            router: Router::default(),
            route: String::new(),
        })
    }

    pub fn record(&mut self, row: &Row<'_>) {
        let scoped = self.watched.iter().any(|w| w.condition.assertion.scope.is_some());
        if scoped {
            self.router.route_into(row.url, &mut self.route);
        }
        for w in &mut self.watched {
            let counts = match &w.condition.assertion.scope {
                None => true,
                Some(glob) => glob.matches_request(path_of(row.url), &self.route),
            };
            if counts {
                w.current.record(row);
            }
        }
    }

    /// Once a second: the first condition that holds, with what was measured
    /// (`error_rate > 50% for 10s: error_rate = 62.0% (310 of 500) over the last 10s`).
    /// `t0` is the run's first send, `None` before it.
    pub fn check(&mut self, now: Instant, t0: Option<Instant>) -> Option<String> {
        let t0 = t0?;
        if now.duration_since(self.last_check) < CHECK_EVERY {
            return None;
        }
        self.last_check = now;
        if self.started.is_none() {
            self.started = Some(t0);
            for w in &mut self.watched {
                w.step_started = t0;
            }
        }
        let running = now.saturating_duration_since(t0);
        for w in &mut self.watched {
            let (group, seconds) = match w.condition.window {
                None => (w.current.clone(), running.as_secs_f64()),
                Some(window) => {
                    while now.duration_since(w.step_started) >= w.step {
                        w.steps.push_back(std::mem::take(&mut w.current));
                        if w.steps.len() > STEPS as usize {
                            w.steps.pop_front();
                        }
                        w.step_started += w.step;
                    }
                    if running < window {
                        continue;
                    }
                    let mut merged = w.current.clone();
                    for step in &w.steps {
                        merged.merge(step);
                    }
                    (merged, window.as_secs_f64())
                }
            };
            let verdict = evaluate_group(&w.condition.assertion, &group, seconds, self.target_rate);
            // A condition that cannot be measured yet (no request) does not hold.
            if verdict.passed && verdict.value.is_some() {
                let over = match w.condition.window {
                    Some(window) => format!(" over the last {}", crate::display::human_duration(window)),
                    None => String::new(),
                };
                return Some(format!("{}: {}{over}", w.condition.text, verdict.measured));
            }
        }
        None
    }
}
