//! State shared by every listener and request of one proxy.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::RouteTable;

use crate::config::ProxyConfig;
use crate::forward::ProxyBody;
use crate::metrics::Metrics;
use crate::registry::{Context, Registry, drain};
use crate::snapshot::Snapshot;

/// The proxy's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The snapshot requests read; replaced whole by [`Shared::publish`].
    pub current: ArcSwap<Snapshot>,
    /// Instances by address; locked only while publishing.
    pub registry: parking_lot::Mutex<Registry>,
    pub metrics: Metrics,
    /// Pooled keep-alive HTTP/1.1 connections to upstream instances.
    pub client: Client<HttpConnector, ProxyBody>,
    pub config: ProxyConfig,
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
    pub fn publish(&self, table: RouteTable) {
        let cx = Context {
            metrics: &self.metrics,
            tasks: &self.tasks,
            runtime: &self.runtime,
            stop: &self.stop,
            hard_stop: &self.hard_stop,
        };
        // One publish at a time, so two reloads cannot interleave their
        // reconcile and store.
        let mut registry = self.registry.lock();
        let (instances, removed) = registry.reconcile(&table, &cx);
        let drain_timeout = table.drain_timeout();
        let previous = self.current.load_full();
        let snapshot = Snapshot::build(table, &instances, &self.metrics, Some(&previous));
        self.current.store(Arc::new(snapshot));
        // Only after the swap: requests on the new snapshot never see the
        // removed instances, and those still on the old one find them alive.
        for instance in removed {
            drain(instance, drain_timeout, &cx);
        }
    }
}
