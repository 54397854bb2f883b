//! What a client may ask the daemon to run.
//!
//! A [`RunRequest`] is a JSON object: the replay options themselves, read into the same
//! [`ReplayOptions`] the command line and `--config` fill (keys are the long flags in
//! snake_case), beside five keys that are the daemon's own: `logs` (names inside `--logs-dir`),
//! `headers` (an object, its values secrets), `public_headers`, `start_at` and `ca_pem` (CA
//! certificates as PEM text). An option added to [`ReplayOptions`] is accepted here without a
//! change. Refused: what names a file on the daemon's machine or is a terminal's (`files`, `out`,
//! `summary_json`, `config`, `progress`, `dry_run`, `ca_cert`, `client_cert`, `client_key`,
//! `@file` header values), and the options that are the command line's own (`header` as
//! "Name: value" strings, `use_env_proxy`, `report`, `assert`). The options become a
//! [`ReplayConfig`] through the CLI's own checks, once, so a daemon run is validated exactly like
//! `sluice replay`, and it is held to the operator's [`Policy`]: the allow-list for its target
//! (and for the address `resolve` connects to), the caps for its rate, concurrency and duration,
//! and its TLS decisions (its CAs and client certificate, whether `insecure` may be asked).
//!
//! Header values given through the API are secrets unless the request names them in
//! `public_headers`: [`RunRequest::split_secrets`] takes them out of what is shown and stored in
//! `run.json`, and [`RunRequest::with_secrets`] puts them back when the run starts.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::policy::{Caps, Policy, Rejection, check_log_name, printable};
use crate::config::{ProgressMode, ReplayOptions};
use crate::config::{Rate, ReplayConfig, parse_rate};
use crate::duration::parse_duration;
use crate::pace::schedule::{RateCurve, parse_stages};
use crate::pace::shard::Shard;
use crate::plan::safety::{ALWAYS_REDACTED, REDACTED};

/// Keys that would let a client read or write files of its choosing on the daemon's machine,
/// refused with a message that says where the daemon puts things instead.
const PATH_KEYS: [(&str, &str); 10] = [
    ("out", "the daemon writes each run's CSV under its state directory: GET /v1/runs/{id}/results.csv"),
    ("xlsx", "GET /v1/runs/{id}/results.xlsx builds a finished run's workbook"),
    (
        "ca_cert",
        "send the CA's PEM text in `ca_pem`, or ask the daemon's operator to trust it (sluice daemon --ca-cert)",
    ),
    (
        "client_cert",
        "the client certificate runs present is the daemon operator's (sluice daemon --client-cert, --client-key)",
    ),
    (
        "client_key",
        "a private key never travels through the API: the daemon's operator sets the client certificate runs \
         present (sluice daemon --client-cert, --client-key)",
    ),
    ("summary_json", "the daemon keeps each run's summary: GET /v1/runs/{id}/summary.json"),
    ("config", "send the options themselves in this JSON object"),
    ("files", "name uploaded logs in `logs` (PUT /v1/logs/{name} uploads one)"),
    ("progress", "daemon runs report progress through GET /v1/runs/{id} and /events"),
    ("dry_run", "use `sluice replay --dry-run` on your own machine"),
];

/// Replay options a client cannot set through the API; like any unknown key, they are refused.
/// `header` takes "Name: value" strings, and the API takes `headers` as an object instead, so
/// that its values can be kept secret; a proxy from the environment is the operator's choice,
/// not a caller's; `report` and `assert` print to a terminal and set an exit code, where the
/// daemon keeps the summary (GET /v1/runs/{id}/summary.json) and `sluice report` reads the CSV;
/// and the daemon sends to no server a caller names besides the target (`prometheus`, `push`).
const COMMAND_LINE_ONLY: [&str; 8] =
    ["header", "use_env_proxy", "report", "assert", "assertions", "prometheus", "prometheus_every", "push"];

/// The daemon's own keys, besides the replay options: (name, aliases).
const LOGS: &str = "logs";
const HEADERS: &str = "headers";
const PUBLIC_HEADERS: [&str; 2] = ["public_headers", "public_header"];
const START_AT: &str = "start_at";
const CA_PEM: &str = "ca_pem";

/// If `object` has a key the daemon refuses on principle, says which and why.
fn refused_key(object: &Map<String, Value>) -> Option<String> {
    PATH_KEYS.iter().find(|(key, _)| object.contains_key(*key) || object.contains_key(&key.replace('_', "-"))).map(
        |(key, instead)| {
            format!(
                "`{key}` is not accepted by the daemon, which never reads or writes paths a client names; {instead}"
            )
        },
    )
}

/// Every key a run request may hold, in the order an "unknown field" message lists them: the
/// daemon's own, and the replay options' names and aliases, read from [`ReplayOptions`] itself.
fn accepted_keys() -> Vec<&'static str> {
    let own = [LOGS, HEADERS, START_AT, CA_PEM].into_iter().chain(PUBLIC_HEADERS);
    let not_options: Vec<&str> =
        own.clone().chain(PATH_KEYS.iter().map(|(key, _)| *key)).chain(COMMAND_LINE_ONLY).collect();
    let options = serde_keys::<ReplayOptions>().iter().copied().filter(|key| !not_options.contains(key));
    std::iter::once(LOGS).chain(options).chain([HEADERS]).chain(PUBLIC_HEADERS).chain([START_AT, CA_PEM]).collect()
}

/// The keys (names and aliases) a derived `Deserialize` of a struct knows: it hands them to the
/// deserializer, and this one keeps them and reads nothing.
fn serde_keys<T: DeserializeOwned>() -> &'static [&'static str] {
    struct KeysOnly<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for KeysOnly<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only a struct's keys are read"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(Self::Error::custom("only a struct's keys are read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let keys = Cell::new(&[][..]);
    let _ = T::deserialize(KeysOnly(&keys));
    keys.get()
}

/// A run as submitted to `POST /v1/runs`, and as shown and stored in `run.json` (serialized in
/// the same keys). Unknown keys are refused, naming them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunRequest {
    /// Names of logs in the daemon's `--logs-dir`, replayed in order.
    pub logs: Vec<String>,
    /// Every other replay option, as `sluice replay` takes it; never one of the refused ones.
    #[serde(flatten)]
    pub options: ReplayOptions,
    /// Headers added to every request, name → value. Values are secrets (shown as `[redacted]`,
    /// kept out of `run.json`) unless their name is in `public_headers`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Names in `headers` whose values may be shown and stored in clear (e.g. `["X-Test"]`).
    /// Never one of the always-redacted headers or a `redact_headers` name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public_headers: Vec<String>,
    /// Start no earlier than this (RFC 3339); the run is `scheduled` until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// CA certificates (PEM text) this run trusts besides the system's and the operator's. A
    /// certificate is public: it is shown and stored like any option.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl<'de> Deserialize<'de> for RunRequest {
    // `#[serde(flatten)]` cannot be combined with refusing unknown keys, so the object is read
    // whole, the daemon's keys taken out, and the rest read as `ReplayOptions`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RunRequest::from_object(Map::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl RunRequest {
    /// Reads a run request from its JSON object; the message names the key at fault.
    pub fn from_object(mut object: Map<String, Value>) -> Result<RunRequest, String> {
        if let Some(refused) = refused_key(&object) {
            return Err(refused);
        }
        let accepted = accepted_keys();
        if let Some(key) = object.keys().find(|key| !accepted.contains(&key.as_str())) {
            let expected: Vec<String> = accepted.iter().map(|k| format!("`{k}`")).collect();
            return Err(format!("unknown field `{key}`, expected one of {}", expected.join(", ")));
        }
        let logs = take(&mut object, &[LOGS])?;
        let headers = take(&mut object, &[HEADERS])?;
        let public_headers = take(&mut object, &PUBLIC_HEADERS)?;
        let start_at = take(&mut object, &[START_AT])?;
        let ca_pem = take(&mut object, &[CA_PEM])?;
        let options = serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
            let path = e.path().to_string();
            match path.as_str() {
                "." | "" => e.into_inner().to_string(),
                _ => format!("{path}: {}", e.into_inner()),
            }
        })?;
        Ok(RunRequest { logs, options, headers, public_headers, start_at, ca_pem })
    }
}

/// Takes out the value of a key (given by its name and aliases), or its default when absent.
fn take<T: DeserializeOwned + Default>(object: &mut Map<String, Value>, names: &[&str]) -> Result<T, String> {
    let mut found = names.iter().filter_map(|name| object.remove(*name));
    let Some(value) = found.next() else { return Ok(T::default()) };
    if found.next().is_some() {
        return Err(format!("duplicate field `{}`", names[0]));
    }
    serde_json::from_value(value).map_err(|e| format!("{}: {e}", names[0]))
}

/// The values of a run's secret headers, by name: never shown, never in `run.json`.
pub type SecretHeaders = BTreeMap<String, String>;

/// Requests a run's reader may hold ahead of the pacer. Each queued request is a few hundred
/// bytes and the reader fills the queue whatever the rate, so this bounds a run's memory (about
/// 30 MB here) however the caller sets `queue_capacity`.
pub const MAX_QUEUE_CAPACITY: usize = 65_536;

impl RunRequest {
    /// The validated configuration a run starts with: the request held to the operator's
    /// policy, then through the CLI's own checks, once. Submitting a run calls this too, to
    /// refuse at once what could not start.
    pub fn to_config(&self, logs_dir: &Path, out: PathBuf, policy: &Policy) -> Result<ReplayConfig, Rejection> {
        self.prepare(logs_dir, out, policy).map(|(_, config)| config)
    }

    /// [`Self::to_config`], with the options it was made from (what a run's manifest records).
    pub fn prepare(
        &self,
        logs_dir: &Path,
        out: PathBuf,
        policy: &Policy,
    ) -> Result<(ReplayOptions, ReplayConfig), Rejection> {
        let options = self.to_options(logs_dir, out, policy)?;
        // The CLI's own validation (and its bounds), with its messages renamed to this API's keys.
        let mut config = ReplayConfig::try_from(&options)
            .map_err(|e| Rejection::Invalid(format!("{}: {}", json_key(e.flag), e.message)))?;
        // The operator's rate cap holds at every moment, whatever the shape: it is the only bound
        // on `speed`, whose rate is the log's own. A shard sends one K-th of the plan, whose
        // pace the ceiling bounds.
        let shards = config.shard.map_or(1.0, |s| f64::from(s.count));
        config.rate_ceiling = Some(policy.caps.max_rate * shards);
        policy.tls.give_to(&mut config, self.ca_pem.as_deref())?;
        // A start still ahead is the plan's exact T0, as `--start-at` is for `sluice replay`: the
        // registry starts the run a little early and the pacer waits for it. A run that could not
        // start in time (every slot was busy) starts when it can, as before — but not a shard,
        // whose requests interleave with the other shards': it keeps the common start, and
        // `late_start` says what it does when it is late (the options carry it, see to_options).
        if config.shard.is_none() {
            config.start_at = self.start_at.filter(|at| *at > Utc::now());
        }
        Ok((options, config))
    }

    /// Checks everything the CLI does not, and gives the CLI's options with the daemon's
    /// choices: logs inside `logs_dir`, the CSV at `out`, no progress display, and no run longer
    /// than `--max-duration`.
    fn to_options(&self, logs_dir: &Path, out: PathBuf, policy: &Policy) -> Result<ReplayOptions, Rejection> {
        let invalid = |m: String| Rejection::Invalid(m);
        if self.logs.is_empty() {
            return Err(invalid("`logs` is required: the names of uploaded logs, e.g. [\"access.log.gz\"]".into()));
        }
        if self.logs.len() > 1000 {
            return Err(invalid("`logs`: at most 1000 logs in one run".into()));
        }
        for (i, name) in self.logs.iter().enumerate() {
            check_log_name(name).map_err(|m| invalid(format!("logs[{i}]: {m}")))?;
        }
        let Some(target) = &self.options.target else {
            return Err(invalid("`target` is required, e.g. \"http://127.0.0.1:8080\"".into()));
        };
        if self.options.rate.is_none() && self.options.stages.is_none() && self.options.speed.is_none() {
            return Err(invalid(
                "`rate` is required: requests per second (e.g. 200), unless `stages` or `speed` shapes the traffic"
                    .into(),
            ));
        }
        policy.allow.check(target)?;
        if let Some(resolve) = &self.options.resolve {
            policy.allow.check_resolved(target, resolve)?;
        }
        policy.tls.check_insecure(self.options.insecure)?;
        // A --compare baseline receives every request too: the allow-list judges it the same way.
        for baseline in self.options.compare.iter().chain(&self.options.compare_noise) {
            policy.allow.check(baseline)?;
        }
        self.check_caps(&policy.caps)?;
        self.check_public_headers()?;
        let mut header = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if name.contains(':') {
                return Err(invalid(format!("headers: '{}' is not a header name", printable(name))));
            }
            if value.trim_start().starts_with('@') {
                return Err(invalid(format!(
                    "headers.{}: a value starting with '@' would read a file on the daemon's machine, which the API \
                     does not allow; send the value itself",
                    printable(name)
                )));
            }
            header.push(format!("{name}: {value}"));
        }
        // Without a duration a run plays its logs once; --max-duration still ends it. Stages set
        // their own length (checked against --max-duration with the caps).
        let (duration, once) = match &self.options.duration {
            Some(d) => (Some(d.clone()), self.options.once),
            None if self.options.stages.is_some() => (None, self.options.once),
            None => (Some(format!("{}s", policy.caps.max_duration.as_secs_f64())), true),
        };
        if let Some(shard) = &self.options.shard
            && shard.trim_start().starts_with("auto")
        {
            return Err(invalid(format!(
                "shard: '{shard}' reads the index from the environment of an engine (Kubernetes, Slurm, Nomad); a \
                 daemon has none: give I/K, e.g. \"1/4\""
            )));
        }
        // A shard's common start is the replay's `--start-at`: checked, and kept when late.
        let start_at = match (&self.options.shard, self.start_at) {
            (Some(_), Some(at)) => Some(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            _ => self.options.start_at.clone(),
        };
        Ok(ReplayOptions {
            files: self.logs.iter().map(|name| logs_dir.join(name)).collect(),
            duration,
            once,
            start_at,
            out: Some(out),
            progress: Some(ProgressMode::Never),
            header,
            ..self.options.clone()
        })
    }

    /// Refuses what asks more of the daemon than its operator allows, naming the cap.
    fn check_caps(&self, caps: &Caps) -> Result<(), Rejection> {
        let over = |what: String, flag: &str| {
            Rejection::Forbidden(format!("{what}; ask the daemon's operator to raise {flag} if you need more"))
        };
        let options = &self.options;
        // A shard sends one K-th of the plan: that is what this daemon's cap bounds.
        let shards = options.shard.as_deref().and_then(|s| Shard::parse(s, |_| None).ok()).map_or(1, |s| s.count);
        let share = |rate: f64| rate / f64::from(shards);
        let of_shards = |rate: f64| {
            if shards > 1 { format!(", {} per shard of {shards}", share(rate)) } else { String::new() }
        };
        if let Some(rate) = &options.rate {
            match parse_rate(rate).map_err(|m| Rejection::Invalid(format!("rate: {m}")))? {
                Rate::Max => {
                    return Err(over(
                        format!(
                            "rate: \"max\" has no ceiling, and this daemon allows at most {} requests per second (--max-rate)",
                            caps.max_rate
                        ),
                        "--max-rate",
                    ));
                }
                Rate::PerSecond(n) if share(n) > caps.max_rate => {
                    return Err(over(
                        format!(
                            "rate: {n} requests per second{} is over this daemon's limit of {} (--max-rate)",
                            of_shards(n),
                            caps.max_rate
                        ),
                        "--max-rate",
                    ));
                }
                Rate::PerSecond(_) => {}
            }
        }
        if let Some(text) = &options.stages {
            let curve = RateCurve::stages(parse_stages(text).map_err(|m| Rejection::Invalid(format!("stages: {m}")))?);
            if share(curve.peak()) > caps.max_rate {
                return Err(over(
                    format!(
                        "stages: a peak of {} requests per second{} is over this daemon's limit of {} (--max-rate)",
                        curve.peak(),
                        of_shards(curve.peak()),
                        caps.max_rate
                    ),
                    "--max-rate",
                ));
            }
            let length = curve.length().unwrap_or_default();
            if length > caps.max_duration {
                return Err(over(
                    format!(
                        "stages: they last {}, longer than this daemon's limit of {} (--max-duration)",
                        humantime_secs(length),
                        humantime_secs(caps.max_duration)
                    ),
                    "--max-duration",
                ));
            }
        }
        if let Some(n) = options.concurrency
            && n > caps.max_concurrency
        {
            return Err(over(
                format!("concurrency: {n} is over this daemon's limit of {} (--max-concurrency)", caps.max_concurrency),
                "--max-concurrency",
            ));
        }
        if let Some(text) = &options.duration {
            let d = parse_duration(text).map_err(|m| Rejection::Invalid(format!("duration: {m}")))?;
            if d > caps.max_duration {
                return Err(over(
                    format!(
                        "duration: {text} is longer than this daemon's limit of {} (--max-duration)",
                        humantime_secs(caps.max_duration)
                    ),
                    "--max-duration",
                ));
            }
        }
        if let Some(n) = options.queue_capacity
            && n > MAX_QUEUE_CAPACITY
        {
            return Err(Rejection::Invalid(format!(
                "queue_capacity: {n} is over the daemon's limit of {MAX_QUEUE_CAPACITY} requests read ahead per run"
            )));
        }
        Ok(())
    }

    /// `public_headers` may only name headers the request sets, and never a secret one.
    fn check_public_headers(&self) -> Result<(), Rejection> {
        for name in &self.public_headers {
            let shown = printable(name);
            if !self.headers.keys().any(|h| h.eq_ignore_ascii_case(name)) {
                return Err(Rejection::Invalid(format!("public_headers: '{shown}' is not one of `headers`")));
            }
            if ALWAYS_REDACTED.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                return Err(Rejection::Invalid(format!(
                    "public_headers: '{shown}' is always secret and cannot be made public"
                )));
            }
            if self.options.redact_header.iter().any(|h| h.trim().eq_ignore_ascii_case(name)) {
                return Err(Rejection::Invalid(format!(
                    "public_headers: '{shown}' is also in redact_headers; choose one"
                )));
            }
        }
        Ok(())
    }

    fn is_public_header(&self, name: &str) -> bool {
        self.public_headers.iter().any(|p| p.eq_ignore_ascii_case(name))
    }

    /// The request as shown and stored (secret header values replaced by `[redacted]`), and the
    /// secret values themselves.
    pub fn split_secrets(mut self) -> (RunRequest, SecretHeaders) {
        let mut secrets = SecretHeaders::new();
        let names: Vec<String> = self.headers.keys().filter(|n| !self.is_public_header(n)).cloned().collect();
        for name in names {
            if let Some(value) = self.headers.insert(name.clone(), REDACTED.to_string()) {
                secrets.insert(name, value);
            }
        }
        (self, secrets)
    }

    /// Names of the headers whose values are kept apart (what [`RunRequest::split_secrets`] took).
    pub fn secret_header_names(&self) -> Vec<&str> {
        self.headers.keys().filter(|n| !self.is_public_header(n)).map(String::as_str).collect()
    }

    /// The request with its secret header values back in. Fails, naming them, when any is missing:
    /// a run never goes out without a header it was given.
    pub fn with_secrets(&self, secrets: &SecretHeaders) -> Result<RunRequest, Vec<String>> {
        let missing: Vec<String> =
            self.secret_header_names().into_iter().filter(|n| !secrets.contains_key(*n)).map(String::from).collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut whole = self.clone();
        for (name, value) in secrets {
            if let Some(slot) = whole.headers.get_mut(name) {
                slot.clone_from(value);
            }
        }
        Ok(whole)
    }
}

/// `86400 s` → `24h`, for messages.
fn humantime_secs(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (h, 0, 0) if h > 0 => format!("{h}h"),
        (0, m, 0) if m > 0 => format!("{m}m"),
        _ => format!("{s}s"),
    }
}

/// `--allow-methods` → `allow_methods`; repeatable flags are plural keys here.
fn json_key(flag: &str) -> String {
    match flag {
        "FILES" => "logs".into(),
        "--header" => "headers".into(),
        "--drop-header" => "drop_headers".into(),
        "--deny-host" => "deny_hosts".into(),
        "--allow-host" => "allow_hosts".into(),
        "--redact-header" => "redact_headers".into(),
        other => other.trim_start_matches('-').replace('-', "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> RunRequest {
        serde_json::from_str(json).unwrap()
    }

    /// What the API shows and `run.json` holds.
    fn as_json(request: &RunRequest) -> Value {
        serde_json::to_value(request).unwrap()
    }

    #[test]
    fn a_request_becomes_the_clis_options_with_the_daemons_paths() {
        let json = r#"{"logs":["access.log.gz"],"format":"nginx","target":"http://127.0.0.1:8080","rate":200,
                "duration":"10m","concurrency":64,"allow_methods":["GET","HEAD"],"headers":{"X-Test":"1"},
                "start_at":"2026-11-22T02:00:00Z"}"#;
        let req = request(json);
        let args = req.to_options(Path::new("/logs"), "/state/r.csv".into(), &Policy::default()).unwrap();
        assert_eq!(args.files, vec![PathBuf::from("/logs/access.log.gz")]);
        assert_eq!(args.out, Some(PathBuf::from("/state/r.csv")));
        assert_eq!(args.rate.as_deref(), Some("200"));
        assert_eq!(args.allow_methods.as_deref(), Some("GET,HEAD"));
        assert_eq!(args.header, vec!["X-Test: 1".to_string()]);
        assert_eq!(args.progress, Some(ProgressMode::Never));
        assert!(args.summary_json.is_none() && args.config.is_none());
        // Round trip: what the API shows is what was asked.
        assert_eq!(as_json(&req), serde_json::from_str::<Value>(json).unwrap());
        assert_eq!(as_json(&request(&serde_json::to_string(&req).unwrap())), as_json(&req));
    }

    #[test]
    fn the_http_version_is_a_run_option_like_any_other() {
        let req = request(r#"{"logs":["a.log"],"target":"http://127.0.0.1:8080","rate":1,"http_version":"h2c"}"#);
        let config = req.to_config(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap();
        assert_eq!(config.http_version, crate::send::transport::HttpVersion::H2c);
        assert_eq!(as_json(&req)["http_version"], "h2c");
        let req = request(r#"{"logs":["a.log"],"target":"http://127.0.0.1:8080","rate":1,"http_version":"2"}"#);
        let Err(Rejection::Invalid(refused)) = req.to_config(Path::new("/logs"), "/s/r.csv".into(), &Policy::default())
        else {
            panic!("HTTP/2 over ALPN on an http:// target is refused")
        };
        assert!(refused.starts_with("http_version: ") && refused.contains("h2c"), "{refused}");
    }

    #[test]
    fn requests_that_reach_outside_the_daemons_directories_are_refused() {
        let check = |json: &str| {
            request(json).to_options(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap_err()
        };
        let base = r#""target":"http://127.0.0.1:1","rate":1"#;
        assert!(
            matches!(check(&format!(r#"{{"logs":["../etc/passwd"],{base}}}"#)), Rejection::Invalid(m) if m.contains("logs[0]"))
        );
        assert!(
            matches!(check(&format!(r#"{{"logs":["a"],"headers":{{"X":"@/etc/shadow"}},{base}}}"#)), Rejection::Invalid(m) if m.contains("'@'"))
        );
        assert!(matches!(check(r#"{"logs":["a"],"target":"http://192.0.2.1","rate":1}"#), Rejection::Forbidden(_)));
        // A --compare baseline receives every request too: the allow-list judges it.
        for baselines in
            [r#""compare":"http://192.0.2.1""#, r#""compare":"http://127.0.0.2:1","compare_noise":"http://192.0.2.1""#]
        {
            let json = format!(r#"{{"logs":["a"],{baselines},{base}}}"#);
            assert!(matches!(check(&json), Rejection::Forbidden(_)), "{baselines}");
        }
        let allowed = format!(r#"{{"logs":["a"],"compare":"http://127.0.0.2:1",{base}}}"#);
        assert!(request(&allowed).to_options(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).is_ok());
        assert!(
            matches!(check(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":0}"#), Rejection::Invalid(m) if m.starts_with("rate:"))
        );
        assert!(
            matches!(check(r#"{"logs":["a"],"rate":1}"#), Rejection::Invalid(m) if m.contains("`target` is required"))
        );
        for key in ["out", "xlsx", "summary_json", "summary-json", "config", "progress"] {
            let body: serde_json::Value = serde_json::from_str(&format!(r#"{{"{key}":"x"}}"#)).unwrap();
            assert!(refused_key(body.as_object().unwrap()).is_some(), "{key}");
        }
        assert!(serde_json::from_str::<RunRequest>(r#"{"logs":["a"],"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<RunRequest>(r#"{"logs":"a"}"#).is_err());
        assert!(
            serde_json::from_str::<RunRequest>(r#"{"rate":true}"#)
                .unwrap_err()
                .to_string()
                .contains("a number or a string")
        );
    }

    #[test]
    fn a_run_without_a_duration_is_still_ended_at_max_duration() {
        let policy =
            Policy { caps: Caps { max_duration: Duration::from_secs(600), ..Caps::default() }, ..Default::default() };
        let once = request(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":5}"#);
        let args = once.to_options(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap();
        assert_eq!((args.duration.as_deref(), args.once), (Some("600s"), true), "played once, within the cap");
        let looping = request(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":5,"duration":"10m"}"#);
        let args = looping.to_options(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap();
        assert_eq!((args.duration.as_deref(), args.once), (Some("10m"), false));
        let staged = request(r#"{"logs":["a"],"target":"http://127.0.0.1:1","stages":"1m:0-5,1m:5"}"#);
        let args = staged.to_options(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap();
        assert_eq!((args.duration, args.once), (None, false), "stages set their own length and loop the log");
    }

    #[test]
    fn every_shape_reaches_the_daemon_and_its_rate_cap_bounds_them_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "").unwrap();
        let policy = Policy { caps: Caps { max_rate: 300.0, ..Caps::default() }, ..Default::default() };
        let config = |json: &str| {
            request(json).to_config(dir.path(), dir.path().join("r.csv"), &policy).map_err(|r| match r {
                Rejection::Invalid(m) | Rejection::Forbidden(m) => m,
            })
        };
        let speed = config(r#"{"logs":["a"],"target":"http://127.0.0.1:1","speed":4,"max_gap":"2s"}"#).unwrap();
        assert_eq!(
            speed.shape,
            crate::pace::schedule::Shape::Logged { speed: 4.0, max_gap: Some(Duration::from_secs(2)) }
        );
        assert_eq!(speed.rate_ceiling, Some(300.0), "the operator's cap is the ceiling of the log's own rate");
        let poisson =
            config(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":50,"arrivals":"poisson","seed":3}"#).unwrap();
        assert_eq!(poisson.shape.seed(), Some(3));
        let missing = config(r#"{"logs":["a"],"target":"http://127.0.0.1:1"}"#).unwrap_err();
        assert!(missing.contains("unless `stages` or `speed`"), "{missing}");
        let both = config(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":5,"speed":2}"#).unwrap_err();
        assert!(both.starts_with("speed: cannot be combined with --rate"), "{both}");
    }

    #[test]
    fn a_shard_is_held_to_its_share_of_the_rate_and_keeps_its_common_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "").unwrap();
        let policy = Policy { caps: Caps { max_rate: 30.0, ..Caps::default() }, ..Default::default() };
        let config = |json: &str| {
            request(json).to_config(dir.path(), dir.path().join("r.csv"), &policy).map_err(|r| match r {
                Rejection::Invalid(m) | Rejection::Forbidden(m) => m,
            })
        };
        let start = (Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
        let shard = config(&format!(
            r#"{{"logs":["a"],"target":"http://127.0.0.1:1","rate":100,"shard":"1/4","start_at":"{start}"}}"#
        ))
        .unwrap();
        assert_eq!(shard.rate_ceiling, Some(120.0), "the plan's ceiling: four shards of 30/s");
        assert_eq!(shard.start_at.map(|t| t.timestamp()), Some(start.parse::<DateTime<Utc>>().unwrap().timestamp()));
        let over = config(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":200,"shard":"0/4"}"#).unwrap_err();
        assert!(over.contains("rate: 200 requests per second, 50 per shard of 4 is over"), "{over}");
        let auto = config(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":10,"shard":"auto/4"}"#).unwrap_err();
        assert!(auto.contains("a daemon has none: give I/K"), "{auto}");
        let past = (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
        let late = config(&format!(
            r#"{{"logs":["a"],"target":"http://127.0.0.1:1","rate":10,"shard":"0/2","start_at":"{past}"}}"#
        ))
        .unwrap_err();
        assert!(late.starts_with("start_at: ") && late.contains("would start late"), "{late}");
    }

    #[test]
    fn requests_over_the_operators_caps_are_forbidden_naming_the_cap() {
        let policy = Policy {
            caps: Caps {
                max_rate: 100.0,
                max_concurrency: 8,
                max_duration: Duration::from_secs(60),
                max_queued_runs: 1,
            },
            ..Default::default()
        };
        let refused = |extra: &str| {
            let json = format!(r#"{{"logs":["a"],"target":"http://127.0.0.1:1"{extra}}}"#);
            request(&json).to_options(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap_err()
        };
        for (extra, flag) in [
            (r#","rate":101"#, "--max-rate"),
            (r#","rate":"max""#, "--max-rate"),
            (r#","rate":5,"concurrency":9"#, "--max-concurrency"),
            (r#","rate":5,"duration":"2m""#, "--max-duration"),
            (r#","stages":"10s:0-50,10s:50-150""#, "--max-rate"),
            (r#","stages":"50s:10,20s:10""#, "--max-duration"),
        ] {
            assert!(matches!(refused(extra), Rejection::Forbidden(m) if m.contains(flag)), "{extra}");
        }
        let queue = refused(r#","rate":5,"queue_capacity":1000000000000"#);
        assert!(matches!(queue, Rejection::Invalid(m) if m.starts_with("queue_capacity:")));
    }

    #[test]
    fn header_values_are_secret_unless_named_public() {
        let req = request(
            r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":1,"redact_headers":["X-Staging-Key"],
                "headers":{"Authorization":"Bearer s3cret","X-Staging-Key":"k3y","X-Other":"o","X-Test":"1"},
                "public_headers":["x-test"]}"#,
        );
        let (shown, secrets) = req.clone().split_secrets();
        assert_eq!(shown.headers["Authorization"], REDACTED);
        assert_eq!(shown.headers["X-Staging-Key"], REDACTED);
        assert_eq!(shown.headers["X-Other"], REDACTED, "not marked public: secret");
        assert_eq!(shown.headers["X-Test"], "1");
        assert!(!serde_json::to_string(&shown).unwrap().contains("s3cret"));
        assert_eq!(secrets.len(), 3);
        assert_eq!(as_json(&shown.with_secrets(&secrets).unwrap()), as_json(&req));
        let mut lost = secrets.clone();
        lost.remove("X-Staging-Key");
        assert_eq!(shown.with_secrets(&lost).unwrap_err(), vec!["X-Staging-Key".to_string()]);

        let check = |json: &str| {
            request(json).to_options(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap_err()
        };
        let base = r#""logs":["a"],"target":"http://127.0.0.1:1","rate":1"#;
        for (public, words) in [
            (r#""headers":{"Cookie":"c"},"public_headers":["cookie"]"#, "always secret"),
            (r#""headers":{"X-K":"k"},"redact_headers":["X-K"],"public_headers":["X-K"]"#, "redact_headers"),
            (r#""public_headers":["X-Nope"]"#, "not one of `headers`"),
        ] {
            assert!(
                matches!(check(&format!("{{{base},{public}}}")), Rejection::Invalid(m) if m.contains(words)),
                "{public}"
            );
        }
    }

    #[test]
    fn every_replay_option_is_a_key_of_the_json_and_a_misspelled_one_is_named() {
        // Two options the daemon's code never names: they come through `ReplayOptions` alone.
        let json = r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":5,"sample":"50%","sample_seed":7,
                "exclude_user_agent":["bot|crawler"]}"#;
        let req = request(json);
        assert_eq!(
            (req.options.sample_seed, &req.options.exclude_user_agent[..]),
            (Some(7), &["bot|crawler".into()][..])
        );
        assert_eq!(as_json(&req), serde_json::from_str::<Value>(json).unwrap(), "shown and stored as given");
        let config = req.to_config(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap();
        assert_eq!(config.rules.filters.sample.map(|s| s.seed), Some(7));
        assert!(config.rules.filters.exclude_user_agent[0].is_match(b"Googlebot"));

        let misspelled =
            serde_json::from_str::<RunRequest>(r#"{"logs":["a"],"sample_sed":7}"#).unwrap_err().to_string();
        assert!(misspelled.starts_with("unknown field `sample_sed`, expected one of `logs`,"), "{misspelled}");
        assert!(misspelled.contains("`sample_seed`") && misspelled.contains("`start_at`"), "{misspelled}");
        let wrong_type = serde_json::from_str::<RunRequest>(r#"{"sample_seed":"seven"}"#).unwrap_err().to_string();
        assert!(wrong_type.starts_with("sample_seed: invalid type"), "{wrong_type}");
    }

    #[test]
    fn options_for_the_command_line_only_are_unknown_keys_and_not_offered() {
        let base = r#""logs":["a"],"target":"http://127.0.0.1:1","rate":1"#;
        for (key, value) in [
            ("header", r#"["X-A: 1"]"#),
            ("use_env_proxy", "true"),
            ("report", "true"),
            ("assert", r#"["p99 < 1s"]"#),
            ("assertions", r#"["p99 < 1s"]"#),
            ("metrics_listen", r#""127.0.0.1:9898""#),
        ] {
            let json = format!(r#"{{{base},"{key}":{value}}}"#);
            let e = serde_json::from_str::<RunRequest>(&json).unwrap_err().to_string();
            assert!(e.starts_with(&format!("unknown field `{key}`, expected one of")), "{e}");
        }
        let listed = serde_json::from_str::<RunRequest>(r#"{"x":1}"#).unwrap_err().to_string();
        for refused in COMMAND_LINE_ONLY.iter().chain(PATH_KEYS.iter().map(|(k, _)| k)) {
            assert!(!listed.contains(&format!("`{refused}`")), "{refused} offered in: {listed}");
        }
        // The daemon's spellings, which TOML accepts too.
        let plural = request(&format!(
            r#"{{{base},"deny_hosts":["10.0.0.0/8"],"allow_host":["127.0.0.1"],"redact_headers":["X-K"],
                "drop_header":["Cookie"],"public_header":["X-T"],"headers":{{"X-T":"1"}}}}"#
        ));
        assert_eq!(
            (&plural.options.deny_host[..], &plural.options.allow_host[..], &plural.options.redact_header[..]),
            (&["10.0.0.0/8".to_string()][..], &["127.0.0.1".to_string()][..], &["X-K".to_string()][..])
        );
        assert_eq!(
            (&plural.options.drop_header[..], &plural.public_headers[..]),
            (&["Cookie".to_string()][..], &["X-T".to_string()][..])
        );
        let shown = as_json(&plural);
        for key in ["deny_hosts", "allow_hosts", "redact_headers", "drop_headers", "public_headers"] {
            assert!(shown.get(key).is_some(), "{key} in {shown}");
        }
    }
}
