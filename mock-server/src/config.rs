//! What the mock does, as plain data, and the pure function that decides each answer.
//!
//! Every request's answer is a function of `(seed, path, key)` only — see [`MockConfig::decide`] —
//! so a test can compute what request n got without talking to the server, and the answers do not
//! depend on how concurrent requests happened to interleave.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::spec::{Behavior, BodyRule, BodyTemplate, LatencyModel, Rule, StatusDist};

/// The request header whose decimal value, when present, is the request's key for the seeded
/// draws (instead of its arrival number). Lets answers stay predictable under concurrency.
pub const SEQ_HEADER: &str = "x-sluice-seq";

/// The response body pattern; `body_bytes` repeats or cuts it. Fixed so byte counts are exact.
pub(crate) const BODY_PATTERN: &[u8] = b"ok\n";

/// Default response body size: one `ok\n`.
pub const DEFAULT_BODY_BYTES: usize = 3;

/// Everything a mock server needs; `MockConfig::default()` answers 200 at once to everything on
/// `127.0.0.1:<free port>` and records to memory.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen. Port 0 picks a free port; read it back with `MockServer::addr`.
    pub listen: SocketAddr,
    /// Non-loopback addresses are refused unless this is set: a mock is a test tool and should
    /// not become reachable from the network by accident.
    pub allow_non_loopback: bool,
    /// Seed of every random draw (statuses, latencies).
    pub seed: u64,
    /// The server-wide status mix.
    pub statuses: StatusDist,
    /// The server-wide latency.
    pub latency: LatencyModel,
    /// Per-path overrides; the first match wins.
    pub rules: Vec<Rule>,
    /// Size of every response body, made of the repeated pattern `ok\n`.
    pub body_bytes: usize,
    /// The body of every answer instead of the pattern (`--body`).
    pub body: Option<BodyTemplate>,
    /// Bodies for some paths (`--body-rule`), before `body`; the first match wins.
    pub body_rules: Vec<BodyRule>,
    /// Keep every request in memory for `MockServer::requests` (turn off for long benches).
    pub record_memory: bool,
    /// Also append every request as a JSON line to this file (created or truncated at spawn).
    pub record_file: Option<PathBuf>,
    /// Request bodies are recorded up to this many bytes (the full length is always recorded).
    pub max_recorded_body: usize,
    /// On shutdown, how long in-flight requests may take to finish before they are cut off.
    pub shutdown_grace: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            allow_non_loopback: false,
            seed: 0,
            statuses: StatusDist::default(),
            latency: LatencyModel::NONE,
            rules: Vec::new(),
            body_bytes: DEFAULT_BODY_BYTES,
            body: None,
            body_rules: Vec::new(),
            record_memory: true,
            record_file: None,
            max_recorded_body: 64 * 1024,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// The answer to one request: what to do and how long to wait first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub behavior: Behavior,
    /// Always zero for [`Behavior::Hang`].
    pub latency: Duration,
}

impl Decision {
    /// The status answered, or `None` for reset, garbage and hang.
    pub fn status(&self) -> Option<u16> {
        self.behavior.status()
    }
}

// Independent streams of draws per request, so adding a latency draw never shifts the statuses.
const STREAM_STATUS: u64 = 1;
const STREAM_LATENCY_A: u64 = 2;
const STREAM_LATENCY_B: u64 = 3;

impl MockConfig {
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_statuses(mut self, statuses: StatusDist) -> Self {
        self.statuses = statuses;
        self
    }

    pub fn with_latency(mut self, latency: LatencyModel) -> Self {
        self.latency = latency;
        self
    }

    /// Appends a rule (rules are tried in the order added).
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    pub fn with_body_bytes(mut self, body_bytes: usize) -> Self {
        self.body_bytes = body_bytes;
        self
    }

    pub fn with_record_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.record_file = Some(path.into());
        self
    }

    /// Counts only: no per-request memory (what benches want).
    pub fn without_memory_record(mut self) -> Self {
        self.record_memory = false;
        self
    }

    /// Decides the answer for a request to `path` whose key is `key` — the value of its
    /// `x-sluice-seq` header if it has one, else its 0-based arrival number.
    ///
    /// `path` may carry a query (`/a?b=1`), which is ignored. Precedence: the first matching
    /// rule's behaviour, then the built-in `/status/NNN` (or `/status/NNN/...`), then the status
    /// mix; the latency is the first matching rule's, else the server-wide one.
    ///
    /// Each draw is a hash of `(seed, key, stream)` (SplitMix64), not a stateful generator: the
    /// answer for key n is the same whichever requests came before it, and it will not change
    /// when a `rand` upgrade changes its generators.
    pub fn decide(&self, path: &str, key: u64) -> Decision {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let rule = self.rules.iter().find(|r| r.path.matches(path));
        let behavior = rule
            .and_then(|r| r.behavior)
            .or_else(|| status_path(path).map(Behavior::Status))
            .unwrap_or_else(|| Behavior::Status(self.statuses.pick(draw(self.seed, key, STREAM_STATUS))));
        let latency = match behavior {
            Behavior::Hang => Duration::ZERO,
            _ => {
                let model = rule.and_then(|r| r.latency).unwrap_or(self.latency);
                model.sample(unit(draw(self.seed, key, STREAM_LATENCY_A)), unit(draw(self.seed, key, STREAM_LATENCY_B)))
            }
        };
        Decision { behavior, latency }
    }

    /// The template of the body answered to `path`, if one is set (else the pattern is).
    pub fn body_for(&self, path: &str) -> Option<&BodyTemplate> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.body_rules.iter().find(|r| r.path.matches(path)).map(|r| &r.body).or(self.body.as_ref())
    }

    /// Shorthand for `decide(path, key).status()`.
    pub fn status_for(&self, path: &str, key: u64) -> Option<u16> {
        self.decide(path, key).status()
    }

    /// Whether `listen` may be used: loopback, or explicitly allowed.
    pub(crate) fn listen_allowed(&self) -> bool {
        self.allow_non_loopback || self.listen.ip().is_loopback()
    }

    /// The response body, built once per server.
    pub(crate) fn body(&self) -> Vec<u8> {
        BODY_PATTERN.iter().copied().cycle().take(self.body_bytes).collect()
    }
}

/// `/status/503` and `/status/503/anything` → 503 (200..=599 only).
fn status_path(path: &str) -> Option<u16> {
    let rest = path.strip_prefix("/status/")?;
    let code = rest.get(..3)?;
    if !(rest.len() == 3 || rest.as_bytes()[3] == b'/') || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (200..=599).contains(c))
}

/// SplitMix64's finaliser: a fast bijective mix with good avalanche, enough for test traffic.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn draw(seed: u64, key: u64, stream: u64) -> u64 {
    mix(mix(mix(seed) ^ key) ^ stream)
}

/// The top 53 bits as a float in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_paths() {
        assert_eq!(status_path("/status/503"), Some(503));
        assert_eq!(status_path("/status/204/x"), Some(204));
        assert_eq!(status_path("/status/103"), None);
        assert_eq!(status_path("/status/5033"), None);
        assert_eq!(status_path("/status/50"), None);
        assert_eq!(status_path("/status/abc"), None);
        assert_eq!(status_path("/status/"), None);
        assert_eq!(status_path("/status/é00"), None);
    }

    #[test]
    fn a_body_rule_comes_before_the_servers_body() {
        let config = MockConfig {
            body: Some(BodyTemplate("all".into())),
            body_rules: vec!["/x/*=x".parse().unwrap()],
            ..MockConfig::default()
        };
        assert_eq!(config.body_for("/x/1?q=2").map(|b| b.0.as_str()), Some("x"));
        assert_eq!(config.body_for("/y").map(|b| b.0.as_str()), Some("all"));
        assert_eq!(MockConfig::default().body_for("/y"), None);
    }

    #[test]
    fn unit_is_in_range() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
