//! From log entry to the request that will be sent: filters, target rewriting, headers, body.

use std::collections::BTreeMap;
use std::fmt::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use sluice_parsers::Entry;

use crate::config::MethodFilter;
use crate::filter::Filters;

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
}

impl Default for PlanRules {
    fn default() -> Self {
        PlanRules {
            methods: crate::config::parse_methods(crate::config::DEFAULT_METHODS).expect("valid default"),
            filters: Filters::default(),
            add_headers: Vec::new(),
            drop_headers: Vec::new(),
            host: HostRule::Target,
            skip_bodyless: false,
            production_ok: false,
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

/// Methods whose requests normally carry a body.
const BODY_METHODS: [&[u8]; 3] = [b"POST", b"PUT", b"PATCH"];

/// Turns entries into requests against one target.
pub struct Planner {
    /// The target, parsed once; each request's URL is a copy with its own path and query.
    origin: Url,
    /// The target's path prefix without a trailing `/`.
    prefix: String,
    target_host: String,
    rules: PlanRules,
    next_seq: u64,
    pub stats: PlanStats,
    url_buf: String,
}

impl Planner {
    pub fn new(target: &Url, rules: PlanRules) -> Planner {
        let host = target.host_str().unwrap_or_default();
        let mut origin = target.clone();
        origin.set_query(None);
        origin.set_fragment(None);
        Planner {
            prefix: target.path().trim_end_matches('/').to_string(),
            origin,
            target_host: host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase(),
            rules,
            next_seq: 0,
            stats: PlanStats::default(),
            url_buf: String::with_capacity(256),
        }
    }

    /// `input` and `log_line` say where the entry came from (`--sample` chooses by line).
    pub fn plan(&mut self, entry: &Entry<'_>, input: usize, log_line: u64) -> Result<ReplayRequest, Skip> {
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
        let path = match origin_form(&entry.target) {
            Target::Path(p) => p,
            Target::Absolute(p) => {
                self.stats.absolute_urls_rewritten += 1;
                p
            }
            Target::Authority => return self.skip(Skip::Tunnel),
            Target::Other => return self.skip(Skip::NotAPath),
        };
        let method = Method::from_bytes(method_bytes).map_err(|_| Skip::NotAPath)?;
        self.url_buf.clear();
        self.url_buf.push_str(&self.prefix);
        push_percent_encoded(&mut self.url_buf, path);
        // Setting path and query on a copy of the parsed target costs a fraction of parsing a
        // whole URL (scheme, host, IDNA) per request, and normalises the path the same way.
        let mut url = self.origin.clone();
        match self.url_buf.split_once('?') {
            Some((path, query)) => {
                url.set_path(path);
                url.set_query(Some(query));
            }
            None => url.set_path(&self.url_buf),
        }

        let mut headers = Vec::new();
        let logged = [("user-agent", &entry.user_agent), ("referer", &entry.referer)];
        for (name, value) in logged.into_iter().filter_map(|(n, v)| v.as_ref().map(|v| (n, v))) {
            self.push_logged(&mut headers, name, value);
        }
        for (name, value) in &entry.headers {
            if !NOT_REPLAYED.contains(&name.as_ref()) {
                self.push_logged(&mut headers, name, value);
            }
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
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(ReplayRequest {
            seq,
            position: LogPosition::default(),
            log_line,
            log_time: entry.time.map(|t| t.with_timezone(&Utc)),
            method,
            url,
            orig_status: entry.status,
            headers,
            body,
        })
    }

    /// Logged headers are sent as logged, unless dropped or replaced by a `--header` of that name.
    fn push_logged(&self, headers: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &[u8]) {
        let dropped = self.rules.drop_headers.iter().any(|d| d.eq_ignore_ascii_case(name))
            || self.rules.add_headers.iter().any(|(n, _)| n.as_str().eq_ignore_ascii_case(name));
        if !dropped {
            push_header(headers, name, value);
        }
    }

    fn is_target_host(&self, logged: &[u8]) -> bool {
        let logged = std::str::from_utf8(logged).unwrap_or_default();
        let name =
            logged.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(logged, |(h, _)| h);
        name.eq_ignore_ascii_case(&self.target_host)
    }

    fn skip(&mut self, why: Skip) -> Result<ReplayRequest, Skip> {
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
        let rules = PlanRules { methods: crate::config::parse_methods("GET,HEAD").unwrap(), ..PlanRules::default() };
        Planner::new(&Url::parse("http://127.0.0.1:8080/prefix/").unwrap(), rules)
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
    fn disallowed_methods_are_skipped_and_counted() {
        let mut p = planner();
        assert_eq!(p.plan(&entry(b"POST", b"/x"), 0, 1).unwrap_err(), Skip::Method("POST".into()));
        assert_eq!(p.plan(&entry(b"POST", b"/y"), 0, 2).unwrap_err(), Skip::Method("POST".into()));
        assert_eq!(p.stats.skipped.get("method POST"), Some(&2));
        // Numbering counts only replayed requests.
        assert_eq!(p.plan(&entry(b"HEAD", b"/z"), 0, 3).unwrap().seq, 0);
    }
}
