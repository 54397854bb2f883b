//! The running server: accept loop, one task per connection (hyper HTTP/1.1 with keep-alive),
//! the request handler, and the [`MockServer`] handle that tests hold.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Decision, MockConfig, SEQ_HEADER};
use crate::error::MockError;
use crate::metrics::{METRICS_PATH, Metrics};
use crate::record::{FileRecorder, RecordedRequest};
use crate::spec::{AWAY_ORIGIN, Behavior, REDIRECTED_PREFIX};

/// Response header carrying the request's `seq`, so a client can match its answer to the record.
pub const SEQ_RESPONSE_HEADER: &str = "x-sluice-mock-seq";

/// Written by [`Behavior::Garbage`]: clearly not a status line, and not UTF-8 either.
const GARBAGE: &[u8] = b"\x00\xffNOT HTTP: sluice-mock garbage\r\n\r\n\xfe";

/// Status codes are 200..=599 (see `spec`), so an array indexed by code counts them lock-free.
const STATUS_SLOTS: usize = 600;

/// Starts a mock server on the current tokio runtime and returns once it is listening.
///
/// The server runs until [`MockServer::shutdown`] or until the handle is dropped.
pub async fn spawn(config: MockConfig) -> Result<MockServer, MockError> {
    check_listen(&config)?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| MockError::Bind { addr: config.listen, source })?;
    let (server, serve) = prepare(config, listener)?;
    tokio::spawn(serve);
    Ok(server)
}

/// Starts a mock server on a background thread with its own single-threaded tokio runtime, for
/// tests and tools without async plumbing. Every method of the handle works from plain threads;
/// stop it with [`MockServer::shutdown_blocking`] (or drop it).
pub fn spawn_in_thread(config: MockConfig) -> Result<MockServer, MockError> {
    check_listen(&config)?;
    let bind_err = |source| MockError::Bind { addr: config.listen, source };
    let std_listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(MockError::Thread)?;
    // from_std registers the socket with this runtime's reactor, so it must run inside it.
    let listener = {
        let _guard = runtime.enter();
        TcpListener::from_std(std_listener).map_err(bind_err)?
    };
    let (server, serve) = prepare(config, listener)?;
    std::thread::Builder::new()
        .name(format!("sluice-mock {}", server.addr))
        .spawn(move || runtime.block_on(serve))
        .map_err(MockError::Thread)?;
    Ok(server)
}

fn check_listen(config: &MockConfig) -> Result<(), MockError> {
    if config.listen_allowed() { Ok(()) } else { Err(MockError::NonLoopback(config.listen)) }
}

/// Builds the shared state and the accept-loop future, without starting it.
fn prepare(
    config: MockConfig,
    listener: TcpListener,
) -> Result<(MockServer, impl Future<Output = ()> + Send + 'static), MockError> {
    let addr = listener.local_addr().map_err(|source| MockError::Bind { addr: config.listen, source })?;
    let file = config.record_file.as_deref().map(FileRecorder::start).transpose()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut http = http1::Builder::new();
    // hyper needs a timer for its header-read timeout (30 s by default).
    http.timer(TokioTimer::new()).keep_alive(true);
    let state = Arc::new(State {
        body: Bytes::from(config.body()),
        memory: config.record_memory.then(|| Mutex::new(Vec::new())),
        file,
        config,
        stats: Stats::default(),
        metrics: Metrics::default(),
        shutdown: shutdown_rx,
        http,
    });
    let done = Arc::new(Done::default());
    let serve = serve(listener, state.clone(), FinishOnDrop(Some(done.clone())));
    Ok((MockServer { addr, state, shutdown: shutdown_tx, done }, serve))
}

// ---------------------------------------------------------------------------------------------
// The handle

/// A running mock server. Dropping it stops accepting and lets in-flight requests drain in the
/// background; call [`shutdown`](MockServer::shutdown) to wait for that and flush the record file.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    done: Arc<Done>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer").field("addr", &self.addr).field("counts", &self.counts()).finish()
    }
}

impl MockServer {
    /// The bound address (with the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &MockConfig {
        &self.state.config
    }

    /// What this server answers (or answered) to a request for `path` with key `key`.
    pub fn decide(&self, path: &str, key: u64) -> Decision {
        self.state.config.decide(path, key)
    }

    /// A copy of every request recorded so far, in `seq` order (empty when memory recording is
    /// off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match &self.state.memory {
            Some(memory) => {
                let mut requests = lock(memory).clone();
                // Handlers push concurrently, so pushes can land slightly out of seq order.
                requests.sort_by_key(|r| r.seq);
                requests
            }
            None => Vec::new(),
        }
    }

    /// Like [`requests`](MockServer::requests), but empties the memory record (to separate the
    /// phases of a test).
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        match &self.state.memory {
            Some(memory) => {
                let mut requests = std::mem::take(&mut *lock(memory));
                requests.sort_by_key(|r| r.seq);
                requests
            }
            None => Vec::new(),
        }
    }

    /// Requests received (read in full), whatever their behaviour.
    pub fn count(&self) -> u64 {
        self.state.stats.requests.load(Ordering::Relaxed)
    }

    /// Requests by the status decided for them (reset, garbage and hang are not here).
    pub fn counts_by_status(&self) -> BTreeMap<u16, u64> {
        self.state.stats.by_status()
    }

    /// The most requests that were being handled at the same moment: from the end of reading the
    /// request head to handing the response to hyper. Never above what a client had in flight.
    pub fn peak_concurrency(&self) -> usize {
        self.state.stats.peak.load(Ordering::Relaxed)
    }

    /// Requests being handled right now (including hanging ones).
    pub fn current_concurrency(&self) -> usize {
        self.state.stats.in_flight.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.state.stats.connections.load(Ordering::Relaxed)
    }

    /// Connections that hyper closed over an unparseable request (it answers those with a 400 or
    /// 431 itself, before the mock sees them, so they are not recorded). Includes targets that are
    /// not valid UTF-8.
    pub fn protocol_errors(&self) -> u64 {
        self.state.stats.protocol_errors.load(Ordering::Relaxed)
    }

    /// All the counters at once.
    pub fn counts(&self) -> Counts {
        let s = &self.state.stats;
        Counts {
            requests: self.count(),
            by_status: s.by_status(),
            resets: s.resets.load(Ordering::Relaxed),
            garbage: s.garbage.load(Ordering::Relaxed),
            hangs: s.hangs.load(Ordering::Relaxed),
            peak_concurrency: self.peak_concurrency(),
            connections: self.connections_accepted(),
            protocol_errors: self.protocol_errors(),
        }
    }

    /// Stops accepting, lets in-flight requests finish (up to `shutdown_grace`, then cuts them),
    /// releases hanging requests without an answer, and flushes the record file. Returns the
    /// record file's write error if there was one. Calling it again returns at once.
    pub async fn shutdown(&self) -> Result<(), MockError> {
        self.shutdown.send_replace(true);
        let mut finished = self.done.watch.subscribe();
        // Err means the sender is gone, which cannot happen while we hold `done`.
        let _ = finished.wait_for(|done| *done).await;
        self.done.take_result()
    }

    /// [`shutdown`](MockServer::shutdown) for sync code. Do not call it from a task of the runtime
    /// that runs the server (that runtime's thread would wait on itself).
    pub fn shutdown_blocking(&self) -> Result<(), MockError> {
        self.shutdown.send_replace(true);
        let mut state = self.done.lock();
        while !state.finished {
            state = self.done.cv.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.result.take().unwrap_or(Ok(()))
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A snapshot of the server's counters; its `Display` is the CLI's closing summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub resets: u64,
    pub garbage: u64,
    pub hangs: u64,
    pub peak_concurrency: usize,
    pub connections: u64,
    pub protocol_errors: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "requests: {}", self.requests)?;
        let by_status: Vec<String> = self.by_status.iter().map(|(code, n)| format!("{code}={n}")).collect();
        writeln!(f, "by status: {}", if by_status.is_empty() { "-".to_owned() } else { by_status.join(" ") })?;
        if self.resets + self.garbage + self.hangs > 0 {
            writeln!(f, "misbehaved: reset={} garbage={} hang={}", self.resets, self.garbage, self.hangs)?;
        }
        writeln!(f, "peak concurrency: {}", self.peak_concurrency)?;
        writeln!(f, "connections: {}", self.connections)?;
        write!(f, "protocol errors: {}", self.protocol_errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state and counters

struct State {
    config: MockConfig,
    body: Bytes,
    stats: Stats,
    metrics: Metrics,
    memory: Option<Mutex<Vec<RecordedRequest>>>,
    file: Option<FileRecorder>,
    /// Turns true once shutdown starts; every connection and hanging request watches it.
    shutdown: watch::Receiver<bool>,
    http: http1::Builder,
}

impl State {
    fn recording(&self) -> bool {
        self.memory.is_some() || self.file.is_some()
    }

    fn record(&self, record: RecordedRequest) {
        match (&self.memory, &self.file) {
            (Some(memory), Some(file)) => {
                file.send(record.clone());
                lock(memory).push(record);
            }
            (Some(memory), None) => lock(memory).push(record),
            (None, Some(file)) => file.send(record),
            (None, None) => {}
        }
    }
}

/// A panic elsewhere must not take the record down with it: a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Stats {
    requests: AtomicU64,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    connections: AtomicU64,
    protocol_errors: AtomicU64,
    by_status: Box<[AtomicU64]>,
    resets: AtomicU64,
    garbage: AtomicU64,
    hangs: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            resets: AtomicU64::new(0),
            garbage: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
        }
    }
}

impl Stats {
    fn count(&self, behavior: Behavior) {
        let counter = match behavior {
            Behavior::Status(code) => match self.by_status.get(usize::from(code)) {
                Some(counter) => counter,
                None => return,
            },
            Behavior::Reset => &self.resets,
            Behavior::Garbage => &self.garbage,
            Behavior::Hang => &self.hangs,
            Behavior::Redirect { .. } => match self.by_status.get(302) {
                Some(counter) => counter,
                None => return,
            },
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn by_status(&self) -> BTreeMap<u16, u64> {
        (0..STATUS_SLOTS as u16)
            .filter_map(|code| match self.by_status[usize::from(code)].load(Ordering::Relaxed) {
                0 => None,
                n => Some((code, n)),
            })
            .collect()
    }
}

/// Counts a request as in flight for as long as it lives, including when hyper drops the
/// handler because the client went away.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        stats.peak.fetch_max(now, Ordering::AcqRel);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the accept loop tells `shutdown` it has finished, to async and sync waiters alike.
#[derive(Default)]
struct Done {
    state: Mutex<DoneState>,
    cv: Condvar,
    watch: watch::Sender<bool>,
}

#[derive(Default)]
struct DoneState {
    finished: bool,
    /// The record file's flush result, handed to the first caller of shutdown.
    result: Option<Result<(), MockError>>,
}

impl Done {
    fn lock(&self) -> MutexGuard<'_, DoneState> {
        lock(&self.state)
    }

    fn finish(&self, result: Result<(), MockError>) {
        let mut state = self.lock();
        if !state.finished {
            state.finished = true;
            state.result = Some(result);
        }
        drop(state);
        self.cv.notify_all();
        self.watch.send_replace(true);
    }

    fn take_result(&self) -> Result<(), MockError> {
        self.lock().result.take().unwrap_or(Ok(()))
    }
}

/// Marks the server finished even if the accept loop is dropped midway (its runtime shut down,
/// or a bug panicked it), so no `shutdown` call can wait forever.
struct FinishOnDrop(Option<Arc<Done>>);

impl FinishOnDrop {
    fn finish(mut self, result: Result<(), MockError>) {
        if let Some(done) = self.0.take() {
            done.finish(result);
        }
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done.finish(Ok(()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Accept loop and connections

async fn serve(listener: TcpListener, state: Arc<State>, done: FinishOnDrop) {
    let mut shutdown = state.shutdown.clone();
    let mut connections = JoinSet::new();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    next_id += 1;
                    state.stats.connections.fetch_add(1, Ordering::Relaxed);
                    // Small answers must not sit in Nagle's buffer waiting for an ACK.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(state.clone(), stream, peer, next_id));
                }
                // E.g. out of file descriptors: back off instead of spinning, then try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow with every one ever accepted.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(state.config.shutdown_grace, drain).await.is_err() {
        connections.shutdown().await;
    }
    let result = match state.file {
        // finish() blocks until the writer thread has flushed; keep that off the async threads.
        Some(_) => {
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.file.as_ref().map_or(Ok(()), FileRecorder::finish))
                .await
                .unwrap_or(Ok(()))
        }
        None => Ok(()),
    };
    done.finish(result);
}

/// Resolves once shutdown has started (or every handle is gone, which means the same).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The returned guard is dropped here: holding it across an await would make futures !Send.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(state: Arc<State>, stream: TcpStream, peer: SocketAddr, id: u64) {
    let fate = Arc::new(AtomicU8::new(FATE_ANSWER));
    let io = TokioIo::new(ConnIo { stream, fate: fate.clone() });
    let conn = Arc::new(Conn { id, peer, fate });
    let handler_state = state.clone();
    let service = service_fn(move |req| handle(handler_state.clone(), conn.clone(), req));
    let mut connection = std::pin::pin!(state.http.serve_connection(io, service));
    let mut shutdown = state.shutdown.clone();
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut shutdown) => {
            // Closes the connection once its current request (if any) is answered.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    // Other errors are clients going away or our own reset/garbage/hang; neither is news.
    if result.is_err_and(|e| e.is_parse()) {
        state.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    fate: Arc<AtomicU8>,
}

/// The error a handler returns to make hyper drop the connection without writing an answer.
#[derive(Debug)]
struct NoAnswer;

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sluice-mock closes this connection without an answer")
    }
}

impl std::error::Error for NoAnswer {}

async fn handle(state: Arc<State>, conn: Arc<Conn>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, NoAnswer> {
    if req.method() == hyper::Method::GET && req.uri().path() == METRICS_PATH {
        let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
        return Ok(response);
    }
    let stats = &state.stats;
    let _in_flight = InFlight::enter(stats);
    let (parts, body) = req.into_parts();
    let keep = if state.recording() { state.config.max_recorded_body } else { 0 };
    // The whole body is read before answering, as a real server would; a client that goes away
    // meanwhile ends the request here, unrecorded.
    let (body, body_len) = read_body(body, keep).await.map_err(|_| NoAnswer)?;
    let decided_at = tokio::time::Instant::now();

    let seq = stats.requests.fetch_add(1, Ordering::Relaxed);
    let key =
        parts.headers.get(SEQ_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).unwrap_or(seq);
    let decision = state.config.decide(parts.uri.path(), key);
    stats.count(decision.behavior);
    if state.recording() {
        state.record(RecordedRequest {
            seq,
            key,
            received_at: SystemTime::now(),
            conn_id: conn.id,
            peer: conn.peer,
            method: parts.method.as_str().to_owned(),
            target: parts.uri.to_string(),
            version: format!("{:?}", parts.version),
            headers: parts.headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect(),
            body,
            body_len,
            behavior: decision.behavior,
            latency: decision.latency,
        });
    }

    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    state.metrics.observe(parts.uri.path(), decision.behavior, decided_at.elapsed());
    match decision.behavior {
        Behavior::Status(code) => Ok(respond(&state, code, seq, parts.uri.path())),
        Behavior::Redirect { away } => {
            let mut response = respond(&state, 302, seq, parts.uri.path());
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let location = if away { format!("{AWAY_ORIGIN}{path}") } else { format!("{REDIRECTED_PREFIX}{path}") };
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(hyper::header::LOCATION, value);
            }
            Ok(response)
        }
        Behavior::Reset => {
            conn.fate.store(FATE_RESET, Ordering::Relaxed);
            Err(NoAnswer)
        }
        Behavior::Garbage => {
            conn.fate.store(FATE_GARBAGE, Ordering::Relaxed);
            Err(NoAnswer)
        }
        Behavior::Hang => {
            // hyper drops this future if the client closes the connection first.
            stopped(&mut state.shutdown.clone()).await;
            Err(NoAnswer)
        }
    }
}

/// Reads the whole body, keeping at most `keep` bytes of it.
async fn read_body(mut body: Incoming, keep: usize) -> Result<(Bytes, u64), hyper::Error> {
    let mut kept = BytesMut::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((kept.freeze(), len))
}

fn respond(state: &State, code: u16, seq: u64, path: &str) -> Response<Full<Bytes>> {
    let template = state.config.body_for(path);
    // 204 and 304 have no body on the wire; sending none keeps byte counts honest.
    let body = match template {
        _ if code == 204 || code == 304 => Bytes::new(),
        Some(template) => Bytes::from(template.render(seq, SystemTime::now())),
        None => state.body.clone(),
    };
    let content_type = template.map_or("text/plain", |t| t.content_type());
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(SEQ_RESPONSE_HEADER, HeaderValue::from(seq));
    response
}

// ---------------------------------------------------------------------------------------------
// The socket wrapper that lets a handler decide how its connection dies

const FATE_ANSWER: u8 = 0;
const FATE_RESET: u8 = 1;
const FATE_GARBAGE: u8 = 2;

/// A `TcpStream` that, when hyper drops it after a handler's [`NoAnswer`], closes it the way the
/// handler chose. hyper owns the socket and offers no hook to write raw bytes or to reset, so the
/// handler leaves its wish in `fate` and this wrapper carries it out on drop.
struct ConnIo {
    stream: TcpStream,
    fate: Arc<AtomicU8>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        match self.fate.load(Ordering::Relaxed) {
            // With a zero linger, close() sends RST instead of FIN: the client sees "connection
            // reset", not a clean end of stream.
            FATE_RESET => {
                let _ = self.stream.set_zero_linger();
            }
            // A non-blocking write of a few bytes into an idle socket's empty send buffer; if it
            // ever would block the client sees a plain close instead, which is still an error.
            FATE_GARBAGE => {
                let _ = self.stream.try_write(GARBAGE);
            }
            _ => {}
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
