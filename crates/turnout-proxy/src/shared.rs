//! State shared by every listener and request of one proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::{RouteTable, ServiceFigures};

use crate::config::ProxyConfig;
use crate::connector::Connector;
use crate::conversions::Conversions;
use crate::forward::ProxyBody;
use crate::instance::Instance;
use crate::metrics::Metrics;
use crate::netns::Namespaces;
use crate::registry::{Context, Registry, Removed};
use crate::snapshot::Snapshot;

/// The proxy's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The snapshot requests read; replaced whole by [`Shared::publish`].
    pub current: ArcSwap<Snapshot>,
    /// Instances by address, listed and draining; locked only to publish,
    /// to end a drain and to answer the control plane.
    pub registry: parking_lot::Mutex<Registry>,
    /// The registry's instances, listed and draining, for the connector to
    /// read without a lock; replaced whenever the registry changes.
    pub instances: ArcSwap<HashMap<SocketAddr, Arc<Instance>>>,
    pub metrics: Metrics,
    /// The A/B feed's aggregator (its drainer task holds it too).
    pub conversions: Arc<Conversions>,
    /// Pooled keep-alive HTTP/1.1 connections to upstream instances.
    pub client: Client<Connector, ProxyBody>,
    /// Connections to the hosts that known callers reach through the
    /// internal listener (egress): by name (resolved by the system), not
    /// instances of ours, so without the connector's drain watch.
    pub egress: Client<HttpConnector, ProxyBody>,
    pub config: ProxyConfig,
    /// Set once by the control plane whose instances live in network
    /// namespaces of their own (containers): new upstream connections
    /// are made inside them where it can.
    pub namespaces: OnceLock<Namespaces>,
    /// Health checks, drain timers, connections and tunnels.
    pub tasks: TaskTracker,
    pub runtime: tokio::runtime::Handle,
    /// Cancelled when shutdown begins: listeners stop accepting, health
    /// checks stop.
    pub stop: CancellationToken,
    /// Cancelled at the shutdown deadline: what still runs is closed.
    pub hard_stop: CancellationToken,
}

impl Shared {
    /// Builds the runtime state of `table` and swaps it in with one store.
    /// Instances the new table no longer lists start draining.
    pub fn publish(self: &Arc<Self>, table: RouteTable) {
        let cx = Context {
            metrics: &self.metrics,
            tasks: &self.tasks,
            runtime: &self.runtime,
            stop: &self.stop,
        };
        // One publish at a time, so two reloads cannot interleave their
        // reconcile and store.
        let mut registry = self.registry.lock();
        let (instances, removed) = registry.reconcile(&table, &cx);
        // Before the swap, so that no request connects to an instance the
        // connector does not know.
        self.instances.store(Arc::new(registry.instances()));
        let drain_timeout = table.drain_timeout();
        let previous = self.current.load_full();
        let snapshot = Arc::new(Snapshot::build(
            table,
            &instances,
            &self.metrics,
            &self.conversions,
            Some(&previous),
        ));
        self.current.store(snapshot.clone());
        // The tallies of taps the new table dropped go (reports still
        // queued for them find nothing).
        self.conversions.keep(&snapshot);
        drop(snapshot);
        // Only after the swap: requests on the new snapshot never see the
        // removed instances, and those still on the old one find them alive
        // (or, once they drain, route again with the new snapshot).
        for removed in removed {
            self.drain(removed, drain_timeout);
        }
        self.retire(previous);
    }

    /// Frees a replaced snapshot off the request path. A request that
    /// loaded it before the swap holds it until it has a response head; if
    /// that request dropped the last reference, a runtime worker would free
    /// the whole table (tens of milliseconds for 10,000 routes) while other
    /// requests wait. A blocking thread waits for those requests instead
    /// (up to a second; after that the last holder frees it after all).
    fn retire(&self, previous: Arc<Snapshot>) {
        if Arc::strong_count(&previous) == 1 {
            return;
        }
        drop(self.runtime.spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while Arc::strong_count(&previous) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(previous);
        }));
    }

    /// The figures of `app`'s routes in the current table.
    pub fn figures(&self, app: &str) -> Vec<ServiceFigures> {
        self.conversions.report(&self.current.load(), app)
    }

    /// Starts the A/B counts of `app`'s goal routes again.
    pub fn reset_conversions(&self, app: &str) {
        self.conversions.reset(&self.current.load(), app);
    }

    /// Requests and upgraded connections using the instance at `addr`;
    /// `None` once the proxy does not track the address (never listed, or
    /// removed and drained).
    pub fn in_flight(&self, addr: SocketAddr) -> Option<usize> {
        self.registry.lock().get(&addr).map(|i| i.in_flight())
    }

    /// Drains a removed instance: it gets no new requests (it is not in the
    /// new snapshot, and requests on an older one skip it once it is
    /// draining); the drain ends as soon as nothing is in flight, or at the
    /// deadline, when the connections to the instance are cut with
    /// whatever they still carry.
    ///
    /// A drain that ends with nothing in flight leaves the instance's idle
    /// pooled connections until the deadline: a request on a connection
    /// cut a moment ago, before hyper noticed, would fail, and an instance
    /// listed again at the same address (a rollback) reuses them.
    fn drain(self: &Arc<Self>, removed: Removed, timeout: Duration) {
        let Removed { instance, abort } = removed;
        instance.start_draining();
        tracing::info!(instance = %instance.id, timeout_ms = timeout.as_millis() as u64, "draining removed instance");
        let shared: Weak<Shared> = Arc::downgrade(self);
        let hard_stop = self.hard_stop.clone();
        self.tasks.spawn_on(
            async move {
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                let idle = loop {
                    // Read after `start_draining`, so 0 here means no
                    // request uses the instance and none will.
                    if instance.in_flight() == 0 {
                        break true;
                    }
                    tokio::select! {
                        () = instance.idle.notified() => {}
                        () = &mut deadline => {
                            tracing::info!(instance = %instance.id, in_flight = instance.in_flight(), "drain deadline passed; cutting what is left");
                            break false;
                        }
                        () = hard_stop.cancelled() => break false,
                        () = abort.cancelled() => return,
                    }
                };
                if !end_drain(&shared, &instance, &abort, idle) {
                    return;
                }
                if idle {
                    tokio::select! {
                        () = &mut deadline => {}
                        () = hard_stop.cancelled() => {}
                        () = abort.cancelled() => return,
                    }
                    let unparked = shared
                        .upgrade()
                        .is_none_or(|shared| shared.registry.lock().unpark(instance.addr, &abort));
                    if !unparked {
                        return;
                    }
                }
                instance.link.drained.cancel();
            },
            &self.runtime,
        );
    }
}

/// Forgets a drained instance, unless it was listed again meanwhile;
/// returns whether it did.
fn end_drain(
    shared: &Weak<Shared>,
    instance: &Arc<Instance>,
    abort: &CancellationToken,
    idle: bool,
) -> bool {
    if let Some(shared) = shared.upgrade() {
        let mut registry = shared.registry.lock();
        if !registry.end_drain(instance, abort, idle, &shared.metrics) {
            return false;
        }
        shared.instances.store(Arc::new(registry.instances()));
    }
    tracing::info!(instance = %instance.id, idle, "drain ended");
    true
}
