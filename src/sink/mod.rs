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
use crate::send::outcome::Outcome;
use crate::stats::Stats;
use abort::AbortWatch;
use csv::CsvSink;
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
    shared: Arc<RunControl>,
    metrics: Option<Arc<Metrics>>,
    mut abort: Option<AbortWatch>,
) -> (Stats, Option<io::Error>) {
    let mut stats = Stats::default();
    let mut write_error = None;
    let mut last_flush = Instant::now();
    let mut last_publish = Instant::now();
    loop {
        match outcomes.recv_timeout(PUBLISH_EVERY) {
            Ok(batch) => {
                if let Some(m) = &metrics {
                    m.record(&batch);
                }
                for o in &batch {
                    if write_error.is_none()
                        && let Err(e) = sink.write(o)
                    {
                        fail(&mut write_error, e, &shared);
                    }
                    stats.record(o);
                    if let Some(watch) = &mut abort {
                        watch.record(o);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(watch) = &mut abort
            && let Some(condition) = watch.check(Instant::now(), shared.t0())
        {
            *shared.aborted_by.lock().expect("not poisoned") = Some(condition);
            shared.stop_because(StopReason::AbortCondition);
            // Judged once: the drain that follows must not overwrite what stopped the run.
            abort = None;
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            shared.publish(LiveStats::from(&stats));
            last_publish = Instant::now();
        }
        if last_flush.elapsed() >= FLUSH_EVERY && write_error.is_none() {
            if let Err(e) = sink.flush() {
                fail(&mut write_error, e, &shared);
            }
            last_flush = Instant::now();
        }
    }
    if write_error.is_none()
        && let Err(e) = sink.flush()
    {
        fail(&mut write_error, e, &shared);
    }
    if write_error.is_some() {
        // Best effort: the disk that failed may fail this too; the summary names the first error.
        let _ = sink.cut_to_whole_rows();
    }
    shared.publish(LiveStats::from(&stats));
    (stats, write_error)
}

fn fail(write_error: &mut Option<io::Error>, e: io::Error, shared: &RunControl) {
    shared.stop_because(StopReason::OutputError);
    *write_error = Some(e);
}
