//! The manifest a shard writes when its run ends: what `sluice merge` and `sluice report` check a
//! set of shards against.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::manifest::{Counts, HistogramSettings, Incomplete, LogFile, Manifest, ShardId, hex};
use super::{ManifestError, manifest_path_for, sha256_file};
use crate::config::options::redact_header_values;
use crate::config::{ReplayConfig, ReplayOptions};
use crate::run::summary::Summary;
use crate::source::Input;

/// Options that may differ between the shards of one run: where each writes, how it shows
/// progress, which shard it is, and what names its logs have on its machine (their content is
/// compared by hash). The common start is compared through the run id.
const PER_SHARD_OPTIONS: [&str; 10] =
    ["files", "out", "xlsx", "summary_json", "progress", "metrics_listen", "config", "shard", "start_at", "dry_run"];

/// Writes `<csv stem>.manifest.json` beside the shard's CSV, by rename, last.
pub fn write_manifest(
    options: &ReplayOptions,
    config: &ReplayConfig,
    summary: &Summary,
    t0: Option<DateTime<Utc>>,
) -> Result<(), ManifestError> {
    let shard = config.shard.expect("only a shard writes a manifest");
    let path = manifest_path_for(&config.out);
    let failed = |reason: String| ManifestError { path: path.display().to_string(), reason };
    let (shown, hash) = effective_options(options).map_err(|e| failed(e.to_string()))?;
    let mut run = Sha256::new();
    run.update(hash.as_bytes());
    run.update(config.start_at.map(|t| t.to_rfc3339()).unwrap_or_default().as_bytes());
    let logs = config
        .inputs
        .iter()
        .map(|input| match input {
            Input::File(path) => Ok(LogFile {
                name: path.display().to_string(),
                bytes: std::fs::metadata(path).map_err(|e| failed(format!("{}: {e}", path.display())))?.len(),
                sha256: sha256_file(path).map_err(|e| failed(format!("{}: {e}", path.display())))?,
            }),
            Input::Stdin => Err(failed("a shard reading standard input cannot prove it read the same log".into())),
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
        run_id: hex(&run.finalize()[..8]),
        shard: ShardId { index: shard.index, count: shard.count, index_from: shard.index_from.to_string() },
        t0: t0.unwrap_or_else(Utc::now),
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
    redact_header_values(&mut value);
    Ok((value, hash))
}

/// The wall-clock time of a monotonic instant in the past.
pub fn wall_time_of(instant: std::time::Instant) -> DateTime<Utc> {
    let ago = instant.elapsed();
    Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default()
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
        let other_secret = ReplayOptions { header: vec!["Authorization: Bearer other".into()], ..base.clone() };
        assert_ne!(effective_options(&other_secret).unwrap().1, hash, "a differing secret differs");
        let other_rate = ReplayOptions { rate: Some("200".into()), ..base };
        assert_ne!(effective_options(&other_rate).unwrap().1, hash);
    }

    #[test]
    fn a_wall_time_is_now_less_what_has_elapsed() {
        let then = std::time::Instant::now() - std::time::Duration::from_secs(5);
        let wall = wall_time_of(then);
        let expected = Utc::now() - chrono::Duration::seconds(5);
        assert!((wall - expected).num_milliseconds().abs() < 100);
    }
}
