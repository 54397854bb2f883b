//! Traffic shapes against a real nginx on loopback: what sluice planned (the CSV's
//! `scheduled_at`) is checked against a plan computed here independently, and what nginx logged
//! (`$msec $request_uri`) against both.
//!
//! nginx runs as the current user from a temporary prefix (no daemon, no master process, every
//! file in a tempdir). Without nginx these tests print SKIPPED; with `SLUICE_REQUIRE_NGINX=1`
//! (which `.ci/run` sets after installing it) they fail instead. Each run lasts at most ~8 s.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::time::Duration;

use sluice::analysis::rows::RowReader;

mod common;

/// An nginx answering `200` to everything on 127.0.0.1, logging `$msec $request_uri`.
struct Nginx {
    nginx: common::nginx::Nginx,
    port: u16,
}

impl Nginx {
    /// `None` (after a visible SKIPPED line) when nginx is not installed.
    fn start(test: &str) -> Option<Nginx> {
        let binary = common::nginx::required(test)?;
        // A free port: bound by the OS, then released for nginx (nothing else here races for it).
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let nginx =
            common::nginx::Nginx::start(&binary, &[], &format!("127.0.0.1:{port}"), "$msec $request_uri", || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        Some(Nginx { nginx, port })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What nginx logged: (time the request was logged, seconds since the epoch; URI).
    fn requests(&self) -> Vec<(f64, String)> {
        self.nginx
            .access_log()
            .lines()
            .map(|l| {
                let (msec, uri) = l.split_once(' ').unwrap_or_else(|| panic!("an access log line: {l}"));
                (msec.parse().unwrap(), uri.to_string())
            })
            .collect()
    }
}

/// One row of the results CSV, as the test needs it.
struct Sent {
    seq: u64,
    url: String,
    scheduled_ms: i64,
    sent: bool,
}

fn read_csv(path: &Path) -> Vec<Sent> {
    let mut reader = RowReader::open(path).unwrap();
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        let row = row.unwrap_or_else(|e| panic!("{e}"));
        let path = row.url.split_once("127.0.0.1").map_or(row.url, |(_, rest)| &rest[rest.find('/').unwrap()..]);
        rows.push(Sent { seq: row.seq, url: path.to_string(), scheduled_ms: row.scheduled_ms, sent: row.was_sent() });
    }
    rows.sort_by_key(|r| r.seq);
    rows
}

/// Runs `sluice replay LOG --target nginx ARGS`; returns the CSV's rows and the summary JSON.
fn replay(nginx: &Nginx, log: &Path, args: &[&str], name: &str) -> (Vec<Sent>, serde_json::Value) {
    let dir = log.parent().unwrap();
    let (csv, json) = (dir.join(format!("{name}.csv")), dir.join(format!("{name}.json")));
    let output = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .timeout(Duration::from_secs(60))
        .args(["replay", log.to_str().unwrap(), "--target", &nginx.url(), "--progress", "never"])
        .args(["--out", csv.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (read_csv(&csv), summary)
}

/// A combined log line for `uri`, logged at whole second `second` after 10:00:00.
fn combined(second: u64, uri: &str) -> String {
    let (m, s) = (second / 60, second % 60);
    format!("10.0.0.1 - - [21/Nov/2026:10:{m:02}:{s:02} +0000] \"GET {uri} HTTP/1.1\" 200 3 \"-\" \"shapes-test\"")
}

/// The plan the timeline rules give, computed here from scratch: the n requests logged in one
/// whole second are spread at second + k/n; each silence between consecutive requests is capped
/// at `max_gap`; everything is divided by `speed`.
fn logged_plan(seconds: &[(u64, usize)], speed: f64, max_gap: f64) -> Vec<f64> {
    let logged: Vec<f64> =
        seconds.iter().flat_map(|&(s, n)| (0..n).map(move |k| s as f64 + k as f64 / n as f64)).collect();
    let mut due = vec![0.0];
    for w in logged.windows(2) {
        due.push(due.last().unwrap() + (w[1] - w[0]).min(max_gap));
    }
    due.iter().map(|d| d / speed).collect()
}

fn lag_p99_ms(summary: &serde_json::Value) -> f64 {
    summary["lag"]["p99_ms"].as_f64().unwrap()
}

#[test]
fn logged_timing_at_speed_4_with_bursts_and_a_capped_silence_follows_the_plan() {
    let Some(nginx) = Nginx::start("logged_timing_at_speed_4") else { return };
    // 12 logged seconds of bursts (10 to 70 requests in one second), a minute of silence, 12 more.
    let seconds: Vec<(u64, usize)> = (0..12u64).chain(72..84).map(|s| (s, 10 + (s as usize * 37) % 61)).collect();
    let mut lines: Vec<String> = Vec::new();
    for &(second, n) in &seconds {
        for _ in 0..n {
            let uri = format!("/a/{}", lines.len());
            lines.push(combined(second, &uri));
        }
    }
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("bursts.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let plan = logged_plan(&seconds, 4.0, 2.0);
    // (11 s + the capped 2 s + 11 s and a bit) ÷ 4: about 6.2 s.
    assert!(plan.last().unwrap() < &7.0);

    let (rows, summary) = replay(&nginx, &log, &["--speed", "4", "--max-gap", "2s"], "speed");
    assert_eq!(rows.len(), plan.len(), "one row per logged request");
    // Every row's scheduled_at − T0 is the plan, within the CSV's millisecond precision.
    let t0 = rows[0].scheduled_ms;
    for row in &rows {
        let i: usize = row.url.trim_start_matches("/a/").parse().unwrap();
        let offset_ms = (row.scheduled_ms - t0) as f64;
        assert!(
            (offset_ms - plan[i] * 1e3).abs() <= 1.0,
            "{}: scheduled {offset_ms} ms after T0, planned {:.3} ms",
            row.url,
            plan[i] * 1e3
        );
        assert!(row.sent, "{} was not sent", row.url);
    }
    // nginx got every request once, and per second of the run about as many as planned.
    let received = nginx.requests();
    let mut uris: Vec<&str> = received.iter().map(|(_, u)| u.as_str()).collect();
    uris.sort_unstable();
    let mut planned_uris: Vec<String> = (0..plan.len()).map(|i| format!("/a/{i}")).collect();
    planned_uris.sort_unstable();
    assert_eq!(uris, planned_uris.iter().map(String::as_str).collect::<Vec<_>>());
    let per_second = |times: &mut dyn Iterator<Item = f64>| {
        let mut bins: BTreeMap<i64, i64> = BTreeMap::new();
        for t in times {
            *bins.entry(t.floor() as i64).or_default() += 1;
        }
        bins
    };
    let want = per_second(&mut plan.iter().copied());
    let got = per_second(&mut received.iter().map(|(t, _)| t - t0 as f64 / 1e3));
    for (second, &n) in &want {
        let g = got.get(second).copied().unwrap_or(0);
        // Generous: a request near a second's edge can land in the next one on a loaded machine.
        assert!((g - n).abs() <= 15 + n / 10, "second {second}: nginx logged {g}, planned {n}; all {got:?}");
    }
    let lag = lag_p99_ms(&summary);
    eprintln!("logged timing ×4: lag p99 {lag:.3} ms over {} requests", rows.len());
    assert!(lag < 100.0, "lag p99 {lag} ms");
}

const STAGES: &str = "2s:0-400,3s:400,2s:400-0";
/// The requests each stage plans: the area under its rate.
const PER_STAGE: [(f64, f64, f64); 3] = [(0.0, 2.0, 400.0), (2.0, 5.0, 1200.0), (5.0, 7.0, 400.0)];

fn stage_log(dir: &Path) -> PathBuf {
    let lines: Vec<String> = (0..500).map(|i| combined(i / 100, &format!("/b/{i}"))).collect();
    let log = dir.join("stages.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    log
}

/// Rows planned in each stage, from `scheduled_at − T0`.
fn counts_per_stage(rows: &[Sent]) -> Vec<f64> {
    let t0 = rows.iter().map(|r| r.scheduled_ms).min().unwrap();
    PER_STAGE
        .iter()
        .map(|&(from, to, _)| {
            rows.iter()
                .filter(|r| {
                    let at = (r.scheduled_ms - t0) as f64 / 1e3;
                    at >= from && at < to
                })
                .count() as f64
        })
        .collect()
}

fn all_received(nginx: &Nginx, rows: &[Sent]) {
    let mut sent: HashMap<&str, i64> = HashMap::new();
    for r in rows.iter().filter(|r| r.sent) {
        *sent.entry(r.url.as_str()).or_default() += 1;
    }
    let mut got: HashMap<&str, i64> = HashMap::new();
    let received = nginx.requests();
    for (_, uri) in &received {
        *got.entry(uri.as_str()).or_default() += 1;
    }
    assert_eq!(got, sent, "nginx received exactly what the CSV says was sent");
}

#[test]
fn uniform_stages_plan_each_stage_within_one_and_nginx_receives_them_all() {
    let Some(nginx) = Nginx::start("uniform_stages") else { return };
    let work = tempfile::tempdir().unwrap();
    let (rows, summary) = replay(&nginx, &stage_log(work.path()), &["--stages", STAGES], "uniform");
    assert_eq!(rows.len(), 2000);
    for (got, (_, _, want)) in counts_per_stage(&rows).iter().zip(PER_STAGE) {
        // ±1 for the plan, ±1 more for the CSV's millisecond rounding at a stage's edge.
        assert!((got - want).abs() <= 2.0, "stage planned {got}, the integral says {want}");
    }
    assert!(rows.iter().all(|r| r.sent));
    all_received(&nginx, &rows);
    let curve = summary["plan_curve"].as_array().expect("a plan curve for stages");
    assert_eq!(curve.iter().map(|p| p["planned"].as_u64().unwrap()).sum::<u64>(), 2000);
    let lag = lag_p99_ms(&summary);
    eprintln!("stages 0-400-0: lag p99 {lag:.3} ms");
    assert!(lag < 100.0, "lag p99 {lag} ms");
}

#[test]
fn poisson_stages_with_a_seed_repeat_exactly_and_nginx_receives_them_all() {
    let Some(nginx) = Nginx::start("poisson_stages") else { return };
    let work = tempfile::tempdir().unwrap();
    let log = stage_log(work.path());
    let args = ["--stages", STAGES, "--arrivals", "poisson", "--seed", "7"];
    let (first, summary) = replay(&nginx, &log, &args, "poisson-1");
    assert_eq!(summary["seed"], 7);
    // The run plans exactly as many requests as the even plan; each stage about its share.
    assert_eq!(first.len(), 2000);
    for (got, (_, _, want)) in counts_per_stage(&first).iter().zip(PER_STAGE) {
        // Poisson counts: far looser than ±1, far tighter than chance would let through by error.
        assert!((got - want).abs() <= 5.0 * want.sqrt(), "stage planned {got}, the integral says {want}");
    }
    all_received(&nginx, &first);
    let offsets = |rows: &[Sent]| {
        let t0 = rows[0].scheduled_ms;
        rows.iter().map(|r| r.scheduled_ms - t0).collect::<Vec<_>>()
    };
    let (again, _) = replay(&nginx, &log, &args, "poisson-2");
    let (a, b) = (offsets(&first), offsets(&again));
    assert_eq!(a.len(), b.len());
    // The same due times: equal up to the CSV's millisecond rounding of each run's own T0.
    for (seq, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1, "request {seq}: {x} ms after T0, then {y} ms");
    }
    let uniform: Vec<i64> =
        (0..a.len()).map(|n| a[n] - (1000.0 * uniform_due(n as f64)).floor() as i64).map(i64::abs).collect();
    assert!(uniform.iter().any(|d| *d > 5), "Poisson arrivals differ from the even plan");
}

/// Due time of request `n` of [`STAGES`] with even arrivals (the inverse of its integral).
fn uniform_due(n: f64) -> f64 {
    match n {
        n if n < 400.0 => (n / 100.0).sqrt(),
        n if n < 1600.0 => 2.0 + (n - 400.0) / 400.0,
        n => 7.0 - ((2000.0 - n) / 100.0).sqrt(),
    }
}
