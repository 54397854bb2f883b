//! Table tests: every preset, custom nginx and Apache strings, both servers' escapes, `-`
//! handling, IPv6, odd zones, glued variables, hostile lines and format strings that must not
//! compile.

use std::borrow::Cow;

use sluice_parsers::{Entry, Format, FormatError, LineError, Text};

fn format(spec: &str) -> Format {
    Format::from_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn ok<'a>(f: &'a Format, line: &'a str) -> Entry<'a> {
    f.parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{} rejected {line:?}: {e}", f.name()))
}

fn err(f: &Format, line: &str) -> LineError {
    match f.parse_line(line.as_bytes()) {
        Ok(e) => panic!("{} accepted {line:?}: {e:?}", f.name()),
        Err(e) => e,
    }
}

fn text<'a>(t: &'a Option<Text<'_>>) -> Option<&'a str> {
    t.as_deref().map(|b| std::str::from_utf8(b).unwrap())
}

fn s<'a>(t: &'a Text<'_>) -> &'a str {
    std::str::from_utf8(t).unwrap()
}

fn utc(e: &Entry) -> String {
    e.time.unwrap().naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

const NGINX_LINE: &str = r#"203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /search?q=a%20b&x=1 HTTP/1.1" 200 2326 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/118.0""#;

#[test]
fn nginx_combined_all_fields_borrowed() {
    let f = format("nginx");
    let e = ok(&f, NGINX_LINE);
    assert_eq!(text(&e.remote_addr), Some("203.0.113.9"));
    assert_eq!(text(&e.remote_user), Some("alice"));
    assert_eq!(e.time.unwrap().to_rfc3339(), "2000-10-10T13:55:36-07:00");
    assert_eq!((s(&e.method), s(&e.target)), ("GET", "/search?q=a%20b&x=1"));
    assert_eq!(text(&e.protocol), Some("HTTP/1.1"));
    assert_eq!((e.status, e.bytes), (Some(200), Some(2326)));
    assert_eq!(text(&e.referer), Some("https://example.com/"));
    assert_eq!(text(&e.user_agent), Some("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/118.0"));
    assert!(e.headers.is_empty() && e.fields.is_empty() && e.vhost.is_none());
    // Zero-copy: nothing to decode, so everything borrows from the line.
    assert!(matches!(e.target, Cow::Borrowed(_)) && matches!(e.user_agent, Some(Cow::Borrowed(_))));
    assert_eq!(f.name(), "nginx");
}

#[test]
fn nginx_dashes_ipv6_zones_and_escapes() {
    let f = format("nginx");
    let e = ok(
        &f,
        r#"2001:41d0:8:f69::1 - - [31/Jan/2019:09:15:02 +0330] "GET /p/\xD8\xB9?a=\x22b\x22 HTTP/2.0" 304 0 "-" "Bot \x22quoted\x22 \x5C back""#,
    );
    assert_eq!(text(&e.remote_addr), Some("2001:41d0:8:f69::1"));
    assert_eq!((e.remote_user.as_ref(), e.referer.as_ref()), (None, None));
    assert_eq!(e.time.unwrap().to_rfc3339(), "2019-01-31T09:15:02+03:30");
    assert_eq!(utc(&e), "2019-01-31T05:45:02");
    // `\xD8\xB9` is UTF-8 for ع; `\x22` is `"` (nginx's way of writing it).
    assert_eq!(&*e.target, "/p/ع?a=\"b\"".as_bytes());
    assert_eq!(text(&e.user_agent), Some(r#"Bot "quoted" \ back"#));
    assert!(matches!(e.user_agent, Some(Cow::Owned(_))));
    assert_eq!(text(&e.protocol), Some("HTTP/2.0"));
}

#[test]
fn non_utf8_target_survives() {
    let f = format("apache-combined");
    let mut line = br#"1.2.3.4 - - [10/Feb/2012:16:42:07 -0500] "GET /"#.to_vec();
    line.extend_from_slice(b"\xa4\xa4\xa4\xe5");
    line.extend_from_slice(br#" HTTP/1.1" 200 368 "-" "-""#);
    let e = f.parse_line(&line).unwrap();
    assert_eq!(&*e.target, b"/\xa4\xa4\xa4\xe5");
}

#[test]
fn apache_escapes_and_dashes() {
    let f = format("apache-combined");
    let e = ok(
        &f,
        r#"192.168.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET /\" HTTP/1.1" 304 - "referer \\ \"" "user agent \\ \" \xe4\xb8\xad \t""#,
    );
    assert_eq!(s(&e.target), "/\"");
    assert_eq!(text(&e.referer), Some(r#"referer \ ""#));
    assert_eq!(text(&e.user_agent), Some("user agent \\ \" 中 \t"));
    // Apache writes `-` for zero bytes with %b.
    assert_eq!(e.bytes, Some(0));
    // A status of `-` (aborted request) is accepted as unknown.
    let e = ok(
        &f,
        r#"83.149.9.216 - a.user [11/Jan/2020:23:05:27 +0100] "OPTIONS /remote.php/ HTTP/1.1" - 7908 "-" "monitoring-client (v2.2)""#,
    );
    assert_eq!((e.status, e.bytes, text(&e.remote_user)), (None, Some(7908), Some("a.user")));
}

#[test]
fn nginx_bytes_dash_is_unknown() {
    let e_line = r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 - "-" "-""#;
    let f = format("nginx");
    assert_eq!(ok(&f, e_line).bytes, None);
}

#[test]
fn no_format_drops_trailing_fields() {
    let line = r#"10.0.0.2 - username [18/Nov/2018:21:34:34 +0000] "GET /dashboard/ HTTP/2.0" 401 17 "-" "Mozilla/5.0" 72 "Auth for frontend" "/dashboard/" 0ms"#;
    // Presets are as strict as custom formats: the fields after combined are reported, not dropped.
    let e = err(&format("nginx"), line);
    assert_eq!((e.reason.kind(), e.column), ("extra_fields", 101));
    assert!(e.to_string().contains("more fields after the end of the format"), "{e}");
    let custom = format(
        r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
    );
    let e = err(&custom, line);
    assert_eq!((e.reason.kind(), e.column), ("extra_fields", 101));
    // Traefik's own CLF has a preset that names them.
    let traefik = format("traefik");
    let e = ok(&traefik, line);
    assert_eq!((e.status, text(&e.user_agent), e.request_time_ms), (Some(401), Some("Mozilla/5.0"), Some(0.0)));
    assert_eq!(
        (e.field("%{requests}n"), e.field("%{router}n"), e.field("%{server_url}n")),
        (Some(&b"72"[..]), Some(&b"Auth for frontend"[..]), Some(&b"/dashboard/"[..]))
    );
    // Combined read as common: the referer and user agent are not dropped (issue #11: a bot
    // filter on the user agent let 99 Googlebot lines through).
    let combined = r#"66.249.66.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 200 368 "-" "Googlebot/2.1""#;
    let e = err(&format("apache-common"), combined);
    assert_eq!((e.reason.kind(), e.column), ("extra_fields", 70));
    assert_eq!(
        err(
            &format("apache-common"),
            r#"1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368 junk"#
        )
        .reason
        .kind(),
        "extra_fields"
    );
    // nginx `main` read as combined: the quoted field after the user agent is not swallowed into it.
    let main = r#"172.24.0.3 - - [31/Dec/2024:17:32:06 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.11.1" "1.2.3.4""#;
    assert_eq!(err(&format("nginx"), main).reason.kind(), "extra_fields");
    // …but glued junk is not an extra field.
    assert_eq!(
        err(&format("apache-common"), r#"1.2.3.4 - u [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368junk"#)
            .reason
            .kind(),
        "bad_number"
    );
}

#[test]
fn nginx_main_forwarded_for_header() {
    let f = format("nginx-main");
    let e = ok(
        &f,
        r#"172.24.0.3 - - [31/Dec/2024:17:32:06 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.11.1" "1.2.3.4, 10.10.1.1""#,
    );
    assert_eq!(e.header("x-forwarded-for"), Some(&b"1.2.3.4, 10.10.1.1"[..]));
    let e = ok(&f, r#"172.24.0.3 - - [31/Dec/2024:17:32:06 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.11.1" "-""#);
    assert!(e.headers.is_empty());
}

#[test]
fn apache_vhost_preset() {
    let f = format("apache-vhost");
    let e = ok(
        &f,
        r#"www.varonathe.org:80 185.234.218.71 - - [14/Apr/2018:18:39:42 +0000] "GET / HTTP/1.1" 301 539 "-" "}__test|O:21:\"JDatabaseDriverMysqli\":3:{s:4:\"\\0\\0\\0a\";}""#,
    );
    assert_eq!(text(&e.vhost), Some("www.varonathe.org"));
    assert_eq!(e.field("%p"), Some(&b"80"[..]));
    assert_eq!(text(&e.remote_addr), Some("185.234.218.71"));
    assert_eq!(text(&e.user_agent), Some(r#"}__test|O:21:"JDatabaseDriverMysqli":3:{s:4:"\0\0\0a";}"#));
    assert_eq!(format("vhost_combined").name(), "apache-vhost");
    assert_eq!(format("common").name(), "apache-common");
    assert_eq!(format("combined").name(), "apache-combined");
}

#[test]
fn hostile_lines_are_rejected_with_a_kind_and_column() {
    let nginx = format("nginx");
    let apache = format("apache-combined");
    let head = "1.2.3.4 - - [29/Jul/2023:10:26:06 -0700] ";
    let cases: &[(&Format, String, &str, usize)] = &[
        (&nginx, String::new(), "empty", 1),
        (&nginx, "   ".into(), "empty", 1),
        (&nginx, format!(r#"{head}"-" 400 0 "-" "-""#), "not_http_request", 43),
        (&nginx, format!(r#"{head}"" 400 0 "-" "-""#), "not_http_request", 43),
        (&nginx, format!(r#"{head}"\x16\x03\x01\x00t\x01" 400 157 "-" "-""#), "not_http_request", 43),
        (&apache, format!(r#"{head}"\x16\x03\x01\x01 \x02" 400 226 "-" "-""#), "not_http_request", 43),
        (&nginx, format!(r#"{head}"Gh0st\xAD\x00\x00" 400 157 "-" "-""#), "not_http_request", 43),
        (&nginx, format!(r#"{head}"HELP" 400 157 "-" "-""#), "not_http_request", 47),
        (&nginx, format!(r#"{head}"GET / HTTP/1.1a" 400 157 "-" "-""#), "not_http_request", 49),
        (&nginx, format!(r#"{head}"GET / FOO/1.0" 400 157 "-" "-""#), "not_http_request", 49),
        (
            &nginx,
            format!(r#"{head}"lv|'|'|VHJvamFuX0M0NkY2RTk=|'|'|MARK|'|'|user" 400 157 "-" "-""#),
            "not_http_request",
            43,
        ),
        (
            &nginx,
            format!(r#"{head}"GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0 (compatible; Googlebot/2.1"#),
            "expected_closing_quote",
            108,
        ),
        (&nginx, format!(r#"{head}"GET / HTTP/1.1" 2000 1 "-" "-""#), "bad_status", 59),
        (&nginx, format!(r#"{head}"GET / HTTP/1.1" 200 12a "-" "-""#), "bad_number", 63),
        (&nginx, r#"1.2.3.4 - - [29/Feb/2023:10:26:06 -0700] "GET / HTTP/1.1" 200 1 "-" "-""#.into(), "bad_time", 14),
        (&nginx, r#"1.2.3.4 - - [29/Abc/2023:10:26:06 -0700] "GET / HTTP/1.1" 200 1 "-" "-""#.into(), "bad_time", 14),
        (&nginx, r#"1.2.3.4 - - [29/Jul/2023:10:26:06] "GET / HTTP/1.1" 200 1 "-" "-""#.into(), "bad_time", 14),
        (
            &nginx,
            r#"192.168.202.254 [20/Jul/2009:22:59:26 +0000] "GET / HTTP/1.0" 200 134 "-" "gPXE/0.9.7""#.into(),
            "expected_text",
            87,
        ),
        (
            &nginx,
            r#"2025/01/03 16:41:26 [error] 31#31: *3 open() "/usr/share/nginx/html/favicon.ico" failed"#.into(),
            "expected_text",
            88,
        ),
        (&apache, "Bad line".into(), "expected_space", 9),
        (
            &apache,
            r#"1.2.3.4 - - [29/Jul/2023:10:26:06 -0700] GET / HTTP/1.1 200 1 "-" "-""#.into(),
            "expected_quote",
            42,
        ),
    ];
    for (f, line, kind, column) in cases {
        let e = err(f, line);
        assert_eq!((e.reason.kind(), e.column), (*kind, *column), "{line:?}: {e}");
    }
}

#[test]
fn errors_display_column_and_reason() {
    let e = err(&format("nginx"), r#"1.2.3.4 - - [29/Jul/2023:10:26:06 -0700] "-" 400 0 "-" "-""#);
    assert_eq!(e.to_string(), "column 43: not an HTTP request: the request line is `-` (no request was read)");
    let e = err(&format("nginx"), r#"1.2.3.4 - - [29/Feb/2023:10:26:06 -0700] "GET / HTTP/1.1" 200 1 "-" "-""#);
    assert_eq!(e.to_string(), "column 14: bad timestamp");
    let _: &dyn std::error::Error = &e;
}

#[test]
fn trailing_cr_is_ignored() {
    let line = format!("{NGINX_LINE}\r");
    assert_eq!(ok(&format("nginx"), &line).status, Some(200));
}

#[test]
fn request_forms_kept_as_logged() {
    let f = format("nginx");
    let req = |r: &str| {
        let line = format!(r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "{r}" 200 1 "-" "-""#);
        let e = ok(&f, &line).into_owned();
        (s(&e.method).to_owned(), s(&e.target).to_owned(), text(&e.protocol).map(str::to_owned))
    };
    assert_eq!(req("OPTIONS * HTTP/1.0"), ("OPTIONS".into(), "*".into(), Some("HTTP/1.0".into())));
    assert_eq!(req("CONNECT 123.123.123.123 HTTP/1.1").1, "123.123.123.123");
    assert_eq!(req("GET http://example.com/x?y HTTP/1.1").1, "http://example.com/x?y");
    assert_eq!(req("GET /ImagineAURLHereThatIsTooLong").2, None);
    assert_eq!(req("GET /a[ ]b HTTP/1.1").1, "/a[ ]b");
    assert_eq!(req("GET / HTTP/3").2.as_deref(), Some("HTTP/3"));
    assert_eq!(req("PROPFIND /dav/ HTTP/1.1").0, "PROPFIND");
}

#[test]
fn json_nginx_caddy_traefik() {
    let f = format("json");
    let e = ok(
        &f,
        r#"{"msec": "1483455396.639", "remote_addr": "10.0.0.1", "request_method": "POST", "request_uri": "/api?x=1", "status": "201", "body_bytes_sent": 17, "http_referer": "", "http_user_agent": "curl/8", "request_time": "0.012", "http_x_forwarded_for": "1.1.1.1", "upstream_addr": "10.0.0.2:80"}"#,
    );
    assert_eq!((s(&e.method), s(&e.target)), ("POST", "/api?x=1"));
    assert_eq!((e.status, e.bytes, e.referer.as_ref()), (Some(201), Some(17), None));
    assert_eq!(e.time.unwrap().timestamp_millis(), 1483455396639);
    assert_eq!(e.request_time_ms, Some(12.0));
    assert_eq!(e.header("x-forwarded-for"), Some(&b"1.1.1.1"[..]));
    assert_eq!(e.field("upstream_addr"), Some(&b"10.0.0.2:80"[..]));
    assert!(matches!(e.target, Cow::Borrowed(_)));

    let caddy = r#"caddy  | {"level":"info","ts":1703373474.8155608,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"1.2.3.4","remote_port":"64985","client_ip":"5.6.7.8","proto":"HTTP/2.0","method":"GET","host":"example.com","uri":"/beta/?a=b","headers":{"User-Agent":["Firefox/121.0"],"Accept":["text/html"]}},"bytes_read":0,"duration":0.001335486,"size":3609,"status":200,"resp_headers":{"Etag":["\"ddnp8sh5vg3i58\""]}}"#;
    let e = ok(&f, caddy);
    assert_eq!((s(&e.method), s(&e.target), text(&e.protocol)), ("GET", "/beta/?a=b", Some("HTTP/2.0")));
    assert_eq!(
        (e.status, e.bytes, text(&e.remote_addr), text(&e.vhost)),
        (Some(200), Some(3609), Some("5.6.7.8"), Some("example.com"))
    );
    assert_eq!(text(&e.user_agent), Some("Firefox/121.0"));
    assert_eq!(e.header("accept"), Some(&b"text/html"[..]));
    assert!((e.request_time_ms.unwrap() - 1.335486).abs() < 1e-9);
    assert_eq!(utc(&e), "2023-12-23T23:17:54.815560800");

    let traefik = r#"{"ClientHost":"172.17.0.1","ClientUsername":"-","DownstreamContentSize":356,"DownstreamStatus":404,"Duration":215563,"OriginStatus":200,"RequestHost":"test.docker.localhost","RequestMethod":"GET","RequestPath":"/594VAEoi.dtd","RequestProtocol":"HTTP/1.1","ServiceURL":{"Scheme":"http","Host":"172.17.0.3:80"},"StartUTC":"2021-12-08T14:02:43.464763557Z","request_User-Agent":"Nikto","request_X-Real-Ip":"172.17.0.1","time":"2021-12-08T14:02:43Z"}"#;
    let e = ok(&f, traefik);
    assert_eq!((s(&e.target), e.status, e.bytes), ("/594VAEoi.dtd", Some(404), Some(356)));
    assert_eq!((text(&e.user_agent), text(&e.remote_user)), (Some("Nikto"), None));
    assert_eq!(e.header("x-real-ip"), Some(&b"172.17.0.1"[..]));
    assert!((e.request_time_ms.unwrap() - 0.215563).abs() < 1e-9);
    assert_eq!(utc(&e), "2021-12-08T14:02:43.464763557");
    assert_eq!(e.field("ServiceURL"), Some(&br#"{"Scheme":"http","Host":"172.17.0.3:80"}"#[..]));

    // A whole request line, with a JSON escape in it.
    let e = ok(&f, r#"{"request":"GET /a\"b HTTP/1.1","status":200,"time_local":"10/Oct/2000:13:55:36 -0700"}"#);
    assert_eq!(s(&e.target), "/a\"b");
    assert_eq!(utc(&e), "2000-10-10T20:55:36");
}

#[test]
fn json_rejections() {
    let f = format("json");
    let kind = |line: &str| err(&f, line).reason.kind();
    assert_eq!(kind(r#"{"level":"info","ts":1761019822.3,"msg":"using config from file"}"#), "missing_request");
    assert_eq!(kind("plain text"), "bad_json");
    assert_eq!(kind(r#"{"request_uri": "/x", "status": 200"#), "bad_json");
    assert_eq!(kind(r#"{"request_uri": "/x"} trailing"#), "bad_json");
    assert_eq!(kind(r#"{"request": "-", "status": 400}"#), "missing_request");
    assert_eq!(kind(r#"{"request": "\u0016\u0003\u0001", "status": 400}"#), "not_http_request");
    assert_eq!(kind(r#"{"request_uri": "/x", "status": "2000"}"#), "bad_status");
    assert_eq!(kind(r#"{"request_uri": "/x", "time_iso8601": "2021-02-30T00:00:00Z"}"#), "bad_time");
    assert_eq!(kind(""), "empty");
    let e = err(&f, r#"{"request_uri": "/x", "status": 200, }"#);
    assert_eq!(e.column, 38);
}

#[test]
fn custom_nginx_formats() {
    // Timing fields glued to literal text, quoted upstream lists.
    let f = format(
        r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" rt=$request_time uct="$upstream_connect_time" uht="$upstream_header_time" urt="$upstream_response_time""#,
    );
    let e = ok(
        &f,
        r#"10.1.1.1 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5 "-" "ua" "-" rt=0.050 uct="0.001, 0.002" uht="-" urt="0.049""#,
    );
    assert_eq!(e.request_time_ms, Some(50.0));
    assert_eq!(e.field("upstream_connect_time"), Some(&b"0.001, 0.002"[..]));
    assert_eq!((e.field("upstream_header_time"), e.field("upstream_response_time")), (None, Some(&b"0.049"[..])));

    // Variables glued together: `$host` ends where `$request_uri` must begin.
    let f = format(r#"nginx:$remote_addr [$time_local] "$host$request_uri" $status"#);
    let e = ok(&f, r#"1.2.3.4 [08/Nov/2013:13:39:18 +0000] "example.com/api/foo?bar=1" 200"#);
    assert_eq!((text(&e.vhost), s(&e.target), s(&e.method)), (Some("example.com"), "/api/foo?bar=1", "GET"));

    // Request parts apart, ingress-nginx style; `${var}` syntax.
    let f = format(
        r#"nginx:${remote_addr} - $remote_user [$time_local] "$request_method $uri $server_protocol" $status $body_bytes_sent [$proxy_upstream_name] [$proxy_alternative_upstream_name] $req_id"#,
    );
    let e = ok(&f, r#"1.2.3.4 - - [18/Mar/2023:15:00:00 +0000] "PUT /some/path HTTP/2.0" 200 12 [svc-9000] [] 7521"#);
    assert_eq!((s(&e.method), s(&e.target), text(&e.protocol)), ("PUT", "/some/path", Some("HTTP/2.0")));
    assert_eq!(
        (e.field("proxy_upstream_name"), e.field("proxy_alternative_upstream_name"), e.field("req_id")),
        (Some(&b"svc-9000"[..]), Some(&b""[..]), Some(&b"7521"[..]))
    );

    // `$uri$is_args$args`: joined into one borrowed target; an absent `$args` logs `-`.
    let f = format(r#"nginx:$remote_addr "$request_method $uri$is_args$args" $status"#);
    let e = ok(&f, r#"1.2.3.4 "GET /a?b=1" 200"#);
    assert!(matches!(e.target, Cow::Borrowed(b"/a?b=1")));
    assert_eq!(s(&ok(&f, r#"1.2.3.4 "GET /a-" 200"#).target), "/a");
    let f = format(r#"nginx:$remote_addr "$request_method $uri?$args" $status"#);
    assert_eq!(s(&ok(&f, r#"1.2.3.4 "GET /a?-" 200"#).target), "/a");
    assert_eq!(s(&ok(&f, r#"1.2.3.4 "GET /a?x=y" 200"#).target), "/a?x=y");

    // ISO time, msec, headers, body, host header as vhost.
    let f = format(
        r#"nginx:$time_iso8601 $msec "$request" $status "$http_host" "$http_x_request_id" "$request_body" $server_name"#,
    );
    let e = ok(
        &f,
        r#"2017-01-03T15:56:36+01:00 1483455396.639 "POST /form HTTP/1.1" 201 "shop.example" "abc-1" "a=1&b=\x22x\x22" -"#,
    );
    assert_eq!(e.time.unwrap().to_rfc3339(), "2017-01-03T15:56:36+01:00");
    assert_eq!(e.field("msec"), Some(&b"1483455396.639"[..]));
    assert_eq!(
        (text(&e.vhost), e.header("host"), e.header("x-request-id")),
        (Some("shop.example"), Some(&b"shop.example"[..]), Some(&b"abc-1"[..]))
    );
    assert_eq!(text(&e.body), Some(r#"a=1&b="x""#));

    // Nginx Proxy Manager: referer after the agent, bracketed labels.
    let f = format(
        r#"nginx:[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme $host "$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent" "$http_referer""#,
    );
    let e = ok(
        &f,
        r#"[01/Oct/2025:14:32:17 +0000] - 500 500 - POST https api.example.com "/v1/data" [Client 203.0.113.45] [Length 567] [Gzip -] [Sent-to 10.0.0.16:3000] "curl/7.68.0" "-""#,
    );
    assert_eq!((s(&e.method), s(&e.target), e.status, e.bytes), ("POST", "/v1/data", Some(500), Some(567)));
    assert_eq!(
        (text(&e.remote_addr), text(&e.vhost), text(&e.user_agent)),
        (Some("203.0.113.45"), Some("api.example.com"), Some("curl/7.68.0"))
    );

    // A JSON-looking format without escape=json is a template: `\x22` inside values.
    let f = format(
        r#"nginx:{"remote_addr": "$remote_addr", "request": "$request", "status": "$status", "http_user_agent": "$http_user_agent"}"#,
    );
    let e = ok(
        &f,
        r#"{"remote_addr": "1.2.3.4", "request": "GET /x HTTP/1.1", "status": "200", "http_user_agent": "a \x22b\x22"}"#,
    );
    assert_eq!(text(&e.user_agent), Some(r#"a "b""#));

    // escape=json: `\"` escapes, and an empty value means absent.
    let f = format(
        r#"nginx:escape=json {"request":"$request","status":$status,"request_time":$request_time,"ua":"$http_user_agent","ref":"$http_referer"}"#,
    );
    let e =
        ok(&f, r#"{"request":"GET /q?a=\"1\" HTTP/1.1","status":200,"request_time":0.005,"ua":"x \"y\"","ref":""}"#);
    assert_eq!((s(&e.target), text(&e.user_agent), e.referer.as_ref()), ("/q?a=\"1\"", Some(r#"x "y""#), None));
    assert_eq!(e.request_time_ms, Some(5.0));

    // A raw `"` inside the last quoted field does not end it early in a strict format.
    let f = format(r#"nginx:$remote_addr "$request" "$http_user_agent""#);
    let e = ok(&f, r#"1.2.3.4 "GET / HTTP/1.1" "Mozilla "compatible" x""#);
    assert_eq!(text(&e.user_agent), Some(r#"Mozilla "compatible" x"#));

    // The same variable twice, unknown variables kept as fields.
    let f = format(r#"nginx:$the_real_ip - [$the_real_ip] - $remote_user [$time_local] "$request" $status"#);
    let e = ok(&f, r#"1.2.3.4 - [1.2.3.4] - - [07/Aug/2020:15:50:07 +0800] "HEAD /v HTTP/1.1" 308"#);
    assert_eq!(e.fields.len(), 2);
}

#[test]
fn custom_apache_formats() {
    // %D is microseconds.
    let f = format(r#"apache:%h %l %u %t \"%r\" %>s %b %D \"%{Referer}i\" \"%{User-agent}i\""#);
    let e =
        ok(&f, r#"2001:db8::1 - - [04/Apr/2018:10:28:24 +0000] "GET /prefix HTTP/1.1" 304 - 3551 "-" "Mozilla/5.0""#);
    assert_eq!((e.bytes, e.request_time_ms, text(&e.user_agent)), (Some(0), Some(3.551), Some("Mozilla/5.0")));

    // strftime time, %U%q joined, %a:%{remote}p, <->, %P:%{tid}P.
    let f = format(
        r#"apache:%{%Y-%m-%d %H:%M:%S %z}t [%{msec_frac}t] %s %a:%{remote}p <-> %A:%p "%m" "%U%q" "%f" %P:%{tid}P "%R""#,
    );
    let e = ok(
        &f,
        r#"2019-05-05 20:49:14 +0000 [690] 403 172.21.0.1:44782 <-> 172.21.0.2:80 "GET" "/wsgi/test?q=foo" "/usr/local/app/run.wsgi" 16:140168282543872 "wsgi-script""#,
    );
    assert_eq!(e.time.unwrap().to_rfc3339(), "2019-05-05T20:49:14.690+00:00");
    assert_eq!(
        (s(&e.method), s(&e.target), e.status, text(&e.remote_addr)),
        ("GET", "/wsgi/test?q=foo", Some(403), Some("172.21.0.1"))
    );
    assert_eq!((e.field("%{remote}p"), e.field("%{tid}P")), (Some(&b"44782"[..]), Some(&b"140168282543872"[..])));

    // %m %U%q %H with literal %% around.
    let f = format("apache:%m %% %U%q %% %H");
    let e = ok(&f, "GET % /index.html?foo % HTTP/1.1");
    assert_eq!((s(&e.method), s(&e.target), text(&e.protocol)), ("GET", "/index.html?foo", Some("HTTP/1.1")));

    // Conditions, %<s, %{Host}i as vhost, unquoted %r in brackets, %{ms}T over %T.
    let f = format(
        r#"apache:%%%h %a %A %l %u %t "%r" %>s %b %p "%q" "%!200,304,302{Referer}i" %D "%200{User-agent}i" "%{Host}i" %<s %T %{ms}T"#,
    );
    let e = ok(
        &f,
        r#"%127.0.0.1 10.0.0.1 127.0.0.1 - - [31/Dec/2012:23:49:40 +0100] "GET /icons/a.png?aap=noot HTTP/1.1" 200 1213 80 "" "-" 351 "Firefox/11.0" "localhost" 302 1 1042"#,
    );
    assert_eq!((text(&e.remote_addr), s(&e.target), e.status), (Some("127.0.0.1"), "/icons/a.png?aap=noot", Some(200)));
    assert_eq!(
        (e.referer.as_ref(), text(&e.user_agent), text(&e.vhost)),
        (None, Some("Firefox/11.0"), Some("localhost"))
    );
    assert_eq!(
        (e.request_time_ms, e.field("%<s"), e.field("%a")),
        (Some(0.351), Some(&b"302"[..]), Some(&b"10.0.0.1"[..]))
    );

    let f = format(r#"apache:%t %u [%D %h %{True-Client-IP}i %{UNIQUE_ID}e %r] %s"#);
    let e = ok(
        &f,
        r#"[03/Dec/2013:10:53:59 +0000] - [32002 10.102.4.254 195.229.241.182 Up24Rw GET /content/a.jpg HTTP/1.1] 200"#,
    );
    assert_eq!(
        (s(&e.target), text(&e.protocol), e.header("true-client-ip")),
        ("/content/a.jpg", Some("HTTP/1.1"), Some(&b"195.229.241.182"[..]))
    );

    // Two %r, the first conditional and `-`.
    let f = format(r#"apache:"%400r" "%r""#);
    assert_eq!(s(&ok(&f, r#""-" "GET /index.html HTTP/1.1""#).target), "/index.html");

    // Literal text glued to directives, double space.
    let f = format(r#"apache:%h <<%P>> %t %Dus "%r" %>s %b  "%{Referer}i" "%{User-Agent}i" %l %u"#);
    let e = ok(
        &f,
        r#"127.0.0.1 <<6113>> [16/Aug/2013:15:45:34 +0000] 1966093us "DELETE / HTTP/1.1" 200 3478  "https://example.com/" "Mozilla/5.0 (X11)" - -"#,
    );
    assert_eq!((s(&e.method), e.request_time_ms, e.field("%P")), ("DELETE", Some(1966.093), Some(&b"6113"[..])));

    // mod_ssl request log: time first, no status.
    let f = format(r#"apache:%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x \"%r\" %b"#);
    let e = ok(
        &f,
        r#"[16/Oct/2019:11:53:47 +0200] 81.2.69.143 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "GET /appl/x.php?cmd=1 HTTP/1.1" -"#,
    );
    assert_eq!((e.status, e.bytes, e.field("%{SSL_PROTOCOL}x")), (None, Some(0), Some(&b"TLSv1.2"[..])));

    // %{sec}t epoch and %{Host}i header.
    let f = format(r#"apache:%{sec}t %U"#);
    assert_eq!(utc(&ok(&f, "1483455396 /x")), "2017-01-03T14:56:36");
}

#[test]
fn custom_format_strictness() {
    let f = format(r#"nginx:$remote_addr [$time_local] "$request" $status"#);
    assert_eq!(err(&f, "GET /api/foo/bar HTTP/1.1").reason.kind(), "expected_bracket");
    assert_eq!(err(&f, r#"1.2.3.4 [08/Nov/2013:13:39:18 +0000] "GET / HTTP/1.1" 20x"#).reason.kind(), "bad_status");
    assert_eq!(err(&f, r#"1.2.3.4 [08/Nov/2013:13:39:18 +0000] "GET / HTTP/1.1" 200 x"#).reason.kind(), "extra_fields");
    // A missing separator literal is reported where the line ended without it.
    let f = format(r#"nginx:$remote_addr|$remote_user "$request""#);
    let e = err(&f, r#"1.2.3.4 "GET / HTTP/1.1""#);
    assert_eq!((e.reason.kind(), e.column), ("expected_text", 25));
}

fn format_err(spec: &str) -> FormatError {
    Format::from_spec(spec).expect_err(spec)
}

#[test]
fn format_strings_that_do_not_compile() {
    let cases: &[(&str, usize, &str)] = &[
        ("apache:%h %l %u %t %Z", 12, "unknown Apache directive %Z"),
        ("apache:%h %>Z", 3, "unknown Apache directive %>Z"),
        ("apache:%h %{Referer", 4, "unterminated `%{`"),
        ("apache:%r %", 3, "unfinished Apache directive at the end of the format"),
        ("apache:%r %i", 3, "%i needs a {Header} argument"),
        ("apache:%r %{xs}T", 3, "unknown %T unit `xs` (s, ms or us)"),
        ("nginx:$remote_addr $ \"$request\"", 13, "`$` without a variable name"),
        ("nginx:$request ${status", 9, "unterminated `${`"),
        ("nginx:$request $", 9, "`$` without a variable name"),
        (
            "nginx:$request $remote_addr$status",
            21,
            "cannot tell where `remote_addr` ends and `status` begins: put text between them",
        ),
        (
            "nginx:$remote_addr $status",
            0,
            "the format logs no request to replay: it needs $request / %r, or $request_uri, $uri / %U",
        ),
        (
            "apache:%h %t %>s",
            0,
            "the format logs no request to replay: it needs $request / %r, or $request_uri, $uri / %U",
        ),
    ];
    for (spec, position, message) in cases {
        let e = format_err(spec);
        assert_eq!((e.position, e.message.as_str()), (*position, *message), "{spec}");
    }
    // Positions count characters, not bytes.
    assert_eq!(format_err("nginx:é $request $").position, 11);
    // The message points at the spot.
    let e = format_err("apache:%h %l %u %t %Z");
    assert_eq!(e.to_string(), "unknown Apache directive %Z at position 12\n  %h %l %u %t %Z\n              ^");
    let e = format_err("nginx-typo");
    assert!(e.to_string().starts_with("unknown log format `nginx-typo`: use one of nginx, nginx-main,"), "{e}");
    assert!(format_err("auto").to_string().contains("sniff"));
    let _: &dyn std::error::Error = &e;
}

#[test]
fn quoted_custom_strings_and_names() {
    let f = format("nginx:'$remote_addr \"$request\"'");
    assert_eq!(s(&ok(&f, r#"1.2.3.4 "GET /x HTTP/1.1""#).target), "/x");
    assert_eq!(f.name(), "nginx:'$remote_addr \"$request\"'");
}

#[test]
fn sniff_picks_the_most_specific_preset() {
    let sniff = |lines: &[&str]| {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        Format::sniff(&lines).map(|f| f.name().to_owned())
    };
    let combined = NGINX_LINE;
    let main = r#"172.24.0.3 - - [31/Dec/2024:17:32:06 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/8.11.1" "-""#;
    let apache = r#"1.2.3.4 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 304 - "-" "x""#;
    let common = r#"1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368"#;
    let vhost = r#"www.example.org:80 1.2.3.4 - - [06/May/2019:06:28:20 +0000] "GET / HTTP/1.1" 301 577 "-" "x""#;
    let json = r#"{"request_uri":"/x","status":200}"#;
    let junk = r#"1.2.3.4 - - [29/Jul/2023:10:26:07 -0700] "\x16\x03\x01\x00t" 400 157 "-" "-""#;
    assert_eq!(sniff(&[combined, combined]).unwrap(), "nginx");
    assert_eq!(sniff(&[main, main, ""]).unwrap(), "nginx-main");
    // The format that explains most lines completely wins, not the one that reads most lines
    // in part.
    assert_eq!(sniff(&[main, main, combined]).unwrap(), "nginx-main");
    let googlebot = r#"66.249.66.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 200 368 "-" "Googlebot/2.1""#;
    let mut lines = vec![common];
    lines.extend([googlebot; 49]);
    assert_eq!(sniff(&lines).unwrap(), "nginx");
    lines.extend([common; 2]);
    assert_eq!(sniff(&lines).unwrap(), "nginx", "at most 50 lines are read");
    assert_eq!(sniff(&[combined, apache]).unwrap(), "apache-combined");
    assert_eq!(sniff(&[common, common]).unwrap(), "apache-common");
    assert_eq!(sniff(&[vhost]).unwrap(), "apache-vhost");
    assert_eq!(sniff(&[json, "not json"]).unwrap(), "json");
    assert_eq!(sniff(&[junk, junk]).unwrap(), "nginx");
    // Traefik's CLF is combined plus `72 "router" "url" 0ms`: its own preset, not nginx `main`
    // (whose last quoted field would swallow the rest) nor nginx (which would drop it).
    let traefik = r#"10.0.0.2 - - [18/Nov/2018:21:34:30 +0000] "GET /dashboard/ HTTP/2.0" 401 17 "-" "Mozilla/5.0" 72 "Auth for frontend" "/dashboard/" 0ms"#;
    assert_eq!(sniff(&[traefik]).unwrap(), "traefik");
    assert!(sniff(&["hello", "world"]).is_err());
    assert!(sniff(&[]).is_err());
}

#[test]
fn into_owned_keeps_everything() {
    let f = format("nginx-main");
    let line =
        r#"172.24.0.3 - - [31/Dec/2024:17:32:06 +0000] "GET /\xC3\xA9 HTTP/1.1" 200 615 "-" "curl/8.11.1" "1.2.3.4""#
            .to_owned();
    let borrowed = f.parse_line(line.as_bytes()).unwrap();
    let owned: Entry<'static> = borrowed.clone().into_owned();
    drop(line);
    assert_eq!(s(&owned.target), "/é");
    assert_eq!(owned.header("x-forwarded-for"), Some(&b"1.2.3.4"[..]));
}
