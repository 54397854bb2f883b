//! Turning logged bytes and instants into text people and spreadsheets read safely.

use std::borrow::Cow;
use std::fmt::Write;

use chrono::{DateTime, Utc};

/// Logged bytes as text: valid UTF-8 is borrowed as is; any byte that is not part of valid UTF-8
/// is written as `\xHH`, so nothing is lost or silently replaced.
pub fn bytes_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 16);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02X}");
                }
            }
            Cow::Owned(out)
        }
    }
}

pub fn opt_text<'a>(value: &'a Option<Cow<'_, [u8]>>) -> Option<Cow<'a, str>> {
    value.as_deref().map(bytes_text)
}

/// OWASP CSV injection: a text cell that a spreadsheet would evaluate as a formula gets a leading `'`.
pub fn spreadsheet_safe(cell: &str) -> String {
    if needs_neutralising(cell) { format!("'{cell}") } else { cell.to_string() }
}

pub fn needs_neutralising(cell: &str) -> bool {
    matches!(cell.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

/// UTC as `2026-11-21 14:03:07.123`, which spreadsheets read as a date-time.
pub fn spreadsheet_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// `45s`, `2m30s`, `1h05m`: a duration as the summary and messages show it.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        format!("{:.0}h{:02.0}m", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
    } else if s >= 60.0 {
        format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s}s")
    }
}

/// `500us`, `1ms`, `90s`, `10m`, `1h`, `30d`: a duration in the largest unit that writes it
/// whole, as a user writes it on the command line (and as the duration grammar reads it back).
pub fn compact_duration(d: std::time::Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}us", d.as_micros());
    }
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    match d.as_secs() {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `999 B`, `1.5 kB`, `2.3 MB`, `1.20 GB`.
pub fn human_bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// `200: 691 (76.8%)  404: 123 (13.7%)`.
pub fn join_counts<'a>(counts: impl IntoIterator<Item = (&'a String, &'a u64)>, total: u64) -> String {
    counts
        .into_iter()
        .map(|(k, v)| format!("{k}: {v} ({})", crate::analysis::assert::percent(*v as f64 / total.max(1) as f64)))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The summary's latency and lag lines, as the run and `sluice report` both print them: latency of
/// answered requests (from the send, and from the plan), then lag behind the plan.
pub fn latency_lines(
    answered: u64,
    latency: &crate::stats::Percentiles,
    from_plan: &crate::stats::Percentiles,
    lag: &crate::stats::LagSummary,
) -> String {
    let row = |p: &crate::stats::Percentiles| {
        format!("p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms", p.p50, p.p90, p.p99, p.p999, p.max)
    };
    let mut t = if answered == 0 {
        "  latency    none: no request got an answer\n".to_string()
    } else {
        format!("  latency    {} (of {answered} answered)\n   from plan {}\n", row(latency), row(from_plan))
    };
    let early =
        if lag.earliest_ms < 0.0 { format!("; earliest {:.3} ms early", -lag.earliest_ms) } else { String::new() };
    t += &format!(
        "  lag        p50 {:.3}  p99 {:.3}  max {:.3} ms behind plan{early}\n",
        lag.p50_ms, lag.p99_ms, lag.max_ms
    );
    t
}

/// Layers of reqwest and hyper that only say a request failed, not why: left out of a message
/// when a cause follows them.
const WRAPPERS: [&str; 2] = ["error sending request", "client error ("];

/// `a: b: c` for an error and its causes, each said once, without `(os error N)` and without the
/// client library's wrapping layers: `invalid peer certificate: UnknownIssuer`.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        let text = match text.find(" (os error ") {
            Some(at) => text[..at].to_string(),
            None => text,
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    while parts.len() > 1 && WRAPPERS.iter().any(|w| parts[0].starts_with(w)) {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_bytes_are_shown_escaped_not_replaced() {
        assert_eq!(bytes_text(b"/caf\xc3\xa9"), "/café");
        assert_eq!(bytes_text(b"/a\xff\xfeb"), "/a\\xFF\\xFEb");
    }

    #[test]
    fn formula_like_cells_are_neutralised() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        assert_eq!(spreadsheet_safe("/index.html"), "/index.html");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
