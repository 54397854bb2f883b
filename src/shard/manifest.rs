//! What a run says about itself when it ends: `<csv stem>.manifest.json` beside its CSV
//! (`shard-2.csv` → `shard-2.manifest.json`, so the shards of a run may share one directory).
//!
//! The manifest is written last and by rename ([`Manifest::write_atomic`]): a manifest that exists
//! is whole, and a shard killed before the end leaves none. `sluice merge` and `sluice report`
//! compare the manifests of a set ([`super::set`]) before they trust its CSVs.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stats::{HIGHEST_US, SIGNIFICANT_FIGURES};

/// How a manifest's name ends: `<csv stem>.manifest.json`.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// A manifest larger than this is not one sluice wrote (the options of a run take a few KiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The most shards a run may have: far more machines than anyone runs one replay on, and few
/// enough that a set's missing shards are listed quickly.
pub const MAX_SHARDS: u32 = 10_000;

/// One shard's account of its run. Every field is written by the replay that ran the shard; the
/// readers only compare them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The sluice that ran the shard (`sluice --version`). Shards must number the log's
    /// requests alike, so a set from several versions is refused.
    pub sluice_version: String,
    /// Names the run the shard belongs to; the same in every shard of one run.
    pub run_id: String,
    /// Which part of the run this is.
    pub shard: ShardId,
    /// When the plan started (its request 0 is due at `t0`), UTC, RFC 3339 with microseconds.
    #[serde(with = "rfc3339_micros")]
    pub t0: DateTime<Utc>,
    /// When the run ended (its summary was made), UTC. Absent from manifests written before sluice recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_micros_option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The log format the run read (what `--format auto` chose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The common start asked for (`--start-at`), when there was one.
    #[serde(default, with = "rfc3339_micros_option")]
    pub start_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the effective options (secrets included, so two runs that differ only in a
    /// secret still differ here without the secret being shown anywhere).
    pub options_hash: String,
    /// The effective options as JSON, secrets redacted: what a mismatch is explained with.
    pub options: serde_json::Value,
    /// The logs replayed, in the order read.
    pub logs: Vec<LogFile>,
    /// The shard's results CSV: a file name in the manifest's directory.
    pub csv: String,
    /// How the run's histograms were set up.
    pub histogram: HistogramSettings,
    /// The shard's requests.
    pub counts: Counts,
    /// False when the run did not go to its end: interrupted, aborted, an output error, or a log
    /// cut off (a truncated `.gz`). See `incomplete_reason`.
    pub complete: bool,
    /// Why the run is incomplete (absent when it is complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<Incomplete>,
}

/// Shard `index` of `count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    /// 0-based, below `count`.
    pub index: u32,
    /// How many shards the run has (K of `--shard I/K`).
    pub count: u32,
    /// Where the index came from: `--shard`, or the environment variable of the engine that
    /// started the shard (`JOB_COMPLETION_INDEX`, `SLURM_PROCID`, `NOMAD_ALLOC_INDEX`).
    pub index_from: String,
}

/// One replayed log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFile {
    /// The file's name as the shard was given it.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of its content ([`sha256_file`]), what `sluice merge` compares shards by;
    /// empty for an unsharded run, which nothing compares (and which may read standard input).
    pub sha256: String,
}

/// The settings of the run's latency histograms (HDR): percentiles from shards with the same
/// settings merge exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramSettings {
    /// Significant decimal figures kept of every value.
    pub significant_figures: u8,
    /// Values above this many milliseconds are recorded as this.
    pub highest_ms: u64,
}

impl HistogramSettings {
    /// What [`crate::stats::Tally`] uses.
    pub fn current() -> HistogramSettings {
        HistogramSettings { significant_figures: SIGNIFICANT_FIGURES, highest_ms: HIGHEST_US / 1000 }
    }
}

/// The shard's requests, as its summary counts them. Its CSV has one row per request that was
/// sent or not sent: `sent + not_sent` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Requests of the shard's plan whose time came.
    pub planned: u64,
    /// Requests that left (answered or not).
    pub sent: u64,
    /// Requests whose time came but that never left.
    pub not_sent: u64,
    /// Sent requests that got an HTTP status.
    pub answered: u64,
    /// Sent requests that got none (timeouts, resets, …).
    pub no_answer: u64,
}

impl Counts {
    /// Rows the shard's CSV holds.
    pub fn rows(&self) -> u64 {
        self.sent + self.not_sent
    }
}

/// Why a run did not go to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Incomplete {
    /// Ctrl-C, SIGTERM or a stop request.
    Interrupted,
    /// An `--abort-on` condition held.
    Aborted,
    /// The results could not be written.
    OutputError,
    /// A log ended early (a truncated `.gz`).
    LogCut,
    /// A reason this sluice does not know (written by a newer one).
    #[serde(other)]
    Other,
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Incomplete::Interrupted => "interrupted",
            Incomplete::Aborted => "aborted by --abort-on",
            Incomplete::OutputError => "its results could not be written",
            Incomplete::LogCut => "its log was cut off",
            Incomplete::Other => "for a reason this sluice does not know",
        })
    }
}

/// A manifest that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ManifestError {
    pub path: String,
    pub reason: String,
}

impl ManifestError {
    fn new(path: &Path, reason: impl Into<String>) -> ManifestError {
        ManifestError { path: path.display().to_string(), reason: reason.into() }
    }
}

impl Manifest {
    /// Writes the manifest whole or not at all: into a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ManifestError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let json = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        let write = || -> io::Result<()> {
            let mut temp = tempfile::Builder::new().prefix(".manifest-").suffix(".tmp").tempfile_in(dir)?;
            temp.write_all(&json)?;
            temp.write_all(b"\n")?;
            temp.as_file().sync_all()?;
            temp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| ManifestError::new(path, e.to_string()))
    }

    /// Reads and checks a manifest: at most [`MAX_MANIFEST_BYTES`], JSON naming the field that
    /// is wrong, a shard index below its count.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let file = File::open(path).map_err(|e| ManifestError::new(path, e.to_string()))?;
        let mut text = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| ManifestError::new(path, e.to_string()))?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::new(
                path,
                format!("larger than {} MiB: not a manifest sluice wrote", MAX_MANIFEST_BYTES >> 20),
            ));
        }
        let mut json = serde_json::Deserializer::from_slice(&text);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let at = e.path().to_string();
            let reason = if at == "." { e.inner().to_string() } else { format!("{at}: {}", e.inner()) };
            ManifestError::new(path, format!("not a sluice shard manifest: {reason}"))
        })?;
        manifest.validate().map_err(|reason| ManifestError::new(path, reason))?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        let ShardId { index, count, .. } = self.shard;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("shard.count: {count}, expected 1 to {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!("shard.index: {index} is not below shard.count {count} (indexes are 0-based)"));
        }
        if self.csv.is_empty() || Path::new(&self.csv).file_name() != Some(self.csv.as_ref()) {
            return Err(format!("csv: '{}' is not a file name in the manifest's directory", self.csv));
        }
        if self.complete && self.incomplete_reason.is_some() {
            return Err("complete is true but an incomplete_reason is given".into());
        }
        Ok(())
    }

    /// The shard's CSV, given where its manifest is.
    pub fn csv_path(&self, manifest_path: &Path) -> PathBuf {
        manifest_path.with_file_name(&self.csv)
    }

    /// `shard 2 of 4`.
    pub fn shard_label(&self) -> String {
        format!("shard {} of {}", self.shard.index, self.shard.count)
    }
}

/// Where the manifest of a CSV is: beside it, named after its stem (`shard-2.csv` →
/// `shard-2.manifest.json`).
pub fn manifest_path_for(csv: &Path) -> PathBuf {
    let stem = csv.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    csv.with_file_name(format!("{stem}{MANIFEST_SUFFIX}"))
}

/// Hex SHA-256 of a file's content, read in blocks (memory flat for any size).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Times as RFC 3339 in UTC with microseconds (`2026-12-01T02:00:00.000000Z`); any RFC 3339 time
/// is read.
mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(super::SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("'{text}' is not an RFC 3339 time: {e}")))
    }
}

/// [`rfc3339_micros`] or `null`.
mod rfc3339_micros_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339_micros::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::rfc3339_micros")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete manifest of shard `index` of `count`, as the tests of this module and of
    /// [`super::super::set`] start from.
    pub(crate) fn sample(index: u32, count: u32) -> Manifest {
        Manifest {
            sluice_version: "0.1.0".into(),
            run_id: "nightly-42".into(),
            shard: ShardId { index, count, index_from: "--shard".into() },
            t0: DateTime::parse_from_rfc3339("2026-12-01T02:00:00.000250Z").unwrap().with_timezone(&Utc),
            finished_at: None,
            format: None,
            start_at: None,
            options_hash: "ab".repeat(32),
            options: serde_json::json!({"rate": 1000, "target": "http://staging:8080", "headers": {"x-a": "1"}}),
            logs: vec![LogFile { name: "access.log".into(), bytes: 1234, sha256: "cd".repeat(32) }],
            csv: format!("shard-{index}.csv"),
            histogram: HistogramSettings::current(),
            counts: Counts { planned: 100, sent: 98, not_sent: 2, answered: 97, no_answer: 1 },
            complete: true,
            incomplete_reason: None,
        }
    }

    #[test]
    fn a_manifest_is_named_after_its_csv_and_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("shard-2.csv");
        let path = manifest_path_for(&csv);
        assert_eq!(path, dir.path().join("shard-2.manifest.json"));
        let mut m = sample(2, 4);
        m.start_at = Some(m.t0);
        m.write_atomic(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"t0\": \"2026-12-01T02:00:00.000250Z\""), "{text}");
        assert_eq!(Manifest::read(&path).unwrap(), m);
        assert_eq!(m.csv_path(&path), csv);
        // Nothing but the manifest is left in the directory (the temporary file was renamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_manifests_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.manifest.json");
        let mut value = serde_json::to_value(sample(1, 4)).unwrap();
        value["counts"]["sent"] = serde_json::json!("many");
        std::fs::write(&path, value.to_string()).unwrap();
        let e = Manifest::read(&path).unwrap_err().to_string();
        assert!(e.contains("counts.sent") && e.contains("x.manifest.json"), "{e}");

        let mut m = sample(4, 4);
        m.shard.index = 4;
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let e = Manifest::read(&path).unwrap_err().to_string();
        assert!(e.contains("shard.index: 4 is not below shard.count 4"), "{e}");

        let mut m = sample(0, 4);
        m.csv = "../elsewhere.csv".into();
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(Manifest::read(&path).unwrap_err().to_string().contains("not a file name"));

        std::fs::write(&path, vec![b' '; MAX_MANIFEST_BYTES as usize + 1]).unwrap();
        assert!(Manifest::read(&path).unwrap_err().to_string().contains("larger than 4 MiB"));

        std::fs::write(&path, "{").unwrap();
        assert!(Manifest::read(&path).unwrap_err().to_string().contains("not a sluice shard manifest"));
    }

    #[test]
    fn an_unknown_incomplete_reason_is_still_read() {
        let mut value = serde_json::to_value(sample(0, 2)).unwrap();
        value["complete"] = false.into();
        value["incomplete_reason"] = "power_cut".into();
        let m: Manifest = serde_json::from_value(value).unwrap();
        assert_eq!(m.incomplete_reason, Some(Incomplete::Other));
    }

    #[test]
    fn sha256_of_a_file_is_what_sha256sum_prints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // Larger than one read block.
        std::fs::write(&path, vec![b'a'; 1_000_000]).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
}
