//! Results in another shape than the CSV, written from it once a run is over: the CSV stays the
//! record (streamed while the run goes, flat memory, whole rows after a crash), and these are
//! built from it, so a finished run, an old one or a merged one can get them alike.
//!
//! ```text
//! results CSV(s) ──analysis::analyse──▶ Report ─┐
//!        └──────── read again, row by row ──────┴──▶ xlsx: Summary, Routes, Over time, Results…
//! ```

pub mod xlsx;
