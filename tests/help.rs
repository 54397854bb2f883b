//! What a newcomer reads first: `--help` with examples, and `sluice mock` speaking as sluice.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

fn help(args: &[&str]) -> String {
    let output = assert_cmd::Command::cargo_bin("sluice").unwrap().args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "{args:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_command_ends_its_help_with_examples_of_itself_within_80_columns() {
    for command in ["parse", "replay", "report", "merge", "mock", "daemon", "runs", "import", "k8s"] {
        let text = help(&[command]);
        let (_, examples) =
            text.split_once("\nExamples:\n").unwrap_or_else(|| panic!("{command}: no Examples:\n{text}"));
        let lines: Vec<&str> = examples.lines().collect();
        let invocations = lines.iter().filter(|l| l.starts_with(&format!("  sluice {command} "))).count();
        assert!(invocations >= 2, "{command}: {invocations} examples\n{examples}");
        for line in lines {
            assert!(line.chars().count() <= 80, "{command}: {line:?} is wider than 80 columns");
            // A comment, a command, or the continuation of one: nothing clap wrapped on its own.
            let shaped = line.starts_with("  # ") || line.starts_with("  sluice ") || line.starts_with("      ");
            assert!(shaped || line.is_empty(), "{command}: {line:?}");
        }
    }
}

#[test]
fn the_runs_commands_say_what_their_id_is() {
    // watch, stop and results take a fleet instead (`--fleet FILE`), so their id is optional.
    for (command, id) in
        [("show", "<ID>"), ("watch", "[ID]"), ("stop", "[ID]"), ("results", "[ID]"), ("delete", "<ID>")]
    {
        let text = help(&["runs", command]);
        assert!(text.contains(&format!("{id}  The run's id, as `runs submit` printed it")), "{command}:\n{text}");
    }
}

#[test]
fn mock_help_lists_every_rule_action() {
    let text = help(&["mock"]);
    let rule = text.split_once("--rule <PATH=ACTION>").unwrap().1.split_once("--seed").unwrap().0;
    let rule = rule.split_whitespace().collect::<Vec<_>>().join(" ");
    for action in [
        "CODE[,LATENCY]",
        "reset[,LATENCY]",
        "garbage[,LATENCY]",
        "redirect[,LATENCY]",
        "redirect-away[,LATENCY]",
        "hang",
    ] {
        assert!(rule.contains(action), "{action} missing from: {rule}");
        let name = action.trim_end_matches("[,LATENCY]");
        if name != "CODE" {
            assert!(name.parse::<sluice_mock::Behavior>().is_ok(), "{name} is documented but not accepted");
        }
    }
}

#[test]
fn mock_errors_are_usage_errors_in_sluices_words() {
    let output =
        assert_cmd::Command::cargo_bin("sluice").unwrap().args(["mock", "--listen", "0.0.0.0:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("sluice: error: refusing to listen on 0.0.0.0:0"), "{stderr}");

    let output =
        assert_cmd::Command::cargo_bin("sluice").unwrap().args(["mock", "--rule", "/x=teapot"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--rule") && stderr.contains("redirect-away[,LATENCY]"), "{stderr}");
}

#[test]
fn sluice_mock_introduces_itself_as_sluice_mock() {
    let mut child = Command::cargo_bin("sluice")
        .unwrap()
        .args(["mock", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line.expect("the mock says where it listens within 30 s");
    assert!(line.starts_with("sluice mock: listening on http://127.0.0.1:"), "{line}");
}
