//! `sluice merge` as a user runs it: the shards of one run found (directories, CSVs, manifests),
//! their manifests checked as one whole run, then their CSVs joined in `seq` order into one file
//! that is written whole or not at all. Exit 2 for a partial or mismatched set (unless
//! `--allow-partial`) and for any input that cannot be merged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::exit::{Exit, UsageError};
use crate::shard::{
    Found, MergeInput, MergeOptions, SetError, SetReport, ShardFile, check_partial_set, check_set, find_shards,
    merge_csvs,
};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shards of one run: directories (every *.manifest.json in them), shard CSVs (each with its
    /// <name>.manifest.json beside it) or manifests.
    #[arg(value_name = "DIR_OR_FILES", required = true)]
    pub inputs: Vec<PathBuf>,

    /// The merged CSV: every shard's rows in seq order, under the results header. Written to a
    /// temporary file beside it, then renamed.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,

    /// Merge the shards there are when some are missing or incomplete (interrupted, aborted, …),
    /// saying which; shards of different runs, options or logs are refused all the same.
    #[arg(long)]
    pub allow_partial: bool,
}

/// The examples under `sluice merge --help`.
pub const EXAMPLES: &str = "\
Examples:
  # The shards of a run wrote shard-0.csv … shard-3.csv and their manifests
  sluice merge results/ --out merged.csv
  # Shards collected from several machines' directories
  sluice merge host-a/shard-0.csv host-b/shard-1.csv --out merged.csv
  # A shard was lost: merge the other three, and say so
  sluice merge results/ --out merged.csv --allow-partial
  # Then report on the whole run (or on the shard CSVs directly)
  sluice report merged.csv";

pub fn run(args: &MergeArgs) -> anyhow::Result<Exit> {
    let Found { mut shards, without_manifest } = find_shards(&args.inputs).map_err(|e| UsageError(e.to_string()))?;
    let without_manifest: Vec<PathBuf> =
        without_manifest.into_iter().filter(|csv| !same_file(csv, &args.out)).collect();
    if shards.is_empty() {
        return Err(UsageError(format!(
            "no shard manifest (*.manifest.json) in {}{}",
            args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            unfinished_note(&without_manifest)
        ))
        .into());
    }
    let manifests: Vec<_> = shards.iter().map(|s| s.manifest.clone()).collect();
    let checked = if args.allow_partial { check_partial_set(&manifests) } else { check_set(&manifests) };
    let set = checked.map_err(|e| refusal(&e, &without_manifest))?;
    shards.sort_by_key(|s| s.manifest.shard.index);
    if let Some(shard) = shards.iter().find(|s| same_file(&s.csv, &args.out)) {
        return Err(UsageError(format!(
            "--out {}: that is the CSV of {}",
            args.out.display(),
            shard.manifest.shard_label()
        ))
        .into());
    }
    // An incomplete shard may have lost rows it counted (a full disk): its count is not checked.
    let inputs: Vec<MergeInput> = shards
        .iter()
        .map(|s| MergeInput {
            path: s.csv.clone(),
            expected_rows: s.manifest.complete.then(|| s.manifest.counts.rows()),
        })
        .collect();
    let stats = merge_csvs(&inputs, &args.out, &MergeOptions::default()).map_err(|e| UsageError(e.to_string()))?;
    print!("{}", summary(&set, &shards, &stats.per_input, stats.rows, &args.out));
    Ok(Exit::Ok)
}

/// Why the set is refused, with the unfinished CSVs of the directories when shards are missing,
/// and what `--allow-partial` would do.
fn refusal(e: &SetError, without_manifest: &[PathBuf]) -> UsageError {
    match e {
        SetError::Partial(report) => UsageError(format!(
            "{e}{}; --allow-partial merges the {} shards there are",
            if report.missing.is_empty() { String::new() } else { unfinished_note(without_manifest) },
            report.present.len()
        )),
        _ => UsageError(e.to_string()),
    }
}

/// ` (CSVs without a manifest, not merged: a.csv, b.csv)`, or nothing.
fn unfinished_note(csvs: &[PathBuf]) -> String {
    if csvs.is_empty() {
        return String::new();
    }
    let names: Vec<String> = csvs.iter().map(|p| p.display().to_string()).collect();
    format!(" (CSVs without a manifest, not merged: {})", names.join(", "))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `sluice merge: 3 of 4 shards of run R → merged.csv, 7500 rows in seq order`, what is missing,
/// and a line per shard.
fn summary(set: &SetReport, shards: &[ShardFile], per_shard: &[u64], rows: u64, out: &Path) -> String {
    let mut t = format!(
        "sluice merge: {} of run {} → {}: {rows} rows in seq order\n",
        set.headline(),
        set.run_id,
        out.display()
    );
    if !set.is_whole() {
        let _ = writeln!(t, "  partial: {}", set.gaps());
    }
    let width = shards.iter().map(|s| s.csv.display().to_string().chars().count()).max().unwrap_or(0);
    let digits = set.count.saturating_sub(1).to_string().len();
    for (shard, rows) in shards.iter().zip(per_shard) {
        let m = &shard.manifest;
        let state = match (m.complete, m.incomplete_reason) {
            (true, _) => String::new(),
            (false, Some(reason)) => format!("  incomplete ({reason})"),
            (false, None) => "  incomplete".into(),
        };
        let _ = writeln!(
            t,
            "  shard {:>digits$}  {:<width$}  {rows:>10} rows{state}",
            m.shard.index,
            shard.csv.display().to_string()
        );
    }
    t
}
