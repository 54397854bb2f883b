//! `GET /metrics`: what the mock answered, in Prometheus's text format, so a real Prometheus can
//! scrape the target of a replay and `sluice replay --assert 'prom:…'` can check the target's own
//! view of the run.
//!
//! - `mock_requests_total{path,status}`: requests answered (or misbehaved on: `status` is then
//!   `reset`, `garbage` or `hang`), counted when the answer is decided.
//! - `mock_request_duration_seconds{path,status}`: a histogram of the time from the end of the
//!   request's body to the answer (the latency the mock was told to add, as the timer slept it).
//!
//! `path` is the first segment of the request path (`/items/244?x` → `/items`), so a log with a
//! million distinct URLs still makes a handful of series; past [`MAX_PATHS`] distinct ones, the
//! rest are counted under `path="other"`. The scrape itself is not counted, recorded or decided.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::spec::Behavior;

/// The path that answers the metrics instead of being decided.
pub const METRICS_PATH: &str = "/metrics";

/// Distinct `path` labels kept; beyond them, `other`.
pub const MAX_PATHS: usize = 200;

/// Upper bounds of the histogram's buckets, in seconds (Prometheus's defaults, plus 1 ms).
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every series, by path, then status.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<String, BTreeMap<String, Series>>>,
}

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Observations at or below each bound of [`BUCKETS`] (not cumulative; summed when shown).
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    /// Counts one request to `path` that got `behavior` after `took`.
    pub fn observe(&self, path: &str, behavior: Behavior, took: Duration) {
        let status = match behavior {
            Behavior::Status(code) => code.to_string(),
            Behavior::Redirect { .. } => "302".to_string(),
            Behavior::Reset => "reset".to_string(),
            Behavior::Garbage => "garbage".to_string(),
            Behavior::Hang => "hang".to_string(),
        };
        let mut series = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let segment = first_segment(path);
        let label = if series.contains_key(segment) || series.len() < MAX_PATHS { segment } else { "other" };
        let s = match series.get_mut(label) {
            Some(by_status) => by_status.entry(status).or_default(),
            None => series.entry(label.to_string()).or_default().entry(status).or_default(),
        };
        let seconds = took.as_secs_f64();
        s.count += 1;
        s.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            s.buckets[i] += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut t = String::from(
            "# HELP mock_requests_total Requests the mock answered (or misbehaved on), by first path segment and status.\n\
             # TYPE mock_requests_total counter\n",
        );
        for (path, status, s) in flatten(&series) {
            let _ = writeln!(t, "mock_requests_total{{path=\"{}\",status=\"{status}\"}} {}", escape(path), s.count);
        }
        t += "# HELP mock_request_duration_seconds Time from the end of a request's body to its answer.\n\
              # TYPE mock_request_duration_seconds histogram\n";
        for (path, status, s) in flatten(&series) {
            let labels = format!("path=\"{}\",status=\"{status}\"", escape(path));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(t, "mock_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(t, "mock_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(t, "mock_request_duration_seconds_sum{{{labels}}} {}", s.sum_seconds);
            let _ = writeln!(t, "mock_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        t
    }
}

fn flatten(series: &BTreeMap<String, BTreeMap<String, Series>>) -> impl Iterator<Item = (&str, &str, &Series)> {
    series
        .iter()
        .flat_map(|(path, by_status)| by_status.iter().map(move |(status, s)| (path.as_str(), status.as_str(), s)))
}

/// `/items/244?x` → `/items`; `/` → `/`.
fn first_segment(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    match path.get(1..).and_then(|rest| rest.find('/')) {
        Some(end) => &path[..end + 1],
        None if path.is_empty() => "/",
        None => path,
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_labelled_by_their_first_segment() {
        assert_eq!(first_segment("/items/244?x=1"), "/items");
        assert_eq!(first_segment("/items"), "/items");
        assert_eq!(first_segment("/"), "/");
        assert_eq!(first_segment(""), "/");
        assert_eq!(first_segment("/a\"b/c"), "/a\"b");
    }

    #[test]
    fn counts_and_buckets_are_cumulative_and_bounded_in_paths() {
        let m = Metrics::default();
        m.observe("/a/1", Behavior::Status(200), Duration::from_millis(3));
        m.observe("/a/2", Behavior::Status(200), Duration::from_millis(30));
        m.observe("/b", Behavior::Reset, Duration::ZERO);
        let text = m.render();
        assert!(text.contains("mock_requests_total{path=\"/a\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("mock_requests_total{path=\"/b\",status=\"reset\"} 1\n"), "{text}");
        assert!(text.contains("mock_request_duration_seconds_bucket{path=\"/a\",status=\"200\",le=\"0.005\"} 1\n"));
        assert!(text.contains("mock_request_duration_seconds_bucket{path=\"/a\",status=\"200\",le=\"0.05\"} 2\n"));
        assert!(text.contains("mock_request_duration_seconds_count{path=\"/a\",status=\"200\"} 2\n"));
        for i in 0..MAX_PATHS + 10 {
            m.observe(&format!("/p{i}/x"), Behavior::Status(200), Duration::ZERO);
        }
        let text = m.render();
        assert!(text.contains("path=\"other\""));
        assert!(text.lines().filter(|l| l.starts_with("mock_requests_total")).count() <= MAX_PATHS + 1);
    }
}
