//! The one place reqwest clients come from. reqwest is built on rustls without its default crypto
//! provider (aws-lc-rs, a C library whose build was the longest step of a fresh `cargo build`);
//! ring is installed as the process's provider before the first client is made.

use std::sync::Once;

/// `reqwest::Client::builder()`, with the TLS crypto provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // An error means a program embedding sluice installed its own provider first: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}
