//! The target's own metrics: `--prometheus URL` with `--assert 'prom:QUERY OP VALUE'` (judged
//! after the drain, over the run's own time window) and `--abort-on 'prom:QUERY OP VALUE'`
//! (judged every `--prometheus-every` while the run goes).
//!
//! ```text
//! 'prom:sum(increase(app_errors_total[$__range])) == 0'
//!        └──────────── PromQL ──────────────────┘ └op┘└value┘
//! $__range → the run's length in whole seconds (`37s`), $__start / $__end → its ends (Unix s)
//! GET URL/api/v1/query?query=…&time=$__end ──▶ a scalar, or a vector whose every sample is judged
//! ```
//!
//! A query Prometheus refuses, an empty result, a NaN or an unreachable Prometheus is a failure
//! with the reason, never a pass. Before anything is sent, each query is tried once over the last
//! second, so a typo in PromQL exits 2 with Prometheus's own message.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::analysis::assert::{Op, Verdict};

/// How an assertion or abort condition names the target's metrics.
pub const PREFIX: &str = "prom:";

/// One query's answer may take this long.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Samples of a vector answer kept for judging; a query that returns more is too broad to
/// judge one by one (and would print a wall of text).
const MAX_SAMPLES: usize = 100;

/// `QUERY OP VALUE` after `prom:`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromCheck {
    /// As written, `prom:` included.
    pub text: String,
    pub query: String,
    pub op: Op,
    pub threshold: f64,
}

impl PromCheck {
    /// Parses `prom:QUERY OP NUMBER`; the comparison is the last one in the text, followed by a
    /// number only (PromQL has comparisons of its own, which stay in the query).
    pub fn parse(text: &str) -> Result<PromCheck, String> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix(PREFIX).ok_or_else(|| format!("'{trimmed}' does not start with {PREFIX}"))?;
        let form = "expected prom:QUERY OP NUMBER, e.g. 'prom:sum(rate(errors_total[$__range])) < 0.5'";
        let (number_at, threshold) =
            trailing_number(body).ok_or_else(|| format!("'{trimmed}': no number at the end; {form}"))?;
        let head = body[..number_at].trim_end();
        let (op, op_len) =
            [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)]
                .into_iter()
                .find(|(symbol, _)| head.ends_with(symbol))
                .map(|(symbol, op)| (op, symbol.len()))
                .ok_or_else(|| format!("'{trimmed}': no comparison (< <= > >= == !=) before the number; {form}"))?;
        let query = head[..head.len() - op_len].trim();
        if query.is_empty() {
            return Err(format!("'{trimmed}': the query is empty; {form}"));
        }
        Ok(PromCheck { text: trimmed.to_string(), query: query.to_string(), op, threshold })
    }

    /// Judges the check on what Prometheus answers at the end of `window`.
    pub fn judge(&self, prometheus: &Prometheus, window: RunWindow) -> Verdict {
        let verdict = |passed: bool, measured: String, value: Option<f64>| Verdict {
            assertion: self.text.clone(),
            passed,
            measured,
            value,
        };
        let samples = match prometheus.query(&window.substitute(&self.query), window.end) {
            Ok(samples) => samples,
            Err(reason) => return verdict(false, reason, None),
        };
        match samples.as_slice() {
            [] => verdict(false, "the query returned no sample (an empty result never passes)".into(), None),
            [only] => {
                let passed = !only.value.is_nan() && self.op.holds(only.value, self.threshold);
                verdict(passed, format!("= {}{}", only.value, only.labels_text()), Some(only.value))
            }
            many => {
                let failing: Vec<&Sample> =
                    many.iter().filter(|s| s.value.is_nan() || !self.op.holds(s.value, self.threshold)).collect();
                let shown = failing.first().copied().unwrap_or(&many[0]);
                let measured = if failing.is_empty() {
                    format!("all {} samples hold, e.g. {}{}", many.len(), shown.value, shown.labels_text())
                } else {
                    format!(
                        "{} of {} samples fail, e.g. {}{}",
                        failing.len(),
                        many.len(),
                        shown.value,
                        shown.labels_text()
                    )
                };
                verdict(failing.is_empty(), measured, Some(shown.value))
            }
        }
    }
}

/// The index where a number ends the text, and the number.
fn trailing_number(text: &str) -> Option<(usize, f64)> {
    let text = text.trim_end();
    let start = text
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        .last()
        .map(|(i, _)| i)?;
    // `1e-3` is a number; a lone `e` or sign is not: shorten from the left until it parses.
    (start..text.len()).find_map(|i| text[i..].parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| (i, v)))
}

/// What the run covered: from its T0 to the end of its drain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl RunWindow {
    /// The query with `$__range`, `$__start` and `$__end` filled in.
    pub fn substitute(&self, query: &str) -> String {
        let seconds = (self.end - self.start).num_milliseconds().max(0) as f64 / 1000.0;
        let range = format!("{}s", seconds.ceil().max(1.0) as u64);
        let unix = |t: DateTime<Utc>| format!("{:.3}", t.timestamp_millis() as f64 / 1000.0);
        query.replace("$__range", &range).replace("$__start", &unix(self.start)).replace("$__end", &unix(self.end))
    }
}

/// One sample of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// ` {path="/api", status="500"}`, or nothing for a sample without labels.
    fn labels_text(&self) -> String {
        if self.labels.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!(" {{{}}}", pairs.join(", "))
    }
}

/// A Prometheus server's query API.
#[derive(Debug, Clone)]
pub struct Prometheus {
    base: reqwest::Url,
}

impl Prometheus {
    /// `--prometheus URL`: http(s), with an optional path prefix.
    pub fn parse(text: &str) -> Result<Prometheus, String> {
        let base = reqwest::Url::parse(text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("'{text}' is not a URL like http://127.0.0.1:9090"))?;
        Ok(Prometheus { base })
    }

    /// The URL as shown: credentials it may carry are redacted.
    pub fn url(&self) -> String {
        crate::plan::safety::redact_url(self.base.as_str())
    }

    /// An instant query at `at`, on a runtime of its own (callers are plain threads).
    pub fn query(&self, query: &str, at: DateTime<Utc>) -> Result<Vec<Sample>, String> {
        let mut url = self.base.clone();
        url.set_path(&format!("{}/api/v1/query", self.base.path().trim_end_matches('/')));
        let time = format!("{:.3}", at.timestamp_millis() as f64 / 1000.0);
        url.query_pairs_mut().append_pair("query", query).append_pair("time", &time);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime for the query: {e}"))?;
        let body = runtime.block_on(async {
            let client = crate::send::provider::client_builder()
                .timeout(QUERY_TIMEOUT)
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?;
            let response = client.get(url).send().await.map_err(|e| {
                format!("Prometheus at {} did not answer: {}", self.url(), crate::display::error_text(&e))
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| format!("Prometheus at {}: {e}", self.url()))?;
            Ok::<_, String>((status, bytes))
        })?;
        parse_answer(&body.1).map_err(|reason| format!("Prometheus answered {}: {reason}", body.0))
    }

    /// Tries every check once over the last second, so a query Prometheus refuses stops the
    /// command before anything is sent; the message quotes Prometheus.
    pub fn check_queries<'a>(&self, checks: impl IntoIterator<Item = &'a PromCheck>) -> Result<(), String> {
        let now = Utc::now();
        let window = RunWindow { start: now - chrono::Duration::seconds(1), end: now };
        for check in checks {
            self.query(&window.substitute(&check.query), now)
                .map_err(|reason| format!("'{}': {reason}", check.text))?;
        }
        Ok(())
    }
}

/// Prometheus's JSON answer → samples, or its error message.
fn parse_answer(body: &[u8]) -> Result<Vec<Sample>, String> {
    let json: Value = serde_json::from_slice(body).map_err(|_| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
        format!("not the query API's JSON: {text}")
    })?;
    if json["status"] != "success" {
        return Err(format!(
            "{}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("no message")
        ));
    }
    let data = &json["data"];
    let value_of = |pair: &Value| -> Result<f64, String> {
        let text = pair.get(1).and_then(Value::as_str).ok_or("a sample without a value")?;
        text.parse::<f64>().map_err(|_| format!("the value '{text}' is not a number"))
    };
    match data["resultType"].as_str() {
        Some("scalar") => Ok(vec![Sample { labels: Vec::new(), value: value_of(&data["result"])? }]),
        Some("vector") => {
            let result = data["result"].as_array().ok_or("a vector without a result")?;
            if result.len() > MAX_SAMPLES {
                return Err(format!(
                    "{} samples: more than {MAX_SAMPLES}; aggregate the query (sum by …) to judge it",
                    result.len()
                ));
            }
            result
                .iter()
                .map(|s| {
                    let labels = s["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
                        })
                        .unwrap_or_default();
                    Ok(Sample { labels, value: value_of(&s["value"])? })
                })
                .collect()
        }
        other => {
            Err(format!("a {} result: an assertion needs a scalar or an instant vector", other.unwrap_or("missing")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_comparison_before_a_number_ends_the_query() {
        let c = PromCheck::parse("prom:sum(rate(x[1m])) > 0 < 0.25").unwrap();
        assert_eq!((c.query.as_str(), c.op, c.threshold), ("sum(rate(x[1m])) > 0", Op::Lt, 0.25));
        let c = PromCheck::parse("  prom:histogram_quantile(0.99, sum by (le) (rate(b[1m]))) <= 1e-3 ").unwrap();
        assert_eq!((c.op, c.threshold), (Op::Le, 0.001));
        assert_eq!(c.query, "histogram_quantile(0.99, sum by (le) (rate(b[1m])))");
        let c = PromCheck::parse("prom:up == -1").unwrap();
        assert_eq!((c.query.as_str(), c.op, c.threshold), ("up", Op::Eq, -1.0));
        for (bad, words) in [
            ("prom:up", "no number at the end"),
            ("prom:up 3", "no comparison"),
            ("prom:< 3", "the query is empty"),
            ("up < 3", "does not start with prom:"),
        ] {
            let e = PromCheck::parse(bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    #[test]
    fn the_run_window_fills_the_placeholders() {
        let start = DateTime::parse_from_rfc3339("2026-11-29T01:00:00Z").unwrap().with_timezone(&Utc);
        let window = RunWindow { start, end: start + chrono::Duration::milliseconds(36_200) };
        assert_eq!(
            window.substitute("increase(x[$__range]) @ $__end - $__start"),
            "increase(x[37s]) @ 1795914036.200 - 1795914000.000"
        );
    }

    #[test]
    fn answers_become_samples_and_errors_quote_prometheus() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"path":"/a"},"value":[1,"0.5"]},{"metric":{},"value":[1,"NaN"]}]}}"#;
        let samples = parse_answer(vector).unwrap();
        assert_eq!(samples[0], Sample { labels: vec![("path".into(), "/a".into())], value: 0.5 });
        assert!(samples[1].value.is_nan());
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(parse_answer(scalar).unwrap()[0].value, 3.0);
        let refused = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(parse_answer(refused).unwrap_err(), "bad_data: parse error at char 4");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_answer(matrix).unwrap_err().contains("a matrix result"));
        assert!(parse_answer(b"<html>").unwrap_err().contains("not the query API's JSON"));
    }
}
