//! The results CSV: one row per request, header first, RFC 4180, UTC times spreadsheets read.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::display::needs_neutralising;
use crate::plan::safety::Redactor;
use crate::results::{COMPARE_HEADER, E2E_COLUMN, EndToEnd, HEADER};
use crate::send::compare::Comparison;
use crate::send::outcome::Outcome;

/// Converts monotonic instants to UTC wall-clock time from one anchor taken at the start, so all
/// times in a run are consistent even if the system clock is adjusted mid-run.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    wall: DateTime<Utc>,
    /// `wall` in µs since the Unix epoch, for [`WallClock::millis`] without date arithmetic.
    wall_us: i64,
}

impl WallClock {
    pub fn now() -> WallClock {
        let wall = Utc::now();
        WallClock { instant: Instant::now(), wall, wall_us: wall.timestamp_micros() }
    }

    /// `t` in milliseconds since the Unix epoch (integer arithmetic: this runs for every request).
    pub fn millis(&self, t: Instant) -> i64 {
        let us = match t.checked_duration_since(self.instant) {
            Some(d) => self.wall_us + d.as_micros() as i64,
            None => self.wall_us - self.instant.duration_since(t).as_micros() as i64,
        };
        us.div_euclid(1000)
    }

    pub fn at(&self, t: Instant) -> DateTime<Utc> {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.wall + d,
            None => self.wall - self.instant.duration_since(t),
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `n` as exactly `width` digits, zero-padded.
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut n = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// A duration in milliseconds with three decimals (microsecond resolution).
fn push_millis(out: &mut Vec<u8>, d: std::time::Duration) {
    let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
    push_u64(out, micros / 1000);
    out.push(b'.');
    push_padded(out, (micros % 1000) as u32, 3);
}

/// `2026-11-21 14:03:07.123`, as [`crate::display::spreadsheet_time`] writes it.
fn push_time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    push_padded(out, t.year().clamp(0, 9999) as u32, 4);
    out.push(b'-');
    push_padded(out, t.month(), 2);
    out.push(b'-');
    push_padded(out, t.day(), 2);
    out.push(b' ');
    push_padded(out, t.hour(), 2);
    out.push(b':');
    push_padded(out, t.minute(), 2);
    out.push(b':');
    push_padded(out, t.second(), 2);
    out.push(b'.');
    push_padded(out, (t.timestamp_subsec_millis()).min(999), 3);
}

/// The results file under the CSV writer. After its first failed write (a full disk) it writes
/// nothing more, so no later flush (buffers dropping at the end) can append a piece of a row
/// past the cut back to the last whole row.
struct ResultsFile {
    file: File,
    failed: Arc<AtomicBool>,
}

impl Write for ResultsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("the results file failed earlier"));
        }
        self.file.write(buf).inspect_err(|_| self.failed.store(true, Ordering::Relaxed))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The columns a results file carries after [`HEADER`]'s: none, `--compare`'s
/// ([`COMPARE_HEADER`]), or an end-to-end Kafka run's ([`E2E_COLUMN`]). A run has at most one
/// kind: `--compare` is refused with a kafka:// target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraColumns {
    None,
    Compare,
    EndToEnd,
}

pub struct CsvSink {
    writer: csv::Writer<BufWriter<ResultsFile>>,
    /// The same file, to cut it back after a failure, and the flag that silences the writer.
    file: File,
    failed: Arc<AtomicBool>,
    clock: WallClock,
    redactor: Redactor,
    scratch: Vec<u8>,
    /// The columns rows carry after [`HEADER`]'s.
    extra: ExtraColumns,
}

impl CsvSink {
    /// Creates (or truncates) the file and writes the header, so an unwritable path fails before
    /// anything is sent.
    /// `extra`: the columns the header and every row carry after [`HEADER`]'s.
    pub fn create(path: &Path, clock: WallClock, redactor: Redactor, extra: ExtraColumns) -> io::Result<CsvSink> {
        // Readable too: after a failure the tail is read back to find the last whole row.
        let file = File::options().read(true).write(true).create(true).truncate(true).open(path)?;
        let failed = Arc::new(AtomicBool::new(false));
        let results = ResultsFile { file: file.try_clone()?, failed: failed.clone() };
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(256 * 1024, results));
        match extra {
            ExtraColumns::None => writer.write_record(HEADER)?,
            ExtraColumns::Compare => writer.write_record(HEADER.iter().chain(&COMPARE_HEADER))?,
            ExtraColumns::EndToEnd => writer.write_record(HEADER.iter().chain([&E2E_COLUMN]))?,
        }
        writer.flush()?;
        Ok(CsvSink { writer, file, failed, clock, redactor, scratch: Vec::with_capacity(256), extra })
    }

    /// After a write error: writes nothing more and cuts the file back to its last whole row, so
    /// a spreadsheet (or `sluice report`) reads every row in it. A row never holds a raw line
    /// break (URLs cannot carry one), so the last `\n` is the end of the last whole row.
    pub fn cut_to_whole_rows(&mut self) -> io::Result<()> {
        self.failed.store(true, Ordering::Relaxed);
        let file = &self.file;
        let len = file.metadata()?.len();
        let mut end = len;
        let mut tail = vec![0u8; 64 * 1024];
        while end > 0 {
            let start = end.saturating_sub(tail.len() as u64);
            let chunk = &mut tail[..(end - start) as usize];
            std::os::unix::fs::FileExt::read_exact_at(file, chunk, start)?;
            if let Some(at) = memchr::memrchr(b'\n', chunk) {
                let whole = start + at as u64 + 1;
                if whole < len {
                    file.set_len(whole)?;
                }
                return Ok(());
            }
            end = start;
        }
        file.set_len(0)
    }

    /// Writes one row. Formatting goes through one reused scratch buffer with hand-written
    /// number and time formatting: chrono's strftime and float formatting were most of the
    /// writer thread's time in profiles.
    pub fn write(&mut self, o: &Outcome) -> io::Result<()> {
        let url = o.url.as_str();
        let masked = self.redactor.url_needs_masking(url).then(|| self.redactor.url(url));
        let url = masked.as_deref().unwrap_or(url);
        let neutralise = needs_neutralising(url);
        let times = [o.log_time, Some(self.clock.at(o.scheduled)), o.sent.map(|t| self.clock.at(t))];
        let scratch = &mut self.scratch;
        let writer = &mut self.writer;
        let mut field = |fill: &dyn Fn(&mut Vec<u8>)| -> io::Result<()> {
            scratch.clear();
            fill(scratch);
            writer.write_field(&scratch[..]).map_err(io::Error::from)
        };
        field(&|b| push_u64(b, o.seq))?;
        field(&|b| push_u64(b, o.log_line))?;
        for t in times {
            field(&|b| {
                if let Some(t) = t {
                    push_time(b, t)
                }
            })?;
        }
        // A request that never left has no send time, lag or latency: the cells stay empty.
        field(&|b| match o.sent.map(|sent| (sent, sent.checked_duration_since(o.scheduled))) {
            Some((_, Some(late))) => push_millis(b, late),
            Some((sent, None)) => {
                b.push(b'-');
                push_millis(b, o.scheduled.duration_since(sent))
            }
            None => {}
        })?;
        // `--allow-methods all` replays any logged token, and `-2+3` is one.
        let method = o.method.as_str();
        let neutralise_method = needs_neutralising(method);
        field(&|b| {
            if neutralise_method {
                b.push(b'\'');
            }
            b.extend_from_slice(method.as_bytes())
        })?;
        field(&|b| {
            if neutralise {
                b.push(b'\'');
            }
            b.extend_from_slice(url.as_bytes())
        })?;
        field(&|b| {
            if let Some(s) = o.orig_status {
                push_u64(b, u64::from(s))
            }
        })?;
        field(&|b| {
            if let Ok(s) = o.result {
                push_u64(b, u64::from(s))
            }
        })?;
        field(&|b| {
            if let Some(sent) = o.sent {
                push_millis(b, o.done.saturating_duration_since(sent))
            }
        })?;
        field(&|b| push_u64(b, o.bytes))?;
        field(&|b| {
            if let Err(kind) = o.result {
                b.extend_from_slice(kind.as_str().as_bytes())
            }
        })?;
        // Both empty outside session mode, and for a request whose line lacked the key.
        field(&|b| {
            if let Some(session) = o.session {
                b.push(b's');
                push_u64(b, session.id)
            }
        })?;
        field(&|b| {
            if let Some(session) = o.session {
                push_u64(b, session.seq)
            }
        })?;
        match self.extra {
            ExtraColumns::None => {}
            ExtraColumns::Compare => write_comparison(&mut field, o.compare.as_deref())?,
            ExtraColumns::EndToEnd => field(&|b| match o.e2e {
                Some(EndToEnd::Seen(us)) => push_millis(b, Duration::from_micros(us)),
                Some(EndToEnd::Lost) => b.extend_from_slice(b"lost"),
                None => {}
            })?,
        }
        writer.write_record(None::<&[u8]>)?;
        Ok(())
    }

    pub fn clock(&self) -> WallClock {
        self.clock
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.file.sync_data().or(Ok(()))
    }
}

/// The `--compare` columns of one row ([`COMPARE_HEADER`]); all empty for a request that got no
/// comparison (never sent, or cut off by the drain timeout).
fn write_comparison(
    field: &mut impl FnMut(&dyn Fn(&mut Vec<u8>)) -> io::Result<()>,
    c: Option<&Comparison>,
) -> io::Result<()> {
    let Some(c) = c else {
        for _ in COMPARE_HEADER {
            field(&|_| {})?;
        }
        return Ok(());
    };
    let flag = |b: &mut Vec<u8>, v: Option<bool>| {
        if let Some(v) = v {
            b.extend_from_slice(if v { b"true" } else { b"false" })
        }
    };
    let digest = |b: &mut Vec<u8>, d: Option<u64>| {
        if let Some(d) = d {
            let _ = write!(b, "{d:016x}");
        }
    };
    field(&|b| {
        if let Ok(s) = c.b.result {
            push_u64(b, u64::from(s))
        }
    })?;
    field(&|b| push_millis(b, c.b.latency))?;
    field(&|b| push_u64(b, c.b.bytes))?;
    field(&|b| {
        if let Err(kind) = c.b.result {
            b.extend_from_slice(kind.as_str().as_bytes())
        }
    })?;
    field(&|b| digest(b, c.a_digest))?;
    field(&|b| digest(b, c.b_digest))?;
    field(&|b| b.extend_from_slice(c.body_form.as_str().as_bytes()))?;
    field(&|b| flag(b, Some(c.same_status)))?;
    field(&|b| flag(b, c.same_body))?;
    field(&|b| {
        if let Some(noise) = c.noise {
            b.extend_from_slice(noise.as_str().as_bytes())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hand_formatting_matches_the_documented_shapes() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        b.push(b',');
        push_u64(&mut b, 18_446_744_073_709_551_615);
        b.push(b',');
        push_millis(&mut b, Duration::from_micros(12_345));
        b.push(b',');
        push_millis(&mut b, Duration::from_micros(7));
        b.push(b',');
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-21T14:03:07.123456Z").unwrap().with_timezone(&Utc);
        push_time(&mut b, t);
        assert_eq!(String::from_utf8(b).unwrap(), "0,18446744073709551615,12.345,0.007,2026-11-21 14:03:07.123");
        assert_eq!(crate::display::spreadsheet_time(t), "2026-11-21 14:03:07.123");
    }
}
