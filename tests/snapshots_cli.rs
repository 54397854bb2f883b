//! Snapshots of what users read from the `sluice` binary: the results CSV (header and first rows),
//! the run summary as text and as `--summary-json`, the summary of a run nobody answered, and the
//! `--help` of every subcommand — so a renamed column, field, message or flag shows up in review
//! as a changed `tests/snapshots/snapshots_cli__*.snap`.
//!
//! Every replay here is deterministic: a bundled log, `--once`, `--concurrency 1` (one request in
//! flight, so the plan's order is the arrival order) and a seeded mock with a fixed latency, whose
//! answer to request n depends only on (seed, path, n). What still varies from run to run — wall
//! times, rates, lag and latency figures, the mock's port, the temp dir — is masked by
//! [`Masks`] before snapshotting; the rules are listed there.

use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use regex::Regex;
use serde_json::Value;
use sluice_mock::{LatencyModel, MockConfig, MockServer, StatusDist, spawn_in_thread};

mod common;
use common::{DOCUMENTED_CSV_COLUMNS, csv_rows, path_of};

/// The bundled log replayed by every run here, relative to the package root (the command's
/// working directory), so the summary names it the same on every machine.
const LOG: &str = "fixtures/unique-targets.log";
const MOCK_SEED: u64 = 20_261_121;
/// Enough rows to hold a HEAD (no body), a /status/503 and each status of the mock's mix.
const SNAPSHOT_ROWS: usize = 24;

fn sluice() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sluice").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// A seeded mix of statuses (so the CSV's `status` column shows the seed at work) and a fixed
/// latency; the mock records every request for the other end of the wire.
fn seeded_mock() -> MockServer {
    let config = MockConfig::default()
        .with_seed(MOCK_SEED)
        .with_statuses("200:80,404:10,500:10".parse::<StatusDist>().unwrap())
        .with_latency("1ms".parse::<LatencyModel>().unwrap());
    spawn_in_thread(config).unwrap()
}

/// What one `sluice replay` left behind.
struct Run {
    exit_code: Option<i32>,
    stderr: String,
    csv: Vec<u8>,
    summary_json: Value,
}

fn replay_once(target: &str, dir: &Path) -> Run {
    let (out, json) = (dir.join("results.csv"), dir.join("summary.json"));
    let output = sluice()
        .args(["replay", LOG, "--target", target, "--rate", "500", "--once", "--concurrency", "1"])
        .args(["--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    Run {
        exit_code: output.status.code(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        csv: std::fs::read(&out).unwrap(),
        summary_json: serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap(),
    }
}

/// The masking rules, in one place:
///
/// - the target's port (`127.0.0.1:41234`) becomes `127.0.0.1:[PORT]`, and the temp dir `[TMP]`;
/// - in the summary text, the scheduling time and achieved rate (`sent in [S]s: [RATE]/s
///   achieved`) and every decimal figure on the `latency`, `from plan`, `lag` and `failed after`
///   lines become `[ms]` (counts, statuses and their shares stay); the lag line's optional
///   `; earliest … ms early` is dropped, since whether any request left early is timing;
/// - in the CSV, a non-empty `scheduled_at`/`sent_at` becomes `[time]` and a non-empty
///   `lag_ms`/`latency_ms` `[ms]` (an empty one stays empty: that is meaningful);
/// - in the JSON, the same figures become strings naming what was masked, field by field, so a
///   renamed or removed field still shows.
struct Masks {
    port: String,
    tmp: String,
    timed_line: Regex,
    decimal: Regex,
    rate: Regex,
    early: Regex,
}

impl Masks {
    fn new(port: u16, tmp: &Path) -> Masks {
        Masks {
            port: format!("127.0.0.1:{port}"),
            tmp: tmp.to_str().unwrap().to_string(),
            timed_line: Regex::new(r"^\s*(latency|from plan|lag|failed after)\b").unwrap(),
            // Numbers standing alone: the `99.9` of the `p99.9` label is not a figure.
            decimal: Regex::new(r"-?\b\d+\.\d+\b").unwrap(),
            rate: Regex::new(r"sent in \d+\.\d+s: \d+\.\d+/s achieved").unwrap(),
            early: Regex::new(r"; earliest \S+ ms early").unwrap(),
        }
    }

    fn places(&self, text: &str) -> String {
        text.replace(&self.port, "127.0.0.1:[PORT]").replace(&self.tmp, "[TMP]")
    }

    fn summary_text(&self, stderr: &str) -> String {
        let text = self.places(stderr);
        let text = self.rate.replace_all(&text, "sent in [S]s: [RATE]/s achieved");
        text.lines()
            .map(|line| {
                if self.timed_line.is_match(line) {
                    let line = self.early.replace(line, "");
                    self.decimal.replace_all(&line, "[ms]").into_owned()
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The header line as written, then the first rows in plan (`seq`) order, masked.
    fn csv_head(&self, csv: &[u8], rows: usize) -> String {
        let header = std::str::from_utf8(csv).unwrap().lines().next().unwrap().to_string();
        let mut parsed = csv_rows(csv);
        parsed.sort_by_key(|row| row["seq"].parse::<u64>().unwrap());
        let mut out = csv::Writer::from_writer(Vec::new());
        for row in parsed.iter().take(rows) {
            let cells = DOCUMENTED_CSV_COLUMNS.iter().map(|&column| {
                let value = row[column].as_str();
                match column {
                    _ if value.is_empty() => String::new(),
                    "scheduled_at" | "sent_at" => "[time]".to_string(),
                    "lag_ms" | "latency_ms" => "[ms]".to_string(),
                    _ => self.places(value),
                }
            });
            out.write_record(cells).unwrap();
        }
        format!("{header}\n{}", String::from_utf8(out.into_inner().unwrap()).unwrap())
    }

    fn summary_json(&self, summary: &Value) -> String {
        let mut summary = summary.clone();
        for (pointer, mask) in [("/scheduling_seconds", "[s]"), ("/wall_seconds", "[s]"), ("/achieved_rate", "[rate]")]
        {
            *summary.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in the summary JSON")) =
                Value::from(mask);
        }
        for pointer in ["/latency_ms", "/latency_from_schedule_ms", "/lag"] {
            let figures = summary.pointer_mut(pointer).and_then(Value::as_object_mut);
            for value in figures.unwrap_or_else(|| panic!("{pointer} is an object")).values_mut() {
                *value = Value::from("[ms]");
            }
        }
        self.places(&serde_json::to_string_pretty(&summary).unwrap())
    }
}

#[test]
fn a_deterministic_replay_writes_the_documented_csv_summary_and_json() {
    let mock = seeded_mock();
    let dir = tempfile::tempdir().unwrap();
    let run = replay_once(&mock.url(), dir.path());
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);

    // The other end of the wire: one request per row, in plan order, each answered as the seeded
    // mock decides for its arrival number — so the snapshot below shows what really happened.
    let mut rows = csv_rows(&run.csv);
    rows.sort_by_key(|row| row["seq"].parse::<u64>().unwrap());
    let received = mock.requests();
    assert_eq!(received.len(), rows.len(), "the mock saw one request per CSV row");
    for (row, request) in rows.iter().zip(&received) {
        assert_eq!(row["seq"], request.seq.to_string(), "requests arrived in plan order");
        assert_eq!((&request.method, request.target.clone()), (&row["method"], path_of(&row["url"])));
        let expected = mock.decide(&request.target, request.key).status().unwrap().to_string();
        assert_eq!(row["status"], expected, "seq {} got the seeded answer", row["seq"]);
    }

    let masks = Masks::new(mock.addr().port(), dir.path());
    insta::assert_snapshot!("replay_csv_head", masks.csv_head(&run.csv, SNAPSHOT_ROWS));
    insta::assert_snapshot!("replay_summary_text", masks.summary_text(&run.stderr));
    insta::assert_snapshot!("replay_summary_json", masks.summary_json(&run.summary_json));
}

/// A port on 127.0.0.1 that refuses connections for as long as this lives: a socket bound to it
/// but never listening, so the kernel answers a SYN with a reset, and no other socket (say, a
/// mock started by a test running alongside) can be given the port meanwhile, as it could if a
/// listener were bound and dropped.
struct ClosedPort {
    port: u16,
    _socket: OwnedFd,
}

impl ClosedPort {
    fn reserve() -> ClosedPort {
        // SAFETY: plain socket calls on a descriptor this function owns; every result is checked.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, (&raw const addr).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let named = libc::getsockname(fd, (&raw mut addr).cast(), &mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            ClosedPort { port: u16::from_be(addr.sin_port), _socket: socket }
        }
    }
}

#[test]
fn a_target_that_refuses_connections_gets_the_no_answer_summary_and_exit_4() {
    let closed = ClosedPort::reserve();
    let port = closed.port;
    let dir = tempfile::tempdir().unwrap();
    let run = replay_once(&format!("http://127.0.0.1:{port}"), dir.path());
    assert_eq!(run.exit_code, Some(4), "{}", run.stderr);
    let masks = Masks::new(port, dir.path());
    insta::assert_snapshot!("refused_summary_text", masks.summary_text(&run.stderr));
}

#[test]
fn the_long_help_of_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["replay"],
        &["report"],
        &["merge"],
        &["parse"],
        &["mock"],
        &["daemon"],
        &["runs"],
        &["runs", "submit"],
        &["runs", "list"],
        &["runs", "show"],
        &["runs", "watch"],
        &["runs", "stop"],
        &["runs", "results"],
        &["runs", "delete"],
        &["import"],
        &["import", "tsung"],
        &["k8s"],
        &["k8s", "job"],
    ];
    for command in commands {
        // clap wraps to $COLUMNS (or the terminal) and colours when forced to: both fixed, so
        // the snapshot is the same anywhere.
        let output =
            sluice().args(*command).arg("--help").env("COLUMNS", "100").env_remove("CLICOLOR_FORCE").output().unwrap();
        assert!(output.status.success(), "sluice {command:?} --help");
        let name = ["help"].iter().chain(command.iter()).copied().collect::<Vec<_>>().join("_");
        insta::assert_snapshot!(name, String::from_utf8(output.stdout).unwrap());
    }
}

#[test]
fn the_documented_csv_columns_are_the_readmes_table() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## The results CSV").nth(1).expect("README has 'The results CSV'");
    let section = section.split("\n## ").next().unwrap();
    // Table rows start with "| `name` |" (or "| `a`, `b` |" for two columns sharing a meaning).
    let mut listed = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap();
        listed.extend(first_cell.split(',').map(|name| name.trim().trim_matches('`').to_string()));
    }
    assert_eq!(listed, DOCUMENTED_CSV_COLUMNS, "tests/common's column list is the README's");
}
