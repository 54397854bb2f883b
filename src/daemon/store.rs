//! The daemon's files: a directory per run under `STATE_DIR/runs/<id>/`, and the uploaded logs.
//!
//! ```text
//! run.json       the record (state, options, times, last progress, summary), replaced atomically
//! results.csv    the run's CSV, written by the run's own writer thread (flushed every second)
//! summary.json   the summary, as `sluice replay --summary-json` writes it, once the run ended
//! secrets.json   the values of its secret headers (mode 0600), only while the run may still start
//! ```
//!
//! Secret header values (every header given through the API but those named in `public_headers`)
//! never reach `run.json` or the API: the record keeps `[redacted]` in their place. They live in
//! memory and in `secrets.json`, readable by the daemon's user alone, from the submission until
//! the run ends or is stopped; then the file is removed. A queued run whose secrets a restarted
//! daemon cannot read fails with a message saying so, rather than going out without them.
//! Summaries and messages are cleaned of the daemon's own paths before anyone sees them.
//!
//! Records are written to a temporary file, synced, renamed over the old one and the directory
//! synced, so a crash (even SIGKILL) leaves either the old record or the new one, never half of
//! one. A record that says `running` or `stopping` when the daemon starts belongs to a daemon
//! that died mid-run: it becomes `interrupted`, its CSV is cut back to the last whole row, and it
//! is never started again.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::record::{LATE_START_GRACE, RunRecord, RunState};
use super::request::SecretHeaders;

/// Only the daemon's user may read a run's secrets.
const SECRET_MODE: u32 = 0o600;

/// A run as read back from its directory when the daemon starts.
pub struct StoredRun {
    pub record: RunRecord,
    /// The values of its secret headers, while it may still start.
    pub secrets: SecretHeaders,
}

/// Where things live under the state directory. Paths are built from ids the registry made.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    pub logs_dir: PathBuf,
}

impl Paths {
    fn runs(&self) -> PathBuf {
        self.state_dir.join("runs")
    }
    fn run_dir(&self, id: &str) -> PathBuf {
        self.runs().join(id)
    }
    fn record(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("run.json")
    }
    pub fn csv(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("results.csv")
    }
    pub fn summary(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("summary.json")
    }
    /// Written by the run itself when it ends, beside its CSV ([`crate::shard::write`]).
    pub fn manifest(&self, id: &str) -> PathBuf {
        crate::shard::manifest_path_for(&self.csv(id))
    }
    fn secrets(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("secrets.json")
    }

    /// Whether an uploaded log of that name is there. `symlink_metadata`: a link planted in the
    /// logs directory does not lead a run elsewhere.
    pub fn has_log(&self, name: &str) -> bool {
        fs::symlink_metadata(self.logs_dir.join(name)).is_ok_and(|m| m.is_file())
    }

    /// `text` without the daemon's own paths: a run's files by their names (`results.csv`), logs
    /// by their upload names, anything else under the state directory as `STATE_DIR`.
    pub fn hide(&self, id: &str, text: &str) -> String {
        let dir = |p: &Path| format!("{}/", p.display());
        text.replace(&dir(&self.run_dir(id)), "")
            .replace(&dir(&self.logs_dir), "")
            .replace(&self.logs_dir.display().to_string(), "LOGS_DIR")
            .replace(&self.state_dir.display().to_string(), "STATE_DIR")
    }

    /// Every string in `value` through [`Paths::hide`].
    pub fn hide_in(&self, id: &str, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.hide(id, s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.hide_in(id, v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.hide_in(id, v)),
            _ => {}
        }
    }

    /// A new run's directory, with its secrets (if any) and its record. Secrets first: a record
    /// on disk always has its secrets beside it until it ends.
    pub fn create_run(&self, record: &RunRecord, secrets: &SecretHeaders) -> Result<(), String> {
        let id = &record.id;
        fs::create_dir(self.run_dir(id)).map_err(|e| format!("cannot create the run's directory: {e}"))?;
        if !secrets.is_empty() {
            let json = serde_json::to_vec(secrets).expect("strings serialise");
            write_file(&self.secrets(id), &json, SECRET_MODE)
                .map_err(|e| format!("cannot store the run's secret header values: {e}"))?;
        }
        self.write_record(record).map_err(|e| format!("cannot write the run's record: {e}"))
    }

    /// Replaces a run's `run.json`.
    pub fn write_record(&self, record: &RunRecord) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(record).expect("a record serialises");
        bytes.push(b'\n');
        write_atomically(&self.record(&record.id), &bytes)
    }

    /// Writes a run's `summary.json` (already cleaned of the daemon's paths).
    pub fn write_summary(&self, id: &str, summary: &serde_json::Value) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(summary).expect("a summary serialises");
        write_atomically(&self.summary(id), &json)
    }

    /// Removes a run that ended, with its CSV and summary.
    pub fn remove_run(&self, id: &str) -> io::Result<()> {
        fs::remove_dir_all(self.run_dir(id))
    }

    /// Removes a run's secrets file once nothing will send them again.
    pub fn forget_secrets(&self, id: &str) {
        match fs::remove_file(self.secrets(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                eprintln!("sluice daemon: cannot remove the secrets of run {id}: {e}");
            }
            _ => {}
        }
    }

    /// The secrets a queued or scheduled run needs, read back after a restart; `Err` names the
    /// headers whose values are not there.
    fn read_secrets(&self, record: &RunRecord) -> Result<SecretHeaders, Vec<String>> {
        let needed = record.options.secret_header_names();
        if needed.is_empty() {
            return Ok(SecretHeaders::new());
        }
        let secrets: SecretHeaders = fs::read(self.secrets(&record.id))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        record.options.with_secrets(&secrets).map(|_| secrets)
    }

    /// Every run record under the state directory (creating the directories if missing), with
    /// what a previous daemon left unfinished settled and written back. Returns the runs with
    /// their secrets, and a line per run it changed or skipped, for the start-up log.
    pub fn load(&self) -> io::Result<(Vec<StoredRun>, Vec<String>)> {
        fs::create_dir_all(self.runs())?;
        fs::create_dir_all(&self.logs_dir)?;
        let mut runs = Vec::new();
        let mut notes = Vec::new();
        let now = Utc::now();
        for dir in fs::read_dir(self.runs())? {
            let dir = dir?;
            let id = dir.file_name().to_string_lossy().into_owned();
            if !dir.file_type()?.is_dir() {
                continue;
            }
            remove_temporaries(&dir.path());
            let mut record: RunRecord = match fs::read(self.record(&id))
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| format!("not a run record: {e}")))
            {
                Ok(r) => r,
                Err(e) => {
                    // Left in place: the daemon never deletes what it does not understand.
                    notes.push(format!("skipping {}: {e}", dir.path().display()));
                    continue;
                }
            };
            if record.id != id {
                notes.push(format!("skipping {}: its record names run {}", dir.path().display(), record.id));
                continue;
            }
            let mut note = settle_after_restart(&mut record, self, now);
            let mut secrets = SecretHeaders::new();
            if record.state.is_finished() {
                self.forget_secrets(&id);
            } else if let Err(missing) = self.read_secrets(&record).map(|s| secrets = s) {
                record.state = RunState::Failed;
                record.finished_at = Some(now);
                record.message = Some(format!(
                    "not started: the values of its secret headers ({}) could not be read back after the daemon \
                     restarted, and it is never sent without them; submit it again",
                    missing.join(", ")
                ));
                note = Some("failed: its secret header values were lost".into());
            }
            if let Some(note) = note {
                self.write_record(&record)?;
                notes.push(format!("run {id}: {note}"));
            }
            runs.push(StoredRun { record, secrets });
        }
        Ok((runs, notes))
    }
}

/// Temporary file, sync, rename over the target, sync the directory: after a crash the file is
/// either the old one or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, 0o666)
}

/// [`write_atomically`] with the file created with `mode` (before the umask): a secret is never
/// readable by others, not even for the moment between creating and renaming it.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // A temporary left by a crash keeps its old mode if opened again; start from none.
    let _ = fs::remove_file(&tmp);
    {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn remove_temporaries(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// What a new daemon makes of a record the previous one left. Returns a note when it changed it.
fn settle_after_restart(record: &mut RunRecord, paths: &Paths, now: DateTime<Utc>) -> Option<String> {
    match record.state {
        RunState::Running | RunState::Stopping => {
            let csv = paths.csv(&record.id);
            let rows = repair_csv(&csv).ok();
            record.state = RunState::Interrupted;
            // The CSV's last flush is the best account of when the run stopped.
            record.finished_at =
                Some(fs::metadata(&csv).and_then(|m| m.modified()).map(DateTime::<Utc>::from).unwrap_or(now));
            record.message = Some(match rows {
                Some(rows) => format!(
                    "the daemon stopped (killed or crashed) while this run was running; its CSV keeps the {rows} \
                     requests flushed before then; it is not resumed — submit it again to repeat it"
                ),
                None => "the daemon stopped (killed or crashed) while this run was running; it is not resumed — \
                         submit it again to repeat it"
                    .into(),
            });
            if let Some(p) = &mut record.progress {
                p.current_rate = 0.0;
            }
            Some("interrupted: the previous daemon stopped while it was running".into())
        }
        RunState::Scheduled | RunState::Queued
            if record.options.start_at.is_some_and(|t| t < now - LATE_START_GRACE) =>
        {
            record.state = RunState::Failed;
            record.finished_at = Some(now);
            record.message = Some(format!(
                "not started: its start_at ({}) passed while the daemon was not running; submit it again",
                record.options.start_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ));
            Some("failed: its start time passed while the daemon was down".into())
        }
        _ => None,
    }
}

/// Cuts a CSV back to its last whole row (a killed writer may have left half of one) and counts
/// the data rows. The writer only ever appends, so everything before the last newline is whole.
fn repair_csv(path: &Path) -> io::Result<u64> {
    let mut file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let tail_len = len.min(64 * 1024);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail)?;
    let keep = match memchr::memrchr(b'\n', &tail) {
        Some(i) => len - tail_len + i as u64 + 1,
        None if len == tail_len => 0,
        None => len, // a row longer than 64 KiB: not ours to judge
    };
    if keep < len {
        file.set_len(keep)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::Start(0))?;
    let mut lines = 0u64;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    Ok(lines.saturating_sub(1)) // the header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::request::RunRequest;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_torn_last_row_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        fs::write(&path, "seq,url\n0,/a\n1,/b\n2,/c").unwrap();
        assert_eq!(repair_csv(&path).unwrap(), 2);
        assert_eq!(fs::read_to_string(&path).unwrap(), "seq,url\n0,/a\n1,/b\n");
        assert_eq!(repair_csv(&path).unwrap(), 2, "a whole file is left alone");
    }

    fn record(state: RunState, start_at: Option<DateTime<Utc>>) -> RunRecord {
        let options = RunRequest { start_at, ..RunRequest::default() };
        RunRecord::new("20260101-000000-000".into(), state, Utc::now(), options)
    }

    #[test]
    fn after_a_restart_running_runs_are_interrupted_and_late_soak_tests_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths { state_dir: dir.path().into(), logs_dir: dir.path().join("logs") };
        let now = Utc::now();
        for state in [RunState::Running, RunState::Stopping] {
            let mut r = record(state, None);
            assert!(settle_after_restart(&mut r, &paths, now).is_some());
            assert_eq!(r.state, RunState::Interrupted);
            assert!(r.message.unwrap().contains("not resumed"));
        }
        let mut late = record(RunState::Scheduled, Some(now - chrono::TimeDelta::hours(7)));
        settle_after_restart(&mut late, &paths, now);
        assert_eq!(late.state, RunState::Failed);
        let mut due_soon = record(RunState::Scheduled, Some(now + chrono::TimeDelta::hours(1)));
        assert!(settle_after_restart(&mut due_soon, &paths, now).is_none());
        let mut queued = record(RunState::Queued, None);
        assert!(settle_after_restart(&mut queued, &paths, now).is_none());
        for done in [RunState::Completed, RunState::Stopped, RunState::Failed, RunState::Interrupted] {
            assert!(settle_after_restart(&mut record(done, None), &paths, now).is_none());
        }
    }
}
