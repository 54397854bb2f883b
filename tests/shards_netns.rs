//! Shards on separate hosts: four `sluice replay --shard auto/4` processes, each in its own network
//! namespace with its own address, against nginx in another, joined by a bridge — requests cross a
//! real (virtual) network, not loopback. Needs root, iproute2 and nginx: without them the test
//! prints SKIPPED (and fails when `SLUICE_REQUIRE_NETNS=1`, which `.ci/run` sets).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::nginx::Nginx;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

const SHARDS: u32 = 4;
const RATE: u32 = 400;
const SECONDS: u32 = 3;
const NGINX: &str = "10.77.0.1";

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid only reads this process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    if common::nginx::binary().is_none() {
        return Some("no nginx".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip netns` fails: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("no iproute2 (`ip`): {e}")),
    }
}

fn skip_or_fail(test: &str) -> bool {
    let Some(why) = missing() else { return false };
    if std::env::var_os("SLUICE_REQUIRE_NETNS").is_some() {
        panic!("{test}: SLUICE_REQUIRE_NETNS is set but {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    true
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Namespaces for one nginx host and `shards` client hosts on 10.77.0.0/24, removed on drop.
struct Network {
    web: String,
    shards: Vec<String>,
}

impl Network {
    fn new(shards: u32) -> Network {
        // Names unique to this process and test (tests run at once), and short: a link name has at
        // most 15 bytes.
        static NETWORKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = std::process::id() % 10_000 * 10 + NETWORKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 10;
        let net = Network { web: format!("slw{tag}"), shards: (0..shards).map(|i| format!("sls{tag}x{i}")).collect() };
        ip(&["netns", "add", &net.web]);
        ip(&["-n", &net.web, "link", "set", "lo", "up"]);
        ip(&["-n", &net.web, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net.web, "addr", "add", &format!("{NGINX}/24"), "dev", "br0"]);
        ip(&["-n", &net.web, "link", "set", "br0", "up"]);
        for (i, ns) in net.shards.iter().enumerate() {
            let (near, far) = (format!("s{tag}v{i}"), format!("w{tag}v{i}"));
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["link", "add", &near, "type", "veth", "peer", "name", &far]);
            ip(&["link", "set", &near, "netns", ns]);
            ip(&["link", "set", &far, "netns", &net.web]);
            ip(&["-n", &net.web, "link", "set", &far, "master", "br0", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{}/24", shard_address(i as u32)), "dev", &near]);
            ip(&["-n", ns, "link", "set", &near, "up"]);
        }
        net
    }

    fn exec(&self, ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        c
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.shards.iter().chain([&self.web]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn shard_address(i: u32) -> String {
    format!("10.77.0.{}", 10 + i)
}

/// nginx in the web namespace, logging each request's client address and seq header; ready when
/// it answers from a shard's namespace.
fn start_nginx(net: &Network) -> Nginx {
    let binary = common::nginx::binary().expect("checked by missing()");
    let prefix = ["ip", "netns", "exec", net.web.as_str()];
    Nginx::start(&binary, &prefix, &format!("{NGINX}:8080"), "$remote_addr $http_x_sluice_seq $msec", || {
        let probe = format!("exec 3<>/dev/tcp/{NGINX}/8080");
        net.exec(&net.shards[0]).args(["bash", "-c", &probe]).status().is_ok_and(|s| s.success())
    })
}

/// Starts shard `i` in its namespace, with its index where a Kubernetes Indexed Job puts it.
fn start_shard(net: &Network, i: u32, dir: &Path, start: &str, extra: &[&str]) -> Child {
    net.exec(&net.shards[i as usize])
        .args(["env", &format!("JOB_COMPLETION_INDEX={i}")])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg("replay")
        .arg(common::fixture("demo-access.log"))
        .args(["--target", &format!("http://{NGINX}:8080"), "--rate", &RATE.to_string()])
        .args(["--duration", &format!("{SECONDS}s"), "--shard", &format!("auto/{SHARDS}"), "--start-at", start])
        .args(["--seq-header", "X-Sluice-Seq", "--progress", "never", "-o"])
        .arg(dir.join(format!("shard-{i}.csv")))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("a shard starts")
}

fn scheduled(row: &HashMap<String, String>) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(&row["scheduled_at"], "%Y-%m-%d %H:%M:%S%.3f").unwrap().and_utc()
}

#[test]
fn four_shards_on_four_hosts_send_the_one_process_plan_exactly_once() {
    if skip_or_fail("four_shards_on_four_hosts_send_the_one_process_plan_exactly_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(SHARDS);
    let nginx = start_nginx(&net);
    let start_at = (Utc::now() + chrono::Duration::seconds(3)).with_nanosecond_zero();
    let start = start_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let shards: Vec<Child> = (0..SHARDS).map(|i| start_shard(&net, i, dir.path(), &start, &[])).collect();
    for (i, shard) in shards.into_iter().enumerate() {
        let out = shard.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "shard {i}: {stderr}");
        assert!(stderr.contains(&format!("shard      {i}/{SHARDS} (index from JOB_COMPLETION_INDEX)")), "{stderr}");
    }
    let log = nginx.access_log();
    drop(nginx);

    let merged = dir.path().join("merged.csv");
    let out = sluice().arg("merge").arg(dir.path()).arg("--out").arg(&merged).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = common::csv_rows(&std::fs::read(&merged).unwrap());

    // sluice's end: the union is the one-process plan — seq 0..N, each at T0 + seq / R.
    let planned = u64::from(RATE * SECONDS);
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].parse().unwrap()).collect();
    assert_eq!(seqs, (0..planned).collect::<Vec<_>>(), "merged in seq order, each once");
    let mut sent_by_shard: BTreeMap<u64, u64> = BTreeMap::new();
    for row in &rows {
        let seq: u64 = row["seq"].parse().unwrap();
        let offset = (scheduled(row) - start_at).num_milliseconds();
        let plan = (seq * 1000 / u64::from(RATE)) as i64;
        assert!((offset - plan).abs() <= 1, "seq {seq} scheduled at T0 + {offset} ms, planned {plan} ms");
        if row["error"] != "not_sent" {
            assert!(!row["status"].is_empty(), "seq {seq} answered: {row:?}");
            *sent_by_shard.entry(seq % u64::from(SHARDS)).or_default() += 1;
        }
    }
    // Achieved rates over the planned span: the total within 0.5% of R, each shard within 1% of
    // R/K. (Only a request due in the last moments can miss the end of the duration.)
    let total: u64 = sent_by_shard.values().sum();
    assert!(total as f64 >= 0.995 * planned as f64, "{total} of {planned} sent");
    let share = planned / u64::from(SHARDS);
    assert_eq!(sent_by_shard.len() as u32, SHARDS);
    assert!(sent_by_shard.values().all(|n| *n as f64 >= 0.99 * share as f64), "{sent_by_shard:?} of {share} each");

    // nginx's end: each seq exactly once, from the address of the shard that owns it.
    let mut seen: HashMap<u64, String> = HashMap::new();
    for line in log.lines() {
        let mut fields = line.split(' ');
        let (addr, seq) = (fields.next().unwrap().to_string(), fields.next().unwrap().parse::<u64>().unwrap());
        assert!(seen.insert(seq, addr).is_none(), "seq {seq} arrived twice");
    }
    assert_eq!(seen.len() as u64, total, "nginx got exactly what was sent");
    for (seq, addr) in &seen {
        assert_eq!(*addr, shard_address((seq % u64::from(SHARDS)) as u32), "seq {seq}");
    }
}

#[test]
fn a_killed_shard_makes_the_merge_refuse_naming_it_and_allow_partial_merges_the_rest() {
    if skip_or_fail("a_killed_shard_makes_the_merge_refuse_naming_it_and_allow_partial_merges_the_rest") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(SHARDS);
    let _nginx = start_nginx(&net);
    let start =
        (Utc::now() + chrono::Duration::seconds(2)).with_nanosecond_zero().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut shards: Vec<Child> = (0..SHARDS).map(|i| start_shard(&net, i, dir.path(), &start, &[])).collect();
    std::thread::sleep(Duration::from_secs(3));
    shards[2].kill().unwrap(); // SIGKILL: no summary, no manifest
    for shard in shards {
        let _ = shard.wait_with_output();
    }
    let merged = dir.path().join("merged.csv");
    let refused = sluice().arg("merge").arg(dir.path()).arg("--out").arg(&merged).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shard 2"), "{stderr}");
    assert!(!merged.exists(), "nothing merged from a partial set");
    let partial =
        sluice().arg("merge").arg(dir.path()).arg("--out").arg(&merged).arg("--allow-partial").output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&partial.stdout), String::from_utf8_lossy(&partial.stderr));
    assert_eq!(partial.status.code(), Some(0), "{said}");
    assert!(said.contains("3 of 4 shards"), "{said}");
    let rows = common::csv_rows(&std::fs::read(&merged).unwrap());
    assert!(rows.iter().all(|r| r["seq"].parse::<u64>().unwrap() % 4 != 2), "no row of the killed shard");
}

trait WholeSeconds {
    fn with_nanosecond_zero(self) -> Self;
}

impl WholeSeconds for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).unwrap()
    }
}
