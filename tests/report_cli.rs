//! `sluice report` and `sluice replay --report/--assert` as a user runs them: exit codes,
//! messages, and a report over a CSV from a real replay against the mock server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use predicates::prelude::*;
use sluice::analysis::{self, ReportOptions, Settings, TargetRate};
use sluice::source::Input;
use sluice::{Rate, ReplayConfig, Run, Target};
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

mod common;

fn fixture(name: &str) -> String {
    common::fixture(name).display().to_string()
}

fn sluice() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sluice").unwrap();
    cmd.timeout(Duration::from_secs(60));
    cmd
}

fn report(args: &[&str]) -> assert_cmd::assert::Assert {
    sluice().arg("report").args(args).assert()
}

#[test]
fn assertions_decide_the_exit_code_and_print_pass_or_fail() {
    let basic = fixture("report-basic.csv");
    report(&[&basic, "--assert", "p50 < 20ms", "--assert", "status_5xx == 7"])
        .success()
        .stdout(predicate::str::contains("PASS  p50 < 20ms").and(predicate::str::contains("p50 = 11.01 ms")));
    report(&[&basic, "--assert", "p50 < 20ms", "--assert", "status_5xx == 0"])
        .code(1)
        .stdout(predicate::str::contains("FAIL  status_5xx == 0").and(predicate::str::contains("status_5xx = 7")));
}

#[test]
fn every_format_can_go_to_a_file_with_the_verdicts_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    for (format, start) in
        [("html", "<!DOCTYPE html>"), ("json", "{"), ("markdown", "## sluice report"), ("text", "sluice report")]
    {
        let out = dir.path().join(format!("r.{format}"));
        report(&[
            &fixture("report-basic.csv"),
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
            "--assert",
            "requests == 160",
        ])
        .success()
        .stdout("")
        .stderr(predicate::str::contains("PASS  requests == 160"));
        assert!(std::fs::read_to_string(&out).unwrap().starts_with(start), "{format}");
    }
    let json = sluice().args(["report", &fixture("report-basic.csv"), "--format", "json"]).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["overview"]["requests"], 160);
}

#[test]
fn a_header_with_missing_or_extra_columns_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("report-basic.csv")).unwrap();
    let missing = dir.path().join("missing.csv");
    std::fs::write(&missing, good.replacen(",latency_ms,", ",", 1)).unwrap();
    report(&[missing.to_str().unwrap()])
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("missing.csv: header: missing column(s) latency_ms; expected seq,log_line"));
    let extra = dir.path().join("extra.csv");
    std::fs::write(&extra, good.replacen(",error\n", ",error,note\n", 1)).unwrap();
    report(&[extra.to_str().unwrap()]).code(2).stderr(predicate::str::contains("unexpected column(s) note"));
    report(&[dir.path().join("absent.csv").to_str().unwrap()]).code(2).stderr(predicate::str::contains("absent.csv"));
}

#[test]
fn bad_rows_are_skipped_or_stop_the_report_as_strict_says() {
    let bad = fixture("report-bad.csv");
    // Skipped: the report is still printed, over the 15 good rows, and the exit code says the
    // input was damaged.
    report(&[&bad])
        .code(2)
        .stdout(predicate::str::contains("15 rows (6 skipped)"))
        .stdout(predicate::str::contains("report-bad.csv:4: latency_ms: 'fast' is not a number of milliseconds"))
        .stdout(predicate::str::contains("report-bad.csv:13: sent_at: 'yesterday' is not a time"));
    report(&[&bad, "--format", "json"]).code(2).stderr(
        predicate::str::contains("skipped 6 row(s)").and(predicate::str::contains("report-bad.csv:7: 12 fields")),
    );
    report(&[&bad, "--strict"]).code(2).stdout("").stderr(
        predicate::str::contains("report-bad.csv:4: latency_ms: 'fast'").and(predicate::str::contains("--strict")),
    );
}

#[test]
fn a_killed_runs_cut_off_last_row_is_a_note_unless_strict() {
    let cut = fixture("report-truncated.csv");
    report(&[&cut, "--assert", "requests == 20"])
        .success()
        .stdout(predicate::str::contains("the file's last row, cut off: what a killed run leaves"));
    report(&[&cut, "--strict"]).code(2).stderr(predicate::str::contains(
        "report-truncated.csv:22: 4 fields, expected 13 (the file's last row, cut off",
    ));
}

#[test]
fn a_bad_assertion_points_at_its_token_and_stops_before_reading() {
    report(&["no-such-file.csv", "--assert", "p99 < 250 parsecs"]).code(2).stderr(
        predicate::str::contains("p99 < 250 parsecs\n              ^^^^^^^").and(predicate::str::contains("time unit")),
    );
    report(&["no-such-file.csv", "--assert", "p98 < 250ms"])
        .code(2)
        .stderr(predicate::str::contains("unknown metric 'p98'; known: p50 p90 p95 p99 p999 max mean"))
        .stderr(predicate::str::contains("status_Nxx").and(predicate::str::contains("mismatch_rate")));
    report(&[&fixture("report-basic.csv"), "--route-rule", "([a-z]=x"])
        .code(2)
        .stderr(predicate::str::contains("--route-rule"));
    report(&[&fixture("report-basic.csv"), "--interval", "soon"])
        .code(2)
        .stderr(predicate::str::contains("--interval"));
    report(&[&fixture("report-basic.csv"), "--target-rate", "fast"])
        .code(2)
        .stderr(predicate::str::contains("--target-rate"));
}

// ---- a real replay against the mock server -------------------------------------------------

/// A log whose logged statuses and mock rules give a known status matrix.
const LOG_GROUPS: [(&str, u16, usize); 7] = [
    ("/ok/{n}", 200, 40),           // answered 200: agrees
    ("/broken/{n}", 200, 20),       // rule 500: 2xx → 5xx
    ("/reset/{n}", 200, 5),         // rule reset: 2xx → no answer
    ("/cached/{n}", 304, 5),        // answered 200: a logged 304 agrees with 2xx
    ("/moved/{n}", 301, 5),         // answered 200: 3xx → 2xx differs
    ("/gone/{n}", 404, 10),         // rule 200: 4xx → 2xx
    ("/status/404?n={n}", 404, 10), // the mock's built-in /status/NNN: agrees
];
const LOG_LINES: usize = 95;

fn write_log(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for (path, status, count) in LOG_GROUPS {
        for n in 0..count {
            let target = path.replace("{n}", &(1000 + n).to_string());
            lines.push(format!(
                "127.0.0.1 - - [21/Nov/2026:10:00:{:02} +0000] \"GET {target} HTTP/1.1\" {status} 100 \"-\" \"report-test\"",
                n % 60
            ));
        }
    }
    // Interleave the groups, deterministically, as real traffic would be.
    lines.sort_by_key(|l| l.len() * 7919 % 97);
    let log = dir.join("access.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    log
}

fn mock_with_rules() -> MockServer {
    let config = MockConfig::default()
        .with_rule("/broken/*=500".parse().unwrap())
        .with_rule("/reset/*=reset".parse().unwrap())
        .with_rule("/gone/*=200".parse().unwrap());
    spawn_in_thread(config).expect("the mock starts on 127.0.0.1")
}

#[test]
fn a_report_over_a_real_replay_has_the_exact_status_matrix() {
    let server = mock_with_rules();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let target = Target::Url(reqwest::Url::parse(&server.url()).unwrap());
    let config =
        ReplayConfig::new(vec![Input::File(write_log(dir.path()))], target, Rate::PerSecond(500.0), out.clone());
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert_eq!(summary.requests_sent, LOG_LINES as u64);

    let settings = Settings {
        report: ReportOptions { target: TargetRate::Given(500.0), ..ReportOptions::default() },
        ..Settings::default()
    };
    let r = analysis::analyse(std::slice::from_ref(&out), &settings).unwrap();
    let m = &r.status_matrix;
    assert_eq!(m.logged, ["2xx", "3xx", "4xx"]);
    assert_eq!(m.replayed, ["2xx", "4xx", "5xx", "error"]);
    assert_eq!(m.counts, [[40, 0, 20, 5], [10, 0, 0, 0], [10, 10, 0, 0]]);
    assert_eq!(m.differs, [Some(25), Some(5), Some(10)]);
    assert_eq!((m.mismatches, m.with_orig_status), (40, 95));

    let worst: Vec<(String, u64, String)> = r
        .mismatched_routes
        .iter()
        .map(|l| {
            (
                l.route.clone(),
                l.mismatches,
                format!("{}→{} ×{}", l.transitions[0].logged, l.transitions[0].replayed, l.transitions[0].count),
            )
        })
        .collect();
    let expected = [
        ("/broken/{id}", 20, "200→500 ×20"),
        ("/gone/{id}", 10, "404→200 ×10"),
        ("/moved/{id}", 5, "301→200 ×5"),
        ("/reset/{id}", 5, "200→error ×5"),
    ];
    assert_eq!(worst, expected.map(|(r, n, t)| (r.to_string(), n, t.to_string())));

    // The report's figures are the run's own, recomputed from the CSV.
    assert_eq!(r.overview.requests, summary.requests_sent);
    assert_eq!(r.overview.statuses, summary.statuses);
    assert_eq!(r.overview.error_kinds, summary.error_kinds);
    assert_eq!(r.overview.target_rate, Some(500.0));
    // And the plan's rate is what the CSV says when nobody tells.
    let inferred = analysis::analyse(&[out], &Settings::default()).unwrap();
    assert_eq!(inferred.overview.target_rate, Some(500.0));
}

#[test]
fn replay_report_and_assert_print_after_the_summary_and_decide_the_exit_code() {
    let server = mock_with_rules();
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path());
    let out = dir.path().join("r.csv");
    let replay = |extra: &[&str]| {
        sluice()
            .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "500"])
            .args(["--out", out.to_str().unwrap()])
            .args(extra)
            .assert()
    };
    replay(&[
        "--report",
        "--assert",
        "mismatch_rate < 0.5%",
        "--assert",
        "status_5xx == 20",
        "--assert",
        "rate >= 50% of target",
    ])
    .code(1)
    .stderr(predicate::str::contains("logged \\ replayed"))
    .stderr(predicate::str::contains("/broken/{id}      20"))
    .stderr(predicate::str::contains("FAIL  mismatch_rate < 0.5%").and(predicate::str::contains("(40 of 95)")))
    .stderr(predicate::str::contains("PASS  status_5xx == 20"))
    .stderr(predicate::str::contains("of 500/s target"));
    // The same CSV, reported later: the same verdicts.
    report(&[out.to_str().unwrap(), "--assert", "status_5xx == 20", "--assert", "mismatches == 40"]).success();

    // From a --config file too.
    let config = dir.path().join("replay.toml");
    std::fs::write(&config, "report = true\nassert = [\"requests == 95\"]\n").unwrap();
    replay(&["--config", config.to_str().unwrap()])
        .success()
        .stderr(predicate::str::contains("PASS  requests == 95").and(predicate::str::contains("routes where")));

    // A typo stops the run before anything is sent.
    let before = server.count();
    replay(&["--assert", "p99 <"]).code(2).stderr(predicate::str::contains("expected a number"));
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "max"])
        .args(["--out", out.to_str().unwrap(), "--assert", "rate >= 95% of target"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--rate max has no target rate"));
    assert_eq!(server.count(), before, "nothing was sent");
}

#[test]
fn an_interrupted_replay_still_reports_and_exits_130_whatever_the_assertions() {
    use std::process::{Command, Stdio};

    use assert_cmd::cargo::CommandCargoExt;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut child = Command::cargo_bin("sluice")
        .unwrap()
        .args(["replay", &fixture("demo-access.log"), "--target", "mock", "--rate", "200", "--duration", "30s"])
        .args(["--out", out.to_str().unwrap(), "--report", "--assert", "requests > 1000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let (status, stderr) = common::sigint_and_wait(&mut child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("logged \\ replayed"), "{stderr}");
    assert!(stderr.contains("FAIL  requests > 1000000"), "{stderr}");
}

#[test]
fn abort_on_a_share_of_the_target_is_refused_up_front_with_logged_timing() {
    let out = tempfile::tempdir().unwrap();
    sluice()
        .args(["replay", &fixture("demo-access.log"), "--speed", "2", "--target", "http://127.0.0.1:1"])
        .args(["--out", out.path().join("r.csv").to_str().unwrap()])
        .args(["--abort-on", "rate < 50% of target for 10s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--abort-on").and(predicate::str::contains("with --speed the plan")));
    assert!(!out.path().join("r.csv").exists(), "refused before anything was sent");
}

#[test]
fn a_staged_replay_summarises_planned_against_sent_and_asserts_per_slice() {
    let server = spawn_in_thread(MockConfig::default()).expect("the mock starts on 127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    let assert = sluice()
        .args(["replay", &fixture("demo-access.log"), "--target", &server.url(), "--stages", "1s:0-200,1s:200,1s:400"])
        .args(["--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .args(["--assert", "rate >= 1% of target"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("  vs plan    "), "{stderr}");
    assert!(stderr.contains("PASS  rate >= 1% of target") && stderr.contains("/s planned in "), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let curve = summary["plan_curve"].as_array().expect("a plan curve for stages");
    assert!((2..=10).contains(&curve.len()), "{curve:?}");
    let sum = |key: &str| curve.iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
    // Three seconds whose planned rates differ wherever the report's clock-aligned slices fall.
    assert_eq!(sum("planned"), 700, "the stages plan 100 + 200 + 400 requests: {curve:?}");
    assert_eq!(sum("sent"), summary["requests_sent"].as_u64().unwrap());
    // The first stretch is on the ramp's low end, the last on the 400/s plateau.
    let rate = |p: &serde_json::Value| p["planned_rate"].as_f64().unwrap();
    assert!(rate(&curve[0]) < 100.0 && (rate(curve.last().unwrap()) - 400.0).abs() < 40.0, "{curve:?}");
}

/// Replays `LOG_GROUPS` with a secret header through the CLI into `dir/r.csv`; returns the CSV and
/// the log.
fn replay_with_a_secret(server: &MockServer, dir: &Path) -> (PathBuf, PathBuf) {
    let log = write_log(dir);
    let out = dir.join("r.csv");
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "500"])
        .args(["--out", out.to_str().unwrap(), "--header", "Authorization: Bearer s3cret"])
        .assert()
        .success();
    (out, log)
}

#[test]
fn the_report_shows_what_the_run_was_from_its_manifest_and_never_its_secret() {
    let server = mock_with_rules();
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = replay_with_a_secret(&server, dir.path());
    // The secret went over the wire…
    // (A request answered by a reset may be sent again by the client: at least one per line.)
    let sent = server.requests();
    assert!(sent.len() >= LOG_LINES, "{}", sent.len());
    assert!(sent.iter().all(|r| r.header("authorization").as_deref() == Some("Bearer s3cret")));
    let manifest = sluice::shard::Manifest::read(&sluice::shard::manifest_path_for(&out)).unwrap();

    // …and the reports say what the run was, without it.
    let html_path = dir.path().join("r.html");
    report(&[out.to_str().unwrap(), "--format", "html", "--out", html_path.to_str().unwrap()]).success();
    let html = std::fs::read_to_string(&html_path).unwrap();
    let json_out = report(&[out.to_str().unwrap(), "--format", "json"]).success();
    let json_text = String::from_utf8(json_out.get_output().stdout.clone()).unwrap();
    for text in [&html, &json_text] {
        assert!(!text.contains("s3cret"), "a secret in the report");
    }
    let log_name = log.display().to_string();
    for shown in [
        server.url(),
        log_name.clone(),
        manifest.run_id.clone(),
        env!("CARGO_PKG_VERSION").to_string(),
        "unsharded (shard 0 of 1)".to_string(),
        "Authorization: [redacted]".to_string(),
        format!("<dt>log format</dt><dd>{}</dd>", manifest.format.clone().unwrap()),
        "<span class=\"good\">complete</span>".to_string(),
    ] {
        assert!(html.contains(&shown), "the HTML report lacks {shown}");
    }

    let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["target"], server.url());
    assert_eq!(run["logs"][0]["name"], log_name);
    // An unsharded run's log is not hashed: nothing compares it.
    assert_eq!(run["logs"][0]["sha256"], "");
    assert!(!html.contains("sha256"), "an empty digest is not shown");
    assert_eq!(run["logs"][0]["bytes"], std::fs::metadata(&log).unwrap().len());
    assert_eq!(run["format"], manifest.format.clone().unwrap());
    assert_eq!(run["sluice_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(run["shards"], serde_json::json!({"count": 1, "indexes": [0], "index_from": "unsharded"}));
    assert_eq!(run["complete"], true);
    assert_eq!(run["counts"]["sent"], LOG_LINES);
    assert_eq!(run["rows"], LOG_LINES);
    assert_eq!(run["options"]["header"], serde_json::json!(["Authorization: [redacted]"]));
    assert_eq!(run["options"]["rate"], 500);
    let (started, finished) = (run["started"].as_str().unwrap(), run["finished"].as_str().unwrap());
    assert!(started <= run["first_time"].as_str().unwrap() && run["last_time"].as_str().unwrap() <= finished);
    // The keys the JSON report had are still there, unchanged.
    assert_eq!(json["overview"]["requests"], LOG_LINES);
}

#[test]
fn a_csv_without_a_manifest_still_reports_what_it_tells() {
    let server = mock_with_rules();
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = replay_with_a_secret(&server, dir.path());
    std::fs::remove_file(sluice::shard::manifest_path_for(&out)).unwrap();

    let json_out = report(&[out.to_str().unwrap(), "--format", "json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&json_out.get_output().stdout).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["files"], serde_json::json!([out.display().to_string()]));
    assert!(run["note"].as_str().unwrap().starts_with("no manifest beside it"), "{run}");
    assert!(run.get("target").is_none() && run.get("options").is_none());
    assert_eq!(run["rows"], LOG_LINES);
    assert_eq!(run["first_time"], json["overview"]["first_sent"]);
    assert_eq!(run["last_time"], json["overview"]["last_sent"]);

    let html_out = report(&[out.to_str().unwrap(), "--format", "html"]).success();
    let html = String::from_utf8(html_out.get_output().stdout.clone()).unwrap();
    assert!(html.contains("<dt>manifest</dt><dd><span class=\"bad\">none</span> — no manifest beside it"));
    assert!(html.contains(&format!("{} rows · first send {}", LOG_LINES, run["first_time"].as_str().unwrap())));
    assert!(html.contains("Latency distribution") && !html.contains("s3cret"));
}
