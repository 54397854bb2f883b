//! An HTTP/1.1 server behind TLS on 127.0.0.1, in-process, with the test certificate of
//! `fixtures/tls` (signed by `fixtures/tls/ca.pem`, for 127.0.0.1 and localhost).

use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::fixture;

/// An HTTP/1.1 server behind TLS on 127.0.0.1 that answers 200 to everything and keeps the
/// request targets it received. It lives as long as its runtime.
pub struct TlsServer {
    pub port: u16,
    pub received: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

/// Accepts TLS with the test certificate of `fixtures/tls`.
pub fn acceptor() -> tokio_rustls::TlsAcceptor {
    let tls = fixture("tls");
    let certs = CertificateDer::pem_file_iter(tls.join("server.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(tls.join("server-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

pub fn tls_server() -> TlsServer {
    let acceptor = acceptor();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    log.lock().unwrap().push(request.uri().to_string());
                    async { Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")))) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    TlsServer { port, received, _runtime: runtime }
}
