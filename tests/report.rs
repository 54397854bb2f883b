//! `sluice report` as a library, over fixture CSVs written for it: golden output in every format
//! (insta snapshots in tests/snapshots/), figures that must come from merged histograms, and one
//! assertion per metric, passing and failing.

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
