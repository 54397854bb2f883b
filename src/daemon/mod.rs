//! `sluice daemon`: runs replays on request, over an HTTP API, next to a staging environment.
//!
//! ```text
//! settings.rs: flags and --config → DaemonConfig ─▶ serve(listener, config, shutdown)
//!
//! HTTP (axum, on the caller's tokio runtime)          run threads (one per run, each its own Run)
//!   api.rs: routes, token check, problem+json   ─▶   registry.rs: queue, start, stop, finish
//!     auth.rs: the token                                record.rs: a run as clients read it
//!     request.rs: a run's options as JSON               store.rs: run.json, secrets, CSV repair
//!     policy.rs: allow-list, log names, caps
//!     upload.rs: uploads measured as runs read them
//!     web/: the page at / and each run's HTML report
//!   /metrics ◀── Metrics shared by every run
//! ```
//!
//! A run is the same [`crate::Run`] the CLI drives: the registry starts it on a thread of its
//! own and waits for its summary there, so the HTTP runtime never blocks on a run and a run's
//! pacing never shares a runtime with the API.
//!
//! [`serve`] is the daemon as a library: the caller binds the socket and owns the shutdown
//! signal, so tests run a whole daemon in-process on `127.0.0.1:0`. [`run`] is `sluice daemon`:
//! it binds `--listen` and turns SIGTERM (or Ctrl-C) into that shutdown, which stops accepting
//! work, drains the running runs (they end `interrupted`), flushes their CSVs and exits 0.

pub mod api;
pub mod auth;
pub mod policy;
pub mod record;
pub mod registry;
pub mod request;
pub mod settings;
pub mod store;
pub mod upload;
pub mod web;

pub use settings::{DEFAULT_LISTEN, DaemonArgs, DaemonConfig};

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::exit::Exit;
use crate::exit::UsageError;
use crate::shutdown::Shutdown;
use crate::sink::metrics::Metrics;
use auth::TokenSource;
use record::RunState;
use registry::Registry;

/// After the runs drained, how long open HTTP connections (event streams, downloads) may take
/// to finish before the daemon exits anyway.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// `sluice daemon`: serves until SIGTERM or Ctrl-C, then drains and exits 0; a second signal
/// while it drains quits at once with 130.
pub fn run(args: &DaemonArgs) -> anyhow::Result<Exit> {
    let config = DaemonConfig::resolve(args, std::env::var(auth::TOKEN_ENV).ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-http")
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| UsageError(format!("--listen {}: {e}", config.listen)))?;
        let (first, first_received) = tokio::sync::oneshot::channel();
        let _shutdown = Shutdown::on_signals(
            move |which| {
                let _ = first.send(which);
            },
            |which| eprintln!("sluice daemon: {which} again: quitting at once; CSVs hold what was flushed so far"),
        )?;
        serve(listener, config, async { first_received.await.unwrap_or("shutdown") }).await
    });
    // Connections still open after the grace period are dropped rather than waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| Exit::Ok)
}

/// Serves the daemon's API on `listener` until `shutdown` resolves, then refuses new work,
/// drains the running runs (they end `interrupted`; queued and scheduled runs stay for the next
/// daemon), and returns once their CSVs are flushed and open connections had `HTTP_GRACE` to
/// finish. What `shutdown` resolves to says what asked for it (`SIGTERM`), for the log.
///
/// Runs on the caller's tokio runtime (it needs the blocking pool and timers). Refuses a
/// listener on anything but loopback when `config` has no token.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: DaemonConfig,
    shutdown: impl Future<Output = impl Display>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && config.token.is_none() {
        return Err(UsageError(format!(
            "listening on {addr}, which is not a loopback address, needs a token so only its holders can start \
             runs and upload logs"
        ))
        .into());
    }
    let _lock = lock_state_dir(&config.paths.state_dir)?;
    let metrics = Arc::new(Metrics::new());
    let (registry, notes) =
        Registry::open(config.paths.clone(), config.policy.clone(), config.max_concurrent_runs, metrics.clone())
            .map_err(|e| UsageError(format!("--state-dir {}: {e}", config.paths.state_dir.display())))?;
    for note in notes {
        eprintln!("sluice daemon: {note}");
    }
    let caps = &config.policy.caps;
    eprintln!(
        "sluice daemon: listening on http://{addr} (state {}, logs {}, token {}, targets: {}, {} run(s) at once; \
         caps: rate {}/s, concurrency {}, duration {}s, {} waiting runs, uploads {} MiB)",
        config.paths.state_dir.display(),
        config.paths.logs_dir.display(),
        match config.token.as_ref().map(|t| t.1) {
            Some(TokenSource::File) => "from --token-file",
            Some(TokenSource::Env) => "from SLUICE_TOKEN",
            None => "none (loopback only)",
        },
        registry.allow_list().describe(),
        config.max_concurrent_runs,
        caps.max_rate,
        caps.max_concurrency,
        caps.max_duration.as_secs_f64(),
        caps.max_queued_runs,
        config.max_upload_bytes / (1024 * 1024),
    );
    let api = Arc::new(api::Api {
        registry: registry.clone(),
        metrics,
        token: config.token.map(|t| t.0),
        max_upload_bytes: config.max_upload_bytes,
    });
    let scheduler = tokio::spawn({
        let registry = registry.clone();
        async move {
            // The first tick starts queued runs a previous daemon left; later ones come every
            // second (rates, start_at) or as soon as something changed. Ticks may write records,
            // so they run on the blocking pool.
            loop {
                let ticking = registry.clone();
                let _ = tokio::task::spawn_blocking(move || ticking.tick()).await;
                tokio::select! {
                    () = registry.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    });
    let stop_http = tokio_util::sync::CancellationToken::new();
    let mut server = tokio::spawn(
        axum::serve(listener, api::router(api))
            .with_graceful_shutdown(stop_http.clone().cancelled_owned())
            .into_future(),
    );

    let which = tokio::select! {
        which = shutdown => which,
        result = &mut server => {
            scheduler.abort();
            return Err(anyhow::anyhow!("the HTTP server stopped: {result:?}"));
        }
    };
    let running = registry.list().iter().filter(|r| r.state == RunState::Running).count();
    eprintln!(
        "sluice daemon: {which}: accepting no new runs; draining {running} running run(s) (again to quit at once)"
    );
    registry.begin_shutdown();
    registry::drained(&registry).await;
    scheduler.abort();
    registry.close();
    stop_http.cancel();
    let _ = tokio::time::timeout(HTTP_GRACE, server).await;
    eprintln!("sluice daemon: runs drained and flushed; exiting");
    Ok(())
}

/// One daemon per state directory: a second one would start the same queued runs and overwrite
/// the same records. An advisory lock, released by the kernel however the holder dies.
fn lock_state_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("--state-dir {}: {e}", dir.display())))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("daemon.lock"))
        .map_err(|e| UsageError(format!("--state-dir {}: {e}", dir.display())))?;
    // SAFETY: flock on a file descriptor we own and keep open for the daemon's life.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(UsageError(format!(
            "--state-dir {}: another sluice daemon is using this directory",
            dir.display()
        ))
        .into());
    }
    Ok(file)
}
