//! Latency over time route by route, for the HTML report's per-route charts: one small HDR
//! histogram per (route, time slice) of answered requests. Only the first [`SERIES_ROUTES`] routes
//! seen are followed (as the route table follows the first 500 and counts the rest as `other`),
//! and each in at most [`SERIES_SLICES`] slices that lengthen as the fold goes, by the timeline's
//! own steps — so memory stays bounded whatever the number of rows or routes (16 × 120 histograms
//! of a few KiB each: 12 MB measured over a one-hour CSV of 300 routes with second-long tails).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::aggregate::next_interval;
use crate::results::Row;
use crate::stats::{histogram, record};

/// Routes whose latency over time is followed: the first ones seen (the busiest routes of a log
/// nearly always are among them).
pub const SERIES_ROUTES: usize = 16;
/// Slices per route: past this, slices are merged into longer ones (enough points for a chart a
/// third of a page high).
pub const SERIES_SLICES: usize = 120;
/// Two significant figures (percentiles within 1%) keep a histogram to a few KiB, a quarter of
/// what the run-wide slices use.
const SERIES_FIGURES: u8 = 2;

/// One route's latency, µs, slice by slice.
pub type Slices = BTreeMap<i64, Histogram<u32>>;

#[derive(Debug, Clone)]
pub struct RouteSeries {
    /// Slices are counted from the fold's timeline origin, so they line up with its slices.
    pub origin_ms: i64,
    pub interval_ms: i64,
    /// Chosen by the user (`--interval`): lengthened only by doubling.
    fixed: bool,
    /// Route → slice → latency of its answered requests, µs.
    pub routes: HashMap<String, Slices>,
    /// The same of the baseline target in a `--compare` run (its `b_latency_ms` where it answered),
    /// for the routes followed above, in the same slices.
    pub b_routes: HashMap<String, Slices>,
    /// Whether a route was seen that is not followed.
    pub untracked: bool,
}

impl RouteSeries {
    pub fn new(interval: Option<Duration>) -> RouteSeries {
        let (interval_ms, fixed) = match interval {
            Some(d) => ((d.as_millis() as i64).max(1), true),
            None => (1000, false),
        };
        RouteSeries {
            origin_ms: 0,
            interval_ms,
            fixed,
            routes: HashMap::new(),
            b_routes: HashMap::new(),
            untracked: false,
        }
    }

    /// Records a sent row of `route`; `origin_ms` is the fold's timeline origin (set by then).
    pub fn record(&mut self, row: &Row<'_>, route: &str, origin_ms: i64) {
        if !row.has_latency() {
            return;
        }
        self.origin_ms = origin_ms;
        if !self.routes.contains_key(route) {
            if self.routes.len() >= SERIES_ROUTES {
                self.untracked = true;
                return;
            }
            self.routes.insert(route.to_string(), BTreeMap::new());
        }
        let key = self.key_of(row.sent_ms);
        let slices = self.routes.get_mut(route).expect("inserted above");
        if add(slices, key, row.latency_us) {
            self.lengthen();
        }
    }

    /// Records the baseline target's answer to a row of `route` (a route followed: the target's
    /// own record of the row came first), sent at `sent_ms`.
    pub fn record_b(&mut self, route: &str, sent_ms: i64, latency_us: u64) {
        if !self.routes.contains_key(route) {
            return;
        }
        if !self.b_routes.contains_key(route) {
            self.b_routes.insert(route.to_string(), BTreeMap::new());
        }
        let key = self.key_of(sent_ms);
        let slices = self.b_routes.get_mut(route).expect("inserted above");
        if add(slices, key, latency_us) {
            self.lengthen();
        }
    }

    /// Merges every route's slices, both targets', into the next longer ones (a multiple of the
    /// current length), so the two stay in the same slices.
    fn lengthen(&mut self) {
        let next = next_interval(self.interval_ms, self.fixed);
        let factor = next / self.interval_ms;
        for slices in self.routes.values_mut().chain(self.b_routes.values_mut()) {
            *slices = merged(std::mem::take(slices), |key| key.div_euclid(factor));
        }
        self.interval_ms = next;
    }

    /// When slice `key` starts, ms since the epoch.
    pub fn start_ms(&self, key: i64) -> i64 {
        self.origin_ms + key * self.interval_ms
    }

    /// The slice `ms` (since the epoch) falls in.
    pub fn key_of(&self, ms: i64) -> i64 {
        (ms - self.origin_ms).div_euclid(self.interval_ms)
    }
}

/// Records a latency in slice `key`; whether the slices are now too many.
fn add(slices: &mut Slices, key: i64, latency_us: u64) -> bool {
    record(slices.entry(key).or_insert_with(|| histogram(SERIES_FIGURES)), latency_us.max(1));
    slices.len() > SERIES_SLICES
}

/// `slices` with each key renamed by `into`, the histograms of slices renamed alike added up.
pub fn merged(slices: Slices, into: impl Fn(i64) -> i64) -> Slices {
    let mut out = Slices::new();
    for (key, h) in slices {
        match out.entry(into(key)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(h);
            }
            // Cannot fail: both sides auto-resize.
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let _ = e.get_mut().add(&h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Answer;

    fn row(sent_ms: i64, latency_us: u64, answer: Answer<'static>) -> Row<'static> {
        Row {
            seq: 0,
            scheduled_ms: sent_ms,
            sent_ms,
            lag_us: 0,
            method: "GET",
            url: "/",
            orig_status: None,
            answer,
            latency_us,
            bytes: 0,
            session: None,
            e2e: None,
        }
    }

    #[test]
    fn routes_and_slices_stay_bounded_and_merge_exactly() {
        let mut s = RouteSeries::new(None);
        // An hour of 1 s slices for 20 routes: only 16 are followed, in at most 120 slices.
        for second in 0..3600i64 {
            for r in 0..20 {
                s.record(&row(second * 1000, 1000 + r as u64, Answer::Status(200)), &format!("/r{r}"), 0);
            }
        }
        assert_eq!(s.routes.len(), SERIES_ROUTES);
        assert!(s.untracked);
        assert_eq!(s.interval_ms, 60_000, "1s → 2s → 10s → 20s → 1m");
        let r0 = &s.routes["/r0"];
        assert_eq!(r0.len(), 60);
        assert_eq!(r0.values().map(|h| h.len()).sum::<u64>(), 3600, "every row is kept when slices merge");
        // Rows without an answer have no latency and take no route's place.
        s.record(&row(0, 5, Answer::Error("timeout")), "/r0", 0);
        assert_eq!(s.routes["/r0"].values().map(|h| h.len()).sum::<u64>(), 3600);
    }

    #[test]
    fn b_latencies_follow_the_targets_routes_and_slices() {
        let mut s = RouteSeries::new(None);
        for second in 0..600i64 {
            for r in 0..20 {
                let route = format!("/r{r}");
                s.record(&row(second * 1000, 1000, Answer::Status(200)), &route, 0);
                s.record_b(&route, second * 1000, 3000);
            }
        }
        assert_eq!(s.b_routes.len(), SERIES_ROUTES, "only the routes followed for the target");
        assert!(s.b_routes.keys().all(|r| s.routes.contains_key(r)));
        assert_eq!(s.interval_ms, 10_000);
        let (a, b) = (&s.routes["/r0"], &s.b_routes["/r0"]);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same slices");
        assert_eq!(b.values().map(|h| h.len()).sum::<u64>(), 600);
        assert!(b.values().all(|h| h.value_at_quantile(0.5) >= 2990));
    }
}
