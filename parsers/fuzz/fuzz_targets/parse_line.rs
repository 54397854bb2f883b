//! Any bytes, as a line, through every preset (the vhost preset's two variants, Traefik's CLF),
//! JSON and a few custom formats (glued variables, `escape=json`, strftime times with a separate
//! offset, unquoted requests): an `Err` is fine, a panic is a bug. The same bytes through `sniff`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_parsers::Format;

static FORMATS: LazyLock<Vec<Format>> = LazyLock::new(|| {
    let mut specs: Vec<&str> = Format::preset_names().to_vec();
    specs.extend([
        r#"nginx:$remote_addr [$time_local] "$host$request_uri" $status rt=$request_time "$http_x_id" $msec $time_iso8601"#,
        r#"nginx:escape=json {"r":"$request","s":$status,"u":"$http_user_agent"}"#,
        r#"nginx:$remote_addr "$request_method $uri$is_args$args" $status"#,
        r#"apache:%h %l %u %t \"%r\" %>s %b %D \"%{Referer}i\" \"%{User-agent}i\" %{%Y-%m-%d %H:%M:%S %z}t [%{msec_frac}t]"#,
        r#"apache:%t %u [%D %h %r] %{Cookie}i %s "%{User-Agent}i" %{sec}t %m %U%q %H"#,
        // The offset logged apart from the time (mod_log_config's own example).
        r#"apache:[%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t] %v %h "%r" %>s %b %{ms}T"#,
    ]);
    specs.iter().map(|s| Format::from_spec(s).expect("compiles")).collect()
});

fuzz_target!(|data: &[u8]| {
    for format in FORMATS.iter() {
        if let Ok(entry) = format.parse_line(data) {
            // Owning the entry touches every field.
            let _ = entry.into_owned();
        } else if let Err(e) = format.parse_line(data) {
            assert!(e.column >= 1 && e.column <= data.len() + 1, "column {} outside the line", e.column);
            let _ = (e.reason.kind(), e.to_string());
        }
    }
    let _ = Format::sniff(&[data, data]);
});
