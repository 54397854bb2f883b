//! Log input: files in order, gzip transparently, `-` for stdin, line numbers per file.
//!
//! The reader hands out one line at a time from a reused buffer, so memory stays flat for any log
//! size. Gzip is recognised by its magic bytes, not the file name, and concatenated members (what
//! logrotate's `delaycompress` + `cat` produce) are read through.
//!
//! Memory is bounded by the longest line the reader keeps, not by the input: a line longer than
//! the limit (`--max-line-bytes`) is skipped while it streams past and handed out as
//! [`LineTooLong`], so a gzip bomb of one endless line, a file of NULs or a CR-only log cost no
//! more than one limit's worth of buffer. An input that stops early (a `.gz` cut while a log was
//! rotated, a read error) keeps the lines read before the cut; the cut is recorded as an
//! [`InputCut`] and the reader goes on with the next input.

pub mod har;
pub mod sniff;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sluice_parsers::{Entry, Format, LineError};

/// Large enough that reading stays far below parsing cost (the page cache delivers GB/s).
const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Longest line kept by default. Access-log lines are a few hundred bytes; one with a large
/// logged body or cookie header still fits.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// The most `--max-line-bytes` may be: a line is held whole once it is read, and the first lines
/// are read ahead to sniff the format.
pub const MAX_LINE_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// The least `--max-line-bytes` may be: shorter than a plain access-log line would reject most logs.
pub const MIN_LINE_BYTES_LIMIT: usize = 1024;
/// Lines read ahead to sniff the format stop at this many bytes, whatever the line limit.
const PREFETCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{name}: {reason}")]
    Open { name: String, reason: String },
    #[error("{name}: read failed at line {line}: {source}")]
    Read {
        name: String,
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("{name}: the input is empty")]
    Empty { name: String },
    /// A HAR that cannot be read: not JSON, not shaped like a HAR, an entry too long.
    #[error("{name}: {message}")]
    Har { name: String, message: String },
}

/// Where log lines come from: a path, or `-` for standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn from_arg(arg: &Path) -> Input {
        if arg.as_os_str() == "-" { Input::Stdin } else { Input::File(arg.to_path_buf()) }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "stdin".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Checks a file can be opened before any work starts, so a typo fails fast with exit 2.
    pub fn check(&self) -> Result<(), SourceError> {
        let Input::File(path) = self else { return Ok(()) };
        let open_err = |reason: String| SourceError::Open { name: self.name(), reason };
        let meta = std::fs::metadata(path).map_err(|e| open_err(describe_io(&e)))?;
        if meta.is_dir() {
            return Err(open_err("is a directory, not a log file".into()));
        }
        File::open(path).map_err(|e| open_err(describe_io(&e)))?;
        Ok(())
    }

    fn open(&self) -> Result<Box<dyn BufRead + Send>, SourceError> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(path) => Box::new(
                File::open(path).map_err(|e| SourceError::Open { name: self.name(), reason: describe_io(&e) })?,
            ),
        };
        let mut buffered = BufReader::with_capacity(READ_BUFFER, raw);
        let head = buffered.fill_buf().map_err(|e| SourceError::Read { name: self.name(), line: 0, source: e })?;
        if head.starts_with(&GZIP_MAGIC) {
            let gz = MultiGzDecoder::new(buffered);
            Ok(Box::new(BufReader::with_capacity(READ_BUFFER, gz)))
        } else {
            Ok(Box::new(buffered))
        }
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// One physical line of a log, without its line ending.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Index into the reader's inputs (see [`LogReader::input_name`]).
    pub input: usize,
    /// 1-based line number within its own file.
    pub number: u64,
    /// The line, or why it was not kept.
    pub bytes: Result<&'a [u8], LineTooLong>,
}

impl<'a> Line<'a> {
    /// The line as an entry of `format`, or why it is a bad line.
    pub fn parse(&self, format: &'a Format) -> Result<Entry<'a>, BadLine> {
        Ok(format.parse_line(self.bytes?)?)
    }
}

/// A line longer than the reader's limit: skipped as it streamed past, never held whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {limit} bytes")]
pub struct LineTooLong {
    pub limit: usize,
}

/// Why a line is not an entry: too long to keep, or not in the log's format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadLine {
    #[error(transparent)]
    TooLong(#[from] LineTooLong),
    #[error(transparent)]
    Format(#[from] LineError),
    #[error(transparent)]
    Har(#[from] har::BadEntry),
}

impl BadLine {
    /// Short stable key, for counting bad lines by reason (the parsers' kinds, and this one).
    pub fn kind(&self) -> &'static str {
        match self {
            BadLine::TooLong(_) => "line_too_long",
            BadLine::Format(e) => e.reason.kind(),
            BadLine::Har(e) => e.kind(),
        }
    }
}

/// Where an input stopped before its end: the lines before `line` were read, the rest of that
/// input was not. Typically a `.gz` copied while logrotate was still writing it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputCut {
    pub file: String,
    /// The first line that could not be read whole (1-based); a partial line there is dropped.
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for InputCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: input cut short ({}); the lines before it were read", self.file, self.line, self.reason)
    }
}

/// The entries of the inputs, whatever form they take: lines of a log format, or HAR documents.
/// What the reader thread and `sluice parse` read, one entry at a time.
pub enum EntryReader {
    Lines { reader: LogReader, format: Format },
    Har(har::HarReader),
}

/// One entry, or why its line (or HAR entry) is bad, and where it is.
pub struct SourceEntry<'a> {
    /// Index into the inputs (see [`EntryReader::input_names`]).
    pub input: usize,
    /// The line number in its file, or the entry's number in a HAR's `log.entries` (from 1).
    pub number: u64,
    pub entry: Result<Entry<'a>, BadLine>,
    /// The line as read, for a line-based log (a Kafka message's value, `--kafka-value line`).
    pub line: Option<&'a [u8]>,
}

impl EntryReader {
    /// The next entry, or `None` after the last one of the last input.
    pub fn next_entry(&mut self) -> Result<Option<SourceEntry<'_>>, SourceError> {
        match self {
            EntryReader::Lines { reader, format } => Ok(reader.next_line()?.map(|line| SourceEntry {
                input: line.input,
                number: line.number,
                entry: line.parse(format),
                line: line.bytes.ok(),
            })),
            EntryReader::Har(har) => har.next_entry(),
        }
    }

    /// The format's name, as the summary shows it.
    pub fn format_name(&self) -> &str {
        match self {
            EntryReader::Lines { format, .. } => format.name(),
            EntryReader::Har(_) => "har",
        }
    }

    pub fn input_names(&self) -> Vec<String> {
        match self {
            EntryReader::Lines { reader, .. } => reader.input_names(),
            EntryReader::Har(har) => har.input_names(),
        }
    }

    /// Inputs that stopped before their end (first pass only), in the order met.
    pub fn cuts(&self) -> &[InputCut] {
        match self {
            EntryReader::Lines { reader, .. } => reader.cuts(),
            EntryReader::Har(har) => har.cuts(),
        }
    }

    /// Bytes read so far (decompressed), over all passes.
    pub fn bytes_read(&self) -> u64 {
        match self {
            EntryReader::Lines { reader, .. } => reader.bytes_read(),
            EntryReader::Har(har) => har.bytes_read(),
        }
    }

    pub fn can_rewind(&self) -> bool {
        match self {
            EntryReader::Lines { reader, .. } => reader.can_rewind(),
            EntryReader::Har(har) => har.can_rewind(),
        }
    }

    /// Starts again at the first entry of the first input (for looping replays).
    pub fn rewind(&mut self) {
        match self {
            EntryReader::Lines { reader, .. } => reader.rewind(),
            EntryReader::Har(har) => har.rewind(),
        }
    }

    /// The virtual hosts the first `n` entries were served for (`$host`, `%v`, a HAR's URLs),
    /// read ahead without consuming them: to refuse replaying a log against the host that served it.
    pub fn logged_hosts(&mut self, n: usize) -> Result<Vec<String>, SourceError> {
        match self {
            EntryReader::Lines { reader, format } => {
                let sample = reader.prefetch(n)?;
                let hosts = sample.iter().filter_map(|line| format.parse_line(line).ok()?.vhost);
                Ok(hosts.map(|v| String::from_utf8_lossy(&v).into_owned()).collect())
            }
            EntryReader::Har(har) => har.prefetch(n),
        }
    }
}

/// Reads lines from the inputs in order.
pub struct LogReader {
    inputs: Vec<Input>,
    names: Vec<String>,
    current: usize,
    reader: Option<Box<dyn BufRead + Send>>,
    line_number: u64,
    bytes_in_input: u64,
    total_bytes: u64,
    /// A line that straddles the end of the read buffer, assembled here; never more than
    /// `max_line + 1` bytes.
    buf: Vec<u8>,
    /// Bytes of the reader's buffer handed out as the last line, released on the next read.
    consumed: usize,
    /// Lines read ahead by [`LogReader::prefetch`], handed out again before anything new.
    pending: VecDeque<(usize, u64, Result<Vec<u8>, LineTooLong>)>,
    max_line: usize,
    /// Inputs that stopped early, as found on the first pass.
    cuts: Vec<InputCut>,
    rewound: bool,
}

impl LogReader {
    /// Checks every input up front; nothing is read yet.
    pub fn new(inputs: Vec<Input>) -> Result<LogReader, SourceError> {
        for input in &inputs {
            input.check()?;
        }
        let names = inputs.iter().map(Input::name).collect();
        Ok(LogReader {
            inputs,
            names,
            current: 0,
            reader: None,
            line_number: 0,
            bytes_in_input: 0,
            total_bytes: 0,
            buf: Vec::with_capacity(4096),
            consumed: 0,
            pending: VecDeque::new(),
            max_line: DEFAULT_MAX_LINE_BYTES,
            cuts: Vec::new(),
            rewound: false,
        })
    }

    /// Lines longer than `limit` bytes (without the line ending) are skipped and handed out as
    /// [`LineTooLong`]. Callers validate `limit` (see [`MAX_LINE_BYTES_LIMIT`]).
    pub fn with_max_line_bytes(mut self, limit: usize) -> LogReader {
        self.max_line = limit;
        self
    }

    /// Inputs that stopped before their end (first pass only), in the order met.
    pub fn cuts(&self) -> &[InputCut] {
        &self.cuts
    }

    pub fn input_name(&self, input: usize) -> &str {
        &self.names[input]
    }

    /// Every input's name, by index (to name lines while the reader is busy).
    pub fn input_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Bytes read so far (decompressed), over all passes.
    pub fn bytes_read(&self) -> u64 {
        self.total_bytes
    }

    /// True when the inputs can be read again from the start (stdin cannot).
    pub fn can_rewind(&self) -> bool {
        !self.inputs.contains(&Input::Stdin)
    }

    /// Starts again at the first line of the first input (for looping replays).
    pub fn rewind(&mut self) {
        self.current = 0;
        self.reader = None;
        self.line_number = 0;
        self.bytes_in_input = 0;
        self.consumed = 0;
        self.pending.clear();
        self.rewound = true;
    }

    /// The first bytes of the first input (decompressed), without consuming them: enough to tell
    /// a whole-document format (a HAR) from log lines. Only before the first line is read;
    /// empty when nothing can be read yet.
    pub fn head(&mut self) -> Result<&[u8], SourceError> {
        if self.current != 0 || self.line_number != 0 || !self.pending.is_empty() || self.inputs.is_empty() {
            return Ok(&[]);
        }
        if self.reader.is_none() {
            self.reader = Some(self.inputs[0].open()?);
        }
        // A read error here (a `.gz` cut in its first block) is met again by the first line read,
        // which reports it as a cut input: it is not this look's to report.
        Ok(self.reader.as_mut().expect("opened above").fill_buf().unwrap_or_default())
    }

    /// Reads up to `n` lines ahead (to sniff the format) without consuming them: `next_line`
    /// returns them again first. Lines too long to keep are not in the sample.
    pub fn prefetch(&mut self, n: usize) -> Result<Vec<&[u8]>, SourceError> {
        let mut held: usize = self.pending.iter().map(|(_, _, b)| b.as_ref().map_or(0, Vec::len)).sum();
        while self.pending.len() < n && held < PREFETCH_BYTES {
            let Some(line) = self.read_line()? else { break };
            let owned = (line.input, line.number, line.bytes.map(<[u8]>::to_vec));
            held += owned.2.as_ref().map_or(0, Vec::len);
            self.pending.push_back(owned);
        }
        Ok(self.pending.iter().filter_map(|(_, _, bytes)| bytes.as_deref().ok()).collect())
    }

    /// The next line, or `None` after the last line of the last input.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, SourceError> {
        if let Some((input, number, bytes)) = self.pending.pop_front() {
            let bytes = match bytes {
                Ok(bytes) => {
                    self.buf = bytes;
                    Ok(self.buf.as_slice())
                }
                Err(too_long) => Err(too_long),
            };
            return Ok(Some(Line { input, number, bytes }));
        }
        self.read_line()
    }

    /// Most lines are handed out as a slice of the reader's own buffer (no copy); only a line
    /// that straddles the end of the buffer is assembled in `buf`, and only up to the limit.
    fn read_line(&mut self) -> Result<Option<Line<'_>>, SourceError> {
        loop {
            if self.current >= self.inputs.len() {
                return Ok(None);
            }
            if self.reader.is_none() {
                self.reader = Some(self.inputs[self.current].open()?);
                self.line_number = 0;
                self.bytes_in_input = 0;
                self.consumed = 0;
            }
            let fill = {
                let reader = self.reader.as_mut().expect("opened above");
                // The previous line was a slice of the buffer: release it now that the caller is done.
                reader.consume(std::mem::take(&mut self.consumed));
                reader.fill_buf().map(|available| (available.len(), memchr::memchr(b'\n', available)))
            };
            let (filled, newline) = match fill {
                Ok(found) => found,
                Err(error) => {
                    self.cut_short(self.line_number + 1, &error);
                    continue;
                }
            };
            if filled == 0 {
                if self.bytes_in_input == 0 {
                    return Err(SourceError::Empty { name: self.names[self.current].clone() });
                }
                self.next_input();
                continue;
            }
            self.line_number += 1;
            let (input, number) = (self.current, self.line_number);
            // A line with its `\r` may be one byte over the limit; `read_long_line` decides those.
            let line = match newline.filter(|&end| end <= self.max_line) {
                Some(end) => {
                    self.consumed = end + 1;
                    self.bytes_in_input += end as u64 + 1;
                    self.total_bytes += end as u64 + 1;
                    // Already buffered: this returns the same bytes without reading.
                    let reader = self.reader.as_mut().expect("opened above");
                    let available = reader.fill_buf().unwrap_or_default();
                    Ok(&available[..end])
                }
                None => match self.read_long_line() {
                    Ok(true) => Ok(self.buf.as_slice()),
                    Ok(false) => Err(LineTooLong { limit: self.max_line }),
                    Err(error) => {
                        self.cut_short(number, &error);
                        continue;
                    }
                },
            };
            let line = line.map(|l| l.strip_suffix(b"\r").unwrap_or(l));
            return Ok(Some(Line { input, number, bytes: line }));
        }
    }

    /// Reads the line at the reader's position up to its newline (or the end of the input): into
    /// `buf` while it is within the limit, past it without keeping anything. True if it fits.
    fn read_long_line(&mut self) -> io::Result<bool> {
        let reader = self.reader.as_mut().expect("opened by read_line");
        // One byte more than the limit, for a `\r` before the newline.
        let keep = self.max_line + 1;
        self.buf.clear();
        let mut fits = true;
        loop {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                break; // the last line of an input without a final newline
            }
            let newline = memchr::memchr(b'\n', available);
            let content = newline.unwrap_or(available.len());
            if fits && self.buf.len() + content <= keep {
                self.buf.extend_from_slice(&available[..content]);
            } else {
                fits = false;
            }
            let used = content + usize::from(newline.is_some());
            reader.consume(used);
            self.bytes_in_input += used as u64;
            self.total_bytes += used as u64;
            if newline.is_some() {
                break;
            }
        }
        Ok(fits && self.buf.strip_suffix(b"\r").unwrap_or(&self.buf).len() <= self.max_line)
    }

    /// The current input failed at `line`: keep what was read before it, note the cut (once, on
    /// the first pass) and go on with the next input.
    fn cut_short(&mut self, line: u64, error: &io::Error) {
        if !self.rewound {
            let reason = match error.kind() {
                io::ErrorKind::UnexpectedEof => "the data ends before the end of the gzip stream".to_string(),
                _ => error.to_string(),
            };
            self.cuts.push(InputCut { file: self.names[self.current].clone(), line, reason });
        }
        self.next_input();
    }

    fn next_input(&mut self) {
        self.reader = None;
        self.consumed = 0;
        self.current += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(reader: &mut LogReader) -> Vec<(usize, u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(l) = reader.next_line().unwrap() {
            out.push((l.input, l.number, l.bytes.unwrap().to_vec()));
        }
        out
    }

    #[test]
    fn reads_plain_and_gzip_files_in_order_with_per_file_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, b"one\r\ntwo\nthree").unwrap();
        // Named .log on purpose: gzip is recognised by content, not by name.
        let gz = dir.path().join("b.log");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"four\n").unwrap();
        let mut bytes = enc.finish().unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"five\n").unwrap();
        bytes.extend(enc.finish().unwrap()); // a second gzip member
        std::fs::write(&gz, bytes).unwrap();

        let mut reader = LogReader::new(vec![Input::File(plain), Input::File(gz)]).unwrap();
        let got = lines_of(&mut reader);
        let want: Vec<(usize, u64, Vec<u8>)> = vec![
            (0, 1, b"one".to_vec()),
            (0, 2, b"two".to_vec()),
            (0, 3, b"three".to_vec()),
            (1, 1, b"four".to_vec()),
            (1, 2, b"five".to_vec()),
        ];
        assert_eq!(got, want);
        reader.rewind();
        assert_eq!(lines_of(&mut reader).len(), 5);
    }

    #[test]
    fn missing_file_directory_and_empty_file_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = LogReader::new(vec![Input::File(dir.path().join("nope.log"))]).err().unwrap();
        assert!(missing.to_string().ends_with("nope.log: no such file"), "{missing}");

        let as_dir = LogReader::new(vec![Input::File(dir.path().to_path_buf())]).err().unwrap();
        assert!(as_dir.to_string().contains("is a directory"), "{as_dir}");

        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, b"").unwrap();
        let mut reader = LogReader::new(vec![Input::File(empty)]).unwrap();
        let err = reader.next_line().err().unwrap();
        assert!(err.to_string().ends_with("empty.log: the input is empty"), "{err}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// (line number, Ok(text) or Err(limit)) for every line, with the reader's cuts.
    fn read_all(reader: &mut LogReader) -> Vec<(u64, Result<Vec<u8>, usize>)> {
        let mut out = Vec::new();
        while let Some(l) = reader.next_line().unwrap() {
            out.push((l.number, l.bytes.map(<[u8]>::to_vec).map_err(|e| e.limit)));
        }
        out
    }

    fn reader_of(dir: &tempfile::TempDir, name: &str, bytes: &[u8], limit: usize) -> LogReader {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        LogReader::new(vec![Input::File(path)]).unwrap().with_max_line_bytes(limit)
    }

    #[test]
    fn lines_over_the_limit_are_skipped_whether_buffered_whole_or_straddling() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1024;
        let mut log = Vec::new();
        log.extend(b"short\n");
        log.extend(vec![b'a'; limit]); // exactly the limit, with CRLF: kept
        log.extend(b"\r\n");
        log.extend(vec![b'b'; limit + 1]); // one over, inside the read buffer: skipped
        log.extend(b"\r\n");
        log.extend(vec![b'c'; 3 * READ_BUFFER]); // longer than the read buffer: skipped while streaming
        log.extend(b"\nafter\n");
        log.extend(vec![b'\0'; READ_BUFFER + 7]); // the last line, NULs and no newline
        let mut reader = reader_of(&dir, "long.log", &log, limit);
        let got = read_all(&mut reader);
        let want: Vec<(u64, Result<Vec<u8>, usize>)> = vec![
            (1, Ok(b"short".to_vec())),
            (2, Ok(vec![b'a'; limit])),
            (3, Err(limit)),
            (4, Err(limit)),
            (5, Ok(b"after".to_vec())),
            (6, Err(limit)),
        ];
        assert_eq!(got, want);
        assert_eq!(reader.bytes_read(), log.len() as u64, "skipped bytes are read, just not kept");
        assert!(reader.buf.capacity() <= (2 * (limit + 1)).max(4096), "buffer grew to {}", reader.buf.capacity());
        assert!(reader.cuts().is_empty());
    }

    #[test]
    fn a_gzip_bomb_of_one_endless_line_is_skipped_with_a_bounded_buffer() {
        // 64 MiB of zeros without a newline, as concatenated gzip members (cheap to build).
        let zeros = gzip(&vec![0u8; 1 << 20]);
        let mut bomb = gzip(b"first\n");
        for _ in 0..64 {
            bomb.extend(&zeros);
        }
        bomb.extend(gzip(b"\nlast\n"));
        let dir = tempfile::tempdir().unwrap();
        let mut reader = reader_of(&dir, "bomb.gz", &bomb, DEFAULT_MAX_LINE_BYTES);
        let got = read_all(&mut reader);
        assert_eq!(got, vec![(1, Ok(b"first".to_vec())), (2, Err(DEFAULT_MAX_LINE_BYTES)), (3, Ok(b"last".to_vec()))]);
        assert!(reader.buf.capacity() <= 2 * (DEFAULT_MAX_LINE_BYTES + 1), "buffer grew to {}", reader.buf.capacity());
    }

    #[test]
    fn prefetch_keeps_too_long_lines_in_order_but_out_of_the_sample() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = b"one\n".to_vec();
        log.extend(vec![b'x'; 5000]);
        log.extend(b"\nthree\n");
        let mut reader = reader_of(&dir, "a.log", &log, 1024);
        assert_eq!(reader.prefetch(10).unwrap(), vec![b"one".as_slice(), b"three".as_slice()]);
        let got = read_all(&mut reader);
        assert_eq!(got, vec![(1, Ok(b"one".to_vec())), (2, Err(1024)), (3, Ok(b"three".to_vec()))]);
    }

    #[test]
    fn prefetch_stops_at_its_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let line = [vec![b'y'; MAX_LINE_BYTES_LIMIT / 4], b"\n".to_vec()].concat();
        let mut reader = reader_of(&dir, "big.log", &line.repeat(8), MAX_LINE_BYTES_LIMIT);
        assert_eq!(reader.prefetch(50).unwrap().len(), PREFETCH_BYTES / (MAX_LINE_BYTES_LIMIT / 4));
        assert_eq!(read_all(&mut reader).len(), 8, "lines not prefetched are read after the prefetched ones");
    }

    /// A `.gz` cut at any byte reads as whole lines from the start, then a cut naming the first
    /// line not read whole; the next input is read as usual.
    #[test]
    fn a_gzip_cut_anywhere_keeps_the_whole_lines_before_the_cut_and_goes_on() {
        let lines: Vec<String> = (1..=300).map(|n| format!("line {n} {}", "z".repeat(n % 40))).collect();
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let full = gzip(text.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let next = dir.path().join("next.log");
        std::fs::write(&next, b"next input\n").unwrap();
        // Every cut inside the compressed stream (the whole of it is one deflate block).
        for cut in 2..full.len() {
            let path = dir.path().join("cut.log.gz");
            std::fs::write(&path, &full[..cut]).unwrap();
            let mut reader = LogReader::new(vec![Input::File(path), Input::File(next.clone())]).unwrap();
            let mut got = Vec::new();
            while let Some(l) = reader.next_line().unwrap() {
                got.push((l.input, String::from_utf8(l.bytes.unwrap().to_vec()).unwrap()));
            }
            let (last, whole): (Vec<_>, Vec<_>) = got.into_iter().partition(|(input, _)| *input == 1);
            assert_eq!(last, vec![(1, "next input".to_string())], "cut at {cut}");
            let whole: Vec<String> = whole.into_iter().map(|(_, l)| l).collect();
            assert_eq!(whole[..], lines[..whole.len()], "cut at {cut}: only whole lines, from the start");
            let cuts = reader.cuts();
            assert_eq!(cuts.len(), 1, "cut at byte {cut} of {} not reported", full.len());
            assert_eq!(cuts[0].line, whole.len() as u64 + 1, "cut at {cut}");
            assert!(cuts[0].file.ends_with("cut.log.gz"));
        }
    }

    #[test]
    fn a_cut_is_reported_once_however_often_the_log_is_read() {
        let full = gzip(b"a\nb\nc\n");
        let dir = tempfile::tempdir().unwrap();
        let mut reader = reader_of(&dir, "cut.gz", &full[..full.len() - 4], DEFAULT_MAX_LINE_BYTES);
        assert_eq!(read_all(&mut reader).len(), 3, "the cut is in the trailer: every line is whole");
        reader.rewind();
        assert_eq!(read_all(&mut reader).len(), 3);
        assert_eq!(reader.cuts().len(), 1);
        assert_eq!(reader.cuts()[0].line, 4);
        assert_eq!(
            reader.cuts()[0].to_string(),
            format!(
                "{}:4: input cut short ({}); the lines before it were read",
                reader.input_name(0),
                reader.cuts()[0].reason
            )
        );
    }
}
