//! What this daemon's operator allows a client to ask for, and why a request is refused.
//!
//! A run may only send to targets on the allow-list ([`AllowList`], `--allow-target`), so the API
//! cannot be used to send traffic anywhere its operator did not allow; it may only read logs by
//! plain names inside `--logs-dir` ([`check_log_name`]); and it must stay within the operator's
//! [`Caps`] (rate, concurrency, duration, waiting runs), so one request cannot take the daemon's
//! memory or the target down. The host part of an allow-list pattern is a [`HostPattern`], the
//! grammar `--allow-host` and `--deny-host` use too.

use std::time::Duration;

use crate::config::{Target, parse_target};
use crate::plan::safety::HostPattern;

/// Why a request is refused; the API turns each into a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Well-formed JSON whose values cannot be run (422).
    Invalid(String),
    /// Valid, but outside what this daemon allows (403).
    Forbidden(String),
}

/// Log names are single file names: letters, digits, `.`, `_`, `-`; not hidden, not `..`.
pub fn check_log_name(name: &str) -> Result<(), String> {
    let allowed = "a log name is one file name of letters, digits, '.', '_' and '-' (e.g. access.log.gz), \
                   not starting with '.'";
    if name.is_empty() || name.len() > 200 {
        return Err(format!("log name must be 1 to 200 characters; {allowed}"));
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return Err(format!("'{}' is not a log name: paths are not accepted; {allowed}", printable(name)));
    }
    if name.starts_with('.') || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(format!("'{}' is not a log name; {allowed}", printable(name)));
    }
    Ok(())
}

/// Echoes a client's text in a message without control characters.
pub(super) fn printable(text: &str) -> String {
    text.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// What a caller may ask of this daemon: `--max-rate`, `--max-concurrency`, `--max-duration`,
/// `--max-queued-runs`. The CLI's own bounds apply too; these are the operator's, usually lower.
#[derive(Debug, Clone, PartialEq)]
pub struct Caps {
    /// Requests per second; `"rate": "max"` (no ceiling) is refused.
    pub max_rate: f64,
    pub max_concurrency: usize,
    /// The longest run; a run without `duration` is ended here too.
    pub max_duration: Duration,
    /// Runs waiting (queued + scheduled) at once.
    pub max_queued_runs: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_rate: 10_000.0,
            max_concurrency: 1_000,
            max_duration: Duration::from_secs(24 * 3600),
            max_queued_runs: 100,
        }
    }
}

/// Everything the daemon's operator decided about runs: where they may send, and how hard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub allow: AllowList,
    pub caps: Caps,
}

/// Which targets the daemon's runs may send to: `--allow-target`, repeatable.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowList(Vec<AllowTarget>);

/// One `--allow-target` pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum AllowTarget {
    /// `loopback`: 127.0.0.0/8, ::1 and `localhost`, any port, http or https (the default).
    Loopback,
    /// `mock`: the built-in mock server (`"target": "mock"`), started inside the daemon.
    Mock,
    /// `http(s)://HOST[:PORT][/PREFIX]`: HOST is a [`HostPattern`] (a name, an address or
    /// `*.domain`), or `*` for any host (`None`); PORT is a number or `*` (omitted: the scheme's
    /// default); the target's path must start with PREFIX.
    Url { scheme: String, host: Option<HostPattern>, port: Option<u16>, prefix: String, text: String },
}

/// The hosts `loopback` stands for.
fn loopback_hosts() -> [HostPattern; 3] {
    [
        HostPattern::Cidr { network: std::net::Ipv4Addr::new(127, 0, 0, 0).into(), prefix: 8 },
        HostPattern::Cidr { network: std::net::Ipv6Addr::LOCALHOST.into(), prefix: 128 },
        HostPattern::Name("localhost".into()),
    ]
}

impl Default for AllowList {
    fn default() -> Self {
        AllowList(vec![AllowTarget::Loopback])
    }
}

impl AllowList {
    /// The patterns given; none means [`AllowTarget::Loopback`] only.
    pub fn parse(patterns: &[String]) -> Result<AllowList, String> {
        if patterns.is_empty() {
            return Ok(AllowList::default());
        }
        patterns.iter().map(|p| AllowTarget::parse(p)).collect::<Result<_, _>>().map(AllowList)
    }

    pub fn describe(&self) -> String {
        self.0.iter().map(AllowTarget::to_string).collect::<Vec<_>>().join(", ")
    }

    /// Checks a run's `target` (as written in the request) against the list.
    pub fn check(&self, target: &str) -> Result<(), Rejection> {
        let not_allowed = || {
            Rejection::Forbidden(format!(
                "target '{}' is not allowed by this daemon, which only sends to: {}; its operator can widen this \
                 with --allow-target",
                printable(target),
                self.describe()
            ))
        };
        match parse_target(target).map_err(|m| Rejection::Invalid(format!("target: {m}")))? {
            Target::Mock if self.0.contains(&AllowTarget::Mock) => Ok(()),
            Target::Mock => Err(not_allowed()),
            // The allow-list names HTTP targets; a daemon does not produce to Kafka.
            Target::Kafka(_) => {
                Err(Rejection::Invalid("target: a daemon does not send to Kafka; run `sluice replay`".into()))
            }
            Target::Url(url) => {
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(Rejection::Invalid(
                        "target: credentials in the URL are not accepted; send them in `headers`".into(),
                    ));
                }
                if self.0.iter().any(|a| a.matches(&url)) { Ok(()) } else { Err(not_allowed()) }
            }
        }
    }
}

impl std::fmt::Display for AllowTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowTarget::Loopback => f.write_str("loopback (127.0.0.0/8, ::1, localhost)"),
            AllowTarget::Mock => f.write_str("mock"),
            AllowTarget::Url { text, .. } => f.write_str(text),
        }
    }
}

impl AllowTarget {
    pub fn parse(text: &str) -> Result<AllowTarget, String> {
        let expected = "expected 'loopback', 'mock' or http(s)://HOST[:PORT][/PREFIX] where HOST may be '*.domain' \
                        or '*' and PORT may be '*'";
        match text.trim() {
            "loopback" => return Ok(AllowTarget::Loopback),
            "mock" => return Ok(AllowTarget::Mock),
            _ => {}
        }
        let bad = |why: &str| format!("--allow-target '{text}': {why}; {expected}");
        let (scheme, rest) = text.trim().split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http and https"));
        }
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if prefix.contains(['?', '#', '*']) {
            return Err(bad("the path prefix may not contain '?', '#' or '*'"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (format!("[{addr}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            None => Some(if scheme == "https" { 443 } else { 80 }),
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("the port is not a number or '*'"))?),
        };
        let host = match host.as_str() {
            "*" => None,
            _ => Some(HostPattern::parse(&host).map_err(|_| {
                bad(if host.starts_with('*') { "a wildcard host is '*.domain'" } else { "not a host" })
            })?),
        };
        Ok(AllowTarget::Url { scheme, host, port, prefix: prefix.to_string(), text: text.trim().to_string() })
    }

    /// Whether `url` is allowed, by its text: names are not resolved here (the run's own
    /// `--allow-host`/`--deny-host` checks resolve them), so a name pattern allows a name and an
    /// address pattern an address.
    fn matches(&self, url: &reqwest::Url) -> bool {
        let Some(target_host) = url.host_str() else {
            return false;
        };
        match self {
            AllowTarget::Mock => false,
            AllowTarget::Loopback => loopback_hosts().iter().any(|p| p.matches_written(target_host)),
            AllowTarget::Url { scheme, host, port, prefix, .. } => {
                let path = url.path().trim_end_matches('/');
                let prefix_ok = prefix.is_empty()
                    || path == prefix
                    || path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/'));
                url.scheme() == scheme
                    && host.as_ref().is_none_or(|p| p.matches_written(target_host))
                    && port.is_none_or(|p| url.port_or_known_default() == Some(p))
                    && prefix_ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str], target: &str) -> bool {
        let list = AllowList::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        match list.check(target) {
            Ok(()) => true,
            Err(Rejection::Forbidden(_)) => false,
            Err(e) => panic!("{target}: {e:?}"),
        }
    }

    #[test]
    fn loopback_is_the_default_and_mock_must_be_allowed() {
        for t in ["http://127.0.0.1:8080", "https://127.3.4.5", "http://[::1]:9000/x", "http://localhost:1"] {
            assert!(allowed(&[], t), "{t}");
        }
        for t in ["http://10.0.0.1:8080", "http://example.com", "http://127.0.0.1.nip.io", "http://[::2]", "mock"] {
            assert!(!allowed(&[], t), "{t}");
        }
        assert!(allowed(&["mock"], "mock"));
        assert!(!allowed(&["mock"], "http://127.0.0.1:1"), "naming patterns replaces the loopback default");
        assert!(allowed(&["mock", "loopback"], "http://127.0.0.1:1"));
    }

    #[test]
    fn url_patterns_match_scheme_host_port_and_path_prefix() {
        let p = ["http://staging.internal:8080/shop"];
        assert!(allowed(&p, "http://staging.internal:8080/shop"));
        assert!(allowed(&p, "http://STAGING.internal:8080/shop/v2"));
        assert!(!allowed(&p, "http://staging.internal:8080/shopping"));
        assert!(!allowed(&p, "http://staging.internal:8080/"));
        assert!(!allowed(&p, "https://staging.internal:8080/shop"));
        assert!(!allowed(&p, "http://staging.internal:8081/shop"));
        assert!(!allowed(&p, "http://staging.internal.evil.example:8080/shop"));
        let wild = ["https://*.staging.example:*"];
        assert!(allowed(&wild, "https://api.staging.example:8443"));
        assert!(allowed(&wild, "https://a.b.staging.example"));
        assert!(!allowed(&wild, "https://staging.example"));
        assert!(!allowed(&wild, "https://evilstaging.example"));
        assert!(allowed(&["http://10.1.2.3"], "http://10.1.2.3/"));
        assert!(!allowed(&["http://10.1.2.3"], "http://10.1.2.3:8080/"));
        assert!(allowed(&["http://[fd00::1]:*"], "http://[fd00::1]:81"));
        assert!(allowed(&["http://*:*"], "http://anything.example:81/x"));
        assert!(allowed(&["http://db_1.internal"], "http://DB_1.internal/"), "host names as --allow-host reads them");
        for bad in [
            "ftp://x",
            "staging:8080",
            "http://*x.example",
            "http://h:port",
            "http://h/a*b",
            "http://",
            "http://*.",
            "http://*.*.example",
            "http://[host]",
            "http://a@b",
        ] {
            assert!(AllowTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_the_target_are_refused() {
        let list = AllowList::default();
        assert!(matches!(list.check("http://user:pw@127.0.0.1:1"), Err(Rejection::Invalid(_))));
    }

    #[test]
    fn log_names_are_plain_file_names() {
        for ok in ["access.log", "access.log.gz", "a_b-c.1"] {
            assert!(check_log_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "..", ".hidden", "a\\b", "a b", "x\n", "é.log"] {
            assert!(check_log_name(bad).is_err(), "{bad:?}");
        }
    }
}
