//! The two error types: a line that does not match its format ([`LineError`]) and a format
//! string that does not compile ([`FormatError`]).

use std::fmt;

/// Why one log line was rejected, and where. `column` is 1-based and counts bytes, because log
/// lines need not be UTF-8.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct LineError {
    pub column: usize,
    pub reason: Reason,
}

impl LineError {
    pub(crate) fn new(offset: usize, reason: Reason) -> LineError {
        LineError { column: offset + 1, reason }
    }
}

/// What was wrong with a line. [`Reason::kind`] gives a short stable key for counting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reason {
    /// Nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// The request field holds something that cannot be replayed: `-`, an empty string, TLS or
    /// other binary bytes sent to a plain-HTTP port, a bad method or HTTP version.
    #[error("not an HTTP request: {why}")]
    NotAnHttpRequest { why: &'static str },
    /// The line does not continue the way the format says, e.g. a missing quote or separator.
    #[error("expected {what}")]
    Expected { what: &'static str },
    /// A timestamp that does not parse or names an impossible date (month 13, 30 February …).
    #[error("bad timestamp")]
    BadTime,
    /// A status that is neither three digits nor `-`.
    #[error("bad status code")]
    BadStatus,
    /// A number field (bytes, request time …) that is not a number.
    #[error("bad number in {field}")]
    BadNumber { field: &'static str },
    /// The line goes on, glued to the format's last field, after the format ended.
    #[error("unexpected text after the end of the format")]
    TrailingData,
    /// The line has more space-separated fields after the format ended (nginx `main`, Apache
    /// `combinedio`, a `%D` at the end …). Every format, presets included, rejects them rather
    /// than drop them silently.
    #[error(
        "the line has more fields after the end of the format, which would be dropped: give the log's full format to read them"
    )]
    ExtraFields,
    /// A value with a space in a field that cannot hold one (an address, a host name, a status,
    /// a number): the line has a field there that the format lacks.
    #[error("space inside the {field}, which cannot hold one: the line has a field here that the format does not")]
    SpaceInField { field: &'static str },
    /// A `json` line that is not a JSON object.
    #[error("bad JSON: {0}")]
    BadJson(String),
    /// A `json` line without a request (none of the keys in [`REQUEST_KEYS`]), e.g. a server
    /// start-up message in the same stream.
    #[error("no request in this line: none of the keys {REQUEST_KEYS} is set")]
    MissingRequest,
}

impl Reason {
    /// Short stable snake_case key, for counting rejected lines by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::NotAnHttpRequest { .. } => "not_http_request",
            Reason::Expected { what } => match *what {
                EXPECTED_QUOTE => "expected_quote",
                EXPECTED_CLOSING_QUOTE => "expected_closing_quote",
                EXPECTED_BRACKET => "expected_bracket",
                EXPECTED_SPACE => "expected_space",
                _ => "expected_text",
            },
            Reason::BadTime => "bad_time",
            Reason::BadStatus => "bad_status",
            Reason::BadNumber { .. } => "bad_number",
            Reason::TrailingData => "trailing_data",
            Reason::ExtraFields => "extra_fields",
            Reason::SpaceInField { .. } => "space_in_field",
            Reason::BadJson(_) => "bad_json",
            Reason::MissingRequest => "missing_request",
        }
    }
}

/// The JSON keys a request is read from, for [`Reason::MissingRequest`] (kept in step with
/// `json::Builder::member`).
pub const REQUEST_KEYS: &str = "`request`, `request_uri`, `RequestPath`, `uri`, `path`, `request.uri` (Caddy)";

// The `what` of `Reason::Expected`: a small fixed vocabulary so that `kind` stays stable.
pub(crate) const EXPECTED_QUOTE: &str = "`\"`";
pub(crate) const EXPECTED_CLOSING_QUOTE: &str = "closing `\"`";
pub(crate) const EXPECTED_BRACKET: &str = "`[` or `]`";
pub(crate) const EXPECTED_SPACE: &str = "a space";
pub(crate) const EXPECTED_TEXT: &str = "the format's separator text";

/// Names a literal of the format that was not found, for `Reason::Expected`: by its first byte
/// that is not a space (in ` "` the quote is what matters), or as a space.
pub(crate) fn expected_literal(lit: &[u8]) -> &'static str {
    expected_byte(lit.iter().copied().find(|&b| b != b' ').or(lit.first().copied()))
}

/// Names the byte the format wanted where the line differs.
pub(crate) fn expected_byte(b: Option<u8>) -> &'static str {
    match b {
        Some(b'"') => EXPECTED_QUOTE,
        Some(b'[' | b']') => EXPECTED_BRACKET,
        Some(b' ') => EXPECTED_SPACE,
        _ => EXPECTED_TEXT,
    }
}

/// A format spec or format string that does not compile. `position` is the 0-based character
/// offset in `format` (the format string itself, without a `nginx:`/`apache:` prefix).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct FormatError {
    pub position: usize,
    pub message: String,
    /// The format string `position` points into (empty when the spec as a whole was unknown).
    pub format: String,
}

impl FormatError {
    /// `byte_pos` is a byte offset into `format`; it is turned into a character offset.
    pub(crate) fn at(format: &str, byte_pos: usize, message: impl Into<String>) -> FormatError {
        let byte_pos = byte_pos.min(format.len());
        let position = format.char_indices().take_while(|(i, _)| *i < byte_pos).count();
        FormatError { position, message: message.into(), format: format.to_owned() }
    }

    pub(crate) fn whole(message: impl Into<String>) -> FormatError {
        FormatError { position: 0, message: message.into(), format: String::new() }
    }
}

impl fmt::Display for FormatError {
    /// `unknown Apache directive %Z at position 12`, then the format and a caret under the spot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.format.is_empty() {
            return f.write_str(&self.message);
        }
        write!(f, "{} at position {}", self.message, self.position)?;
        // Tabs and newlines would misplace the caret; show them as spaces.
        let shown: String = self.format.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        write!(f, "\n  {shown}\n  {:>width$}", "^", width = self.position + 1)
    }
}
