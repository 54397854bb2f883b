//! The results CSV's contract, shared by the writer ([`crate::sink::csv`]) and every reader of it
//! ([`crate::analysis::rows`]): the columns, in order, and one row as both sides see it. A change
//! here is a change users see.

/// The columns, as the header row names them.
pub const HEADER: [&str; 15] = [
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
    "session",
    "session_seq",
];

/// The columns a run with `--compare` adds after [`HEADER`], in order: the baseline's answer
/// (`b_` as in the target's columns), a digest of what was compared of each body (16 hex digits of
/// a 64-bit FNV-1a hash; empty without an answer), how the bodies were compared (`bytes`,
/// `normalised` after the ignore rules, or `too_large` for the limit), whether status and body
/// agree (`true`/`false`; `same_body` is empty unless both answered), and, with
/// `--compare-noise`, which differences also showed between the two baselines (`status`, `body`,
/// `status+body`, or `none`; empty when there was no difference).
pub const COMPARE_HEADER: [&str; 10] = [
    "b_status",
    "b_latency_ms",
    "b_bytes",
    "b_error",
    "a_digest",
    "b_digest",
    "body_compared_as",
    "same_status",
    "same_body",
    "noise",
];
/// The column an end-to-end Kafka run (`--consume`) adds after [`HEADER`]'s: milliseconds from
/// the send to the output message, `lost` when none came, empty for a message not produced.
pub const E2E_COLUMN: &str = "e2e_ms";

/// What became of a produced message's output, in an end-to-end run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndToEnd {
    /// From the send to the output message being consumed, µs.
    Seen(u64),
    /// No output by the end of the drain (or given up when too many were awaited).
    Lost,
}

/// Columns a reader accepts missing: files written before sessions existed have none.
pub const OPTIONAL: [&str; 2] = ["session", "session_seq"];

/// A request's place in its client session (`--sessions`): which session, written `s17` (a short
/// id given in order of first appearance, never the logged address, user or cookie), and its
/// 0-based position in that session's logged order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionTag {
    pub id: u64,
    pub seq: u64,
}

impl SessionTag {
    /// The `session` cell: `s` and the id.
    pub fn cell(&self) -> String {
        format!("s{}", self.id)
    }

    /// Reads a `session` cell back (`s17` → 17).
    pub fn parse_id(cell: &str) -> Option<u64> {
        cell.strip_prefix('s').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
    }
}

/// What a request got back: a status, or an error kind instead of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    Status(u16),
    Error(&'a str),
}

/// One request, as read from a row. Times are milliseconds since the Unix epoch (UTC); durations
/// are microseconds, the CSV's precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    pub seq: u64,
    pub scheduled_ms: i64,
    pub sent_ms: i64,
    /// Negative when the request left early.
    pub lag_us: i64,
    pub method: &'a str,
    /// As sent, with a spreadsheet-neutralising `'` removed.
    pub url: &'a str,
    pub orig_status: Option<u16>,
    pub answer: Answer<'a>,
    pub latency_us: u64,
    pub bytes: u64,
    /// Empty unless the run followed client sessions.
    pub session: Option<SessionTag>,
    /// Only in an end-to-end Kafka run, for a message that was produced.
    pub e2e: Option<EndToEnd>,
}

/// The `error` of a request that never left (see [`crate::send::outcome::ErrorKind::NotSent`]).
pub const NOT_SENT: &str = "not_sent";
/// The `error` of a request a late shard skipped (`--late-start skip`): it never left either.
pub const SKIPPED_LATE: &str = "skipped_late";

/// How a Kafka message's row begins its `url` (`kafka://BROKER/TOPIC/PARTITION#OFFSET`).
pub const KAFKA_URL_PREFIX: &str = "kafka://";

impl Row<'_> {
    /// A Kafka message's row (`--target kafka://…`), not an HTTP request's.
    pub fn is_kafka(&self) -> bool {
        self.url.starts_with(KAFKA_URL_PREFIX)
    }

    /// Latency is of answered requests only: a failure's time says how long it took to fail,
    /// and an aborted request's only measures the drain timeout (the run's own statistics
    /// leave them out the same way).
    pub fn has_latency(&self) -> bool {
        matches!(self.answer, Answer::Status(_))
    }

    /// Whether the request left at all (its planned time came, but scheduling may have stopped
    /// before it could).
    pub fn was_sent(&self) -> bool {
        self.answer != Answer::Error(NOT_SENT) && self.answer != Answer::Error(SKIPPED_LATE)
    }

    /// From the planned send time to the end of the answer (coordinated omission corrected).
    pub fn latency_from_schedule_us(&self) -> u64 {
        (self.latency_us as i64 + self.lag_us).max(0) as u64
    }
}
