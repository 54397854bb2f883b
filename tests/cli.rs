//! The `sluice` binary as a user runs it: exit codes, messages, files left behind.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::*;

mod common;
use common::fixture;

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

fn csv_rows(path: &Path) -> usize {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mut rows = 0;
    for record in reader.records() {
        record.expect("every row is well-formed");
        rows += 1;
    }
    rows
}

fn summary_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_readme_main_job_replays_the_bundled_log_against_the_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("results.csv"), dir.path().join("summary.json"));
    sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "mock", "--rate", "400"])
        .args(["--duration", "2s", "--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stderr(predicate::str::contains("--format auto chose nginx"))
        .stderr(predicate::str::contains("latency"))
        .stderr(
            predicate::str::contains("996 accepted, 4 rejected").and(predicate::str::contains("not_http_request: 3")),
        );
    let summary = summary_json(&json);
    let sent = summary["requests_sent"].as_u64().unwrap();
    let planned = sent + summary["not_sent"].as_u64().unwrap();
    // 2 s at 400/s plans 800 requests, however loaded the machine; most of them leave.
    assert!((799..=801).contains(&planned), "planned {planned}");
    assert!(sent >= 400, "sent {sent}");
    assert_eq!(csv_rows(&out) as u64, planned, "one CSV row per planned request in the summary");
    assert!(summary["statuses"]["200"].as_u64().unwrap() > sent / 2);
    assert_eq!(summary["log"]["plan"]["absolute_urls_rewritten"], 1);
}

#[test]
fn bad_flags_name_the_flag_and_exit_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.csv");
    let log = fixture("demo-access.log");
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "0"], "--rate: '0' must be more than 0"),
        (&["--rate", "-5"], "--rate"),
        (&["--rate", "lots"], "--rate: 'lots' is not a number"),
        (&["--rate", "10", "--duration", "5x"], "--duration: '5x' has unknown unit"),
        (&["--rate", "10", "--concurrency", "0"], "--concurrency"),
        (&["--rate", "10", "--timeout", "soon"], "--timeout"),
        (&["--rate", "10", "--allow-methods", "GET,PO ST"], "--allow-methods"),
        (&["--rate", "10", "--max-bad-lines", "150%"], "--max-bad-lines"),
        (&["--rate", "10", "--format", "apache:%h %Z"], "--format"),
        (
            &["--rate", "10", "--shard", "4/4"],
            "--shard: shard index 4 (from --shard) is not below the number of shards 4",
        ),
        (&["--rate", "10", "--shard", "auto/4"], "--shard: 'auto' found no shard index: none of JOB_COMPLETION_INDEX"),
        (&["--rate", "10", "--start-at", "2020-01-01T00:00:00Z"], "--start-at: 2020-01-01T00:00:00.000Z passed"),
        (&["--rate", "10", "--late-start", "skip"], "--late-start: says what to do when a run starts after --start-at"),
        (
            &["--rate", "10", "--start-at", "now+1m", "--late-start", "later"],
            "--late-start: 'later': expected refuse or skip",
        ),
        (&["--rate", "10", "--start-at", "soon"], "--start-at: 'soon' is not a time"),
        (&["--rate", "10", "--seq-header", "X Seq"], "--seq-header: 'X Seq' is not a header name"),
    ];
    for (flags, message) in cases {
        sluice()
            .args(["replay", log.to_str().unwrap(), "--target", "http://127.0.0.1:9", "--out", out.to_str().unwrap()])
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_PROCID")
            .env_remove("NOMAD_ALLOC_INDEX")
            .args(*flags)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(*message));
        assert!(!out.exists(), "{flags:?} left a file behind");
    }
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", "ftp://127.0.0.1", "--rate", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
}

#[test]
fn an_unwritable_out_or_a_missing_log_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad_out = dir.path().join("no/such/dir/r.csv");
    sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "mock", "--rate", "10"])
        .args(["--out", bad_out.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out").and(predicate::str::contains("r.csv")));
    let missing = dir.path().join("missing.log");
    sluice()
        .args(["replay", missing.to_str().unwrap(), "--target", "mock", "--rate", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.log: no such file"));
}

#[test]
fn sigint_mid_run_leaves_a_valid_csv_that_matches_the_summary_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    let mut child = Command::cargo_bin("sluice")
        .unwrap()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "mock", "--rate", "300"])
        .args(["--duration", "30s", "--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, stderr) = common::sigint_and_wait(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let summary = summary_json(&json);
    assert_eq!(summary["interrupted"], true);
    let sent = summary["requests_sent"].as_u64().unwrap();
    assert!(sent > 100 && sent < 3000, "sent {sent}");
    // Requests released but not yet taken by a sender at the signal have their rows, as not sent.
    let not_sent = summary["not_sent"].as_u64().unwrap();
    assert_eq!(csv_rows(&out) as u64, sent + not_sent);
}

#[test]
fn parse_prints_one_json_object_per_accepted_line_and_reports_rejects() {
    let assert = sluice()
        .args(["parse", fixture("demo-access.log").to_str().unwrap(), "--format", "nginx"])
        .assert()
        .success()
        .stderr(predicate::str::contains("demo-access.log:137: "))
        .stderr(predicate::str::contains("accepted 996 lines, rejected 4"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 996);
    let first = &lines[0];
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "line",
        "remote_addr",
        "remote_user",
        "time",
        "method",
        "target",
        "protocol",
        "status",
        "bytes",
        "referer",
        "user_agent",
        "request_time_ms",
        "vhost",
        "headers",
        "body",
        "fields",
    ] {
        assert!(keys.contains(&key), "missing {key} in {first}");
    }
    assert_eq!(first["line"], 1);
    assert_eq!(first["remote_user"], serde_json::Value::Null, "`-` is null");
    assert_eq!(first["time"], "2026-11-20T09:00:00+01:00");
    assert_eq!(first["method"], "GET");
}

#[test]
fn parse_reads_gzip_and_stdin_and_exits_2_when_nothing_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("a.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(fixture("demo-access.log")).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    sluice()
        .args(["parse", gz.to_str().unwrap(), "--output", "none"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("accepted 996 lines"));
    sluice()
        .args(["parse", "-", "--format", "nginx", "--output", "csv"])
        .write_stdin(std::fs::read(fixture("demo-access.log")).unwrap())
        .assert()
        .success()
        .stdout(predicate::str::starts_with("line,remote_addr,"));
    sluice()
        .args(["parse", fixture("demo-access.log").to_str().unwrap(), "--format", "json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("try another --format"));
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    sluice()
        .args(["parse", empty.to_str().unwrap(), "--format", "nginx"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty.log: the input is empty"));
}

#[test]
fn a_late_shard_with_late_start_skip_keeps_the_common_start_and_records_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("late.csv");
    // The common start passed a second ago: the first ~100 requests of the plan are already due.
    let start = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "mock", "--rate", "100"])
        .args(["--duration", "2s", "--start-at", &start, "--late-start", "skip", "--out", out.to_str().unwrap()])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let error = |r: &csv::StringRecord| r.get(12).unwrap().to_string();
    let skipped = rows.iter().filter(|r| error(r) == "skipped_late").count();
    // At least the second it started late; more when the machine was slow to start the process.
    assert!((90..=190).contains(&skipped), "{skipped} skipped_late rows");
    // The rest of the plan (due from the moment it was ready) was sent at its global time.
    let mut seqs: Vec<u64> = rows.iter().map(|r| r.get(0).unwrap().parse().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "one row per planned request");
    assert!((199..=201).contains(&seqs.len()), "2 s at 100/s: {}", seqs.len());
    let first_sent =
        rows.iter().filter(|r| error(r).is_empty()).map(|r| r.get(0).unwrap().parse::<u64>().unwrap()).min();
    assert!(first_sent.is_some_and(|s| s as usize >= skipped), "nothing due before the late start was sent");
}

#[test]
fn a_target_with_credentials_in_its_url_is_refused_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "http://ops:s3cret@127.0.0.1:9"])
        .args(["--rate", "10", "--out", dir.path().join("r.csv").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("credentials in the URL") && !stderr.contains("s3cret"), "{stderr}");
    assert!(!dir.path().join("r.csv").exists(), "nothing written");
}

#[test]
fn a_shards_manifest_carries_its_logs_sha256_and_an_unsharded_runs_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture("demo-access.log");
    let digest = |shard: Option<&str>, name: &str| {
        let out = dir.path().join(name);
        let mut cmd = sluice();
        cmd.args(["replay", log.to_str().unwrap(), "--target", "mock", "--rate", "200", "--duration", "1s"]);
        cmd.args(["--out", out.to_str().unwrap()]);
        if let Some(shard) = shard {
            cmd.args(["--shard", shard]);
        }
        cmd.timeout(Duration::from_secs(60)).assert().success();
        let manifest = sluice::shard::Manifest::read(&sluice::shard::manifest_path_for(&out)).unwrap();
        assert_eq!(manifest.logs[0].bytes, std::fs::metadata(&log).unwrap().len());
        manifest.logs[0].sha256.clone()
    };
    // What merge compares shards by: the whole file's content.
    assert_eq!(digest(Some("0/2"), "shard-0.csv"), sluice::shard::sha256_file(&log).unwrap());
    // Nothing compares an unsharded run's log, so the end of the run does not read it again.
    assert_eq!(digest(None, "whole.csv"), "");
}

#[test]
fn a_workbook_is_never_written_to_the_terminal() {
    // Binary zip to stdout would garble a terminal: `--xlsx` needs `--out`, before any daemon is asked.
    sluice()
        .args(["runs", "results", "20261129-041957-506", "--xlsx", "--daemon", "http://127.0.0.1:9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out <FILE>"));
}
