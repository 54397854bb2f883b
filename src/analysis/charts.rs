//! Figures only the HTML report draws: the latency distribution as percentile curves (overall and
//! for the worst routes), failures by kind per time slice, and the busiest routes' latency over
//! time. Every value is read from a histogram a fold kept (a percentile of a merged histogram,
//! never a mean of percentiles); renderers only place them.
//!
//! Beside the run's own curves and lines come a reference's, when there is one ([`Reference`]):
//! the `--baseline` run's (its own fold), or else, in a `--compare` run, the baseline target's
//! (B's latencies, folded with A's in the same pass).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hdrhistogram::{Counter, Histogram};

use super::aggregate::{Activity, Aggregate, Slice};
use super::assert::{ERROR_KINDS, Stat};
use super::figures::OverTime;
use super::series::{RouteSeries, Slices, merged};

/// Routes drawn beside the whole run in the latency distribution: the worst by p99.
pub const WORST_ROUTE_CURVES: usize = 4;
/// A route needs this many answered requests to get a curve: a handful of requests has no tail
/// to draw, and would crowd out the routes that do.
pub const MIN_CURVE_REQUESTS: u64 = 20;
/// Routes with latency-over-time charts: the busiest followed ones.
pub const ROUTE_SERIES_SHOWN: usize = 6;
/// How far the distribution goes: 99.999% (five nines, `1/(1-p)` = 10^5).
const DECADES: f64 = 5.0;
/// Points per decade of `1/(1-p)` (50%, 90%, 99%, … are among them).
const POINTS_PER_DECADE: u32 = 20;

/// What the curves and lines drawn beside the run's own are of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The baseline target of a `--compare` run (B), over the same requests.
    BTarget,
    /// The run given with `--baseline`: its CSVs, as named.
    BaselineRun(Vec<String>),
}

/// One latency distribution: latency at each percentile, as HdrHistogram plots it.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileCurve {
    /// `all requests` or a route.
    pub name: String,
    /// The [`Reference`]'s curve of `name` (it follows the run's own), not the run's own.
    pub reference: bool,
    /// Answered requests it was measured over.
    pub requests: u64,
    /// In order of quantile, from 0 (the fastest) to at most 0.99999, and no further than the
    /// requests can tell (`1 - 1/requests`).
    pub points: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// 0 to 1.
    pub quantile: f64,
    /// The histogram's value at that quantile, ms.
    pub ms: f64,
}

/// Failed requests per time slice of the charts: no answer, by kind, and 5xx.
#[derive(Debug, Clone, Default)]
pub struct FailureKinds {
    /// The kinds present in the run, in [`ERROR_KINDS`] order, then `5xx`, each with its count
    /// per slice (slices as in the report's `chart_time`).
    pub layers: Vec<(&'static str, Vec<u64>)>,
}

/// The p50 and p99 of routes, slice by slice.
#[derive(Debug, Clone, Default)]
pub struct RouteLatency {
    pub interval_seconds: f64,
    /// Slice starts: ms since the epoch (empty slices while requests were being sent included);
    /// with `since_start`, ms since each run's start.
    pub starts_ms: Vec<i64>,
    /// Beside a `--baseline` run: the slices are counted from each run's first slice (the one its
    /// first send fell in), so the two runs line up however far apart they ran.
    pub since_start: bool,
    /// Busiest first.
    pub routes: Vec<RouteLatencyLine>,
    /// Whether routes were seen past the ones followed (they have no chart).
    pub untracked: bool,
}

#[derive(Debug, Clone)]
pub struct RouteLatencyLine {
    pub route: String,
    /// Requests of the route (answered or not).
    pub requests: u64,
    pub latency: SliceLatency,
    /// The [`Reference`]'s, in the same slices; `None` when it has no answer on this route.
    pub reference: Option<SliceLatency>,
}

/// One route's latency per slice.
#[derive(Debug, Clone, Default)]
pub struct SliceLatency {
    /// `None` where the route had no answered request.
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Answered requests per slice.
    pub answered: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Charts {
    /// The whole run first, then the worst routes by p99; each followed by the reference's
    /// curve of the same name, when there is one.
    pub distribution: Vec<PercentileCurve>,
    pub failures: FailureKinds,
    pub route_latency: RouteLatency,
    pub reference: Option<Reference>,
}

/// One side's latency histograms, wherever they were folded: a run's own, or the B target's of a
/// `--compare` run (kept beside A's in the same fold).
struct Side<'a> {
    overall: &'a Histogram<u64>,
    routes: HashMap<&'a str, &'a Histogram<u32>>,
    /// Route → slice of `series` → latency.
    slices: &'a HashMap<String, Slices>,
    series: &'a RouteSeries,
    activity: Activity,
    first_sent_ms: Option<i64>,
}

impl<'a> Side<'a> {
    fn run(agg: &'a Aggregate) -> Side<'a> {
        Side {
            overall: &agg.overall.latency,
            routes: agg.routes.iter().map(|(route, t)| (route.as_str(), &t.latency)).collect(),
            slices: &agg.route_series.routes,
            series: &agg.route_series,
            activity: agg.activity(),
            first_sent_ms: agg.first_sent_ms,
        }
    }

    fn b_target(agg: &'a Aggregate) -> Option<Side<'a>> {
        let b = agg.b_latency.as_ref()?;
        Some(Side {
            overall: &b.overall,
            routes: b.routes.iter().map(|(route, h)| (route.as_str(), h)).collect(),
            slices: &agg.route_series.b_routes,
            ..Side::run(agg)
        })
    }

    /// When the slice of its first send starts, ms since the epoch.
    fn first_slice_ms(&self) -> i64 {
        self.first_sent_ms.map_or(self.series.origin_ms, |ms| self.series.start_ms(self.series.key_of(ms)))
    }
}

/// The charts of `agg`, with `baseline`'s curves and lines beside its own (a `--baseline` run),
/// or else B's of a `--compare` run.
pub fn build(agg: &Aggregate, chart_time: &OverTime, baseline: Option<&Aggregate>) -> Charts {
    let own = Side::run(agg);
    let (reference, other) = match baseline {
        Some(old) => {
            (Some(Reference::BaselineRun(old.files.iter().map(|f| f.name.clone()).collect())), Some(Side::run(old)))
        }
        None => match Side::b_target(agg) {
            Some(b) => (Some(Reference::BTarget), Some(b)),
            None => (None, None),
        },
    };
    let mut distribution = vec![percentile_curve("all requests", own.overall)];
    distribution.extend(other.as_ref().map(|o| reference_curve("all requests", o.overall)));
    for (route, h) in worst_routes(agg) {
        distribution.push(percentile_curve(route, h));
        distribution.extend(other.as_ref().and_then(|o| o.routes.get(route)).map(|h| reference_curve(route, h)));
    }
    distribution.retain(|c| !c.points.is_empty());
    Charts {
        distribution,
        failures: failure_kinds(agg, chart_time),
        route_latency: route_latency(agg, &own, other.as_ref(), baseline.is_some()),
        reference,
    }
}

/// The quantiles a curve is drawn through: evenly spaced on a `1/(1-q)` log axis up to where
/// the requests end (past `1 - 1/n` every quantile is the slowest request: the curve would only
/// run flat), that end itself, and the median.
fn quantiles(requests: u64) -> Vec<f64> {
    let reach = (requests.max(1) as f64).log10().min(DECADES);
    let steps = (reach * f64::from(POINTS_PER_DECADE)).floor() as u32;
    let mut qs: Vec<f64> =
        (0..=steps).map(|i| 1.0 - 10f64.powf(-f64::from(i) / f64::from(POINTS_PER_DECADE))).collect();
    let end = 1.0 - 10f64.powf(-reach);
    if qs.last().is_some_and(|q| *q < end - 1e-12) {
        qs.push(end);
    }
    if end >= 0.5 && !qs.contains(&0.5) {
        qs.push(0.5);
    }
    qs.sort_by(f64::total_cmp);
    qs
}

/// Latency at each quantile of `h` (µs), in ms; no points when it is empty.
pub fn percentile_curve<C: Counter>(name: &str, h: &Histogram<C>) -> PercentileCurve {
    let requests = h.len();
    let points = if requests == 0 {
        Vec::new()
    } else {
        quantiles(requests)
            .into_iter()
            .map(|quantile| CurvePoint { quantile, ms: h.value_at_quantile(quantile) as f64 / 1e3 })
            .collect()
    };
    PercentileCurve { name: name.to_string(), reference: false, requests, points }
}

fn reference_curve<C: Counter>(name: &str, h: &Histogram<C>) -> PercentileCurve {
    PercentileCurve { reference: true, ..percentile_curve(name, h) }
}

/// The routes with the slowest p99 among those with enough answered requests.
fn worst_routes(agg: &Aggregate) -> Vec<(&str, &Histogram<u32>)> {
    // With one route, its curve is the whole run's.
    if agg.routes.len() < 2 {
        return Vec::new();
    }
    let mut routes: Vec<(&str, &Histogram<u32>, f64)> = agg
        .routes
        .iter()
        .filter(|(_, t)| t.latency.len() >= MIN_CURVE_REQUESTS)
        .map(|(name, t)| (name.as_str(), &t.latency, Stat::P99.of(&t.latency).unwrap_or(0.0)))
        .collect();
    routes.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
    routes.into_iter().take(WORST_ROUTE_CURVES).map(|(name, h, _)| (name, h)).collect()
}

/// Failed requests in each slice the charts draw, by kind. The chart slices are the fold's own
/// (`chart_time` has one point per slice, empty ones included).
fn failure_kinds(agg: &Aggregate, chart_time: &OverTime) -> FailureKinds {
    let t = &agg.timeline;
    let slices: Vec<Option<&Slice>> =
        chart_time.points.iter().map(|p| t.slices.get(&(p.unix_ms - t.origin_ms).div_euclid(t.interval_ms))).collect();
    let per_slice = |count: &dyn Fn(&Slice) -> u64| slices.iter().map(|s| s.map_or(0, count)).collect::<Vec<u64>>();
    let mut layers: Vec<(&'static str, Vec<u64>)> =
        ERROR_KINDS.iter().enumerate().map(|(i, kind)| (*kind, per_slice(&|s| s.error_kinds[i]))).collect();
    layers.push(("5xx", per_slice(&|s| s.classes[4])));
    layers.retain(|(_, counts)| counts.iter().any(|n| *n > 0));
    FailureKinds { layers }
}

/// The busiest followed routes, p50 and p99 per slice of the route series, and the same of the
/// `other` side. Beside another run (`since_start`), each side's slices are placed by their time
/// since its first slice, in slots as long as the longer slices of the two (both series lengthen
/// by the same ladder, so one length is a multiple of the other); otherwise by the clock.
fn route_latency(agg: &Aggregate, own: &Side<'_>, other: Option<&Side<'_>>, since_start: bool) -> RouteLatency {
    let requests = |route: &str| agg.routes.get(route).map_or(0, |t| t.requests);
    let mut busiest: Vec<&String> = own.slices.keys().collect();
    busiest.sort_by(|a, b| requests(b).cmp(&requests(a)).then(a.cmp(b)));
    busiest.truncate(ROUTE_SERIES_SHOWN);
    let sides: Vec<&Side<'_>> = std::iter::once(own).chain(other).collect();
    let interval_ms = sides.iter().map(|s| s.series.interval_ms).max().unwrap_or(1000).max(1);
    // Where each side's slot 0 starts, ms since the epoch.
    let base = |side: &Side<'_>| if since_start { side.first_slice_ms() } else { side.series.origin_ms };
    let place = |side: &Side<'_>, route: &str| -> Slices {
        let Some(slices) = side.slices.get(route) else { return BTreeMap::new() };
        let base = base(side);
        merged(slices.clone(), |key| (side.series.start_ms(key) - base).div_euclid(interval_ms))
    };
    let placed: Vec<(&String, Vec<Slices>)> =
        busiest.into_iter().map(|route| (route, sides.iter().map(|side| place(side, route)).collect())).collect();
    let keys: Vec<i64> = {
        let present: BTreeSet<i64> =
            placed.iter().flat_map(|(_, per_side)| per_side.iter().flat_map(|slots| slots.keys().copied())).collect();
        let sending = |k: i64| {
            sides.iter().any(|side| {
                let from = base(side) + k * interval_ms;
                side.activity.covered_ms(from, from + interval_ms) > 0.0
            })
        };
        match (present.first(), present.last()) {
            (Some(&first), Some(&last)) => (first..=last).filter(|&k| present.contains(&k) || sending(k)).collect(),
            _ => Vec::new(),
        }
    };
    let routes = placed
        .into_iter()
        .map(|(route, per_side)| {
            let mut per_side = per_side.iter().map(|slots| SliceLatency::of(slots, &keys));
            RouteLatencyLine {
                route: route.clone(),
                requests: requests(route),
                latency: per_side.next().unwrap_or_default(),
                reference: per_side.next().filter(|l| l.answered.iter().any(|n| *n > 0)),
            }
        })
        .collect();
    RouteLatency {
        interval_seconds: interval_ms as f64 / 1e3,
        starts_ms: keys
            .iter()
            .map(|&k| if since_start { k * interval_ms } else { base(own) + k * interval_ms })
            .collect(),
        since_start,
        routes,
        untracked: own.series.untracked,
    }
}

impl SliceLatency {
    /// The latency of `slots` at each of `keys`.
    fn of(slots: &Slices, keys: &[i64]) -> SliceLatency {
        let at = |stat: Stat| keys.iter().map(|k| slots.get(k).and_then(|h| stat.of(h))).collect();
        SliceLatency {
            p50_ms: at(Stat::P50),
            p99_ms: at(Stat::P99),
            answered: keys.iter().map(|k| slots.get(k).map_or(0, |h| h.len())).collect(),
        }
    }
}
