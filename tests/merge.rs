//! `sluice merge` and `sluice report` over the shards of a run, as a user runs them.
//!
//! The shard CSVs and manifests here are written by the test, with the library's [`Manifest`]:
//! shard I of K holds the requests whose `seq mod K = I`, in a scrambled order (a shard writes
//! rows as answers arrive), each at its global plan time. Real sharded replays are tested where
//! `--shard` is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use predicates::prelude::*;
use proptest::prelude::*;
use sluice::results::HEADER;
use sluice::shard::manifest::{Counts, HistogramSettings, Incomplete, LogFile, Manifest, ShardId};
use sluice::shard::{MergeInput, MergeOptions, manifest_path_for, merge_csvs};

/// The plan's start: request n is due at T0 + n ms (1000/s).
const T0_MS: i64 = 1_796_090_400_000;

fn sluice() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sluice").unwrap();
    cmd.timeout(Duration::from_secs(60));
    cmd
}

fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Request `seq` as shard `lag_ms` behind sent it: every tenth a 500, one in 17 timed out, the
/// rest 200 with a latency that depends on the seq; a URL that needs quoting.
fn row(seq: u64, lag_ms: i64) -> String {
    let scheduled = T0_MS + seq as i64;
    let (status, latency, error) = match seq {
        s if s % 17 == 16 => ("", "30000.000".to_string(), "timeout"),
        s if s % 10 == 0 => ("500", format!("{}.250", 5 + s % 7), ""),
        s => ("200", format!("{}.250", 1 + s % 7), ""),
    };
    format!(
        "{seq},{},2026-11-20 08:00:00.000,{},{},{lag_ms}.000,GET,\"/items/{}?a=1,b\",200,{status},{latency},512,{error},,",
        seq + 1,
        time(scheduled),
        time(scheduled + lag_ms),
        seq % 50
    )
}

/// One shard on disk.
struct Shard {
    csv: PathBuf,
    manifest: Manifest,
}

impl Shard {
    fn manifest_path(&self) -> PathBuf {
        manifest_path_for(&self.csv)
    }

    fn write_manifest(&self) {
        self.manifest.write_atomic(&self.manifest_path()).unwrap();
    }
}

/// Writes shard `index` of `count` of a plan of `requests` requests into `dir`: its CSV (rows in a
/// scrambled order), and its manifest unless the shard is `killed`. Shard `slow` lags 40 ms.
fn write_shard(dir: &Path, index: u32, count: u32, requests: u64, slow: Option<u32>) -> Shard {
    let lag_ms = if slow == Some(index) { 40 } else { 1 };
    let mut seqs: Vec<u64> = (0..requests).filter(|s| s % u64::from(count) == u64::from(index)).collect();
    scramble(&mut seqs);
    let mut text = HEADER.join(",") + "\n";
    for &seq in &seqs {
        text += &row(seq, lag_ms);
        text.push('\n');
    }
    let csv = dir.join(format!("shard-{index}.csv"));
    std::fs::write(&csv, text).unwrap();
    let timeouts = seqs.iter().filter(|s| *s % 17 == 16).count() as u64;
    let sent = seqs.len() as u64;
    let manifest = Manifest {
        sluice_version: env!("CARGO_PKG_VERSION").into(),
        run_id: "nightly-42".into(),
        shard: ShardId { index, count, index_from: "JOB_COMPLETION_INDEX".into() },
        t0: DateTime::<Utc>::from_timestamp_millis(T0_MS).unwrap(),
        finished_at: None,
        format: None,
        start_at: DateTime::<Utc>::from_timestamp_millis(T0_MS),
        options_hash: "5e".repeat(32),
        options: serde_json::json!({"rate": 1000, "target": "http://127.0.0.1:8080", "concurrency": 64}),
        logs: vec![LogFile { name: "access.log".into(), bytes: 52_000, sha256: "a1".repeat(32) }],
        csv: format!("shard-{index}.csv"),
        histogram: HistogramSettings::current(),
        counts: Counts { planned: sent, sent, not_sent: 0, answered: sent - timeouts, no_answer: timeouts },
        complete: true,
        incomplete_reason: None,
    };
    let shard = Shard { csv, manifest };
    shard.write_manifest();
    shard
}

/// Rows as answers arrive: every pair of neighbours swapped, and the first row last.
fn scramble(seqs: &mut [u64]) {
    for pair in seqs.chunks_mut(2) {
        pair.reverse();
    }
    if !seqs.is_empty() {
        seqs.rotate_left(1);
    }
}

fn write_run(dir: &Path, count: u32, requests: u64) -> Vec<Shard> {
    (0..count).map(|i| write_shard(dir, i, count, requests, None)).collect()
}

fn seqs_of(csv: &Path) -> Vec<u64> {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), HEADER);
    reader.records().map(|r| r.unwrap()[0].parse().unwrap()).collect()
}

fn merge(args: &[&Path]) -> assert_cmd::assert::Assert {
    sluice().arg("merge").args(args).assert()
}

#[test]
fn a_whole_set_merges_into_seq_order_with_every_row_as_written() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), 4, 1000);
    let out = dir.path().join("merged.csv");
    merge(&[dir.path(), Path::new("--out"), &out])
        .success()
        .stdout(predicate::str::contains("sluice merge: 4 shards of run nightly-42 → "))
        .stdout(predicate::str::contains("merged.csv: 1000 rows in seq order"))
        .stdout(predicate::str::is_match(r"(?m)^  shard 2  \S+shard-2\.csv\s+250 rows$").unwrap());
    let expected: String =
        std::iter::once(HEADER.join(",")).chain((0..1000).map(|s| row(s, 1))).map(|l| l + "\n").collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected, "every row, byte for byte, in seq order");
    // Shards named one by one merge the same; a second merge over the first replaces it.
    let files: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("shard-{i}.csv"))).collect();
    let mut args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    args.extend([Path::new("-o"), &out]);
    merge(&args).success();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}

#[test]
fn a_missing_shard_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let shards = write_run(dir.path(), 4, 400);
    std::fs::remove_file(shards[2].manifest_path()).unwrap();
    let out = dir.path().join("merged.csv");
    // Killed before its end: its CSV is there, its manifest is not.
    merge(&[dir.path(), Path::new("--out"), &out])
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("shard 2 of 4 is missing"))
        .stderr(
            predicate::str::contains("CSVs without a manifest, not merged: ")
                .and(predicate::str::contains("shard-2.csv")),
        )
        .stderr(predicate::str::contains("--allow-partial merges the 3 shards there are"));
    assert!(!out.exists());
    // Named as a file, the CSV without a manifest is refused as such.
    merge(&[&shards[2].csv, &shards[0].csv, Path::new("--out"), &out])
        .code(2)
        .stderr(predicate::str::contains("shard-2.csv: no manifest beside it"));
}

#[test]
fn an_incomplete_shard_is_refused_naming_it_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = write_run(dir.path(), 4, 400);
    shards[2].manifest.complete = false;
    shards[2].manifest.incomplete_reason = Some(Incomplete::Interrupted);
    // It counted rows it could not write: an incomplete shard's count is not held against it.
    shards[2].manifest.counts.sent += 5;
    shards[2].write_manifest();
    let out = dir.path().join("merged.csv");
    merge(&[dir.path(), Path::new("--out"), &out])
        .code(2)
        .stderr(predicate::str::contains("shard 2 of 4 is incomplete (interrupted)"));
    assert!(!out.exists());
    merge(&[dir.path(), Path::new("--out"), &out, Path::new("--allow-partial")])
        .success()
        .stdout(predicate::str::contains("3 of 4 shards of run nightly-42"))
        .stdout(predicate::str::contains("partial: shard 2 of 4 is incomplete (interrupted)"))
        .stdout(predicate::str::contains("100 rows  incomplete (interrupted)"));
    assert_eq!(seqs_of(&out), (0..400).collect::<Vec<_>>(), "an incomplete shard's rows are merged too");
}

#[test]
fn allow_partial_merges_the_shards_there_are_and_says_3_of_4() {
    let dir = tempfile::tempdir().unwrap();
    let shards = write_run(dir.path(), 4, 400);
    std::fs::remove_file(shards[2].manifest_path()).unwrap();
    let out = dir.path().join("merged.csv");
    merge(&[dir.path(), Path::new("--out"), &out, Path::new("--allow-partial")])
        .success()
        .stdout(predicate::str::contains("sluice merge: 3 of 4 shards of run nightly-42"))
        .stdout(predicate::str::contains("300 rows in seq order"))
        .stdout(predicate::str::contains("partial: shard 2 of 4 is missing"));
    let expected: Vec<u64> = (0..400).filter(|s| s % 4 != 2).collect();
    assert_eq!(seqs_of(&out), expected);
}

#[test]
fn shards_with_other_options_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = write_run(dir.path(), 4, 400);
    shards[3].manifest.options["rate"] = 2000.into();
    shards[3].manifest.options_hash = "77".repeat(32);
    shards[3].write_manifest();
    let out = dir.path().join("merged.csv");
    for partial in [false, true] {
        let mut cmd = sluice();
        cmd.arg("merge").arg(dir.path()).arg("--out").arg(&out);
        if partial {
            cmd.arg("--allow-partial");
        }
        cmd.assert().code(2).stderr(predicate::str::contains(
            "shard 3 ran with other options than shard 0: `rate` is 2000 in shard 3, 1000 in shard 0",
        ));
    }
    assert!(!out.exists());
}

#[test]
fn shards_of_another_log_are_refused_naming_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = write_run(dir.path(), 4, 400);
    shards[1].manifest.logs[0].sha256 = "b2".repeat(32);
    shards[1].write_manifest();
    merge(&[dir.path(), Path::new("--out"), &dir.path().join("m.csv")]).code(2).stderr(predicate::str::contains(
        "shard 1 and shard 0 replayed different logs: log access.log has the same size but another SHA-256",
    ));
}

#[test]
fn a_request_in_two_shards_is_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let shards = write_run(dir.path(), 2, 10);
    // Shard 1 also holds request 4, which is shard 0's.
    let mut text = std::fs::read_to_string(&shards[1].csv).unwrap();
    text += &(row(4, 1) + "\n");
    std::fs::write(&shards[1].csv, text).unwrap();
    merge(&[dir.path(), Path::new("--out"), &dir.path().join("m.csv")]).code(2).stderr(
        predicate::str::is_match(r"seq 4 is in \S+shard-0\.csv \(line \d+\) and in \S+shard-1\.csv \(line 7\)")
            .unwrap(),
    );
}

#[test]
fn a_csv_that_is_not_what_its_manifest_counts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shards = write_run(dir.path(), 2, 10);
    let text = std::fs::read_to_string(&shards[0].csv).unwrap();
    let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&shards[0].csv, cut).unwrap();
    let out = dir.path().join("m.csv");
    merge(&[dir.path(), Path::new("--out"), &out])
        .code(2)
        .stderr(predicate::str::contains("shard-0.csv: 2 rows, but its manifest counts 5"));
    assert!(!out.exists());
}

#[test]
fn merge_refuses_no_shards_and_writing_over_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    merge(&[dir.path(), Path::new("--out"), &dir.path().join("m.csv")])
        .code(2)
        .stderr(predicate::str::contains("no shard manifest (*.manifest.json) in"));
    let shards = write_run(dir.path(), 2, 10);
    merge(&[dir.path(), Path::new("--out"), &shards[1].csv])
        .code(2)
        .stderr(predicate::str::contains("that is the CSV of shard 1 of 2"));
    std::fs::write(shards[0].manifest_path(), "{\"run_id\": 3}").unwrap();
    merge(&[dir.path(), Path::new("--out"), &dir.path().join("m.csv")])
        .code(2)
        .stderr(predicate::str::contains("shard-0.manifest.json: not a sluice shard manifest"));
}

fn report(args: &[&Path]) -> assert_cmd::assert::Assert {
    sluice().arg("report").args(args).assert()
}

fn shard_csvs(dir: &Path, indexes: impl IntoIterator<Item = u32>) -> Vec<PathBuf> {
    indexes.into_iter().map(|i| dir.join(format!("shard-{i}.csv"))).collect()
}

#[test]
fn a_report_over_shards_shows_each_shard_and_a_slow_one_stands_out() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        write_shard(dir.path(), i, 4, 2000, Some(3));
    }
    let files = shard_csvs(dir.path(), 0..4);
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let text = String::from_utf8(sluice().arg("report").args(&args).output().unwrap().stdout).unwrap();
    assert!(text.lines().next().unwrap().ends_with("— 2000 rows; 4 shards"), "{text}");
    assert!(text.contains("shards — 4 shards; each shard's own achieved rate and lag behind the plan"), "{text}");
    let line = |i: u32| {
        text.lines().find(|l| l.starts_with(&format!("  {i}/4 ")) && l.ends_with(&format!("shard-{i}.csv"))).unwrap()
    };
    // 500 requests over 2 s each: 250/s; lag 1 ms, but 40 ms on shard 3 (HDR: within 0.1%).
    assert!(line(0).contains(" 500   250.0        1.00        1.00        1.00  "), "{text}");
    assert!(line(3).contains(" 500   250.0       40.03       40.03       40.03  "), "{text}");

    let mut json_args = args.clone();
    json_args.extend([Path::new("--format"), Path::new("json")]);
    let json = sluice().arg("report").args(&json_args).output().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let shards = value["shards"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    assert_eq!(shards[3]["index"], 3);
    assert_eq!(shards[3]["lag_p99_ms"], 40.031);
    assert_eq!(shards[0]["lag_p99_ms"], 1.0);
    assert_eq!(shards[2]["achieved_rate"], 250.0);
    assert_eq!(shards[2]["complete"], true);

    let html_out = dir.path().join("r.html");
    let mut html_args = args.clone();
    html_args.extend([Path::new("--format"), Path::new("html"), Path::new("--out"), &html_out]);
    report(&html_args).success();
    let html = std::fs::read_to_string(&html_out).unwrap();
    assert!(html.contains("<h2>Shards</h2>") && html.contains("· 4 shards"), "{html}");
    assert!(html.contains("<td>3 of 4</td><td>500</td><td>250.0</td><td>40.03</td><td>40.03</td>"), "{html}");
}

#[test]
fn a_report_over_shards_has_the_percentiles_of_the_merged_csv() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        write_shard(dir.path(), i, 4, 3000, Some(1));
    }
    let merged = dir.path().join("merged.csv");
    merge(&[dir.path(), Path::new("--out"), &merged]).success();
    let files = shard_csvs(dir.path(), 0..4);
    let mut args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    args.extend([Path::new("--format"), Path::new("json")]);
    let of_shards: serde_json::Value =
        serde_json::from_slice(&sluice().arg("report").args(&args).output().unwrap().stdout).unwrap();
    let of_merged: serde_json::Value =
        serde_json::from_slice(&sluice().args(["report", "--format", "json"]).arg(&merged).output().unwrap().stdout)
            .unwrap();
    // Histograms merged, not percentiles averaged: the same figures as the one merged file.
    assert_eq!(of_shards["overview"], of_merged["overview"]);
    assert_eq!(of_shards["routes"], of_merged["routes"]);
    assert!(of_merged.get("shards").is_none(), "a merged CSV has no manifest: no shard section");
}

#[test]
fn a_report_refuses_a_partial_set_unless_allowed_and_then_says_3_of_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = write_run(dir.path(), 4, 400);
    let files = shard_csvs(dir.path(), [0, 1, 3]);
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    report(&args)
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("run nightly-42: shard 2 of 4 is missing"))
        .stderr(predicate::str::contains("--allow-partial reports the 3 shard(s) given"));
    let mut partial = args.clone();
    partial.push(Path::new("--allow-partial"));
    report(&partial)
        .success()
        .stdout(predicate::str::contains("— 300 rows; 3 of 4 shards\n"))
        .stdout(predicate::str::contains("  partial    shard 2 of 4 is missing"));
    // An incomplete shard given is refused the same way, and reported as such when allowed.
    shards[1].manifest.complete = false;
    shards[1].manifest.incomplete_reason = Some(Incomplete::Aborted);
    shards[1].write_manifest();
    let all = shard_csvs(dir.path(), 0..4);
    let mut args: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
    report(&args).code(2).stderr(predicate::str::contains("shard 1 of 4 is incomplete (aborted by --abort-on)"));
    args.push(Path::new("--allow-partial"));
    report(&args).success().stdout(predicate::str::contains("— 400 rows; 3 of 4 shards\n")).stdout(
        predicate::str::is_match(r"(?m)^  1/4 .*  \S+shard-1\.csv — incomplete \(aborted by --abort-on\)$").unwrap(),
    );
}

#[test]
fn a_report_refuses_shards_of_one_run_with_other_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = write_run(dir.path(), 2, 100);
    shards[1].manifest.options["target"] = "http://127.0.0.1:9090".into();
    shards[1].manifest.options_hash = "00".repeat(32);
    shards[1].write_manifest();
    let files = shard_csvs(dir.path(), 0..2);
    let mut args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    args.push(Path::new("--allow-partial"));
    report(&args).code(2).stderr(predicate::str::contains("`target` is \"http://127.0.0.1:9090\" in shard 1"));
}

#[test]
fn a_report_over_files_without_manifests_has_no_shard_section() {
    let dir = tempfile::tempdir().unwrap();
    let shards = write_run(dir.path(), 2, 100);
    for s in &shards {
        std::fs::remove_file(s.manifest_path()).unwrap();
    }
    let files = shard_csvs(dir.path(), 0..2);
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = sluice().arg("report").args(&args).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().ends_with("— 100 rows"), "{text}");
    assert!(!text.contains("shards"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any plan split into K shards by `seq mod K`, each shard's rows in any order, merges into
    /// exactly the plan in seq order, each row as its shard wrote it — whether the shards are
    /// sorted in memory or in many small runs on disk.
    #[test]
    fn merging_disjoint_shards_gives_exactly_their_union_in_seq_order(
        count in 1u32..8,
        requests in 0u64..300,
        keys in proptest::collection::vec(any::<u64>(), 300),
        run_bytes in prop_oneof![Just(usize::MAX), 1usize..4000],
        max_open in 2usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = Vec::new();
        for index in 0..count {
            let mut seqs: Vec<u64> = (0..requests).filter(|s| s % u64::from(count) == u64::from(index)).collect();
            seqs.sort_by_key(|&s| keys[s as usize]);
            let mut text = HEADER.join(",") + "\n";
            for &s in &seqs {
                text += &(row(s, i64::from(index)) + "\n");
            }
            let path = dir.path().join(format!("s{index}.csv"));
            std::fs::write(&path, text).unwrap();
            inputs.push(MergeInput { path, expected_rows: Some(seqs.len() as u64) });
        }
        let out = dir.path().join("out.csv");
        let stats = merge_csvs(&inputs, &out, &MergeOptions { run_bytes, max_open }).unwrap();
        prop_assert_eq!(stats.rows, requests);
        let expected: String = std::iter::once(HEADER.join(","))
            .chain((0..requests).map(|s| row(s, (s % u64::from(count)) as i64)))
            .map(|l| l + "\n")
            .collect();
        prop_assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
        // Only the inputs and the output are left.
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), count as usize + 1);
    }
}
