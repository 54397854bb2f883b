//! The writer thread: the only owner of the CSV and of the run's statistics. Senders hand it
//! batches of outcomes; it writes each as a row, folds it into the histograms, and publishes a
//! small live snapshot for progress displays.

pub mod abort;
pub mod csv;
pub mod metrics;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::control::{LiveStats, RunControl, StopReason};
use crate::results::{Answer, Row};
use crate::send::outcome::Outcome;
use crate::stats::{PlanCurve, Tally};
use abort::AbortWatch;
use csv::{CsvSink, WallClock};
use metrics::Metrics;

/// How often buffered rows reach the file: a killed run loses at most this much.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Runs until every sender has dropped its end of `outcomes`. A write error (a full disk) stops
/// scheduling at once; the outcomes still coming (the drain) keep being counted so the summary
/// stays right, the CSV is cut back to its last whole row, and the error is returned at the end.
pub(crate) fn run_writer(
    mut sink: CsvSink,
    outcomes: Receiver<Vec<Outcome>>,
    control: Arc<RunControl>,
    metrics: Option<Arc<Metrics>>,
    mut abort: Option<AbortWatch>,
) -> (Written, Option<io::Error>) {
    let mut written = Written::default();
    let clock = sink.clock();
    let mut write_error = None;
    let mut last_flush = Instant::now();
    let mut last_publish = Instant::now();
    loop {
        match outcomes.recv_timeout(PUBLISH_EVERY) {
            Ok(batch) => {
                if let Some(m) = &metrics {
                    m.record(&batch);
                }
                let t0 = control.t0();
                for o in &batch {
                    if let Some(t0) = t0 {
                        written.curve.record(
                            o.scheduled.saturating_duration_since(t0),
                            o.sent.map(|s| s.saturating_duration_since(t0)),
                        );
                    }
                    if write_error.is_none()
                        && let Err(e) = sink.write(o)
                    {
                        fail(&mut write_error, e, &control);
                    }
                    let row = row_of(o, &clock);
                    written.tally.record(&row);
                    match o.session {
                        Some(session) if session.seq == 0 => written.sessions += 1,
                        Some(_) => {}
                        None => written.outside_sessions += 1,
                    }
                    written.last_done = Some(written.last_done.map_or(o.done, |d| d.max(o.done)));
                    if let Some(watch) = &mut abort {
                        watch.record(&row);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(watch) = &mut abort
            && let Some(condition) = watch.check(Instant::now(), control.t0())
        {
            *control.aborted_by.lock().expect("not poisoned") = Some(condition);
            control.stop_because(StopReason::AbortCondition);
            // Judged once: the drain that follows must not overwrite what stopped the run.
            abort = None;
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            control.publish(LiveStats::from(&written.tally));
            last_publish = Instant::now();
        }
        if last_flush.elapsed() >= FLUSH_EVERY && write_error.is_none() {
            if let Err(e) = sink.flush() {
                fail(&mut write_error, e, &control);
            }
            last_flush = Instant::now();
        }
    }
    if write_error.is_none()
        && let Err(e) = sink.flush()
    {
        fail(&mut write_error, e, &control);
    }
    if write_error.is_some() {
        // Best effort: the disk that failed may fail this too; the summary names the first error.
        let _ = sink.cut_to_whole_rows();
    }
    control.publish(LiveStats::from(&written.tally));
    (written, write_error)
}

/// What the writer folded: every request, and when the last one ended.
#[derive(Debug, Default)]
pub struct Written {
    pub tally: Tally,
    pub last_done: Option<Instant>,
    /// With `--sessions`: rows of a session's first request (sessions started), and rows of
    /// requests outside any session (their line lacked the key).
    pub sessions: u64,
    pub outside_sessions: u64,
    /// Requests due and sent over time from T0, for the summary's planned-vs-achieved lines.
    pub curve: PlanCurve,
}

/// A request's outcome as a results row (what the CSV says of it), for the aggregator that
/// `sluice report` also folds CSV rows into.
fn row_of<'a>(o: &'a Outcome, clock: &WallClock) -> Row<'a> {
    let micros = |d: std::time::Duration| d.as_micros().min(u128::from(u64::MAX)) as u64;
    let (sent_ms, lag_us, latency_us) = match o.sent {
        Some(sent) => (
            clock.millis(sent),
            match sent.checked_duration_since(o.scheduled) {
                Some(late) => micros(late) as i64,
                None => -(micros(o.scheduled.duration_since(sent)) as i64),
            },
            micros(o.done.saturating_duration_since(sent)),
        ),
        None => (clock.millis(o.scheduled), 0, 0),
    };
    Row {
        seq: o.seq,
        scheduled_ms: clock.millis(o.scheduled),
        sent_ms,
        lag_us,
        method: o.method.as_str(),
        url: o.url.as_str(),
        orig_status: o.orig_status,
        answer: match o.result {
            Ok(status) => Answer::Status(status),
            Err(kind) => Answer::Error(kind.as_str()),
        },
        latency_us,
        bytes: o.bytes,
        session: o.session,
        e2e: o.e2e,
    }
}

fn fail(write_error: &mut Option<io::Error>, e: io::Error, control: &RunControl) {
    control.stop_because(StopReason::OutputError);
    *write_error = Some(e);
}
