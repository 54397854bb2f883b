//! Reading results CSVs back, one row at a time: the header is checked once and mapped by name,
//! every row is parsed into a borrowed [`Row`] without allocating, and a bad row is an error value
//! with its line number (which is also its row number in a spreadsheet: the header is row 1).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use chrono::NaiveDate;
use csv::ByteRecord;

use crate::results::{
    Answer, COMPARE_HEADER, E2E_COLUMN, EndToEnd, HEADER, NOT_SENT, OPTIONAL, Row, SKIPPED_LATE, SessionTag,
};

/// A file that cannot be read as a sluice results CSV at all (missing, empty, wrong header).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct FileError {
    pub file: String,
    pub reason: String,
}

/// One row that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct RowError {
    pub file: String,
    /// The line the row starts on (1 is the header), as editors and spreadsheets number rows.
    pub line: u64,
    pub reason: String,
    /// Fewer fields than the header: a row cut off mid-write (as a killed run leaves its last).
    #[serde(skip)]
    pub too_few_fields: bool,
}

/// Where each column is in this file's rows ([`ABSENT`] for an optional column the file does
/// not have), and how many columns its header has.
#[derive(Debug, Clone, Copy)]
struct Columns {
    at: [usize; HEADER.len()],
    /// Where [`E2E_COLUMN`] is, in an end-to-end Kafka run's file.
    e2e: Option<usize>,
    width: usize,
    /// A `--compare` run's `b_status` and `b_latency_ms` ([`ABSENT`] in other files).
    b_status: usize,
    b_latency: usize,
}

const ABSENT: usize = usize::MAX;

const SEQ: usize = 0;
const SCHEDULED_AT: usize = 3;
const SENT_AT: usize = 4;
const LAG_MS: usize = 5;
const METHOD: usize = 6;
const URL: usize = 7;
const ORIG_STATUS: usize = 8;
const STATUS: usize = 9;
const LATENCY_MS: usize = 10;
const BYTES: usize = 11;
const ERROR: usize = 12;
const SESSION: usize = 13;
const SESSION_SEQ: usize = 14;

/// A results CSV being read. Not an `Iterator`: each [`Row`] borrows the reader's buffer.
pub struct RowReader {
    name: String,
    reader: csv::Reader<Box<dyn Read>>,
    columns: Columns,
    record: ByteRecord,
    last_line: u64,
}

impl RowReader {
    /// Opens a file (`-` is standard input) and checks its header.
    pub fn open(path: &Path) -> Result<RowReader, FileError> {
        let name = path.display().to_string();
        let input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            let file = File::open(path).map_err(|e| FileError { file: name.clone(), reason: e.to_string() })?;
            Box::new(BufReader::with_capacity(256 * 1024, file))
        };
        RowReader::from_reader(name, input)
    }

    pub fn from_reader(name: impl Into<String>, input: Box<dyn Read>) -> Result<RowReader, FileError> {
        let name = name.into();
        // Flexible: a row with the wrong number of fields is reported by us, with its line.
        let mut reader = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(input);
        let header = reader.byte_headers().map_err(|e| FileError { file: name.clone(), reason: e.to_string() })?;
        let columns = map_columns(header).map_err(|reason| FileError { file: name.clone(), reason })?;
        Ok(RowReader { name, reader, columns, record: ByteRecord::new(), last_line: 1 })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next row: `None` at the end of the file, `Some(Err)` for a row that cannot be used
    /// (reading goes on after it), and an `Err` of the file for an I/O error.
    pub fn next_row(&mut self) -> Result<Option<Result<Row<'_>, RowError>>, FileError> {
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| FileError { file: self.name.clone(), reason: format!("line {}: {e}", self.last_line + 1) })?;
        if !more {
            return Ok(None);
        }
        let line = self.record.position().map_or(self.last_line + 1, |p| p.line());
        self.last_line = line;
        let too_few_fields = self.record.len() < self.columns.width;
        Ok(Some(parse_row(&self.record, self.columns).map_err(|reason| RowError {
            file: self.name.clone(),
            line,
            reason,
            too_few_fields,
        })))
    }

    /// In a `--compare` run, the baseline target's latency of the row just read, µs, when it answered
    /// (latency is of answers only, as for the target); `None` in other files.
    pub fn b_latency_us(&self) -> Option<u64> {
        let (status, latency) = (self.columns.b_status, self.columns.b_latency);
        if status == ABSENT || latency == ABSENT || self.record.get(status).is_none_or(<[u8]>::is_empty) {
            return None;
        }
        let text = std::str::from_utf8(self.record.get(latency)?).ok()?;
        millis_as_micros(text, "b_latency_ms").ok().and_then(|us| u64::try_from(us).ok())
    }

    /// Whether the file has an `e2e_ms` column (a Kafka run with `--consume`).
    pub fn has_end_to_end_column(&self) -> bool {
        self.columns.e2e.is_some()
    }

    /// Whether the file has no more rows (reads ahead one record; used to tell a cut-off last row).
    pub fn at_end(&mut self) -> bool {
        !matches!(self.reader.read_byte_record(&mut self.record), Ok(true))
    }

    /// The line of the last row read, to tell whether a bad row was the last one.
    pub fn last_line(&self) -> u64 {
        self.last_line
    }
}

/// The header must name exactly the documented columns, in any order; the session columns may
/// be missing (files written before they existed).
fn map_columns(header: &ByteRecord) -> Result<Columns, String> {
    let expected = HEADER.join(",");
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(format!("empty: no header (expected {expected})"));
    }
    let names: Vec<String> = header.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
    let mut columns = [ABSENT; HEADER.len()];
    let (mut b_status, mut b_latency) = (ABSENT, ABSENT);
    let mut extra = Vec::new();
    let mut e2e = None;
    for (at, name) in names.iter().enumerate() {
        if name == E2E_COLUMN && e2e.is_none() {
            e2e = Some(at);
            continue;
        }
        match HEADER.iter().position(|h| h == name) {
            Some(i) if columns[i] == ABSENT => columns[i] = at,
            Some(_) => extra.push(format!("{name} (again)")),
            // A --compare run's columns: read by `analysis::compare`, not here, but for the baseline
            // target's latency (see `RowReader::b_latency_us`).
            None if name.as_str() == "b_status" => b_status = at,
            None if name.as_str() == "b_latency_ms" => b_latency = at,
            None if COMPARE_HEADER.contains(&name.as_str()) => {}
            None => extra.push(name.clone()),
        }
    }
    let missing: Vec<&str> =
        HEADER.iter().zip(columns).filter(|(h, at)| *at == ABSENT && !OPTIONAL.contains(h)).map(|(h, _)| *h).collect();
    match (missing.is_empty(), extra.is_empty()) {
        (true, true) => Ok(Columns { at: columns, e2e, width: names.len(), b_status, b_latency }),
        (false, true) => Err(format!("header: missing column(s) {}; expected {expected}", missing.join(", "))),
        (true, false) => Err(format!("header: unexpected column(s) {}; expected {expected}", extra.join(", "))),
        (false, false) => Err(format!(
            "header: missing column(s) {}, unexpected column(s) {}; expected {expected}",
            missing.join(", "),
            extra.join(", ")
        )),
    }
}

fn parse_row(record: &ByteRecord, columns: Columns) -> Result<Row<'_>, String> {
    if record.len() != columns.width {
        return Err(format!("{} fields, expected {}", record.len(), columns.width));
    }
    let field = |i: usize| -> Result<&str, String> {
        match columns.at[i] {
            ABSENT => Ok(""),
            at => std::str::from_utf8(&record[at]).map_err(|_| format!("{}: not UTF-8", HEADER[i])),
        }
    };
    let answer = match (replayed_status(field(STATUS)?)?, field(ERROR)?) {
        (Some(status), _) => Answer::Status(status),
        (None, "") => return Err("neither a status nor an error".into()),
        (None, kind) => Answer::Error(kind),
    };
    let scheduled_ms = time_ms(field(SCHEDULED_AT)?, "scheduled_at")?;
    // A request that never left has no send time, lag or latency.
    let not_sent = answer == Answer::Error(NOT_SENT) || answer == Answer::Error(SKIPPED_LATE);
    let unless_not_sent = |column: usize| -> Result<Option<&str>, String> {
        let text = field(column)?;
        Ok(if not_sent && text.is_empty() { None } else { Some(text) })
    };
    Ok(Row {
        seq: integer(field(SEQ)?, "seq")?,
        scheduled_ms,
        sent_ms: unless_not_sent(SENT_AT)?.map_or(Ok(scheduled_ms), |t| time_ms(t, "sent_at"))?,
        lag_us: unless_not_sent(LAG_MS)?.map_or(Ok(0), |t| millis_as_micros(t, "lag_ms"))?,
        method: field(METHOD)?,
        url: unneutralised(field(URL)?),
        orig_status: optional_status(field(ORIG_STATUS)?, "orig_status")?,
        answer,
        latency_us: unless_not_sent(LATENCY_MS)?
            .map_or(Ok(0), |t| millis_as_micros(t, "latency_ms").and_then(|v| non_negative(v, "latency_ms")))?,
        bytes: integer(field(BYTES)?, "bytes")?,
        session: session(field(SESSION)?, field(SESSION_SEQ)?)?,
        e2e: match columns.e2e.map(|at| std::str::from_utf8(&record[at])) {
            None | Some(Ok("")) => None,
            Some(Ok("lost")) => Some(EndToEnd::Lost),
            Some(Ok(ms)) => Some(EndToEnd::Seen(non_negative(millis_as_micros(ms, E2E_COLUMN)?, E2E_COLUMN)?)),
            Some(Err(_)) => return Err(format!("{E2E_COLUMN}: not UTF-8")),
        },
    })
}

/// The `session` and `session_seq` cells: both empty, or `s17` and a whole number.
fn session(id: &str, seq: &str) -> Result<Option<SessionTag>, String> {
    match (id, seq) {
        ("", "") => Ok(None),
        (id, seq) => Ok(Some(SessionTag {
            id: SessionTag::parse_id(id).ok_or_else(|| format!("session: '{id}' is not a session id like s17"))?,
            seq: integer(seq, "session_seq")?,
        })),
    }
}

/// Strips the one `'` the writer adds to cells a spreadsheet would run as a formula.
pub fn unneutralised(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if crate::display::needs_neutralising(rest) => rest,
        _ => cell,
    }
}

fn integer(text: &str, column: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("{column}: '{text}' is not a whole number"))
}

/// The `status` cell: an HTTP status, or `0` for an acknowledged Kafka message (Kafka's error
/// code for none; see [`crate::send::kafka`]).
fn replayed_status(text: &str) -> Result<Option<u16>, String> {
    match text {
        "0" => Ok(Some(0)),
        _ => optional_status(text, "status"),
    }
}

fn optional_status(text: &str, column: &str) -> Result<Option<u16>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u16>() {
        Ok(code) if (100..=999).contains(&code) => Ok(Some(code)),
        _ => Err(format!("{column}: '{text}' is not an HTTP status")),
    }
}

/// `2.542` (milliseconds, as written) → 2542 µs.
fn millis_as_micros(text: &str, column: &str) -> Result<i64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms.abs() < 1e12 => Ok((ms * 1e3).round() as i64),
        _ => Err(format!("{column}: '{text}' is not a number of milliseconds")),
    }
}

fn non_negative(us: i64, column: &str) -> Result<u64, String> {
    u64::try_from(us).map_err(|_| format!("{column}: negative"))
}

/// `2026-11-21 14:03:07.123` (UTC, as the writer formats it) → milliseconds since the epoch.
/// A hand-written reader: at ten million rows, a general format parser costs seconds.
pub fn time_ms(text: &str, column: &str) -> Result<i64, String> {
    parse_time_ms(text).ok_or_else(|| format!("{column}: '{text}' is not a time like 2026-11-21 14:03:07.123"))
}

fn parse_time_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[r];
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let millis = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 && frac.iter().all(u8::is_ascii_digit) => {
            let digits = std::str::from_utf8(frac).ok()?;
            let scaled: u64 = digits.parse().ok()?;
            (scaled * 1000 / 10u64.pow(frac.len() as u32)) as i64
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let t = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(t.and_utc().timestamp() * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(text: &str) -> Result<RowReader, FileError> {
        RowReader::from_reader("t.csv", Box::new(io::Cursor::new(text.as_bytes().to_vec())))
    }

    const HEAD: &str =
        "seq,log_line,log_time,scheduled_at,sent_at,lag_ms,method,url,orig_status,status,latency_ms,bytes,error\n";

    #[test]
    fn a_row_reads_back_as_written() {
        let mut r = reader(&format!(
            "{HEAD}7,8,2026-11-20 08:00:00.000,2026-11-21 22:24:06.521,2026-11-21 22:24:06.523,-0.151,GET,'-x,200,,2.542,3,timeout\n"
        ))
        .unwrap();
        let row = r.next_row().unwrap().unwrap().unwrap();
        assert_eq!(row.seq, 7);
        assert_eq!(row.sent_ms - row.scheduled_ms, 2);
        assert_eq!(row.lag_us, -151);
        assert_eq!(row.url, "-x");
        assert_eq!(row.orig_status, Some(200));
        assert_eq!(row.answer, Answer::Error("timeout"));
        assert_eq!(row.latency_us, 2542);
        assert_eq!(row.latency_from_schedule_us(), 2391);
        assert!(r.next_row().unwrap().is_none());
    }

    #[test]
    fn a_kafka_row_reads_back_acknowledged_and_with_its_end_to_end_cell() {
        let with = HEAD.replace("error\n", "error,session,session_seq,e2e_ms\n");
        let row = "1,2,,2026-11-21 22:24:06.521,2026-11-21 22:24:06.521,0.1,PRODUCE,kafka://b:9092/t/0,200";
        let mut r = reader(&format!(
            "{with}{row},0,1.0,3,,,,310.25\n{row},0,1.0,3,,,,lost\n{row},,1.0,0,kafka:timeout,,,\n{row},0,1.0,3,,,,-1\n"
        ))
        .unwrap();
        let seen = r.next_row().unwrap().unwrap().unwrap();
        assert_eq!((seen.answer, seen.e2e), (Answer::Status(0), Some(EndToEnd::Seen(310_250))));
        assert_eq!(r.next_row().unwrap().unwrap().unwrap().e2e, Some(EndToEnd::Lost));
        let failed = r.next_row().unwrap().unwrap().unwrap();
        assert_eq!((failed.answer, failed.e2e), (Answer::Error("kafka:timeout"), None));
        assert_eq!(r.next_row().unwrap().unwrap().unwrap_err().to_string(), "t.csv:5: e2e_ms: negative");
        // HTTP files have no such column, and `0` is still no HTTP status in `orig_status`.
        let mut http = reader(&format!("{HEAD}{}\n", row.replace(",200", ",0") + ",200,1.0,3,")).unwrap();
        assert!(http.next_row().unwrap().unwrap().is_err());
    }

    #[test]
    fn session_columns_read_back_and_files_without_them_still_read() {
        let with = HEAD.replace("error\n", "error,session,session_seq\n");
        let row = "1,2,,2026-11-21 22:24:06.521,2026-11-21 22:24:06.521,0.1,GET,/a,200,200,1.0,3,";
        let mut r = reader(&format!("{with}{row},s17,2\n{row},,\n{row},17,2\n")).unwrap();
        assert_eq!(r.next_row().unwrap().unwrap().unwrap().session, Some(SessionTag { id: 17, seq: 2 }));
        assert_eq!(r.next_row().unwrap().unwrap().unwrap().session, None);
        let err = r.next_row().unwrap().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "t.csv:4: session: '17' is not a session id like s17");
        let mut old = reader(&format!("{HEAD}{row}\n")).unwrap();
        assert_eq!(old.next_row().unwrap().unwrap().unwrap().session, None);
    }

    #[test]
    fn a_compare_runs_b_latency_reads_back_where_b_answered() {
        let head = HEAD.replace("error\n", &format!("error,{}\n", COMPARE_HEADER.join(",")));
        let row = "1,2,,2026-11-21 22:24:06.521,2026-11-21 22:24:06.521,0.1,GET,/a,200,200,1.0,3,";
        let mut r = reader(&format!(
            "{head}{row},200,7.25,3,,d,d,bytes,true,true,\n{row},,1000.0,0,timeout,d,,bytes,false,,\n"
        ))
        .unwrap();
        assert!(r.next_row().unwrap().unwrap().is_ok());
        assert_eq!(r.b_latency_us(), Some(7250));
        assert!(r.next_row().unwrap().unwrap().is_ok());
        assert_eq!(r.b_latency_us(), None, "B timed out: no latency");
        let mut plain = reader(&format!("{HEAD}{row}\n")).unwrap();
        assert!(plain.next_row().unwrap().unwrap().is_ok());
        assert_eq!(plain.b_latency_us(), None);
    }

    #[test]
    fn times_are_utc_milliseconds() {
        assert_eq!(parse_time_ms("1970-01-01 00:00:01.500"), Some(1500));
        assert_eq!(parse_time_ms("2026-11-21 14:03:07"), Some(1_795_269_787_000));
        for bad in ["2026-11-21T14:03:07.123", "2026-13-21 14:03:07.123", "2026-11-21 14:03:0", "yesterday", ""] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_header_with_missing_or_extra_columns_is_refused_by_name() {
        let err = reader("seq,log_line\n").err().unwrap();
        assert!(err.to_string().contains("missing column(s) log_time, scheduled_at"), "{err}");
        let err = reader(&HEAD.replace("error\n", "error,extra\n")).err().unwrap();
        assert!(err.to_string().contains("unexpected column(s) extra"), "{err}");
        assert!(reader("").err().unwrap().to_string().contains("empty"));
    }

    #[test]
    fn bad_rows_name_their_line_and_column() {
        let mut r = reader(&format!(
            "{HEAD}1,2,,2026-11-21 22:24:06.521,2026-11-21 22:24:06.521,0.1,GET,/a,200,200,fast,3,\n1,2,3\n"
        ))
        .unwrap();
        let err = r.next_row().unwrap().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "t.csv:2: latency_ms: 'fast' is not a number of milliseconds");
        let err = r.next_row().unwrap().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "t.csv:3: 3 fields, expected 13");
    }
}
