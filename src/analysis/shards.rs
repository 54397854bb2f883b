//! A report over the shards of a run (`--shard I/K`): the CSVs whose manifests say they are
//! shards are checked to be whole runs before anything is read, and the report gains a line per
//! shard (its achieved rate and lag), so a machine that could not keep up shows.
//!
//! Files without a manifest are reported as before; files of several runs are checked run by run
//! (reporting two runs together stays possible). A run of one shard adds nothing to the report.

use std::path::PathBuf;

use serde::Serialize;

use super::aggregate::Aggregate;
use crate::shard::{Manifest, SetError, SetReport, check_partial_set, check_set, manifest_beside};
use crate::stats::Percentiles;

/// Whether `analyse` looks for shard manifests beside the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardCheck {
    /// Report the files as they are (a replay's report on its own CSV).
    #[default]
    Ignore,
    /// Every shard of each run must be there and complete (`sluice report`).
    Whole,
    /// Missing or incomplete shards are reported as such (`--allow-partial`).
    AllowPartial,
}

/// The manifests found beside the files, and the runs they make.
#[derive(Debug, Clone)]
pub struct ShardFiles {
    /// One per file given, in order.
    manifests: Vec<Option<Manifest>>,
    /// One per run, in the order the files name them.
    runs: Vec<SetReport>,
}

/// Reads the manifests beside `files` and checks each run's set; `None` when no file has one.
pub fn survey(files: &[PathBuf], check: ShardCheck) -> Result<Option<ShardFiles>, String> {
    if check == ShardCheck::Ignore {
        return Ok(None);
    }
    let mut manifests = Vec::with_capacity(files.len());
    for file in files {
        manifests.push(manifest_beside(file).map_err(|e| e.to_string())?.map(|shard| shard.manifest));
    }
    let mut run_ids: Vec<&str> = Vec::new();
    // A run of one shard (every unsharded run writes a manifest) has no set to check.
    for m in manifests.iter().flatten().filter(|m| m.shard.count > 1) {
        if !run_ids.contains(&m.run_id.as_str()) {
            run_ids.push(&m.run_id);
        }
    }
    if run_ids.is_empty() {
        return Ok(None);
    }
    let mut runs = Vec::with_capacity(run_ids.len());
    for run_id in run_ids {
        let set: Vec<Manifest> = manifests.iter().flatten().filter(|m| m.run_id == run_id).cloned().collect();
        let checked = match check {
            ShardCheck::AllowPartial => check_partial_set(&set),
            _ => check_set(&set),
        };
        runs.push(checked.map_err(|e| refusal(&e, run_id))?);
    }
    Ok(Some(ShardFiles { manifests, runs }))
}

fn refusal(e: &SetError, run_id: &str) -> String {
    match e {
        SetError::Partial(report) => {
            format!("run {run_id}: {e}; --allow-partial reports the {} shard(s) given", report.present.len())
        }
        _ => format!("run {run_id}: {e}"),
    }
}

/// The shards of the report, when a run has more than one.
#[derive(Debug, Clone, Serialize)]
pub struct ShardView {
    /// `4 shards`, or `3 of 4 shards` when some are missing or incomplete (runs joined by `; `).
    pub headline: String,
    /// What is missing or incomplete, per run; empty when every run is whole.
    pub gaps: Vec<String>,
    /// One per shard file, by run then index.
    pub shards: Vec<ShardLine>,
}

/// One shard as its own CSV shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardLine {
    pub run_id: String,
    pub index: u32,
    pub count: u32,
    pub file: String,
    /// Requests that left.
    pub requests: u64,
    /// Over this shard's own span of sends.
    pub achieved_rate: f64,
    /// Behind the plan, from this shard's rows alone.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
}

impl ShardLine {
    /// `complete`, or `incomplete (interrupted)`.
    pub fn state(&self) -> String {
        match (&self.complete, &self.incomplete_reason) {
            (true, _) => "complete".into(),
            (false, Some(reason)) => format!("incomplete ({reason})"),
            (false, None) => "incomplete".into(),
        }
    }
}

impl ShardFiles {
    /// The report's shard section; `None` when every run is a single shard.
    pub fn view(&self, agg: &Aggregate) -> Option<ShardView> {
        if self.runs.iter().all(|r| r.count <= 1) {
            return None;
        }
        let several = self.runs.len() > 1;
        let named = |r: &SetReport, text: String| if several { format!("run {}: {text}", r.run_id) } else { text };
        let mut shards: Vec<(usize, ShardLine)> = self
            .manifests
            .iter()
            .zip(&agg.files)
            .filter_map(|(m, facts)| {
                let m = m.as_ref().filter(|m| m.shard.count > 1)?;
                let lag = Percentiles::of(&facts.lag);
                let run = self.runs.iter().position(|r| r.run_id == m.run_id).unwrap_or(0);
                Some((
                    run,
                    ShardLine {
                        run_id: m.run_id.clone(),
                        index: m.shard.index,
                        count: m.shard.count,
                        file: facts.name.clone(),
                        requests: facts.requests,
                        achieved_rate: facts.achieved_rate(),
                        lag_p50_ms: lag.p50,
                        lag_p99_ms: lag.p99,
                        lag_max_ms: lag.max,
                        complete: m.complete,
                        incomplete_reason: m.incomplete_reason.map(|r| r.to_string()),
                    },
                ))
            })
            .collect();
        shards.sort_by_key(|(run, line)| (*run, line.index));
        Some(ShardView {
            headline: self.runs.iter().map(|r| named(r, r.headline())).collect::<Vec<_>>().join("; "),
            gaps: self.runs.iter().filter(|r| !r.is_whole()).map(|r| named(r, r.gaps())).collect(),
            shards: shards.into_iter().map(|(_, line)| line).collect(),
        })
    }
}
