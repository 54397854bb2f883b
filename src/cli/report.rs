//! `sluice report` as a user runs it, and the checks `sluice replay --report/--assert` runs on its
//! own CSV once the run is over: flags checked first (a bad assertion stops before any reading),
//! then one streaming pass, then the exit code: 2 for unreadable input, 1 for a failed assertion.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::assert::Verdict;
use crate::analysis::render::{self, ReportFormat, text};
use crate::analysis::{self, Assertion, FoldError, Report, ReportOptions, RouteRule, Settings, ShardCheck, TargetRate};
use crate::cli::ReportArgs;
use crate::config::ReplayOptions;
use crate::config::{Rate, parse_rate};
use crate::duration::parse_duration;
use crate::exit::{Exit, UsageError};
use crate::export::xlsx;
use crate::pace::schedule::Shape;
use crate::prom::{PromCheck, Prometheus, RunWindow};
use crate::shard::manifest_beside;
use serde_json::Value;

pub fn run(args: &ReportArgs) -> anyhow::Result<Exit> {
    let settings = settings_from(args)?;
    if args.xlsx.is_some() && args.files.iter().any(|f| f == Path::new("-")) {
        return Err(UsageError("--xlsx reads the CSV twice (figures, then rows): give a file, not -".into()).into());
    }
    let report = analysis::analyse(&args.files, &settings).map_err(fold_error)?;
    if let Some(path) = &args.xlsx {
        write_workbook(&args.files, &report, &[], &options_from_manifests(&args.files), path)?;
    }
    let rendered = render::render(&report, args.format);
    let text_on_stdout = args.format == ReportFormat::Text && args.out.is_none();
    match &args.out {
        Some(path) => {
            std::fs::write(path, rendered).map_err(|e| UsageError(format!("--out {}: {e}", path.display())))?
        }
        None => std::io::stdout().lock().write_all(rendered.as_bytes())?,
    }
    if !text_on_stdout {
        // Whatever the format, a CI log shows what was skipped and what failed.
        eprint!("{}", problems_text(&report));
        if !report.assertions.is_empty() {
            eprint!("assertions\n{}", analysis::assert::verdicts_text(&report.assertions));
        }
    }
    Ok(outcome(&report))
}

/// Writes the workbook of `files` and their report to `path`, and says where on stderr.
pub fn write_workbook(
    files: &[PathBuf],
    report: &Report,
    run: &[(String, Value)],
    options: &[(String, Value)],
    path: &Path,
) -> Result<(), UsageError> {
    let contents = xlsx::Contents { files, report, run, options };
    let written =
        xlsx::write(&contents, path, xlsx::Layout::default()).map_err(|e| UsageError(format!("--xlsx {}", e)))?;
    let mut note =
        format!("sluice: workbook {}: {} rows on {} Results sheet(s)", path.display(), written.rows, written.sheets);
    if written.left_out > 0 {
        note += &format!(
            "; {} later rows are in the CSV only (the workbook holds {})",
            written.left_out,
            xlsx::Layout::default().max_rows()
        );
    }
    if written.cut_cells > 0 {
        note += &format!("; {} text cells cut at 32,767 characters", written.cut_cells);
    }
    eprintln!("{note}");
    Ok(())
}

/// The options of the run the files come from, when a shard manifest beside them says (shards
/// of one run share them): already redacted. Other CSVs do not record their options.
fn options_from_manifests(files: &[PathBuf]) -> Vec<(String, Value)> {
    files
        .iter()
        .find_map(|f| manifest_beside(f).ok().flatten())
        .map(|shard| xlsx::lines_of(&shard.manifest.options))
        .unwrap_or_default()
}

/// Unreadable rows are bad input (2) even when skipped; then failed assertions (1).
fn outcome(report: &Report) -> Exit {
    if report.unreadable_rows > 0 {
        Exit::BadInput
    } else if report.failed_assertions() > 0 {
        Exit::AssertionFailed
    } else {
        Exit::Ok
    }
}

fn problems_text(report: &Report) -> String {
    let mut t = String::new();
    if report.skipped_rows > 0 {
        t += &format!("sluice report: skipped {} row(s) that could not be read:\n", report.skipped_rows);
        for p in &report.problems {
            t += &format!("  {p}\n");
        }
        let unlisted = report.skipped_rows.saturating_sub(report.problems.len() as u64);
        if unlisted > 0 {
            t += &format!("  … and {unlisted} more\n");
        }
    }
    t
}

fn settings_from(args: &ReportArgs) -> Result<Settings, UsageError> {
    if args.routes == 0 {
        return Err(UsageError("--routes: must be at least 1".into()));
    }
    let interval = args
        .interval
        .as_deref()
        .map(|d| parse_duration(d).map_err(|m| UsageError(format!("--interval: {m}"))))
        .transpose()?;
    if interval.is_some_and(|d| d.as_millis() < 1) {
        return Err(UsageError("--interval: must be at least 1ms".into()));
    }
    let target = match args.target_rate.as_deref() {
        None => TargetRate::Infer,
        Some(text) => match parse_rate(text).map_err(|m| UsageError(format!("--target-rate: {m}")))? {
            Rate::PerSecond(n) => TargetRate::Given(n),
            Rate::Max => TargetRate::None,
        },
    };
    let assertions = parse_assertions(&args.assert)?;
    if args.baseline.is_empty() {
        refuse_of_baseline(&assertions)?;
    } else if args.files.iter().chain(&args.baseline).any(|f| f.as_os_str() == "-") {
        return Err(UsageError("--baseline: read from files, not standard input (both runs are read twice)".into()));
    }
    let route_rules = args
        .route_rule
        .iter()
        .map(|r| RouteRule::parse(r).map_err(|m| UsageError(format!("--route-rule: {m}"))))
        .collect::<Result<_, _>>()?;
    Ok(Settings {
        route_rules,
        interval,
        strict: args.strict,
        report: ReportOptions { max_routes: args.routes, target, ..ReportOptions::default() },
        assertions,
        shards: if args.allow_partial { ShardCheck::AllowPartial } else { ShardCheck::Whole },
        baseline: args.baseline.clone(),
    })
}

pub fn parse_assertions(list: &[String]) -> Result<Vec<Assertion>, UsageError> {
    list.iter().map(|a| Assertion::parse(a).map_err(|e| UsageError(e.to_string()))).collect()
}

/// `… of baseline` needs a baseline: refused before anything is read.
fn refuse_of_baseline(assertions: &[Assertion]) -> Result<(), UsageError> {
    match assertions.iter().find(|a| matches!(a.threshold, analysis::assert::Threshold::OfBaseline(_))) {
        Some(a) => Err(UsageError(format!("--assert '{}': `of baseline` needs --baseline OLD.csv", a.text))),
        None => Ok(()),
    }
}

fn fold_error(e: FoldError) -> anyhow::Error {
    let message = match e {
        FoldError::File(e) => e.to_string(),
        FoldError::Row(e) => format!("{e} (--strict stops at the first row that cannot be read)"),
        FoldError::Shards(message) => message,
    };
    anyhow::Error::new(UsageError(message))
}

/// What `sluice replay --report/--assert` does after the run.
#[derive(Debug, Clone, Default)]
pub struct ReplayChecks {
    pub report: bool,
    pub assertions: Vec<Assertion>,
    /// `--assert 'prom:…'`, judged on `prometheus` over the run's window.
    pub prom: Vec<PromCheck>,
    pub prometheus: Option<Prometheus>,
}

impl ReplayChecks {
    /// From the run's options, `--config` file already merged in.
    pub fn from_options(options: &ReplayOptions) -> Result<ReplayChecks, UsageError> {
        let (prom, csv): (Vec<String>, Vec<String>) =
            options.assert.iter().cloned().partition(|a| a.trim_start().starts_with(crate::prom::PREFIX));
        let prom = prom
            .iter()
            .map(|a| PromCheck::parse(a).map_err(|m| UsageError(format!("--assert {m}"))))
            .collect::<Result<_, _>>()?;
        let prometheus = options
            .prometheus
            .as_deref()
            .map(Prometheus::parse)
            .transpose()
            .map_err(|m| UsageError(format!("--prometheus {m}")))?;
        let assertions = parse_assertions(&csv)?;
        refuse_of_baseline(&assertions)?;
        Ok(ReplayChecks { report: options.report, assertions, prom, prometheus })
    }

    pub fn wanted(&self) -> bool {
        self.report || !self.assertions.is_empty() || !self.prom.is_empty()
    }

    /// Tries every `prom:` query (these and the run's `--abort-on` ones) once, so one that
    /// Prometheus refuses, or a Prometheus that is not there, stops the command before anything
    /// is sent.
    pub fn check_prom_queries(&self, abort_on: &[PromCheck]) -> Result<(), UsageError> {
        match &self.prometheus {
            Some(prometheus) if !self.prom.is_empty() || !abort_on.is_empty() => prometheus
                .check_queries(self.prom.iter().chain(abort_on))
                .map_err(|m| UsageError(format!("--prometheus {}: {m}", prometheus.url()))),
            _ => Ok(()),
        }
    }

    /// Refuses, before anything is sent, an assertion the run could never pass.
    pub fn check_against(&self, shape: &Shape) -> Result<(), UsageError> {
        let of_target =
            self.assertions.iter().find(|a| matches!(a.threshold, analysis::assert::Threshold::OfTarget(_)));
        match (shape, of_target) {
            (Shape::Unpaced, Some(a)) => {
                Err(UsageError(format!("--assert '{}': --rate max has no target rate", a.text)))
            }
            _ => Ok(()),
        }
    }

    /// The finished run's report: what `--report` prints, `--assert` judges and `--xlsx` writes.
    pub fn analyse(&self, csv: &Path, shape: &Shape, sharded: bool) -> Result<Report, UsageError> {
        // A plan without one steady rate is read back from `scheduled_at`, and so is a shard's
        // share of one.
        let target = match (shape, shape.steady_rate()) {
            (Shape::Unpaced, _) => TargetRate::None,
            (_, Some(n)) if !sharded => TargetRate::Given(n),
            _ => TargetRate::Infer,
        };
        let settings = Settings {
            report: ReportOptions { target, ..ReportOptions::default() },
            assertions: self.assertions.clone(),
            ..Settings::default()
        };
        let files: [PathBuf; 1] = [csv.to_path_buf()];
        analysis::analyse(&files, &settings).map_err(|e| UsageError(e.to_string()))
    }

    /// Whether the run's CSV must be read back: for `--report` or an assertion on its rows.
    pub fn reads_csv(&self) -> bool {
        self.report || !self.assertions.is_empty()
    }

    /// Prints the `prom:` verdicts alone (when nothing else was asked for); whether all passed.
    pub fn print_prom(&self, prom: &[Verdict]) -> bool {
        if !prom.is_empty() {
            eprint!("\nassertions\n{}", analysis::assert::verdicts_text(prom));
        }
        prom.iter().all(|v| v.passed)
    }

    /// The `prom:` assertions, judged on the target's metrics over the run's `window`.
    pub fn judge_prom(&self, window: RunWindow) -> Vec<Verdict> {
        match &self.prometheus {
            Some(prometheus) => self.prom.iter().map(|check| check.judge(prometheus, window)).collect(),
            None => Vec::new(),
        }
    }

    /// Prints what was asked for on stderr; returns whether every assertion (the report's and
    /// the `prom:` ones) passed.
    pub fn print(&self, report: &Report, prom: &[Verdict]) -> bool {
        let mut out = String::new();
        if self.report {
            out += &text::routes_and_status(report);
            // A --compare run: target against baseline.
            out += &render::compare::text(report);
        }
        out += &problems_text(report);
        if !report.assertions.is_empty() || !prom.is_empty() {
            out += "\nassertions\n";
            let all: Vec<Verdict> = report.assertions.iter().chain(prom).cloned().collect();
            out += &analysis::assert::verdicts_text(&all);
        }
        eprint!("{out}");
        report.failed_assertions() == 0 && prom.iter().all(|v| v.passed)
    }
}
