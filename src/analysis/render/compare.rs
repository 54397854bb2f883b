//! The comparison sections ([`crate::analysis::compare`]): target against baseline in a
//! `--compare` run, and this run against `--baseline`. One table model, rendered as text,
//! Markdown and HTML, so the three say the same.

use std::fmt::Write;

use crate::analysis::assert::percent;
use crate::analysis::compare::{AbLine, AbView, BaselineLine, BaselineView, LatencyChange, Ratio};
use crate::analysis::figures::Report;

/// A section: a title, a sentence, a table and notes under it.
struct Table {
    title: String,
    note: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// `1.52 [1.31–1.77]`.
fn ratio(r: Option<&Ratio>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.2} [{:.2}–{:.2}]", r.ratio, r.low, r.high))
}

/// `3.10 / 2.05`.
fn pair(r: Option<&Ratio>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{} / {}", ms(r.new_ms), ms(r.old_ms)))
}

fn latency_cells(l: &LatencyChange) -> [String; 5] {
    [pair(l.p50.as_ref()), ratio(l.p50.as_ref()), pair(l.p99.as_ref()), ratio(l.p99.as_ref()), l.change.as_str().into()]
}

const SAMPLED: &str = "latencies of routes marked * are a uniform sample of 2000 rows per side";

fn ab_table(v: &AbView) -> Table {
    let row = |l: &AbLine| {
        let mut cells = vec![
            format!("{}{}", l.route, if l.sampled { "*" } else { "" }),
            l.compared.to_string(),
            format!("{} ({})", l.status_mismatches, percent(l.status_mismatch_rate)),
            format!("{} ({})", l.body_mismatches, percent(l.body_mismatch_rate)),
            l.noise.to_string(),
        ];
        cells.extend(latency_cells(&l.latency));
        cells
    };
    let mut rows = vec![row(&v.overall)];
    rows.extend(v.routes.iter().map(row));
    let mut notes = Vec::new();
    for l in v.routes.iter().filter(|l| l.status_example.is_some() || l.body_example.is_some()) {
        for (what, e) in [("status", &l.status_example), ("body", &l.body_example)] {
            if let Some(e) = e {
                notes.push(format!(
                    "{} {what} differs, e.g. seq {} {} ({} vs {})",
                    l.route, e.seq, e.url, e.target, e.baseline
                ));
            }
        }
    }
    if v.other_routes > 0 {
        notes.push(format!("{} more routes not listed", v.other_routes));
    }
    if v.overall.too_large > 0 {
        notes
            .push(format!("{} rows had a body over --compare-body-limit: compared byte for byte", v.overall.too_large));
    }
    if v.overall.sampled || v.routes.iter().any(|l| l.sampled) {
        notes.push(SAMPLED.into());
    }
    Table {
        title: "Target vs baseline (--compare)".into(),
        note: "Rows whose status or body differ (noise aside: differences the two baselines also show), and \
               latency target / baseline in ms with the ratio and its 95% bootstrap interval."
            .into(),
        headers: vec![
            "route",
            "compared",
            "status ≠",
            "body ≠",
            "noise",
            "p50 ms A / B",
            "p50 ratio",
            "p99 ms A / B",
            "p99 ratio",
            "latency",
        ],
        rows,
        notes,
    }
}

fn baseline_table(v: &BaselineView) -> Table {
    let row = |l: &BaselineLine| {
        let mut cells = vec![
            format!("{}{}", l.route, if l.sampled { "*" } else { "" }),
            format!("{} / {}", l.requests, l.baseline_requests),
            format!("{} / {}", percent(l.error_rate), percent(l.baseline_error_rate)),
        ];
        cells.extend(latency_cells(&l.latency));
        cells
    };
    let mut rows = vec![row(&v.overall)];
    rows.extend(v.routes.iter().map(row));
    let mut notes = Vec::new();
    notes.push(match v.changed_routes.as_slice() {
        [] => "no route changed beyond the noise".to_string(),
        changed => format!("changed: {}", changed.join(", ")),
    });
    if (v.common_shift - 1.0).abs() > 0.005 {
        notes.push(format!(
            "routes are judged against the p50 ratio most routes share ({:.2}): what every route shows is this run's, \
             not a route's",
            v.common_shift
        ));
    }
    if v.other_routes > 0 {
        notes.push(format!("{} more routes not listed", v.other_routes));
    }
    if v.overall.sampled || v.routes.iter().any(|l| l.sampled) {
        notes.push(SAMPLED.into());
    }
    Table {
        title: format!("This run vs the baseline ({})", v.files.join(", ")),
        note: "Each figure as this run / the baseline; the ratio is this run ÷ the baseline with its 95% bootstrap \
               interval. A route is slower or faster when the whole interval is beyond ±10% and the percentile moved \
               1 ms or more."
            .into(),
        headers: vec![
            "route",
            "requests",
            "failed",
            "p50 ms new / base",
            "p50 ratio",
            "p99 ms new / base",
            "p99 ratio",
            "latency",
        ],
        rows,
        notes,
    }
}

fn tables(r: &Report) -> Vec<Table> {
    r.compare.iter().map(ab_table).chain(r.baseline.iter().map(baseline_table)).collect()
}

/// Aligned columns for a terminal: without the percentile pairs (the ratios carry them; the
/// other formats show both), so a table fits about 100 columns.
pub fn text(r: &Report) -> String {
    let mut t = String::new();
    for mut table in tables(r) {
        let pairs: Vec<usize> = table
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.ends_with(" / B") || h.ends_with(" / base"))
            .map(|(i, _)| i)
            .collect();
        for i in pairs.into_iter().rev() {
            table.headers.remove(i);
            table.rows.iter_mut().for_each(|row| {
                row.remove(i);
            });
        }
        let _ = writeln!(t, "\n{}", table.title);
        let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
        for row in &table.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                .collect();
            format!("  {}\n", padded.join("  ").trim_end())
        };
        t += &line(table.headers.clone());
        for row in &table.rows {
            t += &line(row.iter().map(String::as_str).collect());
        }
        for note in &table.notes {
            let _ = writeln!(t, "  {note}");
        }
    }
    t
}

/// GitHub-flavoured Markdown tables.
pub fn markdown(r: &Report) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut t = String::new();
    for table in tables(r) {
        let _ = writeln!(t, "\n## {}\n\n{}\n", cell(&table.title), table.note);
        let _ = writeln!(t, "| {} |", table.headers.join(" | "));
        let _ = writeln!(t, "|---|{}", "---:|".repeat(table.headers.len() - 1));
        for row in &table.rows {
            let cells: Vec<String> =
                row.iter().enumerate().map(|(i, c)| if i == 0 { format!("`{}`", cell(c)) } else { cell(c) }).collect();
            let _ = writeln!(t, "| {} |", cells.join(" | "));
        }
        if !table.notes.is_empty() {
            t.push('\n');
        }
        for note in &table.notes {
            let _ = writeln!(t, "- {}", cell(note));
        }
    }
    t
}

/// One `<section>` per comparison, in the report's table style; changed routes stand out.
pub fn html(r: &Report) -> String {
    let escape = super::html::escape;
    let mut out = String::new();
    for table in tables(r) {
        let _ = writeln!(
            out,
            "<section>\n<h2>{}</h2>\n<p class=\"muted\">{}</p>\n<table>",
            escape(&table.title),
            escape(&table.note)
        );
        out.push_str("<tr>");
        for (i, h) in table.headers.iter().enumerate() {
            let class = if i == 0 { " class=\"text\"" } else { "" };
            let _ = write!(out, "<th{class}>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for row in &table.rows {
            let flagged = row.last().is_some_and(|c| c == "slower" || c == "faster");
            let style = if flagged { " style=\"background:#fff4e5\"" } else { "" };
            let _ = write!(out, "<tr{style}>");
            for (i, c) in row.iter().enumerate() {
                let class = if i == 0 { " class=\"route\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        for note in &table.notes {
            let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape(note));
        }
        out.push_str("</section>\n");
    }
    out
}
