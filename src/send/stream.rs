//! The byte stream under a direct connection: plain TCP for `http://`, TLS (tokio-rustls) for
//! `https://`, and [`Dial`], which opens one to the target.
//!
//! An enum rather than a generic or a `dyn` stream: one connection type serves both schemes, and a
//! `match` per poll costs nothing next to the system call behind it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustls::AlertDescription;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::outcome::{ErrorKind, Failure};
use crate::config::TlsSettings;

pub enum Stream {
    Plain(TcpStream),
    // Boxed: a TLS connection's state is over a kilobyte, and most streams are plain.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the server has already closed this idle stream (or sent something unasked): one
    /// non-blocking read. Over TLS, records that carry no data (session tickets) are taken in
    /// silently; a close_notify or a TCP close says closed.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        // Nothing waits on this poll: the next real read registers the task's own waker.
        let mut cx = Context::from_waker(Waker::noop());
        !matches!(Pin::new(self).poll_read(&mut cx, &mut buf), Poll::Pending)
    }

    /// The protocol the server chose by ALPN, on TLS.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS side of a target: one connector (so one session cache: every sender's reconnect
/// resumes a session instead of a full handshake) and the name its certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
    /// The protocol the server must choose by ALPN (`h2`), if any.
    pub required_alpn: Option<&'static [u8]>,
}

impl TlsTarget {
    /// `host` is the target's host: the name sent by SNI and verified in the certificate, unless
    /// `--tls-server-name` names another.
    pub fn new(
        host: &str,
        tls: &TlsSettings,
        alpn: &[&'static [u8]],
        required_alpn: Option<&'static [u8]>,
    ) -> Result<TlsTarget, String> {
        let name =
            tls.server_name.clone().unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']').to_string());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| format!("'{name}' is not a name TLS can verify: {e}"))?;
        let config = crate::send::tls::client_config(tls, alpn)?;
        Ok(TlsTarget { connector: TlsConnector::from(config), server_name, required_alpn })
    }
}

/// How a sender opens a connection to the target: resolved once, TLS or not.
pub struct Dial {
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
    pub timeout: Duration,
}

impl Dial {
    /// A connected stream (handshake done), or why not: `connect` for TCP, `tls` for the
    /// handshake, `timeout` when the two together take longer than the connect timeout.
    pub async fn connect(&self) -> Result<Stream, Failure> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(failure)) => Err(Failure { message: format!("{} ({})", failure.message, self.addr), ..failure }),
            Err(_) => Err(Failure::new(
                ErrorKind::Timeout,
                format!("no connection within {:?} ({})", self.timeout, self.addr),
            )),
        }
    }

    async fn open(&self) -> Result<Stream, Failure> {
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| Failure::from_error(&e, true))?;
        // Requests are written whole; Nagle would only hold the next one back.
        tcp.set_nodelay(true).map_err(|e| Failure::from_error(&e, true))?;
        let Some(tls) = &self.tls else { return Ok(Stream::Plain(tcp)) };
        let stream = tls.connector.connect(tls.server_name.clone(), tcp).await.map_err(|e| {
            let failure = Failure::from_error(&e, true);
            let refused = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match (tls.required_alpn, refused, failure.kind) {
                (Some(required), Some(rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)), _) => {
                    alpn_refused(required, "it refused the handshake")
                }
                // A rustls error (a certificate refused, an alert) says what failed by itself.
                (_, _, ErrorKind::Local | ErrorKind::Timeout | ErrorKind::Tls) => failure,
                // Whatever else ended it (a server that does not speak TLS and closed), the
                // handshake is what failed.
                _ => Failure { kind: ErrorKind::Tls, message: format!("TLS handshake: {}", failure.message) },
            }
        })?;
        let stream = Stream::Tls(Box::new(stream));
        if let Some(required) = tls.required_alpn {
            match stream.alpn_protocol() {
                Some(chosen) if chosen == required => {}
                Some(chosen) => {
                    return Err(alpn_refused(required, &format!("it chose {}", String::from_utf8_lossy(chosen))));
                }
                None => return Err(alpn_refused(required, "it chose none")),
            }
        }
        Ok(stream)
    }
}

/// The server will not speak `required` (`h2`): a protocol failure, whatever TLS said about it.
fn alpn_refused(required: &[u8], how: &str) -> Failure {
    let required = String::from_utf8_lossy(required);
    Failure::new(
        ErrorKind::Protocol,
        format!("the server did not agree to {required} by ALPN ({how}); use --http-version 1.1"),
    )
}
