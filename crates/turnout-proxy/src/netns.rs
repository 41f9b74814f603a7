//! Upstream sockets made inside an instance's own network namespace.
//!
//! A container on a bridge network is reached from the host over the
//! bridge, a veth pair and the host's netfilter rules (Docker installs
//! its NAT and filter chains there, and conntrack runs in both
//! namespaces). A socket belongs to the namespace it was made in, whatever
//! thread uses it later: one made inside the container's namespace and
//! connected to the container's own address goes over that namespace's
//! loopback instead, and the container sees an ordinary TCP client. The
//! control plane says which addresses have such a namespace
//! ([`UpstreamNamespaces`]); every other address, and every address
//! whose namespace cannot be entered, is connected to as usual.
//!
//! Entering a network namespace (`setns`) needs `CAP_SYS_ADMIN`, and it
//! changes the calling thread: it is done on a short-lived thread of its
//! own, once per new upstream connection (connections are pooled), never
//! on a runtime worker. The first refusal (no privilege, a rootless
//! engine) is logged once and turns the feature off for the proxy's life.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sched::{CloneFlags, setns};
use tokio::net::{TcpSocket, TcpStream};

/// Where the control plane knows a better way to an upstream address: the
/// network namespace the address is local to.
pub trait UpstreamNamespaces: Send + Sync + fmt::Debug {
    /// The network namespace (an open `/proc/<pid>/ns/net`, or any
    /// descriptor `setns` takes) in which `addr` is a local address, if
    /// there is one and it is still the one that was registered; `None`
    /// connects from the router's own namespace.
    fn namespace(&self, addr: SocketAddr) -> Option<OwnedFd>;
}

/// The proxy's use of [`UpstreamNamespaces`].
#[derive(Debug)]
pub(crate) struct Namespaces {
    inner: Box<dyn UpstreamNamespaces>,
    /// Cleared at the first refused `setns`: from then on every address is
    /// connected to from the router's namespace.
    enabled: AtomicBool,
}

impl Namespaces {
    pub fn new(inner: Box<dyn UpstreamNamespaces>) -> Namespaces {
        Namespaces {
            inner,
            enabled: AtomicBool::new(true),
        }
    }

    /// A connection to `addr` from inside its namespace, or `None` where
    /// there is none to use (the caller then connects as usual).
    pub async fn connect(&self, addr: SocketAddr) -> Option<io::Result<TcpStream>> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let namespace = self.inner.namespace(addr)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread that cannot be made (a thread limit) leaves the
        // connection to the usual path, which needs none.
        std::thread::Builder::new()
            .name("turnout-netns".into())
            .spawn(move || {
                // The thread ends here, so it is never used again from
                // inside the other namespace.
                let made = match setns(&namespace, CloneFlags::CLONE_NEWNET) {
                    Err(refused) => Err(io::Error::from(refused)),
                    Ok(()) => Ok(match addr {
                        SocketAddr::V4(_) => TcpSocket::new_v4(),
                        SocketAddr::V6(_) => TcpSocket::new_v6(),
                    }),
                };
                let _ = tx.send(made);
            })
            .ok()?;
        let socket = match rx.await.ok()? {
            // A socket that cannot be made (out of descriptors) is this
            // connection's error, as it would be on the usual path.
            Ok(made) => made,
            Err(refused) => {
                if self.enabled.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        error = %refused,
                        "cannot enter containers' network namespaces; upstream \
                         connections go over the bridge from now on"
                    );
                }
                return None;
            }
        };
        Some(match socket {
            Ok(socket) => socket.connect(addr).await,
            Err(err) => Err(err),
        })
    }
}
