//! Process-wide Prometheus metrics, fed by every run's writer thread (one lock per batch of
//! outcomes, never per request) and rendered in the Prometheus text exposition format.
//!
//! Labels are low-cardinality on purpose: method, status class, error kind. No paths, no run ids.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::send::outcome::Outcome;

/// Bucket upper bounds in seconds, shared by the latency and lag histograms: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// `_bucket` (cumulative, `le` labelled), `_sum` and `_count`.
    fn samples(&self, name: &str) -> Vec<Sample> {
        let mut samples = Vec::with_capacity(BUCKETS.len() + 3);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            cumulative += n;
            samples.push(Sample::labelled(format!("{name}_bucket"), "le", bound.to_string(), cumulative as f64));
        }
        samples.push(Sample::labelled(format!("{name}_bucket"), "le", "+Inf".into(), self.count as f64));
        samples.push(Sample::plain(format!("{name}_sum"), self.sum));
        samples.push(Sample::plain(format!("{name}_count"), self.count as f64));
        samples
    }
}

/// One value of a metric: what `/metrics` shows as a line and `--push` sends as a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// At most one label here; a pusher adds the run's own.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    fn plain(name: impl Into<String>, value: f64) -> Sample {
        Sample { name: name.into(), labels: Vec::new(), value }
    }

    fn labelled(name: impl Into<String>, label: &'static str, value_of_label: String, value: f64) -> Sample {
        Sample { name: name.into(), labels: vec![(label, value_of_label)], value }
    }
}

/// A metric with its help text, type and samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<Sample>,
}

#[derive(Debug, Default)]
struct Counters {
    sent_by_method: BTreeMap<String, u64>,
    responses_by_class: BTreeMap<&'static str, u64>,
    errors_by_kind: BTreeMap<&'static str, u64>,
    not_sent: u64,
    duration: Histogram,
    lag: Histogram,
}

/// Gauges that describe the runs rather than their requests; the owner (CLI or daemon) reports them.
#[derive(Debug, Clone, Default)]
pub struct RunGauges {
    pub inflight: u64,
    /// Sum of the target rates of running runs (req/s).
    pub target_rate: f64,
    /// Runs by state (the daemon's view); empty for a single CLI run.
    pub runs_by_state: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

fn status_class(status: u16) -> &'static str {
    match status {
        // A Kafka message's acknowledgement (its row's status 0, Kafka's error code for none).
        0 => "acked",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn record(&self, batch: &[Outcome]) {
        let mut c = self.counters.lock().expect("not poisoned");
        for o in batch {
            let Some(sent) = o.sent else {
                c.not_sent += 1;
                continue;
            };
            *c.sent_by_method.entry(o.method.as_str().to_string()).or_default() += 1;
            match o.result {
                Ok(status) => {
                    *c.responses_by_class.entry(status_class(status)).or_default() += 1;
                    c.duration.observe(o.done.saturating_duration_since(sent).as_secs_f64());
                }
                Err(kind) => *c.errors_by_kind.entry(kind.as_str()).or_default() += 1,
            }
            c.lag.observe(sent.saturating_duration_since(o.scheduled).as_secs_f64());
        }
    }

    /// The metrics in Prometheus text format (version 0.0.4).
    pub fn render(&self, gauges: &RunGauges) -> String {
        let mut out = String::with_capacity(4096);
        for family in self.families(gauges) {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", family.name, family.help, family.name, family.kind);
            for sample in family.samples {
                let labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
                let _ = writeln!(out, "{}{labels} {}", sample.name, sample.value);
            }
        }
        out
    }

    /// Every sample `render` shows, flat: what `--push` sends.
    pub fn samples(&self, gauges: &RunGauges) -> Vec<Sample> {
        self.families(gauges).into_iter().flat_map(|f| f.samples).collect()
    }

    fn families(&self, gauges: &RunGauges) -> Vec<Family> {
        let c = self.counters.lock().expect("not poisoned");
        let by = |label: &'static str, values: Vec<(String, u64)>| -> Vec<(&'static str, String, f64)> {
            values.into_iter().map(|(v, n)| (label, v, n as f64)).collect()
        };
        let labelled = |kind: &'static str,
                        name: &'static str,
                        help: &'static str,
                        values: Vec<(&'static str, String, f64)>| Family {
            name,
            help,
            kind,
            samples: values.into_iter().map(|(label, v, n)| Sample::labelled(name, label, v, n)).collect(),
        };
        let histogram = |name: &'static str, help: &'static str, h: &Histogram| Family {
            name,
            help,
            kind: "histogram",
            samples: h.samples(name),
        };
        let gauge = |name: &'static str, help: &'static str, value: f64| Family {
            name,
            help,
            kind: "gauge",
            samples: vec![Sample::plain(name, value)],
        };
        let mut families = vec![
            labelled(
                "counter",
                "sluice_requests_sent_total",
                "Requests sent, by method.",
                by("method", c.sent_by_method.iter().map(|(k, v)| (k.clone(), *v)).collect()),
            ),
            labelled(
                "counter",
                "sluice_responses_total",
                "Responses received, by status class.",
                by("status_class", c.responses_by_class.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            ),
            labelled(
                "counter",
                "sluice_request_errors_total",
                "Requests that left and got no response, by kind.",
                by("kind", c.errors_by_kind.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            ),
            Family {
                name: "sluice_requests_not_sent_total",
                help: "Requests whose planned time came but that never left (scheduling stopped first); not \
                       counted in sluice_requests_sent_total.",
                kind: "counter",
                samples: vec![Sample::plain("sluice_requests_not_sent_total", c.not_sent as f64)],
            },
            histogram(
                "sluice_request_duration_seconds",
                "Latency of answered requests only: from send to the end of the response body. Requests without \
                 an answer are counted in sluice_request_errors_total, not here.",
                &c.duration,
            ),
            histogram("sluice_schedule_lag_seconds", "How late requests left behind their planned time.", &c.lag),
            gauge("sluice_inflight_requests", "Requests sent and not yet answered.", gauges.inflight as f64),
            gauge(
                "sluice_target_rate",
                "Requests per second the running replays' plans call for now (0 for --rate max and --speed).",
                gauges.target_rate,
            ),
        ];
        if !gauges.runs_by_state.is_empty() {
            families.push(labelled(
                "gauge",
                "sluice_runs",
                "Runs known to the daemon, by state.",
                by("state", gauges.runs_by_state.iter().map(|(k, v)| (k.clone(), *v)).collect()),
            ));
        }
        families.push(Family {
            name: "sluice_build_info",
            help: "Build information.",
            kind: "gauge",
            samples: vec![Sample::labelled("sluice_build_info", "version", env!("CARGO_PKG_VERSION").into(), 1.0)],
        });
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::outcome::ErrorKind;
    use std::time::{Duration, Instant};

    fn outcome(method: &str, result: Result<u16, ErrorKind>, latency_ms: u64) -> Outcome {
        let t = Instant::now();
        Outcome {
            seq: 0,
            log_line: 1,
            log_time: None,
            method: method.parse().unwrap(),
            url: "http://127.0.0.1/".parse().unwrap(),
            orig_status: None,
            scheduled: t,
            sent: Some(t + Duration::from_millis(2)),
            done: t + Duration::from_millis(2 + latency_ms),
            result,
            bytes: 0,
            session: None,
            compare: None,
            e2e: None,
        }
    }

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::new();
        m.record(&[
            outcome("GET", Ok(200), 3),
            outcome("GET", Ok(503), 30),
            outcome("HEAD", Err(ErrorKind::Timeout), 10_000),
        ]);
        let text = m.render(&RunGauges { inflight: 2, target_rate: 100.0, ..Default::default() });
        assert!(text.contains("sluice_requests_sent_total{method=\"GET\"} 2\n"));
        assert!(text.contains("sluice_responses_total{status_class=\"5xx\"} 1\n"));
        assert!(text.contains("sluice_request_errors_total{kind=\"timeout\"} 1\n"));
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        // Latency is of answered requests: the timeout is not in it.
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("sluice_schedule_lag_seconds_bucket{le=\"0.0025\"} 3\n"));
        assert!(text.contains("sluice_inflight_requests 2\n"));
        assert!(text.contains("sluice_build_info{version="));
    }

    #[test]
    fn kafka_messages_count_as_acknowledged_or_by_their_error_kind() {
        let m = Metrics::new();
        m.record(&[
            outcome("PRODUCE", Ok(0), 3),
            outcome("PRODUCE", Ok(0), 4),
            outcome("PRODUCE", Err(ErrorKind::KafkaTimeout), 5_000),
        ]);
        let text = m.render(&RunGauges::default());
        assert!(text.contains("sluice_requests_sent_total{method=\"PRODUCE\"} 3\n"), "{text}");
        assert!(text.contains("sluice_responses_total{status_class=\"acked\"} 2\n"), "{text}");
        assert!(text.contains("sluice_request_errors_total{kind=\"kafka:timeout\"} 1\n"), "{text}");
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
    }
}
