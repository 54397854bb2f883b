//! `--sessions`: a client's requests leave in logged order, one at a time, while other clients'
//! go on — checked at both ends of the wire: a loopback server that records when each request
//! arrived and holds one client's answers, and the CSV sluice wrote.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::csv_rows;

fn sluice() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sluice").unwrap()
}

/// How long the server holds answers to paths under `/slow/`: long beside the plan (all six
/// requests are due within 100 ms), so the order below does not depend on the machine's speed.
const HOLD: Duration = Duration::from_millis(1500);

/// What the server saw of one request: when it arrived and when its answer was written.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    arrived: Instant,
    answered: Instant,
}

/// An HTTP/1.1 keep-alive server on 127.0.0.1: a thread per connection, `ok` to every GET, after
/// [`HOLD`] for paths under `/slow/`. Every request is recorded once answered.
fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let arrived = Instant::now();
                    // GETs only: the head ends at the first empty line.
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line.trim_end() != "" {
                        line.clear();
                    }
                    let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();
                    if path.starts_with("/slow/") {
                        std::thread::sleep(HOLD);
                    }
                    let answered = Instant::now();
                    record.lock().unwrap().push(Seen { path, arrived, answered });
                    if writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Two clients, interleaved as in the log: client A's first request is slow to answer.
const LOG: &str = "\
10.0.0.1 - - [21/Nov/2026:10:00:00 +0000] \"GET /slow/a1 HTTP/1.1\" 200 2 \"-\" \"browser\"
10.0.0.2 - - [21/Nov/2026:10:00:00 +0000] \"GET /b1 HTTP/1.1\" 200 2 \"-\" \"browser\"
10.0.0.1 - - [21/Nov/2026:10:00:01 +0000] \"GET /a2 HTTP/1.1\" 200 2 \"-\" \"browser\"
10.0.0.2 - - [21/Nov/2026:10:00:01 +0000] \"GET /b2 HTTP/1.1\" 200 2 \"-\" \"browser\"
10.0.0.1 - - [21/Nov/2026:10:00:02 +0000] \"GET /a3 HTTP/1.1\" 200 2 \"-\" \"browser\"
10.0.0.2 - - [21/Nov/2026:10:00:02 +0000] \"GET /b3 HTTP/1.1\" 200 2 \"-\" \"browser\"
";

/// Replays [`LOG`] at 50/s (unless `extra` says otherwise) with four senders and returns what the
/// server saw (the first request of each path) and the CSV's rows.
fn replay(dir: &Path, extra: &[&str]) -> (HashMap<String, Seen>, Vec<HashMap<String, String>>) {
    let (addr, seen) = recording_server();
    let log = dir.join("access.log");
    std::fs::write(&log, LOG).unwrap();
    let out = dir.join("results.csv");
    let target = format!("http://{addr}");
    let mut args = vec![
        "replay",
        log.to_str().unwrap(),
        "--target",
        &target,
        "--concurrency",
        "4",
        "--progress",
        "never",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(if extra.contains(&"--rate") { &[] } else { &["--rate", "50"] });
    args.extend_from_slice(extra);
    let output = sluice().args(&args).timeout(Duration::from_secs(60)).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let seen = seen.lock().unwrap().clone();
    let rows = csv_rows(&std::fs::read(out).unwrap());
    let sent = rows.iter().filter(|r| r["error"] != "not_sent").count();
    assert_eq!(seen.len(), sent, "every request sent reached the server once: {seen:?}");
    // The first of each path, by path (a looping run sends each again).
    let mut first = HashMap::new();
    for s in seen {
        first.entry(s.path.clone()).or_insert(s);
    }
    (first, rows)
}

#[test]
fn a_sessions_next_request_leaves_only_after_its_previous_answer_while_other_sessions_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, rows) = replay(dir.path(), &["--sessions", "client"]);
    let a1 = &seen["/slow/a1"];
    let (a2, a3) = (&seen["/a2"], &seen["/a3"]);
    assert!(a2.arrived >= a1.answered, "a2 left only once a1 was answered");
    assert!(a3.arrived >= a2.answered, "a3 after a2");
    for b in ["/b1", "/b2", "/b3"] {
        assert!(seen[b].arrived < a1.answered, "{b} did not wait for the other client's slow answer");
    }

    let by_url: HashMap<String, &HashMap<String, String>> =
        rows.iter().map(|r| (common::path_of(&r["url"]), r)).collect();
    let cells = |path: &str| (by_url[path]["session"].as_str(), by_url[path]["session_seq"].as_str());
    assert_eq!(
        ["/slow/a1", "/b1", "/a2", "/b2", "/a3", "/b3"].map(cells),
        [("s1", "0"), ("s2", "0"), ("s1", "1"), ("s2", "1"), ("s1", "2"), ("s2", "2")],
        "ids in order of first appearance, never the address; seq in logged order"
    );
    for row in &rows {
        assert!(!row.values().any(|v| v.contains("10.0.0.")), "no address in the CSV: {row:?}");
    }
    // scheduled_at stays the plan (all six within 100 ms); a2's wait behind a1 is lag.
    let lag = |path: &str| by_url[path]["lag_ms"].parse::<f64>().unwrap();
    assert!(lag("/a2") >= HOLD.as_millis() as f64 - 100.0, "a2's wait shows as lag: {}", lag("/a2"));
}

#[test]
fn without_sessions_the_same_log_does_not_wait_so_the_test_above_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, rows) = replay(dir.path(), &[]);
    assert!(seen["/a2"].arrived < seen["/slow/a1"].answered, "a2 left on its plan, before a1 was answered");
    assert!(rows.iter().all(|r| r["session"].is_empty() && r["session_seq"].is_empty()));
}

#[test]
fn the_summary_counts_sessions_and_lines_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _seen) = recording_server();
    let log = dir.path().join("access.log");
    // The second line has no remote user: it is sent outside any session.
    std::fs::write(
        &log,
        "1.1.1.1 - ann.k7 [21/Nov/2026:10:00:00 +0000] \"GET /x HTTP/1.1\" 200 2\n\
         1.1.1.1 - - [21/Nov/2026:10:00:00 +0000] \"GET /y HTTP/1.1\" 200 2\n\
         1.1.1.2 - bob.k7 [21/Nov/2026:10:00:01 +0000] \"GET /z HTTP/1.1\" 200 2\n\
         1.1.1.3 - ann.k7 [21/Nov/2026:10:00:01 +0000] \"GET /w HTTP/1.1\" 200 2\n",
    )
    .unwrap();
    let out = dir.path().join("r.csv");
    let json = dir.path().join("s.json");
    let target = format!("http://{addr}");
    let output = sluice()
        .args(["replay", log.to_str().unwrap(), "--target", &target, "--rate", "100", "--progress", "never"])
        .args(["--sessions", "$remote_user", "--out", out.to_str().unwrap()])
        .args(["--summary-json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "sessions   2 by user, each in logged order, one request at a time; 1 request outside any (the line lacks the key)"
        ),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(summary["sessions"], serde_json::json!({"key": "user", "sessions": 2, "requests_outside_sessions": 1}));
    let rows = csv_rows(&std::fs::read(out).unwrap());
    let w = rows.iter().find(|r| r["url"].ends_with("/w")).unwrap();
    assert_eq!((w["session"].as_str(), w["session_seq"].as_str()), ("s1", "1"), "ann's second request");
    assert!(!stderr.contains("ann.k7") && !stderr.contains("bob.k7"), "no user name in the summary");
}

#[test]
fn a_key_the_format_does_not_log_is_bad_input_naming_the_flag_and_what_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("common.log");
    std::fs::write(&log, "1.1.1.1 - - [21/Nov/2026:10:00:00 +0000] \"GET /x HTTP/1.1\" 200 2\n").unwrap();
    let out = dir.path().join("r.csv");
    for (format, key, says) in [
        ("common", "cookie:sid", "the log format apache-common does not log the cookie sid"),
        ("auto", "header:X-Session-Id", "does not log the request header x-session-id"),
        ("common", "client", ""),
    ] {
        let output = sluice()
            .args(["replay", log.to_str().unwrap(), "--target", "http://127.0.0.1:9", "--rate", "10"])
            .args(["--format", format, "--sessions", key, "--dry-run", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if says.is_empty() {
            assert_eq!(output.status.code(), Some(0), "{key} is logged: {stderr}");
            continue;
        }
        assert_eq!(output.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains("--sessions") && stderr.contains(says), "{key}: {stderr}");
        assert!(stderr.contains("keys it logs: client, user"), "{key}: {stderr}");
    }
    let output = sluice()
        .args(["replay", log.to_str().unwrap(), "--target", "http://127.0.0.1:9", "--rate", "10"])
        .args(["--sessions", "ip", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sessions") && stderr.contains("'ip' is not a session key"), "{stderr}");
}

#[test]
fn requests_still_parked_when_the_duration_ends_get_a_not_sent_row_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // The log loops for 1 s at 20/s; client A's slow first answer (1.5 s) outlasts the run, so
    // its later requests are still parked behind it when scheduling stops.
    let (seen, rows) = replay(dir.path(), &["--sessions", "client", "--duration", "1s", "--rate", "20"]);
    let mut seqs: Vec<u64> = rows.iter().map(|r| r["seq"].parse().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..rows.len() as u64).collect::<Vec<_>>(), "one row per planned request");
    let a2 = rows.iter().find(|r| r["url"].ends_with("/a2") && r["session"] == "s1").unwrap();
    assert_eq!(a2["error"], "not_sent", "parked behind a1 until the end: {a2:?}");
    assert!(!seen.contains_key("/a2") || seen["/a2"].arrived >= seen["/slow/a1"].answered);
    // (`replay` checked that every row said sent reached the server.)
}

#[test]
fn the_report_shows_sessions_by_length_and_the_slowest_with_their_routes() {
    let dir = tempfile::tempdir().unwrap();
    let _ = replay(dir.path(), &["--sessions", "client"]);
    let output = sluice().args(["report", dir.path().join("results.csv").to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("sessions — 2 by length in requests"), "{text}");
    let slowest = text.lines().skip_while(|l| !l.contains("slowest sessions")).nth(1).unwrap_or_default();
    assert!(slowest.trim_start().starts_with("s1 "), "client A waited for its slow answer: {text}");
    assert!(slowest.ends_with("/slow/a1 → /a2 → /a3"), "routes in logged order: {slowest}");
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
}

/// The CSV of a session replay, in plan order, without the columns that vary run to run (times,
/// lag, latency, the server's port).
#[test]
fn session_csv_columns_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut rows) = replay(dir.path(), &["--sessions", "client"]);
    rows.sort_by_key(|r| r["seq"].parse::<u64>().unwrap());
    let columns =
        ["seq", "log_line", "log_time", "method", "url", "orig_status", "status", "error", "session", "session_seq"];
    let mut text = columns.join(",") + "\n";
    for row in &rows {
        let cells: Vec<String> =
            columns.iter().map(|c| if *c == "url" { common::path_of(&row[*c]) } else { row[*c].clone() }).collect();
        text += &(cells.join(",") + "\n");
    }
    insta::assert_snapshot!("session_csv_columns", text);
}

/// `sluice report CSV --format FORMAT`'s standard output.
fn report_as(csv: &Path, format: &str) -> String {
    let output = sluice().args(["report", csv.to_str().unwrap(), "--format", format]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The part of `text` from `start` to the first `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?} in {text}"));
    let rest = &text[from..];
    &rest[..rest[start.len()..].find(end).map_or(rest.len(), |at| at + start.len())]
}

/// The cells of every Markdown table row in `text`, code spans as their text.
fn markdown_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| {
            let inner = l.trim_start_matches("| ").trim_end_matches(" |");
            inner.split(" | ").map(|c| c.trim_matches('`').to_string()).collect()
        })
        .collect()
}

/// The cells (`<th>` and `<td>`) of every HTML table row in `html`, as text.
fn html_rows(html: &str) -> Vec<Vec<String>> {
    let unescape = |s: &str| {
        s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
    };
    html.split("<tr>")
        .skip(1)
        .map(|row| {
            let row = row.split("</tr>").next().unwrap().replace("<th", "<td").replace("</th>", "</td>");
            row.split("</td>")
                .filter_map(|cell| cell.split_once("<td").map(|(_, c)| unescape(c.split_once('>').unwrap().1)))
                .collect()
        })
        .collect()
}

#[test]
fn the_markdown_and_html_reports_show_the_sessions_that_json_has() {
    let dir = tempfile::tempdir().unwrap();
    let _ = replay(dir.path(), &["--sessions", "client"]);
    let csv = dir.path().join("results.csv");
    let json: serde_json::Value = serde_json::from_str(&report_as(&csv, "json")).unwrap();
    let journeys = &json["journeys"];
    assert_eq!(journeys["sessions"], 2, "{journeys}");

    // The tables as JSON's figures say they read.
    let ms = |v: &serde_json::Value| format!("{:.2}", v.as_f64().unwrap());
    let count = |v: &serde_json::Value| v.as_u64().unwrap().to_string();
    let mut by_length = vec![["length", "sessions", "p50 ms", "p90 ms", "p99 ms", "max ms"].map(String::from).to_vec()];
    for line in journeys["by_length"].as_array().unwrap() {
        let p = &line["total_ms"];
        let length = line["length"].as_str().unwrap().to_string();
        by_length.push(vec![
            length,
            count(&line["sessions"]),
            ms(&p["p50"]),
            ms(&p["p90"]),
            ms(&p["p99"]),
            ms(&p["max"]),
        ]);
    }
    let mut slowest = vec![
        ["slowest sessions", "requests", "failed", "total ms", "routes in logged order"].map(String::from).to_vec(),
    ];
    for s in journeys["slowest"].as_array().unwrap() {
        let routes: Vec<&str> = s["routes"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let session = s["session"].as_str().unwrap().to_string();
        slowest.push(vec![session, count(&s["requests"]), count(&s["failed"]), ms(&s["total_ms"]), routes.join(" → ")]);
    }
    assert_eq!(by_length[1][..2], ["3", "2"], "two sessions of three requests: {journeys}");
    assert_eq!(slowest[1][0], "s1", "client A waited for its slow answer: {journeys}");
    assert_eq!(slowest[1][4], "/slow/a1 → /a2 → /a3");
    assert!(journeys["slowest"][0]["total_ms"].as_f64().unwrap() >= HOLD.as_millis() as f64, "{journeys}");
    let tables: Vec<Vec<String>> = by_length.iter().chain(&slowest).cloned().collect();

    let markdown = report_as(&csv, "markdown");
    let sessions = section(&markdown, "\n### Sessions", "\n### ");
    assert!(
        sessions.contains("2 sessions by length in requests; time from the first planned send to the last answer.")
    );
    assert_eq!(markdown_rows(sessions), tables, "{sessions}");

    let html = report_as(&csv, "html");
    let sessions = section(&html, "<h2>Sessions</h2>", "</section>");
    assert!(sessions.contains("2 sessions by length in requests"), "{sessions}");
    assert_eq!(html_rows(sessions), tables, "{sessions}");
    // The chart: one group per length, its tooltip with the group's figures.
    assert_eq!(sessions.matches("<svg").count(), 1, "{sessions}");
    assert!(sessions.contains(r#"aria-label="Session time by length""#), "{sessions}");
    for line in &by_length[1..] {
        let tip = format!(
            "length {}: {} sessions\np50 {} · p90 {} · p99 {} · max {} ms",
            line[0], line[1], line[2], line[3], line[4], line[5]
        );
        assert!(sessions.contains(&tip), "{tip:?} in {sessions}");
    }
}
