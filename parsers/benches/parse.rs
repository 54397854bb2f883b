//! `parse_line` throughput over in-memory generated logs: the nginx preset on combined lines,
//! a custom nginx format with timing fields, and JSON lines, each against a baseline measured in
//! the same run (splitting the same buffer into lines, which any reader must do).
//!
//! ```sh
//! cargo bench -p sluice-parsers --bench parse
//! ```
//! For the 1M-line figure of the brief, see `examples/throughput.rs`.

#[path = "support/loggen.rs"]
mod loggen;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_parsers::Format;

const LINES: usize = 20_000;

fn lines(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = log;
    std::iter::from_fn(move || {
        let end = memchr::memchr(b'\n', rest)?;
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        Some(line)
    })
}

fn parse_all(format: &Format, log: &[u8]) -> usize {
    let mut ok = 0;
    for line in lines(log) {
        if let Ok(e) = format.parse_line(line) {
            ok += usize::from(e.status.is_some());
            black_box(&e);
        }
    }
    ok
}

fn bench(c: &mut Criterion) {
    let mut g = loggen::Gen::new(42);
    let inputs = [
        ("nginx", "nginx".to_owned(), loggen::log(LINES, || g.combined())),
        ("custom nginx timing", loggen::TIMING_FORMAT.to_owned(), loggen::log(LINES, || g.timing())),
        ("json", "json".to_owned(), loggen::log(LINES, || g.json())),
    ];
    let mut group = c.benchmark_group("parse_line");
    for (name, spec, log) in &inputs {
        let format = Format::from_spec(spec).expect("format compiles");
        group.throughput(Throughput::Bytes(log.len() as u64));
        group.bench_function(format!("{name} ({} bytes/line)", log.len() / LINES), |b| {
            b.iter(|| parse_all(&format, black_box(log)))
        });
    }
    // Baseline: the line split alone over the first log.
    let (_, _, log) = &inputs[0];
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("baseline: split lines only", |b| b.iter(|| lines(black_box(log)).count()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
