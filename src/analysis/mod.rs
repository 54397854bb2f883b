//! `sluice report` as a library: results CSVs in, figures and assertion verdicts out.
//!
//! ```text
//! shard manifests beside the CSVs (shards::survey): each run's shards whole, or refused
//!                              │
//! results CSV(s) ──rows──▶ RowReader (header checked once; bad rows are values with a line number)
//!                              │  one pass, streaming: nothing per row is kept
//!                              ▼
//!                 aggregate::fold: HDR histograms + counts per group
//!                   whole run · each route template (routes) · each `route:` filter · time slices
//!                   · the first routes' latency per time slice (series)
//!                   · a --compare run's B latencies, overall, per route and slice
//!                              │
//!                              ├──▶ assert::evaluate  → PASS/FAIL verdicts (exit code 1)
//!   a --compare run's b_* columns ──▶ compare::fold_ab (a second pass; per route, sampled)
//!   --baseline old.csv ──▶ aggregate::fold + compare::latency_samples ──▶ compare::against_baseline
//!                              ▼
//!                 figures::build → Report ──▶ render::{text, json, markdown, html}
//!                   + metadata::runs (each run's manifest, secrets redacted)
//!                   + charts::build (percentile curves, failures by kind, routes over time: HTML;
//!                     beside them the --baseline run's, or B's of a --compare run)
//! ```
//!
//! `sluice report` ([`crate::cli::report`]) and `sluice replay --report/--assert` both call
//! [`analyse`] on a finished CSV.

pub mod aggregate;
pub mod assert;
pub mod charts;
pub mod compare;
pub mod figures;
pub mod journeys;
pub mod metadata;
pub mod plan;
pub mod render;
pub mod routes;
pub mod rows;
pub mod series;
pub mod shards;

use std::path::PathBuf;
use std::time::Duration;

pub use aggregate::{Aggregate, FoldError, FoldOptions};
pub use assert::{AssertError, Assertion, Verdict};
pub use figures::{Report, ReportOptions, TargetRate};
pub use render::ReportFormat;
pub use routes::{RouteRule, Router};
pub use shards::ShardCheck;

/// Everything `analyse` needs besides the files.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub route_rules: Vec<RouteRule>,
    pub interval: Option<Duration>,
    pub strict: bool,
    pub report: ReportOptions,
    pub assertions: Vec<Assertion>,
    /// Whether files with shard manifests are checked as runs and reported shard by shard.
    pub shards: ShardCheck,
    /// `--baseline`: an earlier run's CSVs, to compare with (empty: none).
    pub baseline: Vec<PathBuf>,
}

/// The report over `files`, with its assertions evaluated.
pub fn analyse(files: &[PathBuf], settings: &Settings) -> Result<Report, FoldError> {
    let mut filters: Vec<routes::RouteGlob> = Vec::new();
    for glob in settings.assertions.iter().filter_map(|a| a.scope.clone()) {
        if !filters.contains(&glob) {
            filters.push(glob);
        }
    }
    let options = FoldOptions {
        router: Router::new(settings.route_rules.clone()),
        interval: settings.interval,
        filters,
        strict: settings.strict,
    };
    let shard_files = shards::survey(files, settings.shards).map_err(FoldError::Shards)?;
    let aggregate = aggregate::fold(files, &options)?;
    let mut report = figures::build(&aggregate, &settings.report);
    report.shards = shard_files.and_then(|s| s.view(&aggregate));
    report.runs = metadata::runs(files, &aggregate);
    let max_routes = settings.report.max_routes;
    let ab = compare::fold_ab(files, &options.router, &options.filters)?;
    report.compare = ab.as_ref().map(|ab| ab.view(max_routes));
    let baseline = match settings.baseline.as_slice() {
        [] => None,
        old_files => {
            let old = aggregate::fold(old_files, &options)?;
            let new_samples = compare::latency_samples(files, &options.router)?;
            let old_samples = compare::latency_samples(old_files, &options.router)?;
            let names = old.files.iter().map(|f| f.name.clone()).collect();
            report.baseline =
                Some(compare::against_baseline(names, &aggregate, &old, &new_samples, &old_samples, max_routes));
            Some(old)
        }
    };
    report.charts = charts::build(&aggregate, &report.chart_time, baseline.as_ref());
    let (target, _) = plan::resolve(&aggregate, settings.report.target);
    let context = assert::Context { aggregate: &aggregate, target, compare: ab.as_ref(), baseline: baseline.as_ref() };
    report.assertions = assert::evaluate_all(&settings.assertions, context);
    Ok(report)
}

impl Report {
    pub fn failed_assertions(&self) -> usize {
        self.assertions.iter().filter(|v| !v.passed).count()
    }
}
