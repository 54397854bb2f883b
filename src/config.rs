//! Validated configuration: raw flags are checked once here, so the engine never re-validates.
//! Every error names the flag and what is allowed; the binary maps them to exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use sluice_parsers::Format;

use crate::cli::{ProgressMode, ReplayArgs};
use crate::source::Input;

#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { flag, message: message.into() }
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
}

/// How many unreadable log lines end a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadLineLimit {
    Count(u64),
    /// A share of the lines read so far, in percent; checked once enough lines were read to mean something.
    Percent(f64),
}

/// Which methods are replayed.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodFilter {
    All,
    Only(Vec<String>),
}

impl MethodFilter {
    pub fn allows(&self, method: &[u8]) -> bool {
        match self {
            MethodFilter::All => true,
            MethodFilter::Only(list) => list.iter().any(|m| m.as_bytes() == method),
        }
    }
}

/// Either a named format or `auto`, which is decided from the first lines of the input.
#[derive(Debug, Clone)]
pub enum FormatChoice {
    Auto,
    Fixed(Format),
}

impl FormatChoice {
    pub fn from_flag(spec: &str) -> Result<FormatChoice, ConfigError> {
        if spec == "auto" {
            return Ok(FormatChoice::Auto);
        }
        Format::from_spec(spec).map(FormatChoice::Fixed).map_err(|e| bad("--format", e.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub inputs: Vec<Input>,
    pub format: FormatChoice,
    pub target: Target,
    pub rate: Rate,
    pub batch: u32,
    pub duration: Option<Duration>,
    /// Loop the log when it runs out (a duration without `--once`).
    pub looping: bool,
    pub concurrency: usize,
    pub timeout: Duration,
    pub drain_timeout: Duration,
    pub out: PathBuf,
    pub summary_json: Option<PathBuf>,
    pub progress: ProgressMode,
    pub queue_capacity: usize,
    pub methods: MethodFilter,
    pub max_bad_lines: Option<BadLineLimit>,
    pub threads: usize,
}

impl ReplayConfig {
    /// A configuration with the CLI's defaults, for tests and library users.
    pub fn new(inputs: Vec<Input>, target: Target, rate: Rate, out: PathBuf) -> ReplayConfig {
        ReplayConfig {
            inputs,
            format: FormatChoice::Auto,
            target,
            rate,
            batch: 1,
            duration: None,
            looping: false,
            concurrency: 64,
            timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            out,
            summary_json: None,
            progress: ProgressMode::Never,
            queue_capacity: 8192,
            methods: parse_methods("GET,HEAD,OPTIONS").expect("valid default"),
            max_bad_lines: None,
            threads: 1,
        }
    }
}

impl TryFrom<&ReplayArgs> for ReplayConfig {
    type Error = ConfigError;

    fn try_from(args: &ReplayArgs) -> Result<Self, ConfigError> {
        let duration =
            args.duration.as_deref().map(|d| parse_duration(d).map_err(|m| bad("--duration", m))).transpose()?;
        let concurrency = args.concurrency;
        if concurrency == 0 || concurrency > 100_000 {
            return Err(bad("--concurrency", "must be between 1 and 100000"));
        }
        if args.batch == 0 || args.batch > 1_000_000 {
            return Err(bad("--batch", "must be between 1 and 1000000"));
        }
        let rate = parse_rate(&args.rate).map_err(|m| bad("--rate", m))?;
        if let Rate::PerSecond(n) = rate
            && f64::from(args.batch) > n * 3600.0
        {
            return Err(bad("--batch", format!("{} requests at {n}/s would be more than an hour apart", args.batch)));
        }
        if args.queue_capacity == 0 {
            return Err(bad("--queue-capacity", "must be at least 1"));
        }
        if args.threads == 0 || args.threads > 256 {
            return Err(bad("--threads", "must be between 1 and 256"));
        }
        let timeout = parse_duration(&args.timeout).map_err(|m| bad("--timeout", m))?;
        let drain_timeout = parse_duration(&args.drain_timeout).map_err(|m| bad("--drain-timeout", m))?;
        let out = args.out.clone().unwrap_or_else(default_out_path);
        Ok(ReplayConfig {
            inputs: args.files.iter().map(|f| Input::from_arg(f)).collect(),
            format: FormatChoice::from_flag(&args.format)?,
            target: parse_target(&args.target).map_err(|m| bad("--target", m))?,
            rate,
            batch: args.batch,
            duration,
            looping: duration.is_some() && !args.once,
            concurrency,
            timeout,
            drain_timeout,
            out,
            summary_json: args.summary_json.clone(),
            progress: args.progress,
            queue_capacity: args.queue_capacity,
            methods: parse_methods(&args.allow_methods).map_err(|m| bad("--allow-methods", m))?,
            max_bad_lines: args
                .max_bad_lines
                .as_deref()
                .map(|s| parse_bad_line_limit(s).map_err(|m| bad("--max-bad-lines", m)))
                .transpose()?,
            threads: args.threads,
        })
    }
}

fn default_out_path() -> PathBuf {
    PathBuf::from(format!("sluice-{}.csv", chrono::Local::now().format("%Y%m%d-%H%M%S")))
}

/// Reads `90s`, `10m`, `1h30m`, `250ms`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let allowed = "expected a duration like 90s, 10m, 1h30m or 250ms";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty; {allowed}"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| format!("'{text}' is out of range; {allowed}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], &rest[num_len..num_len + unit_len]);
        let value: f64 = num.parse().map_err(|_| format!("'{text}' is not a duration; {allowed}"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(format!("'{text}' has unknown unit '{unit}'; {allowed}")),
        };
        total += value * scale;
        rest = &rest[num_len + unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| format!("'{text}' is out of range; {allowed}"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

pub fn parse_rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 10_000_000.0 => Ok(Rate::PerSecond(n)),
        Ok(_) => Err(format!("'{text}' must be more than 0 and at most 10000000 requests per second, or 'max'")),
        Err(_) => Err(format!("'{text}' is not a number; expected requests per second (e.g. 200) or 'max'")),
    }
}

pub fn parse_target(text: &str) -> Result<Target, String> {
    if text == "mock" {
        return Ok(Target::Mock);
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("'{text}' is not a URL ({e}); expected http(s)://host[:port][/prefix] or 'mock'"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{text}': only http and https targets are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{text}' has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{text}': a target may carry a path prefix but no query or fragment"));
    }
    Ok(Target::Url(url))
}

/// HTTP method names are tokens; sluice accepts the upper-case ones servers log.
pub fn parse_methods(text: &str) -> Result<MethodFilter, String> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(MethodFilter::All);
    }
    let mut list = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let method = raw.to_ascii_uppercase();
        if method.len() > 20 || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return Err(format!("'{raw}' is not a method name; expected a list like GET,HEAD,POST or 'all'"));
        }
        list.push(method);
    }
    if list.is_empty() {
        return Err("no method given; expected a list like GET,HEAD,POST or 'all'".into());
    }
    Ok(MethodFilter::Only(list))
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
}
