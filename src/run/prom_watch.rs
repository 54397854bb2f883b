//! `--abort-on 'prom:…'` while a run goes: a thread of the run's that asks Prometheus
//! ([`crate::prom`]) and stops the run as any `--abort-on` condition does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::control::{RunControl, StopReason};
use crate::prom::{PromCheck, Prometheus, RunWindow};

/// `--abort-on 'prom:…'`: judges the conditions every `every` from the run's T0 until scheduling
/// stops, and stops the run (as any `--abort-on` does) when one holds. A query that fails is said
/// once on stderr and never stops the run: the condition is about the target, not about
/// Prometheus.
pub(crate) fn watch_for_abort(
    checks: Vec<PromCheck>,
    prometheus: Prometheus,
    every: Duration,
    control: Arc<RunControl>,
) {
    const NAP: Duration = Duration::from_millis(200);
    let mut next = Instant::now() + every;
    let mut said = vec![false; checks.len()];
    while !control.is_stopping() {
        std::thread::sleep(NAP);
        let Some(t0) = control.t0_wall() else { continue };
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        let window = RunWindow { start: t0, end: Utc::now() };
        for (check, said) in checks.iter().zip(&mut said) {
            let verdict = check.judge(&prometheus, window);
            if verdict.passed {
                *control.aborted_by.lock().expect("not poisoned") =
                    Some(format!("{} ({})", check.text, verdict.measured));
                control.stop_because(StopReason::AbortCondition);
                return;
            }
            if verdict.value.is_none() && !*said {
                eprintln!("sluice: --abort-on '{}' cannot be judged now: {}", check.text, verdict.measured);
                *said = true;
            }
        }
    }
}
