//! A results CSV as an Excel workbook: typed cells (times as date-times to the millisecond,
//! figures as numbers, empty cells empty, text as text), the run's figures and options, the
//! report's route table and its series over time, with charts.
//!
//! Sheets, in order: Summary (the report's figures, the run's options), Routes (the route table,
//! with a latency chart), Over time (rate and latency per time slice, with charts), then Results:
//! one row per CSV row, the header frozen with a filter. Past a sheet's 1,048,576 rows the rows go
//! on in Results 2, Results 3, …, each with the header again; past [`Layout::max_sheets`] sheets
//! they are left to the CSV, and the Summary says how many.
//!
//! rust_xlsxwriter writes the Results sheets in its constant-memory mode: each row goes to a
//! temporary file as it is read (in the workbook's own directory, not in a `/tmp` that may live
//! in memory), so a run of millions of rows converts in flat memory. The workbook is written to
//! a temporary file and renamed into place: a failure never leaves half a workbook.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{Chart, ChartType, Color, ExcelDateTime, Format, FormatBorder, Workbook, Worksheet, XlsxError};
use serde_json::Value;

use crate::analysis::figures::{CLASS_ORDER, Report, RouteLine};
use crate::analysis::rows::{time_ms, unneutralised};
use crate::results::{E2E_COLUMN, HEADER};
use crate::stats::{LagSummary, Percentiles};

/// Rows on one sheet, its header's included: Excel's limit, and LibreOffice's.
pub const SHEET_ROWS: u32 = 1_048_576;

/// Longest text a cell holds (Excel's limit): a longer URL is cut there, and counted.
const CELL_CHARS: usize = 32_767;

/// Excel's serial date of 1970-01-01 (days since 1899-12-30, its 1900 date system).
const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
const MS_PER_DAY: f64 = 86_400_000.0;

/// Where the Results rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Rows on one Results sheet, below its header.
    pub rows_per_sheet: u32,
    /// Results sheets at most; later rows stay in the CSV only.
    pub max_sheets: u32,
}

impl Default for Layout {
    /// Full sheets, and at most 16 of them: 16,777,200 rows, beyond what a spreadsheet opens in
    /// useful time (the CSV and `sluice report` have no such limit).
    fn default() -> Layout {
        Layout { rows_per_sheet: SHEET_ROWS - 1, max_sheets: 16 }
    }
}

impl Layout {
    pub fn max_rows(&self) -> u64 {
        u64::from(self.rows_per_sheet) * u64::from(self.max_sheets)
    }
}

/// What a workbook is made of.
#[derive(Debug, Clone, Copy)]
pub struct Contents<'a> {
    /// Results CSVs, their rows on the Results sheets in this order.
    pub files: &'a [PathBuf],
    /// `sluice report`'s figures over those files.
    pub report: &'a Report,
    /// What is known of the run (target, plan, how it ended), as the Summary sheet lists it.
    pub run: &'a [(String, Value)],
    /// The run's options as given, secrets already redacted.
    pub options: &'a [(String, Value)],
}

/// What was put on the Results sheets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// CSV rows on the Results sheets.
    pub rows: u64,
    /// Results sheets (at least one, with its header, even for a CSV without rows).
    pub sheets: u32,
    /// CSV rows past the last sheet: in the CSV only.
    pub left_out: u64,
    /// Text cells longer than a cell holds, cut at 32,767 characters.
    pub cut_cells: u64,
}

/// A JSON object (options from a run's record or a shard's manifest, secrets already redacted)
/// as the Summary sheet's lines.
pub fn lines_of(options: &Value) -> Vec<(String, Value)> {
    options.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: XlsxError,
    },
}

/// Refuses, before a run starts, a workbook path in a directory that is not there.
pub fn check_destination(out: &Path) -> Result<(), String> {
    let dir = directory_of(out);
    if dir.is_dir() { Ok(()) } else { Err(format!("{}: no directory {}", out.display(), dir.display())) }
}

fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes the workbook of `contents` to `out` (replacing it).
pub fn write(contents: &Contents, out: &Path, layout: Layout) -> Result<Written, WorkbookError> {
    let failed = |source: XlsxError| WorkbookError::Write { path: out.display().to_string(), source };
    let dir = directory_of(out);
    let mut workbook = Workbook::new();
    workbook.set_tempdir(dir).map_err(failed)?;
    let styles = Styles::new();
    let (results, written) = results_sheets(&mut workbook, contents.files, &styles, layout).map_err(|e| match e {
        ResultsError::Read(e) => e,
        ResultsError::Write(e) => failed(e),
    })?;
    workbook.push_worksheet(summary_sheet(contents, &written, layout, &styles).map_err(failed)?);
    workbook.push_worksheet(routes_sheet(contents.report, &styles).map_err(failed)?);
    if let Some(sheet) = over_time_sheet(contents.report, &styles).map_err(failed)? {
        workbook.push_worksheet(sheet);
    }
    for sheet in results {
        workbook.push_worksheet(sheet);
    }
    // Readable as any new file is (the umask applies), not only by its owner as a temporary is.
    let mut file = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| failed(XlsxError::IoError(e)))?;
    workbook.save_to_writer(file.as_file_mut()).map_err(failed)?;
    file.persist(out).map_err(|e| failed(XlsxError::IoError(e.error)))?;
    Ok(written)
}

/// The cell formats, made once.
struct Styles {
    header: Format,
    title: Format,
    heading: Format,
    time: Format,
    millis: Format,
    rate: Format,
    percent: Format,
    /// Text beside a right-aligned number.
    indented: Format,
}

impl Styles {
    fn new() -> Styles {
        Styles {
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xDDE4EE))
                .set_border_bottom(FormatBorder::Thin),
            title: Format::new().set_bold().set_font_size(14),
            heading: Format::new().set_bold().set_border_bottom(FormatBorder::Thin),
            // What the CSV writes, to the millisecond, in UTC as the CSV is.
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            millis: Format::new().set_num_format("0.000"),
            rate: Format::new().set_num_format("0.00"),
            percent: Format::new().set_num_format("0.00%"),
            indented: Format::new().set_indent(1),
        }
    }
}

/// How a Results column's cells are written, and its width in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Time,
    Count,
    Millis,
    Text,
}

fn column(name: &str) -> (Kind, f64) {
    match name {
        "log_time" | "scheduled_at" | "sent_at" => (Kind::Time, 23.0),
        "lag_ms" | "latency_ms" | E2E_COLUMN => (Kind::Millis, 11.0),
        "seq" | "log_line" | "bytes" => (Kind::Count, 9.0),
        "orig_status" | "status" | "session_seq" => (Kind::Count, 12.0),
        "url" => (Kind::Text, 60.0),
        "error" => (Kind::Text, 16.0),
        _ => (Kind::Text, 9.0),
    }
}

/// A time as the CSV writes it (`2026-11-21 14:03:07.123`, UTC), as an Excel date-time.
fn excel_time(text: &str) -> Option<ExcelDateTime> {
    time_ms(text, "").ok().and_then(excel_time_of_ms)
}

fn excel_time_of_ms(ms: i64) -> Option<ExcelDateTime> {
    ExcelDateTime::from_serial_datetime(ms as f64 / MS_PER_DAY + UNIX_EPOCH_SERIAL).ok()
}

enum ResultsError {
    Read(WorkbookError),
    Write(XlsxError),
}

impl From<XlsxError> for ResultsError {
    fn from(e: XlsxError) -> ResultsError {
        ResultsError::Write(e)
    }
}

/// Every row of `files`, on as many Results sheets as they need.
fn results_sheets(
    workbook: &mut Workbook,
    files: &[PathBuf],
    styles: &Styles,
    layout: Layout,
) -> Result<(Vec<Worksheet>, Written), ResultsError> {
    let columns = results_columns(files)?;
    let mut sheets = ResultsSheets { full: Vec::new(), current: None, row: 0, layout, columns: columns.clone() };
    let mut written = Written::default();
    let mut record = csv::ByteRecord::new();
    for path in files {
        let (mut reader, unreadable) = open_results(path)?;
        // The file's columns by name, in the order of `columns`: files may order them
        // differently, and older ones lack the session columns.
        let header = reader.byte_headers().map_err(|e| unreadable(e.to_string()))?;
        let at: Vec<Option<usize>> =
            columns.iter().map(|h| header.iter().position(|field| field == h.as_bytes())).collect();
        while reader.read_byte_record(&mut record).map_err(|e| unreadable(e.to_string()))? {
            let Some((sheet, row)) = sheets.next_row(workbook, styles)? else {
                written.left_out += 1;
                continue;
            };
            for (col, name) in columns.iter().enumerate() {
                match at[col].and_then(|i| record.get(i)) {
                    None | Some(b"") => {}
                    Some(cell) => write_cell(sheet, row, col as u16, column(name).0, cell, styles, &mut written)?,
                }
            }
            written.rows += 1;
        }
    }
    let full = sheets.finish(workbook, styles)?;
    written.sheets = full.len() as u32;
    Ok((full, written))
}

type ResultsReader = csv::Reader<BufReader<File>>;

/// A results CSV to read, and how a failure to read it is told.
fn open_results(path: &Path) -> Result<(ResultsReader, impl Fn(String) -> ResultsError), ResultsError> {
    let name = path.display().to_string();
    let unreadable = move |reason: String| ResultsError::Read(WorkbookError::Read { file: name.clone(), reason });
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    // Flexible: a damaged row is written as it is, as far as it goes.
    let reader = csv::ReaderBuilder::new().flexible(true).from_reader(BufReader::with_capacity(256 * 1024, file));
    Ok((reader, unreadable))
}

/// The Results sheets' columns: [`HEADER`]'s, then [`E2E_COLUMN`] when a file has it (an
/// end-to-end Kafka run). A `--compare` run's own columns stay in its CSV.
fn results_columns(files: &[PathBuf]) -> Result<Vec<&'static str>, ResultsError> {
    let mut columns = HEADER.to_vec();
    for path in files {
        let (mut reader, unreadable) = open_results(path)?;
        if reader.byte_headers().map_err(|e| unreadable(e.to_string()))?.iter().any(|f| f == E2E_COLUMN.as_bytes()) {
            columns.push(E2E_COLUMN);
            break;
        }
    }
    Ok(columns)
}

/// The Results sheets: those filled, and the one being filled.
struct ResultsSheets {
    full: Vec<Worksheet>,
    current: Option<Worksheet>,
    /// The last row written on `current` (its header is row 0).
    row: u32,
    layout: Layout,
    columns: Vec<&'static str>,
}

impl ResultsSheets {
    /// The sheet and row of the next CSV row, on a new sheet when the current one is full;
    /// `None` once every sheet is.
    fn next_row(
        &mut self,
        workbook: &mut Workbook,
        styles: &Styles,
    ) -> Result<Option<(&mut Worksheet, u32)>, XlsxError> {
        if self.current.is_none() || self.row == self.layout.rows_per_sheet {
            let started = self.full.len() + usize::from(self.current.is_some());
            if started == self.layout.max_sheets as usize && self.current.is_some() {
                return Ok(None);
            }
            if let Some(sheet) = self.current.take() {
                self.full.push(with_filter(sheet, self.row, &self.columns)?);
            }
            self.current = Some(results_sheet(workbook, self.full.len() + 1, styles, &self.columns)?);
            self.row = 0;
        }
        self.row += 1;
        Ok(self.current.as_mut().map(|sheet| (sheet, self.row)))
    }

    fn finish(mut self, workbook: &mut Workbook, styles: &Styles) -> Result<Vec<Worksheet>, XlsxError> {
        let last = match self.current.take() {
            Some(sheet) => sheet,
            None => results_sheet(workbook, 1, styles, &self.columns)?,
        };
        self.full.push(with_filter(last, self.row, &self.columns)?);
        Ok(self.full)
    }
}

/// `Results`, `Results 2`, …: the header, frozen, and the columns' widths.
fn results_sheet(
    workbook: &mut Workbook,
    number: usize,
    styles: &Styles,
    columns: &[&str],
) -> Result<Worksheet, XlsxError> {
    let mut sheet = workbook.new_worksheet_with_constant_memory()?;
    sheet.set_name(if number == 1 { "Results".to_string() } else { format!("Results {number}") })?;
    for (col, name) in columns.iter().enumerate() {
        sheet.set_column_width(col as u16, column(name).1)?;
        sheet.write_string_with_format(0, col as u16, *name, &styles.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for_print(&mut sheet)?;
    Ok(sheet)
}

/// Printed (or made a PDF) across, one page wide, the header row on every page.
fn for_print(sheet: &mut Worksheet) -> Result<(), XlsxError> {
    sheet.set_landscape().set_print_fit_to_pages(1, 0).set_repeat_rows(0, 0)?;
    Ok(())
}

/// The header's filter, over the rows the sheet got.
fn with_filter(mut sheet: Worksheet, last_row: u32, columns: &[&str]) -> Result<Worksheet, XlsxError> {
    sheet.autofilter(0, 0, last_row, (columns.len() - 1) as u16)?;
    Ok(sheet)
}

/// One cell, typed by its column; a cell that does not read as its column's type (in a damaged
/// row) is written as the text it is.
fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    kind: Kind,
    cell: &[u8],
    styles: &Styles,
    written: &mut Written,
) -> Result<(), XlsxError> {
    let text = String::from_utf8_lossy(cell);
    match kind {
        Kind::Time => {
            if let Some(t) = excel_time(&text) {
                sheet.write_datetime_with_format(row, col, t, &styles.time)?;
                return Ok(());
            }
        }
        Kind::Millis => {
            if let Ok(ms) = text.parse::<f64>()
                && ms.is_finite()
            {
                sheet.write_number_with_format(row, col, ms, &styles.millis)?;
                return Ok(());
            }
        }
        Kind::Count => {
            if let Ok(n) = text.parse::<u64>() {
                sheet.write_number(row, col, n as f64)?;
                return Ok(());
            }
        }
        Kind::Text => {}
    }
    // A text cell in a workbook is never run as a formula: the `'` the CSV adds is not needed.
    write_text(sheet, row, col, unneutralised(&text), written)
}

fn write_text(sheet: &mut Worksheet, row: u32, col: u16, text: &str, written: &mut Written) -> Result<(), XlsxError> {
    let text = match text.char_indices().nth(CELL_CHARS) {
        Some((cut, _)) => {
            written.cut_cells += 1;
            &text[..cut]
        }
        None => text,
    };
    sheet.write_string(row, col, text)?;
    Ok(())
}

/// Label and value lines, top to bottom: column A the label, B the value, C a note.
struct Lines<'a> {
    sheet: Worksheet,
    row: u32,
    styles: &'a Styles,
}

impl Lines<'_> {
    fn skip(&mut self) {
        self.row += 1;
    }

    fn heading(&mut self, text: &str) -> Result<(), XlsxError> {
        if self.row > 0 {
            self.row += 1;
        }
        for col in 0..3 {
            self.sheet.write_blank(self.row, col, &self.styles.heading)?;
        }
        self.sheet.write_string_with_format(self.row, 0, text, &self.styles.heading)?;
        self.row += 1;
        Ok(())
    }

    fn label(&mut self, label: &str, note: &str) -> Result<u32, XlsxError> {
        let row = self.row;
        self.sheet.write_string(row, 0, label)?;
        if !note.is_empty() {
            self.sheet.write_string(row, 2, note)?;
        }
        self.row += 1;
        Ok(row)
    }

    fn count(&mut self, label: &str, n: u64, note: &str) -> Result<(), XlsxError> {
        let row = self.label(label, note)?;
        self.sheet.write_number(row, 1, n as f64)?;
        Ok(())
    }

    fn number(&mut self, label: &str, n: f64, format: &Format, note: &str) -> Result<(), XlsxError> {
        let row = self.label(label, note)?;
        if n.is_finite() {
            self.sheet.write_number_with_format(row, 1, n, format)?;
        }
        Ok(())
    }

    fn text(&mut self, label: &str, text: &str, note: &str) -> Result<(), XlsxError> {
        let row = self.label(label, note)?;
        if !text.is_empty() {
            self.sheet.write_string(row, 1, text.chars().take(CELL_CHARS).collect::<String>())?;
        }
        Ok(())
    }

    /// A time as the report writes it (UTC, to the millisecond).
    fn time(&mut self, label: &str, text: Option<&str>) -> Result<(), XlsxError> {
        let row = self.label(label, "UTC")?;
        if let Some(t) = text.and_then(excel_time) {
            self.sheet.write_datetime_with_format(row, 1, t, &self.styles.time)?;
        }
        Ok(())
    }

    fn percentiles(&mut self, what: &str, note: &str, p: &Percentiles) -> Result<(), XlsxError> {
        let millis = &self.styles.millis.clone();
        let figures =
            [("p50", p.p50), ("p90", p.p90), ("p99", p.p99), ("p99.9", p.p999), ("max", p.max), ("mean", p.mean)];
        for (i, (name, v)) in figures.into_iter().enumerate() {
            self.number(&format!("{what} {name} (ms)"), v, millis, if i == 0 { note } else { "" })?;
        }
        Ok(())
    }

    fn lag(&mut self, lag: &LagSummary) -> Result<(), XlsxError> {
        let millis = &self.styles.millis.clone();
        self.number("lag p50 (ms)", lag.p50_ms, millis, "sent after the planned time by this much")?;
        self.number("lag p99 (ms)", lag.p99_ms, millis, "")?;
        self.number("lag max (ms)", lag.max_ms, millis, "")?;
        if lag.earliest_ms < 0.0 {
            self.number("earliest send (ms)", -lag.earliest_ms, millis, "ahead of the plan")?;
        }
        Ok(())
    }

    /// A value of the run's options: numbers as numbers, lists one after another.
    fn option(&mut self, label: &str, value: &Value) -> Result<(), XlsxError> {
        match value {
            Value::Null => Ok(()),
            Value::Number(n) => match n.as_f64() {
                Some(f) => self.number(label, f, &Format::new(), ""),
                None => self.text(label, &n.to_string(), ""),
            },
            Value::String(s) => self.text(label, s, ""),
            Value::Bool(b) => self.text(label, if *b { "yes" } else { "no" }, ""),
            Value::Array(items) => {
                let texts: Vec<String> = items.iter().map(plain_text).collect();
                self.text(label, &texts.join(", "), "")
            }
            Value::Object(map) => {
                let texts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {}", plain_text(v))).collect();
                self.text(label, &texts.join(", "), "")
            }
        }
    }
}

fn plain_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn summary_sheet(
    contents: &Contents,
    written: &Written,
    layout: Layout,
    styles: &Styles,
) -> Result<Worksheet, XlsxError> {
    let report = contents.report;
    let o = &report.overview;
    let mut sheet = Worksheet::new();
    sheet.set_name("Summary")?;
    sheet.set_column_width(0, 26)?;
    sheet.set_column_width(1, 24)?;
    sheet.set_column_width(2, 52)?;
    sheet.set_print_fit_to_pages(1, 0);
    let mut l = Lines { sheet, row: 0, styles };
    l.sheet.write_string_with_format(0, 0, "sluice results", &styles.title)?;
    l.skip();
    l.text("results CSV", &report.files.join(", "), "")?;
    l.text("sluice version", env!("CARGO_PKG_VERSION"), "")?;

    l.heading("Sheets")?;
    let names = match written.sheets {
        1 => "Results".to_string(),
        2 => "Results and Results 2: the header repeated on each".to_string(),
        n => format!("Results, Results 2 … Results {n}: the header repeated on each"),
    };
    l.count("rows on Results sheets", written.rows, &names)?;
    l.count("rows per Results sheet", u64::from(layout.rows_per_sheet), "at most, below the header")?;
    if written.left_out > 0 {
        l.count(
            "rows only in the CSV",
            written.left_out,
            &format!("past the workbook's {} rows; `sluice report` reads them all", layout.max_rows()),
        )?;
    }
    if written.cut_cells > 0 {
        l.count("text cells cut", written.cut_cells, "longer than a cell's 32,767 characters; whole in the CSV")?;
    }
    if report.skipped_rows > 0 {
        let first = report.problems.first().map_or("", String::as_str);
        l.count("rows the figures skip", report.skipped_rows, &format!("could not be read; first: {first}"))?;
    }

    l.heading("Requests")?;
    l.count("sent", o.requests, "answered or not")?;
    l.count("not sent", o.not_sent, "due, but scheduling stopped first")?;
    l.count("answered", o.responses, "got an HTTP status")?;
    l.count("no answer", o.errors, "timeouts, resets, …")?;
    l.count("failed", o.failed, "no answer, or a 5xx")?;
    l.number("error rate", o.error_rate, &styles.percent, "failed ÷ sent")?;
    for (status, n) in &o.statuses {
        l.count(&format!("status {status}"), *n, "")?;
    }
    for (kind, n) in &o.error_kinds {
        l.count(&format!("error {kind}"), *n, "")?;
    }

    l.heading("Latency (answered requests)")?;
    l.percentiles("latency", "from the send to the end of the answer", &o.latency_ms)?;
    l.percentiles(
        "from plan",
        "from the planned send time: what a user on schedule waited",
        &o.latency_from_schedule_ms,
    )?;
    l.lag(&o.lag)?;
    end_to_end(&mut l, report)?;

    l.heading("Rate")?;
    match o.target_rate {
        Some(rate) => l.number("target rate", rate, &styles.rate, &format!("per second ({})", o.target_rate_source))?,
        None => l.text("target rate", "", &format!("none ({})", o.target_rate_source))?,
    }
    l.number("achieved rate", o.achieved_rate, &styles.rate, "per second")?;
    l.number("seconds sending", o.seconds, &styles.rate, "first send to last, plus one average gap")?;
    l.time("first sent", o.first_sent.as_deref())?;
    l.time("last sent", o.last_sent.as_deref())?;
    l.count("bytes received", o.bytes_received, "")?;

    l.heading("Logged vs replayed status")?;
    l.count("with a logged status", o.with_orig_status, "")?;
    l.count("mismatches", o.mismatches, "replayed class differs from the logged one")?;
    if let Some(rate) = o.mismatch_rate {
        l.number("mismatch rate", rate, &styles.percent, "mismatches ÷ with a logged status")?;
    }

    if let Some(shards) = &report.shards {
        l.heading("Shards")?;
        l.text("shards", &shards.headline, &shards.gaps.join("; "))?;
    }
    if !report.assertions.is_empty() {
        l.heading("Assertions")?;
        for v in &report.assertions {
            l.text(&v.assertion, if v.passed { "PASS" } else { "FAIL" }, &v.measured)?;
        }
    }
    for (heading, lines) in [("Run", contents.run), ("Options (header values redacted)", contents.options)] {
        if !lines.is_empty() {
            l.heading(heading)?;
            for (label, value) in lines {
                l.option(label, value)?;
            }
        }
    }
    Ok(l.sheet)
}

/// End to end (a Kafka run with `--consume`), as `sluice report` gives it.
fn end_to_end(l: &mut Lines, report: &Report) -> Result<(), XlsxError> {
    let Some(e) = &report.end_to_end else { return Ok(()) };
    l.heading("End to end")?;
    l.count("matched", e.matched, "acknowledged messages whose output was consumed")?;
    l.count("lost", e.lost, "acknowledged messages with no output by the end of the drain")?;
    let styles = l.styles;
    l.number("lost rate", e.lost_rate, &styles.percent, "lost ÷ (matched + lost)")?;
    if e.matched > 0 {
        l.percentiles("e2e", "from the send to the output message", &e.e2e_ms)?;
    }
    Ok(())
}

const ROUTE_COLUMNS: [(&str, f64); 11] = [
    ("route", 40.0),
    ("requests", 10.0),
    ("rate /s", 9.0),
    ("failed", 8.0),
    ("error rate", 10.0),
    ("logged status", 13.0),
    ("mismatches", 11.0),
    ("p50 ms", 9.0),
    ("p99 ms", 10.0),
    ("statuses", 32.0),
    ("classes", 30.0),
];

/// The report's route table, worst first, `other` last; a chart of p50 and p99 below it.
fn routes_sheet(report: &Report, styles: &Styles) -> Result<Worksheet, XlsxError> {
    let mut sheet = Worksheet::new();
    sheet.set_name("Routes")?;
    for (col, (name, width)) in ROUTE_COLUMNS.iter().enumerate() {
        sheet.set_column_width(col as u16, *width)?;
        sheet.write_string_with_format(0, col as u16, *name, &styles.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for_print(&mut sheet)?;
    let table = &report.routes;
    let mut row = 0;
    for line in table.shown.iter().chain(&table.other) {
        row += 1;
        route_row(&mut sheet, row, line, styles)?;
    }
    sheet.autofilter(0, 0, row, (ROUTE_COLUMNS.len() - 1) as u16)?;
    if table.other.is_some() {
        let note = if table.capped {
            format!("other: {}+ routes beyond those followed one by one", table.other_routes)
        } else {
            format!("other: the {} routes not listed (sluice report --routes N lists more)", table.other_routes)
        };
        sheet.write_string(row + 2, 0, note)?;
    }
    let charted = table.shown.len() as u32;
    if charted > 0 {
        let mut chart = Chart::new(ChartType::Bar);
        chart.title().set_name("Latency by route (ms)");
        for (name, col) in [("p50", 7), ("p99", 8)] {
            chart
                .add_series()
                .set_name(name)
                .set_categories(("Routes", 1, 0, charted, 0))
                .set_values(("Routes", 1, col, charted, col));
        }
        // Worst first, as in the table: a bar chart draws its first category at the bottom (its
        // categories are on the vertical axis, the y axis).
        chart.y_axis().set_reverse();
        chart.set_width(760).set_height(120 + 28 * charted.min(20));
        sheet.insert_chart(row + 4, 0, &chart)?;
    }
    Ok(sheet)
}

fn route_row(sheet: &mut Worksheet, row: u32, line: &RouteLine, styles: &Styles) -> Result<(), XlsxError> {
    sheet.write_string(row, 0, line.route.as_str())?;
    sheet.write_number(row, 1, line.requests as f64)?;
    sheet.write_number_with_format(row, 2, line.rate, &styles.rate)?;
    sheet.write_number(row, 3, line.failed as f64)?;
    sheet.write_number_with_format(row, 4, line.error_rate, &styles.percent)?;
    sheet.write_number(row, 5, line.with_orig_status as f64)?;
    sheet.write_number(row, 6, line.mismatches as f64)?;
    for (col, v) in [(7, line.p50_ms), (8, line.p99_ms)] {
        if let Some(ms) = v {
            sheet.write_number_with_format(row, col, ms, &styles.millis)?;
        }
    }
    let joined = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("  ")
    };
    sheet.write_string_with_format(row, 9, joined(&line.statuses), &styles.indented)?;
    // In the classes' own order (2xx … 5xx, acked, error), not alphabetical.
    let classes: Vec<String> =
        CLASS_ORDER.iter().filter_map(|c| line.classes.get(*c).map(|n| format!("{c}: {n}"))).collect();
    sheet.write_string_with_format(row, 10, classes.join("  "), &styles.indented)?;
    Ok(())
}

const TIME_COLUMNS: [(&str, f64); 10] = [
    ("start (UTC)", 23.0),
    ("sent", 8.0),
    ("rate /s", 9.0),
    ("planned /s", 10.0),
    ("p50 ms", 9.0),
    ("p90 ms", 9.0),
    ("p99 ms", 9.0),
    ("max ms", 9.0),
    ("no answer", 10.0),
    ("failed", 8.0),
];

/// The report's finer series over time, with charts of the rate and of latency; none when no
/// request was sent.
fn over_time_sheet(report: &Report, styles: &Styles) -> Result<Option<Worksheet>, XlsxError> {
    let points = &report.chart_time.points;
    if points.is_empty() {
        return Ok(None);
    }
    let mut sheet = Worksheet::new();
    sheet.set_name("Over time")?;
    for (col, (name, width)) in TIME_COLUMNS.iter().enumerate() {
        sheet.set_column_width(col as u16, *width)?;
        sheet.write_string_with_format(0, col as u16, *name, &styles.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for_print(&mut sheet)?;
    let planned = points.iter().any(|p| p.planned_rate.is_some());
    for (i, p) in points.iter().enumerate() {
        let row = i as u32 + 1;
        if let Some(t) = excel_time_of_ms(p.unix_ms) {
            sheet.write_datetime_with_format(row, 0, t, &styles.time)?;
        }
        sheet.write_number(row, 1, p.sent as f64)?;
        sheet.write_number_with_format(row, 2, p.rate, &styles.rate)?;
        let figures = [(3, p.planned_rate), (4, p.p50_ms), (5, p.p90_ms), (6, p.p99_ms), (7, p.max_ms)];
        for (col, v) in figures {
            if let Some(v) = v {
                sheet.write_number_with_format(row, col, v, if col == 3 { &styles.rate } else { &styles.millis })?;
            }
        }
        sheet.write_number(row, 8, p.errors as f64)?;
        sheet.write_number(row, 9, p.failed as f64)?;
    }
    let last = points.len() as u32;
    sheet.autofilter(0, 0, last, (TIME_COLUMNS.len() - 1) as u16)?;
    let line_chart = |title: &str, series: &[(&str, u16)]| {
        let mut chart = Chart::new(ChartType::Line);
        chart.title().set_name(title);
        for (name, col) in series {
            chart.add_series().set_name(*name).set_categories(("Over time", 1, 0, last, 0)).set_values((
                "Over time",
                1,
                *col,
                last,
                *col,
            ));
        }
        // Slices as categories in order: a date axis would put a short run's slices on one day.
        chart.x_axis().set_text_axis(true).set_num_format("hh:mm:ss");
        chart.set_width(720).set_height(300);
        chart
    };
    let rate_series: &[(&str, u16)] = if planned { &[("sent /s", 2), ("planned /s", 3)] } else { &[("sent /s", 2)] };
    sheet.insert_chart(1, 11, &line_chart("Requests per second", rate_series))?;
    sheet.insert_chart(17, 11, &line_chart("Latency (ms)", &[("p50", 4), ("p99", 6)]))?;
    Ok(Some(sheet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_results_column_has_a_deliberate_kind() {
        let kinds: Vec<(&str, Kind)> = HEADER.iter().map(|h| (*h, column(h).0)).collect();
        let text: Vec<&str> = kinds.iter().filter(|(_, k)| *k == Kind::Text).map(|(h, _)| *h).collect();
        assert_eq!(text, ["method", "url", "error", "session"], "a new column is text until told otherwise");
    }

    #[test]
    fn csv_times_become_excel_serial_dates_to_the_millisecond() {
        let t = excel_time("1970-01-02 00:00:00.500").unwrap();
        assert!((t.to_excel() - (UNIX_EPOCH_SERIAL + 1.0 + 0.5 / 86_400.0)).abs() < 1e-9);
        assert!(excel_time("yesterday").is_none());
        assert!(excel_time("1800-01-01 00:00:00.000").is_none(), "before Excel's dates: kept as text");
    }
}
