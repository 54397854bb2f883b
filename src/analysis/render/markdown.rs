//! The report as GitHub-flavoured Markdown: for a CI job's summary or a pull-request comment.

use crate::display::human_bytes;
use std::fmt::Write;

use super::{END_TO_END_COLUMNS, end_to_end_counts, end_to_end_rows};
use super::{
    interval_text, mismatch_sentence, ms, other_label, per_second, rate_line, routes_count, slice_label, spans_one_day,
    transitions_text,
};
use crate::analysis::assert::percent;
use crate::analysis::figures::{Report, RouteLine};
use crate::display::join_counts;

pub fn render(r: &Report) -> String {
    let mut t = String::new();
    summary(&mut t, r);
    end_to_end(&mut t, r);
    shards(&mut t, r);
    assertions(&mut t, r);
    routes(&mut t, r);
    status_matrix(&mut t, r);
    mismatched_routes(&mut t, r);
    t += &super::compare::markdown(r);
    over_time(&mut t, r);
    journeys(&mut t, r);
    t
}

/// A table cell: pipes escaped, code spans for routes so `{id}` and `*` show as written.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('|', "\\|").replace('`', "'"))
}

/// `aligns` has one letter per column: `l`eft or `r`ight (the rest repeat the last letter).
fn table(t: &mut String, headers: &[&str], aligns: &str, rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(t, "| {} |", headers.join(" | "));
    let last = aligns.chars().last().unwrap_or('l');
    let rule: Vec<&str> =
        (0..headers.len()).map(|i| if aligns.chars().nth(i).unwrap_or(last) == 'r' { "---:" } else { "---" }).collect();
    let _ = writeln!(t, "|{}|", rule.join("|"));
    for row in rows {
        let _ = writeln!(t, "| {} |", row.join(" | "));
    }
}

/// End to end (a Kafka run with `--consume`): outputs matched and lost, their latency, by route.
fn end_to_end(t: &mut String, r: &Report) {
    let Some(e) = &r.end_to_end else { return };
    let _ = writeln!(t, "\n### End to end\n\n{}; from the send to the output message.\n", end_to_end_counts(e));
    if e.matched > 0 {
        let p = &e.e2e_ms;
        let _ = writeln!(
            t,
            "- **e2e** p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} ms\n",
            p.p50, p.p90, p.p99, p.p999, p.max
        );
    }
    let rows = end_to_end_rows(e);
    if !rows.is_empty() {
        // `other`, last, is a label rather than a route.
        let routes = e.routes.len();
        let rows = rows.into_iter().enumerate().map(|(i, mut row)| {
            if i < routes {
                row[0] = code(&row[0]);
            }
            Vec::from(row)
        });
        table(t, &END_TO_END_COLUMNS, "lr", rows);
    }
}

/// A row per shard: its own achieved rate and lag.
fn shards(t: &mut String, r: &Report) {
    let Some(view) = &r.shards else { return };
    let _ = writeln!(t, "\n### Shards — {}\n", view.headline);
    for gap in &view.gaps {
        let _ = writeln!(t, "- **partial** {gap}");
    }
    if !view.gaps.is_empty() {
        t.push('\n');
    }
    let rows = view.shards.iter().map(|s| {
        vec![
            code(&s.file),
            format!("{} of {}", s.index, s.count),
            s.requests.to_string(),
            per_second(s.achieved_rate),
            format!("{:.2}", s.lag_p50_ms),
            format!("{:.2}", s.lag_p99_ms),
            s.state(),
        ]
    });
    table(t, &["shard file", "shard", "requests", "rate/s", "lag p50 ms", "lag p99 ms", "state"], "lrrrrrl", rows);
}

fn summary(t: &mut String, r: &Report) {
    let o = &r.overview;
    let _ = writeln!(t, "## sluice report\n");
    let files: Vec<String> = r.files.iter().map(|f| code(f)).collect();
    let skipped = if r.skipped_rows > 0 { format!(", {} skipped", r.skipped_rows) } else { String::new() };
    let shards = r.shards.as_ref().map_or_else(String::new, |s| format!("; {}", s.headline));
    let _ = writeln!(t, "{} — {} rows{skipped}{shards}\n", files.join(", "), r.rows);
    let _ = writeln!(t, "- **requests** {} sent in {:.2}s: {}", o.requests, o.seconds, rate_line(o));
    let _ = writeln!(t, "- **responses** {}, **errors** {} (no answer)", o.responses, o.errors);
    let _ = writeln!(t, "- **failed** {} ({}): no answer or 5xx", o.failed, percent(o.error_rate));
    if !o.statuses.is_empty() {
        let _ = writeln!(t, "- **statuses** {}", join_counts(&o.statuses, o.requests));
    }
    if !o.error_kinds.is_empty() {
        let _ = writeln!(t, "- **error kinds** {}", join_counts(&o.error_kinds, o.requests));
    }
    let p = &o.latency_ms;
    let s = &o.latency_from_schedule_ms;
    let _ = writeln!(
        t,
        "- **latency** p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} ms",
        p.p50, p.p90, p.p99, p.p999, p.max
    );
    let _ = writeln!(
        t,
        "- **from plan** p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} ms",
        s.p50, s.p90, s.p99, s.p999, s.max
    );
    let _ = writeln!(
        t,
        "- **lag** p50 {:.3} · p99 {:.3} · max {:.3} ms behind plan",
        o.lag.p50_ms, o.lag.p99_ms, o.lag.max_ms
    );
    let _ = writeln!(t, "- **received** {}", human_bytes(o.bytes_received));
    if let Some(rate) = o.mismatch_rate {
        let _ = writeln!(
            t,
            "- **vs log** {} of {} requests got another status class than logged ({})",
            o.mismatches,
            o.with_orig_status,
            percent(rate)
        );
    }
    for problem in &r.problems {
        let _ = writeln!(t, "- **skipped** {}", problem.replace('|', "\\|"));
    }
}

fn assertions(t: &mut String, r: &Report) {
    if r.assertions.is_empty() {
        return;
    }
    let _ = writeln!(t, "\n### Assertions\n");
    let rows = r.assertions.iter().map(|v| {
        let mark = if v.passed { "✅ PASS" } else { "❌ FAIL" };
        vec![mark.to_string(), code(&v.assertion), v.measured.replace('|', "\\|")]
    });
    table(t, &["", "assertion", "measured"], "l", rows);
}

fn routes(t: &mut String, r: &Report) {
    let table_ = &r.routes;
    if table_.shown.is_empty() {
        return;
    }
    let lines: Vec<&RouteLine> = table_.shown.iter().chain(&table_.other).collect();
    let order = crate::analysis::figures::CLASS_ORDER;
    let classes: Vec<&str> =
        order.iter().copied().filter(|c| lines.iter().any(|l| l.classes.contains_key(*c))).collect();
    let _ = writeln!(
        t,
        "\n### Routes\n\n{}; most failed requests first (no answer or 5xx), then status mismatches, then p99.\n",
        routes_count(table_)
    );
    let mut headers = vec!["route", "requests", "rate/s"];
    headers.extend(&classes);
    headers.extend(["failed", "p50 ms", "p99 ms"]);
    let rows = lines.iter().map(|l| {
        let name = if l.route == "other" { other_label(table_) } else { code(&l.route) };
        let mut row = vec![name, l.requests.to_string(), per_second(l.rate)];
        row.extend(classes.iter().map(|c| l.classes.get(*c).copied().unwrap_or(0).to_string()));
        row.extend([percent(l.error_rate), ms(l.p50_ms), ms(l.p99_ms)]);
        row
    });
    table(t, &headers, "lr", rows);
}

fn status_matrix(t: &mut String, r: &Report) {
    let m = &r.status_matrix;
    if m.logged.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "\n### Status class: logged → replayed\n\nRows: the class in the access log; columns: what the replay got.\n"
    );
    let mut headers = vec!["logged \\ replayed"];
    headers.extend(&m.replayed);
    headers.extend(["total", "differs"]);
    let rows = m.logged.iter().zip(&m.counts).zip(&m.differs).map(|((logged, counts), differs)| {
        let total: u64 = counts.iter().sum();
        let mut row = vec![format!("**{logged}**")];
        row.extend(counts.iter().map(u64::to_string));
        row.push(total.to_string());
        row.push(differs.map_or_else(|| "–".to_string(), |d| percent(d as f64 / total as f64)));
        row
    });
    table(t, &headers, "lr", rows);
    if let Some(sentence) = mismatch_sentence(m) {
        let _ = writeln!(t, "\n{sentence}.");
    }
    if m.logged.contains(&"3xx") {
        let _ = writeln!(t, "\nA logged 304 answered with a 2xx agrees: a replay sends no cache validators.");
    }
}

fn mismatched_routes(t: &mut String, r: &Report) {
    if r.mismatched_routes.is_empty() {
        return;
    }
    let _ = writeln!(t, "\n### Routes where the replay differs most from the log\n");
    let rows = r.mismatched_routes.iter().map(|m| {
        vec![
            code(&m.route),
            m.mismatches.to_string(),
            m.with_orig_status.to_string(),
            percent(m.share),
            transitions_text(&m.transitions),
        ]
    });
    table(t, &["route", "differ", "of", "share", "most often (logged→replayed)"], "lrrrl", rows);
}

fn over_time(t: &mut String, r: &Report) {
    let points = &r.over_time.points;
    if points.is_empty() {
        return;
    }
    let one_day = spans_one_day(points);
    let day = if one_day { format!(", {}", &points[0].start[..10]) } else { String::new() };
    let _ = writeln!(
        t,
        "\n### Over time\n\n{} slices by send time (UTC{day}).\n",
        interval_text(r.over_time.interval_seconds)
    );
    let sub_second = r.over_time.interval_seconds < 1.0;
    let planned = points.iter().any(|p| p.planned_rate.is_some());
    let rows = points.iter().map(|p| {
        let mut row = vec![slice_label(p, one_day, sub_second), p.sent.to_string(), per_second(p.rate)];
        row.extend(p.planned_rate.map(per_second));
        row.extend([p.failed.to_string(), p.errors.to_string(), ms(p.p50_ms), ms(p.p99_ms), ms(p.max_ms)]);
        row
    });
    let mut headers = vec!["time", "sent", "rate/s"];
    if planned {
        headers.push("plan/s");
    }
    headers.extend(["failed", "errors", "p50 ms", "p99 ms", "max ms"]);
    table(t, &headers, "lr", rows);
}

/// Client sessions (a `--sessions` run): by length, then the slowest with their routes.
fn journeys(t: &mut String, r: &Report) {
    let Some(j) = &r.journeys else { return };
    let _ = writeln!(
        t,
        "\n### Sessions\n\n{} sessions by length in requests; time from the first planned send to the last answer{}.\n",
        j.sessions,
        j.split_note()
    );
    table(t, &super::SESSION_LENGTH_HEADERS, "lr", j.by_length.iter().map(super::session_length_cells));
    t.push('\n');
    let rows = j.slowest.iter().map(|s| {
        let [name, requests, failed, total, chain] = super::slowest_session_cells(s, &r.files);
        vec![code(&name), requests, failed, total, code(&chain)]
    });
    table(t, &super::SLOWEST_SESSION_HEADERS, "lrrrl", rows);
}
