//! Staging safety, rewriting and filters, through the CLI against the mock server on 127.0.0.1:
//! for every rule, what the mock received (and did not) and what the CSV says.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use predicates::prelude::*;
use sluice_mock::{MockConfig, MockServer, RecordedRequest, spawn_in_thread};

mod common;
use common::fixture;

fn format_arg() -> String {
    format!("nginx:{}", std::fs::read_to_string(fixture("staging-mix.format")).unwrap().trim())
}

struct Replay {
    received: Vec<RecordedRequest>,
    rows: Vec<HashMap<String, String>>,
    stderr: String,
    summary: serde_json::Value,
    files: Vec<String>,
}

/// Replays fixtures/staging-mix.log against a fresh mock with extra flags; expects exit 0.
fn replay(args: &[&str]) -> Replay {
    replay_log(&fixture("staging-mix.log"), args, MockConfig::default())
}

fn replay_log(log: &Path, args: &[&str], mock: MockConfig) -> Replay {
    replay_at(log, &format_arg(), "", args, mock)
}

/// Replays `log` in `format` against a fresh mock, with `--target` the mock's URL followed by
/// `target_path` (a prefix such as `/prefix`); expects exit 0.
fn replay_at(log: &Path, format: &str, target_path: &str, args: &[&str], mock: MockConfig) -> Replay {
    let server = spawn_in_thread(mock).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("s.json"));
    let output = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .args(["replay", "--target", &format!("{}{target_path}", server.url())])
        .arg(log)
        .args(["--format", format, "--rate", "500", "--out", out.to_str().unwrap()])
        .args(["--summary-json", json.to_str().unwrap(), "--progress", "always"])
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows = reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
        .collect();
    Replay {
        received: server.requests(),
        rows,
        stderr,
        summary: serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap(),
        files: vec![std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&json).unwrap()],
    }
}

fn sluice_cmd(server: &MockServer) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sluice").unwrap();
    cmd.args(["replay", "--target", &server.url()]);
    cmd
}

fn targets(r: &Replay) -> Vec<String> {
    r.received.iter().map(|q| q.target.clone()).collect()
}

fn skipped(r: &Replay) -> BTreeMap<String, u64> {
    serde_json::from_value(r.summary["log"]["plan"]["skipped"].clone()).unwrap()
}

#[test]
fn by_default_only_safe_methods_leave_and_absolute_urls_stay_on_the_target() {
    let r = replay(&[]);
    // 28 GET lines, 3 GET bot lines, and the absolute-URL line rewritten to the target.
    assert_eq!(r.received.len(), 32);
    assert!(r.received.iter().all(|q| q.method == "GET"));
    assert!(targets(&r).contains(&"/steal?x=1".to_string()), "the path of an absolute URL goes to the target");
    let host = r.received[0].header("host").unwrap().into_owned();
    assert!(host.starts_with("127.0.0.1:"), "never evil.example or shop.example: {host}");
    assert!(r.received.iter().all(|q| q.header("host").as_deref() == Some(host.as_str())));
    let s = skipped(&r);
    assert_eq!(s.get("method POST"), Some(&5));
    assert_eq!(s.get("method PUT"), Some(&1));
    assert_eq!(s.get("method DELETE"), Some(&1));
    assert_eq!(s.get("connect/authority target"), Some(&1));
    assert_eq!(r.summary["log"]["plan"]["absolute_urls_rewritten"], 1);
    assert!(r.stderr.contains("method POST: 5"), "the summary says what each rule skipped: {}", r.stderr);
    assert_eq!(r.rows.len(), 32);
}

#[test]
fn widened_methods_send_logged_bodies_and_count_bodyless_requests() {
    let r = replay(&["--allow-methods", "all"]);
    let posts: Vec<_> = r.received.iter().filter(|q| q.method == "POST").collect();
    assert_eq!(posts.len(), 5);
    for q in &posts {
        let n: u32 = q.target.rsplit('=').next().unwrap().parse().unwrap();
        let expected = if n <= 31 { format!("{{\"n\":{n}}}") } else { String::new() };
        assert_eq!(q.body_text(), expected, "{}", q.target);
    }
    assert!(r.received.iter().any(|q| q.method == "PUT") && r.received.iter().any(|q| q.method == "DELETE"));
    assert_eq!(r.summary["log"]["plan"]["sent_without_body"], 3, "2 POST + 1 PUT had no logged body");
    assert!(!r.received.iter().any(|q| q.method == "CONNECT"), "CONNECT is never replayed");

    let skipping = replay(&["--allow-methods", "POST,PUT", "--skip-bodyless"]);
    assert_eq!(skipping.received.len(), 3);
    assert!(skipping.received.iter().all(|q| q.method == "POST" && !q.body.is_empty()));
    assert_eq!(skipped(&skipping).get("--skip-bodyless"), Some(&3));
}

#[test]
fn path_status_time_and_user_agent_filters() {
    let r = replay(&["--include", "^/api/", "--exclude", "page=1[0-9]", "--exclude-user-agent", "(?i)bot"]);
    let t = targets(&r);
    assert_eq!(t.len(), 10, "{t:?}"); // /api/items 1..20, minus page=10..19
    assert!(t.iter().all(|p| p.starts_with("/api/items/") && !p.contains("page=1") || p.ends_with("page=1")));
    let s = skipped(&r);
    assert_eq!(s.get("--include"), Some(&9)); // the GET lines for /static, /admin and the absolute URL
    assert_eq!(s.get("--exclude page=1[0-9]"), Some(&10));
    assert_eq!(s.get("--exclude-user-agent"), Some(&3));

    let ok = replay(&["--orig-status", "2xx"]);
    assert!(ok.received.iter().all(|q| !q.target.starts_with("/static") && !q.target.starts_with("/admin")));
    assert_eq!(skipped(&ok).get("--orig-status"), Some(&8));

    // Lines are logged one a minute from 10:01: the window [10:05, 10:10) holds five.
    let window = replay(&["--from", "2026-11-21T10:05:00Z", "--until", "2026-11-21 10:10"]);
    let paths: Vec<String> = targets(&window).iter().map(|t| t.split('?').next().unwrap().to_string()).collect();
    assert_eq!(paths, (5..10).map(|i| format!("/api/items/{i}")).collect::<Vec<_>>());
}

#[test]
fn sampling_is_deterministic_by_line_and_seedable() {
    let a = replay(&["--sample", "50%"]);
    let b = replay(&["--sample", "50%", "--concurrency", "3"]);
    let c = replay(&["--sample", "50%", "--sample-seed", "7"]);
    // Concurrent requests may arrive in any order: the same lines means the same set.
    let sorted = |r| {
        let mut t = targets(r);
        t.sort();
        t
    };
    let (ta, tb, tc) = (sorted(&a), sorted(&b), sorted(&c));
    assert_eq!(ta, tb, "the same lines every run");
    assert_ne!(ta, tc, "another seed picks other lines");
    assert!((8..=24).contains(&ta.len()), "about half of 32: {}", ta.len());
}

#[test]
fn headers_are_added_dropped_and_the_host_is_set_or_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let h = format!("X-Api-Key: @{}", secret.display());
    let r = replay(&["-H", "X-Env: staging", "-H", &h, "--drop-header", "cookie", "--host-header", "staging.example"]);
    for q in &r.received {
        assert_eq!(q.header("x-env").as_deref(), Some("staging"));
        assert_eq!(q.header("x-api-key").as_deref(), Some("from-a-file"));
        assert_eq!(q.header("cookie"), None, "dropped");
        assert!(
            q.header("authorization").unwrap().starts_with("Bearer PLANTED-auth-"),
            "logged headers are sent as logged"
        );
        assert_eq!(q.header("host").as_deref(), Some("staging.example"));
        assert!(q.header("user-agent").is_some(), "the logged user agent is sent");
    }
    let preserved = replay(&["--preserve-host"]);
    assert!(preserved.received.iter().all(|q| q.header("host").as_deref() == Some("shop.example")));
    let replaced = replay(&["-H", "Authorization: Bearer staging-token"]);
    assert!(replaced.received.iter().all(|q| q.header("authorization").as_deref() == Some("Bearer staging-token")));
}

#[test]
fn the_production_host_and_denied_targets_are_refused_before_anything_is_sent() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // This log says it was served by 127.0.0.1: replaying it at 127.0.0.1 is replaying production.
    let log = dir.path().join("prod.log");
    let text =
        std::fs::read_to_string(fixture("staging-mix.log")).unwrap().replace("\"shop.example\"", "\"127.0.0.1\"");
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("r.csv");
    sluice_cmd(&server)
        .arg(&log)
        .args(["--format", &format_arg(), "--rate", "100", "--out", out.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--i-know-this-is-production"));
    assert_eq!(server.count(), 0);
    assert!(!out.exists());
    sluice_cmd(&server)
        .arg(&log)
        .args([
            "--format",
            &format_arg(),
            "--rate",
            "500",
            "--out",
            out.to_str().unwrap(),
            "--i-know-this-is-production",
        ])
        .assert()
        .success();
    assert_eq!(server.count(), 32);

    for (flag, pattern) in
        [("--deny-host", "127.0.0.0/8"), ("--deny-host", "localhost"), ("--allow-host", "10.0.0.0/8")]
    {
        let before = server.count();
        let url = server.url().replace("127.0.0.1", "localhost");
        assert_cmd::Command::cargo_bin("sluice")
            .unwrap()
            .args(["replay", fixture("staging-mix.log").to_str().unwrap(), "--target", &url])
            .args(["--format", &format_arg(), "--rate", "100", "--out", out.to_str().unwrap(), flag, pattern])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
        assert_eq!(server.count(), before, "{flag} {pattern}: nothing may be sent");
    }
}

#[test]
fn environment_proxies_are_ignored_unless_asked_for() {
    let target = spawn_in_thread(MockConfig::default()).unwrap();
    let proxy = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let run = |extra: &[&str]| {
        sluice_cmd(&target)
            .arg(fixture("staging-mix.log"))
            .args(["--format", &format_arg(), "--rate", "500", "--out", out.to_str().unwrap()])
            .args(extra)
            .env("HTTP_PROXY", proxy.url())
            .env("http_proxy", proxy.url())
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .assert()
            .success();
    };
    run(&[]);
    assert_eq!((target.count(), proxy.count()), (32, 0));
    run(&["--use-env-proxy"]);
    assert_eq!((target.count(), proxy.count()), (32, 32), "with --use-env-proxy every request went through the proxy");
    assert!(proxy.requests()[0].target.starts_with("http://127.0.0.1:"), "proxies get absolute-form targets");
}

#[test]
fn redirects_are_followed_only_when_asked_and_never_to_another_host() {
    let one = ["--include", "^/api/items/1\\?"];
    let redirecting = || MockConfig::default().with_rule("/api/*=redirect".parse().unwrap());
    let r = replay_log(&fixture("staging-mix.log"), &one, redirecting());
    assert_eq!(targets(&r), ["/api/items/1?page=1"]);
    assert_eq!(r.rows[0]["status"], "302", "not followed by default");

    let mut args = one.to_vec();
    args.push("--follow-redirects");
    let r = replay_log(&fixture("staging-mix.log"), &args, redirecting());
    assert_eq!(targets(&r), ["/api/items/1?page=1", "/redirected/api/items/1?page=1"]);
    assert_eq!((r.rows.len(), r.rows[0]["status"].as_str()), (1, "200"), "one request, its final answer");

    // Location points at another host (127.0.0.2): never followed, the 302 is the answer.
    let away = MockConfig::default().with_rule("/api/*=redirect-away".parse().unwrap());
    let r = replay_log(&fixture("staging-mix.log"), &args, away);
    assert_eq!(r.received.len(), 1);
    assert_eq!(r.rows[0]["status"], "302");
}

#[test]
fn dry_run_shows_what_would_be_sent_and_sends_nothing() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let assert = sluice_cmd(&server)
        .arg(fixture("staging-mix.log"))
        .args(["--format", &format_arg(), "--rate", "100", "--out", out.to_str().unwrap(), "--dry-run"])
        .args(["--allow-methods", "GET,POST"])
        .assert()
        .success()
        .stderr(predicate::str::contains("would send 37 requests"))
        .stderr(predicate::str::contains("GET: 32, POST: 5"))
        .stderr(predicate::str::contains("authorization: [redacted]"))
        .stderr(predicate::str::contains("token=***"));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(!stderr.contains("PLANTED"), "{stderr}");
    assert_eq!(server.count(), 0, "a dry run sends nothing");
    assert!(!out.exists(), "and writes no CSV");
}

#[test]
fn planted_secrets_never_reach_any_output() {
    let r = replay(&["--allow-methods", "all", "--redact-header", "X-Api-Key", "-H", "X-Api-Key: PLANTED-key"]);
    // The requests themselves carry them (they are sent as logged)…
    assert!(r.received.iter().any(|q| q.header("authorization").is_some_and(|v| v.contains("PLANTED"))));
    assert!(r.received.iter().any(|q| q.target.contains("token=PLANTED")));
    // …but no output shows them.
    for text in r.files.iter().chain([&r.stderr]) {
        assert!(!text.contains("PLANTED"), "a secret leaked into:\n{text}");
    }
    let masked: Vec<_> = r.rows.iter().filter(|row| row["url"].contains("token=")).collect();
    assert_eq!(masked.len(), 4);
    assert!(masked.iter().all(|row| row["url"].contains("token=***")));
}

#[test]
fn a_config_file_holds_options_and_flags_override_it() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = (dir.path().join("sluice.toml"), dir.path().join("r.csv"));
    std::fs::write(
        &config,
        format!(
            "target = \"{}\"\nrate = 50\nformat = '{}'\nallow-methods = \"GET,POST\"\nheader = [\"X-From: file\"]\n\
             include = [\"^/api/\"]\nout = \"{}\"\n",
            server.url(),
            format_arg(),
            out.display()
        ),
    )
    .unwrap();
    assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .args(["replay", fixture("staging-mix.log").to_str().unwrap(), "--config", config.to_str().unwrap()])
        .args(["--rate", "1000", "-H", "X-From: flag"])
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stderr(predicate::str::contains("1000/s"));
    let received = server.requests();
    assert_eq!(received.len(), 28, "GET and POST under /api/ (file), at the flag's rate");
    assert!(
        received.iter().all(|q| q.header("x-from").as_deref() == Some("flag")),
        "a flag's list replaces the file's"
    );

    std::fs::write(&config, "rate = 10\nratee = 5\n").unwrap();
    sluice_cmd(&server)
        .args([fixture("staging-mix.log").to_str().unwrap(), "--config", config.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--config").and(predicate::str::contains("unknown field `ratee`")));
}

#[test]
fn bad_options_are_one_line_errors_naming_the_flag_before_anything_is_sent() {
    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--include", "(unclosed"], "--include: '(unclosed' is not a valid regex"),
        (&["--exclude-user-agent", "[z-a]"], "--exclude-user-agent"),
        (&["-H", "Authorization Bearer SECRET"], "--header: header #1 has no ':'"),
        (&["-H", "Bad Name: x"], "--header"),
        (&["-H", "X-Key: @/no/such/file"], "--header: x-key: cannot read the value from /no/such/file"),
        (&["--allow-methods", "GET,P0ST!"], "--allow-methods"),
        (&["--sample", "150%"], "--sample: '150%' must be a percentage"),
        (&["--orig-status", "7xx"], "--orig-status"),
        (&["--from", "yesterday"], "--from"),
        (&["--deny-host", "10.0.0.0/40"], "--deny-host"),
        (&["--host-header", "a", "--preserve-host"], "--host-header"),
        (&["--mask-query-params", "("], "--mask-query-params"),
    ];
    for (flags, message) in cases {
        let assert = sluice_cmd(&server)
            .arg(fixture("staging-mix.log"))
            .args(["--format", &format_arg(), "--rate", "10", "--out", "/dev/null"])
            .args(*flags)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(*message));
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert_eq!(stderr.trim().lines().count(), 1, "{flags:?}: one line, got {stderr}");
        assert!(!stderr.contains("SECRET"), "header values are never echoed: {stderr}");
    }
    assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .args(["replay", fixture("staging-mix.log").to_str().unwrap(), "--target", "gopher://127.0.0.1", "--rate", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
    assert_eq!(server.count(), 0);
}

#[test]
fn spreadsheet_formulas_are_neutralised_in_every_text_cell() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hostile.log");
    let mut lines = String::new();
    for (i, lead) in ["=", "+", "-", "@", "\\x09", "\\x0D"].iter().enumerate() {
        lines += &format!(
            "1.2.3.4 - - [21/Nov/2026:10:00:0{i} +0000] \"GET /x{i} HTTP/1.1\" 200 1 \"{lead}ref\" \"{lead}HYPERLINK(\\x22http://evil\\x22)\"\n"
        );
    }
    std::fs::write(&log, lines).unwrap();
    let assert = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .args(["parse", log.to_str().unwrap(), "--format", "nginx", "--output", "csv"])
        .assert()
        .success();
    let mut reader = csv::Reader::from_reader(assert.get_output().stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let ua = headers.iter().position(|h| h == "user_agent").unwrap();
    let referer = headers.iter().position(|h| h == "referer").unwrap();
    let mut n = 0;
    for row in reader.records() {
        let row = row.unwrap();
        for cell in [&row[ua], &row[referer]] {
            assert!(cell.starts_with('\''), "not neutralised: {cell:?}");
        }
        n += 1;
    }
    assert_eq!(n, 6);
}

/// A log in nginx format whose lines carry these request headers and a body, written in `dir`.
/// Each line is (request line, header values, body), escaped as nginx writes them (`\x0D`);
/// `-` is a value that was not there.
fn hostile_log(dir: &Path, headers: &[&str], lines: &[(&str, &[&str], &str)]) -> (std::path::PathBuf, String) {
    let logged: String = headers.iter().map(|h| format!(" \"$http_{}\"", h.replace('-', "_"))).collect();
    let format =
        format!("nginx:$remote_addr [$time_local] \"$request\" $status $body_bytes_sent{logged} \"$request_body\"");
    let mut text = String::new();
    for (i, (request, values, body)) in lines.iter().enumerate() {
        assert_eq!(values.len(), headers.len(), "{request}");
        let values: String = values.iter().map(|v| format!(" \"{v}\"")).collect();
        text += &format!("10.0.0.{i} [21/Nov/2026:10:00:00 +0000] \"{request}\" 200 1{values} \"{body}\"\n");
    }
    let path = dir.join("hostile.log");
    std::fs::write(&path, text).unwrap();
    (path, format)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn dot_segments_in_any_spelling_never_leave_the_target_prefix() {
    let resolved = [
        ("GET /../etc/passwd HTTP/1.1", "/prefix/etc/passwd"),
        ("GET /%2e%2e/etc/passwd HTTP/1.1", "/prefix/etc/passwd"),
        ("GET /%2E%2e/x/%2e%2E/../etc/passwd HTTP/1.1", "/prefix/etc/passwd"),
        ("GET /\\x5C..\\x5C..\\x5Cetc\\x5Cpasswd HTTP/1.1", "/prefix/etc/passwd"),
        ("GET /./a/./../../b HTTP/1.1", "/prefix/b"),
        ("GET /a/b/.. HTTP/1.1", "/prefix/a/"),
        ("GET http://evil.example/../../etc/passwd HTTP/1.1", "/prefix/etc/passwd"),
    ];
    let as_logged = [("GET /app.js?next=../../x HTTP/1.1", "/prefix/app.js?next=../../x")];
    // Segments nginx or Tomcat would still resolve, which cannot be resolved without decoding.
    let refused = [
        "GET /a/..%2f..%2fetc/passwd HTTP/1.1",
        "GET /..;/etc/passwd HTTP/1.1",
        "GET /s/%2e%2e%5C%2e%2e%5Cetc HTTP/1.1",
    ];
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<(&str, &[&str], &str)> =
        resolved.iter().chain(&as_logged).map(|(r, _)| *r).chain(refused).map(|r| (r, &[][..], "-")).collect();
    let (log, format) = hostile_log(dir.path(), &[], &lines);
    let r = replay_at(&log, &format, "/prefix", &[], MockConfig::default());

    let expected: Vec<String> = resolved.iter().chain(&as_logged).map(|(_, sent)| sent.to_string()).collect();
    assert_eq!(sorted(targets(&r)), sorted(expected), "what the server received");
    let csv_paths: Vec<String> = r.rows.iter().map(|row| common::path_of(&row["url"])).collect();
    assert_eq!(sorted(csv_paths), sorted(targets(&r)), "the CSV says what was sent");
    let s = skipped(&r);
    assert_eq!(s.get("dot segment hidden by %2f, %5c or ; (would leave the prefix)"), Some(&3), "{s:?}");
    assert_eq!(r.summary["log"]["plan"]["dot_segments_resolved"], 7);
    assert!(r.stderr.contains("7 paths with dot segments resolved"), "{}", r.stderr);
    assert!(r.stderr.contains("dot segment hidden by %2f, %5c or ; (would leave the prefix): 3"), "{}", r.stderr);
}

#[test]
fn redirects_are_followed_only_under_the_target_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (log, format) = hostile_log(dir.path(), &[], &[("GET /items/1 HTTP/1.1", &[], "-")]);
    let follow = ["--follow-redirects"];
    // Under /api, the mock's redirect (to /redirected/api/…, the same host and port) leaves the prefix.
    let outside = MockConfig::default().with_rule("/api/*=redirect".parse().unwrap());
    let r = replay_at(&log, &format, "/api", &follow, outside);
    assert_eq!(targets(&r), ["/api/items/1"], "the redirect out of the prefix is not followed");
    assert_eq!(r.rows[0]["status"], "302", "its 302 is the answer");

    // Under /redirected, the redirect to /redirected/redirected/… stays inside: followed.
    let inside = MockConfig::default().with_rule("/redirected/items/*=redirect".parse().unwrap());
    let r = replay_at(&log, &format, "/redirected", &follow, inside);
    assert_eq!(targets(&r), ["/redirected/items/1", "/redirected/redirected/items/1"]);
    assert_eq!(r.rows[0]["status"], "200");
}

#[test]
fn method_overrides_never_turn_a_replay_into_a_method_that_is_not_allowed() {
    let headers = ["x-http-method-override", "x-http-method", "x-method-override", "content-type"];
    let form = "application/x-www-form-urlencoded";
    let multipart = "multipart/form-data; boundary=b";
    let multipart_body =
        "--b\\x0D\\x0AContent-Disposition: form-data; name=\\x22_method\\x22\\x0D\\x0A\\x0D\\x0Adelete\\x0D\\x0A--b--";
    let lines: &[(&str, &[&str], &str)] = &[
        ("GET /o/1 HTTP/1.1", &["DELETE", "-", "-", "-"], "-"),
        ("GET /o/2 HTTP/1.1", &["-", " delete", "-", "-"], "-"),
        ("GET /o/3 HTTP/1.1", &["-", "-", "PUT", "-"], "-"),
        ("GET /o/4 HTTP/1.1", &["POST", "-", "-", "-"], "-"),
        ("POST /o/5 HTTP/1.1", &["-", "-", "-", form], "a=1&_method=DELETE"),
        ("POST /o/6 HTTP/1.1", &["-", "-", "-", "-"], "%5Fmethod=del%65te"),
        ("POST /o/7?_method=PATCH HTTP/1.1", &["-", "-", "-", "-"], "-"),
        ("POST /o/8 HTTP/1.1", &["-", "-", "-", multipart], multipart_body),
        ("POST /o/9 HTTP/1.1", &["-", "-", "-", form], "_method=post&x=1"),
        ("POST /o/10 HTTP/1.1", &["-", "-", "-", "application/json"], "{\\x22_method\\x22:\\x22DELETE\\x22}"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (log, format) = hostile_log(dir.path(), &headers, lines);

    let r = replay_at(&log, &format, "", &["--allow-methods", "GET,POST"], MockConfig::default());
    assert_eq!(sorted(targets(&r)), ["/o/1", "/o/10", "/o/2", "/o/3", "/o/4", "/o/9"]);
    for q in &r.received {
        let overrides: Vec<_> = headers[..3].iter().filter_map(|h| q.header(h)).collect();
        let allowed = q.target == "/o/4" && overrides == ["POST"];
        assert!(overrides.is_empty() || allowed, "{} carried {overrides:?}", q.target);
    }
    assert_eq!(r.received.iter().find(|q| q.target == "/o/4").unwrap().header(headers[0]).as_deref(), Some("POST"));
    let s = skipped(&r);
    assert_eq!((s.get("_method DELETE"), s.get("_method PATCH")), (Some(&3), Some(&1)), "{s:?}");
    assert_eq!(r.summary["log"]["plan"]["method_override_headers_dropped"], 3);
    assert!(r.stderr.contains("3 method-override headers dropped"), "{}", r.stderr);
    assert!(r.stderr.contains("_method DELETE: 3"), "{}", r.stderr);

    // Once the method they name is allowed, they are sent as logged.
    let all = replay_at(&log, &format, "", &["--allow-methods", "all"], MockConfig::default());
    assert_eq!(all.received.len(), 10);
    let sent_override = all.received.iter().find(|q| q.target == "/o/1").unwrap().header(headers[0]);
    assert_eq!(sent_override.as_deref(), Some("DELETE"));
    assert_eq!(all.summary["log"]["plan"]["method_override_headers_dropped"], 0);
}

#[test]
fn query_parameters_are_masked_by_their_decoded_names() {
    let lines: &[(&str, &[&str], &str)] = &[
        ("GET /p?tok%65n=PLANTED-1&a=1 HTTP/1.1", &[], "-"),
        ("GET /p?pass%77ord=PLANTED-2 HTTP/1.1", &[], "-"),
        ("GET /p?%73ig=PLANTED-3 HTTP/1.1", &[], "-"),
        ("GET /p?a=1;token=PLANTED-4 HTTP/1.1", &[], "-"),
        ("GET /p?x=1&SECRE%54=PLANTED-5 HTTP/1.1", &[], "-"),
        ("GET /p?api+k%45y=PLANTED-6 HTTP/1.1", &[], "-"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (log, format) = hostile_log(dir.path(), &[], lines);
    let r = replay_at(&log, &format, "", &[], MockConfig::default());
    assert_eq!(r.received.len(), 6);
    assert!(r.received.iter().all(|q| q.target.contains("=PLANTED-")), "the requests carry them as logged");
    for text in r.files.iter().chain([&r.stderr]) {
        assert!(!text.contains("PLANTED"), "a secret leaked into:\n{text}");
    }
    let urls: Vec<&str> = r.rows.iter().map(|row| row["url"].as_str()).collect();
    assert!(urls.iter().any(|u| u.ends_with("/p?tok%65n=***&a=1")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/p?a=1;token=***")), "{urls:?}");

    let server = spawn_in_thread(MockConfig::default()).unwrap();
    let assert = sluice_cmd(&server)
        .arg(&log)
        .args(["--format", &format, "--rate", "100", "--out", "/dev/null", "--dry-run"])
        .assert()
        .success()
        .stderr(predicate::str::contains("pass%77ord=***"));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(!stderr.contains("PLANTED"), "{stderr}");
}

#[test]
fn formula_like_methods_are_neutralised_in_the_csv() {
    let methods = ["-2+3", "-cmd|'calc'!A0", "+HYPERLINK"];
    let requests: Vec<String> = methods.iter().map(|m| format!("{m} /m HTTP/1.1")).collect();
    let lines: Vec<(&str, &[&str], &str)> = requests.iter().map(|r| (r.as_str(), &[][..], "-")).collect();
    let dir = tempfile::tempdir().unwrap();
    let (log, format) = hostile_log(dir.path(), &[], &lines);
    let r = replay_at(&log, &format, "", &["--allow-methods", "all"], MockConfig::default());
    let sent: Vec<String> = r.received.iter().map(|q| q.method.clone()).collect();
    assert_eq!(sorted(sent), sorted(methods.iter().map(|m| m.to_string()).collect()), "sent as logged");
    let written: Vec<String> = r.rows.iter().map(|row| row["method"].clone()).collect();
    assert_eq!(sorted(written), sorted(methods.iter().map(|m| format!("'{m}")).collect()));
    for row in &r.rows {
        for (column, cell) in row {
            assert!(!display_is_formula(cell), "{column} = {cell:?}");
        }
    }
}

/// What a spreadsheet would evaluate, except numbers (a negative `lag_ms` is a number).
fn display_is_formula(cell: &str) -> bool {
    cell.parse::<f64>().is_err() && matches!(cell.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

#[test]
fn logged_control_bytes_and_hop_by_hop_headers_never_reach_the_wire_as_written() {
    let headers = ["x-note", "transfer-encoding", "content-length", "connection", "upgrade", "expect", "te"];
    let hop = ["chunked", "999", "close, upgrade", "websocket", "100-continue", "trailers"];
    let with = |note: &'static str| -> Vec<&'static str> { [note].into_iter().chain(hop).collect() };
    let (crlf, nul, plain) = (with("ok\\x0D\\x0AX-Injected: 2"), with("a\\x00b"), with("fine"));
    let lines: &[(&str, &[&str], &str)] = &[
        ("GET /a\\x0D\\x0AX-Injected: 1 HTTP/1.1", &crlf, "-"),
        ("GET /nul\\x00byte HTTP/1.1", &nul, "-"),
        ("POST /form HTTP/1.1", &plain, "a=1"),
        ("GET http://127.0.0.1@evil.example:8080/abs?x=1 HTTP/1.1", &plain, "-"),
        ("CONNECT evil.example:443 HTTP/1.1", &plain, "-"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (log, format) = hostile_log(dir.path(), &headers, lines);
    let r = replay_at(&log, &format, "", &["--allow-methods", "all"], MockConfig::default());

    assert_eq!(sorted(targets(&r)), ["/a%0D%0AX-Injected:%201", "/abs?x=1", "/form", "/nul%00byte"]);
    for q in &r.received {
        assert_eq!(q.header("x-injected"), None, "{}: no header was smuggled in", q.target);
        for h in ["transfer-encoding", "upgrade", "expect", "te"] {
            assert_eq!(q.header(h), None, "{}: {h} is never replayed", q.target);
        }
        assert_ne!(q.header("connection").as_deref(), Some("close, upgrade"), "{}", q.target);
        let length = q.header("content-length");
        assert_eq!(length.as_deref(), (q.method == "POST").then_some("3"), "{}: the body's own length", q.target);
        assert!(q.header("host").unwrap().starts_with("127.0.0.1:"), "{}", q.target);
        assert!(q.method != "CONNECT");
    }
    let note = |target: &str| r.received.iter().find(|q| q.target == target).unwrap().header("x-note");
    assert_eq!((note("/a%0D%0AX-Injected:%201"), note("/nul%00byte")), (None, None), "left out, not altered");
    assert_eq!(note("/form").as_deref(), Some("fine"));
    assert_eq!(r.received.iter().find(|q| q.target == "/form").unwrap().body_text(), "a=1");
    assert_eq!(skipped(&r).get("connect/authority target"), Some(&1));
    assert_eq!(r.summary["log"]["plan"]["absolute_urls_rewritten"], 1);
}
