//! How requests reach the target.
//!
//! - [`Transport::Direct`] (plain `http://` targets, the common staging case): every sender owns
//!   one HTTP/1.1 keep-alive connection (hyper's connection-level client), so there is no pool
//!   to lock, no per-request URL or proxy resolution, and no cross-task hand-off. This is the
//!   architecture of the fastest peers (oha), and it measured ~2× the throughput of a pooled
//!   reqwest client per CPU on this machine (see bench/RESULTS.md).
//! - [`Transport::Pooled`] (reqwest) whenever something needs its machinery: TLS (`https://`),
//!   `--use-env-proxy`, `--follow-redirects`.
//!
//! Both give the same result for a request: its status (or why there is none) and the body bytes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use reqwest::header::{HOST, HeaderValue};
use reqwest::{Client, Url};
use tokio::net::TcpStream;

use crate::config::ReplayConfig;
use crate::plan::ReplayRequest;
use crate::replay::ErrorKind;

pub enum Transport {
    Pooled(Client),
    Direct(Direct),
}

/// A sender's own state between requests: its connection, for the direct transport.
#[derive(Default)]
pub struct Connection(Option<SendRequest<Full<Bytes>>>);

impl Transport {
    pub fn build(config: &ReplayConfig, target: &Url) -> Result<Transport, String> {
        if target.scheme() != "http" || config.use_env_proxy || config.follow_redirects {
            return crate::replay::build_client(config, target).map(Transport::Pooled).map_err(|e| e.to_string());
        }
        let host = target.host_str().unwrap_or_default();
        let port = target.port_or_known_default().unwrap_or(80);
        // Resolved once: a replay aims at one target, and a DNS lookup per connection would add
        // latency that is not the target's.
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("--target host {host} cannot be resolved: {e}"))?
            .next()
            .ok_or_else(|| format!("--target host {host} resolves to no address"))?;
        let authority = match target.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let host = HeaderValue::from_str(&authority).map_err(|e| format!("--target host {authority}: {e}"))?;
        Ok(Transport::Direct(Direct {
            addr,
            host,
            timeout: config.timeout,
            connect_timeout: config.timeout.min(Duration::from_secs(5)),
        }))
    }

    pub async fn send(&self, conn: &mut Connection, req: &ReplayRequest) -> (Result<u16, ErrorKind>, u64) {
        match self {
            Transport::Pooled(client) => send_pooled(client, req).await,
            Transport::Direct(direct) => direct.send(conn, req).await,
        }
    }
}

/// Sends one request through reqwest and reads the whole response body.
async fn send_pooled(client: &Client, req: &ReplayRequest) -> (Result<u16, ErrorKind>, u64) {
    let mut builder = client.request(req.method.clone(), req.url.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let mut response = match builder.send().await {
        Ok(response) => response,
        Err(e) => return (Err(ErrorKind::classify(&e)), 0),
    };
    let status = response.status().as_u16();
    // Count body bytes chunk by chunk; nothing is copied or kept.
    let mut bytes = 0u64;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes += chunk.len() as u64,
            Ok(None) => return (Ok(status), bytes),
            Err(e) => return (Err(ErrorKind::classify(&e)), bytes),
        }
    }
}

pub struct Direct {
    addr: SocketAddr,
    /// `host[:port]` of the target, the Host header unless the request sets its own.
    host: HeaderValue,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Direct {
    async fn send(&self, conn: &mut Connection, req: &ReplayRequest) -> (Result<u16, ErrorKind>, u64) {
        let outcome = match tokio::time::timeout(self.timeout, self.exchange(conn, req)).await {
            Ok(outcome) => outcome,
            Err(_) => (Err(ErrorKind::Timeout), 0),
        };
        // After any failure the connection's state is unknown: the next request gets a new one.
        if outcome.0.is_err() {
            conn.0 = None;
        }
        outcome
    }

    async fn exchange(&self, conn: &mut Connection, req: &ReplayRequest) -> (Result<u16, ErrorKind>, u64) {
        // A kept-alive connection the server has closed meanwhile is not the request's fault: the
        // request was never sent, so it goes once more on a fresh connection (as reqwest does).
        let mut fresh = false;
        let response = loop {
            let sender = match conn.0.as_mut().filter(|s| !s.is_closed()) {
                Some(sender) => sender,
                None => match self.connect().await {
                    Ok(sender) => {
                        fresh = true;
                        conn.0.insert(sender)
                    }
                    Err(kind) => return (Err(kind), 0),
                },
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return (Err(ErrorKind::Reset), 0);
                }
                conn.0 = None;
                continue;
            }
            match sender.send_request(self.request(req)).await {
                Ok(response) => break response,
                Err(e) if e.is_canceled() && !fresh => conn.0 = None,
                Err(e) => return (Err(ErrorKind::from_chain(&e, false)), 0),
            }
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => bytes += frame.data_ref().map_or(0, |d| d.len() as u64),
                Err(e) => return (Err(ErrorKind::from_chain(&e, false)), bytes),
            }
        }
        (Ok(status), bytes)
    }

    fn request(&self, req: &ReplayRequest) -> hyper::Request<Full<Bytes>> {
        // Origin form: the path and query exactly as planned.
        let path_and_query = &req.url[url::Position::BeforePath..];
        let mut request = hyper::Request::new(Full::new(req.body.clone().unwrap_or_default()));
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = hyper::Uri::try_from(path_and_query).unwrap_or_else(|_| hyper::Uri::from_static("/"));
        let headers = request.headers_mut();
        headers.reserve(req.headers.len() + 1);
        for (name, value) in &req.headers {
            headers.append(name.clone(), value.clone());
        }
        if !headers.contains_key(HOST) {
            headers.insert(HOST, self.host.clone());
        }
        request
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ErrorKind> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(ErrorKind::from_chain(&e, true)),
            Err(_) => return Err(ErrorKind::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| ErrorKind::from_chain(&e, true))?;
        // The connection task drives the socket; it ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
