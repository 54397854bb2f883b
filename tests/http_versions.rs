//! `--http-version` and the direct https path, on both ends of the wire.
//!
//! - Against a real nginx (skipped visibly when it is not installed): 1.1 reaches it as
//!   HTTP/1.1 over http and https alike (an https target never switches to HTTP/2 unasked), `2`
//!   as HTTP/2.0 over TLS, `h2c` as HTTP/2.0 without TLS; nginx logs `$server_protocol`.
//! - Against a TLS server written here, which records every request it read and whether it
//!   answered it: the keep-alive and retry rules of the direct HTTP/1.1 path hold over TLS as
//!   they do over TCP (`send::transport`'s unit tests): a connection the server closed is
//!   replaced, a GET the server dropped on a reused connection goes once more on a new one, a
//!   POST never goes twice. Reconnects resume the TLS session.
//!
//! The test CA is trusted through `SSL_CERT_FILE` (`fixtures/tls`), as in tests/tls.rs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{csv_rows, fixture, path_of};

type Rows = Vec<std::collections::HashMap<String, String>>;

/// What one `sluice replay` left: exit code, CSV rows, summary JSON and the text summary.
struct Replayed {
    code: Option<i32>,
    rows: Rows,
    summary: serde_json::Value,
    stderr: String,
}

/// `sluice replay LOG --target TARGET ARGS`, trusting the test CA; `config` is a TOML --config.
fn replay(log: &Path, target: &str, args: &[&str], config: Option<&str>) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    let mut command = assert_cmd::Command::cargo_bin("sluice").unwrap();
    command
        .arg("replay")
        .arg(log)
        .args(["--target", target, "--allow-methods", "all", "--progress", "never"])
        .args(["--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .args(args)
        .env("SSL_CERT_FILE", fixture("tls").join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .timeout(Duration::from_secs(60));
    if let Some(toml) = config {
        let path = dir.path().join("replay.toml");
        std::fs::write(&path, toml).unwrap();
        command.arg("--config").arg(path);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(out.is_file(), "no CSV; stderr: {stderr}");
    Replayed {
        code: output.status.code(),
        rows: csv_rows(&std::fs::read(&out).unwrap()),
        summary: serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap(),
        stderr,
    }
}

// ---- against nginx --------------------------------------------------------------------------

/// nginx on four ports of 127.0.0.1: plain HTTP/1.1, h2c, TLS with h2 offered by ALPN, and TLS
/// without h2. It logs `$server_port $server_protocol $request_uri`.
struct Nginx {
    nginx: common::nginx::Nginx,
    plain: u16,
    h2c: u16,
    tls: u16,
    tls_h1_only: u16,
}

impl Nginx {
    fn start(test: &str) -> Option<Nginx> {
        let binary = common::nginx::required(test)?;
        // Free ports: bound by the OS, then released for nginx (nothing else here races for them).
        let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (plain, h2c, tls, tls_h1_only) = (free(), free(), free(), free());
        let certs = fixture("tls");
        let server = format!(
            "listen 127.0.0.1:{plain}; listen 127.0.0.1:{h2c} http2; listen 127.0.0.1:{tls} ssl http2; \
             listen 127.0.0.1:{tls_h1_only} ssl; ssl_certificate {}; ssl_certificate_key {};",
            certs.join("server.pem").display(),
            certs.join("server-key.pem").display()
        );
        let ready = || [plain, h2c, tls, tls_h1_only].iter().all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
        let nginx = common::nginx::Nginx::start_server(
            &binary,
            &[],
            &server,
            "$server_port $server_protocol $request_method $content_length $request_uri",
            ready,
        );
        Some(Nginx { nginx, plain, h2c, tls, tls_h1_only })
    }

    /// (protocol, URI) of every request nginx logged on `port`.
    fn logged_on(&self, port: u16) -> Vec<(String, String)> {
        self.requests_on(port).into_iter().map(|r| (r.protocol, r.uri)).collect()
    }

    fn requests_on(&self, port: u16) -> Vec<Logged> {
        self.nginx
            .access_log()
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.splitn(5, ' ').collect();
                let [logged_port, protocol, method, length, uri] = fields[..] else { panic!("a log line: {line}") };
                (logged_port == port.to_string()).then(|| Logged {
                    protocol: protocol.into(),
                    method: method.into(),
                    content_length: length.into(),
                    uri: uri.into(),
                })
            })
            .collect()
    }
}

/// One request as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Logged {
    protocol: String,
    method: String,
    /// `-` when the request said none.
    content_length: String,
    uri: String,
}

#[test]
fn each_http_version_reaches_nginx_as_that_protocol_and_https_stays_on_1_1_unless_asked() {
    let Some(nginx) = Nginx::start("each_http_version_reaches_nginx") else { return };
    let log = fixture("unique-targets.log");
    let cases = [
        ("http", nginx.plain, None, None, "HTTP/1.1", "HTTP/1.1"),
        // nginx offers h2 on this port; sluice does not take it unless asked.
        ("https", nginx.tls, None, None, "HTTP/1.1", "HTTP/1.1 over TLS"),
        ("https", nginx.tls, Some("2"), None, "HTTP/2.0", "HTTP/2 over TLS (h2, agreed by ALPN)"),
        // The TOML key, as a --config file gives it.
        (
            "http",
            nginx.h2c,
            None,
            Some("http_version = \"h2c\""),
            "HTTP/2.0",
            "HTTP/2 without TLS (h2c, prior knowledge)",
        ),
    ];
    for (scheme, port, flag, config, logged, described) in cases {
        let before = nginx.logged_on(port).len();
        let args: Vec<&str> = flag.map(|v| vec!["--http-version", v]).unwrap_or_default();
        let target = format!("{scheme}://127.0.0.1:{port}");
        let run = replay(&log, &target, &[&args[..], &["--rate", "1000"]].concat(), config);
        let case = format!("{target} {flag:?} {config:?}");
        assert_eq!(run.code, Some(0), "{case}: {}", run.stderr);
        assert_eq!(run.rows.len(), 200, "{case}");
        assert!(run.rows.iter().all(|r| r["status"] == "200"), "{case}: {:?}", run.rows[0]);
        assert_eq!(run.summary["protocol"], described, "{case}");
        assert!(run.stderr.contains(&format!("protocol   {described}")), "{case}: {}", run.stderr);

        let received = &nginx.logged_on(port)[before..];
        assert!(received.iter().all(|(protocol, _)| protocol == logged), "{case}: {received:?}");
        let mut sent: Vec<String> = run.rows.iter().map(|r| path_of(&r["url"])).collect();
        let mut uris: Vec<String> = received.iter().map(|(_, uri)| uri.clone()).collect();
        sent.sort();
        uris.sort();
        assert_eq!(uris, sent, "{case}: nginx received exactly what the CSV says was sent, once each");
    }
}

#[test]
fn requests_with_bodies_arrive_the_same_over_http_2_as_over_1_1() {
    let Some(nginx) = Nginx::start("requests_with_bodies_over_http_2") else { return };
    let format = std::fs::read_to_string(fixture("custom-headers-body.format")).unwrap();
    let log = fixture("custom-headers-body.log");
    let args = ["--format", &format!("nginx:{}", format.trim()), "--rate", "200"];
    let mut received = Vec::new();
    for (target, version) in [
        (format!("https://127.0.0.1:{}", nginx.tls), "1.1"),
        (format!("https://127.0.0.1:{}", nginx.tls), "2"),
        (format!("http://127.0.0.1:{}", nginx.h2c), "h2c"),
    ] {
        let port: u16 = target.rsplit(':').next().unwrap().parse().unwrap();
        let before = nginx.requests_on(port).len();
        let run = replay(&log, &target, &[&args[..], &["--http-version", version]].concat(), None);
        assert_eq!(run.code, Some(0), "{version}: {}", run.stderr);
        assert!(run.rows.iter().all(|r| r["error"].is_empty()), "{version}: {:?}", run.rows);
        let mut logged: Vec<(String, String, String)> = nginx.requests_on(port)[before..]
            .iter()
            .map(|r| (r.method.clone(), r.content_length.clone(), r.uri.clone()))
            .collect();
        logged.sort();
        assert_eq!(logged.len(), run.rows.len(), "{version}: one request per row");
        received.push(logged);
    }
    assert!(received[0].iter().any(|(method, length, _)| method == "POST" && length != "-"), "{:?}", received[0]);
    assert_eq!(received[1], received[0], "h2: the same methods, body lengths and targets as HTTP/1.1");
    assert_eq!(received[2], received[0], "h2c: the same methods, body lengths and targets as HTTP/1.1");
}

#[test]
fn http_2_against_a_server_that_does_not_agree_to_h2_fails_clearly_and_sends_nothing() {
    let Some(nginx) = Nginx::start("http_2_without_h2") else { return };
    let target = format!("https://127.0.0.1:{}", nginx.tls_h1_only);
    let run = replay(&fixture("unique-targets.log"), &target, &["--http-version", "2", "--rate", "1000"], None);
    assert_eq!(run.code, Some(4), "nothing answered: {}", run.stderr);
    assert!(run.rows.iter().all(|r| r["error"] == "protocol" && r["status"].is_empty()), "{:?}", run.rows[0]);
    assert!(run.stderr.contains("did not agree to h2 by ALPN"), "{}", run.stderr);
    assert!(run.stderr.contains("--http-version 1.1"), "the message says what to do: {}", run.stderr);
    assert!(
        run.stderr.contains("protocol   HTTP/2 over TLS (h2, agreed by ALPN) asked; none spoken: nothing answered"),
        "the summary does not claim a protocol nobody spoke: {}",
        run.stderr
    );
    assert!(nginx.logged_on(nginx.tls_h1_only).is_empty(), "no request crossed the refused protocol");
}

#[test]
fn an_http_version_that_does_not_fit_the_target_is_refused_before_anything_is_sent() {
    // Nothing listens here: a run that started would fail to connect, not exit 2.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for (scheme, version, says) in [
        ("http", "2", "for an http:// target give h2c"),
        ("https", "h2c", "for an https:// target give 2"),
        ("http", "3", "'3': expected 1.1, 2 or h2c"),
    ] {
        let output = assert_cmd::Command::cargo_bin("sluice")
            .unwrap()
            .arg("replay")
            .arg(fixture("unique-targets.log"))
            .args(["--target", &format!("{scheme}://127.0.0.1:{closed}"), "--rate", "10", "--http-version", version])
            .args(["--progress", "never", "--out", "/dev/null"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{scheme} {version}: {stderr}");
        assert!(stderr.contains("--http-version") && stderr.contains(says), "{scheme} {version}: {stderr}");
    }
}

// ---- keep-alive and retries over TLS ----------------------------------------------------------

/// How the TLS test server treats a connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers the first request, then closes the connection (close_notify, then FIN), as a
    /// server whose keep-alive timeout ran out between two requests.
    ClosesWhenIdle,
    /// Answers the first request; reads the second and closes without answering it, as a server
    /// that closed a kept-alive connection just as the next request arrived.
    DropsTheSecondRequest,
}

/// One request the server read.
#[derive(Debug, Clone)]
struct Received {
    connection: usize,
    method: String,
    target: String,
    answered: bool,
}

/// An HTTP/1.1 server behind TLS on 127.0.0.1 (the test CA's certificate), written out here so
/// that it closes connections exactly when the test needs it to. Records every request read and
/// whether each connection's handshake resumed a session.
struct TlsServer {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    resumed: Arc<Mutex<Vec<bool>>>,
    _runtime: tokio::runtime::Runtime,
}

fn tls_server(behaviour: Behaviour) -> TlsServer {
    let acceptor = common::tls_server::acceptor();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (received, resumed) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let (log, resumptions) = (received.clone(), resumed.clone());
    runtime.spawn(async move {
        for connection in 0.. {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, log, resumptions) = (acceptor.clone(), log.clone(), resumptions.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else { return };
                let kind = stream.get_ref().1.handshake_kind();
                resumptions.lock().unwrap().push(kind == Some(rustls::HandshakeKind::Resumed));
                let mut buffer = Vec::new();
                let Some((method, target)) = read_request(&mut stream, &mut buffer).await else { return };
                log.lock().unwrap().push(Received { connection, method, target, answered: true });
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                if let Behaviour::DropsTheSecondRequest = behaviour
                    && let Some((method, target)) = read_request(&mut stream, &mut buffer).await
                {
                    log.lock().unwrap().push(Received { connection, method, target, answered: false });
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    TlsServer { port, received, resumed, _runtime: runtime }
}

/// Reads one request head (and its Content-Length body) from `stream`: its method and target.
async fn read_request(
    stream: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    buffer: &mut Vec<u8>,
) -> Option<(String, String)> {
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        assert!(buffer.len() < 1 << 20, "a request head under 1 MiB");
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    while buffer.len() < end + length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    buffer.drain(..end + length);
    let mut words = head.split(' ');
    Some((words.next()?.to_string(), words.next()?.to_string()))
}

/// A combined log of `count` requests `METHOD /r/N`, one a second.
fn log_of(dir: &Path, method: &str, count: usize) -> PathBuf {
    let path = dir.join(format!("{method}.log"));
    let mut file = std::fs::File::create(&path).unwrap();
    for n in 0..count {
        writeln!(
            file,
            "10.0.0.1 - - [21/Nov/2026:10:00:{n:02} +0000] \"{method} /r/{n} HTTP/1.1\" 200 2 \"-\" \"keepalive-test\""
        )
        .unwrap();
    }
    path
}

/// One connection at a time, a request every 200 ms: a server's close reaches sluice before the
/// next request is due, even on a loaded machine.
const ONE_AT_A_TIME: [&str; 4] = ["--concurrency", "1", "--rate", "5"];
const REQUESTS: usize = 6;

/// How many times the server read each target, answered and not.
fn tally(received: &[Received]) -> BTreeMap<String, (usize, usize)> {
    let mut tally = BTreeMap::new();
    for r in received {
        let entry: &mut (usize, usize) = tally.entry(r.target.clone()).or_default();
        if r.answered { entry.0 += 1 } else { entry.1 += 1 }
    }
    tally
}

#[test]
fn over_tls_a_connection_the_server_closed_is_replaced_and_no_request_is_lost_or_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["GET", "POST"] {
        let server = tls_server(Behaviour::ClosesWhenIdle);
        let run = replay(
            &log_of(dir.path(), method, REQUESTS),
            &format!("https://127.0.0.1:{}", server.port),
            &ONE_AT_A_TIME,
            None,
        );
        assert_eq!(run.code, Some(0), "{method}: {}", run.stderr);
        assert!(run.rows.iter().all(|r| r["status"] == "200" && r["error"].is_empty()), "{method}: {:?}", run.rows);
        let received = server.received.lock().unwrap().clone();
        assert!(received.iter().all(|r| r.method == method), "{received:?}");
        let expected: BTreeMap<String, (usize, usize)> = (0..REQUESTS).map(|n| (format!("/r/{n}"), (1, 0))).collect();
        assert_eq!(tally(&received), expected, "{method}: each request read and answered exactly once");

        // Every request needed a new connection; all but the first resumed the TLS session.
        let resumed = server.resumed.lock().unwrap().clone();
        assert_eq!(resumed.len(), REQUESTS, "{method}: one connection per request");
        assert_eq!(resumed[1..], vec![true; REQUESTS - 1], "{method}: reconnects resume, no full handshake");
    }
}

#[test]
fn over_tls_a_get_dropped_on_a_reused_connection_goes_once_more_and_a_post_never_does() {
    let dir = tempfile::tempdir().unwrap();

    let server = tls_server(Behaviour::DropsTheSecondRequest);
    let run = replay(
        &log_of(dir.path(), "GET", REQUESTS),
        &format!("https://127.0.0.1:{}", server.port),
        &ONE_AT_A_TIME,
        None,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.rows.iter().all(|r| r["status"] == "200"), "every GET answered: {:?}", run.rows);
    let received = server.received.lock().unwrap().clone();
    // The first GET opens a connection; each later one is dropped on the reused connection and
    // answered on a new one: read twice, answered once, never a third time.
    let mut expected: BTreeMap<String, (usize, usize)> = (1..REQUESTS).map(|n| (format!("/r/{n}"), (1, 1))).collect();
    expected.insert("/r/0".into(), (1, 0));
    assert_eq!(tally(&received), expected, "{received:?}");
    for r in received.iter().filter(|r| !r.answered) {
        let retry = received.iter().find(|a| a.answered && a.target == r.target).unwrap();
        assert!(retry.connection > r.connection, "the retry went on a new connection: {received:?}");
    }

    let server = tls_server(Behaviour::DropsTheSecondRequest);
    let run = replay(
        &log_of(dir.path(), "POST", REQUESTS),
        &format!("https://127.0.0.1:{}", server.port),
        &ONE_AT_A_TIME,
        None,
    );
    let received = server.received.lock().unwrap().clone();
    assert!(tally(&received).values().all(|&(answered, dropped)| answered + dropped == 1), "{received:?}");
    assert_eq!(received.len(), REQUESTS, "every POST read exactly once: {received:?}");
    // Both ends agree: the POSTs the server dropped are the CSV's failures, as resets.
    for row in &run.rows {
        let read = received.iter().find(|r| r.target == path_of(&row["url"])).unwrap();
        match read.answered {
            true => assert_eq!(row["status"], "200", "{row:?}"),
            false => assert_eq!((row["status"].as_str(), row["error"].as_str()), ("", "reset"), "{row:?}"),
        }
    }
    assert_eq!(received.iter().filter(|r| !r.answered).count(), REQUESTS / 2, "every second POST: {received:?}");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}
