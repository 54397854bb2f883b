//! The end-of-run summary: built once from the stages' reports, printed as text, saved as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use serde::Serialize;

use crate::config::ReplayConfig;
use crate::control::StopReason;
use crate::display::{human_bytes, join_counts, latency_lines};
use crate::pace::PacerReport;
use crate::plan::LogPosition;
use crate::plan::reader::ReaderStats;
use crate::send::outcome::FailureSample;
use crate::sink::Written;
use crate::stats::{CurvePoint, LagSummary, Percentiles, counts};

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: String,
    pub format: String,
    /// What was spoken to the target (`HTTP/1.1 over TLS`, `HTTP/2 without TLS (h2c, …)`).
    pub protocol: String,
    pub csv: String,
    /// The workbook written from the CSV after the run (`--xlsx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlsx: Option<String>,
    /// The one planned rate; `null` when there is none (`--rate max`, `--stages`, `--speed`).
    pub target_rate: Option<f64>,
    /// The traffic shape as the banner says it: `200/s`, `stages 30s:0-200,…`, `logged timing ×4`.
    pub plan: String,
    /// False at `--rate max`: nothing was planned for a time.
    #[serde(skip)]
    pub paced: bool,
    /// `I/K (index from …)` for one shard of a sharded run (`--shard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The seed of `--arrivals poisson`: give it as `--seed` to repeat the run's due times exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub achieved_rate: f64,
    /// For a plan without one steady rate (`--stages`, `--speed`): requests due and requests sent
    /// in up to ten equal stretches of the run, from T0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_curve: Option<Vec<CurvePoint>>,
    /// Seconds of plan covered (the duration, or up to the last request).
    pub scheduling_seconds: f64,
    /// Wall time from start to the last result, including start-up and drain.
    pub wall_seconds: f64,
    pub stopped_by: StopReason,
    pub interrupted: bool,
    /// Requests that left (answered or not). Requests that never left are in `not_sent`.
    pub requests_sent: u64,
    /// Requests whose planned time came but that never left: scheduling stopped first.
    pub not_sent: u64,
    /// Requests that got an HTTP status.
    pub responses: u64,
    /// Requests that left and got no answer.
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    /// The first distinct messages of each error kind, with how many failures said each.
    pub error_messages: BTreeMap<String, Vec<FailureSample>>,
    /// Of answered requests only, from the actual send.
    pub latency_ms: Percentiles,
    /// Of answered requests only, from the planned send time: what a user arriving on schedule
    /// would have waited.
    pub latency_from_schedule_ms: Percentiles,
    /// Of requests without an answer (aborted ones aside): from the send to the failure.
    pub time_to_failure_ms: Percentiles,
    pub lag: LagSummary,
    pub bytes_received: u64,
    /// The lines the replay went through, up to its last planned request (counted across loops).
    pub replayed: LogPosition,
    /// What the reader read of the log: the first pass, which can run ahead of the replay.
    pub log: ReaderStats,
    /// The `--abort-on` condition that stopped the run, as written, with what was measured.
    pub aborted_by: Option<String>,
    /// Why the results could not be written (the run stopped there; the CSV holds whole rows).
    pub output_error: Option<String>,
    /// With `--sessions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionFigures>,
    /// How https connections were verified and what they presented, when not the default
    /// (`verification OFF (--insecure)…`, `trusting 1 certificate from ca.pem…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// `--resolve`: the address connections went to instead of the target host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_to: Option<String>,
    /// With a Kafka target and `--consume`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end: Option<EndToEndFigures>,
}

/// End to end (`--consume`): produced messages matched with their output, from the rows.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEndFigures {
    /// Produced messages whose output was consumed.
    pub matched: u64,
    /// Produced messages with no output by the end of the drain.
    pub lost: u64,
    /// Output messages that named no awaited input (duplicates, another run's, given up).
    pub unmatched_outputs: u64,
    /// From the send to the output message.
    pub e2e_ms: Percentiles,
}

/// Client sessions of a `--sessions` run, counted from the rows.
#[derive(Debug, Clone, Serialize)]
pub struct SessionFigures {
    /// The key, as `--sessions` took it (`client`, `cookie:sid`): never a key's value.
    pub key: String,
    /// Sessions whose first request has a row.
    pub sessions: u64,
    /// Requests whose line lacked the key: sent outside any session.
    pub requests_outside_sessions: u64,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        config: &ReplayConfig,
        format: &str,
        target: &str,
        pacer: &PacerReport,
        written: &Written,
        log: ReaderStats,
        ending: Ending,
        started: Instant,
    ) -> Summary {
        let span = pacer.span.as_secs_f64();
        let tally = &written.tally;
        Summary {
            target: target.to_string(),
            format: format.to_string(),
            protocol: config.http_version.describe(&config.target).to_string(),
            csv: config.out.display().to_string(),
            xlsx: config.xlsx.as_ref().map(|p| p.display().to_string()),
            // A shard's share of a steady rate; with sessions the share is not fixed ahead.
            target_rate: match config.shard {
                None => config.shape.steady_rate(),
                Some(_) if config.rules.sessions.is_some() => None,
                Some(shard) => config.shape.steady_rate().map(|r| r / f64::from(shard.count)),
            },
            shard: config.shard.map(|s| format!("{s} (index from {})", s.index_from)),
            plan: config.shape.describe(),
            paced: config.shape.is_paced(),
            seed: config.shape.seed(),
            achieved_rate: if span > 0.0 { tally.requests as f64 / span } else { 0.0 },
            plan_curve: (config.shape.is_paced() && config.shape.steady_rate().is_none())
                .then(|| written.curve.points(pacer.span)),
            scheduling_seconds: span,
            wall_seconds: written
                .last_done
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(started)
                .as_secs_f64(),
            stopped_by: pacer.reason,
            interrupted: ending.interrupted,
            requests_sent: tally.requests,
            not_sent: tally.not_sent,
            responses: tally.responses(),
            errors: tally.errors(),
            statuses: counts(&tally.statuses),
            error_kinds: tally.errors.clone(),
            error_messages: ending.error_messages,
            latency_ms: Percentiles::of(&tally.latency),
            latency_from_schedule_ms: Percentiles::of(&tally.from_schedule),
            time_to_failure_ms: Percentiles::of(&tally.time_to_failure),
            lag: LagSummary::of(&tally.lag, tally.earliest_lag_us),
            bytes_received: tally.bytes,
            replayed: pacer.replayed,
            log,
            aborted_by: ending.aborted_by,
            output_error: ending.output_error,
            sessions: config.rules.sessions.as_ref().map(|key| SessionFigures {
                key: key.describe(),
                sessions: written.sessions,
                requests_outside_sessions: written.outside_sessions,
            }),
            tls: (!config.tls.is_default()).then(|| config.tls.describe()),
            connected_to: config.resolve.map(|addr| addr.to_string()),
            end_to_end: ending.unmatched_outputs.map(|unmatched_outputs| EndToEndFigures {
                matched: tally.end_to_end.len(),
                lost: tally.lost,
                unmatched_outputs,
                e2e_ms: Percentiles::of(&tally.end_to_end),
            }),
        }
    }

    /// No request got an answer: the run measured nothing about the target. Exit 4, never 0.
    pub fn nothing_answered(&self) -> bool {
        self.responses == 0
    }

    /// One line saying why nothing was answered, with the first error message
    /// (`no request got an answer: 150 sent, 150 connect — connect: Connection refused (127.0.0.1:1)`).
    pub fn nothing_answered_text(&self) -> String {
        if self.requests_sent == 0 {
            return format!("no request left ({} not sent: scheduling stopped before any could)", self.not_sent);
        }
        let first = self
            .error_messages
            .iter()
            .max_by_key(|(_, samples)| samples.iter().map(|s| s.count).sum::<u64>())
            .and_then(|(kind, samples)| {
                samples.first().map(|s| {
                    let hint = s.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
                    format!(" — {kind}: {}{hint}", s.message)
                })
            })
            .unwrap_or_default();
        format!("no request got an answer: {} sent, none answered{first}", self.requests_sent)
    }

    /// The summary as people read it at the end of a run (fits 100 columns).
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let rate = match self.target_rate {
            Some(r) => format!("{:.1}/s achieved of {r}/s target", self.achieved_rate),
            None if !self.paced => format!("{:.1}/s achieved (--rate max)", self.achieved_rate),
            None => format!("{:.1}/s achieved on average", self.achieved_rate),
        };
        let how = match (self.interrupted, self.stopped_by) {
            (true, _) => "interrupted",
            (_, StopReason::Deadline) => "duration reached",
            (_, StopReason::EndOfLog) => "log replayed",
            (_, StopReason::Cancelled) => "stopped",
            (_, StopReason::AbortCondition) => "aborted by --abort-on",
            (_, StopReason::OutputError) => "stopped: results could not be written",
        };
        let _ = writeln!(t, "sluice replay: {how} — {} → {}", self.format, self.target);
        match self.responses {
            // What was asked is not what was spoken when nothing answered (a server refusing h2).
            0 => _ = writeln!(t, "  protocol   {} asked; none spoken: nothing answered", self.protocol),
            _ => _ = writeln!(t, "  protocol   {}", self.protocol),
        }
        if let Some(shard) = &self.shard {
            let _ = writeln!(t, "  shard      {shard}: its share of the plan, at the plan's times");
        }
        if let Some(tls) = &self.tls {
            let _ = writeln!(t, "  tls        {tls}");
        }
        if let Some(addr) = &self.connected_to {
            let _ = writeln!(t, "  connected  to {addr} (--resolve), with the target's Host and SNI");
        }
        let not_sent = if self.not_sent > 0 {
            format!("; {} not sent (scheduling stopped first)", self.not_sent)
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "  requests   {} sent in {:.2}s: {rate}; {} answered, {} no answer{not_sent}",
            self.requests_sent, self.scheduling_seconds, self.responses, self.errors
        );
        if self.target_rate.is_none() && self.paced || self.seed.is_some() {
            let repeat = self.seed.map(|s| format!(" — --seed {s} repeats these due times")).unwrap_or_default();
            let _ = writeln!(t, "  plan       {}{repeat}", self.plan);
        }
        if let Some(curve) = &self.plan_curve {
            t += &curve_lines(curve);
        }
        if !self.statuses.is_empty() {
            let _ = writeln!(t, "  statuses   {}", join_counts(&self.statuses, self.requests_sent));
        }
        if !self.error_kinds.is_empty() {
            let _ = writeln!(t, "  no answer  {}", join_counts(&self.error_kinds, self.requests_sent));
            for (kind, samples) in &self.error_messages {
                for sample in samples {
                    let hint = sample.hint.as_ref().map(|h| format!(" — {h}")).unwrap_or_default();
                    let _ = writeln!(t, "             {kind}: {} ×{}{hint}", sample.message, sample.count);
                }
            }
            if !self.time_to_failure_ms.is_empty() {
                let p = &self.time_to_failure_ms;
                let _ =
                    writeln!(t, "             failed after p50 {:.2}  p99 {:.2}  max {:.2} ms", p.p50, p.p99, p.max);
            }
        }
        t += &latency_lines(self.responses, &self.latency_ms, &self.latency_from_schedule_ms, &self.lag);
        let _ = writeln!(t, "  received   {}", human_bytes(self.bytes_received));
        if let Some(e) = &self.end_to_end {
            let p = &e.e2e_ms;
            let _ = writeln!(
                t,
                "  end to end {} matched, {} lost, {} other outputs; e2e p50 {:.2}  p99 {:.2}  max {:.2} ms",
                e.matched, e.lost, e.unmatched_outputs, p.p50, p.p99, p.max
            );
        }
        if let Some(s) = &self.sessions {
            let _ = write!(t, "  sessions   {} by {}, each in logged order, one request at a time", s.sessions, s.key);
            let outside = s.requests_outside_sessions;
            if outside > 0 {
                let noun = if outside == 1 { "request" } else { "requests" };
                let _ = write!(t, "; {outside} {noun} outside any (the line lacks the key)");
            }
            t.push('\n');
        }
        let log = &self.log;
        let replayed = &self.replayed;
        let passes = match replayed.passes {
            0 | 1 => String::new(),
            n => format!(" over {n} passes"),
        };
        let _ = writeln!(
            t,
            "  replayed   {} log lines{passes}, up to the last planned request: {} unreadable, {} skipped by rules",
            replayed.lines, replayed.rejected, replayed.skipped
        );
        let skipped: u64 = log.plan.skipped.values().sum();
        let _ = write!(
            t,
            "  read       {} lines (first pass, read ahead of the replay): {} accepted, {} rejected",
            log.lines_read, log.parse.accepted, log.parse.rejected
        );
        if log.parse.rejected > 0 {
            let _ = write!(t, " ({})", log.parse.reasons_text());
        }
        if skipped > 0 {
            let list: Vec<String> = log.plan.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = write!(t, ", {skipped} skipped ({})", list.join(", "));
        }
        if log.plan.mix_added > 0 {
            let _ = write!(t, ", {} more planned by --mix", log.plan.mix_added);
        }
        if log.plan.absolute_urls_rewritten > 0 {
            let _ = write!(t, ", {} absolute URLs sent to the target instead", log.plan.absolute_urls_rewritten);
        }
        if log.plan.dot_segments_resolved > 0 {
            let _ = write!(t, ", {} paths with dot segments resolved", log.plan.dot_segments_resolved);
        }
        if log.plan.method_override_headers_dropped > 0 {
            let _ = write!(t, ", {} method-override headers dropped", log.plan.method_override_headers_dropped);
        }
        t.push('\n');
        // Bad lines the replay reached; the others were only read ahead.
        let reached = log.bad_line_positions.iter().filter(|at| **at <= replayed.lines).count();
        for example in &log.bad_line_examples[..reached.min(log.bad_line_examples.len())] {
            let _ = writeln!(t, "             {example}");
        }
        if reached < log.bad_line_examples.len() {
            let _ = writeln!(
                t,
                "             ({} more examples among lines only read ahead, not replayed)",
                log.bad_line_examples.len() - reached
            );
        }
        if let Some(fatal) = &log.fatal {
            let _ = writeln!(t, "  stopped    {fatal}");
        }
        if let Some(condition) = &self.aborted_by {
            let _ = writeln!(t, "  aborted    --abort-on {condition}");
        }
        if let Some(error) = &self.output_error {
            let _ =
                writeln!(t, "  stopped    cannot write {}: {error} (the CSV holds every whole row written)", self.csv);
        }
        for cut in &log.incomplete {
            let _ = writeln!(t, "  warning    {cut}");
        }
        let workbook = self.xlsx.as_ref().map(|x| format!(" and {x}")).unwrap_or_default();
        let _ = writeln!(t, "  results    {}{workbook}", self.csv);
        t
    }
}

/// The planned-vs-achieved curve: one line per stretch of the run.
fn curve_lines(curve: &[CurvePoint]) -> String {
    let mut t = format!(
        "  vs plan    {:>13}  {:>8}  {:>8}  {:>10}  {:>10}\n",
        "s from T0", "planned", "sent", "planned/s", "sent/s"
    );
    for p in curve {
        let _ = writeln!(
            t,
            "             {:>13}  {:>8}  {:>8}  {:>10.1}  {:>10.1}",
            format!("{:.1}–{:.1}", p.from_s, p.to_s),
            p.planned,
            p.sent,
            p.planned_rate,
            p.achieved_rate
        );
    }
    t
}

/// How a run ended, besides what the stages counted.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    pub interrupted: bool,
    pub error_messages: BTreeMap<String, Vec<FailureSample>>,
    pub aborted_by: Option<String>,
    pub output_error: Option<String>,
    /// With `--consume`: output messages that matched no awaited input.
    pub unmatched_outputs: Option<u64>,
}
