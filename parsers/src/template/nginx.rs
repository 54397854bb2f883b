//! nginx `log_format` strings: `$variable` and `${variable}`, literal text between.

use super::{Kind, Options, Part, Template, TimeKind, Unit, Var};
use crate::error::FormatError;

/// Compiles a flattened nginx `log_format` string (the quoted pieces of the config joined). An
/// optional leading `escape=json|default|none` is accepted as in the config.
pub(crate) fn compile(format: &str) -> Result<Template, FormatError> {
    let (start, empty_is_absent) = escape_prefix(format);
    let bytes = format.as_bytes();
    let mut parts = vec![];
    let mut lit = vec![];
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            lit.push(bytes[i]);
            i += 1;
            continue;
        }
        let at = i;
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let Some(close) = format[i + 2..].find('}') else {
                return Err(FormatError::at(format, at, "unterminated `${`"));
            };
            (&format[i + 2..i + 2 + close], i + 3 + close)
        } else {
            let len = bytes[i + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            (&format[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(FormatError::at(format, at, "`$` without a variable name"));
        }
        parts.push(Part::Lit(std::mem::take(&mut lit)));
        parts.push(Part::Var(variable(name, at)));
        i = next;
    }
    parts.push(Part::Lit(lit));
    let opts = Options { empty_is_absent };
    Template::build(format, parts, opts)
}

/// `escape=json ` before the format, as in `log_format name escape=json '…'`. Returns where the
/// format proper starts and whether empty values mean "absent" (what `escape=json` writes).
fn escape_prefix(format: &str) -> (usize, bool) {
    for (prefix, json) in [("escape=json", true), ("escape=default", false), ("escape=none", false)] {
        if let Some(rest) = format.strip_prefix(prefix)
            && rest.starts_with(char::is_whitespace)
        {
            let start = format.len() - rest.trim_start().len();
            return (start, json);
        }
    }
    (0, false)
}

/// What an nginx variable holds, by its name.
fn variable(name: &str, at: usize) -> Var {
    let var = |kind| Var::new(kind, name, at);
    match name {
        "remote_addr" => var(Kind::RemoteAddr),
        "remote_user" => var(Kind::RemoteUser),
        "time_local" => var(Kind::Time(TimeKind::Clf)),
        "time_iso8601" => var(Kind::Time(TimeKind::Iso8601)),
        "msec" => var(Kind::Time(TimeKind::EpochSeconds)),
        "request" => var(Kind::Request).rank(200),
        "request_method" => var(Kind::Method).rank(100),
        "request_uri" => var(Kind::Target { strip: b"" }).rank(100),
        "uri" | "document_uri" => var(Kind::Path).rank(90),
        "args" | "query_string" => var(Kind::Query { qmark: false }),
        "is_args" => var(Kind::IsArgs),
        "server_protocol" => var(Kind::Protocol).rank(100),
        "status" => var(Kind::Status),
        "body_bytes_sent" => var(Kind::Bytes { dash_is_zero: false }).rank(2),
        "bytes_sent" => var(Kind::Bytes { dash_is_zero: false }),
        "request_time" => var(Kind::Duration(Unit::Seconds)),
        "http_referer" => var(Kind::Referer),
        "http_user_agent" => var(Kind::UserAgent),
        "host" => var(Kind::Vhost).rank(2),
        "server_name" => var(Kind::Vhost),
        "request_body" => var(Kind::Body),
        _ => match name.strip_prefix("http_") {
            Some(header) => {
                let header = header.replace('_', "-").to_ascii_lowercase();
                var(Kind::Header(header.into()))
            }
            None => var(Kind::Field),
        },
    }
}
