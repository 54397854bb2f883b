//! A real `sluice daemon` process and a small blocking HTTP client for it, shared by the daemon's
//! test crates. Every wait here is bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn mock(config: MockConfig) -> MockServer {
    spawn_in_thread(config).expect("mock server starts on 127.0.0.1")
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
