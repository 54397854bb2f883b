//! The streaming fold: every row is recorded once into HDR histograms and counters per group
//! (the whole run, each route, each `route:` filter of an assertion, each time slice), and
//! nothing else is kept, so memory depends on the number of routes and time slices, never on the
//! number of rows. Groups merge exactly (histograms add), which is how files, the `other` route
//! and coarser time slices are made.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::assert::ERROR_KINDS;
use super::journeys::Journeys;
use super::routes::{RouteGlob, Router, path_of};
use super::rows::{FileError, RowError, RowReader};
use super::series::RouteSeries;
use crate::results::{Answer, Row};
use crate::stats::{CLASSES, NO_STATUS, SIGNIFICANT_FIGURES, Tally, agrees, histogram, record, replayed_class};

/// Distinct routes followed one by one; later new ones are counted together as `other`, which
/// bounds memory whatever the paths (up to ~100 KiB per route).
pub const ROUTES_TRACKED: usize = 500;
/// Time slices kept: past this, slices are merged into longer ones (1s → 2s → 10s → 20s → 1m …).
pub const MAX_SLICES: usize = 720;
/// Bad rows kept verbatim for the report; the rest are counted.
const BAD_ROW_EXAMPLES: usize = 10;
/// One time slice: enough for the over-time table and charts. Its histogram counts in `u32` (a
/// slice never holds four billion requests): half the memory, which matters at hundreds of slices.
#[derive(Debug, Clone)]
pub struct Slice {
    pub sent: u64,
    /// By replayed class, as in [`crate::stats::REPLAYED_CLASS_NAMES`].
    pub classes: [u64; CLASSES],
    pub latency: Histogram<u32>,
    pub lag_max_us: i64,
    pub mismatches: u64,
    /// Requests without an answer, by kind as in [`ERROR_KINDS`] (a kind this sluice does not
    /// know counts as `other`, so a slice stays the same size whatever the CSV holds).
    pub error_kinds: [u64; ERROR_KINDS.len()],
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            sent: 0,
            classes: [0; CLASSES],
            latency: histogram(SIGNIFICANT_FIGURES),
            lag_max_us: 0,
            mismatches: 0,
            error_kinds: [0; ERROR_KINDS.len()],
        }
    }
}

/// Where a kind from the `error` column is counted in [`Slice::error_kinds`].
pub fn error_kind_index(kind: &str) -> usize {
    ERROR_KINDS.iter().position(|k| *k == kind).unwrap_or(ERROR_KINDS.len() - 1)
}

impl Slice {
    fn record(&mut self, row: &Row<'_>) {
        self.sent += 1;
        let replayed = replayed_class(row.answer);
        self.classes[replayed] += 1;
        if row.has_latency() {
            record(&mut self.latency, row.latency_us.max(1));
        }
        self.lag_max_us = self.lag_max_us.max(row.lag_us);
        if row.orig_status.is_some_and(|o| !agrees(o, replayed)) {
            self.mismatches += 1;
        }
        if let Answer::Error(kind) = row.answer {
            self.error_kinds[error_kind_index(kind)] += 1;
        }
    }

    pub fn merge(&mut self, other: &Slice) {
        self.sent += other.sent;
        for (mine, theirs) in self.classes.iter_mut().zip(other.classes) {
            *mine += theirs;
        }
        let _ = self.latency.add(&other.latency);
        self.lag_max_us = self.lag_max_us.max(other.lag_max_us);
        self.mismatches += other.mismatches;
        for (mine, theirs) in self.error_kinds.iter_mut().zip(other.error_kinds) {
            *mine += theirs;
        }
    }

    /// No answer, or a 5xx.
    pub fn failed(&self) -> u64 {
        self.classes[4] + self.classes[NO_STATUS]
    }
}

/// Rows by when they were sent, in slices of `interval_ms` counted from `origin_ms` (an hour
/// boundary, so 1s, 10s and 1m slices line up with the clock); and the plan: rows by when they
/// were scheduled, in the same slices.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub origin_ms: i64,
    pub interval_ms: i64,
    /// Chosen by the user (`--interval`): coarsened only by doubling, and only when it must be.
    pub fixed: bool,
    pub slices: BTreeMap<i64, Slice>,
    /// Rows whose `scheduled_at` falls in each slice, sent or not: the plan, slice by slice.
    pub planned: BTreeMap<i64, u64>,
}

impl Timeline {
    pub fn new(interval: Option<Duration>) -> Timeline {
        let (interval_ms, fixed) = match interval {
            Some(d) => ((d.as_millis() as i64).max(1), true),
            None => (1000, false),
        };
        Timeline { origin_ms: i64::MIN, interval_ms, fixed, slices: BTreeMap::new(), planned: BTreeMap::new() }
    }

    /// The slice `ms` falls in; the first time seen sets the origin.
    fn key_of(&mut self, ms: i64) -> i64 {
        if self.origin_ms == i64::MIN {
            self.origin_ms = ms.div_euclid(3_600_000) * 3_600_000;
        }
        (ms - self.origin_ms).div_euclid(self.interval_ms)
    }

    fn record(&mut self, row: &Row<'_>) {
        let key = self.key_of(row.sent_ms);
        self.slices.entry(key).or_default().record(row);
        self.keep_bounded();
    }

    /// Counts a row in the plan of the slice its `scheduled_at` falls in.
    fn plan(&mut self, scheduled_ms: i64) {
        let key = self.key_of(scheduled_ms);
        *self.planned.entry(key).or_default() += 1;
        self.keep_bounded();
    }

    fn keep_bounded(&mut self) {
        if self.slices.len().max(self.planned.len()) > MAX_SLICES {
            let next = next_interval(self.interval_ms, self.fixed);
            self.coarsen_to(next);
        }
    }

    /// Merges slices into longer ones; `interval_ms` must be a multiple of the current one.
    pub fn coarsen_to(&mut self, interval_ms: i64) {
        let factor = interval_ms / self.interval_ms;
        if factor <= 1 {
            return;
        }
        let mut merged: BTreeMap<i64, Slice> = BTreeMap::new();
        for (key, slice) in std::mem::take(&mut self.slices) {
            merged.entry(key.div_euclid(factor)).or_default().merge(&slice);
        }
        self.slices = merged;
        let mut planned: BTreeMap<i64, u64> = BTreeMap::new();
        for (key, n) in std::mem::take(&mut self.planned) {
            *planned.entry(key.div_euclid(factor)).or_default() += n;
        }
        self.planned = planned;
        self.interval_ms = interval_ms;
    }

    /// A copy with at most `max` slices, by the same steps the fold uses.
    pub fn coarsened(&self, max: usize) -> Timeline {
        let mut t = self.clone();
        while t.slices.len().max(t.planned.len()) > max {
            let next = next_interval(t.interval_ms, t.fixed);
            t.coarsen_to(next);
        }
        t
    }

    /// When slice `key` starts, ms since the epoch.
    pub fn start_ms(&self, key: i64) -> i64 {
        self.origin_ms + key * self.interval_ms
    }
}

/// The next longer slice: each step a multiple of the last, so slices merge exactly, and each a
/// length people read at a glance.
pub(super) fn next_interval(ms: i64, fixed: bool) -> i64 {
    const LADDER: [i64; 9] = [1_000, 2_000, 10_000, 20_000, 60_000, 120_000, 600_000, 1_200_000, 3_600_000];
    if fixed {
        return ms * 2;
    }
    LADDER.iter().copied().find(|&step| step > ms && step % ms == 0).unwrap_or(ms * 2)
}

/// The two ends of one file's plan, to infer its rate: `scheduled_at` is `T0 + floor(n/B)·B/N`,
/// so the first request of the first and of the last slot give N exactly (up to the CSV's
/// millisecond precision), whatever the batch size.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanEnds {
    first: Option<(i64, u64)>,
    last: Option<(i64, u64)>,
    /// Rows scheduled in the first millisecond of the plan: the first batch (or, at thousands of
    /// requests per second, what one millisecond holds). How lumpy a steady plan can look.
    first_slot: u64,
}

impl PlanEnds {
    fn observe(&mut self, scheduled_ms: i64, seq: u64) {
        match &mut self.first {
            Some((t, s)) if scheduled_ms == *t => {
                *s = (*s).min(seq);
                self.first_slot += 1;
            }
            Some((t, _)) if scheduled_ms > *t => {}
            _ => {
                self.first = Some((scheduled_ms, seq));
                self.first_slot = 1;
            }
        }
        match &mut self.last {
            Some((t, s)) if scheduled_ms == *t => *s = (*s).min(seq),
            Some((t, _)) if scheduled_ms < *t => {}
            _ => self.last = Some((scheduled_ms, seq)),
        }
    }

    /// Rows scheduled in the plan's first millisecond.
    pub fn first_slot(&self) -> u64 {
        self.first_slot
    }

    /// The first and the last `scheduled_at`, ms since the epoch.
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        Some((self.first?.0, self.last?.0))
    }

    /// Requests per second of the plan, or `None` when the file spans too little to tell.
    pub fn rate(&self) -> Option<f64> {
        let ((t0, s0), (t1, s1)) = (self.first?, self.last?);
        let span_ms = (t1 - t0) as f64;
        if span_ms < 100.0 || s1 <= s0 + 1 {
            return None;
        }
        let rate = (s1 - s0) as f64 * 1e3 / span_ms;
        // Each end is rounded to the millisecond: snap to the simplest value that close.
        Some(simplest_within(rate, rate * 2.0 / span_ms))
    }
}

/// The number with the fewest decimals (0 to 3) within `tolerance` of `x`; else `x` to 3 decimals.
fn simplest_within(x: f64, tolerance: f64) -> f64 {
    for decimals in 0..=3 {
        let scale = 10f64.powi(decimals);
        let rounded = (x * scale).round() / scale;
        if (rounded - x).abs() <= tolerance {
            return rounded;
        }
    }
    (x * 1e3).round() / 1e3
}

/// What one input file contributed.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub name: String,
    pub rows: u64,
    pub plan: PlanEnds,
    /// First and last `sent_at`, ms since the epoch.
    pub sent_ms: Option<(i64, i64)>,
    /// Rows of requests that left.
    pub requests: u64,
    /// The file's own lag behind the plan, µs (for a shard: its machine keeping up or not).
    pub lag: Histogram<u32>,
}

impl FileFacts {
    fn new(name: &str) -> FileFacts {
        FileFacts {
            name: name.to_string(),
            rows: 0,
            plan: PlanEnds::default(),
            sent_ms: None,
            requests: 0,
            lag: histogram(SIGNIFICANT_FIGURES),
        }
    }

    /// Requests per second this file's sends achieved, counted as [`Aggregate::seconds`] counts
    /// a run's (its span of sends plus one average gap).
    pub fn achieved_rate(&self) -> f64 {
        let Some((first, last)) = self.sent_ms else { return 0.0 };
        let span_ms = (last - first) as f64;
        let gaps = self.requests.saturating_sub(1);
        let gap_ms = if gaps > 0 { span_ms / gaps as f64 } else { 0.0 };
        let seconds = Activity { spans: vec![(first, last)], gap_ms }.seconds();
        if seconds > 0.0 { self.requests as f64 / seconds } else { 0.0 }
    }
}

/// The spans of time in which requests were sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Disjoint `[first send, last send]` spans, in order, ms since the epoch.
    pub spans: Vec<(i64, i64)>,
    /// The average time between two sends, ms.
    pub gap_ms: f64,
}

impl Activity {
    /// `count` events within `spans` (overlapping spans are joined).
    fn of(mut spans: Vec<(i64, i64)>, count: u64) -> Activity {
        spans.sort_unstable();
        let mut joined: Vec<(i64, i64)> = Vec::new();
        for (start, end) in spans {
            match joined.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => joined.push((start, end)),
            }
        }
        // n events over k spans leave n - k gaps between them.
        let span_ms: i64 = joined.iter().map(|(a, b)| b - a).sum();
        let gaps = count.saturating_sub(joined.len() as u64);
        let gap_ms = if gaps > 0 && span_ms > 0 { span_ms as f64 / gaps as f64 } else { 0.0 };
        Activity { spans: joined, gap_ms }
    }

    /// Whether `[from, to)` lies wholly within one span.
    pub fn contains(&self, from: i64, to: i64) -> bool {
        self.spans.iter().any(|&(a, b)| a <= from && to <= b)
    }

    pub fn seconds(&self) -> f64 {
        self.spans.iter().map(|(a, b)| (b - a) as f64 + self.gap_ms).sum::<f64>() / 1e3
    }

    /// How much of `[from, to)` was spent sending, ms (each span counted to one gap past its
    /// last send, so the last slice's rate is not inflated).
    pub fn covered_ms(&self, from: i64, to: i64) -> f64 {
        self.spans.iter().map(|&(a, b)| ((to as f64).min(b as f64 + self.gap_ms) - from.max(a) as f64).max(0.0)).sum()
    }
}

/// How to fold.
#[derive(Debug, Clone, Default)]
pub struct FoldOptions {
    pub router: Router,
    /// `--interval`; `None` chooses the finest slices that fit [`MAX_SLICES`].
    pub interval: Option<Duration>,
    /// Extra groups, one per distinct `route:` filter of the assertions.
    pub filters: Vec<RouteGlob>,
    /// Stop at the first bad row instead of skipping it.
    pub strict: bool,
}

/// Why a fold stopped.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(transparent)]
    File(#[from] FileError),
    /// `--strict` and a bad row.
    #[error("{0}")]
    Row(RowError),
    /// Shard files that are not whole runs (or whose manifests cannot be read).
    #[error("{0}")]
    Shards(String),
}

/// The baseline target's latency in a `--compare` run (`b_latency_ms` of the rows it answered),
/// grouped as the target's: the whole run, and each route the route table follows (per time slice:
/// `RouteSeries::b_routes`). The HTML report draws it beside the target's; the A/B table and
/// assertions judge `compare::fold_ab`'s paired samples instead.
#[derive(Debug, Clone)]
pub struct BLatency {
    pub overall: Histogram<u64>,
    pub routes: HashMap<String, Histogram<u32>>,
}

/// All groups, folded from every row of every file.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub overall: Tally,
    pub routes: HashMap<String, Tally<u32>>,
    /// Rows of routes first seen after [`ROUTES_TRACKED`] others.
    pub untracked: Tally<u32>,
    pub filtered: Vec<(RouteGlob, Tally)>,
    pub timeline: Timeline,
    pub files: Vec<FileFacts>,
    pub first_sent_ms: Option<i64>,
    pub last_sent_ms: Option<i64>,
    /// Rows that could not be used (the first few verbatim), apart from cut-off last rows.
    pub bad_rows: Vec<RowError>,
    pub bad_row_count: u64,
    /// A file's last row with too few fields: what a killed run leaves; skipped with a note.
    pub cut_off_rows: Vec<RowError>,
    /// Client sessions, for results of a `--sessions` run.
    pub journeys: Journeys,
    /// Latency over time of the first routes seen, for the HTML report's per-route charts.
    pub route_series: RouteSeries,
    /// The baseline target's latency, when the files are of a `--compare` run.
    pub b_latency: Option<BLatency>,
    /// Whether a file has an `e2e_ms` column (a Kafka run with `--consume`).
    pub end_to_end_column: bool,
    /// Rows of messages produced to Kafka (`url` `kafka://…`).
    pub kafka_rows: u64,
}

impl Aggregate {
    fn new(options: &FoldOptions) -> Aggregate {
        Aggregate {
            overall: Tally::default(),
            routes: HashMap::new(),
            untracked: Tally::default(),
            filtered: options.filters.iter().map(|g| (g.clone(), Tally::default())).collect(),
            timeline: Timeline::new(options.interval),
            files: Vec::new(),
            first_sent_ms: None,
            last_sent_ms: None,
            bad_rows: Vec::new(),
            bad_row_count: 0,
            cut_off_rows: Vec::new(),
            journeys: Journeys::default(),
            route_series: RouteSeries::new(options.interval),
            b_latency: None,
            end_to_end_column: false,
            kafka_rows: 0,
        }
    }

    /// Whether every row is of a Kafka run: then an answer is an acknowledgement.
    pub fn is_kafka(&self) -> bool {
        self.kafka_rows > 0 && self.kafka_rows == self.rows()
    }

    /// Rows read: requests sent and requests never sent.
    pub fn rows(&self) -> u64 {
        self.overall.requests + self.overall.not_sent
    }

    fn record(&mut self, row: &Row<'_>, router: &Router, route: &mut String) {
        router.route_into(row.url, route);
        if row.is_kafka() {
            self.kafka_rows += 1;
        }
        self.journeys.record(row, route);
        if row.was_sent() {
            // Sent rows first: the timeline's origin stays the first send's hour, as it always was.
            self.timeline.record(row);
            self.route_series.record(row, route, self.timeline.origin_ms);
        }
        self.timeline.plan(row.scheduled_ms);
        if !row.was_sent() {
            self.overall.not_sent += 1;
            self.route_group(route).not_sent += 1;
            return;
        }
        self.overall.record(row);
        self.route_group(route).record(row);
        if !self.filtered.is_empty() {
            let path = path_of(row.url);
            for (glob, group) in &mut self.filtered {
                if glob.matches_request(path, route) {
                    group.record(row);
                }
            }
        }
        self.first_sent_ms = Some(self.first_sent_ms.map_or(row.sent_ms, |t| t.min(row.sent_ms)));
        self.last_sent_ms = Some(self.last_sent_ms.map_or(row.sent_ms, |t| t.max(row.sent_ms)));
    }

    /// Records the baseline target's answer to a sent row of `route` (recorded just before).
    fn record_b(&mut self, route: &str, sent_ms: i64, latency_us: u64) {
        let b = self
            .b_latency
            .get_or_insert_with(|| BLatency { overall: histogram(SIGNIFICANT_FIGURES), routes: HashMap::new() });
        record(&mut b.overall, latency_us.max(1));
        if self.routes.contains_key(route) {
            if !b.routes.contains_key(route) {
                b.routes.insert(route.to_string(), histogram(SIGNIFICANT_FIGURES));
            }
            record(b.routes.get_mut(route).expect("inserted above"), latency_us.max(1));
        }
        self.route_series.record_b(route, sent_ms, latency_us);
    }

    fn route_group(&mut self, route: &str) -> &mut Tally<u32> {
        if !self.routes.contains_key(route) {
            if self.routes.len() >= ROUTES_TRACKED {
                return &mut self.untracked;
            }
            self.routes.insert(route.to_string(), Tally::default());
        }
        self.routes.get_mut(route).expect("inserted above")
    }

    fn note_bad_row(&mut self, error: RowError) {
        self.bad_row_count += 1;
        if self.bad_rows.len() < BAD_ROW_EXAMPLES {
            self.bad_rows.push(error);
        }
    }

    /// When requests were being sent: each file's span of sends, overlapping spans joined (the
    /// shards of one run overlap; separate runs do not, and the time between them is not counted).
    pub fn activity(&self) -> Activity {
        Activity::of(self.files.iter().filter_map(|f| f.sent_ms).collect(), self.overall.requests)
    }

    /// When requests were planned: each file's span of `scheduled_at`, joined the same way.
    pub fn plan_activity(&self) -> Activity {
        Activity::of(self.files.iter().filter_map(|f| f.plan.span_ms()).collect(), self.rows())
    }

    /// Seconds of sending, counted so that `requests / seconds` is the achieved rate: each span
    /// from its first send to its last, plus one average gap.
    pub fn seconds(&self) -> f64 {
        self.activity().seconds()
    }

    /// The plan's rate, when every file that tells agrees on it (shards of one plan do; separate
    /// runs at different rates do not).
    pub fn inferred_rate(&self) -> Option<f64> {
        let rates: Vec<f64> = self.files.iter().filter_map(|f| f.plan.rate()).collect();
        let first = *rates.first()?;
        rates.iter().all(|r| (r - first).abs() <= first * 0.01).then_some(first)
    }
}

/// Reads every file once, in order, folding each row as it comes.
pub fn fold(files: &[PathBuf], options: &FoldOptions) -> Result<Aggregate, FoldError> {
    let mut agg = Aggregate::new(options);
    let mut route = String::with_capacity(128);
    for path in files {
        let mut reader = RowReader::open(path)?;
        agg.end_to_end_column |= reader.has_end_to_end_column();
        let mut facts = FileFacts::new(reader.name());
        let mut last_bad: Option<RowError> = None;
        while let Some(next) = reader.next_row()? {
            match next {
                Ok(row) => {
                    facts.rows += 1;
                    facts.plan.observe(row.scheduled_ms, row.seq);
                    if !row.was_sent() {
                        agg.record(&row, &options.router, &mut route);
                        continue;
                    }
                    facts.sent_ms = Some(
                        facts
                            .sent_ms
                            .map_or((row.sent_ms, row.sent_ms), |(a, b)| (a.min(row.sent_ms), b.max(row.sent_ms))),
                    );
                    facts.requests += 1;
                    record(&mut facts.lag, row.lag_us.max(0) as u64);
                    let sent_ms = row.sent_ms;
                    agg.record(&row, &options.router, &mut route);
                    if let Some(b_latency_us) = reader.b_latency_us() {
                        agg.record_b(&route, sent_ms, b_latency_us);
                    }
                }
                Err(e) if options.strict => {
                    let last = e.too_few_fields && reader.at_end();
                    return Err(FoldError::Row(with_end_hint(e, last)));
                }
                Err(e) => {
                    if let Some(earlier) = last_bad.replace(e) {
                        agg.note_bad_row(earlier);
                    }
                }
            }
        }
        // Only now is it known whether the last bad row was the file's last row.
        if let Some(e) = last_bad {
            if e.too_few_fields && e.line == reader.last_line() {
                agg.cut_off_rows.push(with_end_hint(e, true));
            } else {
                agg.note_bad_row(e);
            }
        }
        agg.files.push(facts);
        agg.journeys.end_file();
    }
    Ok(agg)
}

fn with_end_hint(mut e: RowError, last: bool) -> RowError {
    if last {
        e.reason += " (the file's last row, cut off: what a killed run leaves)";
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_rate_is_inferred_from_its_two_ends_whatever_the_batch() {
        let mut plan = PlanEnds::default();
        // 300/s, batch 1, rows in completion order; times rounded to the millisecond.
        for seq in [1u64, 0, 2, 899, 898, 450] {
            plan.observe(1_000_000 + (seq as f64 * 1000.0 / 300.0).round() as i64, seq);
        }
        assert_eq!(plan.rate(), Some(300.0));
        // 100/s in batches of 10: ten requests share each slot, 100 ms apart.
        let mut batched = PlanEnds::default();
        for seq in (0..500u64).rev() {
            batched.observe(5_000 + (seq / 10 * 100) as i64, seq);
        }
        assert_eq!(batched.rate(), Some(100.0));
        let mut short = PlanEnds::default();
        short.observe(0, 0);
        short.observe(50, 5);
        assert_eq!(short.rate(), None, "50 ms is too short to tell");
    }

    #[test]
    fn odd_rates_keep_their_decimals() {
        assert_eq!(simplest_within(333.3331, 0.0007), 333.333);
        assert_eq!(simplest_within(12.49, 0.02), 12.5);
        assert_eq!(simplest_within(299.97, 0.2), 300.0);
        assert_eq!(simplest_within(1000.0 / 21.6, 1e-6), 46.296);
    }

    #[test]
    fn intervals_grow_by_steps_that_merge_exactly() {
        let mut ms = 1000;
        let mut seen = vec![];
        for _ in 0..10 {
            let next = next_interval(ms, false);
            assert_eq!(next % ms, 0);
            seen.push(next);
            ms = next;
        }
        assert_eq!(seen[..5], [2_000, 10_000, 20_000, 60_000, 120_000]);
        assert_eq!(next_interval(5_000, true), 10_000);
        assert_eq!(next_interval(5_000, false), 10_000);
        assert_eq!(next_interval(3_000, false), 60_000);
    }
}
