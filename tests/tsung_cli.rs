//! Tsung scenarios as a user runs them: `sluice import tsung` (the files it writes, the config
//! loading from anywhere), `sluice replay --scenario` against a mock server on 127.0.0.1 (what the
//! server received, what the CSV says, the plan's timing), and every kind of bad input (exit 2,
//! naming the element and line or the flag). Each run is bounded in count and time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDateTime;
use sluice_mock::{MockConfig, spawn_in_thread};

mod common;
use common::{csv_rows, path_of};

fn tsung(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tsung").join(name)
}

fn sluice() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sluice").unwrap();
    cmd.timeout(Duration::from_secs(120));
    cmd
}

/// The generated log's lines as JSON objects.
fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// (method, path and query, body) of each request a log line or the server holds, sorted.
type Sent = (String, String, String);

fn sorted(mut v: Vec<Sent>) -> Vec<Sent> {
    v.sort();
    v
}

#[test]
fn import_writes_a_log_and_a_config_that_replays_it_from_any_directory() {
    let out = tempfile::tempdir().unwrap();
    let output = sluice()
        .args(["import", "tsung"])
        .arg(tsung("shop.xml"))
        .arg("--out")
        .arg(out.path().join("imported"))
        .args(["--seed", "7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for words in
        ["phase 1: 2s at 5 users/s", "at most 12 users", "browse 70%", "buy 30%", "GET, POST, PUT", "<clients>"]
    {
        assert!(stdout.contains(words), "the summary says {words:?}:\n{stdout}");
    }
    let (log, config) = (out.path().join("imported/shop.jsonl"), out.path().join("imported/shop.toml"));
    let lines = log_lines(&log);
    assert!(stdout.contains(&format!("{} requests", lines.len())), "{stdout}");
    let toml = std::fs::read_to_string(&config).unwrap();
    for words in
        ["format = \"json\"", "speed = 1", "allow-methods = \"GET,POST,PUT\"", "seed 7", "# Note: ignored <clients>"]
    {
        assert!(toml.contains(words), "the config has {words:?}:\n{toml}");
    }
    // Users are named in start order, and every line carries its session.
    assert_eq!(lines[0]["remote_user"], "u1");
    assert!(lines.iter().all(|l| l["tsung_session"] == "browse" || l["tsung_session"] == "buy"));

    // The config works from another directory: its log is named by absolute path.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = sluice()
        .current_dir(elsewhere.path())
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .args(["--target", "http://127.0.0.1:9", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("would send {} requests", lines.len())), "{stderr}");
    assert!(stderr.contains("logged timing ×1"), "{stderr}");

    // The same seed, the same log; another seed, another.
    let again = tempfile::tempdir().unwrap();
    sluice()
        .args(["import", "tsung"])
        .arg(tsung("shop.xml"))
        .arg("--out")
        .arg(again.path())
        .args(["--seed", "7"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&log).unwrap(), std::fs::read(again.path().join("shop.jsonl")).unwrap());
    sluice()
        .args(["import", "tsung"])
        .arg(tsung("shop.xml"))
        .arg("--out")
        .arg(again.path())
        .args(["--seed", "8"])
        .assert()
        .success();
    assert_ne!(std::fs::read(&log).unwrap(), std::fs::read(again.path().join("shop.jsonl")).unwrap());
}

#[test]
fn replay_scenario_sends_what_the_import_generates_at_its_timing() {
    let server = spawn_in_thread(MockConfig::default()).expect("mock server starts on 127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    // The log an import with the same (default) seed writes: what the run must send.
    sluice().args(["import", "tsung"]).arg(tsung("shop.xml")).arg("--out").arg(dir.path()).assert().success();
    let lines = log_lines(&dir.path().join("shop.jsonl"));
    let csv = dir.path().join("results.csv");
    let speed = 8.0;
    let output = sluice()
        .arg("replay")
        .arg("--scenario")
        .arg(tsung("shop.xml"))
        .args(["--target", &server.url(), "--speed", &speed.to_string(), "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Tsung scenario") && stderr.contains("logged timing ×8"), "{stderr}");

    // The server's end: every generated request, by method, path and body, headers as written.
    let received = server.requests();
    let expected: Vec<Sent> = lines
        .iter()
        .map(|l| {
            let body = l.get("request_body").and_then(|b| b.as_str()).unwrap_or_default();
            (l["method"].as_str().unwrap().into(), l["request_uri"].as_str().unwrap().into(), body.into())
        })
        .collect();
    let got: Vec<Sent> =
        received.iter().map(|r| (r.method.clone(), r.target.clone(), r.body_text().into_owned())).collect();
    assert_eq!(sorted(got), sorted(expected));
    for r in &received {
        match r.method.as_str() {
            "POST" => {
                assert_eq!(r.target, "/cart");
                assert_eq!(r.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
                assert_eq!(r.header("x-shop").as_deref(), Some("sluice"));
                assert_eq!(r.header("cookie").as_deref(), Some("cart=c1; lang=en"));
            }
            "PUT" => assert_eq!(r.header("content-type").as_deref(), Some("application/json")),
            _ => assert!(r.body.is_empty()),
        }
    }
    assert!(received.iter().any(|r| r.method == "POST") && received.iter().any(|r| r.path() == "/products/42"));

    // sluice's end: one row per request, and each scheduled at its logged offset ÷ speed.
    let rows = csv_rows(&std::fs::read(&csv).unwrap());
    assert_eq!(rows.len(), lines.len());
    let time = |row: &HashMap<String, String>, column: &str| {
        NaiveDateTime::parse_from_str(&row[column], "%Y-%m-%d %H:%M:%S%.3f").unwrap().and_utc()
    };
    let first = rows.iter().find(|r| r["seq"] == "0").unwrap();
    for row in &rows {
        assert_eq!(row["status"], "200");
        let logged = (time(row, "log_time") - time(first, "log_time")).as_seconds_f64();
        let planned = (time(row, "scheduled_at") - time(first, "scheduled_at")).as_seconds_f64();
        // Both columns are written to the millisecond.
        assert!((planned - logged / speed).abs() <= 0.0025, "row {}: planned {planned}, logged {logged}", row["seq"]);
        assert!(received.iter().any(|r| r.target == path_of(&row["url"]) && r.method == row["method"]));
    }
    // Each simulated user is a session: its requests numbered in order, one session id per user.
    let mut by_session: HashMap<&str, Vec<u64>> = HashMap::new();
    for row in &rows {
        by_session.entry(row["session"].as_str()).or_default().push(row["session_seq"].parse().unwrap());
    }
    assert!(!by_session.contains_key(""), "every request belongs to its user's session");
    let users: std::collections::HashSet<&str> = lines.iter().map(|l| l["remote_user"].as_str().unwrap()).collect();
    assert_eq!(by_session.len(), users.len());
    for seqs in by_session.values_mut() {
        seqs.sort();
        assert_eq!(*seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }
    // The generated log was a temporary file: gone once the run ended.
    let generated = stderr.split("replaying ").nth(1).and_then(|s| s.split(" (json)").next()).unwrap();
    assert!(generated.contains("sluice-scenario-"), "{stderr}");
    assert!(!Path::new(generated).exists(), "{generated} was removed");
}

#[test]
fn bad_scenarios_and_flags_exit_2_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let not_xml = dir.path().join("not.xml");
    std::fs::write(&not_xml, "this is a log, not XML\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["import".into(), "tsung".into(), tsung("dyn_variable.xml").display().to_string()],
            "dyn_variable.xml:11: <dyn_variable>: not supported",
        ),
        (
            vec!["import".into(), "tsung".into(), tsung("jabber_session.xml").display().to_string()],
            "<session type>: 'ts_jabber' sessions are not HTTP",
        ),
        (
            vec!["import".into(), "tsung".into(), tsung("probabilities.xml").display().to_string()],
            "probabilities.xml:7: <sessions>: the session probabilities add up to 90, not 100",
        ),
        (vec!["import".into(), "tsung".into(), not_xml.display().to_string()], "not.xml:1: not well-formed XML"),
        (
            vec![
                "replay".into(),
                "--scenario".into(),
                tsung("match.xml").display().to_string(),
                "--target".into(),
                "http://127.0.0.1:9".into(),
            ],
            "match.xml:11: <match>: not supported",
        ),
        (
            vec![
                "replay".into(),
                "--scenario".into(),
                tsung("shop.xml").display().to_string(),
                "--target".into(),
                "http://127.0.0.1:9".into(),
                "--rate".into(),
                "10".into(),
                "--format".into(),
                "json".into(),
            ],
            "--scenario: cannot be combined with --rate, --format",
        ),
        (
            vec![
                "replay".into(),
                "access.log".into(),
                "--scenario".into(),
                tsung("shop.xml").display().to_string(),
                "--target".into(),
                "mock".into(),
            ],
            "--scenario: cannot be combined with log FILES",
        ),
    ];
    for (args, message) in cases {
        let output = sluice().current_dir(dir.path()).args(&args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in:\n{stderr}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().path() == not_xml), "nothing was written");
}
