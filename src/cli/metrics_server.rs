//! `sluice replay --metrics-listen ADDR`: Prometheus `/metrics` for one CLI run, on a thread of its
//! own (the daemon serves its own, for all its runs).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::exit::UsageError;
use crate::pace::schedule::Shape;
use crate::run::RunHandle;
use crate::sink::metrics::{Metrics, RunGauges};

/// `sluice replay --metrics-listen ADDR`: `/metrics` for one CLI run, on a thread of its own.
pub struct MetricsServer {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds first, so a taken port fails the command before any request is sent.
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, UsageError> {
        let listener = TcpListener::bind(addr).map_err(|e| UsageError(format!("--metrics-listen {addr}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| UsageError(format!("--metrics-listen {addr}: {e}")))?;
        Ok(MetricsServer { addr, listener: Some(listener), stop: Default::default(), thread: None })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `metrics` with gauges read from `handle` until dropped.
    pub fn serve(&mut self, metrics: Arc<Metrics>, handle: RunHandle, shape: Shape) -> std::io::Result<()> {
        let listener = self.listener.take().expect("serve is called once");
        listener.set_nonblocking(true)?;
        let stop = self.stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("sluice-metrics".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let (metrics, handle, shape) = (metrics.clone(), handle.clone(), shape.clone());
                        async move {
                            let gauges = gauges_of(&handle, &shape);
                            (
                                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                                metrics.render(&gauges),
                            )
                        }
                    }),
                );
                let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
            });
        })?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one CLI run's gauges are now.
pub fn gauges_of(handle: &RunHandle, shape: &Shape) -> RunGauges {
    let p = handle.progress();
    RunGauges {
        inflight: p.sent.saturating_sub(p.live.completed + p.live.errors),
        target_rate: shape.rate_at(p.elapsed),
        ..RunGauges::default()
    }
}
