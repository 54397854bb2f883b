//! End to end (`--consume kafka://…/OUTPUT --match …`): the output topic is read from where it
//! ended when the run started, each output message is matched to the input message it came from
//! (by the seq it carries), and the input's row gets the time from its send to its output
//! (`e2e_ms`). An input with no output by the end of the drain is `lost`.
//!
//! Rows of acknowledged messages wait here for their output before they go on to the writer:
//! senders → [`Matcher::take`] → (held until matched) → writer. At most [`MAX_AWAITING`] rows
//! wait; past that the oldest is given up as `lost` (its row is written, so memory stays
//! bounded whatever the app does). Outputs seen before their input's acknowledgement (a fast
//! app) are remembered, at most [`MAX_EARLY`] of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;

use super::OutcomeBuffer;
use super::kafka::{connect, failure, partition_count};
use super::outcome::Outcome;
use super::transport::Transport;
use crate::config::kafka::{Consume, Match, RUN_HEADER};
use crate::config::{ReplayConfig, Target};
use crate::results::EndToEnd;

/// Rows that may wait for their output (about 300 bytes each: some 30 MB).
pub const MAX_AWAITING: usize = 100_000;
/// Outputs that may wait for their input's acknowledgement.
pub const MAX_EARLY: usize = 100_000;
/// Bytes one fetch of one partition may return.
const FETCH_BYTES: i32 = 1024 * 1024;
/// How long the broker may hold a fetch that has nothing new.
const FETCH_WAIT_MS: i32 = 100;
/// Between fetches that returned nothing or failed: a broker that answers at once must not spin.
const IDLE: Duration = Duration::from_millis(20);

/// The running end-to-end side of a run.
pub struct EndToEndRun {
    thread: JoinHandle<()>,
    /// Output messages that matched no awaited input (duplicates, given-up inputs, other runs).
    pub unmatched: Arc<AtomicU64>,
}

impl EndToEndRun {
    /// Waits until every awaited row has gone to the writer.
    pub fn join(self) -> Result<(), String> {
        self.thread.join().map_err(|_| "the end-to-end thread panicked".to_string())
    }
}

/// With `--consume`: connects to the output topic, notes where each of its partitions ends now,
/// and starts matching. Returns the channel the senders' rows go to instead of `writer`.
/// Without it: `writer` itself. An output topic that cannot be read is an error before the run.
pub fn start(
    config: &ReplayConfig,
    transport: &Transport,
    writer: crossbeam_channel::Sender<Vec<Outcome>>,
) -> Result<(crossbeam_channel::Sender<Vec<Outcome>>, Option<EndToEndRun>), String> {
    let (Target::Kafka(kafka), Transport::Kafka(producer)) = (&config.target, transport) else {
        return Ok((writer, None));
    };
    let Some(consume) = &kafka.consume else { return Ok((writer, None)) };
    // The consumer's connections live on this runtime, so it is built here and moved to the thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let deadline = config.timeout.min(Duration::from_secs(5));
    // The timeout is made inside the runtime: a tokio timer needs one when it is created.
    let partitions = runtime
        .block_on(async { tokio::time::timeout(deadline, output_partitions(consume, deadline)).await })
        .map_err(|_| format!("--consume {}: no broker answered within {deadline:?}", consume.topic))?
        .map_err(|m| format!("--consume {}: {m}", consume.topic))?;
    let (senders_tx, senders_rx) = crossbeam_channel::bounded::<Vec<Outcome>>(super::OUTCOME_BACKLOG);
    let matcher = Arc::new(Matcher::new(writer, consume.by.clone(), producer.run_id().to_string(), MAX_AWAITING));
    let unmatched = matcher.unmatched.clone();
    let drain = config.drain_timeout;
    let thread = std::thread::Builder::new()
        .name("sluice-e2e".into())
        .spawn(move || runtime.block_on(run(matcher, senders_rx, partitions, drain)))
        .map_err(|e| format!("cannot start thread sluice-e2e: {e}"))?;
    Ok((senders_tx, Some(EndToEndRun { thread, unmatched })))
}

/// Each partition of the output topic, with the offset it ends at now.
async fn output_partitions(consume: &Consume, deadline: Duration) -> Result<Vec<(PartitionClient, i64)>, String> {
    let client = connect(&consume.topic, deadline).await.map_err(|e| failure(&e).message)?;
    let count = partition_count(&client, &consume.topic.name).await.map_err(|f| f.message)?;
    let mut partitions = Vec::with_capacity(count);
    for p in 0..count {
        let partition = client
            .partition_client(consume.topic.name.clone(), p as i32, UnknownTopicHandling::Error)
            .await
            .map_err(|e| failure(&e).message)?;
        let end = partition.get_offset(OffsetAt::Latest).await.map_err(|e| failure(&e).message)?;
        partitions.push((partition, end));
    }
    Ok(partitions)
}

/// Takes the senders' rows until they are done, then waits up to `drain` for the outputs still
/// awaited, and gives up the rest as lost.
async fn run(
    matcher: Arc<Matcher>,
    senders: crossbeam_channel::Receiver<Vec<Outcome>>,
    partitions: Vec<(PartitionClient, i64)>,
    drain: Duration,
) {
    let mut consumers = tokio::task::JoinSet::new();
    for (partition, from) in partitions {
        consumers.spawn(consume_partition(partition, from, matcher.clone()));
    }
    let taking = tokio::task::spawn_blocking({
        let matcher = matcher.clone();
        move || {
            for batch in senders {
                matcher.take(batch);
            }
        }
    });
    let _ = taking.await;
    let deadline = Instant::now() + drain;
    while matcher.awaiting() > 0 && Instant::now() < deadline {
        tokio::time::sleep(IDLE).await;
    }
    consumers.abort_all();
    matcher.give_up_all();
}

/// Reads one partition from `offset` on until aborted, handing each output's seq to `matcher`.
async fn consume_partition(partition: PartitionClient, mut offset: i64, matcher: Arc<Matcher>) {
    loop {
        match partition.fetch_records(offset, 1..FETCH_BYTES, FETCH_WAIT_MS).await {
            Ok((records, _high_watermark)) => {
                let seen = Instant::now();
                let fetched = records.len();
                for r in records {
                    offset = offset.max(r.offset + 1);
                    matcher.output(&r.record, seen);
                }
                matcher.writer.flush();
                if fetched == 0 {
                    tokio::time::sleep(IDLE).await;
                }
            }
            // Retried until the drain ends: the rows awaited meanwhile end up lost, which is
            // what the run measured.
            Err(_) => tokio::time::sleep(IDLE * 10).await,
        }
    }
}

#[derive(Default)]
struct Held {
    /// Acknowledged rows waiting for their output, by seq.
    awaiting: BTreeMap<u64, Outcome>,
    /// Outputs seen before their input was acknowledged: when, by seq.
    early: BTreeMap<u64, Instant>,
}

struct Matcher {
    held: Mutex<Held>,
    writer: OutcomeBuffer,
    by: Match,
    run_id: String,
    unmatched: Arc<AtomicU64>,
    /// Rows that may wait for their output ([`MAX_AWAITING`]).
    max_awaiting: usize,
}

impl Matcher {
    fn new(writer: crossbeam_channel::Sender<Vec<Outcome>>, by: Match, run_id: String, max_awaiting: usize) -> Matcher {
        Matcher {
            held: Mutex::new(Held::default()),
            writer: OutcomeBuffer::new(writer),
            by,
            run_id,
            unmatched: Arc::new(AtomicU64::new(0)),
            max_awaiting,
        }
    }

    /// Rows from the senders: an acknowledged message waits for its output (unless it came
    /// already); any other row goes on at once.
    fn take(&self, batch: Vec<Outcome>) {
        let mut held = self.held.lock().expect("not poisoned");
        for mut outcome in batch {
            if !outcome.answered() {
                self.writer.push(outcome);
                continue;
            }
            if let Some(seen) = held.early.remove(&outcome.seq) {
                outcome.e2e = Some(elapsed_since_send(&outcome, seen));
                self.writer.push(outcome);
                continue;
            }
            if held.awaiting.len() >= self.max_awaiting
                && let Some((_, mut oldest)) = held.awaiting.pop_first()
            {
                oldest.e2e = Some(EndToEnd::Lost);
                self.writer.push(oldest);
            }
            held.awaiting.insert(outcome.seq, outcome);
        }
        drop(held);
        self.writer.flush();
    }

    /// An output message, seen at `seen`.
    fn output(&self, record: &Record, seen: Instant) {
        let Some(seq) = seq_of(record, &self.by, &self.run_id) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut held = self.held.lock().expect("not poisoned");
        if let Some(mut outcome) = held.awaiting.remove(&seq) {
            outcome.e2e = Some(elapsed_since_send(&outcome, seen));
            self.writer.push(outcome);
            return;
        }
        if held.early.len() >= MAX_EARLY {
            held.early.pop_first();
            self.unmatched.fetch_add(1, Ordering::Relaxed);
        }
        if held.early.insert(seq, seen).is_some() {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn awaiting(&self) -> usize {
        self.held.lock().expect("not poisoned").awaiting.len()
    }

    /// The end of the drain: what is still awaited is lost, and outputs still waiting for their
    /// input matched nothing.
    fn give_up_all(&self) {
        let Held { awaiting, early } = std::mem::take(&mut *self.held.lock().expect("not poisoned"));
        self.unmatched.fetch_add(early.len() as u64, Ordering::Relaxed);
        for (_, mut outcome) in awaiting {
            outcome.e2e = Some(EndToEnd::Lost);
            self.writer.push(outcome);
        }
        self.writer.flush();
    }
}

fn elapsed_since_send(outcome: &Outcome, seen: Instant) -> EndToEnd {
    let sent = outcome.sent.unwrap_or(outcome.scheduled);
    EndToEnd::Seen(seen.saturating_duration_since(sent).as_micros() as u64)
}

/// The seq an output message names, per `--match`; `None` for a message of another run (its
/// `sluice-run` header names another run) or one that names none.
fn seq_of(record: &Record, by: &Match, run_id: &str) -> Option<u64> {
    if record.headers.get(RUN_HEADER).is_some_and(|run| run.as_slice() != run_id.as_bytes()) {
        return None;
    }
    match by {
        Match::Header(name) => std::str::from_utf8(record.headers.get(name)?).ok()?.trim().parse().ok(),
        Match::JsonField(field) => {
            let value: serde_json::Value = serde_json::from_slice(record.value.as_deref()?).ok()?;
            match value.get(field)? {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: &[(&str, &str)], value: &str) -> Record {
        Record {
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            timestamp: chrono::Utc::now(),
        }
    }

    fn acknowledged(seq: u64, ok: bool) -> Outcome {
        let now = Instant::now();
        let req = crate::plan::ReplayRequest { seq, ..crate::plan::ReplayRequest::for_test("/") };
        let result = if ok { Ok(0) } else { Err(crate::send::outcome::ErrorKind::KafkaTimeout) };
        Outcome::of(req, now, Some(now), result, 0)
    }

    #[test]
    fn rows_wait_for_their_output_and_past_the_bound_the_oldest_is_given_up_as_lost() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let matcher = Matcher::new(tx, Match::Header("sluice-seq".into()), "r1".into(), 2);
        let output = |seq: u64| matcher.output(&record(&[("sluice-seq", &seq.to_string())], ""), Instant::now());
        matcher.take(vec![acknowledged(0, true), acknowledged(1, true), acknowledged(2, false)]);
        output(1);
        // Seen before its acknowledgement came back (a fast app).
        output(5);
        matcher.take(vec![acknowledged(3, true)]);
        // The table holds 0 and 3: taking 4 gives up 0, the oldest.
        matcher.take(vec![acknowledged(4, true)]);
        matcher.take(vec![acknowledged(5, true)]);
        output(99);
        matcher.writer.flush();
        assert_eq!(matcher.awaiting(), 2);
        matcher.give_up_all();
        let rows: BTreeMap<u64, Option<EndToEnd>> = rx.try_iter().flatten().map(|o| (o.seq, o.e2e)).collect();
        assert_eq!(rows.len(), 6, "every row reaches the writer once: {rows:?}");
        assert_eq!(rows[&2], None, "a failed produce waits for nothing");
        assert!(matches!(rows[&1], Some(EndToEnd::Seen(_))));
        assert!(matches!(rows[&5], Some(EndToEnd::Seen(_))));
        for lost in [0, 3, 4] {
            assert_eq!(rows[&lost], Some(EndToEnd::Lost), "seq {lost}");
        }
        assert_eq!(matcher.unmatched.load(Ordering::Relaxed), 1, "99 matched no input");
    }

    #[test]
    fn outputs_name_their_input_by_header_or_json_field_of_this_run_only() {
        let by_header = Match::Header("sluice-seq".into());
        assert_eq!(seq_of(&record(&[("sluice-seq", "42")], ""), &by_header, "r1"), Some(42));
        assert_eq!(seq_of(&record(&[("sluice-seq", "42"), ("sluice-run", "r1")], ""), &by_header, "r1"), Some(42));
        assert_eq!(seq_of(&record(&[("sluice-seq", "42"), ("sluice-run", "r0")], ""), &by_header, "r1"), None);
        assert_eq!(seq_of(&record(&[("sluice-seq", "x")], ""), &by_header, "r1"), None);
        let by_json = Match::JsonField("input".into());
        assert_eq!(seq_of(&record(&[], r#"{"input":7}"#), &by_json, "r1"), Some(7));
        assert_eq!(seq_of(&record(&[], r#"{"input":"8"}"#), &by_json, "r1"), Some(8));
        assert_eq!(seq_of(&record(&[], r#"{"other":7}"#), &by_json, "r1"), None);
        assert_eq!(seq_of(&record(&[], "not json"), &by_json, "r1"), None);
    }
}
