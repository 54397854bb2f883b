//! The report for a terminal: the run summary's layout, then aligned tables, all within
//! [`WIDTH`] columns.

use crate::display::human_bytes;
use std::fmt::Write;

use super::{END_TO_END_COLUMNS, end_to_end_counts, end_to_end_rows};
use super::{
    interval_text, mismatch_sentence, ms, other_label, per_second, rate_line, routes_count, slice_label, spans_one_day,
    transitions_text,
};
use crate::analysis::assert::{percent, verdicts_text};
use crate::analysis::figures::{Report, RouteLine};
use crate::display::{join_counts, latency_lines};

pub const WIDTH: usize = 100;
const INDENT: &str = "  ";

pub fn render(report: &Report) -> String {
    let mut t = summary(report);
    t += &end_to_end(report);
    t += &shards(report);
    t += &routes_and_status(report);
    t += &over_time(report);
    t += &journeys(report);
    t += &super::compare::text(report);
    if !report.assertions.is_empty() {
        t += "\nassertions\n";
        t += &verdicts_text(&report.assertions);
    }
    t
}

/// The per-route and status-difference sections (what `sluice replay --report` adds).
pub fn routes_and_status(report: &Report) -> String {
    let mut t = routes(report);
    t += &status_matrix(report);
    t += &mismatched_routes(report);
    t
}

/// The run summary's lines, over the rows.
pub fn summary(r: &Report) -> String {
    let o = &r.overview;
    let mut t = String::new();
    let skipped = if r.skipped_rows > 0 { format!(" ({} skipped)", r.skipped_rows) } else { String::new() };
    let shards = r.shards.as_ref().map_or_else(String::new, |s| format!("; {}", s.headline));
    let _ = writeln!(t, "sluice report: {} — {} rows{skipped}{shards}", r.files.join(", "), r.rows);
    for gap in r.shards.iter().flat_map(|s| &s.gaps) {
        let _ = writeln!(t, "  partial    {gap}");
    }
    let requests = format!("  requests   {} sent in {:.2}s: {}", o.requests, o.seconds, rate_line(o));
    let not_sent = if o.not_sent > 0 { format!(", {} not sent", o.not_sent) } else { String::new() };
    let answers = format!("{} answered, {} no answer{not_sent}", o.responses, o.errors);
    if requests.chars().count() + answers.len() + 2 <= WIDTH {
        let _ = writeln!(t, "{requests}; {answers}");
    } else {
        let _ = writeln!(t, "{requests};\n             {answers}");
    }
    if !o.statuses.is_empty() {
        let _ = writeln!(t, "  statuses   {}", join_counts(&o.statuses, o.requests));
    }
    if !o.error_kinds.is_empty() {
        let _ = writeln!(t, "  no answer  {}", join_counts(&o.error_kinds, o.requests));
    }
    let _ = writeln!(t, "  failed     {} ({}): no answer or 5xx", o.failed, percent(o.error_rate));
    t += &latency_lines(o.responses, &o.latency_ms, &o.latency_from_schedule_ms, &o.lag);
    let _ = writeln!(t, "  received   {}", human_bytes(o.bytes_received));
    match o.mismatch_rate {
        Some(rate) => {
            let _ = writeln!(
                t,
                "  vs log     {} of {} requests got another status class than logged ({})",
                o.mismatches,
                o.with_orig_status,
                percent(rate)
            );
        }
        None => t += "  vs log     no logged status to compare with\n",
    }
    if let (Some(first), Some(last)) = (&o.first_sent, &o.last_sent) {
        let _ = writeln!(t, "  sent       {first} to {last} UTC");
    }
    for problem in &r.problems {
        let _ = writeln!(t, "  skipped    {problem}");
    }
    t
}

/// End to end (a Kafka run with `--consume`): how many outputs came, how long they took, and the
/// same by route (for Kafka, by partition of the input topic).
fn end_to_end(r: &Report) -> String {
    let Some(e) = &r.end_to_end else { return String::new() };
    let mut t = format!("\nend to end — {}; from the send to the output message\n", end_to_end_counts(e));
    if e.matched > 0 {
        let p = &e.e2e_ms;
        let _ = writeln!(
            t,
            "{INDENT}e2e        p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
            p.p50, p.p90, p.p99, p.p999, p.max
        );
    }
    let rows: Vec<Vec<String>> = end_to_end_rows(e).into_iter().map(Vec::from).collect();
    if !rows.is_empty() {
        t += &Table { headers: END_TO_END_COLUMNS.map(String::from).to_vec(), rows }.render();
    }
    t
}

/// A line per shard: its own rate and lag, so a machine that fell behind shows.
fn shards(r: &Report) -> String {
    let Some(view) = &r.shards else { return String::new() };
    let several_runs = view.shards.iter().any(|s| s.run_id != view.shards[0].run_id);
    let headers: Vec<String> =
        ["shard", "requests", "rate/s", "lag p50 ms", "lag p99 ms", "lag max ms", "file"].map(String::from).to_vec();
    let rows = view
        .shards
        .iter()
        .map(|s| {
            let shard = if several_runs {
                format!("{}:{}/{}", s.run_id, s.index, s.count)
            } else {
                format!("{}/{}", s.index, s.count)
            };
            let mut row = vec![
                shard,
                s.requests.to_string(),
                per_second(s.achieved_rate),
                format!("{:.2}", s.lag_p50_ms),
                format!("{:.2}", s.lag_p99_ms),
                format!("{:.2}", s.lag_max_ms),
            ];
            row.push(if s.complete { s.file.clone() } else { format!("{} — {}", s.file, s.state()) });
            row
        })
        .collect();
    let table = Table { headers, rows }.render_left_last();
    format!("\nshards — {}; each shard's own achieved rate and lag behind the plan\n{table}", view.headline)
}

/// Class columns present in any shown line, in class order.
fn class_columns<'a>(lines: impl Iterator<Item = &'a RouteLine>) -> Vec<String> {
    let order = crate::analysis::figures::CLASS_ORDER;
    let mut present: Vec<String> = Vec::new();
    for line in lines {
        for class in line.classes.keys() {
            if !present.contains(class) {
                present.push(class.clone());
            }
        }
    }
    present.sort_by_key(|c| order.iter().position(|o| o == c));
    present
}

fn routes(r: &Report) -> String {
    let table = &r.routes;
    if table.shown.is_empty() {
        return String::new();
    }
    let lines: Vec<&RouteLine> = table.shown.iter().chain(&table.other).collect();
    let classes = class_columns(lines.iter().copied());
    let mut headers: Vec<String> = vec!["route".into(), "requests".into(), "rate/s".into()];
    headers.extend(classes.iter().cloned());
    headers.extend(["failed".into(), "p50 ms".into(), "p99 ms".into()]);
    let rows = lines
        .iter()
        .map(|l| {
            let name = if l.route == "other" { other_label(table) } else { l.route.clone() };
            let mut row = vec![name, l.requests.to_string(), per_second(l.rate)];
            row.extend(classes.iter().map(|c| l.classes.get(c).copied().unwrap_or(0).to_string()));
            row.extend([percent(l.error_rate), ms(l.p50_ms), ms(l.p99_ms)]);
            row
        })
        .collect();
    let heading = routes_count(table);
    format!(
        "\nroutes — {heading}; most failed first (no answer or 5xx), then status mismatches, then p99\n{}",
        Table { headers, rows }.render()
    )
}

fn status_matrix(r: &Report) -> String {
    let m = &r.status_matrix;
    if m.logged.is_empty() {
        return String::new();
    }
    let mut headers: Vec<String> = vec!["logged \\ replayed".into()];
    headers.extend(m.replayed.iter().map(|c| c.to_string()));
    headers.extend(["total".into(), "differs".into()]);
    let rows = m
        .logged
        .iter()
        .zip(&m.counts)
        .zip(&m.differs)
        .map(|((logged, counts), differs)| {
            let total: u64 = counts.iter().sum();
            let differs = differs.map_or_else(|| "–".to_string(), |d| percent(d as f64 / total as f64));
            let mut row = vec![logged.to_string()];
            row.extend(counts.iter().map(u64::to_string));
            row.extend([total.to_string(), differs]);
            row
        })
        .collect();
    let mut t = "\nstatus class: logged in the access log (rows) → replayed (columns)\n".to_string();
    t += &Table { headers, rows }.render();
    if let Some(sentence) = mismatch_sentence(m) {
        let _ = writeln!(t, "{INDENT}{sentence}");
    }
    if m.logged.contains(&"3xx") {
        let _ = writeln!(t, "{INDENT}(a logged 304 answered with a 2xx agrees: a replay sends no cache validators)");
    }
    t
}

fn mismatched_routes(r: &Report) -> String {
    if r.mismatched_routes.is_empty() {
        return String::new();
    }
    let headers = ["route", "differ", "of", "share", "most often (logged→replayed)"].map(String::from).to_vec();
    let rows = r
        .mismatched_routes
        .iter()
        .map(|m| {
            vec![
                m.route.clone(),
                m.mismatches.to_string(),
                m.with_orig_status.to_string(),
                percent(m.share),
                transitions_text(&m.transitions),
            ]
        })
        .collect();
    format!("\nroutes where the replay differs most from the log\n{}", Table { headers, rows }.render_left_last())
}

fn over_time(r: &Report) -> String {
    let points = &r.over_time.points;
    if points.is_empty() {
        return String::new();
    }
    let one_day = spans_one_day(points);
    let sub_second = r.over_time.interval_seconds < 1.0;
    // A plan that varies gets its rate per slice next to the achieved one.
    let planned = points.iter().any(|p| p.planned_rate.is_some());
    let mut headers: Vec<String> = ["time", "sent", "rate/s"].map(String::from).to_vec();
    if planned {
        headers.push("plan/s".into());
    }
    headers.extend(["failed", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "lag max"].map(String::from));
    let rows = points
        .iter()
        .map(|p| {
            let mut row = vec![slice_label(p, one_day, sub_second), p.sent.to_string(), per_second(p.rate)];
            row.extend(p.planned_rate.map(per_second));
            row.extend([
                p.failed.to_string(),
                p.errors.to_string(),
                ms(p.p50_ms),
                ms(p.p90_ms),
                ms(p.p99_ms),
                ms(p.max_ms),
                format!("{:.2}", p.lag_max_ms),
            ]);
            row
        })
        .collect();
    let day = if one_day { format!(", {}", &points[0].start[..10]) } else { String::new() };
    let plan_note = if planned {
        "\n  plan/s: requests whose scheduled_at falls in the slice, sent or not, per second"
    } else {
        ""
    };
    format!(
        "\nover time — {} slices by send time (UTC{day}); rate/s over the part each slice covers{plan_note}\n{}",
        interval_text(r.over_time.interval_seconds),
        Table { headers, rows }.render()
    )
}

/// Characters of a slowest session's route chain shown (the table's other columns take the rest).
const ROUTE_CHAIN: usize = 50;

/// Client sessions (a `--sessions` run): by length, then the slowest with their routes.
fn journeys(r: &Report) -> String {
    let Some(j) = &r.journeys else { return String::new() };
    let headers = super::SESSION_LENGTH_HEADERS.map(String::from).to_vec();
    let rows = j.by_length.iter().map(super::session_length_cells).collect();
    let mut t = format!(
        "\nsessions — {} by length in requests; time from the first planned send to the last answer{}\n{}",
        j.sessions,
        j.split_note(),
        Table { headers, rows }.render()
    );
    let headers = super::SLOWEST_SESSION_HEADERS.map(String::from).to_vec();
    let rows = j
        .slowest
        .iter()
        .map(|s| {
            let [name, requests, failed, total, chain] = super::slowest_session_cells(s, &r.files);
            vec![name, requests, failed, total, elide(&chain, ROUTE_CHAIN)]
        })
        .collect();
    t.push('\n');
    t += &Table { headers, rows }.render_left_last();
    t
}

/// A plain table: the first column left-aligned and shrunk (middle-elided) to fit [`WIDTH`],
/// the others right-aligned.
struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

const GAP: &str = "  ";

impl Table {
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let rest: usize = widths[1..].iter().map(|w| w + GAP.len()).sum();
        widths[0] = widths[0].min(WIDTH.saturating_sub(INDENT.len() + rest)).max(12);
        widths
    }

    fn render(&self) -> String {
        self.render_with(false)
    }

    /// The last column left-aligned and unpadded (free text).
    fn render_left_last(&self) -> String {
        self.render_with(true)
    }

    fn render_with(&self, left_last: bool) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(INDENT);
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                let last = i + 1 == row.len();
                if i == 0 {
                    let _ = write!(line, "{:<w$}", elide(cell, *w));
                } else if last && left_last {
                    let _ = write!(line, "{GAP}{cell}");
                } else {
                    let _ = write!(line, "{GAP}{cell:>w$}");
                }
            }
            out += line.trim_end();
            out.push('\n');
        }
        out
    }
}

/// Shortens `s` to `width` characters by replacing its middle with `…` (both ends of a route
/// say more than its middle).
fn elide(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let chars: Vec<char> = s.chars().collect();
    chars[..head].iter().chain(['…'].iter()).chain(&chars[n - tail..]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_elided_in_the_middle() {
        assert_eq!(elide("/abcdefghij", 7), "/ab…hij");
        assert_eq!(elide("/abc", 7), "/abc");
    }

    #[test]
    fn tables_fit_the_terminal() {
        let t = Table {
            headers: vec!["route".into(), "n".into()],
            rows: vec![vec!["/x".repeat(80), "12345678".repeat(4)]],
        };
        let text = t.render();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }
}
