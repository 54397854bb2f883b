//! The end-of-run summary: built once from the stages' reports, printed as text, saved as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{Rate, ReplayConfig};
use crate::pacer::{PacerReport, StopReason};
use crate::run::{ReaderStats, counts};
use crate::sink::stats::Stats;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of a microsecond histogram, in milliseconds (zeros when it is empty).
    pub fn of<C: hdrhistogram::Counter>(h: &Histogram<C>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1e3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LagSummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// How early the earliest send was (0 when none was early).
    pub earliest_ms: f64,
}

impl LagSummary {
    /// From a histogram of lags in µs and the earliest send's offset from its plan time in µs.
    pub fn of(lag: &hdrhistogram::Histogram<u64>, earliest_us: i64) -> LagSummary {
        let p = Percentiles::of(lag);
        LagSummary { p50_ms: p.p50, p99_ms: p.p99, max_ms: p.max, earliest_ms: earliest_us as f64 / 1e3 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: String,
    pub format: String,
    pub csv: String,
    /// `null` at `--rate max`.
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    /// Seconds of plan covered (the duration, or up to the last request).
    pub scheduling_seconds: f64,
    /// Wall time from start to the last result, including start-up and drain.
    pub wall_seconds: f64,
    pub stopped_by: StopReason,
    pub interrupted: bool,
    pub requests_sent: u64,
    /// Requests that got an HTTP status.
    pub responses: u64,
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    /// From the actual send.
    pub latency_ms: Percentiles,
    /// From the planned send time: what a user arriving on schedule would have waited.
    pub latency_from_schedule_ms: Percentiles,
    pub lag: LagSummary,
    pub bytes_received: u64,
    pub log: ReaderStats,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        config: &ReplayConfig,
        format: &str,
        target: &str,
        pacer: &PacerReport,
        stats: &Stats,
        log: ReaderStats,
        interrupted: bool,
        started: Instant,
    ) -> Summary {
        let span = pacer.span.as_secs_f64();
        Summary {
            target: target.to_string(),
            format: format.to_string(),
            csv: config.out.display().to_string(),
            target_rate: match config.rate {
                Rate::PerSecond(n) => Some(n),
                Rate::Max => None,
            },
            achieved_rate: if span > 0.0 { stats.total() as f64 / span } else { 0.0 },
            scheduling_seconds: span,
            wall_seconds: stats.last_done.unwrap_or_else(Instant::now).saturating_duration_since(started).as_secs_f64(),
            stopped_by: pacer.reason,
            interrupted,
            requests_sent: stats.total(),
            responses: stats.completed,
            errors: stats.error_count(),
            statuses: counts(&stats.statuses),
            error_kinds: stats.errors.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            latency_ms: Percentiles::of(&stats.latency),
            latency_from_schedule_ms: Percentiles::of(&stats.latency_from_schedule),
            lag: LagSummary::of(&stats.lag, stats.earliest_us),
            bytes_received: stats.bytes,
            log,
        }
    }

    /// The summary as people read it at the end of a run (fits 100 columns).
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let rate = match self.target_rate {
            Some(r) => format!("{:.1}/s achieved of {r}/s target", self.achieved_rate),
            None => format!("{:.1}/s achieved (--rate max)", self.achieved_rate),
        };
        let how = match (self.interrupted, self.stopped_by) {
            (true, _) => "interrupted",
            (_, StopReason::Deadline) => "duration reached",
            (_, StopReason::EndOfLog) => "log replayed",
            (_, StopReason::Cancelled) => "stopped",
        };
        let _ = writeln!(t, "sluice replay: {how} — {} → {}", self.format, self.target);
        let _ = writeln!(
            t,
            "  requests   {} sent in {:.2}s: {rate}; {} responses, {} errors",
            self.requests_sent, self.scheduling_seconds, self.responses, self.errors
        );
        if !self.statuses.is_empty() {
            let _ = writeln!(t, "  statuses   {}", join_counts(&self.statuses, self.requests_sent));
        }
        if !self.error_kinds.is_empty() {
            let _ = writeln!(t, "  errors     {}", join_counts(&self.error_kinds, self.requests_sent));
        }
        let row = |p: &Percentiles| {
            format!("p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms", p.p50, p.p90, p.p99, p.p999, p.max)
        };
        let _ = writeln!(t, "  latency    {}", row(&self.latency_ms));
        let _ = writeln!(t, "   from plan {}", row(&self.latency_from_schedule_ms));
        let _ = writeln!(
            t,
            "  lag        p50 {:.3}  p99 {:.3}  max {:.3} ms behind plan{}",
            self.lag.p50_ms,
            self.lag.p99_ms,
            self.lag.max_ms,
            if self.lag.earliest_ms < 0.0 {
                format!("; earliest {:.3} ms early", -self.lag.earliest_ms)
            } else {
                String::new()
            }
        );
        let _ = writeln!(t, "  received   {}", human_bytes(self.bytes_received));
        let log = &self.log;
        let skipped: u64 = log.plan.skipped.values().sum();
        let _ = write!(
            t,
            "  log        {} lines, {} accepted, {} rejected",
            log.lines_read, log.parse.accepted, log.parse.rejected
        );
        if log.parse.rejected > 0 {
            let _ = write!(t, " ({})", log.parse.reasons_text());
        }
        if skipped > 0 {
            let list: Vec<String> = log.plan.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = write!(t, ", {skipped} skipped ({})", list.join(", "));
        }
        if log.plan.absolute_urls_rewritten > 0 {
            let _ = write!(t, ", {} absolute URLs sent to the target instead", log.plan.absolute_urls_rewritten);
        }
        if log.passes > 1 {
            let _ = write!(t, "; read {} times (looped)", log.passes);
        }
        t.push('\n');
        for example in &log.bad_line_examples {
            let _ = writeln!(t, "             {example}");
        }
        if let Some(fatal) = &log.fatal {
            let _ = writeln!(t, "  stopped    {fatal}");
        }
        for cut in &log.incomplete {
            let _ = writeln!(t, "  warning    {cut}");
        }
        let _ = writeln!(t, "  results    {}", self.csv);
        t
    }
}

fn join_counts(map: &BTreeMap<String, u64>, total: u64) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}: {v} ({:.1}%)", *v as f64 * 100.0 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join("  ")
}

pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}
