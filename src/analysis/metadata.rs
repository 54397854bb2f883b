//! What each run in a report was: read from the manifest every run writes beside its CSV
//! (`<csv stem>.manifest.json`: target, logs, format, options, sluice version, start and end, which
//! shard), or, for a CSV without one (written by an older sluice, or by a run killed before its
//! end), what the CSV itself tells. The shards of one run are one entry.
//!
//! Secrets never reach the report: the manifest already holds header values redacted, and every
//! string is redacted again here (header values, and the credentials of any URL), so a manifest
//! written by hand or by another version cannot leak one.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::aggregate::{Aggregate, FileFacts};
use crate::display::spreadsheet_time;
use crate::plan::safety::{REDACTED, redact_url};
use crate::shard::manifest::{Counts, LogFile};
use crate::shard::{Manifest, manifest_beside, manifest_path_for};

/// One run of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    /// Its results CSVs, as given (several for the shards of one run).
    pub files: Vec<String>,
    /// Its manifest (the first shard's, for a sharded run); absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Why the run has no manifest to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sluice_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// An A/B run's baseline target (`--compare`), and the second baseline of `--compare-noise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_noise: Option<String>,
    /// The log format read (what `--format auto` chose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The logs replayed, with size and SHA-256.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogFile>,
    /// When the plan started (its request 0 was due), UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When the run ended, UTC (the last shard's end for a sharded run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsInfo>,
    /// Whether the run (every shard given) went to its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete_reasons: Vec<String>,
    /// The manifests' counts, added up over the shards given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// The run's effective options, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// From the CSVs: rows, and the first and last send (or planned send, when none left), UTC.
    pub rows: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
}

/// Which shards of a run the report holds: `0 of 1` (`index_from` `unsharded`) for a run that
/// was not sharded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardsInfo {
    pub count: u32,
    pub indexes: Vec<u32>,
    /// `--shard`, the engine's environment variable, or `unsharded`.
    pub index_from: String,
}

impl ShardsInfo {
    /// `unsharded`, `shards 0–3 of 4`, `shards 0, 2 of 4`.
    pub fn label(&self) -> String {
        if self.count == 1 && self.index_from == "unsharded" {
            return "unsharded (shard 0 of 1)".to_string();
        }
        let contiguous = self.indexes.windows(2).all(|w| w[1] == w[0] + 1);
        let list = match (self.indexes.first(), self.indexes.last()) {
            (Some(a), Some(b)) if contiguous && self.indexes.len() > 2 => format!("{a}–{b}"),
            _ => self.indexes.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        };
        let noun = if self.indexes.len() == 1 { "shard" } else { "shards" };
        format!("{noun} {list} of {} (index from {})", self.count, self.index_from)
    }
}

/// One entry per run of `files` (in order; the shards of a run together), `facts` being what the
/// fold read from each file.
pub fn runs(files: &[PathBuf], agg: &Aggregate) -> Vec<RunInfo> {
    let mut runs: Vec<(Option<String>, RunInfo)> = Vec::new();
    for (path, facts) in files.iter().zip(&agg.files) {
        let found = match manifest_beside(path) {
            Ok(found) => found,
            Err(e) => {
                runs.push((None, without_manifest(facts, format!("its manifest cannot be read: {e}"))));
                continue;
            }
        };
        let Some(shard) = found else {
            let note = if path.as_os_str() == "-" {
                "read from standard input: no manifest".to_string()
            } else {
                format!(
                    "no manifest beside it ({}): the run was made by an older sluice or stopped before its end",
                    manifest_path_for(path).display()
                )
            };
            runs.push((None, without_manifest(facts, note)));
            continue;
        };
        let m = &shard.manifest;
        // Unsharded runs with the same options share a run id: only shards are put together.
        let key = (m.shard.count > 1).then(|| m.run_id.clone());
        match runs.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, run)) => add_shard(run, m, facts),
            None => runs.push((key, from_manifest(m, &file_name(&shard.manifest_path), facts))),
        }
    }
    runs.into_iter().map(|(_, run)| run).collect()
}

fn utc(t: DateTime<Utc>) -> String {
    spreadsheet_time(t)
}

fn utc_ms(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(utc)
}

/// The first and last send of a file, or of its plan when nothing left.
fn csv_times(facts: &FileFacts) -> Option<(i64, i64)> {
    facts.sent_ms.or_else(|| facts.plan.span_ms())
}

/// A manifest is named by its file name: it lies beside its CSV, and its directory may be a
/// daemon's own, which a report never shows.
fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn without_manifest(facts: &FileFacts, note: String) -> RunInfo {
    let times = csv_times(facts);
    RunInfo {
        files: vec![facts.name.clone()],
        note: Some(note),
        rows: facts.rows,
        first_time: times.and_then(|t| utc_ms(t.0)),
        last_time: times.and_then(|t| utc_ms(t.1)),
        ..RunInfo::default()
    }
}

fn from_manifest(m: &Manifest, path: &str, facts: &FileFacts) -> RunInfo {
    let options = redacted(&m.options);
    let text = |key: &str| options.get(key).and_then(|t| t.as_str()).map(str::to_string);
    let (target, compare, compare_noise) = (text("target"), text("compare"), text("compare_noise"));
    let mut run = RunInfo {
        files: Vec::new(),
        manifest: Some(path.to_string()),
        sluice_version: Some(m.sluice_version.clone()),
        run_id: Some(m.run_id.clone()),
        target,
        compare,
        compare_noise,
        format: m.format.clone(),
        logs: m.logs.iter().map(|l| LogFile { name: redact_url(&l.name), ..l.clone() }).collect(),
        started: Some(utc(m.t0)),
        shards: Some(ShardsInfo { count: m.shard.count, indexes: Vec::new(), index_from: m.shard.index_from.clone() }),
        complete: Some(true),
        counts: Some(Counts::default()),
        options: Some(options),
        ..RunInfo::default()
    };
    add_shard(&mut run, m, facts);
    run
}

/// Adds a shard's file, manifest and CSV to its run.
fn add_shard(run: &mut RunInfo, m: &Manifest, facts: &FileFacts) {
    run.files.push(facts.name.clone());
    if let Some(shards) = &mut run.shards {
        shards.indexes.push(m.shard.index);
        shards.indexes.sort_unstable();
    }
    let started = utc(m.t0);
    if run.started.as_ref().is_none_or(|s| started < *s) {
        run.started = Some(started);
    }
    if let Some(finished) = m.finished_at.map(utc)
        && run.finished.as_ref().is_none_or(|f| finished > *f)
    {
        run.finished = Some(finished);
    }
    run.complete = Some(run.complete.unwrap_or(true) && m.complete);
    if let Some(reason) = m.incomplete_reason {
        let text = format!("{}: {reason}", m.shard_label());
        run.incomplete_reasons.push(if m.shard.count == 1 { reason.to_string() } else { text });
    }
    if let Some(c) = &mut run.counts {
        c.planned += m.counts.planned;
        c.sent += m.counts.sent;
        c.not_sent += m.counts.not_sent;
        c.answered += m.counts.answered;
        c.no_answer += m.counts.no_answer;
    }
    run.rows += facts.rows;
    if let Some((first, last)) = csv_times(facts) {
        // The times are written so that text order is time order.
        run.first_time = [run.first_time.take(), utc_ms(first)].into_iter().flatten().min();
        run.last_time = [run.last_time.take(), utc_ms(last)].into_iter().flatten().max();
    }
}

/// The options with every secret taken out: each `header` keeps its name only, and every string
/// that holds a URL loses its credentials.
pub fn redacted(options: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match options {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let shown = match (key.as_str(), value) {
                    ("header", Value::Array(headers)) => {
                        Value::Array(headers.iter().map(|h| Value::String(header_name_only(h))).collect())
                    }
                    _ => redacted(value),
                };
                (key.clone(), shown)
            })
            .collect(),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::String(s) => Value::String(redact_url(s)),
        other => other.clone(),
    }
}

/// `Authorization: Bearer x` → `Authorization: [redacted]`.
fn header_name_only(header: &serde_json::Value) -> String {
    let text = header.as_str().unwrap_or_default();
    let name = text.split_once(':').map_or(text, |(name, _)| name).trim();
    format!("{name}: {REDACTED}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_header_values_never_show() {
        assert_eq!(redact_url("http://u:s3cret@host:8080/p?q=1"), "http://[redacted]@host:8080/p?q=1");
        assert_eq!(redact_url("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_url("mock"), "mock");
        let options = serde_json::json!({
            "target": "http://admin:s3cret@staging",
            "header": ["Authorization: Bearer s3cret", "X-Plain", "Cookie: [redacted]"],
            "nested": [{"url": "https://k:s3cret@x"}],
            "rate": 200,
        });
        let shown = redacted(&options);
        assert!(!shown.to_string().contains("s3cret"), "{shown}");
        assert_eq!(
            shown["header"],
            serde_json::json!(["Authorization: [redacted]", "X-Plain: [redacted]", "Cookie: [redacted]"])
        );
        assert_eq!(shown["rate"], 200);
    }

    #[test]
    fn shard_labels_read_as_people_say_them() {
        let label = |count, indexes: &[u32]| {
            ShardsInfo { count, indexes: indexes.to_vec(), index_from: "--shard".into() }.label()
        };
        let unsharded = ShardsInfo { count: 1, indexes: vec![0], index_from: "unsharded".into() };
        assert_eq!(unsharded.label(), "unsharded (shard 0 of 1)");
        assert_eq!(label(4, &[0, 1, 2, 3]), "shards 0–3 of 4 (index from --shard)");
        assert_eq!(label(4, &[0, 2]), "shards 0, 2 of 4 (index from --shard)");
        assert_eq!(label(4, &[3]), "shard 3 of 4 (index from --shard)");
    }
}
