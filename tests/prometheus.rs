//! `--prometheus URL` with `--assert 'prom:…'` and `--abort-on 'prom:…'`, against a real
//! Prometheus (Debian's `prometheus`) started here on loopback, scraping the mock's `/metrics`
//! every second. Skips visibly when Prometheus is not installed; `.ci/run` installs it and sets
//! SLUICE_REQUIRE_PROMETHEUS=1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};

mod common;
use common::influx::{influx_last_sum, start_influx};
use common::{csv_rows, fixture};

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The binary, or `None` after a visible SKIPPED line.
fn required(test: &str) -> Option<PathBuf> {
    let found =
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("SLUICE_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("SLUICE_REQUIRE_PROMETHEUS=1 but prometheus is not installed");
        }
        eprintln!("SKIPPED {test}: prometheus is not installed (.ci/run installs Debian's prometheus)");
    }
    found
}

/// Prometheus on a free loopback port, scraping `mock` every second, once it has scraped it.
fn start_prometheus(binary: &Path, mock: &MockServer) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mock\n    \
         static_configs:\n      - targets: ['{}']\n",
        mock.addr()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if query(&prometheus.url, "up{job=\"mock\"}").is_some_and(|v| v == 1.0) {
            return prometheus;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("prometheus did not scrape the mock within 60 s");
}

/// One instant query's single value, through Prometheus's API (the test's own client).
fn query(url: &str, q: &str) -> Option<f64> {
    let out = Command::new("curl")
        .args(["-sfG", &format!("{url}/api/v1/query"), "--data-urlencode", &format!("query={q}")])
        .output()
        .ok()?;
    let json: Value = serde_json::from_slice(&out.stdout).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn mock(statuses: &str) -> MockServer {
    spawn_in_thread(MockConfig::default().with_statuses(statuses.parse().unwrap())).unwrap()
}

fn replay(mock: &MockServer, prometheus: &str, duration: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", fixture("unique-targets.log").to_str().unwrap(), "--target", &mock.url()])
        .args(["--rate", "100", "--duration", duration, "--progress", "never", "--prometheus", prometheus])
        .arg("--out")
        .arg(dir.path().join("r.csv"))
        .args(extra)
        .output()
        .unwrap();
    (out, dir)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn prom_assertions_judge_the_targets_own_metrics_over_the_run() {
    let Some(binary) = required("prom_assertions_judge_the_targets_own_metrics_over_the_run") else { return };
    let target = mock("200:90,500:10");
    let prometheus = start_prometheus(&binary, &target);
    let (out, dir) = replay(
        &target,
        &prometheus.url,
        "3s",
        &[
            "--assert",
            "prom:sum(increase(mock_requests_total[$__range])) > 100",
            "--assert",
            "prom:sum(mock_requests_total{status=\"500\"}) == 0",
            "--assert",
            "prom:sum(no_such_metric_total) < 1",
            "--assert",
            "error_rate < 50%",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "two prom assertions fail: {stderr}");
    assert!(stderr.contains("PASS  prom:sum(increase(mock_requests_total[$__range])) > 100"), "{stderr}");
    assert!(stderr.contains("FAIL  prom:sum(mock_requests_total{status=\"500\"}) == 0"), "{stderr}");
    assert!(stderr.contains("FAIL  prom:sum(no_such_metric_total) < 1") && stderr.contains("no sample"), "{stderr}");
    assert!(stderr.contains("PASS  error_rate < 50%"), "CSV assertions still judged: {stderr}");
    // Both ends: what Prometheus scraped from the target equals what sluice wrote.
    // The rows of requests that left (one due at the very end may not have: its row says so).
    let rows =
        csv_rows(&std::fs::read(dir.path().join("r.csv")).unwrap()).iter().filter(|r| r["error"] != "not_sent").count()
            as f64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut scraped = 0.0;
    while Instant::now() < deadline {
        scraped = query(&prometheus.url, "sum(mock_requests_total)").unwrap_or(0.0);
        if scraped == rows {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(scraped, rows, "the target's count, as scraped, is the CSV's");
}

#[test]
fn a_query_prometheus_refuses_exits_2_before_anything_is_sent() {
    let Some(binary) = required("a_query_prometheus_refuses_exits_2_before_anything_is_sent") else { return };
    let target = mock("200");
    let prometheus = start_prometheus(&binary, &target);
    let before = target.count();
    let (out, _dir) = replay(&target, &prometheus.url, "2s", &["--assert", "prom:sum(rate(x[1m]) < 1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad_data") && stderr.contains("prom:sum(rate(x[1m]) < 1"),
        "Prometheus is quoted: {stderr}"
    );
    assert_eq!(target.count(), before, "nothing was sent");
    // A prom: assertion without --prometheus is refused too.
    let alone = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", fixture("unique-targets.log").to_str().unwrap(), "--target", &target.url(), "--rate", "10"])
        .args(["--assert", "prom:up == 1", "--out", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2));
    assert!(text(&alone.stderr).contains("--prometheus"), "{}", text(&alone.stderr));
}

#[test]
fn an_abort_condition_on_the_targets_metrics_stops_the_run_and_a_lost_prometheus_fails() {
    let Some(binary) = required("an_abort_condition_on_the_targets_metrics_stops_the_run") else { return };
    let target = mock("200:50,503:50");
    let prometheus = start_prometheus(&binary, &target);
    let started = Instant::now();
    let (out, _dir) = replay(
        &target,
        &prometheus.url,
        "60s",
        &["--abort-on", "prom:sum(mock_requests_total{status=\"503\"}) > 20", "--prometheus-every", "1s"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(40), "stopped early: {stderr}");
    assert!(stderr.contains("prom:sum(mock_requests_total{status=\"503\"}) > 20"), "the summary names it: {stderr}");

    // Prometheus gone by the end of the run: the assertion fails with the reason.
    let mut prometheus = prometheus;
    let url = prometheus.url.clone();
    let run = std::thread::spawn({
        let target_url = target.url();
        move || {
            Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["replay", fixture("unique-targets.log").to_str().unwrap(), "--target", &target_url])
                .args(["--rate", "50", "--duration", "4s", "--progress", "never", "--prometheus", &url])
                .args(["--assert", "prom:sum(mock_requests_total) > 0", "--out", "/dev/null"])
                .output()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let _ = prometheus.child.kill();
    let _ = prometheus.child.wait();
    let out = run.join().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("FAIL  prom:sum(mock_requests_total) > 0") && stderr.contains("did not answer"),
        "{stderr}"
    );
}

/// InfluxDB 1.x on free loopback ports, with a `sluice` database, or `None` after a visible
/// SKIPPED line.
#[test]
fn pushed_figures_reach_prometheus_and_influx_with_the_csvs_counts() {
    let Some(binary) = required("pushed_figures_reach_prometheus_and_influx_with_the_csvs_counts") else { return };
    let Some(influx) = start_influx("pushed_figures_reach_prometheus_and_influx_with_the_csvs_counts") else { return };
    let target = mock("200:90,500:10");
    let prometheus = start_prometheus(&binary, &target);
    let (out, dir) = replay(
        &target,
        &prometheus.url,
        "6s",
        &[
            "--push",
            &format!("prometheus-remote-write={}/api/v1/write", prometheus.url),
            "--push",
            &format!("influx={}?db=sluice", influx.url),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("  pushed     ") && !stderr.contains("dropped"), "{stderr}");
    let rows = csv_rows(&std::fs::read(dir.path().join("r.csv")).unwrap());
    let sent = rows.iter().filter(|r| r["error"] != "not_sent").count() as f64;
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.path().join("r.manifest.json")).unwrap()).unwrap();
    let run = manifest["run_id"].as_str().unwrap();
    // The points are labelled with the run id the manifest has; the last push has every request.
    let in_prometheus =
        query(&prometheus.url, &format!("sum(sluice_requests_sent_total{{run=\"{run}\",shard=\"0/1\"}})"))
            .unwrap_or(0.0);
    assert_eq!(in_prometheus, sent, "Prometheus has the CSV's count");
    assert_eq!(
        influx_last_sum(&influx.url, "sluice_requests_sent_total", &format!("run = '{run}'")),
        sent,
        "InfluxDB has the CSV's count"
    );
    let errors_5xx = rows.iter().filter(|r| r["status"].starts_with('5')).count() as f64;
    let pushed_5xx =
        query(&prometheus.url, &format!("sum(sluice_responses_total{{run=\"{run}\",status_class=\"5xx\"}})"));
    assert_eq!(pushed_5xx.unwrap_or(0.0), errors_5xx);

    // A push target that is down never slows the run: its points are dropped and counted.
    let started = Instant::now();
    let (out, _dir) = replay(&target, &prometheus.url, "3s", &["--push", "influx=http://127.0.0.1:9?db=x"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert!(stderr.contains("points (influx); ") && stderr.contains(" dropped (last: influx: "), "{stderr}");
}
