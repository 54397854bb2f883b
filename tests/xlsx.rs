//! Workbooks (`--xlsx`) checked the way a user would: a real replay against the mock, its workbook
//! read back with Python's openpyxl (cell types, values row by row against the CSV, the frozen
//! header and its filter, the Summary's counts), and converted to PDF by LibreOffice.
//!
//! openpyxl comes from `SLUICE_OPENPYXL_PYTHON` (a Python that imports it; `.ci/run` keeps one in
//! a venv) or `python3`; LibreOffice is `soffice` with poppler's `pdfinfo`. Without them these
//! tests say SKIPPED and pass, unless `SLUICE_REQUIRE_OPENPYXL=1` or `SLUICE_REQUIRE_LIBREOFFICE=1`
//! (set by `.ci/run`, which installs them) makes that a failure.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::analysis::{Settings, analyse};
use sluice::export::xlsx::{self, Contents, Layout};

mod common;
use common::{DOCUMENTED_CSV_COLUMNS, fixture};
mod daemon_support;
use daemon_support::{InProcess, expect, mock};

const OPENPYXL_PYTHON: &str = "SLUICE_OPENPYXL_PYTHON";
const REQUIRE_OPENPYXL: &str = "SLUICE_REQUIRE_OPENPYXL";
const REQUIRE_LIBREOFFICE: &str = "SLUICE_REQUIRE_LIBREOFFICE";

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

fn required(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|v| !v.is_empty() && v != "0")
}

fn skipped(test: &str, why: &str) {
    // A write to the stderr handle itself is not captured: the skip shows among the results.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A Python that imports openpyxl, or `None` after saying SKIPPED (a failure when required).
fn openpyxl(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os(OPENPYXL_PYTHON).map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let found = Command::new(&python).args(["-c", "import openpyxl"]).output().is_ok_and(|o| o.status.success());
    if found {
        return Some(python);
    }
    assert!(!required(REQUIRE_OPENPYXL), "{test}: {REQUIRE_OPENPYXL} is set but {} has no openpyxl", python.display());
    skipped(test, &format!("no openpyxl (pip install openpyxl==3.1.5, or set {OPENPYXL_PYTHON})"));
    None
}

/// Every sheet as openpyxl reads it: its cells with their Python type, number format and value
/// (date-times as ISO text to the millisecond), its frozen cell, filter, column widths and
/// charts.
const DUMP: &str = r#"
import datetime, json, sys
import openpyxl

def cell(c):
    v = c.value
    if v is None:
        return None
    if isinstance(v, datetime.datetime):
        return {"type": "datetime", "value": v.isoformat(sep=" ", timespec="milliseconds"), "format": c.number_format}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"type": "number", "value": v, "format": c.number_format}
    return {"type": type(v).__name__, "value": v}

book = openpyxl.load_workbook(sys.argv[1])
out = {"sheets": book.sheetnames, "active": book.active.title}
for sheet in book.worksheets:
    out[sheet.title] = {
        "freeze": sheet.freeze_panes,
        "filter": sheet.auto_filter.ref,
        "widths": {k: d.width for k, d in sheet.column_dimensions.items()},
        "charts": len(sheet._charts),
        "rows": [[cell(c) for c in row] for row in sheet.iter_rows()],
    }
json.dump(out, sys.stdout)
"#;

fn read_workbook(python: &Path, path: &Path) -> Value {
    let output = Command::new(python).args(["-c", DUMP]).arg(path).output().unwrap();
    assert!(
        output.status.success(),
        "openpyxl cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A sheet's rows below its header, and its header.
fn sheet_rows<'a>(book: &'a Value, sheet: &str) -> (&'a [Value], &'a [Value]) {
    let rows = book[sheet]["rows"].as_array().unwrap_or_else(|| panic!("no sheet {sheet}: {}", book["sheets"]));
    (rows[0].as_array().unwrap(), &rows[1..])
}

/// The Summary's value cells by their label (column A).
fn summary_values(book: &Value) -> HashMap<String, Value> {
    book["Summary"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| Some((row[0]["value"].as_str()?.to_string(), row.get(1).cloned().unwrap_or(Value::Null))))
        .collect()
}

fn number(cell: &Value) -> f64 {
    assert_eq!(cell["type"], "number", "{cell}");
    cell["value"].as_f64().unwrap()
}

/// Each CSV cell against its workbook cell: empty stays empty, times are date-times shown to the
/// millisecond, figures are numbers, the rest text.
fn assert_cell_is_the_csv_value(column: &str, csv: &str, cell: &Value, at: &str) {
    if csv.is_empty() {
        assert!(cell.is_null(), "{at}: an empty CSV cell is an empty cell, not {cell}");
        return;
    }
    match column {
        "log_time" | "scheduled_at" | "sent_at" => {
            assert_eq!(cell["type"], "datetime", "{at}: {cell}");
            assert_eq!(cell["value"], csv, "{at}");
            assert_eq!(cell["format"], "yyyy-mm-dd hh:mm:ss.000", "{at}");
        }
        "lag_ms" | "latency_ms" => {
            assert_eq!(number(cell), csv.parse::<f64>().unwrap(), "{at}");
            assert_eq!(cell["format"], "0.000", "{at}");
        }
        "seq" | "log_line" | "orig_status" | "status" | "bytes" | "session_seq" => {
            assert_eq!(number(cell), csv.parse::<f64>().unwrap(), "{at}")
        }
        _ => {
            // The CSV's `'` before a formula-like cell is not needed in a workbook's text cell.
            let unneutralised = csv.strip_prefix('\'').filter(|rest| rest.starts_with(['=', '+', '-', '@']));
            assert_eq!(cell, &serde_json::json!({"type": "str", "value": unneutralised.unwrap_or(csv)}), "{at}");
        }
    }
}

/// A results CSV as rows of column → value, by the documented columns; a file written before
/// the session columns existed has them empty.
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let by_name: HashMap<&str, &str> = header.iter().map(String::as_str).zip(record.iter()).collect();
            DOCUMENTED_CSV_COLUMNS.iter().map(|c| (c.to_string(), by_name.get(c).unwrap_or(&"").to_string())).collect()
        })
        .collect()
}

/// The Results sheets, one after another, against the CSV row by row.
fn assert_results_equal_the_csv(book: &Value, sheets: &[&str], csv: &Path) {
    let rows = csv_rows(csv);
    let mut expected = rows.iter().enumerate();
    for sheet in sheets {
        assert_eq!(book[sheet]["freeze"], "A2", "{sheet}: the header row is frozen");
        let (header, cells) = sheet_rows(book, sheet);
        let names: Vec<&str> = header.iter().map(|h| h["value"].as_str().unwrap()).collect();
        assert_eq!(names, DOCUMENTED_CSV_COLUMNS, "{sheet}: the CSV's header, repeated on every Results sheet");
        assert_eq!(book[sheet]["filter"], format!("A1:O{}", cells.len() + 1), "{sheet}: a filter on every row");
        for row in cells {
            let (i, csv_row) = expected.next().unwrap_or_else(|| panic!("{sheet} has more rows than the CSV"));
            for (col, name) in DOCUMENTED_CSV_COLUMNS.iter().enumerate() {
                let at = format!("{sheet} row of CSV line {} column {name}", i + 2);
                assert_cell_is_the_csv_value(name, &csv_row[*name], row.get(col).unwrap_or(&Value::Null), &at);
            }
        }
    }
    assert!(expected.next().is_none(), "every CSV row is on a Results sheet");
}

fn all_text(book: &Value) -> String {
    book.to_string()
}

#[test]
fn a_replay_writes_a_workbook_whose_cells_are_typed_and_are_the_csvs_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.xlsx");
    let assert = sluice()
        .args(["replay", fixture("demo-access.log").to_str().unwrap(), "--target", "mock", "--rate", "500"])
        .args(["--allow-methods", "all", "-H", "Authorization: Bearer s3cret-xlsx-token", "--out"])
        .arg(&out)
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    let csv = dir.path().join("run.csv");
    assert!(
        stderr.contains(&format!("results    {} and {}", csv.display(), out.display())),
        "the summary names both files: {stderr}"
    );
    assert!(csv.is_file() && out.is_file(), "--out FILE.xlsx: the CSV beside the workbook");
    let rows = csv_rows(&csv);
    assert!(
        stderr.contains(&format!("workbook {}: {} rows on 1 Results sheet(s)", out.display(), rows.len())),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let Some(python) = openpyxl("a_replay_writes_a_workbook_whose_cells_are_typed_and_are_the_csvs_row_by_row") else {
        return;
    };
    let book = read_workbook(&python, &out);
    assert_eq!(book["sheets"], serde_json::json!(["Summary", "Routes", "Over time", "Results"]));
    assert_eq!(book["active"], "Summary", "the workbook opens on its Summary");
    assert_results_equal_the_csv(&book, &["Results"], &csv);
    assert!(book["Results"]["widths"]["H"].as_f64().unwrap() > 40.0, "the url column is set wide");

    // The Summary's counts are the CSV's.
    let summary = summary_values(&book);
    let not_sent = rows.iter().filter(|r| r["error"] == "not_sent").count();
    assert_eq!(number(&summary["sent"]), (rows.len() - not_sent) as f64);
    assert_eq!(number(&summary["answered"]), rows.iter().filter(|r| !r["status"].is_empty()).count() as f64);
    assert_eq!(number(&summary["rows on Results sheets"]), rows.len() as f64);
    let mut statuses: HashMap<&str, u64> = HashMap::new();
    for row in &rows {
        if !row["status"].is_empty() {
            *statuses.entry(&row["status"]).or_default() += 1;
        }
    }
    for (status, n) in statuses {
        assert_eq!(number(&summary[&format!("status {status}")]), n as f64, "status {status}");
    }
    assert_eq!(summary["first sent"]["type"], "datetime");
    assert_eq!(summary["plan"]["value"], "500/s", "the run's plan");
    // The run's options, the header's value redacted: nowhere in any sheet.
    assert_eq!(summary["header"]["value"], "Authorization: [redacted]");
    assert!(!all_text(&book).contains("s3cret"), "a secret header value reached the workbook");

    // Routes: the report's table, with its chart.
    let (header, routes) = sheet_rows(&book, "Routes");
    assert_eq!(header[0]["value"], "route");
    let requests: f64 =
        routes.iter().filter(|r| r[0]["type"] == "str" && r[1]["type"] == "number").map(|r| number(&r[1])).sum();
    assert_eq!(requests, (rows.len() - not_sent) as f64, "every sent request is on a route (or in other)");
    assert_eq!(book["Routes"]["charts"], 1);
    assert_eq!(book["Over time"]["charts"], 2);
    assert_eq!(sheet_rows(&book, "Over time").1[0][0]["type"], "datetime");
}

#[test]
fn report_converts_an_existing_csv_with_the_same_routes_as_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("basic.xlsx");
    let csv = fixture("report-basic.csv");
    let assert = sluice().args(["report", csv.to_str().unwrap(), "--xlsx"]).arg(&out).assert().success();
    assert!(String::from_utf8_lossy(&assert.get_output().stdout).contains("routes"), "the text report still prints");
    let json = sluice().args(["report", csv.to_str().unwrap(), "--format", "json"]).assert().success();
    let report: Value = serde_json::from_slice(&json.get_output().stdout).unwrap();

    let Some(python) = openpyxl("report_converts_an_existing_csv_with_the_same_routes_as_its_json") else {
        return;
    };
    let book = read_workbook(&python, &out);
    assert_results_equal_the_csv(&book, &["Results"], &csv);
    let (_, routes) = sheet_rows(&book, "Routes");
    let shown = report["routes"]["shown"].as_array().unwrap();
    for (line, row) in shown.iter().zip(routes) {
        assert_eq!(row[0]["value"], line["route"]);
        assert_eq!(number(&row[1]), line["requests"].as_f64().unwrap(), "{}", line["route"]);
        assert_eq!(number(&row[8]), line["p99_ms"].as_f64().unwrap(), "{}", line["route"]);
    }
    let summary = summary_values(&book);
    assert_eq!(number(&summary["sent"]), report["overview"]["requests"].as_f64().unwrap());
    assert_eq!(number(&summary["failed"]), report["overview"]["failed"].as_f64().unwrap());
    assert_eq!(summary["error rate"]["format"], "0.00%");
}

#[test]
fn a_kafka_runs_e2e_ms_column_is_kept_as_numbers() {
    // An end-to-end Kafka run's rows as sluice writes them (tests/kafka.rs reads such a file back
    // from a real broker): acknowledged (status 0) with its output seen, acknowledged and lost,
    // and one that timed out.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("kafka.csv");
    let row = "2026-11-21 10:00:00.000,2026-11-21 22:24:06.521,2026-11-21 22:24:06.521,0.100,PRODUCE,kafka://127.0.0.1:9092/in/0";
    let text = format!(
        "{},e2e_ms\n1,1,{row},200,0,1.250,3,,,,310.250\n2,2,{row},200,0,1.500,3,,,,lost\n3,3,{row},200,,5000.000,0,kafka:timeout,,,\n",
        DOCUMENTED_CSV_COLUMNS.join(",")
    );
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("kafka.xlsx");
    sluice().args(["report", csv.to_str().unwrap(), "--xlsx"]).arg(&out).assert().success();

    let Some(python) = openpyxl("a_kafka_runs_e2e_ms_column_is_kept_as_numbers") else { return };
    let book = read_workbook(&python, &out);
    let (header, cells) = sheet_rows(&book, "Results");
    let names: Vec<&str> = header.iter().map(|h| h["value"].as_str().unwrap()).collect();
    assert_eq!(names, [&DOCUMENTED_CSV_COLUMNS[..], &["e2e_ms"]].concat(), "the column after the documented ones");
    assert_eq!(book["Results"]["filter"], "A1:P4", "the filter covers e2e_ms too");
    let e2e = |row: usize| cells[row].get(15).cloned().unwrap_or(Value::Null);
    assert_eq!(number(&e2e(0)), 310.25);
    assert_eq!(e2e(0)["format"], "0.000");
    assert_eq!(e2e(1), serde_json::json!({"type": "str", "value": "lost"}));
    assert!(e2e(2).is_null(), "a message not produced has no e2e cell: {}", e2e(2));
    assert_eq!(number(&cells[0][9]), 0.0, "status 0: acknowledged");
    // The Summary's end-to-end figures and the route's classes, as `sluice report` gives them.
    let summary = summary_values(&book);
    assert_eq!((number(&summary["matched"]), number(&summary["lost"])), (1.0, 1.0));
    assert!((number(&summary["e2e p50 (ms)"]) - 310.25).abs() < 0.5, "{}", summary["e2e p50 (ms)"]);
    let (_, routes) = sheet_rows(&book, "Routes");
    assert_eq!(routes[0][10]["value"], "acked: 2  error: 1", "an acknowledgement's class is acked");
}

#[test]
fn report_on_a_shard_lists_its_runs_options_from_the_manifest_with_header_values_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture("demo-access.log");
    sluice()
        .args(["replay", log.to_str().unwrap(), "--target", "mock", "--rate", "1000", "--shard", "0/2"])
        .args(["-H", "X-Key: s3cret-shard", "--out", "s0.csv", "--xlsx", "s0.xlsx"])
        .current_dir(dir.path())
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    assert!(dir.path().join("s0.manifest.json").is_file() && dir.path().join("s0.xlsx").is_file());
    // The other shard is missing: --allow-partial reports this one.
    sluice()
        .args(["report", "s0.csv", "--allow-partial", "--xlsx", "report.xlsx"])
        .current_dir(dir.path())
        .assert()
        .success();

    let Some(python) =
        openpyxl("report_on_a_shard_lists_its_runs_options_from_the_manifest_with_header_values_redacted")
    else {
        return;
    };
    let book = read_workbook(&python, &dir.path().join("report.xlsx"));
    let summary = summary_values(&book);
    assert_eq!(summary["header"]["value"], "X-Key: [redacted]");
    assert_eq!(number(&summary["rate"]), 1000.0);
    assert!(!summary.contains_key("xlsx") && !summary.contains_key("out"), "where a shard writes is its own");
    assert!(book["Summary"].to_string().contains("1 of 2 shards"), "the report's shard line");
    assert!(!all_text(&book).contains("s3cret"));
    assert!(!all_text(&read_workbook(&python, &dir.path().join("s0.xlsx"))).contains("s3cret"));
}

#[test]
fn rows_past_a_sheet_go_on_in_continuation_sheets_with_the_header_repeated() {
    let csv = fixture("report-basic.csv");
    let files = [csv.clone()];
    let report = analyse(&files, &Settings::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, layout: Layout| {
        let out = dir.path().join(name);
        let contents = Contents { files: &files, report: &report, run: &[], options: &[] };
        (xlsx::write(&contents, &out, layout).unwrap(), out)
    };
    // 160 rows, 50 to a sheet: four sheets, the last one part full.
    let (whole, whole_path) = write("whole.xlsx", Layout { rows_per_sheet: 50, max_sheets: 4 });
    assert_eq!((whole.rows, whole.sheets, whole.left_out), (160, 4, 0));
    // Three sheets at most: the last ten rows are left to the CSV, and counted.
    let (capped, capped_path) = write("capped.xlsx", Layout { rows_per_sheet: 50, max_sheets: 3 });
    assert_eq!((capped.rows, capped.sheets, capped.left_out), (150, 3, 10));
    // Exactly full sheets: no empty sheet after them.
    let (exact, _) = write("exact.xlsx", Layout { rows_per_sheet: 40, max_sheets: 4 });
    assert_eq!((exact.rows, exact.sheets, exact.left_out), (160, 4, 0));
    let leftover: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftover.len(), 3, "no temporary file is left beside the workbooks: {leftover:?}");

    let Some(python) = openpyxl("rows_past_a_sheet_go_on_in_continuation_sheets_with_the_header_repeated") else {
        return;
    };
    let book = read_workbook(&python, &whole_path);
    let sheets = ["Results", "Results 2", "Results 3", "Results 4"];
    assert_eq!(book["sheets"].as_array().unwrap()[3..], sheets.map(Value::from));
    assert_results_equal_the_csv(&book, &sheets, &csv);
    let summary = summary_values(&book);
    assert!(book["Summary"].to_string().contains("Results, Results 2 … Results 4: the header repeated on each"));
    assert_eq!(number(&summary["rows on Results sheets"]), 160.0);

    let book = read_workbook(&python, &capped_path);
    assert_eq!(sheet_rows(&book, "Results 3").1.len(), 50);
    assert!(book.get("Results 4").is_none());
    let summary = summary_values(&book);
    assert_eq!(number(&summary["rows only in the CSV"]), 10.0, "the Summary says how many rows are missing");
}

#[test]
fn bad_workbook_requests_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture("demo-access.log");
    let replay = |extra: &[&str]| {
        let output = sluice()
            .args(["replay", log.to_str().unwrap(), "--target", "mock", "--rate", "100"])
            .args(extra)
            .current_dir(dir.path())
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (code, stderr) = replay(&["--out", "a.xlsx", "--xlsx", "b.xlsx"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--out a.xlsx already names the workbook"), "{stderr}");
    let (code, stderr) = replay(&["--out", "r.csv", "--xlsx", "r.csv"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("r.csv is the results CSV"), "{stderr}");
    let (code, stderr) = replay(&["--out", "r.csv", "--xlsx", "missing/r.xlsx"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--xlsx missing/r.xlsx: no directory missing"), "{stderr}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was written, so nothing was sent");

    let output = sluice().args(["report", "-", "--xlsx", "r.xlsx"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("give a file, not -"));
}

#[test]
fn the_daemon_serves_a_finished_runs_workbook_and_refuses_one_not_finished() {
    let server = mock(sluice_mock::MockConfig::default().with_seed(3));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), None, &[]);
    let http = daemon.http(None);
    assert_eq!(http.upload("unique-targets.log", &fixture("unique-targets.log")).status, 201);
    let submit = |extra: Value| {
        let mut body = serde_json::json!({
            "logs": ["unique-targets.log"], "target": server.url(), "rate": 400, "allow_methods": ["all"],
            "headers": {"Authorization": "Bearer s3cret-daemon"}
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        http.submit(body)["id"].as_str().unwrap().to_string()
    };

    let later = submit(serde_json::json!({"start_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}));
    expect(http.get(&format!("/v1/runs/{later}/results.xlsx")), 409, "its workbook is built once it ends");
    expect(http.get("/v1/runs/nope/results.xlsx"), 404, "nope");
    expect(http.post_json("/v1/runs", &serde_json::json!({"logs": ["unique-targets.log"], "target": server.url(), "rate": 1, "xlsx": "/tmp/x.xlsx"})), 422, "results.xlsx");

    let id = submit(serde_json::json!({}));
    assert_eq!(http.wait_finished(&id, Duration::from_secs(60))["state"], "completed");
    let reply = http.get(&format!("/v1/runs/{id}/results.xlsx"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(reply.body.starts_with(b"PK\x03\x04"), "a zip container");
    let run_dir: Vec<_> =
        std::fs::read_dir(state.path().join("runs").join(&id)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        run_dir.iter().all(|name| !name.to_string_lossy().starts_with(".tmp")),
        "no build left behind: {run_dir:?}"
    );

    let Some(python) = openpyxl("the_daemon_serves_a_finished_runs_workbook_and_refuses_one_not_finished") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (workbook, csv) = (dir.path().join("run.xlsx"), dir.path().join("run.csv"));
    std::fs::write(&workbook, &reply.body).unwrap();
    std::fs::write(&csv, http.get(&format!("/v1/runs/{id}/results.csv")).body).unwrap();
    let book = read_workbook(&python, &workbook);
    assert_results_equal_the_csv(&book, &["Results"], &csv);
    let summary = summary_values(&book);
    assert_eq!(summary["run"]["value"], id.as_str());
    assert_eq!(summary["state"]["value"], "completed");
    assert_eq!(number(&summary["sent"]), 200.0);
    assert!(!all_text(&book).contains("s3cret"), "a secret header value reached the workbook");
    assert!(!all_text(&book).contains(&state.path().display().to_string()), "the daemon's paths are not shown");
}

/// Runs `command` for at most `limit`; its output, or a panic naming it.
fn run_bounded(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn libreoffice_opens_the_workbook_and_prints_its_sheets() {
    let test = "libreoffice_opens_the_workbook_and_prints_its_sheets";
    let found = |program: &str| Command::new(program).arg("-v").output().is_ok();
    if !(found("soffice") && found("pdfinfo") && found("pdftotext")) {
        assert!(
            !required(REQUIRE_LIBREOFFICE),
            "{test}: {REQUIRE_LIBREOFFICE} is set but soffice or poppler's tools are missing"
        );
        skipped(test, "no LibreOffice (apt-get install libreoffice-calc-nogui poppler-utils)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let workbook = dir.path().join("basic.xlsx");
    sluice()
        .args(["report", fixture("report-basic.csv").to_str().unwrap(), "--xlsx"])
        .arg(&workbook)
        .assert()
        .success();
    // A profile of its own: a LibreOffice already running for the user does not take the job.
    let profile = format!("-env:UserInstallation=file://{}", dir.path().join("profile").display());
    let converted = run_bounded(
        Command::new("soffice")
            .args([profile.as_str(), "--headless", "--convert-to", "pdf", "--outdir"])
            .arg(dir.path())
            .arg(&workbook),
        Duration::from_secs(180),
    );
    let pdf = dir.path().join("basic.pdf");
    assert!(pdf.is_file(), "no PDF: {}", String::from_utf8_lossy(&converted.stderr));
    let info = String::from_utf8(Command::new("pdfinfo").arg(&pdf).output().unwrap().stdout).unwrap();
    let pages: u32 = info.lines().find_map(|l| l.strip_prefix("Pages:")).unwrap().trim().parse().unwrap();
    assert!(pages >= 4, "Summary, Routes, Over time and Results each print: {info}");
    let text =
        String::from_utf8(Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output().unwrap().stdout)
            .unwrap();
    assert!(text.contains("sluice results"), "the Summary prints first");
    // LibreOffice shows the times as date-times to the millisecond, not as the serial numbers.
    assert!(text.contains("2026-11-21 10:00:00.050"), "{text}");
    assert!(text.contains("/api/users/{id}"), "the Routes sheet prints");
}
