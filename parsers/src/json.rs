//! JSON access logs, one object a line: nginx `escape=json` formats, Caddy, Traefik, and
//! anything else that uses the well-known key names below.
//!
//! The object's members are read as raw JSON slices of the line (`&RawValue`); a string without
//! escapes is then borrowed as is, so most values need no copy. Keys that name no `Entry` field
//! go to `fields` (strings decoded, other values as their JSON text).
//!
//! A prefix before the first `{` is skipped: `docker compose logs` writes `caddy  | {…}`.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use memchr::memchr;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{LineError, Reason};
use crate::field;
use crate::time::{epoch_seconds, parse_timestamp};
use crate::{Entry, Text};

/// Reads one JSON line.
pub(crate) fn parse(line: &[u8]) -> Result<Entry<'_>, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(LineError::new(0, Reason::Empty));
    }
    let Some(start) = memchr(b'{', line) else {
        return Err(LineError::new(0, Reason::BadJson("no JSON object on this line".into())));
    };
    let members = members(&line[start..])
        .map_err(|e| LineError::new(start + e.column().saturating_sub(1), Reason::BadJson(e.to_string())))?;
    let mut b = Builder::default();
    for (key, raw) in members {
        b.member(key, raw, line)?;
    }
    b.finish()
}

/// An object's members, keys borrowed when they hold no escapes.
fn members(obj: &[u8]) -> serde_json::Result<Vec<(Cow<'_, str>, &RawValue)>> {
    serde_json::from_slice::<Members>(obj).map(|m| m.0)
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Key(k), v)) = map.next_entry::<Key, &RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member's value, classified.
enum Value<'a> {
    /// A string, decoded (borrowed when it had no escapes).
    Str(Cow<'a, str>),
    /// A number, bool, object or array: its JSON text.
    Other(&'a str),
    Null,
}

impl<'a> Value<'a> {
    fn of(raw: &'a RawValue) -> Value<'a> {
        let s = raw.get().trim();
        match s.as_bytes().first() {
            Some(b'"') => {
                let inner = &s[1..s.len() - 1];
                if !inner.contains('\\') {
                    Value::Str(Cow::Borrowed(inner))
                } else {
                    // Already validated by the outer parse, so this succeeds.
                    Value::Str(Cow::Owned(serde_json::from_str(s).unwrap_or_default()))
                }
            }
            Some(b'n') => Value::Null,
            _ => Value::Other(s),
        }
    }

    /// As `Entry` text: `null`, `""` (what nginx `escape=json` writes for an absent value) and
    /// `"-"` are absent.
    fn text(self) -> Option<Text<'a>> {
        match self {
            Value::Str(s) if s.is_empty() || s == "-" => None,
            Value::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s.as_bytes())),
            Value::Str(Cow::Owned(s)) => Some(Cow::Owned(s.into_bytes())),
            Value::Other(s) => Some(Cow::Borrowed(s.as_bytes())),
            Value::Null => None,
        }
    }
}

/// The best of several keys that fill one field (higher rank wins, then the first seen).
struct Best<T> {
    value: Option<T>,
    rank: u8,
}

impl<T> Default for Best<T> {
    fn default() -> Self {
        Best { value: None, rank: 0 }
    }
}

impl<T> Best<T> {
    fn offer(&mut self, rank: u8, value: Option<T>) {
        if let Some(v) = value
            && rank > self.rank
        {
            self.value = Some(v);
            self.rank = rank;
        }
    }
}

#[derive(Default)]
struct Builder<'a> {
    request: Option<(Text<'a>, usize)>,
    method: Best<Text<'a>>,
    target: Best<(Text<'a>, usize)>,
    query: Option<Text<'a>>,
    protocol: Best<Text<'a>>,
    remote_addr: Best<Text<'a>>,
    remote_user: Best<Text<'a>>,
    time: Best<DateTime<FixedOffset>>,
    status: Best<u16>,
    bytes: Best<u64>,
    request_time_ms: Best<f64>,
    referer: Best<Text<'a>>,
    user_agent: Best<Text<'a>>,
    vhost: Best<Text<'a>>,
    body: Option<Text<'a>>,
    headers: Vec<(Cow<'a, str>, Text<'a>)>,
    fields: Vec<(Cow<'a, str>, Text<'a>)>,
}

/// Byte offset of a member's value in the line, for error columns.
fn offset_of(raw: &RawValue, line: &[u8]) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

impl<'a> Builder<'a> {
    fn member(&mut self, key: Cow<'a, str>, raw: &'a RawValue, line: &'a [u8]) -> Result<(), LineError> {
        let at = offset_of(raw, line);
        let value = Value::of(raw);
        match &*key {
            // Caddy nests the request in an object.
            "request" if matches!(value, Value::Other(s) if s.starts_with('{')) => {
                let inner =
                    members(raw.get().as_bytes()).map_err(|e| LineError::new(at, Reason::BadJson(e.to_string())))?;
                for (k, v) in inner {
                    self.caddy_request(k, v, line)?;
                }
            }
            "request" => self.request = value.text().map(|t| (t, at)),
            "request_method" | "method" | "RequestMethod" => self.method.offer(1, value.text()),
            "request_uri" | "RequestPath" => self.target.offer(3, value.text().map(|t| (t, at))),
            "uri" | "path" => self.target.offer(2, value.text().map(|t| (t, at))),
            "query_string" | "args" => self.query = value.text(),
            "server_protocol" | "protocol" | "proto" | "RequestProtocol" => self.protocol.offer(1, value.text()),
            "remote_addr" | "client_ip" | "ClientHost" => self.remote_addr.offer(3, value.text()),
            "ip" | "remote_ip" => self.remote_addr.offer(2, value.text()),
            "remote_user" | "user" | "user_id" | "ClientUsername" => self.remote_user.offer(1, value.text()),
            // Traefik: `DownstreamStatus` is what the client got; `OriginStatus` what the backend
            // answered, 0 when Traefik answered itself (redirects, rejections).
            "status" | "DownstreamStatus" => self.status.offer(2, number(value, at, status)?),
            "OriginStatus" => {
                let logged = raw.get().trim();
                if logged != "0" {
                    self.status.offer(1, number(value, at, status)?);
                }
                self.fields.push((key, Cow::Borrowed(logged.as_bytes())));
            }
            "body_bytes_sent" | "DownstreamContentSize" | "size" | "length" => {
                self.bytes.offer(2, number(value, at, bytes)?)
            }
            "bytes_sent" => self.bytes.offer(1, number(value, at, bytes)?),
            // Seconds (nginx, Caddy) and nanoseconds (Traefik's capitalised `Duration`).
            "request_time" | "duration" => self.request_time_ms.offer(1, number(value, at, |t| seconds(t, 1e3))?),
            "Duration" => self.request_time_ms.offer(1, number(value, at, |t| seconds(t, 1e-6))?),
            "http_referer" | "referer" | "referrer" | "request_Referer" => self.referer.offer(1, value.text()),
            "http_user_agent" | "user_agent" | "request_User-Agent" => self.user_agent.offer(1, value.text()),
            "host" | "RequestHost" => self.vhost.offer(3, value.text()),
            "server_name" => self.vhost.offer(2, value.text()),
            "http_host" => {
                let host = value.text();
                self.vhost.offer(1, host.clone());
                if let Some(h) = host {
                    self.headers.push((Cow::Borrowed("host"), h));
                }
            }
            "request_body" => self.body = value.text(),
            k => {
                if let Some(rank) = time_rank(k) {
                    if let Some(t) = value.text() {
                        let t = time(&t).ok_or(LineError::new(at, Reason::BadTime))?;
                        self.time.offer(rank, Some(t));
                    }
                } else if is_header_key(k) {
                    if let Some(t) = value.text() {
                        self.headers.push((header_name(key), t));
                    }
                } else if let Some(t) = value.text() {
                    self.fields.push((key, t));
                }
            }
        }
        Ok(())
    }

    /// A member of Caddy's `request` object.
    fn caddy_request(&mut self, key: Cow<'a, str>, raw: &'a RawValue, line: &'a [u8]) -> Result<(), LineError> {
        let value = Value::of(raw);
        match &*key {
            "method" => self.method.offer(2, value.text()),
            "uri" => self.target.offer(3, value.text().map(|t| (t, offset_of(raw, line)))),
            "proto" => self.protocol.offer(2, value.text()),
            "host" => self.vhost.offer(3, value.text()),
            "client_ip" => self.remote_addr.offer(4, value.text()),
            "remote_ip" => self.remote_addr.offer(2, value.text()),
            "headers" => {
                let at = offset_of(raw, line);
                let headers =
                    members(raw.get().as_bytes()).map_err(|e| LineError::new(at, Reason::BadJson(e.to_string())))?;
                for (name, values) in headers {
                    // Caddy logs every header as an array of values; keep the first.
                    let first = serde_json::from_str::<Vec<&RawValue>>(values.get())
                        .ok()
                        .and_then(|v| v.into_iter().next())
                        .and_then(|v| Value::of(v).text());
                    let Some(first) = first else { continue };
                    if name.eq_ignore_ascii_case("user-agent") {
                        self.user_agent.offer(2, Some(first));
                    } else if name.eq_ignore_ascii_case("referer") {
                        self.referer.offer(2, Some(first));
                    } else {
                        self.headers.push((lower(name), first));
                    }
                }
            }
            _ => {
                if let Some(t) = value.text() {
                    self.fields.push((Cow::Owned(format!("request.{key}")), t));
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Entry<'a>, LineError> {
        let (method, target, protocol) = if let Some((request, at)) = self.request {
            let not_http = |(off, why)| LineError::new(at + off, Reason::NotAnHttpRequest { why });
            match request {
                Cow::Borrowed(r) => {
                    let req = field::request_line(r, false).map_err(not_http)?;
                    (req.method, req.target, req.protocol)
                }
                // The request had JSON escapes: its parts must own their bytes.
                Cow::Owned(r) => {
                    let req = field::request_line(&r, false).map_err(not_http)?;
                    let own = |t: Text| Cow::Owned(t.into_owned());
                    (own(req.method), own(req.target), req.protocol.map(own))
                }
            }
        } else {
            let Some((mut target, at)) = self.target.value else {
                return Err(LineError::new(0, Reason::MissingRequest));
            };
            if let Some(q) = self.query.filter(|_| memchr(b'?', &target).is_none()) {
                let mut joined = target.into_owned();
                joined.push(b'?');
                joined.extend_from_slice(&q);
                target = Cow::Owned(joined);
            }
            let method = match self.method.value {
                Some(m) if field::is_method(&m) => m,
                Some(m) => {
                    let why = field::bad_method_reason(&m);
                    return Err(LineError::new(at, Reason::NotAnHttpRequest { why }));
                }
                // Logs that name only the path (Matomo's nginx JSON) are GETs.
                None => Cow::Borrowed(&b"GET"[..]),
            };
            (method, target, self.protocol.value)
        };
        Ok(Entry {
            remote_addr: self.remote_addr.value,
            remote_user: self.remote_user.value,
            time: self.time.value,
            method,
            target,
            protocol,
            status: self.status.value,
            bytes: self.bytes.value,
            referer: self.referer.value,
            user_agent: self.user_agent.value,
            request_time_ms: self.request_time_ms.value,
            vhost: self.vhost.value,
            headers: self.headers,
            body: self.body,
            fields: self.fields,
        })
    }
}

/// Time keys, best first: the server's own local time over a shipper's `@timestamp`.
fn time_rank(key: &str) -> Option<u8> {
    Some(match key {
        "time_iso8601" | "time_local" => 9,
        "msec" | "ts" => 8,
        "StartUTC" => 7,
        "time" => 6,
        "timestamp" => 5,
        "@timestamp" => 4,
        "date" => 3,
        _ => return None,
    })
}

fn time(text: &[u8]) -> Option<DateTime<FixedOffset>> {
    parse_timestamp(text).or_else(|| match epoch_seconds(text) {
        Ok(([], t)) => Some(t),
        _ => None,
    })
}

/// `http_x_forwarded_for` (nginx) and Traefik's `request_X-Real-Ip` name request headers.
fn is_header_key(key: &str) -> bool {
    key.starts_with("http_")
        || key.strip_prefix("request_").is_some_and(|h| h.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// `http_x_forwarded_for` → `x-forwarded-for`; `request_X-Real-Ip` → `x-real-ip`.
fn header_name(key: Cow<'_, str>) -> Cow<'_, str> {
    if let Some(h) = key.strip_prefix("http_") {
        return Cow::Owned(h.replace('_', "-").to_ascii_lowercase());
    }
    let skip = "request_".len();
    match key {
        Cow::Borrowed(k) => lower(Cow::Borrowed(&k[skip..])),
        Cow::Owned(k) => Cow::Owned(k[skip..].to_ascii_lowercase()),
    }
}

fn lower(name: Cow<'_, str>) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(name.to_ascii_lowercase()) } else { name }
}

/// Reads a number given as a JSON number or a string (`200` or `"200"`); absent stays absent.
fn number<T>(
    value: Value,
    at: usize,
    read: impl Fn(&[u8]) -> Result<Option<T>, Reason>,
) -> Result<Option<T>, LineError> {
    match value.text() {
        None => Ok(None),
        Some(t) => read(&t).map_err(|reason| LineError::new(at, reason)),
    }
}

fn status(t: &[u8]) -> Result<Option<u16>, Reason> {
    field::status(t).map_err(|()| Reason::BadStatus)
}

fn bytes(t: &[u8]) -> Result<Option<u64>, Reason> {
    field::count(t).map_err(|()| Reason::BadNumber { field: "bytes" })
}

/// A duration in some unit → milliseconds. JSON numbers may use exponents (`1.5e-05`).
fn seconds(t: &[u8], to_ms: f64) -> Result<Option<f64>, Reason> {
    let bad = Reason::BadNumber { field: "request time" };
    let v: f64 = std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()).ok_or(bad.clone())?;
    if v.is_finite() && v >= 0.0 { Ok(Some(v * to_ms)) } else { Err(bad) }
}
