//! A fleet of daemons: `sluice runs submit --daemon A --daemon B …` runs one plan as two shards
//! with a common start, `runs watch --fleet` follows both, and `runs results --fleet` fetches and
//! merges them — checked against what the target received and against the plan.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_mock::MockConfig;

mod common;
mod daemon_support;
use common::{csv_rows, fixture};
use daemon_support::{Daemon, TOKEN, mock};

/// `sluice runs ARGS` as a user runs it, with the token in the environment.
fn runs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("runs")
        .args(args)
        .env("SLUICE_TOKEN", TOKEN)
        .env_remove("SLUICE_DAEMON")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fleet file `runs submit` printed: `(daemon, run id, shard)` per line.
fn members(fleet: &str) -> Vec<(String, String, String)> {
    fleet
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn write_request(dir: &Path, request: serde_json::Value) -> String {
    let path = dir.join("run.json");
    std::fs::write(&path, request.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_run_on_two_daemons_is_the_plan_once_merged_in_seq_order() {
    let server = mock(MockConfig::default());
    let (state_a, state_b, work) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(state_a.path(), Some(TOKEN), &[]);
    let b = Daemon::start(state_b.path(), Some(TOKEN), &[]);
    let rate = 100.0;
    let request = write_request(
        work.path(),
        json!({"target": server.url(), "rate": rate, "duration": "3s", "allow_methods": ["all"],
               "seq_header": "x-sluice-seq"}),
    );
    let log = fixture("unique-targets.log");
    let submit = runs(&[
        "submit",
        "--daemon",
        &a.url,
        "--daemon",
        &b.url,
        "--upload",
        log.to_str().unwrap(),
        "--start-in",
        "3s",
        "--follow",
        &request,
    ]);
    let stderr = text(&submit.stderr);
    assert_eq!(submit.status.code(), Some(0), "{stderr}");
    let fleet = text(&submit.stdout);
    let shards = members(&fleet);
    assert_eq!(shards.len(), 2, "{fleet}");
    assert_eq!((shards[0].0.as_str(), shards[0].2.as_str()), (a.url.as_str(), "0/2"), "{fleet}");
    assert_eq!((shards[1].0.as_str(), shards[1].2.as_str()), (b.url.as_str(), "1/2"), "{fleet}");
    for (_, id, shard) in &shards {
        assert!(stderr.contains(&format!("sluice: shard {shard}: run {id} completed: ")), "{stderr}");
    }
    assert_eq!(stderr.matches("uploaded unique-targets.log").count(), 2, "to each daemon: {stderr}");
    let start_at: DateTime<Utc> =
        fleet.split("starting at ").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();

    let fleet_file = work.path().join("fleet.txt");
    std::fs::write(&fleet_file, &fleet).unwrap();
    let merged = work.path().join("merged.csv");
    let results = runs(&["results", "--fleet", fleet_file.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert_eq!(results.status.code(), Some(0), "{}", text(&results.stderr));
    assert!(text(&results.stdout).contains("2 shards of run "), "{}", text(&results.stdout));
    let manifest = std::fs::read_to_string(work.path().join("merged-shards/shard-1/results.manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["logs"][0]["name"], "unique-targets.log", "by name, not the daemon's path: {manifest}");
    assert_eq!((manifest["shard"]["index"].as_u64(), manifest["complete"].as_bool()), (Some(1), Some(true)));

    // The merged CSV is the plan: every seq once, in order, request n due at start_at + n/R.
    let rows = csv_rows(&std::fs::read(&merged).unwrap());
    let planned = 3.0 * rate;
    assert!((rows.len() as f64 - planned).abs() <= 1.0, "{} rows for {planned} planned", rows.len());
    // Every row answered, but a request due in the run's last moments may miss its end on a
    // loaded machine (its row says not_sent): at most one per shard.
    let not_sent = rows.iter().filter(|r| r["error"] == "not_sent").count();
    assert!(not_sent <= 2, "{not_sent} not sent");
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row["seq"], n.to_string());
        assert!(row["error"].is_empty() || row["error"] == "not_sent", "row {n}: {row:?}");
        let at =
            chrono::NaiveDateTime::parse_from_str(&row["scheduled_at"], "%Y-%m-%d %H:%M:%S%.3f").unwrap().and_utc();
        let due = start_at + chrono::Duration::microseconds((n as f64 / rate * 1e6) as i64);
        assert!((at - due).num_milliseconds().abs() <= 1, "row {n} scheduled {at}, due {due}");
    }
    // And the target saw each request once, the one the CSV says by its seq, from its shard.
    let received = server.requests();
    let sent: BTreeSet<u64> =
        rows.iter().filter(|r| r["error"].is_empty()).map(|r| r["seq"].parse().unwrap()).collect();
    assert_eq!(received.len(), sent.len());
    let seqs: BTreeSet<u64> =
        received.iter().map(|r| r.header("x-sluice-seq").expect("seq header").parse().unwrap()).collect();
    assert_eq!(seqs, sent, "each sent request once, the one its row names");
    // Each daemon sent its own half: the shards' CSVs hold the even and the odd seqs.
    for (index, parity) in [(0, 0), (1, 1)] {
        let shard =
            csv_rows(&std::fs::read(work.path().join(format!("merged-shards/shard-{index}/results.csv"))).unwrap());
        assert!(shard.iter().all(|r| r["seq"].parse::<u64>().unwrap() % 2 == parity), "shard {index}");
        assert!(shard.len().abs_diff(rows.len() / 2) <= 1, "shard {index}: {} rows", shard.len());
    }
}

#[test]
fn a_fleet_with_a_stopped_shard_is_refused_unless_partial_and_a_refused_shard_stops_the_others() {
    let server = mock(MockConfig::default());
    let (state_a, state_b, work) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Daemon::start(state_a.path(), Some(TOKEN), &[]);
    let b = Daemon::start(state_b.path(), Some(TOKEN), &["--max-rate", "30"]);
    let log = fixture("unique-targets.log");
    let log = log.to_str().unwrap();

    // 100/s over two shards is 50/s on B, over its cap of 30: B refuses, and A's shard is stopped.
    let request = write_request(work.path(), json!({"target": server.url(), "rate": 100, "duration": "2s"}));
    let refused = runs(&["submit", "--daemon", &a.url, "--daemon", &b.url, "--upload", log, &request]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shard 1/2 on ") && stderr.contains("50 per shard of 2"), "{stderr}");
    let on_a = a.http(Some(TOKEN)).get("/v1/runs").json();
    assert_eq!(on_a[0]["state"], "stopped", "{on_a}");
    assert!(text(&refused.stdout).is_empty(), "no fleet printed");
    // A request that names its own shard is refused before anything is sent.
    let sharded = write_request(
        work.path(),
        json!({"target": server.url(), "rate": 10, "shard": "0/2", "logs": ["unique-targets.log"]}),
    );
    let named = runs(&["submit", "--daemon", &a.url, "--daemon", &b.url, &sharded]);
    assert_eq!(named.status.code(), Some(2));
    assert!(text(&named.stderr).contains("`shard` is given"), "{}", text(&named.stderr));

    // 40/s is 20/s per shard: accepted (the log is on both daemons already). Shard 1 is stopped
    // part-way; shard 0 runs to its end.
    let request = write_request(
        work.path(),
        json!({"target": server.url(), "rate": 40, "duration": "4s", "logs": ["unique-targets.log"]}),
    );
    let submit = runs(&["submit", "--daemon", &a.url, "--daemon", &b.url, "--start-in", "2s", &request]);
    assert_eq!(submit.status.code(), Some(0), "{}", text(&submit.stderr));
    let fleet = text(&submit.stdout);
    let fleet_file = work.path().join("fleet.txt");
    std::fs::write(&fleet_file, &fleet).unwrap();
    let fleet_file = fleet_file.to_str().unwrap();
    let stopped_id = members(&fleet)[1].1.clone();
    let on_b = b.http(Some(TOKEN));
    on_b.wait_for(&stopped_id, Duration::from_secs(30), |run| run["progress"]["sent"].as_u64().unwrap_or(0) >= 10);
    assert_eq!(on_b.post_raw(&format!("/v1/runs/{stopped_id}/stop"), "").status, 202, "accepted: it drains");
    let watched = runs(&["watch", "--fleet", fleet_file]);
    assert_eq!(watched.status.code(), Some(130), "the worst shard was stopped: {}", text(&watched.stderr));

    let merged = work.path().join("merged.csv");
    let out = merged.to_str().unwrap();
    let whole = runs(&["results", "--fleet", fleet_file, "--out", out]);
    let stderr = text(&whole.stderr);
    assert_eq!(whole.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("shard 1 of 2 is incomplete (interrupted)") && stderr.contains("--allow-partial"),
        "{stderr}"
    );
    assert!(!merged.exists(), "nothing merged");
    let partial = runs(&["results", "--fleet", fleet_file, "--out", out, "--allow-partial"]);
    assert_eq!(partial.status.code(), Some(0), "{}", text(&partial.stderr));
    assert!(text(&partial.stdout).contains("1 of 2 shards"), "{}", text(&partial.stdout));
    let rows = csv_rows(&std::fs::read(&merged).unwrap());
    let sent = rows.iter().filter(|r| r["error"] != "not_sent").count() as u64;
    assert_eq!(sent, server.count(), "every request the target got is a row");
}

#[test]
fn fleet_commands_refuse_what_is_not_a_fleet() {
    let work = tempfile::tempdir().unwrap();
    let fleet = work.path().join("fleet.txt");
    std::fs::write(&fleet, "http://127.0.0.1:9 20261129-000000-000 0/2\n").unwrap();
    let fleet = fleet.to_str().unwrap();
    for (args, words) in [
        (vec!["watch", "--fleet", fleet, "--daemon", "http://127.0.0.1:9"], "drop --daemon"),
        (vec!["show", "x", "--daemon", "http://127.0.0.1:9", "--daemon", "http://127.0.0.1:10"], "--fleet FILE"),
        (vec!["results", "--fleet", fleet], "--out"),
        (
            vec!["submit", "--daemon", "http://127.0.0.1:9", "--daemon", "http://127.0.0.1:9/", "run.json"],
            "given twice",
        ),
    ] {
        let out = runs(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(words), "{args:?}: {}", text(&out.stderr));
    }
    // A fleet whose daemon is not there: the shard is named, nothing merged.
    let merged = work.path().join("m.csv");
    let out = runs(&["results", "--fleet", fleet, "--out", merged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("shard 0/2 (run 20261129-000000-000 on http://127.0.0.1:9)"),
        "{}",
        text(&out.stderr)
    );
}
