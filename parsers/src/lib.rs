//! Access-log parsers: one log line (bytes) → [`Entry`], borrowing from the line.
//!
//! CONTRACT used by the `sluice` crate (the implementation may add to it, not change it):
//!
//! ```ignore
//! let format = Format::from_spec("nginx")?;          // or "apache-combined", "nginx:<log_format>", "json", …
//! let format = Format::sniff(&first_lines)?;          // `auto`: picks a preset, `format.name()` says which
//! match format.parse_line(line_without_newline) {
//!     Ok(entry) => …,                                  // Entry<'a> borrows from `line` and `format`
//!     Err(e) => …,                                     // LineError { column, reason }, e.reason.kind() is a short stable key
//! }
//! ```
//!
//! How it is built:
//!
//! ```text
//! spec ── Format::from_spec ──► nginx / Apache format string ──► template (compiled once)
//!                          └──► json
//! line ── Format::parse_line ──► template: literals and variables, left to right, one pass
//!                                  field parsers: request line, time, status, numbers (field, time)
//!                                  escapes decoded only where a backslash is (escape)
//!                            └──► json: members as raw slices, well-known keys mapped
//!      ──► Entry (borrowed) or LineError { column, reason }
//! ```
//!
//! Presets (`nginx`, `apache-combined` …) are predefined format strings run by the same template
//! engine as custom ones. A bad line is an `Err`, never a panic, whatever the bytes.
//!
//! Beside them, [`duration`]: the one duration grammar of the workspace (`90s`, `1h30m`, `250ms`),
//! here so that sluice and the mock server, which sluice depends on, both read it.

pub mod duration;
mod error;
mod escape;
mod field;
mod format;
mod json;
mod template;
pub mod time;

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};

pub use error::{FormatError, LineError, Reason};
pub use format::Format;

/// Text as logged, escapes decoded. Borrowed when the line had no escapes; bytes because request
/// targets need not be UTF-8 and must be sent as logged.
pub type Text<'a> = Cow<'a, [u8]>;

/// One parsed, replayable request line. `None` means the log had `-` (or the format lacks the field).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub remote_addr: Option<Text<'a>>,
    pub remote_user: Option<Text<'a>>,
    /// Request time with the offset the server logged.
    pub time: Option<DateTime<FixedOffset>>,
    pub method: Text<'a>,
    /// Path and query exactly as logged (after log-escape decoding, never percent-decoded).
    pub target: Text<'a>,
    pub protocol: Option<Text<'a>>,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    pub referer: Option<Text<'a>>,
    pub user_agent: Option<Text<'a>>,
    pub request_time_ms: Option<f64>,
    /// `$host`, `$server_name`, `%v` …: the virtual host the request was served for.
    pub vhost: Option<Text<'a>>,
    /// Logged request headers (`$http_*`, `%{Name}i`) other than referer and user agent; names lower-case.
    pub headers: Vec<(Cow<'a, str>, Text<'a>)>,
    pub body: Option<Text<'a>>,
    /// Every other variable of the format, by its name in the format string.
    pub fields: Vec<(Cow<'a, str>, Text<'a>)>,
}

/// A part of a request a format may log, for [`Format::logs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged<'a> {
    RemoteAddr,
    RemoteUser,
    UserAgent,
    Referer,
    /// A request header in [`Entry::headers`], by its lower-case name.
    Header(&'a str),
    /// A variable in [`Entry::fields`], by its name in the format (`cookie_sid`, `%{sid}C`).
    Field(&'a str),
}

impl Entry<'_> {
    /// A copy that owns all its data, to keep or send beyond the line's buffer.
    pub fn into_owned(self) -> Entry<'static> {
        fn own(t: Text<'_>) -> Text<'static> {
            Cow::Owned(t.into_owned())
        }
        fn own_pairs(v: Vec<(Cow<'_, str>, Text<'_>)>) -> Vec<(Cow<'static, str>, Text<'static>)> {
            v.into_iter().map(|(k, t)| (Cow::Owned(k.into_owned()), own(t))).collect()
        }
        Entry {
            remote_addr: self.remote_addr.map(own),
            remote_user: self.remote_user.map(own),
            time: self.time,
            method: own(self.method),
            target: own(self.target),
            protocol: self.protocol.map(own),
            status: self.status,
            bytes: self.bytes,
            referer: self.referer.map(own),
            user_agent: self.user_agent.map(own),
            request_time_ms: self.request_time_ms,
            vhost: self.vhost.map(own),
            headers: own_pairs(self.headers),
            body: self.body.map(own),
            fields: own_pairs(self.fields),
        }
    }

    /// The first logged request header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
    }

    /// The first other variable of this name (as written in the format: `upstream_addr`, `%P`).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
    }
}
