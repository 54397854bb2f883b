//! Running statistics folded from outcomes: HDR histograms and counts. Exact percentiles for any
//! run length in a few hundred KiB.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::control::{LiveStats, StatusClasses};
use crate::send::outcome::{ErrorKind, Outcome};

/// Microsecond histograms from 1 µs to one hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[derive(Debug, Clone)]
pub struct Stats {
    /// Requests that got an HTTP status.
    pub completed: u64,
    /// Requests that left but got no status, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests whose slot came but that never left (scheduling stopped first).
    pub not_sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Of answered requests only: from the actual send to the end of the response body.
    pub latency: Histogram<u64>,
    /// Of answered requests only: from the planned send time to the end of the response body
    /// (coordinated omission corrected).
    pub latency_from_schedule: Histogram<u64>,
    /// Of requests that got no answer (but not aborted ones): from the send to the failure.
    pub time_to_failure: Histogram<u64>,
    /// Lateness of each send behind its plan time (early sends count as 0 here; see `earliest_us`).
    pub lag: Histogram<u64>,
    /// The most negative lag seen, in µs (how early the earliest send was), if any send was early.
    pub earliest_us: i64,
    pub bytes: u64,
    pub last_done: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            completed: 0,
            errors: BTreeMap::new(),
            not_sent: 0,
            statuses: BTreeMap::new(),
            latency: histogram(),
            latency_from_schedule: histogram(),
            time_to_failure: histogram(),
            lag: histogram(),
            earliest_us: 0,
            bytes: 0,
            last_done: None,
        }
    }
}

impl Stats {
    pub fn record(&mut self, o: &Outcome) {
        let Some(sent) = o.sent else {
            self.not_sent += 1;
            return;
        };
        let took = micros(o.done.saturating_duration_since(sent)).max(1);
        match o.result {
            Ok(status) => {
                self.completed += 1;
                *self.statuses.entry(status).or_default() += 1;
                self.latency.saturating_record(took);
                self.latency_from_schedule
                    .saturating_record(micros(o.done.saturating_duration_since(o.scheduled)).max(1));
            }
            Err(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                // Aborted requests never finished: their time would only measure the drain timeout.
                if kind != ErrorKind::Aborted {
                    self.time_to_failure.saturating_record(took);
                }
            }
        }
        match sent.checked_duration_since(o.scheduled) {
            Some(late) => self.lag.saturating_record(micros(late)),
            None => {
                self.lag.saturating_record(0);
                let early = micros(o.scheduled.duration_since(sent)) as i64;
                self.earliest_us = self.earliest_us.min(-early);
            }
        }
        self.bytes += o.bytes;
        self.last_done = Some(self.last_done.map_or(o.done, |d| d.max(o.done)));
    }

    /// Requests that left and got no answer.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests that left: answered or not.
    pub fn sent(&self) -> u64 {
        self.completed + self.error_count()
    }
}

impl From<&Stats> for LiveStats {
    fn from(s: &Stats) -> Self {
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e3 }
        };
        LiveStats {
            completed: s.completed,
            errors: s.error_count(),
            classes: StatusClasses::of(&s.statuses),
            p50_ms: ms(&s.latency, 0.5),
            p99_ms: ms(&s.latency, 0.99),
            lag_p99_ms: ms(&s.lag, 0.99),
        }
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
