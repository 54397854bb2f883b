//! `--abort-on 'error_rate > 50% for 10s'`: conditions judged once a second while a run goes,
//! stopping it when one holds (k6's `abortOnFail`).
//!
//! A condition is any assertion expression (see [`crate::analysis::assert`]), measured from the
//! same aggregator `sluice report` folds ([`Tally`]), so `p99 > 2s` means here what it
//! means after the run. Without `for D` it is judged on every request so far; with `for D` on the
//! requests that finished in the last `D`, once the run has been going for `D`. The window slides
//! in steps of a tenth of `D` (at least a second), which keeps memory at eleven groups per
//! condition whatever `D` is.
//!
//! `rate < 50% of target` compares with the plan over the same span: the steady rate, or for
//! `--stages` the requests the rate curve plans in the window (its integral) over the window's
//! length. It is taken from the schedule, not from the rows: the rows only show requests that came
//! back, and the ones a struggling target holds up are exactly the ones that would be missing.
//! For the same reason it is refused up front with `--speed`, whose plan is only known as the log
//! is read, and with `--rate max`, which has no plan ([`check_against`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::analysis::assert::{Assertion, Threshold, evaluate_group};
use crate::analysis::routes::{Router, path_of};
use crate::pace::schedule::{RateCurve, Shape};
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
        if assertion.needs_report() {
            return Err(format!(
                "'{text}': compares with a baseline (--compare columns or `of baseline`), which `sluice report` \
                 measures on the finished run; it cannot stop a run"
            ));
        }
        Ok(AbortCondition { text: text.to_string(), assertion, window })
    }
}

/// Refuses a condition the run could never judge: a share of the target rate when the shape has
/// no plan known ahead of the run (`--speed`, `--rate max`).
pub fn check_against(conditions: &[AbortCondition], shape: &Shape) -> Result<(), String> {
    let Some(c) = conditions.iter().find(|c| matches!(c.assertion.threshold, Threshold::OfTarget(_))) else {
        return Ok(());
    };
    match shape {
        Shape::Curve { .. } => Ok(()),
        Shape::Unpaced => Err(format!("'{}': --rate max has no target rate; give a rate in requests/s", c.text)),
        Shape::Logged { .. } => Err(format!(
            "'{}': with --speed the plan is only known as the log is read, so a run cannot be judged \
             against it while it goes; give a rate in requests/s, or watch lag_p99 (how far behind the log's \
             timing the sends are)",
            c.text
        )),
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
    /// The plan's rate over time, for `N% of target` (`None`: no plan known ahead).
    plan: Option<RateCurve>,
    /// Route folding for `route:` conditions (reused buffer).
    router: Router,
    route: String,
}

impl AbortWatch {
    pub fn new(conditions: &[AbortCondition], shape: &Shape) -> Option<AbortWatch> {
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
            plan: match shape {
                Shape::Curve { curve, .. } => Some(curve.clone()),
                _ => None,
            },
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
            let target = self.plan.as_ref().and_then(|curve| planned_rate(curve, running, seconds));
            let verdict = evaluate_group(&w.condition.assertion, &group, seconds, target);
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

/// The plan's mean rate over the `seconds` before `running` (rounded to 0.1/s, as it is shown);
/// `None` when it plans nothing there (a pause, or after the last stage).
fn planned_rate(curve: &RateCurve, running: Duration, seconds: f64) -> Option<f64> {
    if let Some(rate) = curve.steady_rate() {
        return Some(rate);
    }
    let from = running.saturating_sub(Duration::from_secs_f64(seconds));
    let planned = curve.count_until(running) - curve.count_until(from);
    (planned > 0.0 && seconds > 0.0).then(|| (planned / seconds * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::schedule::{Arrivals, parse_stages};
    use crate::results::Answer;

    fn conditions(list: &[&str]) -> Vec<AbortCondition> {
        list.iter().map(|c| AbortCondition::parse(c).unwrap()).collect()
    }

    fn ramp(stages: &str) -> Shape {
        Shape::Curve { curve: RateCurve::stages(parse_stages(stages).unwrap()), arrivals: Arrivals::Uniform }
    }

    #[test]
    fn a_share_of_the_target_is_refused_where_there_is_no_plan_ahead() {
        let of_target = conditions(&["p99 > 2s", "rate < 50% of target for 10s"]);
        let logged = Shape::Logged { speed: 2.0, max_gap: None };
        let refused = check_against(&of_target, &logged).unwrap_err();
        assert!(refused.starts_with("'rate < 50% of target for 10s': with --speed"), "{refused}");
        assert!(check_against(&of_target, &Shape::Unpaced).unwrap_err().contains("--rate max has no target rate"));
        assert_eq!(check_against(&of_target, &ramp("10s:0-100")), Ok(()));
        assert_eq!(check_against(&of_target, &Shape::steady(50.0)), Ok(()));
        assert_eq!(check_against(&conditions(&["rate < 5/s for 10s"]), &logged), Ok(()));
    }

    #[test]
    fn a_comparison_with_a_baseline_cannot_stop_a_run() {
        for text in ["p99 > 1.5 of baseline", "body_mismatch_rate > 1% for 10s", "b_p99_ratio > 2"] {
            let refused = AbortCondition::parse(text).unwrap_err();
            assert!(refused.contains("measures on the finished run"), "{text}: {refused}");
        }
    }

    fn row() -> Row<'static> {
        Row {
            seq: 0,
            scheduled_ms: 0,
            sent_ms: 0,
            lag_us: 0,
            method: "GET",
            url: "/",
            orig_status: None,
            answer: Answer::Status(200),
            latency_us: 1000,
            bytes: 0,
            session: None,
            e2e: None,
        }
    }

    /// What `rate < 50% of target for 2s` says 3 s into `10s:0-100` after `sent` requests came
    /// back: the plan is 20/s over that window (40 requests between 1 s and 3 s).
    fn judged_on_a_ramp(sent: usize) -> Option<String> {
        let mut watch = AbortWatch::new(&conditions(&["rate < 50% of target for 2s"]), &ramp("10s:0-100")).unwrap();
        for _ in 0..sent {
            watch.record(&row());
        }
        let t0 = Instant::now();
        watch.check(t0 + Duration::from_secs(3), Some(t0))
    }

    #[test]
    fn on_stages_the_target_is_what_the_curve_planned_in_the_window() {
        let held = judged_on_a_ramp(10).expect("5/s of a 20/s plan is below half");
        assert_eq!(held, "rate < 50% of target for 2s: rate = 5.0/s = 25.0% of 20/s target over the last 2s");
        assert_eq!(judged_on_a_ramp(30), None, "15/s is 75% of the plan");
        let curve = RateCurve::stages(parse_stages("2s:10,2s:0").unwrap());
        assert_eq!(planned_rate(&curve, Duration::from_secs(4), 1.0), None, "a pause plans nothing");
        assert_eq!(planned_rate(&curve, Duration::from_secs(3), 2.0), Some(5.0));
    }
}
