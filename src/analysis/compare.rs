//! Comparisons in `sluice report`: the target against its baseline in one `--compare` run
//! ([`fold_ab`]: the CSV's `b_*` and agreement columns), and a run against an earlier run of the
//! same log (`--baseline old.csv`, [`against_baseline`]).
//!
//! Latency changes are judged with a bootstrap interval, so noise is not called a regression: for
//! each route, up to [`RESERVOIR`] latencies per side are kept (a uniform reservoir sample, so
//! memory stays bounded whatever the run's length), the ratio of a percentile (new ÷ old, or
//! target ÷ baseline) is recomputed on [`BOOTSTRAP_ROUNDS`] resamples, and the middle 95% of those
//! ratios is the interval. p99 is judged only with [`MIN_TAIL_SAMPLES`] answers on each side. In a `--compare` run the two latencies of a row belong together (the
//! same request, sent at the same instant), so rows are resampled as pairs. A route is flagged
//! `slower` (or `faster`) when the whole interval of its p50 or p99 ratio lies beyond
//! ±[`MIN_CHANGE`] and the percentile moved by at least [`MIN_CHANGE_MS`]: a change smaller
//! than either is not called one, however sure (sub-millisecond jitter on a loopback is real but
//! not news). Percentiles shown beside the ratios come from the same sample.
//!
//! Against `--baseline`, the two runs ran at different times, on a machine and network that
//! may have been busier in one: a shift that every route shows belongs to the run. Each route
//! is judged with the median route's p50 ratio (the `common_shift`) taken out, so the routes
//! flagged are those that changed more than the rest; the overall line is judged as it is.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::aggregate::{Aggregate, FoldError, ROUTES_TRACKED};
use super::routes::{RouteGlob, Router, path_of};
use super::rows::{FileError, RowReader};
use crate::results::COMPARE_HEADER;
use crate::stats::Tally;

/// Latencies kept per route and side.
pub const RESERVOIR: usize = 2000;
/// Resamples per interval.
pub const BOOTSTRAP_ROUNDS: usize = 400;
/// Fewer samples than this on a side: no verdict.
pub const MIN_SAMPLES: usize = 20;
/// Fewer samples than this on a side: p99 is shown but not judged. Below it p99 rests on fewer
/// than ten requests, and resampling a sample's extreme tells little about the tail.
pub const MIN_TAIL_SAMPLES: usize = 1000;
/// A percentile ratio within 1 ± this is not a change.
pub const MIN_CHANGE: f64 = 0.10;
/// Nor is a percentile moving by less than this.
pub const MIN_CHANGE_MS: f64 = 1.0;

// ---- sampling and the bootstrap -------------------------------------------------------------------

/// SplitMix64: seeded, so a report is the same every time it is made from the same files.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A uniform sample of at most [`RESERVOIR`] items of a stream (Vitter's algorithm R).
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    items: Vec<T>,
    seen: u64,
    rng: Rng,
}

impl<T> Default for Reservoir<T> {
    fn default() -> Self {
        Reservoir { items: Vec::new(), seen: 0, rng: Rng(0x5eed) }
    }
}

impl<T> Reservoir<T> {
    pub fn push(&mut self, item: T) {
        self.seen += 1;
        if self.items.len() < RESERVOIR {
            self.items.push(item);
        } else {
            let at = (self.rng.next() % self.seen) as usize;
            if at < RESERVOIR {
                self.items[at] = item;
            }
        }
    }

    /// Whether the sample is all there was.
    fn complete(&self) -> bool {
        self.seen as usize == self.items.len()
    }
}

/// The `q` quantile of `values` (reordered), nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    let at = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    *values.select_nth_unstable_by(at, f64::total_cmp).1
}

/// A percentile on both sides, their ratio and its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// The target's (or the new run's) percentile, ms.
    pub new_ms: f64,
    /// The baseline's (or the old run's), ms.
    pub old_ms: f64,
    /// new ÷ old.
    pub ratio: f64,
    /// The 95% interval of the ratio.
    pub low: f64,
    pub high: f64,
}

impl Ratio {
    /// The verdict once `shift` (the change every route shares) is taken out.
    fn change(&self, shift: f64) -> Change {
        let expected = self.old_ms * shift;
        if self.low / shift > 1.0 + MIN_CHANGE && self.new_ms - expected >= MIN_CHANGE_MS {
            Change::Slower
        } else if self.high / shift < 1.0 / (1.0 + MIN_CHANGE) && expected - self.new_ms >= MIN_CHANGE_MS {
            Change::Faster
        } else {
            Change::Unchanged
        }
    }
}

/// The verdict on a route's latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Slower,
    Faster,
    Unchanged,
    /// Fewer than [`MIN_SAMPLES`] answered requests on a side.
    TooFew,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Slower => "slower",
            Change::Faster => "faster",
            Change::Unchanged => "unchanged",
            Change::TooFew => "too few",
        }
    }
}

/// The two percentiles compared and what they say together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyChange {
    pub p50: Option<Ratio>,
    pub p99: Option<Ratio>,
    pub change: Change,
    /// Whether there were enough answers for p99 to be judged ([`MIN_TAIL_SAMPLES`]).
    #[serde(skip)]
    pub tail_known: bool,
}

impl LatencyChange {
    /// `new` and `old` in ms; `paired`: `new[i]` and `old[i]` belong together and are resampled
    /// together.
    fn of(new: &[f64], old: &[f64], paired: bool) -> LatencyChange {
        if new.len() < MIN_SAMPLES || old.len() < MIN_SAMPLES {
            return LatencyChange { p50: None, p99: None, change: Change::TooFew, tail_known: false };
        }
        let mut rng = Rng(0xb007);
        let mut ratios = [Vec::with_capacity(BOOTSTRAP_ROUNDS), Vec::with_capacity(BOOTSTRAP_ROUNDS)];
        let (mut x, mut y) = (Vec::with_capacity(new.len()), Vec::with_capacity(old.len()));
        for _ in 0..BOOTSTRAP_ROUNDS {
            x.clear();
            y.clear();
            if paired {
                for _ in 0..new.len() {
                    let i = rng.below(new.len());
                    x.push(new[i]);
                    y.push(old[i]);
                }
            } else {
                x.extend((0..new.len()).map(|_| new[rng.below(new.len())]));
                y.extend((0..old.len()).map(|_| old[rng.below(old.len())]));
            }
            for (q, out) in [0.5, 0.99].into_iter().zip(&mut ratios) {
                out.push(ratio(quantile(&mut x, q), quantile(&mut y, q)));
            }
        }
        let [p50, p99] = [0.5, 0.99].map(|q| {
            let (new_ms, old_ms) = (quantile(&mut new.to_vec(), q), quantile(&mut old.to_vec(), q));
            (new_ms, old_ms)
        });
        let [r50, r99] = ratios;
        let make = |(new_ms, old_ms): (f64, f64), mut rs: Vec<f64>| Ratio {
            new_ms,
            old_ms,
            ratio: ratio(new_ms, old_ms),
            low: quantile(&mut rs, 0.025),
            high: quantile(&mut rs, 0.975),
        };
        let tail_known = new.len().min(old.len()) >= MIN_TAIL_SAMPLES;
        LatencyChange { p50: Some(make(p50, r50)), p99: Some(make(p99, r99)), change: Change::TooFew, tail_known }
            .judged(1.0)
    }

    /// Judged again with `shift` taken out.
    fn judged(self, shift: f64) -> LatencyChange {
        let (Some(p50), Some(p99)) = (self.p50, self.p99) else { return self };
        let p99_change = if self.tail_known { p99.change(shift) } else { Change::Unchanged };
        let change = match (p50.change(shift), p99_change) {
            (Change::Slower, _) | (_, Change::Slower) => Change::Slower,
            (Change::Faster, _) | (_, Change::Faster) => Change::Faster,
            _ => Change::Unchanged,
        };
        LatencyChange { change, ..self }
    }
}

/// `new ÷ old`, with a zero baseline counted as a microsecond (the CSV's resolution).
fn ratio(new: f64, old: f64) -> f64 {
    new / old.max(0.001)
}

// ---- A/B: one --compare run -----------------------------------------------------------------------

/// A request (its seq and URL) that shows a difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub seq: u64,
    pub url: String,
    /// What each side answered (a status, or an error kind).
    pub target: String,
    pub baseline: String,
}

/// The comparison of one group of rows (the whole run, a route, or a `route:` filter).
#[derive(Debug, Clone, Default)]
pub struct AbGroup {
    /// Rows with a comparison (requests that left and were not cut off).
    pub compared: u64,
    /// Rows whose statuses differ, noise aside.
    pub status_mismatches: u64,
    /// Rows where both sides answered.
    pub bodies_compared: u64,
    /// Of those, whose bodies differ, noise aside.
    pub body_mismatches: u64,
    /// Rows with a difference that also showed between the two baselines (not counted above).
    pub noise: u64,
    /// Rows whose bodies were over --compare-body-limit (compared raw).
    pub too_large: u64,
    pub status_example: Option<Example>,
    pub body_example: Option<Example>,
    /// (target, baseline) latencies in ms of rows where both answered.
    pub latencies: Reservoir<(f64, f64)>,
}

impl AbGroup {
    fn record(&mut self, row: &AbRow<'_>) {
        self.compared += 1;
        self.too_large += u64::from(row.too_large);
        let (status_noise, body_noise) = (row.noise.contains("status"), row.noise.contains("body"));
        self.noise += u64::from(status_noise || body_noise);
        if !row.same_status && !status_noise {
            self.status_mismatches += 1;
            self.status_example.get_or_insert_with(|| row.example());
        }
        if row.same_body == Some(false) && !body_noise {
            self.body_mismatches += 1;
            self.body_example.get_or_insert_with(|| row.example());
        }
        if row.same_body.is_some() {
            self.bodies_compared += 1;
        }
        if let Some(pair) = row.latencies {
            self.latencies.push(pair);
        }
    }

    pub fn status_mismatch_rate(&self) -> f64 {
        share(self.status_mismatches, self.compared)
    }

    pub fn body_mismatch_rate(&self) -> f64 {
        share(self.body_mismatches, self.bodies_compared)
    }

    pub fn latency_change(&self) -> LatencyChange {
        let (a, b): (Vec<f64>, Vec<f64>) = self.latencies.items.iter().copied().unzip();
        LatencyChange::of(&a, &b, true)
    }

    /// The target's statistic ÷ the baseline's, over the sampled pairs.
    pub fn latency_ratio(&self, stat: super::assert::Stat) -> Option<f64> {
        if self.latencies.items.is_empty() {
            return None;
        }
        let (mut a, mut b): (Vec<f64>, Vec<f64>) = self.latencies.items.iter().copied().unzip();
        let of = |v: &mut Vec<f64>| {
            use super::assert::Stat::*;
            match stat {
                P50 => quantile(v, 0.5),
                P90 => quantile(v, 0.9),
                P95 => quantile(v, 0.95),
                P99 => quantile(v, 0.99),
                P999 => quantile(v, 0.999),
                Max => v.iter().copied().fold(0.0, f64::max),
                Mean => v.iter().sum::<f64>() / v.len() as f64,
            }
        };
        Some(ratio(of(&mut a), of(&mut b)))
    }
}

fn share(k: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { k as f64 / n as f64 }
}

/// Every row of a `--compare` run, folded.
#[derive(Debug, Clone, Default)]
pub struct AbFold {
    pub overall: AbGroup,
    pub routes: HashMap<String, AbGroup>,
    pub untracked: AbGroup,
    pub filtered: Vec<(RouteGlob, AbGroup)>,
}

/// One row's comparison columns, as read.
struct AbRow<'a> {
    seq: u64,
    url: &'a str,
    target: &'a str,
    baseline: &'a str,
    same_status: bool,
    same_body: Option<bool>,
    /// The `noise` cell: which differences were noise.
    noise: &'a str,
    too_large: bool,
    latencies: Option<(f64, f64)>,
}

impl AbRow<'_> {
    fn example(&self) -> Example {
        Example {
            seq: self.seq,
            url: self.url.to_string(),
            target: self.target.to_string(),
            baseline: self.baseline.to_string(),
        }
    }
}

/// Folds the comparison columns of `files`; `None` when a file has none (not a `--compare` run).
/// Rows the main fold cannot read are skipped here too (it reports them).
pub fn fold_ab(files: &[PathBuf], router: &Router, filters: &[RouteGlob]) -> Result<Option<AbFold>, FoldError> {
    let mut fold =
        AbFold { filtered: filters.iter().map(|g| (g.clone(), AbGroup::default())).collect(), ..AbFold::default() };
    let mut route = String::new();
    for path in files {
        let name = path.display().to_string();
        if path.as_os_str() == "-" {
            // Standard input was read by the main fold already.
            return Ok(None);
        }
        let file_error = |reason: String| FoldError::File(FileError { file: name.clone(), reason });
        let mut reader =
            csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| file_error(e.to_string()))?;
        let header = reader.headers().map_err(|e| file_error(e.to_string()))?.clone();
        let column = |name: &str| header.iter().position(|h| h.trim() == name);
        let Some(at) = ["seq", "url", "status", "error", "latency_ms"]
            .iter()
            .chain(&COMPARE_HEADER)
            .map(|n| column(n))
            .collect::<Option<Vec<usize>>>()
        else {
            return Ok(None);
        };
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(|e| file_error(e.to_string()))? {
            let get = |i: usize| record.get(at[i]).unwrap_or("");
            // seq url status error latency_ms | b_status b_latency_ms b_bytes b_error a_digest
            // b_digest body_compared_as same_status same_body noise
            let same_status = match get(12) {
                "true" => true,
                "false" => false,
                _ => continue, // never sent, or cut off: nothing compared
            };
            let answer =
                |status: &str, error: &str| if status.is_empty() { error.to_string() } else { status.to_string() };
            let (target, baseline) = (answer(get(2), get(3)), answer(get(5), get(8)));
            let latencies = match (get(2).is_empty(), get(5).is_empty()) {
                (false, false) => get(4).parse().ok().zip(get(6).parse().ok()),
                _ => None,
            };
            let url = super::rows::unneutralised(get(1));
            let row = AbRow {
                seq: get(0).parse().unwrap_or(0),
                url,
                target: &target,
                baseline: &baseline,
                same_status,
                same_body: match get(13) {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
                noise: get(14),
                too_large: get(11) == "too_large",
                latencies,
            };
            router.route_into(url, &mut route);
            fold.overall.record(&row);
            let group = if fold.routes.contains_key(route.as_str()) || fold.routes.len() < ROUTES_TRACKED {
                fold.routes.entry(route.clone()).or_default()
            } else {
                &mut fold.untracked
            };
            group.record(&row);
            for (glob, group) in &mut fold.filtered {
                if glob.matches_request(path_of(url), &route) {
                    group.record(&row);
                }
            }
        }
    }
    Ok(Some(fold))
}

/// One line of the A/B table.
#[derive(Debug, Clone, Serialize)]
pub struct AbLine {
    pub route: String,
    pub compared: u64,
    pub status_mismatches: u64,
    pub status_mismatch_rate: f64,
    pub bodies_compared: u64,
    pub body_mismatches: u64,
    pub body_mismatch_rate: f64,
    pub noise: u64,
    pub too_large: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_example: Option<Example>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_example: Option<Example>,
    pub latency: LatencyChange,
    /// Whether the latencies are a sample of the rows (more than [`RESERVOIR`] answered).
    pub sampled: bool,
}

impl AbLine {
    fn of(route: &str, g: &AbGroup) -> AbLine {
        AbLine {
            route: route.to_string(),
            compared: g.compared,
            status_mismatches: g.status_mismatches,
            status_mismatch_rate: g.status_mismatch_rate(),
            bodies_compared: g.bodies_compared,
            body_mismatches: g.body_mismatches,
            body_mismatch_rate: g.body_mismatch_rate(),
            noise: g.noise,
            too_large: g.too_large,
            status_example: g.status_example.clone(),
            body_example: g.body_example.clone(),
            latency: g.latency_change(),
            sampled: !g.latencies.complete(),
        }
    }

    /// Whether this line shows anything to look at.
    pub fn differs(&self) -> bool {
        self.status_mismatches > 0 || self.body_mismatches > 0 || self.latency.change == Change::Slower
    }
}

/// The A/B section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct AbView {
    pub overall: AbLine,
    /// Routes with the most differences first, at most `max_routes`.
    pub routes: Vec<AbLine>,
    /// Routes not listed.
    pub other_routes: usize,
}

impl AbFold {
    pub fn view(&self, max_routes: usize) -> AbView {
        let mut routes: Vec<AbLine> = self.routes.iter().map(|(r, g)| AbLine::of(r, g)).collect();
        routes.sort_by(|x, y| {
            let key = |l: &AbLine| (l.status_mismatches + l.body_mismatches, l.latency.change == Change::Slower);
            key(y).cmp(&key(x)).then_with(|| y.compared.cmp(&x.compared)).then_with(|| x.route.cmp(&y.route))
        });
        let other_routes = routes.len().saturating_sub(max_routes);
        routes.truncate(max_routes);
        AbView { overall: AbLine::of("all", &self.overall), routes, other_routes }
    }
}

// ---- a run against its baseline -------------------------------------------------------------------

/// Answered latencies (ms) per route, sampled.
#[derive(Debug, Clone, Default)]
pub struct LatencySamples {
    pub overall: Reservoir<f64>,
    pub routes: HashMap<String, Reservoir<f64>>,
}

/// Reads the answered latencies of `files`, per route (rows that cannot be read are the main
/// fold's to report).
pub fn latency_samples(files: &[PathBuf], router: &Router) -> Result<LatencySamples, FoldError> {
    let mut samples = LatencySamples::default();
    let mut route = String::new();
    for path in files {
        let mut reader = RowReader::open(path)?;
        while let Some(next) = reader.next_row()? {
            let Ok(row) = next else { continue };
            if !row.has_latency() {
                continue;
            }
            let ms = row.latency_us as f64 / 1e3;
            samples.overall.push(ms);
            router.route_into(row.url, &mut route);
            if samples.routes.len() < ROUTES_TRACKED || samples.routes.contains_key(route.as_str()) {
                samples.routes.entry(route.clone()).or_default().push(ms);
            }
        }
    }
    Ok(samples)
}

/// One route in both runs.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineLine {
    pub route: String,
    pub requests: u64,
    pub baseline_requests: u64,
    pub error_rate: f64,
    pub baseline_error_rate: f64,
    pub latency: LatencyChange,
    pub sampled: bool,
}

/// `--baseline`: the new run's routes beside the old run's.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineView {
    pub files: Vec<String>,
    pub overall: BaselineLine,
    /// Changed routes first, then the busiest; at most `max_routes`.
    pub routes: Vec<BaselineLine>,
    /// Routes of either run not listed.
    pub other_routes: usize,
    /// Routes flagged slower or faster.
    pub changed_routes: Vec<String>,
    /// The p50 ratio most routes share (the median route's), taken out before routes are judged;
    /// 1 with fewer than three routes to tell it from.
    pub common_shift: f64,
}

fn baseline_line<C: hdrhistogram::Counter>(
    route: &str,
    new: Option<&Tally<C>>,
    old: Option<&Tally<C>>,
    new_samples: Option<&Reservoir<f64>>,
    old_samples: Option<&Reservoir<f64>>,
) -> BaselineLine {
    let rate = |t: Option<&Tally<C>>| t.map_or(0.0, |t| share(t.failed(), t.requests));
    fn items(s: Option<&Reservoir<f64>>) -> &[f64] {
        s.map_or(&[], |s| &s.items)
    }
    BaselineLine {
        route: route.to_string(),
        requests: new.map_or(0, |t| t.requests),
        baseline_requests: old.map_or(0, |t| t.requests),
        error_rate: rate(new),
        baseline_error_rate: rate(old),
        latency: LatencyChange::of(items(new_samples), items(old_samples), false),
        sampled: [new_samples, old_samples].iter().any(|s| s.is_some_and(|s| !s.complete())),
    }
}

/// The new run (`new`, `new_samples`) against the old.
pub fn against_baseline(
    files: Vec<String>,
    new: &Aggregate,
    old: &Aggregate,
    new_samples: &LatencySamples,
    old_samples: &LatencySamples,
    max_routes: usize,
) -> BaselineView {
    let mut names: Vec<&String> = new.routes.keys().chain(old.routes.keys()).collect();
    names.sort();
    names.dedup();
    let mut routes: Vec<BaselineLine> = names
        .into_iter()
        .map(|r| {
            baseline_line(r, new.routes.get(r), old.routes.get(r), new_samples.routes.get(r), old_samples.routes.get(r))
        })
        .collect();
    // Two runs at different times see different machines and networks: a shift every route
    // shows is the run's, not a route's. Routes are judged with the median route's shift taken
    // out; the overall line is judged as it is.
    let mut shifts: Vec<f64> = routes.iter().filter_map(|l| l.latency.p50.map(|r| r.ratio)).collect();
    let common_shift = if shifts.len() >= 3 { quantile(&mut shifts, 0.5) } else { 1.0 };
    for line in &mut routes {
        line.latency = line.latency.judged(common_shift);
    }
    let changed_routes: Vec<String> = routes
        .iter()
        .filter(|l| matches!(l.latency.change, Change::Slower | Change::Faster))
        .map(|l| l.route.clone())
        .collect();
    routes.sort_by(|x, y| {
        let changed = |l: &BaselineLine| matches!(l.latency.change, Change::Slower | Change::Faster);
        changed(y).cmp(&changed(x)).then_with(|| y.requests.cmp(&x.requests)).then_with(|| x.route.cmp(&y.route))
    });
    let other_routes = routes.len().saturating_sub(max_routes);
    routes.truncate(max_routes);
    BaselineView {
        files,
        overall: baseline_line(
            "all",
            Some(&new.overall),
            Some(&old.overall),
            Some(&new_samples.overall),
            Some(&old_samples.overall),
        ),
        routes,
        other_routes,
        changed_routes,
        common_shift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(center: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        (0..n).map(|_| center * (0.8 + 0.4 * (rng.next() % 1000) as f64 / 1000.0)).collect()
    }

    #[test]
    fn the_same_distribution_is_unchanged_and_a_shift_is_flagged_both_ways() {
        let old = spread(5.0, 500, 1);
        assert_eq!(LatencyChange::of(&spread(5.0, 500, 2), &old, false).change, Change::Unchanged);
        let slower = LatencyChange::of(&spread(25.0, 500, 3), &old, false);
        assert_eq!(slower.change, Change::Slower);
        let p50 = slower.p50.unwrap();
        assert!(p50.low > 4.0 && p50.high < 6.0 && p50.low <= p50.ratio && p50.ratio <= p50.high, "{p50:?}");
        assert_eq!(LatencyChange::of(&old, &spread(25.0, 500, 3), false).change, Change::Faster);
        assert_eq!(LatencyChange::of(&old[..10], &old, false).change, Change::TooFew);
    }

    #[test]
    fn a_large_relative_change_of_a_few_microseconds_is_not_called_one() {
        let old = spread(0.05, 500, 1);
        let new = spread(0.10, 500, 2);
        assert_eq!(LatencyChange::of(&new, &old, false).change, Change::Unchanged);
    }

    #[test]
    fn a_reservoir_keeps_a_bounded_uniform_sample() {
        let mut r = Reservoir::default();
        for i in 0..100_000u32 {
            r.push(f64::from(i));
        }
        assert_eq!(r.items.len(), RESERVOIR);
        assert!(!r.complete());
        let mean = r.items.iter().sum::<f64>() / RESERVOIR as f64;
        assert!((mean - 50_000.0).abs() < 3_000.0, "{mean}");
    }
}
