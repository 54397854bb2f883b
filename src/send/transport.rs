//! How requests reach the target.
//!
//! - [`Transport::Direct`] (`http://` and `https://` targets, HTTP/1.1, the common staging case):
//!   every sender owns one HTTP/1.1 keep-alive connection ([`crate::send::http1`], over TCP or
//!   TLS) and writes to it and reads from it itself, so there is no pool to lock, no per-request
//!   URL or proxy resolution, and no hand-off to another task. It measured ~2× the throughput of a
//!   pooled reqwest client per CPU on this machine even on hyper's connection client, and more
//!   without it (see bench/RESULTS.md). Over TLS every reconnect resumes a session: one rustls
//!   configuration, and so one session cache, serves all senders.
//! - [`Transport::Http2`] (`--http-version 2` or `h2c`): a few shared HTTP/2 connections, each
//!   carrying several senders' requests as streams ([`crate::send::http2`]).
//! - [`Transport::Pooled`] (reqwest) whenever something needs its machinery: `--use-env-proxy`,
//!   `--follow-redirects`.
//!
//! All give the same result for a request: its status (or why there is none) and the body bytes.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::time::Duration;

use reqwest::header::HOST;
use reqwest::{Client, Method, Url};

use super::http2::{Http2, StreamSlot};
use super::outcome::{ErrorKind, Failure, error_text};
use super::stream::{Dial, TlsTarget};
pub use crate::config::HttpVersion;
use crate::config::ReplayConfig;
use crate::plan::ReplayRequest;
use crate::send::compare::BodyCapture;
use crate::send::http1;

pub enum Transport {
    Pooled(Client),
    Direct(Direct),
    Http2(Http2),
    Kafka(super::kafka::Producer),
}

/// A sender's own state between requests: for the direct transport its open connection and the
/// buffer its request heads are written into; for HTTP/2 the shared connection it sends on; for
/// Kafka the offset of the message it last produced.
#[derive(Default)]
pub struct Connection {
    open: Option<http1::Connection>,
    head: Vec<u8>,
    /// With `--compare`: what each response body is folded into as it arrives (none otherwise).
    capture: Option<BodyCapture>,
    stream: StreamSlot,
    /// Kafka: the offset the last message was acknowledged at, until its outcome takes it.
    produced_at: Option<i64>,
}

impl Connection {
    /// Body bytes of the response in progress (or the last one), for a request cut off before
    /// its answer was complete. Not known on the pooled transport.
    pub fn body_received(&self) -> u64 {
        self.open.as_ref().map_or(self.stream.body_received, http1::Connection::body_received)
    }

    /// A connection whose response bodies are folded into `capture` as they arrive.
    pub fn capturing(capture: BodyCapture) -> Connection {
        Connection { capture: Some(capture), ..Connection::default() }
    }

    /// The capture of the last response body (reset it before each request).
    pub fn capture_mut(&mut self) -> Option<&mut BodyCapture> {
        self.capture.as_mut()
    }

    /// Kafka: the offset the last message was acknowledged at, once (`None` over HTTP, and for
    /// a message not acknowledged).
    pub fn take_produced_offset(&mut self) -> Option<i64> {
        self.produced_at.take()
    }
}

/// A sender's request-head buffer is kept between requests up to this size.
const KEEP_HEAD_BYTES: usize = 64 * 1024;

/// What one request got: its status or why there is none, and the body bytes received.
pub type Sent = (Result<u16, Failure>, u64);

impl Transport {
    pub fn build(config: &ReplayConfig, target: &Url) -> Result<Transport, String> {
        if let crate::config::Target::Kafka(kafka) = &config.target {
            return Ok(Transport::Kafka(super::kafka::Producer::new(kafka, config.timeout, config.concurrency)));
        }
        if config.use_env_proxy || config.follow_redirects {
            return super::build_client(config, target).map(Transport::Pooled).map_err(|e| e.to_string());
        }
        let host = target.host_str().unwrap_or_default();
        let port = target.port_or_known_default().unwrap_or(80);
        // Resolved once: a replay aims at one target, and a DNS lookup per connection would add
        // latency that is not the target's. `--resolve` has said where it is already.
        let addr = match config.resolve {
            Some(addr) => addr,
            None => (host.trim_start_matches('[').trim_end_matches(']'), port)
                .to_socket_addrs()
                .map_err(|e| format!("--target host {host} cannot be resolved: {e}"))?
                .next()
                .ok_or_else(|| format!("--target host {host} resolves to no address"))?,
        };
        let authority = match target.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let tls = match (target.scheme(), config.http_version) {
            ("https", HttpVersion::Http2) => Some(TlsTarget::new(host, &config.tls, &[b"h2"], Some(b"h2"))?),
            ("https", _) => Some(TlsTarget::new(host, &config.tls, &[b"http/1.1"], None)?),
            _ => None,
        };
        let dial = Dial { addr, tls, timeout: config.timeout.min(Duration::from_secs(5)) };
        Ok(match config.http_version {
            HttpVersion::Http1 => Transport::Direct(Direct { dial, host: authority, timeout: config.timeout }),
            HttpVersion::Http2 | HttpVersion::H2c => {
                Transport::Http2(Http2::new(dial, target.scheme(), &authority, config.concurrency, config.timeout)?)
            }
        })
    }

    pub async fn send(&self, conn: &mut Connection, req: &ReplayRequest) -> Sent {
        match self {
            Transport::Pooled(client) => send_pooled(client, req, conn.capture.as_mut()).await,
            Transport::Direct(direct) => direct.send(conn, req).await,
            Transport::Http2(http2) => http2.send(&mut conn.stream, req).await,
            Transport::Kafka(producer) => {
                let (sent, offset) = producer.send(req).await;
                conn.produced_at = offset;
                sent
            }
        }
    }
}

/// Sends one request through reqwest and reads the whole response body.
async fn send_pooled(client: &Client, req: &ReplayRequest, mut capture: Option<&mut BodyCapture>) -> Sent {
    let mut builder = client.request(req.method.clone(), req.url.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let mut response = match builder.send().await {
        Ok(response) => response,
        Err(e) => return (Err(pooled_failure(e)), 0),
    };
    let status = response.status().as_u16();
    // Count body bytes chunk by chunk; nothing is kept (with --compare, folded into the capture).
    let mut bytes = 0u64;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes += chunk.len() as u64;
                if let Some(capture) = capture.as_deref_mut() {
                    capture.update(&chunk);
                }
            }
            Ok(None) => return (Ok(status), bytes),
            Err(e) => return (Err(pooled_failure(e)), bytes),
        }
    }
}

/// reqwest's errors name the URL, whose query may carry a secret: the message leaves it out.
fn pooled_failure(e: reqwest::Error) -> Failure {
    let kind = ErrorKind::classify(&e);
    Failure::new(kind, error_text(&e.without_url()))
}

pub struct Direct {
    dial: Dial,
    /// `host[:port]` of the target, the Host header unless the request sets its own.
    host: String,
    timeout: Duration,
}

impl Direct {
    async fn send(&self, conn: &mut Connection, req: &ReplayRequest) -> Sent {
        let outcome = match tokio::time::timeout(self.timeout, self.exchange(conn, req)).await {
            Ok(outcome) => outcome,
            Err(_) => (
                Err(Failure::new(ErrorKind::Timeout, format!("no complete answer within {:?}", self.timeout))),
                conn.body_received(),
            ),
        };
        // After any failure the connection's state is unknown: the next request gets a new one.
        if outcome.0.is_err() {
            conn.open = None;
        }
        // A head grown by one very long logged target or header is not kept for every later
        // request: at --concurrency 64 that would hold megabytes per sender for the whole run.
        if conn.head.capacity() > KEEP_HEAD_BYTES {
            conn.head = Vec::new();
        }
        outcome
    }

    async fn exchange(&self, conn: &mut Connection, req: &ReplayRequest) -> Sent {
        self.write_head(&mut conn.head, req);
        let body = req.body.as_deref().unwrap_or_default();
        let is_head = req.method == Method::HEAD;
        // A kept-alive connection the server closed meanwhile is not the request's fault. For a
        // request that may be repeated, a reused connection that fails before any byte of an
        // answer gets the request once more on a fresh one (as browsers and reqwest do); for one
        // that may not, the connection is checked before sending instead, which costs a syscall.
        let idempotent = req.method.is_idempotent();
        loop {
            if !idempotent && conn.open.as_mut().is_some_and(|c| c.is_closed_by_peer()) {
                conn.open = None;
            }
            let reused = conn.open.is_some();
            let open = match &mut conn.open {
                Some(open) => open,
                // Boxed: connecting is rare, and its future (a TLS handshake's) would otherwise
                // make every request's future larger, and so every request's copies of it.
                None => match Box::pin(self.dial.connect()).await {
                    Ok(stream) => conn.open.insert(http1::Connection::new(stream)),
                    Err(failure) => return (Err(failure), 0),
                },
            };
            let capture = &mut conn.capture;
            let on_body = &mut |piece: &[u8]| {
                if let Some(capture) = capture {
                    capture.update(piece)
                }
            };
            match open.exchange_observed(&conn.head, body, is_head, on_body).await {
                Ok(response) => {
                    if !response.reusable {
                        conn.open = None;
                    }
                    return (Ok(response.status), response.body_bytes);
                }
                Err(http1::Failure::Io { before_response: true, .. }) if reused && idempotent => conn.open = None,
                Err(http1::Failure::Io { error, .. }) => {
                    return (Err(Failure::from_error(&error, false)), open.body_received());
                }
                Err(http1::Failure::Protocol(why)) => {
                    return (Err(Failure::new(ErrorKind::Protocol, why)), open.body_received());
                }
            }
        }
    }

    /// The request head in origin form: the path and query exactly as planned, the logged
    /// headers, the target's Host unless one is set, and the body's length.
    fn write_head(&self, out: &mut Vec<u8>, req: &ReplayRequest) {
        out.clear();
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(req.url[url::Position::BeforePath..url::Position::AfterQuery].as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !req.headers.iter().any(|(name, _)| name == HOST) {
            push_header(out, b"host", self.host.as_bytes());
        }
        for (name, value) in &req.headers {
            push_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
        match &req.body {
            // Formatted straight into the head: no string per request.
            Some(body) => {
                let _ = write!(out, "content-length: {}\r\n", body.len());
            }
            // A body-bearing method without one still says so, or the server waits for a body.
            None if [Method::POST, Method::PUT, Method::PATCH].contains(&req.method) => {
                push_header(out, b"content-length", b"0")
            }
            None => {}
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each connection's first request with a keep-alive response and then
    /// closes it, as nginx does when its keepalive_timeout runs out between two requests.
    /// Counts the requests it answered.
    async fn closes_after_each_answer() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let counter = answered.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut seen = Vec::new();
                while !seen.ends_with(b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&chunk[..n]),
                    }
                }
                if seen.ends_with(b"\r\n\r\n") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
                }
            }
        });
        (addr, answered)
    }

    fn request(method: Method) -> ReplayRequest {
        ReplayRequest { method, ..ReplayRequest::for_test("/x?y=1") }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_and_no_request_is_lost_or_sent_twice() {
        for method in [Method::GET, Method::POST] {
            let (addr, answered) = closes_after_each_answer().await;
            let timeout = Duration::from_secs(5);
            let direct = Direct { dial: Dial { addr, tls: None, timeout }, host: "t".into(), timeout };
            let mut conn = Connection::default();
            for _ in 0..3 {
                let (result, bytes) = direct.send(&mut conn, &request(method.clone())).await;
                assert_eq!((result.ok(), bytes), (Some(200), 2), "{method}");
                // Let the server's close arrive before the next request, as after an idle spell.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(answered.load(Ordering::SeqCst), 3, "{method}: each request answered exactly once");
        }
    }

    #[test]
    fn the_head_carries_the_planned_target_headers_host_and_body_length() {
        let timeout = Duration::from_secs(1);
        let dial = Dial { addr: "127.0.0.1:9".parse().unwrap(), tls: None, timeout };
        let direct = Direct { dial, host: "staging:8080".into(), timeout };
        let mut head = Vec::new();
        let mut req = request(Method::GET);
        req.headers.push((reqwest::header::USER_AGENT, "ua/1".parse().unwrap()));
        direct.write_head(&mut head, &req);
        assert_eq!(head, b"GET /x?y=1 HTTP/1.1\r\nhost: staging:8080\r\nuser-agent: ua/1\r\n\r\n");

        req.method = Method::POST;
        req.headers = vec![(HOST, "preserved".parse().unwrap())];
        direct.write_head(&mut head, &req);
        assert_eq!(head, b"POST /x?y=1 HTTP/1.1\r\nhost: preserved\r\ncontent-length: 0\r\n\r\n");

        req.body = Some(bytes::Bytes::from_static(b"a=1"));
        direct.write_head(&mut head, &req);
        assert!(head.ends_with(b"content-length: 3\r\n\r\n"));
    }
}
