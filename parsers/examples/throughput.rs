//! Single-threaded `parse_line` throughput over a generated in-memory log (default: 1,000,000
//! nginx combined lines, as in the perf study), against a line-splitting baseline.
//!
//! ```sh
//! cargo run --release -p sluice-parsers --example throughput [lines] [nginx|timing|json] [runs]
//! SPEC='nginx:…' cargo run --release -p sluice-parsers --example throughput   # another format, same lines
//! ```
//! Results and how they were taken: `benches/RESULTS.md`.

#[path = "../benches/support/loggen.rs"]
mod loggen;

use std::hint::black_box;
use std::time::Instant;

use sluice_parsers::Format;

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: usize = args.next().map_or(1_000_000, |n| n.parse().expect("line count"));
    let kind = args.next().unwrap_or_else(|| "nginx".into());
    let mut g = loggen::Gen::new(42);
    let (spec, log) = match kind.as_str() {
        "nginx" => ("nginx", loggen::log(lines, || g.combined())),
        "timing" => (loggen::TIMING_FORMAT, loggen::log(lines, || g.timing())),
        "json" => ("json", loggen::log(lines, || g.json())),
        other => panic!("unknown kind {other}"),
    };
    // SPEC overrides the format (to measure what a variable costs on the same lines).
    let spec = std::env::var("SPEC").unwrap_or_else(|_| spec.to_owned());
    let format = Format::from_spec(&spec).expect("format");
    let mb = log.len() as f64 / 1e6;
    println!("{lines} {kind} lines, {mb:.1} MB, {:.0} bytes/line", log.len() as f64 / lines as f64);

    // Baseline: just splitting lines, as the reader does (memchr).
    let t = Instant::now();
    let split = lines_of(&log).map(|l| black_box(l).len()).sum::<usize>();
    let base = t.elapsed().as_secs_f64();
    black_box(split);

    let runs: usize = args.next().map_or(3, |n| n.parse().expect("runs"));
    for run in 1..=runs {
        let t = Instant::now();
        let cpu = cpu_seconds();
        let (mut ok, mut bad, mut gets) = (0usize, 0usize, 0usize);
        for line in lines_of(&log) {
            match format.parse_line(line) {
                Ok(e) => {
                    ok += 1;
                    gets += usize::from(&*e.method == b"GET");
                    black_box(&e);
                }
                Err(e) => {
                    bad += 1;
                    black_box(e);
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        // On a shared machine the CPU time this thread got is the fairer measure.
        let cpu = cpu.map(|c| cpu_seconds().unwrap_or(c) - c);
        let cpu_note = cpu.map_or(String::new(), |c| {
            format!(", cpu {:.3} s = {:.0} MB/s, {:.0} ns/line", c, mb / c, c * 1e9 / lines as f64)
        });
        println!(
            "run {run}: {:.3} s, {:.0} MB/s, {:.2}M lines/s, {:.0} ns/line{cpu_note} ({ok} ok, {bad} bad, {gets} GET); split-only baseline {:.0} MB/s ({:.1}x)",
            secs,
            mb / secs,
            lines as f64 / secs / 1e6,
            secs * 1e9 / lines as f64,
            mb / base,
            secs / base
        );
    }
}

fn lines_of(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = log;
    std::iter::from_fn(move || {
        let end = memchr::memchr(b'\n', rest)?;
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        Some(line)
    })
}

/// User + system CPU time of this thread (Linux, from /proc; clock ticks of 10 ms).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
