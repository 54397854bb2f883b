//! The parsers against the world: other parsers' test cases (`cases.jsonl`) and real logs
//! (`logs/`) from the shared corpus, which lives beside the repository and is never copied
//! into it. Without it (a fresh clone) these tests say so and pass; with
//! `SLUICE_REQUIRE_CORPUS=1` (set by `.ci/run` when the corpus is there) they fail instead.
//!
//! Peers disagree with each other; every case where sluice deliberately answers differently
//! from the peer is listed in `DEVIATIONS` with the reason.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use sluice_parsers::{Entry, Format};

/// Makes a missing corpus a failure rather than a skip.
const REQUIRE_CORPUS: &str = "SLUICE_REQUIRE_CORPUS";

/// The corpus directory, or `None` (after saying so) when it is absent and not required.
fn corpus(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if dir.join("cases.jsonl").is_file() {
        return Some(dir);
    }
    let required = std::env::var_os(REQUIRE_CORPUS).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "{test}: {REQUIRE_CORPUS} is set but the corpus is not at {}", dir.display());
    // The harness captures `eprintln!` of a passing test and shows it to no one; a write to the
    // stderr handle itself is not captured, so the skip shows among the test results.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: corpus not found at {} (it belongs beside the repository, as ../shared/corpus)",
        dir.display()
    );
    None
}

/// How sluice treats a case differently from the peer that wrote it.
#[derive(Debug, Clone, Copy)]
enum Treatment {
    /// The peer accepts the line; sluice rejects it with this reason kind.
    Rejected(&'static str),
    /// The peer's format string logs no request (`$msec`, `%200f` …): a replayer has nothing to
    /// replay, so `Format::from_spec` refuses the format itself.
    NoRequestFormat,
    /// Read with this spec instead of the case's own format (the peer's parser tries several
    /// layouts, e.g. an optional vhost prefix; sluice takes one format per log).
    Spec(&'static str),
    /// The case is a field-level test of a timestamp parser, not a whole line.
    TimestampOnly,
    /// sluice's target differs on purpose (escapes decoded; bytes, not Latin-1 text).
    Target(&'static str),
    /// sluice's time differs on purpose (given here as an instant).
    Time(&'static str),
    /// Not a format sluice reads; skipped.
    Unsupported,
}

use Treatment::*;

const VHOST_NGINX: &str = r#"nginx:$host $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
const VHOST_PORT_NGINX: &str = r#"nginx:$host:$server_port $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
const VHOST_APACHE: &str = r#"apache:%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
const VHOST_PORT_APACHE: &str = r#"apache:%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
/// fail2ban's odd sample: four fields before a zone-less timestamp, vhost after it.
const NOT_A_REQUEST_LINE: &str =
    "not a request line: the request is `-`, empty, binary/TLS junk or a bare word; nothing to replay";
/// nginx `main` is combined plus a quoted `$http_x_forwarded_for`.
const TRAILING_QUOTED_FIELD: &str = "combined plus a trailing quoted field: the case's combined format rejects it (no preset drops fields); read as nginx `main`";
/// filebeat's nginx test log puts an X-Forwarded-For list where combined has `$remote_addr`.
const XFF_FIRST: &str = r#"nginx:$http_x_forwarded_for - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
const XFF_LIST: &str = "an X-Forwarded-For list where the case's format has `$remote_addr` (an address has no space): read with a format that names the list";
const EXTRA_FIELD: &str = "a field after the end of combined that the case's format does not name: rejected (`extra_fields`) rather than dropped";

/// `(line in cases.jsonl, a fragment of its source, treatment, why)`.
///
/// Decisions, in short:
/// - A request that is `-`, empty, a TLS handshake, binary junk or a lone word (`HELP`,
///   `batman`) is not replayable: rejected as `not_http_request`, whatever the peer does.
///   Peers that accept such lines keep them for analytics; sluice counts them as bad lines.
/// - A line that lacks a field of its format (crowdsec's nginx line without the user field) is
///   rejected: sluice does not guess which field is missing.
/// - Doubled spaces between fields (Matomo's lenient regex) are rejected: one format, exactly.
/// - Formats that log no request are refused when compiled (see `NoRequestFormat`).
/// - Elsewhere, as decided in the library: `-` → absent; escapes decoded (both servers'
///   styles, where peers keep `\xHH` raw or decode to Latin-1); Apache `%b` `-` → 0 bytes, where
///   peers say absent (checked generically in `check_bytes`).
/// - Fields after the end of a format are rejected (`extra_fields`), presets included, where VRL,
///   filebeat and Matomo drop them; a field that cannot hold a space (an address, a user name, a
///   number) never takes two words (`space_in_field`). Such cases are read with the format that
///   names every field where one exists (`Spec`), else listed as rejected.
const DEVIATIONS: &[(usize, &str, Treatment, &str)] = &[
    (1, "#combined_line_valid@", Spec("nginx-main"), TRAILING_QUOTED_FIELD),
    (
        6,
        "#combined_line_valid_all_fields",
        Spec(concat!(
            r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "#,
            r#""$http_user_agent" "$gzip_ratio""#
        )),
        "VRL's sample ends with `\"$gzip_ratio\"` (its `compression`), which combined does not name",
    ),
    (41, "nginx/access/test/test.log", Spec(XFF_FIRST), XFF_LIST),
    (42, "nginx/access/test/test.log", Spec("nginx-main"), TRAILING_QUOTED_FIELD),
    (43, "nginx/access/test/test.log", Spec(XFF_FIRST), XFF_LIST),
    (
        45,
        "nginx/access/test/test.log",
        Spec(concat!(
            r#"nginx:"$http_x_forwarded_for" $remote_addr - $remote_user [$time_local] "$request" $status "#,
            r#"$body_bytes_sent "$http_referer" "$http_user_agent""#
        )),
        XFF_LIST,
    ),
    (
        46,
        "nginx/access/test/test.log",
        Rejected("space_in_field"),
        "an unquoted X-Forwarded-For list with spaces, then `$remote_addr`: no format can tell where the list ends",
    ),
    (51, "apache/access/test/test.log", Spec("nginx-main"), TRAILING_QUOTED_FIELD),
    (52, "apache/access/test/test.log", Spec("nginx-main"), TRAILING_QUOTED_FIELD),
    (
        3,
        "vrl:src/stdlib/parse_nginx_log.rs#combined_line_valid_empty_fields",
        Rejected("not_http_request"),
        NOT_A_REQUEST_LINE,
    ),
    (4, "#combined_line_valid_bot_request", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (5, "#combined_line_valid_empty_referer", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (
        18,
        "#combined_line_missing_fields_valid",
        Rejected("expected_quote"),
        "bare `-` for referer and agent: Apache always quotes them in combined; VRL's regex allows either",
    ),
    (
        19,
        "vrl:src/stdlib/parse_apache_log.rs#log_line_valid_empty",
        Rejected("expected_bracket"),
        "VRL accepts `- - - - - - -` (every field `-`); there is no request to replay",
    ),
    (
        20,
        "vrl:src/stdlib/parse_apache_log.rs#log_line_valid_empty_variant",
        Rejected("not_http_request"),
        NOT_A_REQUEST_LINE,
    ),
    (
        24,
        "vrl:src/stdlib/parse_common_log.rs#log_line_valid_empty",
        Rejected("expected_bracket"),
        "VRL accepts `- - - - - - -` (every field `-`); there is no request to replay",
    ),
    (
        25,
        "vrl:src/stdlib/parse_common_log.rs#log_line_valid_empty_variant",
        Rejected("not_http_request"),
        NOT_A_REQUEST_LINE,
    ),
    (
        26,
        "#log_line_valid_with_timestamp_format",
        Rejected("bad_time"),
        "VRL was told the timestamp format (`%+`); sluice reads Apache's own `%t` layout",
    ),
    (47, "elastic/beats", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (50, "elastic/beats", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (53, "elastic/beats", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (66, "#HandleEmptyValues", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (70, "honeycombio/honeytail", NoRequestFormat, "format has no request"),
    (71, "honeycombio/honeytail", NoRequestFormat, "format has no request"),
    (77, "apachelogs", NoRequestFormat, "`%<s %s %>s`: no request"),
    (78, "apachelogs", NoRequestFormat, "`%s`: no request"),
    (79, "apachelogs", NoRequestFormat, "headers only: no request"),
    (80, "apachelogs", NoRequestFormat, "`%T %{ms}T`: no request"),
    (81, "apachelogs", NoRequestFormat, "`%T %{MS}T`: no request"),
    (84, "apachelogs", NoRequestFormat, "`%a:%{REMOTE}p`: no request"),
    (85, "apachelogs", NoRequestFormat, "`%P:%{TID}P`: no request"),
    (86, "apachelogs", NoRequestFormat, "`%200f`: no request"),
    (87, "apachelogs", NoRequestFormat, "`%200f`: no request"),
    (88, "apachelogs", NoRequestFormat, "`%200{%Y-%m-%d}t`: no request"),
    (89, "apachelogs", NoRequestFormat, "`%200{%Y-%m-%d}t`: no request"),
    (90, "apachelogs", NoRequestFormat, "`%200t`: no request"),
    (91, "apachelogs", NoRequestFormat, "`%200{}t`: no request"),
    (93, "apachelogs", NoRequestFormat, "`%<t`: no request"),
    (94, "apachelogs", NoRequestFormat, "time directives only: no request"),
    (96, "apachelogs", NoRequestFormat, "`%<>s`: no request"),
    (97, "apachelogs", NoRequestFormat, "`%200<T`: no request"),
    (98, "apachelogs", NoRequestFormat, "`%>!200T`: no request"),
    (99, "apachelogs", NoRequestFormat, "`%>{s}!200T`: no request"),
    (100, "apachelogs", NoRequestFormat, "`%{s}!200>T`: no request"),
    (101, "apachelogs", NoRequestFormat, "`%<{s}!200>T`: no request"),
    (102, "apachelogs", NoRequestFormat, "`%><{s}!200>T`: no request"),
    (103, "apachelogs", NoRequestFormat, "`%<200>T`: no request"),
    (104, "apachelogs", NoRequestFormat, "`%<200<!>T`: no request"),
    (105, "apachelogs", NoRequestFormat, "`%u`: no request"),
    (
        35,
        "#test_parse_with_escape_sequence",
        Target("/\""),
        "fluentd keeps `\\\"` as logged; sluice decodes escapes, so the target is `/\"`",
    ),
    (
        83,
        "test_parse[11]",
        Target("/wsgi/tést"),
        "the peer decodes `\\xc3\\xa9` as Latin-1 text; sluice keeps the bytes, which are UTF-8 `é`",
    ),
    (116, "apachelogs", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (117, "test_parse_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (118, "test_parse_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (119, "test_parse_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (120, "test_parse_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (121, "test_parse_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (122, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (123, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (124, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (125, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (126, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (127, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (128, "test_parse_bad_apache_timestamp", TimestampOnly, "field-level timestamp test"),
    (129, "testInvalidFirstLine", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (134, "bugReport227_bad", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (135, "bugReport227_empty", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (138, "validateAllFields[$sent_http_etag]", NoRequestFormat, "`$sent_http_etag`: no request"),
    (139, "validateAllFields[$binary_remote_addr]", NoRequestFormat, "`$binary_remote_addr`: no request"),
    (140, "validateAllFields[$msec]", NoRequestFormat, "`$msec`: no request"),
    (141, "validateAllFields[$time_iso8601]", NoRequestFormat, "`$time_iso8601`: no request"),
    (142, "validateAllFields[$request_time]", NoRequestFormat, "`$request_time`: no request"),
    (137, "testBasicLogFormat", NoRequestFormat, "upstream fields only: no request"),
    (
        145,
        "testExternalExample",
        Rejected("space_in_field"),
        "an UNQUOTED `%{Cookie}i` full of spaces followed by `%s`: ambiguous; sluice ends an unquoted value at the next literal and does not backtrack, so the status field gets text with a space",
    ),
    (150, "_test_with_junk", Rejected("extra_fields"), "` junk` after common: rejected rather than dropped"),
    (151, "_test_multiple_spaces", Rejected("space_in_field"), "every space doubled: one format, exactly"),
    (
        155,
        "check_icecast2_groups",
        Spec(r#"apache:%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %T"#),
        "icecast2 logs combined plus the session time in seconds",
    ),
    (
        160,
        "check_traefik_json_groups",
        Time("2023-08-11T11:39:21.773Z"),
        "Matomo takes `time` (when Traefik wrote the line, two minutes later); sluice takes `StartUTC`, when the request began, which is what a replay schedules by",
    ),
    (166, "crowdsecurity/hub", Spec(VHOST_NGINX), "crowdsec tries an optional vhost prefix"),
    (167, "crowdsecurity/hub", Spec(VHOST_NGINX), "crowdsec tries an optional vhost prefix"),
    (168, "crowdsecurity/hub", Spec(VHOST_PORT_NGINX), "crowdsec tries an optional vhost:port prefix"),
    (
        170,
        "crowdsecurity/hub",
        Rejected("expected_bracket"),
        "the user field is missing: sluice does not guess which field a line lacks",
    ),
    (171, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (172, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (173, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (174, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (175, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (176, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (177, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (178, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (179, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (180, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (181, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (182, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (186, "crowdsecurity/hub", Spec(VHOST_APACHE), "crowdsec tries an optional vhost prefix"),
    (188, "crowdsecurity/hub", Spec("apache-common"), "crowdsec tries common after combined"),
    (189, "crowdsecurity/hub", Spec(VHOST_PORT_APACHE), "crowdsec tries an optional vhost:port prefix"),
    (190, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (191, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (192, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (193, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (194, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (195, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (196, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (197, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (198, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (199, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (200, "crowdsecurity/hub", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (216, "tstack/lnav", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (217, "tstack/lnav", Rejected("space_in_field"), "doubled spaces between fields, and a trailing field"),
    (218, "tstack/lnav", Spec(VHOST_APACHE), "lnav tries an optional vhost prefix"),
    (
        220,
        "tstack/lnav",
        Rejected("bad_time"),
        "Python http.server writes `[29/Aug/2023 22:02:58]`, no zone: not Apache's `%t`",
    ),
    (219, "tstack/lnav", Rejected("extra_fields"), EXTRA_FIELD),
    (221, "tstack/lnav", Spec("apache-common"), "lnav's regex makes referer and agent optional; this sample is common"),
    (229, "fail2ban", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (230, "fail2ban", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (231, "fail2ban", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (233, "fail2ban", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (234, "fail2ban", Rejected("not_http_request"), NOT_A_REQUEST_LINE),
    (
        253,
        "apache-fakegooglebot",
        Unsupported,
        "fail2ban's odd layout (four fields before a zone-less time): no format given, and `[… ]` has no zone anyway",
    ),
];

/// Spec for a case's own format label and format string.
fn spec_for(format: &str, log_format: Option<&str>) -> Option<String> {
    let custom = |prefix: &str| log_format.map(|f| format!("{prefix}:{f}"));
    Some(match format {
        "nginx_combined" | "nginx_combined_or_vhost" => "nginx".into(),
        "nginx_main" => "nginx-main".into(),
        "traefik_clf" => "traefik".into(),
        "nginx_custom"
        | "nginx_ingress_upstreaminfo"
        | "nginx_proxy_manager_proxy"
        | "nginx_proxy_manager_standard"
        | "nginx_json_template" => custom("nginx")?,
        "apache_common" if log_format == Some(r#"%h %l %u %t "%r" %>s %b"#) => "apache-common".into(),
        "apache_common_or_combined" => "apache-common".into(),
        "apache_combined" | "apache_combined_or_vhost" | "apache_combined_variant" | "icecast2" => {
            "apache-combined".into()
        }
        "apache_vhost_combined" => "apache-vhost".into(),
        "apache_common"
        | "apache_custom"
        | "apache_vhost_combined_space"
        | "apache_vhost_common"
        | "ovh"
        | "gandi"
        | "apache_json_template" => custom("apache")?,
        "caddy_json" | "traefik_json" | "nginx_json" => "json".into(),
        // Amazon S3's own layout, written as an nginx format string.
        "aws_s3" => S3.into(),
        _ => return None,
    })
}

const NPM_PROXY: &str = r#"nginx:[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme $host "$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent" "$http_referer""#;
const GONX: &str = r#"nginx:$remote_addr [$time_local] "$request" $status $request_length $body_bytes_sent $request_time "$t_size" $read_time $gen_time"#;
/// mtail's lighttpd layout: `<proxied_for> <request_ip> <authuser> [time] "req" status bytes_body bytes_in bytes_out time_taken "referer" "agent"`.
const LIGHTTPD: &str = r#"nginx:$http_x_forwarded_for $remote_addr $remote_user [$time_local] "$request" $status $body_bytes_sent $bytes_in $bytes_out $request_time "$http_referer" "$http_user_agent""#;
const S3: &str = r#"nginx:$bucket_owner $host [$time_local] $remote_addr $requester $request_id $operation $key "$request" $status $error_code $bytes_sent $object_size $total_time $turn_around_time "$http_referer" "$http_user_agent""#;

struct Case {
    line_no: usize,
    source: String,
    format: String,
    log_format: Option<String>,
    line: String,
    expect: Value,
    valid: bool,
}

fn cases(dir: &std::path::Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("cases.jsonl")).expect("read cases.jsonl");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("cases.jsonl line {}: {e}", i + 1));
            let s = |k: &str| v[k].as_str().map(str::to_owned);
            Case {
                line_no: i + 1,
                source: s("source").unwrap_or_default(),
                format: s("format").unwrap_or_default(),
                log_format: s("log_format"),
                line: s("line").unwrap_or_default(),
                expect: v["expect"].clone(),
                valid: v["valid"].as_bool().unwrap_or(true),
            }
        })
        .collect()
}

fn text(t: &[u8]) -> String {
    String::from_utf8_lossy(t).into_owned()
}

/// A JSON number or numeric string as u64; `None` for null, `-` or absent.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Compares the fields every valid case must agree on; returns what differs.
fn compare(x: &Value, spec: &str, e: &Entry) -> Vec<String> {
    let mut diffs = vec![];
    if x.is_null() {
        return diffs;
    }
    // Method and target: from `request` when the peer gives the whole line, else `method`/`path`.
    let request = x["request"].as_str();
    let mut method = x["method"].as_str().map(str::to_owned);
    let mut target = x["path"].as_str().map(str::to_owned);
    if let Some(r) = request {
        let mut parts = r.splitn(2, ' ');
        method = method.or(parts.next().map(str::to_owned));
        let rest = parts.next().unwrap_or_default();
        let t = rest.rsplit_once(' ').filter(|(_, p)| p.starts_with("HTTP/")).map_or(rest, |(t, _)| t);
        target = target.or(Some(t.to_owned()));
    }
    // Peers that split the query off the path give it apart (`?foo`).
    if let (Some(t), Some(q)) = (&mut target, x["query"].as_str())
        && !t.contains('?')
    {
        t.push_str(q);
    }
    if let Some(m) = method
        && m != text(&e.method)
    {
        diffs.push(format!("method {m:?} != {:?}", text(&e.method)));
    }
    if let Some(t) = target
        && t != text(&e.target)
    {
        diffs.push(format!("target {t:?} != {:?}", text(&e.target)));
    }
    // Status: `"-"` and null both mean unknown.
    if !x["status"].is_null() || x.get("status").is_some() {
        let want = number(&x["status"]);
        if x.get("status").is_some() && want.map(|s| s as u16) != e.status {
            diffs.push(format!("status {} != {:?}", x["status"], e.status));
        }
    }
    check_bytes(x, spec, e, &mut diffs);
    check_time(x, e, &mut diffs);
    diffs
}

/// Bytes: Apache's `%b` writes `-` for zero bytes, which sluice reads as `Some(0)` while peers
/// say absent. That is the one difference allowed here.
fn check_bytes(x: &Value, spec: &str, e: &Entry, diffs: &mut Vec<String>) {
    let Some(field) = ["bytes", "bytes_out"].into_iter().find(|k| x.get(*k).is_some()) else { return };
    let want = number(&x[field]);
    let percent_b = spec.starts_with("apache-c") || (spec.starts_with("apache:") && spec.contains("%b"));
    let ok = want == e.bytes || (want.is_none() && percent_b && e.bytes == Some(0));
    if !ok {
        diffs.push(format!("bytes {} != {:?}", x[field], e.bytes));
    }
}

fn check_time(x: &Value, e: &Entry, diffs: &mut Vec<String>) {
    let want_ms = if let Some(ms) = x["timestamp_epoch_ms"].as_i64() {
        Some(ms)
    } else if let Some(t) = x["timestamp_utc"].as_str().or(x["timestamp"].as_str()) {
        match sluice_parsers::time::parse_timestamp(t.as_bytes()) {
            Some(t) => Some(t.timestamp_millis()),
            None => {
                diffs.push(format!("expected time {t:?} does not parse"));
                return;
            }
        }
    } else if let Some(n) = x["timestamp_local_numeric"].as_u64() {
        let got = e.time.map(|t| t.naive_local().format("%Y%m%d%H%M%S").to_string());
        if got != Some(n.to_string()) {
            diffs.push(format!("local time {n} != {got:?}"));
        }
        return;
    } else {
        return;
    };
    let got = e.time.map(|t| t.timestamp_millis());
    if got != want_ms {
        diffs.push(format!("time {want_ms:?} ms != {got:?}"));
    }
}

#[test]
fn peer_cases() {
    let Some(dir) = corpus("peer_cases") else { return };
    let cases = cases(&dir);
    let mut failures = vec![];
    let mut used = BTreeSet::new();
    let (mut checked, mut rejected_as_decided, mut no_request, mut unsupported) = (0, 0, 0, 0);
    for case in &cases {
        let deviation = DEVIATIONS.iter().find(|d| d.0 == case.line_no);
        if let Some((n, fragment, _, _)) = deviation {
            assert!(
                case.source.contains(fragment),
                "deviation for line {n} expects source {fragment:?}, found {:?}",
                case.source
            );
            used.insert(*n);
        }
        let treatment = deviation.map(|d| d.2);
        if let Some(TimestampOnly) = treatment {
            let parsed = sluice_parsers::time::parse_timestamp(case.line.as_bytes());
            match (case.valid, parsed) {
                (true, Some(t)) => {
                    let want = case.expect["timestamp_utc"]
                        .as_str()
                        .and_then(|w| sluice_parsers::time::parse_timestamp(w.as_bytes()));
                    if want.map(|w| w.timestamp()) != Some(t.timestamp()) {
                        failures.push(format!("line {}: time {:?} != {want:?}", case.line_no, t));
                    }
                }
                (false, None) => {}
                (valid, got) => {
                    failures.push(format!("line {}: timestamp {:?} valid={valid} got {got:?}", case.line_no, case.line))
                }
            }
            checked += 1;
            continue;
        }
        if let Some(Unsupported) = treatment {
            unsupported += 1;
            continue;
        }
        let spec = match treatment {
            Some(Spec(s)) => Some(s.to_owned()),
            _ => spec_for(&case.format, case.log_format.as_deref()),
        };
        let Some(spec) = spec else {
            failures.push(format!("line {}: format {:?} has no spec and no deviation", case.line_no, case.format));
            continue;
        };
        let format = match (Format::from_spec(&spec), treatment) {
            (Ok(f), Some(NoRequestFormat)) => {
                failures.push(format!("line {}: {spec:?} compiled but was expected to be refused", case.line_no));
                drop(f);
                continue;
            }
            (Err(e), Some(NoRequestFormat)) => {
                assert!(e.message.contains("no request"), "line {}: {e}", case.line_no);
                no_request += 1;
                continue;
            }
            (Ok(f), _) => f,
            (Err(e), _) => {
                failures.push(format!("line {}: {spec:?} does not compile: {e}", case.line_no));
                continue;
            }
        };
        checked += 1;
        // A log reader hands over lines without their `\n` (a `\r` before it is the parser's).
        let line = case.line.strip_suffix('\n').unwrap_or(&case.line);
        let parsed = format.parse_line(line.as_bytes());
        match (case.valid, treatment, parsed) {
            (_, Some(Rejected(kind)), Err(e)) if e.reason.kind() == kind => rejected_as_decided += 1,
            (_, Some(Rejected(kind)), got) => {
                failures.push(format!("line {}: expected rejection {kind}, got {got:?}", case.line_no));
            }
            (true, _, Ok(e)) => {
                let mut expect = case.expect.clone();
                match treatment {
                    Some(Target(t)) => expect["path"] = t.into(),
                    Some(Time(t)) => {
                        expect["timestamp_utc"] = t.into();
                        expect["timestamp"] = Value::Null;
                    }
                    _ => {}
                }
                let diffs = compare(&expect, &spec, &e);
                if !diffs.is_empty() {
                    failures.push(format!("line {} ({}): {}", case.line_no, case.source, diffs.join("; ")));
                }
            }
            (true, _, Err(e)) => {
                failures.push(format!(
                    "line {} ({}): rejected: {e} [{}]\n    {}",
                    case.line_no,
                    case.source,
                    e.reason.kind(),
                    case.line
                ));
            }
            (false, _, Ok(e)) => failures.push(format!("line {}: invalid line accepted: {e:?}", case.line_no)),
            (false, _, Err(_)) => {}
        }
    }
    let stale: Vec<_> = DEVIATIONS.iter().filter(|d| !used.contains(&d.0)).map(|d| d.0).collect();
    println!(
        "{} cases: {checked} checked ({rejected_as_decided} rejected by decision), {no_request} formats refused (no request), {unsupported} unsupported",
        cases.len()
    );
    assert!(stale.is_empty(), "deviations for lines that are not in cases.jsonl: {stale:?}");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}

/// Each log of `logs/` with the format SOURCES.md gives it, and the lines (1-based, blank lines
/// not counted as lines to parse) sluice is known to reject, with why.
const LOGS: &[(&str, &str, &[usize], &str)] = &[
    ("apachelogs-vhost_combined-with-bad-line.log", "apache-vhost", &[5], "line 5 is the text `Bad line`"),
    ("beats-filebeat-apache-access-darwin-2.4.23.log", "apache-common", &[3], "request `-` (408)"),
    (
        "beats-filebeat-apache-access-ssl-request.log",
        r#"apache:%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x \"%r\" %b"#,
        &[],
        "",
    ),
    ("beats-filebeat-apache-access-test-vhost.log", VHOST_APACHE, &[], ""),
    (
        "beats-filebeat-apache-access-test.log",
        "apache-combined",
        &[1, 3, 4, 5, 6, 7],
        "a mix: common lines 1 and 3, a trailing `\"-\"` on 4 and 5 (extra_fields), request `-` on 6, vhost prefix on 7 (space_in_field)",
    ),
    (
        "beats-filebeat-nginx-access-test-with-host.log",
        "apache-vhost",
        &[1, 2, 3, 5, 6, 7, 8, 9, 10],
        "a mix: X-Forwarded-For lists (space_in_field), `unix:` socket and `hello`/empty requests, trailing `\"-\"`",
    ),
    (
        "beats-filebeat-nginx-access-test.log",
        "nginx",
        &[1, 2, 3, 5, 6, 7],
        "X-Forwarded-For lists where the address is (space_in_field), a trailing `\"-\"` (extra_fields), an empty request",
    ),
    (
        "crowdsec-apache2-logs-mixed.log",
        "apache-combined",
        &[4, 6, 7, 8, 9],
        "vhost-prefixed lines 4 and 7 (space_in_field), a common line (6), Apache error-log lines",
    ),
    (
        "crowdsec-apache2-malformed-tls-handshake.log",
        "apache-combined",
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "every line is a TLS handshake sent to plain HTTP",
    ),
    ("crowdsec-http-dos-bypass-cache.log", "nginx", &[], ""),
    ("crowdsec-invalid-http-versions.log", "nginx", &[], ""),
    (
        "crowdsec-nginx-http-malformed-binary-requests.log",
        "nginx",
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "every request line is scanner junk (Gh0st, TLS, RDP, njRAT, HELP, batman)",
    ),
    (
        "crowdsec-nginx-proxy-manager.log",
        NPM_PROXY,
        &[2, 3, 5, 6, 11, 12, 13, 14],
        "a mixed file: read as NPM `proxy`, the `standard` lines (11-14), combined lines (2, 3) and error-log lines (5, 6) do not fit",
    ),
    ("crowdsec-nginx-sqli-probing.log", "nginx", &[], ""),
    ("crowdsec-nginx-xss-probing.log", "nginx", &[], ""),
    (
        "crowdsec-nginx_http-logs-mixed.log",
        "nginx",
        &[4, 5, 6, 8, 9],
        "lines 4-6 have a vhost prefix (space_in_field), line 8 lacks the user field, line 9 is an error-log line",
    ),
    ("crowdsec-traefik-json.log", "json", &[], ""),
    (
        "elastic-examples-apache_logs-combined.log",
        "apache-combined",
        &[8899],
        "line 8899 is cut off inside the user agent",
    ),
    (
        "elastic-integrations-nginx-test-access.log",
        "nginx",
        &[13, 14],
        "lines 13-14 have a vhost prefix (space_in_field)",
    ),
    ("fail2ban-apache-badbots.log", "apache-combined", &[4], "line 4 has a vhost prefix (space_in_field)"),
    (
        "fail2ban-apache-fakegooglebot.log",
        "apache-vhost",
        &[1, 2],
        "four fields before a timestamp without zone: not combined (line 3 is vhost + combined)",
    ),
    (
        "fail2ban-nginx-bad-request.log",
        "nginx-main",
        &[1, 2, 3, 5, 6],
        "empty, RDP-cookie, HELP and other non-HTTP request lines",
    ),
    ("fail2ban-nginx-botsearch.log", "nginx-main", &[9, 10, 11, 12, 13, 14], "nginx error-log lines"),
    ("fail2ban-traefik-auth.log", "traefik", &[], ""),
    ("goaccess-ci-vcombined.log", "apache-vhost", &[3], "request `-` (408)"),
    ("gonx-example-access-custom.log", GONX, &[], ""),
    (
        "lnav-caddy_log.0-json.log",
        "json",
        &[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
            31, 32, 33, 34, 35, 36,
        ],
        "Caddy start-up messages: only lines 16, 37-39 are access entries",
    ),
    ("lnav-caddy_log.1-json.log", "json", &[], ""),
    ("lnav-logfile_access_log.0-combined.log", "apache-combined", &[], ""),
    ("lnav-logfile_access_log.1-dash-request.log", "apache-combined", &[1], "request `-`"),
    (
        "lnav-logfile_bad_access_log.0-missing-field.log",
        "apache-combined",
        &[2],
        "line 2 lacks the ident and user fields",
    ),
    (
        "lnav-regexp_access_log-vhost-user-duration.log",
        r#"apache:%v:%p %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D"#,
        &[],
        "",
    ),
    ("lnav-shop_access_log-zanbil-nginx-xff.log", "nginx-main", &[], ""),
    ("logparser-hackers-access-combined.log", "apache-combined", &[], ""),
    ("logparser-inputformat-access-combined-odd-referer.log", "apache-combined", &[], ""),
    ("matomo-caddy_json.log", "json", &[], ""),
    ("matomo-common.log", "apache-common", &[], ""),
    ("matomo-common_complete.log", VHOST_APACHE, &[], ""),
    ("matomo-common_encoding_big5.log", VHOST_APACHE, &[], ""),
    ("matomo-common_vhost.log", r#"apache:%v %h %l %u %t "%r" %>s %b"#, &[], ""),
    ("matomo-icecast2.log", r#"apache:%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %T"#, &[], ""),
    ("matomo-logs_to_tests.log", "apache-combined", &[5], "a `#` comment line"),
    ("matomo-ncsa_extended.log", "apache-combined", &[], ""),
    ("matomo-nginx_json.log", "json", &[], ""),
    ("matomo-s3.log", S3, &[], ""),
    ("matomo-traefik_json.log", "json", &[], ""),
    ("mtail-apache-combined-ipv6.log", "apache-combined", &[], ""),
    ("mtail-apache-common-with-D.log", r#"apache:%h %l %u %t "%r" %>s %b %D "%{Referer}i" "%{User-agent}i""#, &[], ""),
    ("mtail-lighttpd_access.log", LIGHTTPD, &[], ""),
    ("rla-apache_combined.log", "apache-combined", &[], ""),
    ("rla-apache_common.log", "apache-common", &[], ""),
];

/// What `auto` (`Format::sniff` over the first 50 lines) must choose for some of the logs.
/// Apache combined logs whose first lines show no Apache trait (`-` bytes, `\"`) come out as
/// `nginx`: the layouts are the same, so the entries are too. Logs no preset reads completely
/// (a field more or less than any preset) must fail, not be read with fields dropped.
const AUTO: &[(&str, Option<&str>)] = &[
    ("lnav-shop_access_log-zanbil-nginx-xff.log", Some("nginx-main")),
    ("crowdsec-http-dos-bypass-cache.log", Some("nginx")),
    ("crowdsec-nginx-http-malformed-binary-requests.log", Some("nginx")),
    ("fail2ban-traefik-auth.log", Some("traefik")),
    ("beats-filebeat-apache-access-test-vhost.log", Some("apache-vhost")),
    ("matomo-common_complete.log", Some("apache-vhost")),
    ("elastic-examples-apache_logs-combined.log", Some("nginx")),
    // `%v %h … %b` (vhost + common): no preset; apache-common must not read the vhost as %h.
    ("matomo-common_vhost.log", None),
    // `… %b %D "%{Referer}i" "%{User-agent}i"`: no preset; apache-common must not drop the rest.
    ("mtail-apache-common-with-D.log", None),
    ("matomo-icecast2.log", None),
    ("lnav-regexp_access_log-vhost-user-duration.log", None),
    ("matomo-logs_to_tests.log", Some("apache-combined")),
    ("mtail-apache-combined-ipv6.log", Some("apache-combined")),
    ("rla-apache_common.log", Some("apache-common")),
    ("apachelogs-vhost_combined-with-bad-line.log", Some("apache-vhost")),
    ("goaccess-ci-vcombined.log", Some("apache-vhost")),
    ("crowdsec-traefik-json.log", Some("json")),
    ("lnav-caddy_log.0-json.log", Some("json")),
    ("gonx-example-access-custom.log", None),
];

#[test]
fn real_logs() {
    let Some(dir) = corpus("real_logs") else { return };
    let logs = dir.join("logs");
    let mut listed = BTreeSet::new();
    let mut problems = vec![];
    for (file, spec, known_bad, why) in LOGS {
        listed.insert(*file);
        let format = Format::from_spec(spec).unwrap_or_else(|e| panic!("{file}: {e}"));
        let data = std::fs::read(logs.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut total, mut rejected) = (0, BTreeSet::new());
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for (i, line) in data.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            total += 1;
            if let Err(e) = format.parse_line(line) {
                rejected.insert(i + 1);
                *kinds.entry(e.reason.kind()).or_default() += 1;
            }
        }
        let share = 100.0 * (total - rejected.len()) as f64 / total as f64;
        println!("{file}: {share:.1}% of {total} lines accepted with {spec}; rejected {rejected:?} {kinds:?} {why}");
        let sample: Vec<&[u8]> = data.split(|&b| b == b'\n').take(50).collect();
        let sniffed = Format::sniff(&sample).map(|f| f.name().to_owned()).ok();
        println!("    auto: {sniffed:?}");
        if let Some((_, want)) = AUTO.iter().find(|(f, _)| f == file)
            && sniffed.as_deref() != *want
        {
            problems.push(format!("{file}: auto chose {sniffed:?}, expected {want:?}"));
        }
        let expected: BTreeSet<usize> = known_bad.iter().copied().collect();
        if rejected != expected {
            problems.push(format!("{file}: rejected lines {rejected:?}, expected {expected:?}"));
        }
    }
    let mut unlisted = vec![];
    for entry in std::fs::read_dir(&logs).expect("read logs/") {
        let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
        if !listed.contains(name.as_str()) {
            unlisted.push(name);
        }
    }
    unlisted.sort();
    assert!(unlisted.is_empty(), "logs without a format in LOGS: {unlisted:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
