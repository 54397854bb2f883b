use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::spec::SpecError;

/// Why the mock could not start, or could not finish its record. A bad request from a client is
/// never one of these: the mock answers it (hyper replies 400) or drops the connection.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("refusing to listen on {0}: not a loopback address (allow it explicitly with --allow-non-loopback)")]
    NonLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot create the record file {}: {source}", .path.display())]
    RecordOpen { path: PathBuf, source: io::Error },
    #[error("writing the record file {} failed: {source}", .path.display())]
    RecordWrite { path: PathBuf, source: io::Error },
    #[error("cannot start a mock server thread: {0}")]
    Thread(io::Error),
    #[error(transparent)]
    Spec(#[from] SpecError),
}
