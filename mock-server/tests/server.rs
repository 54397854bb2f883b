//! The server over real loopback sockets: answers, misbehaviours, the record, concurrency and
//! shutdown. Most tests use `spawn_in_thread` and a blocking client; one drives the async API.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, get, send_and_read_all, wait_until};
use sluice_mock::{Behavior, MockConfig, MockError, MockServer, spawn, spawn_in_thread};

fn start(config: MockConfig) -> MockServer {
    spawn_in_thread(config).expect("the mock starts")
}

fn mix(seed: u64, statuses: &str) -> MockConfig {
    MockConfig::default().with_seed(seed).with_statuses(statuses.parse().unwrap())
}

#[test]
fn statuses_follow_the_seed_and_the_weights() {
    let config = mix(42, "200:90,404:5,500:5");
    let server = start(config.clone());
    let mut client = Client::connect(server.addr()).unwrap();
    let n = 1000u64;
    let mut tally = BTreeMap::new();
    for i in 0..n {
        let response = client.get("/x").unwrap();
        assert_eq!(Some(response.status), config.status_for("/x", i), "request {i}");
        assert_eq!(response.header("x-sluice-mock-seq"), Some(i.to_string().as_str()));
        *tally.entry(response.status).or_insert(0u64) += 1;
    }
    assert_eq!(server.counts_by_status(), tally);
    assert_eq!(server.count(), n);
    assert_eq!(server.connections_accepted(), 1, "keep-alive: one connection for everything");
    for (code, count) in &tally {
        let share = *count as f64 / n as f64;
        assert!((share - config.statuses.share(*code)).abs() < 0.04, "{code}: {share}");
    }

    // Same seed, new server: the same answers in the same order.
    let again = start(config);
    let mut client = Client::connect(again.addr()).unwrap();
    let first: Vec<u16> = server.requests().iter().take(100).map(|r| r.status().unwrap()).collect();
    let second: Vec<u16> = (0..100).map(|_| client.get("/x").unwrap().status).collect();
    assert_eq!(first, second);
}

#[test]
fn seq_header_makes_answers_independent_of_interleaving() {
    let config = mix(7, "200:50,500:30,503:20").with_latency("0..2ms".parse().unwrap());
    let server = start(config.clone());
    let addr = server.addr();
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                (0..50u64)
                    .map(|i| {
                        let key = t * 1000 + i;
                        let response =
                            client.request("GET", b"/k", &[("x-sluice-seq", key.to_string().as_bytes())], b"").unwrap();
                        (key, response.status)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for worker in workers {
        for (key, status) in worker.join().unwrap() {
            assert_eq!(Some(status), config.status_for("/k", key), "key {key}");
        }
    }
    let recorded = server.requests();
    assert_eq!(recorded.len(), 200);
    for r in &recorded {
        assert_eq!(r.status(), config.status_for("/k", r.key));
        assert_eq!(r.latency, config.decide("/k", r.key).latency);
    }
}

#[test]
fn status_paths_and_rules() {
    let config = MockConfig::default()
        .with_rule("/api/special=201".parse().unwrap())
        .with_rule("/api/*=500".parse().unwrap())
        .with_rule("/login=418".parse().unwrap());
    let server = start(config);
    let mut client = Client::connect(server.addr()).unwrap();
    let mut status = |target: &str| client.get(target).unwrap().status;
    assert_eq!(status("/status/503"), 503);
    assert_eq!(status("/status/404?x=1"), 404);
    assert_eq!(status("/api/special"), 201);
    assert_eq!(status("/api/anything/else"), 500);
    assert_eq!(status("/apix"), 200);
    assert_eq!(status("/login?next=/"), 418);
    assert_eq!(status("/login/2"), 200);
    let no_content = client.get("/status/204").unwrap();
    assert_eq!((no_content.status, no_content.body.len()), (204, 0));
    // The connection is still in sync after the bodiless answer.
    assert_eq!(client.get("/").unwrap().body, b"ok\n");
}

#[test]
fn reset_closes_without_an_answer() {
    let server = start(MockConfig::default().with_rule("/flaky=reset".parse().unwrap()));
    let outcome = send_and_read_all(server.addr(), &common::encode("GET", b"/flaky", &[], b""), Duration::from_secs(5));
    match outcome {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(bytes) => assert!(bytes.is_empty(), "no answer at all, got {bytes:?}"),
    }
    assert_eq!(server.counts().resets, 1);
    assert_eq!(server.requests()[0].behavior, Behavior::Reset);
    // The server itself is fine.
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

#[test]
fn garbage_is_not_http() {
    let server = start(MockConfig::default().with_rule("/junk/*=garbage".parse().unwrap()));
    let bytes =
        send_and_read_all(server.addr(), &common::encode("GET", b"/junk/1", &[], b""), Duration::from_secs(5)).unwrap();
    assert!(!bytes.is_empty());
    assert!(!bytes.starts_with(b"HTTP/"), "{bytes:?}");
    assert_eq!(server.counts().garbage, 1);
}

#[test]
fn hang_holds_until_shutdown() {
    let config = MockConfig { shutdown_grace: Duration::from_secs(30), ..MockConfig::default() };
    let server = start(config.with_rule("/h=hang".parse().unwrap()));
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    stream.write_all(&common::encode("GET", b"/h", &[], b"")).unwrap();
    let mut buf = [0u8; 64];
    let err = std::io::Read::read(&mut stream, &mut buf).expect_err("no answer while hanging");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    assert_eq!(server.current_concurrency(), 1);
    assert_eq!(server.requests()[0].behavior, Behavior::Hang, "recorded on arrival");

    // Shutdown releases the hanging request at once (no waiting out the grace period) without
    // an answer.
    let started = Instant::now();
    server.shutdown_blocking().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match std::io::Read::read(&mut stream, &mut buf) {
        Ok(n) => assert_eq!(n, 0, "closed without an answer"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    assert_eq!(server.current_concurrency(), 0);
}

#[test]
fn client_closing_ends_a_hang() {
    let server = start(MockConfig::default().with_rule("/h=hang".parse().unwrap()));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(&common::encode("GET", b"/h", &[], b"")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 1));
    drop(stream);
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 0));
}

#[test]
fn records_method_target_headers_and_body_as_sent() {
    let server = start(MockConfig::default());
    let mut client = Client::connect(server.addr()).unwrap();
    // Percent-escapes of non-UTF-8 bytes, raw UTF-8 (é) and an empty query key, byte for byte.
    let target = "/caf%E9/%FF?q=%00&r=\u{e9}&".as_bytes();
    let body = [0xde, 0xad, 0xbe, 0xef];
    let headers: [(&str, &[u8]); 4] = [("X-B", b"1"), ("x-a", b"2"), ("X-Raw", &[0xff, b'A']), ("x-sluice-seq", b"77")];
    let response = client.request("POST", target, &headers, &body).unwrap();
    assert_eq!(response.status, 200);

    let recorded = server.requests();
    let r = &recorded[0];
    assert_eq!((r.seq, r.key, r.conn_id), (0, 77, 1));
    assert_eq!(r.method, "POST");
    assert_eq!(r.target.as_bytes(), target);
    assert_eq!(r.path(), "/caf%E9/%FF");
    assert_eq!(r.version, "HTTP/1.1");
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["host", "x-b", "x-a", "x-raw", "x-sluice-seq", "content-length"]);
    assert_eq!(r.header_bytes("X-RAW"), Some(&[0xff, b'A'][..]));
    assert_eq!(r.header("x-a").as_deref(), Some("2"));
    assert_eq!(&r.body[..], body);
    assert_eq!(r.body_len, 4);
    assert_eq!(r.peer.ip(), server.addr().ip());
}

#[test]
fn long_bodies_are_cut_in_the_record_but_counted() {
    let config = MockConfig { max_recorded_body: 10, ..MockConfig::default() };
    let server = start(config);
    let body = vec![b'z'; 100_000];
    let response = Client::connect(server.addr()).unwrap().request("PUT", b"/up", &[], &body).unwrap();
    assert_eq!(response.status, 200);
    let r = &server.requests()[0];
    assert_eq!((r.body.len(), r.body_len), (10, 100_000));
}

#[test]
fn a_target_that_is_not_utf8_is_hypers_400_and_counted() {
    let server = start(MockConfig::default());
    let answer =
        send_and_read_all(server.addr(), b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n", Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    assert!(wait_until(Duration::from_secs(5), || server.protocol_errors() == 1));
    assert_eq!(server.count(), 0, "never reached the mock");
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

#[test]
fn a_client_leaving_mid_body_is_not_a_problem() {
    let server = start(MockConfig::default());
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc").unwrap();
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 1));
    drop(stream);
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 0));
    assert_eq!(server.count(), 0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

#[test]
fn jsonl_record_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.jsonl");
    let config = MockConfig::default()
        .with_record_file(&path)
        .with_latency("2ms".parse().unwrap())
        .with_rule("/r=reset".parse().unwrap());
    let server = start(config);
    let mut client = Client::connect(server.addr()).unwrap();
    client.request("POST", b"/text?a=%FF", &[("x-one", b"1"), ("x-bin", &[0x80])], b"hello").unwrap();
    client.request("POST", b"/bin", &[], &[0xff, 0x00, 0x41]).unwrap();
    let _ = send_and_read_all(server.addr(), &common::encode("GET", b"/r", &[], b""), Duration::from_secs(5));
    server.shutdown_blocking().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let first = &lines[0];
    assert_eq!(first["seq"], 0);
    assert_eq!(first["key"], 0);
    assert_eq!(first["conn"], 1);
    assert_eq!(first["method"], "POST");
    assert_eq!(first["target"], "/text?a=%FF");
    assert_eq!(first["version"], "HTTP/1.1");
    assert_eq!(first["headers"][1], serde_json::json!(["x-one", "1"]));
    assert_eq!(first["headers"][2], serde_json::json!(["x-bin", {"base64": "gA=="}]));
    assert_eq!(first["body"], "hello");
    assert_eq!(first["body_len"], 5);
    assert_eq!(first["action"], "respond");
    assert_eq!(first["status"], 200);
    assert_eq!(first["latency_ms"], 2.0);
    assert!(first["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    // RFC 3339, UTC, milliseconds: 2026-11-21T14:03:07.123Z
    let at = first["received_at"].as_str().unwrap();
    assert_eq!((at.len(), &at[10..11], &at[19..20], &at[23..]), (24, "T", ".", "Z"), "{at}");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");

    assert_eq!(lines[1]["body"], serde_json::json!({"base64": "/wBB"}));
    assert_eq!(lines[2]["action"], "reset");
    assert_eq!(lines[2]["status"], serde_json::Value::Null);
}

#[test]
fn a_bad_record_path_fails_the_spawn() {
    let dir = tempfile::tempdir().unwrap();
    let config = MockConfig::default().with_record_file(dir.path().join("missing-dir").join("r.jsonl"));
    assert!(matches!(spawn_in_thread(config), Err(MockError::RecordOpen { .. })));
}

#[test]
fn peak_concurrency_counts_parallel_slow_requests() {
    // Long enough that the 8 requests overlap even when thread start-up is slow.
    let server = start(MockConfig::default().with_latency("800ms".parse().unwrap()));
    let addr = server.addr();
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr).unwrap();
                barrier.wait();
                client.get("/slow").unwrap().status
            })
        })
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap(), 200);
    }
    assert_eq!(server.peak_concurrency(), n);
    assert_eq!(server.current_concurrency(), 0);

    // One request at a time is a peak of one, however many requests.
    let sequential = start(MockConfig::default());
    let mut client = Client::connect(sequential.addr()).unwrap();
    for _ in 0..50 {
        client.get("/").unwrap();
    }
    assert_eq!(sequential.peak_concurrency(), 1);
}

#[test]
fn fixed_latency_is_applied() {
    let server = start(MockConfig::default().with_latency("150ms".parse().unwrap()));
    let mut client = Client::connect(server.addr()).unwrap();
    client.get("/warm").unwrap();
    let started = Instant::now();
    client.get("/").unwrap();
    let took = started.elapsed();
    // Generous upper bound: a loaded 2-core CI machine.
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(server.requests()[1].latency, Duration::from_millis(150));
}

#[test]
fn shutdown_drains_in_flight_requests_then_refuses() {
    let server = start(MockConfig::default().with_latency("300ms".parse().unwrap()));
    let addr = server.addr();
    let in_flight = thread::spawn(move || get(addr, "/").map(|r| r.status));
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 1));
    server.shutdown_blocking().unwrap();
    assert_eq!(in_flight.join().unwrap().unwrap(), 200, "answered before the server stopped");
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    server.shutdown_blocking().unwrap(); // a second call is harmless
}

#[test]
fn shutdown_cuts_requests_that_outlive_the_grace_period() {
    let config = MockConfig {
        shutdown_grace: Duration::from_millis(100),
        latency: "30s".parse().unwrap(),
        ..MockConfig::default()
    };
    let server = start(config);
    let addr = server.addr();
    let in_flight = thread::spawn(move || get(addr, "/"));
    assert!(wait_until(Duration::from_secs(5), || server.current_concurrency() == 1));
    let started = Instant::now();
    server.shutdown_blocking().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(in_flight.join().unwrap().is_err(), "cut off without an answer");
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let server = start(MockConfig::default());
    let addr = server.addr();
    assert_eq!(get(addr, "/").unwrap().status, 200);
    drop(server);
    assert!(wait_until(Duration::from_secs(5), || TcpStream::connect(addr).is_err()));
}

#[test]
fn body_size_and_head() {
    let server = start(MockConfig::default().with_body_bytes(10));
    let mut client = Client::connect(server.addr()).unwrap();
    assert_eq!(client.get("/").unwrap().body, b"ok\nok\nok\no");
    let head = client.request("HEAD", b"/", &[], b"").unwrap();
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (200, Some("10"), 0));
    assert_eq!(client.get("/").unwrap().body.len(), 10, "still in sync after HEAD");
    let empty = start(MockConfig::default().with_body_bytes(0));
    assert_eq!(get(empty.addr(), "/").unwrap().body, b"");
}

#[test]
fn counting_without_memory_record() {
    let server = start(MockConfig::default().without_memory_record());
    for _ in 0..5 {
        get(server.addr(), "/status/500").unwrap();
    }
    assert!(server.requests().is_empty());
    assert_eq!(server.count(), 5);
    assert_eq!(server.counts_by_status(), BTreeMap::from([(500, 5)]));
    assert_eq!(server.connections_accepted(), 5);
    let summary = server.counts().to_string();
    assert!(summary.contains("requests: 5") && summary.contains("500=5"), "{summary}");
}

#[test]
fn take_requests_separates_phases() {
    let server = start(MockConfig::default());
    get(server.addr(), "/one").unwrap();
    assert_eq!(server.take_requests().len(), 1);
    get(server.addr(), "/two").unwrap();
    let rest = server.requests();
    assert_eq!((rest.len(), rest[0].target.as_str(), rest[0].seq), (1, "/two", 1));
}

#[test]
fn non_loopback_addresses_are_refused() {
    let config = MockConfig { listen: "0.0.0.0:0".parse().unwrap(), ..MockConfig::default() };
    assert!(matches!(spawn_in_thread(config.clone()), Err(MockError::NonLoopback(_))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(matches!(runtime.block_on(spawn(config)), Err(MockError::NonLoopback(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_api_on_the_callers_runtime() {
    let config = mix(5, "200:1,503:1").with_rule("/r=reset".parse().unwrap());
    let server = spawn(config.clone()).await.unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let addr = server.addr();
    // The blocking client runs off the async workers.
    let statuses = tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(addr).unwrap();
        (0..20).map(|_| client.get("/a").unwrap().status).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let expected: Vec<u16> = (0..20).map(|k| config.status_for("/a", k).unwrap()).collect();
    assert_eq!(statuses, expected);
    server.shutdown().await.unwrap();
    assert_eq!(server.requests().len(), 20);
    server.shutdown().await.unwrap();
}

/// `#[tokio::test]`'s default runtime has one thread: the server, the shutdown and the record
/// flush must all make progress on it.
#[tokio::test]
async fn async_api_on_a_current_thread_runtime_with_a_record_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let server = spawn(MockConfig::default().with_record_file(&path)).await.unwrap();
    let addr = server.addr();
    let answered =
        tokio::task::spawn_blocking(move || (0..3).map(|_| get(addr, "/").unwrap().status).collect::<Vec<_>>())
            .await
            .unwrap();
    assert_eq!(answered, [200, 200, 200]);
    server.shutdown().await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
}
