//! Log input: files in order, gzip transparently, `-` for stdin, line numbers per file.
//!
//! The reader hands out one line at a time from a reused buffer, so memory stays flat for any log
//! size. Gzip is recognised by its magic bytes, not the file name, and concatenated members (what
//! logrotate's `delaycompress` + `cat` produce) are read through.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Large enough that reading stays far below parsing cost (the page cache delivers GB/s).
const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
    pub bytes: &'a [u8],
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
    buf: Vec<u8>,
    /// Bytes of the reader's buffer handed out as the last line, released on the next read.
    consumed: usize,
    /// Lines read ahead by [`LogReader::prefetch`], handed out again before anything new.
    pending: VecDeque<(usize, u64, Vec<u8>)>,
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
        })
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
    }

    /// Reads up to `n` lines ahead (to sniff the format) without consuming them: `next_line`
    /// returns them again first.
    pub fn prefetch(&mut self, n: usize) -> Result<Vec<&[u8]>, SourceError> {
        while self.pending.len() < n {
            let Some(line) = self.read_line()? else { break };
            let owned = (line.input, line.number, line.bytes.to_vec());
            self.pending.push_back(owned);
        }
        Ok(self.pending.iter().map(|(_, _, bytes)| bytes.as_slice()).collect())
    }

    /// The next line, or `None` after the last line of the last input.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, SourceError> {
        if let Some((input, number, bytes)) = self.pending.pop_front() {
            self.buf = bytes;
            return Ok(Some(Line { input, number, bytes: &self.buf }));
        }
        self.read_line()
    }

    /// Most lines are handed out as a slice of the reader's own buffer (no copy); only a line
    /// that straddles the end of the buffer is assembled in `buf`.
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
            let (filled, newline) = {
                let reader = self.reader.as_mut().expect("opened above");
                // The previous line was a slice of the buffer: release it now that the caller is done.
                reader.consume(std::mem::take(&mut self.consumed));
                match reader.fill_buf() {
                    Ok(available) => (available.len(), memchr::memchr(b'\n', available)),
                    Err(source) => {
                        let name = self.names[self.current].clone();
                        return Err(SourceError::Read { name, line: self.line_number + 1, source });
                    }
                }
            };
            if filled == 0 {
                if self.bytes_in_input == 0 {
                    return Err(SourceError::Empty { name: self.names[self.current].clone() });
                }
                self.reader = None;
                self.current += 1;
                continue;
            }
            self.line_number += 1;
            let (input, number) = (self.current, self.line_number);
            let reader = self.reader.as_mut().expect("opened above");
            let line = match newline {
                Some(end) => {
                    self.consumed = end + 1;
                    self.bytes_in_input += end as u64 + 1;
                    self.total_bytes += end as u64 + 1;
                    // Already buffered: this returns the same bytes without reading.
                    let available = reader.fill_buf().unwrap_or_default();
                    &available[..end]
                }
                None => {
                    self.buf.clear();
                    let n = reader.read_until(b'\n', &mut self.buf).map_err(|source| SourceError::Read {
                        name: self.names[input].clone(),
                        line: number,
                        source,
                    })?;
                    self.bytes_in_input += n as u64;
                    self.total_bytes += n as u64;
                    self.buf.strip_suffix(b"\n").unwrap_or(&self.buf)
                }
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(Some(Line { input, number, bytes: line }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(reader: &mut LogReader) -> Vec<(usize, u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(l) = reader.next_line().unwrap() {
            out.push((l.input, l.number, l.bytes.to_vec()));
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

    #[test]
    fn corrupt_gzip_is_a_read_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&b"a line of text\n".repeat(100)).unwrap();
        let mut bytes = enc.finish().unwrap();
        let mid = bytes.len() / 2;
        bytes.truncate(mid);
        std::fs::write(&path, bytes).unwrap();
        let mut reader = LogReader::new(vec![Input::File(path)]).unwrap();
        let err = loop {
            match reader.next_line() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a truncated gzip stream must not read as complete"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().starts_with(reader.input_name(0)), "{err}");
    }
}
