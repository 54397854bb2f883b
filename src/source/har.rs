//! `--format har`: a browser's recording (HAR 1.2) as a source of entries, one per element of
//! `log.entries`, numbered from 1 in place of line numbers.
//!
//! A HAR is one JSON document, often tens of megabytes of response bodies. It is read as a
//! stream: serde_json walks the document with visitors, each entry is turned into an owned
//! [`Entry`] as soon as it is read and handed on, and nothing else is kept. What is kept of an
//! entry (its `request` and `startedDateTime`) is bounded by `--max-line-bytes`; the rest
//! (response bodies, timings, initiators) is skipped as it streams past. The walk is push-style,
//! so [`HarReader`] runs it on a thread of its own behind a small bounded channel, and hands the
//! entries out one at a time like lines of a log.
//!
//! Mapping: `request.method`, `request.url` (its path and query; the target's scheme and host
//! replace the recorded ones, the recorded host is the entry's virtual host), `request.headers`
//! (names lower-cased, HTTP/2 pseudo-headers left out; user agent and referer as such),
//! `request.postData.text` (or its `params`, for a url-encoded form) as the body,
//! `startedDateTime` as the logged time (fraction kept), `time` as the request time,
//! `response.status` as the logged status (0, no response, is none).
//!
//! A document that is not JSON, or has no `log.entries` array, is an error with the line and
//! column serde_json gives; an entry without a method or URL is a bad entry, counted like a bad
//! log line and the reading goes on.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sluice_parsers::Entry;
use std::borrow::Cow;

use super::{BadLine, Input, InputCut, LogReader, SourceEntry, SourceError};

/// Entries read ahead of the replay, per HAR. Each is at most `--max-line-bytes` of request.
const READ_AHEAD_ENTRIES: usize = 32;

/// Whether the start of an input is a HAR rather than log lines: a JSON object whose first
/// member is `"log": {`. (A Docker JSON log line starts `{"log":"` — a string, not an object.)
pub fn looks_like_har(head: &[u8]) -> bool {
    let skip_space = |b: &[u8]| -> usize { b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len()) };
    let mut rest = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    for token in [&b"{"[..], b"\"log\"", b":", b"{"] {
        rest = &rest[skip_space(rest)..];
        match rest.strip_prefix(token) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    true
}

/// Why one entry of a HAR cannot be replayed. Counted like a bad log line, by [`BadEntry::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEntry {
    #[error("the entry is not an object")]
    NotAnObject,
    #[error("no request object")]
    NoRequest,
    #[error("no request.method (a method name such as GET)")]
    NoMethod,
    #[error("no request.url (a string)")]
    NoUrl,
    #[error("startedDateTime '{0}' is not an ISO 8601 time with an offset")]
    BadTime(String),
}

impl BadEntry {
    pub fn kind(&self) -> &'static str {
        match self {
            BadEntry::NotAnObject => "har_entry_not_an_object",
            BadEntry::NoRequest => "har_no_request",
            BadEntry::NoMethod => "har_no_method",
            BadEntry::NoUrl => "har_no_url",
            BadEntry::BadTime(_) => "har_bad_started_date_time",
        }
    }
}

/// Why a HAR could not be read (on) as a whole.
#[derive(Debug)]
pub enum HarError {
    /// Not JSON, or not shaped like a HAR; serde_json's message says where.
    NotHar(serde_json::Error),
    /// The request of this entry is longer than the limit: reading cannot skip it and go on.
    RequestTooLong { entry: u64, limit: usize },
    /// The caller asked to stop.
    Stopped,
}

impl fmt::Display for HarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarError::NotHar(e) => write!(f, "not a HAR: {e}"),
            HarError::RequestTooLong { entry, limit } => write!(
                f,
                "entry {entry}: its request is longer than {limit} bytes (--max-line-bytes, at most {})",
                super::MAX_LINE_BYTES_LIMIT
            ),
            HarError::Stopped => write!(f, "stopped"),
        }
    }
}

/// Reads the HAR in `input` and calls `each` with every entry of `log.entries` in order,
/// numbered from 1, until the end or until `each` breaks. Memory: one entry at a time, and of it
/// only the request (at most `max_request_bytes` of JSON) and the start time.
pub fn for_each_entry<R: Read>(
    input: R,
    max_request_bytes: usize,
    each: &mut dyn FnMut(u64, Result<Entry<'static>, BadEntry>) -> ControlFlow<()>,
) -> Result<(), HarError> {
    METER.set(Meter { limit: max_request_bytes as u64, ..Meter::default() });
    let (mut current, mut stopped) = (0u64, false);
    let mut each = |number, entry| {
        let flow = each(number, entry);
        stopped = flow.is_break();
        flow
    };
    let mut deserializer = serde_json::Deserializer::from_reader(Metered::new(input));
    let walked = DocumentSeed { each: &mut each, current: &mut current }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    let meter = METER.take();
    match walked {
        Ok(()) => Ok(()),
        Err(_) if stopped => Err(HarError::Stopped),
        Err(_) if meter.tripped => Err(HarError::RequestTooLong { entry: current, limit: max_request_bytes }),
        Err(e) => Err(HarError::NotHar(e)),
    }
}

/// Bytes read so far and the metering of the part of an entry that is kept. The walk runs on one
/// thread and the reader under serde_json cannot be reached from its visitors, so the two meet
/// here.
#[derive(Debug, Default, Clone, Copy)]
struct Meter {
    consumed: u64,
    limit: u64,
    /// Where the value being metered started, while one is.
    started_at: Option<u64>,
    tripped: bool,
}

thread_local! {
    static METER: Cell<Meter> = const { Cell::new(Meter { consumed: 0, limit: 0, started_at: None, tripped: false }) };
}

/// The input, counted; it fails the read once a metered value grows past the limit, so the value
/// is never held whole. serde_json reads one byte at a time: they are served from a buffer of its
/// own rather than through the (boxed) input's calls.
struct Metered<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

/// Bytes read from the input at a time.
const METERED_CHUNK: usize = 64 * 1024;

impl<R: Read> Metered<R> {
    fn new(inner: R) -> Metered<R> {
        Metered { inner, buf: Vec::with_capacity(METERED_CHUNK), pos: 0 }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.resize(METERED_CHUNK, 0);
            let filled = self.inner.read(&mut self.buf);
            self.buf.truncate(*filled.as_ref().unwrap_or(&0));
            self.pos = 0;
            filled?;
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        let mut meter = METER.get();
        meter.consumed += n as u64;
        let over = meter.started_at.is_some_and(|start| meter.consumed - start > meter.limit);
        meter.tripped |= over;
        METER.set(meter);
        if over {
            return Err(io::Error::other("the request is longer than the limit"));
        }
        Ok(n)
    }
}

/// A value whose JSON may be at most the meter's limit.
#[derive(Debug, Default)]
struct Limited<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Limited<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        METER.set(Meter { started_at: Some(METER.get().consumed), ..METER.get() });
        let value = T::deserialize(d);
        METER.set(Meter { started_at: None, ..METER.get() });
        value.map(Limited)
    }
}

struct DocumentSeed<'a> {
    each: &'a mut dyn FnMut(u64, Result<Entry<'static>, BadEntry>) -> ControlFlow<()>,
    current: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a HAR document: an object with a \"log\" object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seed = Some(LogSeed { each: self.each, current: self.current });
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (key.as_ref(), seed.take()) {
                ("log", Some(log)) => map.next_value_seed(log)?,
                (_, taken) => {
                    seed = taken;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match seed {
            Some(_) => Err(de::Error::custom("the document has no \"log\" object")),
            None => Ok(()),
        }
    }
}

struct LogSeed<'a> {
    each: &'a mut dyn FnMut(u64, Result<Entry<'static>, BadEntry>) -> ControlFlow<()>,
    current: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for LogSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"log\" to be an object with an \"entries\" array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seed = Some(EntriesSeed { each: self.each, current: self.current });
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (key.as_ref(), seed.take()) {
                ("entries", Some(entries)) => map.next_value_seed(entries)?,
                (_, taken) => {
                    seed = taken;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match seed {
            Some(_) => Err(de::Error::custom("\"log\" has no \"entries\" array")),
            None => Ok(()),
        }
    }
}

struct EntriesSeed<'a> {
    each: &'a mut dyn FnMut(u64, Result<Entry<'static>, BadEntry>) -> ControlFlow<()>,
    current: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"log.entries\" to be an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            *self.current += 1;
            let Some(Loose(raw)) = seq.next_element::<Loose<RawEntry>>()? else { return Ok(()) };
            let entry = raw.ok_or(BadEntry::NotAnObject).and_then(RawEntry::into_entry);
            if (self.each)(*self.current, entry).is_break() {
                return Err(de::Error::custom("stopped by the reader"));
            }
        }
    }
}

/// A value of the expected JSON type, or `None` when it is absent or of another type (which is
/// read past, never an error): one odd entry must not end the reading of the whole document.
#[derive(Debug)]
struct Loose<T>(Option<T>);

impl<T> Default for Loose<T> {
    fn default() -> Self {
        Loose(None)
    }
}

/// How a JSON value becomes one of the types an entry is read into.
trait FromJson: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_number(_: f64) -> Option<Self> {
        None
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl FromJson for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

impl FromJson for f64 {
    fn from_number(n: f64) -> Option<Self> {
        Some(n)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::new();
        while let Some(Loose(item)) = seq.next_element::<Loose<T>>()? {
            items.extend(item);
        }
        Ok(Some(items))
    }
}

/// The objects of an entry: read as their derived `Deserialize` from a JSON object, whose every
/// field is [`Loose`], so they accept any object.
macro_rules! from_object {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                <$t>::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
    )*};
}
from_object!(RawEntry, RawRequest, RawHeader, RawPostData, RawResponse);

impl<'de, T: FromJson> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LooseVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromJson> Visitor<'de> for LooseVisitor<T> {
            type Value = Loose<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Loose<T>, E> {
                Ok(Loose(T::from_str(s)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Loose<T>, E> {
                Ok(Loose(T::from_number(n as f64)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Loose<T>, E> {
                Ok(Loose(T::from_number(n as f64)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Loose<T>, E> {
                Ok(Loose(T::from_number(n)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose<T>, E> {
                Ok(Loose(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose<T>, E> {
                Ok(Loose(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<T>, A::Error> {
                T::from_map(map).map(Loose)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<T>, A::Error> {
                T::from_seq(seq).map(Loose)
            }
        }
        d.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEntry {
    #[serde(rename = "startedDateTime")]
    started: Limited<Loose<String>>,
    time: Loose<f64>,
    request: Limited<Loose<RawRequest>>,
    response: Loose<RawResponse>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRequest {
    method: Loose<String>,
    url: Loose<String>,
    #[serde(rename = "httpVersion")]
    http_version: Loose<String>,
    headers: Loose<Vec<RawHeader>>,
    #[serde(rename = "postData")]
    post_data: Loose<RawPostData>,
}

/// A header, or a form parameter of `postData.params`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHeader {
    name: Loose<String>,
    value: Loose<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPostData {
    #[serde(rename = "mimeType")]
    mime_type: Loose<String>,
    text: Loose<String>,
    params: Loose<Vec<RawHeader>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawResponse {
    status: Loose<f64>,
}

fn owned(text: String) -> Cow<'static, [u8]> {
    Cow::Owned(text.into_bytes())
}

impl RawEntry {
    fn into_entry(self) -> Result<Entry<'static>, BadEntry> {
        let request = self.request.0.0.ok_or(BadEntry::NoRequest)?;
        let method = request.method.0.filter(|m| is_method(m)).ok_or(BadEntry::NoMethod)?;
        let url = request.url.0.filter(|u| !u.is_empty()).ok_or(BadEntry::NoUrl)?;
        let time = match self.started.0.0 {
            Some(t) => Some(DateTime::parse_from_rfc3339(&t).map_err(|_| BadEntry::BadTime(t))?),
            None => None,
        };
        let (target, vhost) = split_url(url);
        let (mut user_agent, mut referer, mut headers) = (None, None, Vec::new());
        for header in request.headers.0.unwrap_or_default() {
            let (Some(name), Some(value)) = (header.name.0, header.value.0) else { continue };
            // HTTP/2 pseudo-headers (`:authority`, `:path` …) restate the request line.
            if name.starts_with(':') {
                continue;
            }
            match name.to_ascii_lowercase() {
                n if n == "user-agent" => user_agent = Some(owned(value)),
                n if n == "referer" => referer = Some(owned(value)),
                n => headers.push((Cow::Owned(n), owned(value))),
            }
        }
        let body = request.post_data.0.and_then(RawPostData::into_body);
        let status =
            self.response.0.and_then(|r| r.status.0).filter(|s| (100.0..=599.0).contains(s) && s.fract() == 0.0);
        Ok(Entry {
            remote_addr: None,
            remote_user: None,
            time,
            method: owned(method),
            target: owned(target),
            protocol: request.http_version.0.filter(|v| !v.is_empty()).map(owned),
            status: status.map(|s| s as u16),
            bytes: None,
            referer,
            user_agent,
            request_time_ms: self.time.0.filter(|t| t.is_finite() && *t >= 0.0),
            vhost: vhost.map(owned),
            headers,
            body: body.map(owned),
            fields: Vec::new(),
        })
    }
}

impl RawPostData {
    /// The text as recorded; a url-encoded form recorded only as `params` is encoded again.
    fn into_body(self) -> Option<String> {
        if let Some(text) = self.text.0 {
            return Some(text);
        }
        let form = self.mime_type.0.is_some_and(|m| m.starts_with("application/x-www-form-urlencoded"));
        let params = self.params.0.filter(|_| form)?;
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for param in params {
            body.append_pair(param.name.0.as_deref().unwrap_or_default(), param.value.0.as_deref().unwrap_or_default());
        }
        Some(body.finish())
    }
}

/// A method as HTTP writes it: a token of letters, digits and `-_` (as the log parsers accept).
fn is_method(m: &str) -> bool {
    (1..=20).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `https://host:port/path?q#fragment` → (`/path?q`, `host:port`). A URL of another scheme
/// (`data:`, `blob:`, `chrome-extension:`, `ws:`) is kept whole: the planner refuses it as not a path.
fn split_url(url: String) -> (String, Option<String>) {
    let scheme_end = ["http://", "https://"]
        .into_iter()
        .find(|s| url.len() >= s.len() && url.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes()))
        .map(str::len);
    let Some(scheme_end) = scheme_end else { return (url, None) };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..authority_end].rsplit('@').next().unwrap_or_default();
    let path = &rest[authority_end..];
    let path = &path[..path.find('#').unwrap_or(path.len())];
    let target = match path.as_bytes().first() {
        Some(b'/') => path.to_string(),
        _ => format!("/{path}"),
    };
    (target, (!host.is_empty()).then(|| host.to_string()))
}

/// An entry as the reader thread passes it on: its number, and it or why it is bad.
type Numbered = (u64, Result<Entry<'static>, BadEntry>);

/// The entries of one HAR or more, in order, read on a thread of their own.
pub struct HarReader {
    inputs: Vec<Input>,
    names: Vec<String>,
    max_request: usize,
    /// The first input, opened to recognise it (standard input cannot be opened twice).
    first: Option<Box<dyn BufRead + Send>>,
    current: usize,
    /// What the current input's thread read: entries, then the error that ended it, if any.
    stream: Option<Receiver<Result<Numbered, HarError>>>,
    /// The last entry number handed out from the current input (0: none yet).
    last_number: u64,
    /// Entries read ahead by [`HarReader::prefetch`], handed out again first.
    pending: VecDeque<(usize, Numbered)>,
    cuts: Vec<InputCut>,
    rewound: bool,
    bytes_read: Arc<AtomicU64>,
}

impl HarReader {
    /// Reads the inputs a [`LogReader`] was given, with its line limit as the limit of one
    /// entry's request; an input it already opened (to recognise it) is read from where it is.
    pub fn new(mut lines: LogReader) -> HarReader {
        let first = if lines.current == 0 && lines.pending.is_empty() { lines.reader.take() } else { None };
        HarReader {
            inputs: lines.inputs,
            names: lines.names,
            max_request: lines.max_line,
            first,
            current: 0,
            stream: None,
            last_number: 0,
            pending: VecDeque::new(),
            cuts: Vec::new(),
            rewound: false,
            bytes_read: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn input_names(&self) -> Vec<String> {
        self.names.clone()
    }

    pub fn cuts(&self) -> &[InputCut] {
        &self.cuts
    }

    /// Bytes of JSON read so far (decompressed), over all passes.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    pub fn can_rewind(&self) -> bool {
        !self.inputs.contains(&Input::Stdin)
    }

    /// Starts again at the first entry of the first input; the thread reading ahead stops.
    pub fn rewind(&mut self) {
        self.current = 0;
        self.stream = None;
        self.first = None;
        self.last_number = 0;
        self.pending.clear();
        self.rewound = true;
    }

    /// Reads up to `n` entries ahead without consuming them, and returns the hosts they were
    /// recorded for (to refuse replaying them against the host that served them).
    pub fn prefetch(&mut self, n: usize) -> Result<Vec<String>, SourceError> {
        while self.pending.len() < n {
            let Some(item) = self.read()? else { break };
            self.pending.push_back(item);
        }
        let hosts = self.pending.iter().filter_map(|(_, (_, e))| e.as_ref().ok()?.vhost.as_deref());
        Ok(hosts.map(|h| String::from_utf8_lossy(h).into_owned()).collect())
    }

    /// The next entry, or `None` after the last one of the last input.
    pub fn next_entry(&mut self) -> Result<Option<SourceEntry<'static>>, SourceError> {
        let item = match self.pending.pop_front() {
            Some(item) => item,
            None => match self.read()? {
                Some(item) => item,
                None => return Ok(None),
            },
        };
        let (input, (number, entry)) = item;
        Ok(Some(SourceEntry { input, number, entry: entry.map_err(BadLine::Har), line: None }))
    }

    fn read(&mut self) -> Result<Option<(usize, Numbered)>, SourceError> {
        loop {
            if self.current >= self.inputs.len() {
                return Ok(None);
            }
            if self.stream.is_none() {
                self.stream = Some(self.start()?);
                self.last_number = 0;
            }
            let received = self.stream.as_ref().expect("started above").recv();
            match received {
                Ok(Ok((number, entry))) => {
                    self.last_number = number;
                    return Ok(Some((self.current, (number, entry))));
                }
                Ok(Err(error)) if self.last_number == 0 => {
                    return Err(SourceError::Har {
                        name: self.names[self.current].clone(),
                        message: error.to_string(),
                    });
                }
                Ok(Err(error)) => {
                    if !self.rewound {
                        let (file, line) = (self.names[self.current].clone(), self.last_number + 1);
                        self.cuts.push(InputCut { file, line, reason: error.to_string() });
                    }
                    self.next_input();
                }
                // The thread read the whole document.
                Err(_) => self.next_input(),
            }
        }
    }

    fn next_input(&mut self) {
        self.stream = None;
        self.current += 1;
    }

    /// Opens the current input and starts the thread that walks it.
    fn start(&mut self) -> Result<Receiver<Result<Numbered, HarError>>, SourceError> {
        let name = self.names[self.current].clone();
        let mut stream = match self.first.take().filter(|_| self.current == 0) {
            Some(opened) => opened,
            None => self.inputs[self.current].open()?,
        };
        let empty =
            stream.fill_buf().map_err(|e| SourceError::Read { name: name.clone(), line: 0, source: e })?.is_empty();
        if empty {
            return Err(SourceError::Empty { name });
        }
        let (sender, receiver) = sync_channel(READ_AHEAD_ENTRIES);
        let (limit, bytes_read) = (self.max_request, self.bytes_read.clone());
        std::thread::Builder::new()
            .name("sluice-har".into())
            .spawn(move || walk(stream, limit, &sender, &bytes_read))
            .map_err(|e| SourceError::Read { name, line: 0, source: e })?;
        Ok(receiver)
    }
}

/// The reader thread's work: every entry into the channel, then the error if there is one. It
/// ends early when the receiver is gone (the run stopped, or the reader rewound).
fn walk(
    stream: Box<dyn BufRead + Send>,
    limit: usize,
    sender: &SyncSender<Result<Numbered, HarError>>,
    bytes_read: &AtomicU64,
) {
    // Published at each entry, as far as the walk has read; the document's last bytes aside.
    let before = bytes_read.load(Ordering::Relaxed);
    let result = for_each_entry(stream, limit, &mut |number, entry| {
        bytes_read.store(before + METER.get().consumed, Ordering::Relaxed);
        match sender.send(Ok((number, entry))) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    });
    match result {
        Ok(()) | Err(HarError::Stopped) => {}
        Err(error) => {
            let _ = sender.send(Err(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(json: &str, limit: usize) -> (Vec<Numbered>, Result<(), HarError>) {
        let mut got = Vec::new();
        let result = for_each_entry(json.as_bytes(), limit, &mut |n, e| {
            got.push((n, e));
            ControlFlow::Continue(())
        });
        (got, result)
    }

    #[test]
    fn recognises_a_har_but_not_a_docker_json_log() {
        assert!(looks_like_har(b"\xef\xbb\xbf  {\n  \"log\": {\n    \"version\": \"1.2\""));
        assert!(looks_like_har(b"{\"log\":{\"entries\":[]}}"));
        assert!(!looks_like_har(
            b"{\"log\":\"127.0.0.1 - - [21/Nov/2026] \\\"GET / HTTP/1.1\\\"\",\"stream\":\"stdout\"}"
        ));
        assert!(!looks_like_har(b"{\"time\":\"2026\",\"log\":{}}"));
        assert!(!looks_like_har(b"127.0.0.1 - - [21/Nov/2026:14:00:00 +0000] \"GET / HTTP/1.1\" 200 1"));
        assert!(!looks_like_har(b""));
    }

    #[test]
    fn urls_become_origin_form_and_the_recorded_host() {
        let split = |u: &str| split_url(u.to_string());
        assert_eq!(
            split("https://user@shop.example:8443/a/b?x=1#top"),
            ("/a/b?x=1".into(), Some("shop.example:8443".into()))
        );
        assert_eq!(split("HTTP://shop.example"), ("/".into(), Some("shop.example".into())));
        assert_eq!(split("http://shop.example?q=1"), ("/?q=1".into(), Some("shop.example".into())));
        assert_eq!(split("data:image/png;base64,AAAA"), ("data:image/png;base64,AAAA".into(), None));
    }

    #[test]
    fn entries_are_numbered_and_bad_ones_say_why_while_reading_goes_on() {
        let json = r#"{"log": {"version": "1.2", "entries": [
            {"startedDateTime": "2026-11-21T14:00:00.123456+01:00", "time": 12.5,
             "request": {"method": "GET", "url": "https://a.example/x?y=1", "httpVersion": "HTTP/1.1",
                         "headers": [{"name": "User-Agent", "value": "Firefox"}, {"name": ":path", "value": "/x"},
                                     {"name": "Accept", "value": "*/*"}, {"name": 7}]},
             "response": {"status": 304, "content": {"text": "ignored"}}},
            {"request": {"url": "https://a.example/no-method"}},
            {"request": {"method": "GET"}},
            42,
            {"startedDateTime": "yesterday", "request": {"method": "GET", "url": "/x"}},
            {"request": {"method": "POST", "url": "http://a.example/form",
                         "postData": {"mimeType": "application/x-www-form-urlencoded",
                                      "params": [{"name": "q", "value": "é & x"}]}},
             "response": {"status": 0}}
        ]}}"#;
        let (got, result) = entries(json, 4096);
        result.unwrap();
        let numbers: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
        let first = got[0].1.as_ref().unwrap();
        assert_eq!(first.time.unwrap().to_rfc3339(), "2026-11-21T14:00:00.123456+01:00");
        assert_eq!((first.method.as_ref(), first.target.as_ref()), (&b"GET"[..], &b"/x?y=1"[..]));
        assert_eq!((first.status, first.request_time_ms), (Some(304), Some(12.5)));
        assert_eq!(first.user_agent.as_deref(), Some(&b"Firefox"[..]));
        assert_eq!(first.headers, vec![(Cow::Borrowed("accept"), Cow::Borrowed(&b"*/*"[..]))]);
        assert_eq!(first.vhost.as_deref(), Some(&b"a.example"[..]));
        let bad: Vec<_> = got[1..5].iter().map(|(_, e)| e.as_ref().unwrap_err().kind()).collect();
        assert_eq!(bad, ["har_no_method", "har_no_url", "har_entry_not_an_object", "har_bad_started_date_time"]);
        let form = got[5].1.as_ref().unwrap();
        assert_eq!(form.body.as_deref(), Some(&b"q=%C3%A9+%26+x"[..]));
        assert_eq!(form.status, None, "status 0: no response was recorded");
    }

    #[test]
    fn a_document_that_is_not_a_har_says_where() {
        for (json, says) in [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("<html>", "expected value at line 1 column 1"),
            ("[1, 2]", "expected a HAR document"),
            ("{\"log\": {\"pages\": []}}", "\"log\" has no \"entries\" array at line 1 column 21"),
            ("{\"log\": {\"entries\": {}}}", "expected \"log.entries\" to be an array"),
            ("{\"other\": 1}", "no \"log\" object"),
            ("{\"log\": {\"entries\": []}} trailing", "trailing characters at line 1 column 26"),
            (
                "{\"log\": {\"entries\": [{\"request\": {\"method\": \"GET\", \"url\": \"/a\"}}, {\"req",
                "EOF while parsing",
            ),
        ] {
            let (_, result) = entries(json, 4096);
            let message = result.unwrap_err().to_string();
            assert!(message.starts_with("not a HAR: ") && message.contains(says), "{json}: {message}");
        }
    }

    #[test]
    fn a_request_over_the_limit_stops_the_reading_without_being_held() {
        let big = "x".repeat(10_000);
        let json = format!(
            r#"{{"log": {{"entries": [
                {{"request": {{"method": "GET", "url": "/small"}}, "response": {{"content": {{"text": "{big}"}}}}}},
                {{"request": {{"method": "POST", "url": "/big", "postData": {{"text": "{big}"}}}}}}
            ]}}}}"#
        );
        let (got, result) = entries(&json, 2048);
        assert_eq!(got.len(), 1, "a large response body is skipped, not counted against the limit");
        match result {
            Err(HarError::RequestTooLong { entry: 2, limit: 2048 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_caller_can_stop_the_walk() {
        let json = r#"{"log": {"entries": [{"request": {"method": "GET", "url": "/1"}}, {"request": {"method": "GET", "url": "/2"}}]}}"#;
        let mut seen = 0;
        let result = for_each_entry(json.as_bytes(), 4096, &mut |_, _| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert!(matches!(result, Err(HarError::Stopped)));
        assert_eq!(seen, 1);
    }
}
