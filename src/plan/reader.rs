//! The reader thread: log lines (or HAR entries) → parsed entries → planned requests → the
//! bounded queue to the pacer, with what it found counted (bad lines by reason, skips by rule, cut inputs).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::read_ahead::footprint;
use super::timeline::Timeline;
use super::{LogPosition, PlanStats, Planner, ReplayRequest};
use crate::config::BadLineLimit;
use crate::control::RunControl;
use crate::source::{EntryReader, InputCut};

/// Requests travel from the reader to the pacer in chunks this size: one hand-off (and at most
/// one thread wake-up) per chunk instead of per request.
pub(crate) const QUEUE_CHUNK: usize = 64;
/// Bad log lines kept verbatim (file:line: reason) for the summary.
const BAD_LINE_EXAMPLES: usize = 10;
/// A percentage limit on bad lines is only judged after this many lines, so one bad first line
/// does not end a run at "100%".
const BAD_SHARE_MIN_LINES: u64 = 100;

/// What a parse pass found; also printed at the end of `sluice parse`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ParseStats {
    pub accepted: u64,
    pub rejected: u64,
    /// Rejected lines by reason kind.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
}

impl ParseStats {
    pub fn reject(&mut self, kind: &'static str) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(kind).or_default() += 1;
    }

    pub fn reasons_text(&self) -> String {
        self.rejected_by_reason.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
    }
}

/// What the reader found in the log.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReaderStats {
    pub lines_read: u64,
    pub parse: ParseStats,
    pub plan: PlanStats,
    /// The first few rejected lines as `FILE:LINE: reason`.
    pub bad_line_examples: Vec<String>,
    /// Where each example is, in lines read (to tell lines replayed from lines read ahead).
    #[serde(skip)]
    pub bad_line_positions: Vec<u64>,
    /// Full passes over the log (more than 1 when looping).
    pub passes: u64,
    /// Set when the reader ended the run: too many bad lines, or a read error.
    pub fatal: Option<String>,
    /// Inputs that stopped before their end (a truncated `.gz`): the lines before each cut were
    /// replayed, the rest of that input was not. Empty when every input was read to its end.
    pub incomplete: Vec<InputCut>,
}

/// How the reader thread reads.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    /// Start over at the end of the log (`--duration` without `--once`).
    pub looping: bool,
    pub bad_line_limit: Option<BadLineLimit>,
    /// Give each request its place on the log's clock (`--speed`).
    pub timeline: Option<Timeline>,
    /// For a Kafka target: how each request becomes its message.
    pub message: Option<crate::send::kafka::MessageShaper>,
}

/// The reader thread: log lines → parsed entries → planned requests → the bounded queue.
/// Bad lines and skipped lines are counted on the first pass only, so a looping run reports the
/// log's own figures rather than multiples of them.
pub(crate) fn read_log(
    mut reader: EntryReader,
    mut planner: Planner,
    queue: async_channel::Sender<Vec<ReplayRequest>>,
    control: Arc<RunControl>,
    reading: Reading,
) {
    let Reading { looping, bad_line_limit: limit, mut timeline, message } = reading;
    // Requests whose place on the log's clock is settled (one at a time without a timeline).
    let mut ready = Vec::new();
    let mut chunk = Vec::with_capacity(QUEUE_CHUNK);
    let mut stats = ReaderStats::default();
    let publish = |stats: &ReaderStats, planner: &Planner| {
        let mut s = control.reader.lock().expect("not poisoned");
        *s = stats.clone();
        s.plan = planner.stats.clone();
    };
    let names = reader.input_names();
    let format_name = reader.format_name().to_string();
    let mut position = LogPosition { passes: 1, ..LogPosition::default() };
    let mut first_pass = true;
    let mut first_pass_plan = None;
    'passes: loop {
        let mut produced = 0u64;
        loop {
            if control.is_stopping() {
                break 'passes;
            }
            let line = match reader.next_entry() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    stats.fatal = Some(e.to_string());
                    control.stop();
                    break 'passes;
                }
            };
            if first_pass {
                stats.lines_read += 1;
            }
            position.lines += 1;
            let number = line.number;
            match line.entry {
                Ok(entry) => {
                    let planned = planner.plan_weighted(&entry, line.input, number, position.passes);
                    if first_pass {
                        stats.parse.accepted += 1;
                    }
                    if planned.is_err() {
                        position.skipped += 1;
                    }
                    // `--mix` may plan one entry several times: each copy is queued like any request.
                    for mut req in planned.into_iter().flatten() {
                        req.position = position;
                        if let Some(message) = &message {
                            message.shape(&entry, line.line, &mut req);
                        }
                        if timeline.is_some() && produced == 0 && first_pass && req.log_time.is_none() {
                            stats.fatal = Some(format!(
                                "--speed replays the logged times, and {}:{number} has none: this format ({}) \
                                 logs no time; use --rate or --stages",
                                names[line.input], format_name
                            ));
                            control.stop();
                            break 'passes;
                        }
                        produced += 1;
                        match &mut timeline {
                            Some(timeline) => timeline.push(req, &mut ready),
                            None => ready.push(req),
                        }
                        if !hand_over(&mut ready, &mut chunk, &queue, &control) {
                            break 'passes; // the pacer has stopped
                        }
                    }
                }
                Err(e) if first_pass => {
                    position.rejected += 1;
                    stats.parse.reject(e.kind());
                    let where_ = format!("{}:{}", names[line.input], number);
                    if stats.bad_line_examples.len() < BAD_LINE_EXAMPLES {
                        stats.bad_line_examples.push(format!("{where_}: {e}"));
                        stats.bad_line_positions.push(position.lines);
                    }
                    if let Some(why) = bad_line_limit_exceeded(limit, &stats) {
                        stats.fatal = Some(format!("stopped at {where_}: {why}"));
                        control.stop();
                        break 'passes;
                    }
                    publish(&stats, &planner);
                }
                Err(_) => position.rejected += 1,
            }
            if first_pass && stats.lines_read % 4096 == 0 {
                publish(&stats, &planner);
            }
        }
        stats.passes += 1;
        if first_pass {
            // Skips are reported for the first pass only, like bad lines.
            first_pass_plan = Some(planner.stats.clone());
        }
        first_pass = false;
        if let Some(timeline) = &mut timeline {
            timeline.flush(&mut ready);
            if !hand_over(&mut ready, &mut chunk, &queue, &control) {
                break 'passes;
            }
        }
        if !looping || produced == 0 || !reader.can_rewind() {
            if !chunk.is_empty() {
                let _ = queue.send_blocking(chunk);
            }
            break;
        }
        reader.rewind();
        planner.new_pass();
        position.passes += 1;
    }
    stats.incomplete = reader.cuts().to_vec();
    let mut s = control.reader.lock().expect("not poisoned");
    *s = stats;
    s.plan = first_pass_plan.unwrap_or_else(|| planner.stats.clone());
}

/// Moves `ready` requests into the chunk under the read-ahead budget, sending full chunks to the
/// pacer. False when the pacer has stopped.
fn hand_over(
    ready: &mut Vec<ReplayRequest>,
    chunk: &mut Vec<ReplayRequest>,
    queue: &async_channel::Sender<Vec<ReplayRequest>>,
    control: &RunControl,
) -> bool {
    for req in ready.drain(..) {
        let size = footprint(&req);
        if !control.read_ahead.try_take(size) {
            // Hand over what this thread holds before waiting: the pacer can only give back what
            // it has received.
            let held = std::mem::replace(chunk, Vec::with_capacity(QUEUE_CHUNK));
            if (!held.is_empty() && queue.send_blocking(held).is_err()) || !control.read_ahead.take_blocking(size) {
                return false;
            }
        }
        chunk.push(req);
        if chunk.len() == QUEUE_CHUNK
            && queue.send_blocking(std::mem::replace(chunk, Vec::with_capacity(QUEUE_CHUNK))).is_err()
        {
            return false;
        }
    }
    true
}

fn bad_line_limit_exceeded(limit: Option<BadLineLimit>, stats: &ReaderStats) -> Option<String> {
    let bad = stats.parse.rejected;
    match limit? {
        BadLineLimit::Count(max) if bad > max => {
            Some(format!("more than {max} unreadable log lines (--max-bad-lines)"))
        }
        BadLineLimit::Percent(p) if stats.lines_read >= BAD_SHARE_MIN_LINES => {
            let share = bad as f64 * 100.0 / stats.lines_read as f64;
            (share > p).then(|| format!("{share:.1}% of log lines unreadable, more than {p}% (--max-bad-lines)"))
        }
        _ => None,
    }
}
