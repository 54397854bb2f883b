//! `sluice daemon` as its users drive it: a real daemon process on 127.0.0.1:0 with a temporary
//! state directory, the mock server as the target, and assertions on both ends of the wire —
//! what the mock received, and what the API, the CSV and `/metrics` say. Restarts, SIGTERM and
//! SIGKILL are real signals to a real process. Every wait here is bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

const TOKEN: &str = "test-token-0123456789abcdef";

mod common;
use common::{csv_rows, fixture, path_of};

fn mock(config: MockConfig) -> MockServer {
    spawn_in_thread(config).expect("mock server starts on 127.0.0.1")
}

// ---- a daemon process --------------------------------------------------------------------------

struct Daemon {
    child: Child,
    url: String,
    /// What it said before it was listening (notes about the runs it found).
    early: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `sluice daemon --listen 127.0.0.1:0` and waits (up to 30 s) for its address.
    fn start(state: &Path, token: Option<&str>, extra: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["daemon", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .env_remove("SLUICE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            cmd.env("SLUICE_TOKEN", token);
        }
        let mut child = cmd.spawn().expect("the sluice binary starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap().to_string();
                        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
                        return Daemon { child, url, early: seen, stderr: rx };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the daemon did not start: {seen:?}");
                }
            }
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits up to `limit` for the process to exit.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything it printed so far (lines read once are not returned again).
    fn stderr_text(&self) -> String {
        self.early.iter().cloned().chain(self.stderr.try_iter()).collect::<Vec<_>>().join("\n")
    }

    fn http(&self, token: Option<&str>) -> Http {
        Http::new(&self.url, token)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- a small blocking HTTP client --------------------------------------------------------------

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Http {
    fn new(base: &str, token: Option<&str>) -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            client: sluice::tls::client_builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap(),
            base: base.to_string(),
            token: token.map(String::from),
        }
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Reply {
        let mut builder = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        let builder = f(builder);
        self.runtime.block_on(async {
            let response = builder.send().await.expect("the daemon answers");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.expect("a whole body").to_vec();
            Reply { status, headers, body }
        })
    }

    fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, |b| b)
    }

    fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, &body.to_string())
    }

    fn post_raw(&self, path: &str, body: &str) -> Reply {
        let body = body.to_string();
        self.send(reqwest::Method::POST, path, |b| b.header("content-type", "application/json").body(body))
    }

    fn put(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send(reqwest::Method::PUT, path, |b| b.body(body))
    }

    fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, |b| b)
    }

    fn upload(&self, name: &str, file: &Path) -> Reply {
        self.put(&format!("/v1/logs/{name}"), std::fs::read(file).unwrap())
    }

    fn submit(&self, body: Value) -> Value {
        let reply = self.post_json("/v1/runs", &body);
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()
    }

    fn run(&self, id: &str) -> Value {
        let reply = self.get(&format!("/v1/runs/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// Polls a run until `done` holds, up to `limit`.
    fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let run = self.run(id);
            if done(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not get there within {limit:?}: {run:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |r| {
            matches!(r["state"].as_str(), Some("completed" | "stopped" | "failed" | "interrupted"))
        })
    }

    /// Follows `/events` to the end (bounded by `limit`); returns (event, data) pairs.
    fn events(&self, id: &str, limit: Duration) -> Vec<(String, Value)> {
        let url = format!("{}/v1/runs/{id}/events", self.base);
        self.runtime.block_on(async {
            let mut response = self.client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
            let mut buffer = String::new();
            let mut events = Vec::new();
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("events end in time");
                let Some(chunk) = chunk.unwrap() else { break };
                buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let event = block.lines().find_map(|l| l.strip_prefix("event: ")).map(String::from);
                    let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                    if let (Some(event), Some(data)) = (event, data) {
                        events.push((event, serde_json::from_str(data).unwrap()));
                    }
                }
            }
            events
        })
    }
}

// ---- CSV and Prometheus text -------------------------------------------------------------------

/// Parses the Prometheus text exposition format strictly enough to catch a malformed line:
/// every sample belongs to a family declared by `# TYPE`, names and labels are well-formed,
/// values are numbers, and histogram buckets are cumulative up to `+Inf` = `_count`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, value) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(name_ok(name), "metric name in {line:?}");
            if kind == "TYPE" {
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&value), "{line:?}");
                assert!(types.insert(name.to_string(), value.to_string()).is_none(), "TYPE twice: {line:?}");
            } else {
                assert_eq!(kind, "HELP", "{line:?}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line:?}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner =
                labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("{line:?}"));
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                assert!(name_ok(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "{line:?}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its # TYPE: {line:?}");
        assert!(samples.insert(series.to_string(), value).is_none(), "sample twice: {line:?}");
    }
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let buckets: Vec<f64> =
            samples.iter().filter(|(k, _)| k.starts_with(&format!("{family}_bucket{{"))).map(|(_, v)| *v).collect();
        assert!(!buckets.is_empty(), "{family} has buckets");
        let mut ordered: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&format!("{family}_bucket{{le=\""))?.strip_suffix("\"}")?;
                Some((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *v))
            })
            .collect();
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(ordered.windows(2).all(|w| w[0].1 <= w[1].1), "{family} buckets are cumulative");
        assert_eq!(ordered.last().unwrap().1, samples[&format!("{family}_count")], "{family}: +Inf = _count");
    }
    samples
}

fn sum_of(samples: &BTreeMap<String, f64>, family: &str) -> f64 {
    samples.iter().filter(|(k, _)| k.starts_with(&format!("{family}{{"))).map(|(_, v)| v).sum()
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

// ---- the tests ---------------------------------------------------------------------------------

#[test]
fn a_run_submitted_over_the_api_replays_the_log_and_its_csv_matches_what_the_mock_received() {
    let server = mock(MockConfig::default().with_seed(7).with_statuses("200:80,404:10,500:10".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), None, &[]);
    let http = daemon.http(None);
    assert_eq!(http.get("/healthz").status, 200);

    let upload = http.upload("unique-targets.log", &fixture("unique-targets.log"));
    assert_eq!(upload.status, 201, "{}", upload.text());
    let logs = http.get("/v1/logs").json();
    assert_eq!(logs[0]["name"], "unique-targets.log");
    assert_eq!(count(&logs[0]["bytes"]), std::fs::metadata(fixture("unique-targets.log")).unwrap().len());

    let created = http.submit(json!({
        "logs": ["unique-targets.log"], "target": server.url(), "rate": 200, "allow_methods": ["all"],
        "headers": {"X-Test": "1"}
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
    assert_eq!(run["options"]["headers"]["X-Test"], "1", "the options are shown as submitted");
    let summary = &run["summary"];
    assert_eq!(count(&summary["requests_sent"]), 200);
    assert_eq!(count(&run["progress"]["sent"]), 200);
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
fn metrics_parse_as_prometheus_text_and_their_counters_equal_the_runs_summary() {
    let server = mock(MockConfig::default().with_seed(3).with_statuses("200:70,404:20,503:10".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), None, &[]);
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
    let daemon = Daemon::start(state.path(), None, &[]);
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
fn runs_beyond_the_limit_queue_in_order_and_start_at_schedules_one() {
    let server = mock(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path(), None, &["--max-concurrent-runs", "1"]);
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
fn bad_input_gets_the_right_4xx_with_a_clear_message_and_changes_nothing() {
    let server = mock(MockConfig::default());
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let daemon = Daemon::start(&state, Some(TOKEN), &["--max-upload-mib", "1"]);
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

    let expect = |reply: Reply, status: u16, words: &str| {
        assert_eq!(reply.status, status, "{}", reply.text());
        assert_eq!(reply.content_type(), "application/problem+json");
        let problem = reply.json();
        assert_eq!(count(&problem["status"]), status as u64);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{status}: {detail:?} should mention {words:?}");
        reply
    };

    // Tokens.
    let reply = expect(anonymous.post_raw("/v1/runs", &ok.to_string()), 401, "Authorization: Bearer");
    assert!(reply.headers.contains_key("www-authenticate"));
    expect(wrong.post_raw("/v1/runs", &ok.to_string()), 401, "does not match");
    expect(anonymous.put("/v1/logs/x.log", b"GET / HTTP/1.1".to_vec()), 401, "token");
    expect(wrong.post_raw("/v1/runs/whatever/stop", ""), 401, "does not match");
    expect(anonymous.delete("/v1/runs/whatever"), 401, "token");
    assert_eq!(anonymous.get("/v1/runs").status, 200, "reading needs no token");
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
    assert!(stderr.contains("uploaded unique-targets.log") && stderr.contains("completed"), "{stderr}");
    assert_eq!(server.count(), 200);

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
