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
//! changes the calling thread: it is never done on a runtime worker. Each
//! namespace gets a thread of its own that enters it once and then makes
//! the sockets asked of it there, one per new upstream connection
//! (connections are pooled), until it has been idle for [`IDLE`]: a burst
//! of new connections is not a burst of threads. The namespace is known by
//! its inode; a live thread holds its namespace, so the inode cannot name
//! another one meanwhile. The first refusal (no privilege, a rootless
//! engine) is logged once and turns the feature off for the proxy's life.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use arc_swap::ArcSwap;
use nix::sched::{CloneFlags, setns};
use tokio::net::{TcpSocket, TcpStream};

/// How long a namespace's thread waits for the next socket to make before
/// it ends (and lets go of the namespace).
pub const IDLE: Duration = Duration::from_secs(30);

/// The most namespaces' threads kept track of (one per container the
/// router connected to lately).
const MAX_THREADS: usize = 1024;

/// Where the control plane knows a better way to an upstream address: the
/// network namespace the address is local to.
pub trait UpstreamNamespaces: Send + Sync + fmt::Debug {
    /// The network namespace (an open `/proc/<pid>/ns/net`, or any
    /// descriptor `setns` takes) in which `addr` is a local address, if
    /// there is one and it is still the one that was registered; `None`
    /// connects from the router's own namespace.
    fn namespace(&self, addr: SocketAddr) -> Option<OwnedFd>;
}

/// A socket to make: IPv6 or not, and where to answer. The answer is
/// `Err` when the thread could not enter its namespace, else the socket
/// (or why it could not be made).
type Ask = (
    bool,
    tokio::sync::oneshot::Sender<Result<io::Result<TcpSocket>, io::Error>>,
);

/// The proxy's use of [`UpstreamNamespaces`].
#[derive(Debug)]
pub(crate) struct Namespaces {
    inner: Box<dyn UpstreamNamespaces>,
    /// Cleared at the first refused `setns`: from then on every address is
    /// connected to from the router's namespace.
    enabled: AtomicBool,
    /// Each namespace's thread, by the namespace's (device, inode). Read
    /// without a lock; replaced whole when a thread is added or goes (once
    /// per namespace and idle period).
    threads: ArcSwap<HashMap<(u64, u64), mpsc::Sender<Ask>>>,
}

impl Namespaces {
    pub fn new(inner: Box<dyn UpstreamNamespaces>) -> Namespaces {
        Namespaces {
            inner,
            enabled: AtomicBool::new(true),
            threads: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// A connection to `addr` from inside its namespace, or `None` where
    /// there is none to use (the caller then connects as usual).
    pub async fn connect(&self, addr: SocketAddr) -> Option<io::Result<TcpStream>> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        // A thread that ended (idle) just as it was asked drops the ask
        // unanswered: the second try makes a new one.
        for _ in 0..2 {
            // Asked each time: the control plane checks that the address's
            // namespace is still the one it registered.
            let namespace = File::from(self.inner.namespace(addr)?);
            let key = namespace.metadata().map(|m| (m.dev(), m.ino())).ok()?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.ask(key, namespace.into(), (addr.is_ipv6(), tx))?;
            match rx.await {
                Ok(Ok(made)) => {
                    // A socket that cannot be made (out of descriptors) is
                    // this connection's error, as on the usual path.
                    return Some(match made {
                        Ok(socket) => socket.connect(addr).await,
                        Err(err) => Err(err),
                    });
                }
                Ok(Err(refused)) => {
                    if self.enabled.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            error = %refused,
                            "cannot enter containers' network namespaces; upstream \
                             connections go over the bridge from now on"
                        );
                    }
                    // Their senders dropped, the threads end.
                    self.threads.store(Arc::new(HashMap::new()));
                    return None;
                }
                Err(_unanswered) => {
                    self.threads.rcu(|threads| {
                        let mut threads = HashMap::clone(threads);
                        threads.remove(&key);
                        threads
                    });
                }
            }
        }
        None
    }

    /// Hands `ask` to the thread of namespace `key`, starting one in
    /// `namespace` when there is none or it has ended. `None` when no
    /// thread can be made (a thread limit): the usual path needs none.
    /// Two connections that start a namespace's thread at once may start
    /// two: the one left out of the map ends after its answer.
    fn ask(&self, key: (u64, u64), namespace: OwnedFd, ask: Ask) -> Option<()> {
        let ask = match self.threads.load().get(&key) {
            Some(thread) => match thread.send(ask) {
                Ok(()) => return Some(()),
                Err(mpsc::SendError(ask)) => ask,
            },
            None => ask,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            // The inode, so that a namespace's thread can be told apart
            // (`/proc/PID/task/*/comm` keeps 15 bytes).
            .name(format!("netns{}", key.1))
            .spawn(move || serve(&namespace, &rx))
            .ok()?;
        tx.send(ask).ok()?;
        self.threads.rcu(|threads| {
            // The entries of threads that ended stay until replaced; past
            // MAX_THREADS the map starts afresh (live threads, their
            // senders dropped, end, and are made again when asked).
            let mut threads = if threads.len() < MAX_THREADS {
                HashMap::clone(threads)
            } else {
                HashMap::new()
            };
            threads.insert(key, tx.clone());
            threads
        });
        Some(())
    }
}

/// A namespace's thread: enters it once, then makes the sockets asked
/// until it has been idle for [`IDLE`] or the proxy forgot it. It never
/// runs anything else, so nothing else ever runs inside the namespace.
fn serve(namespace: &OwnedFd, asks: &mpsc::Receiver<Ask>) {
    let entered = setns(namespace, CloneFlags::CLONE_NEWNET);
    while let Ok((v6, answer)) = asks.recv_timeout(IDLE) {
        let made = match entered {
            Err(refused) => {
                let _ = answer.send(Err(io::Error::from(refused)));
                return;
            }
            Ok(()) if v6 => TcpSocket::new_v6(),
            Ok(()) => TcpSocket::new_v4(),
        };
        let _ = answer.send(Ok(made));
    }
}
