//! The replay engine against the mock server on 127.0.0.1, asserting on both ends of the wire:
//! what the mock received, and what sluice wrote. Every run here is bounded in count and time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use sluice::config::FormatChoice;
use sluice::plan::{MethodFilter, parse_methods};
use sluice::source::Input;
use sluice::{Rate, ReplayConfig, Run, RunError, Target};
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

mod common;
use common::{csv_rows, fixture, path_of};

fn mock(config: MockConfig) -> MockServer {
    spawn_in_thread(config).expect("mock server starts on 127.0.0.1")
}

fn config_for(log: &str, server: &MockServer, rate: Rate, out: &Path) -> ReplayConfig {
    let target = Target::Url(reqwest::Url::parse(&server.url()).unwrap());
    ReplayConfig::new(vec![Input::File(fixture(log))], target, rate, out.to_path_buf())
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(&std::fs::read(path).expect("CSV exists"))
}

#[test]
fn every_row_matches_what_the_mock_received_and_answered() {
    let server = mock(MockConfig::default().with_seed(7).with_statuses("200:80,404:10,500:10".parse().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut config = config_for("unique-targets.log", &server, Rate::PerSecond(400.0), &out);
    config.rules.methods = MethodFilter::All;
    let summary = Run::start(config).unwrap().wait().unwrap();

    let received = server.requests();
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 200, "one row per log line");
    assert_eq!(received.len(), 200, "the mock received every line once");
    assert_eq!(summary.requests_sent, 200);
    assert_eq!(summary.responses + summary.errors, 200);

    // Request by request: the CSV's status is what the mock answered for that exact target.
    let answered: HashMap<String, (String, u16)> =
        received.iter().map(|r| (r.target.clone(), (r.method.clone(), r.status().unwrap()))).collect();
    let mut by_status = BTreeMap::new();
    for row in &rows {
        let target = path_of(&row["url"]);
        let (method, status) = answered.get(&target).unwrap_or_else(|| panic!("mock never saw {target}"));
        assert_eq!(&row["method"], method);
        assert_eq!(row["status"], status.to_string(), "status for {target}");
        assert_eq!(row["error"], "");
        assert_eq!(row["orig_status"], "200");
        *by_status.entry(status.to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(summary.statuses, by_status, "the summary's status mix is the CSV's");
    // The rules the fixture relies on: every 25th line asks for /status/503.
    assert!(received.iter().filter(|r| r.path() == "/status/503").all(|r| r.status() == Some(503)));
}

#[test]
fn methods_targets_headers_and_bodies_arrive_as_logged() {
    let server = mock(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let format = std::fs::read_to_string(fixture("custom-headers-body.format")).unwrap();
    let mut config = config_for("custom-headers-body.log", &server, Rate::PerSecond(200.0), &out);
    config.format = FormatChoice::from_flag(&format!("nginx:{}", format.trim())).unwrap();
    config.rules.methods = parse_methods("GET,POST").unwrap();
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert_eq!(summary.requests_sent, 20);

    let mut received = server.requests();
    received.sort_by_key(|r| r.header("x-request-id").unwrap().into_owned());
    assert_eq!(received.len(), 20);
    for (i, r) in received.iter().enumerate() {
        let n = i + 1;
        assert_eq!(r.target, format!("/api/orders/{n}"));
        assert_eq!(r.header("x-request-id").as_deref(), Some(format!("req-{n:04}").as_str()));
        if n % 2 == 1 {
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
            // nginx wrote `"` as \x22 and é as \xC3\xA9: the body arrives decoded, byte for byte.
            assert_eq!(r.body.as_ref(), format!("{{\"item\":{n},\"note\":\"café\"}}").as_bytes());
        } else {
            assert_eq!(r.method, "GET");
            assert!(r.body.is_empty());
            assert_eq!(r.header("content-type"), None, "a logged `-` header is not sent");
        }
    }
}

#[test]
fn once_sends_each_replayable_line_exactly_once_and_counts_the_rest() {
    let server = mock(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let config = config_for("unique-targets.log", &server, Rate::PerSecond(1000.0), &out);
    let summary = Run::start(config).unwrap().wait().unwrap();
    // Default safety: GET, HEAD and OPTIONS only. The fixture has 20 POST and 6 DELETE lines.
    let received = server.requests();
    assert_eq!(received.len(), 174);
    let mut targets: Vec<_> = received.iter().map(|r| r.target.clone()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 174, "no line sent twice");
    assert!(received.iter().all(|r| matches!(r.method.as_str(), "GET" | "HEAD" | "OPTIONS")));
    assert_eq!(summary.log.plan.skipped.get("method POST"), Some(&20));
    assert_eq!(summary.log.plan.skipped.get("method DELETE"), Some(&6));
    assert_eq!(read_csv(&out).len(), 174);
}

#[test]
fn a_duration_loops_the_log_at_the_requested_rate() {
    let server = mock(MockConfig::default().without_memory_record());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut config = config_for("unique-targets.log", &server, Rate::PerSecond(200.0), &out);
    config.duration = Some(Duration::from_secs(3));
    config.looping = true;
    let summary = Run::start(config).unwrap().wait().unwrap();
    // 600 planned; the fixture has 174 replayable lines, so the log looped.
    let sent = summary.requests_sent;
    assert!((570..=630).contains(&sent), "sent {sent}, expected 600 ± 5%");
    assert_eq!(server.count(), sent);
    assert_eq!(read_csv(&out).len() as u64, sent);
    assert!(summary.log.passes >= 3, "looped {} times", summary.log.passes);
    assert_eq!(summary.log.lines_read, 200, "the log's own lines are reported, not multiples");
    let rate = summary.achieved_rate;
    assert!((190.0..=210.0).contains(&rate), "achieved {rate}/s");
}

#[test]
fn concurrency_is_never_exceeded_and_a_slow_target_shows_up_as_lag() {
    // 50 ms per answer with 4 slots serves at most 80/s; asking for 400/s must not hide that.
    let server = mock(MockConfig::default().with_latency("50ms".parse().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut config = config_for("unique-targets.log", &server, Rate::PerSecond(400.0), &out);
    config.concurrency = 4;
    config.duration = Some(Duration::from_secs(2));
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert!(server.peak_concurrency() <= 4, "peak {}", server.peak_concurrency());
    assert!(server.peak_concurrency() >= 3, "the slots were used: peak {}", server.peak_concurrency());
    let rows = read_csv(&out);
    // Requests still waiting for a slot when the duration ended never left: their rows say so.
    let (sent, not_sent): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r["error"] != "not_sent");
    assert_eq!(sent.len() as u64, summary.requests_sent);
    assert_eq!(not_sent.len() as u64, summary.not_sent);
    assert!(summary.not_sent > 0, "at 400/s against 80/s of capacity, part of the plan never left");
    assert!(not_sent.iter().all(|r| r["sent_at"].is_empty() && r["lag_ms"].is_empty()));
    let lags: Vec<f64> = sent.iter().map(|r| r["lag_ms"].parse().unwrap()).collect();
    let last = *lags.last().unwrap();
    assert!(last > 500.0, "lag grows when the target cannot keep up: last lag {last} ms");
    assert!(summary.lag.p99_ms > 500.0);
    // Latency from the plan includes the waiting; latency from the send does not.
    assert!(summary.latency_from_schedule_ms.p99 > summary.latency_ms.p99 * 5.0);
}

#[test]
fn an_unreachable_target_is_a_connect_error_per_request() {
    // Bind and drop a listener to get a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let target = Target::Url(reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    let config = ReplayConfig::new(
        vec![Input::File(fixture("unique-targets.log"))],
        target,
        Rate::PerSecond(500.0),
        out.clone(),
    );
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert_eq!(summary.requests_sent, 174);
    assert_eq!(summary.error_kinds.get("connect"), Some(&174));
    let rows = read_csv(&out);
    assert!(rows.iter().all(|r| r["error"] == "connect" && r["status"].is_empty()));
}

#[test]
fn resets_garbage_and_timeouts_get_their_own_error_kinds() {
    let server = mock(
        MockConfig::default()
            .with_rule("/items/*=reset".parse().unwrap())
            .with_rule("/status/503=garbage".parse().unwrap()),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let config = config_for("unique-targets.log", &server, Rate::PerSecond(500.0), &out);
    let summary = Run::start(config).unwrap().wait().unwrap();
    let kinds = &summary.error_kinds;
    assert_eq!(kinds.get("protocol"), Some(&4), "{kinds:?}"); // 8 /status/503 lines, 4 of them POSTs
    assert_eq!(kinds.values().sum::<u64>(), 174, "{kinds:?}");
    assert_eq!(kinds.get("reset"), Some(&170), "{kinds:?}");

    let hang = mock(MockConfig::default().with_rule("/*=hang".parse().unwrap()));
    let out = dir.path().join("t.csv");
    let mut config = config_for("custom-headers-body.log", &hang, Rate::PerSecond(100.0), &out);
    config.format = FormatChoice::from_flag(&format!(
        "nginx:{}",
        std::fs::read_to_string(fixture("custom-headers-body.format")).unwrap().trim()
    ))
    .unwrap();
    config.timeout = Duration::from_millis(300);
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert_eq!(summary.error_kinds.get("timeout"), Some(&10), "{:?}", summary.error_kinds);
}

#[test]
fn cancel_drains_and_aborts_what_does_not_finish() {
    let server = mock(MockConfig::default().with_rule("/*=hang".parse().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut config = config_for("unique-targets.log", &server, Rate::PerSecond(100.0), &out);
    config.duration = Some(Duration::from_secs(30));
    config.concurrency = 8;
    config.timeout = Duration::from_secs(30);
    config.drain_timeout = Duration::from_millis(300);
    let run = Run::start(config).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    run.cancel();
    let summary = run.wait().unwrap();
    assert!(summary.interrupted);
    assert_eq!(summary.error_kinds.get("aborted"), Some(&8), "{:?}", summary.error_kinds);
    assert_eq!(summary.requests_sent, 8, "nothing left after the stop");
    // What was released but still waiting for a sender at the stop has its row, as not sent.
    let rows = read_csv(&out);
    assert_eq!(rows.len() as u64, 8 + summary.not_sent);
    assert_eq!(rows.iter().filter(|r| r["error"] == "not_sent").count() as u64, summary.not_sent);
}

#[test]
fn a_log_with_no_replayable_line_is_an_input_error_and_leaves_no_csv() {
    let server = mock(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("posts.log");
    std::fs::write(&log, "1.2.3.4 - - [21/Nov/2026:10:00:00 +0000] \"POST /x HTTP/1.1\" 200 1 \"-\" \"-\"\n").unwrap();
    let out = dir.path().join("r.csv");
    let target = Target::Url(reqwest::Url::parse(&server.url()).unwrap());
    let config = ReplayConfig::new(vec![Input::File(log)], target, Rate::PerSecond(10.0), out.clone());
    let err = Run::start(config).unwrap().wait().unwrap_err();
    assert!(matches!(err, RunError::NoReplayableLines(_)), "{err}");
    assert!(err.to_string().contains("1 skipped"), "{err}");
    assert!(!out.exists());
    assert_eq!(server.count(), 0);
}

#[test]
fn release_every_sends_requests_in_wakes_that_far_apart_late_never_early() {
    let server = mock(MockConfig::default().without_memory_record());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let mut config = config_for("unique-targets.log", &server, Rate::PerSecond(1000.0), &out);
    config.duration = Some(Duration::from_secs(2));
    config.looping = true;
    config.release_every = Duration::from_millis(20);
    let summary = Run::start(config).unwrap().wait().unwrap();
    assert_eq!(server.count(), summary.requests_sent, "what left reached the target");
    let rows = read_csv(&out);
    let mut lags: Vec<f64> =
        rows.iter().filter(|r| !r["lag_ms"].is_empty()).map(|r| r["lag_ms"].parse().unwrap()).collect();
    assert_eq!(lags.len() as u64, summary.requests_sent);
    lags.sort_by(f64::total_cmp);
    assert!(lags[0] >= 0.0, "a request left {} ms before it was due", -lags[0]);
    // Due times spread evenly over each 20 ms between wakes: a request waits 10 ms on average.
    // (A loaded machine only adds lateness, so the lower bound cannot flake.)
    let median = lags[lags.len() / 2];
    assert!(median >= 5.0, "median lag {median} ms: the pacer woke more often than every 20 ms");
}
