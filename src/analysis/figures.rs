//! The report's figures, computed from the folded groups and nothing else: every percentile comes
//! from a histogram (merged, for `other` and for coarser time slices), every rate from counts over
//! the span of sends. Renderers only format these.

use std::collections::BTreeMap;

use chrono::DateTime;
use hdrhistogram::Counter;
use serde::Serialize;

use super::aggregate::{Activity, Aggregate, Slice, Timeline};
use super::assert::{Stat, Verdict};
use super::journeys::JourneyView;
use super::plan::{self, Target};
use super::shards::ShardView;
use crate::display::spreadsheet_time;
use crate::stats::{
    CLASSES, LagSummary, NO_STATUS, ORIG_CLASS_NAMES, Percentiles, REPLAYED_CLASS_NAMES, Tally, class_of, counts,
};

/// Where the target rate comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetRate {
    /// From the CSV's plan (`scheduled_at` against `seq`).
    Infer,
    /// Given (`--target-rate N`, or the replay's own `--rate`).
    Given(f64),
    /// No target (`--rate max`, `--target-rate max`).
    None,
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Routes listed one by one; the rest are merged into `other`.
    pub max_routes: usize,
    pub target: TargetRate,
    /// Rows of the over-time table when the interval was not chosen.
    pub max_table_slices: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { max_routes: 20, target: TargetRate::Infer, max_table_slices: 60 }
    }
}

/// Mismatched routes listed.
const MISMATCH_ROUTES: usize = 10;
/// Transitions listed per mismatched route.
const TRANSITIONS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    /// What each run was: from the manifest beside its CSV, or what the CSV tells.
    pub runs: Vec<super::metadata::RunInfo>,
    pub rows: u64,
    /// Rows that could not be used (cut-off last rows included).
    pub skipped_rows: u64,
    /// Skipped rows other than a cut-off last row: damaged input.
    pub unreadable_rows: u64,
    /// Messages about skipped rows (the first few).
    pub problems: Vec<String>,
    pub overview: Overview,
    pub routes: RouteTable,
    pub status_matrix: StatusMatrix,
    /// Routes whose replayed status class differs most from the logged one.
    pub mismatched_routes: Vec<MismatchLine>,
    pub over_time: OverTime,
    /// Client sessions, when the rows have them (a `--sessions` run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journeys: Option<JourneyView>,
    /// End to end, when the files have an `e2e_ms` column (a Kafka run with `--consume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end: Option<EndToEndView>,
    /// The shards of a run, one by one, when the files are shards (`--shard I/K`) with manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardView>,
    /// Target against baseline, for a `--compare` run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<super::compare::AbView>,
    /// This run against an earlier one (`--baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<super::compare::BaselineView>,
    /// The finer series the charts draw.
    #[serde(skip)]
    pub chart_time: OverTime,
    /// Figures only the HTML report draws.
    #[serde(skip)]
    pub charts: super::charts::Charts,
    pub assertions: Vec<Verdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Requests that left (answered or not).
    pub requests: u64,
    /// Requests whose planned time came but that never left (scheduling stopped first).
    pub not_sent: u64,
    /// Requests that got a status.
    pub responses: u64,
    /// Requests that got no answer (timeouts, resets, …).
    pub errors: u64,
    /// No answer, or a 5xx.
    pub failed: u64,
    /// `failed / requests`.
    pub error_rate: f64,
    pub statuses: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    pub latency_from_schedule_ms: Percentiles,
    pub lag: LagSummary,
    pub bytes_received: u64,
    /// The one target rate; for a plan that does not keep one rate (`planned`), its mean.
    pub target_rate: Option<f64>,
    /// `given`, `inferred` (a steady plan read from `scheduled_at`), `planned` (a plan whose rate
    /// varies: the target is per time slice, see `over_time`), `none` (no target), or `unknown`
    /// (could not be inferred).
    pub target_rate_source: &'static str,
    pub achieved_rate: f64,
    /// Spent sending: from the first send to the last (of each run, when files are separate
    /// runs), plus one average gap.
    pub seconds: f64,
    pub first_sent: Option<String>,
    pub last_sent: Option<String>,
    pub with_orig_status: u64,
    pub mismatches: u64,
    pub mismatch_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteTable {
    /// Sorted by failed requests, then status mismatches, then p99, then requests.
    pub shown: Vec<RouteLine>,
    /// Every route not shown, merged.
    pub other: Option<RouteLine>,
    /// How many routes `other` holds (at least, when `capped`).
    pub other_routes: usize,
    pub total_routes: usize,
    /// More distinct routes than are followed one by one: the later ones are only in `other`.
    pub capped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteLine {
    pub route: String,
    pub requests: u64,
    pub rate: f64,
    /// By replayed class (`2xx` … `5xx`, `error`); classes with no request are left out.
    pub classes: BTreeMap<String, u64>,
    pub statuses: BTreeMap<String, u64>,
    pub failed: u64,
    pub error_rate: f64,
    pub with_orig_status: u64,
    pub mismatches: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusMatrix {
    /// Row labels: logged status classes present (`none`: no logged status).
    pub logged: Vec<&'static str>,
    /// Column labels: replayed classes present (`error`: no answer).
    pub replayed: Vec<&'static str>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<u64>>,
    /// Per row, requests whose replayed class does not agree with the logged status (a logged
    /// 304 agrees with a replayed 2xx); `None` for the row without a logged status.
    pub differs: Vec<Option<u64>>,
    pub with_orig_status: u64,
    pub mismatches: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MismatchLine {
    pub route: String,
    pub mismatches: u64,
    pub with_orig_status: u64,
    pub share: f64,
    /// The most frequent (logged → replayed) pairs, most frequent first.
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub logged: u16,
    /// A status, or `error` for no answer.
    pub replayed: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverTime {
    pub interval_seconds: f64,
    pub points: Vec<TimePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimePoint {
    /// The slice's start, UTC.
    pub start: String,
    pub unix_ms: i64,
    pub sent: u64,
    /// Sent per second over the part of the slice the run covered.
    pub rate: f64,
    /// Rows whose `scheduled_at` falls in the slice (sent or not), when the target is the plan
    /// slice by slice (`target_rate_source` `planned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<u64>,
    /// `planned` per second over the part of the slice the plan covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_rate: Option<f64>,
    /// By replayed class; classes with no request are left out.
    pub classes: BTreeMap<String, u64>,
    /// No answer.
    pub errors: u64,
    /// No answer, or a 5xx.
    pub failed: u64,
    pub mismatches: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub lag_max_ms: f64,
}

/// End to end (a Kafka run with `--consume`): acknowledged messages matched with the output
/// message each one led to, from the `e2e_ms` column.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEndView {
    /// Acknowledged messages whose output was consumed.
    pub matched: u64,
    /// Acknowledged messages with no output by the end of the drain.
    pub lost: u64,
    /// `lost / (matched + lost)`.
    pub lost_rate: f64,
    /// From the send to the output message, of the matched ones.
    pub e2e_ms: Percentiles,
    /// Per route (for a Kafka run: per partition of the input topic), when there are several:
    /// most lost first, then the slowest p99.
    pub routes: Vec<EndToEndLine>,
    /// Every route not listed, merged.
    pub other: Option<EndToEndLine>,
    /// How many routes `other` holds (at least, when `capped`).
    pub other_routes: usize,
    /// More distinct routes than are followed one by one: the later ones are only in `other`.
    pub capped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndToEndLine {
    pub route: String,
    pub matched: u64,
    pub lost: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// What a Kafka run's report calls an acknowledgement's class (status 0), as `/metrics` and
/// `--push` do: the class HTTP's odd codes are in, `other`, by another name.
pub const ACKED: &str = "acked";

/// Every name a replayed class goes by, in the order tables show classes.
pub const CLASS_ORDER: [&str; CLASSES + 1] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", ACKED, "error"];

pub fn build(agg: &Aggregate, opts: &ReportOptions) -> Report {
    let (target, source) = plan::resolve(agg, opts.target);
    let planned = target == Target::Planned;
    let problems: Vec<String> = agg.bad_rows.iter().chain(&agg.cut_off_rows).map(|e| e.to_string()).collect();
    // The fold keeps at most MAX_SLICES slices: the charts draw them all; the tables want fewer
    // unless the interval was chosen.
    let table = if agg.timeline.fixed {
        std::borrow::Cow::Borrowed(&agg.timeline)
    } else {
        std::borrow::Cow::Owned(agg.timeline.coarsened(opts.max_table_slices))
    };
    let mut report = Report {
        files: agg.files.iter().map(|f| f.name.clone()).collect(),
        runs: Vec::new(),
        rows: agg.rows(),
        skipped_rows: agg.bad_row_count + agg.cut_off_rows.len() as u64,
        unreadable_rows: agg.bad_row_count,
        problems,
        overview: overview(agg, target, source),
        routes: route_table(agg, opts.max_routes),
        status_matrix: status_matrix(&agg.overall),
        mismatched_routes: mismatched_routes(agg),
        over_time: over_time(agg, &table, planned),
        chart_time: over_time(agg, &agg.timeline, planned),
        journeys: agg.journeys.view(),
        end_to_end: agg.end_to_end_column.then(|| end_to_end(agg, opts.max_routes)),
        shards: None,
        charts: Default::default(),
        compare: None,
        baseline: None,
        assertions: Vec::new(),
    };
    if agg.is_kafka() {
        name_acknowledgements(&mut report);
    }
    report
}

/// In a report of a Kafka run, the class of status 0 is [`ACKED`]: every answer is an
/// acknowledgement, and no HTTP code is among them.
fn name_acknowledgements(report: &mut Report) {
    let other = REPLAYED_CLASS_NAMES[class_of(0)];
    let rename = |classes: &mut BTreeMap<String, u64>| {
        if let Some(n) = classes.remove(other) {
            classes.insert(ACKED.to_string(), n);
        }
    };
    let routes = &mut report.routes;
    routes.shown.iter_mut().chain(&mut routes.other).for_each(|line| rename(&mut line.classes));
    let points = report.over_time.points.iter_mut().chain(&mut report.chart_time.points);
    points.for_each(|point| rename(&mut point.classes));
    for name in &mut report.status_matrix.replayed {
        if *name == other {
            *name = ACKED;
        }
    }
}

fn end_to_end(agg: &Aggregate, max_routes: usize) -> EndToEndView {
    let g = &agg.overall;
    let matched = g.end_to_end.len();
    let mut routes: Vec<EndToEndLine> = agg
        .routes
        .iter()
        .filter(|(_, r)| r.end_to_end.len() + r.lost > 0)
        .map(|(name, r)| end_to_end_line(name, &r.end_to_end, r.lost))
        .collect();
    let capped = agg.untracked.end_to_end.len() + agg.untracked.lost > 0;
    // One route says nothing the whole run does not.
    if routes.len() == 1 && !capped {
        routes.clear();
    }
    routes.sort_by(|a, b| {
        b.lost
            .cmp(&a.lost)
            .then(b.p99_ms.unwrap_or(0.0).total_cmp(&a.p99_ms.unwrap_or(0.0)))
            .then(a.route.cmp(&b.route))
    });
    let rest = routes.split_off(routes.len().min(max_routes));
    let mut other_e2e = agg.untracked.end_to_end.clone();
    let mut other_lost = agg.untracked.lost;
    for line in &rest {
        let tally = &agg.routes[&line.route];
        // Cannot fail: both sides auto-resize.
        let _ = other_e2e.add(&tally.end_to_end);
        other_lost += tally.lost;
    }
    EndToEndView {
        matched,
        lost: g.lost,
        lost_rate: share(g.lost, matched + g.lost),
        e2e_ms: Percentiles::of(&g.end_to_end),
        routes,
        other: (other_e2e.len() + other_lost > 0).then(|| end_to_end_line("other", &other_e2e, other_lost)),
        other_routes: rest.len(),
        capped,
    }
}

fn end_to_end_line<C: Counter>(route: &str, e2e: &hdrhistogram::Histogram<C>, lost: u64) -> EndToEndLine {
    EndToEndLine {
        route: route.to_string(),
        matched: e2e.len(),
        lost,
        p50_ms: Stat::P50.of(e2e),
        p90_ms: Stat::P90.of(e2e),
        p99_ms: Stat::P99.of(e2e),
        max_ms: Stat::Max.of(e2e),
    }
}

fn overview(agg: &Aggregate, target: Target, target_rate_source: &'static str) -> Overview {
    let g = &agg.overall;
    let seconds = agg.seconds();
    let target_rate = match target {
        Target::Rate(n) => Some(n),
        Target::Planned => {
            let planned_seconds = agg.plan_activity().seconds();
            (planned_seconds > 0.0).then(|| agg.rows() as f64 / planned_seconds)
        }
        Target::None => None,
    };
    Overview {
        requests: g.requests,
        not_sent: g.not_sent,
        responses: g.responses(),
        errors: g.errors(),
        failed: g.failed(),
        error_rate: share(g.failed(), g.requests),
        statuses: counts(&g.statuses),
        error_kinds: g.errors.clone(),
        latency_ms: Percentiles::of(&g.latency),
        latency_from_schedule_ms: Percentiles::of(&g.from_schedule),
        lag: LagSummary::of(&g.lag, g.earliest_lag_us),
        bytes_received: g.bytes,
        target_rate,
        target_rate_source,
        achieved_rate: if seconds > 0.0 { g.requests as f64 / seconds } else { 0.0 },
        seconds,
        first_sent: agg.first_sent_ms.map(utc),
        last_sent: agg.last_sent_ms.map(utc),
        with_orig_status: g.with_orig(),
        mismatches: g.mismatches(),
        mismatch_rate: (g.with_orig() > 0).then(|| share(g.mismatches(), g.with_orig())),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn utc(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(spreadsheet_time).unwrap_or_default()
}

/// What hurts most first: failed requests, then status mismatches, then p99, then traffic.
fn hurt_order(a: &(&String, &Tally<u32>), b: &(&String, &Tally<u32>)) -> std::cmp::Ordering {
    let key = |g: &Tally<u32>| (g.failed(), g.mismatches(), Stat::P99.of(&g.latency).unwrap_or(0.0), g.requests);
    let (ka, kb) = (key(a.1), key(b.1));
    kb.0.cmp(&ka.0).then(kb.1.cmp(&ka.1)).then(kb.2.total_cmp(&ka.2)).then(kb.3.cmp(&ka.3)).then(a.0.cmp(b.0))
}

fn route_table(agg: &Aggregate, max_routes: usize) -> RouteTable {
    let seconds = agg.seconds();
    let mut routes: Vec<(&String, &Tally<u32>)> = agg.routes.iter().collect();
    routes.sort_by(hurt_order);
    let shown_count = routes.len().min(max_routes);
    let mut other = agg.untracked.clone();
    for (_, g) in &routes[shown_count..] {
        other.merge(g);
    }
    RouteTable {
        shown: routes[..shown_count].iter().map(|(name, g)| route_line(name, g, seconds)).collect(),
        other: (other.requests > 0).then(|| route_line("other", &other, seconds)),
        other_routes: routes.len() - shown_count,
        total_routes: routes.len(),
        capped: agg.untracked.requests > 0,
    }
}

fn route_line<C: Counter>(name: &str, g: &Tally<C>, seconds: f64) -> RouteLine {
    RouteLine {
        route: name.to_string(),
        requests: g.requests,
        rate: if seconds > 0.0 { g.requests as f64 / seconds } else { 0.0 },
        classes: class_counts(|c| if c == NO_STATUS { g.errors() } else { g.class_count(c) }),
        statuses: counts(&g.statuses),
        failed: g.failed(),
        error_rate: share(g.failed(), g.requests),
        with_orig_status: g.with_orig(),
        mismatches: g.mismatches(),
        p50_ms: Stat::P50.of(&g.latency),
        p99_ms: Stat::P99.of(&g.latency),
    }
}

fn class_counts(count: impl Fn(usize) -> u64) -> BTreeMap<String, u64> {
    (0..CLASSES).map(|c| (REPLAYED_CLASS_NAMES[c].to_string(), count(c))).filter(|(_, n)| *n > 0).collect()
}

fn status_matrix<C: Counter>(g: &Tally<C>) -> StatusMatrix {
    let rows: Vec<usize> = (0..CLASSES).filter(|&r| g.matrix[r].iter().sum::<u64>() > 0).collect();
    let cols: Vec<usize> = (0..CLASSES).filter(|&c| g.matrix.iter().map(|row| row[c]).sum::<u64>() > 0).collect();
    StatusMatrix {
        logged: rows.iter().map(|&r| ORIG_CLASS_NAMES[r]).collect(),
        replayed: cols.iter().map(|&c| REPLAYED_CLASS_NAMES[c]).collect(),
        counts: rows.iter().map(|&r| cols.iter().map(|&c| g.matrix[r][c]).collect()).collect(),
        differs: rows.iter().map(|&r| (r != NO_STATUS).then(|| differing_in_class(g, r))).collect(),
        with_orig_status: g.with_orig(),
        mismatches: g.mismatches(),
    }
}

fn differing_in_class<C: Counter>(g: &Tally<C>, class: usize) -> u64 {
    g.transitions.iter().filter(|((logged, _), _)| class_of(*logged) == class).map(|(_, n)| n).sum()
}

fn mismatched_routes(agg: &Aggregate) -> Vec<MismatchLine> {
    let mut lines: Vec<MismatchLine> =
        agg.routes.iter().filter(|(_, g)| g.mismatches() > 0).map(|(name, g)| mismatch_line(name, g)).collect();
    lines.sort_by(|a, b| b.mismatches.cmp(&a.mismatches).then(b.share.total_cmp(&a.share)).then(a.route.cmp(&b.route)));
    lines.truncate(MISMATCH_ROUTES);
    lines
}

fn mismatch_line<C: Counter>(name: &str, g: &Tally<C>) -> MismatchLine {
    let mut pairs: Vec<(&(u16, Option<u16>), &u64)> = g.transitions.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    MismatchLine {
        route: name.to_string(),
        mismatches: g.mismatches(),
        with_orig_status: g.with_orig(),
        share: share(g.mismatches(), g.with_orig()),
        transitions: pairs
            .into_iter()
            .take(TRANSITIONS)
            .map(|(&(logged, replayed), &count)| Transition {
                logged,
                replayed: replayed.map_or_else(|| "error".to_string(), |s| s.to_string()),
                count,
            })
            .collect(),
    }
}

/// Slices in order, with the empty ones filled in while requests were being sent (a stall shows
/// as zeros, not as a line drawn across it); the time between separate runs is left out. With
/// `planned`, each slice also holds its plan, and slices planned but with nothing sent show too.
fn over_time(agg: &Aggregate, t: &Timeline, planned: bool) -> OverTime {
    let activity = agg.activity();
    let plan = planned.then(|| agg.plan_activity());
    let mut keys: Vec<i64> = t.slices.keys().copied().collect();
    if planned {
        keys.extend(t.planned.keys());
    }
    let (Some(&first), Some(&last)) = (keys.iter().min(), keys.iter().max()) else {
        return OverTime { interval_seconds: t.interval_ms as f64 / 1e3, points: Vec::new() };
    };
    let empty = Slice::default();
    let shown = |k: i64| {
        let (from, to) = (t.start_ms(k), t.start_ms(k + 1));
        t.slices.contains_key(&k)
            || activity.covered_ms(from, to) > 0.0
            || plan.as_ref().is_some_and(|p| t.planned.contains_key(&k) || p.covered_ms(from, to) > 0.0)
    };
    let points = (first..=last)
        .filter(|&k| shown(k))
        .map(|k| {
            let mut point = time_point(t, k, t.slices.get(&k).unwrap_or(&empty), &activity);
            if let Some(plan) = &plan {
                point.planned = Some(t.planned.get(&k).copied().unwrap_or(0));
                point.planned_rate = Some(plan::planned_rate(t, k, plan));
            }
            point
        })
        .collect();
    OverTime { interval_seconds: t.interval_ms as f64 / 1e3, points }
}

fn time_point(t: &Timeline, key: i64, s: &Slice, activity: &Activity) -> TimePoint {
    let start = t.start_ms(key);
    let covered_ms = activity.covered_ms(start, start + t.interval_ms);
    let seconds = if covered_ms > 0.0 { covered_ms / 1e3 } else { t.interval_ms as f64 / 1e3 };
    TimePoint {
        planned: None,
        planned_rate: None,
        start: utc(start),
        unix_ms: start,
        sent: s.sent,
        rate: s.sent as f64 / seconds,
        classes: class_counts(|c| s.classes[c]),
        errors: s.classes[NO_STATUS],
        failed: s.failed(),
        mismatches: s.mismatches,
        p50_ms: Stat::P50.of(&s.latency),
        p90_ms: Stat::P90.of(&s.latency),
        p99_ms: Stat::P99.of(&s.latency),
        max_ms: Stat::Max.of(&s.latency),
        lag_max_ms: s.lag_max_us as f64 / 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::aggregate::{FoldOptions, fold};
    use crate::analysis::render::{ReportFormat, render};
    use crate::results::{E2E_COLUMN, HEADER};

    /// Folds `rows` (after the documented header and `extra` columns) as one file.
    fn report_of(extra: &str, rows: &[String]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.csv");
        std::fs::write(&path, format!("{}{extra}\n{}\n", HEADER.join(","), rows.join("\n"))).unwrap();
        let aggregate = fold(&[path], &FoldOptions::default()).unwrap();
        build(&aggregate, &ReportOptions::default())
    }

    /// A Kafka row to `partition`: acknowledged at `offset` with its output `e2e` (ms or
    /// `lost`), or not acknowledged (`offset` `None`: a timeout, no e2e cell).
    fn kafka_row(seq: u64, partition: u32, offset: Option<u64>, e2e: &str) -> String {
        let times = format!("2026-11-21 10:00:0{seq}.000,2026-11-21 10:00:0{seq}.000,0.100");
        let url = format!("kafka://b:9092/t/{partition}");
        match offset {
            Some(offset) => format!("{seq},{seq},,{times},PRODUCE,{url}#{offset},200,0,1.000,3,,,,{e2e}"),
            None => format!("{seq},{seq},,{times},PRODUCE,{url},200,,5000.000,0,kafka:timeout,,,"),
        }
    }

    #[test]
    fn a_kafka_runs_report_has_end_to_end_figures_by_partition_and_calls_an_acknowledgement_acked() {
        let rows = [
            kafka_row(1, 0, Some(0), "100.000"),
            kafka_row(2, 0, Some(1), "300.000"),
            kafka_row(3, 0, Some(2), "lost"),
            kafka_row(4, 1, Some(0), "200.000"),
            kafka_row(5, 1, None, ""),
            kafka_row(6, 1, Some(1), "lost"),
            kafka_row(7, 1, Some(2), "lost"),
        ];
        let report = report_of(&format!(",{E2E_COLUMN}"), &rows);
        let e = report.end_to_end.as_ref().expect("an e2e_ms column: an end-to-end section");
        assert_eq!((e.matched, e.lost, e.lost_rate), (3, 3, 0.5));
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(near(e.e2e_ms.p50, 200.0) && near(e.e2e_ms.max, 300.0), "{:?}", e.e2e_ms);
        // Each partition is a route (the offset fragment aside), most lost first.
        let by_route: Vec<(&str, u64, u64)> = e.routes.iter().map(|l| (l.route.as_str(), l.matched, l.lost)).collect();
        assert_eq!(by_route, [("/t/1", 1, 2), ("/t/0", 2, 1)]);
        assert!(near(e.routes[1].p99_ms.unwrap(), 300.0));
        assert!(e.other.is_none());

        let classes = |route: &str| report.routes.shown.iter().find(|l| l.route == route).unwrap().classes.clone();
        assert_eq!(classes("/t/0"), BTreeMap::from([("acked".to_string(), 3)]));
        assert_eq!(classes("/t/1"), BTreeMap::from([("acked".to_string(), 3), ("error".to_string(), 1)]));
        assert_eq!(report.status_matrix.replayed, ["acked", "error"]);
        assert!(report.over_time.points.iter().all(|p| !p.classes.contains_key("other")));
        assert_eq!(report.over_time.points.iter().map(|p| p.classes.get("acked").unwrap_or(&0)).sum::<u64>(), 6);

        let text = render(&report, ReportFormat::Text);
        assert!(text.contains("end to end — 3 matched, 3 lost (50.0% of 6 acknowledged)"), "{text}");
        assert!(text.contains("e2e        p50 200."), "{text}");
        let route_header =
            text.lines().find(|l| l.trim_start().starts_with("route ") && l.contains("requests")).unwrap();
        assert!(route_header.contains("acked") && !route_header.contains("other"), "{text}");
        let markdown = render(&report, ReportFormat::Markdown);
        assert!(markdown.contains("### End to end\n\n3 matched, 3 lost"), "{markdown}");
        assert!(markdown.contains("| `/t/1` | 1 | 2 | 200."), "{markdown}");
        let html = render(&report, ReportFormat::Html);
        assert!(html.contains("<h2>End to end</h2>") && html.contains("<th>acked</th>"), "{html}");
        let json: serde_json::Value = serde_json::from_str(&render(&report, ReportFormat::Json)).unwrap();
        assert_eq!(json["end_to_end"]["lost"], 3);
        assert_eq!(json["end_to_end"]["routes"][0]["route"], "/t/1");
        assert_eq!(json["routes"]["shown"][0]["classes"]["acked"], 3);
    }

    #[test]
    fn an_http_runs_report_keeps_class_other_and_has_no_end_to_end_section() {
        let row = "1,1,,2026-11-21 10:00:01.000,2026-11-21 10:00:01.000,0.100,GET,http://h/x,200,999,1.000,3,,,";
        let report = report_of("", &[row.to_string()]);
        assert!(report.end_to_end.is_none());
        assert_eq!(report.status_matrix.replayed, ["other"]);
        let json = render(&report, ReportFormat::Json);
        assert!(!json.contains("end_to_end") && !json.contains("acked"), "{json}");
    }
}
