//! Uploaded logs, measured as they stream in: what a run would read from them, and whether
//! that is within the daemon's limits.

/// The longest line a stored log may hold. A run keeps a whole line in memory, and access-log
/// lines are a few KiB (servers cap the request line near 8 KiB), so a longer one is not a log.
pub const MAX_LINE_BYTES: u64 = 1024 * 1024;

/// Why an upload is not stored, found while it streams in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRefusal {
    /// What a run would read (the bytes, or what a gzip upload decompresses to) is over the limit.
    TooLarge {
        decompressed: bool,
    },
    LineTooLong {
        line: u64,
    },
    /// It starts like gzip but does not decompress.
    NotGzip(String),
}

/// Follows an upload chunk by chunk, as a run will read it: gzip is recognised by its magic
/// bytes (as runs do) and decompressed on the fly into a counter, so a small file that inflates
/// to gigabytes is refused once it passes the limit, with memory flat (the decoder's 32 KiB
/// window); nothing is buffered beyond the chunk at hand.
pub struct UploadCheck {
    limit: u64,
    /// The first bytes, until there are enough to tell gzip from text.
    head: Vec<u8>,
    reading: Option<Reading>,
}

enum Reading {
    Plain(LineMeter),
    Gzip(Box<flate2::write::MultiGzDecoder<LineMeter>>),
}

/// Counts bytes and the length of the current line; refuses (with an I/O error that stops a
/// decoder at once) past the limits.
struct LineMeter {
    limit: u64,
    total: u64,
    line: u64,
    /// Which line is being measured (1-based).
    line_number: u64,
    refused: Option<UploadRefusal>,
    decompressed: bool,
}

impl std::io::Write for LineMeter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len() as u64;
        if self.total > self.limit {
            self.refused = Some(UploadRefusal::TooLarge { decompressed: self.decompressed });
            return Err(std::io::Error::other("over the limit"));
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buf).chain(std::iter::once(buf.len())) {
            self.line += (end - start) as u64;
            if self.line > MAX_LINE_BYTES {
                self.refused = Some(UploadRefusal::LineTooLong { line: self.line_number });
                return Err(std::io::Error::other("line too long"));
            }
            if end < buf.len() {
                self.line = 0;
                self.line_number += 1;
            }
            start = end + 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl UploadCheck {
    /// `limit`: the most a run may read from one log, in bytes.
    pub fn new(limit: u64) -> UploadCheck {
        UploadCheck { limit, head: Vec::with_capacity(2), reading: None }
    }

    /// True once the upload is known to be gzip (decompressing costs CPU: callers may want to
    /// do it off their async workers).
    pub fn is_gzip(&self) -> bool {
        matches!(self.reading, Some(Reading::Gzip(_)))
    }

    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), UploadRefusal> {
        if self.reading.is_none() {
            let take = chunk.len().min(2 - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.head.len() < 2 {
                return Ok(());
            }
            self.start();
        }
        self.write(chunk)
    }

    /// The upload is whole: checks a gzip stream ended properly. Returns what a run will read.
    pub fn finish(mut self) -> Result<u64, UploadRefusal> {
        if self.reading.is_none() {
            self.start();
        }
        match self.reading.take().expect("started") {
            Reading::Plain(meter) => Ok(meter.total),
            Reading::Gzip(mut decoder) => {
                decoder.try_finish().map_err(|e| refusal(decoder.get_ref(), &e))?;
                Ok(decoder.get_ref().total)
            }
        }
    }

    fn start(&mut self) {
        let gzip = self.head.starts_with(&[0x1f, 0x8b]);
        let meter =
            LineMeter { limit: self.limit, total: 0, line: 0, line_number: 1, refused: None, decompressed: gzip };
        self.reading = Some(if gzip {
            Reading::Gzip(Box::new(flate2::write::MultiGzDecoder::new(meter)))
        } else {
            Reading::Plain(meter)
        });
        let head = std::mem::take(&mut self.head);
        // Cannot fail: two bytes are under every limit.
        let _ = self.write(&head);
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadRefusal> {
        use std::io::Write;
        match self.reading.as_mut().expect("started") {
            Reading::Plain(meter) => meter.write_all(chunk).map_err(|e| refusal(meter, &e)),
            Reading::Gzip(decoder) => decoder.write_all(chunk).map_err(|e| refusal(decoder.get_ref(), &e)),
        }
    }
}

fn refusal(meter: &LineMeter, e: &std::io::Error) -> UploadRefusal {
    meter.refused.clone().unwrap_or_else(|| UploadRefusal::NotGzip(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    /// Feeds `bytes` in chunks of `size`, as a body arrives.
    fn check(limit: u64, bytes: &[u8], size: usize) -> Result<u64, UploadRefusal> {
        let mut check = UploadCheck::new(limit);
        for chunk in bytes.chunks(size) {
            check.feed(chunk)?;
        }
        check.finish()
    }

    #[test]
    fn uploads_are_measured_as_runs_read_them() {
        let log = b"GET /a HTTP/1.1\n".repeat(1000);
        for size in [1, 7, 4096] {
            assert_eq!(check(1 << 20, &log, size), Ok(log.len() as u64), "plain, chunks of {size}");
            assert_eq!(check(1 << 20, &gzip(&log), size), Ok(log.len() as u64), "gzip, chunks of {size}");
        }
        let two_members = [gzip(&log[..800]), gzip(&log[800..])].concat();
        assert_eq!(check(1 << 20, &two_members, 100), Ok(log.len() as u64), "members are read through");
        assert_eq!(check(1 << 20, b"x", 1), Ok(1));
        assert_eq!(check(1 << 20, b"", 1), Ok(0));

        let limit = log.len() as u64 - 1;
        assert_eq!(check(limit, &log, 4096), Err(UploadRefusal::TooLarge { decompressed: false }));
        assert_eq!(check(limit, &gzip(&log), 4096), Err(UploadRefusal::TooLarge { decompressed: true }));
        let mut long = b"GET / HTTP/1.1\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES as usize + 1));
        assert_eq!(check(1 << 30, &gzip(&long), 65536), Err(UploadRefusal::LineTooLong { line: 2 }));
        assert_eq!(check(1 << 30, &long, 65536), Err(UploadRefusal::LineTooLong { line: 2 }));
        let mut torn = gzip(&log);
        torn.truncate(torn.len() - 10);
        assert!(matches!(check(1 << 20, &torn, 4096), Err(UploadRefusal::NotGzip(_))));
        assert!(matches!(check(1 << 20, b"\x1f\x8bnot gzip at all", 4), Err(UploadRefusal::NotGzip(_))));
    }
}
