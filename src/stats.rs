//! The one aggregator: HDR histograms and counts over a set of requests ([`Tally`]), the live
//! figures drawn from it, and the percentiles every summary shows. Exact percentiles for any run
//! length in a few hundred KiB.

use std::collections::BTreeMap;

use hdrhistogram::{Counter, Histogram};

use crate::results::{Answer, EndToEnd, Row};

/// The `error` of a request still in flight when the drain timeout ran out.
const ABORTED: &str = "aborted";

/// Histograms clamp here: anything slower is reported as an hour.
const HOUR_US: u64 = 3_600_000_000;

/// Significant figures of every histogram of a [`Tally`] (shard manifests record it).
pub const SIGNIFICANT_FIGURES: u8 = 3;
/// The largest value a histogram records, µs (shard manifests record it).
pub const HIGHEST_US: u64 = HOUR_US;

/// A histogram that grows with its largest value, so a group whose answers all take a few
/// milliseconds stays small. 3 significant figures keep percentiles within 0.1%.
pub(crate) fn histogram<T: Counter>(sigfig: u8) -> Histogram<T> {
    Histogram::new(sigfig).expect("1..=5 significant figures is valid")
}

pub(crate) fn record<T: Counter>(h: &mut Histogram<T>, us: u64) {
    // Cannot fail: auto-resizing histograms only refuse values past what a usize can index.
    let _ = h.record(us.min(HOUR_US));
}

/// The classes a status matrix has: `1xx`…`5xx`, then `other` (a code outside 100–599), then
/// `none` (no logged status) for originals or `error` (no answer) for replays.
pub const CLASSES: usize = 7;
pub const ORIG_CLASS_NAMES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "none"];
pub const REPLAYED_CLASS_NAMES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "error"];
/// Index of `none` / `error`.
pub const NO_STATUS: usize = 6;

pub fn class_of(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// Whether a replayed class agrees with the logged status. A logged `304 Not Modified` agrees
/// with a replayed 2xx: the replay does not send the client's cache validators, so a full answer
/// is the right one.
pub fn agrees(orig: u16, replayed: usize) -> bool {
    class_of(orig) == replayed || (orig == 304 && replayed == 1)
}

pub(crate) fn replayed_class(answer: Answer<'_>) -> usize {
    match answer {
        Answer::Status(s) => class_of(s),
        Answer::Error(_) => NO_STATUS,
    }
}

/// Everything measured over one set of requests: the one aggregator of sluice. The run's writer
/// folds every request into one as it goes (the summary, the live figures, `--abort-on`), and
/// `sluice report` folds CSV rows into one per route, time slice and assertion filter, so the
/// two cannot drift. Routes count in `u32` (half the memory; a route with four billion requests
/// saturates its histograms rather than wrapping); the whole run and the filters in `u64`.
#[derive(Debug, Clone)]
pub struct Tally<C: Counter = u64> {
    /// Requests that left (answered or not).
    pub requests: u64,
    /// Requests whose planned time came but that never left: not in `requests` or anything else.
    pub not_sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind.
    pub errors: BTreeMap<String, u64>,
    /// From the actual send, µs.
    pub latency: Histogram<C>,
    /// From the planned send time, µs.
    pub from_schedule: Histogram<C>,
    /// Of requests without an answer (aborted ones aside): from the send to the failure, µs.
    pub time_to_failure: Histogram<C>,
    /// Lateness behind the plan, µs (early sends count as 0; see `earliest_lag_us`).
    pub lag: Histogram<C>,
    /// End to end (`--consume`): from the send to the output message, µs.
    pub end_to_end: Histogram<C>,
    /// End to end: produced messages whose output never came.
    pub lost: u64,
    /// The most negative lag (how early the earliest send was), or 0.
    pub earliest_lag_us: i64,
    pub bytes: u64,
    /// `matrix[logged class][replayed class]`.
    pub matrix: [[u64; CLASSES]; CLASSES],
    /// Requests whose replayed class does not [agree](agrees) with the logged status, by (logged
    /// code, replayed code or `None` for no answer).
    pub transitions: BTreeMap<(u16, Option<u16>), u64>,
}

impl<C: Counter> Default for Tally<C> {
    fn default() -> Self {
        Tally {
            requests: 0,
            not_sent: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: histogram(SIGNIFICANT_FIGURES),
            from_schedule: histogram(SIGNIFICANT_FIGURES),
            time_to_failure: histogram(SIGNIFICANT_FIGURES),
            lag: histogram(SIGNIFICANT_FIGURES),
            end_to_end: histogram(SIGNIFICANT_FIGURES),
            lost: 0,
            earliest_lag_us: 0,
            bytes: 0,
            matrix: [[0; CLASSES]; CLASSES],
            transitions: BTreeMap::new(),
        }
    }
}

impl<C: Counter> Tally<C> {
    pub fn record(&mut self, row: &Row<'_>) {
        if !row.was_sent() {
            self.not_sent += 1;
            return;
        }
        self.requests += 1;
        match row.answer {
            Answer::Status(s) => *self.statuses.entry(s).or_default() += 1,
            Answer::Error(kind) => {
                match self.errors.get_mut(kind) {
                    Some(n) => *n += 1,
                    None => {
                        self.errors.insert(kind.to_string(), 1);
                    }
                }
                // An aborted request never finished: its time would only measure the drain timeout.
                if kind != ABORTED {
                    record(&mut self.time_to_failure, row.latency_us.max(1));
                }
            }
        }
        if row.has_latency() {
            record(&mut self.latency, row.latency_us.max(1));
            record(&mut self.from_schedule, row.latency_from_schedule_us().max(1));
        }
        record(&mut self.lag, row.lag_us.max(0) as u64);
        self.earliest_lag_us = self.earliest_lag_us.min(row.lag_us);
        match row.e2e {
            Some(EndToEnd::Seen(us)) => record(&mut self.end_to_end, us.max(1)),
            Some(EndToEnd::Lost) => self.lost += 1,
            None => {}
        }
        self.bytes += row.bytes;
        self.record_status_pair(row);
    }

    fn record_status_pair(&mut self, row: &Row<'_>) {
        let replayed = replayed_class(row.answer);
        // A Kafka message's acknowledgement has nothing in common with the HTTP status its log
        // line had: it is compared with nothing, as a line without a logged status is.
        let orig = row.orig_status.filter(|_| !row.is_kafka());
        let Some(orig) = orig else {
            self.matrix[NO_STATUS][replayed] += 1;
            return;
        };
        self.matrix[class_of(orig)][replayed] += 1;
        if !agrees(orig, replayed) {
            let to = match row.answer {
                Answer::Status(s) => Some(s),
                Answer::Error(_) => None,
            };
            *self.transitions.entry((orig, to)).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Tally<C>) {
        self.requests += other.requests;
        self.not_sent += other.not_sent;
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (mine, theirs) in [
            (&mut self.latency, &other.latency),
            (&mut self.from_schedule, &other.from_schedule),
            (&mut self.time_to_failure, &other.time_to_failure),
            (&mut self.lag, &other.lag),
            (&mut self.end_to_end, &other.end_to_end),
        ] {
            // Cannot fail: both sides auto-resize.
            let _ = mine.add(theirs);
        }
        self.earliest_lag_us = self.earliest_lag_us.min(other.earliest_lag_us);
        self.lost += other.lost;
        self.bytes += other.bytes;
        for (row, theirs) in self.matrix.iter_mut().zip(other.matrix) {
            for (cell, n) in row.iter_mut().zip(theirs) {
                *cell += n;
            }
        }
        for (k, v) in &other.transitions {
            *self.transitions.entry(*k).or_default() += v;
        }
    }

    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Requests without an answer (timeouts, resets, …).
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Answered with a status in this class (index as in [`class_of`]).
    pub fn class_count(&self, class: usize) -> u64 {
        self.statuses.iter().filter(|(s, _)| class_of(**s) == class).map(|(_, n)| n).sum()
    }

    /// Requests that failed: no answer, or a 5xx.
    pub fn failed(&self) -> u64 {
        self.errors() + self.class_count(4)
    }

    /// Requests that had a logged status to compare with.
    pub fn with_orig(&self) -> u64 {
        self.matrix[..NO_STATUS].iter().flatten().sum()
    }

    /// Requests whose replayed status class does not [agree](agrees) with the logged one (no
    /// answer counts as a class of its own).
    pub fn mismatches(&self) -> u64 {
        self.transitions.values().sum()
    }
}

/// Counts by key, sorted, as owned strings (for summaries).
pub fn counts<K: ToString>(map: &BTreeMap<K, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.max == 0.0
    }

    /// The percentiles of a microsecond histogram, in milliseconds (zeros when it is empty).
    pub fn of<C: hdrhistogram::Counter>(h: &Histogram<C>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1e3,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LagSummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// How early the earliest send was (0 when none was early).
    pub earliest_ms: f64,
}

impl LagSummary {
    /// From a histogram of lags in µs and the earliest send's offset from its plan time in µs.
    pub fn of(lag: &hdrhistogram::Histogram<u64>, earliest_us: i64) -> LagSummary {
        let p = Percentiles::of(lag);
        LagSummary { p50_ms: p.p50, p99_ms: p.p99, max_ms: p.max, earliest_ms: earliest_us as f64 / 1e3 }
    }
}

/// Planned against sent over the run, from T0: how many requests were due in each stretch of
/// time and how many left in it. Kept in at most `PLAN_BINS` equal bins that double in width as
/// the run goes on, so it stays a few hundred bytes whatever the run's length. The summary shows it
/// for shapes without one steady rate (`--stages`, `--speed`).
#[derive(Debug, Clone)]
pub struct PlanCurve {
    bin: std::time::Duration,
    planned: Vec<u64>,
    sent: Vec<u64>,
}

/// Bins kept while the run goes.
const PLAN_BINS: usize = 20;
/// Bins shown: pairs are merged down to this many.
const PLAN_ROWS: usize = 10;

impl Default for PlanCurve {
    fn default() -> Self {
        PlanCurve { bin: std::time::Duration::from_millis(100), planned: Vec::new(), sent: Vec::new() }
    }
}

/// One stretch of a [`PlanCurve`], as the summary shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    /// Seconds from T0.
    pub from_s: f64,
    pub to_s: f64,
    /// Requests due in the stretch (sent or not).
    pub planned: u64,
    /// Requests that left in it.
    pub sent: u64,
    pub planned_rate: f64,
    pub achieved_rate: f64,
}

impl PlanCurve {
    /// A request due `due` after T0 that left `sent` after it (`None`: never left).
    pub fn record(&mut self, due: std::time::Duration, sent: Option<std::time::Duration>) {
        let i = self.bin_of(due);
        self.planned[i] += 1;
        if let Some(sent) = sent {
            let i = self.bin_of(sent);
            self.sent[i] += 1;
        }
    }

    fn bin_of(&mut self, at: std::time::Duration) -> usize {
        let index = |bin: std::time::Duration| (at.as_nanos() / bin.as_nanos()) as usize;
        while index(self.bin) >= PLAN_BINS {
            self.merge_pairs();
        }
        let i = index(self.bin);
        if i >= self.planned.len() {
            self.planned.resize(i + 1, 0);
            self.sent.resize(i + 1, 0);
        }
        i
    }

    fn merge_pairs(&mut self) {
        let pairs = |v: &[u64]| v.chunks(2).map(|c| c.iter().sum()).collect::<Vec<u64>>();
        self.planned = pairs(&self.planned);
        self.sent = pairs(&self.sent);
        self.bin *= 2;
    }

    /// At most `PLAN_ROWS` stretches of equal length up to the last request; the last one ends at
    /// `span` (the plan's end) when that falls inside it.
    pub fn points(&self, span: std::time::Duration) -> Vec<CurvePoint> {
        let mut shown = self.clone();
        while shown.planned.len() > PLAN_ROWS {
            shown.merge_pairs();
        }
        let width = shown.bin.as_secs_f64();
        let last = shown.planned.len().saturating_sub(1);
        (0..shown.planned.len())
            .map(|i| {
                let from_s = i as f64 * width;
                let end = from_s + width;
                let to_s = if i == last && span.as_secs_f64() > from_s { span.as_secs_f64().min(end) } else { end };
                let seconds = to_s - from_s;
                CurvePoint {
                    from_s,
                    to_s,
                    planned: shown.planned[i],
                    sent: shown.sent[i],
                    planned_rate: shown.planned[i] as f64 / seconds,
                    achieved_rate: shown.sent[i] as f64 / seconds,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_304_agrees_with_a_replayed_2xx_and_nothing_else_crosses_classes() {
        assert!(agrees(304, 1));
        assert!(agrees(304, 2));
        assert!(!agrees(301, 1));
        assert!(!agrees(200, 4));
        assert!(!agrees(200, NO_STATUS));
        assert!(agrees(404, 3));
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_of(200), 1);
        assert_eq!(class_of(599), 4);
        assert_eq!(class_of(99), 5);
        assert_eq!(class_of(600), 5);
    }

    #[test]
    fn a_plan_curve_keeps_few_bins_and_counts_where_requests_were_due_and_left() {
        let ms = std::time::Duration::from_millis;
        let mut curve = PlanCurve::default();
        // 7 s: 100 requests due per second, each leaving 150 ms late; the last 50 never leave.
        for n in 0..700u64 {
            let due = ms(n * 10);
            curve.record(due, (n < 650).then(|| due + ms(150)));
        }
        assert!(curve.planned.len() <= PLAN_BINS);
        let points = curve.points(ms(7000));
        assert_eq!(points.len(), 9, "{points:?}");
        assert_eq!((points[0].from_s, points[0].to_s), (0.0, 0.8));
        assert_eq!((points[0].planned, points[0].sent), (80, 65));
        assert!((points[0].planned_rate - 100.0).abs() < 1e-9);
        assert_eq!(points[8].to_s, 7.0, "the last stretch ends with the plan");
        assert_eq!(points.iter().map(|p| p.planned).sum::<u64>(), 700);
        assert_eq!(points.iter().map(|p| p.sent).sum::<u64>(), 650);
    }
}
