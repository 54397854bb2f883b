//! Logs that are partly bad or unusual, as a user meets them: `sluice parse` and `sluice replay`
//! with `--format auto`, driven through the CLI (issue #11).

use std::path::Path;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use sluice_mock::{MockConfig, spawn_in_thread};

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

const COMMON: &str = r#"198.51.100.7 - - [10/Feb/2012:16:42:07 -0500] "GET /common HTTP/1.0" 200 368"#;

fn googlebot(n: usize) -> String {
    format!(
        r#"66.249.66.1 - - [10/Feb/2012:16:42:{:02} -0500] "GET /bot/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)""#,
        n % 60
    )
}

fn human(n: usize) -> String {
    format!(
        r#"203.0.113.9 - - [10/Feb/2012:16:43:{:02} -0500] "GET /page/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0""#,
        n % 60
    )
}

fn write_log(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// One Apache-common line at the top of a combined log made `auto` pick `apache-common`, which
/// dropped the user agents: `--exclude-user-agent '(?i)bot'` then let every Googlebot line through.
#[test]
fn one_common_line_does_not_make_auto_drop_the_user_agents() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![COMMON.to_string()];
    lines.extend((0..45).map(googlebot));
    lines.extend((0..4).map(human));
    let log = write_log(dir.path(), "mixed.log", &lines);

    let parsed = sluice().args(["parse", log.to_str().unwrap()]).assert().success();
    let stderr = String::from_utf8_lossy(&parsed.get_output().stderr).into_owned();
    assert!(stderr.contains("--format auto chose nginx"), "{stderr}");
    assert!(stderr.contains("accepted 49 lines, rejected 1"), "{stderr}");
    let stdout = String::from_utf8_lossy(&parsed.get_output().stdout).into_owned();
    let bots = stdout.lines().filter(|l| l.contains(r#""user_agent":"Mozilla/5.0 (compatible; Googlebot/2.1"#)).count();
    assert_eq!(bots, 45, "every Googlebot line keeps its user agent");

    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let out = dir.path().join("r.csv");
    let replay = sluice()
        .args(["replay", "--target", &server.url(), log.to_str().unwrap(), "--rate", "500"])
        .args(["--out", out.to_str().unwrap(), "--exclude-user-agent", "(?i)bot"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stderr));
    let mut received: Vec<String> = server.requests().into_iter().map(|q| q.target).collect();
    received.sort();
    assert_eq!(received, ["/page/0", "/page/1", "/page/2", "/page/3"], "no bot line reaches the target");
    let rows = csv::Reader::from_path(&out).unwrap().records().count();
    assert_eq!(rows, 4);
}

/// `vhost 203.0.113.9 - - […]` was read as nginx combined with the client address
/// `vhost 203.0.113.9`; now `auto` reads the vhost as such.
#[test]
fn auto_reads_a_vhost_prefix_as_the_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..3).map(|n| format!("vhost1.example {}", human(n))).collect();
    let log = write_log(dir.path(), "vhost.log", &lines);
    let parsed = sluice().args(["parse", log.to_str().unwrap()]).assert().success();
    let stderr = String::from_utf8_lossy(&parsed.get_output().stderr).into_owned();
    assert!(stderr.contains("--format auto chose apache-vhost"), "{stderr}");
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&parsed.get_output().stdout).lines().next().unwrap()).unwrap();
    assert_eq!((first["remote_addr"].as_str(), first["vhost"].as_str()), (Some("203.0.113.9"), Some("vhost1.example")));

    // Named as nginx, the same lines are rejected, saying why, instead of misread.
    sluice()
        .args(["parse", log.to_str().unwrap(), "--format", "nginx"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("column 15: space inside the client address"))
        .stderr(predicate::str::contains("rejected 3 (space_in_field: 3)"));
}

/// `%h … %b %D "%{Referer}i" "%{User-agent}i"` was read as apache-common with the duration,
/// referer and user agent dropped; no preset reads it, so `auto` fails, once, clearly.
#[test]
fn auto_fails_clearly_when_no_preset_reads_the_lines_completely() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"192.168.74.9 - - [04/Apr/2018:10:28:24 +0000] "GET /prefix HTTP/1.1" 304 - 3551 "-" "Mozilla/5.0""#
            .to_string(),
        r#"2001:db8::1 - - [04/Apr/2018:10:29:16 +0000] "GET /docs/nx HTTP/1.1" 404 19 2167 "-" "Mozilla/5.0""#
            .to_string(),
    ];
    let log = write_log(dir.path(), "with-d.log", &lines);
    let failed = sluice().args(["parse", log.to_str().unwrap()]).assert().code(2);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(stderr.contains("no preset reads any of the first 2 lines completely"), "{stderr}");
    assert!(
        stderr
            .contains("the closest, apache-common, stops at line 1 column 75: the line has more fields after the end"),
        "where the closest preset stopped, and why: {stderr}"
    );
    // The hint is given once, not once by the detector and again by the command.
    assert_eq!(stderr.matches("nginx:<log_format>").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("nginx-main").count(), 1, "{stderr}");

    let format = r#"apache:%h %l %u %t "%r" %>s %b %D "%{Referer}i" "%{User-agent}i""#;
    let parsed = sluice().args(["parse", log.to_str().unwrap(), "--format", format]).assert().success();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&parsed.get_output().stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["request_time_ms"].as_f64(), Some(3.551));
    assert_eq!(first["user_agent"].as_str(), Some("Mozilla/5.0"));
}

#[test]
fn format_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), "a.log", &[human(0)]);
    let parse = |format: &str| sluice().args(["parse", log.to_str().unwrap(), "--format", format]).assert().code(2);
    parse("nginx:$bogus_variable").stderr(predicate::str::contains(
        "`$bogus_variable` is not an nginx variable (a `map` or `set` variable is kept as text), and the format logs no request",
    ));
    parse(r#"nginx:$remote_addr "$reqeust""#)
        .stderr(predicate::str::contains("unknown nginx variable `$reqeust`: did you mean `$request`?"));
    parse(r#"apache:%{%H:%M}t "%r""#).stderr(predicate::str::contains("%{%H:%M}t logs only part of a time"));

    let json =
        write_log(dir.path(), "caddy.log", &[r#"{"level":"info","msg":"serving initial configuration"}"#.into()]);
    sluice()
        .args(["parse", json.to_str().unwrap(), "--format", "json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no request in this line: none of the keys `request`, `request_uri`"));
}

/// `sluice parse` printed "104.9 MB in 0.010 s" for a 1.18 s run: the clock started after the
/// format was picked, which for long lines is most of the work (each preset parses them).
#[test]
fn parse_throughput_is_all_bytes_over_all_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let agent = "x".repeat(1_000_000);
    let lines: Vec<String> = (0..10)
        .map(|n| format!(r#"203.0.113.9 - - [10/Feb/2012:16:43:0{n} -0500] "GET /{n} HTTP/1.1" 200 5 "-" "{agent}""#))
        .collect();
    let log = write_log(dir.path(), "long.log", &lines);
    let started = Instant::now();
    let parsed = sluice()
        .args(["parse", log.to_str().unwrap(), "--output", "none", "--max-line-bytes", "2000000"])
        .assert()
        .success();
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&parsed.get_output().stderr).into_owned();
    let reported: f64 = stderr
        .split(" MB in ")
        .nth(1)
        .and_then(|rest| rest.split(" s ").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no `MB in … s` in {stderr}"));
    // Generous: the process's start and exit are outside the figure, nothing else is.
    assert!(reported >= wall * 0.5, "reported {reported} s for a {wall:.3} s run: {stderr}");
    assert!(stderr.contains("10.0 MB in"), "{stderr}");
}

#[test]
fn auto_says_why_when_every_first_line_was_too_long_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("203.0.113.9 - - [10/Feb/2012:16:43:00 -0500] \"GET /{} HTTP/1.1\" 200 5", "x".repeat(70_000));
    let log = write_log(dir.path(), "long.log", &[long.clone(), long]);
    sluice()
        .args(["parse", log.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("longer than --max-line-bytes and were skipped"));
}
