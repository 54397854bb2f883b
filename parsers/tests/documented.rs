//! Table tests written from each server's own documentation, one case per directive sluice
//! accepts: nginx `log_format` variables (ngx_http_log_module, the variable index), Apache
//! mod_log_config format strings (every `%` directive, the `%{format}t` forms, `%T`/`%{UNIT}T`/
//! `%D`), and the fields of Caddy's and Traefik's JSON access logs. Then the directives sluice
//! does not accept, each with its message.

use sluice_parsers::{Entry, Format};

/// An entry as `field=value` strings, so a case lists what it expects in one line.
fn render(e: &Entry) -> Vec<String> {
    let text = |t: &[u8]| String::from_utf8_lossy(t).into_owned();
    let mut out = vec![format!("method={}", text(&e.method)), format!("target={}", text(&e.target))];
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push(format!("{name}={v}"));
        }
    };
    opt("addr", e.remote_addr.as_deref().map(text));
    opt("user", e.remote_user.as_deref().map(text));
    opt("time", e.time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)));
    opt("protocol", e.protocol.as_deref().map(text));
    opt("status", e.status.map(|s| s.to_string()));
    opt("bytes", e.bytes.map(|b| b.to_string()));
    opt("referer", e.referer.as_deref().map(text));
    opt("agent", e.user_agent.as_deref().map(text));
    opt("ms", e.request_time_ms.map(|t| format!("{t}")));
    opt("vhost", e.vhost.as_deref().map(text));
    opt("body", e.body.as_deref().map(text));
    for (k, v) in &e.headers {
        out.push(format!("header:{k}={}", text(v)));
    }
    for (k, v) in &e.fields {
        out.push(format!("field:{k}={}", text(v)));
    }
    out
}

/// Parses `line` with `spec`; every `want` must be among the rendered fields.
fn check(spec: &str, line: &str, want: &[&str]) {
    let format = Format::from_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let entry = format.parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{spec}\n  {line}\n  {e}"));
    let got = render(&entry);
    for w in want {
        assert!(got.iter().any(|g| g == w), "{spec}\n  {line}\n  wanted {w}, got {got:?}");
    }
}

#[test]
fn nginx_log_format_variables() {
    // (variable(s) under test, line, expected fields). `$request` is there for a request to replay.
    let cases: &[(&str, &str, &[&str])] = &[
        // The `combined` format as ngx_http_log_module defines it.
        (
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
            r#"192.0.2.1 - bob [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 200 2326 "http://r.example/" "curl/8""#,
            &[
                "addr=192.0.2.1",
                "user=bob",
                "time=2000-10-10T13:55:36-07:00",
                "method=GET",
                "target=/a?b=1",
                "protocol=HTTP/1.1",
                "status=200",
                "bytes=2326",
                "referer=http://r.example/",
                "agent=curl/8",
            ],
        ),
        (
            "$time_iso8601 \"$request\"",
            "2017-01-03T15:56:36+01:00 \"GET / HTTP/1.1\"",
            &["time=2017-01-03T15:56:36+01:00"],
        ),
        ("$msec \"$request\"", "1483455396.639 \"GET / HTTP/1.1\"", &["time=2017-01-03T14:56:36.639+00:00"]),
        (
            "$request_method $request_uri $server_protocol",
            "POST /form?x=1 HTTP/2.0",
            &["method=POST", "target=/form?x=1", "protocol=HTTP/2.0"],
        ),
        ("$request_method $uri?$args", "GET /p?q=1", &["method=GET", "target=/p?q=1"]),
        ("$request_method $uri$is_args$args", "GET /p", &["target=/p"]),
        // Path and query logged apart are joined into the target.
        ("$request_method $document_uri $query_string", "GET /p q=1", &["target=/p?q=1"]),
        (
            "\"$request\" $bytes_sent $body_bytes_sent",
            "\"GET / HTTP/1.1\" 400 250",
            &["bytes=250", "field:bytes_sent=400"],
        ),
        ("\"$request\" $bytes_sent", "\"GET / HTTP/1.1\" 400", &["bytes=400"]),
        ("\"$request\" $request_time", "\"GET / HTTP/1.1\" 0.050", &["ms=50"]),
        ("$host \"$request\"", "shop.example \"GET / HTTP/1.1\"", &["vhost=shop.example"]),
        ("$server_name \"$request\"", "shop.example \"GET / HTTP/1.1\"", &["vhost=shop.example"]),
        (
            "\"$request\" \"$http_host\" \"$http_x_forwarded_for\"",
            "\"GET / HTTP/1.1\" \"shop.example\" \"1.1.1.1, 10.0.0.1\"",
            &["vhost=shop.example", "header:host=shop.example", "header:x-forwarded-for=1.1.1.1, 10.0.0.1"],
        ),
        ("\"$request\" \"$request_body\"", "\"POST / HTTP/1.1\" \"a=1\"", &["body=a=1"]),
        // nginx variables sluice does not map are kept by name; so are `map`/`set` variables.
        (
            "\"$request\" $upstream_addr $request_length $my_map_var",
            "\"GET / HTTP/1.1\" 10.0.0.2:80 512 x",
            &["field:upstream_addr=10.0.0.2:80", "field:request_length=512", "field:my_map_var=x"],
        ),
        ("${remote_addr}|\"${request}\"", "192.0.2.1|\"GET / HTTP/1.1\"", &["addr=192.0.2.1"]),
        // `escape=json`: JSON escapes, an empty value is absent.
        (
            r#"escape=json {"r":"$request","ua":"$http_user_agent","ref":"$http_referer"}"#,
            r#"{"r":"GET /a\"b HTTP/1.1","ua":"x \"y\"","ref":""}"#,
            &["target=/a\"b", "agent=x \"y\""],
        ),
        // `escape=default` writes `"`, `\` and bytes ≥ 0x7F as \xXX.
        (
            "\"$request\" \"$http_user_agent\"",
            r#""GET /\xC3\xA9 HTTP/1.1" "a \x22b\x22""#,
            &["target=/é", "agent=a \"b\""],
        ),
    ];
    for (format, line, want) in cases {
        check(&format!("nginx:{format}"), line, want);
    }
}

#[test]
fn apache_mod_log_config_directives() {
    let r = r#""%r""#;
    let req = r#""GET /x HTTP/1.1""#;
    // (directive(s), value(s) as logged, expected fields); each is tried after `"%r" `.
    let cases: &[(&str, &str, &[&str])] = &[
        ("%%", "%", &[]),
        ("%a", "192.0.2.1", &["addr=192.0.2.1"]),
        ("%{c}a", "192.0.2.2", &["field:%{c}a=192.0.2.2"]),
        ("%A", "10.0.0.1", &["field:%A=10.0.0.1"]),
        ("%B", "0", &["bytes=0"]),
        ("%b", "-", &["bytes=0"]),
        ("%{session}C", "abc", &["field:%{session}C=abc"]),
        ("%D", "1500", &["ms=1.5"]),
        ("%{UNIQUE_ID}e", "Zx1", &["field:%{UNIQUE_ID}e=Zx1"]),
        ("%f", "/var/www/x", &["field:%f=/var/www/x"]),
        ("%h", "client.example", &["addr=client.example"]),
        ("%{c}h", "192.0.2.3", &["field:%{c}h=192.0.2.3"]),
        ("%H", "HTTP/1.0", &["protocol=HTTP/1.1"]),
        ("\"%{Referer}i\" \"%{User-agent}i\"", "\"http://r/\" \"curl/8\"", &["referer=http://r/", "agent=curl/8"]),
        ("%{X-Request-Id}i", "r-1", &["header:x-request-id=r-1"]),
        ("%k", "2", &["field:%k=2"]),
        ("%l", "-", &[]),
        ("%L", "YZiS", &["field:%L=YZiS"]),
        ("%m", "POST", &["method=GET"]),
        ("%{note}n", "v", &["field:%{note}n=v"]),
        ("%{Content-Type}o", "text/html", &["field:%{Content-Type}o=text/html"]),
        ("%p", "443", &["field:%p=443"]),
        ("%{remote}p", "51234", &["field:%{remote}p=51234"]),
        ("%P", "4711", &["field:%P=4711"]),
        ("%{tid}P", "140168282543872", &["field:%{tid}P=140168282543872"]),
        ("%R", "proxy-server", &["field:%R=proxy-server"]),
        ("%s", "302", &["status=302"]),
        ("%<s %>s", "302 200", &["status=200", "field:%<s=302"]),
        ("%t", "[10/Oct/2000:13:55:36 -0700]", &["time=2000-10-10T13:55:36-07:00"]),
        ("%T", "2", &["ms=2000"]),
        ("%{s}T", "2", &["ms=2000"]),
        ("%{ms}T", "1042", &["ms=1042"]),
        ("%{us}T", "351", &["ms=0.351"]),
        ("%u", "alice", &["user=alice"]),
        ("%v", "www.example.org", &["vhost=www.example.org"]),
        ("%V", "www.example.org", &["vhost=www.example.org"]),
        ("%X", "+", &["field:%X=+"]),
        ("%I %O %S", "400 1200 1600", &["bytes=1200", "field:%I=400", "field:%S=1600"]),
        ("%{grpc-status}^ti", "0", &["field:%{grpc-status}^ti=0"]),
        ("%{grpc-status}^to", "0", &["field:%{grpc-status}^to=0"]),
        // Modifiers: logged only for some statuses, `-` otherwise.
        ("%400,501{User-agent}i", "-", &[]),
        ("%!200,304,302{Referer}i", "http://r/", &["referer=http://r/"]),
    ];
    for (directive, value, want) in cases {
        check(&format!("apache:{r} {directive}"), &format!("{req} {value}"), want);
    }
    // `%U%q` and `%m`/`%H` stand in for `%r` when it is not logged.
    check("apache:%m %U%q %H", "PUT /p?q=1 HTTP/2.0", &["method=PUT", "target=/p?q=1", "protocol=HTTP/2.0"]);
    check("apache:%U", "/only-a-path", &["method=GET", "target=/only-a-path"]);
}

#[test]
fn apache_time_formats() {
    // (%{format}t, as logged, the instant). mod_log_config: strftime formats, `sec`, `msec`,
    // `usec`, `msec_frac`, `usec_frac`, and `begin:`/`end:` prefixes.
    let cases: &[(&str, &str, &str)] = &[
        ("%{%Y-%m-%d %H:%M:%S %z}t", "2019-05-05 20:49:14 +0200", "2019-05-05T20:49:14+02:00"),
        ("%{%d/%b/%Y:%H:%M:%S %z}t", "10/Oct/2000:13:55:36 -0700", "2000-10-10T13:55:36-07:00"),
        ("%{begin:%d/%b/%Y:%H:%M:%S %z}t", "10/Oct/2000:13:55:36 -0700", "2000-10-10T13:55:36-07:00"),
        ("%{end:%d/%b/%Y:%H:%M:%S %z}t", "10/Oct/2000:13:55:36 -0700", "2000-10-10T13:55:36-07:00"),
        ("%{sec}t", "1483455396", "2017-01-03T14:56:36+00:00"),
        ("%{msec}t", "1483455396639", "2017-01-03T14:56:36.639+00:00"),
        ("%{usec}t", "1483455396639123", "2017-01-03T14:56:36.639123+00:00"),
        ("%{begin:msec}t", "1483455396639", "2017-01-03T14:56:36.639+00:00"),
        // The manual's own example: the offset is logged apart, and applies.
        ("%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t", "10/Oct/2000 13:55:36.250 -0700", "2000-10-10T13:55:36.250-07:00"),
        (
            "[%{%d/%b/%Y %T}t.%{usec_frac}t %{%z}t]",
            "[10/Oct/2000 13:55:36.000250 +0530]",
            "2000-10-10T13:55:36.000250+05:30",
        ),
        ("%{%z}t %{%d/%b/%Y %T}t", "+0100 10/Oct/2000 13:55:36", "2000-10-10T13:55:36+01:00"),
        // Without an offset anywhere, the server's local time is taken as UTC.
        ("%{%d/%b/%Y %T}t", "10/Oct/2000 13:55:36", "2000-10-10T13:55:36+00:00"),
        // A part of a time beside a whole one is kept as text.
        ("%t %{%A}t", "[10/Oct/2000:13:55:36 -0700] Tuesday", "2000-10-10T13:55:36-07:00"),
    ];
    for (directive, value, instant) in cases {
        let spec = format!(r#"apache:{directive} "%r""#);
        let line = format!(r#"{value} "GET / HTTP/1.1""#);
        check(&spec, &line, &[&format!("time={instant}")]);
    }
}

#[test]
fn caddy_json_fields() {
    // Caddy's access log (caddyserver.com/docs/caddyfile/directives/log): the request nested.
    let line = r#"{"level":"info","ts":1703373474.8155608,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"10.0.0.1","remote_port":"64985","client_ip":"198.51.100.4","proto":"HTTP/2.0","method":"POST","host":"shop.example","uri":"/cart?x=1","headers":{"User-Agent":["Firefox/121.0"],"Referer":["https://r.example/"],"Accept":["text/html"]},"tls":{"proto":"h2"}},"bytes_read":12,"user_id":"alice","duration":0.5,"size":3609,"status":201,"resp_headers":{"Server":["Caddy"]}}"#;
    check(
        "json",
        line,
        &[
            "method=POST",
            "target=/cart?x=1",
            "protocol=HTTP/2.0",
            "addr=198.51.100.4",
            "vhost=shop.example",
            "agent=Firefox/121.0",
            "referer=https://r.example/",
            "header:accept=text/html",
            "user=alice",
            "status=201",
            "bytes=3609",
            "ms=500",
            "time=2023-12-23T23:17:54.815560800+00:00",
            "field:bytes_read=12",
            "field:request.remote_port=64985",
        ],
    );
}

#[test]
fn traefik_json_fields() {
    // Traefik's access log fields (doc.traefik.io/traefik/observability/access-logs).
    let line = r#"{"ClientAddr":"192.0.2.9:5123","ClientHost":"192.0.2.9","ClientPort":"5123","ClientUsername":"-","DownstreamContentSize":356,"DownstreamStatus":404,"Duration":2000000,"OriginContentSize":356,"OriginDuration":2000000,"OriginStatus":404,"Overhead":155630,"RequestAddr":"shop.example","RequestContentSize":0,"RequestCount":7,"RequestHost":"shop.example","RequestMethod":"GET","RequestPath":"/x?y=1","RequestPort":"-","RequestProtocol":"HTTP/1.1","RequestScheme":"https","RetryAttempts":0,"RouterName":"shop@docker","ServiceName":"shop@docker","StartLocal":"2021-12-08T15:02:43.464763557+01:00","StartUTC":"2021-12-08T14:02:43.464763557Z","entryPointName":"websecure","request_User-Agent":"Nikto","request_Referer":"https://r.example/","level":"info","msg":"","time":"2021-12-08T14:02:45Z"}"#;
    check(
        "json",
        line,
        &[
            "method=GET",
            "target=/x?y=1",
            "protocol=HTTP/1.1",
            "addr=192.0.2.9",
            "vhost=shop.example",
            "status=404",
            "bytes=356",
            "ms=2",
            "agent=Nikto",
            "referer=https://r.example/",
            "time=2021-12-08T14:02:43.464763557+00:00",
            "field:OriginStatus=404",
            "field:RouterName=shop@docker",
        ],
    );
    // Traefik answered itself (a redirect, a rejection): `OriginStatus` is 0, the client got
    // `DownstreamStatus`. This line was rejected as "bad status code".
    let redirect = r#"{"ClientHost":"192.0.2.9","DownstreamContentSize":17,"DownstreamStatus":308,"Duration":51234,"OriginContentSize":0,"OriginDuration":0,"OriginStatus":0,"RequestHost":"shop.example","RequestMethod":"GET","RequestPath":"/","RequestProtocol":"HTTP/1.1","StartUTC":"2021-12-08T14:02:43Z"}"#;
    check("json", redirect, &["status=308", "bytes=17", "field:OriginStatus=0"]);
    // And the downstream status wins wherever the keys are in the object.
    let origin_last = r#"{"DownstreamStatus":403,"RequestMethod":"GET","RequestPath":"/","OriginStatus":0}"#;
    check("json", origin_last, &["status=403"]);
}

#[test]
fn nginx_json_log_format() {
    // A JSON log_format with escape=json, read as `json` by its key names.
    let line = r#"{"time_iso8601":"2017-01-03T15:56:36+01:00","remote_addr":"192.0.2.1","remote_user":"","request_method":"GET","request_uri":"/a?b=1","server_protocol":"HTTP/1.1","status":"200","body_bytes_sent":"17","request_time":"0.012","http_referer":"","http_user_agent":"curl/8","http_x_forwarded_for":"1.1.1.1","host":"shop.example"}"#;
    check(
        "json",
        line,
        &[
            "time=2017-01-03T15:56:36+01:00",
            "addr=192.0.2.1",
            "target=/a?b=1",
            "status=200",
            "bytes=17",
            "ms=12",
            "agent=curl/8",
            "header:x-forwarded-for=1.1.1.1",
            "vhost=shop.example",
        ],
    );
}

/// What sluice does not read, it says so, naming the directive.
#[test]
fn directives_sluice_does_not_read_are_named() {
    let cases: &[(&str, &str)] = &[
        (r#"apache:"%r" %Z"#, "unknown Apache directive %Z"),
        (r#"apache:"%r" %{xs}T"#, "unknown %T unit `xs` (s, ms or us)"),
        (r#"apache:"%r" %i"#, "%i needs a {Header} argument"),
        (r#"apache:"%r" %e"#, "%e needs a {Name} argument"),
        (r#"apache:"%r" %{%Y-%m-%d %Q}t"#, "holds a strftime conversion sluice cannot read"),
        (r#"apache:"%r" %{%d/%b/%Y %T %Z}t"#, "%Z writes a zone name"),
        (r#"apache:"%r" %{%d/%b/%Y}t %{%T}t"#, "%{%d/%b/%Y}t logs only part of a time"),
        (r#"nginx:"$request" $stauts"#, "unknown nginx variable `$stauts`: did you mean `$status`?"),
        (r#"nginx:$url $status"#, "unknown nginx variable `$url`: did you mean `$uri`?"),
        ("nginx:$bogus_variable", "`$bogus_variable` is not an nginx variable"),
        ("nginx:$remote_addr $status", "the format logs no request to replay"),
    ];
    for (spec, message) in cases {
        let e = Format::from_spec(spec).expect_err(spec);
        assert!(e.to_string().contains(message), "{spec}: {e}");
    }
}
