//! One HTTP/1.1 client connection, written for replay: the request goes out in one `write`, the
//! response head is parsed in place with `httparse`, and the body is counted and thrown away.
//!
//! Why not hyper's connection client: at full rate its per-request cost (a hand-off to the
//! connection's own task and back, a `HeaderMap` built for every response) was most of sluice's
//! user-space time, and keeping sluice from being the bottleneck of its own test is the point
//! (profile in bench/RESULTS.md). A replay needs little of HTTP/1.1 from the client side: one
//! request at a time per connection, no upgrades, bodies that are counted, not kept. The framing
//! rules followed are RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; chunked when the last
//! transfer coding is chunked; else Content-Length; else until the server closes.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response head longer than this is not HTTP from a sane server.
const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed at most (httparse needs a fixed array).
const MAX_HEADERS: usize = 128;
/// Spare room offered to each `read`.
const READ_ROOM: usize = 16 * 1024;

/// How a request failed on the wire.
#[derive(Debug)]
pub enum Failure {
    /// The socket failed. `before_response` says no byte of a response had arrived, so on a reused
    /// connection the server most likely closed it before it saw the request.
    Io { error: io::Error, before_response: bool },
    /// The server sent something that is not an HTTP/1.x response.
    Protocol(&'static str),
}

/// What came back for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Body bytes received, after removing the chunked framing.
    pub body_bytes: u64,
    /// Whether the connection may carry another request.
    pub reusable: bool,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One open connection and the bytes read from it but not yet used.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Requests answered on this connection so far.
    pub served: u64,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are written whole; Nagle would only hold the next one back.
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: Vec::with_capacity(READ_ROOM), served: 0 })
    }

    /// Whether the server has already closed this idle connection (or sent something unasked).
    /// Costs a non-blocking `read`, so it is only worth asking before a request that must not be
    /// sent twice.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut probe = [0u8; 1];
        !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends one request (`head` is the complete request head, `body` follows it) and reads the
    /// whole response.
    pub async fn exchange(&mut self, head: &[u8], body: &[u8], is_head: bool) -> Result<Response, Failure> {
        let io = |error| Failure::Io { error, before_response: true };
        // Leftover bytes mean the server answered more than was asked: nothing after can be trusted.
        if !self.buf.is_empty() {
            return Err(Failure::Protocol("bytes arrived before the request was sent"));
        }
        if body.is_empty() {
            self.stream.write_all(head).await.map_err(io)?;
        } else {
            let mut parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
            write_all_vectored(&mut self.stream, &mut parts).await.map_err(io)?;
        }
        let (status, framing, keep_alive) = self.read_head(is_head).await?;
        let body_bytes = match framing {
            Framing::None => 0,
            Framing::Length(n) => {
                self.skip(n).await?;
                n
            }
            Framing::Chunked => self.skip_chunked().await?,
            Framing::UntilClose => self.skip_to_end().await?,
        };
        self.served += 1;
        let reusable = keep_alive && framing != Framing::UntilClose && self.buf.is_empty();
        Ok(Response { status, body_bytes, reusable })
    }

    /// Reads up to the end of the final (non-1xx) response head; returns its status, how its body
    /// is framed and whether the server keeps the connection open.
    async fn read_head(&mut self, is_head: bool) -> Result<(u16, Framing, bool), Failure> {
        let mut received = false;
        loop {
            if !self.buf.is_empty() {
                received = true;
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = response.code.unwrap_or_default();
                        let head = Head::of(&response)?;
                        self.consume(len);
                        // 100 Continue, 103 Early Hints: the real answer follows. (101 is final: a
                        // replay never asks to switch protocols, so the connection is not reused.)
                        if (100..200).contains(&status) && status != 101 {
                            continue;
                        }
                        let framing = if is_head || status == 204 || status == 304 || status == 101 {
                            Framing::None
                        } else {
                            head.framing
                        };
                        return Ok((status, framing, head.keep_alive && status != 101));
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                        return Err(Failure::Protocol("response head too large"));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Failure::Protocol("not an HTTP/1 response")),
                }
            }
            self.fill(!received).await?;
        }
    }

    /// Discards `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Failure> {
        loop {
            let take = n.min(self.buf.len() as u64);
            self.consume(take as usize);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill(false).await?;
        }
    }

    /// Discards a chunked body; returns its decoded length.
    async fn skip_chunked(&mut self) -> Result<u64, Failure> {
        let mut total = 0u64;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.consume(len);
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                        return Err(Failure::Protocol("chunk size line too long"));
                    }
                    Ok(httparse::Status::Partial) => self.fill(false).await?,
                    Err(_) => return Err(Failure::Protocol("bad chunk size")),
                }
            };
            if size == 0 {
                // Trailer fields, then the empty line that ends the message.
                loop {
                    match memchr::memmem::find(&self.buf, b"\r\n") {
                        Some(0) => {
                            self.consume(2);
                            return Ok(total);
                        }
                        Some(end) => self.consume(end + 2),
                        None if self.buf.len() > MAX_HEAD => return Err(Failure::Protocol("trailers too large")),
                        None => self.fill(false).await?,
                    }
                }
            }
            self.skip(size).await?;
            total += size;
            while self.buf.len() < 2 {
                self.fill(false).await?;
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(Failure::Protocol("chunk not followed by CRLF"));
            }
            self.consume(2);
        }
    }

    /// Discards everything up to the server's close; returns how much that was.
    async fn skip_to_end(&mut self) -> Result<u64, Failure> {
        let mut total = self.buf.len() as u64;
        self.buf.clear();
        loop {
            self.buf.reserve(READ_ROOM);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(error) => return Err(Failure::Io { error, before_response: false }),
            }
            self.buf.clear();
        }
    }

    /// Reads more bytes into the buffer; the end of the stream here is an error, since a message
    /// is incomplete.
    async fn fill(&mut self, before_response: bool) -> Result<(), Failure> {
        self.buf.reserve(READ_ROOM);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Failure::Io { error: io::ErrorKind::UnexpectedEof.into(), before_response }),
            Ok(_) => Ok(()),
            Err(error) => Err(Failure::Io { error, before_response }),
        }
    }

    fn consume(&mut self, n: usize) {
        if n == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..n);
        }
    }
}

/// What a response head says about the connection and the body.
struct Head {
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn of(response: &httparse::Response) -> Result<Head, Failure> {
        let mut length: Option<u64> = None;
        let mut transfer_coding: Option<&[u8]> = None;
        // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes unless told otherwise.
        let mut keep_alive = response.version == Some(1);
        for header in response.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(Failure::Protocol("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Failure::Protocol("conflicting Content-Length"));
                }
                length = Some(n);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // Several fields form one list; the last coding is what frames the body.
                transfer_coding = value.rsplit(|&b| b == b',').next();
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                        keep_alive = true;
                    }
                }
            }
        }
        let framing = match (transfer_coding, length) {
            (Some(coding), _) if coding.trim_ascii().eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            // Another coding last: only the close marks the end (RFC 9112 §6.3, rule 4).
            (Some(_), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        };
        Ok(Head { framing, keep_alive })
    }
}

async fn write_all_vectored(stream: &mut TcpStream, mut parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !parts.is_empty() {
        let n = stream.write_vectored(parts).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `replies` in order, one per request head received, on one connection; then closes.
    /// Returns the address and a handle yielding every byte the client sent.
    async fn scripted(replies: Vec<&'static [u8]>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for reply in replies {
                // Wait for one whole request head (the tests send no bodies here).
                let heads_before = seen.windows(4).filter(|w| w == b"\r\n\r\n").count();
                while seen.windows(4).filter(|w| w == b"\r\n\r\n").count() == heads_before {
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return seen;
                    }
                    seen.extend_from_slice(&chunk[..n]);
                }
                // Written in small pieces, so the client must reassemble across reads.
                for piece in reply.chunks(7) {
                    socket.write_all(piece).await.unwrap();
                    socket.flush().await.unwrap();
                }
            }
            seen
        });
        (addr, server)
    }

    const GET: &[u8] = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n";

    async fn one(reply: &'static [u8], is_head: bool) -> Result<Response, Failure> {
        let (addr, _server) = scripted(vec![reply]).await;
        let mut conn = Connection::connect(addr).await.unwrap();
        conn.exchange(GET, b"", is_head).await
    }

    #[tokio::test]
    async fn content_length_body_is_counted_and_connection_kept() {
        let r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false).await.unwrap();
        assert_eq!(r, Response { status: 200, body_bytes: 5, reusable: true });
    }

    #[tokio::test]
    async fn chunked_body_is_decoded_with_extensions_and_trailers() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = one(reply, false).await.unwrap();
        assert_eq!(r, Response { status: 200, body_bytes: 15, reusable: true });
    }

    #[tokio::test]
    async fn body_until_close_makes_the_connection_single_use() {
        let r = one(b"HTTP/1.1 200 OK\r\n\r\nsome bytes", false).await.unwrap();
        assert_eq!(r, Response { status: 200, body_bytes: 10, reusable: false });
    }

    #[tokio::test]
    async fn no_body_for_head_204_304_and_interim_responses_are_skipped() {
        let r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true).await.unwrap();
        assert_eq!(r, Response { status: 200, body_bytes: 0, reusable: true });
        let r = one(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false).await.unwrap();
        assert_eq!(r.body_bytes, 0);
        let r =
            one(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false).await.unwrap();
        assert_eq!(r, Response { status: 204, body_bytes: 0, reusable: true });
    }

    #[tokio::test]
    async fn connection_close_and_http10_end_reuse() {
        let r = one(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false).await.unwrap();
        assert!(!r.reusable);
        let r = one(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).await.unwrap();
        assert!(!r.reusable);
        let r = one(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", false).await.unwrap();
        assert!(r.reusable);
    }

    #[tokio::test]
    async fn garbage_and_bad_framing_are_protocol_errors() {
        for reply in [
            &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        ] {
            let r = one(reply, false).await;
            assert!(matches!(r, Err(Failure::Protocol(_))), "{:?}: {r:?}", String::from_utf8_lossy(reply));
        }
    }

    #[tokio::test]
    async fn a_cut_response_is_an_io_failure_saying_whether_anything_arrived() {
        let r = one(b"", false).await;
        assert!(matches!(r, Err(Failure::Io { before_response: true, .. })), "{r:?}");
        let r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false).await;
        assert!(matches!(r, Err(Failure::Io { before_response: false, .. })), "{r:?}");
    }

    #[tokio::test]
    async fn requests_go_out_exactly_as_given_and_the_connection_is_reused() {
        let reply = &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..];
        let (addr, server) = scripted(vec![reply, reply]).await;
        let mut conn = Connection::connect(addr).await.unwrap();
        assert_eq!(conn.exchange(GET, b"", false).await.unwrap().status, 200);
        assert!(!conn.is_closed_by_peer());
        assert_eq!(conn.exchange(GET, b"", false).await.unwrap().status, 200);
        assert_eq!(conn.served, 2);
        drop(conn);
        assert_eq!(server.await.unwrap(), [GET, GET].concat());
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_noticed_before_sending() {
        let (addr, server) = scripted(vec![]).await;
        let mut conn = Connection::connect(addr).await.unwrap();
        server.await.unwrap();
        // The close travels over loopback; give it a moment.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(conn.is_closed_by_peer());
    }
}
