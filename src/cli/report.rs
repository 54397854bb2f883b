//! `sluice report` as a user runs it, and the checks `sluice replay --report/--assert` runs on its
//! own CSV once the run is over: flags checked first (a bad assertion stops before any reading),
//! then one streaming pass, then the exit code: 2 for unreadable input, 1 for a failed assertion.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::render::{self, ReportFormat, text};
use crate::analysis::{self, Assertion, FoldError, Report, ReportOptions, RouteRule, Settings, ShardCheck, TargetRate};
use crate::cli::ReportArgs;
use crate::config::ReplayOptions;
use crate::config::{Rate, parse_rate};
use crate::duration::parse_duration;
use crate::exit::{Exit, UsageError};
use crate::export::xlsx;
use crate::pace::schedule::Shape;
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
        assertions: parse_assertions(&args.assert)?,
        shards: if args.allow_partial { ShardCheck::AllowPartial } else { ShardCheck::Whole },
    })
}

pub fn parse_assertions(list: &[String]) -> Result<Vec<Assertion>, UsageError> {
    list.iter().map(|a| Assertion::parse(a).map_err(|e| UsageError(e.to_string()))).collect()
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
}

impl ReplayChecks {
    /// From the flags over the `--config` file (which may hold `report` and `assert` too).
    /// From the run's options, `--config` file already merged in.
    pub fn from_options(options: &ReplayOptions) -> Result<ReplayChecks, UsageError> {
        Ok(ReplayChecks { report: options.report, assertions: parse_assertions(&options.assert)? })
    }

    pub fn wanted(&self) -> bool {
        self.report || !self.assertions.is_empty()
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

    /// Prints what was asked for on stderr; returns whether every assertion passed.
    pub fn print(&self, report: &Report) -> bool {
        let mut out = String::new();
        if self.report {
            out += &text::routes_and_status(report);
        }
        out += &problems_text(report);
        if !report.assertions.is_empty() {
            out += "\nassertions\n";
            out += &analysis::assert::verdicts_text(&report.assertions);
        }
        eprint!("{out}");
        report.failed_assertions() == 0
    }
}
