//! The live progress line (indicatif) on stderr: elapsed/remaining, sent, current rate, errors, p99.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ProgressMode;
use crate::run::RunHandle;

const TICK: Duration = Duration::from_millis(250);

/// A progress display running on its own thread until [`ProgressDisplay::finish`].
pub struct ProgressDisplay {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Starts the display if `mode` asks for it (`auto`: only when stderr is a terminal).
    pub fn start(mode: ProgressMode, run: RunHandle, duration: Option<Duration>) -> ProgressDisplay {
        let enabled = match mode {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        let done = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let done = done.clone();
            std::thread::spawn(move || show(run, duration, &done))
        });
        ProgressDisplay { done, thread }
    }

    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn show(run: RunHandle, duration: Option<Duration>, done: &AtomicBool) {
    let bar = match duration {
        Some(d) => {
            let bar = ProgressBar::with_draw_target(Some(d.as_secs().max(1)), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {eta_precise} left  {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise}  {msg}").expect("static template"));
            bar
        }
    };
    // Without a terminal (--progress always into a file or pipe), indicatif draws nothing: print lines instead.
    let plain = !std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    let mut last_line = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let p = run.progress();
        let now = Instant::now();
        let rate = (p.sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, p.sent);
        let msg = format!(
            "sent {}  {:.0}/s  errors {}  p99 {:.1} ms  lag p99 {:.2} ms{}",
            p.sent,
            rate,
            p.live.errors,
            p.live.p99_ms,
            p.live.lag_p99_ms,
            if p.lines_rejected > 0 { format!("  bad lines {}", p.lines_rejected) } else { String::new() }
        );
        if plain {
            if last_line.elapsed() >= Duration::from_secs(1) {
                eprintln!("[{:>7.1}s] {msg}", p.elapsed.as_secs_f64());
                last_line = Instant::now();
            }
        } else {
            bar.set_position(p.elapsed.as_secs());
            bar.set_message(msg);
        }
    }
    bar.finish_and_clear();
}
