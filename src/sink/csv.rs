//! The results CSV: one row per request, header first, RFC 4180, UTC times spreadsheets read.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::display::{needs_neutralising, spreadsheet_time};
use crate::replay::Outcome;
use crate::safety::Redactor;

pub const HEADER: [&str; 13] = [
    "seq",
    "log_line",
    "log_time",
    "scheduled_at",
    "sent_at",
    "lag_ms",
    "method",
    "url",
    "orig_status",
    "status",
    "latency_ms",
    "bytes",
    "error",
];

/// Converts monotonic instants to UTC wall-clock time from one anchor taken at the start, so all
/// times in a run are consistent even if the system clock is adjusted mid-run.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl WallClock {
    pub fn now() -> WallClock {
        WallClock { instant: Instant::now(), wall: Utc::now() }
    }

    pub fn at(&self, t: Instant) -> DateTime<Utc> {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.wall + d,
            None => self.wall - self.instant.duration_since(t),
        }
    }
}

fn millis(d: f64) -> String {
    format!("{d:.3}")
}

pub struct CsvSink {
    writer: csv::Writer<BufWriter<File>>,
    clock: WallClock,
    redactor: Redactor,
}

impl CsvSink {
    /// Creates (or truncates) the file and writes the header, so an unwritable path fails before
    /// anything is sent.
    pub fn create(path: &Path, clock: WallClock, redactor: Redactor) -> io::Result<CsvSink> {
        let file = File::create(path)?;
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(256 * 1024, file));
        writer.write_record(HEADER)?;
        writer.flush()?;
        Ok(CsvSink { writer, clock, redactor })
    }

    pub fn write(&mut self, o: &Outcome) -> io::Result<()> {
        let lag_ms = match o.sent.checked_duration_since(o.scheduled) {
            Some(late) => late.as_secs_f64() * 1e3,
            None => -(o.scheduled.duration_since(o.sent).as_secs_f64() * 1e3),
        };
        let url = o.url.as_str();
        let url = if self.redactor.url_needs_masking(url) { self.redactor.url(url) } else { url.to_string() };
        let url_cell = if needs_neutralising(&url) { format!("'{url}") } else { url };
        let (status, error) = match o.result {
            Ok(s) => (s.to_string(), ""),
            Err(kind) => (String::new(), kind.as_str()),
        };
        self.writer.write_record([
            o.seq.to_string().as_str(),
            o.log_line.to_string().as_str(),
            o.log_time.map(spreadsheet_time).unwrap_or_default().as_str(),
            spreadsheet_time(self.clock.at(o.scheduled)).as_str(),
            spreadsheet_time(self.clock.at(o.sent)).as_str(),
            millis(lag_ms).as_str(),
            o.method.as_str(),
            url_cell.as_str(),
            o.orig_status.map(|s| s.to_string()).unwrap_or_default().as_str(),
            status.as_str(),
            millis(o.done.saturating_duration_since(o.sent).as_secs_f64() * 1e3).as_str(),
            o.bytes.to_string().as_str(),
            error,
        ])?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().get_ref().sync_data().or(Ok(()))
    }
}
