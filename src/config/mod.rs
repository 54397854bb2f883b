//! Validated configuration: raw flags are checked once here, so the engine never re-validates.
//! Every error names the flag and what is allowed; the binary maps them to exit code 2.

use std::fmt::Display;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use reqwest::header::{HeaderName, HeaderValue};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_parsers::Format;

use crate::display::compact_duration;
use crate::duration::parse_duration;
use crate::pace::schedule::Shape;
use crate::pace::shard::Shard;
use crate::plan::filter::{Filters, Sample, StatusSet, parse_time};
use crate::plan::mix::Mix;
use crate::plan::safety::{DEFAULT_MASKED_QUERY, HostGuard, HostPattern, Redactor};
use crate::plan::session::SessionKey;
use crate::plan::{DEFAULT_METHODS, HostRule, PlanRules, parse_methods};
use crate::prom::{PromCheck, Prometheus};
use crate::sink::abort::AbortCondition;
use crate::source::{DEFAULT_MAX_LINE_BYTES, Input, MAX_LINE_BYTES_LIMIT, MIN_LINE_BYTES_LIMIT};
use compare::{BodyRules, CompareConfig, DEFAULT_BODY_LIMIT, JsonPath, MAX_BODY_LIMIT};
pub use http::HttpVersion;

pub mod compare;
mod http;
pub mod kafka;
pub mod options;
mod shape;
pub mod tls;

pub use options::{ProgressMode, ReplayOptions};
use shape::shape_and_duration;
pub use tls::TlsSettings;

#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

pub(crate) fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { flag, message: message.into() }
}

// The upper bounds of size-like options: each keeps memory and timers within what one machine
// can hold, far above any sensible use.
const CONCURRENCY: RangeInclusive<usize> = 1..=100_000;
/// A batch is released as one; the hand-off to the senders makes room for a whole batch up front.
const BATCH: RangeInclusive<u32> = 1..=10_000;
/// `--release-every`: below 50 µs the pacer would wake for nearly every request at high rates;
/// above 100 ms a request's lateness would no longer be small next to any latency.
const RELEASE_EVERY: RangeInclusive<Duration> = Duration::from_micros(50)..=Duration::from_millis(100);
/// The queue is also bounded in bytes (`crate::plan::read_ahead`); this bounds its slots.
const QUEUE_CAPACITY: RangeInclusive<usize> = 1..=1_000_000;
const THREADS: RangeInclusive<usize> = 1..=256;
/// Longest `--duration`: a month-long soak.
const DURATION: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(30 * 86_400);
/// `--timeout` and `--drain-timeout`: an hour is already far past any useful wait for a response.
const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(3600);
/// `Name: @file` header values: a header this long is refused by most servers anyway.
const HEADER_FILE_BYTES: u64 = 64 * 1024;
/// A `--config` file is a page of options, not data.
pub(crate) const CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// `value` if it is within `range`, else an error naming the flag and the allowed range.
fn within<T: PartialOrd + Display>(flag: &'static str, value: T, range: RangeInclusive<T>) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(bad(flag, format!("must be between {} and {} (got {value})", range.start(), range.end())))
    }
}

/// A duration flag, parsed and within `range` (the message shows durations as written: `1h`, `30d`).
fn duration_within(flag: &'static str, text: &str, range: RangeInclusive<Duration>) -> Result<Duration, ConfigError> {
    let (lo, hi) = (compact_duration(*range.start()), compact_duration(*range.end()));
    let value = parse_duration(text).map_err(|m| bad(flag, format!("{m} (between {lo} and {hi})")))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(bad(flag, format!("must be between {lo} and {hi} (got '{}')", text.trim())))
    }
}

/// `--max-line-bytes` for `sluice replay` and `sluice parse`.
pub fn max_line_bytes(value: Option<u64>) -> Result<usize, ConfigError> {
    let range = MIN_LINE_BYTES_LIMIT as u64..=MAX_LINE_BYTES_LIMIT as u64;
    Ok(within("--max-line-bytes", value.unwrap_or(DEFAULT_MAX_LINE_BYTES as u64), range)? as usize)
}

/// Reads a whole small file, refusing one longer than `limit` bytes (e.g. `/dev/zero` by mistake).
pub(crate) fn read_small_file(path: &Path, limit: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() as u64 > limit {
        return Err(format!("longer than {limit} bytes"));
    }
    Ok(text)
}

/// How fast requests are released.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    /// As fast as the in-flight limit allows (a closed loop, for capacity tests).
    Max,
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A base URL: scheme, host, port and an optional path prefix (without a trailing `/`).
    Url(reqwest::Url),
    /// The built-in mock server, started in-process on 127.0.0.1.
    Mock,
    /// A Kafka topic: every planned request becomes one message.
    Kafka(Box<kafka::KafkaTarget>),
}

/// How many unreadable log lines end a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadLineLimit {
    Count(u64),
    /// A share of the lines read so far, in percent; checked once enough lines were read to mean something.
    Percent(f64),
}

/// Either a named format or `auto`, which is decided from the first lines of the input.
#[derive(Debug, Clone)]
pub enum FormatChoice {
    Auto,
    Fixed(Format),
    /// A browser recording (HAR 1.2): one JSON document, not lines.
    Har,
}

impl FormatChoice {
    pub fn from_flag(spec: &str) -> Result<FormatChoice, ConfigError> {
        match spec {
            "auto" => return Ok(FormatChoice::Auto),
            "har" => return Ok(FormatChoice::Har),
            _ => {}
        }
        Format::from_spec(spec).map(FormatChoice::Fixed).map_err(|e| bad("--format", e.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub inputs: Vec<Input>,
    pub format: FormatChoice,
    pub target: Target,
    /// When requests are due: a steady rate, stages, Poisson arrivals, the log's own timing, or
    /// unpaced (`--rate max`).
    pub shape: Shape,
    /// The most requests per second any moment of the run may reach, whatever the shape: set by
    /// the daemon to its `--max-rate` (the one cap that also bounds `--speed`, whose rate is the
    /// log's). Enforced by governor; `None` leaves the shape's own peak as the cap.
    pub rate_ceiling: Option<f64>,
    pub batch: u32,
    /// The pacer wakes at most this often (`--release-every`).
    pub release_every: Duration,
    pub duration: Option<Duration>,
    /// Loop the log when it runs out (a duration without `--once`).
    pub looping: bool,
    pub concurrency: usize,
    pub timeout: Duration,
    pub drain_timeout: Duration,
    pub out: PathBuf,
    /// The workbook written from `out` once the run is over (`--xlsx`, or `--out FILE.xlsx`).
    pub xlsx: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub progress: ProgressMode,
    pub queue_capacity: usize,
    /// Longer log lines are skipped while read and counted as bad lines.
    pub max_line_bytes: usize,
    pub max_bad_lines: Option<BadLineLimit>,
    pub threads: usize,
    pub http_version: HttpVersion,
    /// Filters and rewriting: how entries become requests.
    pub rules: PlanRules,
    pub host_guard: HostGuard,
    pub redactor: Redactor,
    pub follow_redirects: bool,
    pub use_env_proxy: bool,
    pub dry_run: bool,
    /// `--abort-on` conditions, judged while the run goes.
    pub abort_on: Vec<AbortCondition>,
    /// `--abort-on 'prom:…'` conditions, judged every `prometheus_every` on `prometheus`.
    pub prom_abort: Vec<PromCheck>,
    pub prometheus: Option<Prometheus>,
    pub prometheus_every: Duration,
    /// This process's part of a sharded run (`--shard`).
    pub shard: Option<Shard>,
    /// The common T0 (`--start-at`), and what to do when the run starts after it.
    pub start_at: Option<DateTime<Utc>>,
    pub late_start: LateStart,
    /// How https connections verify the target and present this side (`--ca-cert`, …).
    pub tls: TlsSettings,
    /// `--resolve`: the address connections to the target go to, instead of its host's.
    pub resolve: Option<std::net::SocketAddr>,
    /// `--compare`: a baseline that gets every request too.
    pub compare: Option<CompareConfig>,
}

/// What a run that starts after `--start-at` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LateStart {
    /// Refuse to start (exit 2).
    #[default]
    Refuse,
    /// Keep the common T0; requests already due get `skipped_late` rows.
    Skip,
}

impl ReplayConfig {
    /// A configuration with the CLI's defaults, for tests and library users.
    pub fn new(inputs: Vec<Input>, target: Target, rate: Rate, out: PathBuf) -> ReplayConfig {
        ReplayConfig {
            inputs,
            format: FormatChoice::Auto,
            target,
            shape: match rate {
                Rate::PerSecond(n) => Shape::steady(n),
                Rate::Max => Shape::Unpaced,
            },
            rate_ceiling: None,
            batch: 1,
            release_every: crate::pace::timer::DEFAULT_RELEASE_EVERY,
            duration: None,
            looping: false,
            concurrency: 64,
            timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            out,
            xlsx: None,
            summary_json: None,
            progress: ProgressMode::Never,
            queue_capacity: 8192,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_bad_lines: None,
            threads: 1,
            http_version: HttpVersion::default(),
            rules: PlanRules::default(),
            host_guard: HostGuard::default(),
            redactor: Redactor::default(),
            follow_redirects: false,
            use_env_proxy: false,
            dry_run: false,
            abort_on: Vec::new(),
            prom_abort: Vec::new(),
            prometheus: None,
            prometheus_every: Duration::from_secs(10),
            shard: None,
            start_at: None,
            late_start: LateStart::Refuse,
            tls: TlsSettings::default(),
            resolve: None,
            compare: None,
        }
    }
}

pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl TryFrom<&ReplayOptions> for ReplayConfig {
    type Error = ConfigError;

    fn try_from(args: &ReplayOptions) -> Result<Self, ConfigError> {
        if args.files.is_empty() {
            return Err(bad("FILES", "no log file given (name one or more, or `-` for stdin, or `files` in --config)"));
        }
        let required = |v: &Option<String>, flag: &'static str, what: &str| {
            v.clone().ok_or_else(|| bad(flag, format!("required: {what} (on the command line or in --config)")))
        };
        let target = parse_target(&required(&args.target, "--target", "where to send, e.g. http://127.0.0.1:8080")?)
            .map_err(|m| bad("--target", m))?;
        let target = kafka::with_flags(target, args)?;
        let tls = TlsSettings::from_options(args, &target)?;
        let resolve = args.resolve.as_deref().map(|r| tls::parse_resolve(r, &target)).transpose()?;
        let compare = compare_config(args, &target)?;
        let concurrency = within("--concurrency", args.concurrency.unwrap_or(64), CONCURRENCY)?;
        let batch = within("--batch", args.batch.unwrap_or(1), BATCH)?;
        let (shape, duration) = shape_and_duration(args)?;
        let late_start = match args.late_start.as_deref().map(str::trim) {
            None | Some("refuse") => LateStart::Refuse,
            Some("skip") => LateStart::Skip,
            Some(other) => return Err(bad("--late-start", format!("'{other}': expected refuse or skip"))),
        };
        let now = Utc::now();
        let start_at =
            args.start_at.as_deref().map(|t| parse_start_at(t, now)).transpose().map_err(|m| bad("--start-at", m))?;
        if let Some(start) = start_at
            && start < now
            && late_start == LateStart::Refuse
        {
            let late = (now - start).to_std().unwrap_or_default();
            return Err(bad(
                "--start-at",
                format!(
                    "{} passed {} ago: this shard would start late (give a later time, or --late-start skip to keep \
                     the common start and skip what is already due)",
                    start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    crate::display::human_duration(late)
                ),
            ));
        }
        if args.late_start.is_some() && start_at.is_none() {
            return Err(bad("--late-start", "says what to do when a run starts after --start-at; it needs --start-at"));
        }
        if let Some(peak) = shape.peak_rate()
            && f64::from(batch) > peak * 3600.0
        {
            return Err(bad("--batch", format!("{batch} requests at {peak}/s would be more than an hour apart")));
        }
        let queue_capacity = within("--queue-capacity", args.queue_capacity.unwrap_or(8192), QUEUE_CAPACITY)?;
        let threads = within("--threads", args.threads.unwrap_or(1), THREADS)?;
        let timeout_flag =
            |flag: &'static str, v: &Option<String>| duration_within(flag, v.as_deref().unwrap_or("10s"), TIMEOUT);
        let regexes = |flag: &'static str, list: &[String]| -> Result<Vec<regex::bytes::Regex>, ConfigError> {
            list.iter()
                .map(|r| {
                    regex::bytes::Regex::new(r)
                        .map_err(|e| bad(flag, format!("'{r}' is not a valid regex: {}", one_line(&e.to_string()))))
                })
                .collect()
        };
        let filters = Filters {
            include: regexes("--include", &args.include)?,
            exclude: regexes("--exclude", &args.exclude)?,
            orig_status: args
                .orig_status
                .as_deref()
                .map(StatusSet::parse)
                .transpose()
                .map_err(|m| bad("--orig-status", m))?,
            from: args.from.as_deref().map(parse_time).transpose().map_err(|m| bad("--from", m))?,
            until: args.until.as_deref().map(parse_time).transpose().map_err(|m| bad("--until", m))?,
            exclude_user_agent: regexes("--exclude-user-agent", &args.exclude_user_agent)?,
            sample: args
                .sample
                .as_deref()
                .map(|s| Sample::parse(s, args.sample_seed.unwrap_or(0)))
                .transpose()
                .map_err(|m| bad("--sample", m))?,
        };
        if let (Some(from), Some(until)) = (filters.from, filters.until)
            && from >= until
        {
            return Err(bad("--until", "must be later than --from"));
        }
        if args.host_header.is_some() && args.preserve_host {
            return Err(bad("--host-header", "cannot be combined with --preserve-host; choose one"));
        }
        let host = match (&args.host_header, args.preserve_host) {
            (Some(h), _) => HostRule::Fixed(
                HeaderValue::from_str(h.trim())
                    .map_err(|_| bad("--host-header", format!("'{h}' is not a valid Host value")))?,
            ),
            (None, true) => HostRule::Logged,
            (None, false) => HostRule::Target,
        };
        let drop_headers = args
            .drop_header
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.trim().as_bytes())
                    .map(|n| n.as_str().to_string())
                    .map_err(|_| bad("--drop-header", format!("'{h}' is not a header name")))
            })
            .collect::<Result<_, _>>()?;
        let add_headers =
            args.header.iter().enumerate().map(|(i, h)| parse_header(i + 1, h)).collect::<Result<_, _>>()?;
        let patterns = |flag: &'static str, list: &[String]| -> Result<Vec<HostPattern>, ConfigError> {
            list.iter().map(|p| HostPattern::parse(p).map_err(|m| bad(flag, m))).collect()
        };
        let host_guard = HostGuard {
            deny: patterns("--deny-host", &args.deny_host)?,
            allow: patterns("--allow-host", &args.allow_host)?,
            production_ok: args.i_know_this_is_production,
        };
        let redactor =
            Redactor::new(&args.redact_header, args.mask_query_params.as_deref().unwrap_or(DEFAULT_MASKED_QUERY))
                .map_err(|e| bad("--mask-query-params", format!("not a valid regex: {}", one_line(&e.to_string()))))?;
        if let Some(h) = args.redact_header.iter().find(|h| HeaderName::from_bytes(h.trim().as_bytes()).is_err()) {
            return Err(bad("--redact-header", format!("'{h}' is not a header name")));
        }
        let (prom_abort, abort_on): (Vec<&String>, Vec<&String>) =
            args.abort_on.iter().partition(|c| c.trim_start().starts_with(crate::prom::PREFIX));
        let abort_on: Vec<AbortCondition> = abort_on
            .into_iter()
            .map(|c| AbortCondition::parse(c).map_err(|m| bad("--abort-on", m)))
            .collect::<Result<_, _>>()?;
        let prom_abort: Vec<PromCheck> = prom_abort
            .into_iter()
            .map(|c| PromCheck::parse(c).map_err(|m| bad("--abort-on", m)))
            .collect::<Result<_, _>>()?;
        let prometheus =
            args.prometheus.as_deref().map(Prometheus::parse).transpose().map_err(|m| bad("--prometheus", m))?;
        let prom_asserted = args.assert.iter().any(|a| a.trim_start().starts_with(crate::prom::PREFIX));
        if prometheus.is_none() && (!prom_abort.is_empty() || prom_asserted) {
            return Err(bad("--prometheus", "required by the 'prom:' assertions and conditions: where to query"));
        }
        let prometheus_every = duration_within(
            "--prometheus-every",
            args.prometheus_every.as_deref().unwrap_or("10s"),
            Duration::from_secs(1)..=Duration::from_secs(3600),
        )?;
        crate::sink::abort::check_against(&abort_on, &shape).map_err(|m| bad("--abort-on", m))?;
        let (out, xlsx) = results_paths(args.out.as_deref(), args.xlsx.as_deref())?;
        let http_version =
            HttpVersion::parse(args.http_version.as_deref(), &target).map_err(|m| bad("--http-version", m))?;
        if compare.is_some() && http_version != HttpVersion::Http1 {
            // The HTTP/2 path does not fold response bodies into the comparison's digests yet.
            return Err(bad("--compare", "compares HTTP/1.1 exchanges only for now: drop --http-version or give 1.1"));
        }
        Ok(ReplayConfig {
            inputs: args.files.iter().map(|f| Input::from_arg(f)).collect(),
            format: FormatChoice::from_flag(args.format.as_deref().unwrap_or("auto"))?,
            target,
            shape,
            rate_ceiling: None,
            batch,
            release_every: match &args.release_every {
                Some(text) => duration_within("--release-every", text, RELEASE_EVERY)?,
                None => crate::pace::timer::DEFAULT_RELEASE_EVERY,
            },
            duration,
            looping: duration.is_some() && !args.once,
            concurrency,
            timeout: timeout_flag("--timeout", &args.timeout)?,
            drain_timeout: timeout_flag("--drain-timeout", &args.drain_timeout)?,
            out,
            xlsx,
            summary_json: args.summary_json.clone(),
            progress: args.progress.unwrap_or(ProgressMode::Auto),
            queue_capacity,
            max_line_bytes: max_line_bytes(args.max_line_bytes)?,
            max_bad_lines: args
                .max_bad_lines
                .as_deref()
                .map(|s| parse_bad_line_limit(s).map_err(|m| bad("--max-bad-lines", m)))
                .transpose()?,
            threads,
            http_version,
            rules: PlanRules {
                methods: parse_methods(args.allow_methods.as_deref().unwrap_or(DEFAULT_METHODS))
                    .map_err(|m| bad("--allow-methods", m))?,
                filters,
                add_headers,
                drop_headers,
                host,
                skip_bodyless: args.skip_bodyless,
                production_ok: args.i_know_this_is_production,
                seq_header: args
                    .seq_header
                    .as_deref()
                    .map(|h| {
                        HeaderName::from_bytes(h.trim().as_bytes())
                            .map_err(|_| bad("--seq-header", format!("'{h}' is not a header name")))
                    })
                    .transpose()?,
                sessions: args
                    .sessions
                    .as_deref()
                    .map(SessionKey::parse)
                    .transpose()
                    .map_err(|m| bad("--sessions", m))?,
                // Seeded like --sample (there is no seed of its own yet); its draws are kept apart.
                mix: args
                    .mix
                    .as_deref()
                    .map(|m| Mix::parse(m, args.sample_seed.unwrap_or(0)))
                    .transpose()
                    .map_err(|m| bad("--mix", m))?,
            },
            host_guard,
            redactor,
            follow_redirects: args.follow_redirects,
            use_env_proxy: args.use_env_proxy,
            dry_run: args.dry_run,
            abort_on,
            prom_abort,
            prometheus,
            prometheus_every,
            shard: args
                .shard
                .as_deref()
                .map(|s| Shard::parse(s, |name| std::env::var(name).ok()))
                .transpose()
                .map_err(|m| bad("--shard", m))?,
            start_at,
            late_start,
            tls,
            resolve,
            compare,
        })
    }
}

/// `--compare` and its options: the baselines are URLs (not `mock`), the rules only with a baseline.
fn compare_config(args: &ReplayOptions, target: &Target) -> Result<Option<CompareConfig>, ConfigError> {
    let url = |flag: &'static str, text: &str| match parse_target(text).map_err(|m| bad(flag, m))? {
        Target::Url(url) if url.username().is_empty() && url.password().is_none() => Ok(url),
        Target::Url(_) => Err(bad(flag, "credentials in the URL are not accepted; send them with --header")),
        Target::Mock => Err(bad(flag, "a baseline is a URL; start `sluice mock` and give its URL")),
        Target::Kafka(_) => Err(bad(flag, "a baseline is an http(s) URL: a Kafka topic gives no answers to compare")),
    };
    if args.compare.is_some() && matches!(target, Target::Kafka(_)) {
        return Err(bad(
            "--compare",
            "compares the HTTP answers of a target and a baseline; a kafka:// target has none (an acknowledgement is \
             no answer to compare)",
        ));
    }
    let Some(baseline) = args.compare.as_deref() else {
        let stray = [
            ("--compare-noise", args.compare_noise.is_some()),
            ("--ignore-json-path", !args.ignore_json_path.is_empty()),
            ("--ignore-regex", !args.ignore_regex.is_empty()),
            ("--compare-body-limit", args.compare_body_limit.is_some()),
        ];
        return match stray.into_iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(bad(flag, "compares the target with a baseline: it needs --compare URL")),
            None => Ok(None),
        };
    };
    let baseline = url("--compare", baseline)?;
    if *target == Target::Url(baseline.clone()) {
        return Err(bad("--compare", "is the target itself: give the baseline's URL"));
    }
    let noise = args.compare_noise.as_deref().map(|t| url("--compare-noise", t)).transpose()?;
    if noise.as_ref() == Some(&baseline) {
        return Err(bad("--compare-noise", "is the baseline itself: give a second instance of the baseline"));
    }
    let ignore_json_paths = args
        .ignore_json_path
        .iter()
        .map(|p| JsonPath::parse(p).map_err(|m| bad("--ignore-json-path", m)))
        .collect::<Result<_, _>>()?;
    let ignore_regexes = args
        .ignore_regex
        .iter()
        .map(|r| {
            regex::bytes::Regex::new(r)
                .map_err(|e| bad("--ignore-regex", format!("'{r}' is not a valid regex: {}", one_line(&e.to_string()))))
        })
        .collect::<Result<_, _>>()?;
    let body_limit =
        within("--compare-body-limit", args.compare_body_limit.unwrap_or(DEFAULT_BODY_LIMIT), 1024..=MAX_BODY_LIMIT)?;
    let leaves = noise.is_some();
    Ok(Some(CompareConfig {
        baseline,
        noise,
        rules: BodyRules { ignore_json_paths, ignore_regexes, body_limit, leaves },
    }))
}

/// `--start-at` as a wall-clock time: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` in UTC, or `now+D`.
pub fn parse_start_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match text.trim().strip_prefix("now+") {
        Some(d) => {
            let d = parse_duration(d).map_err(|m| format!("'{text}': {m}"))?;
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| format!("'{text}' is too far away"))
        }
        None => parse_time(text),
    }
}

/// `--header 'Name: value'` or `'Name: @file'`. Messages never repeat the value: it may be a secret.
fn parse_header(index: usize, text: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let expected = "expected 'Name: value' or 'Name: @file' (the value is not shown here)";
    let Some((name, value)) = text.split_once(':') else {
        return Err(bad("--header", format!("header #{index} has no ':' between name and value; {expected}")));
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| bad("--header", format!("header #{index}: '{}' is not a header name; {expected}", name.trim())))?;
    let value = value.trim();
    let value = match value.strip_prefix('@') {
        Some(path) => read_small_file(Path::new(path.trim()), HEADER_FILE_BYTES)
            .map_err(|e| bad("--header", format!("{name}: cannot read the value from {}: {e}", path.trim())))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        None => value.to_string(),
    };
    let value = HeaderValue::from_str(&value)
        .map_err(|_| bad("--header", format!("{name}: the value has characters a header cannot carry; {expected}")))?;
    Ok((name, value))
}

/// The CSV and the workbook: `--out FILE.xlsx` names the workbook, with the CSV beside it as
/// FILE.csv (the CSV is always written: it is the record the workbook is built from).
fn results_paths(out: Option<&Path>, xlsx: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>), ConfigError> {
    let is_xlsx = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    let (csv, xlsx) = match (out, xlsx) {
        (Some(out), Some(xlsx)) if is_xlsx(out) && out != xlsx => {
            return Err(bad("--xlsx", format!("--out {} already names the workbook; give one of them", out.display())));
        }
        (Some(out), _) if is_xlsx(out) => (out.with_extension("csv"), Some(out.to_path_buf())),
        (out, xlsx) => (out.map_or_else(default_out_path, Path::to_path_buf), xlsx.map(Path::to_path_buf)),
    };
    if xlsx.as_deref() == Some(csv.as_path()) {
        return Err(bad("--xlsx", format!("{} is the results CSV; give the workbook another name", csv.display())));
    }
    Ok((csv, xlsx))
}

fn default_out_path() -> PathBuf {
    PathBuf::from(format!("sluice-{}.csv", chrono::Local::now().format("%Y%m%d-%H%M%S")))
}

pub fn parse_rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && (0.001..=10_000_000.0).contains(&n) => Ok(Rate::PerSecond(n)),
        Ok(_) => Err(format!(
            "'{text}' must be more than 0 (at least 0.001) and at most 10000000 requests per second, or 'max'"
        )),
        Err(_) => Err(format!("'{text}' is not a number; expected requests per second (e.g. 200) or 'max'")),
    }
}

pub fn parse_target(text: &str) -> Result<Target, String> {
    if text == "mock" {
        return Ok(Target::Mock);
    }
    if text.starts_with("kafka://") {
        return kafka::parse_topic_address(text).map(|topic| Target::Kafka(Box::new(kafka::KafkaTarget::to(topic))));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("'{text}' is not a URL ({e}); expected http(s)://host[:port][/prefix] or 'mock'"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{text}': only http and https targets are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{text}' has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the text holds the secret.
        return Err("credentials in the URL (user:password@) are not accepted: they would show in every output and \
                    file; send them in a header (--header 'Authorization: Basic …', `headers` for the daemon)"
            .into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{text}': a target may carry a path prefix but no query or fragment"));
    }
    Ok(Target::Url(url))
}

pub fn parse_bad_line_limit(text: &str) -> Result<BadLineLimit, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(BadLineLimit::Percent(v)),
            _ => Err(format!("'{text}' must be a percentage from 0% to 100%, or a count")),
        };
    }
    t.parse::<u64>()
        .map(BadLineLimit::Count)
        .map_err(|_| format!("'{text}' must be a count (e.g. 100) or a percentage (e.g. 5%)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::parse_duration;
    use crate::plan::MethodFilter;

    fn valid_args() -> ReplayOptions {
        ReplayOptions {
            files: vec![PathBuf::from("access.log")],
            target: Some("http://127.0.0.1:8080".into()),
            rate: Some("100".into()),
            ..ReplayOptions::default()
        }
    }

    #[test]
    fn every_bad_traffic_shape_names_its_flag_and_what_is_allowed() {
        type Edit = fn(&mut ReplayOptions);
        fn shaped(a: &mut ReplayOptions, speed: Option<&str>, stages: Option<&str>) {
            a.rate = None;
            a.speed = speed.map(String::from);
            a.stages = stages.map(String::from);
        }
        let cases: [(&str, Edit, &str, &str); 15] = [
            ("no rate at all", |a| a.rate = None, "--rate", "or --stages for ramps, --speed"),
            ("speed 0", |a| shaped(a, Some("0"), None), "--speed", "from 0.001 to 1000"),
            ("speed -2", |a| shaped(a, Some("-2"), None), "--speed", "from 0.001 to 1000"),
            ("speed fast", |a| shaped(a, Some("fast"), None), "--speed", "must be a number"),
            ("speed with rate", |a| a.speed = Some("2".into()), "--speed", "cannot be combined with --rate"),
            ("stages with rate", |a| a.stages = Some("1s:5".into()), "--stages", "cannot be combined with --rate"),
            (
                "stages with speed",
                |a| shaped(a, Some("2"), Some("1s:5")),
                "--stages",
                "cannot be combined with --speed",
            ),
            (
                "stages garbage",
                |a| shaped(a, None, Some("30s")),
                "--stages",
                "expected DURATION:RATE or DURATION:FROM-TO",
            ),
            ("stages bad rate", |a| shaped(a, None, Some("30s:fast")), "--stages", "'fast' is not a rate"),
            ("stages too long", |a| shaped(a, None, Some("20d:1,20d:1")), "--stages", "at most 30d"),
            (
                "stages with duration",
                |a| {
                    shaped(a, None, Some("1m:5"));
                    a.duration = Some("10s".into());
                },
                "--duration",
                "--stages set the run's length (1m)",
            ),
            ("arrivals odd", |a| a.arrivals = Some("bursty".into()), "--arrivals", "expected uniform or poisson"),
            (
                "poisson at max",
                |a| (a.rate, a.arrivals) = (Some("max".into()), Some("poisson".into())),
                "--arrivals",
                "no arrivals to spread",
            ),
            (
                "poisson with speed",
                |a| {
                    shaped(a, Some("2"), None);
                    a.arrivals = Some("poisson".into());
                },
                "--arrivals",
                "--speed keeps the log's own arrivals",
            ),
            ("max-gap without speed", |a| a.max_gap = Some("2s".into()), "--max-gap", "it needs --speed"),
        ];
        for (name, edit, flag, message) in cases {
            let mut args = valid_args();
            edit(&mut args);
            match ReplayConfig::try_from(&args) {
                Ok(_) => panic!("{name}: accepted"),
                Err(e) => {
                    assert_eq!(e.flag, flag, "{name}: {e}");
                    assert!(e.message.contains(message), "{name}: {e}");
                }
            }
        }
        let mut stages = valid_args();
        shaped(&mut stages, None, Some("30s:0-200,1m:200"));
        stages.arrivals = Some("poisson".into());
        stages.seed = Some(9);
        let config = ReplayConfig::try_from(&stages).unwrap();
        assert_eq!((config.duration, config.looping), (Some(Duration::from_secs(90)), true), "stages set the length");
        assert_eq!(config.shape.seed(), Some(9));
        let mut speed = valid_args();
        shaped(&mut speed, Some("0.5"), None);
        speed.max_gap = Some("2s".into());
        let config = ReplayConfig::try_from(&speed).unwrap();
        assert_eq!(config.shape, Shape::Logged { speed: 0.5, max_gap: Some(Duration::from_secs(2)) });
        assert_eq!(config.duration, None, "without --duration, once through the log");
    }

    #[test]
    fn every_size_like_option_is_bounded_with_a_message_naming_the_flag_and_range() {
        type Edit = fn(&mut ReplayOptions);
        let cases: [(&str, Edit, &str, &str); 24] = [
            ("queue-capacity 0", |a| a.queue_capacity = Some(0), "--queue-capacity", "between 1 and 1000000"),
            (
                "queue-capacity 10M",
                |a| a.queue_capacity = Some(10_000_000),
                "--queue-capacity",
                "between 1 and 1000000",
            ),
            ("concurrency 0", |a| a.concurrency = Some(0), "--concurrency", "between 1 and 100000"),
            ("concurrency 1M", |a| a.concurrency = Some(1_000_000), "--concurrency", "between 1 and 100000"),
            ("batch 0", |a| a.batch = Some(0), "--batch", "between 1 and 10000"),
            ("batch 1M", |a| a.batch = Some(1_000_000), "--batch", "between 1 and 10000"),
            (
                "release-every 10us",
                |a| a.release_every = Some("10us".into()),
                "--release-every",
                "between 50us and 100ms",
            ),
            ("release-every 1s", |a| a.release_every = Some("1s".into()), "--release-every", "between 50us and 100ms"),
            ("threads 0", |a| a.threads = Some(0), "--threads", "between 1 and 256"),
            ("threads 10k", |a| a.threads = Some(10_000), "--threads", "between 1 and 256"),
            ("timeout 2h", |a| a.timeout = Some("2h".into()), "--timeout", "between 1ms and 1h"),
            ("timeout 0.1ms", |a| a.timeout = Some("0.0001".into()), "--timeout", "between 1ms and 1h"),
            ("drain-timeout 1d", |a| a.drain_timeout = Some("1d".into()), "--drain-timeout", "between 1ms and 1h"),
            ("duration 31d", |a| a.duration = Some("31d".into()), "--duration", "between 1ms and 30d"),
            ("duration 0s", |a| a.duration = Some("0s".into()), "--duration", "(between 1ms and 30d)"),
            ("rate 0", |a| a.rate = Some("0".into()), "--rate", "(at least 0.001) and at most 10000000"),
            ("rate 1e-6", |a| a.rate = Some("0.000001".into()), "--rate", "(at least 0.001) and at most 10000000"),
            ("rate 1e9", |a| a.rate = Some("1000000000".into()), "--rate", "(at least 0.001) and at most 10000000"),
            ("max-line-bytes 100", |a| a.max_line_bytes = Some(100), "--max-line-bytes", "between 1024 and 16777216"),
            (
                "max-line-bytes 1G",
                |a| a.max_line_bytes = Some(1 << 30),
                "--max-line-bytes",
                "between 1024 and 16777216",
            ),
            ("max-bad-lines 200%", |a| a.max_bad_lines = Some("200%".into()), "--max-bad-lines", "0% to 100%"),
            ("sample 150%", |a| a.sample = Some("150%".into()), "--sample", "0% to 100%"),
            (
                "header @/dev/zero",
                |a| a.header = vec!["X-Big: @/dev/zero".into()],
                "--header",
                "longer than 65536 bytes",
            ),
            (
                "batch an hour apart",
                |a| (a.rate, a.batch) = (Some("0.01".into()), Some(100)),
                "--batch",
                "an hour apart",
            ),
        ];
        for (name, edit, flag, message) in cases {
            let mut args = valid_args();
            edit(&mut args);
            match ReplayConfig::try_from(&args) {
                Ok(_) => panic!("{name}: accepted"),
                Err(e) => {
                    assert_eq!(e.flag, flag, "{name}: {e}");
                    assert!(e.message.contains(message), "{name}: {e}");
                }
            }
        }
        let config = ReplayConfig::try_from(&valid_args()).expect("the defaults are within every bound");
        assert_eq!(config.shape, Shape::steady(100.0));
        assert_eq!(config.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert_eq!((config.queue_capacity, config.concurrency, config.batch, config.threads), (8192, 64, 1, 1));
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let mut args = valid_args();
        args.queue_capacity = Some(1_000_000);
        args.concurrency = Some(100_000);
        args.batch = Some(10_000);
        args.rate = Some("10000000".into());
        args.threads = Some(256);
        args.timeout = Some("1h".into());
        args.drain_timeout = Some("1ms".into());
        args.duration = Some("30d".into());
        args.max_line_bytes = Some(16 * 1024 * 1024);
        let config = ReplayConfig::try_from(&args).unwrap();
        assert_eq!(config.max_line_bytes, MAX_LINE_BYTES_LIMIT);
        assert_eq!(config.duration, Some(Duration::from_secs(30 * 86_400)));
        args.max_line_bytes = Some(1024);
        args.rate = Some("0.001".into());
        args.batch = Some(1);
        assert_eq!(ReplayConfig::try_from(&args).unwrap().max_line_bytes, 1024);
    }

    #[test]
    fn a_config_file_that_is_not_a_page_of_options_is_refused() {
        let err = options::load_config_file(Path::new("/dev/zero")).err().unwrap();
        assert_eq!(err.flag, "--config");
        assert!(err.message.contains("longer than 1048576 bytes"), "{err}");
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("2"), Duration::from_secs(2));
        for bad in ["", "0s", "-5s", "10x", "abc", "1h30", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn rates_targets_methods_limits() {
        assert_eq!(parse_rate("200").unwrap(), Rate::PerSecond(200.0));
        assert_eq!(parse_rate("MAX").unwrap(), Rate::Max);
        for bad in ["0", "-1", "nan", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_target("mock").unwrap(), Target::Mock);
        assert!(matches!(parse_target("http://127.0.0.1:8080/prefix").unwrap(), Target::Url(_)));
        for bad in ["ftp://x", "127.0.0.1:80", "http://h/?q=1", "nonsense"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_methods("get, post").unwrap(), MethodFilter::Only(vec!["GET".into(), "POST".into()]));
        assert_eq!(parse_methods("all").unwrap(), MethodFilter::All);
        assert!(parse_methods("GE T").is_err());
        assert!(parse_methods(",").is_err());
        assert_eq!(parse_bad_line_limit("5%").unwrap(), BadLineLimit::Percent(5.0));
        assert_eq!(parse_bad_line_limit("100").unwrap(), BadLineLimit::Count(100));
        assert!(parse_bad_line_limit("150%").is_err());
        assert!(parse_bad_line_limit("x").is_err());
    }

    #[test]
    fn an_xlsx_out_names_the_workbook_and_puts_the_csv_beside_it() {
        let paths = |out: Option<&str>, xlsx: Option<&str>| {
            results_paths(out.map(Path::new), xlsx.map(Path::new))
                .map(|(csv, xlsx)| (csv.display().to_string(), xlsx.map(|x| x.display().to_string())))
        };
        assert_eq!(paths(Some("r/run.XLSX"), None).unwrap(), ("r/run.csv".into(), Some("r/run.XLSX".into())));
        assert_eq!(paths(Some("run.xlsx"), Some("run.xlsx")).unwrap(), ("run.csv".into(), Some("run.xlsx".into())));
        assert_eq!(paths(Some("run.csv"), Some("book.xlsx")).unwrap(), ("run.csv".into(), Some("book.xlsx".into())));
        assert_eq!(paths(Some("run.csv"), None).unwrap(), ("run.csv".into(), None));
        assert!(paths(None, Some("b.xlsx")).unwrap().0.starts_with("sluice-"));
        assert_eq!(paths(Some("a.xlsx"), Some("b.xlsx")).unwrap_err().flag, "--xlsx");
        assert_eq!(paths(Some("run.csv"), Some("run.csv")).unwrap_err().flag, "--xlsx");
    }
}
