//! The daemon's web page and its run reports: the page's headers and files over plain HTTP, the
//! report route against `sluice report --html` on the same CSV, and the page itself in headless
//! Chromium (Playwright, `tests/web/daemon_page.mjs`) against a daemon with a token and the mock
//! server as the target, checked on both ends: what the page showed, what the daemon recorded,
//! what the mock received. Every wait here is bounded in time.
//!
//! The browser test needs Debian's `chromium` and `npm ci` in `tests/web` (`.ci/run` does both);
//! without them it prints SKIPPED, and fails instead when SLUICE_REQUIRE_BROWSER=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use serde_json::{Value, json};
use sluice_mock::MockConfig;

mod common;
use common::{csv_rows, fixture};
mod daemon_support;
use daemon_support::{InProcess, TOKEN, expect, mock};

fn header<'a>(reply: &'a daemon_support::Reply, name: &str) -> &'a str {
    reply.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

#[test]
fn the_page_is_served_without_the_token_under_a_policy_that_runs_only_its_own_script() {
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), Some(TOKEN), &[]);
    let anonymous = daemon.http(None);

    let page = anonymous.get("/");
    assert_eq!(page.status, 200, "the page holds no data, so it needs no token");
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let policy = header(&page, "content-security-policy");
    let directive = |name: &str| {
        policy
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(directive("default-src"), "default-src 'self'");
    assert_eq!(directive("script-src"), "script-src 'self'", "no inline script, no eval");
    assert_eq!(directive("frame-ancestors"), "frame-ancestors 'none'");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text();
    assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    let handler = html.match_indices(" on").find(|(i, _)| {
        let name: String = html[i + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
        !name.is_empty() && html[i + 3 + name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "no event handler attribute: {handler:?}");

    let script = anonymous.get("/ui/app.js");
    assert_eq!(script.status, 200);
    assert_eq!(script.content_type(), "text/javascript; charset=utf-8");
    assert_eq!(header(&script, "x-content-type-options"), "nosniff");
    let code = script.text();
    // What the API answers goes into the page as text: the script never parses markup.
    for markup in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
        assert!(!code.contains(markup), "app.js uses {markup}");
    }
    // The token travels in a header only, and `EventSource` could not send one.
    assert!(code.contains("`Bearer ${t}`") && !code.contains("new EventSource"));
    let style = anonymous.get("/ui/style.css");
    assert_eq!((style.status, style.content_type()), (200, "text/css; charset=utf-8"));

    // The API stays closed to the page's visitors until they give the token.
    expect(anonymous.get("/v1/runs"), 401, "needs a token");
    expect(anonymous.get("/v1/runs/20260101-000000-000/report.html"), 401, "needs a token");
    expect(anonymous.get("/ui/other.js"), 404, "no such endpoint");
}

#[test]
fn a_runs_report_is_sluice_report_html_on_its_csv_once_it_has_ended() {
    let server = mock(MockConfig::default().with_seed(5).with_statuses("200:85,404:10,503:5".parse().unwrap()));
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    http.upload("u.log", &fixture("unique-targets.log"));
    http.upload("garbage.log", &{
        let p = state.path().join("garbage");
        std::fs::write(&p, "this is not a log line\n".repeat(5)).unwrap();
        p
    });

    let id = http.submit(json!({"logs": ["u.log"], "target": server.url(), "rate": 20, "duration": "60s"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let running = http.wait_for(&id, Duration::from_secs(30), |r| r["progress"]["sent"].as_u64().unwrap_or(0) >= 5);
    // The page draws the plan beside what was achieved.
    assert_eq!(running["progress"]["planned_rate"], 20.0, "{running:#}");
    expect(http.get(&format!("/v1/runs/{id}/report.html")), 409, "its report is rendered once it ends");
    http.post_raw(&format!("/v1/runs/{id}/stop"), "");
    let stopped = http.wait_finished(&id, Duration::from_secs(30));
    assert!(stopped["progress"].get("planned_rate").is_none(), "an ended run plans nothing: {stopped:#}");

    let reply = http.get(&format!("/v1/runs/{id}/report.html"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type(), "text/html; charset=utf-8");
    let policy = header(&reply, "content-security-policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("sandbox"), "{policy}");
    assert_eq!(header(&reply, "content-disposition"), format!("inline; filename=\"sluice-{id}-report.html\""));

    // `sluice report --format html` on the run's CSV and manifest, downloaded under the names the
    // daemon gives them (as in its summaries), writes the same page byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let csv = http.get(&format!("/v1/runs/{id}/results.csv")).body;
    let sent = stopped["progress"]["sent"].as_u64().unwrap();
    assert_eq!(csv_rows(&csv).len() as u64, sent);
    std::fs::write(dir.path().join("results.csv"), &csv).unwrap();
    let manifest = http.get(&format!("/v1/runs/{id}/manifest.json"));
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    std::fs::write(dir.path().join("results.manifest.json"), &manifest.body).unwrap();
    let cli = Command::cargo_bin("sluice")
        .unwrap()
        .current_dir(dir.path())
        .args(["report", "results.csv", "--format", "html"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert_eq!(reply.text(), String::from_utf8(cli.stdout).unwrap());
    assert!(reply.text().contains("<title>sluice report — results.csv</title>"), "{}", reply.text());
    let state_dir = state.path().to_str().unwrap();
    assert!(!reply.text().contains(state_dir), "the daemon's own paths stay out of the report");

    // A run that never sent anything has nothing to report on; an unknown one is not there.
    let failed = http.submit(json!({"logs": ["garbage.log"], "format": "nginx", "target": server.url(), "rate": 10}));
    let failed = failed["id"].as_str().unwrap().to_string();
    assert_eq!(http.wait_finished(&failed, Duration::from_secs(60))["state"], "failed");
    expect(http.get(&format!("/v1/runs/{failed}/report.html")), 404, "no CSV to report on");
    expect(http.get("/v1/runs/20260101-000000-000/report.html"), 404, "there is no run");
}

// ---- the page in a browser ---------------------------------------------------------------------

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What the browser test needs and is missing, if anything.
fn browser_missing(web: &Path) -> Option<String> {
    if !chromium().is_file() {
        return Some(format!("no Chromium at {} (apt-get install chromium)", chromium().display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node".into());
    }
    if !web.join("node_modules/playwright-core/package.json").is_file() {
        return Some(format!("no playwright-core in {} (npm ci there)", web.display()));
    }
    None
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from);
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tests/web/daemon_page.mjs` (for five minutes at most) and returns what it printed.
fn drive_the_page(web: &Path, env: &[(&str, &str)]) -> Value {
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new("node")
        .arg(web.join("daemon_page.mjs"))
        .current_dir(web)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node starts");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser script did not finish within 5 minutes: {}", std::fs::read_to_string(&stderr).unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (std::fs::read_to_string(stdout).unwrap(), std::fs::read_to_string(stderr).unwrap());
    assert!(status.success(), "the browser script failed ({status}):\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the browser script's last line is not JSON ({e}):\n{stdout}\n{stderr}"))
}

#[test]
fn in_chromium_the_page_starts_a_run_follows_it_live_stops_it_and_opens_its_report() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    if let Some(missing) = browser_missing(&web) {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
            "SLUICE_REQUIRE_BROWSER=1 but {missing}"
        );
        eprintln!("SKIPPED: the daemon's page in Chromium: {missing}");
        return;
    }
    let server = mock(
        MockConfig::default()
            .with_seed(11)
            .with_statuses("200:85,404:10,503:5".parse().unwrap())
            .with_latency("2ms..30ms".parse().unwrap()),
    );
    let state = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(state.path(), Some(TOKEN), &[]);
    let http = daemon.http(Some(TOKEN));
    assert_eq!(http.upload("access.log", &fixture("unique-targets.log")).status, 201);

    // A daemon without a token, on loopback, with a run that ended: the page deletes it.
    let open_state = tempfile::tempdir().unwrap();
    let open_daemon = InProcess::start(open_state.path(), None, &[]);
    let open_http = open_daemon.http(None);
    open_http.upload("access.log", &fixture("unique-targets.log"));
    let ended = open_http.submit(json!({"logs": ["access.log"], "target": server.url(), "rate": 500}));
    let ended = ended["id"].as_str().unwrap().to_string();
    assert_eq!(open_http.wait_finished(&ended, Duration::from_secs(60))["state"], "completed");
    let sent_before = server.count();

    let shots = screenshot_dir();
    let seen = drive_the_page(
        &web,
        &[
            ("SLUICE_URL", &daemon.url),
            ("SLUICE_TOKEN", TOKEN),
            ("SLUICE_TARGET", &server.url()),
            ("SLUICE_LOG", "access.log"),
            ("SLUICE_OPEN_URL", &open_daemon.url),
            ("SCREENSHOT_DIR", shots.to_str().unwrap()),
        ],
    );
    eprintln!("the page showed: {seen:#}");

    // The token: asked for once, kept for the tab only, never in a URL or anywhere else.
    assert_eq!(seen["wrongTokenAskedAgain"], true, "a wrong token is refused and asked for again");
    assert_eq!(seen["askedAgain"], false, "a reload keeps the token for the tab");
    assert_eq!(seen["tokenInUrl"], false);
    assert_eq!(seen["storage"], json!({"local": 0, "session": ["sluice.token"]}));
    assert_eq!(seen["cookies"], 0);
    assert_eq!(seen["problems"], json!([]), "no script error or policy violation on the page");

    // The run the page's form started is the daemon's, with the options typed in.
    let id = seen["runId"].as_str().unwrap();
    let run = http.run(id);
    assert_eq!(run["options"]["logs"], json!(["access.log"]));
    assert_eq!(run["options"]["target"], server.url());
    assert_eq!(run["options"]["stages"], "8s:5-40,80s:40");
    assert_eq!(run["state"], "stopped", "{run:#}");
    assert!(run["message"].as_str().unwrap().contains("stopped through the API"), "{run:#}");

    // Its progress grew on the page, one event after another, and ends where the daemon's does.
    let sent_seen: Vec<u64> = seen["sentSeen"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(sent_seen.len() >= 8 && sent_seen.windows(2).all(|w| w[0] < w[1]), "{sent_seen:?}");
    let sent = run["progress"]["sent"].as_u64().unwrap();
    assert_eq!(seen["sentShown"], sent);
    assert!(sent >= *sent_seen.last().unwrap(), "{sent} after {sent_seen:?}");
    assert_eq!(seen["chart"], json!({"achieved": 1, "planned": 1, "p99": 1}), "the live charts were drawn");

    // The other end of the wire: the mock answered every request the CSV the page downloaded holds.
    let csv = http.get(&format!("/v1/runs/{id}/results.csv")).body;
    assert_eq!(seen["csvRows"], csv_rows(&csv).len());
    assert_eq!(seen["csvRows"], sent);
    assert_eq!(server.count() - sent_before, sent, "each request sent reached the mock once");
    assert_eq!(seen["csvName"], format!("sluice-{id}.csv"));
    assert!(seen["csvHeader"].as_str().unwrap().starts_with("seq,log_line,"), "{seen:#}");

    // The report it opened is the run's.
    assert!(seen["reportTitle"].as_str().unwrap().contains("sluice report"), "{seen:#}");
    assert_eq!(seen["reportMentionsRun"], true);
    // Without a token the page needs none, and its Delete removed the run from the daemon.
    assert_eq!(seen["openAskedForToken"], false);
    assert!(seen["openConnection"].as_str().unwrap().contains("needs no token"), "{seen:#}");
    assert_eq!(seen["openStatus"], format!("Run {ended} deleted."));
    expect(open_http.get(&format!("/v1/runs/{ended}")), 404, "there is no run");
    assert!(!open_state.path().join("runs").join(&ended).exists(), "its files went with it");

    for shot in ["daemon-token.png", "daemon-running.png", "daemon-stopped.png", "daemon-report.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{shot} is a picture");
    }
}
