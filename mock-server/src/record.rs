//! The record of what the mock received: one [`RecordedRequest`] per request, kept in memory
//! and/or written as JSON lines by a dedicated writer thread.
//!
//! A JSON line looks like (wrapped here):
//!
//! ```text
//! {"seq":0,"key":0,"received_at":"2026-11-21T14:03:07.123Z","conn":1,"peer":"127.0.0.1:50312",
//!  "method":"POST","target":"/caf%E9?q=1","version":"HTTP/1.1",
//!  "headers":[["host","127.0.0.1:8080"],["x-sluice-seq","0"]],
//!  "body":"hello","body_len":5,"action":"respond","status":200,"latency_ms":5.0}
//! ```
//!
//! Bytes that may not be UTF-8 (header values, body) are written as a JSON string when they are
//! valid UTF-8, and as `{"base64":"..."}` otherwise, so nothing is lost or replaced. The target is
//! always text: hyper only hands over targets that are valid UTF-8 (see the crate doc).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::error::MockError;
use crate::spec::Behavior;

/// One request as the mock received it, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Arrival number, 0-based, in the order the server finished reading request heads.
    pub seq: u64,
    /// The key of the seeded draws: the `x-sluice-seq` header's value, else `seq`.
    pub key: u64,
    pub received_at: SystemTime,
    /// Which connection it came on (1-based, in accept order); keep-alive reuse shows here.
    pub conn_id: u64,
    pub peer: SocketAddr,
    pub method: String,
    /// The request-target as sent (`/path?query`, or the whole URL in absolute form), minus any
    /// `#fragment`. Percent-escapes are kept as they came (`%E9` stays `%E9`).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Names lower-cased; in arrival order, except that repeats of a name are grouped after its
    /// first occurrence (that is how hyper's `HeaderMap` keeps them).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, cut at `MockConfig::max_recorded_body`.
    pub body: Bytes,
    /// The full body length received, even when `body` was cut.
    pub body_len: u64,
    pub behavior: Behavior,
    /// The delay applied before answering.
    pub latency: Duration,
}

impl RecordedRequest {
    /// The status answered, or `None` for reset, garbage and hang.
    pub fn status(&self) -> Option<u16> {
        self.behavior.status()
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The first value of header `name` (case-insensitive), as text (invalid UTF-8 replaced).
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.header_bytes(name).map(String::from_utf8_lossy)
    }

    /// The first value of header `name` (case-insensitive), as received.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The recorded body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// This record as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serialising plain strings, numbers and maps into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Text if it is UTF-8, else `{"base64": "..."}`.
struct LosslessBytes<'a>(&'a [u8]);

impl Serialize for LosslessBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(self.0))?;
                map.end()
            }
        }
    }
}

impl Serialize for RecordedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            seq: u64,
            key: u64,
            received_at: String,
            conn: u64,
            peer: String,
            method: &'a str,
            target: &'a str,
            version: &'a str,
            headers: Vec<(&'a str, LosslessBytes<'a>)>,
            body: LosslessBytes<'a>,
            body_len: u64,
            action: &'static str,
            status: Option<u16>,
            latency_ms: f64,
        }
        let received_at = chrono::DateTime::<chrono::Utc>::from(self.received_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Line {
            seq: self.seq,
            key: self.key,
            received_at,
            conn: self.conn_id,
            peer: self.peer.to_string(),
            method: &self.method,
            target: &self.target,
            version: &self.version,
            headers: self.headers.iter().map(|(n, v)| (n.as_str(), LosslessBytes(v))).collect(),
            body: LosslessBytes(&self.body),
            body_len: self.body_len,
            action: self.behavior.action(),
            status: self.behavior.status(),
            // Microsecond resolution is plenty next to tokio's 1 ms timer.
            latency_ms: self.latency.as_micros() as f64 / 1000.0,
        }
        .serialize(s)
    }
}

enum Msg {
    Record(Box<RecordedRequest>),
    /// Flush, report the first write error if any, and stop.
    Finish(mpsc::Sender<Result<(), MockError>>),
}

/// Sends records to the thread that owns the file, so request handlers never wait on disk.
pub(crate) struct FileRecorder {
    tx: mpsc::Sender<Msg>,
}

impl FileRecorder {
    /// Creates (or truncates) `path` now, so a bad path fails the spawn rather than the first
    /// request.
    pub(crate) fn start(path: &Path) -> Result<FileRecorder, MockError> {
        let file = File::create(path).map_err(|source| MockError::RecordOpen { path: path.to_owned(), source })?;
        let (tx, rx) = mpsc::channel();
        let path = path.to_owned();
        thread::Builder::new()
            .name("sluice-mock-record".into())
            .spawn(move || write_loop(rx, BufWriter::with_capacity(256 * 1024, file), path))
            .map_err(MockError::Thread)?;
        Ok(FileRecorder { tx })
    }

    pub(crate) fn send(&self, record: RecordedRequest) {
        // A send fails only after finish(); late requests during shutdown are dropped.
        let _ = self.tx.send(Msg::Record(Box::new(record)));
    }

    /// Flushes and stops the writer; blocks until it is done, so call it off the async threads.
    pub(crate) fn finish(&self) -> Result<(), MockError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        if self.tx.send(Msg::Finish(reply_tx)).is_err() {
            return Ok(()); // already finished
        }
        reply_rx.recv().unwrap_or(Ok(()))
    }
}

fn write_loop(rx: mpsc::Receiver<Msg>, mut out: BufWriter<File>, path: PathBuf) {
    let mut failed: Option<io::Error> = None;
    let write = |out: &mut BufWriter<File>, msg: Msg, failed: &mut Option<io::Error>| -> bool {
        match msg {
            Msg::Record(record) => {
                if failed.is_none() {
                    let line = record.to_json_line();
                    if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")) {
                        *failed = Some(e);
                    }
                }
                true
            }
            Msg::Finish(reply) => {
                let result = match failed.take() {
                    Some(e) => Err(e),
                    None => out.flush(),
                };
                let _ = reply.send(result.map_err(|source| MockError::RecordWrite { path: path.clone(), source }));
                false
            }
        }
    };
    // Write whatever is queued, then flush once the queue is empty: batches under load, and a
    // reader tailing the file sees each request soon after it arrived when traffic is light.
    while let Ok(msg) = rx.recv() {
        if !write(&mut out, msg, &mut failed) {
            return;
        }
        while let Ok(msg) = rx.try_recv() {
            if !write(&mut out, msg, &mut failed) {
                return;
            }
        }
        if failed.is_none() {
            failed = out.flush().err();
        }
    }
    // Every sender dropped without finish() (the server was dropped): BufWriter flushes on drop.
}
