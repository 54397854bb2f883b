//! The daemon's HTTP API, served in this process: `sluice::daemon::serve` on 127.0.0.1:0 with a
//! temporary state directory, the mock server as the target, and assertions on both ends of the
//! wire — what the mock received, and what the API, the CSV, the files and `/metrics` say. What
//! needs a daemon process of its own (signals, restarts, SIGKILL, its memory and descriptors)
//! is in `daemon.rs` and `daemon_security.rs`. Every wait here is bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_mock::MockConfig;

mod common;
use common::{csv_rows, fixture, path_of};
mod daemon_support;
use daemon_support::{InProcess, TOKEN, count, expect, mock, parse_prometheus, sum_of};

#[test]
fn a_run_submitted_over_the_api_replays_the_log_and_its_csv_matches_what_the_mock_received() {
    let server = mock(MockConfig::default().with_seed(7).with_statuses("200:80,404:10,500:10".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    assert_eq!(http.get("/healthz").status, 200);

    let upload = http.upload("unique-targets.log", &fixture("unique-targets.log"));
    assert_eq!(upload.status, 201, "{}", upload.text());
    let logs = http.get("/v1/logs").json();
    assert_eq!(logs[0]["name"], "unique-targets.log");
    assert_eq!(count(&logs[0]["bytes"]), std::fs::metadata(fixture("unique-targets.log")).unwrap().len());

    let created = http.submit(json!({
        "logs": ["unique-targets.log"], "target": server.url(), "rate": 200, "allow_methods": ["all"],
        "headers": {"X-Test": "1"}, "public_headers": ["X-Test"]
    }));
    let id = created["id"].as_str().unwrap().to_string();
    assert!(["queued", "running"].contains(&created["state"].as_str().unwrap()), "{created}");

    // Events: progress snapshots while it runs, then one `end` with the final state.
    let events = http.events(&id, Duration::from_secs(60));
    let (last_event, last) = events.last().expect("at least the end event");
    assert_eq!(last_event, "end");
    assert_eq!(last["state"], "completed", "{last:#}");
    assert!(events[..events.len() - 1].iter().all(|(e, _)| e == "progress"));
    assert!(events.len() >= 2, "the run lasts about a second, so there was progress before the end");

    let run = http.run(&id);
    assert_eq!(run["state"], "completed");
    assert_eq!(run["options"]["headers"]["X-Test"], "1", "the options are shown as submitted (a public header)");
    let summary = &run["summary"];
    assert_eq!(count(&summary["requests_sent"]), 200);
    assert_eq!(count(&run["progress"]["sent"]), 200);
    let classes = &run["progress"]["classes"];
    let answered: u64 = ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().map(|c| count(&classes[c])).sum();
    assert_eq!(answered, count(&run["progress"]["completed"]), "status classes add up to the answered: {classes}");
    assert_eq!(http.get(&format!("/v1/runs/{id}/summary.json")).json()["requests_sent"], summary["requests_sent"]);

    // The CSV, request by request, against what the mock received and answered.
    let csv = http.get(&format!("/v1/runs/{id}/results.csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.content_type().starts_with("text/csv"));
    let rows = csv_rows(&csv.body);
    let received = server.requests();
    assert_eq!((rows.len(), received.len()), (200, 200));
    assert!(received.iter().all(|r| r.header("x-test").as_deref() == Some("1")));
    let answered: HashMap<String, u16> = received.iter().map(|r| (r.target.clone(), r.status().unwrap())).collect();
    let mut statuses = BTreeMap::new();
    for row in &rows {
        let target = path_of(&row["url"]);
        let status = answered.get(&target).unwrap_or_else(|| panic!("the mock never saw {target}"));
        assert_eq!(row["status"], status.to_string(), "{target}");
        *statuses.entry(status.to_string()).or_insert(0u64) += 1;
    }
    let summary_statuses: BTreeMap<String, u64> =
        summary["statuses"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), count(v))).collect();
    assert_eq!(summary_statuses, statuses, "the summary's status mix is the CSV's");

    let listed = http.get("/v1/runs").json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
}

#[test]
fn a_replay_option_the_daemon_never_names_is_applied_shown_and_refused_when_misspelled() {
    // `exclude_user_agent` and `sample_seed` reach the daemon through `ReplayOptions` alone.
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let options = json!({
        "logs": ["u.log"], "target": server.url(), "rate": 400, "allow_methods": ["all"],
        "exclude_user_agent": ["^fixture-agent/[0-9] "], "sample_seed": 7
    });
    let misspelled =
        http.post_raw("/v1/runs", &options.to_string().replace("exclude_user_agent", "exclude_user_agents"));
    expect(misspelled, 422, "unknown field `exclude_user_agents`");

    let id = http.submit(options.clone())["id"].as_str().unwrap().to_string();
    let run = http.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(run["state"], "completed", "{run:#}");
    assert_eq!(run["options"], options, "shown as submitted");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(state.path().join(format!("runs/{id}/run.json"))).unwrap()).unwrap();
    assert_eq!(stored["options"], options, "stored as submitted");
    // The log's 200 lines carry agents fixture-agent/1 … /200: the nine one-digit ones were skipped.
    let received = server.requests();
    assert_eq!(received.len(), 191);
    let agent_number = |ua: &str| ua.strip_prefix("fixture-agent/").and_then(|n| n.split(' ').next()).map(str::len);
    assert!(received.iter().all(|r| r.header("user-agent").and_then(|ua| agent_number(&ua)).is_some_and(|n| n > 1)));
    assert_eq!(count(&run["summary"]["requests_sent"]), 191);
}

#[test]
fn metrics_parse_as_prometheus_text_and_their_counters_equal_the_runs_summary() {
    let server = mock(MockConfig::default().with_seed(3).with_statuses("200:70,404:20,503:10".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let id =
        http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 400, "allow_methods": ["all"]}))["id"]
            .as_str()
            .unwrap()
            .to_string();
    let run = http.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(run["state"], "completed");
    let summary = &run["summary"];

    let reply = http.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply.content_type().starts_with("text/plain; version=0.0.4"), "{}", reply.content_type());
    let m = parse_prometheus(&reply.text());

    assert_eq!(sum_of(&m, "sluice_requests_sent_total") as u64, count(&summary["requests_sent"]));
    assert_eq!(sum_of(&m, "sluice_responses_total") as u64, count(&summary["responses"]));
    assert_eq!(sum_of(&m, "sluice_request_errors_total") as u64, count(&summary["errors"]));
    // Status classes from the summary's status codes.
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    for (code, n) in summary["statuses"].as_object().unwrap() {
        *classes.entry(format!("{}xx", &code[..1])).or_default() += count(n);
    }
    for (class, n) in &classes {
        assert_eq!(m[&format!("sluice_responses_total{{status_class=\"{class}\"}}")] as u64, *n, "{class}");
    }
    assert!(m.contains_key("sluice_requests_sent_total{method=\"GET\"}"));
    assert_eq!(
        m["sluice_request_duration_seconds_count"] as u64,
        count(&summary["responses"]) + count(&summary["errors"])
    );
    assert_eq!(m["sluice_schedule_lag_seconds_count"] as u64, count(&summary["requests_sent"]));
    assert_eq!(m["sluice_inflight_requests"], 0.0);
    assert_eq!(m["sluice_target_rate"], 0.0, "no run is running");
    assert_eq!(m["sluice_runs{state=\"completed\"}"], 1.0);
    assert_eq!(m["sluice_runs{state=\"running\"}"], 0.0);
    assert!(m.keys().any(|k| k.starts_with("sluice_build_info{version=")));
    assert!(!reply.text().contains(&id), "no run ids as labels");
    assert!(!reply.text().contains("/items/"), "no paths as labels");
}

#[test]
fn stopping_a_run_mid_way_drains_it_and_keeps_every_row() {
    let server = mock(MockConfig::default().with_latency("1ms..5ms".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let id = http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 50, "duration": "60s"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let running = http.wait_for(&id, Duration::from_secs(30), |r| r["progress"]["sent"].as_u64().unwrap_or(0) >= 60);
    assert_eq!(running["state"], "running");
    assert!(running["progress"]["current_rate"].as_f64().unwrap() > 0.0, "{running:#}");

    // The CSV while the run goes on: whole rows only.
    let partial = http.get(&format!("/v1/runs/{id}/results.csv"));
    assert_eq!(partial.status, 200);
    assert!(partial.body.ends_with(b"\n"));
    assert!(!csv_rows(&partial.body).is_empty());
    assert_eq!(http.get(&format!("/v1/runs/{id}/summary.json")).status, 409, "no summary while running");

    let stop = http.post_raw(&format!("/v1/runs/{id}/stop"), "");
    assert_eq!(stop.status, 202, "{}", stop.text());
    assert!(["stopping", "stopped"].contains(&stop.json()["state"].as_str().unwrap()));
    let run = http.wait_finished(&id, Duration::from_secs(30));
    assert_eq!(run["state"], "stopped", "{run:#}");
    let summary = &run["summary"];
    assert_eq!(summary["interrupted"], true);
    let sent = count(&summary["requests_sent"]);
    assert!((60..3000).contains(&sent), "stopped well before the 60 s were up: {sent}");

    let rows = csv_rows(&http.get(&format!("/v1/runs/{id}/results.csv")).body);
    assert_eq!(rows.len() as u64, sent, "one row per request sent");
    assert_eq!(server.count(), sent, "the mock received exactly those");
    assert!(rows.iter().all(|r| r["error"].is_empty()), "drained: nothing aborted");

    let again = http.post_raw(&format!("/v1/runs/{id}/stop"), "");
    assert_eq!(again.status, 409);
    assert!(again.json()["detail"].as_str().unwrap().contains("already ended"));

    assert_eq!(http.delete(&format!("/v1/runs/{id}")).status, 204);
    assert_eq!(http.get(&format!("/v1/runs/{id}")).status, 404);
    assert!(!state.path().join("runs").join(&id).exists(), "its files are gone");
}

#[test]
fn a_scheduled_runs_plan_starts_exactly_at_its_start_at() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    // A whole second, as a fleet of daemons would be given one.
    let at = chrono::DurationRound::duration_trunc(
        chrono::Utc::now() + chrono::TimeDelta::seconds(4),
        chrono::TimeDelta::seconds(1),
    )
    .unwrap();
    let run = http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 50, "duration": "1s",
                                 "start_at": at.to_rfc3339()}));
    assert_eq!(run["state"], "scheduled");
    let id = run["id"].as_str().unwrap();
    let done = http.wait_finished(id, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done:#}");
    // Started a little ahead, its plan's T0 is the instant asked for: request n at at + n/50.
    let rows = csv_rows(&http.get(&format!("/v1/runs/{id}/results.csv")).body);
    assert_eq!(rows.len(), 50);
    for row in &rows {
        let seq: i64 = row["seq"].parse().unwrap();
        let scheduled =
            chrono::NaiveDateTime::parse_from_str(&row["scheduled_at"], "%Y-%m-%d %H:%M:%S%.3f").unwrap().and_utc();
        let offset = (scheduled - at).num_milliseconds();
        assert!((offset - seq * 20).abs() <= 1, "seq {seq} at start_at + {offset} ms");
    }
}

#[test]
fn runs_beyond_the_limit_queue_in_order_and_start_at_schedules_one() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &["--max-concurrent-runs", "1"]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let base = json!({"logs": ["u.log"], "target": server.url(), "rate": 100, "duration": "2s"});
    let first = http.submit(base.clone());
    let second = http.submit(base.clone());
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(3);
    let mut soak = base.clone();
    soak["start_at"] = json!(at.to_rfc3339());
    let third = http.submit(soak);
    assert_eq!(first["state"], "running");
    assert_eq!(second["state"], "queued");
    assert_eq!(third["state"], "scheduled");
    assert_eq!(http.run(second["id"].as_str().unwrap())["state"], "queued", "one run at a time");

    let ids: Vec<&str> = [&first, &second, &third].iter().map(|r| r["id"].as_str().unwrap()).collect();
    let done: Vec<Value> = ids.iter().map(|id| http.wait_finished(id, Duration::from_secs(60))).collect();
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    for run in &done {
        assert_eq!(run["state"], "completed", "{run:#}");
    }
    assert!(time(&done[1]["started_at"]) >= time(&done[0]["finished_at"]), "the queued run waited for the first");
    assert!(time(&done[2]["started_at"]) >= at, "the scheduled run waited for its start_at");
    assert!(time(&done[2]["started_at"]) >= time(&done[1]["finished_at"]), "and for a free slot");

    // Newest first.
    let listed: Vec<String> =
        http.get("/v1/runs").json().as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, vec![ids[2], ids[1], ids[0]]);
}

#[test]
fn bad_input_gets_the_right_4xx_with_a_clear_message_and_changes_nothing() {
    let server = mock(MockConfig::default());
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let daemon = InProcess::start(&state, Some(TOKEN), &["--max-upload-mib", "1"]);
    let http = daemon.http(Some(TOKEN));
    let anonymous = daemon.http(None);
    let wrong = daemon.http(Some("wrong-token-0123456789abcdef"));
    assert_eq!(http.upload("u.log", &fixture("unique-targets.log")).status, 201);

    let outside = root.path().join("outside.csv");
    let secret = root.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let target = server.url();
    let ok = json!({"logs": ["u.log"], "target": target, "rate": 10});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body.to_string()
    };

    // Tokens.
    let reply = anonymous.post_raw("/v1/runs", &ok.to_string());
    assert!(reply.headers.contains_key("www-authenticate"));
    expect(reply, 401, "Authorization: Bearer");
    expect(wrong.post_raw("/v1/runs", &ok.to_string()), 401, "does not match");
    expect(anonymous.put("/v1/logs/x.log", b"GET / HTTP/1.1".to_vec()), 401, "token");
    expect(wrong.post_raw("/v1/runs/whatever/stop", ""), 401, "does not match");
    expect(anonymous.delete("/v1/runs/whatever"), 401, "token");
    expect(anonymous.get("/v1/runs"), 401, "Authorization: Bearer");
    assert_eq!(anonymous.get("/healthz").status, 200);

    // The body.
    expect(http.post_raw("/v1/runs", "{\"logs\": [\"u.log\""), 400, "not valid JSON");
    expect(http.post_raw("/v1/runs", &with("concurrency", json!("many"))), 422, "concurrency");
    expect(http.post_raw("/v1/runs", &with("rate", json!(true))), 422, "rate");
    expect(http.post_raw("/v1/runs", &with("bogus", json!(1))), 422, "unknown field `bogus`");
    expect(http.post_raw("/v1/runs", "[1, 2]"), 422, "JSON object");
    expect(http.post_raw("/v1/runs", &with("out", json!(outside))), 422, "`out` is not accepted");
    expect(http.post_raw("/v1/runs", &with("summary_json", json!(outside))), 422, "`summary_json`");
    expect(http.post_raw("/v1/runs", &with("config", json!(secret))), 422, "`config`");
    expect(
        http.post_raw("/v1/runs", &with("headers", json!({"X-Secret": format!("@{}", secret.display())}))),
        422,
        "'@'",
    );
    expect(http.post_raw("/v1/runs", &with("rate", json!(0))), 422, "rate");
    expect(http.post_raw("/v1/runs", &with("duration", json!("soon"))), 422, "duration");
    let reply =
        http.send(reqwest::Method::POST, "/v1/runs", |b| b.header("content-type", "text/plain").body(ok.to_string()));
    expect(reply, 415, "application/json");
    expect(http.post_raw("/v1/runs", &with("start_at", json!("2001-01-01T00:00:00Z"))), 422, "in the past");
    expect(http.post_raw("/v1/runs", &with("start_at", json!("tomorrow"))), 422, "start_at");

    // Logs: names only, inside the logs directory.
    expect(http.post_raw("/v1/runs", &with("logs", json!(["../u.log"]))), 422, "not a log name");
    expect(http.post_raw("/v1/runs", &with("logs", json!(["sub/u.log"]))), 422, "not a log name");
    expect(http.post_raw("/v1/runs", &with("logs", json!(["/etc/passwd"]))), 422, "not a log name");
    expect(http.post_raw("/v1/runs", &with("logs", json!(["missing.log"]))), 422, "upload it first");
    expect(http.post_raw("/v1/runs", &with("logs", json!([]))), 422, "`logs` is required");
    expect(http.put("/v1/logs/..%2Fescape.log", b"x".to_vec()), 400, "not a log name");
    expect(http.put("/v1/logs/.hidden", b"x".to_vec()), 400, "not a log name");
    expect(http.put("/v1/logs/a%20b.log", b"x".to_vec()), 400, "not a log name");

    // Targets: loopback only, by default; not the in-process mock either.
    expect(http.post_raw("/v1/runs", &with("target", json!("http://192.0.2.10:8080"))), 403, "--allow-target");
    expect(http.post_raw("/v1/runs", &with("target", json!("https://example.com"))), 403, "not allowed");
    expect(http.post_raw("/v1/runs", &with("target", json!("mock"))), 403, "not allowed");
    expect(http.post_raw("/v1/runs", &with("target", json!("ftp://127.0.0.1"))), 422, "target");

    // Uploads over the limit, declared or streamed without a length.
    expect(http.put("/v1/logs/big.log", vec![b'x'; 2 * 1024 * 1024]), 413, "1 MiB");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..40).map(|_| Ok(vec![b'y'; 64 * 1024])).collect();
    let reply = http.send(reqwest::Method::PUT, "/v1/logs/streamed.log", |b| {
        b.body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
    });
    expect(reply, 413, "limit");

    // Runs that do not exist.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/runs/nope"),
        (reqwest::Method::GET, "/v1/runs/nope/events"),
        (reqwest::Method::GET, "/v1/runs/nope/results.csv"),
        (reqwest::Method::GET, "/v1/runs/nope/summary.json"),
        (reqwest::Method::POST, "/v1/runs/nope/stop"),
        (reqwest::Method::DELETE, "/v1/runs/nope"),
    ] {
        expect(http.send(method, path, |b| b), 404, "there is no run 'nope'");
    }
    expect(http.get("/v2/anything"), 404, "no such endpoint");
    expect(http.send(reqwest::Method::PATCH, "/v1/runs", |b| b), 405, "method");

    // Nothing started, nothing written outside the state and logs directories.
    assert_eq!(http.get("/v1/runs").json(), json!([]));
    assert_eq!(server.count(), 0, "no request was sent");
    assert!(!outside.exists());
    let mut in_root: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_root.sort();
    assert_eq!(in_root, ["secret", "state"]);
    let logs: Vec<String> = std::fs::read_dir(state.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(logs, ["u.log"], "rejected uploads left nothing behind");
    assert_eq!(std::fs::read_dir(state.join("runs")).unwrap().count(), 0);
}

#[test]
fn a_run_allowed_only_under_a_prefix_sends_nothing_outside_it_whatever_the_log_says() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let target = format!("{}/prefix", server.url());
    let daemon = InProcess::start(state.path(), None, &["--allow-target", &target]);
    let http = daemon.http(None);
    let log = state.path().join("hostile.log");
    let paths = ["/../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2e/%2e./etc/passwd", "/a/..%2f..%2fetc/passwd", "/ok"];
    let lines: String = paths
        .iter()
        .map(|p| format!("10.0.0.1 - - [21/Nov/2026:10:00:00 +0000] \"GET {p} HTTP/1.1\" 200 1 \"-\" \"t\"\n"))
        .collect();
    std::fs::write(&log, lines).unwrap();
    assert_eq!(http.upload("hostile.log", &log).status, 201);

    let created = http.submit(json!({"logs": ["hostile.log"], "target": target, "rate": 100, "format": "nginx"}));
    let run = http.wait_finished(created["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["state"], "completed", "{run:#}");
    let mut received: Vec<String> = server.requests().into_iter().map(|q| q.target).collect();
    received.sort();
    assert_eq!(received, ["/prefix/etc/passwd", "/prefix/etc/passwd", "/prefix/etc/passwd", "/prefix/ok"]);
}

#[test]
fn a_run_that_got_no_answer_or_met_its_abort_condition_ends_failed_saying_why() {
    let server = mock(MockConfig::default().with_statuses("500:100".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = http.submit(json!({"logs": ["u.log"], "target": format!("http://127.0.0.1:{closed}"), "rate": 200}));
    let done = http.wait_finished(run["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(done["state"], "failed", "{done:#}");
    let message = done["message"].as_str().unwrap();
    assert!(message.contains("no request got an answer") && message.contains("Connection refused"), "{message}");
    assert_eq!(done["summary"]["responses"], 0);

    let run = http.submit(json!({
        "logs": ["u.log"], "target": server.url(), "rate": 50, "duration": "30s",
        "abort_on": ["error_rate > 50% for 1s"],
    }));
    let done = http.wait_finished(run["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(done["state"], "failed", "{done:#}");
    assert!(done["message"].as_str().unwrap().starts_with("aborted by --abort-on error_rate > 50% for 1s"), "{done:#}");
    assert!(server.count() < 1000, "stopped long before its 30 s: {} requests", server.count());
}

#[test]
fn with_a_token_every_v1_request_needs_it_and_no_answer_repeats_what_was_sent() {
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), Some(TOKEN), &[]);
    let wrong = "wrong-token-s3cret-0123456789";
    let anonymous = daemon.http(None);
    let mistaken = daemon.http(Some(wrong));
    for path in
        ["/v1/runs", "/v1/runs/x", "/v1/runs/x/events", "/v1/runs/x/results.csv", "/v1/runs/x/summary.json", "/v1/logs"]
    {
        let none = expect(anonymous.get(path), 401, "Authorization: Bearer");
        assert!(!none.to_string().contains(TOKEN));
        let reply = mistaken.get(path);
        assert!(!reply.text().contains(wrong), "{path}: the wrong token is not echoed");
        assert!(reply.headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
        expect(reply, 401, "does not match");
        // A token in the query string is not a token: it would end up in access logs.
        let query = anonymous.get(&format!("{path}?access_token={TOKEN}&token={TOKEN}"));
        assert!(!query.text().contains(TOKEN));
        expect(query, 401, "Authorization: Bearer");
        let basic = anonymous.send(reqwest::Method::GET, path, |b| b.basic_auth("sluice", Some(TOKEN)));
        assert!(!basic.text().contains(TOKEN));
        expect(basic, 401, "does not match");
    }
    for (method, path) in [(reqwest::Method::POST, "/v1/runs/x/stop"), (reqwest::Method::DELETE, "/v1/runs/x")] {
        expect(mistaken.send(method, path, |b| b), 401, "does not match");
    }
    // Probes and Prometheus need nothing.
    assert_eq!(anonymous.get("/healthz").status, 200);
    assert_eq!(anonymous.get("/metrics").status, 200);
}

#[test]
fn requests_over_the_operators_caps_are_refused_naming_the_cap_and_a_runaway_queue_cannot_start() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let caps = ["--max-rate", "100", "--max-concurrency", "10", "--max-duration", "2s", "--max-queued-runs", "3"];
    let daemon = InProcess::start(state.path(), None, &caps);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let ok = json!({"logs": ["u.log"], "target": server.url(), "rate": 20});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    expect(http.post_json("/v1/runs", &with("rate", json!(101))), 403, "--max-rate");
    expect(http.post_json("/v1/runs", &with("rate", json!("max"))), 403, "--max-rate");
    expect(http.post_json("/v1/runs", &with("concurrency", json!(11))), 403, "--max-concurrency");
    expect(http.post_json("/v1/runs", &with("duration", json!("1h"))), 403, "--max-duration");
    // Issue 12: this grew the daemon by 300-450 MB/s, and `stop` could not end it (the daemon's
    // memory is measured in daemon_security.rs, where it has a process of its own).
    expect(http.post_json("/v1/runs", &with("queue_capacity", json!(1_000_000_000_000u64))), 422, "queue_capacity");
    assert_eq!(http.get("/v1/runs").json(), json!([]), "nothing over a cap was recorded");

    // A run without a duration would take 10 s at 20/s; --max-duration ends it at 2 s.
    let id = http.submit(ok.clone())["id"].as_str().unwrap().to_string();
    let run = http.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(run["state"], "completed", "{run:#}");
    let sent = run["summary"]["requests_sent"].as_u64().unwrap();
    assert!((10..=80).contains(&sent), "ended by --max-duration, not by the end of the log: {sent}");
    assert_eq!(run["summary"]["stopped_by"], "deadline");

    // Issue 12: 1,000 runs for 2030 were all accepted. Three may wait here.
    let in_2030 = with("start_at", json!("2030-01-01T00:00:00Z"));
    for _ in 0..3 {
        assert_eq!(http.submit(in_2030.clone())["state"], "scheduled");
    }
    let problem = expect(http.post_json("/v1/runs", &in_2030), 429, "--max-queued-runs 3");
    assert_eq!(problem["status"], 429);
    // A run that starts at once waits for nothing and is accepted; the next one would wait.
    let long = with("duration", json!("2s"));
    let now = http.submit(long.clone());
    assert_eq!(now["state"], "running", "{now:#}");
    expect(http.post_json("/v1/runs", &long), 429, "queued or scheduled");
    assert_eq!(http.get("/v1/runs").json().as_array().unwrap().len(), 5);
}

#[test]
fn uploads_are_limited_by_what_a_run_reads_from_them() {
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &["--max-upload-mib", "1"]);
    let http = daemon.http(None);
    let log = std::fs::read(fixture("unique-targets.log")).unwrap();
    let big = log.repeat((2 << 20) / log.len() + 1);
    let gzip = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let compressed = gzip(&big);
    assert!(compressed.len() < 1 << 20, "small as sent: {}", compressed.len());
    expect(http.put("/v1/logs/big.log.gz", compressed), 413, "decompresses to more than");
    let mut torn = gzip(&log);
    torn.truncate(torn.len() / 2);
    expect(http.put("/v1/logs/torn.log.gz", torn), 422, "does not decompress");
    let small = gzip(&log);
    let stored = http.put("/v1/logs/small.log.gz", small.clone());
    assert_eq!(stored.status, 201, "{}", stored.text());
    assert_eq!(stored.json()["bytes"], small.len(), "kept as sent");
    let listed: Vec<Value> = http.get("/v1/logs").json().as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "small.log.gz");
}

#[test]
fn hostile_names_targets_and_json_are_refused_and_change_nothing() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let ok = json!({"logs": ["u.log"], "target": server.url(), "rate": 10});
    let port = server.url().rsplit(':').next().unwrap().to_string();

    for target in [
        format!("http://0.0.0.0:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("http://localhost.:{port}"),
        "http://[::]:80".to_string(),
    ] {
        let mut body = ok.clone();
        body["target"] = json!(target);
        expect(http.post_json("/v1/runs", &body), 403, "not allowed");
    }
    for (target, words) in [
        (format!("http://user:pw@127.0.0.1:{port}"), "credentials"),
        ("file:///etc/passwd".to_string(), "only http and https"),
        ("gopher://127.0.0.1:70".to_string(), "only http and https"),
    ] {
        let mut body = ok.clone();
        body["target"] = json!(target);
        expect(http.post_json("/v1/runs", &body), 422, words);
    }
    for name in ["..", "..%2Fescape.log", "a%2Fb.log", "a%00.log", "a%5Cb.log", "%2E%2E"] {
        let reply = http.put(&format!("/v1/logs/{name}"), b"GET / HTTP/1.1\n".to_vec());
        assert!([400, 404].contains(&reply.status), "{name}: {} {}", reply.status, reply.text());
    }
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    expect(http.post_raw("/v1/runs", &deep), 400, "not valid JSON");
    let deep_object = format!("{{\"logs\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    expect(http.post_raw("/v1/runs", &deep_object), 400, "not valid JSON");
    expect(http.post_raw("/v1/runs", "{\"logs\":[\"u.log\"],\"rate\":1e400}"), 400, "not valid JSON");
    for (key, value, status, words) in [
        ("concurrency", json!(1e20), 422, "concurrency"),
        ("concurrency", json!(-1), 422, "concurrency"),
        ("batch", json!(4_294_967_296u64), 422, "batch"),
        ("sample_seed", json!(-1), 422, "sample_seed"),
        ("rate", json!(1e308), 422, "at most 10000000"),
        ("rate", json!(20_000), 403, "--max-rate"),
        ("rate", json!("NaN"), 422, "rate"),
        ("threads", json!(100_000), 422, "threads"),
        ("duration", json!("99999999999h"), 422, "duration"),
    ] {
        let mut body = ok.clone();
        body[key] = value;
        expect(http.post_json("/v1/runs", &body), status, words);
    }
    let huge = format!("{{\"logs\":[\"u.log\"],\"include\":[\"{}\"]}}", "a".repeat(70 * 1024));
    expect(http.post_raw("/v1/runs", &huge), 413, "at most");

    assert_eq!(http.get("/v1/runs").json(), json!([]));
    assert_eq!(server.count(), 0, "nothing was sent");
    let names: Vec<String> = std::fs::read_dir(state.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["u.log"]);
}

#[test]
fn serve_returns_once_the_running_run_drained_and_a_new_daemon_finds_it_interrupted() {
    // Each answer takes 300 ms, so requests are in flight when the shutdown comes.
    let server = mock(MockConfig::default().with_latency("300ms".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let body = json!({"logs": ["u.log"], "target": server.url(), "rate": 20, "duration": "60s"});
    let id = http.submit(body.clone())["id"].as_str().unwrap().to_string();
    http.wait_for(&id, Duration::from_secs(30), |r| r["progress"]["completed"].as_u64().unwrap_or(0) >= 5);
    let queued_later = {
        let mut later = body.clone();
        later["start_at"] = json!((chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339());
        http.submit(later)["id"].as_str().unwrap().to_string()
    };

    daemon.shut_down().expect("serve returns Ok after the drain");
    // Everything sent was answered and recorded before serve returned.
    let rows = csv_rows(&std::fs::read(state.path().join("runs").join(&id).join("results.csv")).unwrap());
    assert_eq!(server.count(), rows.len() as u64, "drained: every request sent has its row");

    // The state directory is free again, and the next daemon reads what this one left.
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    let run = http.run(&id);
    assert_eq!(run["state"], "interrupted", "{run:#}");
    assert!(run["message"].as_str().unwrap().contains("not be resumed"), "{run:#}");
    assert_eq!(count(&run["summary"]["requests_sent"]), rows.len() as u64);
    assert_eq!(http.run(&queued_later)["state"], "scheduled", "a waiting run stays for the next daemon");
}

#[test]
fn tls_fields_are_held_to_the_operators_policy_and_no_caller_names_a_file() {
    let server = common::tls_server::tls_server();
    let target = format!("https://127.0.0.1:{}", server.port);
    let ca_pem = std::fs::read_to_string(fixture("tls").join("ca.pem")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let ok = json!({"logs": ["u.log"], "target": target, "rate": 400, "allow_methods": ["all"]});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body.to_string()
    };

    // Files on the daemon's machine are never named by a caller; skipping verification and
    // connecting elsewhere are the operator's to allow.
    let ca_file = fixture("tls").join("ca.pem");
    expect(http.post_raw("/v1/runs", &with("ca_cert", json!(ca_file))), 422, "send the CA's PEM text in `ca_pem`");
    expect(http.post_raw("/v1/runs", &with("client_cert", json!(ca_file))), 422, "sluice daemon --client-cert");
    expect(http.post_raw("/v1/runs", &with("client_key", json!(ca_file))), 422, "a private key never travels");
    expect(http.post_raw("/v1/runs", &with("insecure", json!(true))), 403, "--allow-insecure");
    expect(http.post_raw("/v1/runs", &with("ca_pem", json!("not a certificate"))), 422, "ca_pem: holds no PEM");
    let elsewhere = with("resolve", json!(format!("127.0.0.1:{}:192.0.2.1", server.port)));
    expect(http.post_raw("/v1/runs", &elsewhere), 422, "the target's host 127.0.0.1 is an address already");
    let named = json!({"logs": ["u.log"], "target": format!("https://localhost:{}", server.port), "rate": 10,
        "resolve": format!("localhost:{}:192.0.2.1", server.port)});
    expect(http.post_raw("/v1/runs", &named.to_string()), 403, "connections would go to 192.0.2.1");
    assert!(server.received.lock().unwrap().is_empty() && http.get("/v1/runs").json().as_array().unwrap().is_empty());

    // Without the CA, the run fails and its record says why and what to do.
    let run = http.submit(ok.clone());
    let done = http.wait_finished(run["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(done["state"], "failed", "{done:#}");
    let tls = &done["summary"]["error_messages"]["tls"][0];
    let message = tls["message"].as_str().unwrap();
    assert!(message.starts_with("invalid peer certificate: UnknownIssuer (127.0.0.1:"), "{done:#}");
    assert!(tls["hint"].as_str().unwrap().contains("--ca-cert"), "{tls}");

    // With the CA's PEM text, every request is answered, and the record keeps the (public) CA.
    let run = http.submit(serde_json::from_str(&with("ca_pem", json!(ca_pem))).unwrap());
    let id = run["id"].as_str().unwrap();
    let done = http.wait_finished(id, Duration::from_secs(60));
    assert_eq!((done["state"].as_str(), count(&done["summary"]["responses"])), (Some("completed"), 200), "{done:#}");
    assert_eq!(done["summary"]["tls"], "trusting 1 certificate from ca_pem besides the system's roots");
    assert_eq!(done["options"]["ca_pem"], ca_pem.as_str());
    assert_eq!(server.received.lock().unwrap().len(), 200);
    drop(daemon);

    // An operator who trusts the CA and presents a client certificate for every run, and allows
    // callers to skip verification.
    let state = tempfile::tempdir().unwrap();
    let (cert, key) = (fixture("tls").join("server.pem"), fixture("tls").join("server-key.pem"));
    let flags = ["--ca-cert", ca_file.to_str().unwrap(), "--allow-insecure"];
    let identity = ["--client-cert", cert.to_str().unwrap(), "--client-key", key.to_str().unwrap()];
    let daemon = InProcess::start(state.path(), None, &[&flags[..], &identity[..]].concat());
    let http = daemon.http(None);
    http.upload("u.log", &fixture("unique-targets.log"));
    let trusted = http.wait_finished(http.submit(ok.clone())["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(trusted["state"], "completed", "{trusted:#}");
    // Named by their flags: no answer carries the daemon's own paths.
    let given = "trusting 1 certificate from the daemon's --ca-cert besides the system's roots; client certificate \
                 the daemon's --client-cert";
    assert_eq!(trusted["summary"]["tls"], given);
    let insecure = serde_json::from_str(&with("insecure", json!(true))).unwrap();
    let insecure = http.wait_finished(http.submit(insecure)["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(insecure["state"], "completed", "{insecure:#}");
    assert!(insecure["summary"]["tls"].as_str().unwrap().starts_with("verification OFF (--insecure)"), "{insecure:#}");
}
