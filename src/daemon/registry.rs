//! The scheduler of the daemon's runs: what is queued, what starts, how runs stop and end.
//!
//! The registry holds every run the daemon knows ([`RunRecord`]s, loaded from and written to
//! [`Paths`]), starts queued runs on threads of their own while fewer than
//! `--max-concurrent-runs` run, promotes scheduled runs when their `start_at` comes, and settles
//! each run's final state when its thread ends. Records are written only at state changes, under
//! the registry's lock, so two writers never race on one record.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::policy::{AllowList, Policy, Rejection};
use super::record::{LATE_START_GRACE, ProgressView, RunRecord, RunState};
use super::request::{RunRequest, SecretHeaders};
use super::store::{Paths, StoredRun};
use crate::pace::schedule::Shape;
use crate::run::summary::Summary;
use crate::run::{Run, RunError, RunHandle};
use crate::sink::metrics::{Metrics, RunGauges};

/// How often a running run's progress is written to its record (one small file replace).
const PERSIST_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Who asked a running run to stop; decides whether it ends `stopped` or `interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopBy {
    User,
    Shutdown,
}

/// What only exists while a run's thread does.
/// A scheduled run is started this long before its `start_at`, so that opening its logs and
/// checking its target are done when its plan starts (the pacer waits for the exact instant).
const START_AHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

struct Live {
    /// `None` while the run is starting (opening its logs, checking its target).
    handle: Option<RunHandle>,
    stop: Option<StopBy>,
    /// The run's plan, for the rate it calls for at each moment.
    shape: Shape,
    sampled_at: Instant,
    sampled_sent: u64,
    current_rate: f64,
    /// When the record last got this run's progress: a killed daemon's record keeps figures at
    /// most [`PERSIST_PROGRESS_EVERY`] old.
    persisted_at: Instant,
}

/// A run as the registry holds it: its record, and what exists only in memory.
struct HeldRun {
    record: RunRecord,
    live: Option<Live>,
    /// Secret header values, until the run ends (see [`super::store`]).
    secrets: SecretHeaders,
}

struct Inner {
    runs: BTreeMap<String, HeldRun>,
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
    ) -> std::io::Result<(Arc<Registry>, Vec<String>)> {
        let (loaded, notes) = paths.load()?;
        let runs: BTreeMap<String, HeldRun> = loaded
            .into_iter()
            .map(|StoredRun { record, secrets }| (record.id.clone(), HeldRun { record, live: None, secrets }))
            .collect();
        let last_id_ms = runs.values().map(|held| held.record.created_at.timestamp_millis()).max().unwrap_or(0);
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
        request.to_config(&self.paths.logs_dir, self.paths.state_dir.join("validation.csv"), &self.policy)?;
        for name in &request.logs {
            if !self.paths.has_log(name) {
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
        let record = RunRecord::new(id.clone(), state, now, request);
        self.paths.create_run(&record, &secrets).map_err(RegistryError::Io)?;
        inner.runs.insert(id.clone(), HeldRun { record, live: None, secrets });
        self.schedule(&mut inner);
        Ok(view(&inner.runs[&id]))
    }

    /// `--max-queued-runs`: a run that would wait (scheduled, or no free slot) is refused when
    /// that many already wait. A run that starts at once waits for nothing and is not counted.
    fn check_room_to_wait(&self, inner: &Inner, state: RunState) -> Result<(), RegistryError> {
        let count = |f: fn(RunState) -> bool| inner.runs.values().filter(|held| f(held.record.state)).count();
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
        let held = inner.runs.get_mut(id).ok_or_else(|| not_found(id))?;
        match held.record.state {
            RunState::Queued | RunState::Scheduled => {
                held.record.end(RunState::Stopped, "stopped before it started; nothing was sent");
                held.secrets.clear();
                self.paths.forget_secrets(id);
            }
            RunState::Running => {
                // A running run always has its thread's `Live`; without one there is nothing to
                // cancel, and the state change alone is right.
                if let Some(live) = held.live.as_mut() {
                    live.stop.get_or_insert(StopBy::User);
                    if let Some(handle) = &live.handle {
                        handle.cancel();
                    }
                }
                held.record.state = RunState::Stopping;
            }
            RunState::Stopping => return Ok(view(held)),
            done => {
                return Err(RegistryError::Conflict(format!(
                    "run {id} already ended ({}); there is nothing to stop",
                    done.as_str()
                )));
            }
        }
        self.paths
            .write_record(&held.record)
            .map_err(|e| RegistryError::Io(format!("cannot write the run's record: {e}")))?;
        Ok(view(&inner.runs[id]))
    }

    /// Removes a run that ended, with its CSV and summary.
    pub fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let held = inner.runs.get(id).ok_or_else(|| not_found(id))?;
        if !held.record.state.is_finished() {
            return Err(RegistryError::Conflict(format!(
                "run {id} is {}; stop it first (POST /v1/runs/{id}/stop), then delete it once it has ended",
                held.record.state.as_str()
            )));
        }
        self.paths.remove_run(id).map_err(|e| RegistryError::Io(format!("cannot remove the run's files: {e}")))?;
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
        for held in inner.runs.values() {
            *gauges.runs_by_state.entry(held.record.state.as_str().to_string()).or_default() += 1;
            if let Some(Live { handle: Some(handle), shape, .. }) = &held.live {
                let p = handle.progress();
                gauges.inflight += p.sent.saturating_sub(p.live.completed + p.live.errors);
                gauges.target_rate += shape.rate_at(p.elapsed);
            }
        }
        gauges
    }

    /// Once a second: measures current rates, promotes due scheduled runs and starts queued ones.
    pub fn tick(self: &Arc<Self>) {
        let mut inner = self.lock();
        let now = Instant::now();
        for held in inner.runs.values_mut() {
            if let Some(live) = &mut held.live
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
                    held.record.progress = Some(ProgressView::of(&handle.progress(), live.current_rate));
                    self.persist_quietly(&held.record);
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
        for held in inner.runs.values_mut() {
            if held.record.state == RunState::Scheduled
                && held.record.options.start_at.is_none_or(|t| t <= now + START_AHEAD)
            {
                held.record.state = RunState::Queued;
                self.persist_quietly(&held.record);
            }
        }
        let mut active = inner.runs.values().filter(|held| held.record.state.is_active()).count();
        while active < self.max_concurrent {
            let next = inner
                .runs
                .values()
                .filter(|held| held.record.state == RunState::Queued)
                .min_by_key(|held| {
                    (held.record.options.start_at.unwrap_or(held.record.created_at), held.record.id.clone())
                })
                .map(|held| held.record.id.clone());
            let Some(id) = next else { break };
            let held = inner.runs.get_mut(&id).expect("just found");
            // Checked at submission and at start-up; kept as a last guard against sending a run
            // without a header it was given.
            let request = match held.record.options.with_secrets(&held.secrets) {
                Ok(request) => request,
                Err(missing) => {
                    held.record.end(
                        RunState::Failed,
                        format!("not started: the values of its secret headers ({}) are missing", missing.join(", ")),
                    );
                    self.persist_quietly(&held.record);
                    continue;
                }
            };
            held.record.state = RunState::Running;
            held.record.started_at = Some(now);
            held.live = Some(Live {
                handle: None,
                stop: None,
                shape: Shape::Unpaced,
                sampled_at: Instant::now(),
                sampled_sent: 0,
                current_rate: 0.0,
                persisted_at: Instant::now(),
            });
            self.persist_quietly(&held.record);
            inner.threads += 1;
            let (registry, thread_id) = (self.clone(), id.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-run-{id}"))
                .spawn(move || registry.run_thread(thread_id, request));
            if let Err(e) = spawned {
                // No thread: settle the run here rather than leave it running forever.
                inner.threads -= 1;
                let held = inner.runs.get_mut(&id).expect("just found");
                held.live = None;
                held.record.end(RunState::Failed, format!("cannot start a thread for the run: {e}"));
                self.persist_quietly(&held.record);
                break;
            }
            active += 1;
        }
    }

    /// Writes a record; a failure is reported on stderr rather than failing the state change,
    /// which has already happened in memory (the next write will carry it).
    fn persist_quietly(&self, record: &RunRecord) {
        if let Err(e) = self.paths.write_record(record) {
            eprintln!("sluice daemon: cannot write the record of run {}: {e}", record.id);
        }
    }

    /// A run's own thread: start it, hand its handle to the registry, wait for its summary.
    fn run_thread(self: Arc<Self>, id: String, request: RunRequest) {
        let mut guard = FinishGuard { registry: &self, id: &id, done: false };
        let started = request
            .prepare(&self.paths.logs_dir, self.paths.csv(&id), &self.policy)
            .map_err(|r| match r {
                Rejection::Invalid(m) | Rejection::Forbidden(m) => m,
            })
            .and_then(|(options, config)| {
                let shape = config.shape.clone();
                Run::start_with_metrics(config.clone(), Some(self.metrics.clone()))
                    .map(|run| (run, shape, options, config))
                    .map_err(|e| start_error(&e))
            });
        let (run, shape, options, config) = match started {
            Ok(started) => started,
            Err(message) => {
                guard.done = true;
                self.finish(&id, Err(message), None);
                return;
            }
        };
        let handle = run.handle();
        let (format, logs) = (run.format_name().to_string(), request.logs.clone());
        if self.attach(&id, handle.clone(), shape, &format) {
            handle.cancel();
        }
        let result = run.wait().map_err(|e| start_error(&e));
        if let Ok(summary) = &result {
            // Beside the CSV, as `sluice replay` writes it: what `sluice runs results` merges a
            // fleet's shards by (and refuses to merge a shard by when it is missing).
            let t0 = handle.t0_wall();
            if let Err(e) = crate::shard::write::write_manifest(&options, &config, summary, t0, &format, Some(&logs)) {
                eprintln!("sluice daemon: run {id}: the run's manifest was not written: {e}");
            }
        }
        let last = ProgressView::of(&handle.progress(), 0.0);
        guard.done = true;
        self.finish(&id, result, Some(last));
    }

    /// Gives a started run's handle to the registry. Returns true when a stop was asked for while
    /// the run was starting, so the caller cancels it at once.
    fn attach(&self, id: &str, handle: RunHandle, shape: Shape, format: &str) -> bool {
        let mut inner = self.lock();
        let Some(held) = inner.runs.get_mut(id) else { return true };
        held.record.format = Some(format.to_string());
        let Some(live) = held.live.as_mut() else { return true };
        live.handle = Some(handle);
        live.shape = shape;
        live.stop.is_some()
    }

    /// Settles a run whose thread is done: its final state, summary and record.
    fn finish(self: &Arc<Self>, id: &str, result: Result<Summary, String>, progress: Option<ProgressView>) {
        let mut inner = self.lock();
        inner.threads -= 1;
        let Some(held) = inner.runs.get_mut(id) else { return };
        let stop = held.live.take().and_then(|l| l.stop);
        held.secrets.clear();
        self.paths.forget_secrets(id);
        let record = &mut held.record;
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
                if let Err(e) = self.paths.write_summary(id, &shown) {
                    eprintln!("sluice daemon: cannot write the summary of run {id}: {e}");
                }
                record.summary = Some(shown);
            }
        }
        self.persist_quietly(&held.record);
        self.schedule(&mut inner);
        drop(inner);
        self.wake.notify_one();
    }

    /// SIGTERM: refuse new runs, and drain every running one (it ends `interrupted`). Queued and
    /// scheduled runs stay as they are on disk, for the next daemon.
    pub fn begin_shutdown(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let mut inner = self.lock();
        for held in inner.runs.values_mut() {
            if let Some(live) = &mut held.live {
                live.stop.get_or_insert(StopBy::Shutdown);
                if let Some(handle) = &live.handle {
                    handle.cancel();
                }
                held.record.state = RunState::Stopping;
                self.persist_quietly(&held.record);
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

pub fn not_found(id: &str) -> RegistryError {
    RegistryError::NotFound(format!("there is no run '{}' (GET /v1/runs lists them)", id.escape_debug()))
}

/// A record as the API shows it: live progress filled in for a running run.
fn view(held: &HeldRun) -> RunRecord {
    let mut record = held.record.clone();
    if let Some(Live { handle: Some(handle), current_rate, shape, .. }) = &held.live {
        record.progress = Some(ProgressView::of(&handle.progress(), *current_rate).with_plan(shape));
    }
    record
}

/// `20261121-220307-123`: creation time in UTC to the millisecond, so ids sort by age and read
/// as a date; the registry makes them unique by never reusing a millisecond.
fn id_for(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y%m%d-%H%M%S-%3f").to_string()
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
}
