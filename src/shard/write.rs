//! The manifest every run writes when it ends, beside its CSV: what the run was (options, logs,
//! sluice version, when it started and ended), for the reports to show, and for a shard what
//! `sluice merge` and `sluice report` check a set of shards against. An unsharded run is shard 0
//! of 1.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::manifest::{Counts, HistogramSettings, Incomplete, LogFile, Manifest, ShardId, hex};
use super::{ManifestError, manifest_path_for, sha256_file};
use crate::config::options::redact_header_values;
use crate::config::{ReplayConfig, ReplayOptions};
use crate::plan::safety::redact_url;
use crate::run::summary::Summary;
use crate::source::Input;

/// Options that may differ between the shards of one run: where each writes, how it shows
/// progress, which shard it is, and what names its logs have on its machine (their content is
/// compared by hash). The common start is compared through the run id.
const PER_SHARD_OPTIONS: [&str; 10] =
    ["files", "out", "xlsx", "summary_json", "progress", "metrics_listen", "config", "shard", "start_at", "dry_run"];

/// What the manifest says of an unsharded run: it is the whole run.
const UNSHARDED: &str = "unsharded";

/// Writes `<csv stem>.manifest.json` beside the run's CSV, by rename, last. `format` is the log
/// format the run read (the one `--format auto` chose); `log_names`, when given, are the logs'
/// names as the manifest shows them (the daemon's upload names, not its paths), in input order.
pub fn write_manifest(
    options: &ReplayOptions,
    config: &ReplayConfig,
    summary: &Summary,
    t0: Option<DateTime<Utc>>,
    format: &str,
    log_names: Option<&[String]>,
) -> Result<(), ManifestError> {
    let shard = match config.shard {
        Some(s) => ShardId { index: s.index, count: s.count, index_from: s.index_from.to_string() },
        None => ShardId { index: 0, count: 1, index_from: UNSHARDED.to_string() },
    };
    let path = manifest_path_for(&config.out);
    let failed = |reason: String| ManifestError { path: path.display().to_string(), reason };
    let (shown, hash) = effective_options(options).map_err(|e| failed(e.to_string()))?;
    let run_id = run_id_of(&hash, run_start(config, t0));
    let logs = config
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| match input {
            Input::File(path) => Ok(LogFile {
                name: log_names.and_then(|names| names.get(i)).cloned().unwrap_or_else(|| path.display().to_string()),
                bytes: std::fs::metadata(path).map_err(|e| failed(format!("{}: {e}", path.display())))?.len(),
                // Only shards are compared by their logs' content. Hashing costs a second of CPU
                // per 1.3 GB at the end of every run, for a field nothing would read.
                sha256: match config.shard {
                    Some(_) => sha256_file(path).map_err(|e| failed(format!("{}: {e}", path.display())))?,
                    None => String::new(),
                },
            }),
            Input::Stdin if config.shard.is_some() => {
                Err(failed("a shard reading standard input cannot prove it read the same log".into()))
            }
            // What came through a pipe cannot be read again to be hashed.
            Input::Stdin => Ok(LogFile { name: "-".into(), bytes: 0, sha256: String::new() }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let incomplete_reason = if summary.interrupted {
        Some(Incomplete::Interrupted)
    } else if summary.aborted_by.is_some() {
        Some(Incomplete::Aborted)
    } else if summary.output_error.is_some() {
        Some(Incomplete::OutputError)
    } else if !summary.log.incomplete.is_empty() {
        Some(Incomplete::LogCut)
    } else {
        None
    };
    let manifest = Manifest {
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id,
        shard,
        t0: t0.unwrap_or_else(Utc::now),
        finished_at: Some(Utc::now()),
        format: Some(format.to_string()),
        start_at: config.start_at,
        options_hash: hash,
        options: shown,
        logs,
        csv: config.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        histogram: HistogramSettings::current(),
        counts: Counts {
            planned: summary.requests_sent + summary.not_sent,
            sent: summary.requests_sent,
            not_sent: summary.not_sent,
            answered: summary.responses,
            no_answer: summary.errors,
        },
        complete: incomplete_reason.is_none(),
        incomplete_reason,
    };
    manifest.write_atomic(&path)
}

/// What tells two runs apart besides their options: the common start of a sharded run
/// (`--start-at`, the same in every shard), or an unsharded run's own T0.
pub fn run_start(config: &ReplayConfig, t0: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    config.start_at.or(if config.shard.is_none() { t0 } else { None })
}

/// The run's id, as its manifest and its pushed points name it: the same in every shard of one
/// run, different for two runs.
pub fn run_id(options: &ReplayOptions, start: Option<DateTime<Utc>>) -> Result<String, serde_json::Error> {
    Ok(run_id_of(&effective_options(options)?.1, start))
}

fn run_id_of(options_hash: &str, start: Option<DateTime<Utc>>) -> String {
    let mut run = Sha256::new();
    run.update(options_hash.as_bytes());
    run.update(start.map(|t| t.to_rfc3339()).unwrap_or_default().as_bytes());
    hex(&run.finalize()[..8])
}

/// The options every shard of a run must share, as JSON with header values redacted (what a
/// mismatch is explained with), and the hex SHA-256 of them unredacted (so a differing secret
/// still shows as a difference, without being shown).
fn effective_options(options: &ReplayOptions) -> Result<(serde_json::Value, String), serde_json::Error> {
    let mut value = serde_json::to_value(options)?;
    if let Some(object) = value.as_object_mut() {
        for key in PER_SHARD_OPTIONS {
            object.remove(key);
        }
    }
    let hash = hex(&Sha256::digest(serde_json::to_vec(&value)?));
    // A URL's credentials (a Prometheus or a push target may carry them) are secrets too.
    if let Some(object) = value.as_object_mut() {
        for option in object.values_mut() {
            match option {
                serde_json::Value::String(text) => *text = redact_url(text),
                serde_json::Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let serde_json::Value::String(text) = item {
                            *text = redact_url(text);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    redact_header_values(&mut value);
    Ok((value, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_their_options_but_not_where_they_write_or_which_shard_they_are() {
        let base = ReplayOptions {
            target: Some("http://127.0.0.1:8080".into()),
            rate: Some("100".into()),
            header: vec!["Authorization: Bearer s3cret".into()],
            ..ReplayOptions::default()
        };
        let other_shard = ReplayOptions {
            shard: Some("3/4".into()),
            out: Some("elsewhere/shard-3.csv".into()),
            files: vec!["/mnt/other/access.log".into()],
            ..base.clone()
        };
        let (shown, hash) = effective_options(&base).unwrap();
        assert_eq!(effective_options(&other_shard).unwrap().1, hash);
        assert!(!shown.to_string().contains("s3cret"), "{shown}");
        assert_eq!(shown["header"][0], "Authorization: [redacted]");
        let with_credentials =
            ReplayOptions { push: vec!["influx=http://ops:pw@influx:8086?db=x".into()], ..base.clone() };
        assert_eq!(
            effective_options(&with_credentials).unwrap().0["push"][0],
            "influx=http://[redacted]@influx:8086?db=x"
        );
        let other_secret = ReplayOptions { header: vec!["Authorization: Bearer other".into()], ..base.clone() };
        assert_ne!(effective_options(&other_secret).unwrap().1, hash, "a differing secret differs");
        let other_rate = ReplayOptions { rate: Some("200".into()), ..base };
        assert_ne!(effective_options(&other_rate).unwrap().1, hash);
    }
}
