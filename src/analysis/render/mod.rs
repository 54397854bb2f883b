//! Renderers: the same [`Report`] as text (a 100-column terminal),
//! JSON, Markdown (CI comments) and one self-contained HTML file with SVG charts.

pub mod compare;
pub mod html;
pub mod json;
pub mod markdown;
mod svg;
pub mod text;

use super::figures::{EndToEndView, Overview, Report, StatusMatrix, TimePoint};

/// `--format` of `sluice report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned tables for a 100-column terminal.
    #[default]
    Text,
    /// Every figure, for programs.
    Json,
    /// GitHub-flavoured Markdown, e.g. for a CI comment.
    Markdown,
    /// One self-contained file with charts (no network fetches).
    Html,
}

pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Text => text::render(report),
        ReportFormat::Json => json::render(report),
        ReportFormat::Markdown => markdown::render(report),
        ReportFormat::Html => html::render(report),
    }
}

/// Milliseconds as tables show them.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

/// Requests per second: small rates keep their digits (a route at 0.011/s is not "0.0").
fn per_second(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `other (980 routes)`, or `980+` when there were more routes than are followed.
fn other_label(t: &super::figures::RouteTable) -> String {
    format!("other ({}{} routes)", t.other_routes, if t.capped { "+" } else { "" })
}

/// `6 routes`, `20 of 37 routes`, `20 of 500+ routes`.
fn routes_count(t: &super::figures::RouteTable) -> String {
    let plus = if t.capped { "+" } else { "" };
    if t.other.is_some() {
        format!("{} of {}{plus} routes", t.shown.len(), t.total_routes)
    } else {
        format!("{} routes", t.shown.len())
    }
}

/// `300.0/s achieved of 300/s target (inferred)`.
fn rate_line(o: &Overview) -> String {
    let achieved = format!("{:.1}/s achieved", o.achieved_rate);
    match (o.target_rate, o.target_rate_source) {
        (Some(t), "inferred") => format!("{achieved} of {t}/s target (inferred)"),
        (Some(t), "planned") => format!("{achieved} of {t:.1}/s planned (mean of a varying plan)"),
        (Some(t), _) => format!("{achieved} of {t}/s target"),
        (None, "none") => format!("{achieved} (no target: --rate max)"),
        (None, _) => format!("{achieved} (target unknown)"),
    }
}

/// `12 of 900 requests with a logged status got another class (1.3%)`; `None` when no request
/// had a logged status.
fn mismatch_sentence(m: &StatusMatrix) -> Option<String> {
    (m.with_orig_status > 0).then(|| {
        format!(
            "{} of {} requests with a logged status got another class ({})",
            m.mismatches,
            m.with_orig_status,
            super::assert::percent(m.mismatches as f64 / m.with_orig_status as f64)
        )
    })
}

/// The time of day a slice starts, with the date only when the report spans several days, and
/// milliseconds only for sub-second slices.
fn slice_label(p: &TimePoint, one_day: bool, sub_second: bool) -> String {
    let (date, time) = p.start.split_once(' ').unwrap_or(("", &p.start));
    let time = if sub_second { time } else { time.split('.').next().unwrap_or(time) };
    if one_day { time.to_string() } else { format!("{} {time}", &date[5..]) }
}

fn spans_one_day(points: &[TimePoint]) -> bool {
    let day = |p: &TimePoint| p.start.get(..10).map(str::to_string);
    points.first().map(day) == points.last().map(day)
}

/// `1s`, `10s`, `2m`, `1h`, `500ms`.
fn interval_text(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1e3)
    } else if seconds >= 3600.0 && seconds % 3600.0 == 0.0 {
        format!("{}h", seconds / 3600.0)
    } else if seconds >= 60.0 && seconds % 60.0 == 0.0 {
        format!("{}m", seconds / 60.0)
    } else {
        format!("{seconds}s")
    }
}

/// `200→500 ×15, 200→error ×3`.
fn transitions_text(t: &[super::figures::Transition]) -> String {
    t.iter().map(|t| format!("{}→{} ×{}", t.logged, t.replayed, t.count)).collect::<Vec<_>>().join(", ")
}

/// The sessions-by-length table's columns (a `--sessions` run), as every format names them.
const SESSION_LENGTH_HEADERS: [&str; 6] = ["length", "sessions", "p50 ms", "p90 ms", "p99 ms", "max ms"];

/// A row of the sessions-by-length table.
fn session_length_cells(l: &super::journeys::LengthLine) -> Vec<String> {
    let p = &l.total_ms;
    vec![l.length.clone(), l.sessions.to_string(), ms(Some(p.p50)), ms(Some(p.p90)), ms(Some(p.p99)), ms(Some(p.max))]
}

/// The slowest sessions' table's columns.
const SLOWEST_SESSION_HEADERS: [&str; 5] =
    ["slowest sessions", "requests", "failed", "total ms", "routes in logged order"];

/// A row of the slowest sessions' table, its route chain whole (each format fits it its way).
fn slowest_session_cells(s: &super::journeys::Journey, files: &[String]) -> [String; 5] {
    [s.label(files), s.requests.to_string(), s.failed.to_string(), format!("{:.2}", s.total_ms), s.route_chain()]
}

/// `270 matched, 30 lost (10.0% of 300 acknowledged)`.
fn end_to_end_counts(e: &EndToEndView) -> String {
    let awaited = e.matched + e.lost;
    if awaited == 0 {
        return "0 matched, 0 lost: no message was acknowledged".to_string();
    }
    format!(
        "{} matched, {} lost ({} of {awaited} acknowledged)",
        e.matched,
        e.lost,
        super::assert::percent(e.lost_rate)
    )
}

/// The columns of the end-to-end table by route.
const END_TO_END_COLUMNS: [&str; 7] = ["route", "matched", "lost", "p50 ms", "p90 ms", "p99 ms", "max ms"];

/// The end-to-end table's rows: each route listed, then `other (N routes)`; empty for one route.
fn end_to_end_rows(e: &EndToEndView) -> Vec<[String; 7]> {
    e.routes
        .iter()
        .map(|l| (l.route.clone(), l))
        .chain(e.other.iter().map(|l| {
            let plus = if e.capped { "+" } else { "" };
            (format!("other ({}{plus} routes)", e.other_routes), l)
        }))
        .map(|(name, l)| {
            [name, l.matched.to_string(), l.lost.to_string(), ms(l.p50_ms), ms(l.p90_ms), ms(l.p99_ms), ms(l.max_ms)]
        })
        .collect()
}
