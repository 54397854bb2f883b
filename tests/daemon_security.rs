//! The daemon against someone who can reach its port (issue 12), where that needs a daemon
//! process of its own: secrets kept out of its log and across a restart, and its memory and file
//! descriptors under hostile uploads, requests and streams. Each test drives a real daemon
//! process on 127.0.0.1:0 and looks at both ends: what the API, the files, the log and the mock
//! server saw. Tokens, caps and hostile input that need no process are in `daemon_api.rs`.
//! Every wait is bounded.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_mock::MockConfig;

mod common;
use common::{csv_rows, fixture};
mod daemon_support;
use daemon_support::{Daemon, Http, TOKEN, expect, mock};

const BEARER_SECRET: &str = "Bearer staging-bearer-s3cret-9f8e7d";
const STAGING_KEY: &str = "staging-key-s3cret-1a2b3c";
const OTHER_SECRET: &str = "not-marked-public-s3cret-4d5e";

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn secret_headers() -> Value {
    json!({"Authorization": BEARER_SECRET, "X-Staging-Key": STAGING_KEY, "X-Other": OTHER_SECRET, "X-Test": "1"})
}

#[test]
fn secret_header_values_reach_the_target_but_no_answer_file_or_log() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    // A line no parser reads, so the summary has a bad-line example naming the log.
    let log = state.path().join("mixed.log");
    let mut text = std::fs::read(fixture("unique-targets.log")).unwrap();
    text.extend_from_slice(b"this is not a log line\n");
    std::fs::write(&log, text).unwrap();
    assert_eq!(http.upload("mixed.log", &log).status, 201);

    let run = json!({
        "logs": ["mixed.log"], "format": "nginx", "target": server.url(), "rate": 400, "allow_methods": ["all"],
        "headers": secret_headers(), "redact_headers": ["X-Staging-Key"], "public_headers": ["X-Test"]
    });
    // A scheduled twin shows where secrets wait: a file only the daemon's user can read.
    let mut later = run.clone();
    later["start_at"] = json!((chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339());
    let created = http.post_json("/v1/runs", &run);
    assert_eq!(created.status, 201, "{}", created.text());
    let scheduled = http.submit(later);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let scheduled_id = scheduled["id"].as_str().unwrap().to_string();
    let secrets = state.path().join("runs").join(&scheduled_id).join("secrets.json");
    assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);

    let events = http.events(&id, Duration::from_secs(60));
    assert_eq!(events.last().unwrap().1["state"], "completed", "{:#}", events.last().unwrap().1);

    // The target got every header, with its real value.
    let received = server.requests();
    assert_eq!(received.len(), 200);
    for r in &received {
        assert_eq!(r.header("authorization").as_deref(), Some(BEARER_SECRET));
        assert_eq!(r.header("x-staging-key").as_deref(), Some(STAGING_KEY));
        assert_eq!(r.header("x-other").as_deref(), Some(OTHER_SECRET));
        assert_eq!(r.header("x-test").as_deref(), Some("1"));
    }

    // Nothing anyone can read back shows them.
    let shown = http.run(&id);
    assert_eq!(shown["options"]["headers"]["Authorization"], "[redacted]");
    assert_eq!(shown["options"]["headers"]["X-Staging-Key"], "[redacted]");
    assert_eq!(shown["options"]["headers"]["X-Other"], "[redacted]", "not marked public: secret");
    assert_eq!(shown["options"]["headers"]["X-Test"], "1", "marked public: shown");
    let mut answers: Vec<(String, Vec<u8>)> = vec![
        ("POST /v1/runs".into(), created.body.clone()),
        ("scheduled".into(), scheduled.to_string().into_bytes()),
        ("events".into(), events.iter().map(|(_, v)| v.to_string()).collect::<String>().into_bytes()),
    ];
    for path in [
        "/v1/runs".to_string(),
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{scheduled_id}"),
        format!("/v1/runs/{id}/summary.json"),
        format!("/v1/runs/{id}/results.csv"),
        "/metrics".into(),
    ] {
        let reply = http.get(&path);
        assert_eq!(reply.status, 200, "{path}");
        answers.push((path, reply.body));
    }
    let state_path = state.path().display().to_string();
    for (what, body) in &answers {
        for secret in [BEARER_SECRET, STAGING_KEY, OTHER_SECRET] {
            assert!(!contains(body, secret), "{what} shows a secret");
        }
        assert!(!contains(body, &state_path), "{what} shows the daemon's paths: {}", String::from_utf8_lossy(body));
    }
    let summary = http.get(&format!("/v1/runs/{id}/summary.json")).json();
    assert_eq!(summary["csv"], "results.csv");
    let example = summary["log"]["bad_line_examples"][0].as_str().unwrap();
    assert!(example.starts_with("mixed.log:201:"), "the log by its upload name: {example}");
    assert_eq!(csv_rows(&http.get(&format!("/v1/runs/{id}/results.csv")).body).len(), 200);

    // On disk, only the waiting run's secrets file holds them; the finished run's is gone.
    assert!(!state.path().join("runs").join(&id).join("secrets.json").exists());
    for (path, bytes) in files_under(state.path()) {
        if path == secrets {
            assert!(contains(&bytes, BEARER_SECRET) && contains(&bytes, OTHER_SECRET));
            assert!(!contains(&bytes, "\"X-Test\""), "public headers stay in run.json");
            continue;
        }
        for secret in [BEARER_SECRET, STAGING_KEY, OTHER_SECRET] {
            assert!(!contains(&bytes, secret), "{} holds a secret", path.display());
        }
    }
    // A wrong token is refused without being repeated, in the answer or the log.
    let wrong = "wrong-token-s3cret-0123456789";
    expect(daemon.http(Some(wrong)).get("/v1/runs"), 401, "does not match");
    // Stopping the waiting run forgets its secrets too.
    assert_eq!(http.post_raw(&format!("/v1/runs/{scheduled_id}/stop"), "").status, 202);
    assert!(!secrets.exists(), "a stopped run's secrets are removed");
    let log_text = daemon.stderr_text();
    assert!(![BEARER_SECRET, STAGING_KEY, OTHER_SECRET, wrong].iter().any(|s| log_text.contains(s)), "{log_text}");
}

#[test]
fn a_restarted_daemon_fails_a_queued_run_whose_secrets_it_lost_instead_of_sending_without_them() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    http.upload("u.log", &fixture("unique-targets.log"));
    let soon = chrono::Utc::now() + chrono::TimeDelta::seconds(4);
    let run = |start_at: chrono::DateTime<chrono::Utc>| {
        json!({"logs": ["u.log"], "target": server.url(), "rate": 400, "allow_methods": ["all"], "headers": secret_headers(),
               "public_headers": ["X-Test"], "start_at": start_at.to_rfc3339()})
    };
    let lost = http.submit(run(soon))["id"].as_str().unwrap().to_string();
    let kept = http.submit(run(soon))["id"].as_str().unwrap().to_string();
    drop(http);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).code(), Some(0));
    std::fs::remove_file(state.path().join("runs").join(&lost).join("secrets.json")).unwrap();

    let daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    let failed = http.run(&lost);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("Authorization") && message.contains("never sent without them"), "{message}");
    assert!(daemon.stderr_text().contains("secret header values were lost"), "{}", daemon.stderr_text());

    let done = http.wait_finished(&kept, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done:#}");
    let received = server.requests();
    assert_eq!(received.len(), 200, "only the run that kept its secrets was sent");
    assert!(received.iter().all(|r| r.header("authorization").as_deref() == Some(BEARER_SECRET)));
    assert!(received.iter().all(|r| r.header("x-other").as_deref() == Some(OTHER_SECRET)));
}

#[test]
fn a_runaway_queue_capacity_is_refused_before_the_daemon_allocates_it() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    // Issue 12: this grew the daemon by 300-450 MB/s, and `stop` could not end it.
    let before = daemon.memory_kib("VmHWM");
    let body = json!({"logs": ["u.log"], "target": server.url(), "rate": 20, "queue_capacity": 1_000_000_000_000u64});
    expect(http.post_json("/v1/runs", &body), 422, "queue_capacity");
    assert!(daemon.memory_kib("VmHWM") < before + 20 * 1024, "refused before anything was allocated");
    assert_eq!(http.get("/v1/runs").json(), json!([]), "nothing was recorded");
    assert_eq!(server.count(), 0);
}

/// `n` gzip members of `member` bytes each of zeros, concatenated: what `gzip` of that many
/// zeros would inflate to, built without compressing a gigabyte in the test.
fn zeros_gzip(member: usize, n: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; member]).unwrap();
    gz.finish().unwrap().repeat(n)
}

#[test]
fn a_gzip_bomb_is_refused_while_it_streams_in_with_the_daemons_memory_flat() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    assert_eq!(http.upload("u.log", &fixture("unique-targets.log")).status, 201);
    // Issue 12: about 1 MB that inflates to 1 GiB of zeros took the daemon to 2.7 GB.
    let bomb = zeros_gzip(16 << 20, 64);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let before = daemon.memory_kib("VmHWM");
    expect(http.put("/v1/logs/u.log", bomb), 413, "longer than 1024 KiB");
    let peak = daemon.memory_kib("VmHWM");
    eprintln!("daemon VmHWM: {before} KiB before the 1 GiB gzip bomb, {peak} KiB after");
    assert!(peak < 100 * 1024, "peak resident memory {peak} KiB");
    // The refused upload did not touch the log stored under that name.
    let stored = std::fs::read(state.path().join("logs").join("u.log")).unwrap();
    assert_eq!(stored, std::fs::read(fixture("unique-targets.log")).unwrap());
    let names: Vec<String> = std::fs::read_dir(state.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["u.log"], "nothing left behind");
}

#[test]
fn two_hundred_event_streams_are_served_and_their_connections_released() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    http.upload("u.log", &fixture("unique-targets.log"));
    let baseline = daemon.open_fds();
    let id = http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 20, "duration": "3s"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/v1/runs/{id}/events", daemon.url);
    let ends = http.runtime.block_on(async {
        let client = sluice::send::tls::client_builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
        let streams = (0..200).map(|_| {
            let request = client.get(&url).bearer_auth(TOKEN);
            async move {
                let mut response = request.send().await.expect("the daemon answers every stream");
                assert_eq!(response.status(), 200);
                let mut text = String::new();
                while let Some(chunk) = response.chunk().await.unwrap() {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
                text.contains("event: end")
            }
        });
        tokio::time::timeout(Duration::from_secs(120), futures_util::future::join_all(streams))
            .await
            .expect("every stream ends after the run")
    });
    assert_eq!(ends.iter().filter(|e| **e).count(), 200, "every client saw the end");
    assert_eq!(http.run(&id)["state"], "completed");
    // The daemon let go of the 200 connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.open_fds() > baseline + 10 {
        assert!(Instant::now() < deadline, "{} fds open, {baseline} before", daemon.open_fds());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(Http::new(&daemon.url, None).get("/healthz").status, 200);
}
