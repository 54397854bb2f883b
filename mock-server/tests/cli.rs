//! The `sluice-mock` binary: URL on stdout, counts on SIGINT, usage errors with exit code 2.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Client;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-mock");

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Waits up to 10 s for the process to exit; kills it (and fails) if it does not.
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice-mock did not exit in time");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs to completion with a time limit: (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut child = spawn(args);
    let status = wait(&mut child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag_and_the_forms() {
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--status", "200:x"], &["--status", "CODE[:WEIGHT]"]),
        (&["--latency", "5"], &["--latency", "lognormal:MEDIAN,P99"]),
        (&["--rule", "api=503"], &["--rule", "PATH=ACTION"]),
        (&["--seed", "minus-one"], &["--seed"]),
        (&["--listen", "0.0.0.0:0"], &["0.0.0.0:0", "--allow-non-loopback"]),
    ];
    for (args, wanted) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{args:?}: expected {w:?} in {stderr}");
        }
    }
}

#[test]
fn help_lists_the_flags() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--listen", "--status", "--latency", "--rule", "--seed", "--record", "--body-bytes", "--quiet"] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[cfg(unix)]
#[test]
fn serves_until_sigint_then_prints_counts() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("r.jsonl");
    let record_arg = record.to_str().unwrap();
    let mut child = spawn(&["--seed", "3", "--status", "200:1,503:1", "--rule", "/gone=410", "--record", record_arg]);

    // The first line of stdout is the URL; read it on a thread so a silent binary cannot hang us.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("the URL within 10 s");
    let addr = line.trim().strip_prefix("http://").expect("an http URL").parse().unwrap();

    let config = sluice_mock::MockConfig::default().with_seed(3).with_statuses("200:1,503:1".parse().unwrap());
    let mut client = Client::connect(addr).unwrap();
    for key in 0..10 {
        assert_eq!(Some(client.get("/x").unwrap().status), config.status_for("/x", key));
    }
    assert_eq!(client.get("/gone").unwrap().status, 410);

    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = wait(&mut child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("requests: 11"), "{stderr}");
    assert!(stderr.contains("410=1"), "{stderr}");
    assert!(stderr.contains("peak concurrency: 1"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&record).unwrap().lines().count(), 11, "record flushed on exit");
}
