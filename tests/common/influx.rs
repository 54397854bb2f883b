//! A real InfluxDB 1.x (Debian's `influxdb`) on loopback, for the tests of `--push influx=…`.
//! Skips visibly when it is not installed; `.ci/run` installs it and sets
//! SLUICE_REQUIRE_PROMETHEUS=1, which makes that a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Influx {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Influx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_influx(test: &str) -> Option<Influx> {
    let binary = ["/usr/bin/influxd", "/usr/local/bin/influxd"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    let Some(binary) = binary else {
        if std::env::var("SLUICE_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("SLUICE_REQUIRE_PROMETHEUS=1 but influxd is not installed");
        }
        eprintln!("SKIPPED {test}: influxd is not installed (.ci/run installs Debian's influxdb)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let (http, rpc) = (free_port(), free_port());
    let d = dir.path().display();
    let config = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  \
         dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"127.0.0.1:{http}\"\n  \
         log-enabled = false\n[monitor]\n  store-enabled = false\n"
    );
    std::fs::write(dir.path().join("influxdb.conf"), config).unwrap();
    let child = Command::new(binary)
        .arg("-config")
        .arg(dir.path().join("influxdb.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let influx = Influx { child, url: format!("http://127.0.0.1:{http}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let created = Command::new("curl")
            .args(["-sf", "-XPOST", &format!("{}/query", influx.url), "--data-urlencode", "q=CREATE DATABASE sluice"])
            .output()
            .unwrap();
        if created.status.success() {
            return Some(influx);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("influxd did not start within 60 s");
}

/// The sum over series of the last `value` of `measurement` where `condition` holds (e.g.
/// `run = 'abc'`), as InfluxQL answers it.
pub fn influx_last_sum(url: &str, measurement: &str, condition: &str) -> f64 {
    let q = format!("SELECT last(value) FROM {measurement} WHERE {condition} GROUP BY *");
    let out = Command::new("curl")
        .args(["-sfG", &format!("{url}/query"), "--data-urlencode", "db=sluice", "--data-urlencode", &format!("q={q}")])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json["results"][0]["series"]
        .as_array()
        .map_or(0.0, |series| series.iter().filter_map(|s| s["values"][0][1].as_f64()).sum())
}
