//! One instance of a service as the router sees it.

use std::net::SocketAddr;
use std::sync::Arc;

/// An instance's address and the id clients are pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance id: the pin cookie's value and the `instance` metrics
    /// label. A route file's endpoints use their address as id.
    pub id: Arc<str>,
    /// Where the instance listens.
    pub addr: SocketAddr,
}
