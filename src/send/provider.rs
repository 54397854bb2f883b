//! The process's TLS crypto provider, and reqwest clients built on it. reqwest is built on rustls
//! without its default provider (aws-lc-rs, a C library whose build was the longest step of a
//! fresh `cargo build`); ring is installed before the first client is made. A leaf: anything may
//! make a client through here without depending on a run's configuration.

use std::sync::Once;

/// `reqwest::Client::builder()`, with the TLS crypto provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
}

/// Installs ring as the process's rustls provider, once.
pub fn install_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // An error means a program embedding sluice installed its own provider first: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
