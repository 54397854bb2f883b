//! Traffic shapes as a user runs them: `--speed`, `--stages`, `--arrivals poisson`, against the
//! built-in mock, checking the plan in the CSV's `scheduled_at` against one computed here.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::NaiveDateTime;

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A combined-log line for `GET /p{n}` logged `second` seconds after 08:00:00.
fn line(n: usize, second: u32) -> String {
    format!(
        "127.0.0.1 - - [20/Nov/2026:08:{:02}:{:02} +0000] \"GET /p{n} HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n",
        second / 60,
        second % 60
    )
}

fn write_log(dir: &Path, seconds: &[u32]) -> std::path::PathBuf {
    let path = dir.join("access.log");
    let text: String = seconds.iter().enumerate().map(|(n, s)| line(n, *s)).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `sluice replay` against the mock; returns (exit code, stderr, rows).
fn replay(
    log: &Path,
    out: &Path,
    args: &[&str],
) -> (Option<i32>, String, Vec<std::collections::HashMap<String, String>>) {
    let output = sluice()
        .arg("replay")
        .arg(log)
        .args(["--target", "mock", "--progress", "never", "-o"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let rows = std::fs::read(out).map(|b| common::csv_rows(&b)).unwrap_or_default();
    (output.status.code(), stderr, rows)
}

/// Each row's `scheduled_at` in seconds after the first row's, in `seq` order.
fn scheduled_offsets(rows: &[std::collections::HashMap<String, String>]) -> Vec<f64> {
    let mut rows: Vec<_> = rows.iter().collect();
    rows.sort_by_key(|r| r["seq"].parse::<u64>().unwrap());
    let at = |r: &std::collections::HashMap<String, String>| {
        NaiveDateTime::parse_from_str(&r["scheduled_at"], "%Y-%m-%d %H:%M:%S%.3f").unwrap().and_utc().timestamp_millis()
    };
    let t0 = at(rows[0]);
    rows.iter().map(|r| (at(r) - t0) as f64 / 1000.0).collect()
}

#[test]
fn speed_replays_logged_gaps_divided_by_speed_with_silences_capped() {
    let dir = tempfile::tempdir().unwrap();
    // A burst of four in one second, two in the next, a minute of silence, then three and one.
    let log = write_log(dir.path(), &[0, 0, 0, 0, 1, 1, 61, 61, 61, 62]);
    let out = dir.path().join("out.csv");
    let (code, stderr, rows) = replay(&log, &out, &["--speed", "4", "--max-gap", "2s"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("logged timing ×4, gaps capped at 2s"), "{stderr}");
    // The timeline: whole seconds spread evenly; the 59.5 s silence capped at 2 s; ÷ 4.
    let log_clock = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 3.5, 3.5 + 1.0 / 3.0, 3.5 + 2.0 / 3.0, 4.5];
    let got = scheduled_offsets(&rows);
    assert_eq!(got.len(), log_clock.len());
    for (n, (got, clock)) in got.iter().zip(log_clock).enumerate() {
        // scheduled_at has millisecond precision: both ends are rounded.
        assert!((got - clock / 4.0).abs() <= 0.0011, "request {n}: {got} s, planned {} s", clock / 4.0);
    }
    // The server got every request, in log order.
    let paths: Vec<String> = {
        let mut rows: Vec<_> = rows.iter().collect();
        rows.sort_by_key(|r| r["seq"].parse::<u64>().unwrap());
        rows.iter().map(|r| common::path_of(&r["url"])).collect()
    };
    assert_eq!(paths, (0..10).map(|n| format!("/p{n}")).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| !r["status"].is_empty() && r["error"].is_empty()), "every request answered");
}

#[test]
fn stages_plan_their_integral_and_poisson_repeats_with_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), &(0..50).collect::<Vec<_>>());
    // 1 s ramp 0 → 100 (50 requests), 1 s at 100 (100), 0.5 s ramp 100 → 0 (25): 175 in 2.5 s.
    let stages = "1s:0-100,1s:100,500ms:100-0";
    let out = dir.path().join("stages.csv");
    let (code, stderr, rows) = replay(&log, &out, &["--stages", stages]);
    assert_eq!(code, Some(0), "{stderr}");
    let offsets = scheduled_offsets(&rows);
    let in_stage = |from: f64, to: f64| offsets.iter().filter(|t| **t >= from - 0.0005 && **t < to - 0.0005).count();
    assert!(in_stage(0.0, 1.0).abs_diff(50) <= 1, "ramp up: {}", in_stage(0.0, 1.0));
    assert!(in_stage(1.0, 2.0).abs_diff(100) <= 1, "steady: {}", in_stage(1.0, 2.0));
    assert!(in_stage(2.0, 2.5).abs_diff(25) <= 1, "ramp down: {}", in_stage(2.0, 2.5));
    assert!(rows.len().abs_diff(175) <= 1, "{} rows", rows.len());

    let poisson = |name: &str| {
        let out = dir.path().join(name);
        let (code, stderr, rows) = replay(&log, &out, &["--stages", stages, "--arrivals", "poisson", "--seed", "7"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("--seed 7 repeats these due times"), "{stderr}");
        scheduled_offsets(&rows)
    };
    let (a, b) = (poisson("p1.csv"), poisson("p2.csv"));
    assert_eq!(a.len(), 175, "a bounded Poisson run plans exactly the even count");
    let differ = a.iter().zip(&b).filter(|(x, y)| (*x - *y).abs() > 0.0011).count();
    assert_eq!(differ, 0, "the same seed gives the same plan");
    assert_ne!(a, offsets, "Poisson is not the even plan");
}

#[test]
fn a_dry_run_prints_the_first_due_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), &[0, 0, 2, 3]);
    let output = sluice()
        .args(["replay", "--dry-run", "--target", "http://127.0.0.1:9", "--speed", "2"])
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("plan       logged timing ×2"), "{stderr}");
    for due in ["+0.000s  GET", "+0.250s  GET", "+1.000s  GET", "+1.500s  GET"] {
        assert!(stderr.contains(due), "{due} missing from:\n{stderr}");
    }
}

#[test]
fn bad_shapes_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), &[0, 1]);
    let cases: [(&[&str], &str); 7] = [
        (&["--stages", "30s:0-fast"], "--stages: '30s:0-fast': 'fast' is not a rate"),
        (&["--stages", "ten"], "--stages: 'ten' has no ':'"),
        (&["--speed", "0"], "--speed: '0' must be a number from 0.001 to 1000"),
        (&["--speed", "-1"], "--speed: '-1' must be a number"),
        (&["--speed", "2", "--rate", "10"], "--speed: cannot be combined with --rate"),
        (&["--rate", "10", "--arrivals", "bursty"], "--arrivals: 'bursty' is not an arrival kind"),
        (&["--rate", "10", "--max-gap", "1s"], "--max-gap: caps the silences of --speed"),
    ];
    for (args, message) in cases {
        let (code, stderr, _) = replay(&log, &dir.path().join("x.csv"), args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in {stderr}");
    }
    // A format without times cannot be replayed at its own timing.
    std::fs::write(dir.path().join("bare.log"), "GET /a HTTP/1.1\n").unwrap();
    let (code, stderr, _) = replay(
        &dir.path().join("bare.log"),
        &dir.path().join("y.csv"),
        &["--format", "nginx:$request", "--speed", "2"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--speed replays the logged times") && stderr.contains("logs no time"), "{stderr}");
}
