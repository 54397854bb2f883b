//! The one shutdown policy of sluice's long-running commands (`replay`, `daemon`): the first
//! SIGINT or SIGTERM drains (what draining means is the caller's), a second quits at once with
//! exit code 130.

use std::io;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// Watches for the signals until dropped.
pub struct Shutdown {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Shutdown {
    /// On the first signal calls `drain` with its name; on a second calls `quitting` with its
    /// name (to say so) and exits 130.
    pub fn on_signals(
        drain: impl FnOnce(&'static str) + Send + 'static,
        quitting: impl Fn(&'static str) + Send + 'static,
    ) -> io::Result<Shutdown> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new().name("sluice-signals".into()).spawn(move || {
            let mut drain = Some(drain);
            for signal in signals.forever() {
                let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
                match drain.take() {
                    Some(drain) => drain(name),
                    None => {
                        quitting(name);
                        std::process::exit(130);
                    }
                }
            }
        })?;
        Ok(Shutdown { handle, thread: Some(thread) })
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
