//! [`Run`]: one replay, wired from the stages. The CLI, the daemon and the tests all drive this:
//! start it, read [`Run::progress`] at any time, [`Run::cancel`] it, [`Run::wait`] for its summary.
//!
//! Threads, and why each is one:
//! - reader: file I/O, gunzip and parsing block; they feed a bounded queue, so memory stays flat
//!   for any log size (backpressure when the pacer is not taking).
//! - senders: a tokio runtime (current-thread by default: measured fastest next to a local
//!   target) running the pacer task and the sender tasks, so a released request reaches an idle
//!   sender without a thread switch.
//! - writer: the only owner of the CSV and the statistics.

pub mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_parsers::Format;
use tokio_util::sync::CancellationToken;

use crate::config::{BadLineLimit, Rate, ReplayConfig, Target};
use crate::pace::{Pacer, PacerReport, Schedule, StopReason, run_pacer};
use crate::cli::parse::{ParseStats, SNIFF_LINES, resolve_format};
use crate::plan::{LogPosition, PlanStats, Planner, ReplayRequest};
use crate::plan::read_ahead::{READ_AHEAD_BYTES, ReadAheadBudget, footprint};
use crate::send::{FailureSamples, Job, OUTCOME_BACKLOG, Outcome, OutcomeBuffer, sender};
use crate::run::summary::{Ending, Summary};
use crate::sink::abort::AbortWatch;
use crate::sink::csv::{CsvSink, WallClock};
use crate::sink::metrics::Metrics;
use crate::sink::run_writer;
use crate::stats::Stats;
use crate::source::{InputCut, LogReader};
use crate::send::transport::Transport;

/// Requests travel from the reader to the pacer in chunks this size: one hand-off (and at most
/// one thread wake-up) per chunk instead of per request.
pub(crate) const QUEUE_CHUNK: usize = 64;
/// Released requests that may wait for a free sender before the pacer itself waits.
const RELEASED_CAPACITY: usize = 1024;
/// Bad log lines kept verbatim (file:line: reason) for the summary.
const BAD_LINE_EXAMPLES: usize = 10;
/// A percentage limit on bad lines is only judged after this many lines, so one bad first line
/// does not end a run at "100%".
const BAD_SHARE_MIN_LINES: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A log file, the format or the target is unusable. Exit 2.
    #[error("{0}")]
    Input(String),
    /// The results file cannot be written. Exit 2.
    #[error("--out {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    /// Not one line of the log could be replayed. Exit 2; the summary says why.
    #[error("no replayable request in the log ({0})")]
    NoReplayableLines(String),
    #[error("{0}")]
    Internal(String),
}

/// What the reader found in the log.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReaderStats {
    pub lines_read: u64,
    pub parse: ParseStats,
    pub plan: PlanStats,
    /// The first few rejected lines as `FILE:LINE: reason`.
    pub bad_line_examples: Vec<String>,
    /// Where each example is, in lines read (to tell lines replayed from lines read ahead).
    #[serde(skip)]
    pub bad_line_positions: Vec<u64>,
    /// Full passes over the log (more than 1 when looping).
    pub passes: u64,
    /// Set when the reader ended the run: too many bad lines, or a read error.
    pub fatal: Option<String>,
    /// Inputs that stopped before their end (a truncated `.gz`): the lines before each cut were
    /// replayed, the rest of that input was not. Empty when every input was read to its end.
    pub incomplete: Vec<InputCut>,
}

/// A small live view of the writer's statistics, for progress displays.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct LiveStats {
    /// Requests that got an HTTP status.
    pub completed: u64,
    /// Requests that got no answer (connect, timeout, reset, …).
    pub errors: u64,
    /// Answered requests by status class.
    pub classes: StatusClasses,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lag_p99_ms: f64,
}

impl From<&Stats> for LiveStats {
    fn from(s: &Stats) -> Self {
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e3 }
        };
        LiveStats {
            completed: s.completed,
            errors: s.error_count(),
            classes: StatusClasses::of(&s.statuses),
            p50_ms: ms(&s.latency, 0.5),
            p99_ms: ms(&s.latency, 0.99),
            lag_p99_ms: ms(&s.lag, 0.99),
        }
    }
}

/// Answered requests by status class, as a progress line shows them (`2xx 1546 4xx 259 5xx 195`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirect: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl StatusClasses {
    pub fn of(statuses: &BTreeMap<u16, u64>) -> StatusClasses {
        let mut c = StatusClasses::default();
        for (&status, &n) in statuses {
            match status / 100 {
                1 => c.informational += n,
                2 => c.success += n,
                3 => c.redirect += n,
                4 => c.client_error += n,
                _ => c.server_error += n,
            }
        }
        c
    }

    /// `2xx 1546 4xx 259 5xx 195`: the classes seen (2xx always), in order.
    pub fn to_text(&self) -> String {
        let all = [
            ("1xx", self.informational),
            ("2xx", self.success),
            ("3xx", self.redirect),
            ("4xx", self.client_error),
            ("5xx", self.server_error),
        ];
        all.iter()
            .filter(|(name, n)| *n > 0 || *name == "2xx")
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A progress snapshot.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Progress {
    /// Since the first request was released.
    pub elapsed: Duration,
    /// Requests that have left so far.
    pub sent: u64,
    pub live: LiveStats,
    pub lines_rejected: u64,
}

/// State shared by the stages of one run.
pub struct Shared {
    stopping: AtomicBool,
    /// Why scheduling stopped early, when it did: the first reason given wins.
    stop_reason: OnceLock<StopReason>,
    stop: CancellationToken,
    jobs: Mutex<Option<async_channel::Receiver<Job>>>,
    /// Requests that actually left (a sender started sending them).
    sent: AtomicU64,
    t0: OnceLock<Instant>,
    duration: Option<Duration>,
    /// Requests have plan times (not `--rate max`).
    paced: bool,
    live: Mutex<LiveStats>,
    reader: Mutex<ReaderStats>,
    pub(crate) failures: FailureSamples,
    /// The `--abort-on` condition that stopped the run, with what was measured.
    pub(crate) aborted_by: Mutex<Option<String>>,
    /// Bytes of requests between the reader and the pacer.
    pub(crate) read_ahead: ReadAheadBudget,
}

impl Shared {
    fn new(duration: Option<Duration>, paced: bool) -> Shared {
        Shared {
            stopping: AtomicBool::new(false),
            stop_reason: OnceLock::new(),
            stop: CancellationToken::new(),
            jobs: Mutex::new(None),
            sent: AtomicU64::new(0),
            t0: OnceLock::new(),
            duration,
            paced,
            live: Mutex::new(LiveStats::default()),
            reader: Mutex::new(ReaderStats::default()),
            failures: FailureSamples::default(),
            aborted_by: Mutex::new(None),
            read_ahead: ReadAheadBudget::new(READ_AHEAD_BYTES),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether a request taken now may still leave: scheduling has not stopped and the duration
    /// has not run out (nothing is sent after `--duration`, however late the senders are).
    pub fn may_send(&self, now: Instant) -> bool {
        !self.is_stopping()
            && match (self.t0.get(), self.duration) {
                (Some(t0), Some(d)) => now < *t0 + d,
                _ => true,
            }
    }

    pub fn is_paced(&self) -> bool {
        self.paced
    }

    /// Why scheduling stopped early, if something stopped it.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason.get().copied()
    }

    /// Stops scheduling (a user's cancel, a bad log, a full disk, an abort condition, the end of
    /// the duration): wakes the pacer out of any sleep or queue wait, and closes the hand-off to
    /// the senders, so a pacer blocked on busy senders returns at once; what was already handed
    /// over is recorded as not sent.
    pub fn stop_because(&self, reason: StopReason) {
        let _ = self.stop_reason.set(reason);
        self.stopping.store(true, Ordering::Relaxed);
        self.stop.cancel();
        if let Some(jobs) = self.jobs.lock().expect("not poisoned").as_ref() {
            jobs.close();
        }
    }

    pub fn stop(&self) {
        self.stop_because(StopReason::Cancelled)
    }

    /// A token cancelled when the run is stopped.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The run's first release, once it happened.
    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    pub fn set_t0(&self, t0: Instant) {
        let _ = self.t0.set(t0);
    }

    pub fn publish(&self, live: LiveStats) {
        *self.live.lock().expect("not poisoned") = live;
    }
}

/// A cheap, cloneable view of a run: progress and cancellation from any thread (signal handlers,
/// progress displays, the daemon's API) while another thread waits for the summary.
#[derive(Clone)]
pub struct RunHandle {
    shared: Arc<Shared>,
    cancelled: Arc<AtomicBool>,
}

impl RunHandle {
    pub fn progress(&self) -> Progress {
        Progress {
            elapsed: self.shared.t0.get().map(|t| t.elapsed()).unwrap_or_default(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            live: *self.shared.live.lock().expect("not poisoned"),
            lines_rejected: self.shared.reader.lock().expect("not poisoned").parse.rejected,
        }
    }

    /// Stops scheduling; requests in flight finish (up to the drain timeout), then `wait` returns.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.shared.stop();
    }

    fn was_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// One replay in progress.
pub struct Run {
    handle: RunHandle,
    config: ReplayConfig,
    format_name: String,
    target_url: String,
    started: Instant,
    reader: JoinHandle<()>,
    /// The senders' runtime, which also runs the pacer; it returns the pacer's report.
    senders: JoinHandle<PacerReport>,
    writer: JoinHandle<(Stats, Option<std::io::Error>)>,
    // Kept alive for the run's length when the target is the built-in mock.
    _mock: Option<sluice_mock::MockServer>,
}

impl Run {
    /// Checks the inputs, opens the CSV and starts every stage. Errors here mean nothing was sent.
    pub fn start(config: ReplayConfig) -> Result<Run, RunError> {
        Run::start_with_metrics(config, None)
    }

    /// Like [`Run::start`], also folding every outcome into `metrics` (shared by a daemon's runs).
    pub fn start_with_metrics(config: ReplayConfig, metrics: Option<Arc<Metrics>>) -> Result<Run, RunError> {
        let started = Instant::now();
        check_open_files(&config)?;
        let Prepared { reader, format, target, mock } = prepare(&config)?;
        let clock = WallClock::now();
        let sink = CsvSink::create(&config.out, clock, config.redactor.clone())
            .map_err(|e| RunError::Output { path: config.out.clone(), reason: e.to_string() })?;
        let transport = Arc::new(Transport::build(&config, &target).map_err(RunError::Input)?);

        let shared = Arc::new(Shared::new(config.duration, config.rate != Rate::Max));
        let (queue_tx, queue_rx) =
            async_channel::bounded::<Vec<ReplayRequest>>(config.queue_capacity.div_ceil(QUEUE_CHUNK));
        // Released requests wait here for a free sender. Lag is measured when a request actually
        // leaves, and on a stop whatever is still waiting here is dropped unsent.
        let (jobs_tx, jobs_rx) = async_channel::bounded::<Job>(RELEASED_CAPACITY.max(config.batch as usize));
        *shared.jobs.lock().expect("not poisoned") = Some(jobs_rx.clone());
        let (outcomes_tx, outcomes_rx) = crossbeam_channel::bounded::<Vec<Outcome>>(OUTCOME_BACKLOG);

        let planner = Planner::new(&target, config.rules.clone());
        let reader = spawn("sluice-reader", {
            let (shared, looping, limit) = (shared.clone(), config.looping, config.max_bad_lines);
            let format = format.clone();
            move || read_log(reader, format, planner, queue_tx, shared, looping, limit)
        })?;
        let target_rate = match config.rate {
            Rate::PerSecond(n) => Some(n),
            Rate::Max => None,
        };
        let abort = AbortWatch::new(&config.abort_on, target_rate);
        let writer = spawn("sluice-writer", {
            let shared = shared.clone();
            move || run_writer(sink, outcomes_rx, shared, metrics, abort)
        })?;
        let schedule = match config.rate {
            Rate::PerSecond(n) => Some(Schedule::new(n, config.batch)),
            Rate::Max => None,
        };
        let runtime = if config.threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(config.threads).enable_all().build()
        }
        .map_err(|e| RunError::Internal(format!("cannot start the async runtime: {e}")))?;
        let senders = spawn("sluice-senders", {
            let (shared, concurrency, drain, deadline) =
                (shared.clone(), config.concurrency, config.drain_timeout, config.duration);
            move || {
                runtime.block_on(async move {
                    let abort = CancellationToken::new();
                    let outcomes = Arc::new(OutcomeBuffer::new(outcomes_tx));
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..concurrency {
                        let (transport, jobs, outcomes) = (transport.clone(), jobs_rx.clone(), outcomes.clone());
                        tasks.spawn(sender(transport, jobs, outcomes, abort.clone(), shared.clone()));
                    }
                    drop(jobs_rx);
                    let flusher = tokio::spawn({
                        let outcomes = outcomes.clone();
                        async move {
                            let mut tick = tokio::time::interval(OutcomeBuffer::FLUSH_EVERY);
                            loop {
                                tick.tick().await;
                                outcomes.flush();
                            }
                        }
                    });
                    // The pacer owns the only job sender: when it ends, the senders finish what
                    // was released and return.
                    let pacer = tokio::spawn(run_pacer(
                        Pacer::new(schedule),
                        deadline,
                        queue_rx,
                        jobs_tx,
                        outcomes.clone(),
                        shared,
                    ));
                    let report = pacer.await;
                    let drained =
                        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
                    if drained.is_err() {
                        abort.cancel();
                        while tasks.join_next().await.is_some() {}
                    }
                    flusher.abort();
                    outcomes.flush();
                    // A panic in the pacer is a bug; it ends the thread, and `wait` reports it.
                    report.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
                })
            }
        })?;
        Ok(Run {
            handle: RunHandle { shared, cancelled: Arc::new(AtomicBool::new(false)) },
            format_name: format.name().to_string(),
            target_url: target.to_string(),
            config,
            started,
            reader,
            senders,
            writer,
            _mock: mock,
        })
    }

    /// The format the log is read as (what `auto` chose).
    pub fn format_name(&self) -> &str {
        &self.format_name
    }

    /// Where requests go (the mock's address for `--target mock`).
    pub fn target_url(&self) -> &str {
        &self.target_url
    }

    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    pub fn handle(&self) -> RunHandle {
        self.handle.clone()
    }

    pub fn progress(&self) -> Progress {
        self.handle.progress()
    }

    pub fn cancel(&self) {
        self.handle.cancel()
    }

    /// Waits for the run to end and returns its summary.
    pub fn wait(self) -> Result<Summary, RunError> {
        let pacer = self.senders.join().map_err(|_| RunError::Internal("the sender thread panicked".into()))?;
        let (stats, write_error) =
            self.writer.join().map_err(|_| RunError::Internal("the writer thread panicked".into()))?;
        // The reader may be blocked reading a terminal on stdin; its stats are in `shared` anyway.
        let reader_deadline = Instant::now() + Duration::from_secs(1);
        while !self.reader.is_finished() && Instant::now() < reader_deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let reader = self.handle.shared.reader.lock().expect("not poisoned").clone();
        let cancelled = self.handle.was_cancelled();
        if pacer.released == 0 && !cancelled && write_error.is_none() {
            let _ = std::fs::remove_file(&self.config.out);
            let why = reader.fatal.clone().unwrap_or_else(|| {
                format!(
                    "{} lines read, {} rejected{}, {} skipped by rules",
                    reader.lines_read,
                    reader.parse.rejected,
                    if reader.parse.rejected > 0 {
                        format!(" ({})", reader.parse.reasons_text())
                    } else {
                        String::new()
                    },
                    reader.plan.skipped.values().sum::<u64>()
                )
            });
            let why = reader.incomplete.iter().fold(why, |why, cut| format!("{why}; {cut}"));
            return Err(RunError::NoReplayableLines(why));
        }
        let ending = Ending {
            interrupted: cancelled && pacer.reason == StopReason::Cancelled,
            error_messages: self.handle.shared.failures.snapshot(),
            aborted_by: self.handle.shared.aborted_by.lock().expect("not poisoned").clone(),
            output_error: write_error.map(|e| e.to_string()),
        };
        Ok(Summary::build(
            &self.config,
            &self.format_name,
            &self.target_url,
            &pacer,
            &stats,
            reader,
            ending,
            self.started,
        ))
    }
}

/// Open files a run needs besides its connections: logs, the CSV, the runtime's poller and
/// timers, a metrics listener.
const SPARE_FILES: u64 = 64;

/// Raises this process's soft limit on open files to its hard limit (distributions default the
/// soft limit to 1024, far below what `--concurrency` may ask) and refuses a run whose
/// connections cannot fit: running out half-way would look like a failing target.
fn check_open_files(config: &ReplayConfig) -> Result<(), RunError> {
    let limit = raise_open_files_limit();
    // The built-in mock runs in this process: each connection is open at both ends.
    let per_connection = if config.target == Target::Mock { 2 } else { 1 };
    let needed = config.concurrency as u64 * per_connection + SPARE_FILES;
    if limit < needed {
        return Err(RunError::Input(format!(
            "--concurrency {} needs about {needed} open files, but this process may open only {limit} \
             (its hard limit, `ulimit -Hn`): lower --concurrency or raise the limit",
            config.concurrency
        )));
    }
    Ok(())
}

/// The soft limit on open files after raising it as far as the hard limit allows.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// What both a run and a dry run need: the log open, its format known, the target up and checked.
struct Prepared {
    reader: LogReader,
    format: Format,
    target: reqwest::Url,
    mock: Option<sluice_mock::MockServer>,
}

/// Opens the inputs, settles the format and the target, and applies every safety check that must
/// pass before a single request leaves: --deny-host/--allow-host on the resolved target, and the
/// refusal to replay a log against the host that served it.
fn prepare(config: &ReplayConfig) -> Result<Prepared, RunError> {
    let mut reader = LogReader::new(config.inputs.clone())
        .map_err(|e| RunError::Input(e.to_string()))?
        .with_max_line_bytes(config.max_line_bytes);
    let format = resolve_format(&config.format, &mut reader).map_err(|e| RunError::Input(format!("{e:#}")))?;
    let (target, mock) = match &config.target {
        Target::Url(url) => (url.clone(), None),
        Target::Mock => {
            let mock = sluice_mock::spawn_in_thread(crate::demo_mock_config())
                .map_err(|e| RunError::Internal(format!("cannot start the mock server: {e}")))?;
            let url = reqwest::Url::parse(&mock.url()).map_err(|e| RunError::Internal(e.to_string()))?;
            (url, Some(mock))
        }
    };
    let host = target.host_str().unwrap_or_default();
    config.host_guard.check_target(host, target.port_or_known_default().unwrap_or(80)).map_err(RunError::Input)?;
    let sample = reader.prefetch(SNIFF_LINES).map_err(|e| RunError::Input(e.to_string()))?;
    let logged_hosts: Vec<String> = sample
        .iter()
        .filter_map(|line| format.parse_line(line).ok()?.vhost.map(|v| String::from_utf8_lossy(&v).into_owned()))
        .collect();
    config.host_guard.check_not_production(host, logged_hosts.iter().map(String::as_str)).map_err(RunError::Input)?;
    Ok(Prepared { reader, format, target, mock })
}

/// What `--dry-run` found: the requests a run would send, without sending any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    pub format: String,
    pub target: String,
    /// The first requests, as `METHOD URL` plus their headers (secrets redacted) and body size.
    pub first: Vec<String>,
    pub requests: u64,
    pub by_method: BTreeMap<String, u64>,
    pub by_host: BTreeMap<String, u64>,
    pub log: ReaderStats,
}

/// Requests a dry run describes one by one.
const DRY_RUN_SHOWN: usize = 20;

/// Parses, filters and rewrites one pass of the log exactly as a run would, and sends nothing.
pub fn dry_run(config: &ReplayConfig) -> Result<DryRun, RunError> {
    let Prepared { reader, format, target, mock: _mock } = prepare(config)?;
    let shared = Arc::new(Shared::new(None, true));
    let (queue_tx, queue_rx) = async_channel::bounded::<Vec<ReplayRequest>>(4);
    let planner = Planner::new(&target, config.rules.clone());
    let thread = spawn("sluice-reader", {
        let (shared, limit, format) = (shared.clone(), config.max_bad_lines, format.clone());
        move || read_log(reader, format, planner, queue_tx, shared, false, limit)
    })?;
    let mut report = DryRun {
        format: format.name().to_string(),
        target: target.to_string(),
        first: Vec::new(),
        requests: 0,
        by_method: BTreeMap::new(),
        by_host: BTreeMap::new(),
        log: ReaderStats::default(),
    };
    for req in std::iter::from_fn(|| queue_rx.recv_blocking().ok()).flatten() {
        shared.read_ahead.give_back(footprint(&req));
        report.requests += 1;
        *report.by_method.entry(req.method.to_string()).or_default() += 1;
        let host = match req.headers.iter().find(|(n, _)| n == reqwest::header::HOST) {
            Some((_, v)) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            None => req
                .url
                .host_str()
                .map(|h| format!("{h}{}", req.url.port().map(|p| format!(":{p}")).unwrap_or_default()))
                .unwrap_or_default(),
        };
        *report.by_host.entry(host).or_default() += 1;
        if report.first.len() < DRY_RUN_SHOWN {
            report.first.push(describe_request(&req, &config.redactor));
        }
    }
    thread.join().map_err(|_| RunError::Internal("the reader thread panicked".into()))?;
    report.log = shared.reader.lock().expect("not poisoned").clone();
    if let Some(fatal) = &report.log.fatal {
        return Err(RunError::Input(fatal.clone()));
    }
    Ok(report)
}

fn describe_request(req: &ReplayRequest, redactor: &crate::plan::safety::Redactor) -> String {
    let mut text = format!("{} {}", req.method, redactor.url(req.url.as_str()));
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        text.push_str(&format!("\n    {name}: {}", redactor.header_value(name.as_str(), &value)));
    }
    if let Some(body) = &req.body {
        text.push_str(&format!("\n    ({} body bytes)", body.len()));
    }
    text
}

fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| RunError::Internal(format!("cannot start thread {name}: {e}")))
}

/// The reader thread: log lines → parsed entries → planned requests → the bounded queue.
/// Bad lines and skipped lines are counted on the first pass only, so a looping run reports the
/// log's own figures rather than multiples of them.
fn read_log(
    mut reader: LogReader,
    format: Format,
    mut planner: Planner,
    queue: async_channel::Sender<Vec<ReplayRequest>>,
    shared: Arc<Shared>,
    looping: bool,
    limit: Option<BadLineLimit>,
) {
    let mut chunk = Vec::with_capacity(QUEUE_CHUNK);
    let mut stats = ReaderStats::default();
    let publish = |stats: &ReaderStats, planner: &Planner| {
        let mut s = shared.reader.lock().expect("not poisoned");
        *s = stats.clone();
        s.plan = planner.stats.clone();
    };
    let names = reader.input_names();
    let mut position = LogPosition { passes: 1, ..LogPosition::default() };
    let mut first_pass = true;
    let mut first_pass_plan = None;
    'passes: loop {
        let mut produced = 0u64;
        loop {
            if shared.is_stopping() {
                break 'passes;
            }
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    stats.fatal = Some(e.to_string());
                    shared.stop();
                    break 'passes;
                }
            };
            if first_pass {
                stats.lines_read += 1;
            }
            position.lines += 1;
            let number = line.number;
            match line.parse(&format) {
                Ok(entry) => {
                    let planned = planner.plan(&entry, line.input, number);
                    if first_pass {
                        stats.parse.accepted += 1;
                    }
                    if planned.is_err() {
                        position.skipped += 1;
                    }
                    if let Ok(mut req) = planned {
                        req.position = position;
                        produced += 1;
                        let size = footprint(&req);
                        if !shared.read_ahead.try_take(size) {
                            // Hand over what this thread holds before waiting: the pacer can only
                            // give back what it has received.
                            let held = std::mem::replace(&mut chunk, Vec::with_capacity(QUEUE_CHUNK));
                            if (!held.is_empty() && queue.send_blocking(held).is_err())
                                || !shared.read_ahead.take_blocking(size)
                            {
                                break 'passes; // the pacer has stopped
                            }
                        }
                        chunk.push(req);
                        if chunk.len() == QUEUE_CHUNK
                            && queue
                                .send_blocking(std::mem::replace(&mut chunk, Vec::with_capacity(QUEUE_CHUNK)))
                                .is_err()
                        {
                            break 'passes; // the pacer has stopped
                        }
                    }
                }
                Err(e) if first_pass => {
                    position.rejected += 1;
                    stats.parse.reject(e.kind());
                    let where_ = format!("{}:{}", names[line.input], number);
                    if stats.bad_line_examples.len() < BAD_LINE_EXAMPLES {
                        stats.bad_line_examples.push(format!("{where_}: {e}"));
                        stats.bad_line_positions.push(position.lines);
                    }
                    if let Some(why) = bad_line_limit_exceeded(limit, &stats) {
                        stats.fatal = Some(format!("stopped at {where_}: {why}"));
                        shared.stop();
                        break 'passes;
                    }
                    publish(&stats, &planner);
                }
                Err(_) => position.rejected += 1,
            }
            if first_pass && stats.lines_read % 4096 == 0 {
                publish(&stats, &planner);
            }
        }
        stats.passes += 1;
        if first_pass {
            // Skips are reported for the first pass only, like bad lines.
            first_pass_plan = Some(planner.stats.clone());
        }
        first_pass = false;
        if !looping || produced == 0 || !reader.can_rewind() {
            if !chunk.is_empty() {
                let _ = queue.send_blocking(chunk);
            }
            break;
        }
        reader.rewind();
        position.passes += 1;
    }
    stats.incomplete = reader.cuts().to_vec();
    let mut s = shared.reader.lock().expect("not poisoned");
    *s = stats;
    s.plan = first_pass_plan.unwrap_or_else(|| planner.stats.clone());
}

fn bad_line_limit_exceeded(limit: Option<BadLineLimit>, stats: &ReaderStats) -> Option<String> {
    let bad = stats.parse.rejected;
    match limit? {
        BadLineLimit::Count(max) if bad > max => {
            Some(format!("more than {max} unreadable log lines (--max-bad-lines)"))
        }
        BadLineLimit::Percent(p) if stats.lines_read >= BAD_SHARE_MIN_LINES => {
            let share = bad as f64 * 100.0 / stats.lines_read as f64;
            (share > p).then(|| format!("{share:.1}% of log lines unreadable, more than {p}% (--max-bad-lines)"))
        }
        _ => None,
    }
}

/// Counts by key, sorted, as owned strings (for summaries).
pub fn counts<K: ToString>(map: &BTreeMap<K, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
