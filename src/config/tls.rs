//! TLS and address controls of a replay, checked once: `--ca-cert`, `--insecure`,
//! `--client-cert`/`--client-key`, `--tls-server-name` and `--resolve`.
//!
//! Every file is read here, bounded in size, and parsed whole, so a wrong file stops the command
//! (exit 2, naming the file and why) before anything is sent; the engine only ever sees parsed
//! certificates and keys. [`crate::send::tls::client_config`] turns a [`TlsSettings`] into the one
//! rustls configuration every https connection of the run uses.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

use super::{ConfigError, ReplayOptions, Target, bad};

/// A certificate or key file: a CA bundle of a few hundred certificates is about 200 KB.
pub const PEM_FILE_BYTES: u64 = 1024 * 1024;

/// How https connections of a run are made, beyond the target's URL.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Trusted besides the platform's roots (`--ca-cert`, and for a daemon run its operator's).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Where [`TlsSettings::ca_certs`] came from, for the summary (file names, never contents).
    pub ca_sources: Vec<String>,
    /// `--insecure`: the server's certificate is not verified at all.
    pub insecure: bool,
    /// `--client-cert` and `--client-key`: presented when the server asks for one (mTLS).
    pub client_identity: Option<ClientIdentity>,
    /// `--tls-server-name`: the name sent as SNI and that the certificate must hold, instead of
    /// the target's host.
    pub server_name: Option<String>,
}

/// A client certificate chain with its private key, checked to belong together.
#[derive(Clone)]
pub struct ClientIdentity {
    pub key: Arc<CertifiedKey>,
    /// The certificate file, for the summary.
    pub source: String,
}

impl std::fmt::Debug for ClientIdentity {
    // The key is a secret: only where the certificate came from is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").field("source", &self.source).finish_non_exhaustive()
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &TlsSettings) -> bool {
        self.ca_certs == other.ca_certs
            && self.insecure == other.insecure
            && self.server_name == other.server_name
            && self.client_identity.as_ref().map(|i| &i.key.cert) == other.client_identity.as_ref().map(|i| &i.key.cert)
    }
}

impl TlsSettings {
    /// The TLS options of a replay, read and checked. `target` is the validated `--target`.
    pub fn from_options(args: &ReplayOptions, target: &Target) -> Result<TlsSettings, ConfigError> {
        let given = [
            ("--ca-cert", args.ca_cert.is_some()),
            ("--insecure", args.insecure),
            ("--client-cert", args.client_cert.is_some()),
            ("--client-key", args.client_key.is_some()),
            ("--tls-server-name", args.tls_server_name.is_some()),
        ];
        let is_https = matches!(target, Target::Url(url) if url.scheme() == "https");
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given)
            && !is_https
        {
            return Err(bad(flag, "applies to https:// targets only, and --target is not one"));
        }
        if args.insecure && args.ca_cert.is_some() {
            return Err(bad("--insecure", "skips verification, so --ca-cert would never be used: choose one"));
        }
        let mut settings = TlsSettings { insecure: args.insecure, ..TlsSettings::default() };
        if let Some(path) = &args.ca_cert {
            settings.add_ca_file("--ca-cert", path)?;
        }
        settings.client_identity = match (&args.client_cert, &args.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity::load(cert, key)?),
            (Some(_), None) => return Err(bad("--client-cert", "needs --client-key: the certificate's private key")),
            (None, Some(_)) => return Err(bad("--client-key", "needs --client-cert: the key's certificate")),
            (None, None) => None,
        };
        if let Some(name) = &args.tls_server_name {
            let name = name.trim();
            ServerName::try_from(name)
                .map_err(|_| bad("--tls-server-name", format!("'{name}' is not a DNS name or an IP address")))?;
            settings.server_name = Some(name.to_string());
        }
        Ok(settings)
    }

    /// Adds the certificates of a PEM file to the trusted ones; errors name `flag` and the file.
    pub fn add_ca_file(&mut self, flag: &'static str, path: &Path) -> Result<(), ConfigError> {
        self.add_ca_pem(&read_pem_file(flag, path)?, &path.display().to_string()).map_err(|m| bad(flag, m))
    }

    /// Adds the certificates of a PEM bundle to the trusted ones. `source` names it in messages
    /// and the summary. Every certificate must be one a root store accepts.
    pub fn add_ca_pem(&mut self, pem: &[u8], source: &str) -> Result<(), String> {
        let certs = pem_certificates(pem).map_err(|m| format!("{source}: {m}"))?;
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store
                .add(cert.clone())
                .map_err(|e| format!("{source}: certificate #{} cannot be a trusted root: {e}", i + 1))?;
        }
        self.ca_certs.extend(certs);
        self.ca_sources.push(source.to_string());
        Ok(())
    }

    /// The summary's `tls` line: how certificates are checked, and what this side presents.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.insecure {
            parts.push("verification OFF (--insecure): any certificate is accepted".to_string());
        } else if !self.ca_sources.is_empty() {
            let n = self.ca_certs.len();
            parts.push(format!(
                "trusting {n} certificate{} from {} besides the system's roots",
                if n == 1 { "" } else { "s" },
                self.ca_sources.join(", ")
            ));
        }
        if let Some(name) = &self.server_name {
            parts.push(format!("server name {name}"));
        }
        if let Some(identity) = &self.client_identity {
            parts.push(format!("client certificate {}", identity.source));
        }
        parts.join("; ")
    }

    /// Nothing set: connections verify against the platform's roots, as without these flags.
    pub fn is_default(&self) -> bool {
        self.describe().is_empty()
    }
}

impl ClientIdentity {
    /// Reads a certificate chain and its private key, and checks that the key is the
    /// certificate's (rather than finding out from a failed handshake at every request).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ClientIdentity, ConfigError> {
        let cert_shown = cert_path.display();
        let chain = pem_certificates(&read_pem_file("--client-cert", cert_path)?)
            .map_err(|m| bad("--client-cert", format!("{cert_shown}: {m}")))?;
        let key_shown = key_path.display();
        let key_pem = read_pem_file("--client-key", key_path)?;
        // The parser's own message could quote the file; this one names it and says what it wants.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
            bad(
                "--client-key",
                format!("{key_shown}: holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"),
            )
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                bad("--client-key", format!("{key_shown} is not the private key of the certificate in {cert_shown}"))
            }
            other => bad("--client-key", format!("{key_shown}: cannot be used to sign: {other}")),
        })?;
        Ok(ClientIdentity { key: Arc::new(key), source: cert_shown.to_string() })
    }
}

/// The certificates of a PEM text: at least one, each well-formed PEM.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM file ({e})"))?;
    if certs.is_empty() {
        let hint =
            if pem.starts_with(&[0x30]) { " (it looks like DER: openssl x509 -inform der converts it)" } else { "" };
        return Err(format!("holds no PEM certificate (-----BEGIN CERTIFICATE-----){hint}"));
    }
    Ok(certs)
}

/// A certificate or key file's bytes, at most [`PEM_FILE_BYTES`].
fn read_pem_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| bad(flag, format!("{shown}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| bad(flag, format!("{shown}: {e}")))?;
    if bytes.len() as u64 > PEM_FILE_BYTES {
        return Err(bad(flag, format!("{shown}: longer than {PEM_FILE_BYTES} bytes: not a certificate file")));
    }
    Ok(bytes)
}

/// `--resolve HOST:PORT:ADDR` (curl's meaning): connections to the target's HOST:PORT go to
/// ADDR:PORT, while the Host header and SNI still say HOST. HOST:PORT must be the target's.
pub fn parse_resolve(text: &str, target: &Target) -> Result<SocketAddr, ConfigError> {
    let flag = "--resolve";
    let expected = "expected HOST:PORT:ADDR, e.g. staging.example:443:10.0.0.7 or staging.example:443:[fd00::7]";
    let t = text.trim();
    let mut parts = t.splitn(3, ':');
    let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(flag, format!("'{t}': {expected}")));
    };
    let port: u16 = port.parse().map_err(|_| bad(flag, format!("'{t}': '{port}' is not a port; {expected}")))?;
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad(flag, format!("'{t}': '{addr}' is not an IP address; {expected}")))?;
    let url = match target {
        Target::Url(url) => url,
        Target::Mock => return Err(bad(flag, "the built-in mock server has no host to resolve")),
        Target::Kafka(_) => {
            return Err(bad(
                flag,
                "is for HTTP targets: a Kafka client connects to the addresses its brokers advertise, so name them \
                 in kafka://HOST:PORT",
            ));
        }
    };
    let target_host = url.host_str().unwrap_or_default();
    let target_port = url.port_or_known_default().unwrap_or(80);
    if !host.eq_ignore_ascii_case(target_host) || port != target_port {
        return Err(bad(
            flag,
            format!(
                "'{t}' names {host}:{port}, but the target is {target_host}:{target_port}; --resolve only says where \
                 the target's own host and port connect"
            ),
        ));
    }
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        return Err(bad(flag, format!("the target's host {target_host} is an address already: nothing to resolve")));
    }
    Ok(SocketAddr::new(addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        super::super::parse_target(text).unwrap()
    }

    #[test]
    fn resolve_takes_curls_form_for_the_targets_own_host_and_port() {
        let https = target("https://staging.example");
        assert_eq!(parse_resolve("staging.example:443:10.0.0.7", &https).unwrap(), "10.0.0.7:443".parse().unwrap());
        assert_eq!(parse_resolve("STAGING.example:443:[fd00::7]", &https).unwrap(), "[fd00::7]:443".parse().unwrap());
        let http = target("http://staging.example:8080/prefix");
        assert_eq!(parse_resolve("staging.example:8080:127.0.0.1", &http).unwrap(), "127.0.0.1:8080".parse().unwrap());
        for (text, words) in [
            ("staging.example:443", "expected HOST:PORT:ADDR"),
            ("staging.example:https:10.0.0.7", "'https' is not a port"),
            ("staging.example:443:staging.internal", "'staging.internal' is not an IP address"),
            ("other.example:443:10.0.0.7", "the target is staging.example:443"),
            ("staging.example:8443:10.0.0.7", "the target is staging.example:443"),
        ] {
            let e = parse_resolve(text, &https).unwrap_err();
            assert_eq!(e.flag, "--resolve");
            assert!(e.message.contains(words), "{text}: {e}");
        }
        let by_address = parse_resolve("127.0.0.1:80:10.0.0.1", &target("http://127.0.0.1")).unwrap_err();
        assert!(by_address.message.contains("is an address already"), "{by_address}");
        assert!(parse_resolve("x:1:127.0.0.1", &Target::Mock).is_err());
    }

    #[test]
    fn tls_flags_need_an_https_target_a_matching_key_and_no_contradiction() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
        let options = |edit: fn(&mut ReplayOptions, &Path)| {
            let mut args = ReplayOptions::default();
            edit(&mut args, &fixtures);
            args
        };
        let https = target("https://127.0.0.1:8443");
        type Edit = fn(&mut ReplayOptions, &Path);
        let refused: [(Edit, &Target, &str, &str); 5] = [
            (|a, _| a.insecure = true, &Target::Mock, "--insecure", "https:// targets only"),
            (|a, f| a.ca_cert = Some(f.join("ca.pem")), &target("http://h"), "--ca-cert", "https:// targets only"),
            (|a, f| (a.insecure, a.ca_cert) = (true, Some(f.join("ca.pem"))), &https, "--insecure", "choose one"),
            (
                |a, f| (a.client_cert, a.client_key) = (Some(f.join("ca.pem")), Some(f.join("server-key.pem"))),
                &https,
                "--client-key",
                "server-key.pem is not the private key of the certificate in",
            ),
            (|a, f| a.client_key = Some(f.join("server-key.pem")), &https, "--client-key", "needs --client-cert"),
        ];
        for (edit, target, flag, words) in refused {
            let e = TlsSettings::from_options(&options(edit), target).unwrap_err();
            assert_eq!(e.flag, flag, "{e}");
            assert!(e.message.contains(words), "{e}");
        }
        let identity = |a: &mut ReplayOptions, f: &Path| {
            (a.client_cert, a.client_key) = (Some(f.join("server.pem")), Some(f.join("server-key.pem")));
            a.tls_server_name = Some("staging.example".into());
        };
        let settings = TlsSettings::from_options(&options(identity), &https).unwrap();
        let server_pem = fixtures.join("server.pem");
        assert_eq!(
            settings.describe(),
            format!("server name staging.example; client certificate {}", server_pem.display())
        );
        assert!(!format!("{settings:?}").contains("PRIVATE"), "the key is never shown");
    }

    #[test]
    fn a_file_that_holds_no_certificate_is_named_with_the_reason() {
        let mut settings = TlsSettings::default();
        let e = settings.add_ca_pem(b"just some text\n", "ca.txt").unwrap_err();
        assert!(e.starts_with("ca.txt: holds no PEM certificate"), "{e}");
        let e = settings.add_ca_pem(&[0x30, 0x82, 0x01, 0x0a], "ca.der").unwrap_err();
        assert!(e.contains("looks like DER"), "{e}");
        let garbage = b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let e = settings.add_ca_pem(garbage, "bad.pem").unwrap_err();
        assert!(e.starts_with("bad.pem: certificate #1 cannot be a trusted root"), "{e}");
        assert!(settings.ca_certs.is_empty() && settings.is_default(), "nothing half-added");
    }
}
