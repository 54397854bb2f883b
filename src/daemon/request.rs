//! What a client may ask the daemon to run.
//!
//! A [`RunRequest`] is the replay options as JSON, minus everything that names a file on the
//! daemon's machine: logs are names inside `--logs-dir`, results go under `--state-dir`, and
//! `out`, `summary_json`, `config`, `progress` and `@file` header values are refused. It becomes
//! [`ReplayOptions`] and then a [`ReplayConfig`] through the CLI's own checks, so a daemon run is
//! validated exactly like `sluice replay`, and it is held to the operator's [`Policy`]: the
//! allow-list for its target, the caps for its rate, concurrency and duration.
//!
//! Header values given through the API are secrets unless the request names them in
//! `public_headers`: [`RunRequest::split_secrets`] takes them out of what is shown and stored in
//! `run.json`, and [`RunRequest::with_secrets`] puts them back when the run starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{Caps, Policy, Rejection, check_log_name, printable};
use crate::config::{ProgressMode, ReplayOptions};
use crate::config::{Rate, ReplayConfig, parse_rate};
use crate::duration::parse_duration;
use crate::plan::safety::{ALWAYS_REDACTED, REDACTED};

/// Keys that would let a client read or write files of its choosing on the daemon's machine,
/// refused with a message that says where the daemon puts things instead.
const PATH_KEYS: [(&str, &str); 6] = [
    ("out", "the daemon writes each run's CSV under its state directory: GET /v1/runs/{id}/results.csv"),
    ("summary_json", "the daemon keeps each run's summary: GET /v1/runs/{id}/summary.json"),
    ("config", "send the options themselves in this JSON object"),
    ("files", "name uploaded logs in `logs` (PUT /v1/logs/{name} uploads one)"),
    ("progress", "daemon runs report progress through GET /v1/runs/{id} and /events"),
    ("dry_run", "use `sluice replay --dry-run` on your own machine"),
];

/// If `body` is a JSON object with a key the daemon refuses on principle, says which and why.
pub fn refused_key(body: &serde_json::Value) -> Option<String> {
    let object = body.as_object()?;
    PATH_KEYS.iter().find(|(key, _)| object.contains_key(*key) || object.contains_key(&key.replace('_', "-"))).map(
        |(key, instead)| {
            format!(
                "`{key}` is not accepted by the daemon, which never reads or writes paths a client names; {instead}"
            )
        },
    )
}

/// A run as submitted to `POST /v1/runs`. Keys are the long flags of `sluice replay` in
/// snake_case; lists are JSON lists and headers a JSON object. Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunRequest {
    /// Names of logs in the daemon's `--logs-dir`, replayed in order.
    pub logs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<NumberOrText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub once: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bad_lines: Option<NumberOrText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<u64>,
    /// Methods to replay, e.g. `["GET","HEAD"]`, or `["all"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_false")]
    pub follow_redirects: bool,
    #[serde(alias = "deny_host", skip_serializing_if = "Vec::is_empty")]
    pub deny_hosts: Vec<String>,
    #[serde(alias = "allow_host", skip_serializing_if = "Vec::is_empty")]
    pub allow_hosts: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub i_know_this_is_production: bool,
    #[serde(alias = "redact_header", skip_serializing_if = "Vec::is_empty")]
    pub redact_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_query_params: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub preserve_host: bool,
    /// Headers added to every request, name → value. Values are secrets (shown as `[redacted]`,
    /// kept out of `run.json`) unless their name is in `public_headers`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Names in `headers` whose values may be shown and stored in clear (e.g. `["X-Test"]`).
    /// Never one of the always-redacted headers or a `redact_headers` name.
    #[serde(alias = "public_header", skip_serializing_if = "Vec::is_empty")]
    pub public_headers: Vec<String>,
    #[serde(alias = "drop_header", skip_serializing_if = "Vec::is_empty")]
    pub drop_headers: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub skip_bodyless: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_status: Option<NumberOrText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_user_agent: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<NumberOrText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_seed: Option<u64>,
    /// Conditions that stop the run early when they hold, as `--abort-on` takes them
    /// (`["error_rate > 50% for 10s"]`); the run then ends `failed`, saying which one held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub abort_on: Vec<String>,
    /// Start no earlier than this (RFC 3339); the run is `scheduled` until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `"rate": 200` and `"rate": "200"` mean the same, as on the command line; kept as given.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberOrText {
    Number(serde_json::Number),
    Text(String),
}

impl std::fmt::Display for NumberOrText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberOrText::Number(n) => n.fmt(f),
            NumberOrText::Text(s) => s.fmt(f),
        }
    }
}

impl Serialize for NumberOrText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NumberOrText::Number(n) => n.serialize(s),
            NumberOrText::Text(t) => t.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for NumberOrText {
    // A hand-written visitor, so a wrong type reads "expected a number or a string" rather than
    // serde's "did not match any variant of untagged enum".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumberOrText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumberOrText, E> {
                Ok(NumberOrText::Number(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumberOrText, E> {
                Ok(NumberOrText::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumberOrText, E> {
                serde_json::Number::from_f64(v)
                    .map(NumberOrText::Number)
                    .ok_or_else(|| E::custom("expected a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumberOrText, E> {
                Ok(NumberOrText::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The values of a run's secret headers, by name: never shown, never in `run.json`.
pub type SecretHeaders = BTreeMap<String, String>;

/// Requests a run's reader may hold ahead of the pacer. Each queued request is a few hundred
/// bytes and the reader fills the queue whatever the rate, so this bounds a run's memory (about
/// 30 MB here) however the caller sets `queue_capacity`.
pub const MAX_QUEUE_CAPACITY: usize = 65_536;

impl RunRequest {
    /// Checks everything that can be checked without touching the file system, and turns the
    /// request into the CLI's options with the daemon's choices: logs inside `logs_dir`, the CSV
    /// at `out`, no progress display, and no run longer than `--max-duration`.
    pub fn to_args(&self, logs_dir: &Path, out: PathBuf, policy: &Policy) -> Result<ReplayOptions, Rejection> {
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
        let Some(target) = &self.target else {
            return Err(invalid("`target` is required, e.g. \"http://127.0.0.1:8080\"".into()));
        };
        let Some(rate) = &self.rate else {
            return Err(invalid("`rate` is required: requests per second (e.g. 200)".into()));
        };
        policy.allow.check(target)?;
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
        // Without a duration a run plays its logs once; --max-duration still ends it.
        let (duration, once) = match &self.duration {
            Some(d) => (Some(d.clone()), self.once),
            None => (Some(format!("{}s", policy.caps.max_duration.as_secs_f64())), true),
        };
        let args = ReplayOptions {
            files: self.logs.iter().map(|name| logs_dir.join(name)).collect(),
            target: Some(target.clone()),
            rate: Some(rate.to_string()),
            duration,
            once,
            format: self.format.clone(),
            concurrency: self.concurrency,
            batch: self.batch,
            timeout: self.timeout.clone(),
            drain_timeout: self.drain_timeout.clone(),
            out: Some(out),
            progress: Some(ProgressMode::Never),
            queue_capacity: self.queue_capacity,
            max_bad_lines: self.max_bad_lines.as_ref().map(ToString::to_string),
            threads: self.threads,
            allow_methods: self.allow_methods.as_ref().map(|list| list.join(",")),
            follow_redirects: self.follow_redirects,
            deny_host: self.deny_hosts.clone(),
            allow_host: self.allow_hosts.clone(),
            i_know_this_is_production: self.i_know_this_is_production,
            redact_header: self.redact_headers.clone(),
            mask_query_params: self.mask_query_params.clone(),
            host_header: self.host_header.clone(),
            preserve_host: self.preserve_host,
            header,
            drop_header: self.drop_headers.clone(),
            skip_bodyless: self.skip_bodyless,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            orig_status: self.orig_status.as_ref().map(ToString::to_string),
            from: self.from.clone(),
            until: self.until.clone(),
            exclude_user_agent: self.exclude_user_agent.clone(),
            sample: self.sample.as_ref().map(ToString::to_string),
            sample_seed: self.sample_seed,
            abort_on: self.abort_on.clone(),
            max_line_bytes: self.max_line_bytes,
            ..ReplayOptions::default()
        };
        // The CLI's own validation (and its bounds), with its messages renamed to this API's keys.
        ReplayConfig::try_from(&args).map_err(|e| invalid(format!("{}: {}", json_key(e.flag), e.message)))?;
        Ok(args)
    }

    /// The validated configuration a run starts with.
    pub fn to_config(&self, logs_dir: &Path, out: PathBuf, policy: &Policy) -> Result<ReplayConfig, Rejection> {
        let args = self.to_args(logs_dir, out, policy)?;
        ReplayConfig::try_from(&args).map_err(|e| Rejection::Invalid(format!("{}: {}", json_key(e.flag), e.message)))
    }

    /// Refuses what asks more of the daemon than its operator allows, naming the cap.
    fn check_caps(&self, caps: &Caps) -> Result<(), Rejection> {
        let over = |what: String, flag: &str| {
            Rejection::Forbidden(format!("{what}; ask the daemon's operator to raise {flag} if you need more"))
        };
        if let Some(rate) = &self.rate {
            match parse_rate(&rate.to_string()).map_err(|m| Rejection::Invalid(format!("rate: {m}")))? {
                Rate::Max => {
                    return Err(over(
                        format!(
                            "rate: \"max\" has no ceiling, and this daemon allows at most {} requests per second (--max-rate)",
                            caps.max_rate
                        ),
                        "--max-rate",
                    ));
                }
                Rate::PerSecond(n) if n > caps.max_rate => {
                    return Err(over(
                        format!(
                            "rate: {n} requests per second is over this daemon's limit of {} (--max-rate)",
                            caps.max_rate
                        ),
                        "--max-rate",
                    ));
                }
                Rate::PerSecond(_) => {}
            }
        }
        if let Some(n) = self.concurrency
            && n > caps.max_concurrency
        {
            return Err(over(
                format!("concurrency: {n} is over this daemon's limit of {} (--max-concurrency)", caps.max_concurrency),
                "--max-concurrency",
            ));
        }
        if let Some(text) = &self.duration {
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
        if let Some(n) = self.queue_capacity
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
            if self.redact_headers.iter().any(|h| h.trim().eq_ignore_ascii_case(name)) {
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

    #[test]
    fn a_request_becomes_the_clis_options_with_the_daemons_paths() {
        let req = request(
            r#"{"logs":["access.log.gz"],"format":"nginx","target":"http://127.0.0.1:8080","rate":200,
                "duration":"10m","concurrency":64,"allow_methods":["GET","HEAD"],"headers":{"X-Test":"1"},
                "start_at":"2026-11-22T02:00:00Z"}"#,
        );
        let args = req.to_args(Path::new("/logs"), "/state/r.csv".into(), &Policy::default()).unwrap();
        assert_eq!(args.files, vec![PathBuf::from("/logs/access.log.gz")]);
        assert_eq!(args.out, Some(PathBuf::from("/state/r.csv")));
        assert_eq!(args.rate.as_deref(), Some("200"));
        assert_eq!(args.allow_methods.as_deref(), Some("GET,HEAD"));
        assert_eq!(args.header, vec!["X-Test: 1".to_string()]);
        assert_eq!(args.progress, Some(ProgressMode::Never));
        assert!(args.summary_json.is_none() && args.config.is_none());
        // Round trip: what the API shows is what was asked.
        assert_eq!(request(&serde_json::to_string(&req).unwrap()), req);
    }

    #[test]
    fn requests_that_reach_outside_the_daemons_directories_are_refused() {
        let check =
            |json: &str| request(json).to_args(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap_err();
        let base = r#""target":"http://127.0.0.1:1","rate":1"#;
        assert!(
            matches!(check(&format!(r#"{{"logs":["../etc/passwd"],{base}}}"#)), Rejection::Invalid(m) if m.contains("logs[0]"))
        );
        assert!(
            matches!(check(&format!(r#"{{"logs":["a"],"headers":{{"X":"@/etc/shadow"}},{base}}}"#)), Rejection::Invalid(m) if m.contains("'@'"))
        );
        assert!(matches!(check(r#"{"logs":["a"],"target":"http://192.0.2.1","rate":1}"#), Rejection::Forbidden(_)));
        assert!(
            matches!(check(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":0}"#), Rejection::Invalid(m) if m.starts_with("rate:"))
        );
        assert!(
            matches!(check(r#"{"logs":["a"],"rate":1}"#), Rejection::Invalid(m) if m.contains("`target` is required"))
        );
        for key in ["out", "summary_json", "summary-json", "config", "progress"] {
            let body: serde_json::Value = serde_json::from_str(&format!(r#"{{"{key}":"x"}}"#)).unwrap();
            assert!(refused_key(&body).is_some(), "{key}");
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
        let args = once.to_args(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap();
        assert_eq!((args.duration.as_deref(), args.once), (Some("600s"), true), "played once, within the cap");
        let looping = request(r#"{"logs":["a"],"target":"http://127.0.0.1:1","rate":5,"duration":"10m"}"#);
        let args = looping.to_args(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap();
        assert_eq!((args.duration.as_deref(), args.once), (Some("10m"), false));
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
            request(&json).to_args(Path::new("/logs"), "/s/r.csv".into(), &policy).unwrap_err()
        };
        for (extra, flag) in [
            (r#","rate":101"#, "--max-rate"),
            (r#","rate":"max""#, "--max-rate"),
            (r#","rate":5,"concurrency":9"#, "--max-concurrency"),
            (r#","rate":5,"duration":"2m""#, "--max-duration"),
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
        assert_eq!(shown.with_secrets(&secrets).unwrap(), req);
        let mut lost = secrets.clone();
        lost.remove("X-Staging-Key");
        assert_eq!(shown.with_secrets(&lost).unwrap_err(), vec!["X-Staging-Key".to_string()]);

        let check =
            |json: &str| request(json).to_args(Path::new("/logs"), "/s/r.csv".into(), &Policy::default()).unwrap_err();
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
}
