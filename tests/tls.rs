//! https targets: sluice's TLS stack (reqwest on rustls with the ring provider) against a real TLS
//! server on 127.0.0.1, whose certificate comes from a test CA (`fixtures/tls`). The CA is
//! trusted the way a user trusts a staging CA: `SSL_CERT_FILE`, read by the platform verifier.

use std::collections::BTreeSet;
use std::time::Duration;

mod common;
use common::tls_server::{TlsServer, tls_server};
use common::{csv_rows, fixture, path_of};

/// `sluice replay` of the 200-line fixture against `server`, trusting only the certificates in
/// `trusted` (PEM). Returns the exit code and the CSV rows.
fn replay(server: &TlsServer, trusted: &str) -> (Option<i32>, Vec<std::collections::HashMap<String, String>>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    let output = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .arg("replay")
        .arg(fixture("unique-targets.log"))
        .args(["--target", &format!("https://127.0.0.1:{}", server.port)])
        .args(["--rate", "500", "--allow-methods", "all", "--progress", "never", "--out", out.to_str().unwrap()])
        .env("SSL_CERT_FILE", fixture("tls").join(trusted))
        .env_remove("SSL_CERT_DIR")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(out.is_file(), "no CSV; stderr: {stderr}");
    (output.status.code(), csv_rows(&std::fs::read(&out).unwrap()))
}

#[test]
fn https_targets_are_replayed_when_their_ca_is_trusted() {
    let server = tls_server();
    let (code, rows) = replay(&server, "ca.pem");
    assert_eq!(code, Some(0));
    assert_eq!(rows.len(), 200, "one row per log line");
    assert!(rows.iter().all(|r| r["status"] == "200" && r["error"].is_empty()), "{:?}", rows[0]);
    let sent: BTreeSet<String> = rows.iter().map(|r| path_of(&r["url"])).collect();
    let received: BTreeSet<String> = server.received.lock().unwrap().iter().cloned().collect();
    assert_eq!(sent.len(), 200, "the fixture's targets are unique");
    assert_eq!(received, sent, "the server received, decrypted, exactly what the CSV says was sent");
}

#[test]
fn a_certificate_from_an_unknown_issuer_is_a_tls_error_and_nothing_is_sent() {
    let server = tls_server();
    // The server's own certificate is trusted, but not the CA that signed it: no chain.
    let (code, rows) = replay(&server, "server.pem");
    assert_eq!(code, Some(4), "a run in which nothing was answered never exits 0");
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r["error"] == "tls" && r["status"].is_empty()), "{:?}", rows[0]);
    assert!(server.received.lock().unwrap().is_empty(), "no request crossed a refused handshake");
}
