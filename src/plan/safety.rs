//! Staging safety: which targets may be hit, and which values must never be shown.
//!
//! - [`HostGuard`] checks the target's name and resolved addresses against `--deny-host` /
//!   `--allow-host` before any request leaves, and refuses a target that the log itself says is
//!   the production host (unless `--i-know-this-is-production`).
//! - [`TargetScope`] is the part of the target a replay may reach: its scheme, host, port and
//!   paths under its prefix. Planned requests and followed redirects stay inside it.
//! - [`Redactor`] keeps secrets out of every output: header values (Authorization, Cookie, …) and
//!   query parameters named like credentials in the CSV's url column.

use std::borrow::Cow;
use std::net::{IpAddr, ToSocketAddrs};

use regex::Regex;
use reqwest::Url;

/// Header values that never appear in any output, whatever the flags say.
pub const ALWAYS_REDACTED: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];
/// Query parameter names masked in the CSV by default.
pub const DEFAULT_MASKED_QUERY: &str = "token|key|secret|password|sig";
pub const REDACTED: &str = "[redacted]";
const MASK: &str = "***";

/// A host pattern: what `--deny-host` / `--allow-host` take, and the host part of the daemon's
/// `--allow-target`.
#[derive(Debug, Clone, PartialEq)]
pub enum HostPattern {
    /// An exact host name, case-insensitive: letters, digits, `-`, `.` and `_`.
    Name(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Suffix(String),
    /// An address or block: `10.0.0.0/8`, `::1/128`, `192.0.2.7`.
    Cidr { network: IpAddr, prefix: u8 },
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let t = text.trim();
        let allowed = "expected a host name, *.domain, an IP address or a CIDR block like 10.0.0.0/8";
        if t.is_empty() {
            return Err(format!("empty pattern; {allowed}"));
        }
        if let Some((addr, prefix)) = t.split_once('/') {
            let network: IpAddr =
                addr.parse().map_err(|_| format!("'{text}': '{addr}' is not an IP address; {allowed}"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?;
            return Ok(HostPattern::Cidr { network, prefix });
        }
        if let Ok(ip) = t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return Ok(HostPattern::Cidr { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } });
        }
        // `_` is not in DNS's host-name rule, but names with one resolve (through /etc/hosts,
        // container networks), and URLs accept them.
        let is_name = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if let Some(suffix) = t.strip_prefix("*.")
            && is_name(suffix)
        {
            return Ok(HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase())));
        }
        if is_name(t) {
            return Ok(HostPattern::Name(t.to_ascii_lowercase()));
        }
        Err(format!("'{text}' is not a host pattern; {allowed}"))
    }

    fn matches_name(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            HostPattern::Name(n) => host == *n,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()),
            HostPattern::Cidr { .. } => false,
        }
    }

    fn matches_addr(&self, ip: IpAddr) -> bool {
        let HostPattern::Cidr { network, prefix } = self else { return false };
        match (network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    fn matches(&self, host: &str, addrs: &[IpAddr]) -> bool {
        self.matches_name(host) || addrs.iter().any(|a| self.matches_addr(*a))
    }

    /// Whether a host as written in a URL (a name, or an address with IPv6 in brackets) matches,
    /// without resolving it: a name pattern matches names, an address pattern addresses.
    pub fn matches_written(&self, host: &str) -> bool {
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => self.matches_addr(ip),
            Err(_) => self.matches_name(host),
        }
    }
}

/// Which targets are acceptable.
#[derive(Debug, Clone, Default)]
pub struct HostGuard {
    pub deny: Vec<HostPattern>,
    pub allow: Vec<HostPattern>,
    pub production_ok: bool,
}

impl HostGuard {
    /// Resolves the target and checks it. Called before any request leaves.
    pub fn check_target(&self, host: &str, port: u16) -> Result<(), String> {
        if self.deny.is_empty() && self.allow.is_empty() {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<IpAddr> = match (bare, port).to_socket_addrs() {
            Ok(resolved) => resolved.map(|a| a.ip()).collect(),
            Err(e) => {
                return Err(format!(
                    "--target host {host} cannot be resolved ({e}); --deny-host/--allow-host need its address"
                ));
            }
        };
        self.judge(host, &addrs, "")
    }

    /// [`HostGuard::check_target`] for `--resolve`: the name is judged with the address
    /// connections go to, not with what the name resolves to (perhaps nothing yet).
    pub fn check_resolved_target(&self, host: &str, addr: IpAddr) -> Result<(), String> {
        self.judge(host, &[addr], " by --resolve")
    }

    /// Refuses a target whose name or addresses a `--deny-host` matches, or that no `--allow-host` matches.
    fn judge(&self, host: &str, addrs: &[IpAddr], how: &str) -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let shown = addrs.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ") + how;
        if let Some(p) = self.deny.iter().find(|p| p.matches(bare, addrs)) {
            return Err(format!("--deny-host {}: the target {host} ({shown}) is denied", describe(p)));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(bare, addrs)) {
            return Err(format!("--allow-host: the target {host} ({shown}) matches none of the allowed hosts"));
        }
        Ok(())
    }

    /// Refuses when a host the log says it was served by is the target itself.
    pub fn check_not_production<'a>(
        &self,
        target_host: &str,
        logged_hosts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        if self.production_ok {
            return Ok(());
        }
        let target = target_host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        for logged in logged_hosts {
            // A logged Host may carry a port (`shop.example:443`).
            let name = logged
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(logged, |(h, _)| h);
            if name.eq_ignore_ascii_case(&target) {
                return Err(format!(
                    "the log was served by {name}, and --target is that same host: this looks like replaying \
                     production against itself. Point --target at staging, or pass --i-know-this-is-production."
                ));
            }
        }
        Ok(())
    }
}

fn describe(p: &HostPattern) -> String {
    match p {
        HostPattern::Name(n) => n.clone(),
        HostPattern::Suffix(s) => format!("*{s}"),
        HostPattern::Cidr { network, prefix } => format!("{network}/{prefix}"),
    }
}

/// Keeps secrets out of outputs.
#[derive(Debug, Clone)]
pub struct Redactor {
    headers: Vec<String>,
    query: Regex,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(&[], DEFAULT_MASKED_QUERY).expect("the default pattern compiles")
    }
}

impl Redactor {
    pub fn new(extra_headers: &[String], query_pattern: &str) -> Result<Redactor, regex::Error> {
        let mut headers: Vec<String> = ALWAYS_REDACTED.iter().map(|h| h.to_string()).collect();
        headers.extend(extra_headers.iter().map(|h| h.trim().to_ascii_lowercase()));
        // Matched anywhere in the name, case-insensitively: `access_token` and `API_KEY` are
        // credentials too. Masking one parameter too many only hides a value from the CSV.
        let query = Regex::new(&format!("(?i)(?:{query_pattern})"))?;
        Ok(Redactor { headers, query })
    }

    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// The value to show for a header.
    pub fn header_value<'a>(&self, name: &str, value: &'a str) -> &'a str {
        if self.is_secret_header(name) { REDACTED } else { value }
    }

    /// The URL with the values of credential-like query parameters replaced by `***`.
    pub fn url(&self, url: &str) -> String {
        let Some((head, query)) = url.split_once('?') else { return url.to_string() };
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let mut out = String::with_capacity(url.len());
        out.push_str(head);
        out.push('?');
        for piece in query.split_inclusive(PARAM_SEPARATORS) {
            let (pair, separator) = piece.split_at(piece.len() - usize::from(piece.ends_with(PARAM_SEPARATORS)));
            match pair.split_once('=') {
                Some((name, _)) if self.is_secret_param(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                }
                _ => out.push_str(pair),
            }
            out.push_str(separator);
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }

    /// True when [`Redactor::url`] would change this URL (so the common case costs no allocation).
    pub fn url_needs_masking(&self, url: &str) -> bool {
        url.split_once('?').is_some_and(|(_, q)| {
            let q = q.split_once('#').map_or(q, |(q, _)| q);
            q.split(PARAM_SEPARATORS)
                .any(|pair| pair.split_once('=').is_some_and(|(name, _)| self.is_secret_param(name)))
        })
    }

    /// Names are matched as the server reads them, decoded: `tok%65n` is `token`.
    fn is_secret_param(&self, name: &str) -> bool {
        let decoded = match name.contains(['%', '+']) {
            true => {
                Cow::Owned(String::from_utf8_lossy(&form_decoded(name.as_bytes()).collect::<Vec<u8>>()).into_owned())
            }
            false => Cow::Borrowed(name),
        };
        self.query.is_match(&decoded)
    }
}

/// What separates query and form parameters. Some servers (Rack, older Python and Java ones) also
/// split on `;`, so a secret after a `;` is masked too, and a `_method` after one is seen.
const PARAM_SEPARATORS: [char; 2] = ['&', ';'];

/// The `name=value` pairs of a query string or a form body, still encoded; a pair without `=`
/// has an empty value.
pub fn form_pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|&b| b == b'&' || b == b';').filter(|pair| !pair.is_empty()).map(|pair| {
        match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        }
    })
}

/// A query or form component decoded as servers decode it: `%XX` escapes and `+` for a space. A
/// `%` not followed by two hex digits stays as it is.
pub fn form_decoded(raw: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16)).map(|d| d as u8);
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *raw.get(i)?;
        i += 1;
        Some(match b {
            b'+' => b' ',
            b'%' => match (hex(raw.get(i)), hex(raw.get(i + 1))) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            _ => b,
        })
    })
}

/// A path segment that means "this directory" or "the parent directory".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotSegment {
    Current,
    Parent,
}

/// `.` and `..` in every spelling URL parsers and servers resolve: any dot may be written `%2e`
/// or `%2E` (`%2e%2E`, `.%2e`, …).
pub fn dot_segment(segment: &[u8]) -> Option<DotSegment> {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() && dots < 3 {
        rest = if rest[0] == b'.' {
            &rest[1..]
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            &rest[3..]
        } else {
            return None;
        };
        dots += 1;
    }
    match (dots, rest.is_empty()) {
        (1, true) => Some(DotSegment::Current),
        (2, true) => Some(DotSegment::Parent),
        _ => None,
    }
}

/// Whether a path segment holds a `.` or `..` that the URL parser leaves alone but some servers
/// resolve: behind an encoded separator (`..%2f`, `..%5C`, which nginx decodes before resolving)
/// or before a `;` parameter (`..;`, which Tomcat drops).
pub fn hides_dot_segment(segment: &[u8]) -> bool {
    // Nothing can hide in the common segment, which has neither.
    if !segment.iter().any(|&b| b == b'%' || b == b';') {
        return false;
    }
    let hidden = |piece: &[u8]| {
        let name = piece.split(|&b| b == b';').next().unwrap_or(piece);
        name.len() != segment.len() && dot_segment(name).is_some()
    };
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= segment.len() {
        let escape = &segment[i..i + 3];
        if escape.eq_ignore_ascii_case(b"%2f") || escape.eq_ignore_ascii_case(b"%5c") {
            if hidden(&segment[start..i]) {
                return true;
            }
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    hidden(&segment[start..])
}

/// The part of the target's URL space a replay may reach: the target's scheme, host and port,
/// and paths under its path prefix (`/app` in `http://staging/app`).
#[derive(Debug, Clone)]
pub struct TargetScope {
    scheme: String,
    host: Option<String>,
    port: Option<u16>,
    /// Without a trailing `/`; empty for the whole host.
    prefix: String,
}

impl TargetScope {
    pub fn of(target: &Url) -> TargetScope {
        TargetScope {
            scheme: target.scheme().to_string(),
            host: target.host_str().map(str::to_string),
            port: target.port_or_known_default(),
            prefix: target.path().trim_end_matches('/').to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn contains(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == self.host.as_deref()
            && url.port_or_known_default() == self.port
            && self.contains_path(url.path())
    }

    /// Whether a request with this path reaches only what is under the prefix: it starts with
    /// the prefix at a segment boundary, and no segment after it climbs up, in any spelling.
    pub fn contains_path(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else { return false };
        if self.prefix.is_empty() {
            return true;
        }
        (rest.is_empty() || rest.starts_with('/'))
            && rest.split('/').all(|s| dot_segment(s.as_bytes()).is_none() && !hides_dot_segment(s.as_bytes()))
    }
}

/// `http://user:pass@host/p` → `http://[redacted]@host/p`; anything else unchanged.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_string() };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &text[..authority_start], &rest[at..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert_eq!(HostPattern::parse("DB.Prod.example").unwrap(), HostPattern::Name("db.prod.example".into()));
        assert_eq!(HostPattern::parse("*.prod.example").unwrap(), HostPattern::Suffix(".prod.example".into()));
        let block = HostPattern::parse("10.0.0.0/8").unwrap();
        assert!(block.matches_addr("10.200.3.4".parse().unwrap()));
        assert!(!block.matches_addr("11.0.0.1".parse().unwrap()));
        let one = HostPattern::parse("::1").unwrap();
        assert!(one.matches_addr("::1".parse().unwrap()));
        assert!(HostPattern::parse("0.0.0.0/0").unwrap().matches_addr("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "ho st", "x/8", "*.", "*.*.example", "*x.example", "a@b", "[host]", "h:80"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HostPattern::parse("db_1.internal").unwrap(), HostPattern::Name("db_1.internal".into()));
        assert!(HostPattern::Suffix(".prod.example".into()).matches_name("api.prod.example"));
        assert!(!HostPattern::Suffix(".prod.example".into()).matches_name("prod.example.evil"));
    }

    #[test]
    fn written_hosts_match_by_their_text() {
        let name = HostPattern::parse("Staging.internal").unwrap();
        assert!(name.matches_written("STAGING.internal"));
        assert!(!name.matches_written("staging.internal.evil.example"));
        let v6 = HostPattern::parse("[fd00::1]").unwrap();
        assert!(v6.matches_written("[fd00::1]"));
        assert!(!v6.matches_written("[fd00::2]"));
        let block = HostPattern::parse("127.0.0.0/8").unwrap();
        assert!(block.matches_written("127.3.4.5"));
        assert!(!block.matches_written("[::ffff:127.0.0.1]"), "an IPv4-mapped address is not IPv4");
        assert!(!block.matches_written("localhost"), "names are not resolved");
    }

    #[test]
    fn guard_checks_resolved_addresses_before_anything_is_sent() {
        let deny = HostGuard { deny: vec![HostPattern::parse("127.0.0.0/8").unwrap()], ..Default::default() };
        let err = deny.check_target("localhost", 80).unwrap_err();
        assert!(err.contains("--deny-host 127.0.0.0/8") && err.contains("127.0.0.1"), "{err}");
        let allow = HostGuard { allow: vec![HostPattern::parse("10.0.0.0/8").unwrap()], ..Default::default() };
        assert!(allow.check_target("127.0.0.1", 80).unwrap_err().starts_with("--allow-host"));
        let ok = HostGuard { allow: vec![HostPattern::parse("127.0.0.1").unwrap()], ..Default::default() };
        assert!(ok.check_target("127.0.0.1", 80).is_ok());
        // --resolve: the address connections go to is judged, not the name's own.
        let at = |ip: &str| ip.parse::<IpAddr>().unwrap();
        let err = deny.check_resolved_target("staging.example", at("127.0.0.9")).unwrap_err();
        assert!(err.contains("staging.example (127.0.0.9 by --resolve) is denied"), "{err}");
        assert!(allow.check_resolved_target("staging.example", at("10.0.0.1")).is_ok());
        assert!(allow.check_resolved_target("staging.example", at("127.0.0.1")).is_err());
        assert!(ok.check_resolved_target("staging.example", at("10.0.0.1")).is_err());
    }

    #[test]
    fn production_is_refused_unless_acknowledged() {
        let guard = HostGuard::default();
        assert!(guard.check_not_production("shop.example", ["other.example", "SHOP.example:443"]).is_err());
        assert!(guard.check_not_production("staging.example", ["shop.example"]).is_ok());
        let ok = HostGuard { production_ok: true, ..Default::default() };
        assert!(ok.check_not_production("shop.example", ["shop.example"]).is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let r = Redactor::new(&["X-Api-Key".into()], DEFAULT_MASKED_QUERY).unwrap();
        assert_eq!(r.header_value("Authorization", "Bearer abc"), REDACTED);
        assert_eq!(r.header_value("x-api-key", "k"), REDACTED);
        assert_eq!(r.header_value("accept", "text/html"), "text/html");
        assert_eq!(
            r.url("http://h/p?a=1&access_token=xyz&API_KEY=k&sig=s#frag"),
            "http://h/p?a=1&access_token=***&API_KEY=***&sig=***#frag"
        );
        assert!(!r.url_needs_masking("http://h/p?a=1&b=2"));
        assert!(r.url_needs_masking("http://h/p?password=2"));
        assert_eq!(r.url("http://h/p"), "http://h/p");
    }

    #[test]
    fn query_names_are_matched_decoded_and_after_either_separator() {
        let r = Redactor::default();
        for (url, masked) in [
            ("http://h/p?tok%65n=S&a=1", "http://h/p?tok%65n=***&a=1"),
            ("http://h/p?%54OKEN=S", "http://h/p?%54OKEN=***"),
            ("http://h/p?api+k%45y=S", "http://h/p?api+k%45y=***"),
            ("http://h/p?a=1;sig=S;b=2", "http://h/p?a=1;sig=***;b=2"),
            ("http://h/p?a=%zz&password=S#f", "http://h/p?a=%zz&password=***#f"),
        ] {
            assert!(r.url_needs_masking(url), "{url}");
            assert_eq!(r.url(url), masked);
        }
        assert!(!r.url_needs_masking("http://h/p?a=1;b=tok%65n"), "values are not names");
        assert!(!r.url_needs_masking("http://h/p?a=1#token=x"), "nor is the fragment");
    }

    #[test]
    fn form_components_decode_as_servers_decode_them() {
        let d = |s: &str| String::from_utf8(form_decoded(s.as_bytes()).collect()).unwrap();
        assert_eq!(d("%5Fmethod"), "_method");
        assert_eq!(d("a+b%2Bc"), "a b+c");
        assert_eq!(d("100%"), "100%");
        assert_eq!(d("%g1%4"), "%g1%4");
        let pairs: Vec<_> = form_pairs(b"a=1&&b;c=x=y").collect();
        assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (b"b", b""), (b"c", b"x=y")]);
    }

    #[test]
    fn dot_segments_in_every_spelling() {
        for current in [".", "%2e", "%2E"] {
            assert_eq!(dot_segment(current.as_bytes()), Some(DotSegment::Current), "{current}");
        }
        for parent in ["..", "%2e%2e", "%2E%2e", ".%2E", "%2e."] {
            assert_eq!(dot_segment(parent.as_bytes()), Some(DotSegment::Parent), "{parent}");
        }
        for other in ["", "...", "a.", ".a", "%2", "%2e%2e%2e", "%2f", ".. "] {
            assert_eq!(dot_segment(other.as_bytes()), None, "{other:?}");
        }
        for hidden in ["..%2f..%2fetc", "%2e%2e%5Cx", "..;", "..;jsessionid=1", "a%2F.%2Fb", "x%2f%2e%2e"] {
            assert!(hides_dot_segment(hidden.as_bytes()), "{hidden}");
        }
        for plain in ["..", "%2e%2e", "a%2fb", "a;b", "v1.2%2F3", "app.js"] {
            assert!(!hides_dot_segment(plain.as_bytes()), "{plain}");
        }
    }

    #[test]
    fn the_scope_is_the_targets_scheme_host_port_and_prefix() {
        let scope = TargetScope::of(&Url::parse("http://127.0.0.1:8080/app/").unwrap());
        assert_eq!(scope.prefix(), "/app");
        let within = |u: &str| scope.contains(&Url::parse(u).unwrap());
        assert!(within("http://127.0.0.1:8080/app"));
        assert!(within("http://127.0.0.1:8080/app/x/y?q=1"));
        for outside in [
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/apple",
            "http://127.0.0.1:8080/app/../etc",
            "http://127.0.0.1:8080/app/..%2Fetc",
            "http://127.0.0.1:8080/app/..;/etc",
            "https://127.0.0.1:8080/app/x",
            "http://127.0.0.2:8080/app/x",
            "http://127.0.0.1:8081/app/x",
            "http://localhost:8080/app/x",
        ] {
            assert!(!within(outside), "{outside}");
        }
        let whole = TargetScope::of(&Url::parse("http://h").unwrap());
        assert!(whole.contains(&Url::parse("http://h:80/any/..%2fthing").unwrap()), "no prefix to leave");
        assert!(!whole.contains(&Url::parse("http://h:81/").unwrap()));
    }
}
