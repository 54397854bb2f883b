//! The one place TLS client configurations and reqwest clients come from.
//!
//! reqwest is built on rustls without its default crypto provider (aws-lc-rs, a C library whose
//! build was the longest step of a fresh `cargo build`); ring is installed as the process's
//! provider before the first client is made. [`client_config`] turns a run's
//! [`TlsSettings`] (`--ca-cert`, `--insecure`, `--client-cert`, `--tls-server-name`) into the
//! rustls configuration that every https connection of the run uses, through reqwest or not.

use std::fmt;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::TlsSettings;

pub use super::provider::client_builder;
use super::provider::install_provider;

/// The rustls client configuration of a run: certificates verified by the platform's verifier
/// (which reads `SSL_CERT_FILE` too) with `--ca-cert`'s certificates added, or not at all with
/// `--insecure`; against `--tls-server-name` when given; presenting `--client-cert` when the
/// server asks. `alpn` is offered as is (`[b"h2", b"http/1.1"]`, or only one of them).
///
/// The name a connection sends as SNI is its caller's: `tls.server_name`, else the target's host.
pub fn client_config(tls: &TlsSettings, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
    install_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure {
        Arc::new(AcceptAnyCertificate { provider: provider.clone() })
    } else {
        let platform =
            rustls_platform_verifier::Verifier::new_with_extra_roots(tls.ca_certs.iter().cloned(), provider.clone())
                .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
        match &tls.server_name {
            Some(name) => Arc::new(VerifyAs {
                name: ServerName::try_from(name.clone()).map_err(|_| format!("'{name}' is not a server name"))?,
                inner: Arc::new(platform),
            }),
            None => Arc::new(platform),
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(Present(identity.key.clone()))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `--insecure`: any certificate for any name is accepted. The handshake's signatures are still
/// checked, so the connection is at least with the holder of the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `--tls-server-name`: the certificate is checked against this name, whatever name the
/// connection was opened for (reqwest opens it for the URL's host).
#[derive(Debug)]
struct VerifyAs {
    name: ServerName<'static>,
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// Presents the one client certificate whenever a server asks, whatever it says it accepts: a
/// server that refuses it says so in the handshake, which is the clearest error there is.
struct Present(Arc<CertifiedKey>);

impl fmt::Debug for Present {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Present(client certificate)")
    }
}

impl ResolvesClientCert for Present {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_is_offered_as_asked_and_insecure_needs_no_roots() {
        let config = client_config(&TlsSettings::default(), &[b"h2", b"http/1.1"]).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(!config.client_auth_cert_resolver.has_certs());
        let insecure = TlsSettings { insecure: true, ..TlsSettings::default() };
        assert!(client_config(&insecure, &[b"http/1.1"]).unwrap().alpn_protocols == [b"http/1.1".to_vec()]);
    }
}
