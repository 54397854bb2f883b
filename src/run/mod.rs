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

mod dry_run;
mod prom_watch;
pub mod summary;

pub use dry_run::{DryRun, dry_run};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{ReplayConfig, Target};
use crate::control::{Progress, RunControl, StopReason};
use crate::pace::schedule::{Schedule, Shape};
use crate::pace::{Pacer, PacerReport, Start, run_pacer};
use crate::plan::reader::{QUEUE_CHUNK, Reading, read_log};
use crate::plan::timeline::Timeline;
use crate::plan::{Planner, ReplayRequest};
use crate::send::compare::{CompareTargets, Paired};
use crate::send::outcome::Outcome;
use crate::send::transport::Transport;
use crate::send::{Job, OUTCOME_BACKLOG, OutcomeBuffer, SessionGate, Single, record_not_sent, sender};
use crate::sink::abort::AbortWatch;
use crate::sink::csv::{CsvSink, ExtraColumns, WallClock};
use crate::sink::metrics::Metrics;
use crate::sink::{Written, run_writer};
use crate::source::sniff::{SNIFF_LINES, open_entries};
use crate::source::{EntryReader, LogReader};
use summary::{Ending, Summary};

/// Released requests that may wait for a free sender before the pacer itself waits.
const RELEASED_CAPACITY: usize = 1024;
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

/// A cheap, cloneable view of a run: progress and cancellation from any thread (signal handlers,
/// progress displays, the daemon's API) while another thread waits for the summary.
#[derive(Clone)]
pub struct RunHandle {
    control: Arc<RunControl>,
    cancelled: Arc<AtomicBool>,
}

impl RunHandle {
    /// When the plan started (T0), once it has.
    pub fn t0(&self) -> Option<Instant> {
        self.control.t0()
    }

    /// T0 on the wall clock, the same for every caller.
    pub fn t0_wall(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.control.t0_wall()
    }

    pub fn progress(&self) -> Progress {
        self.control.progress()
    }

    /// Stops scheduling; requests in flight finish (up to the drain timeout), then `wait` returns.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.control.stop();
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
    writer: JoinHandle<(Written, Option<std::io::Error>)>,
    /// With `--consume`: the thread matching output messages, between the senders and the writer.
    end_to_end: Option<crate::send::consume::EndToEndRun>,
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
        let Prepared { entries, target, mock } = prepare(&config)?;
        let format_name = entries.format_name().to_string();
        let clock = WallClock::now();
        let extra = if config.compare.is_some() {
            ExtraColumns::Compare
        } else if matches!(&config.target, Target::Kafka(kafka) if kafka.consume.is_some()) {
            ExtraColumns::EndToEnd
        } else {
            ExtraColumns::None
        };
        let sink = CsvSink::create(&config.out, clock, config.redactor.clone(), extra)
            .map_err(|e| RunError::Output { path: config.out.clone(), reason: e.to_string() })?;
        let transport = Arc::new(Transport::build(&config, &target).map_err(RunError::Input)?);
        let compare = match &config.compare {
            Some(compare) => Some(Arc::new(CompareTargets::build(&config, &target, compare).map_err(RunError::Input)?)),
            None => None,
        };
        let message = crate::send::kafka::shaper_for(&config).map_err(RunError::Input)?;

        let control = Arc::new(RunControl::new(config.duration, config.shape.is_paced()));
        let (queue_tx, queue_rx) =
            async_channel::bounded::<Vec<ReplayRequest>>(config.queue_capacity.div_ceil(QUEUE_CHUNK));
        // Released requests wait here for a free sender. Lag is measured when a request actually
        // leaves, and on a stop whatever is still waiting here is dropped unsent.
        let (jobs_tx, jobs_rx) = async_channel::bounded::<Job>(RELEASED_CAPACITY.max(config.batch as usize));
        control.on_stop({
            let jobs = jobs_rx.clone();
            move || {
                jobs.close();
            }
        });
        let (outcomes_tx, outcomes_rx) = crossbeam_channel::bounded::<Vec<Outcome>>(OUTCOME_BACKLOG);
        // With --consume, rows of produced messages wait for their output on the way to the writer.
        let (outcomes_tx, end_to_end) =
            crate::send::consume::start(&config, &transport, outcomes_tx).map_err(RunError::Input)?;

        let planner = Planner::new(&target, config.rules.clone());
        let reader = spawn("sluice-reader", {
            let reading = Reading {
                looping: config.looping,
                bad_line_limit: config.max_bad_lines,
                timeline: matches!(config.shape, Shape::Logged { .. }).then(Timeline::new),
                message,
            };
            let control = control.clone();
            move || read_log(entries, planner, queue_tx, control, reading)
        })?;
        let abort = AbortWatch::new(&config.abort_on, &config.shape);
        if let (Some(prometheus), false) = (&config.prometheus, config.prom_abort.is_empty()) {
            // Ends by itself within a nap of scheduling stopping; nothing waits for it.
            let (checks, prometheus, every, control) =
                (config.prom_abort.clone(), prometheus.clone(), config.prometheus_every, control.clone());
            spawn("sluice-prom", move || prom_watch::watch_for_abort(checks, prometheus, every, control))?;
        }
        let writer = spawn("sluice-writer", {
            let control = control.clone();
            move || run_writer(sink, outcomes_rx, control, metrics, abort)
        })?;
        let schedule = Schedule::new(config.shape.clone(), config.batch, config.duration);
        let ceiling = config.rate_ceiling;
        let (shard, release_every) = (config.shard, config.release_every);
        // The wall-clock start becomes a monotonic instant once, here.
        let start = Start {
            at: config.start_at.map(|at| {
                let now = (Instant::now(), chrono::Utc::now());
                match (at - now.1).to_std() {
                    Ok(ahead) => now.0 + ahead,
                    Err(_) => now.0.checked_sub((now.1 - at).to_std().unwrap_or_default()).unwrap_or(now.0),
                }
            }),
            skip_late: config.late_start == crate::config::LateStart::Skip,
        };
        let runtime = if config.threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(config.threads).enable_all().build()
        }
        .map_err(|e| RunError::Internal(format!("cannot start the async runtime: {e}")))?;
        let senders = spawn("sluice-senders", {
            let (control, concurrency, drain, deadline) =
                (control.clone(), config.concurrency, config.drain_timeout, config.duration);
            let gate = config.rules.sessions.as_ref().map(|_| Arc::new(SessionGate::new(concurrency)));
            move || {
                runtime.block_on(async move {
                    let abort = CancellationToken::new();
                    let outcomes = Arc::new(OutcomeBuffer::new(outcomes_tx));
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..concurrency {
                        let (transport, jobs, outcomes) = (transport.clone(), jobs_rx.clone(), outcomes.clone());
                        let (abort, control, gate) = (abort.clone(), control.clone(), gate.clone());
                        match &compare {
                            Some(targets) => {
                                let paired = Paired::new(transport, targets.clone());
                                tasks.spawn(sender(paired, jobs, outcomes, abort, control, gate))
                            }
                            None => tasks.spawn(sender(Single::new(transport), jobs, outcomes, abort, control, gate)),
                        };
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
                        Pacer::new(schedule, ceiling).with_shard(shard).with_release_every(release_every),
                        start,
                        deadline,
                        queue_rx,
                        jobs_tx,
                        outcomes.clone(),
                        control.clone(),
                    ));
                    let report = pacer.await;
                    let drained =
                        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
                    if drained.is_err() {
                        abort.cancel();
                        while tasks.join_next().await.is_some() {}
                    }
                    // Nothing is lost: a job still parked on its session gets its row.
                    for job in gate.iter().flat_map(|gate| gate.drain()) {
                        record_not_sent(&control, &outcomes, job);
                    }
                    flusher.abort();
                    outcomes.flush();
                    // A panic in the pacer is a bug; it ends the thread, and `wait` reports it.
                    report.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
                })
            }
        })?;
        Ok(Run {
            handle: RunHandle { control, cancelled: Arc::new(AtomicBool::new(false)) },
            format_name,
            target_url: match &config.target {
                Target::Kafka(kafka) => kafka.topic.to_string(),
                _ => target.to_string(),
            },
            config,
            started,
            reader,
            senders,
            writer,
            end_to_end,
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
        let unmatched_outputs = match self.end_to_end {
            Some(end_to_end) => {
                let unmatched = end_to_end.unmatched.clone();
                end_to_end.join().map_err(RunError::Internal)?;
                Some(unmatched.load(std::sync::atomic::Ordering::Relaxed))
            }
            None => None,
        };
        let (written, write_error) =
            self.writer.join().map_err(|_| RunError::Internal("the writer thread panicked".into()))?;
        // The reader may be blocked reading a terminal on stdin; its stats are in `control` anyway.
        let reader_deadline = Instant::now() + Duration::from_secs(1);
        while !self.reader.is_finished() && Instant::now() < reader_deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let reader = self.handle.control.reader.lock().expect("not poisoned").clone();
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
            error_messages: self.handle.control.failures.snapshot(&self.config.redactor),
            aborted_by: self.handle.control.aborted_by.lock().expect("not poisoned").clone(),
            output_error: write_error.map(|e| e.to_string()),
            unmatched_outputs,
        };
        Ok(Summary::build(
            &self.config,
            &self.format_name,
            &self.target_url,
            &pacer,
            &written,
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
    // --compare: one more connection per sender for each baseline.
    let per_connection = per_connection + config.compare.as_ref().map_or(0, |c| 1 + u64::from(c.noise.is_some()));
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
pub(crate) struct Prepared {
    entries: EntryReader,
    target: reqwest::Url,
    mock: Option<sluice_mock::MockServer>,
}

/// Opens the inputs, settles the format and the target, and applies every safety check that must
/// pass before a single request leaves: --deny-host/--allow-host on the resolved target, and the
/// refusal to replay a log against the host that served it.
pub(crate) fn prepare(config: &ReplayConfig) -> Result<Prepared, RunError> {
    let reader = LogReader::new(config.inputs.clone())
        .map_err(|e| RunError::Input(e.to_string()))?
        .with_max_line_bytes(config.max_line_bytes);
    let mut entries = open_entries(&config.format, reader).map_err(|e| RunError::Input(format!("{e:#}")))?;
    // Checked once the format is known (`auto` sniffs it from the first lines).
    if let Some(key) = &config.rules.sessions {
        let checked = match &entries {
            EntryReader::Lines { format, .. } => key.check_logged_by(format),
            EntryReader::Har(_) => key.check_recorded_by_har(),
        };
        checked.map_err(|e| RunError::Input(format!("--sessions {e}")))?;
    }
    let (target, mock) = match &config.target {
        Target::Url(url) => (url.clone(), None),
        Target::Kafka(kafka) => (crate::send::kafka::planning_url(kafka).map_err(RunError::Input)?, None),
        Target::Mock => {
            let mock = sluice_mock::spawn_in_thread(demo_mock_config())
                .map_err(|e| RunError::Internal(format!("cannot start the mock server: {e}")))?;
            let url = reqwest::Url::parse(&mock.url()).map_err(|e| RunError::Internal(e.to_string()))?;
            (url, Some(mock))
        }
    };
    let host = target.host_str().unwrap_or_default();
    match config.resolve {
        Some(addr) => config.host_guard.check_resolved_target(host, addr.ip()),
        None => config.host_guard.check_target(host, target.port_or_known_default().unwrap_or(80)),
    }
    .map_err(RunError::Input)?;
    let logged_hosts = entries.logged_hosts(SNIFF_LINES).map_err(|e| RunError::Input(e.to_string()))?;
    config.host_guard.check_not_production(host, logged_hosts.iter().map(String::as_str)).map_err(RunError::Input)?;
    // A baseline is a target too: the same guards judge it.
    for (flag, url) in config
        .compare
        .iter()
        .flat_map(|c| [Some(("--compare", &c.baseline)), c.noise.as_ref().map(|u| ("--compare-noise", u))])
        .flatten()
    {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let refused = |m: String| RunError::Input(format!("{flag}: {m}"));
        config.host_guard.check_target(host, port).map_err(refused)?;
        config.host_guard.check_not_production(host, logged_hosts.iter().map(String::as_str)).map_err(refused)?;
    }
    Ok(Prepared { entries, target, mock })
}

pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| RunError::Internal(format!("cannot start thread {name}: {e}")))
}

/// The mock server `--target mock` starts: a realistic mix for demos (mostly 200, some 404 and
/// 500, a few milliseconds of latency), seeded so a replay is repeatable.
fn demo_mock_config() -> sluice_mock::MockConfig {
    let statuses = "200:90,404:6,500:3,503:1".parse().expect("static status mix");
    let latency = "lognormal:2ms,20ms".parse().expect("static latency model");
    // Counts are enough for a demo; an in-process mock need not keep every request in memory.
    sluice_mock::MockConfig::default()
        .with_seed(42)
        .with_statuses(statuses)
        .with_latency(latency)
        .without_memory_record()
}
