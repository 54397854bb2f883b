//! Figures a user can trust, proven against faulty targets the tests start on 127.0.0.1 (a port
//! where nothing listens, a target that hangs, one that dribbles a body and stalls or resets, a
//! disk that fills up), driving the CLI as a user runs it and checking both ends of the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;

mod common;
use common::{csv_rows, fixture};

fn sluice() -> Command {
    Command::cargo_bin("sluice").unwrap()
}

/// `sluice replay fixtures/demo-access.log ARGS --progress never --out OUT`, as a user runs it,
/// bounded to a minute: its exit code and what it wrote to stderr.
fn replay_demo(args: &[&str], out: &Path) -> (Option<i32>, String) {
    let run = sluice()
        .arg("replay")
        .arg(fixture("demo-access.log"))
        .args(args)
        .args(["--progress", "never"])
        .arg("--out")
        .arg(out)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (run.status.code(), String::from_utf8_lossy(&run.stderr).into_owned())
}

fn read_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    csv_rows(&std::fs::read(path).expect("the CSV exists"))
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A target that reads every request head and never answers. Counts the heads it read.
fn hanging_target() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicU64::new(0));
    let counter = heads.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                // Until sluice closes the connection: it is never answered.
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        seen.drain(..end + 4);
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// A target that answers 200 with a 10 MB Content-Length, sends `sent` body bytes, then either
/// stalls (`reset` false) or resets the connection.
fn dribbling_target(sent: usize, reset: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
                let _ = conn.write_all(&vec![b'x'; sent]);
                let _ = conn.flush();
                if reset {
                    // Long enough for sluice to read what was sent (a reset discards what the
                    // receiver has not read yet); then a zero linger turns the close into a reset.
                    std::thread::sleep(Duration::from_millis(500));
                    let _ = socket_linger_zero(&conn);
                    drop(conn);
                } else {
                    std::thread::sleep(Duration::from_secs(20));
                }
            });
        }
    });
    addr
}

fn socket_linger_zero(conn: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[test]
fn a_run_where_nothing_answered_fails_its_latency_gate_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let port = closed_port();
    let (code, stderr) = replay_demo(
        &[
            "--rate",
            "100",
            "--duration",
            "1500ms",
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--assert",
            "p99 < 250ms",
        ],
        &out,
    );
    assert_eq!(code, Some(4), "nothing answered is its own exit: {stderr}");
    assert!(stderr.contains("latency    none: no request got an answer"), "{stderr}");
    assert!(stderr.contains("FAIL  p99 < 250ms  no answered request"), "{stderr}");
    assert!(
        stderr.contains("no request got an answer: ")
            && stderr.contains(&format!("Connection refused (127.0.0.1:{port})")),
        "the one-line explanation names the first error: {stderr}"
    );
    // The same CSV read back gives the same verdict.
    let report = sluice().args(["report", out.to_str().unwrap(), "--assert", "p99 < 250ms"]).output().unwrap();
    assert_eq!(report.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&report.stdout).contains("no answered request"));
}

#[test]
fn a_hanging_target_ends_the_run_by_duration_plus_drain_and_unsent_requests_are_not_sent() {
    let (addr, heads) = hanging_target();
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    let started = Instant::now();
    let (code, stderr) = replay_demo(
        &[
            "--rate",
            "200",
            "--duration",
            "3s",
            "--drain-timeout",
            "2s",
            "--timeout",
            "30s",
            "--concurrency",
            "16",
            "--target",
            &format!("http://{addr}"),
            "--summary-json",
            json.to_str().unwrap(),
        ],
        &out,
    );
    let took = started.elapsed();
    // 3 s + 2 s of drain, plus start-up and a loaded machine's slack; the bug took the full 30 s timeout.
    assert!(took < Duration::from_secs(15), "took {took:?}: {stderr}");
    assert_eq!(code, Some(4), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = read_rows(&out);
    let sent = summary["requests_sent"].as_u64().unwrap();
    let not_sent = summary["not_sent"].as_u64().unwrap();
    assert_eq!(sent, 16, "only the 16 connections' first requests ever left");
    assert_eq!(heads.load(Ordering::SeqCst), sent, "the target received exactly what the summary calls sent");
    assert!(not_sent > 400, "the rest of the 3 s plan at 200/s never left: {not_sent}");
    assert_eq!(rows.len() as u64, sent + not_sent, "every planned request has exactly one row");
    let mut seqs: Vec<u64> = rows.iter().map(|r| r["seq"].parse().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..rows.len() as u64).collect::<Vec<_>>(), "one row per seq, none missing");
    for row in &rows {
        match row["error"].as_str() {
            "not_sent" => {
                assert!(row["sent_at"].is_empty() && row["latency_ms"].is_empty() && row["lag_ms"].is_empty())
            }
            "aborted" => assert!(!row["sent_at"].is_empty()),
            other => panic!("unexpected outcome {other:?} in {row:?}"),
        }
    }
    // The achieved rate counts what left, not what was planned.
    assert!(summary["achieved_rate"].as_f64().unwrap() < 10.0, "{}", summary["achieved_rate"]);
}

#[test]
fn bytes_of_a_response_cut_off_by_a_timeout_or_a_reset_are_counted() {
    for (reset, kind) in [(false, "timeout"), (true, "reset")] {
        let addr = dribbling_target(1_000_000, reset);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.csv");
        let (_, stderr) = replay_demo(
            &[
                "--rate",
                "2",
                "--duration",
                "1s",
                "--timeout",
                "1s",
                "--drain-timeout",
                "5s",
                "--target",
                &format!("http://{addr}"),
            ],
            &out,
        );
        let rows = read_rows(&out);
        assert!(!rows.is_empty(), "{stderr}");
        for row in &rows {
            assert_eq!(row["error"], kind, "{row:?}");
            let bytes: u64 = row["bytes"].parse().unwrap();
            assert!(bytes >= 900_000, "{kind}: {bytes} body bytes recorded of the 1 MB that arrived");
        }
    }
}

#[test]
fn an_abort_condition_stops_the_run_early_and_exits_1() {
    let server = sluice_mock::spawn_in_thread(
        sluice_mock::MockConfig::default().with_statuses("200:20,500:80".parse().unwrap()).without_memory_record(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let started = Instant::now();
    let (code, stderr) = replay_demo(
        &[
            "--rate",
            "100",
            "--duration",
            "30s",
            "--abort-on",
            "error_rate > 50% for 2s",
            "--abort-on",
            "p99 > 600s",
            "--target",
            &server.url(),
        ],
        &out,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped long before the 30 s duration: {stderr}");
    assert!(stderr.contains("aborted by --abort-on"), "{stderr}");
    assert!(stderr.contains("aborted    --abort-on error_rate > 50% for 2s: error_rate = "), "{stderr}");
    assert!(stderr.contains("over the last 2s"), "{stderr}");
    let rows = read_rows(&out);
    assert!(rows.len() < 1500, "{} rows: scheduling stopped", rows.len());
    // A malformed condition stops the command before anything is sent.
    let bad = sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--rate", "1", "--target", &server.url()])
        .args(["--abort-on", "error_rate > 50% for ever"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--abort-on"));
}

#[test]
fn the_summary_counts_what_was_replayed_apart_from_what_was_read_ahead() {
    let server = sluice_mock::spawn_in_thread(sluice_mock::MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for capacity in ["8192", "16"] {
        let out = dir.path().join(format!("r{capacity}.csv"));
        let (code, stderr) = replay_demo(
            &["--rate", "10", "--duration", "2s", "--queue-capacity", capacity, "--target", &server.url()],
            &out,
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("requests   20 sent"), "{stderr}");
        // The demo log's first 20 lines are all replayable GETs: 20 lines replayed, whatever was read ahead.
        assert!(stderr.contains("replayed   20 log lines, up to the last planned request: 0 unreadable"), "{stderr}");
        assert!(stderr.contains("read ahead of the replay"), "{stderr}");
        assert!(!stderr.contains("demo-access.log:137"), "a bad line the replay never reached is not listed: {stderr}");
    }
}

#[test]
fn the_summary_and_the_report_round_shares_alike() {
    let server = sluice_mock::spawn_in_thread(
        sluice_mock::MockConfig::default().with_seed(3).with_statuses("200:87,404:13".parse().unwrap()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let (code, stderr) = replay_demo(&["--rate", "400", "--once", "--target", &server.url()], &out);
    assert_eq!(code, Some(0), "{stderr}");
    let statuses = |text: &str| text.lines().find(|l| l.starts_with("  statuses")).map(str::to_string).unwrap();
    let report = sluice().args(["report", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(statuses(&stderr), statuses(&String::from_utf8_lossy(&report.stdout)));
}

#[test]
fn a_concurrency_that_cannot_fit_the_open_file_limit_is_refused() {
    use std::os::unix::process::CommandExt;
    let server = sluice_mock::spawn_in_thread(sluice_mock::MockConfig::default()).unwrap();
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("sluice"));
    cmd.args(["replay", fixture("demo-access.log").to_str().unwrap(), "--rate", "10", "--concurrency", "500"])
        .args(["--target", &server.url(), "--out", "/dev/null", "--progress", "never"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 100, rlim_max: 100 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--concurrency 500 needs about") && stderr.contains("may open only 100"), "{stderr}");
}

#[test]
fn a_full_disk_stops_the_run_with_a_summary_and_whole_rows() {
    // A 64 KiB tmpfs in a private mount namespace: `unshare -rm` works without root.
    let probe = StdCommand::new("unshare").args(["-rm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED a_full_disk_stops_the_run_with_a_summary_and_whole_rows: `unshare -rm` is not available here"
        );
        return;
    }
    let server = sluice_mock::spawn_in_thread(sluice_mock::MockConfig::default().without_memory_record()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (small, json, log) = (dir.path().join("small"), dir.path().join("s.json"), fixture("demo-access.log"));
    std::fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {small} && {bin} replay {log} --target {url} --rate 2000 \
         --duration 20s --progress never --out {small}/r.csv --summary-json {json}; \
         code=$?; cp {small}/r.csv {dir}/copy.csv; exit $code",
        small = small.display(),
        bin = assert_cmd::cargo::cargo_bin("sluice").display(),
        log = log.display(),
        url = server.url(),
        json = json.display(),
        dir = dir.path().display(),
    );
    let started = Instant::now();
    let output = StdCommand::new("unshare").args(["-rm", "sh", "-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(18), "the run stopped at the full disk, not at its duration");
    assert!(stderr.contains("stopped: results could not be written"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(summary["output_error"].as_str().unwrap().contains("No space left"));
    let csv = std::fs::read(dir.path().join("copy.csv")).unwrap();
    assert!(csv.ends_with(b"\n"), "cut back to the last whole row");
    let rows = csv_rows(&csv);
    assert!(!rows.is_empty());
}
