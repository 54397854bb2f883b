//! `--target kafka://…` against a real broker: Tansu (a Kafka-compatible broker, `cargo install
//! tansu`), started by each test on a free loopback port with in-memory storage. What sluice
//! wrote (the CSV, the summary) is checked against what is on the topics, read back with a
//! Kafka client; the end-to-end test puts a relay written here between two topics, so `lost`
//! and `e2e_ms` are checked against what the relay really did.
//!
//! Without `tansu` (in PATH or ~/.cargo/bin) these tests print SKIPPED; with
//! `SLUICE_REQUIRE_TANSU=1` (which `.ci/run` sets after installing it) they fail instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};

mod common;

fn tansu_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"));
    home.into_iter().chain(in_path).find(|p| p.is_file())
}

/// A Tansu broker on 127.0.0.1, killed when dropped.
struct Tansu {
    child: Child,
    port: u16,
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Tansu {
    /// `None` (after a visible SKIPPED line) when tansu is not installed.
    fn start(test: &str) -> Option<Tansu> {
        let Some(binary) = tansu_binary() else {
            if std::env::var("SLUICE_REQUIRE_TANSU").as_deref() == Ok("1") {
                panic!("SLUICE_REQUIRE_TANSU=1 but no tansu in PATH or ~/.cargo/bin");
            }
            eprintln!("SKIPPED {test}: tansu is not installed (.ci/run installs it with cargo install tansu)");
            return None;
        };
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "tansu did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let client = runtime.block_on(async {
            // Bounded: the client's own default is to retry forever.
            let backoff = rskafka::BackoffConfig { deadline: Some(Duration::from_secs(30)), ..Default::default() };
            ClientBuilder::new(vec![format!("127.0.0.1:{port}")])
                .backoff_config(backoff)
                .build()
                .await
                .expect("a client of tansu")
        });
        Some(Tansu { child, port, runtime, client })
    }

    fn address(&self, topic: &str) -> String {
        format!("kafka://127.0.0.1:{}/{topic}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        self.runtime.block_on(async {
            let controller = self.client.controller_client().unwrap();
            controller.create_topic(name, partitions, 1, 5_000).await.expect("topic created");
        });
    }

    fn partition(&self, topic: &str, partition: i32) -> PartitionClient {
        self.runtime.block_on(async {
            self.client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.unwrap()
        })
    }

    /// Every message on `topic`, by partition.
    fn read_all(&self, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<RecordAndOffset>> {
        (0..partitions)
            .map(|p| {
                let client = self.partition(topic, p);
                let records = self.runtime.block_on(async {
                    let end = client.get_offset(OffsetAt::Latest).await.unwrap();
                    let mut offset = client.get_offset(OffsetAt::Earliest).await.unwrap();
                    let mut all = Vec::new();
                    // Bounded: each fetch moves on by at least one record, up to `end`.
                    while offset < end {
                        let (records, _) = client.fetch_records(offset, 1..1_000_000, 1_000).await.unwrap();
                        assert!(!records.is_empty(), "a fetch below the end returned nothing");
                        offset = records.last().unwrap().offset + 1;
                        all.extend(records);
                    }
                    all
                });
                (p, records)
            })
            .collect()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A combined log of `n` GETs from 7 clients, `/item/SEQ?n=SEQ`, one a second from 10:00:00.
fn write_log(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        let (min, sec) = (i / 60 % 60, i % 60);
        text += &format!(
            "10.0.0.{} - - [21/Nov/2026:10:{min:02}:{sec:02} +0000] \"GET /item/{i}?n={i} HTTP/1.1\" 200 12 \"-\" \"ua\"\n",
            i % 7 + 1
        );
    }
    let path = dir.join("access.log");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `sluice replay` with `args`; (exit code, stderr, CSV rows, summary JSON).
fn replay(dir: &Path, name: &str, args: &[&str]) -> (i32, String, Vec<HashMap<String, String>>, serde_json::Value) {
    let (csv, json) = (dir.join(format!("{name}.csv")), dir.join(format!("{name}.json")));
    let output = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .arg("replay")
        .args(args)
        .args(["--out", csv.to_str().unwrap(), "--summary-json", json.to_str().unwrap(), "--progress", "never"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let rows = match std::fs::read(&csv) {
        Ok(bytes) => {
            let mut reader = csv::Reader::from_reader(&bytes[..]);
            let headers = reader.headers().unwrap().clone();
            reader
                .records()
                .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
                .collect()
        }
        Err(_) => Vec::new(),
    };
    let summary = std::fs::read(&json).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(serde_json::Value::Null);
    (output.status.code().unwrap_or(-1), stderr, rows, summary)
}

fn header(record: &Record, name: &str) -> String {
    String::from_utf8(record.headers.get(name).unwrap_or_else(|| panic!("header {name}")).clone()).unwrap()
}

#[test]
fn two_thousand_messages_at_500_per_second_each_a_row_and_a_message_with_its_key_and_headers() {
    let Some(tansu) = Tansu::start("two_thousand_messages_at_500_per_second") else { return };
    tansu.create_topic("requests", 3);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 2000);
    let target = tansu.address("requests");
    let started = Instant::now();
    let (code, stderr, rows, summary) = replay(
        dir.path(),
        "run",
        &[
            log.to_str().unwrap(),
            "--target",
            &target,
            "--rate",
            "500",
            "--kafka-key",
            "client",
            "--kafka-value",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    // 2,000 messages at 500/s take 4 s; the loaded machine gets generous room.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());

    // What sluice wrote: one row per message, the HTTP CSV's columns, PRODUCE to a partition.
    assert_eq!(rows.len(), 2000);
    let columns: HashSet<&str> = rows[0].keys().map(String::as_str).collect();
    assert_eq!(columns, common::DOCUMENTED_CSV_COLUMNS.into_iter().collect(), "the HTTP CSV's columns");
    let mut partition_of_seq = HashMap::new();
    let mut offset_of_seq = HashMap::new();
    for row in &rows {
        assert_eq!(row["method"], "PRODUCE");
        assert_eq!(row["status"], "0", "an acknowledged message: {row:?}");
        assert_eq!(row["error"], "");
        // kafka://BROKER/TOPIC/PARTITION#OFFSET
        let place = row["url"].strip_prefix(&format!("{}/", target)).unwrap_or_else(|| panic!("{row:?}"));
        let (partition, offset) = place.split_once('#').unwrap_or_else(|| panic!("no offset: {row:?}"));
        let seq = row["seq"].parse::<u64>().unwrap();
        partition_of_seq.insert(seq, partition.parse::<i32>().unwrap());
        offset_of_seq.insert(seq, offset.parse::<i64>().unwrap());
    }
    let places: HashSet<(i32, i64)> = partition_of_seq.iter().map(|(seq, p)| (*p, offset_of_seq[seq])).collect();
    assert_eq!(places.len(), 2000, "offsets are unique per partition");
    assert_eq!(summary["requests_sent"], 2000);
    assert_eq!(summary["target"], target.as_str());
    assert_eq!(summary["protocol"], "Kafka (produce, acknowledged by all in-sync replicas)");
    // The manifest beside the CSV says what the run was: the brokers and topic as given.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["options"]["target"], target.as_str());
    assert_eq!(manifest["options"]["kafka_key"], "client");
    assert_eq!(manifest["counts"]["sent"], 2000);

    // What is on the topic: the same 2,000 messages, each where its row says, keyed by client.
    let on_topic = tansu.read_all("requests", 3);
    assert_eq!(on_topic.values().map(Vec::len).sum::<usize>(), 2000);
    let runs: HashSet<String> = on_topic.values().flatten().map(|r| header(&r.record, "sluice-run")).collect();
    assert_eq!(runs.len(), 1, "one run id on every message");
    let mut seqs = HashSet::new();
    let mut partition_of_client: HashMap<String, i32> = HashMap::new();
    for (partition, records) in &on_topic {
        for r in records {
            let seq: u64 = header(&r.record, "sluice-seq").parse().unwrap();
            assert!(seqs.insert(seq), "seq {seq} once");
            assert_eq!(partition_of_seq[&seq], *partition, "seq {seq}: the row names the partition it is in");
            assert_eq!(offset_of_seq[&seq], r.offset, "seq {seq}: the row names the offset it is at");
            let value: serde_json::Value = serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            let client = value["client"].as_str().unwrap().to_string();
            assert_eq!(r.record.key.as_deref(), Some(client.as_bytes()), "keyed by the logged client");
            assert_eq!(value["method"], "GET");
            let n = value["target"].as_str().unwrap().rsplit_once("?n=").unwrap().1.to_string();
            assert_eq!(value["target"], format!("/item/{n}?n={n}"));
            assert_eq!(value["logged_status"], 200);
            assert!(value["logged_time"].as_str().unwrap().starts_with("2026-11-21T10:"));
            // One client's messages stay in one partition.
            assert_eq!(*partition_of_client.entry(client).or_insert(*partition), *partition);
        }
    }
    assert_eq!(seqs, (0..2000).collect());
    assert!(partition_of_client.values().collect::<HashSet<_>>().len() > 1, "7 clients spread over partitions");

    // The report: a route per partition (the offset aside), every answer an acknowledgement
    // (`acked`, as /metrics says), no end-to-end section without --consume.
    let report: serde_json::Value =
        serde_json::from_str(&sluice_report(&dir.path().join("run.csv"), &["--format", "json"])).unwrap();
    let lines = report["routes"]["shown"].as_array().unwrap();
    let mut routes: Vec<&str> = lines.iter().map(|l| l["route"].as_str().unwrap()).collect();
    routes.sort_unstable();
    let used: HashSet<i32> = partition_of_seq.values().copied().collect();
    assert_eq!(routes, (0..3).filter(|p| used.contains(p)).map(|p| format!("/requests/{p}")).collect::<Vec<_>>());
    for line in lines {
        let partition: i32 = line["route"].as_str().unwrap().rsplit_once('/').unwrap().1.parse().unwrap();
        let sent = partition_of_seq.values().filter(|p| **p == partition).count();
        assert_eq!(line["classes"], serde_json::json!({ "acked": sent }), "{line}");
    }
    assert_eq!(report["status_matrix"]["replayed"], serde_json::json!(["acked"]));
    assert!(report.get("end_to_end").is_none(), "no e2e_ms column");
    // A logged HTTP status has nothing to be compared with in an acknowledgement.
    let overview = &report["overview"];
    assert_eq!(
        (&overview["with_orig_status"], &overview["mismatches"]),
        (&serde_json::json!(0), &serde_json::json!(0))
    );
    assert!(overview["mismatch_rate"].is_null() && report["mismatched_routes"] == serde_json::json!([]), "{overview}");
}

/// `sluice report CSV ARGS…`'s standard output (it must exit 0).
fn sluice_report(csv: &Path, args: &[&str]) -> String {
    let output = assert_cmd::Command::cargo_bin("sluice").unwrap().arg("report").arg(csv).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn line_values_are_the_log_lines_as_read() {
    let Some(tansu) = Tansu::start("line_values_are_the_log_lines_as_read") else { return };
    tansu.create_topic("lines", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 20);
    let (code, stderr, rows, _) =
        replay(dir.path(), "lines", &[log.to_str().unwrap(), "--target", &tansu.address("lines"), "--rate", "100"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 20);
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    let on_topic = tansu.read_all("lines", 1);
    let values: Vec<String> =
        on_topic[&0].iter().map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap()).collect();
    assert_eq!(values, lines, "unkeyed, one partition: the lines in order");
    assert!(on_topic[&0].iter().all(|r| r.record.key.is_none()));
}

/// The relay between the input and output topics: consumes `from`, drops every 10th seq, holds
/// the rest for `delay`, then produces them (headers copied) to `to`. Returns the seqs dropped.
fn relay(
    tansu: &Tansu,
    from: &str,
    to: &str,
    delay: Duration,
    stop: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Vec<u64>> {
    let input = tansu.partition(from, 0);
    let output = tansu.partition(to, 0);
    let handle = tansu.runtime.handle().clone();
    std::thread::spawn(move || {
        handle.block_on(async move {
            let mut offset = 0;
            let mut dropped = Vec::new();
            let mut held: std::collections::VecDeque<(Instant, Record)> = Default::default();
            while stop.load(Ordering::Relaxed) == 0 {
                let (records, _) = input.fetch_records(offset, 1..1_000_000, 20).await.unwrap();
                let now = Instant::now();
                for r in records {
                    offset = r.offset + 1;
                    let seq: u64 = header(&r.record, "sluice-seq").parse().unwrap();
                    if seq % 10 == 9 {
                        dropped.push(seq);
                    } else {
                        held.push_back((now + delay, r.record));
                    }
                }
                let mut due = Vec::new();
                while held.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                    let (_, mut record) = held.pop_front().unwrap();
                    record.timestamp = chrono::Utc::now();
                    due.push(record);
                }
                if !due.is_empty() {
                    output.produce(due, Compression::NoCompression).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            dropped
        })
    })
}

#[test]
fn end_to_end_through_a_relay_counts_exactly_what_it_dropped_and_at_least_its_delay() {
    let Some(tansu) = Tansu::start("end_to_end_through_a_relay") else { return };
    tansu.create_topic("in", 1);
    tansu.create_topic("out", 1);
    // Something already on the output topic from before the run: not this run's, never matched.
    // The partition client is made outside the async block: `partition` blocks on the runtime.
    let out = tansu.partition("out", 0);
    tansu.runtime.block_on(async {
        let stale = Record {
            key: None,
            value: Some(b"old".to_vec()),
            headers: BTreeMap::from([("sluice-seq".to_string(), b"3".to_vec())]),
            timestamp: chrono::Utc::now(),
        };
        out.produce(vec![stale], Compression::NoCompression).await.unwrap();
    });
    let delay = Duration::from_millis(300);
    let stop = Arc::new(AtomicU64::new(0));
    let relay = relay(&tansu, "in", "out", delay, stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 300);
    let (code, stderr, rows, summary) = replay(
        dir.path(),
        "e2e",
        &[
            log.to_str().unwrap(),
            "--target",
            &tansu.address("in"),
            "--rate",
            "100",
            "--consume",
            &tansu.address("out"),
            "--match",
            "header:sluice-seq",
            "--drain-timeout",
            "10s",
            "--assert",
            "lost == 30",
            "--assert",
            "e2e_p50 >= 300ms",
        ],
    );
    stop.store(1, Ordering::Relaxed);
    let dropped = relay.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dropped.len(), 30, "the relay dropped every 10th of 300");
    assert_eq!(rows.len(), 300);
    let lost: HashSet<u64> = rows.iter().filter(|r| r["e2e_ms"] == "lost").map(|r| r["seq"].parse().unwrap()).collect();
    assert_eq!(lost, dropped.iter().copied().collect(), "lost is exactly what the relay dropped");
    for row in rows.iter().filter(|r| r["e2e_ms"] != "lost") {
        let e2e: f64 = row["e2e_ms"].parse().unwrap_or_else(|_| panic!("{row:?}"));
        assert!(e2e >= delay.as_millis() as f64, "e2e {e2e} ms is at least the relay's delay: {row:?}");
    }
    assert_eq!(summary["end_to_end"]["lost"], 30);
    assert_eq!(summary["end_to_end"]["matched"], 270);
    assert!(summary["end_to_end"]["e2e_ms"]["p50"].as_f64().unwrap() >= 300.0);
    // The report reads the file back with the same figures.
    let report = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .args([
            "report",
            dir.path().join("e2e.csv").to_str().unwrap(),
            "--assert",
            "lost == 30",
            "--assert",
            "lost == 0",
        ])
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(1), "{}", String::from_utf8_lossy(&report.stdout));
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("PASS") && text.contains("lost = 30"), "{text}");
    assert!(text.contains("end to end — 270 matched, 30 lost (10.0% of 300 acknowledged)"), "{text}");

    // Its end-to-end section has the run summary's figures: the same rows folded the same way.
    let csv = dir.path().join("e2e.csv");
    let json: serde_json::Value = serde_json::from_str(&sluice_report(&csv, &["--format", "json"])).unwrap();
    let e2e = &json["end_to_end"];
    assert_eq!((e2e["matched"].as_u64(), e2e["lost"].as_u64()), (Some(270), Some(30)), "{e2e}");
    for stat in ["p50", "p90", "p99", "max"] {
        assert_eq!(e2e["e2e_ms"][stat], summary["end_to_end"]["e2e_ms"][stat], "{stat}: {e2e}");
    }
    assert!(e2e["e2e_ms"]["p50"].as_f64().unwrap() >= 300.0);
    assert_eq!(e2e["routes"], serde_json::json!([]), "one partition: nothing more by route");
    assert!(sluice_report(&csv, &["--format", "markdown"]).contains("### End to end\n\n270 matched, 30 lost"));
    let html = sluice_report(&csv, &["--format", "html"]);
    assert!(html.contains("<h2>End to end</h2>") && html.contains("<td>270</td><td class=\"bad\">30</td>"), "{html}");
}

#[test]
fn a_broker_that_is_down_gives_every_message_an_error_row_and_the_run_ends_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 1000);
    let target = format!("kafka://127.0.0.1:{}/requests", free_port());
    let started = Instant::now();
    let (code, stderr, rows, summary) =
        replay(dir.path(), "down", &[log.to_str().unwrap(), "--target", &target, "--rate", "50", "--duration", "3s"]);
    let took = started.elapsed();
    assert_eq!(code, 4, "nothing answered: exit 4 as the README says\n{stderr}");
    assert!(stderr.contains("cannot read the topic"), "{stderr}");
    assert!(took < Duration::from_secs(20), "the run ends on time: {took:?}");
    assert!(rows.len() >= 100, "about 150 rows: {}", rows.len());
    for row in &rows {
        assert_eq!(row["status"], "");
        assert!(row["error"] == "kafka:connect" || row["error"] == "not_sent", "{row:?}");
        assert!(!row["url"].contains('#'), "not acknowledged: no offset: {row:?}");
    }
    assert!(rows.iter().filter(|r| r["error"] == "kafka:connect").count() >= 100);
    assert_eq!(summary["responses"], 0);
}

#[test]
fn a_topic_that_does_not_exist_is_refused_before_anything_is_sent() {
    let Some(tansu) = Tansu::start("a_topic_that_does_not_exist") else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 10);
    let (code, stderr, rows, _) =
        replay(dir.path(), "missing", &[log.to_str().unwrap(), "--target", &tansu.address("nowhere"), "--rate", "10"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nowhere: the topic does not exist"), "{stderr}");
    assert!(rows.is_empty());
    let topics = tansu.runtime.block_on(tansu.client.list_topics()).unwrap();
    assert!(!topics.iter().any(|t| t.name == "nowhere"), "not created by sluice");
}

#[test]
fn kafka_flags_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 3);
    let log = log.to_str().unwrap();
    for (args, said) in [
        (vec!["--target", "http://127.0.0.1:1", "--kafka-key", "client"], "--kafka-key: is for a Kafka target"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--kafka-acks", "leader"], "--kafka-acks: only `all`"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--kafka-value", "xml"], "--kafka-value: 'xml'"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--kafka-key", "session"], "give --sessions too"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--match", "json:seq"], "give --consume too"),
        (
            vec!["--target", "kafka://127.0.0.1:1/t", "--consume", "kafka://127.0.0.1:1/t"],
            "cannot be the --target topic",
        ),
        (vec!["--target", "kafka://127.0.0.1:1/a b"], "cannot be in a topic name"),
        // HTTP's own options have no meaning for a Kafka target.
        (vec!["--target", "kafka://127.0.0.1:1/t", "--compare", "http://127.0.0.1:2"], "--compare: compares the HTTP"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--http-version", "h2c"], "--http-version: is for HTTP targets"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--insecure"], "--insecure: applies to https:// targets only"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--resolve", "h:1:127.0.0.1"], "--resolve: is for HTTP targets"),
        (vec!["--target", "kafka://u:s3cret@127.0.0.1:1/t"], "credentials in a kafka:// address"),
        (vec!["--target", "kafka://127.0.0.1:1/t", "--consume", "kafka://u:s3cret@h:1/o"], "credentials"),
    ] {
        let (code, stderr, rows, _) = replay(dir.path(), "bad", &[&[log, "--rate", "10"][..], &args].concat());
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cret"), "a secret is never echoed: {stderr}");
        assert!(rows.is_empty());
    }
}

#[test]
fn pushed_counts_of_a_kafka_run_are_the_csvs() {
    let Some(tansu) = Tansu::start("pushed_counts_of_a_kafka_run_are_the_csvs") else { return };
    let Some(influx) = common::influx::start_influx("pushed_counts_of_a_kafka_run_are_the_csvs") else { return };
    tansu.create_topic("pushed", 2);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), 300);
    let push = format!("influx={}?db=sluice", influx.url);
    let (code, stderr, rows, _) = replay(
        dir.path(),
        "pushed",
        &[log.to_str().unwrap(), "--target", &tansu.address("pushed"), "--rate", "100", "--push", &push],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("  pushed     ") && !stderr.contains("dropped"), "{stderr}");
    let sent = rows.iter().filter(|r| r["error"] != "not_sent").count() as f64;
    let acked = rows.iter().filter(|r| r["status"] == "0").count() as f64;
    assert!(acked >= 290.0, "a broker on loopback acknowledges (nearly) every message: {acked}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pushed.manifest.json")).unwrap()).unwrap();
    let run = manifest["run_id"].as_str().unwrap();
    let pushed = |measurement: &str, condition: &str| {
        common::influx::influx_last_sum(&influx.url, measurement, &format!("run = '{run}'{condition}"))
    };
    assert_eq!(pushed("sluice_requests_sent_total", " AND method = 'PRODUCE'"), sent, "sent, as the CSV has it");
    assert_eq!(
        pushed("sluice_responses_total", " AND status_class = 'acked'"),
        acked,
        "acknowledged, as the CSV has it"
    );
    assert_eq!(pushed("sluice_responses_total", ""), acked, "no other class of answer");
}
