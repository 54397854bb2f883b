//! The live progress line on stderr: elapsed and remaining time, sent, answers by status class,
//! no answer, p99, current rate, lag p99.
//!
//! The line is fitted to the terminal's width: parts are dropped, least important first, and a
//! part is never cut, so the line never wraps into a second one that the next redraw cannot clear.
//! The remaining time comes from the plan (duration − elapsed since T0), which is exact, rather
//! than from a rate estimate.

use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::ProgressMode;
use crate::control::Progress;
use crate::run::RunHandle;

const TICK: Duration = Duration::from_millis(250);
/// Without a terminal (`--progress always` into a file or pipe), one line this often.
const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// When the width cannot be read (not a terminal, or the ioctl fails).
const DEFAULT_COLUMNS: usize = 80;
/// Cells inside the bar's brackets.
const BAR_CELLS: usize = 20;

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
            std::thread::spawn(move || show(&run, duration, &done))
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

fn show(run: &RunHandle, duration: Option<Duration>, done: &AtomicBool) {
    let terminal = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    let mut last_plain = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let progress = run.progress();
        let now = Instant::now();
        let rate = (progress.sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, progress.sent);
        let parts = parts(&progress, duration, rate);
        // Writes to stderr can only fail when it is gone; the run goes on without its display.
        let mut stderr = std::io::stderr().lock();
        if terminal {
            // One column short of the width: text in the last column leaves some terminals about
            // to wrap, and the next "\r" would then return to the wrong row.
            let width = terminal_columns().saturating_sub(1);
            let _ = write!(stderr, "\r{}\x1b[K", fit(&parts, width));
            let _ = stderr.flush();
        } else if last_plain.elapsed() >= PLAIN_EVERY {
            let all: Vec<&str> = parts.iter().filter(|p| p.kind != Kind::Bar).map(|p| p.text.as_str()).collect();
            let _ = writeln!(stderr, "{}", all.join("  "));
            last_plain = Instant::now();
        }
    }
    if terminal {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K");
        let _ = stderr.flush();
    }
}

/// The pieces of the line, in the order shown. `Kind`'s order is the order they are dropped in
/// when the terminal is too narrow: first the bar, last the elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Bar,
    LagP99,
    Rate,
    P99,
    BadLines,
    NoAnswer,
    Sent,
    Classes,
    Remaining,
    Elapsed,
}

#[derive(Debug, Clone, PartialEq)]
struct Part {
    kind: Kind,
    text: String,
}

/// `0:02 [==>        ] 0:18 left  sent 400  2xx 360 4xx 24 5xx 16  no answer 0  p99 45.1 ms
/// 200/s  lag p99 0.12 ms`, as parts. `duration` is the planned length of the run, `rate` the
/// requests sent per second lately.
fn parts(p: &Progress, duration: Option<Duration>, rate: f64) -> Vec<Part> {
    let part = |kind, text: String| Part { kind, text };
    let mut parts = vec![part(Kind::Elapsed, clock(p.elapsed.as_secs()))];
    if let Some(planned) = duration {
        parts.push(part(Kind::Bar, bar(p.elapsed, planned)));
        let left = planned.saturating_sub(p.elapsed);
        // Rounded up, so it reads 0:00 only when scheduling has stopped.
        let left_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        parts.push(part(Kind::Remaining, format!("{} left", clock(left_secs))));
    }
    parts.push(part(Kind::Sent, format!("sent {}", p.sent)));
    parts.push(part(Kind::Classes, p.live.classes.to_text()));
    parts.push(part(Kind::NoAnswer, format!("no answer {}", p.live.errors)));
    if p.lines_rejected > 0 {
        parts.push(part(Kind::BadLines, format!("bad lines {}", p.lines_rejected)));
    }
    parts.push(part(Kind::P99, format!("p99 {:.1} ms", p.live.p99_ms)));
    parts.push(part(Kind::Rate, format!("{rate:.0}/s")));
    parts.push(part(Kind::LagP99, format!("lag p99 {:.2} ms", p.live.lag_p99_ms)));
    parts
}

/// The parts joined by two spaces (one either side of the bar), in at most `width` columns: the least
/// important parts are left out until the rest fits. A part is shown whole or not at all.
fn fit(parts: &[Part], width: usize) -> String {
    let mut kept: Vec<&Part> = parts.iter().collect();
    loop {
        let line = join(&kept);
        if line.chars().count() <= width || kept.is_empty() {
            return line;
        }
        let least = kept.iter().enumerate().min_by_key(|(_, p)| p.kind).map(|(i, _)| i).expect("not empty");
        kept.remove(least);
    }
}

fn join(parts: &[&Part]) -> String {
    let mut line = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            let next_to_bar = parts[i - 1].kind == Kind::Bar || part.kind == Kind::Bar;
            line.push_str(if next_to_bar { " " } else { "  " });
        }
        line.push_str(&part.text);
    }
    line
}

/// `M:SS`, or `H:MM:SS` from an hour on: short, so more of the figures fit.
fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

/// `[=======>            ]`: the share of the planned duration gone by.
fn bar(elapsed: Duration, planned: Duration) -> String {
    let share = if planned.is_zero() { 1.0 } else { (elapsed.as_secs_f64() / planned.as_secs_f64()).min(1.0) };
    let filled = (share * BAR_CELLS as f64) as usize;
    let head = if filled < BAR_CELLS { ">" } else { "" };
    format!("[{}{head}{}]", "=".repeat(filled), " ".repeat(BAR_CELLS - filled - head.len()))
}

/// The width of the terminal on stderr, re-read on every draw so a resize takes effect.
fn terminal_columns() -> usize {
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 { usize::from(size.ws_col) } else { DEFAULT_COLUMNS }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{LiveStats, StatusClasses};

    /// 2 s into a 20 s run, busy enough that every part has a long number.
    fn progress() -> Progress {
        Progress {
            elapsed: Duration::from_millis(2_300),
            sent: 2_000_000,
            live: LiveStats {
                completed: 1_999_000,
                errors: 1_000,
                classes: StatusClasses {
                    success: 1_546_000,
                    client_error: 259_000,
                    server_error: 194_000,
                    ..StatusClasses::default()
                },
                p50_ms: 2.0,
                p99_ms: 1234.5,
                lag_p99_ms: 12.25,
            },
            lines_rejected: 12_345,
        }
    }

    fn planned_parts() -> Vec<Part> {
        parts(&progress(), Some(Duration::from_secs(20)), 20_000.0)
    }

    fn line(width: usize) -> String {
        fit(&planned_parts(), width)
    }

    /// The kinds of the parts a fitted line shows, whole.
    fn kinds_shown(line: &str) -> Vec<Kind> {
        planned_parts().into_iter().filter(|p| line.contains(&p.text)).map(|p| p.kind).collect()
    }

    #[test]
    fn remaining_time_is_the_plan_minus_elapsed() {
        let full = line(usize::MAX);
        assert!(full.starts_with("0:02 [==>                 ] 0:18 left  "), "{full}");
        let after = Progress { elapsed: Duration::from_secs(25), ..progress() };
        let draining = fit(&parts(&after, Some(Duration::from_secs(20)), 0.0), usize::MAX);
        assert!(draining.starts_with("0:25 [====================] 0:00 left  "), "{draining}");
    }

    #[test]
    fn answers_by_class_and_no_answer_separately() {
        let texts: Vec<String> = planned_parts().into_iter().skip(3).map(|p| p.text).collect();
        assert_eq!(
            texts,
            [
                "sent 2000000",
                "2xx 1546000 4xx 259000 5xx 194000",
                "no answer 1000",
                "bad lines 12345",
                "p99 1234.5 ms",
                "20000/s",
                "lag p99 12.25 ms"
            ]
        );
    }

    #[test]
    fn a_wide_terminal_shows_everything() {
        let full = line(200);
        assert_eq!(full, line(usize::MAX));
        assert_eq!(full.chars().count(), 161, "{full}");
    }

    #[test]
    fn narrower_terminals_drop_whole_parts_least_important_first() {
        use Kind::*;
        for (width, shown) in [
            (120, &[Elapsed, Remaining, Sent, Classes, NoAnswer, BadLines, P99][..]),
            (80, &[Elapsed, Remaining, Sent, Classes, NoAnswer][..]),
            (60, &[Elapsed, Remaining, Classes][..]),
        ] {
            let fitted = line(width);
            assert!(fitted.chars().count() <= width, "{width}: {fitted:?}");
            assert_eq!(kinds_shown(&fitted), shown, "width {width}: {fitted:?}");
            assert!(!fitted.ends_with(' '), "{fitted:?}");
        }
    }

    #[test]
    fn an_80_column_terminal_shows_a_typical_run_in_79_columns() {
        let typical = Progress {
            sent: 400,
            live: LiveStats {
                completed: 400,
                errors: 0,
                classes: StatusClasses { success: 360, client_error: 24, server_error: 16, ..StatusClasses::default() },
                p50_ms: 2.0,
                p99_ms: 45.1,
                lag_p99_ms: 0.12,
            },
            lines_rejected: 0,
            ..progress()
        };
        let line = fit(&parts(&typical, Some(Duration::from_secs(20)), 200.0), 79);
        assert_eq!(line, "0:02  0:18 left  sent 400  2xx 360 4xx 24 5xx 16  no answer 0  p99 45.1 ms");
    }

    #[test]
    fn without_a_duration_there_is_no_bar_nor_remaining_time() {
        let line = fit(&parts(&progress(), None, 5.0), 80);
        assert!(line.starts_with("0:02  sent 2000000  2xx 1546000"), "{line}");
        assert!(!line.contains("left") && !line.contains('['), "{line}");
    }

    #[test]
    fn a_tiny_terminal_gets_what_fits_never_a_cut_part() {
        assert_eq!(line(6), "0:02");
        assert_eq!(line(3), "");
    }
}
