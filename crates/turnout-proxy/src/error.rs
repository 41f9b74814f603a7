//! The error type of the proxy crate.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener could not bind its address (in use, not local, no
    /// permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A route file could not be read, parsed or validated; the table in
    /// use is kept.
    #[error("{}: {source}", path.display())]
    RouteFile {
        /// The route file.
        path: PathBuf,
        /// What is wrong with it.
        source: RouteFileError,
    },
    /// The TLS certificate or key could not be read or used.
    #[error("cannot load tls {what} from {}: {message}", path.display())]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file named in the configuration.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Why a route file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteFileError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not a valid route file.
    #[error(transparent)]
    Invalid(#[from] turnout_routing::RoutingError),
}
