//! Comparing: `sluice replay --compare` against two real servers on loopback (`sluice mock`
//! processes whose differences the tests configure), checked on both ends of the wire (each
//! mock's `--record`, and the CSV), and `sluice report` on the result; `--baseline` on two runs
//! where one route was slowed by a known amount.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::PredicateBooleanExt;

/// A `sluice mock` process with `--record`, stopped (SIGTERM, which flushes the record) on drop.
struct Mock {
    child: Child,
    url: String,
    record: PathBuf,
}

impl Mock {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Mock {
        let record = dir.join(format!("{name}.jsonl"));
        let mut child = StdCommand::cargo_bin("sluice")
            .unwrap()
            .args(["mock", "--quiet", "--record", record.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Mock { child, url: url.trim().to_string(), record }
    }

    /// Stops the mock and returns what it received, one JSON object per request.
    fn requests(mut self) -> Vec<serde_json::Value> {
        self.stop();
        let text = std::fs::read_to_string(&self.record).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn stop(&mut self) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

fn sluice() -> Command {
    let mut c = Command::cargo_bin("sluice").unwrap();
    c.timeout(Duration::from_secs(120));
    c
}

/// `per_route` requests to each of /same/N, /changed/N and /broken/N, interleaved.
fn write_log(dir: &Path, per_route: usize) -> PathBuf {
    let mut log = String::new();
    for i in 0..per_route {
        for route in ["same", "changed", "broken"] {
            log += &format!(
                "127.0.0.1 - - [21/Nov/2026:14:03:{:02} +0000] \"GET /{route}/{i}?q={i} HTTP/1.1\" 200 3 \"-\" \"ua/1\"\n",
                i % 60
            );
        }
    }
    let path = dir.join("access.log");
    std::fs::write(&path, log).unwrap();
    path
}

/// The CSV as rows of column → value (the --compare columns included).
fn rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
        .collect()
}

fn route_of(url: &str) -> String {
    common::path_of(url).split('/').nth(1).unwrap().to_string()
}

/// (route, column value) → rows.
fn count_by(rows: &[HashMap<String, String>], column: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry((route_of(&row["url"]), row[column].clone())).or_default() += 1;
    }
    counts
}

fn expect(entries: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    entries.iter().map(|(r, v, n)| ((r.to_string(), v.to_string()), *n)).collect()
}

const BODY: &str = r#"{"v":1,"now":{now}}"#;
const PER_ROUTE: usize = 20;

/// Candidate: `/changed/*` answers another body, `/broken/*` answers 500; both put the answer's
/// time in `now`.
fn candidate(dir: &Path) -> Mock {
    Mock::start(
        dir,
        "candidate",
        &["--body", BODY, "--body-rule", r#"/changed/*={"v":2,"now":{now}}"#, "--rule", "/broken/*=500"],
    )
}

fn baseline(dir: &Path, name: &str) -> Mock {
    Mock::start(dir, name, &["--body", BODY])
}

fn replay(log: &Path, target: &Mock, out: &Path, extra: &[&str]) {
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &target.url, "--rate", "200", "--concurrency", "8"])
        .args(["--seq-header", "X-Sluice-Seq", "--out", out.to_str().unwrap()])
        .args(extra)
        .assert()
        .success();
}

#[test]
fn the_csv_agrees_and_differs_exactly_where_the_two_servers_were_made_to() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), PER_ROUTE);
    let (a, b) = (candidate(dir.path()), baseline(dir.path(), "baseline"));
    let out = dir.path().join("ab.csv");
    replay(&log, &a, &out, &["--compare", &b.url, "--ignore-json-path", "$.now"]);

    let rows = rows(&out);
    assert_eq!(rows.len(), 3 * PER_ROUTE);
    let n = PER_ROUTE;
    assert_eq!(
        count_by(&rows, "same_status"),
        expect(&[("broken", "false", n), ("changed", "true", n), ("same", "true", n)])
    );
    assert_eq!(
        count_by(&rows, "same_body"),
        expect(&[("broken", "true", n), ("changed", "false", n), ("same", "true", n)])
    );
    assert_eq!(
        count_by(&rows, "b_status"),
        expect(&[("broken", "200", n), ("changed", "200", n), ("same", "200", n)]),
        "the baseline answered everything"
    );
    for row in &rows {
        assert_eq!(row["body_compared_as"], "normalised");
        assert_eq!(row["noise"], "", "no --compare-noise");
        assert_eq!(row["a_digest"].len(), 16);
        assert_eq!(row["same_body"] == "true", row["a_digest"] == row["b_digest"]);
        assert!(row["b_latency_ms"].parse::<f64>().unwrap() >= 0.0);
        assert!(row["b_bytes"].parse::<u64>().unwrap() > 0);
    }

    // The other end of the wire: each server got every request once, the same way.
    let (got_a, got_b) = (a.requests(), b.requests());
    let by_seq = |got: &[serde_json::Value]| -> BTreeMap<String, serde_json::Value> {
        got.iter()
            .map(|r| {
                let headers: Vec<&serde_json::Value> =
                    r["headers"].as_array().unwrap().iter().filter(|h| h[0] != "host").collect();
                let seq = headers.iter().find(|h| h[0] == "x-sluice-seq").unwrap()[1].as_str().unwrap().to_string();
                (seq, serde_json::json!([r["method"], r["target"], headers]))
            })
            .collect()
    };
    let (seen_a, seen_b) = (by_seq(&got_a), by_seq(&got_b));
    assert_eq!((got_a.len(), got_b.len()), (3 * PER_ROUTE, 3 * PER_ROUTE), "each request once on each side");
    assert_eq!(seen_a.len(), 3 * PER_ROUTE, "every seq once");
    assert_eq!(seen_a, seen_b, "the same method, path and headers (Host aside) on both");
    for row in &rows {
        assert!(seen_a.contains_key(&row["seq"]), "row {} was received", row["seq"]);
    }
}

#[test]
fn the_timestamp_is_a_difference_until_its_json_path_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), PER_ROUTE);
    let (a, b) = (candidate(dir.path()), baseline(dir.path(), "baseline"));
    let out = dir.path().join("raw.csv");
    replay(&log, &a, &out, &["--compare", &b.url]);
    let raw = rows(&out);
    assert!(raw.iter().all(|r| r["same_body"] == "false" && r["body_compared_as"] == "bytes"), "`now` differs");
    // --ignore-regex removes it as well, in the raw text.
    let out = dir.path().join("regex.csv");
    replay(&log, &a, &out, &["--compare", &b.url, "--ignore-regex", r#""now":[0-9]+"#]);
    let n = PER_ROUTE;
    assert_eq!(
        count_by(&rows(&out), "same_body"),
        expect(&[("broken", "true", n), ("changed", "false", n), ("same", "true", n)])
    );
}

#[test]
fn a_difference_both_baselines_show_is_noise_and_the_report_counts_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), PER_ROUTE);
    let (a, b, b2) = (candidate(dir.path()), baseline(dir.path(), "baseline"), baseline(dir.path(), "baseline2"));
    let out = dir.path().join("noise.csv");
    // No ignore rule: `now` differs everywhere, and the second baseline tells it is noise.
    replay(&log, &a, &out, &["--compare", &b.url, "--compare-noise", &b2.url]);
    let n = PER_ROUTE;
    assert_eq!(
        count_by(&rows(&out), "noise"),
        expect(&[("broken", "body", n), ("changed", "none", n), ("same", "body", n)]),
        "only `v` on /changed and the 500s on /broken are not noise"
    );
    assert_eq!(b2.requests().len(), 3 * PER_ROUTE, "the second baseline got every request too");

    let json = sluice()
        .args(["report", out.to_str().unwrap(), "--format", "json"])
        .args([
            "--assert",
            "route:/changed/* body_mismatches == 20",
            "--assert",
            "route:/broken/* status_mismatches == 20",
        ])
        .args(["--assert", "route:/same/* body_mismatch_rate == 0", "--assert", "status_mismatch_rate < 40%"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let overall = &report["compare"]["overall"];
    assert_eq!((overall["compared"].as_u64(), overall["noise"].as_u64()), (Some(60), Some(40)));
    assert_eq!((overall["status_mismatches"].as_u64(), overall["body_mismatches"].as_u64()), (Some(20), Some(20)));
    let routes = report["compare"]["routes"].as_array().unwrap();
    let changed = routes.iter().find(|r| r["route"] == "/changed/{id}").unwrap();
    let example = &changed["body_example"];
    assert!(example["url"].as_str().unwrap().contains("/changed/"), "{example}");
    assert!(example["seq"].as_u64().unwrap() % 3 == 1, "a /changed request's seq: {example}");
    assert!(changed.get("status_example").is_none());

    // The same table in Markdown and HTML.
    for (format, title) in [("markdown", "## Target vs baseline"), ("html", "<h2>Target vs baseline (--compare)</h2>")]
    {
        sluice()
            .args(["report", out.to_str().unwrap(), "--format", format])
            .assert()
            .success()
            .stdout(predicates::str::contains(title).and(predicates::str::contains("/changed/{id}")));
    }

    // The same assertions fail (exit 1) when they do not hold, and say what was measured.
    sluice()
        .args(["report", out.to_str().unwrap(), "--assert", "body_mismatch_rate < 10%"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("body_mismatch_rate = 33.3% (20 of 60)"))
        .stdout(predicates::str::contains("/changed/{id} body differs, e.g. seq"));
}

#[test]
fn a_route_slowed_by_a_known_amount_is_flagged_against_the_baseline_run_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = runs_before_and_after_slowing_one_route(dir.path());

    let json = sluice()
        .args(["report", new.to_str().unwrap(), "--baseline", old.to_str().unwrap(), "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(report["baseline"]["changed_routes"], serde_json::json!(["/changed/{id}"]), "{}", report["baseline"]);
    let changed = &report["baseline"]["routes"][0];
    assert_eq!(changed["latency"]["change"], "slower");
    let p50 = &changed["latency"]["p50"];
    // The 50 ms are all there; what the old run measured depends on how busy the machine was.
    assert!(p50["new_ms"].as_f64().unwrap() >= 50.0 && p50["low"].as_f64().unwrap() > 1.1, "{p50}");

    // Assertions naming the baseline: the slowed route's p50 is not below its old one (50 ms
    // against a loopback answer), and a run measured against itself is exactly its baseline.
    sluice()
        .args(["report", new.to_str().unwrap(), "--baseline", old.to_str().unwrap()])
        .args(["--assert", "route:/changed/* p50 < 1 of baseline"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("This run vs the baseline"))
        .stdout(predicates::str::contains("changed: /changed/{id}"))
        .stdout(predicates::str::contains("FAIL  route:/changed/* p50 < 1 of baseline"));
    sluice()
        .args(["report", new.to_str().unwrap(), "--baseline", new.to_str().unwrap()])
        .args(["--assert", "p99 <= 100% of baseline", "--assert", "route:/same/* error_rate <= 1 of baseline"])
        .assert()
        .success()
        .stdout(predicates::str::contains("no route changed beyond the noise"));
    sluice()
        .args(["report", new.to_str().unwrap(), "--baseline", new.to_str().unwrap()])
        .args(["--assert", "p99 < 1 of baseline"])
        .assert()
        .code(1);
}

/// `sluice report CSV --format html --out …` and the page it wrote.
fn html_report(csv: &Path, extra: &[&str]) -> String {
    let html = csv.with_extension("html");
    sluice()
        .args(["report", csv.to_str().unwrap(), "--format", "html", "--out", html.to_str().unwrap()])
        .args(extra)
        .assert()
        .success();
    std::fs::read_to_string(html).unwrap()
}

#[test]
fn the_html_report_draws_b_beside_a_where_the_two_servers_delays_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 40);
    let a = Mock::start(dir.path(), "target", &["--latency", "60ms", "--rule", "/changed/*=120ms"]);
    let b = Mock::start(dir.path(), "baseline", &["--latency", "10ms"]);
    let out = dir.path().join("ab.csv");
    replay(&log, &a, &out, &["--compare", &b.url]);

    let html = html_report(&out, &[]);
    let p50 = |curve: &str| common::marked_ms(&html, curve, "50%");
    // A delay is a floor: a busy machine adds to it, never takes from it.
    let near = |ms: f64, delay: f64| (delay..delay + 30.0).contains(&ms);
    for (curve, delay) in [
        ("all requests · A (target)", 60.0),
        ("all requests · B (baseline target)", 10.0),
        ("/changed/{id} · A (target)", 120.0),
        ("/changed/{id} · B (baseline target)", 10.0),
        ("/same/{id} · A (target)", 60.0),
        ("/same/{id} · B (baseline target)", 10.0),
    ] {
        assert!(near(p50(curve), delay), "{curve}: p50 {} ms, the delay {delay} ms", p50(curve));
    }
    // The legend names both targets, as the run's manifest has them.
    assert!(
        html.contains(&format!("A (target) {}", a.url)) && html.contains(&format!("B (baseline target) {}", b.url))
    );
    // B's line beside A's in each route's chart over time, and in its tooltips.
    assert!(html.contains("<h2>Latency over time by route</h2>"));
    assert!(html.contains("\nB (baseline target): answered "), "B's figures in the route charts' tooltips");
    assert!(
        html.contains(&format!("<dt>compared with</dt><dd><code>{}</code> (B, the baseline target: A/B run)", b.url)),
        "the run's metadata says it was an A/B run and against what"
    );
}

#[test]
fn the_html_report_draws_the_baseline_runs_curves_and_only_the_slowed_route_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = runs_before_and_after_slowing_one_route(dir.path());

    let html = html_report(&new, &["--baseline", old.to_str().unwrap()]);
    let moved = |route: &str| {
        let p50 = |side: &str| common::marked_ms(&html, &format!("{route} · {side}"), "50%");
        p50("this run: new.csv") - p50("baseline: old.csv")
    };
    let changed = moved("/changed/{id}");
    assert!((40.0..80.0).contains(&changed), "/changed/* moved by {changed} ms, slowed by 50");
    // Two routes of three unchanged: the median request did not move either.
    for route in ["/same/{id}", "/broken/{id}", "all requests"] {
        assert!(moved(route).abs() < 10.0, "{route} moved by {} ms", moved(route));
    }
    assert!(html.contains("time since each run&#39;s start"), "the runs lined up on their own starts");
    assert!(html.contains("\nbaseline: old.csv: answered "), "the baseline's figures in the route charts' tooltips");
}

#[test]
fn comparison_flags_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 1);
    let out = dir.path().join("never.csv");
    let run = |extra: &[&str]| {
        sluice()
            .args(["replay", log.to_str().unwrap(), "--target", "http://127.0.0.1:9", "--rate", "10"])
            .args(["--out", out.to_str().unwrap()])
            .args(extra)
            .assert()
            .code(2)
    };
    run(&["--ignore-json-path", "$.now"]).stderr(predicates::str::contains("--ignore-json-path: compares the target"));
    run(&["--compare", "http://127.0.0.1:8", "--ignore-json-path", "now"])
        .stderr(predicates::str::contains("does not start with $"));
    run(&["--compare", "mock"]).stderr(predicates::str::contains("--compare: a baseline is a URL"));
    // The host guard judges the baseline as it judges the target.
    run(&["--compare", "http://127.0.0.2:8", "--deny-host", "127.0.0.2"])
        .stderr(predicates::str::contains("--compare: ").and(predicates::str::contains("127.0.0.2")));
    assert!(!out.exists());
    sluice()
        .args(["report", out.to_str().unwrap(), "--assert", "p99 < 1.1 of baseline"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`of baseline` needs --baseline"));
}

/// Two runs of one log, `old.csv` against a plain mock and `new.csv` against one that answers
/// `/changed/*` 50 ms later. They go at the same time, so a busy machine slows both alike (on a
/// shared 2-core machine, one run after the other saw loopback latencies 7× apart on untouched
/// routes).
fn runs_before_and_after_slowing_one_route(dir: &Path) -> (PathBuf, PathBuf) {
    let log = write_log(dir, 100);
    let fast = Mock::start(dir, "fast", &[]);
    let slow = Mock::start(dir, "slow", &["--rule", "/changed/*=50ms"]);
    let (old, new) = (dir.join("old.csv"), dir.join("new.csv"));
    std::thread::scope(|s| {
        s.spawn(|| replay(&log, &fast, &old, &[]));
        s.spawn(|| replay(&log, &slow, &new, &[]));
    });
    (old, new)
}
