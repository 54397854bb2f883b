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
        let var = variable(name, at);
        if matches!(var.kind, Kind::Field)
            && !is_builtin(name)
            && let Some(meant) = READ.iter().find(|known| one_edit_apart(name, known))
        {
            let message = format!("unknown nginx variable `${name}`: did you mean `${meant}`?");
            return Err(FormatError::at(format, at, message));
        }
        parts.push(Part::Lit(std::mem::take(&mut lit)));
        parts.push(Part::Var(var));
        i = next;
    }
    parts.push(Part::Lit(lit));
    let logs_request = parts
        .iter()
        .any(|p| matches!(p, Part::Var(v) if matches!(v.kind, Kind::Request | Kind::Target { .. } | Kind::Path)));
    let unknown = parts.iter().find_map(|p| match p {
        Part::Var(v) if matches!(v.kind, Kind::Field) && !is_builtin(&v.name) => Some(v),
        _ => None,
    });
    if let (false, Some(v)) = (logs_request, unknown) {
        let message = format!(
            "`${}` is not an nginx variable (a `map` or `set` variable is kept as text), and the format logs no \
             request to replay: it needs $request, or $request_uri / $uri",
            v.name
        );
        return Err(FormatError::at(format, v.at, message));
    }
    let opts = Options { empty_is_absent };
    Template::build(format, parts, opts)
}

/// The variables `variable` maps to an `Entry` field: a name one typo away from one of these
/// (and not an nginx variable itself) is refused with a suggestion.
const READ: &[&str] = &[
    "remote_addr",
    "remote_user",
    "time_local",
    "time_iso8601",
    "msec",
    "request",
    "request_method",
    "request_uri",
    "uri",
    "document_uri",
    "args",
    "query_string",
    "is_args",
    "server_protocol",
    "status",
    "body_bytes_sent",
    "bytes_sent",
    "request_time",
    "http_referer",
    "http_user_agent",
    "host",
    "server_name",
    "request_body",
];

/// nginx's own variables (nginx.org/en/docs/varindex.html, core and common modules), and the
/// prefixes of its families (`$http_<header>` …). Any other name is a `map`/`set` variable of
/// the user's config, or a typo.
#[rustfmt::skip]
const NGINX_VARIABLES: &[&str] = &[
    "ancient_browser", "args", "binary_remote_addr", "body_bytes_sent", "bytes_received", "bytes_sent",
    "connection", "connection_requests", "connection_time", "connections_active", "connections_reading",
    "connections_waiting", "connections_writing", "content_length", "content_type", "date_gmt", "date_local",
    "document_root", "document_uri", "fastcgi_path_info", "fastcgi_script_name", "gzip_ratio", "host", "hostname",
    "http2", "http3", "https", "invalid_referer", "is_args", "jwt_payload", "limit_conn_status", "limit_rate",
    "limit_req_status", "memcached_key", "modern_browser", "msec", "msie", "nginx_version", "pid", "pipe",
    "protocol", "proxy_add_x_forwarded_for", "proxy_host", "proxy_port", "proxy_protocol_addr",
    "proxy_protocol_port", "proxy_protocol_server_addr", "proxy_protocol_server_port", "query_string",
    "realip_remote_addr", "realip_remote_port", "realpath_root", "remote_addr", "remote_port", "remote_user",
    "request", "request_body", "request_body_file", "request_completion", "request_filename", "request_id",
    "request_length", "request_method", "request_time", "request_uri", "scheme", "secure_link",
    "secure_link_expires", "server_addr", "server_name", "server_port", "server_protocol", "session_log_binary_id",
    "session_log_id", "session_time", "slice_range", "ssl_alpn_protocol", "ssl_cipher", "ssl_ciphers",
    "ssl_client_cert", "ssl_client_escaped_cert", "ssl_client_fingerprint", "ssl_client_i_dn",
    "ssl_client_i_dn_legacy", "ssl_client_raw_cert", "ssl_client_s_dn", "ssl_client_s_dn_legacy",
    "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain", "ssl_client_v_start", "ssl_client_verify",
    "ssl_curve", "ssl_curves", "ssl_early_data", "ssl_preread_alpn_protocols", "ssl_preread_protocol",
    "ssl_preread_server_name", "ssl_protocol", "ssl_server_name", "ssl_session_id", "ssl_session_reused", "status",
    "tcpinfo_rtt", "tcpinfo_rttvar", "tcpinfo_snd_cwnd", "tcpinfo_rcv_space", "time_iso8601", "time_local",
    "uid_got", "uid_reset", "uid_set", "upstream_addr", "upstream_bytes_received", "upstream_bytes_sent",
    "upstream_cache_status", "upstream_connect_time", "upstream_header_time", "upstream_last_server_name",
    "upstream_queue_time", "upstream_response_length", "upstream_response_time", "upstream_status", "uri",
];
const NGINX_PREFIXES: &[&str] = &[
    "arg_",
    "cookie_",
    "http_",
    "sent_http_",
    "sent_trailer_",
    "upstream_http_",
    "upstream_trailer_",
    "upstream_cookie_",
    "jwt_claim_",
    "jwt_header_",
    "proxy_protocol_tlv_",
    "geoip_",
    "geoip2_",
];

fn is_builtin(name: &str) -> bool {
    NGINX_VARIABLES.contains(&name) || NGINX_PREFIXES.iter().any(|p| name.starts_with(p) && name.len() > p.len())
}

/// Whether two names differ by one edit: a byte changed, added or dropped, or two neighbours
/// swapped (`reqeust`).
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return false;
    }
    let same_head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[same_head..], &b[same_head..]);
    let same_tail = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[..a.len() - same_tail], &b[..b.len() - same_tail]);
    match (a.len(), b.len()) {
        (1, 1) | (0, 1) | (1, 0) => true,
        (2, 2) => a[0] == b[1] && a[1] == b[0],
        _ => false,
    }
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
