//! `--ca-cert`, `--insecure`, `--client-cert`/`--client-key`, `--tls-server-name` and
//! `--resolve` against a real nginx on loopback, with a CA, a server certificate and a client
//! certificate made by each test (`openssl`). Both ends are checked: what sluice wrote (exit
//! code, CSV, summary) and what nginx logged (`$server_addr`, `$ssl_server_name`, `$host`,
//! `$server_protocol`, `$ssl_client_verify` for each request it answered).
//!
//! Without nginx or openssl these tests print SKIPPED; with `SLUICE_REQUIRE_NGINX=1` they fail.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::{csv_rows, fixture};

/// The log every test replays: 200 unique GET targets.
const LOG_LINES: usize = 200;

/// A CA, a server certificate it signed for `staging.test` and 127.0.0.1, and a client
/// certificate it signed, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `None` (after a visible SKIPPED line) when openssl is not installed.
    fn make(test: &str) -> Option<Pki> {
        if Command::new("openssl").arg("version").output().is_err() {
            if std::env::var("SLUICE_REQUIRE_NGINX").as_deref() == Ok("1") {
                panic!("SLUICE_REQUIRE_NGINX=1 but no openssl to make the test certificates");
            }
            eprintln!("SKIPPED {test}: openssl is not installed");
            return None;
        }
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        pki.openssl(
            &["req", "-x509"],
            &ec,
            &[
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sluice tls_nginx test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        pki.signed(
            "server",
            "/CN=staging.test",
            "subjectAltName=DNS:staging.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        pki.signed("client", "/CN=sluice-client", "extendedKeyUsage=clientAuth");
        Some(pki)
    }

    /// `NAME.pem` and `NAME-key.pem`, signed by the CA with these extensions.
    fn signed(&self, name: &str, subject: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(self.path(&ext), format!("basicConstraints=critical,CA:FALSE\n{extensions}\n")).unwrap();
        let (key, csr, pem) = (format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}.pem"));
        self.openssl(
            &["req"],
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &["-keyout", &key, "-out", &csr, "-subj", subject],
        );
        self.openssl(
            &["x509", "-req"],
            &["-in", &csr],
            &["-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", &pem, "-days", "2", "-extfile", &ext],
        );
    }

    fn openssl(&self, command: &[&str], a: &[&str], b: &[&str]) {
        let out = Command::new("openssl").current_dir(self.dir.path()).args(command).args(a).args(b).output().unwrap();
        assert!(out.status.success(), "openssl {command:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// nginx answering 200 on `https://ADDR:PORT` with the server certificate, and `http://` on a
/// second port of the same address; each request it answers logged as
/// `$server_addr $ssl_server_name $host $server_protocol $ssl_client_verify`.
struct Nginx {
    nginx: common::nginx::Nginx,
    addr: &'static str,
    https_port: u16,
    http_port: u16,
}

impl Nginx {
    /// `client_ca`: require a client certificate signed by it (`ssl_verify_client on`).
    fn start(test: &str, pki: &Pki, addr: &'static str, require_client_cert: bool) -> Option<Nginx> {
        let binary = common::nginx::required(test)?;
        // Free ports: bound by the OS, then released for nginx (nothing else here races for them).
        let free = || TcpListener::bind((addr, 0)).unwrap().local_addr().unwrap().port();
        let (https_port, http_port) = (free(), free());
        let mut server = format!(
            "listen {addr}:{https_port} ssl; listen {addr}:{http_port}; server_name staging.test; \
             ssl_certificate {}; ssl_certificate_key {};",
            pki.arg("server.pem"),
            pki.arg("server-key.pem")
        );
        if require_client_cert {
            server += &format!(" ssl_verify_client on; ssl_client_certificate {};", pki.arg("ca.pem"));
        }
        let format = "$server_addr $ssl_server_name $host $server_protocol $ssl_client_verify";
        let ready = || [https_port, http_port].iter().all(|p| TcpStream::connect((addr, *p)).is_ok());
        let nginx = common::nginx::Nginx::start_server(&binary, &[], &server, format, ready);
        Some(Nginx { nginx, addr, https_port, http_port })
    }

    fn https(&self) -> String {
        format!("https://{}:{}", self.addr, self.https_port)
    }

    /// What nginx logged, one list of fields per request.
    fn logged(&self) -> Vec<Vec<String>> {
        self.nginx.access_log().lines().map(|l| l.split(' ').map(String::from).collect()).collect()
    }
}

/// What one `sluice replay` did.
struct Replayed {
    code: Option<i32>,
    stderr: String,
    /// `None` when no CSV was written (refused before the run).
    rows: Option<Vec<HashMap<String, String>>>,
    summary: serde_json::Value,
}

impl Replayed {
    fn statuses(&self) -> Vec<&str> {
        self.rows.as_ref().expect("a CSV").iter().map(|r| r["status"].as_str()).collect()
    }

    fn errors(&self) -> Vec<&str> {
        self.rows.as_ref().expect("a CSV").iter().map(|r| r["error"].as_str()).collect()
    }
}

/// `sluice replay` of the 200-line fixture against `target` with `args`, trusting no CA from
/// the environment.
fn replay(target: &str, args: &[&str]) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("r.csv"), dir.path().join("summary.json"));
    let output = assert_cmd::Command::cargo_bin("sluice")
        .unwrap()
        .arg("replay")
        .arg(fixture("unique-targets.log"))
        .args(["--target", target, "--rate", "1000", "--allow-methods", "all", "--progress", "never"])
        .args(["--out", out.to_str().unwrap(), "--summary-json", json.to_str().unwrap()])
        .args(args)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let read = |p: &Path| std::fs::read(p).ok();
    Replayed {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        rows: read(&out).map(|bytes| csv_rows(&bytes)),
        summary: read(&json).map(|bytes| serde_json::from_slice(&bytes).unwrap()).unwrap_or_default(),
    }
}

#[test]
fn the_ca_given_with_ca_cert_is_trusted_and_every_request_reaches_nginx() {
    let Some(pki) = Pki::make("ca_cert_trusted") else { return };
    let Some(nginx) = Nginx::start("ca_cert_trusted", &pki, "127.0.0.1", false) else { return };
    let run = replay(&nginx.https(), &["--ca-cert", &pki.arg("ca.pem")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.statuses(), ["200"; LOG_LINES]);
    let logged = nginx.logged();
    assert_eq!(logged.len(), LOG_LINES, "nginx answered every request over TLS");
    assert!(logged.iter().all(|l| l[0] == "127.0.0.1" && l[3] == "HTTP/1.1"), "{:?}", logged[0]);
    let trusted = run.summary["tls"].as_str().unwrap();
    assert_eq!(trusted, format!("trusting 1 certificate from {} besides the system's roots", pki.arg("ca.pem")));
    assert!(run.stderr.contains("  tls        trusting "), "{}", run.stderr);
}

#[test]
fn without_the_ca_every_request_is_a_tls_error_and_the_summary_names_the_cause_and_the_cure() {
    let Some(pki) = Pki::make("without_the_ca") else { return };
    let Some(nginx) = Nginx::start("without_the_ca", &pki, "127.0.0.1", false) else { return };
    let run = replay(&nginx.https(), &[]);
    assert_eq!(run.code, Some(4), "nothing answered: {}", run.stderr);
    assert_eq!(run.errors(), ["tls"; LOG_LINES], "the CSV keeps the short kind");
    // The message names the address the handshake was with (127.0.0.1:PORT).
    let line = format!(
        "tls: invalid peer certificate: UnknownIssuer ({}:{}) ×{LOG_LINES} — pass --ca-cert FILE",
        nginx.addr, nginx.https_port
    );
    assert!(run.stderr.contains(&line), "{}", run.stderr);
    let messages = &run.summary["error_messages"]["tls"];
    assert_eq!(messages.as_array().unwrap().len(), 1, "one distinct message: {messages}");
    assert_eq!(messages[0]["count"], LOG_LINES as u64);
    assert_eq!(
        messages[0]["message"],
        format!("invalid peer certificate: UnknownIssuer ({}:{})", nginx.addr, nginx.https_port)
    );
    assert!(messages[0]["hint"].as_str().unwrap().contains("--insecure"), "{messages}");
    assert!(nginx.logged().is_empty(), "no request crossed a refused handshake");
}

#[test]
fn insecure_skips_verification_and_says_so() {
    let Some(pki) = Pki::make("insecure") else { return };
    let Some(nginx) = Nginx::start("insecure", &pki, "127.0.0.1", false) else { return };
    let run = replay(&nginx.https(), &["--insecure"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.statuses(), ["200"; LOG_LINES]);
    assert_eq!(nginx.logged().len(), LOG_LINES);
    assert!(run.stderr.contains("the target's certificate is NOT verified"), "{}", run.stderr);
    assert!(run.stderr.contains("  tls        verification OFF (--insecure)"), "{}", run.stderr);
    assert!(run.summary["tls"].as_str().unwrap().starts_with("verification OFF (--insecure)"));
}

#[test]
fn a_client_certificate_nginx_requires_is_presented_and_without_it_nginx_refuses() {
    let Some(pki) = Pki::make("mtls") else { return };
    let Some(nginx) = Nginx::start("mtls", &pki, "127.0.0.1", true) else { return };
    let ca = pki.arg("ca.pem");
    let run = replay(
        &nginx.https(),
        &["--ca-cert", &ca, "--client-cert", &pki.arg("client.pem"), "--client-key", &pki.arg("client-key.pem")],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.statuses(), ["200"; LOG_LINES]);
    let logged = nginx.logged();
    assert_eq!(logged.len(), LOG_LINES);
    assert!(logged.iter().all(|l| l[4] == "SUCCESS"), "nginx verified the client: {:?}", logged[0]);
    assert!(run.summary["tls"].as_str().unwrap().contains(&format!("client certificate {}", pki.arg("client.pem"))));

    let without = replay(&nginx.https(), &["--ca-cert", &ca]);
    // nginx completes the handshake and answers 400 "No required SSL certificate was sent".
    assert_eq!(without.statuses(), ["400"; LOG_LINES], "{}", without.stderr);
    let refused = &nginx.logged()[LOG_LINES..];
    assert_eq!(refused.len(), LOG_LINES);
    assert!(refused.iter().all(|l| l[4] == "NONE"), "{:?}", refused[0]);
}

#[test]
fn resolve_connects_to_its_address_while_host_and_sni_say_the_targets_name() {
    let Some(pki) = Pki::make("resolve") else { return };
    // On 127.0.0.2: reaching it proves the connection went where --resolve said, not to
    // staging.test's own address (it has none) nor to 127.0.0.1.
    let Some(nginx) = Nginx::start("resolve", &pki, "127.0.0.2", false) else { return };
    let port = nginx.https_port;
    let resolve = format!("staging.test:{port}:127.0.0.2");
    let run =
        replay(&format!("https://staging.test:{port}"), &["--ca-cert", &pki.arg("ca.pem"), "--resolve", &resolve]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.statuses(), ["200"; LOG_LINES]);
    let logged = nginx.logged();
    assert_eq!(logged.len(), LOG_LINES);
    for line in &logged {
        assert_eq!(
            line[..4],
            ["127.0.0.2", "staging.test", "staging.test", "HTTP/1.1"],
            "address, SNI, Host, protocol"
        );
    }
    assert_eq!(run.summary["connected_to"], format!("127.0.0.2:{port}"));
    assert!(run.stderr.contains(&format!("  connected  to 127.0.0.2:{port} (--resolve)")), "{}", run.stderr);

    // Plain http too (the direct transport): no SNI, the same Host.
    let http = nginx.http_port;
    let run = replay(&format!("http://staging.test:{http}"), &["--resolve", &format!("staging.test:{http}:127.0.0.2")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let plain = &nginx.logged()[LOG_LINES..];
    assert_eq!(plain.len(), LOG_LINES);
    assert!(plain.iter().all(|l| l[..4] == ["127.0.0.2", "-", "staging.test", "HTTP/1.1"]), "{:?}", plain[0]);

    // The host guard judges the address connections go to.
    let denied = replay(
        &format!("http://staging.test:{http}"),
        &["--resolve", &format!("staging.test:{http}:127.0.0.2"), "--deny-host", "127.0.0.2"],
    );
    assert_eq!(denied.code, Some(2), "{}", denied.stderr);
    assert!(denied.stderr.contains("staging.test (127.0.0.2 by --resolve) is denied"), "{}", denied.stderr);
    assert_eq!(nginx.logged().len(), 2 * LOG_LINES, "nothing sent");
}

#[test]
fn tls_server_name_is_the_name_the_certificate_is_verified_against() {
    let Some(pki) = Pki::make("tls_server_name") else { return };
    let Some(nginx) = Nginx::start("tls_server_name", &pki, "127.0.0.1", false) else { return };
    let ca = pki.arg("ca.pem");
    let wrong = replay(&nginx.https(), &["--ca-cert", &ca, "--tls-server-name", "other.test"]);
    assert_eq!(wrong.errors(), ["tls"; LOG_LINES], "{}", wrong.stderr);
    let line = "tls: invalid peer certificate: certificate not valid for name \"other.test\"";
    assert!(wrong.stderr.contains(line) && wrong.stderr.contains("pass --tls-server-name NAME"), "{}", wrong.stderr);
    assert!(nginx.logged().is_empty());
    let right = replay(&nginx.https(), &["--ca-cert", &ca, "--tls-server-name", "staging.test"]);
    assert_eq!(right.code, Some(0), "{}", right.stderr);
    assert_eq!(right.statuses(), ["200"; LOG_LINES]);
}

#[test]
fn bad_certificates_keys_and_resolve_exit_2_naming_the_file_and_reason_before_anything_is_sent() {
    let Some(pki) = Pki::make("bad_input") else { return };
    let Some(nginx) = Nginx::start("bad_input", &pki, "127.0.0.1", true) else { return };
    std::fs::write(pki.path("notes.txt"), "this is not a certificate\n").unwrap();
    let (ca, notes) = (pki.arg("ca.pem"), pki.arg("notes.txt"));
    let (client, client_key, server_key) =
        (pki.arg("client.pem"), pki.arg("client-key.pem"), pki.arg("server-key.pem"));
    let port = nginx.https_port.to_string();
    let cases: [(&[&str], String); 7] = [
        (&["--ca-cert", &notes], format!("--ca-cert: {notes}: holds no PEM certificate")),
        (&["--ca-cert", &client_key], format!("--ca-cert: {client_key}: holds no PEM certificate")),
        (&["--ca-cert", "/nonexistent/ca.pem"], "--ca-cert: /nonexistent/ca.pem: No such file".into()),
        (
            &["--ca-cert", &ca, "--client-cert", &client, "--client-key", &server_key],
            format!("--client-key: {server_key} is not the private key of the certificate in {client}"),
        ),
        (&["--ca-cert", &ca, "--client-cert", &client], "--client-cert: needs --client-key".into()),
        (
            &["--resolve", "127.0.0.1:https:127.0.0.1"],
            "--resolve: '127.0.0.1:https:127.0.0.1': 'https' is not a port".into(),
        ),
        (&["--resolve", &format!("other.test:{port}:127.0.0.1")], format!("but the target is 127.0.0.1:{port}")),
    ];
    for (args, message) in cases {
        let run = replay(&nginx.https(), args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(&message), "{args:?}: expected {message:?} in: {}", run.stderr);
        assert!(run.rows.is_none(), "{args:?}: refused before the run, so no CSV");
    }
    assert!(nginx.logged().is_empty(), "nothing reached nginx");
}
