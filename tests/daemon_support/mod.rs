//! The daemon for the daemon's test crates: in this process ([`InProcess`], the library's
//! `serve` on 127.0.0.1:0) or as a real `sluice daemon` process ([`Daemon`], for signals,
//! restarts and the process's own memory and file descriptors); a small blocking HTTP client for
//! either; and parsers for what it answers. Every wait here is bounded in time.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use sluice::daemon::{DaemonArgs, DaemonConfig, serve};
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn mock(config: MockConfig) -> MockServer {
    spawn_in_thread(config).expect("mock server starts on 127.0.0.1")
}

// ---- a daemon in this process ------------------------------------------------------------------

/// `sluice::daemon::serve` on 127.0.0.1:0, on a runtime of its own, until dropped. Dropping it
/// shuts it down as SIGTERM does and waits for the drain, and fails the test if the daemon
/// ended on an error or did not drain within 60 s.
pub struct InProcess {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// `sluice daemon`'s flags, parsed as the CLI parses them.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    daemon: DaemonArgs,
}

impl InProcess {
    /// A daemon on `state` with `flags` as `sluice daemon` takes them, and `token` as it would
    /// read it from SLUICE_TOKEN.
    pub fn start(state: &Path, token: Option<&str>, flags: &[&str]) -> InProcess {
        let argv = ["sluice-daemon", "--state-dir", state.to_str().unwrap()].into_iter().chain(flags.iter().copied());
        let args = Flags::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).daemon;
        let config = DaemonConfig::resolve(&args, token.map(String::from)).expect("a valid daemon configuration");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, shutdown_asked) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let served = runtime.block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, config, async {
                    let _ = shutdown_asked.await;
                    "the test's shutdown"
                })
                .await
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
            served
        });
        InProcess { url, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn http(&self, token: Option<&str>) -> Http {
        Http::new(&self.url, token)
    }
}

impl InProcess {
    /// Shuts the daemon down as SIGTERM does and waits (up to 60 s) for `serve` to return, which
    /// it does once the running runs drained.
    pub fn shut_down(mut self) -> anyhow::Result<()> {
        self.stop_and_wait().expect("not shut down before")
    }

    fn stop_and_wait(&mut self) -> Option<anyhow::Result<()>> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let thread = self.thread.take()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !thread.is_finished() {
            return Some(Err(anyhow::anyhow!("the daemon did not drain within 60 s of its shutdown")));
        }
        Some(thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the daemon's thread panicked"))))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let result = self.stop_and_wait();
        // A test that failed already says why; this would only say it again.
        if !std::thread::panicking()
            && let Some(Err(e)) = result
        {
            panic!("the daemon ended badly: {e:#}");
        }
    }
}

// ---- a daemon process --------------------------------------------------------------------------

pub struct Daemon {
    pub child: Child,
    pub url: String,
    /// What it said before it was listening (notes about the runs it found).
    pub early: Vec<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `sluice daemon --listen 127.0.0.1:0` and waits (up to 30 s) for its address.
    pub fn start(state: &Path, token: Option<&str>, extra: &[&str]) -> Daemon {
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

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A figure from /proc/PID/status in KiB, e.g. `VmHWM` (peak resident memory) or `VmRSS`.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("{field}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Open file descriptors (sockets included).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }

    /// Everything it printed so far (lines read once are not returned again).
    pub fn stderr_text(&self) -> String {
        self.early.iter().cloned().chain(self.stderr.try_iter()).collect::<Vec<_>>().join("\n")
    }

    pub fn http(&self, token: Option<&str>) -> Http {
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

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

pub struct Http {
    pub runtime: tokio::runtime::Runtime,
    pub client: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Http {
    pub fn new(base: &str, token: Option<&str>) -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            client: sluice::send::tls::client_builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap(),
            base: base.to_string(),
            token: token.map(String::from),
        }
    }

    pub fn send(
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

    pub fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, |b| b)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, &body.to_string())
    }

    pub fn post_raw(&self, path: &str, body: &str) -> Reply {
        let body = body.to_string();
        self.send(reqwest::Method::POST, path, |b| b.header("content-type", "application/json").body(body))
    }

    pub fn put(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send(reqwest::Method::PUT, path, |b| b.body(body))
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, |b| b)
    }

    pub fn upload(&self, name: &str, file: &Path) -> Reply {
        self.put(&format!("/v1/logs/{name}"), std::fs::read(file).unwrap())
    }

    pub fn submit(&self, body: Value) -> Value {
        let reply = self.post_json("/v1/runs", &body);
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()
    }

    pub fn run(&self, id: &str) -> Value {
        let reply = self.get(&format!("/v1/runs/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// Polls a run until `done` holds, up to `limit`.
    pub fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
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

    pub fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |r| {
            matches!(r["state"].as_str(), Some("completed" | "stopped" | "failed" | "interrupted"))
        })
    }

    /// Follows `/events` to the end (bounded by `limit`); returns (event, data) pairs.
    pub fn events(&self, id: &str, limit: Duration) -> Vec<(String, Value)> {
        let url = format!("{}/v1/runs/{id}/events", self.base);
        self.runtime.block_on(async {
            let mut request = self.client.get(url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let mut response = request.send().await.unwrap();
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

// ---- what the daemon answers -------------------------------------------------------------------

/// Asserts an error answer: its status, `application/problem+json` with that status, and a
/// `detail` that mentions `words`. Returns the problem.
pub fn expect(reply: Reply, status: u16, words: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/problem+json");
    let problem = reply.json();
    assert_eq!(problem["status"], status, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(words), "{status}: {detail:?} should mention {words:?}");
    problem
}

pub fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Parses the Prometheus text exposition format strictly enough to catch a malformed line:
/// every sample belongs to a family declared by `# TYPE`, names and labels are well-formed,
/// values are numbers, and histogram buckets are cumulative up to `+Inf` = `_count`.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
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

pub fn sum_of(samples: &BTreeMap<String, f64>, family: &str) -> f64 {
    samples.iter().filter(|(k, _)| k.starts_with(&format!("{family}{{"))).map(|(_, v)| v).sum()
}
