//! `sluice replay` as a user runs it: start the run, show progress, handle Ctrl-C and SIGTERM,
//! print the summary, choose the exit code.

use std::sync::Arc;

use crate::cli::progress::ProgressDisplay;
use crate::cli::push::{PushTarget, Pusher};
use crate::config::ReplayOptions;
use crate::config::{FormatChoice, ReplayConfig};
use crate::exit::Exit;
use crate::run::summary::Summary;
use crate::run::{DryRun, Run};
use crate::shutdown::Shutdown;

/// Runs a replay; returns how it ended.
pub fn run(args: &ReplayOptions) -> anyhow::Result<Exit> {
    // `--scenario`: the options that replay its generated log; the log lives until the run ends.
    let scenario = crate::cli::import::scenario_replay(args)?;
    let args = scenario.as_ref().map_or(args, |(options, _log)| options);
    let options = args.with_config_file().map_err(crate::exit::UsageError::from)?;
    let config = ReplayConfig::try_from(&options).map_err(crate::exit::UsageError::from)?;
    // Assertions are checked before anything is sent: a typo must not cost a six-hour soak.
    let checks = crate::cli::report::ReplayChecks::from_options(&options)?;
    checks.check_against(&config.shape)?;
    checks.check_prom_queries(&config.prom_abort)?;
    if config.dry_run {
        let report = crate::run::dry_run(&config).map_err(crate::exit::run_error)?;
        if matches!(config.format, FormatChoice::Auto) {
            eprintln!("sluice: --format auto chose {}", report.format);
        }
        eprint!("{}", dry_run_text(&report));
        return Ok(if report.requests == 0 { Exit::BadInput } else { Exit::Ok });
    }
    if let Some(path) = &config.xlsx {
        crate::export::xlsx::check_destination(path).map_err(|m| crate::exit::UsageError(format!("--xlsx {m}")))?;
    }
    // Bound before the run starts, so a taken port fails the command before anything is sent.
    let mut metrics_server = args.metrics_listen.map(crate::cli::metrics_server::MetricsServer::bind).transpose()?;
    let push: Vec<PushTarget> = options
        .push
        .iter()
        .map(|t| PushTarget::parse(t).map_err(|m| crate::exit::UsageError(format!("--push {m}"))))
        .collect::<Result<_, _>>()?;
    let metrics =
        (metrics_server.is_some() || !push.is_empty()).then(|| Arc::new(crate::sink::metrics::Metrics::new()));
    let auto = matches!(config.format, FormatChoice::Auto);
    let run = Run::start_with_metrics(config, metrics.clone()).map_err(crate::exit::run_error)?;
    if auto {
        eprintln!("sluice: --format auto chose {}", run.format_name());
    }
    let c = run.config();
    if let (Some(server), Some(metrics)) = (&mut metrics_server, metrics.clone()) {
        server.serve(metrics, run.handle(), c.shape.clone())?;
        eprintln!("sluice: metrics on http://{}/metrics while the run lasts", server.addr());
    }
    eprintln!(
        "sluice: replaying {} ({}) → {} at {}{}; results → {}",
        c.inputs.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
        run.format_name(),
        run.target_url(),
        c.shape.describe(),
        match (c.duration, c.looping) {
            (Some(d), true) => format!(" for {}", crate::display::human_duration(d)),
            (Some(d), false) => format!(" once, for at most {}", crate::display::human_duration(d)),
            (None, _) => " once through the log".into(),
        },
        match &c.xlsx {
            Some(xlsx) => format!("{} and {}", c.out.display(), xlsx.display()),
            None => c.out.display().to_string(),
        }
    );
    if c.tls.insecure {
        eprintln!("sluice: --insecure: the target's certificate is NOT verified; any server can answer for it");
    }

    let handle = run.handle();
    let shutdown = Shutdown::on_signals(
        {
            let handle = handle.clone();
            move |_| {
                eprintln!("\nsluice: stopping — waiting for requests in flight (press Ctrl-C again to quit at once)");
                handle.cancel();
            }
        },
        |_| eprintln!("sluice: quitting at once; the CSV holds what was flushed so far"),
    )?;
    let progress = ProgressDisplay::start(c.progress, handle.clone(), c.duration);
    let pusher = match (push.is_empty(), metrics) {
        (false, Some(metrics)) => {
            let (labelled, start_at, sharded) = (options.clone(), c.start_at, c.shard.is_some());
            let run_label = move |t0| {
                let start = start_at.or(if sharded { None } else { Some(t0) });
                crate::shard::write::run_id(&labelled, start).unwrap_or_default()
            };
            let shard = c.shard.map_or_else(|| "0/1".to_string(), |s| s.to_string());
            Some(Pusher::start(push.clone(), run_label, shard, metrics, handle.clone(), c.shape.clone())?)
        }
        _ => None,
    };
    let summary_json = c.summary_json.clone();
    // What the run's manifest needs once the run is over.
    let (finished_config, format) = (c.clone(), run.format_name().to_string());
    let (csv, shape, sharded) = (c.out.clone(), c.shape.clone(), c.shard.is_some());
    let xlsx = c.xlsx.clone();
    let target_url = run.target_url().to_string();
    let result = run.wait();
    progress.finish();
    drop(shutdown);

    let summary = result.map_err(crate::exit::run_error)?;
    eprint!("{}", summary.to_text());
    if let Some(pusher) = pusher {
        eprint!("{}", pusher.finish().to_text(&push));
    }
    let t0 = handle.t0_wall();
    match crate::shard::write::write_manifest(&options, &finished_config, &summary, t0, &format, None) {
        // Without its manifest a shard cannot be merged: the command fails.
        Err(e) if sharded => return Err(crate::exit::UsageError(format!("the shard's manifest: {e}")).into()),
        // An unsharded run's CSV is whole without it; the reports only miss the run's details.
        Err(e) => eprintln!("sluice: the run's manifest was not written: {e}"),
        Ok(()) => {}
    }
    if let Some(path) = summary_json {
        write_summary_json(&summary, &path)?;
    }
    // The report reads the CSV the run has just flushed; an interrupted run still gets it.
    // The window the target's metrics are judged over: from T0 to the end of the drain.
    let window = crate::prom::RunWindow { start: t0.unwrap_or_else(chrono::Utc::now), end: chrono::Utc::now() };
    let prom = checks.judge_prom(window);
    // The CSV is read back only for what needs it: `prom:` assertions alone do not.
    let analysed = (checks.reads_csv() || xlsx.is_some()).then(|| checks.analyse(&csv, &shape, sharded));
    let (passed, report_failed) = match analysed {
        None => (checks.print_prom(&prom), false),
        Some(Ok(report)) => {
            let passed = !checks.wanted() || checks.print(&report, &prom);
            let workbook = xlsx.as_deref().map(|path| {
                let run = workbook_run_lines(&summary, &target_url);
                let mut shown = serde_json::to_value(&options).unwrap_or_default();
                crate::config::options::redact_header_values(&mut shown);
                let options = crate::export::xlsx::lines_of(&shown);
                crate::cli::report::write_workbook(std::slice::from_ref(&csv), &report, &run, &options, path)
            });
            match workbook {
                Some(Err(e)) => {
                    eprintln!("sluice: {e}");
                    (passed, true)
                }
                _ => (passed, false),
            }
        }
        Some(Err(e)) => {
            eprintln!("sluice: report: {e}");
            (false, true)
        }
    };
    if summary.nothing_answered() {
        eprintln!("sluice: {}", summary.nothing_answered_text());
    }
    Ok(outcome_of(&summary, passed, report_failed))
}

/// The exit of a finished run, most serious first: interrupted; the input or the output failed;
/// nothing was answered (so nothing about the target was measured); a check failed; a log was
/// cut short (what was read of it was replayed).
fn outcome_of(summary: &Summary, assertions_passed: bool, report_failed: bool) -> Exit {
    if summary.interrupted {
        Exit::Interrupted
    } else if summary.log.fatal.is_some() || summary.output_error.is_some() || report_failed {
        Exit::BadInput
    } else if summary.nothing_answered() {
        Exit::NothingAnswered
    } else if !assertions_passed || summary.aborted_by.is_some() {
        Exit::AssertionFailed
    } else if !summary.log.incomplete.is_empty() {
        Exit::InputIncomplete
    } else {
        Exit::Ok
    }
}

/// What the workbook's Summary sheet says of the run, besides its options and the CSV's figures.
fn workbook_run_lines(summary: &Summary, target_url: &str) -> Vec<(String, serde_json::Value)> {
    use serde_json::json;
    let mut lines = vec![
        ("target".to_string(), json!(target_url)),
        ("log format".to_string(), json!(summary.format)),
        ("plan".to_string(), json!(summary.plan)),
        ("stopped by".to_string(), serde_json::to_value(summary.stopped_by).unwrap_or_default()),
        ("interrupted".to_string(), json!(summary.interrupted)),
        ("wall seconds".to_string(), json!((summary.wall_seconds * 100.0).round() / 100.0)),
    ];
    if let Some(shard) = &summary.shard {
        lines.push(("shard".to_string(), json!(shard)));
    }
    if let Some(seed) = summary.seed {
        lines.push(("seed".to_string(), json!(seed)));
    }
    if let Some(condition) = &summary.aborted_by {
        lines.push(("aborted by".to_string(), json!(condition)));
    }
    lines
}

fn dry_run_text(r: &DryRun) -> String {
    let mut t = format!("sluice replay --dry-run: nothing was sent — {} → {}\n", r.format, r.target);
    t += &format!("  plan       {}\n", r.plan);
    t += &format!("  would send {} requests in one pass of the log; the first {}:\n", r.requests, r.first.len());
    for req in &r.first {
        t += &format!("    {req}\n");
    }
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
    };
    t += &format!("  by method  {}\n  by host    {}\n", counts(&r.by_method), counts(&r.by_host));
    let log = &r.log;
    t += &format!(
        "  log        {} lines, {} accepted, {} rejected",
        log.lines_read, log.parse.accepted, log.parse.rejected
    );
    if log.parse.rejected > 0 {
        t += &format!(" ({})", log.parse.reasons_text());
    }
    if !log.plan.skipped.is_empty() {
        t += &format!("; skipped {}", counts(&log.plan.skipped));
    }
    t.push('\n');
    for cut in &log.incomplete {
        t += &format!("  warning    {cut}\n");
    }
    t
}

fn write_summary_json(summary: &Summary, path: &std::path::Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(summary)?;
    std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("--summary-json {}: {e}", path.display()))
}
