//! Staging safety: which targets may be hit, and which values must never be shown.
//!
//! - [`HostGuard`] checks the target's name and resolved addresses against `--deny-host` /
//!   `--allow-host` before any request leaves, and refuses a target that the log itself says is
//!   the production host (unless `--i-know-this-is-production`).
//! - [`Redactor`] keeps secrets out of every output: header values (Authorization, Cookie, …) and
//!   query parameters named like credentials in the CSV's url column.

use std::net::{IpAddr, ToSocketAddrs};

use regex::Regex;

/// Header values that never appear in any output, whatever the flags say.
pub const ALWAYS_REDACTED: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];
/// Query parameter names masked in the CSV by default.
pub const DEFAULT_MASKED_QUERY: &str = "token|key|secret|password|sig";
pub const REDACTED: &str = "[redacted]";
const MASK: &str = "***";

/// A `--deny-host` / `--allow-host` pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum HostPattern {
    /// An exact host name, case-insensitive.
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
        if let Some(suffix) = t.strip_prefix("*.") {
            return Ok(HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase())));
        }
        if t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
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
        let shown = addrs.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
        if let Some(p) = self.deny.iter().find(|p| p.matches(bare, &addrs)) {
            return Err(format!("--deny-host {}: the target {host} ({shown}) is denied", describe(p)));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(bare, &addrs)) {
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
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if self.query.is_match(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                }
                _ => out.push_str(pair),
            }
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
            q.split('&').any(|pair| pair.split_once('=').is_some_and(|(name, _)| self.query.is_match(name)))
        })
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
        for bad in ["", "10.0.0.0/33", "ho st", "x/8"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(HostPattern::Suffix(".prod.example".into()).matches_name("api.prod.example"));
        assert!(!HostPattern::Suffix(".prod.example".into()).matches_name("prod.example.evil"));
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
}
