//! Internal listeners opened and closed while the proxy runs, beside the
//! one of [`ProxyConfig::internal_listen`](crate::ProxyConfig): the docker
//! runtime's `<gateway>:80` of each app network, where the `.local` names
//! point inside containers (DESIGN §6.1). They serve exactly what the
//! configured internal listener serves, and as it is served: with extra
//! workers (`ProxyConfig::workers`), the main runtime and every worker
//! each accept on a socket of their own bound with `SO_REUSEPORT`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::Listener;

use crate::error::ProxyError;
use crate::listener;
use crate::shared::Shared;

/// One open listener: a socket per runtime that serves it.
#[derive(Debug)]
struct Open {
    /// Closes it.
    stop: CancellationToken,
    /// Told when each of its sockets is closed.
    closed: Vec<oneshot::Receiver<()>>,
    /// Its accept loops, which end once their connections did (or at the
    /// drain deadline).
    tasks: Vec<JoinHandle<()>>,
}

/// An extra worker's runtime, which serves listeners opened while running
/// too.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    /// Its current-thread runtime.
    pub(crate) runtime: tokio::runtime::Handle,
    /// Its tasks: the worker's thread ends once they did, after the stop.
    pub(crate) tasks: TaskTracker,
}

/// The listeners opened while running, by the address asked for.
#[derive(Debug, Default)]
pub(crate) struct InternalListeners {
    open: parking_lot::Mutex<BTreeMap<SocketAddr, Open>>,
    /// The extra workers, each of which gets its own socket.
    workers: Vec<Worker>,
}

impl InternalListeners {
    /// Listeners to be served by the main runtime and by `workers`.
    pub(crate) fn new(workers: Vec<Worker>) -> InternalListeners {
        InternalListeners {
            open: parking_lot::Mutex::default(),
            workers,
        }
    }

    /// Listens on `addr` for internal routes, unless already listening
    /// there; the bound address (port 0 resolved). Taken by anything else,
    /// it is [`ProxyError::Bind`] naming it.
    pub(crate) fn add(
        &self,
        shared: &Arc<Shared>,
        addr: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        let mut open = self.open.lock();
        if addr.port() != 0 && open.contains_key(&addr) {
            return Ok(addr);
        }
        // Every socket is bound before any is served: a failure leaves
        // nothing open. Each joins the runtime that serves it, whatever
        // thread asks.
        let reuse_port = !self.workers.is_empty();
        let main = {
            let _runtime = shared.runtime.enter();
            crate::proxy::listen_on(addr, reuse_port, 1024)?
        };
        let bound = main.local_addr().unwrap_or(addr);
        let mut sockets = vec![(main, None)];
        for worker in &self.workers {
            let _runtime = worker.runtime.enter();
            sockets.push((crate::proxy::listen_on(bound, true, 1024)?, Some(worker)));
        }
        let stop = shared.stop.child_token();
        let (mut closed, mut tasks) = (Vec::new(), Vec::new());
        for (listener, worker) in sockets {
            let (closed_tx, closed_rx) = oneshot::channel();
            let serve = listener::serve_until(
                listener,
                Listener::Internal,
                None,
                shared.clone(),
                stop.clone(),
                Some(closed_tx),
            );
            tasks.push(match worker {
                None => shared.runtime.spawn(serve),
                Some(worker) => worker.tasks.spawn_on(serve, &worker.runtime),
            });
            closed.push(closed_rx);
        }
        open.insert(
            bound,
            Open {
                stop,
                closed,
                tasks,
            },
        );
        tracing::info!(%bound, sockets = self.workers.len() + 1, "internal listener opened");
        Ok(bound)
    }

    /// Stops listening on `addr` and waits until its socket is closed (the
    /// address can be bound again then); its open connections finish as
    /// they would at a stop. `false` when it was not listening there.
    pub(crate) async fn remove(&self, addr: SocketAddr) -> bool {
        let Some(open) = self.open.lock().remove(&addr) else {
            return false;
        };
        open.stop.cancel();
        for closed in open.closed {
            let _ = closed.await;
        }
        tracing::info!(%addr, "internal listener closed");
        true
    }

    /// Where they listen.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.open.lock().keys().copied().collect()
    }

    /// Their accept loops, taken for the proxy's shutdown to wait for.
    pub(crate) fn take_tasks(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.open.lock())
            .into_values()
            .flat_map(|open| open.tasks)
            .collect()
    }
}
