//! Sending: a fixed pool of sender tasks on tokio, each with its own connection (see
//! [`crate::send::transport`]), one [`Outcome`] per request.
//!
//! The pool size is `--concurrency`, so in-flight requests can never exceed it. Outcomes are
//! handed to the writer thread in batches (a channel send per row would wake the writer for
//! every request: measured at 3–11 µs per row, against under 1 µs batched).

pub mod compare;
pub mod consume;
pub mod http1;
pub mod http2;
pub mod kafka;
pub mod outcome;
pub mod provider;
pub(crate) mod session_gate;
pub mod stream;
pub mod tls;
pub mod transport;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use tokio_util::sync::CancellationToken;

use crate::config::ReplayConfig;
use crate::control::RunControl;
use crate::plan::ReplayRequest;
use crate::plan::safety::TargetScope;
use outcome::{ErrorKind, Failure, Outcome};
pub(crate) use session_gate::SessionGate;
use transport::{Connection, Sent, Transport};

/// Outcomes per hand-off to the writer thread.
const OUTCOME_BATCH: usize = 256;
/// Full batches that may wait for the writer thread (about 16k outcomes, a few MB). Beyond that
/// a hand-off waits, so the senders pause and the delay shows as lag, rather than memory growing
/// behind a slow disk.
pub(crate) const OUTCOME_BACKLOG: usize = 64;

/// A released request and the instant the plan wanted it sent.
pub struct Job {
    pub req: ReplayRequest,
    pub scheduled: Instant,
}

/// The HTTP client, tuned for replay: no proxies from the environment (unless asked), no
/// redirects followed (unless asked, and then only within the target: same scheme, host and
/// port, under its path prefix), no automatic decompression (bytes are counted as received),
/// keep-alive connections shared by all senders. TLS is the run's own ([`tls::client_config`]),
/// and `--resolve` sends the target's host to its address.
pub fn build_client(config: &ReplayConfig, target: &Url) -> Result<Client, String> {
    let redirects = if config.follow_redirects {
        let scope = TargetScope::of(target);
        // A redirect that is not followed is the answer: its 3xx is what the CSV records.
        reqwest::redirect::Policy::custom(move |attempt| {
            if !scope.contains(attempt.url()) || attempt.previous().len() >= MAX_REDIRECTS {
                attempt.stop()
            } else {
                attempt.follow()
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    // Both protocols offered, as reqwest's own configuration did: it speaks whichever the server picks.
    let tls = tls::client_config(&config.tls, &[b"h2", b"http/1.1"])?;
    let builder = tls::client_builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
        .redirect(redirects)
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(config.concurrency)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true);
    // As on the direct transports: HTTP/1.1 unless --http-version asks for HTTP/2.
    let builder = match config.http_version {
        transport::HttpVersion::Http1 => builder.http1_only(),
        transport::HttpVersion::Http2 | transport::HttpVersion::H2c => builder.http2_prior_knowledge(),
    };
    // reqwest reads HTTP_PROXY and friends unless told not to.
    let builder = if config.use_env_proxy { builder } else { builder.no_proxy() };
    let builder = match (config.resolve, target.host_str()) {
        (Some(addr), Some(host)) => builder.resolve(host, addr),
        _ => builder,
    };
    builder.build().map_err(|e| outcome::error_text(&e))
}

/// Redirects followed at most, with --follow-redirects.
const MAX_REDIRECTS: usize = 10;

/// Outcomes from all senders on their way to the writer thread. Pushing is a short uncontended
/// lock (all senders usually share one thread); the writer is woken once per full batch or per
/// [`OutcomeBuffer::FLUSH_EVERY`], not once per request. The channel to the writer holds at most
/// [`OUTCOME_BACKLOG`] batches.
pub(crate) struct OutcomeBuffer {
    pending: Mutex<Vec<Outcome>>,
    writer: crossbeam_channel::Sender<Vec<Outcome>>,
}

impl OutcomeBuffer {
    /// Rows and live figures are at most this stale.
    pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

    pub fn new(writer: crossbeam_channel::Sender<Vec<Outcome>>) -> OutcomeBuffer {
        OutcomeBuffer { pending: Mutex::new(Vec::with_capacity(OUTCOME_BATCH)), writer }
    }

    pub(crate) fn push(&self, outcome: Outcome) {
        let mut pending = self.pending.lock().expect("not poisoned");
        pending.push(outcome);
        if pending.len() >= OUTCOME_BATCH {
            let full = std::mem::replace(&mut *pending, Vec::with_capacity(OUTCOME_BATCH));
            drop(pending);
            let _ = self.writer.send(full);
        }
    }

    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        if !batch.is_empty() {
            let _ = self.writer.send(batch);
        }
    }
}

/// How a sender sends one request: to the target alone ([`Single`]), or to the target and a
/// baseline at once ([`compare::Paired`], `--compare`).
pub(crate) trait Exchange: Send + 'static {
    fn send(&mut self, req: &ReplayRequest) -> impl Future<Output = Sent> + Send;
    /// Body bytes of the target's response in progress, for a request cut off before its end.
    fn body_received(&self) -> u64;
    /// Adds what this exchange knows beyond the target's answer to the request's outcome.
    fn complete(&mut self, _outcome: &mut Outcome) {}
}

/// The target alone, on this sender's own connection.
pub(crate) struct Single {
    transport: Arc<Transport>,
    connection: Connection,
}

impl Single {
    pub fn new(transport: Arc<Transport>) -> Single {
        Single { transport, connection: Connection::default() }
    }
}

impl Exchange for Single {
    fn send(&mut self, req: &ReplayRequest) -> impl Future<Output = Sent> + Send {
        self.transport.send(&mut self.connection, req)
    }

    fn body_received(&self) -> u64 {
        self.connection.body_received()
    }

    fn complete(&mut self, outcome: &mut Outcome) {
        if let Some(offset) = self.connection.take_produced_offset() {
            kafka::name_offset(&mut outcome.url, offset);
        }
    }
}

/// One sender: takes released jobs until the channel closes, sends each, records the outcome.
/// A job taken after scheduling stopped never leaves: it is recorded as `not_sent`. `abort` (the
/// drain timeout ran out) turns the request in flight into an `aborted` outcome. With `--sessions`
/// jobs come through the [`SessionGate`], and after each outcome this sender goes on with the
/// next parked job of the same session, if any.
pub(crate) async fn sender(
    mut exchange: impl Exchange,
    jobs: async_channel::Receiver<Job>,
    outcomes: Arc<OutcomeBuffer>,
    abort: CancellationToken,
    control: Arc<RunControl>,
    gate: Option<Arc<SessionGate>>,
) {
    // Registered once per sender, not once per request: the token's waiter list is behind a lock.
    let cancelled = abort.cancelled();
    tokio::pin!(cancelled);
    let mut aborted = false;
    let mut next_in_session = None;
    loop {
        let job = match (next_in_session.take(), &gate) {
            (Some(job), _) => job,
            (None, Some(gate)) => match gate.take(&jobs).await {
                Some(job) => job,
                None => break,
            },
            (None, None) => match jobs.recv().await {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let Job { req, scheduled } = job;
        let session = req.session;
        let now = Instant::now();
        if aborted || !control.may_send(now) {
            record_not_sent(&control, &outcomes, Job { req, scheduled });
        } else {
            control.count_sent();
            let (result, bytes) = tokio::select! {
                biased;
                _ = &mut cancelled => {
                    aborted = true;
                    (Err(Failure::new(ErrorKind::Aborted, "still in flight when the drain timeout ran out")),
                     exchange.body_received())
                }
                r = exchange.send(&req) => r,
            };
            let result = result.map_err(|failure| {
                control.failures.record(&failure);
                failure.kind
            });
            let mut outcome = Outcome::of(req, scheduled, Some(now), result, bytes);
            exchange.complete(&mut outcome);
            outcomes.push(outcome);
        }
        if let (Some(gate), Some(session)) = (&gate, session) {
            next_in_session = gate.finished(session.id);
        }
    }
}

/// The row of a job that never left. At --rate max nothing was planned for a time: a request
/// still waiting for a sender was only read ahead, and is dropped like the rest of the read-ahead.
pub(crate) fn record_not_sent(control: &RunControl, outcomes: &OutcomeBuffer, job: Job) {
    if control.is_paced() {
        outcomes.push(Outcome::not_sent(job.req, job.scheduled));
    }
}
