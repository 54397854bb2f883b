//! `sluice daemon` as a process, where the test needs one: restarts, SIGTERM and SIGKILL as real
//! signals to a real daemon on 127.0.0.1:0, the command line (`sluice daemon`, `sluice runs`,
//! `sluice replay --metrics-listen`), with the mock server as the target and assertions on both
//! ends of the wire. The API itself is tested in-process in `daemon_api.rs`. Every wait here is
//! bounded in time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_mock::MockConfig;

mod common;
use common::{csv_rows, fixture, path_of};
mod daemon_support;
use daemon_support::{Daemon, Http, TOKEN, count, mock, parse_prometheus, sum_of};

// ---- the tests ---------------------------------------------------------------------------------

#[test]
fn a_restarted_daemon_lists_every_run_with_its_final_state() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path(), None, &["--max-concurrent-runs", "1"]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    http.upload("garbage.log", &{
        let p = state.path().join("garbage");
        std::fs::write(&p, "this is not a log line\n".repeat(5)).unwrap();
        p
    });
    let target = server.url();
    let completed = http.submit(json!({"logs": ["u.log"], "target": target, "rate": 500}));
    let completed_id = completed["id"].as_str().unwrap().to_string();
    http.wait_finished(&completed_id, Duration::from_secs(60));
    let failed = http.submit(json!({"logs": ["garbage.log"], "format": "nginx", "target": target, "rate": 10}));
    let failed_id = failed["id"].as_str().unwrap().to_string();
    let failed_run = http.wait_finished(&failed_id, Duration::from_secs(60));
    assert_eq!(failed_run["state"], "failed");
    assert!(failed_run["message"].as_str().unwrap().contains("no replayable request"), "{failed_run:#}");
    let long = http.submit(json!({"logs": ["u.log"], "target": target, "rate": 20, "duration": "60s"}));
    let long_id = long["id"].as_str().unwrap().to_string();
    let queued = http.submit(json!({"logs": ["u.log"], "target": target, "rate": 20}));
    let queued_id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(queued["state"], "queued");
    assert_eq!(http.post_raw(&format!("/v1/runs/{queued_id}/stop"), "").json()["state"], "stopped");
    http.wait_for(&long_id, Duration::from_secs(30), |r| r["progress"]["sent"].as_u64().unwrap_or(0) >= 5);
    http.post_raw(&format!("/v1/runs/{long_id}/stop"), "");
    http.wait_finished(&long_id, Duration::from_secs(30));

    let before = http.get("/v1/runs").json();
    let csv_before = http.get(&format!("/v1/runs/{completed_id}/results.csv")).body;
    drop(http);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).code(), Some(0));

    let daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    let after = http.get("/v1/runs").json();
    let states = |list: &Value| -> Vec<(String, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r["state"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(
        states(&after),
        vec![
            (queued_id.clone(), "stopped".into()),
            (long_id.clone(), "stopped".into()),
            (failed_id.clone(), "failed".into()),
            (completed_id.clone(), "completed".into()),
        ]
    );
    assert_eq!(states(&before), states(&after));
    for (b, a) in before.as_array().unwrap().iter().zip(after.as_array().unwrap()) {
        assert_eq!(b["summary"], a["summary"], "summaries survive");
        assert_eq!(b["options"], a["options"], "options survive");
        assert_eq!(b["finished_at"], a["finished_at"]);
    }
    assert_eq!(http.get(&format!("/v1/runs/{completed_id}/results.csv")).body, csv_before);
    assert_eq!(http.get(&format!("/v1/runs/{failed_id}/results.csv")).status, 404);
    assert_eq!(http.get("/v1/logs").json().as_array().unwrap().len(), 2, "uploaded logs stay");
}

#[test]
fn sigterm_refuses_new_runs_drains_the_running_one_and_exits_0() {
    // Each answer takes 1.5 s, so the drain after SIGTERM is long enough to knock on the door.
    let server = mock(MockConfig::default().with_latency("1500ms".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let body = json!({"logs": ["u.log"], "target": server.url(), "rate": 20, "duration": "60s"});
    let id = http.submit(body.clone())["id"].as_str().unwrap().to_string();
    http.wait_for(&id, Duration::from_secs(30), |r| r["progress"]["completed"].as_u64().unwrap_or(0) >= 10);

    daemon.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let refused = http.runtime.block_on(async {
        http.client
            .post(format!("{}/v1/runs", daemon.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
    });
    // The newest request in flight needs about 1.5 s more, so the daemon is still draining.
    let reply = refused.expect("the daemon still answers while it drains");
    assert_eq!(reply.status(), 503, "no run is accepted once SIGTERM arrived");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr_text());
    let log = daemon.stderr_text();
    assert!(log.contains("SIGTERM") && log.contains("drained"), "{log}");

    let daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    let runs = http.get("/v1/runs").json();
    assert_eq!(runs.as_array().unwrap().len(), 1, "the refused submission left no run");
    let run = http.run(&id);
    assert_eq!(run["state"], "interrupted", "{run:#}");
    assert!(run["message"].as_str().unwrap().contains("not be resumed"));
    let summary = &run["summary"];
    assert_eq!(summary["interrupted"], true);
    let rows = csv_rows(&http.get(&format!("/v1/runs/{id}/results.csv")).body);
    assert_eq!(rows.len() as u64, count(&summary["requests_sent"]), "the CSV was flushed to the last row");
    assert_eq!(server.count(), rows.len() as u64, "drained: everything sent was answered and recorded");
}

#[test]
fn a_killed_daemon_leaves_its_run_interrupted_with_a_valid_csv_and_never_resumes_it() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let id = http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 100, "duration": "60s"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Past two seconds, at least one flush of the CSV has happened.
    http.wait_for(&id, Duration::from_secs(30), |r| r["progress"]["elapsed_seconds"].as_f64().unwrap_or(0.0) > 2.2);
    drop(http);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    // Let the mock read whatever was already on the wire when the process died.
    std::thread::sleep(Duration::from_millis(300));
    let sent_before_restart = server.count();

    let daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    let run = http.run(&id);
    assert_eq!(run["state"], "interrupted", "{run:#}");
    let message = run["message"].as_str().unwrap();
    assert!(message.contains("not resumed"), "{message}");
    assert!(daemon.stderr_text().contains("interrupted"));

    let csv = http.get(&format!("/v1/runs/{id}/results.csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.body.ends_with(b"\n"), "no half row at the end");
    let rows = csv_rows(&csv.body);
    assert!(rows.len() >= 100, "the rows flushed before the kill are there: {}", rows.len());
    assert!(message.contains(&format!("{} requests", rows.len())), "{message}");
    let received: std::collections::HashSet<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    assert!(rows.iter().all(|r| received.contains(&path_of(&r["url"]))), "every row was really sent");
    assert_eq!(http.get(&format!("/v1/runs/{id}/summary.json")).status, 404, "a killed run has no summary");

    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.count(), sent_before_restart, "the new daemon sent nothing: the run is not resumed");
    assert_eq!(http.run(&id)["state"], "interrupted");
}

#[test]
fn a_non_loopback_listener_without_a_token_is_refused_before_binding() {
    let state = tempfile::tempdir().unwrap();
    // 192.0.2.1 (TEST-NET-1) is never bound: the check comes first, and if it did not, binding
    // an address this machine does not have would fail anyway.
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["daemon", "--listen", "192.0.2.1:7878", "--state-dir"])
        .arg(state.path())
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("SLUICE_TOKEN"), "{stderr}");
    // And there is no flag to pass a token on the command line.
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["daemon", "--token", TOKEN, "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let _first = Daemon::start(state.path(), None, &[]);
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["daemon", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("another sluice daemon"));
}

#[test]
fn sluice_runs_submits_follows_lists_and_downloads_with_the_token_from_the_environment() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let request = state.path().join("run.json");
    std::fs::write(&request, json!({"target": server.url(), "rate": 400, "allow_methods": ["all"]}).to_string())
        .unwrap();
    let sluice = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("runs")
            .args(args)
            .args(["--daemon", &daemon.url])
            .env("SLUICE_TOKEN", TOKEN)
            .output()
            .unwrap()
    };

    let submit = sluice(&[
        "submit",
        "--upload",
        fixture("unique-targets.log").to_str().unwrap(),
        "--follow",
        request.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&submit.stderr);
    assert_eq!(submit.status.code(), Some(0), "{stderr}");
    let id = String::from_utf8(submit.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 19, "stdout is the run id: {id:?}");
    assert!(stderr.contains("uploaded unique-targets.log"), "{stderr}");
    assert_eq!(server.count(), 200);
    // Progress by status class and no-answer, a line per change, and the final status mix last.
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&format!("sluice: run {id} "))).collect();
    assert!(lines.windows(2).all(|w| w[0] != w[1]), "no line repeated: {stderr}");
    let mut mix: BTreeMap<u16, u64> = BTreeMap::new();
    for r in server.requests() {
        *mix.entry(r.status().unwrap()).or_default() += 1;
    }
    let mix = mix.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ");
    let last = lines.last().unwrap();
    assert!(last.contains(" completed: 200 sent") && last.contains(&format!("statuses: {mix};")), "{stderr}");
    assert!(last.contains(" no answer 0"), "{stderr}");
    assert!(lines.iter().filter(|l| l.contains(" sent, ")).all(|l| l.contains(" no answer ")), "{stderr}");
    assert_eq!(lines.iter().filter(|l| l.ends_with(" running")).count(), 1, "'running' said once: {stderr}");

    let list = String::from_utf8(sluice(&["list"]).stdout).unwrap();
    assert!(
        list.lines().nth(1).is_some_and(|l| l.starts_with(&id) && l.contains("completed") && l.contains(" 200 ")),
        "{list}"
    );
    let show: Value = serde_json::from_slice(&sluice(&["show", &id]).stdout).unwrap();
    assert_eq!(show["state"], "completed");
    assert_eq!(show["options"]["logs"], json!(["unique-targets.log"]), "the upload filled in `logs`");

    let out = state.path().join("r.csv");
    assert_eq!(sluice(&["results", &id, "--out", out.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(csv_rows(&std::fs::read(&out).unwrap()).len(), 200);
    let summary: Value = serde_json::from_slice(&sluice(&["results", &id, "--summary"]).stdout).unwrap();
    assert_eq!(count(&summary["requests_sent"]), 200);
    let workbook = state.path().join("r.xlsx");
    assert_eq!(sluice(&["results", &id, "--xlsx", "--out", workbook.to_str().unwrap()]).status.code(), Some(0));
    assert!(std::fs::read(&workbook).unwrap().starts_with(b"PK\x03\x04"), "a zip: the workbook");
    let report = String::from_utf8(sluice(&["results", &id, "--report"]).stdout).unwrap();
    assert!(report.starts_with("<!DOCTYPE html>") && report.contains("unique-targets.log"), "the run's HTML report");

    let stop = sluice(&["stop", &id]);
    assert_eq!(stop.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stop.stderr).contains("409"), "the daemon's answer is shown");
    let no_token = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["runs", "delete", &id, "--daemon", &daemon.url])
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("set SLUICE_TOKEN"));
    assert_eq!(sluice(&["delete", &id]).status.code(), Some(0));
    assert_eq!(sluice(&["show", &id]).status.code(), Some(2));
}

#[test]
fn replay_serves_metrics_while_the_run_lasts() {
    let server = mock(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("replay")
        .arg(fixture("unique-targets.log"))
        .args(["--target", &server.url(), "--rate", "50", "--duration", "4s", "--progress", "never"])
        .args(["--metrics-listen", "127.0.0.1:0", "--out"])
        .arg(dir.path().join("r.csv"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the replay announces its metrics address");
        if let Some(rest) = line.split("metrics on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");
    std::thread::sleep(Duration::from_millis(1500));
    let base = url.trim_end_matches("/metrics");
    let reply = Http::new(base, None).get("/metrics");
    assert_eq!(reply.status, 200);
    let m = parse_prometheus(&reply.text());
    assert!(sum_of(&m, "sluice_requests_sent_total") > 0.0, "{}", reply.text());
    assert_eq!(m["sluice_target_rate"], 50.0);
    assert!(!m.keys().any(|k| k.starts_with("sluice_runs")), "one CLI run has no run states");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the replay ends");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
