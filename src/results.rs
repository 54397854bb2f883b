//! The results CSV's contract, shared by the writer ([`crate::sink::csv`]) and every reader of it
//! ([`crate::analysis::rows`]): the columns, in order. A change here is a change users see.

/// The columns, as the header row names them.
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
