//! The plan, read back from `scheduled_at`: what the achieved rate is compared with.
//!
//! A run at one steady `--rate` has one target. Ramps (`--stages`), the log's own timing
//! (`--speed`) and Poisson arrivals do not: their target in a time slice is the number of rows
//! whose `scheduled_at` falls in it (sent or not — a request that never left was still planned)
//! divided by the slice's length. `rate >= 95% of target` then holds when every window of full
//! slices achieved at least 95% of what it planned (see [`windows`]).

use super::aggregate::{Activity, Aggregate, Timeline};
use super::figures::TargetRate;

/// Slices are judged together until they plan at least this many requests: with fewer, one
/// request sent a millisecond after its slice ended would swing the share by several percent.
pub const MIN_WINDOW_PLANNED: u64 = 50;
/// A steady plan may differ this much from its rate in a full slice (besides a batch).
const STEADY_TOLERANCE: f64 = 0.05;

/// What the achieved rate is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// One rate for the whole run: given, or inferred from a plan that keeps one rate.
    Rate(f64),
    /// The plan slice by slice: it does not keep one rate.
    Planned,
    /// No target: `--rate max`, or nothing to read it from.
    None,
}

/// The target and where it came from (`given`, `inferred`, `planned`, `none`, `unknown`).
pub fn resolve(agg: &Aggregate, given: TargetRate) -> (Target, &'static str) {
    match given {
        TargetRate::Given(n) => (Target::Rate(n), "given"),
        TargetRate::None => (Target::None, "none"),
        TargetRate::Infer => {
            let full = full_slices(agg, &agg.timeline);
            match agg.inferred_rate() {
                Some(rate) if keeps_rate(agg, &full, rate) => (Target::Rate(rate), "inferred"),
                _ if !full.is_empty() => (Target::Planned, "planned"),
                // Too short to tell the plan's shape: the two ends are all there is.
                Some(rate) => (Target::Rate(rate), "inferred"),
                None => (Target::None, "unknown"),
            }
        }
    }
}

/// Keys of the slices of `t` that lie wholly within the plan (a file's first to last
/// `scheduled_at`): the slices a plan's rate can be read from.
pub fn full_slices(agg: &Aggregate, t: &Timeline) -> Vec<i64> {
    let plan = agg.plan_activity();
    let (Some(&first), Some(&last)) = (t.planned.keys().next(), t.planned.keys().next_back()) else {
        return Vec::new();
    };
    (first..=last).filter(|&k| plan.contains(t.start_ms(k), t.start_ms(k + 1))).collect()
}

/// Whether every full slice planned `rate` requests per second, give or take a batch (the
/// first slot's size) and [`STEADY_TOLERANCE`].
fn keeps_rate(agg: &Aggregate, full: &[i64], rate: f64) -> bool {
    let t = &agg.timeline;
    let expected = rate * t.interval_ms as f64 / 1e3;
    let slot = agg.files.iter().map(|f| f.plan.first_slot()).max().unwrap_or(1) as f64;
    let allowed = (expected * STEADY_TOLERANCE).max(slot).max(2.0);
    full.iter().all(|k| (t.planned.get(k).copied().unwrap_or(0) as f64 - expected).abs() <= allowed)
}

/// The planned rate of slice `key` of `t`: its planned rows over the part of it the plan covers.
pub fn planned_rate(t: &Timeline, key: i64, plan: &Activity) -> f64 {
    let start = t.start_ms(key);
    let covered_ms = plan.covered_ms(start, start + t.interval_ms);
    let seconds = if covered_ms > 0.0 { covered_ms / 1e3 } else { t.interval_ms as f64 / 1e3 };
    t.planned.get(&key).copied().unwrap_or(0) as f64 / seconds
}

/// Consecutive full slices judged together against the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// ms since the epoch; `end_ms` excluded.
    pub start_ms: i64,
    pub end_ms: i64,
    pub planned: u64,
    /// Requests that left within the window.
    pub sent: u64,
}

impl Window {
    pub fn seconds(&self) -> f64 {
        (self.end_ms - self.start_ms) as f64 / 1e3
    }

    /// Sent over planned; 1 when nothing was planned (nothing to miss).
    pub fn share(&self) -> f64 {
        if self.planned == 0 { 1.0 } else { self.sent as f64 / self.planned as f64 }
    }

    fn join(&mut self, other: &Window) {
        self.end_ms = other.end_ms;
        self.planned += other.planned;
        self.sent += other.sent;
    }
}

/// The full slices of the report's timeline in order, each run of adjacent ones cut into windows
/// of at least [`MIN_WINDOW_PLANNED`] planned requests (a short remainder joins the window before
/// it). A window with nothing planned is left out.
pub fn windows(agg: &Aggregate) -> Vec<Window> {
    let t = &agg.timeline;
    let mut done: Vec<Window> = Vec::new();
    // The window being filled, and whether the previous slice was adjacent and full.
    let mut open: Option<Window> = None;
    let mut last_key: Option<i64> = None;
    let close = |open: &mut Option<Window>, done: &mut Vec<Window>, run_start: usize| {
        if let Some(w) = open.take().filter(|w| w.planned > 0) {
            let joins_previous = w.planned < MIN_WINDOW_PLANNED && done.len() > run_start;
            match done.last_mut() {
                Some(prev) if joins_previous => prev.join(&w),
                _ => done.push(w),
            }
        }
    };
    let mut run_start = 0;
    for key in full_slices(agg, t) {
        if last_key.is_some_and(|k| k + 1 != key) {
            close(&mut open, &mut done, run_start);
            run_start = done.len();
        }
        last_key = Some(key);
        let slice = Window {
            start_ms: t.start_ms(key),
            end_ms: t.start_ms(key + 1),
            planned: t.planned.get(&key).copied().unwrap_or(0),
            sent: t.slices.get(&key).map_or(0, |s| s.sent),
        };
        match &mut open {
            Some(w) => w.join(&slice),
            None => open = Some(slice),
        }
        if open.is_some_and(|w| w.planned >= MIN_WINDOW_PLANNED) {
            done.extend(open.take());
        }
    }
    close(&mut open, &mut done, run_start);
    done
}
