//! Any bytes, as a server's answer, through the response decoder: whole, and cut into pieces of
//! a size the first byte picks. An `Err` is fine; a panic, a byte used past the input, or a
//! different outcome for the same bytes cut differently is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::http1::{Response, ResponseDecoder};

/// The outcome of feeding `bytes` `piece` at a time: the response (`None`: still incomplete when
/// the bytes end) and the bytes it used, or the error.
fn feed(bytes: &[u8], piece: usize, is_head: bool) -> Result<(Option<Response>, usize), &'static str> {
    let mut decoder = ResponseDecoder::new(is_head);
    let (mut buf, mut consumed) = (Vec::new(), 0);
    for chunk in bytes.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        let (used, done) = decoder.decode(&buf)?;
        assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
        buf.drain(..used);
        consumed += used;
        if done.is_some() {
            return Ok((done, consumed));
        }
    }
    Ok((decoder.finish(), consumed))
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else { return };
    let is_head = control & 1 == 1;
    let piece = usize::from(control >> 1) + 1;
    assert_eq!(feed(bytes, piece, is_head), feed(bytes, bytes.len(), is_head));
});
