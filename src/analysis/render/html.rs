//! The report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched.
//! The run's figures and what the run was (its manifest: target, logs, options, start and end),
//! the end-to-end figures of a Kafka run with `--consume`, then charts (rate, latency over time,
//! the latency distribution by percentile, failures by kind, status mix, the busiest routes'
//! latency, lag), then the route table and the logged-vs-replayed status matrix. The
//! distribution and the busiest routes' charts draw a reference dashed beside the run's own lines
//! when there is one: the `--baseline` run, or B of a `--compare` run. For a `--sessions` run, a
//! section of sessions by length (a chart of their time's p50 and p99, and a table) and of the
//! slowest sessions with their routes.

use crate::display::human_bytes;
use std::fmt::Write;

use super::svg::{self, Chart, Curve, GroupAxis, HALF, Layer, Line, Stack, Swatch, TimeAxis, WIDE};
use super::{END_TO_END_COLUMNS, end_to_end_counts, end_to_end_rows};
use super::{interval_text, mismatch_sentence, ms, other_label, per_second, rate_line, routes_count, transitions_text};
use crate::analysis::assert::percent;
use crate::analysis::charts::{MIN_CURVE_REQUESTS, Reference, SliceLatency};
use crate::analysis::figures::{ACKED, CLASS_ORDER};
use crate::analysis::figures::{OverTime, Report, RouteLine, TimePoint};
use crate::analysis::metadata::RunInfo;
use crate::analysis::series::SERIES_ROUTES;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The colour of a replayed status class, the same in every chart and table.
fn class_color(class: &str) -> &'static str {
    match class {
        "2xx" | ACKED => "#2e9e5b",
        "3xx" => "#3b82c4",
        "4xx" => "#e0a526",
        "5xx" => "#d64541",
        "error" => "#7b3fa0",
        _ => "#9aa3ad",
    }
}

/// The colour of a failure kind: no answer by kind (as in the CSV's `error` column), or a 5xx.
fn failure_color(kind: &str) -> &'static str {
    match kind {
        "5xx" => class_color("5xx"),
        "timeout" => "#7b3fa0",
        "connect" => "#3b82c4",
        "reset" => "#c2185b",
        "tls" => "#1f9bb0",
        "protocol" => "#8c564b",
        "aborted" => "#9aa3ad",
        "local" => "#5f6b78",
        _ => "#c4a3d6",
    }
}

/// The legend's sample of the line styles that tell the run's own curves from a reference's.
const SIDE_COLOR: &str = "#5f6b78";
/// The colours of p50 and p99 in every latency chart.
const P50_COLOR: &str = "#2e9e5b";
const P99_COLOR: &str = "#d64541";

/// Colours of the curves after the whole run's (dark): the worst routes, then any more.
const SERIES_COLORS: [&str; 6] = ["#d64541", "#e0a526", "#7b3fa0", "#2e9e5b", "#3b82c4", "#8c564b"];

const STYLE: &str = r#"
:root { color-scheme: light; --ink:#1d232b; --muted:#5f6b78; --line:#e3e6ea; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1140px; margin:0 auto; padding:24px 24px 48px; }
h1 { font-size:22px; margin:0 0 2px; }
h2 { font-size:16px; margin:0 0 8px; }
.sub { color:var(--muted); margin:0 0 18px; word-break:break-all; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin:0 0 16px; }
.cards { display:grid; grid-template-columns:repeat(5,1fr); gap:12px; background:none; border:0; padding:0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; margin:2px 0; font-variant-numeric:tabular-nums; }
.card .note { color:var(--muted); font-size:12px; }
.bad { color:#c0392b; } .good { color:#23824a; }
.legend { display:flex; gap:16px; flex-wrap:wrap; color:var(--muted); font-size:12px; margin:0 0 6px; }
.legend i, i.swatch { display:inline-block; width:14px; height:10px; margin-right:6px; vertical-align:middle; border-radius:2px; }
.chart { display:block; }
.chart .tick { font-size:11px; fill:#5f6b78; font-variant-numeric:tabular-nums; }
.chart .axis { font-size:12px; fill:#444b55; }
.chart .hover { fill:transparent; }
.chart .hover:hover { fill:rgba(47,111,223,.08); }
.chart .mark { fill:#fff; stroke-width:2; }
.chart .mark:hover { stroke-width:4; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:14px 24px; }
h3 { font-size:13px; margin:6px 0 2px; font-weight:600; }
h3 code, dd code { font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; word-break:break-all; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:3px 18px; margin:0 0 8px; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; word-break:break-word; }
details summary { cursor:pointer; color:var(--muted); margin:6px 0; }
table.options td { text-align:left; white-space:normal; word-break:break-all; }
table.options td:first-child { white-space:nowrap; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { color:var(--muted); font-weight:600; font-size:12px; }
th:first-child, td:first-child { text-align:left; }
td.route { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; white-space:normal; word-break:break-all; }
td.text, th.text { text-align:left; white-space:normal; }
td.heat { min-width:64px; }
.matrix td, .matrix th { text-align:center; }
.matrix th:first-child, .matrix td:first-child { text-align:left; }
.badge { display:inline-block; min-width:44px; text-align:center; border-radius:4px; padding:1px 6px; font-weight:700; font-size:12px; color:#fff; }
.badge.pass { background:#2e9e5b; } .badge.fail { background:#d64541; }
.assertions td { text-align:left; }
.muted { color:var(--muted); }
pre { margin:0; white-space:pre-wrap; font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
@media (max-width:900px) { .cards { grid-template-columns:repeat(2,1fr); } .grid2 { grid-template-columns:1fr; } }
"#;

pub fn render(r: &Report) -> String {
    let mut body = String::new();
    header(&mut body, r);
    cards(&mut body, r);
    runs(&mut body, &r.runs);
    shards(&mut body, r);
    assertions(&mut body, r);
    end_to_end(&mut body, r);
    charts(&mut body, r);
    routes(&mut body, r);
    status(&mut body, r);
    journeys(&mut body, r);
    body += &super::compare::html(r);
    details(&mut body, r);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sluice report — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(&r.files.join(", "))
    )
}

fn header(out: &mut String, r: &Report) {
    let o = &r.overview;
    let when = match (&o.first_sent, &o.last_sent) {
        (Some(a), Some(b)) => format!(" · sent {a} → {b} UTC"),
        _ => String::new(),
    };
    let skipped = if r.skipped_rows > 0 { format!(" ({} skipped)", r.skipped_rows) } else { String::new() };
    let shards = r.shards.as_ref().map_or_else(String::new, |s| format!(" · {}", escape(&s.headline)));
    let _ = writeln!(
        out,
        "<h1>sluice report</h1>\n<p class=\"sub\">{} — {} rows{skipped}{shards}{when}</p>",
        escape(&r.files.join(", ")),
        r.rows
    );
}

/// A row per shard: its own achieved rate and lag, so a machine that fell behind shows.
fn shards(out: &mut String, r: &Report) {
    let Some(view) = &r.shards else { return };
    let _ = writeln!(
        out,
        "<section><h2>Shards</h2><p class=\"muted\">{}: each shard's own achieved rate and lag behind the plan.</p>",
        escape(&view.headline)
    );
    for gap in &view.gaps {
        let _ = writeln!(out, "<p class=\"bad\">{}</p>", escape(gap));
    }
    out.push_str(
        "<table>\n<tr><th>shard file</th><th>run</th><th>shard</th><th>requests</th><th>rate/s</th>\
         <th>lag p50 ms</th><th>lag p99 ms</th><th>lag max ms</th><th class=\"text\">state</th></tr>\n",
    );
    for s in &view.shards {
        let state_class = if s.complete { "text" } else { "text bad" };
        let _ = writeln!(
            out,
            "<tr><td class=\"route\">{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{:.2}</td><td class=\"{state_class}\">{}</td></tr>",
            escape(&s.file),
            escape(&s.run_id),
            s.index,
            s.count,
            s.requests,
            per_second(s.achieved_rate),
            s.lag_p50_ms,
            s.lag_p99_ms,
            s.lag_max_ms,
            escape(&s.state())
        );
    }
    out.push_str("</table></section>\n");
}

fn card(out: &mut String, label: &str, value: &str, note: &str, class: &str) {
    let _ = writeln!(
        out,
        "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value {class}\">{value}</div>\
         <div class=\"note\">{note}</div></div>",
    );
}

fn cards(out: &mut String, r: &Report) {
    let o = &r.overview;
    out.push_str("<section class=\"cards\">\n");
    card(
        out,
        "requests",
        &o.requests.to_string(),
        &format!("in {:.2}s · {} received", o.seconds, human_bytes(o.bytes_received)),
        "",
    );
    let (rate_note, rate_class) = match o.target_rate {
        Some(t) if o.target_rate_source == "planned" => (
            format!("{} of the plan's {t:.1}/s on average (it varies: see the chart)", percent(o.achieved_rate / t)),
            "",
        ),
        Some(t) => {
            let share = o.achieved_rate / t;
            (format!("{} of {t}/s target", percent(share)), if share >= 0.95 { "good" } else { "bad" })
        }
        None => (escape(&rate_line(o)).replace(&format!("{:.1}/s achieved ", o.achieved_rate), ""), ""),
    };
    card(out, "achieved rate", &format!("{:.1}/s", o.achieved_rate), &rate_note, rate_class);
    card(
        out,
        "p99 latency",
        &format!("{:.2} ms", o.latency_ms.p99),
        &format!("p50 {:.2} · from plan p99 {:.2} ms", o.latency_ms.p50, o.latency_from_schedule_ms.p99),
        "",
    );
    card(
        out,
        "error rate",
        &percent(o.error_rate),
        &format!("{} failed: {} no answer, {} 5xx", o.failed, o.errors, o.failed - o.errors),
        if o.failed > 0 { "bad" } else { "good" },
    );
    match o.mismatch_rate {
        Some(rate) => card(
            out,
            "status vs log",
            &percent(rate),
            &format!("{} of {} got another class", o.mismatches, o.with_orig_status),
            if o.mismatches > 0 { "bad" } else { "good" },
        ),
        None => card(out, "status vs log", "–", "no logged status", ""),
    }
    out.push_str("</section>\n");
}

/// End to end (a Kafka run with `--consume`): outputs matched and lost and their latency, for
/// the whole run and by route (for Kafka, by partition of the input topic).
fn end_to_end(out: &mut String, r: &Report) {
    let Some(e) = &r.end_to_end else { return };
    let _ = writeln!(
        out,
        "<section><h2>End to end</h2><p class=\"muted\">{}; from the send to the output message.</p>\n<table>",
        escape(&end_to_end_counts(e))
    );
    let p = &e.e2e_ms;
    let seen = |v: f64| ms((e.matched > 0).then_some(v));
    let all = [
        "all".to_string(),
        e.matched.to_string(),
        e.lost.to_string(),
        seen(p.p50),
        seen(p.p90),
        seen(p.p99),
        seen(p.max),
    ];
    for (i, cells) in [END_TO_END_COLUMNS.map(String::from), all].into_iter().chain(end_to_end_rows(e)).enumerate() {
        let _ = write!(out, "<tr>");
        for (column, cell) in cells.iter().enumerate() {
            let (tag, class) = match (i, column) {
                (0, _) | (1, 0) => ("th", ""),
                (_, 0) => ("td", " class=\"route\""),
                (_, 2) if cell != "0" => ("td", " class=\"bad\""),
                _ => ("td", ""),
            };
            let _ = write!(out, "<{tag}{class}>{}</{tag}>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></section>\n");
}

fn assertions(out: &mut String, r: &Report) {
    if r.assertions.is_empty() {
        return;
    }
    out.push_str("<section><h2>Assertions</h2>\n<table class=\"assertions\">\n");
    for v in &r.assertions {
        let (class, mark) = if v.passed { ("pass", "PASS") } else { ("fail", "FAIL") };
        let _ = writeln!(
            out,
            "<tr><td><span class=\"badge {class}\">{mark}</span></td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&v.assertion),
            escape(&v.measured)
        );
    }
    out.push_str("</table></section>\n");
}

fn tooltip(p: &TimePoint) -> String {
    let classes: Vec<String> = p.classes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let planned = match (p.planned, p.planned_rate) {
        (Some(n), Some(rate)) => format!(" · planned {n} · {rate:.1}/s"),
        _ => String::new(),
    };
    format!(
        "{} UTC\nsent {} · {:.1}/s{planned}\nfailed {} · no answer {}\np50 {} · p90 {} · p99 {} · max {} ms\nlag max {:.2} ms\n{}",
        p.start,
        p.sent,
        p.rate,
        p.failed,
        p.errors,
        ms(p.p50_ms),
        ms(p.p90_ms),
        ms(p.p99_ms),
        ms(p.max_ms),
        p.lag_max_ms,
        classes.join(" · ")
    )
}

fn charts(out: &mut String, r: &Report) {
    let t = &r.chart_time;
    if t.points.is_empty() {
        return;
    }
    let starts: Vec<i64> = t.points.iter().map(|p| p.unix_ms).collect();
    let tips: Vec<String> = t.points.iter().map(tooltip).collect();
    let axis = TimeAxis {
        starts_ms: &starts,
        since_start: false,
        interval_ms: (t.interval_seconds * 1e3).round() as i64,
        tooltips: &tips,
    };
    let every = interval_text(t.interval_seconds);
    rate_chart(out, &axis, t, r.overview.target_rate, &every);

    let pick = |f: fn(&TimePoint) -> Option<f64>| t.points.iter().map(f).collect::<Vec<_>>();
    let latency = [
        Line { name: "p50", color: P50_COLOR, values: pick(|p| p.p50_ms), dashed: false },
        Line { name: "p90", color: "#e0a526", values: pick(|p| p.p90_ms), dashed: false },
        Line { name: "p99", color: P99_COLOR, values: pick(|p| p.p99_ms), dashed: false },
    ];
    let title = "Latency percentiles over time";
    chart_section(
        out,
        title,
        &format!("ms from the send, per {every} slice (max in the tooltip)"),
        &line_legend(&latency),
        &svg::line_chart(&Chart { title, y_title: "latency", unit: " ms", size: WIDE }, &axis, &latency),
    );

    distribution(out, r);
    failures(out, r, &axis);

    let present: Vec<&str> =
        CLASS_ORDER.iter().copied().filter(|c| t.points.iter().any(|p| p.classes.contains_key(*c))).collect();
    let layers: Vec<Layer<'_>> = present
        .iter()
        .map(|c| Layer {
            name: c,
            color: class_color(c),
            values: t.points.iter().map(|p| p.classes.get(*c).copied().unwrap_or(0) as f64).collect(),
        })
        .collect();
    let title = "Status mix over time";
    chart_section(
        out,
        title,
        &format!("share of requests per {every} slice, by replayed status class"),
        &layers.iter().map(|l| (l.name, l.color, Swatch::Fill)).collect::<Vec<_>>(),
        &svg::stacked_bars(
            &Chart { title, y_title: "share of requests", unit: "%", size: WIDE },
            &axis,
            &layers,
            Stack::Share,
        ),
    );

    route_latency(out, r);

    let lag =
        [Line { name: "max lag", color: "#7b3fa0", values: pick(|p| Some(p.lag_max_ms.max(0.0))), dashed: false }];
    let title = "Lag behind the plan";
    chart_section(
        out,
        title,
        &format!("the latest send of each {every} slice, ms after its planned time"),
        &line_legend(&lag),
        &svg::line_chart(&Chart { title, y_title: "lag", unit: " ms", size: WIDE }, &axis, &lag),
    );
}

fn line_legend<'a>(lines: &'a [Line<'a>]) -> Vec<(&'a str, &'a str, Swatch)> {
    lines.iter().map(|l| (l.name, l.color, Swatch::dashed(l.dashed))).collect()
}

fn rate_chart(out: &mut String, axis: &TimeAxis<'_>, t: &OverTime, target: Option<f64>, every: &str) {
    let mut rate_lines = vec![Line {
        name: "achieved",
        color: "#2f6fdf",
        values: t.points.iter().map(|p| Some(p.rate)).collect(),
        dashed: false,
    }];
    // A plan that varies is drawn slice by slice; a steady one as its one rate.
    let planned = t.points.iter().any(|p| p.planned_rate.is_some());
    if planned {
        rate_lines.push(Line {
            name: "planned",
            color: "#444b55",
            values: t.points.iter().map(|p| p.planned_rate).collect(),
            dashed: true,
        });
    } else if let Some(target) = target {
        rate_lines.push(Line {
            name: "target",
            color: "#444b55",
            values: vec![Some(target); t.points.len()],
            dashed: true,
        });
    }
    let title = if planned { "Achieved vs planned rate" } else { "Achieved vs target rate" };
    chart_section(
        out,
        title,
        &format!("requests/s per {every} slice"),
        &line_legend(&rate_lines),
        &svg::line_chart(&Chart { title, y_title: "requests per second", unit: "/s", size: WIDE }, axis, &rate_lines),
    );
}

/// The quantiles the distribution's table lists.
const TABLE_QUANTILES: [(f64, &str); 5] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (0.9999, "p99.99")];

/// How the report names the run's own curves and lines, and the reference's drawn dashed beside
/// them (B of a `--compare` run, or the `--baseline` run).
struct Sides {
    own: String,
    reference: String,
    /// The legend's key: each side with its target URL (as the manifest has it, credentials
    /// redacted) or its files.
    own_long: String,
    reference_long: String,
}

impl Sides {
    fn of(r: &Report) -> Option<Sides> {
        match r.charts.reference.as_ref()? {
            Reference::BTarget => {
                let urls = |url: &dyn Fn(&RunInfo) -> Option<String>| {
                    let mut urls: Vec<String> = r.runs.iter().filter_map(url).collect();
                    urls.dedup();
                    urls.join(", ")
                };
                let a = urls(&|run| run.target.clone());
                let b = urls(&|run| run.options.as_ref()?.get("compare")?.as_str().map(str::to_string));
                let (own, reference) = ("A (target)".to_string(), "B (baseline target)".to_string());
                Some(Sides {
                    own_long: format!("{own} {a}").trim_end().to_string(),
                    reference_long: format!("{reference} {b}").trim_end().to_string(),
                    own,
                    reference,
                })
            }
            Reference::BaselineRun(files) => {
                let names = |files: &[String]| {
                    let name = |f: &String| {
                        std::path::Path::new(f).file_name().map_or_else(|| f.clone(), |n| n.to_string_lossy().into())
                    };
                    files.iter().map(name).collect::<Vec<_>>().join(", ")
                };
                let own = format!("this run: {}", names(&r.files));
                let reference = format!("baseline: {}", names(files));
                Some(Sides { own_long: own.clone(), reference_long: reference.clone(), own, reference })
            }
        }
    }

    /// A curve's or line's name, with its side.
    fn name(sides: Option<&Sides>, name: &str, reference: bool) -> String {
        match sides {
            None => name.to_string(),
            Some(s) => format!("{name} · {}", if reference { &s.reference } else { &s.own }),
        }
    }

    /// Legend items saying which line style is which side.
    fn legend(sides: Option<&Sides>) -> Vec<(&str, &str, Swatch)> {
        sides.map_or_else(Vec::new, |s| {
            vec![
                (s.own_long.as_str(), SIDE_COLOR, Swatch::Line),
                (s.reference_long.as_str(), SIDE_COLOR, Swatch::Dashed),
            ]
        })
    }
}

/// Latency by percentile, HdrHistogram style, with a table of the marked percentiles; a
/// reference's curves dashed in the colour of the run's own of the same name.
fn distribution(out: &mut String, r: &Report) {
    let curves = &r.charts.distribution;
    if curves.is_empty() {
        return;
    }
    let sides = Sides::of(r);
    let sides = sides.as_ref();
    // One colour per name (the whole run dark, then each route), which the reference's curve
    // after it keeps.
    let mut colors: Vec<&str> = Vec::with_capacity(curves.len());
    let mut names_seen = 0;
    for (i, curve) in curves.iter().enumerate() {
        let color = match i.checked_sub(1) {
            Some(before) if curve.reference && curves[before].name == curve.name => colors[before],
            _ => {
                names_seen += 1;
                if names_seen == 1 { "#1d232b" } else { SERIES_COLORS[(names_seen - 2) % SERIES_COLORS.len()] }
            }
        };
        colors.push(color);
    }
    let points: Vec<Vec<(f64, f64)>> =
        curves.iter().map(|c| c.points.iter().map(|p| (p.quantile, p.ms)).collect()).collect();
    let names: Vec<String> = curves.iter().map(|c| Sides::name(sides, &c.name, c.reference)).collect();
    let drawn: Vec<Curve<'_>> = curves
        .iter()
        .zip(&points)
        .zip(&names)
        .zip(&colors)
        .map(|(((c, points), name), color)| Curve { name, color, points, dashed: c.reference })
        .collect();
    let labels: Vec<String> = curves
        .iter()
        .filter(|c| !c.reference)
        .map(|c| if sides.is_some() { c.name.clone() } else { format!("{} ({} answered)", c.name, c.requests) })
        .collect();
    let mut legend: Vec<(&str, &str, Swatch)> = labels
        .iter()
        .zip(curves.iter().zip(&colors).filter(|(c, _)| !c.reference).map(|(_, color)| *color))
        .map(|(n, color)| (n.as_str(), color, Swatch::Fill))
        .collect();
    legend.extend(Sides::legend(sides));
    let routes = curves.iter().filter(|c| !c.reference).count() - 1;
    let worst = if routes > 0 {
        format!(
            ", and the {routes} slowest routes by p99 (of those with at least {MIN_CURVE_REQUESTS} answered requests)"
        )
    } else {
        String::new()
    };
    let beside = sides.map_or_else(String::new, |s| format!("; dashed: {}", s.reference));
    let mut table = String::from("<table>\n<tr><th>latency, ms</th><th>answered</th>");
    for (_, name) in TABLE_QUANTILES {
        let _ = write!(table, "<th>{name}</th>");
    }
    table.push_str("</tr>\n");
    for ((curve, name), color) in curves.iter().zip(&names).zip(&colors) {
        // Beside a reference, both sides are line samples, so the names line up.
        let swatch = match (sides, curve.reference) {
            (None, _) => Swatch::Fill,
            (Some(_), false) => Swatch::Line,
            (Some(_), true) => Swatch::Dashed,
        };
        let swatch = swatch.style(color);
        let _ = write!(
            table,
            "<tr><td class=\"route\"><i class=\"swatch\" style=\"{swatch}\"></i>{}</td><td>{}</td>",
            escape(name),
            curve.requests
        );
        for (q, _) in TABLE_QUANTILES {
            let at = curve.points.iter().find(|p| (p.quantile - q).abs() < 1e-9).map(|p| p.ms);
            let _ = write!(table, "<td>{}</td>", ms(at));
        }
        table.push_str("</tr>\n");
    }
    table.push_str("</table>\n<p class=\"muted\">–: fewer answered requests than that percentile needs.</p>");
    let title = "Latency distribution";
    chart_section_with(
        out,
        title,
        &format!(
            "latency at each percentile of answered requests, from the send: the whole run{worst}{beside}. \
             The x axis spreads the tail (90%, 99%, 99.9% … equally apart); a curve ends where its requests do"
        ),
        &legend,
        &svg::percentile_chart(&Chart { title, y_title: "latency", unit: " ms", size: WIDE }, &drawn),
        &table,
    );
}

/// Failed requests per slice: no answer, by the CSV's `error` kind, and 5xx (the report's
/// "failed"), stacked as counts.
fn failures(out: &mut String, r: &Report, axis: &TimeAxis<'_>) {
    let t = &r.chart_time;
    let every = interval_text(t.interval_seconds);
    let title = "Failures over time";
    let layers = &r.charts.failures.layers;
    if layers.is_empty() {
        let _ = writeln!(
            out,
            "<section><h2>{title}</h2><p class=\"muted\">No failed request: every request got an answer, none a 5xx.</p></section>"
        );
        return;
    }
    let tips: Vec<String> = (0..axis.starts_ms.len())
        .map(|i| {
            let counts: Vec<String> =
                layers.iter().filter(|(_, c)| c[i] > 0).map(|(kind, c)| format!("{kind} {}", c[i])).collect();
            let counts = if counts.is_empty() { "no failure".to_string() } else { counts.join(" · ") };
            format!("{} UTC\nsent {}\n{counts}", t.points[i].start, t.points[i].sent)
        })
        .collect();
    let axis = TimeAxis { tooltips: &tips, ..*axis };
    let drawn: Vec<Layer<'_>> = layers
        .iter()
        .map(|(kind, counts)| Layer {
            name: kind,
            color: failure_color(kind),
            values: counts.iter().map(|n| *n as f64).collect(),
        })
        .collect();
    let legend: Vec<(&str, &str, Swatch)> = drawn.iter().map(|l| (l.name, l.color, Swatch::Fill)).collect();
    chart_section(
        out,
        title,
        &format!(
            "failed requests per {every} slice: no answer, by the kind in the CSV's error column, and 5xx answers"
        ),
        &legend,
        &svg::stacked_bars(
            &Chart { title, y_title: "failed requests", unit: "", size: WIDE },
            &axis,
            &drawn,
            Stack::Count,
        ),
    );
}

/// p50 and p99 over time of the busiest routes, one small chart each; a reference's dashed
/// beside them.
fn route_latency(out: &mut String, r: &Report) {
    let series = &r.charts.route_latency;
    if series.routes.is_empty() || series.starts_ms.is_empty() {
        return;
    }
    let sides = Sides::of(r);
    let sides = sides.as_ref();
    let every = interval_text(series.interval_seconds);
    let followed = if series.untracked {
        format!(" (of the first {SERIES_ROUTES} routes seen; later ones are not followed)")
    } else {
        String::new()
    };
    let aligned = if series.since_start { "; the runs are lined up on the time since each one's start" } else { "" };
    let mut legend = vec![("p50", P50_COLOR, Swatch::Fill), ("p99", P99_COLOR, Swatch::Fill)];
    legend.extend(Sides::legend(sides));
    let _ = writeln!(
        out,
        "<section><h2>Latency over time by route</h2><div class=\"legend\"><span class=\"muted\">p50 and p99 of \
         answered requests, ms from the send, per {every} slice: the {} busiest routes{}; each chart has its own \
         scale{aligned}</span></div>{}\n<div class=\"grid2\">",
        series.routes.len(),
        escape(&followed),
        svg::legend(&legend)
    );
    let interval_ms = (series.interval_seconds * 1e3).round() as i64;
    for line in &series.routes {
        let tips: Vec<String> = series
            .starts_ms
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let when = if series.since_start {
                    format!("{} since the start", svg::elapsed_label(*start, interval_ms))
                } else {
                    let when = chrono::DateTime::from_timestamp_millis(*start).map(crate::display::spreadsheet_time);
                    format!("{} UTC", when.unwrap_or_default())
                };
                let figures = |l: &SliceLatency| {
                    format!("answered {} · p50 {} · p99 {} ms", l.answered[i], ms(l.p50_ms[i]), ms(l.p99_ms[i]))
                };
                match (&line.reference, sides) {
                    (Some(reference), Some(s)) => format!(
                        "{when}\n{}\n{}: {}\n{}: {}",
                        line.route,
                        s.own,
                        figures(&line.latency),
                        s.reference,
                        figures(reference)
                    ),
                    _ => format!("{when}\n{}\n{}", line.route, figures(&line.latency)),
                }
            })
            .collect();
        let axis =
            TimeAxis { starts_ms: &series.starts_ms, since_start: series.since_start, interval_ms, tooltips: &tips };
        let mut lines = vec![
            Line { name: "p50", color: P50_COLOR, values: line.latency.p50_ms.clone(), dashed: false },
            Line { name: "p99", color: P99_COLOR, values: line.latency.p99_ms.clone(), dashed: false },
        ];
        if let Some(reference) = &line.reference {
            lines.push(Line { name: "p50", color: P50_COLOR, values: reference.p50_ms.clone(), dashed: true });
            lines.push(Line { name: "p99", color: P99_COLOR, values: reference.p99_ms.clone(), dashed: true });
        }
        let title = format!("Latency over time of {}", line.route);
        let _ = writeln!(
            out,
            "<div><h3><code>{}</code> <span class=\"muted\">· {} requests</span></h3>{}</div>",
            escape(&line.route),
            line.requests,
            svg::line_chart(&Chart { title: &title, y_title: "latency", unit: " ms", size: HALF }, &axis, &lines)
        );
    }
    out.push_str("</div></section>\n");
}

fn chart_section(out: &mut String, title: &str, note: &str, legend: &[(&str, &str, Swatch)], chart: &str) {
    chart_section_with(out, title, note, legend, chart, "");
}

/// A chart's section with `after` (HTML) under the chart.
fn chart_section_with(
    out: &mut String,
    title: &str,
    note: &str,
    legend: &[(&str, &str, Swatch)],
    chart: &str,
    after: &str,
) {
    let _ = writeln!(
        out,
        "<section><h2>{title}</h2><div class=\"legend\"><span class=\"muted\">{}</span></div>{}\n{chart}\n{after}</section>",
        escape(note),
        svg::legend(legend)
    );
}

/// What each run was, from its manifest; or, without one, what its CSV tells.
fn runs(out: &mut String, runs: &[RunInfo]) {
    if runs.is_empty() {
        return;
    }
    out.push_str("<section><h2>Run</h2>\n");
    for run in runs {
        if runs.len() > 1 {
            let _ = writeln!(out, "<h3><code>{}</code></h3>", escape(&run.files.join(", ")));
        }
        out.push_str("<dl class=\"meta\">\n");
        let mut item = |name: &str, value: String| {
            let _ = writeln!(out, "<dt>{name}</dt><dd>{value}</dd>");
        };
        if let Some(note) = &run.note {
            item("manifest", format!("<span class=\"bad\">none</span> — {}", escape(note)));
        }
        if let Some(target) = &run.target {
            let mock = if target == "mock" { " (the built-in mock server)" } else { "" };
            item("target", format!("<code>{}</code>{mock}", escape(target)));
        }
        if let Some(baseline) = &run.compare {
            item("compared with", format!("<code>{}</code> (B, the baseline target: A/B run)", escape(baseline)));
        }
        if let Some(noise) = &run.compare_noise {
            item("noise baseline", format!("<code>{}</code> (--compare-noise)", escape(noise)));
        }
        if !run.logs.is_empty() {
            let logs: Vec<String> = run
                .logs
                .iter()
                .map(|l| {
                    let digest = if l.sha256.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " · sha256 <code title=\"{0}\">{1}…</code>",
                            escape(&l.sha256),
                            escape(&l.sha256[..l.sha256.len().min(12)])
                        )
                    };
                    format!("<code>{}</code> · {}{digest}", escape(&l.name), human_bytes(l.bytes))
                })
                .collect();
            item(if logs.len() > 1 { "logs" } else { "log" }, logs.join("<br>"));
        }
        if let Some(format) = &run.format {
            item("log format", escape(format));
        }
        if let Some(started) = &run.started {
            let finished = run.finished.as_deref().map_or_else(|| "not recorded".to_string(), escape);
            item("started → finished", format!("{} → {finished} UTC", escape(started)));
        }
        if let (Some(first), Some(last)) = (&run.first_time, &run.last_time) {
            let file = if run.files.len() > 1 { "the CSVs" } else { "the CSV" };
            item(
                &format!("in {file}"),
                format!("{} rows · first send {} → last {} UTC", run.rows, escape(first), escape(last)),
            );
        }
        if let Some(shards) = &run.shards {
            item("shards", escape(&shards.label()));
        }
        if let Some(complete) = run.complete {
            let state = if complete {
                "<span class=\"good\">complete</span>: the run went to its end".to_string()
            } else {
                format!("<span class=\"bad\">incomplete</span>: {}", escape(&run.incomplete_reasons.join("; ")))
            };
            item("state", state);
        }
        if let Some(c) = &run.counts {
            item(
                "requests",
                format!(
                    "{} planned · {} sent · {} not sent · {} answered · {} no answer",
                    c.planned, c.sent, c.not_sent, c.answered, c.no_answer
                ),
            );
        }
        if let Some(version) = &run.sluice_version {
            let id =
                run.run_id.as_deref().map_or_else(String::new, |id| format!(" · run id <code>{}</code>", escape(id)));
            let manifest =
                run.manifest.as_deref().map_or_else(String::new, |m| format!(" · manifest <code>{}</code>", escape(m)));
            item("sluice", format!("{}{id}{manifest}", escape(version)));
        }
        out.push_str("</dl>\n");
        if let Some(options) = run.options.as_ref().and_then(|o| o.as_object()) {
            options_table(out, options);
        }
    }
    out.push_str("</section>\n");
}

/// The options that were set (neither null, false nor empty), collapsed: a run's options are a
/// screenful.
fn options_table(out: &mut String, options: &serde_json::Map<String, serde_json::Value>) {
    use serde_json::Value;
    let set: Vec<(&String, String)> = options
        .iter()
        .filter_map(|(key, value)| {
            let text = match value {
                Value::Null | Value::Bool(false) => return None,
                Value::Array(items) if items.is_empty() => return None,
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            Some((key, text))
        })
        .collect();
    let _ = writeln!(
        out,
        "<details><summary>Options ({} set; secrets redacted)</summary><table class=\"options\">",
        set.len()
    );
    for (key, text) in set {
        let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(key), escape(&text));
    }
    out.push_str("</table></details>\n");
}

fn mix(line: &RouteLine) -> String {
    let parts: Vec<(f64, &str, String)> = CLASS_ORDER
        .iter()
        .filter_map(|c| line.classes.get(*c).map(|n| (*n as f64, class_color(c), format!("{c}: {n}"))))
        .collect();
    svg::mix_bar(&parts)
}

fn routes(out: &mut String, r: &Report) {
    let t = &r.routes;
    if t.shown.is_empty() {
        return;
    }
    // A Kafka run's answers are acknowledgements: their column stands where 2xx does.
    let answered = if t.shown.iter().chain(&t.other).any(|l| l.classes.contains_key(ACKED)) { ACKED } else { "2xx" };
    let _ = writeln!(
        out,
        "<section><h2>Routes</h2><p class=\"muted\">{}; most failed first (no answer or 5xx), then status \
         mismatches, then p99.</p>\n<table>\n<tr><th>route</th><th>requests</th><th>rate/s</th><th>status mix</th>\
         <th>{answered}</th><th>4xx</th><th>5xx</th><th>no answer</th><th>failed</th><th>vs log</th><th>p50 ms</th><th>p99 ms</th></tr>",
        routes_count(t)
    );
    for line in t.shown.iter().chain(&t.other) {
        let name = if line.route == "other" { format!("<em>{}</em>", other_label(t)) } else { escape(&line.route) };
        let count = |c: &str| line.classes.get(c).copied().unwrap_or(0);
        let vs_log = if line.with_orig_status > 0 {
            percent(line.mismatches as f64 / line.with_orig_status as f64)
        } else {
            "–".into()
        };
        let failed_class = if line.failed > 0 { " class=\"bad\"" } else { "" };
        let _ = writeln!(
            out,
            "<tr><td class=\"route\">{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td{failed_class}>{}</td><td>{vs_log}</td><td>{}</td><td>{}</td></tr>",
            line.requests,
            per_second(line.rate),
            mix(line),
            count(answered),
            count("4xx"),
            count("5xx"),
            count("error"),
            percent(line.error_rate),
            ms(line.p50_ms),
            ms(line.p99_ms)
        );
    }
    out.push_str("</table></section>\n");
}

/// How a matrix cell compares with the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Agreement {
    Same,
    Differs,
    /// No logged status, or logged 3xx answered 2xx (a logged 304 agrees, a 301 does not).
    Neutral,
}

fn agreement(logged: &str, replayed: &str) -> Agreement {
    match (logged, replayed) {
        // A Kafka acknowledgement is no answer to compare with a logged status.
        ("none", _) | ("3xx", "2xx") | (_, ACKED) => Agreement::Neutral,
        (l, r) if l == r => Agreement::Same,
        _ => Agreement::Differs,
    }
}

/// A cell tinted by its share of the row: green where the class matches the log, red where not.
fn heat_cell(n: u64, row_total: u64, agreement: Agreement) -> String {
    let share = if row_total == 0 { 0.0 } else { n as f64 / row_total as f64 };
    let alpha = if n == 0 { 0.0 } else { 0.12 + 0.6 * share };
    let rgb = match agreement {
        Agreement::Neutral => "120,130,140",
        Agreement::Same => "46,158,91",
        Agreement::Differs => "214,69,65",
    };
    format!("<td class=\"heat\" style=\"background:rgba({rgb},{alpha:.2})\" title=\"{}\">{n}</td>", percent(share))
}

fn status(out: &mut String, r: &Report) {
    let m = &r.status_matrix;
    if m.logged.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Status class: logged → replayed</h2><p class=\"muted\">Rows: the class in the access log; \
         columns: what the replay got. Red cells are requests that did not get the class production gave them; \
         a logged 304 answered with a 2xx agrees (a replay sends no cache validators).</p>\n\
         <table class=\"matrix\">\n<tr><th>logged \\ replayed</th>",
    );
    for c in &m.replayed {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("<th>total</th><th>differs</th></tr>\n");
    for ((logged, counts), differs) in m.logged.iter().zip(&m.counts).zip(&m.differs) {
        let total: u64 = counts.iter().sum();
        let _ = write!(out, "<tr><th>{logged}</th>");
        for (class, n) in m.replayed.iter().zip(counts) {
            out.push_str(&heat_cell(*n, total, agreement(logged, class)));
        }
        let differs = differs.map_or_else(|| "–".to_string(), |d| percent(d as f64 / total as f64));
        let _ = writeln!(out, "<td>{total}</td><td>{differs}</td></tr>");
    }
    out.push_str("</table>\n");
    if let Some(sentence) = mismatch_sentence(m) {
        let _ = writeln!(out, "<p>{sentence}.</p>");
    }
    mismatched_routes(out, r);
    out.push_str("</section>\n");
}

fn mismatched_routes(out: &mut String, r: &Report) {
    if r.mismatched_routes.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Routes where the replay differs most from the log</h2>\n<table>\n<tr><th>route</th><th>differ</th>\
         <th>of</th><th>share</th><th class=\"text\">most often (logged → replayed)</th></tr>\n",
    );
    for m in &r.mismatched_routes {
        let _ = writeln!(
            out,
            "<tr><td class=\"route\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
            escape(&m.route),
            m.mismatches,
            m.with_orig_status,
            percent(m.share),
            escape(&transitions_text(&m.transitions))
        );
    }
    out.push_str("</table>\n");
}

/// Client sessions (a `--sessions` run): their time's p50 and p99 by length, beside the table of
/// every percentile; then the slowest sessions with their routes in logged order.
fn journeys(out: &mut String, r: &Report) {
    let Some(j) = &r.journeys else { return };
    let labels: Vec<String> = j.by_length.iter().map(|l| l.length.clone()).collect();
    let tips: Vec<String> = j
        .by_length
        .iter()
        .map(|l| {
            let p = &l.total_ms;
            format!(
                "length {}: {} sessions\np50 {:.2} · p90 {:.2} · p99 {:.2} · max {:.2} ms",
                l.length, l.sessions, p.p50, p.p90, p.p99, p.max
            )
        })
        .collect();
    let bars = [
        Layer { name: "p50", color: P50_COLOR, values: j.by_length.iter().map(|l| l.total_ms.p50).collect() },
        Layer { name: "p99", color: P99_COLOR, values: j.by_length.iter().map(|l| l.total_ms.p99).collect() },
    ];
    let title = "Session time by length";
    let chart = svg::grouped_bars(
        &Chart { title, y_title: "session time", unit: " ms", size: HALF },
        &GroupAxis { labels: &labels, title: "session length, requests", tooltips: &tips },
        &bars,
    );
    let _ = writeln!(
        out,
        "<section><h2>Sessions</h2><p class=\"muted\">{} sessions by length in requests; time from the first planned \
         send to the last answer{}.</p>\n<div class=\"grid2\"><div>{}\n{chart}</div><div>",
        j.sessions,
        escape(&j.split_note()),
        svg::legend(&bars.iter().map(|b| (b.name, b.color, Swatch::Fill)).collect::<Vec<_>>())
    );
    cells_table(out, &super::SESSION_LENGTH_HEADERS, j.by_length.iter().map(super::session_length_cells), false);
    // Apart from the tables above, which end at different heights.
    out.push_str("</div></div>\n<div style=\"margin-top:18px\">");
    let slowest = j.slowest.iter().map(|s| super::slowest_session_cells(s, &r.files));
    cells_table(out, &super::SLOWEST_SESSION_HEADERS, slowest, true);
    out.push_str("</div></section>\n");
}

/// A table of text cells, each escaped: the first column left-aligned, the others right-aligned as
/// numbers; with `routes_last`, the last column holds routes (left-aligned, monospace, wrapped).
fn cells_table<R: AsRef<[String]>>(
    out: &mut String,
    headers: &[&str],
    rows: impl Iterator<Item = R>,
    routes_last: bool,
) {
    let last = headers.len().saturating_sub(1);
    out.push_str("<table>\n<tr>");
    for (i, header) in headers.iter().enumerate() {
        let class = if routes_last && i == last { " class=\"text\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", escape(header));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.as_ref().iter().enumerate() {
            let class = if routes_last && i == last { " class=\"route text\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The run summary as text, for the numbers the cards leave out.
fn details(out: &mut String, r: &Report) {
    let summary = super::text::summary(r);
    let _ = writeln!(out, "<section><h2>Summary</h2><pre>{}</pre></section>", escape(summary.trim_end()));
}
