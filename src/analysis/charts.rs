//! Figures only the HTML report draws: the latency distribution as percentile curves (overall and
//! for the worst routes), failures by kind per time slice, and the busiest routes' latency over
//! time. Every value is read from a histogram the fold kept (a percentile of a merged histogram,
//! never a mean of percentiles); renderers only place them.

use hdrhistogram::{Counter, Histogram};

use super::aggregate::{Aggregate, Slice};
use super::assert::{ERROR_KINDS, Stat};
use super::figures::OverTime;
use super::series::RouteSeries;

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

/// One latency distribution: latency at each percentile, as HdrHistogram plots it.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileCurve {
    /// `all requests` or a route.
    pub name: String,
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
    /// Slice starts, ms since the epoch (empty slices while requests were being sent included).
    pub starts_ms: Vec<i64>,
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
    /// Per slice; `None` where the route had no answered request.
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Answered requests per slice.
    pub answered: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Charts {
    /// The whole run first, then the worst routes by p99.
    pub distribution: Vec<PercentileCurve>,
    pub failures: FailureKinds,
    pub route_latency: RouteLatency,
}

pub fn build(agg: &Aggregate, chart_time: &OverTime) -> Charts {
    let mut distribution = vec![percentile_curve("all requests", &agg.overall.latency)];
    distribution.extend(worst_routes(agg).into_iter().map(|(route, h)| percentile_curve(route, h)));
    distribution.retain(|c| !c.points.is_empty());
    Charts {
        distribution,
        failures: failure_kinds(agg, chart_time),
        route_latency: route_latency(agg, &agg.route_series),
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
    PercentileCurve { name: name.to_string(), requests, points }
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

/// The busiest followed routes, p50 and p99 per slice of the route series.
fn route_latency(agg: &Aggregate, series: &RouteSeries) -> RouteLatency {
    let requests = |route: &str| agg.routes.get(route).map_or(0, |t| t.requests);
    let mut busiest: Vec<&String> = series.routes.keys().collect();
    busiest.sort_by(|a, b| requests(b).cmp(&requests(a)).then(a.cmp(b)));
    busiest.truncate(ROUTE_SERIES_SHOWN);
    let keys: Vec<i64> = {
        let present: std::collections::BTreeSet<i64> =
            busiest.iter().flat_map(|r| series.routes[*r].keys().copied()).collect();
        let activity = agg.activity();
        match (present.first(), present.last()) {
            (Some(&first), Some(&last)) => (first..=last)
                .filter(|&k| {
                    present.contains(&k) || activity.covered_ms(series.start_ms(k), series.start_ms(k + 1)) > 0.0
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let routes = busiest
        .into_iter()
        .map(|route| {
            let slices = &series.routes[route];
            let at = |stat: Stat| keys.iter().map(|k| slices.get(k).and_then(|h| stat.of(h))).collect();
            RouteLatencyLine {
                route: route.clone(),
                requests: requests(route),
                p50_ms: at(Stat::P50),
                p99_ms: at(Stat::P99),
                answered: keys.iter().map(|k| slices.get(k).map_or(0, |h| h.len())).collect(),
            }
        })
        .collect();
    RouteLatency {
        interval_seconds: series.interval_ms as f64 / 1e3,
        starts_ms: keys.iter().map(|&k| series.start_ms(k)).collect(),
        routes,
        untracked: series.untracked,
    }
}
