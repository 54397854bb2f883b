//! The small text syntaxes the mock accepts, shared by the library (`"...".parse()`) and the CLI
//! flags. Every type here implements `FromStr` and a `Display` that prints the same syntax back.
//!
//! | what | syntax | examples |
//! |---|---|---|
//! | duration ([`sluice_parsers::duration`]) | number + unit (`ns` `us` `ms` `s` `m` `h` `d`), repeated; or `0` | `250us`, `5ms`, `1.5s`, `1m30s` |
//! | status mix ([`StatusDist`]) | `CODE[:WEIGHT],...` (weight defaults to 1) | `200`, `200:90,404:5,500:5` |
//! | latency ([`LatencyModel`]) | `FIXED`, `MIN..MAX`, `lognormal:MEDIAN,P99` | `5ms`, `1ms..20ms`, `lognormal:5ms,80ms` |
//! | behaviour ([`Behavior`]) | `CODE`, `status:CODE`, `reset`, `garbage`, `redirect`, `redirect-away`, `hang` | `503`, `reset` |
//! | rule ([`Rule`]) | `PATH=ACTION`; PATH `/exact` or `/prefix/*`; ACTION `BEHAVIOUR[,LATENCY]` or `LATENCY` | `/api/*=503,50ms`, `/login=reset`, `/slow=lognormal:5ms,80ms` |
//!
//! Status codes are limited to 200..=599: hyper turns a 1xx final answer into a 500, so allowing
//! them would make the mock lie about what it answered.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What kind of spec string failed to parse; picks the "expected …" part of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    Duration,
    Status,
    StatusList,
    Latency,
    Behavior,
    Rule,
    BodyRule,
}

impl SpecKind {
    /// The allowed forms, quoted in every error so a user can fix a flag without the docs.
    pub fn expected(self) -> &'static str {
        match self {
            SpecKind::Duration => {
                "a number with a unit (ns, us, ms, s, m, h, d) such as 250us, 5ms, 1.5s or 1m30s, or 0"
            }
            SpecKind::Status => "an HTTP status code from 200 to 599",
            SpecKind::StatusList => "CODE[:WEIGHT],... such as 200 or 200:90,404:5,500:5",
            SpecKind::Latency => "FIXED (5ms), MIN..MAX (1ms..20ms) or lognormal:MEDIAN,P99 (lognormal:5ms,80ms)",
            SpecKind::Behavior => "CODE (503), status:CODE, reset, garbage, redirect, redirect-away or hang",
            SpecKind::BodyRule => "PATH=BODY, PATH being /exact or /prefix/*, e.g. '/api/*={\"now\":{now}}'",
            SpecKind::Rule => {
                "PATH=ACTION, PATH being /exact or /prefix/*, ACTION being CODE[,LATENCY], \
                 reset[,LATENCY], garbage[,LATENCY], redirect[,LATENCY], redirect-away[,LATENCY], \
                 hang, or LATENCY alone (e.g. /api/*=503,50ms)"
            }
        }
    }

    fn noun(self) -> &'static str {
        match self {
            SpecKind::Duration => "duration",
            SpecKind::Status => "status",
            SpecKind::StatusList => "status list",
            SpecKind::Latency => "latency",
            SpecKind::Behavior => "behaviour",
            SpecKind::Rule => "rule",
            SpecKind::BodyRule => "body rule",
        }
    }
}

/// A spec string that does not parse: which kind, the offending input, why, and what would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {} {input:?}: {reason}; expected {}", .kind.noun(), .kind.expected())]
pub struct SpecError {
    pub kind: SpecKind,
    pub input: String,
    pub reason: String,
}

impl SpecError {
    fn new(kind: SpecKind, input: &str, reason: impl Into<String>) -> Self {
        SpecError { kind, input: input.to_owned(), reason: reason.into() }
    }
}

// ---------------------------------------------------------------------------------------------
// Durations

/// Parses `250us`, `5ms`, `1.5s`, `1m30s`, `0`: sluice's one duration grammar
/// ([`sluice_parsers::duration`]), read exactly, so `0.1s` is exactly 100 ms. A number other than
/// `0` needs its unit: in a rule, `/x=600` is a status code, never ten minutes.
pub fn parse_duration(input: &str) -> Result<Duration, SpecError> {
    sluice_parsers::duration::parse_duration_with_unit(input)
        .map_err(|e| SpecError::new(SpecKind::Duration, input, e.to_string()))
}

/// The inverse of [`parse_duration`]: the largest unit that shows the value exactly.
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        match n {
            0 => write!(f, "0"),
            _ if n.is_multiple_of(1_000_000_000) => write!(f, "{}s", n / 1_000_000_000),
            _ if n.is_multiple_of(1_000_000) => write!(f, "{}ms", n / 1_000_000),
            _ if n.is_multiple_of(1_000) => write!(f, "{}us", n / 1_000),
            _ => write!(f, "{n}ns"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status codes and the weighted status mix

/// Parses one status code; only 200..=599 (see the module doc for why not 1xx).
pub fn parse_status(input: &str) -> Result<u16, SpecError> {
    let s = input.trim();
    let code: u16 = if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().map_err(|_| SpecError::new(SpecKind::Status, input, "not a number"))?
    } else {
        return Err(SpecError::new(SpecKind::Status, input, "not a three-digit number"));
    };
    if !(200..=599).contains(&code) {
        return Err(SpecError::new(SpecKind::Status, input, "out of range"));
    }
    Ok(code)
}

/// A weighted list of status codes. A request's status is picked from it by a uniform draw (see
/// [`StatusDist::pick`]); weights are relative, so `200:9,500:1` and `200:90,500:10` are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDist {
    entries: Vec<(u16, u32)>,
    total: u64,
}

impl StatusDist {
    /// Every request gets `code`.
    pub fn single(code: u16) -> Self {
        StatusDist { entries: vec![(code, 1)], total: 1 }
    }

    /// Checks codes (200..=599, no duplicates) and that the weights add up to more than zero.
    pub fn new(entries: Vec<(u16, u32)>) -> Result<Self, SpecError> {
        let display = || entries.iter().map(|(c, w)| format!("{c}:{w}")).collect::<Vec<_>>().join(",");
        for (i, (code, _)) in entries.iter().enumerate() {
            parse_status(&code.to_string()).map_err(|e| SpecError { kind: SpecKind::StatusList, ..e })?;
            if entries[..i].iter().any(|(c, _)| c == code) {
                return Err(SpecError::new(SpecKind::StatusList, &display(), format!("status {code} listed twice")));
            }
        }
        let total: u64 = entries.iter().map(|&(_, w)| u64::from(w)).sum();
        if total == 0 {
            return Err(SpecError::new(SpecKind::StatusList, &display(), "weights add up to 0"));
        }
        Ok(StatusDist { entries, total })
    }

    /// The `(code, weight)` pairs in the order given.
    pub fn entries(&self) -> &[(u16, u32)] {
        &self.entries
    }

    /// The expected share of `code`, from 0.0 to 1.0.
    pub fn share(&self, code: u16) -> f64 {
        let w: u64 = self.entries.iter().filter(|(c, _)| *c == code).map(|&(_, w)| u64::from(w)).sum();
        w as f64 / self.total as f64
    }

    /// Maps a uniformly random `u64` to a code, in proportion to the weights.
    pub fn pick(&self, draw: u64) -> u16 {
        // Multiply-shift maps the draw onto 0..total without the bias of `%`.
        let mut target = ((u128::from(draw) * u128::from(self.total)) >> 64) as u64;
        for &(code, weight) in &self.entries {
            if target < u64::from(weight) {
                return code;
            }
            target -= u64::from(weight);
        }
        // Unreachable while total is the sum of the weights; the last code is a safe answer.
        self.entries.last().map_or(200, |&(c, _)| c)
    }
}

impl Default for StatusDist {
    fn default() -> Self {
        StatusDist::single(200)
    }
}

impl FromStr for StatusDist {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError::new(SpecKind::StatusList, input, reason);
        let mut entries = Vec::new();
        for item in input.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(err("empty item".into()));
            }
            let (code, weight) = item.split_once(':').unwrap_or((item, "1"));
            let code = parse_status(code).map_err(|e| err(format!("bad code {:?} ({})", code, e.reason)))?;
            let weight: u32 = weight.trim().parse().map_err(|_| err(format!("bad weight {weight:?}")))?;
            entries.push((code, weight));
        }
        StatusDist::new(entries).map_err(|e| err(e.reason))
    }
}

impl fmt::Display for StatusDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(code, _)] = self.entries[..] {
            return write!(f, "{code}");
        }
        for (i, (code, weight)) in self.entries.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{code}:{weight}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Latency models

/// How long the mock waits before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyModel {
    /// Always the same delay (`5ms`; `0` for none).
    Fixed(Duration),
    /// Uniform between `min` and `max` inclusive (`1ms..20ms`).
    Uniform { min: Duration, max: Duration },
    /// Log-normal with the given median and 99th percentile (`lognormal:5ms,80ms`): most answers
    /// are quick and a few are very slow, like a real backend. Draws are capped at 10 × p99 so a
    /// test can bound its wait; with p99 = 16 × median that cap cuts about 1 draw in 100,000.
    LongTail { median: Duration, p99: Duration },
}

impl LatencyModel {
    /// No delay at all.
    pub const NONE: LatencyModel = LatencyModel::Fixed(Duration::ZERO);

    /// Turns two independent uniform draws in [0, 1) into a delay.
    pub(crate) fn sample(&self, u1: f64, u2: f64) -> Duration {
        match *self {
            LatencyModel::Fixed(d) => d,
            LatencyModel::Uniform { min, max } => {
                let span = (max - min).as_nanos() as f64;
                // u1 < 1 so this stays below max + 1ns; min() guards the float rounding.
                min + Duration::from_nanos((u1 * (span + 1.0)) as u64).min(max - min)
            }
            LatencyModel::LongTail { median, p99 } => {
                // z for the 99th percentile of the standard normal.
                const Z99: f64 = 2.326_347_874_040_841;
                let mu = median.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64().ln() - mu) / Z99;
                // Box–Muller; 1 - u1 is in (0, 1] so the log is finite.
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let secs = (mu + sigma * z).exp().min(p99.as_secs_f64() * 10.0);
                Duration::from_secs_f64(secs)
            }
        }
    }

    /// The largest delay this model can produce.
    pub fn max(&self) -> Duration {
        match *self {
            LatencyModel::Fixed(d) => d,
            LatencyModel::Uniform { max, .. } => max,
            LatencyModel::LongTail { p99, .. } => p99 * 10,
        }
    }
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel::NONE
    }
}

impl FromStr for LatencyModel {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError::new(SpecKind::Latency, input, reason);
        let dur = |s: &str| parse_duration(s).map_err(|e| err(format!("bad duration {:?} ({})", s.trim(), e.reason)));
        let s = input.trim();
        if let Some(rest) = s.strip_prefix("lognormal:") {
            let (median, p99) = rest.split_once(',').ok_or_else(|| err("lognormal needs MEDIAN,P99".into()))?;
            let (median, p99) = (dur(median)?, dur(p99)?);
            if median.is_zero() {
                return Err(err("median must be above 0".into()));
            }
            if p99 < median {
                return Err(err("p99 is below the median".into()));
            }
            Ok(LatencyModel::LongTail { median, p99 })
        } else if let Some((min, max)) = s.split_once("..") {
            let (min, max) = (dur(min)?, dur(max)?);
            if min > max {
                return Err(err("min is above max".into()));
            }
            Ok(LatencyModel::Uniform { min, max })
        } else {
            Ok(LatencyModel::Fixed(dur(s)?))
        }
    }
}

impl fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LatencyModel::Fixed(d) => write!(f, "{}", DisplayDuration(d)),
            LatencyModel::Uniform { min, max } => write!(f, "{}..{}", DisplayDuration(min), DisplayDuration(max)),
            LatencyModel::LongTail { median, p99 } => {
                write!(f, "lognormal:{},{}", DisplayDuration(median), DisplayDuration(p99))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Behaviours and per-path rules

/// What the mock does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behavior {
    /// Answer with this status and the configured body.
    Status(u16),
    /// Close the TCP connection with a reset (SO_LINGER 0) without answering.
    Reset,
    /// Write bytes that are not HTTP, then close.
    Garbage,
    /// Never answer; the request is released (connection closed, no answer) at shutdown, or ends
    /// when the client closes the connection.
    Hang,
    /// Answer 302. `redirect` points to `/redirected<path>` on this server; `redirect-away` points
    /// to the same path on another host (`127.0.0.2`, port 9: loopback, nothing listens), which
    /// a well-behaved replayer must never follow.
    Redirect { away: bool },
}

/// Where `redirect-away` points: another loopback host, so even a client that wrongly follows it
/// sends nothing off the machine.
pub const AWAY_ORIGIN: &str = "http://127.0.0.2:9";
/// The path prefix `redirect` sends clients to.
pub const REDIRECTED_PREFIX: &str = "/redirected";

impl Behavior {
    /// The status answered, if this behaviour answers at all.
    pub fn status(self) -> Option<u16> {
        match self {
            Behavior::Status(code) => Some(code),
            Behavior::Redirect { .. } => Some(302),
            _ => None,
        }
    }

    /// A stable one-word name: `respond`, `reset`, `garbage` or `hang` (the JSONL `action`).
    pub fn action(self) -> &'static str {
        match self {
            Behavior::Status(_) => "respond",
            Behavior::Reset => "reset",
            Behavior::Garbage => "garbage",
            Behavior::Hang => "hang",
            Behavior::Redirect { away: false } => "redirect",
            Behavior::Redirect { away: true } => "redirect-away",
        }
    }
}

impl FromStr for Behavior {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let s = input.trim();
        match s {
            "reset" => Ok(Behavior::Reset),
            "garbage" => Ok(Behavior::Garbage),
            "hang" => Ok(Behavior::Hang),
            "redirect" => Ok(Behavior::Redirect { away: false }),
            "redirect-away" => Ok(Behavior::Redirect { away: true }),
            _ => {
                let code = s.strip_prefix("status:").unwrap_or(s);
                parse_status(code)
                    .map(Behavior::Status)
                    .map_err(|e| SpecError::new(SpecKind::Behavior, input, format!("not a behaviour ({})", e.reason)))
            }
        }
    }
}

impl fmt::Display for Behavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behavior::Status(code) => write!(f, "{code}"),
            other => f.write_str(other.action()),
        }
    }
}

/// Which request paths a [`Rule`] applies to. Matching is on the path only; the query is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `/login` matches `/login` and `/login?x=1`, not `/login/2`.
    Exact(String),
    /// `/api/*` matches every path that starts with `/api/`.
    Prefix(String),
}

impl PathMatch {
    /// `/exact` or `/prefix/*`.
    fn parse(path: &str) -> Result<PathMatch, &'static str> {
        if !path.starts_with('/') {
            return Err("the path must start with '/'");
        }
        match path.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(PathMatch::Prefix(prefix.to_owned())),
            None if !path.contains('*') => Ok(PathMatch::Exact(path.to_owned())),
            _ => Err("'*' is only allowed at the end of the path"),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Exact(p) => f.write_str(p),
            PathMatch::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Overrides for the requests whose path matches; the first matching rule wins. A rule may set the
/// behaviour, the latency, or both; what it leaves out comes from the server-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathMatch,
    pub behavior: Option<Behavior>,
    pub latency: Option<LatencyModel>,
}

impl FromStr for Rule {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError::new(SpecKind::Rule, input, reason);
        let (path, action) = input.split_once('=').ok_or_else(|| err("missing '='".into()))?;
        let (path, action) = (path.trim(), action.trim());
        let path = PathMatch::parse(path).map_err(|m| err(m.into()))?;
        if action.is_empty() {
            return Err(err("missing action after '='".into()));
        }
        // A behaviour comes first when there is one; everything after its comma is a latency,
        // which may itself contain a comma (lognormal:5ms,80ms).
        let (head, rest) = match action.split_once(',') {
            Some((head, rest)) => (head, Some(rest)),
            None => (action, None),
        };
        let (behavior, latency) = match head.parse::<Behavior>() {
            Ok(behavior) => {
                let latency = rest.map(str::parse::<LatencyModel>).transpose().map_err(|e| err(e.reason))?;
                if behavior == Behavior::Hang && latency.is_some() {
                    return Err(err("hang never answers, so it takes no latency".into()));
                }
                (Some(behavior), latency)
            }
            Err(_) => match action.parse::<LatencyModel>() {
                Ok(latency) => (None, Some(latency)),
                Err(_) => return Err(err(format!("{action:?} is neither a behaviour nor a latency"))),
            },
        };
        Ok(Rule { path, behavior, latency })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=", self.path)?;
        match (self.behavior, self.latency) {
            (Some(b), Some(l)) => write!(f, "{b},{l}"),
            (Some(b), None) => write!(f, "{b}"),
            (None, Some(l)) => write!(f, "{l}"),
            // Only reachable when built by hand; "0" keeps the output parseable.
            (None, None) => write!(f, "0"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Response bodies

/// A response body to answer with: text in which `{now}` becomes the answer's time (nanoseconds
/// since the Unix epoch, so two answers never show the same) and `{seq}` the request's arrival
/// number. `--body` sets it for every answer, `--body-rule` for some paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate(pub String);

impl BodyTemplate {
    pub fn render(&self, seq: u64, now: std::time::SystemTime) -> String {
        let nanos = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        self.0.replace("{now}", &nanos.to_string()).replace("{seq}", &seq.to_string())
    }

    /// JSON when it looks like JSON, so clients that care read it as such.
    pub fn content_type(&self) -> &'static str {
        if self.0.trim_start().starts_with(['{', '[']) { "application/json" } else { "text/plain" }
    }
}

impl FromStr for BodyTemplate {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        Ok(BodyTemplate(input.to_owned()))
    }
}

impl fmt::Display for BodyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `PATH=BODY`: answers to requests whose path matches carry BODY (a [`BodyTemplate`]); the
/// first matching rule wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRule {
    pub path: PathMatch,
    pub body: BodyTemplate,
}

impl FromStr for BodyRule {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let err = |reason: &str| SpecError::new(SpecKind::BodyRule, input, reason);
        let (path, body) = input.split_once('=').ok_or_else(|| err("missing '='"))?;
        Ok(BodyRule { path: PathMatch::parse(path.trim()).map_err(err)?, body: BodyTemplate(body.to_owned()) })
    }
}

impl fmt::Display for BodyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.path, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_rule_names_a_path_and_a_template_that_fills_in_the_time_and_seq() {
        let rule: BodyRule = r#"/api/*={"v":2,"now":{now},"seq":{seq}}"#.parse().unwrap();
        assert_eq!(rule.path, PathMatch::Prefix("/api/".into()));
        assert_eq!(rule.to_string(), r#"/api/*={"v":2,"now":{now},"seq":{seq}}"#);
        let at = std::time::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(rule.body.render(7, at), r#"{"v":2,"now":1700000000123456789,"seq":7}"#);
        assert_eq!(rule.body.content_type(), "application/json");
        assert_eq!(BodyTemplate("ok".into()).content_type(), "text/plain");
        assert!("api=x".parse::<BodyRule>().is_err(), "a path starts with /");
        assert!("/api".parse::<BodyRule>().is_err(), "no '='");
    }
}
