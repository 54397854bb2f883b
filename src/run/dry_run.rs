//! `--dry-run`: parse, filter and rewrite one pass of the log exactly as a run would, and send
//! nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Prepared, RunError, prepare, spawn};
use crate::config::ReplayConfig;
use crate::control::RunControl;
use crate::pace::schedule::{LogClock, Schedule, Shape};
use crate::plan::read_ahead::footprint;
use crate::plan::reader::{ReaderStats, Reading, read_log};
use crate::plan::timeline::Timeline;
use crate::plan::{Planner, ReplayRequest};

/// What `--dry-run` found: the requests a run would send, without sending any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub format: String,
    pub target: String,
    /// The traffic shape, as the run's banner says it.
    pub plan: String,
    /// The first requests, as `METHOD URL` plus their headers (secrets redacted) and body size,
    /// after their due time (`+1.250s`) when the run is paced.
    pub first: Vec<String>,
    pub requests: u64,
    pub by_method: BTreeMap<String, u64>,
    pub by_host: BTreeMap<String, u64>,
    pub log: ReaderStats,
}

/// Requests a dry run describes one by one.
const DRY_RUN_SHOWN: usize = 20;

/// Parses, filters and rewrites one pass of the log exactly as a run would, and sends nothing.
pub fn dry_run(config: &ReplayConfig) -> Result<DryRun, RunError> {
    let Prepared { entries, target, mock: _mock } = prepare(config)?;
    let format = entries.format_name().to_string();
    let control = Arc::new(RunControl::new(None, true));
    let (queue_tx, queue_rx) = async_channel::bounded::<Vec<ReplayRequest>>(4);
    let planner = Planner::new(&target, config.rules.clone());
    let thread = spawn("sluice-reader", {
        let reading = Reading {
            bad_line_limit: config.max_bad_lines,
            timeline: matches!(config.shape, Shape::Logged { .. }).then(Timeline::new),
            ..Reading::default()
        };
        let control = control.clone();
        move || read_log(entries, planner, queue_tx, control, reading)
    })?;
    let mut report = DryRun {
        format,
        target: target.to_string(),
        plan: config.shape.describe(),
        first: Vec::new(),
        requests: 0,
        by_method: BTreeMap::new(),
        by_host: BTreeMap::new(),
        log: ReaderStats::default(),
    };
    // The same cursor a run uses: due times are a pure function of the requests.
    let mut schedule = Schedule::new(config.shape.clone(), config.batch, config.duration);
    for req in std::iter::from_fn(|| queue_rx.recv_blocking().ok()).flatten() {
        control.read_ahead.give_back(footprint(&req));
        let due = schedule.due(LogClock::of(&req));
        report.requests += 1;
        *report.by_method.entry(req.method.to_string()).or_default() += 1;
        let host = match req.headers.iter().find(|(n, _)| n == reqwest::header::HOST) {
            Some((_, v)) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            None => req
                .url
                .host_str()
                .map(|h| format!("{h}{}", req.url.port().map(|p| format!(":{p}")).unwrap_or_default()))
                .unwrap_or_default(),
        };
        *report.by_host.entry(host).or_default() += 1;
        if report.first.len() < DRY_RUN_SHOWN {
            let text = describe_request(&req, &config.redactor);
            report.first.push(match (config.shape.is_paced(), due) {
                (false, _) => text,
                (true, Some(due)) => format!("+{:.3}s  {text}", due.as_secs_f64()),
                (true, None) => format!("(after the last stage: not sent)  {text}"),
            });
        }
    }
    thread.join().map_err(|_| RunError::Internal("the reader thread panicked".into()))?;
    report.log = control.reader.lock().expect("not poisoned").clone();
    if let Some(fatal) = &report.log.fatal {
        return Err(RunError::Input(fatal.clone()));
    }
    Ok(report)
}

fn describe_request(req: &ReplayRequest, redactor: &crate::plan::safety::Redactor) -> String {
    let mut text = format!("{} {}", req.method, redactor.url(req.url.as_str()));
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        text.push_str(&format!("\n    {name}: {}", redactor.header_value(name.as_str(), &value)));
    }
    if let Some(body) = &req.body {
        text.push_str(&format!("\n    ({} body bytes)", body.len()));
    }
    text
}
