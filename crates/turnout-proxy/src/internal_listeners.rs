//! Internal listeners opened and closed while the proxy runs, beside the
//! one of [`ProxyConfig::internal_listen`](crate::ProxyConfig): the docker
//! runtime's `<gateway>:80` of each app network, where the `.local` names
//! point inside containers (DESIGN §6.1). They serve exactly what the
//! configured internal listener serves, on the main runtime (the extra
//! workers of `ProxyConfig::workers` serve only the configured ones).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use turnout_routing::Listener;

use crate::error::ProxyError;
use crate::listener;
use crate::shared::Shared;

/// One open listener.
#[derive(Debug)]
struct Open {
    /// Closes it.
    stop: CancellationToken,
    /// Told when its socket is closed.
    closed: oneshot::Receiver<()>,
    /// Its accept loop, which ends once its connections did (or at the
    /// drain deadline).
    task: JoinHandle<()>,
}

/// The listeners opened while running, by the address asked for.
#[derive(Debug, Default)]
pub(crate) struct InternalListeners {
    open: parking_lot::Mutex<BTreeMap<SocketAddr, Open>>,
}

impl InternalListeners {
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
        // The socket joins the proxy's runtime, whatever thread asks.
        let _runtime = shared.runtime.enter();
        let listener = crate::proxy::listen_on(addr, false, 1024)?;
        let bound = listener.local_addr().unwrap_or(addr);
        let stop = shared.stop.child_token();
        let (closed_tx, closed) = oneshot::channel();
        let task = shared.runtime.spawn(listener::serve_until(
            listener,
            Listener::Internal,
            None,
            shared.clone(),
            stop.clone(),
            Some(closed_tx),
        ));
        open.insert(bound, Open { stop, closed, task });
        tracing::info!(%bound, "internal listener opened");
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
        let _ = open.closed.await;
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
            .map(|open| open.task)
            .collect()
    }
}
