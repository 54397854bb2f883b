//! Helpers shared by the integration tests (each test crate uses its own subset).
#![allow(dead_code)]

pub mod influx;
pub mod nginx;
pub mod tls_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The results CSV's columns as the README's "The results CSV" table documents them, written
/// out here rather than read from the library, so that renaming or reordering a column in the
/// code fails every test that reads a CSV until the README (and this list) follow.
pub const DOCUMENTED_CSV_COLUMNS: [&str; 15] = [
    "seq",
    "log_line",
    "log_time",
    "scheduled_at",
    "sent_at",
    "lag_ms",
    "method",
    "url",
    "orig_status",
    "status",
    "latency_ms",
    "bytes",
    "error",
    "session",
    "session_seq",
];

/// A results CSV as rows of column → value; the header must be exactly the documented one and
/// every row whole and well-formed.
pub fn csv_rows(bytes: &[u8]) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader.headers().expect("a header row").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        DOCUMENTED_CSV_COLUMNS,
        "the CSV header is exactly the one the README documents"
    );
    reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.expect("a well-formed row").iter().map(String::from)).collect())
        .collect()
}

/// The path and query of a URL, as a server receives them.
pub fn path_of(url: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// Sends a real SIGINT to a child started with piped stderr, waits (at most 20 s) for it to
/// exit, and returns its status and everything it wrote to stderr.
pub fn sigint_and_wait(child: &mut Child) -> (ExitStatus, String) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "sluice did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// What an HTML report's hover mark on the latency distribution says `curve` is at `percentile`
/// (`50%`), ms: the chart's own data, as its `<title>` gives it.
pub fn marked_ms(html: &str, curve: &str, percentile: &str) -> f64 {
    let start = format!("<title>{curve}: ");
    let end = format!(" ms at {percentile}</title>");
    html.match_indices(&start)
        .find_map(|(at, _)| {
            let rest = &html[at + start.len()..];
            rest[..rest.find("</title>")? + "</title>".len()].strip_suffix(&end)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no hover mark of {curve} at {percentile}"))
}
