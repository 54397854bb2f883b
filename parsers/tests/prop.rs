//! Property tests: entries written out the way each server writes them (with its own escaping)
//! parse back equal, and no input bytes make any format panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, Timelike};
use proptest::collection::vec;
use proptest::prelude::*;
use sluice_parsers::{Entry, Format};

/// One request, as a server would have seen it.
#[derive(Debug, Clone)]
struct Record {
    addr: IpAddr,
    user: Option<String>,
    time: DateTime<FixedOffset>,
    method: String,
    target: Vec<u8>,
    protocol: Option<&'static str>,
    status: u16,
    bytes: u64,
    referer: Option<Vec<u8>>,
    agent: Option<Vec<u8>>,
    forwarded_for: Option<Vec<u8>>,
    vhost: String,
    /// `None`: the vhost is logged without its port (`%v %h …`).
    port: Option<u16>,
    /// Traefik's CLF: request count, router name, server URL, duration.
    traefik: (u32, String, String, u32),
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
}

fn time() -> impl Strategy<Value = DateTime<FixedOffset>> {
    // 1971..2037, any zone from -23:59 to +23:59.
    (31_536_000i64..2_145_916_800, -1439i32..=1439).prop_map(|(secs, minutes)| {
        let offset = FixedOffset::east_opt(minutes * 60).expect("offset in range");
        DateTime::from_timestamp(secs, 0).expect("in range").with_timezone(&offset)
    })
}

/// Any bytes but a space (a target with a space is only unambiguous with a protocol, and the
/// generator may leave the protocol out).
fn target() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>().prop_filter("no space", |b| *b != b' '), 0..40).prop_map(|mut t| {
        t.insert(0, b'/');
        t
    })
}

/// Free text for quoted fields: quotes, backslashes, control and non-UTF-8 bytes included; `-`
/// alone means "absent" in a log, so it is not generated as a value.
fn free_text() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(
        prop_oneof![
            vec(any::<u8>(), 0..60),
            "[ -~]{0,60}".prop_map(String::into_bytes),
            Just(br#"Mozilla/5.0 "quoted" \ back\slash"#.to_vec()),
        ]
        .prop_filter("`-` is absent", |t| t != b"-"),
    )
}

fn record() -> impl Strategy<Value = Record> {
    (
        (addr(), prop::option::of("[a-z][a-z0-9._@]{0,12}"), time()),
        (
            prop_oneof![Just("GET".to_string()), Just("POST".to_string()), "[A-Z]{1,12}"],
            target(),
            prop::option::of(prop::sample::select(vec!["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3"])),
        ),
        (100u16..=599, any::<u64>(), free_text(), free_text(), free_text()),
        ("[a-z0-9][a-z0-9.-]{0,20}", prop::option::of(1u16..)),
        (any::<u32>(), "[ -!#-\\[\\]-~]{0,30}", "[ -!#-\\[\\]-~]{0,30}", 0u32..100_000),
    )
        .prop_map(
            |(
                (addr, user, time),
                (method, target, protocol),
                (status, bytes, referer, agent, forwarded_for),
                (vhost, port),
                traefik,
            )| {
                Record {
                    addr,
                    user,
                    time,
                    method,
                    target,
                    protocol,
                    status,
                    bytes,
                    referer,
                    agent,
                    forwarded_for,
                    vhost,
                    port,
                    traefik,
                }
            },
        )
}

/// nginx `escape=default`: `"`, `\`, control bytes and bytes ≥ 0x7F as `\xXX`, upper-case hex.
fn nginx_escape(v: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7F).contains(&b) {
            out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// Apache's `ap_escape_logitem`: `\"`, `\\`, C escapes for whitespace, `\xhh` (lower case).
fn apache_escape(v: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(br#"\""#),
            b'\\' => out.extend_from_slice(br"\\"),
            b'\n' => out.extend_from_slice(br"\n"),
            b'\t' => out.extend_from_slice(br"\t"),
            b'\r' => out.extend_from_slice(br"\r"),
            0x0B => out.extend_from_slice(br"\v"),
            0x0C => out.extend_from_slice(br"\f"),
            0x08 => out.extend_from_slice(br"\b"),
            b if !(0x20..0x7F).contains(&b) => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Nginx,
    Apache,
}

fn request(r: &Record, server: Server) -> Vec<u8> {
    let escape = match server {
        Server::Nginx => nginx_escape,
        Server::Apache => apache_escape,
    };
    let mut out = format!("{} ", r.method).into_bytes();
    out.extend(escape(&r.target));
    if let Some(p) = r.protocol {
        out.extend_from_slice(format!(" {p}").as_bytes());
    }
    out
}

fn quoted(v: &Option<Vec<u8>>, server: Server) -> Vec<u8> {
    let mut out = vec![b'"'];
    match v {
        Some(v) if server == Server::Nginx => out.extend(nginx_escape(v)),
        Some(v) => out.extend(apache_escape(v)),
        None => out.push(b'-'),
    }
    out.push(b'"');
    out
}

/// Writes a record the way `preset` logs it.
fn write(r: &Record, preset: &str) -> Vec<u8> {
    let server = if preset.starts_with("nginx") { Server::Nginx } else { Server::Apache };
    let mut line = vec![];
    if preset == "apache-vhost" {
        match r.port {
            Some(port) => line.extend_from_slice(format!("{}:{port} ", r.vhost).as_bytes()),
            None => line.extend_from_slice(format!("{} ", r.vhost).as_bytes()),
        }
    }
    let user = r.user.as_deref().unwrap_or("-");
    let time = r.time.format("%d/%b/%Y:%H:%M:%S %z");
    line.extend_from_slice(format!("{} - {user} [{time}] ", r.addr).as_bytes());
    line.push(b'"');
    line.extend(request(r, server));
    line.push(b'"');
    // Apache's %b writes `-` for zero bytes; %O (Debian's vhost_combined) writes 0.
    let percent_b =
        matches!(preset, "apache-common" | "apache-combined") || (preset == "apache-vhost" && r.port.is_none());
    let bytes = if r.bytes == 0 && percent_b { "-".to_string() } else { r.bytes.to_string() };
    line.extend_from_slice(format!(" {} {bytes}", r.status).as_bytes());
    if preset != "apache-common" {
        line.push(b' ');
        line.extend(quoted(&r.referer, server));
        line.push(b' ');
        line.extend(quoted(&r.agent, server));
    }
    if preset == "nginx-main" {
        line.push(b' ');
        line.extend(quoted(&r.forwarded_for, server));
    }
    if preset == "traefik" {
        let (count, router, url, ms) = &r.traefik;
        line.extend_from_slice(format!(r#" {count} "{router}" "{url}" {ms}ms"#).as_bytes());
    }
    line
}

fn check(r: &Record, preset: &str, e: &Entry) -> Result<(), TestCaseError> {
    let addr = r.addr.to_string();
    prop_assert_eq!(e.remote_addr.as_deref(), Some(addr.as_bytes()));
    prop_assert_eq!(e.remote_user.as_deref(), r.user.as_deref().map(str::as_bytes));
    prop_assert_eq!(e.time, Some(r.time));
    prop_assert_eq!(&*e.method, r.method.as_bytes());
    prop_assert_eq!(&*e.target, &r.target[..], "{}", preset);
    prop_assert_eq!(e.protocol.as_deref(), r.protocol.map(str::as_bytes));
    prop_assert_eq!(e.status, Some(r.status));
    prop_assert_eq!(e.bytes, Some(r.bytes));
    if preset != "apache-common" {
        prop_assert_eq!(e.referer.as_deref(), r.referer.as_deref());
        prop_assert_eq!(e.user_agent.as_deref(), r.agent.as_deref());
    }
    if preset == "nginx-main" {
        prop_assert_eq!(e.header("x-forwarded-for"), r.forwarded_for.as_deref());
    }
    if preset == "apache-vhost" {
        prop_assert_eq!(e.vhost.as_deref(), Some(r.vhost.as_bytes()));
        let port = r.port.map(|p| p.to_string());
        prop_assert_eq!(e.field("%p"), port.as_deref().map(str::as_bytes));
    }
    if preset == "traefik" {
        let (count, router, url, ms) = &r.traefik;
        prop_assert_eq!(e.request_time_ms, Some(f64::from(*ms)));
        let count = count.to_string();
        prop_assert_eq!(e.field("%{requests}n"), Some(count.as_bytes()));
        prop_assert_eq!(e.field("%{router}n"), Some(router.as_bytes()).filter(|r| *r != b"-"));
        prop_assert_eq!(e.field("%{server_url}n"), Some(url.as_bytes()).filter(|u| *u != b"-"));
    }
    Ok(())
}

/// What a line of one layout and any other format reading it must agree on: the fields both
/// name. (nginx combined and Apache combined are one layout, so either may read the other.)
fn check_shared(r: &Record, e: &Entry) -> Result<(), TestCaseError> {
    let addr = r.addr.to_string();
    prop_assert_eq!(e.remote_addr.as_deref(), Some(addr.as_bytes()));
    prop_assert_eq!(e.remote_user.as_deref(), r.user.as_deref().map(str::as_bytes));
    prop_assert_eq!(e.time, Some(r.time));
    prop_assert_eq!(&*e.method, r.method.as_bytes());
    prop_assert_eq!(&*e.target, &r.target[..]);
    prop_assert_eq!(e.status, Some(r.status));
    Ok(())
}

const PRESETS: &[&str] = &["nginx", "nginx-main", "apache-common", "apache-combined", "apache-vhost", "traefik"];

/// Presets with the same layout: what one writes, the other reads the same.
fn same_layout(a: &str, b: &str) -> bool {
    let combined = |p: &str| matches!(p, "nginx" | "apache-combined");
    a == b || (combined(a) && combined(b))
}

static FORMATS: LazyLock<Vec<Format>> = LazyLock::new(|| {
    let mut specs: Vec<&str> = PRESETS.to_vec();
    specs.extend([
        "json",
        r#"nginx:$remote_addr [$time_local] "$host$request_uri" $status rt=$request_time "$http_x_id" $msec $time_iso8601"#,
        r#"nginx:escape=json {"r":"$request","s":$status,"u":"$http_user_agent"}"#,
        r#"apache:%h %l %u %t \"%r\" %>s %b %D \"%{Referer}i\" \"%{User-agent}i\" %{%Y-%m-%d %H:%M:%S %z}t [%{msec_frac}t]"#,
        r#"apache:%m %U%q %H %{sec}t %r"#,
        r#"apache:[%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t] %v %h "%r""#,
    ]);
    specs.iter().map(|s| Format::from_spec(s).expect("compiles")).collect()
});

proptest! {
    // 256 cases by default; PROPTEST_CASES=… for a longer hunt.
    #![proptest_config(ProptestConfig::default())]

    /// What a server writes, sluice reads back, in every preset, with that server's escaping.
    #[test]
    fn presets_round_trip(r in record()) {
        for preset in PRESETS {
            let line = write(&r, preset);
            let format = Format::from_spec(preset).expect("preset");
            let e = format.parse_line(&line).map_err(|e| {
                TestCaseError::fail(format!("{preset} rejected {:?}: {e}", String::from_utf8_lossy(&line)))
            })?;
            check(&r, preset, &e).map_err(|err| TestCaseError::fail(format!("{err} line {:?}", String::from_utf8_lossy(&line))))?;
        }
    }

    /// The other server's escaping is accepted too (real logs mix them).
    #[test]
    fn both_escape_styles_read_everywhere(r in record()) {
        let nginx_line = write(&r, "nginx");
        let apache = Format::from_spec("apache-combined").expect("preset");
        let e = apache.parse_line(&nginx_line);
        prop_assert!(e.is_ok(), "{:?}", e);
        check(&r, "apache-combined", &e.expect("checked"))?;
    }

    /// A line of one layout is never read by a preset of another with fields dropped, merged
    /// or shifted: it is rejected, or (same layout) read the same.
    #[test]
    fn other_presets_reject_or_read_the_same(r in record()) {
        for written in PRESETS {
            let line = write(&r, written);
            for reader in PRESETS.iter().filter(|p| *p != written) {
                let format = Format::from_spec(reader).expect("preset");
                if let Ok(e) = format.parse_line(&line) {
                    prop_assert!(
                        same_layout(written, reader),
                        "{} line read by {}: {:?}\n  {:?}", written, reader, String::from_utf8_lossy(&line), e
                    );
                    check_shared(&r, &e)?;
                }
            }
        }
    }

    /// `auto` over lines of one layout picks that layout's preset (or one of the same layout).
    #[test]
    fn sniff_picks_the_writers_layout(records in vec(record(), 1..6)) {
        for written in PRESETS {
            let lines: Vec<Vec<u8>> = records.iter().map(|r| write(r, written)).collect();
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let picked = Format::sniff(&refs).map_err(|e| TestCaseError::fail(format!("{written}: {e}")))?;
            prop_assert!(same_layout(written, picked.name()), "{} lines sniffed as {}", written, picked.name());
        }
    }

    /// The mod_log_config manual's millisecond time, with the offset logged apart, comes back as
    /// the same instant and offset.
    #[test]
    fn apache_time_with_separate_offset_round_trips(r in record(), millis in 0u32..1000) {
        let format = Format::from_spec(r#"apache:[%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t] "%r""#).expect("compiles");
        let t = r.time.with_nanosecond(millis * 1_000_000).expect("valid");
        let mut line = t.format("[%d/%b/%Y %T.%3f %z] \"").to_string().into_bytes();
        line.extend(request(&r, Server::Apache));
        line.push(b'"');
        let e = format.parse_line(&line).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&line))))?;
        prop_assert_eq!(e.time, Some(t));
        prop_assert_eq!(e.time.map(|t| t.offset().local_minus_utc()), Some(t.offset().local_minus_utc()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        for f in FORMATS.iter() {
            let _ = f.parse_line(&bytes);
        }
        let _ = Format::sniff(&[&bytes]);
    }

    /// Valid lines with a few bytes changed, inserted or cut: closer to what breaks parsers.
    #[test]
    fn damaged_lines_never_panic(r in record(), edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
        for preset in PRESETS {
            let mut line = write(&r, preset);
            for (at, byte, op) in &edits {
                let i = at.index(line.len() + 1);
                match op {
                    0 if i < line.len() => line[i] = *byte,
                    1 => line.insert(i, *byte),
                    _ => line.truncate(i),
                }
            }
            for f in FORMATS.iter() {
                let _ = f.parse_line(&line);
            }
        }
    }

    /// Format strings built from pieces of real ones compile or fail with a position inside them.
    #[test]
    fn format_strings_never_panic(pieces in vec(prop::sample::select(vec![
        "$remote_addr", "$request", "${status}", "$", "${", "$http_x", " ", "\"", "[", "]", "%h", "%r",
        "%{Referer}i", "%{", "%>s", "%Z", "%", "%%", "\\\"", "%400r", "%{%Y-%m-%d}t", "%U", "%q", "é",
    ]), 0..12)) {
        let s: String = pieces.concat();
        for prefix in ["nginx:", "apache:"] {
            if let Err(e) = Format::from_spec(&format!("{prefix}{s}")) {
                prop_assert!(e.position <= s.chars().count(), "{e}");
                let _ = e.to_string();
            }
        }
    }
}
