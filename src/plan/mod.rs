//! From log entry to the request that will be sent: filters, target rewriting, headers, body.

pub mod draw;
pub mod filter;
pub mod mix;
pub mod read_ahead;
pub mod reader;
pub mod safety;
pub mod session;
pub mod timeline;

use std::collections::BTreeMap;
use std::fmt::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use sluice_parsers::Entry;

use crate::plan::filter::Filters;
use crate::plan::mix::Mix;
use crate::plan::safety::{DotSegment, TargetScope, dot_segment, form_decoded, form_pairs, hides_dot_segment};
use crate::plan::session::{SessionKey, Sessions};
use crate::results::SessionTag;

pub const DEFAULT_METHODS: &str = "GET,HEAD,OPTIONS";

/// Which methods are replayed.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodFilter {
    All,
    Only(Vec<String>),
}

impl MethodFilter {
    pub fn allows(&self, method: &[u8]) -> bool {
        match self {
            MethodFilter::All => true,
            MethodFilter::Only(list) => list.iter().any(|m| m.as_bytes() == method),
        }
    }
}

/// HTTP method names are tokens; sluice accepts the upper-case ones servers log.
pub fn parse_methods(text: &str) -> Result<MethodFilter, String> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(MethodFilter::All);
    }
    let mut list = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let method = raw.to_ascii_uppercase();
        if method.len() > 20 || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return Err(format!("'{raw}' is not a method name; expected a list like GET,HEAD,POST or 'all'"));
        }
        list.push(method);
    }
    if list.is_empty() {
        return Err("no method given; expected a list like GET,HEAD,POST or 'all'".into());
    }
    Ok(MethodFilter::Only(list))
}

/// One request ready to send, owned, in plan order.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// Position in the plan (0-based, counting only replayed requests, across loops of the log).
    pub seq: u64,
    /// Line number in its log file.
    pub log_line: u64,
    pub log_time: Option<DateTime<Utc>>,
    pub method: Method,
    pub url: Url,
    pub orig_status: Option<u16>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Bytes>,
    /// How far into the log the reader was when it planned this request.
    pub position: LogPosition,
    /// Its place on the log's own clock, from the first request of its pass: set for `--speed`
    /// only, by [`timeline::Timeline`].
    pub log_offset: Option<std::time::Duration>,
    /// Its client session and place in it, with `--sessions` (and a line that has the key).
    pub session: Option<SessionTag>,
    /// For a Kafka target: the message's key and partition (its value is `body`).
    pub stream: Option<StreamMessage>,
}

/// A Kafka message's key and partition, chosen while the log is read (`crate::send::kafka`);
/// its value is the request's `body`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    pub key: Option<Bytes>,
    pub partition: i32,
}

impl ReplayRequest {
    /// A GET of `http://t{path}`, for unit tests of the stages downstream.
    #[cfg(test)]
    pub fn for_test(path: &str) -> ReplayRequest {
        ReplayRequest {
            seq: 0,
            log_line: 1,
            log_time: None,
            method: Method::GET,
            url: Url::parse(&format!("http://t{path}")).expect("a test URL"),
            orig_status: None,
            headers: Vec::new(),
            body: None,
            position: LogPosition::default(),
            log_offset: None,
            session: None,
            stream: None,
        }
    }
}

/// One planned request, `left` more times in a row (`--mix`), numbered one after the other. The
/// copies are made as they are taken, so each goes through the read-ahead budget on its own.
#[derive(Debug)]
pub struct Copies {
    request: Option<ReplayRequest>,
    left: u32,
    /// Renumbered in each copy.
    seq_header: Option<HeaderName>,
}

impl Iterator for Copies {
    type Item = ReplayRequest;

    fn next(&mut self) -> Option<ReplayRequest> {
        self.left = self.left.checked_sub(1)?;
        if self.left == 0 {
            return self.request.take();
        }
        let request = self.request.as_mut()?;
        let copy = request.clone();
        request.seq += 1;
        if let Some(session) = &mut request.session {
            session.seq += 1;
        }
        if let Some(name) = &self.seq_header
            && let Some((_, value)) = request.headers.iter_mut().rev().find(|(n, _)| n == name)
        {
            *value = HeaderValue::from(request.seq);
        }
        Some(copy)
    }
}

/// How far the reader had read, counted across loops of the log: what "replayed up to here"
/// means in the summary, as against what was only read ahead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogPosition {
    /// Lines read, this one included.
    pub lines: u64,
    /// Of those, lines that could not be read as the format.
    pub rejected: u64,
    /// Of those, well-formed lines that the rules skipped.
    pub skipped: u64,
    /// Passes over the log, this one included (1 unless looping).
    pub passes: u64,
}

/// Why a well-formed log line is not replayed. Counted, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// The method is not allowed (`--allow-methods`).
    Method(String),
    /// `CONNECT` or an authority-form target: it names a host to tunnel to, never followed.
    Tunnel,
    /// `OPTIONS *` and other targets that are not a path.
    NotAPath,
    /// The log says this request was served by the target host itself.
    Production,
    /// A body-bearing method without a logged body, with `--skip-bodyless`.
    Bodyless,
    /// Not chosen by `--sample`.
    Sample,
    /// Matched no `--include`.
    NotIncluded,
    /// Matched this `--exclude`.
    Excluded(String),
    /// Its logged status is not in `--orig-status`.
    OrigStatus,
    /// Logged outside `--from`/`--until` (or with no time).
    OutsideWindow,
    /// Its user agent matched `--exclude-user-agent`.
    UserAgent,
    /// A path segment some servers resolve to `.` or `..` (`..%2f`, `..;`) that cannot be resolved
    /// here without changing what the path means; only with a target prefix, which it could leave.
    HiddenDotSegment,
    /// A `_method` parameter (query or form body) asks for this method, which is not allowed.
    MethodParam(String),
    /// Its route weighs 0 in `--mix`, or a fractional weight did not draw it.
    Mix,
}

impl Skip {
    /// The rule's name in summaries.
    pub fn key(&self) -> String {
        match self {
            Skip::Method(m) => format!("method {m}"),
            Skip::Tunnel => "connect/authority target".into(),
            Skip::NotAPath => "target is not a path".into(),
            Skip::Production => "served by the target host".into(),
            Skip::Bodyless => "--skip-bodyless".into(),
            Skip::Sample => "--sample".into(),
            Skip::NotIncluded => "--include".into(),
            Skip::Excluded(r) => format!("--exclude {r}"),
            Skip::OrigStatus => "--orig-status".into(),
            Skip::OutsideWindow => "--from/--until".into(),
            Skip::UserAgent => "--exclude-user-agent".into(),
            Skip::HiddenDotSegment => "dot segment hidden by %2f, %5c or ; (would leave the prefix)".into(),
            Skip::MethodParam(m) => format!("_method {m}"),
            Skip::Mix => "--mix".into(),
        }
    }
}

/// Counts of lines that parsed but were not replayed, and of requests rewritten.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PlanStats {
    pub skipped: BTreeMap<String, u64>,
    /// Absolute-URL request lines whose path was sent to the target instead of the host they named.
    pub absolute_urls_rewritten: u64,
    /// Body-bearing requests with no logged body, sent with an empty one.
    pub sent_without_body: u64,
    /// Paths whose `.` and `..` segments were resolved before the target's prefix was put in front.
    pub dot_segments_resolved: u64,
    /// Logged `X-HTTP-Method-Override` (and alike) headers not sent: they named a method that is
    /// not allowed.
    pub method_override_headers_dropped: u64,
    /// Requests planned again because `--mix` weighs their route above 1 (the requests it drops
    /// are skips, under `--mix`).
    pub mix_added: u64,
}

/// What the Host header of each request is.
#[derive(Debug, Clone, Default)]
pub enum HostRule {
    /// The target's own host (what HTTP clients send).
    #[default]
    Target,
    /// `--host-header NAME`.
    Fixed(HeaderValue),
    /// `--preserve-host`: the host the log recorded, where the format has one.
    Logged,
}

/// How entries become requests, beyond the target: every rewriting and filtering flag.
#[derive(Debug, Clone)]
pub struct PlanRules {
    pub methods: MethodFilter,
    pub filters: Filters,
    /// `--header`: sent with every request, replacing a logged header of the same name.
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    /// `--drop-header`, lower-case.
    pub drop_headers: Vec<String>,
    pub host: HostRule,
    pub skip_bodyless: bool,
    /// Refuse lines served by the target host (the log's `$host`/`%v` equals the target's).
    pub production_ok: bool,
    /// `--sessions`: what tells one client's requests from another's.
    pub sessions: Option<SessionKey>,
    /// `--mix`: how often requests of each route are planned, after every other rule.
    pub mix: Option<Mix>,
    /// `--seq-header`: each request carries its `seq` in this header, so a server's own log can
    /// be joined with the CSV (and shards' requests told apart).
    pub seq_header: Option<HeaderName>,
}

impl Default for PlanRules {
    fn default() -> Self {
        PlanRules {
            methods: parse_methods(DEFAULT_METHODS).expect("valid default"),
            filters: Filters::default(),
            add_headers: Vec::new(),
            drop_headers: Vec::new(),
            host: HostRule::Target,
            skip_bodyless: false,
            production_ok: false,
            sessions: None,
            mix: None,
            seq_header: None,
        }
    }
}

/// Headers that describe one hop or the body framing; replaying them as logged would be wrong.
const NOT_REPLAYED: [&str; 10] = [
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "expect",
];

/// Headers that ask a server (Rails, Symfony, Express, ASP.NET…) to treat the request as another
/// method; sent only when `--allow-methods` allows the method they name.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Methods whose requests normally carry a body.
const BODY_METHODS: [&[u8]; 3] = [b"POST", b"PUT", b"PATCH"];

/// Turns entries into requests against one target.
pub struct Planner {
    /// The target, parsed once; each request's URL is a copy with its own path and query.
    origin: Url,
    /// Every planned URL stays inside it; its prefix goes in front of each logged path.
    scope: TargetScope,
    target_host: String,
    rules: PlanRules,
    next_seq: u64,
    pub stats: PlanStats,
    url_buf: String,
    /// Where each path segment written to `url_buf` starts, for `..` to go back to.
    segment_starts: Vec<usize>,
    sessions: Option<Sessions>,
}

impl Planner {
    pub fn new(target: &Url, rules: PlanRules) -> Planner {
        let host = target.host_str().unwrap_or_default();
        let mut origin = target.clone();
        origin.set_query(None);
        origin.set_fragment(None);
        let sessions = rules.sessions.clone().map(Sessions::new);
        Planner {
            scope: TargetScope::of(target),
            origin,
            target_host: host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase(),
            rules,
            next_seq: 0,
            stats: PlanStats::default(),
            url_buf: String::with_capacity(256),
            segment_starts: Vec::with_capacity(16),
            sessions,
        }
    }

    /// The first request `entry` becomes on the first pass, for tests of the rules.
    #[cfg(test)]
    pub fn plan(&mut self, entry: &Entry<'_>, input: usize, log_line: u64) -> Result<ReplayRequest, Skip> {
        Ok(self.plan_weighted(entry, input, log_line, 1)?.next().expect("a planned line has a request"))
    }

    /// What `entry` becomes on pass `pass` of the log (from 1): its request, as many times in a
    /// row as `--mix` weighs its route, each copy numbered next in the plan; or why none. The mix
    /// comes after every other rule, so it reweights what `--sample` and the filters kept.
    pub fn plan_weighted(&mut self, entry: &Entry<'_>, input: usize, log_line: u64, pass: u64) -> Result<Copies, Skip> {
        let mut request = self.build(entry, input, log_line)?;
        let count = self.rules.mix.as_ref().map_or(1, |mix| mix.copies(&entry.target, input, log_line, pass));
        if count == 0 {
            return self.skip(Skip::Mix);
        }
        self.stats.mix_added += u64::from(count - 1);
        request.seq = self.next_seq;
        self.next_seq += u64::from(count);
        // Last, once the line is sure to be replayed: a session holds only requests that are sent,
        // each copy in its own place.
        request.session = self.sessions.as_mut().and_then(|sessions| sessions.tag(entry, count));
        if let Some(name) = &self.rules.seq_header {
            request.headers.push((name.clone(), HeaderValue::from(request.seq)));
        }
        Ok(Copies { request: Some(request), left: count, seq_header: self.rules.seq_header.clone() })
    }

    /// The request `entry` asks for, not yet numbered.
    fn build(&mut self, entry: &Entry<'_>, input: usize, log_line: u64) -> Result<ReplayRequest, Skip> {
        let method_bytes = entry.method.as_ref();
        if method_bytes == b"CONNECT" {
            return self.skip(Skip::Tunnel);
        }
        if !self.rules.methods.allows(method_bytes) {
            return self.skip(Skip::Method(String::from_utf8_lossy(method_bytes).into_owned()));
        }
        if let Err(skip) = self.rules.filters.check(entry, input, log_line) {
            return self.skip(skip);
        }
        if !self.rules.production_ok && entry.vhost.as_deref().is_some_and(|v| self.is_target_host(v)) {
            return self.skip(Skip::Production);
        }
        let bodyless = entry.body.is_none() && BODY_METHODS.contains(&method_bytes);
        if bodyless && self.rules.skip_bodyless {
            return self.skip(Skip::Bodyless);
        }
        let path_and_query = match origin_form(&entry.target) {
            Target::Path(p) => p,
            Target::Absolute(p) => {
                self.stats.absolute_urls_rewritten += 1;
                p
            }
            Target::Authority => return self.skip(Skip::Tunnel),
            Target::Other => return self.skip(Skip::NotAPath),
        };
        let method = Method::from_bytes(method_bytes).map_err(|_| Skip::NotAPath)?;
        let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
            Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
            None => (path_and_query, None),
        };
        if let Some(named) = self.disallowed_method_param(query, entry) {
            return self.skip(Skip::MethodParam(named));
        }
        self.url_buf.clear();
        self.url_buf.push_str(self.scope.prefix());
        let refuse_hidden = !self.scope.prefix().is_empty();
        match push_resolved_path(&mut self.url_buf, path, &mut self.segment_starts, refuse_hidden) {
            Ok(Resolved::AsLogged) => {}
            Ok(Resolved::DotSegments) => self.stats.dot_segments_resolved += 1,
            Err(skip) => return self.skip(skip),
        }
        let path_end = self.url_buf.len();
        if let Some(query) = query {
            push_percent_encoded(&mut self.url_buf, query);
        }
        // Setting path and query on a copy of the parsed target costs a fraction of parsing a
        // whole URL (scheme, host, IDNA) per request. The path has no dot segments left for it
        // to resolve, so it cannot climb above the prefix.
        let mut url = self.origin.clone();
        url.set_path(&self.url_buf[..path_end]);
        if query.is_some() {
            url.set_query(Some(&self.url_buf[path_end..]));
        }
        debug_assert!(self.scope.contains(&url), "{url} left the target's scope");

        let mut headers = Vec::new();
        let logged = [("user-agent", &entry.user_agent), ("referer", &entry.referer)];
        for (name, value) in logged.into_iter().filter_map(|(n, v)| v.as_ref().map(|v| (n, v))) {
            self.push_logged(&mut headers, name, value);
        }
        for (name, value) in &entry.headers {
            if NOT_REPLAYED.contains(&name.as_ref()) {
                continue;
            }
            if METHOD_OVERRIDE_HEADERS.contains(&name.as_ref()) && !self.allows_named_method(value) {
                self.stats.method_override_headers_dropped += 1;
                continue;
            }
            self.push_logged(&mut headers, name, value);
        }
        match &self.rules.host {
            HostRule::Target => {}
            HostRule::Fixed(host) => headers.push((reqwest::header::HOST, host.clone())),
            HostRule::Logged => {
                if let Some(host) = entry.vhost.as_deref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
                    headers.push((reqwest::header::HOST, host));
                }
            }
        }
        headers.extend(self.rules.add_headers.iter().cloned());
        let body = match &entry.body {
            Some(b) => Some(Bytes::copy_from_slice(b)),
            None if bodyless => {
                self.stats.sent_without_body += 1;
                Some(Bytes::new())
            }
            None => None,
        };
        Ok(ReplayRequest {
            seq: 0,
            position: LogPosition::default(),
            log_line,
            log_time: entry.time.map(|t| t.with_timezone(&Utc)),
            method,
            url,
            orig_status: entry.status,
            headers,
            body,
            log_offset: None,
            session: None,
            stream: None,
        })
    }

    /// The reader starts the log again (`--duration` loops it): sessions start afresh.
    pub fn new_pass(&mut self) {
        if let Some(sessions) = &mut self.sessions {
            sessions.new_pass();
        }
    }

    /// Logged headers are sent as logged, unless dropped or replaced by a `--header` of that name.
    fn push_logged(&self, headers: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &[u8]) {
        let dropped = self.rules.drop_headers.iter().any(|d| d.eq_ignore_ascii_case(name))
            || self.rules.add_headers.iter().any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            || self.rules.seq_header.as_ref().is_some_and(|n| n.as_str().eq_ignore_ascii_case(name));
        if !dropped {
            push_header(headers, name, value);
        }
    }

    /// Whether `--allow-methods` allows the method an override header or parameter names
    /// (servers read it trimmed and in any case).
    fn allows_named_method(&self, named: &[u8]) -> bool {
        self.rules.methods.allows(&named.trim_ascii().to_ascii_uppercase())
    }

    /// The method a `_method` parameter in the query or a form body names, when it is not allowed.
    /// Rails, Symfony/Laravel and Express's method-override treat such a POST as that method.
    fn disallowed_method_param(&self, query: Option<&[u8]>, entry: &Entry<'_>) -> Option<String> {
        if matches!(self.rules.methods, MethodFilter::All) {
            return None;
        }
        let content_type = entry.headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_ref());
        let body = entry.body.as_deref().unwrap_or_default();
        // Logs often leave the content type out; a browser form's default is urlencoded.
        let urlencoded =
            content_type.is_none_or(|ct| starts_with_ignore_case(ct, b"application/x-www-form-urlencoded"));
        let from_form = if urlencoded {
            form_pairs(body).find(|(name, _)| is_method_param(name)).map(|(_, value)| value)
        } else if content_type.is_some_and(|ct| starts_with_ignore_case(ct, b"multipart/form-data")) {
            multipart_method_field(body)
        } else {
            None
        };
        let from_query = query.into_iter().flat_map(form_pairs).filter(|(name, _)| is_method_param(name));
        from_query.map(|(_, value)| value).chain(from_form).find_map(|raw| {
            let decoded: Vec<u8> = form_decoded(raw).collect();
            (!self.allows_named_method(&decoded)).then(|| method_key(decoded.trim_ascii()))
        })
    }

    fn is_target_host(&self, logged: &[u8]) -> bool {
        let logged = std::str::from_utf8(logged).unwrap_or_default();
        let name =
            logged.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(logged, |(h, _)| h);
        name.eq_ignore_ascii_case(&self.target_host)
    }

    fn skip<T>(&mut self, why: Skip) -> Result<T, Skip> {
        *self.stats.skipped.entry(why.key()).or_default() += 1;
        Err(why)
    }
}

fn push_header(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &[u8]) {
    // A header that cannot be sent as logged (e.g. a control byte) is left out rather than altered.
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
        headers.push((n, v));
    }
}

fn starts_with_ignore_case(text: &[u8], start: &[u8]) -> bool {
    text.len() >= start.len() && text[..start.len()].eq_ignore_ascii_case(start)
}

fn is_method_param(encoded_name: &[u8]) -> bool {
    form_decoded(encoded_name).eq(b"_method".iter().copied())
}

/// The value of a `_method` field in a multipart body (Rails forms with file uploads carry one).
fn multipart_method_field(body: &[u8]) -> Option<&[u8]> {
    const FIELD: &[u8] = b"name=\"_method\"";
    let at = body.windows(FIELD.len()).position(|w| w == FIELD)?;
    let after = &body[at + FIELD.len()..];
    let start = after.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let value = &after[start..];
    Some(&value[..value.windows(2).position(|w| w == b"\r\n").unwrap_or(value.len())])
}

/// A named method as a summary key: a method-like token as it is, anything else as one key, so
/// junk values cannot grow the counts without bound.
fn method_key(named: &[u8]) -> String {
    let token = (1..=20).contains(&named.len()) && named.iter().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b));
    if token { String::from_utf8_lossy(named).to_ascii_uppercase() } else { "(not a method name)".into() }
}

/// How a logged path was written under the prefix.
enum Resolved {
    AsLogged,
    DotSegments,
}

/// Writes the logged path after the prefix already in `out`, with its `.` and `..` segments (in
/// every spelling: `%2e`, `\` as a separator) resolved first, as the server that logged it did,
/// so `/../etc/passwd` under the prefix `/app` becomes `/app/etc/passwd`: `..` stops at the prefix.
/// With `refuse_hidden`, a segment some servers would still resolve (`..%2f`, `..;`) refuses the
/// line instead: decoding it here would change what an ordinary `%2F` in a path means.
fn push_resolved_path(
    out: &mut String,
    path: &[u8],
    segment_starts: &mut Vec<usize>,
    refuse_hidden: bool,
) -> Result<Resolved, Skip> {
    let Some(rest) = path.strip_prefix(b"/") else {
        // Only an absolute URL with no path at all (`http://host?q`) comes here without a `/`.
        return Ok(Resolved::AsLogged);
    };
    // The common path has nothing that is or hides a dot segment: written as logged, one scan.
    if !rest.iter().any(|&b| matches!(b, b'.' | b'\\' | b'%' | b';')) {
        out.push('/');
        push_percent_encoded(out, rest);
        return Ok(Resolved::AsLogged);
    }
    segment_starts.clear();
    let mut resolved = Resolved::AsLogged;
    let mut segments = rest.split(|&b| b == b'/' || b == b'\\').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match dot_segment(segment) {
            Some(dots) => {
                resolved = Resolved::DotSegments;
                if dots == DotSegment::Parent
                    && let Some(start) = segment_starts.pop()
                {
                    out.truncate(start);
                }
                // `/a/..` and `/a/.` name a directory: `/a/` and `/`.
                if last {
                    out.push('/');
                }
            }
            None => {
                if refuse_hidden && hides_dot_segment(segment) {
                    return Err(Skip::HiddenDotSegment);
                }
                segment_starts.push(out.len());
                out.push('/');
                push_percent_encoded(out, segment);
            }
        }
    }
    Ok(resolved)
}

enum Target<'a> {
    Path(&'a [u8]),
    /// `http://host/path`: only the path is kept; the host it names is never contacted.
    Absolute(&'a [u8]),
    Authority,
    Other,
}

fn origin_form(target: &[u8]) -> Target<'_> {
    if target.starts_with(b"/") {
        return Target::Path(target);
    }
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            let path_start = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
            let path = &rest[path_start..];
            return Target::Absolute(if path.is_empty() { b"/" } else { path });
        }
    }
    // host:port, as in CONNECT requests.
    if target.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        && target.contains(&b':')
    {
        return Target::Authority;
    }
    Target::Other
}

/// HTTP request targets are ASCII on the wire: bytes outside printable ASCII (and spaces) are
/// percent-encoded, which is what a browser would have sent for them. Existing `%XX` escapes are
/// kept as logged.
fn push_percent_encoded(out: &mut String, path: &[u8]) {
    match std::str::from_utf8(path) {
        Ok(s) if s.bytes().all(|b| b.is_ascii_graphic()) => out.push_str(s),
        _ => {
            for &b in path {
                if b.is_ascii_graphic() {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn entry<'a>(method: &'a [u8], target: &'a [u8]) -> Entry<'a> {
        Entry {
            remote_addr: None,
            remote_user: None,
            time: None,
            method: Cow::Borrowed(method),
            target: Cow::Borrowed(target),
            protocol: None,
            status: Some(200),
            bytes: None,
            referer: None,
            user_agent: Some(Cow::Borrowed(b"curl/8")),
            request_time_ms: None,
            vhost: None,
            headers: vec![
                (Cow::Borrowed("x-test"), Cow::Borrowed(b"1")),
                (Cow::Borrowed("host"), Cow::Borrowed(b"prod")),
            ],
            body: None,
            fields: vec![],
        }
    }

    fn planner() -> Planner {
        let rules = PlanRules { methods: parse_methods("GET,HEAD").unwrap(), ..PlanRules::default() };
        Planner::new(&Url::parse("http://127.0.0.1:8080/prefix/").unwrap(), rules)
    }

    #[test]
    fn copies_of_a_mix_take_consecutive_places_in_the_plan_and_in_their_session() {
        let rules = PlanRules {
            sessions: Some(SessionKey::Client),
            mix: Some(mix::Mix::parse("/twice=2", 0).unwrap()),
            seq_header: Some(HeaderName::from_static("x-sluice-seq")),
            ..PlanRules::default()
        };
        let mut p = Planner::new(&Url::parse("http://127.0.0.1:8080/").unwrap(), rules);
        let from = |addr: &'static [u8], target: &'static [u8]| Entry {
            remote_addr: Some(Cow::Borrowed(addr)),
            ..entry(b"GET", target)
        };
        let mut planned = Vec::new();
        for (line, (addr, target)) in [
            (&b"10.0.0.1"[..], &b"/once"[..]),
            (b"10.0.0.1", b"/twice"),
            (b"10.0.0.2", b"/twice"),
            (b"10.0.0.1", b"/once"),
        ]
        .into_iter()
        .enumerate()
        {
            planned.extend(p.plan_weighted(&from(addr, target), 0, line as u64 + 1, 1).unwrap());
        }
        let got: Vec<_> = planned.iter().map(|r| (r.seq, r.session.map(|s| (s.id, s.seq)))).collect();
        assert_eq!(
            got,
            vec![
                (0, Some((1, 0))),
                (1, Some((1, 1))),
                (2, Some((1, 2))),
                (3, Some((2, 0))),
                (4, Some((2, 1))),
                (5, Some((1, 3)))
            ]
        );
        // --seq-header: each copy carries its own seq, once.
        for r in &planned {
            let values: Vec<_> =
                r.headers.iter().filter(|(n, _)| n == "x-sluice-seq").map(|(_, v)| v.clone()).collect();
            assert_eq!(values, vec![HeaderValue::from(r.seq)]);
        }
    }

    #[test]
    fn path_and_query_are_appended_to_the_target_prefix() {
        let mut p = planner();
        let r = p.plan(&entry(b"GET", b"/a/b?x=1&y=%20"), 0, 7).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/prefix/a/b?x=1&y=%20");
        assert_eq!((r.seq, r.log_line, r.orig_status), (0, 7, Some(200)));
        let names: Vec<_> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user-agent", "x-test"], "logged headers are sent, hop headers and host are not");
    }

    #[test]
    fn non_ascii_bytes_are_percent_encoded() {
        let mut p = planner();
        let r = p.plan(&entry(b"GET", b"/caf\xc3\xa9 x\xff"), 0, 1).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/prefix/caf%C3%A9%20x%FF");
    }

    #[test]
    fn absolute_urls_never_reach_the_host_they_name() {
        let mut p = planner();
        let r = p.plan(&entry(b"GET", b"http://evil.example/steal?q=1"), 0, 1).unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/prefix/steal?q=1");
        assert_eq!(p.stats.absolute_urls_rewritten, 1);
        assert_eq!(p.plan(&entry(b"CONNECT", b"evil.example:443"), 0, 2).unwrap_err(), Skip::Tunnel);
        assert_eq!(p.plan(&entry(b"GET", b"evil.example:443"), 0, 3).unwrap_err(), Skip::Tunnel);
        assert_eq!(p.plan(&entry(b"GET", b"*"), 0, 4).unwrap_err(), Skip::NotAPath);
    }

    #[test]
    fn dot_segments_are_resolved_before_the_prefix_and_hidden_ones_refused() {
        let mut p = planner();
        for (logged, sent) in [
            ("/../etc/passwd", "/prefix/etc/passwd"),
            ("/a/%2E%2e/%2e%2E/b/./c/.", "/prefix/b/c/"),
            ("/a\\..\\..\\b", "/prefix/b"),
            ("/a/..", "/prefix/"),
            ("/a//..", "/prefix/a/"),
            ("/", "/prefix/"),
            ("/x.y/z..?q=/../..", "/prefix/x.y/z..?q=/../.."),
            ("http://evil.example/../x", "/prefix/x"),
        ] {
            let r = p.plan(&entry(b"GET", logged.as_bytes()), 0, 1).unwrap();
            assert_eq!(&r.url[url::Position::BeforePath..], sent, "{logged}");
        }
        assert_eq!(p.stats.dot_segments_resolved, 6);
        for hidden in ["/..%2f..%2fetc/passwd", "/..;/etc", "/a/%2e%2e%5Cb"] {
            assert_eq!(p.plan(&entry(b"GET", hidden.as_bytes()), 0, 1).unwrap_err(), Skip::HiddenDotSegment);
        }
        // Without a prefix there is nothing to leave: sent as logged.
        let mut root = Planner::new(&Url::parse("http://127.0.0.1:8080").unwrap(), PlanRules::default());
        let r = root.plan(&entry(b"GET", b"/..%2f..%2fetc/passwd"), 0, 1).unwrap();
        assert_eq!(r.url.path(), "/..%2f..%2fetc/passwd");
    }

    proptest! {
        #[test]
        fn no_logged_path_leaves_the_prefix(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["/", "\\", ".", "..", "%2e", "%2E", "%2f", "%5C", ";", "a", "?", "#", "%", " "]),
                0..16,
            )
        ) {
            let mut p = planner();
            let logged = format!("/{}", pieces.concat());
            match p.plan(&entry(b"GET", logged.as_bytes()), 0, 1) {
                Ok(r) => {
                    let path = r.url.path();
                    prop_assert!(path == "/prefix" || path.starts_with("/prefix/"), "{logged} -> {path}");
                    prop_assert!(p.scope.contains(&r.url), "{logged} -> {}", r.url);
                }
                Err(skip) => prop_assert_eq!(skip, Skip::HiddenDotSegment),
            }
        }
    }

    #[test]
    fn method_overrides_are_sent_only_for_allowed_methods() {
        let mut p = planner();
        let mut e = entry(b"GET", b"/x");
        e.headers = vec![
            (Cow::Borrowed("x-http-method-override"), Cow::Borrowed(b"DELETE")),
            (Cow::Borrowed("x-http-method"), Cow::Borrowed(b" head ")),
            (Cow::Borrowed("x-method-override"), Cow::Borrowed(b"put")),
        ];
        let r = p.plan(&e, 0, 1).unwrap();
        let sent: Vec<_> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(sent, ["user-agent", "x-http-method"], "HEAD is allowed; DELETE and PUT are not");
        assert_eq!(p.stats.method_override_headers_dropped, 2);

        let mut p = Planner::new(
            &Url::parse("http://127.0.0.1:8080/").unwrap(),
            PlanRules { methods: parse_methods("GET,POST").unwrap(), ..PlanRules::default() },
        );
        let mut post = entry(b"POST", b"/f?a=1");
        post.body = Some(Cow::Borrowed(b"x=1&%5f%6Dethod=delete"));
        assert_eq!(p.plan(&post, 0, 1).unwrap_err(), Skip::MethodParam("DELETE".into()));
        post.body = Some(Cow::Borrowed(b"_method=POST"));
        assert!(p.plan(&post, 0, 2).is_ok());
        let query = entry(b"POST", b"/f?_method=%3Cscript%3E");
        assert_eq!(p.plan(&query, 0, 3).unwrap_err(), Skip::MethodParam("(not a method name)".into()));
        post.headers.push((Cow::Borrowed("content-type"), Cow::Borrowed(b"application/json")));
        post.body = Some(Cow::Borrowed(b"_method=DELETE"));
        assert!(p.plan(&post, 0, 4).is_ok(), "not a form");
        assert_eq!(p.stats.skipped.get("_method DELETE"), Some(&1));
    }

    #[test]
    fn disallowed_methods_are_skipped_and_counted() {
        let mut p = planner();
        assert_eq!(p.plan(&entry(b"POST", b"/x"), 0, 1).unwrap_err(), Skip::Method("POST".into()));
        assert_eq!(p.plan(&entry(b"POST", b"/y"), 0, 2).unwrap_err(), Skip::Method("POST".into()));
        assert_eq!(p.stats.skipped.get("method POST"), Some(&2));
        // Numbering counts only replayed requests.
        assert_eq!(p.plan(&entry(b"HEAD", b"/z"), 0, 3).unwrap().seq, 0);
    }
}
