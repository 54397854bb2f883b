//! The daemon's runs: their records, the queue, the scheduler, and how they survive a restart.
//!
//! Persistence is a directory per run under `STATE_DIR/runs/<id>/`:
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
//! one. Writes happen only at state changes, under the registry's lock, so two writers never race
//! on one record. A record that says `running` or `stopping` when the daemon starts belongs to a
//! daemon that died mid-run: it becomes `interrupted`, its CSV is cut back to the last whole row,
//! and it is never started again.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::request::{AllowList, Policy, Rejection, RunRequest, SecretHeaders};
use crate::config::Rate;
use crate::control::{Progress, StatusClasses};
use crate::run::summary::Summary;
use crate::run::{Run, RunError, RunHandle};
use crate::sink::metrics::{Metrics, RunGauges};

/// A scheduled run whose start time passed at most this long ago while the daemon was down is
/// still started; one that is later than this is not (a soak test meant for 02:00 should not
/// begin at 09:00 because the daemon came back then).
const LATE_START_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// How often a running run's progress is written to its record (one small file replace).
const PERSIST_PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for a free slot (`--max-concurrent-runs`).
    Queued,
    /// Waiting for its `start_at`.
    Scheduled,
    Running,
    /// Asked to stop (or the daemon is shutting down): no new requests, in-flight ones draining.
    Stopping,
    /// Ran to its end: the log replayed, or the duration reached.
    Completed,
    /// Stopped through the API.
    Stopped,
    /// Could not start, or ended on an error (unreadable logs, too many bad lines, …).
    Failed,
    /// The daemon stopped while the run was running (SIGTERM, a crash, SIGKILL). Never resumed.
    Interrupted,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Queued,
        RunState::Scheduled,
        RunState::Running,
        RunState::Stopping,
        RunState::Completed,
        RunState::Stopped,
        RunState::Failed,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Scheduled => "scheduled",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Completed => "completed",
            RunState::Stopped => "stopped",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Completed | RunState::Stopped | RunState::Failed | RunState::Interrupted)
    }

    fn is_active(self) -> bool {
        matches!(self, RunState::Running | RunState::Stopping)
    }
}

/// A run's live figures (or its last ones, once it ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressView {
    pub elapsed_seconds: f64,
    /// Requests released to the senders.
    pub sent: u64,
    /// Requests answered with a status.
    pub completed: u64,
    /// Requests that got no answer (timeouts, resets, …).
    pub errors: u64,
    /// Answered requests by status class: `{"1xx":0,"2xx":1546,"3xx":0,"4xx":259,"5xx":195}`.
    #[serde(default)]
    pub classes: StatusClasses,
    /// Requests per second over the last second (0 once the run ended).
    pub current_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lag_p99_ms: f64,
    pub lines_rejected: u64,
}

impl ProgressView {
    fn of(p: &Progress, current_rate: f64) -> ProgressView {
        ProgressView {
            elapsed_seconds: p.elapsed.as_secs_f64(),
            sent: p.sent,
            completed: p.live.completed,
            errors: p.live.errors,
            classes: p.live.classes,
            current_rate,
            p50_ms: p.live.p50_ms,
            p99_ms: p.live.p99_ms,
            lag_p99_ms: p.live.lag_p99_ms,
            lines_rejected: p.lines_rejected,
        }
    }
}

/// What the API shows for a run, and what `run.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run failed, was stopped or interrupted, in words.
    #[serde(default)]
    pub message: Option<String>,
    /// The format the logs are read as (what `auto` chose), once started.
    #[serde(default)]
    pub format: Option<String>,
    pub options: RunRequest,
    /// Live while running; the last figures once ended.
    #[serde(default)]
    pub progress: Option<ProgressView>,
    /// The summary (as `--summary-json` writes it), once ended.
    #[serde(default)]
    pub summary: Option<serde_json::Value>,
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
    fn secrets(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("secrets.json")
    }

    /// `text` without the daemon's own paths: a run's files by their names (`results.csv`), logs
    /// by their upload names, anything else under the state directory as `STATE_DIR`.
    fn hide(&self, id: &str, text: &str) -> String {
        let dir = |p: &Path| format!("{}/", p.display());
        text.replace(&dir(&self.run_dir(id)), "")
            .replace(&dir(&self.logs_dir), "")
            .replace(&self.logs_dir.display().to_string(), "LOGS_DIR")
            .replace(&self.state_dir.display().to_string(), "STATE_DIR")
    }

    /// Every string in `value` through [`Paths::hide`].
    fn hide_in(&self, id: &str, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.hide(id, s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.hide_in(id, v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.hide_in(id, v)),
            _ => {}
        }
    }
}

/// Who asked a running run to stop; decides whether it ends `stopped` or `interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopBy {
    User,
    Shutdown,
}

/// What only exists while a run's thread does.
struct Live {
    /// `None` while the run is starting (opening its logs, checking its target).
    handle: Option<RunHandle>,
    stop: Option<StopBy>,
    target_rate: f64,
    sampled_at: Instant,
    sampled_sent: u64,
    current_rate: f64,
    /// When the record last got this run's progress: a killed daemon's record keeps figures at
    /// most [`PERSIST_PROGRESS_EVERY`] old.
    persisted_at: Instant,
}

struct Entry {
    record: RunRecord,
    live: Option<Live>,
    /// Secret header values, until the run ends (see the module's notes).
    secrets: SecretHeaders,
}

struct Inner {
    runs: BTreeMap<String, Entry>,
    /// Ids are creation times in milliseconds; this keeps them unique and increasing.
    last_id_ms: i64,
    /// Run threads not yet finished, including ones still starting.
    threads: usize,
}

/// Why a registry operation was refused; the API maps each to a status code.
#[derive(Debug)]
pub enum RegistryError {
    Rejected(Rejection),
    NotFound(String),
    Conflict(String),
    /// Too many runs waiting (`--max-queued-runs`): 429.
    TooMany(String),
    ShuttingDown,
    Io(String),
}

impl From<Rejection> for RegistryError {
    fn from(r: Rejection) -> Self {
        RegistryError::Rejected(r)
    }
}

fn io_error(what: &str, e: io::Error) -> RegistryError {
    RegistryError::Io(format!("{what}: {e}"))
}

pub struct Registry {
    paths: Paths,
    policy: Policy,
    max_concurrent: usize,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
    accepting: AtomicBool,
    closed: AtomicBool,
    /// Wakes the scheduler loop early (a run ended, one was submitted).
    wake: tokio::sync::Notify,
}

impl Registry {
    /// Loads every run record under the state directory, settling what a previous daemon left
    /// unfinished. Returns the registry and a line per run it changed, for the start-up log.
    pub fn open(
        paths: Paths,
        policy: Policy,
        max_concurrent: usize,
        metrics: Arc<Metrics>,
    ) -> io::Result<(Arc<Registry>, Vec<String>)> {
        fs::create_dir_all(paths.runs())?;
        fs::create_dir_all(&paths.logs_dir)?;
        let mut runs = BTreeMap::new();
        let mut notes = Vec::new();
        let now = Utc::now();
        for dir in fs::read_dir(paths.runs())? {
            let dir = dir?;
            let id = dir.file_name().to_string_lossy().into_owned();
            if !dir.file_type()?.is_dir() {
                continue;
            }
            remove_temporaries(&dir.path());
            let record_path = paths.record(&id);
            let mut record: RunRecord = match fs::read(&record_path)
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
            let mut note = settle_after_restart(&mut record, &paths, now);
            let mut secrets = SecretHeaders::new();
            if record.state.is_finished() {
                forget_secrets_file(&paths, &id);
            } else if let Err(missing) = read_secrets(&paths, &record).map(|s| secrets = s) {
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
                write_atomically(&record_path, &to_json(&record))?;
                notes.push(format!("run {id}: {note}"));
            }
            runs.insert(id, Entry { record, live: None, secrets });
        }
        let last_id_ms = runs.values().map(|e| e.record.created_at.timestamp_millis()).max().unwrap_or(0);
        let registry = Registry {
            paths,
            policy,
            max_concurrent: max_concurrent.max(1),
            metrics,
            inner: Mutex::new(Inner { runs, last_id_ms, threads: 0 }),
            accepting: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        };
        Ok((Arc::new(registry), notes))
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.policy.allow
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("the registry lock is never held across a panic")
    }

    /// Validates a request, records it (`queued` or `scheduled`) and starts it if a slot is free.
    pub fn submit(self: &Arc<Self>, request: RunRequest) -> Result<RunRecord, RegistryError> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(RegistryError::ShuttingDown);
        }
        request.to_args(&self.paths.logs_dir, self.paths.state_dir.join("validation.csv"), &self.policy)?;
        for name in &request.logs {
            let path = self.paths.logs_dir.join(name);
            // symlink_metadata: a link planted in the logs directory does not lead a run elsewhere.
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(Rejection::Invalid(format!(
                    "logs: there is no log named '{name}' on the daemon; upload it first with PUT /v1/logs/{name} \
                     (GET /v1/logs lists the uploaded logs)"
                ))
                .into());
            }
        }
        let now = Utc::now();
        let state = match request.start_at {
            Some(t) if t < now - LATE_START_GRACE => {
                return Err(Rejection::Invalid(format!(
                    "start_at: {} is in the past; leave it out to start as soon as possible",
                    t.to_rfc3339()
                ))
                .into());
            }
            Some(t) if t > now => RunState::Scheduled,
            _ => RunState::Queued,
        };
        let mut inner = self.lock();
        self.check_room_to_wait(&inner, state)?;
        let ms = now.timestamp_millis().max(inner.last_id_ms + 1);
        inner.last_id_ms = ms;
        let id = id_for(ms);
        let (request, secrets) = request.split_secrets();
        let record = RunRecord {
            id: id.clone(),
            state,
            created_at: now,
            started_at: None,
            finished_at: None,
            message: None,
            format: None,
            options: request,
            progress: None,
            summary: None,
        };
        fs::create_dir(self.paths.run_dir(&id)).map_err(|e| io_error("cannot create the run's directory", e))?;
        // Secrets first: a record on disk always has its secrets beside it until it ends.
        if !secrets.is_empty() {
            let json = serde_json::to_vec(&secrets).expect("strings serialise");
            write_file(&self.paths.secrets(&id), &json, SECRET_MODE)
                .map_err(|e| io_error("cannot store the run's secret header values", e))?;
        }
        write_atomically(&self.paths.record(&id), &to_json(&record))
            .map_err(|e| io_error("cannot write the run's record", e))?;
        inner.runs.insert(id.clone(), Entry { record, live: None, secrets });
        self.schedule(&mut inner);
        Ok(view(&inner.runs[&id]))
    }

    /// `--max-queued-runs`: a run that would wait (scheduled, or no free slot) is refused when
    /// that many already wait. A run that starts at once waits for nothing and is not counted.
    fn check_room_to_wait(&self, inner: &Inner, state: RunState) -> Result<(), RegistryError> {
        let count = |f: fn(RunState) -> bool| inner.runs.values().filter(|e| f(e.record.state)).count();
        let waiting = count(|s| matches!(s, RunState::Queued | RunState::Scheduled));
        let queued = count(|s| s == RunState::Queued);
        let would_wait = state == RunState::Scheduled || count(RunState::is_active) + queued >= self.max_concurrent;
        let cap = self.policy.caps.max_queued_runs;
        if would_wait && waiting >= cap {
            return Err(RegistryError::TooMany(format!(
                "{waiting} runs are already queued or scheduled, this daemon's limit (--max-queued-runs {cap}); \
                 wait for some to start, or stop ones no longer needed"
            )));
        }
        Ok(())
    }

    /// Every run, newest first, with live progress for running ones.
    pub fn list(&self) -> Vec<RunRecord> {
        self.lock().runs.values().rev().map(view).collect()
    }

    pub fn get(&self, id: &str) -> Option<RunRecord> {
        self.lock().runs.get(id).map(view)
    }

    /// Stops a run: a queued or scheduled one at once (it never sends anything), a running one by
    /// draining it (`stopping`, then `stopped`).
    pub fn stop(&self, id: &str) -> Result<RunRecord, RegistryError> {
        let mut inner = self.lock();
        let entry = inner.runs.get_mut(id).ok_or_else(|| not_found(id))?;
        match entry.record.state {
            RunState::Queued | RunState::Scheduled => {
                entry.record.state = RunState::Stopped;
                entry.record.finished_at = Some(Utc::now());
                entry.record.message = Some("stopped before it started; nothing was sent".into());
                entry.secrets.clear();
                forget_secrets_file(&self.paths, id);
            }
            RunState::Running => {
                // A running run always has its thread's `Live`; without one there is nothing to
                // cancel, and the state change alone is right.
                if let Some(live) = entry.live.as_mut() {
                    live.stop.get_or_insert(StopBy::User);
                    if let Some(handle) = &live.handle {
                        handle.cancel();
                    }
                }
                entry.record.state = RunState::Stopping;
            }
            RunState::Stopping => return Ok(view(entry)),
            done => {
                return Err(RegistryError::Conflict(format!(
                    "run {id} already ended ({}); there is nothing to stop",
                    done.as_str()
                )));
            }
        }
        let record = entry.record.clone();
        write_atomically(&self.paths.record(id), &to_json(&record))
            .map_err(|e| io_error("cannot write the run's record", e))?;
        Ok(view(&inner.runs[id]))
    }

    /// Removes a run that ended, with its CSV and summary.
    pub fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let entry = inner.runs.get(id).ok_or_else(|| not_found(id))?;
        if !entry.record.state.is_finished() {
            return Err(RegistryError::Conflict(format!(
                "run {id} is {}; stop it first (POST /v1/runs/{id}/stop), then delete it once it has ended",
                entry.record.state.as_str()
            )));
        }
        fs::remove_dir_all(self.paths.run_dir(id)).map_err(|e| io_error("cannot remove the run's files", e))?;
        inner.runs.remove(id);
        Ok(())
    }

    /// The gauges `/metrics` shows next to the request counters.
    pub fn gauges(&self) -> RunGauges {
        let inner = self.lock();
        let mut gauges = RunGauges {
            runs_by_state: RunState::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect(),
            ..RunGauges::default()
        };
        for entry in inner.runs.values() {
            *gauges.runs_by_state.entry(entry.record.state.as_str().to_string()).or_default() += 1;
            if let Some(Live { handle: Some(handle), target_rate, .. }) = &entry.live {
                let p = handle.progress();
                gauges.inflight += p.sent.saturating_sub(p.live.completed + p.live.errors);
                gauges.target_rate += target_rate;
            }
        }
        gauges
    }

    /// Once a second: measures current rates, promotes due scheduled runs and starts queued ones.
    pub fn tick(self: &Arc<Self>) {
        let mut inner = self.lock();
        let now = Instant::now();
        for entry in inner.runs.values_mut() {
            if let Some(live) = &mut entry.live
                && let Some(handle) = &live.handle
            {
                let sent = handle.progress().sent;
                let dt = now.duration_since(live.sampled_at).as_secs_f64();
                if dt >= 0.5 {
                    live.current_rate = sent.saturating_sub(live.sampled_sent) as f64 / dt;
                    live.sampled_at = now;
                    live.sampled_sent = sent;
                }
                if now.duration_since(live.persisted_at) >= PERSIST_PROGRESS_EVERY {
                    live.persisted_at = now;
                    entry.record.progress = Some(ProgressView::of(&handle.progress(), live.current_rate));
                    self.persist_quietly(&entry.record);
                }
            }
        }
        self.schedule(&mut inner);
    }

    /// A future that resolves when something happened that the scheduler should look at.
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Starts what may start: scheduled runs whose time came join the queue, and queued runs start
    /// in order of when they became due, while fewer than `max_concurrent` run.
    fn schedule(self: &Arc<Self>, inner: &mut Inner) {
        if !self.accepting.load(Ordering::SeqCst) {
            return;
        }
        let now = Utc::now();
        for entry in inner.runs.values_mut() {
            if entry.record.state == RunState::Scheduled && entry.record.options.start_at.is_none_or(|t| t <= now) {
                entry.record.state = RunState::Queued;
                self.persist_quietly(&entry.record);
            }
        }
        let mut active = inner.runs.values().filter(|e| e.record.state.is_active()).count();
        while active < self.max_concurrent {
            let next = inner
                .runs
                .values()
                .filter(|e| e.record.state == RunState::Queued)
                .min_by_key(|e| (e.record.options.start_at.unwrap_or(e.record.created_at), e.record.id.clone()))
                .map(|e| e.record.id.clone());
            let Some(id) = next else { break };
            let entry = inner.runs.get_mut(&id).expect("just found");
            // Checked at submission and at start-up; kept as a last guard against sending a run
            // without a header it was given.
            let request = match entry.record.options.with_secrets(&entry.secrets) {
                Ok(request) => request,
                Err(missing) => {
                    entry.record.state = RunState::Failed;
                    entry.record.finished_at = Some(Utc::now());
                    entry.record.message = Some(format!(
                        "not started: the values of its secret headers ({}) are missing",
                        missing.join(", ")
                    ));
                    self.persist_quietly(&entry.record);
                    continue;
                }
            };
            entry.record.state = RunState::Running;
            entry.record.started_at = Some(now);
            entry.live = Some(Live {
                handle: None,
                stop: None,
                target_rate: 0.0,
                sampled_at: Instant::now(),
                sampled_sent: 0,
                current_rate: 0.0,
                persisted_at: Instant::now(),
            });
            self.persist_quietly(&entry.record);
            inner.threads += 1;
            let (registry, thread_id) = (self.clone(), id.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-run-{id}"))
                .spawn(move || registry.run_thread(thread_id, request));
            if let Err(e) = spawned {
                // No thread: settle the run here rather than leave it running forever.
                inner.threads -= 1;
                let entry = inner.runs.get_mut(&id).expect("just found");
                entry.live = None;
                entry.record.state = RunState::Failed;
                entry.record.finished_at = Some(Utc::now());
                entry.record.message = Some(format!("cannot start a thread for the run: {e}"));
                self.persist_quietly(&entry.record);
                break;
            }
            active += 1;
        }
    }

    /// Writes a record; a failure is reported on stderr rather than failing the state change,
    /// which has already happened in memory (the next write will carry it).
    fn persist_quietly(&self, record: &RunRecord) {
        if let Err(e) = write_atomically(&self.paths.record(&record.id), &to_json(record)) {
            eprintln!("sluice daemon: cannot write the record of run {}: {e}", record.id);
        }
    }

    /// A run's own thread: start it, hand its handle to the registry, wait for its summary.
    fn run_thread(self: Arc<Self>, id: String, request: RunRequest) {
        let mut guard = FinishGuard { registry: &self, id: &id, done: false };
        let started = request
            .to_config(&self.paths.logs_dir, self.paths.csv(&id), &self.policy)
            .map_err(|r| match r {
                Rejection::Invalid(m) | Rejection::Forbidden(m) => m,
            })
            .and_then(|config| {
                let rate = match config.rate {
                    Rate::PerSecond(n) => n,
                    Rate::Max => 0.0,
                };
                Run::start_with_metrics(config, Some(self.metrics.clone()))
                    .map(|run| (run, rate))
                    .map_err(|e| start_error(&e))
            });
        let (run, rate) = match started {
            Ok(started) => started,
            Err(message) => {
                guard.done = true;
                self.finish(&id, Err(message), None);
                return;
            }
        };
        let handle = run.handle();
        if self.attach(&id, handle.clone(), rate, run.format_name()) {
            handle.cancel();
        }
        let result = run.wait().map_err(|e| start_error(&e));
        let last = ProgressView::of(&handle.progress(), 0.0);
        guard.done = true;
        self.finish(&id, result, Some(last));
    }

    /// Gives a started run's handle to the registry. Returns true when a stop was asked for while
    /// the run was starting, so the caller cancels it at once.
    fn attach(&self, id: &str, handle: RunHandle, target_rate: f64, format: &str) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.runs.get_mut(id) else { return true };
        entry.record.format = Some(format.to_string());
        let Some(live) = entry.live.as_mut() else { return true };
        live.handle = Some(handle);
        live.target_rate = target_rate;
        live.stop.is_some()
    }

    /// Settles a run whose thread is done: its final state, summary and record.
    fn finish(self: &Arc<Self>, id: &str, result: Result<Summary, String>, progress: Option<ProgressView>) {
        let mut inner = self.lock();
        inner.threads -= 1;
        let Some(entry) = inner.runs.get_mut(id) else { return };
        let stop = entry.live.take().and_then(|l| l.stop);
        entry.secrets.clear();
        forget_secrets_file(&self.paths, id);
        let record = &mut entry.record;
        record.finished_at = Some(Utc::now());
        record.progress = progress.or(record.progress);
        match result {
            Err(message) => {
                record.state = RunState::Failed;
                record.message = Some(self.paths.hide(id, &message));
            }
            Ok(summary) => {
                (record.state, record.message) = match (summary.interrupted, stop, &summary.log.fatal) {
                    (true, Some(StopBy::Shutdown), _) => (
                        RunState::Interrupted,
                        Some(
                            "the daemon was shut down while this run was running: it drained, its CSV is complete \
                             up to the stop, and it will not be resumed"
                                .into(),
                        ),
                    ),
                    (true, _, _) => (RunState::Stopped, Some("stopped through the API; it drained first".into())),
                    (false, _, Some(fatal)) => (RunState::Failed, Some(self.paths.hide(id, fatal))),
                    (false, _, None) => match (&summary.output_error, &summary.aborted_by) {
                        (Some(error), _) => (
                            RunState::Failed,
                            Some(format!("the results could not be written ({error}); the CSV holds every whole row")),
                        ),
                        (None, Some(condition)) => {
                            (RunState::Failed, Some(format!("aborted by --abort-on {condition}")))
                        }
                        (None, None) if summary.nothing_answered() => {
                            (RunState::Failed, Some(summary.nothing_answered_text()))
                        }
                        (None, None) if !summary.log.incomplete.is_empty() => {
                            let cuts: Vec<String> = summary.log.incomplete.iter().map(ToString::to_string).collect();
                            let cuts = self.paths.hide(id, &cuts.join("; "));
                            (
                                RunState::Completed,
                                Some(format!("input incomplete: {cuts}; the lines before it were replayed")),
                            )
                        }
                        (None, None) => (RunState::Completed, None),
                    },
                };
                let mut shown = serde_json::to_value(&summary).expect("a summary serialises");
                self.paths.hide_in(id, &mut shown);
                let json = serde_json::to_vec_pretty(&shown).expect("a summary serialises");
                if let Err(e) = write_atomically(&self.paths.summary(id), &json) {
                    eprintln!("sluice daemon: cannot write the summary of run {id}: {e}");
                }
                record.summary = Some(shown);
            }
        }
        self.persist_quietly(&entry.record);
        self.schedule(&mut inner);
        drop(inner);
        self.wake.notify_one();
    }

    /// SIGTERM: refuse new runs, and drain every running one (it ends `interrupted`). Queued and
    /// scheduled runs stay as they are on disk, for the next daemon.
    pub fn begin_shutdown(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let mut inner = self.lock();
        for entry in inner.runs.values_mut() {
            if let Some(live) = &mut entry.live {
                live.stop.get_or_insert(StopBy::Shutdown);
                if let Some(handle) = &live.handle {
                    handle.cancel();
                }
                entry.record.state = RunState::Stopping;
                self.persist_quietly(&entry.record);
            }
        }
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Run threads still going (running, starting or draining).
    pub fn active_threads(&self) -> usize {
        self.lock().threads
    }

    /// After the drain: event streams end, even for runs that stay queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Settles a run's thread even if it panicked, so the run does not stay `running` forever.
struct FinishGuard<'a> {
    registry: &'a Arc<Registry>,
    id: &'a str,
    done: bool,
}

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.registry.finish(self.id, Err("internal error: the run's thread panicked".into()), None);
        }
    }
}

fn start_error(e: &RunError) -> String {
    match e {
        // The path is the daemon's own; say what went wrong without sending the client hunting.
        RunError::Output { reason, .. } => format!("cannot write the run's CSV: {reason}"),
        other => other.to_string(),
    }
}

fn not_found(id: &str) -> RegistryError {
    RegistryError::NotFound(format!("there is no run '{}' (GET /v1/runs lists them)", id.escape_debug()))
}

/// A record as the API shows it: live progress filled in for a running run.
fn view(entry: &Entry) -> RunRecord {
    let mut record = entry.record.clone();
    if let Some(Live { handle: Some(handle), current_rate, .. }) = &entry.live {
        record.progress = Some(ProgressView::of(&handle.progress(), *current_rate));
    }
    record
}

/// `20261121-220307-123`: creation time in UTC to the millisecond, so ids sort by age and read
/// as a date; the registry makes them unique by never reusing a millisecond.
fn id_for(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y%m%d-%H%M%S-%3f").to_string()
}

fn to_json(record: &RunRecord) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("a record serialises");
    bytes.push(b'\n');
    bytes
}

/// Temporary file, sync, rename over the target, sync the directory: after a crash the file is
/// either the old one or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, 0o666)
}

/// Only the daemon's user may read a run's secrets.
const SECRET_MODE: u32 = 0o600;

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

/// The secrets a queued or scheduled run needs, read back after a restart; `Err` names the
/// headers whose values are not there.
fn read_secrets(paths: &Paths, record: &RunRecord) -> Result<SecretHeaders, Vec<String>> {
    let needed = record.options.secret_header_names();
    if needed.is_empty() {
        return Ok(SecretHeaders::new());
    }
    let secrets: SecretHeaders = fs::read(paths.secrets(&record.id))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    record.options.with_secrets(&secrets).map(|_| secrets)
}

/// Removes a run's secrets file once nothing will send them again.
fn forget_secrets_file(paths: &Paths, id: &str) {
    match fs::remove_file(paths.secrets(id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            eprintln!("sluice daemon: cannot remove the secrets of run {id}: {e}");
        }
        _ => {}
    }
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
pub fn repair_csv(path: &Path) -> io::Result<u64> {
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

/// Waits (bounded by each run's drain timeout) for run threads to end; used at shutdown.
pub async fn drained(registry: &Registry) {
    while registry.active_threads() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        assert_eq!(id_for(0), "19700101-000000-000");
        let (a, b) = (id_for(1_795_000_000_123), id_for(1_795_000_000_124));
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.len(), 19);
    }

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
        RunRecord {
            id: "20260101-000000-000".into(),
            state,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            message: None,
            format: None,
            options: RunRequest { start_at, ..RunRequest::default() },
            progress: None,
            summary: None,
        }
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
