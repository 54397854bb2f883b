//! `sluice report` as a library, over fixture CSVs written for it: golden output in every format
//! (insta snapshots in tests/snapshots/), figures that must come from merged histograms, and one
//! assertion per metric, passing and failing.

mod common;

use std::path::PathBuf;

use sluice::analysis::render::{self, ReportFormat};
use sluice::analysis::{self, Assertion, Report, ReportOptions, RouteRule, Settings, TargetRate};

/// Relative to the package root (where cargo runs tests), so file names in snapshots are stable.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from("fixtures").join(name)
}

fn report_with(files: &[&str], settings: Settings) -> Report {
    let files: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    analysis::analyse(&files, &settings).unwrap_or_else(|e| panic!("{e}"))
}

fn report(files: &[&str]) -> Report {
    report_with(files, Settings::default())
}

fn with_assertions(list: &[&str]) -> Settings {
    Settings {
        assertions: list.iter().map(|a| Assertion::parse(a).unwrap_or_else(|e| panic!("{e}"))).collect(),
        ..Settings::default()
    }
}

const CI_CHECKS: [&str; 5] =
    ["p99 < 250ms", "error_rate < 10%", "status_5xx == 0", "rate >= 95% of target", "route:/api/users/* p99 < 20ms"];

#[test]
fn golden_text() {
    let r = report_with(&["report-basic.csv"], with_assertions(&CI_CHECKS));
    let text = render::render(&r, ReportFormat::Text);
    insta::assert_snapshot!("basic_text", text);
}

#[test]
fn golden_json() {
    let r = report_with(&["report-basic.csv"], with_assertions(&CI_CHECKS));
    insta::assert_snapshot!("basic_json", render::render(&r, ReportFormat::Json));
}

#[test]
fn golden_markdown() {
    let r = report_with(&["report-basic.csv"], with_assertions(&CI_CHECKS));
    insta::assert_snapshot!("basic_markdown", render::render(&r, ReportFormat::Markdown));
}

#[test]
fn golden_html() {
    let r = report_with(&["report-basic.csv"], with_assertions(&CI_CHECKS));
    let html = render::render(&r, ReportFormat::Html);
    // Self-contained: nothing is fetched when the file is opened.
    for fetch in ["<script src", "<link", "@import", "url(", "http://", "https://"] {
        let allowed = fetch == "http://" && html.matches(fetch).count() == html.matches("http://www.w3.org").count();
        assert!(!html.contains(fetch) || allowed, "the HTML fetches something: {fetch}");
    }
    insta::assert_snapshot!("basic_html", html);
}

#[test]
fn golden_text_of_two_files_with_a_chosen_interval_and_route_rule() {
    let settings = Settings {
        interval: Some(std::time::Duration::from_secs(2)),
        route_rules: vec![RouteRule::parse("^/api/orders/[^/]+=/api/orders/{order}").unwrap()],
        ..Settings::default()
    };
    let r = report_with(&["report-basic.csv", "report-second.csv"], settings);
    insta::assert_snapshot!("two_files_text", render::render(&r, ReportFormat::Text));
}

#[test]
fn text_fits_a_100_column_terminal() {
    let long_rule =
        RouteRule::parse("^/search=/search/a/very/long/route/template/that/would/never/fit/in/the/column/at/all")
            .unwrap();
    let mut settings =
        with_assertions(&["route:/a/pattern/long/enough/to/need/wrapping/of/the/measurement/* p99 < 1ms"]);
    settings.route_rules = vec![long_rule];
    let r = report_with(&["report-basic.csv", "report-second.csv"], settings);
    let text = render::render(&r, ReportFormat::Text);
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
}

#[test]
fn merged_files_give_percentiles_of_the_merged_histograms_not_averages() {
    let one = report(&["report-basic.csv"]);
    let two = report(&["report-second.csv"]);
    let both = report(&["report-basic.csv", "report-second.csv"]);
    // The same rows in one file: the same figures, exactly.
    let dir = tempfile::tempdir().unwrap();
    let joined = dir.path().join("joined.csv");
    let second = std::fs::read_to_string(fixture("report-second.csv")).unwrap();
    let mut text = std::fs::read_to_string(fixture("report-basic.csv")).unwrap();
    text += second.split_once('\n').unwrap().1;
    std::fs::write(&joined, text).unwrap();
    let single = analysis::analyse(&[joined], &Settings::default()).unwrap();

    assert_eq!(both.overview.requests, 240);
    for (merged, direct) in [
        (both.overview.latency_ms.p50, single.overview.latency_ms.p50),
        (both.overview.latency_ms.p90, single.overview.latency_ms.p90),
        (both.overview.latency_ms.p99, single.overview.latency_ms.p99),
        (both.overview.latency_from_schedule_ms.p90, single.overview.latency_from_schedule_ms.p90),
    ] {
        assert_eq!(merged, direct);
    }
    let average = (one.overview.latency_ms.p90 + two.overview.latency_ms.p90) / 2.0;
    assert!((both.overview.latency_ms.p90 - average).abs() > 10.0, "p90 {average} would be an average");
    // Per route too: /api/users/{id} is fast in one file and slow in the other.
    let users = |r: &Report| r.routes.shown.iter().find(|l| l.route == "/api/users/{id}").unwrap().clone();
    assert_eq!(users(&both).requests, users(&one).requests + users(&two).requests);
    assert_eq!(users(&both).p50_ms, users(&single).p50_ms);
}

#[test]
fn the_target_rate_is_inferred_from_the_plan_or_given() {
    let r = report(&["report-basic.csv"]);
    assert_eq!((r.overview.target_rate, r.overview.target_rate_source), (Some(20.0), "inferred"));
    let given = |target| {
        let settings = Settings { report: ReportOptions { target, ..ReportOptions::default() }, ..Settings::default() };
        report_with(&["report-basic.csv"], settings).overview
    };
    assert_eq!(given(TargetRate::Given(25.0)).target_rate, Some(25.0));
    assert_eq!(given(TargetRate::None).target_rate, None);
    // Two runs of the same plan agree; the report says so.
    let both = report(&["report-basic.csv", "report-second.csv"]);
    assert_eq!(both.overview.target_rate, Some(20.0));
}

#[test]
fn a_cut_off_last_row_is_skipped_with_a_note_not_an_input_error() {
    let r = report(&["report-truncated.csv"]);
    assert_eq!(r.rows, 20);
    assert_eq!((r.skipped_rows, r.unreadable_rows), (1, 0));
    assert_eq!(
        r.problems,
        [
            "fixtures/report-truncated.csv:22: 4 fields, expected 13 (the file's last row, cut off: what a killed run leaves)"
        ]
    );
}

#[test]
fn bad_rows_are_skipped_and_named_by_line() {
    let r = report(&["report-bad.csv"]);
    assert_eq!(r.rows, 15);
    assert_eq!((r.skipped_rows, r.unreadable_rows), (6, 5));
    let expected = [
        "fixtures/report-bad.csv:4: latency_ms: 'fast' is not a number of milliseconds",
        "fixtures/report-bad.csv:7: 12 fields, expected 13",
        "fixtures/report-bad.csv:10: status: '2x0' is not an HTTP status",
        "fixtures/report-bad.csv:13: sent_at: 'yesterday' is not a time like 2026-11-21 14:03:07.123",
        "fixtures/report-bad.csv:15: neither a status nor an error",
        "fixtures/report-bad.csv:22: 3 fields, expected 13 (the file's last row, cut off: what a killed run leaves)",
    ];
    assert_eq!(r.problems, expected);

    let strict = Settings { strict: true, ..Settings::default() };
    let err = analysis::analyse(&[fixture("report-bad.csv")], &strict).unwrap_err();
    assert_eq!(err.to_string(), expected[0]);
}

/// (assertion, passes, what the measurement reads) over report-basic.csv: 160 requests at 20/s,
/// 119 × 200, 20 × 302, 10 × 404, 7 × 500, 2 timeouts, 1 reset, 1 aborted; 140 with a logged
/// status, 9 of them answered in another class.
const PER_METRIC: &[(&str, bool, &str)] = &[
    ("p50 < 20ms", true, "p50 = 11.01 ms"),
    ("p50 < 10ms", false, "p50 = 11.01 ms"),
    ("p90 <= 43.1ms", true, "p90 = 43.01 ms"),
    ("p90 < 43ms", false, "p90 = 43.01 ms"),
    ("p95 < 100ms", true, "p95 = 51.01 ms"),
    ("p95 < 50ms", false, "p95 = 51.01 ms"),
    ("p99 > 0.05s", true, "p99 = 59.01 ms"),
    ("p99 < 50ms", false, "p99 = 59.01 ms"),
    ("p999 < 2s", true, "p999 = 59.01 ms"),
    ("p999 < 59ms", false, "p999 = 59.01 ms"),
    ("max < 60ms", true, "max = 59.01 ms"),
    ("max < 59ms", false, "max = 59.01 ms"),
    ("mean < 16ms", true, "mean = 15.06 ms"),
    ("mean < 15ms", false, "mean = 15.06 ms"),
    ("p50_from_schedule < 20ms", true, "p50_from_schedule = 14.41 ms"),
    ("p50_from_schedule < 14ms", false, "p50_from_schedule = 14.41 ms"),
    ("p99_from_schedule < 2s", true, "p99_from_schedule = 101.25 ms"),
    ("max_from_schedule < 0.1s", false, "max_from_schedule = 125.44 ms"),
    ("lag_p50 < 1ms", true, "lag_p50 = 0.300 ms"),
    ("lag_p50 < 250us", false, "lag_p50 = 0.300 ms"),
    ("lag_p99 < 100ms", true, "lag_p99 = 76.415 ms"),
    ("lag_p99 < 50ms", false, "lag_p99 = 76.415 ms"),
    ("lag_max < 0.1s", true, "lag_max = 78.207 ms"),
    ("lag_max < 78ms", false, "lag_max = 78.207 ms"),
    ("requests == 160", true, "requests = 160"),
    ("requests > 160", false, "requests = 160"),
    ("responses == 156", true, "responses = 156"),
    ("responses != 156", false, "responses = 156"),
    ("errors == 4", true, "errors = 4"),
    ("errors == 0", false, "errors = 4"),
    ("failed <= 11", true, "failed = 11"),
    ("failed < 11", false, "failed = 11"),
    ("bytes > 60000", true, "bytes = 62656"),
    ("bytes < 1000", false, "bytes = 62656"),
    ("error_rate < 7%", true, "error_rate = 6.88% (11 of 160)"),
    ("error_rate < 1%", false, "error_rate = 6.88% (11 of 160)"),
    ("transport_error_rate <= 0.025", true, "transport_error_rate = 2.50% (4 of 160)"),
    ("transport_error_rate < 1%", false, "transport_error_rate = 2.50% (4 of 160)"),
    ("mismatches == 9", true, "mismatches = 9"),
    ("mismatches == 0", false, "mismatches = 9"),
    ("mismatch_rate < 10%", true, "mismatch_rate = 6.43% (9 of 140)"),
    ("mismatch_rate < 0.5%", false, "mismatch_rate = 6.43% (9 of 140)"),
    ("status_500 == 7", true, "status_500 = 7"),
    ("status_500 == 0", false, "status_500 = 7"),
    ("status_5xx == 7", true, "status_5xx = 7"),
    ("status_5xx == 0", false, "status_5xx = 7"),
    ("status_302 >= 20", true, "status_302 = 20"),
    ("status_3xx < 20", false, "status_3xx = 20"),
    ("status_200_rate > 70%", true, "status_200_rate = 74.4% (119 of 160)"),
    ("status_200_rate > 0.8", false, "status_200_rate = 74.4% (119 of 160)"),
    ("status_4xx_rate < 10%", true, "status_4xx_rate = 6.25% (10 of 160)"),
    ("status_4xx_rate < 5%", false, "status_4xx_rate = 6.25% (10 of 160)"),
    ("error_timeout == 2", true, "error_timeout = 2"),
    ("error_timeout == 0", false, "error_timeout = 2"),
    ("error_reset_rate < 1%", true, "error_reset_rate = 0.62% (1 of 160)"),
    ("error_aborted_rate < 0.5%", false, "error_aborted_rate = 0.62% (1 of 160)"),
    ("error_connect == 0", true, "error_connect = 0"),
    ("rate > 19.5/s", true, "rate = 19.8/s"),
    ("rate > 20rps", false, "rate = 19.8/s"),
    ("rate >= 95% of target", true, "rate = 19.8/s = 99.0% of 20/s target"),
    ("rate >= 99.5% of target", false, "rate = 19.8/s = 99.0% of 20/s target"),
    ("route:/api/orders/* status_5xx == 7", true, "status_5xx = 7"),
    ("route:/api/orders/{id} error_rate > 40%", true, "error_rate = 45.0% (9 of 20)"),
    ("route:/api/users/{id} p99 < 20ms", true, "p99 = 12.01 ms"),
    ("route:/api/users/* p99 < 5ms", false, "p99 = 12.01 ms"),
    ("route:/api/* rate > 9/s", true, "rate = 9.9/s"),
    ("route:/nothing/* requests == 0", false, "no request matched route:/nothing/*"),
];

#[test]
fn every_metric_passes_and_fails_with_its_measured_value() {
    let list: Vec<&str> = PER_METRIC.iter().map(|(a, _, _)| *a).collect();
    let r = report_with(&["report-basic.csv"], with_assertions(&list));
    for ((text, passes, measured), verdict) in PER_METRIC.iter().zip(&r.assertions) {
        assert_eq!(&verdict.assertion, text);
        assert_eq!(verdict.passed, *passes, "{text}: {}", verdict.measured);
        assert_eq!(verdict.measured, *measured, "{text}");
    }
    assert_eq!(r.failed_assertions(), PER_METRIC.iter().filter(|(_, p, _)| !p).count());
}

#[test]
fn without_a_target_a_share_of_it_fails_and_says_why() {
    let mut settings = with_assertions(&["rate >= 95% of target"]);
    settings.report.target = TargetRate::None;
    let r = report_with(&["report-basic.csv"], settings);
    assert!(!r.assertions[0].passed);
    assert!(r.assertions[0].measured.contains("no target rate"), "{}", r.assertions[0].measured);
}

/// A results CSV of `dues` (seconds from T0 = 2026-11-21 10:00:00, in plan order): each row sent
/// when `sent(n, due)` says (`None`: not sent), answered 200 in 1 ms.
fn plan_csv(dir: &std::path::Path, name: &str, dues: &[f64], sent: impl Fn(usize, f64) -> Option<f64>) -> PathBuf {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let at = |s: f64| (t0 + chrono::Duration::microseconds((s * 1e6).round() as i64)).format("%Y-%m-%d %H:%M:%S%.3f");
    let mut csv = String::from(
        "seq,log_line,log_time,scheduled_at,sent_at,lag_ms,method,url,orig_status,status,latency_ms,bytes,error\n",
    );
    for (n, &due) in dues.iter().enumerate() {
        let line = n + 1;
        match sent(n, due) {
            Some(s) => {
                csv += &format!(
                    "{n},{line},,{},{},{:.3},GET,http://127.0.0.1:8080/r/{n},,200,1.000,10,\n",
                    at(due),
                    at(s),
                    (s - due) * 1e3
                )
            }
            None => {
                csv += &format!(
                    "{n},{line},,{},{},0.000,GET,http://127.0.0.1:8080/r/{n},,,0.000,0,not_sent\n",
                    at(due),
                    at(due)
                )
            }
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

/// Due times of `--stages` as sluice plans them.
fn stage_dues(stages: &str) -> Vec<f64> {
    use sluice::pace::schedule::{Arrivals, RateCurve, Schedule, Shape, parse_stages};
    let curve = RateCurve::stages(parse_stages(stages).unwrap());
    let mut schedule = Schedule::new(Shape::Curve { curve, arrivals: Arrivals::Uniform }, 1, None);
    std::iter::from_fn(|| schedule.due(None)).map(|d| d.as_secs_f64()).collect()
}

fn analyse_with(path: &std::path::Path, target: TargetRate, assertions: &[&str]) -> Report {
    let mut settings = with_assertions(assertions);
    settings.report.target = target;
    analysis::analyse(&[path.to_path_buf()], &settings).unwrap_or_else(|e| panic!("{e}"))
}

const RAMP: &str = "2s:0-400,3s:400,2s:400-0";

#[test]
fn a_ramp_is_read_back_from_scheduled_at_slice_by_slice() {
    let dir = tempfile::tempdir().unwrap();
    let dues = stage_dues(RAMP);
    assert_eq!(dues.len(), 2000);
    let csv = plan_csv(dir.path(), "ramp.csv", &dues, |_, due| Some(due + 0.0003));
    let r = analyse_with(&csv, TargetRate::Infer, &["rate >= 95% of target"]);
    assert_eq!(r.overview.target_rate_source, "planned");
    // The mean of the plan: 2000 requests from its first due time to its last (6.9 s, the falling
    // ramp's last request is due 0.1 s before its end) plus one average gap.
    let mean = r.overview.target_rate.unwrap();
    assert!((mean - 2000.0 / 6.9).abs() < 2.0, "{mean}");
    let planned: Vec<u64> = r.over_time.points.iter().map(|p| p.planned.unwrap()).collect();
    assert_eq!(planned, [100, 300, 400, 400, 400, 300, 100]);
    let rates: Vec<f64> = r.over_time.points.iter().map(|p| p.planned_rate.unwrap()).collect();
    assert!((rates[2] - 400.0).abs() < 1e-9 && (rates[1] - 300.0).abs() < 1e-9, "{rates:?}");
    let v = &r.assertions[0];
    assert!(v.passed, "{}", v.measured);
    assert!(v.measured.contains("100.0% of") && v.measured.ends_with("UTC; lowest of 6 windows"), "{}", v.measured);

    let text = render::render(&r, ReportFormat::Text);
    assert!(text.contains("plan/s"), "{text}");
    assert!(text.contains("of 289.7/s planned (mean of a varying plan)"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    let html = render::render(&r, ReportFormat::Html);
    assert!(html.contains("Achieved vs planned rate") && html.contains("planned 400 · 400.0/s"));
    let json = render::render(&r, ReportFormat::Json);
    assert!(json.contains("\"planned_rate\": 400.0"), "{json}");
    assert!(render::render(&r, ReportFormat::Markdown).contains("| plan/s |"));
}

#[test]
fn a_sender_that_cannot_keep_up_with_the_peak_fails_in_the_slice_that_missed() {
    let dir = tempfile::tempdir().unwrap();
    let dues = stage_dues(RAMP);
    // At most 300 requests a second leave: on time during the ramps, behind at the 400/s peak.
    let sends = std::cell::Cell::new(f64::NEG_INFINITY);
    let csv = plan_csv(dir.path(), "slow.csv", &dues, |_, due| {
        let s = due.max(sends.get() + 1.0 / 300.0);
        sends.set(s);
        Some(s)
    });
    let r = analyse_with(&csv, TargetRate::Infer, &["rate >= 95% of target", "rate >= 50% of target"]);
    let (strict, loose) = (&r.assertions[0], &r.assertions[1]);
    assert!(!strict.passed, "{}", strict.measured);
    // The ramp passes 300/s half way through its second second: 275 of its 300 leave in it.
    assert!(
        strict.measured.starts_with("rate = 275.0/s = 91.7% of 300.0/s planned in 10:00:01–10:00:02 UTC"),
        "{}",
        strict.measured
    );
    assert!(strict.measured.contains("windows missed"), "{}", strict.measured);
    assert!(loose.passed, "{}", loose.measured);
    // Over the whole run the same requests all left: a run-wide average would have hidden it.
    assert_eq!(r.overview.requests, 2000);
}

#[test]
fn rows_never_sent_still_count_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    let dues = stage_dues(RAMP);
    // Scheduling stopped 4 s in: what was due after that never left.
    let csv = plan_csv(dir.path(), "stopped.csv", &dues, |_, due| (due < 4.0).then_some(due + 0.0003));
    let r = analyse_with(&csv, TargetRate::Infer, &["rate >= 95% of target"]);
    assert_eq!(r.overview.not_sent, dues.iter().filter(|d| **d >= 4.0).count() as u64);
    let v = &r.assertions[0];
    assert!(!v.passed);
    assert!(
        v.measured.starts_with("rate = 0.0/s = 0.0% of 400.0/s planned in 10:00:04–10:00:05 UTC"),
        "{}",
        v.measured
    );
}

#[test]
fn a_given_rate_keeps_its_run_wide_meaning_on_any_plan() {
    let dir = tempfile::tempdir().unwrap();
    let csv = plan_csv(dir.path(), "ramp.csv", &stage_dues(RAMP), |_, due| Some(due));
    let r = analyse_with(&csv, TargetRate::Given(400.0), &["rate >= 95% of target"]);
    assert_eq!((r.overview.target_rate, r.overview.target_rate_source), (Some(400.0), "given"));
    assert!(r.over_time.points.iter().all(|p| p.planned.is_none()));
    assert!(r.assertions[0].measured.ends_with("of 400/s target"), "{}", r.assertions[0].measured);
}

#[test]
fn a_steady_plan_read_back_keeps_one_target_even_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    // 100/s in batches of 7: 14 or 15 batches a second, 98 or 105 requests.
    let dues: Vec<f64> = (0..1000).map(|n| (n / 7 * 7) as f64 / 100.0).collect();
    let csv = plan_csv(dir.path(), "batches.csv", &dues, |_, due| Some(due + 0.001));
    let r = analyse_with(&csv, TargetRate::Infer, &["rate >= 95% of target"]);
    assert_eq!((r.overview.target_rate, r.overview.target_rate_source), (Some(100.0), "inferred"));
    assert!(r.over_time.points.iter().all(|p| p.planned.is_none()));
    assert!(r.assertions[0].measured.ends_with("of 100/s target"), "{}", r.assertions[0].measured);
}

/// A results CSV of `rows` (seconds after 2026-11-21 10:00:00, path, status or error kind, latency
/// ms), each sent when planned.
fn results_csv(dir: &std::path::Path, name: &str, rows: &[(f64, String, Result<u16, &str>, f64)]) -> PathBuf {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let at = |s: f64| (t0 + chrono::Duration::microseconds((s * 1e6).round() as i64)).format("%Y-%m-%d %H:%M:%S%.3f");
    let mut csv = String::from(
        "seq,log_line,log_time,scheduled_at,sent_at,lag_ms,method,url,orig_status,status,latency_ms,bytes,error\n",
    );
    for (n, (sent, path, answer, latency)) in rows.iter().enumerate() {
        let (status, error) = match answer {
            Ok(status) => (status.to_string(), ""),
            Err(kind) => (String::new(), *kind),
        };
        csv += &format!(
            "{n},{},,{},{},0.000,GET,http://127.0.0.1:8080{path},200,{status},{latency:.3},10,{error}\n",
            n + 1,
            at(*sent),
            at(*sent)
        );
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

fn exact_histogram(latencies_ms: impl Iterator<Item = f64>, figures: u8) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::new(figures).unwrap();
    for ms in latencies_ms {
        h.record((ms * 1e3).round() as u64).unwrap();
    }
    h
}

#[test]
fn the_latency_distribution_is_the_histograms_percentiles_overall_and_for_the_slowest_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for n in 0..2000 {
        rows.push((n as f64 * 0.005, format!("/fast/{n}"), Ok(200), 1.0 + (n % 97) as f64 * 0.25));
    }
    for n in 0..500 {
        rows.push((n as f64 * 0.02, format!("/slow/{n}"), Ok(200), 100.0 + (n % 13) as f64 * 20.0));
    }
    // Slower still, but too few to have a tail: no curve of their own.
    for n in 0..5 {
        rows.push((n as f64, "/rare".to_string(), Ok(200), 9000.0));
    }
    for n in 0..30 {
        rows.push((n as f64 * 0.3, format!("/broken/{n}"), Err("timeout"), 3000.0));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let csv = results_csv(dir.path(), "d.csv", &rows);
    let r = analysis::analyse(&[csv], &Settings::default()).unwrap();

    let answered =
        |prefix: &str| exact_histogram(rows.iter().filter(|r| r.1.starts_with(prefix) && r.2.is_ok()).map(|r| r.3), 3);
    let curves = &r.charts.distribution;
    let names: Vec<&str> = curves.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["all requests", "/slow/{id}", "/fast/{id}"]);
    for (curve, expected) in curves.iter().zip([answered("/"), answered("/slow/"), answered("/fast/")]) {
        assert_eq!(curve.requests, expected.len(), "{}", curve.name);
        for p in &curve.points {
            assert_eq!(p.ms, expected.value_at_quantile(p.quantile) as f64 / 1e3, "{} at {}", curve.name, p.quantile);
        }
        let quantiles: Vec<f64> = curve.points.iter().map(|p| p.quantile).collect();
        assert_eq!(quantiles[0], 0.0);
        assert!(quantiles.windows(2).all(|w| w[0] < w[1]), "{quantiles:?}");
        // The curve goes as far as the requests tell: 1 - 1/n.
        let last = *quantiles.last().unwrap();
        assert!((last - (1.0 - 1.0 / expected.len() as f64)).abs() < 1e-9, "{last}");
        for q in [0.5, 0.9, 0.99] {
            assert!(quantiles.iter().any(|x| (x - q).abs() < 1e-9), "{q} in {quantiles:?}");
        }
    }
    // The same percentiles the cards and the summary show.
    let at = |q: f64| curves[0].points.iter().find(|p| (p.quantile - q).abs() < 1e-9).unwrap().ms;
    assert_eq!((at(0.5), at(0.99)), (r.overview.latency_ms.p50, r.overview.latency_ms.p99));

    let html = render::render(&r, ReportFormat::Html);
    assert!(html.contains("<h2>Latency distribution</h2>"));
    assert!(html.contains("all requests: "), "hover marks name their curve");
}

#[test]
fn failures_are_counted_by_kind_in_each_time_slice() {
    let dir = tempfile::tempdir().unwrap();
    let row = |s: f64, answer: Result<u16, &'static str>| (s, "/a".to_string(), answer, 5.0);
    let rows = [
        row(0.1, Err("timeout")),
        row(0.2, Err("timeout")),
        row(0.3, Ok(500)),
        row(0.4, Ok(200)),
        row(1.5, Ok(200)),
        row(1.6, Ok(404)),
        row(2.1, Err("reset")),
        row(2.2, Err("something new")),
        row(2.3, Ok(503)),
        row(2.4, Ok(502)),
    ];
    let r = analysis::analyse(&[results_csv(dir.path(), "f.csv", &rows)], &Settings::default()).unwrap();
    assert_eq!(r.chart_time.points.len(), 3);
    let layers: Vec<(&str, Vec<u64>)> = r.charts.failures.layers.iter().map(|(k, c)| (*k, c.clone())).collect();
    assert_eq!(
        layers,
        [("timeout", vec![2, 0, 0]), ("reset", vec![0, 0, 1]), ("other", vec![0, 0, 1]), ("5xx", vec![1, 0, 2])]
    );
    let html = render::render(&r, ReportFormat::Html);
    assert!(html.contains("<h2>Failures over time</h2>") && html.contains("timeout 2 · 5xx 1"), "the slice's tooltip");
}

#[test]
fn latency_over_time_is_drawn_for_the_busiest_routes_from_their_own_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    // Three seconds; /busy gets slower each second, /quiet stays fast; 18 more routes of one
    // request each, of which the last ones seen are past the routes followed.
    for n in 0..300 {
        let s = n as f64 * 0.01;
        rows.push((s, format!("/busy/{n}"), Ok(200), 10.0 * (1.0 + s.floor()) + (n % 10) as f64));
        if n % 3 == 0 {
            rows.push((s, "/quiet".to_string(), Ok(200), 2.0));
        }
    }
    for k in 0..18 {
        rows.push((2.5, format!("/one-off-{}", (b'a' + k) as char), Ok(200), 1.0));
    }
    let r = analysis::analyse(&[results_csv(dir.path(), "t.csv", &rows)], &Settings::default()).unwrap();
    let series = &r.charts.route_latency;
    assert_eq!(series.interval_seconds, 1.0);
    assert_eq!(series.starts_ms.len(), 3);
    assert!(series.untracked, "20 routes, 16 followed");
    assert_eq!(series.routes.len(), 6);
    assert_eq!((series.routes[0].route.as_str(), series.routes[0].requests), ("/busy/{id}", 300));
    assert_eq!((series.routes[1].route.as_str(), series.routes[1].requests), ("/quiet", 100));
    for second in 0..3 {
        let expected = exact_histogram(
            rows.iter().filter(|r| r.1.starts_with("/busy/") && r.0.floor() == second as f64).map(|r| r.3),
            2,
        );
        let at = |q: f64| Some(expected.value_at_quantile(q) as f64 / 1e3);
        assert_eq!(series.routes[0].latency.p50_ms[second], at(0.5), "second {second}");
        assert_eq!(series.routes[0].latency.p99_ms[second], at(0.99), "second {second}");
        assert_eq!(series.routes[0].latency.answered[second], 100);
    }
    let html = render::render(&r, ReportFormat::Html);
    assert!(html.contains("<h2>Latency over time by route</h2>") && html.contains("<code>/busy/{id}</code>"));
}

/// The manifest of an unsharded, complete run of `csv` (10 requests from 2026-11-21 10:00:00) with
/// these `options`; the manifest the run would write beside it.
fn manifest_of(csv: &std::path::Path, options: serde_json::Value) -> sluice::shard::manifest::Manifest {
    use sluice::shard::manifest::{Counts, HistogramSettings, LogFile, Manifest, ShardId};
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    Manifest {
        sluice_version: "9.9.9".into(),
        run_id: "nightly".into(),
        shard: ShardId { index: 0, count: 1, index_from: "unsharded".into() },
        t0,
        finished_at: Some(t0 + chrono::Duration::seconds(2)),
        format: Some("combined".into()),
        start_at: Some(t0),
        options_hash: "ab".repeat(32),
        options,
        logs: vec![LogFile { name: "access.log".into(), bytes: 1234, sha256: "cd".repeat(32) }],
        csv: csv.file_name().unwrap().to_string_lossy().into_owned(),
        histogram: HistogramSettings::current(),
        counts: Counts { planned: 10, sent: 10, not_sent: 0, answered: 10, no_answer: 0 },
        complete: true,
        incomplete_reason: None,
    }
}

#[test]
fn the_shards_of_a_run_are_one_run_and_a_csv_without_a_manifest_is_said_to_have_none() {
    use sluice::shard::manifest::ShardId;
    let dir = tempfile::tempdir().unwrap();
    let rows = |from: f64| -> Vec<(f64, String, Result<u16, &str>, f64)> {
        (0..10).map(|n| (from + n as f64 * 0.1, format!("/a/{n}"), Ok(200), 3.0)).collect()
    };
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let mut files = Vec::new();
    for index in 0..2u32 {
        let csv = results_csv(dir.path(), &format!("shard-{index}.csv"), &rows(f64::from(index) * 0.05));
        let mut manifest = manifest_of(
            &csv,
            serde_json::json!({"target": "https://ops:s3cret@staging.example", "header": ["X-Key: s3cret"]}),
        );
        manifest.shard = ShardId { index, count: 2, index_from: "--shard".into() };
        manifest.finished_at = Some(t0 + chrono::Duration::seconds(2 + i64::from(index)));
        manifest.complete = index == 0;
        manifest.incomplete_reason = (index == 1).then_some(sluice::shard::manifest::Incomplete::Interrupted);
        manifest.write_atomic(&sluice::shard::manifest_path_for(&csv)).unwrap();
        files.push(csv);
    }
    files.push(fixture("report-basic.csv"));
    let r = analysis::analyse(&files, &Settings::default()).unwrap();
    assert_eq!(r.runs.len(), 2);
    let run = &r.runs[0];
    assert_eq!(run.files.len(), 2);
    assert_eq!(run.shards.as_ref().unwrap().label(), "shards 0, 1 of 2 (index from --shard)");
    assert_eq!(run.target.as_deref(), Some("https://[redacted]@staging.example"));
    assert_eq!(run.started.as_deref(), Some("2026-11-21 10:00:00.000"));
    assert_eq!(run.finished.as_deref(), Some("2026-11-21 10:00:03.000"), "the last shard's end");
    assert_eq!(run.complete, Some(false));
    assert_eq!(run.incomplete_reasons, ["shard 1 of 2: interrupted"]);
    assert_eq!(run.counts.unwrap().sent, 20);
    assert_eq!((run.rows, run.first_time.as_deref()), (20, Some("2026-11-21 10:00:00.000")));
    assert!(r.runs[1].note.as_deref().unwrap().starts_with("no manifest beside it"));
    for format in [ReportFormat::Html, ReportFormat::Json, ReportFormat::Text, ReportFormat::Markdown] {
        assert!(!render::render(&r, format).contains("s3cret"), "{format:?}");
    }
}

/// A row of a `--compare` run: seconds after 10:00:00, path, A's status or error kind, A's latency
/// in ms, and B's where it answered.
type AbRow<'a> = (f64, String, Result<u16, &'a str>, f64, Option<f64>);

/// `rows` as a `--compare` run's CSV (the rows of [`results_csv`] and B's columns after them): each
/// row's B latency in ms where B answered 200, else B timed out.
fn ab_results_csv(dir: &std::path::Path, name: &str, rows: &[AbRow<'_>]) -> PathBuf {
    let a_side: Vec<(f64, String, Result<u16, &str>, f64)> =
        rows.iter().map(|r| (r.0, r.1.clone(), r.2, r.3)).collect();
    let path = results_csv(dir, name, &a_side);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let mut csv = format!("{},{}\n", lines.next().unwrap(), sluice::results::COMPARE_HEADER.join(","));
    let digest = "0123456789abcdef";
    for (line, row) in lines.zip(rows) {
        let b = match row.4 {
            Some(ms) => format!("200,{ms:.3},10,,{digest},{digest},bytes,true,true,"),
            None => format!(",1000.000,0,timeout,{digest},,bytes,false,,"),
        };
        csv += &format!("{line},{b}\n");
    }
    std::fs::write(&path, csv).unwrap();
    path
}

/// The curves' names, each marked `B`/`baseline` (the reference's) or not.
fn curve_names(r: &Report) -> Vec<(&str, bool)> {
    r.charts.distribution.iter().map(|c| (c.name.as_str(), c.reference)).collect()
}

#[test]
fn a_compare_runs_b_latencies_are_drawn_beside_the_targets_from_their_own_histograms() {
    use sluice::analysis::charts::Reference;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    // Three seconds. A answers /fast/* in about 2 ms and /slow/* in about 50; B the other way
    // round, and times out on every tenth /fast/* request.
    for n in 0..600 {
        let s = n as f64 * 0.005;
        let b = (n % 10 != 3).then_some(20.0 + (n % 7) as f64);
        rows.push((s, format!("/fast/{n}"), Ok(200), 2.0 + (n % 10) as f64 * 0.1, b));
        if n % 4 == 0 {
            rows.push((s, format!("/slow/{n}"), Ok(200), 50.0 + (n % 13) as f64, Some(5.0 + (n % 5) as f64)));
        }
    }
    let csv = ab_results_csv(dir.path(), "ab.csv", &rows);
    let options = serde_json::json!({
        "target": "http://ops:s3cret@candidate:8080",
        "compare": "http://ops:s3cret@current:8080",
    });
    manifest_of(&csv, options).write_atomic(&sluice::shard::manifest_path_for(&csv)).unwrap();
    let r = analysis::analyse(&[csv], &Settings::default()).unwrap();

    assert_eq!(r.charts.reference, Some(Reference::BTarget));
    assert_eq!(
        curve_names(&r),
        [
            ("all requests", false),
            ("all requests", true),
            ("/slow/{id}", false),
            ("/slow/{id}", true),
            ("/fast/{id}", false),
            ("/fast/{id}", true)
        ]
    );
    for (curve, prefix) in r.charts.distribution.iter().filter(|c| c.reference).zip(["/", "/slow/", "/fast/"]) {
        let expected = exact_histogram(rows.iter().filter(|r| r.1.starts_with(prefix)).filter_map(|r| r.4), 3);
        assert_eq!(curve.requests, expected.len(), "{}", curve.name);
        for p in &curve.points {
            assert_eq!(p.ms, expected.value_at_quantile(p.quantile) as f64 / 1e3, "{} at {}", curve.name, p.quantile);
        }
    }
    // Per route and second, B's line beside A's, from B's own histograms.
    let series = &r.charts.route_latency;
    assert!(!series.since_start, "one run: the clock");
    assert_eq!(series.starts_ms.len(), 3);
    let fast = &series.routes[0];
    assert_eq!(fast.route, "/fast/{id}");
    let b_line = fast.reference.as_ref().expect("B's line");
    for second in 0..3 {
        let expected = exact_histogram(
            rows.iter().filter(|r| r.1.starts_with("/fast/") && r.0.floor() == second as f64).filter_map(|r| r.4),
            2,
        );
        assert_eq!(b_line.p50_ms[second], Some(expected.value_at_quantile(0.5) as f64 / 1e3), "second {second}");
        assert_eq!(b_line.answered[second], 180, "B's timeouts have no latency");
        assert_eq!(fast.latency.answered[second], 200);
    }

    let html = render::render(&r, ReportFormat::Html);
    let p50 = |curve: &str| common::marked_ms(&html, curve, "50%");
    assert_eq!(
        p50("all requests · B (baseline target)"),
        r.charts.distribution[1].points.iter().find(|p| p.quantile == 0.5).unwrap().ms
    );
    assert!(p50("/slow/{id} · A (target)") > 50.0 && p50("/slow/{id} · B (baseline target)") < 10.0);
    assert!(html.contains("A (target) http://[redacted]@candidate:8080"), "the legend names both targets");
    assert!(html.contains("B (baseline target) http://[redacted]@current:8080"));
    assert!(!html.contains("s3cret"));
    assert!(html.contains("B (baseline target): answered 180 · p50 "), "the route charts' tooltips");
}

#[test]
fn a_baseline_runs_curves_are_drawn_beside_and_lined_up_on_the_time_since_each_start() {
    use sluice::analysis::charts::Reference;
    let dir = tempfile::tempdir().unwrap();
    // The baseline ran a day earlier, starting 0.4 s into a second; /a/* is 50 ms slower since.
    let run = |start: f64, slower: f64| -> Vec<(f64, String, Result<u16, &'static str>, f64)> {
        let mut rows = Vec::new();
        for n in 0..300 {
            let s = start + n as f64 * 0.01;
            rows.push((s, format!("/a/{n}"), Ok(200), 10.0 + (n % 5) as f64 + slower));
            rows.push((s, format!("/b/{n}"), Ok(200), 3.0 + (n % 3) as f64));
        }
        rows
    };
    let (new_rows, old_rows) = (run(86_400.0, 50.0), run(0.4, 0.0));
    let new = results_csv(dir.path(), "new.csv", &new_rows);
    let old = results_csv(dir.path(), "old.csv", &old_rows);
    let settings = Settings { baseline: vec![old], ..Settings::default() };
    let r = analysis::analyse(&[new], &settings).unwrap();

    assert_eq!(
        r.charts.reference,
        Some(Reference::BaselineRun(vec![dir.path().join("old.csv").display().to_string()]))
    );
    assert_eq!(
        curve_names(&r),
        [
            ("all requests", false),
            ("all requests", true),
            ("/a/{id}", false),
            ("/a/{id}", true),
            ("/b/{id}", false),
            ("/b/{id}", true)
        ]
    );
    let old_a = exact_histogram(old_rows.iter().filter(|r| r.1.starts_with("/a/")).map(|r| r.3), 3);
    let curve = &r.charts.distribution[3];
    for p in &curve.points {
        assert_eq!(p.ms, old_a.value_at_quantile(p.quantile) as f64 / 1e3);
    }

    // Slot k holds what each run sent in its k-th second, counted from the second it started in:
    // the new run's 0–3 s, the baseline's 0.4–3.4 s.
    let series = &r.charts.route_latency;
    assert!(series.since_start);
    assert_eq!(series.starts_ms, [0, 1000, 2000, 3000]);
    let a = series.routes.iter().find(|l| l.route == "/a/{id}").unwrap();
    let old_line = a.reference.as_ref().unwrap();
    for slot in 0..4 {
        let expected = exact_histogram(
            old_rows.iter().filter(|r| r.1.starts_with("/a/") && r.0.floor() == slot as f64).map(|r| r.3),
            2,
        );
        let at = |q: f64| (!expected.is_empty()).then(|| expected.value_at_quantile(q) as f64 / 1e3);
        assert_eq!((old_line.p50_ms[slot], old_line.p99_ms[slot]), (at(0.5), at(0.99)), "slot {slot}");
        assert_eq!(old_line.answered[slot], expected.len());
    }
    assert_eq!(a.latency.answered, [100, 100, 100, 0]);

    let html = render::render(&r, ReportFormat::Html);
    assert!(html.contains("time since each run&#39;s start") && html.contains("+0:02"), "the axis and its ticks");
    let p50 = |curve: &str| common::marked_ms(&html, curve, "50%");
    let slowed = p50("/a/{id} · this run: new.csv") - p50("/a/{id} · baseline: old.csv");
    assert!((slowed - 50.0).abs() < 1.0, "{slowed}");
    assert!((p50("/b/{id} · this run: new.csv") - p50("/b/{id} · baseline: old.csv")).abs() < 0.01);
}

/// A row of a `--sessions` run: the row of [`results_csv`] and its session's id and place in it.
type SessionRow<'a> = (f64, String, Result<u16, &'a str>, f64, Option<(u64, u64)>);

/// `rows` as a `--sessions` run's CSV: the rows of [`results_csv`] with `session` and `session_seq`.
fn session_results_csv(dir: &std::path::Path, name: &str, rows: &[SessionRow<'_>]) -> PathBuf {
    let plain: Vec<(f64, String, Result<u16, &str>, f64)> = rows.iter().map(|r| (r.0, r.1.clone(), r.2, r.3)).collect();
    let path = results_csv(dir, name, &plain);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let mut csv = format!("{},session,session_seq\n", lines.next().unwrap());
    for (line, row) in lines.zip(rows) {
        let session = row.4.map_or_else(|| ",".to_string(), |(id, seq)| format!("s{id},{seq}"));
        csv += &format!("{line},{session}\n");
    }
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn routes_and_file_names_in_the_sessions_section_are_escaped_and_a_csv_without_sessions_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let script = "/<script>alert(1)</script>".to_string();
    let rows: Vec<SessionRow<'_>> = vec![
        (0.0, "/login".into(), Ok(200), 5.0, Some((1, 0))),
        (0.05, "/home".into(), Ok(200), 3.0, Some((2, 0))),
        (0.1, script.clone(), Ok(500), 900.0, Some((1, 1))),
        (0.2, "/static".into(), Ok(200), 1.0, None),
    ];
    // A second file, so the slowest sessions are named by file too.
    let first = session_results_csv(dir.path(), "x<i>.csv", &rows);
    let second = session_results_csv(dir.path(), "second.csv", &rows[1..2]);
    let r = analysis::analyse(&[first, second], &Settings::default()).unwrap();
    let journeys = r.journeys.as_ref().expect("a sessions view");
    assert_eq!(journeys.sessions, 3);
    assert_eq!((journeys.slowest[0].session.as_str(), journeys.slowest[0].failed), ("s1", 1));
    assert_eq!(journeys.slowest[0].routes, ["/login", script.as_str()]);

    let html = render::render(&r, ReportFormat::Html);
    assert!(!html.contains("<script") && !html.contains("x<i>"), "nothing from the CSV is markup");
    let sessions = html.split_once("<h2>Sessions</h2>").unwrap().1.split_once("</section>").unwrap().0;
    assert!(sessions.contains("/login → /&lt;script&gt;alert(1)&lt;/script&gt;</td>"), "the route as text: {sessions}");
    assert!(sessions.contains("x&lt;i&gt;.csv: s1</td>"), "named by its file, escaped: {sessions}");
    let markdown = render::render(&r, ReportFormat::Markdown);
    // From the first planned send (0 ms) to the end of the last answer (sent at 100 ms, 900 ms long).
    let row = "x<i>.csv: s1` | 2 | 1 | 1000.00 | `/login → /<script>alert(1)</script>` |";
    assert!(markdown.contains(row), "in a code span, as written: {markdown}");

    // The same rows without session columns: no section in any format.
    let plain: Vec<(f64, String, Result<u16, &str>, f64)> = rows.iter().map(|r| (r.0, r.1.clone(), r.2, r.3)).collect();
    let r = analysis::analyse(&[results_csv(dir.path(), "plain.csv", &plain)], &Settings::default()).unwrap();
    assert!(r.journeys.is_none());
    assert!(!render::render(&r, ReportFormat::Html).contains("Sessions"));
    assert!(!render::render(&r, ReportFormat::Markdown).contains("Sessions"));
    assert!(!render::render(&r, ReportFormat::Text).contains("sessions —"));
}
