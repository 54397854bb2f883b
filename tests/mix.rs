//! `--mix` as a user runs it, against a mock server on 127.0.0.1: what the server received per
//! route, what the CSV and the summary say, and the refusals of a mix that does not parse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use predicates::prelude::*;
use sluice::plan::filter::Sample;
use sluice::plan::mix::Mix;
use sluice::plan::{PlanRules, Planner, Skip};
use sluice_mock::{MockConfig, MockServer, spawn_in_thread};
use sluice_parsers::Format;

mod common;
use common::csv_rows;

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

/// Which part of the log a path belongs to, as the tests count them.
fn route_of(path: &str) -> &'static str {
    ["/api/", "/static/", "/other/"].into_iter().find(|p| path.starts_with(p)).expect("a path of the test log")
}

/// 300 combined-log lines: line n asks for /api/items/n, /static/app-n.js or /other/n in turn.
fn write_log(dir: &Path) -> (PathBuf, Vec<String>) {
    let targets: Vec<String> = (1..=300)
        .map(|n| match n % 3 {
            0 => format!("/api/items/{n}?page=2"),
            1 => format!("/static/app-{n}.js"),
            _ => format!("/other/{n}"),
        })
        .collect();
    let log: String = targets
        .iter()
        .map(|t| format!("10.0.0.1 - - [21/Nov/2026:14:00:00 +0000] \"GET {t} HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n"))
        .collect();
    let path = dir.join("access.log");
    std::fs::write(&path, log).unwrap();
    (path, targets)
}

struct Replayed {
    /// Requests the server received, by route.
    received: BTreeMap<&'static str, u64>,
    /// CSV rows by route.
    rows: BTreeMap<&'static str, u64>,
    /// (seq, log_line) of every row, in seq order.
    seq_lines: Vec<(u64, u64)>,
    summary: serde_json::Value,
}

fn replay(log: &Path, server: &MockServer, flags: &[&str]) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "2000", "--format", "nginx"])
        .args(["--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap(), "--progress", "never"])
        .args(flags)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let mut received = BTreeMap::new();
    for r in server.take_requests() {
        *received.entry(route_of(&r.target)).or_default() += 1;
    }
    let csv = csv_rows(&std::fs::read(&out).unwrap());
    let mut rows = BTreeMap::new();
    let mut seq_lines = Vec::new();
    for row in &csv {
        *rows.entry(route_of(&common::path_of(&row["url"]))).or_default() += 1;
        seq_lines.push((row["seq"].parse().unwrap(), row["log_line"].parse().unwrap()));
    }
    seq_lines.sort_unstable();
    let summary = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    Replayed { received, rows, seq_lines, summary }
}

/// What the library's own mix plans for the test log's lines of one route, on the first pass.
fn expected(mix: &Mix, targets: &[String], route: &str, keep: impl Fn(u64) -> bool) -> u64 {
    (1..=targets.len() as u64)
        .filter(|&line| route_of(&targets[line as usize - 1]) == route && keep(line))
        .map(|line| u64::from(mix.copies(targets[line as usize - 1].as_bytes(), 0, line, 1)))
        .sum()
}

#[test]
fn the_mix_reweights_routes_on_the_wire_in_the_csv_and_in_the_summary() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, targets) = write_log(dir.path());
    let spec = "/api/*=3,/static/*=0.5";
    let run = replay(&log, &server, &["--mix", spec]);

    let half = expected(&Mix::parse(spec, 0).unwrap(), &targets, "/static/", |_| true);
    assert!((30..=70).contains(&half), "about half of the 100 static requests, got {half}");
    let want = BTreeMap::from([("/api/", 300), ("/other/", 100), ("/static/", half)]);
    assert_eq!(run.received, want, "what the server received");
    assert_eq!(run.rows, want, "what the CSV says");

    // One plan, numbered without gaps; the three copies of an /api line follow each other.
    let total = 400 + half;
    assert_eq!(run.seq_lines.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (0..total).collect::<Vec<_>>());
    let lines: Vec<u64> = run.seq_lines.iter().map(|(_, line)| *line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "copies stay in log order");
    for line in (3..=300).step_by(3) {
        assert_eq!(lines.iter().filter(|&&l| l == line).count(), 3, "/api line {line} three times");
    }

    let plan = &run.summary["log"]["plan"];
    assert_eq!(plan["mix_added"], 200, "two more of each of the 100 /api requests");
    assert_eq!(plan["skipped"]["--mix"], 100 - half, "the static requests the mix left out");
    assert_eq!(run.summary["requests_sent"], total);
}

#[test]
fn the_mix_reweights_what_the_sample_kept_and_reads_its_seed() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, targets) = write_log(dir.path());
    let spec = "/api/*=2,/other/*=0.25";
    let run = replay(&log, &server, &["--sample", "50%", "--sample-seed", "9", "--mix", spec]);

    let (sample, mix) = (Sample::parse("50%", 9).unwrap(), Mix::parse(spec, 9).unwrap());
    let kept = |line| sample.keeps(0, line);
    let want: BTreeMap<&str, u64> = ["/api/", "/other/", "/static/"]
        .into_iter()
        .map(|route| (route, expected(&mix, &targets, route, kept)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let sampled_api = (3..=300u64).step_by(3).filter(|&l| kept(l)).count() as u64;
    assert_eq!(want["/api/"], 2 * sampled_api, "each sampled /api request twice");
    assert_eq!(run.received, want);
    assert_eq!(run.rows, want);
    let skipped = &run.summary["log"]["plan"]["skipped"];
    assert_eq!(skipped["--sample"], 300 - (1..=300).filter(|&l| kept(l)).count() as u64);
    let sampled_other = (2..=300u64).step_by(3).filter(|&l| kept(l)).count() as u64;
    assert_eq!(skipped["--mix"], sampled_other - want.get("/other/").copied().unwrap_or(0));
}

#[test]
fn a_mix_in_the_config_file_is_read_and_the_flag_wins() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = write_log(dir.path());
    let config = dir.path().join("replay.toml");
    std::fs::write(&config, "mix = \"/static/*=0, /other/*=2\"\n").unwrap();
    let run = replay(&log, &server, &["--config", config.to_str().unwrap()]);
    assert_eq!(run.received, BTreeMap::from([("/api/", 100), ("/other/", 200)]));
    let run = replay(&log, &server, &["--config", config.to_str().unwrap(), "--mix", "/api/*=0"]);
    assert_eq!(run.received, BTreeMap::from([("/other/", 100), ("/static/", 100)]));
}

#[test]
fn a_mix_that_drops_everything_is_exit_2_saying_why() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = write_log(dir.path());
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "100", "--mix", "*=0"])
        .args(["--out", dir.path().join("r.csv").to_str().unwrap()])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no replayable request").and(predicate::str::contains("300 skipped")));
    assert_eq!(server.count(), 0);
}

#[test]
fn a_mix_that_does_not_parse_is_exit_2_naming_the_flag_and_the_form() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = write_log(dir.path());
    let out = dir.path().join("never.csv");
    for (mix, says) in [
        ("/api/*", "has no '='"),
        ("/api/*=lots", "'lots', is not a number"),
        ("/api/*=-1", "is -1"),
        ("/api/*=5000", "is 5000"),
        ("api=2", "not a route pattern"),
    ] {
        sluice()
            .args(["replay", log.to_str().unwrap(), "--target", &server.url(), "--rate", "100"])
            .args(["--out", out.to_str().unwrap(), "--mix", mix])
            .timeout(Duration::from_secs(30))
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("--mix:")
                    .and(predicate::str::contains(says))
                    .and(predicate::str::contains("PATTERN=WEIGHT")),
            );
        assert!(!out.exists(), "{mix}: a CSV was written");
    }
    assert_eq!(server.count(), 0, "nothing was sent");
}

/// `--sample` and `--mix` hash the same lines with the same seed; their draws must not agree.
#[test]
fn the_mix_draws_independently_of_the_sample() {
    let sample = Sample::parse("50%", 3).unwrap();
    let mix = Mix::parse("*=0.5", 3).unwrap();
    let both = (1..=100_000u64).filter(|&l| sample.keeps(0, l) && mix.copies(b"/x", 0, l, 1) == 1).count();
    assert!((24_000..=26_000).contains(&both), "sample 50% then mix 0.5 keeps a quarter, kept {both}");
}

/// The planner's side: copies are numbered one after the other, a dropped request takes no number.
#[test]
fn copies_are_numbered_consecutively_and_drops_take_no_number() {
    let rules = PlanRules { mix: Some(Mix::parse("/three=3,/none=0", 0).unwrap()), ..PlanRules::default() };
    let mut planner = Planner::new(&reqwest::Url::parse("http://127.0.0.1:9/").unwrap(), rules);
    let format = Format::from_spec("nginx").unwrap();
    let line =
        |target: &str| format!("1.2.3.4 - - [21/Nov/2026:14:00:00 +0000] \"GET {target} HTTP/1.1\" 200 1 \"-\" \"-\"");
    let mut seqs = Vec::new();
    for (n, target) in ["/one", "/three", "/none", "/one"].into_iter().enumerate() {
        let text = line(target);
        let entry = format.parse_line(text.as_bytes()).unwrap();
        match planner.plan_weighted(&entry, 0, n as u64 + 1, 1) {
            Ok(copies) => seqs.extend(copies.map(|r| (r.seq, r.url.path().to_string()))),
            Err(skip) => assert_eq!((target, skip), ("/none", Skip::Mix)),
        }
    }
    let want = [(0, "/one"), (1, "/three"), (2, "/three"), (3, "/three"), (4, "/one")];
    assert_eq!(seqs, want.map(|(s, p)| (s, p.to_string())));
    assert_eq!((planner.stats.mix_added, planner.stats.skipped["--mix"]), (2, 1));
}
