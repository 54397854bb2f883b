//! `--push prometheus-remote-write=URL` and `--push influx=URL[?db=NAME]`: the run's own figures
//! (the samples `/metrics` shows: requests by method, responses by status class, errors by kind,
//! not sent, the latency and lag histograms, in flight, target rate; plus the achieved rate)
//! every 5 s and once at the end, labelled with the run's id and shard.
//!
//! A push is a thread of its own with a short timeout: a target that is down or slow never slows
//! or stops the run. What could not be pushed is dropped and counted, and the summary says so.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::cli::metrics_server::gauges_of;
use crate::pace::schedule::Shape;
use crate::run::RunHandle;
use crate::sink::metrics::{Metrics, Sample};

/// How often the figures are pushed while the run goes.
pub const PUSH_EVERY: Duration = Duration::from_secs(5);

/// One push may take this long before its points are dropped.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where `--push` sends.
#[derive(Debug, Clone, PartialEq)]
pub enum PushTarget {
    /// Prometheus's remote-write receiver (`/api/v1/write`): protobuf, snappy-compressed.
    RemoteWrite(reqwest::Url),
    /// InfluxDB 1.x's `/write?db=NAME&precision=ms`: line protocol.
    Influx(reqwest::Url),
}

impl PushTarget {
    /// `prometheus-remote-write=URL` or `influx=URL[?db=NAME]` (database `sluice` by default).
    pub fn parse(text: &str) -> Result<PushTarget, String> {
        let form = "expected prometheus-remote-write=URL or influx=URL[?db=NAME]";
        let (kind, url) = text.trim().split_once('=').ok_or_else(|| format!("'{text}': {form}"))?;
        let url = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("'{text}': '{url}' is not an http(s) URL"))?;
        match kind.trim() {
            "prometheus-remote-write" => Ok(PushTarget::RemoteWrite(url)),
            "influx" => {
                let db = url
                    .query_pairs()
                    .find(|(k, _)| k == "db")
                    .map_or_else(|| "sluice".to_string(), |(_, v)| v.into_owned());
                let mut write = url.clone();
                write.set_path(&format!("{}/write", url.path().trim_end_matches('/')));
                write.query_pairs_mut().clear().append_pair("db", &db).append_pair("precision", "ms");
                Ok(PushTarget::Influx(write))
            }
            other => Err(format!("'{text}': unknown push target '{other}'; {form}")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PushTarget::RemoteWrite(_) => "prometheus-remote-write",
            PushTarget::Influx(_) => "influx",
        }
    }
}

/// What the pushes did, for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushReport {
    /// Points every target accepted, summed over targets.
    pub pushed: u64,
    /// Points dropped because a target refused them or did not answer in time.
    pub dropped: u64,
    /// The last failure, per target, as said.
    pub last_error: Option<String>,
}

impl PushReport {
    /// `  pushed     1240 points (prometheus-remote-write, influx); 62 dropped: influx: …`
    pub fn to_text(&self, targets: &[PushTarget]) -> String {
        let names: Vec<&str> = targets.iter().map(PushTarget::name).collect();
        let mut line = format!("  pushed     {} points ({})", self.pushed, names.join(", "));
        if self.dropped > 0 {
            line += &format!("; {} dropped", self.dropped);
            if let Some(e) = &self.last_error {
                line += &format!(" (last: {e})");
            }
        }
        line + "\n"
    }
}

/// The pushing thread of one run.
pub struct Pusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<PushReport>,
}

impl Pusher {
    /// Starts pushing `metrics` to `targets` every [`PUSH_EVERY`] once the run has a T0. Every
    /// point is labelled `run` (`run_label` of T0's wall time: the run's id) and `shard`.
    pub fn start(
        targets: Vec<PushTarget>,
        run_label: impl Fn(chrono::DateTime<Utc>) -> String + Send + 'static,
        shard: String,
        metrics: Arc<Metrics>,
        handle: RunHandle,
        shape: Shape,
    ) -> std::io::Result<Pusher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = std::thread::Builder::new().name("sluice-push".into()).spawn({
            let stop = stop.clone();
            move || {
                let mut push = Push::new(targets);
                loop {
                    let (lock, wake) = &*stop;
                    let stopped = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (stopped, _) =
                        wake.wait_timeout(stopped, PUSH_EVERY).unwrap_or_else(std::sync::PoisonError::into_inner);
                    let last = *stopped;
                    drop(stopped);
                    // Nothing happens before T0 (a common start may be far off), and the run's
                    // id is known from it.
                    if let Some(t0) = handle.t0_wall() {
                        if push.labels.is_empty() {
                            let run = run_label(t0);
                            push.labels = vec![("run", run), ("shard", shard.clone())];
                        }
                        push.send(metrics.samples(&gauges_of(&handle, &shape)), handle.progress().sent);
                    }
                    if last {
                        return push.report;
                    }
                }
            }
        })?;
        Ok(Pusher { stop, thread })
    }

    /// Pushes the final figures and returns what the pushes did.
    pub fn finish(self) -> PushReport {
        *self.stop.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        self.thread.join().unwrap_or_default()
    }
}

/// The state of the pushes: targets, labels, a client, the last sent count (for the achieved
/// rate) and the report.
struct Push {
    targets: Vec<PushTarget>,
    labels: Vec<(&'static str, String)>,
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<reqwest::Client>,
    last: Option<(Instant, u64)>,
    report: PushReport,
}

impl Push {
    fn new(targets: Vec<PushTarget>) -> Push {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
        let client = crate::send::tls::client_builder().timeout(PUSH_TIMEOUT).no_proxy().build().ok();
        Push { targets, labels: Vec::new(), runtime, client, last: None, report: PushReport::default() }
    }

    /// Sends one set of samples (plus the achieved rate since the last push) to every target.
    fn send(&mut self, mut samples: Vec<Sample>, sent: u64) {
        let now = Instant::now();
        let rate = match self.last {
            Some((at, before)) if now > at => (sent.saturating_sub(before)) as f64 / (now - at).as_secs_f64(),
            _ => 0.0,
        };
        self.last = Some((now, sent));
        samples.push(Sample { name: "sluice_achieved_rate".into(), labels: Vec::new(), value: rate });
        let at_ms = Utc::now().timestamp_millis();
        let points = samples.len() as u64;
        for target in &self.targets {
            let result = match (&self.runtime, &self.client) {
                (Some(runtime), Some(client)) => {
                    let request = match target {
                        PushTarget::RemoteWrite(url) => client
                            .post(url.clone())
                            .header("Content-Encoding", "snappy")
                            .header("Content-Type", "application/x-protobuf")
                            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                            .body(remote_write_body(&samples, &self.labels, at_ms)),
                        PushTarget::Influx(url) => {
                            client.post(url.clone()).body(line_protocol(&samples, &self.labels, at_ms))
                        }
                    };
                    runtime.block_on(async {
                        let response = request.send().await.map_err(|e| crate::send::outcome::error_text(&e))?;
                        match response.status() {
                            s if s.is_success() => Ok(()),
                            s => {
                                let body = response.text().await.unwrap_or_default();
                                Err(format!("{s}: {}", body.trim().chars().take(200).collect::<String>()))
                            }
                        }
                    })
                }
                _ => Err("no HTTP client could be made".to_string()),
            };
            match result {
                Ok(()) => self.report.pushed += points,
                Err(e) => {
                    self.report.dropped += points;
                    self.report.last_error = Some(format!("{}: {e}", target.name()));
                }
            }
        }
    }
}

/// Every sample's labels: its own, then the run's, sorted by name with `__name__` first (the
/// order remote write requires).
fn labels_of<'a>(sample: &'a Sample, run: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    let mut labels: Vec<(&str, &str)> = sample.labels.iter().chain(run).map(|(k, v)| (*k, v.as_str())).collect();
    labels.push(("__name__", &sample.name));
    labels.sort();
    labels
}

/// A remote-write `WriteRequest` (prometheus/prompb, protobuf) of one sample per series at
/// `at_ms`, snappy block-compressed.
fn remote_write_body(samples: &[Sample], run: &[(&'static str, String)], at_ms: i64) -> Vec<u8> {
    let mut request = Vec::with_capacity(samples.len() * 96);
    for sample in samples {
        let mut series = Vec::with_capacity(96);
        for (name, value) in labels_of(sample, run) {
            let mut label = Vec::with_capacity(name.len() + value.len() + 4);
            proto::bytes(&mut label, 1, name.as_bytes());
            proto::bytes(&mut label, 2, value.as_bytes());
            proto::bytes(&mut series, 1, &label);
        }
        let mut point = Vec::with_capacity(20);
        proto::double(&mut point, 1, sample.value);
        proto::int64(&mut point, 2, at_ms);
        proto::bytes(&mut series, 2, &point);
        proto::bytes(&mut request, 1, &series);
    }
    snap::raw::Encoder::new().compress_vec(&request).unwrap_or_default()
}

/// The protobuf wire format, for the four small messages of a remote-write request.
mod proto {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// A length-delimited field (strings, bytes, embedded messages): wire type 2.
    pub fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
        varint(out, (u64::from(field) << 3) | 2);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }

    /// A `double`: wire type 1, eight bytes little-endian.
    pub fn double(out: &mut Vec<u8>, field: u32, value: f64) {
        varint(out, (u64::from(field) << 3) | 1);
        out.extend_from_slice(&value.to_le_bytes());
    }

    /// An `int64`: wire type 0, the two's complement as a varint.
    pub fn int64(out: &mut Vec<u8>, field: u32, value: i64) {
        varint(out, u64::from(field) << 3);
        varint(out, value as u64);
    }
}

/// InfluxDB line protocol, a line per sample: the metric name as measurement, labels as tags,
/// `value` as the field, at `at_ms`.
fn line_protocol(samples: &[Sample], run: &[(&'static str, String)], at_ms: i64) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=").replace(' ', "\\ ");
    let mut body = String::with_capacity(samples.len() * 96);
    for sample in samples {
        body += &escape(&sample.name);
        for (name, value) in labels_of(sample, run).into_iter().filter(|(n, _)| *n != "__name__") {
            body += &format!(",{}={}", escape(name), escape(value));
        }
        let value = if sample.value.is_finite() { sample.value } else { 0.0 };
        body += &format!(" value={value:?} {at_ms}\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample { name: name.into(), labels, value }
    }

    #[test]
    fn push_targets_parse_with_influxs_database() {
        assert_eq!(
            PushTarget::parse("prometheus-remote-write=http://127.0.0.1:9090/api/v1/write").unwrap(),
            PushTarget::RemoteWrite("http://127.0.0.1:9090/api/v1/write".parse().unwrap())
        );
        assert_eq!(
            PushTarget::parse("influx=http://127.0.0.1:8086?db=soak").unwrap(),
            PushTarget::Influx("http://127.0.0.1:8086/write?db=soak&precision=ms".parse().unwrap())
        );
        assert_eq!(
            PushTarget::parse("influx=http://127.0.0.1:8086/").unwrap(),
            PushTarget::Influx("http://127.0.0.1:8086/write?db=sluice&precision=ms".parse().unwrap())
        );
        for bad in ["influx", "graphite=http://x", "influx=ftp://x", "influx=nope"] {
            assert!(PushTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_protocol_escapes_tags_and_keeps_one_line_per_sample() {
        let run = vec![("run", "r 1".to_string()), ("shard", "0/2".to_string())];
        let text = line_protocol(
            &[
                sample("sluice_responses_total", vec![("status_class", "2xx".into())], 12.0),
                sample("x", vec![], f64::NAN),
            ],
            &run,
            1_700_000_000_000,
        );
        assert_eq!(
            text,
            "sluice_responses_total,run=r\\ 1,shard=0/2,status_class=2xx value=12.0 1700000000000\n\
             x,run=r\\ 1,shard=0/2 value=0.0 1700000000000\n"
        );
    }

    #[test]
    fn a_remote_write_series_is_protobuf_with_sorted_labels() {
        let body = remote_write_body(&[sample("up", vec![], 1.0)], &[("run", "a".into())], 1);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        // WriteRequest{ timeseries: [ TimeSeries{ labels: [__name__=up, run=a], samples: [1.0 @ 1] } ] }
        let label = |k: &str, v: &str| {
            let mut l = vec![0x0a, k.len() as u8];
            l.extend(k.bytes());
            l.extend([0x12, v.len() as u8]);
            l.extend(v.bytes());
            let mut f = vec![0x0a, l.len() as u8];
            f.extend(l);
            f
        };
        let mut series = label("__name__", "up");
        series.extend(label("run", "a"));
        let mut point = vec![0x09];
        point.extend(1.0f64.to_le_bytes());
        point.extend([0x10, 0x01]);
        series.extend([0x12, point.len() as u8]);
        series.extend(point);
        let mut expected = vec![0x0a, series.len() as u8];
        expected.extend(series);
        assert_eq!(raw, expected);
    }
}
