//! Any bytes, as a HAR, through the streaming HAR reader: read whole, and through a buffer of a
//! size the first byte picks. An `Err` is fine; a panic, entries numbered out of order, or a
//! different outcome for the same bytes read differently is a bug.
#![no_main]

use std::io::BufReader;
use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use sluice::source::har::for_each_entry;

/// Each entry as text (or its bad-entry kind), and the error that ended the reading, if any.
fn read(bytes: &[u8], buffer: usize) -> (Vec<String>, Option<String>) {
    let mut entries = Vec::new();
    let result = for_each_entry(BufReader::with_capacity(buffer, bytes), 1024, &mut |number, entry| {
        assert_eq!(number, entries.len() as u64 + 1, "entries are numbered 1, 2, …");
        entries.push(match entry {
            Ok(e) => format!("{e:?}"),
            Err(bad) => bad.kind().to_string(),
        });
        ControlFlow::Continue(())
    });
    (entries, result.err().map(|e| e.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else { return };
    let buffer = usize::from(control) + 1;
    assert_eq!(read(bytes, buffer), read(bytes, bytes.len().max(1)));
});
