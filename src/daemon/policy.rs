//! What this daemon's operator allows a client to ask for, and why a request is refused.
//!
//! A run may only send to targets on the allow-list ([`AllowList`], `--allow-target`), so the API
//! cannot be used to send traffic anywhere its operator did not allow; it may only read logs by
//! plain names inside `--logs-dir` ([`check_log_name`]); and it must stay within the operator's
//! [`Caps`] (rate, concurrency, duration, waiting runs), so one request cannot take the daemon's
//! memory or the target down. The host part of an allow-list pattern is a [`HostPattern`], the
//! grammar `--allow-host` and `--deny-host` use too.

use std::time::Duration;

use crate::config::tls::{ClientIdentity, PEM_FILE_BYTES, parse_resolve};
use crate::config::{ReplayConfig, Target, TlsSettings, parse_target};
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

/// Everything the daemon's operator decided about runs: where they may send, how hard, and how
/// their https connections are verified.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub allow: AllowList,
    pub caps: Caps,
    pub tls: TlsPolicy,
}

/// The operator's TLS decisions. A caller never names a file on the daemon's machine: the CAs
/// runs trust and the client certificate they present are the operator's (`sluice daemon
/// --ca-cert`, `--client-cert`, `--client-key`); a caller may add CA certificates as PEM text
/// (`ca_pem`, public, kept in `run.json`), and may turn verification off (`insecure`) only where
/// the operator allowed it (`--allow-insecure`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsPolicy {
    /// Given to every https run: the operator's trusted CAs and client certificate.
    pub given: TlsSettings,
    pub allow_insecure: bool,
}

impl TlsPolicy {
    /// Refuses `insecure` unless the operator allowed it.
    pub fn check_insecure(&self, insecure: bool) -> Result<(), Rejection> {
        if insecure && !self.allow_insecure {
            return Err(Rejection::Forbidden(
                "insecure: this daemon does not run requests that skip certificate verification; send the target's \
                 CA in `ca_pem`, or ask its operator to trust it (sluice daemon --ca-cert) or to allow this \
                 (--allow-insecure)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Gives a validated run the operator's CAs and client certificate, and the caller's
    /// `ca_pem`. Only https runs get them: an http run has no use for them.
    pub fn give_to(&self, config: &mut ReplayConfig, ca_pem: Option<&str>) -> Result<(), Rejection> {
        let is_https = matches!(&config.target, Target::Url(url) if url.scheme() == "https");
        if !is_https {
            return match ca_pem {
                Some(_) => Err(Rejection::Invalid("ca_pem: applies to https:// targets only".into())),
                None => Ok(()),
            };
        }
        // Named by flag, not by path: summaries never carry the daemon's own paths.
        let tls = &mut config.tls;
        if !self.given.ca_certs.is_empty() {
            tls.ca_certs.extend(self.given.ca_certs.iter().cloned());
            tls.ca_sources.push("the daemon's --ca-cert".into());
        }
        tls.client_identity = self
            .given
            .client_identity
            .as_ref()
            .map(|identity| ClientIdentity { source: "the daemon's --client-cert".into(), ..identity.clone() });
        if let Some(pem) = ca_pem {
            if pem.len() as u64 > PEM_FILE_BYTES {
                return Err(Rejection::Invalid(format!("ca_pem: longer than {PEM_FILE_BYTES} bytes")));
            }
            tls.add_ca_pem(pem.as_bytes(), "ca_pem").map_err(Rejection::Invalid)?;
        }
        Ok(())
    }
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
                if self.0.iter().any(|a| a.matches(&url)) {
                    Ok(())
                } else {
                    Err(not_allowed())
                }
            }
        }
    }
}

impl AllowList {
    /// `resolve` (HOST:PORT:ADDR) sends the target's traffic to ADDR: that address must be
    /// allowed too, as the target's host would be.
    pub fn check_resolved(&self, target: &str, resolve: &str) -> Result<(), Rejection> {
        let parsed = parse_target(target).map_err(|m| Rejection::Invalid(format!("target: {m}")))?;
        let addr =
            parse_resolve(resolve, &parsed).map_err(|e| Rejection::Invalid(format!("resolve: {}", e.message)))?;
        let Target::Url(mut url) = parsed else {
            return Err(Rejection::Invalid("resolve: the mock target has no host to resolve".into()));
        };
        url.set_ip_host(addr.ip()).map_err(|()| Rejection::Invalid("resolve: not an address".into()))?;
        if self.0.iter().any(|a| a.matches(&url)) {
            return Ok(());
        }
        Err(Rejection::Forbidden(format!(
            "resolve: connections would go to {}, which this daemon does not send to (it only sends to: {}); its \
             operator can widen this with --allow-target",
            addr.ip(),
            self.describe()
        )))
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
    fn the_address_resolve_connects_to_must_be_allowed_too() {
        let list = AllowList::parse(&["https://staging.example".into(), "https://10.1.2.3".into()]).unwrap();
        let target = "https://staging.example";
        assert!(list.check(target).is_ok());
        assert!(list.check_resolved(target, "staging.example:443:10.1.2.3").is_ok());
        let outside = list.check_resolved(target, "staging.example:443:192.0.2.1").unwrap_err();
        assert!(matches!(&outside, Rejection::Forbidden(m) if m.contains("go to 192.0.2.1")), "{outside:?}");
        let loopback = AllowList::default();
        assert!(
            loopback.check_resolved("http://localhost:8080", "localhost:8080:127.0.0.2").is_ok(),
            "loopback allows 127.0.0.0/8"
        );
        assert!(matches!(
            loopback.check_resolved("http://localhost:8080", "localhost:8080:10.0.0.1"),
            Err(Rejection::Forbidden(_))
        ));
        assert!(
            matches!(list.check_resolved(target, "nonsense"), Err(Rejection::Invalid(m)) if m.starts_with("resolve:"))
        );
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
