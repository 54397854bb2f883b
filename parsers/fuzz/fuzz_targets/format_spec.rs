//! Any text as a format spec: it compiles, or fails with a position inside the format string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_parsers::Format;

fuzz_target!(|spec: &str| {
    match Format::from_spec(spec) {
        Ok(format) => {
            let _ = format.parse_line(spec.as_bytes());
        }
        Err(e) => {
            assert!(e.position <= e.format.chars().count());
            let _ = e.to_string();
        }
    }
});
