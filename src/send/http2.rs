//! HTTP/2 for `--http-version 2` (h2, agreed by ALPN over TLS) and `h2c` (prior knowledge over
//! plain TCP), on the `h2` crate without hyper's client: a replay needs requests out and statuses
//! and body sizes back, not a pool or a body abstraction.
//!
//! A few connections are shared by all senders: sender `i` sends on connection `i mod N`, with
//! N = ⌈concurrency / [`STREAMS_PER_CONNECTION`]⌉, so in-flight streams never exceed
//! `--concurrency` (nor the server's own stream limit, which `h2` waits for). Each connection is
//! driven by a task of its own; a sender that finds its connection dead (or told to go away)
//! opens a new one in its place, once for all the senders that share it.
//!
//! Retries follow RFC 9113 §8.7: a request the server cannot have processed (refused, above a
//! GOAWAY's last stream, or never sent because the connection was gone) goes once more on a fresh
//! connection, whatever its method; any other failure is the request's outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, PathAndQuery, Scheme};
use reqwest::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TE, TRANSFER_ENCODING, UPGRADE};

use super::outcome::{ErrorKind, Failure};
use super::stream::Dial;
use super::transport::Sent;
use crate::plan::ReplayRequest;

/// In-flight streams per connection: enough to batch many requests into one write, few enough
/// that a replay at --concurrency 64 still spreads over several connections (and server workers).
pub const STREAMS_PER_CONNECTION: usize = 8;

/// Flow-control windows offered to the server: large enough that a response body is never held
/// back by the client's window on a local network.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

pub struct Http2 {
    dial: Dial,
    scheme: Scheme,
    /// The target's `host[:port]`, the `:authority` unless the request sets a Host.
    authority: Authority,
    connections: Vec<tokio::sync::Mutex<Shared>>,
    /// The connection the next new sender is given.
    next: AtomicUsize,
    timeout: Duration,
}

/// One shared connection: its handle, and how many times it was opened, so that senders who saw
/// the same connection die replace it once.
#[derive(Default)]
struct Shared {
    generation: u64,
    send: Option<SendRequest<Bytes>>,
}

/// A sender's hold on its shared connection.
#[derive(Default)]
pub struct StreamSlot {
    connection: Option<usize>,
    held: Option<(u64, SendRequest<Bytes>)>,
    /// Body bytes of the current (or last) response received so far.
    pub body_received: u64,
}

/// How one attempt at a request failed.
enum Attempt {
    /// The server cannot have processed it: it may go again.
    NotProcessed(h2::Error),
    Failed(h2::Error),
}

impl Http2 {
    pub fn new(
        dial: Dial,
        scheme: &str,
        authority: &str,
        concurrency: usize,
        timeout: Duration,
    ) -> Result<Http2, String> {
        let authority = Authority::try_from(authority).map_err(|e| format!("--target authority {authority}: {e}"))?;
        let scheme = Scheme::try_from(scheme).map_err(|e| format!("--target scheme {scheme}: {e}"))?;
        let count = concurrency.div_ceil(STREAMS_PER_CONNECTION).max(1);
        Ok(Http2 {
            dial,
            scheme,
            authority,
            connections: (0..count).map(|_| tokio::sync::Mutex::new(Shared::default())).collect(),
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    pub async fn send(&self, slot: &mut StreamSlot, req: &ReplayRequest) -> Sent {
        slot.body_received = 0;
        let result = match tokio::time::timeout(self.timeout, self.exchange(slot, req)).await {
            Ok(result) => result,
            // Dropping the stream resets it (CANCEL); the connection stays for the next request.
            Err(_) => Err(Failure::new(ErrorKind::Timeout, format!("no complete answer within {:?}", self.timeout))),
        };
        (result, slot.body_received)
    }

    async fn exchange(&self, slot: &mut StreamSlot, req: &ReplayRequest) -> Result<u16, Failure> {
        let index =
            *slot.connection.get_or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len());
        let mut retried = false;
        loop {
            let request = self.request(req)?;
            let (generation, send) = match &mut slot.held {
                Some(held) => held,
                // Boxed: rare, and its future (a handshake's) would enlarge every request's.
                None => slot.held.insert(Box::pin(self.lease(index)).await?),
            };
            let generation = *generation;
            let error = match attempt(send, request, req.body.as_ref(), &mut slot.body_received).await {
                Ok(status) => return Ok(status),
                Err(Attempt::NotProcessed(_)) if !retried => {
                    retried = true;
                    slot.held = None;
                    self.retire(index, generation).await;
                    continue;
                }
                Err(Attempt::NotProcessed(error) | Attempt::Failed(error)) => error,
            };
            // A reset stream leaves its connection usable; anything else may not have.
            if !error.is_reset() {
                slot.held = None;
                self.retire(index, generation).await;
            }
            return Err(failure(&error));
        }
    }

    /// The shared connection `index`, opened now if it is not open.
    async fn lease(&self, index: usize) -> Result<(u64, SendRequest<Bytes>), Failure> {
        let mut shared = self.connections[index].lock().await;
        if let Some(send) = &shared.send {
            return Ok((shared.generation, send.clone()));
        }
        let stream = self.dial.connect().await?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| failure(&e))?;
        // The connection's frames are read and written by its own task; it ends with the connection.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        shared.generation += 1;
        shared.send = Some(send.clone());
        Ok((shared.generation, send))
    }

    /// Forgets shared connection `index` if it is still the one opened as `generation`.
    async fn retire(&self, index: usize, generation: u64) {
        let mut shared = self.connections[index].lock().await;
        if shared.generation == generation {
            shared.send = None;
        }
    }

    /// The request as HTTP/2 has it: the Host as `:authority`, without the headers HTTP/2 forbids
    /// (connection-specific ones: RFC 9113 §8.2.2), the body's length when there is one.
    fn request(&self, req: &ReplayRequest) -> Result<http::Request<()>, Failure> {
        let mut authority = None;
        let mut headers = http::HeaderMap::with_capacity(req.headers.len() + 1);
        for (name, value) in &req.headers {
            if name == HOST {
                authority = Some(value);
            } else if !is_connection_specific(name, value) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(body) = &req.body {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let authority = match authority {
            Some(host) => Authority::try_from(host.as_bytes())
                .map_err(|_| Failure::new(ErrorKind::Other, "the Host header is not a valid HTTP/2 :authority"))?,
            None => self.authority.clone(),
        };
        let path = PathAndQuery::try_from(&req.url[url::Position::BeforePath..url::Position::AfterQuery])
            .map_err(|e| Failure::new(ErrorKind::Other, format!("the request target is not valid for HTTP/2: {e}")))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(authority);
        parts.path_and_query = Some(path);
        let uri = http::Uri::from_parts(parts)
            .map_err(|e| Failure::new(ErrorKind::Other, format!("the request URI is not valid for HTTP/2: {e}")))?;
        let mut request = http::Request::new(());
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// One try: the request (and its body) on a new stream, and the whole response read.
async fn attempt(
    send: &mut SendRequest<Bytes>,
    request: http::Request<()>,
    body: Option<&Bytes>,
    received: &mut u64,
) -> Result<u16, Attempt> {
    // Until the request is handed over nothing has left: a failure here is the connection's.
    std::future::poll_fn(|cx| send.poll_ready(cx)).await.map_err(Attempt::NotProcessed)?;
    let (response, mut stream) = send.send_request(request, body.is_none()).map_err(Attempt::NotProcessed)?;
    if let Some(body) = body {
        stream.send_data(body.clone(), true).map_err(Attempt::Failed)?;
    }
    let response = response.await.map_err(|e| {
        if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) {
            Attempt::NotProcessed(e)
        } else {
            Attempt::Failed(e)
        }
    })?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(Attempt::Failed)?;
        *received += chunk.len() as u64;
        // Counted and dropped: the window reopens at once.
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(status)
}

fn is_connection_specific(name: &HeaderName, value: &HeaderValue) -> bool {
    [CONNECTION, TRANSFER_ENCODING, UPGRADE].contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
        || (name == TE && value != "trailers")
}

fn failure(e: &h2::Error) -> Failure {
    if let Some(io) = e.get_io() {
        return Failure::from_error(io, false);
    }
    if e.is_remote() || e.is_reset() || e.is_go_away() {
        return Failure::new(ErrorKind::Reset, format!("HTTP/2: {e}"));
    }
    // What h2 could not read as HTTP/2, typically an HTTP/1 answer to h2c's preface.
    Failure::new(ErrorKind::Protocol, format!("HTTP/2: {e} (does the target speak HTTP/2?)"))
}
