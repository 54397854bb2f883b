//! Assertions for CI: `--assert 'p99 < 250ms'`, `--assert 'route:/api/* error_rate < 1%'`.
//!
//! ```text
//! assertion := [ "route:" PATTERN ] METRIC OP NUMBER [ UNIT ] [ "of target" ]
//!            | [ "route:" PATTERN ] METRIC OP NUMBER [ "%" ] "of baseline"   with --baseline
//! OP        := "<" | "<=" | ">" | ">=" | "==" | "!="
//! UNIT      := "ms" | "s" | "us" | "m" | …            latency metrics (a unit is required): the
//!                                                    units of sluice_parsers::duration
//!            | "%"                                   shares (or a plain fraction: 0.01)
//!            | "/s" | "rps"                          rate; or "N% of target"
//!            | ""                                    ratios (b_p99_ratio < 1.2), or "%"
//! ```
//!
//! `of baseline` (`p99 < 1.1 of baseline`, `error_rate <= 100% of baseline`) compares the metric
//! with the same metric of the `--baseline` run, for the same `route:`, times the factor. The
//! A/B metrics (`status_mismatch_rate`, `body_mismatch_rate`, `b_p99_ratio`, …) read a
//! `--compare` run's columns.
//!
//! A parse error points at the token it could not use; an unknown metric lists the known ones.
//! Every value is measured from the same histograms and counts the report shows.

use std::fmt;
use std::ops::Range;

use sluice_parsers::duration::unit_nanos;

use super::aggregate::Aggregate;
use super::compare::AbFold;
use super::plan::{self, Target, Window};
use super::routes::RouteGlob;
use crate::stats::{NO_STATUS, Tally, class_of};

/// The error kinds the CSV's `error` column holds (see [`crate::send::outcome::ErrorKind`]).
pub const ERROR_KINDS: [&str; 8] = ["timeout", "connect", "reset", "tls", "protocol", "aborted", "local", "other"];

/// The metric names, for an unknown-metric message and `--help`.
pub const KNOWN_METRICS: &str = "\
p50 p90 p95 p99 p999 max mean (latency of answered requests from the send, e.g. `p99 < 250ms`; \
with no answered request, a latency assertion fails); \
the same with `_from_schedule` (from the planned send time: `p99_from_schedule`); \
lag_p50 lag_p90 lag_p99 lag_p999 lag_max lag_mean (behind the plan); \
e2e_p50 … e2e_mean (Kafka with --consume: from the send to the output message) lost (no output); \
requests (sent) responses errors (no answer) failed (no answer or 5xx) not_sent bytes; \
error_rate (failed share, e.g. `< 1%`) transport_error_rate mismatch_rate mismatches \
(logged vs replayed status class); status_NNN status_Nxx and status_NNN_rate status_Nxx_rate; \
error_KIND and error_KIND_rate (KIND: timeout connect reset tls protocol aborted local other); \
rate (requests/s, or `rate >= 95% of target`); \
with --compare columns: status_mismatches status_mismatch_rate body_mismatches body_mismatch_rate \
(target vs baseline, noise aside) and b_p50_ratio … b_p99_ratio b_max_ratio b_mean_ratio \
(target ÷ baseline latency); any metric `< 1.1 of baseline` with --baseline";

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Stat {
    fn parse(name: &str) -> Option<Stat> {
        Some(match name {
            "p50" => Stat::P50,
            "p90" => Stat::P90,
            "p95" => Stat::P95,
            "p99" => Stat::P99,
            "p999" => Stat::P999,
            "max" => Stat::Max,
            "mean" => Stat::Mean,
            _ => return None,
        })
    }

    /// The statistic of a µs histogram, in ms; `None` when it is empty.
    pub fn of<T: hdrhistogram::Counter>(self, h: &hdrhistogram::Histogram<T>) -> Option<f64> {
        if h.is_empty() {
            return None;
        }
        let us = match self {
            Stat::P50 => h.value_at_quantile(0.5) as f64,
            Stat::P90 => h.value_at_quantile(0.9) as f64,
            Stat::P95 => h.value_at_quantile(0.95) as f64,
            Stat::P99 => h.value_at_quantile(0.99) as f64,
            Stat::P999 => h.value_at_quantile(0.999) as f64,
            Stat::Max => h.max() as f64,
            Stat::Mean => h.mean(),
        };
        Some(us / 1e3)
    }
}

/// Which requests a status metric counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSel {
    Code(u16),
    /// 1 to 5 for 1xx to 5xx.
    Class(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Latency(Stat),
    LatencyFromSchedule(Stat),
    Lag(Stat),
    /// End to end, from the send to the output message (`--consume`).
    EndToEnd(Stat),
    /// Produced messages whose output never came (`--consume`).
    Lost,
    Requests,
    Responses,
    Errors,
    Failed,
    NotSent,
    Bytes,
    ErrorRate,
    TransportErrorRate,
    Mismatches,
    MismatchRate,
    Status {
        sel: StatusSel,
        share: bool,
    },
    ErrorKind {
        kind: String,
        share: bool,
    },
    Rate,
    /// `--compare`: rows whose target and baseline statuses differ (noise aside).
    AbStatusMismatches {
        share: bool,
    },
    /// `--compare`: rows whose bodies differ (noise aside), of those where both answered.
    AbBodyMismatches {
        share: bool,
    },
    /// `--compare`: the target's latency statistic ÷ the baseline's.
    AbLatencyRatio(Stat),
}

/// What a metric's threshold is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Millis,
    Count,
    Share,
    Rate,
    Ratio,
}

impl Metric {
    pub fn parse(name: &str) -> Option<Metric> {
        if let Some(stat) = Stat::parse(name) {
            return Some(Metric::Latency(stat));
        }
        if let Some(stat) = name.strip_suffix("_from_schedule").and_then(Stat::parse) {
            return Some(Metric::LatencyFromSchedule(stat));
        }
        if let Some(stat) = name.strip_prefix("lag_").and_then(Stat::parse) {
            return Some(Metric::Lag(stat));
        }
        if let Some(stat) = name.strip_prefix("b_").and_then(|n| n.strip_suffix("_ratio")).and_then(Stat::parse) {
            return Some(Metric::AbLatencyRatio(stat));
        }
        if let Some(stat) = name.strip_prefix("e2e_").and_then(Stat::parse) {
            return Some(Metric::EndToEnd(stat));
        }
        Some(match name {
            "requests" => Metric::Requests,
            "responses" => Metric::Responses,
            "errors" => Metric::Errors,
            "failed" => Metric::Failed,
            "not_sent" => Metric::NotSent,
            "bytes" => Metric::Bytes,
            "error_rate" => Metric::ErrorRate,
            "transport_error_rate" => Metric::TransportErrorRate,
            "mismatches" => Metric::Mismatches,
            "mismatch_rate" => Metric::MismatchRate,
            "rate" => Metric::Rate,
            "status_mismatches" => Metric::AbStatusMismatches { share: false },
            "status_mismatch_rate" => Metric::AbStatusMismatches { share: true },
            "body_mismatches" => Metric::AbBodyMismatches { share: false },
            "body_mismatch_rate" => Metric::AbBodyMismatches { share: true },
            "lost" => Metric::Lost,
            _ => return Metric::parse_family(name),
        })
    }

    /// `status_503`, `status_5xx_rate`, `error_timeout`, `error_reset_rate`.
    fn parse_family(name: &str) -> Option<Metric> {
        let (base, share) = match name.strip_suffix("_rate") {
            Some(base) => (base, true),
            None => (name, false),
        };
        if let Some(code) = base.strip_prefix("status_") {
            let b = code.as_bytes();
            let sel = match b {
                [c @ b'1'..=b'5', b'x', b'x'] => StatusSel::Class(u16::from(c - b'0')),
                [_, _, _] if b.iter().all(u8::is_ascii_digit) => StatusSel::Code(code.parse().ok()?),
                _ => return None,
            };
            return Some(Metric::Status { sel, share });
        }
        let kind = base.strip_prefix("error_")?;
        ERROR_KINDS.contains(&kind).then(|| Metric::ErrorKind { kind: kind.to_string(), share })
    }

    fn kind(&self) -> Kind {
        match self {
            Metric::Latency(_) | Metric::LatencyFromSchedule(_) | Metric::Lag(_) | Metric::EndToEnd(_) => Kind::Millis,
            Metric::ErrorRate | Metric::TransportErrorRate | Metric::MismatchRate => Kind::Share,
            Metric::AbLatencyRatio(_) => Kind::Ratio,
            Metric::Status { share, .. }
            | Metric::ErrorKind { share, .. }
            | Metric::AbStatusMismatches { share }
            | Metric::AbBodyMismatches { share } => {
                if *share {
                    Kind::Share
                } else {
                    Kind::Count
                }
            }
            Metric::Rate => Kind::Rate,
            _ => Kind::Count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub(crate) fn holds(self, measured: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => measured < threshold,
            Op::Le => measured <= threshold,
            Op::Gt => measured > threshold,
            Op::Ge => measured >= threshold,
            Op::Eq => measured == threshold,
            Op::Ne => measured != threshold,
        }
    }
}

/// The value to compare with, in the metric's own unit (ms, a count, a fraction, requests/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Value(f64),
    /// A fraction of the target rate.
    OfTarget(f64),
    /// This many times the same metric in the `--baseline` run.
    OfBaseline(f64),
}

impl Metric {
    /// Whether it reads the `--compare` columns.
    fn is_ab(&self) -> bool {
        matches!(self, Metric::AbStatusMismatches { .. } | Metric::AbBodyMismatches { .. } | Metric::AbLatencyRatio(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    /// As written, trimmed.
    pub text: String,
    pub scope: Option<RouteGlob>,
    /// The metric as written (`p99`), for showing what was measured.
    pub name: String,
    pub metric: Metric,
    pub op: Op,
    pub threshold: Threshold,
}

/// An assertion that does not parse: the message, and the byte range of the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AssertError {
    pub text: String,
    pub at: Range<usize>,
    pub message: String,
}

impl fmt::Display for AssertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let before = self.text[..self.at.start].chars().count();
        let width = self.text[self.at.clone()].chars().count().max(1);
        write!(
            f,
            "--assert '{}': {}\n    {}\n    {}{}",
            self.text,
            self.message,
            self.text,
            " ".repeat(before),
            "^".repeat(width)
        )
    }
}

/// A cursor over the assertion's text; every token it returns carries its byte range.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        self.pos += self.text[self.pos..].len() - self.text[self.pos..].trim_start().len();
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> (Range<usize>, &'a str) {
        self.skip_space();
        let start = self.pos;
        let len = self.text[start..].find(|c: char| !keep(c)).unwrap_or(self.text.len() - start);
        self.pos += len;
        (start..self.pos, &self.text[start..self.pos])
    }

    fn word(&mut self) -> (Range<usize>, &'a str) {
        self.take_while(|c| c.is_alphanumeric() || c == '_')
    }

    /// The next whitespace-separated chunk, for pointing at what could not be used.
    fn peek_token(&self) -> Range<usize> {
        let rest = &self.text[self.pos..];
        let start = self.pos + (rest.len() - rest.trim_start().len());
        let len = self.text[start..].find(char::is_whitespace).unwrap_or(self.text.len() - start);
        start..start + len
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        let found = self.text[self.pos..].starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos == self.text.len()
    }
}

impl Assertion {
    pub fn parse(input: &str) -> Result<Assertion, AssertError> {
        let text = input.trim();
        let mut c = Cursor { text, pos: 0 };
        let err = |at: Range<usize>, message: String| AssertError { text: text.to_string(), at, message };
        let scope = parse_scope(&mut c).map_err(|(at, m)| err(at, m))?;

        let (at, name) = c.word();
        if name.is_empty() {
            return Err(err(c.peek_token(), "expected a metric, e.g. `p99 < 250ms`".into()));
        }
        let metric =
            Metric::parse(name).ok_or_else(|| err(at, format!("unknown metric '{name}'; known: {KNOWN_METRICS}")))?;
        let op = parse_op(&mut c, name).map_err(|(at, m)| err(at, m))?;
        let threshold = parse_threshold(&mut c, &metric, scope.is_some()).map_err(|(at, m)| err(at, m))?;
        if !c.at_end() {
            let at = c.peek_token();
            return Err(err(at.clone(), format!("unexpected '{}' after the value", &text[at])));
        }
        Ok(Assertion { text: text.to_string(), scope, name: name.to_string(), metric, op, threshold })
    }

    /// Whether only a finished run's report can measure it: it reads the `--compare` columns or
    /// names the `--baseline` run.
    pub fn needs_report(&self) -> bool {
        self.metric.is_ab() || matches!(self.threshold, Threshold::OfBaseline(_))
    }
}

type Problem = (Range<usize>, String);

fn parse_scope(c: &mut Cursor<'_>) -> Result<Option<RouteGlob>, Problem> {
    c.skip_space();
    if !c.text[c.pos..].starts_with("route:") {
        return Ok(None);
    }
    let keyword = c.pos..c.pos + "route:".len();
    c.pos = keyword.end;
    let rest = &c.text[c.pos..];
    let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if len == 0 {
        return Err((keyword, "expected a path pattern right after `route:`, e.g. `route:/api/*`".into()));
    }
    c.pos += len;
    Ok(Some(RouteGlob::new(&rest[..len])))
}

fn parse_op(c: &mut Cursor<'_>, metric: &str) -> Result<Op, Problem> {
    for (sym, op) in [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)] {
        if c.eat(sym) {
            return Ok(op);
        }
    }
    let at = c.peek_token();
    if c.text[at.clone()].starts_with('=') {
        return Err((at.start..at.start + 1, "use `==` to compare".into()));
    }
    Err((at, format!("expected a comparison (<, <=, >, >=, ==, !=) after '{metric}'")))
}

fn parse_threshold(c: &mut Cursor<'_>, metric: &Metric, scoped: bool) -> Result<Threshold, Problem> {
    let (num_at, number) = c.take_while(|ch| ch.is_ascii_digit() || ch == '.');
    let value: f64 = match number.parse() {
        Ok(v) => v,
        Err(_) => {
            let at = if number.is_empty() { c.peek_token() } else { num_at };
            return Err((at, "expected a number".into()));
        }
    };
    if let Some(factor) = of_baseline(c, value) {
        return Ok(Threshold::OfBaseline(factor));
    }
    let unit_at = c.peek_token();
    let unit = if c.eat("%") {
        "%"
    } else if c.eat("/s") {
        "/s"
    } else {
        c.word().1
    };
    let unit_at = if unit.is_empty() { num_at.clone() } else { unit_at.start..unit_at.start + unit.len() };
    let threshold = match metric.kind() {
        Kind::Millis => Threshold::Value(millis(value, unit).ok_or_else(|| {
            (unit_at.clone(), format!("a latency needs a time unit: {number}ms, {number}s or {number}us"))
        })?),
        Kind::Count => match unit {
            "" => Threshold::Value(value),
            _ => return Err((unit_at, "a count takes a plain number".into())),
        },
        Kind::Share => Threshold::Value(share(value, unit).map_err(|m| (unit_at.clone(), m))?),
        Kind::Rate => rate_threshold(c, value, unit, scoped).map_err(|m| (unit_at.clone(), m))?,
        Kind::Ratio => match unit {
            "" => Threshold::Value(value),
            "%" => Threshold::Value(value / 100.0),
            _ => return Err((unit_at, "a ratio takes a plain number (1.2) or a percentage (120%)".into())),
        },
    };
    Ok(threshold)
}

/// `1.1 of baseline` or `110% of baseline` → 1.1; the cursor stays put when it is neither.
fn of_baseline(c: &mut Cursor<'_>, value: f64) -> Option<f64> {
    let before = c.pos;
    let percent = c.eat("%");
    let (_, of) = c.word();
    let (_, baseline) = c.word();
    if of == "of" && baseline == "baseline" {
        return Some(if percent { value / 100.0 } else { value });
    }
    c.pos = before;
    None
}

/// A latency in ms, in any time unit of the duration grammar.
fn millis(value: f64, unit: &str) -> Option<f64> {
    unit_nanos(unit).map(|nanos| value * nanos as f64 / 1e6)
}

fn share(value: f64, unit: &str) -> Result<f64, String> {
    match unit {
        "%" => Ok(value / 100.0),
        "" if value <= 1.0 => Ok(value),
        "" => Err(format!("a share is a percentage or a fraction: write {value}% or {}", value / 100.0)),
        _ => Err("a share takes a percentage (1%) or a fraction (0.01)".into()),
    }
}

fn rate_threshold(c: &mut Cursor<'_>, value: f64, unit: &str, scoped: bool) -> Result<Threshold, String> {
    match unit {
        "" | "/s" | "rps" => Ok(Threshold::Value(value)),
        "%" => {
            let before = c.pos;
            let (_, of) = c.word();
            let (_, target) = c.word();
            if of != "of" || target != "target" {
                c.pos = before;
                return Err("a rate in percent is of the target: `rate >= 95% of target`".into());
            }
            if scoped {
                return Err("`of target` is for the whole run; a route's rate takes requests/s".into());
            }
            Ok(Threshold::OfTarget(value / 100.0))
        }
        _ => Err("a rate is requests per second (200, 200/s) or `N% of target`".into()),
    }
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub assertion: String,
    pub passed: bool,
    /// What was measured, as shown (`p99 = 23.09 ms`), or why nothing could be.
    pub measured: String,
    /// The measured value in the metric's unit (ms, count, fraction, requests/s).
    pub value: Option<f64>,
}

/// What the assertions measure against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub aggregate: &'a Aggregate,
    pub target: Target,
    /// The `--compare` columns, folded, when the CSV has them.
    pub compare: Option<&'a AbFold>,
    /// The `--baseline` run.
    pub baseline: Option<&'a Aggregate>,
}

pub fn evaluate_all(assertions: &[Assertion], ctx: Context<'_>) -> Vec<Verdict> {
    assertions.iter().map(|a| evaluate(a, ctx)).collect()
}

/// The assertion's own group of an aggregate: the whole run, or its `route:`.
fn group_of<'a>(a: &Assertion, aggregate: &'a Aggregate) -> Option<&'a Tally> {
    match &a.scope {
        None => Some(&aggregate.overall),
        Some(glob) => aggregate.filtered.iter().find(|(g, _)| g == glob).map(|(_, group)| group),
    }
}

pub fn evaluate(a: &Assertion, ctx: Context<'_>) -> Verdict {
    if let Threshold::OfBaseline(factor) = a.threshold {
        return against_baseline(a, factor, ctx);
    }
    if a.metric.is_ab() {
        return evaluate_ab(a, ctx.compare);
    }
    let group = group_of(a, ctx.aggregate);
    let target_rate = match ctx.target {
        Target::Rate(n) => Some(n),
        Target::Planned if matches!(a.threshold, Threshold::OfTarget(_)) && group.is_some_and(|g| g.requests > 0) => {
            return against_plan(a, &plan::windows(ctx.aggregate));
        }
        Target::Planned | Target::None => None,
    };
    match group {
        Some(g) => evaluate_group(a, g, ctx.aggregate.seconds(), target_rate),
        None => Verdict { assertion: a.text.clone(), passed: false, measured: no_requests(a), value: None },
    }
}

/// `METRIC OP F of baseline`: the metric measured on both runs, the same way.
fn against_baseline(a: &Assertion, factor: f64, ctx: Context<'_>) -> Verdict {
    let failed = |measured: String| Verdict { assertion: a.text.clone(), passed: false, measured, value: None };
    let Some(baseline) = ctx.baseline else {
        return failed("no --baseline run to compare with".into());
    };
    let value_in = |aggregate: &Aggregate, compare: Option<&AbFold>| -> Result<f64, String> {
        let plain = Assertion { threshold: Threshold::Value(0.0), ..a.clone() };
        let verdict = if a.metric.is_ab() {
            evaluate_ab(&plain, compare)
        } else {
            let target = match ctx.target {
                Target::Rate(n) => Some(n),
                _ => None,
            };
            match group_of(a, aggregate) {
                Some(g) => evaluate_group(&plain, g, aggregate.seconds(), target),
                None => return Err(no_requests(a)),
            }
        };
        verdict.value.ok_or(verdict.measured)
    };
    let new = match value_in(ctx.aggregate, ctx.compare) {
        Ok(v) => v,
        Err(why) => return failed(why),
    };
    // A --compare baseline's own A/B columns are not folded: A/B metrics compare within a run.
    let old = match value_in(baseline, None) {
        Ok(v) => v,
        Err(why) => return failed(format!("baseline: {why}")),
    };
    let limit = old * factor;
    Verdict {
        assertion: a.text.clone(),
        passed: a.op.holds(new, limit),
        measured: format!(
            "{} = {} against {} in the baseline (× {factor} = {})",
            a.name,
            shown(a, new),
            shown(a, old),
            shown(a, limit)
        ),
        value: Some(new),
    }
}

/// A value in its metric's unit, as verdicts show it.
fn shown(a: &Assertion, v: f64) -> String {
    match a.metric.kind() {
        Kind::Millis => format!("{v:.2} ms"),
        Kind::Share => percent(v),
        Kind::Rate => format!("{v:.1}/s"),
        Kind::Ratio => format!("{v:.3}"),
        Kind::Count => format!("{v}"),
    }
}

/// An A/B metric, from the `--compare` columns.
fn evaluate_ab(a: &Assertion, compare: Option<&AbFold>) -> Verdict {
    let verdict = |passed, measured, value| Verdict { assertion: a.text.clone(), passed, measured, value };
    let Some(fold) = compare else {
        return verdict(false, format!("{}: the CSV has no --compare columns", a.name), None);
    };
    let group = match &a.scope {
        None => Some(&fold.overall),
        Some(glob) => fold.filtered.iter().find(|(g, _)| g == glob).map(|(_, group)| group),
    };
    let Some(g) = group.filter(|g| g.compared > 0) else {
        return verdict(false, no_requests(a), None);
    };
    let name = &a.name;
    let (value, shown) = match &a.metric {
        Metric::AbStatusMismatches { share: false } => {
            (g.status_mismatches as f64, format!("{name} = {}", g.status_mismatches))
        }
        Metric::AbStatusMismatches { share: true } => (
            g.status_mismatch_rate(),
            format!("{name} = {} ({} of {})", percent(g.status_mismatch_rate()), g.status_mismatches, g.compared),
        ),
        Metric::AbBodyMismatches { share: false } => {
            (g.body_mismatches as f64, format!("{name} = {}", g.body_mismatches))
        }
        Metric::AbBodyMismatches { share: true } => (
            g.body_mismatch_rate(),
            format!("{name} = {} ({} of {})", percent(g.body_mismatch_rate()), g.body_mismatches, g.bodies_compared),
        ),
        Metric::AbLatencyRatio(stat) => match g.latency_ratio(*stat) {
            Some(r) => (r, format!("{name} = {r:.3}")),
            None => return verdict(false, "no row where both answered: no latency to compare".into(), None),
        },
        _ => unreachable!("only A/B metrics come here"),
    };
    verdict(a.op.holds(value, threshold_value(a.threshold)), shown, Some(value))
}

/// `rate OP N% of target` against a plan that does not keep one rate: the assertion holds when
/// it holds in every window of full slices ([`plan::windows`]). What is shown is the first
/// window where it does not, else the one closest to failing.
fn against_plan(a: &Assertion, windows: &[Window]) -> Verdict {
    let verdict = |passed, measured, value| Verdict { assertion: a.text.clone(), passed, measured, value };
    let threshold = threshold_value(a.threshold);
    let holds = |w: &Window| a.op.holds(w.share(), threshold);
    let missed: Vec<&Window> = windows.iter().filter(|w| !holds(w)).collect();
    // Closest to failing: the lowest share for `>`/`>=` (and `==`/`!=`), the highest for `<`/`<=`.
    let closest = if matches!(a.op, Op::Lt | Op::Le) {
        windows.iter().max_by(|x, y| x.share().total_cmp(&y.share()))
    } else {
        windows.iter().min_by(|x, y| x.share().total_cmp(&y.share()))
    };
    let Some(shown) = missed.first().copied().or(closest) else {
        return verdict(false, format!("{} = no full time slice of the plan to compare with", a.name), None);
    };
    let achieved = shown.sent as f64 / shown.seconds();
    let planned = shown.planned as f64 / shown.seconds();
    let which = if missed.is_empty() {
        format!("lowest of {} windows", windows.len())
    } else {
        format!("{} of {} windows missed", missed.len(), windows.len())
    };
    let measured = format!(
        "{} = {achieved:.1}/s = {} of {planned:.1}/s planned in {}; {which}",
        a.name,
        percent(shown.share()),
        window_text(shown)
    );
    verdict(missed.is_empty(), measured, Some(achieved))
}

/// `10:00:03–10:00:04 UTC` (milliseconds when a bound is not on a whole second).
fn window_text(w: &Window) -> String {
    let at = |ms: i64| {
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        if ms % 1000 == 0 { t.format("%H:%M:%S").to_string() } else { t.format("%H:%M:%S%.3f").to_string() }
    };
    format!("{}–{} UTC", at(w.start_ms), at(w.end_ms))
}

/// One assertion over one group of requests sent over `seconds` (the group must already be the
/// assertion's own: the whole run, or its `route:`). Also what `--abort-on` judges live.
pub fn evaluate_group(a: &Assertion, g: &Tally, seconds: f64, target_rate: Option<f64>) -> Verdict {
    if a.needs_report() {
        let why = "measured by `sluice report` on a finished run (--compare columns, --baseline)";
        return Verdict {
            assertion: a.text.clone(),
            passed: false,
            measured: format!("{}: {why}", a.name),
            value: None,
        };
    }
    let measured = if g.requests > 0 || a.metric == Metric::NotSent {
        measure(a, g, seconds, target_rate)
    } else {
        Err(no_requests(a))
    };
    match measured {
        Ok((value, shown, compared)) => Verdict {
            assertion: a.text.clone(),
            passed: a.op.holds(compared, threshold_value(a.threshold)),
            measured: shown,
            value: Some(value),
        },
        Err(why) => Verdict { assertion: a.text.clone(), passed: false, measured: why, value: None },
    }
}

fn no_requests(a: &Assertion) -> String {
    match &a.scope {
        Some(glob) => format!("no request matched route:{}", glob.as_str()),
        None => "no requests".to_string(),
    }
}

fn threshold_value(t: Threshold) -> f64 {
    match t {
        Threshold::Value(v) | Threshold::OfTarget(v) | Threshold::OfBaseline(v) => v,
    }
}

/// (value in the metric's unit, how to show it, what to compare with the threshold).
fn measure(a: &Assertion, g: &Tally, seconds: f64, target_rate: Option<f64>) -> Result<(f64, String, f64), String> {
    let name = a.name.as_str();
    let count = |n: u64| Ok((n as f64, format!("{name} = {n}"), n as f64));
    let fraction = |k: u64, n: u64| {
        let f = if n == 0 { 0.0 } else { k as f64 / n as f64 };
        Ok((f, format!("{name} = {} ({k} of {n})", percent(f)), f))
    };
    // Lag is shown to the microsecond, as in the run summary; latency to 10 µs.
    let latency = |h: &hdrhistogram::Histogram<u64>, stat: Stat, decimals: usize, none: &str| match stat.of(h) {
        Some(ms) => Ok((ms, format!("{name} = {ms:.decimals$} ms"), ms)),
        None => Err(none.to_string()),
    };
    let unanswered = "no answered request: no latency to measure";
    match &a.metric {
        Metric::Latency(stat) => latency(&g.latency, *stat, 2, unanswered),
        Metric::LatencyFromSchedule(stat) => latency(&g.from_schedule, *stat, 2, unanswered),
        Metric::Lag(stat) => latency(&g.lag, *stat, 3, "no request left: no lag to measure"),
        Metric::EndToEnd(stat) => {
            latency(&g.end_to_end, *stat, 2, "no output message matched (is this a --consume run?)")
        }
        Metric::Lost => count(g.lost),
        Metric::Requests => count(g.requests),
        Metric::Responses => count(g.responses()),
        Metric::Errors => count(g.errors()),
        Metric::Failed => count(g.failed()),
        Metric::NotSent => count(g.not_sent),
        Metric::Bytes => count(g.bytes),
        Metric::ErrorRate => fraction(g.failed(), g.requests),
        Metric::TransportErrorRate => fraction(g.errors(), g.requests),
        Metric::Mismatches => count(g.mismatches()),
        Metric::MismatchRate => match g.with_orig() {
            0 => Err("no request has a logged status to compare with".to_string()),
            n => fraction(g.mismatches(), n),
        },
        Metric::Status { sel, share } => {
            let n = status_count(g, *sel);
            if *share { fraction(n, g.requests) } else { count(n) }
        }
        Metric::ErrorKind { kind, share } => {
            let n = g.errors.get(kind).copied().unwrap_or(0);
            if *share { fraction(n, g.requests) } else { count(n) }
        }
        Metric::Rate => measure_rate(a, g, seconds, target_rate, name),
        Metric::AbStatusMismatches { .. } | Metric::AbBodyMismatches { .. } | Metric::AbLatencyRatio(_) => {
            Err(format!("{name}: the --compare columns are not in these figures"))
        }
    }
}

fn status_count(g: &Tally, sel: StatusSel) -> u64 {
    match sel {
        StatusSel::Code(code) => g.statuses.get(&code).copied().unwrap_or(0),
        StatusSel::Class(c) => {
            let class = usize::from(c) - 1;
            debug_assert!(class < NO_STATUS && class == class_of(c * 100));
            g.class_count(class)
        }
    }
}

fn measure_rate(
    a: &Assertion,
    g: &Tally,
    seconds: f64,
    target_rate: Option<f64>,
    name: &str,
) -> Result<(f64, String, f64), String> {
    if seconds <= 0.0 {
        return Err("too few requests to measure a rate".to_string());
    }
    let rate = g.requests as f64 / seconds;
    match (a.threshold, target_rate) {
        (Threshold::OfTarget(_), Some(target)) => {
            let share = rate / target;
            Ok((rate, format!("{name} = {rate:.1}/s = {} of {target}/s target", percent(share)), share))
        }
        (Threshold::OfTarget(_), None) => Err(format!(
            "{name} = {rate:.1}/s, but there is no target rate (run at --rate max, or the CSV's plan \
             could not be inferred): pass --target-rate N"
        )),
        (Threshold::Value(_) | Threshold::OfBaseline(_), _) => Ok((rate, format!("{name} = {rate:.1}/s"), rate)),
    }
}

/// `0.96%`, `12.5%`, `0.004%`: enough digits to tell a small share from zero.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.1}%")
    } else if p >= 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.3}%")
    }
}

/// PASS/FAIL lines, aligned; a measurement that would pass 100 columns goes on its own line.
pub fn verdicts_text(verdicts: &[Verdict]) -> String {
    let width = verdicts.iter().map(|v| v.assertion.chars().count()).max().unwrap_or(0).min(40);
    let mut out = String::new();
    for v in verdicts {
        let mark = if v.passed { "PASS" } else { "FAIL" };
        let head = format!("  {mark}  {:<width$}", v.assertion);
        if head.chars().count() + 2 + v.measured.chars().count() <= 100 {
            out += &format!("{head}  {}\n", v.measured);
        } else {
            out += &format!("{}\n          {}\n", head.trim_end(), v.measured);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Assertion {
        Assertion::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn latency_units_are_the_duration_grammars() {
        for (text, ms) in [("p99 < 2min", 120_000.0), ("p99 < 1h", 3_600_000.0), ("p99 < 250000ns", 0.25)] {
            assert_eq!(parse(text).threshold, Threshold::Value(ms), "{text}");
        }
    }

    #[test]
    fn the_issue_examples_parse() {
        let a = parse("p99 < 250ms");
        assert_eq!((a.metric, a.op, a.threshold), (Metric::Latency(Stat::P99), Op::Lt, Threshold::Value(250.0)));
        assert_eq!(parse("error_rate < 1%").threshold, Threshold::Value(0.01));
        let a = parse("status_5xx == 0");
        assert_eq!(a.metric, Metric::Status { sel: StatusSel::Class(5), share: false });
        assert_eq!(parse("rate >= 95% of target").threshold, Threshold::OfTarget(0.95));
        assert_eq!(parse("mismatch_rate < 0.5%").threshold, Threshold::Value(0.005));
        let a = parse("route:/api/* p99 < 100ms");
        assert_eq!(a.scope, Some(RouteGlob::new("/api/*")));
        assert_eq!(parse("  p99_from_schedule<=1.5s ").threshold, Threshold::Value(1500.0));
        assert_eq!(parse("lag_p99 < 500us").threshold, Threshold::Value(0.5));
        assert_eq!(parse("rate > 200/s").threshold, Threshold::Value(200.0));
        assert_eq!(
            parse("error_timeout_rate <= 0.001").metric,
            Metric::ErrorKind { kind: "timeout".into(), share: true }
        );
        assert_eq!(parse("status_404 != 3").metric, Metric::Status { sel: StatusSel::Code(404), share: false });
    }

    fn error(s: &str) -> (String, String) {
        let e = Assertion::parse(s).unwrap_err();
        (e.text[e.at.clone()].to_string(), e.message)
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        assert_eq!(error("p99 < 250 parsecs").0, "parsecs");
        assert_eq!(error("p99 < 250").0, "250");
        assert!(error("p99 < 250").1.contains("time unit"));
        assert_eq!(error("p98 < 250ms").0, "p98");
        assert!(error("p98 < 250ms").1.contains("known: p50 p90"));
        assert_eq!(error("p99 ~ 250ms").0, "~");
        assert_eq!(error("p99 = 250ms").1, "use `==` to compare");
        assert_eq!(error("p99 < fast").0, "fast");
        assert_eq!(error("p99 < 250ms please").0, "please");
        assert_eq!(error("error_rate < 5").0, "5");
        assert_eq!(error("requests > 5ms").0, "ms");
        assert_eq!(error("route:/x rate > 90% of target").0, "%");
        assert_eq!(error("rate > 90%").0, "%");
        assert_eq!(error("status_6xx == 0").0, "status_6xx");
        assert_eq!(error("error_boom == 0").0, "error_boom");
        assert_eq!(error("").1, "expected a metric, e.g. `p99 < 250ms`");
        assert_eq!(error("route: p99 < 1ms").0, "route:");
    }

    #[test]
    fn comparison_metrics_and_baseline_factors_parse() {
        assert_eq!(parse("b_p99_ratio < 1.2").metric, Metric::AbLatencyRatio(Stat::P99));
        assert_eq!(parse("b_p99_ratio < 120%").threshold, Threshold::Value(1.2));
        assert_eq!(parse("body_mismatch_rate < 0.1%").threshold, Threshold::Value(0.001));
        assert_eq!(parse("route:/api/* status_mismatches == 0").metric, Metric::AbStatusMismatches { share: false });
        assert_eq!(parse("p99 < 1.1 of baseline").threshold, Threshold::OfBaseline(1.1));
        assert_eq!(parse("error_rate <= 100% of baseline").threshold, Threshold::OfBaseline(1.0));
        assert_eq!(parse("route:/x/* p50 < 2 of baseline").scope, Some(RouteGlob::new("/x/*")));
        assert_eq!(error("p99 < 1.1 of target").0, "of");
        assert_eq!(error("b_p99_ratio < 1.2ms").0, "ms");
    }

    #[test]
    fn the_message_shows_a_caret_under_the_token() {
        let e = Assertion::parse("p99 < 250 parsecs").unwrap_err().to_string();
        assert!(e.ends_with("p99 < 250 parsecs\n              ^^^^^^^"), "{e}");
    }

    #[test]
    fn percentages_keep_small_shares_visible() {
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(percent(0.00004), "0.004%");
        assert_eq!(percent(0.0096), "0.96%");
        assert_eq!(percent(0.125), "12.5%");
    }
}
