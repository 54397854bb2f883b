//! Hostile and damaged input, as users meet it: a gzip bomb of one endless line, lines of a
//! megabyte, NULs on stdin, a `.gz` cut while a log was rotated. Each drives the `sluice` binary
//! and checks what it printed, what the mock server on 127.0.0.1 received, and how much memory
//! the sluice process took at its peak.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

mod common;
use common::{csv_rows, path_of};

/// The bar from issue 12: whatever the input, the process stays under this.
const PEAK_RSS_BAR_MB: f64 = 100.0;

const NGINX_LINE: &str = r#"127.0.0.1 - - [10/Oct/2024:13:55:36 +0000] "GET /item/{n} HTTP/1.1" 200 612 "-" "curl/8""#;

fn nginx_line(n: usize) -> String {
    NGINX_LINE.replace("{n}", &n.to_string())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn mock() -> MockServer {
    spawn_in_thread(MockConfig::default()).expect("mock server starts on 127.0.0.1")
}

/// Writes a child's standard input, from a thread of its own.
type Feed = Box<dyn FnOnce(&mut dyn Write) + Send>;

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
    peak_rss_mb: f64,
}

/// Runs sluice with `args` (at most 120 s), feeding `stdin` from a thread, and measures its peak
/// resident memory: `VmHWM` of its own address space, read every few milliseconds while it runs.
/// (`ru_maxrss` from `wait4` would not do: a child spawned with vfork counts the test process's
/// memory as its own.) Memory that grows with the input grows over seconds, so polling sees it.
fn run_measured(args: &[&str], stdin: Option<Feed>) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sluice"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let feeder = stdin.map(|feed| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || feed(&mut pipe))
    });
    let pid = child.id();
    let started = Instant::now();
    let mut peak_kib = 0u64;
    let status = loop {
        // Until the process has exited; a zombie has no `VmHWM` line.
        if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.parse().ok()))
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("sluice {args:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    eprintln!("sluice {}: peak RSS {:.1} MB", args[0], peak_kib as f64 / 1024.0);
    Finished {
        code: status.code().unwrap_or_else(|| panic!("sluice {args:?} was killed by a signal")),
        stdout: std::fs::read_to_string(out_path).unwrap(),
        stderr: std::fs::read_to_string(err_path).unwrap(),
        peak_rss_mb: peak_kib as f64 / 1024.0,
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn parse_skips_the_endless_line_of_a_gzip_bomb_in_bounded_memory() {
    // 128 MiB of zeros and no newline between two good lines, as concatenated gzip members.
    let zeros = gzip(&vec![0u8; 1 << 20]);
    let mut bomb = gzip(format!("{}\n", nginx_line(1)).as_bytes());
    for _ in 0..128 {
        bomb.extend(&zeros);
    }
    bomb.extend(gzip(format!("\n{}\n", nginx_line(3)).as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.log.gz");
    std::fs::write(&path, bomb).unwrap();

    let run = run_measured(&["parse", "--format", "nginx", path_str(&path)], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["line"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 3]);
    assert!(run.stderr.contains(&format!("{}:2: line longer than 65536 bytes", path.display())), "{}", run.stderr);
    assert!(run.stderr.contains("rejected 1 (line_too_long: 1)"), "{}", run.stderr);
    assert!(run.peak_rss_mb < PEAK_RSS_BAR_MB, "peak RSS {:.0} MB", run.peak_rss_mb);
}

#[test]
fn stdin_of_nuls_without_a_newline_is_bounded_and_counted() {
    let feed = |pipe: &mut dyn Write| {
        let _ = pipe.write_all(format!("{}\n", nginx_line(1)).as_bytes());
        let nuls = vec![0u8; 1 << 20];
        for _ in 0..128 {
            if pipe.write_all(&nuls).is_err() {
                return;
            }
        }
        // A CRLF ends the NULs; the last line has no line ending at all.
        let _ = pipe.write_all(format!("\r\n{}", nginx_line(3)).as_bytes());
    };
    let run = run_measured(&["parse", "--format", "nginx", "--output", "csv", "-"], Some(Box::new(feed)));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert!(rows[0].starts_with("1,") && rows[1].starts_with("3,"), "{rows:?}");
    assert!(rows[1].contains("/item/3"), "the last line, without a newline, is whole: {rows:?}");
    assert!(run.stderr.contains("stdin:2: line longer than 65536 bytes"), "{}", run.stderr);
    assert!(run.peak_rss_mb < PEAK_RSS_BAR_MB, "peak RSS {:.0} MB", run.peak_rss_mb);
}

#[test]
fn a_replay_of_megabyte_lines_keeps_its_read_ahead_within_the_byte_budget() {
    // 300 lines, each a POST with a 1 MB logged body: 300 MB of requests if all were queued.
    let format = r#"$remote_addr [$time_local] "$request" $status $body_bytes_sent "$request_body""#;
    let body = "a".repeat(1_000_000);
    let line = format!("10.0.0.1 [21/Nov/2026:11:00:01 +0100] \"POST /upload HTTP/1.1\" 201 12 \"{body}\"\n");
    let member = gzip(line.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log.gz");
    std::fs::write(&log, member.repeat(300)).unwrap();
    let out = dir.path().join("r.csv");
    let server = mock();
    let url = server.url();

    let run = run_measured(
        &[
            "replay",
            path_str(&log),
            "--format",
            &format!("nginx:{format}"),
            "--allow-methods",
            "POST",
            "--target",
            &url,
            "--rate",
            "2",
            // Few senders: each keeps its last request head, and this test is about the queue.
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--drain-timeout",
            "5s",
            "--max-line-bytes",
            "2000000",
            "--out",
            path_str(&out),
            "--progress",
            "never",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let received = server.requests();
    assert!((3..=6).contains(&received.len()), "about 2/s for 2 s, got {}", received.len());
    assert!(received.iter().all(|r| r.method == "POST" && r.path() == "/upload" && r.body_len == 1_000_000));
    assert_eq!(csv_rows(&std::fs::read(&out).unwrap()).len(), received.len());
    assert!(run.peak_rss_mb < PEAK_RSS_BAR_MB, "peak RSS {:.0} MB", run.peak_rss_mb);
}

/// 400 distinct lines, gzipped.
fn gzipped_log() -> Vec<u8> {
    gzip((1..=400).map(|n| format!("{}\n", nginx_line(n))).collect::<String>().as_bytes())
}

/// The first `len` bytes of `full`, and how many whole lines a gzip reader gets from them.
fn cut_log(full: &[u8], len: usize) -> (Vec<u8>, usize) {
    let cut = &full[..len];
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(cut);
    assert!(std::io::Read::read_to_end(&mut decoder, &mut decoded).is_err(), "the cut must be detectable");
    (cut.to_vec(), decoded.iter().filter(|&&b| b == b'\n').count())
}

#[test]
fn a_truncated_gzip_is_replayed_up_to_the_cut_and_the_cut_is_reported() {
    let full = gzipped_log();
    // Early: the first cut that leaves a few whole lines, inside the first deflate block.
    let early = (10..full.len()).step_by(4).find(|&len| cut_log(&full, len).1 >= 3).unwrap();
    for (name, len) in [("early", early), ("middle", full.len() / 2), ("late", full.len() - 20)] {
        let (bytes, whole) = cut_log(&full, len);
        assert!((3..400).contains(&whole), "{name}: the cut leaves {whole} lines");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log.1.gz");
        std::fs::write(&log, bytes).unwrap();
        let (out, summary) = (dir.path().join("r.csv"), dir.path().join("s.json"));
        let server = mock();
        let url = server.url();
        let args = ["replay", path_str(&log), "--target", &url, "--rate", "max", "--once", "--out", path_str(&out)];
        let run = run_measured(&[&args[..], &["--summary-json", path_str(&summary)]].concat(), None);

        // Not the refusal (2) that a cut log got before: its own exit, "input incomplete".
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        let mut paths: Vec<String> = server.requests().iter().map(|r| r.path().to_string()).collect();
        paths.sort_by_key(|p| p.trim_start_matches("/item/").parse::<usize>().unwrap());
        let want: Vec<String> = (1..=whole).map(|n| format!("/item/{n}")).collect();
        assert_eq!(paths, want, "{name}: every whole line before the cut, once");
        let rows = csv_rows(&std::fs::read(&out).unwrap());
        assert_eq!(rows.len(), whole, "{name}");
        assert!(rows.iter().all(|r| path_of(&r["url"]).starts_with("/item/")));
        let warning = format!("  warning    {}:{}: input cut short (", log.display(), whole + 1);
        assert!(run.stderr.contains(&warning), "{name}: {}", run.stderr);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        let cut = &json["log"]["incomplete"][0];
        assert_eq!(cut["file"], log.display().to_string());
        assert_eq!(cut["line"], whole as u64 + 1);
        assert!(!cut["reason"].as_str().unwrap().is_empty());
    }
}

#[test]
fn a_gzip_cut_before_its_first_whole_line_is_refused_naming_the_cut() {
    let (bytes, whole) = cut_log(&gzipped_log(), 12); // just past the gzip header
    assert_eq!(whole, 0);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log.1.gz");
    std::fs::write(&log, bytes).unwrap();
    let server = mock();
    let url = server.url();
    let out = dir.path().join("r.csv");
    let run =
        run_measured(&["replay", path_str(&log), "--target", &url, "--rate", "10", "--out", path_str(&out)], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{}:1: input cut short", log.display())), "{}", run.stderr);
    assert!(server.requests().is_empty());
}

#[test]
fn parse_prints_the_lines_before_a_cut_warns_and_exits_3() {
    let full = gzipped_log();
    let (bytes, whole) = cut_log(&full, full.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log.1.gz");
    std::fs::write(&log, bytes).unwrap();
    let run = run_measured(&["parse", path_str(&log)], None);
    assert_eq!(run.code, 3, "input incomplete: {}", run.stderr);
    let numbers: Vec<u64> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=whole as u64).collect::<Vec<_>>());
    let warning = format!("sluice parse: warning: {}:{}: input cut short (", log.display(), whole + 1);
    assert!(run.stderr.contains(&warning), "{}", run.stderr);
}

#[test]
fn a_dry_run_of_a_cut_log_shows_the_cut() {
    let full = gzipped_log();
    let (bytes, whole) = cut_log(&full, full.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log.1.gz");
    std::fs::write(&log, bytes).unwrap();
    let run =
        run_measured(&["replay", path_str(&log), "--target", "http://127.0.0.1:9", "--rate", "10", "--dry-run"], None);
    assert!(run.stderr.contains(&format!("would send {whole} requests")), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("  warning    {}:{}: input cut short", log.display(), whole + 1)),
        "{}",
        run.stderr
    );
}

#[test]
fn size_like_flags_out_of_range_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, format!("{}\n", nginx_line(1))).unwrap();
    let out = dir.path().join("never.csv");
    let replay = |flag: &str, value: &str| {
        let target = ["--target", "http://127.0.0.1:9", "--rate", "10", "--out", path_str(&out)];
        run_measured(&[&["replay", path_str(&log)], &target[..], &[flag, value]].concat(), None)
    };
    for (flag, value, message) in [
        ("--queue-capacity", "10000000", "--queue-capacity: must be between 1 and 1000000 (got 10000000)"),
        ("--max-line-bytes", "100", "--max-line-bytes: must be between 1024 and 16777216 (got 100)"),
        ("--batch", "1000000", "--batch: must be between 1 and 10000 (got 1000000)"),
        ("--timeout", "1d", "--timeout: must be between 1ms and 1h (got '1d')"),
    ] {
        let run = replay(flag, value);
        assert_eq!(run.code, 2, "{flag} {value}");
        assert!(!out.exists(), "{flag} {value}: refused, yet a run started");
        assert!(run.stderr.contains(message), "{flag} {value}: {}", run.stderr);
        assert!(run.peak_rss_mb < PEAK_RSS_BAR_MB, "{flag} {value}: peak RSS {:.0} MB", run.peak_rss_mb);
    }
    let run = run_measured(&["parse", "--max-line-bytes", "99999999", path_str(&log)], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--max-line-bytes: must be between 1024 and 16777216 (got 99999999)"),
        "{}",
        run.stderr
    );
}
