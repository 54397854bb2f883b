//! One HTTP/1.1 client connection (over TCP or TLS, [`Stream`]), written for replay: the request
//! goes out in one `write`, the response head is parsed in place with `httparse`, and the body is
//! counted and thrown away.
//!
//! Why not hyper's connection client: at full rate its per-request cost (a hand-off to the
//! connection's own task and back, a `HeaderMap` built for every response) was most of sluice's
//! user-space time, and keeping sluice from being the bottleneck of its own test is the point
//! (profile in bench/RESULTS.md). A replay needs little of HTTP/1.1 from the client side: one
//! request at a time per connection, no upgrades, bodies that are counted, not kept. The framing
//! rules followed are RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; chunked when the last
//! transfer coding is chunked; else Content-Length; else until the server closes.

use std::io;
use std::mem::MaybeUninit;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::stream::Stream;

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

/// One open connection (plain or TLS) and the bytes read from it but not yet used.
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    /// Body bytes of the current (or last) response received so far: kept here rather than in
    /// the exchange's future, so a response cut off by a timeout still counts what arrived.
    body_received: u64,
}

impl Connection {
    /// `stream` is connected, its TLS handshake (if any) done.
    pub fn new(stream: Stream) -> Connection {
        Connection { stream, buf: Vec::with_capacity(READ_ROOM), body_received: 0 }
    }

    /// Whether the server has already closed this idle connection (or sent something unasked).
    /// Costs a non-blocking `read`, so it is only worth asking before a request that must not be
    /// sent twice.
    pub fn is_closed_by_peer(&mut self) -> bool {
        self.stream.is_closed_by_peer()
    }

    /// Body bytes of the current response received so far, whatever became of it.
    pub fn body_received(&self) -> u64 {
        self.body_received
    }

    /// Sends one request (`head` is the complete request head, `body` follows it) and reads the
    /// whole response.
    pub async fn exchange(&mut self, head: &[u8], body: &[u8], is_head: bool) -> Result<Response, Failure> {
        self.exchange_observed(head, body, is_head, &mut |_| ()).await
    }

    /// [`Connection::exchange`], handing each piece of the response body (framing removed) to
    /// `on_body` as it arrives: how `--compare` digests bodies without keeping them.
    pub async fn exchange_observed(
        &mut self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
        on_body: &mut (impl FnMut(&[u8]) + Send),
    ) -> Result<Response, Failure> {
        self.body_received = 0;
        let io = |error| Failure::Io { error, before_response: true };
        if body.is_empty() {
            self.stream.write_all(head).await.map_err(io)?;
        } else {
            let mut parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
            write_all_vectored(&mut self.stream, &mut parts).await.map_err(io)?;
        }
        let mut decoder = ResponseDecoder::new(is_head);
        let mut received = false;
        loop {
            let (used, done) = decoder.decode_observed(&self.buf, on_body).map_err(Failure::Protocol)?;
            self.body_received = decoder.body_bytes;
            if used == self.buf.len() {
                self.buf.clear();
            } else {
                self.buf.drain(..used);
            }
            if let Some(response) = done {
                // Bytes beyond the response were never asked for: nothing after them can be trusted.
                return Ok(Response { reusable: response.reusable && self.buf.is_empty(), ..response });
            }
            self.buf.reserve(READ_ROOM);
            let read = match self.stream.read_buf(&mut self.buf).await {
                // A TLS peer may close without a close_notify: for the response, an end all the same.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                read => read,
            };
            match read {
                Ok(0) => {
                    let eof = || Failure::Io { error: io::ErrorKind::UnexpectedEof.into(), before_response: !received };
                    return decoder.finish().ok_or_else(eof);
                }
                Ok(_) => received = true,
                Err(error) => return Err(Failure::Io { error, before_response: !received }),
            }
        }
    }
}

/// Reads one response from bytes as they arrive. It does no I/O itself, so it is tested and
/// fuzzed on byte strings cut anywhere.
pub struct ResponseDecoder {
    is_head: bool,
    state: State,
    status: u16,
    keep_alive: bool,
    body_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still to come, by Content-Length.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

impl ResponseDecoder {
    /// `is_head`: the request was HEAD, so the response has no body whatever its headers say.
    pub fn new(is_head: bool) -> ResponseDecoder {
        ResponseDecoder { is_head, state: State::Head, status: 0, keep_alive: false, body_bytes: 0 }
    }

    /// Takes what it can from `input`: returns how many bytes it used and, once the response is
    /// complete, the response. Never uses a byte past the response's end.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Response>), &'static str> {
        self.decode_observed(input, &mut |_| ())
    }

    /// [`ResponseDecoder::decode`], handing each piece of body it takes to `on_body`.
    pub fn decode_observed(
        &mut self,
        input: &[u8],
        on_body: &mut impl FnMut(&[u8]),
    ) -> Result<(usize, Option<Response>), &'static str> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Head => {
                    let Some(head) = Head::parse(rest)? else {
                        return if rest.len() > MAX_HEAD { Err("response head too large") } else { Ok((used, None)) };
                    };
                    used += head.len;
                    // 100 Continue, 103 Early Hints: the real answer follows. (101 is final: a
                    // replay never asks to switch protocols, so the connection is not reused.)
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    self.status = head.status;
                    self.keep_alive = head.keep_alive && head.status != 101;
                    let bodyless = self.is_head || matches!(head.status, 101 | 204 | 304);
                    self.state = match head.framing {
                        _ if bodyless => State::Done,
                        Framing::Length(0) => State::Done,
                        Framing::Length(n) => State::Length(n),
                        Framing::Chunked => State::ChunkSize,
                        Framing::UntilClose => State::UntilClose,
                    };
                }
                State::Length(n) | State::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    on_body(&rest[..take as usize]);
                    used += take as usize;
                    self.body_bytes += take;
                    let left = n - take;
                    let chunked = matches!(self.state, State::ChunkData(_));
                    self.state = match (chunked, left) {
                        (false, 0) => State::Done,
                        (true, 0) => State::ChunkEnd,
                        (false, _) => State::Length(left),
                        (true, _) => State::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok((used, None));
                    }
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        used += len;
                        self.state = if size == 0 { State::Trailers } else { State::ChunkData(size) };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_HEAD => return Err("chunk size line too long"),
                    Ok(httparse::Status::Partial) => return Ok((used, None)),
                    Err(_) => return Err("bad chunk size"),
                },
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok((used, None)),
                    _ => return Err("chunk data not followed by CRLF"),
                },
                // Trailer fields, then the empty line that ends the message.
                State::Trailers => match memchr::memmem::find(rest, b"\r\n") {
                    Some(0) => {
                        used += 2;
                        self.state = State::Done;
                    }
                    Some(end) => used += end + 2,
                    None if rest.len() > MAX_HEAD => return Err("trailers too large"),
                    None => return Ok((used, None)),
                },
                State::UntilClose => {
                    on_body(rest);
                    self.body_bytes += rest.len() as u64;
                    return Ok((input.len(), None));
                }
                State::Done => return Ok((used, Some(self.response()))),
            }
        }
    }

    /// The server closed the connection: the response, if the close is what ends it.
    pub fn finish(&self) -> Option<Response> {
        (self.state == State::UntilClose).then(|| self.response())
    }

    fn response(&self) -> Response {
        Response {
            status: self.status,
            body_bytes: self.body_bytes,
            reusable: self.keep_alive && self.state != State::UntilClose,
        }
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// What a response head says about the connection and the body.
struct Head {
    /// Bytes of the head, up to and including its empty line.
    len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    /// `None` until the whole head is there.
    fn parse(input: &[u8]) -> Result<Option<Head>, &'static str> {
        // Left uninitialised: zeroing the array for every response cost more than parsing it.
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            input,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
            Err(_) => return Err("not an HTTP/1 response"),
        };
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
                    .ok_or("bad Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length");
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
        Ok(Some(Head { len, status: response.code.unwrap_or_default(), framing, keep_alive }))
    }
}

async fn write_all_vectored(
    stream: &mut (impl AsyncWrite + Unpin),
    mut parts: &mut [io::IoSlice<'_>],
) -> io::Result<()> {
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
    use std::net::SocketAddr;

    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    async fn connect(addr: SocketAddr) -> Connection {
        Connection::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()))
    }

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
        let mut conn = connect(addr).await;
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
        let mut conn = connect(addr).await;
        assert_eq!(conn.exchange(GET, b"", false).await.unwrap().status, 200);
        assert!(!conn.is_closed_by_peer());
        assert_eq!(conn.exchange(GET, b"", false).await.unwrap().status, 200);
        drop(conn);
        assert_eq!(server.await.unwrap(), [GET, GET].concat());
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_noticed_before_sending() {
        let (addr, server) = scripted(vec![]).await;
        let mut conn = connect(addr).await;
        server.await.unwrap();
        // The close travels over loopback; give it a moment.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(conn.is_closed_by_peer());
    }

    /// Feeds `bytes` to a decoder `piece` bytes at a time, the way [`Connection::exchange`] does;
    /// returns the outcome (`Ok(None)`: the bytes ended mid-response) and the bytes used (0 after
    /// an error, when the connection is dropped anyway).
    fn feed(bytes: &[u8], piece: usize, is_head: bool) -> (Result<Option<Response>, &'static str>, usize) {
        let mut decoder = ResponseDecoder::new(is_head);
        let (mut buf, mut consumed) = (Vec::new(), 0);
        for chunk in bytes.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            match decoder.decode(&buf) {
                Err(e) => return (Err(e), 0),
                Ok((used, done)) => {
                    assert!(used <= buf.len());
                    buf.drain(..used);
                    consumed += used;
                    if done.is_some() {
                        return (Ok(done), consumed);
                    }
                }
            }
        }
        (Ok(decoder.finish()), consumed)
    }

    #[derive(Debug, Clone, Copy)]
    enum Framed {
        Length,
        Chunked,
        UntilClose,
    }

    proptest::proptest! {
        /// Any well-formed response, cut anywhere: the right status and body length, and not one
        /// byte of what follows it used.
        #[test]
        fn well_formed_responses_decode_the_same_however_they_arrive(
            status in proptest::sample::select(vec![200u16, 201, 204, 301, 304, 404, 500, 503]),
            framed in proptest::sample::select(vec![Framed::Length, Framed::Chunked, Framed::UntilClose]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            chunk_sizes in proptest::collection::vec(1..64usize, 1..8),
            (interim, is_head, close) in proptest::prelude::any::<(bool, bool, bool)>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            piece in 1..80usize,
        ) {
            let bodyless = is_head || status == 204 || status == 304;
            let mut bytes = Vec::new();
            if interim {
                bytes.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            bytes.extend_from_slice(format!("HTTP/1.1 {status} Whatever\r\nServer: t\r\n").as_bytes());
            if close {
                bytes.extend_from_slice(b"Connection: close\r\n");
            }
            match framed {
                Framed::Length => bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()),
                Framed::Chunked => bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
                Framed::UntilClose => bytes.extend_from_slice(b"\r\n"),
            }
            if !bodyless {
                match framed {
                    Framed::Chunked => {
                        let mut rest = &body[..];
                        for size in chunk_sizes.iter().cycle() {
                            if rest.is_empty() {
                                break;
                            }
                            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                            bytes.extend_from_slice(format!("{:x};n=v\r\n", chunk.len()).as_bytes());
                            bytes.extend_from_slice(chunk);
                            bytes.extend_from_slice(b"\r\n");
                            rest = tail;
                        }
                        bytes.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
                    }
                    _ => bytes.extend_from_slice(&body),
                }
            }
            let until_close = matches!(framed, Framed::UntilClose) && !bodyless;
            let response_len = bytes.len();
            if !until_close {
                bytes.extend_from_slice(&extra);
            }
            let expected = Response {
                status,
                body_bytes: if bodyless { 0 } else { body.len() as u64 },
                reusable: !close && !until_close,
            };
            proptest::prop_assert_eq!(feed(&bytes, piece, is_head), (Ok(Some(expected)), response_len));
        }

        /// Any bytes at all: no panic, and the same outcome whether they arrive whole or in pieces.
        #[test]
        fn any_bytes_give_one_outcome_however_they_arrive(
            prefix in proptest::sample::select(vec![&b""[..], b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            piece in 1..40usize,
            is_head in proptest::prelude::any::<bool>(),
        ) {
            let bytes = [prefix, &tail[..]].concat();
            proptest::prop_assert_eq!(feed(&bytes, piece, is_head), feed(&bytes, bytes.len(), is_head));
        }
    }
}
