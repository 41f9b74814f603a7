//! The instances the proxy knows, by address, so that health state and
//! health-check tasks survive table swaps; and the drain of those a swap
//! removed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::{HealthCheck, RouteTable};

use crate::health_check;
use crate::instance::Instance;
use crate::metrics::{InstanceLabels, Metrics};

#[derive(Debug)]
struct Entry {
    instance: Arc<Instance>,
    service: Arc<str>,
    check: HealthCheck,
    stop_check: CancellationToken,
}

/// Instances by address. Only touched when a table is published.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: HashMap<SocketAddr, Entry>,
}

/// What a reconcile needs from the proxy.
pub(crate) struct Context<'a> {
    pub metrics: &'a Metrics,
    pub tasks: &'a TaskTracker,
    pub runtime: &'a tokio::runtime::Handle,
    /// Parent of every health-check token: cancelled when the proxy stops.
    pub stop: &'a CancellationToken,
    /// Cancelled at the shutdown deadline; drains end then at the latest.
    pub hard_stop: &'a CancellationToken,
}

impl Registry {
    /// Makes the registry hold exactly the instances of `table`: new ones
    /// are created (ready) with a health-check task, kept ones keep their
    /// state (their task restarts if the route's check changed), and removed
    /// ones are returned for the caller to drain once the new snapshot is
    /// stored. Returns the instances by address and the removed ones.
    pub fn reconcile(
        &mut self,
        table: &RouteTable,
        cx: &Context<'_>,
    ) -> (HashMap<SocketAddr, Arc<Instance>>, Vec<Arc<Instance>>) {
        let mut wanted: HashMap<SocketAddr, (Arc<str>, Arc<str>, HealthCheck)> = HashMap::new();
        for route in table.routes() {
            for service in route.services() {
                for endpoint in service.endpoints() {
                    // The first route listing an address decides its check.
                    wanted.entry(endpoint.addr).or_insert_with(|| {
                        (
                            endpoint.id.clone(),
                            service.name().clone(),
                            route.health().clone(),
                        )
                    });
                }
            }
        }
        let removed: Vec<SocketAddr> = self
            .entries
            .keys()
            .filter(|addr| !wanted.contains_key(addr))
            .copied()
            .collect();
        let mut drained = Vec::with_capacity(removed.len());
        for addr in removed {
            if let Some(entry) = self.entries.remove(&addr) {
                entry.stop_check.cancel();
                cx.metrics.instance_ready.remove(&InstanceLabels {
                    service: entry.service.clone(),
                    instance: entry.instance.id.clone(),
                });
                drained.push(entry.instance);
            }
        }
        let mut out = HashMap::with_capacity(wanted.len());
        for (addr, (id, service, check)) in wanted {
            let entry = self.entries.entry(addr).or_insert_with(|| {
                let gauge = cx
                    .metrics
                    .instance_ready
                    .get_or_create_owned(&InstanceLabels {
                        service: service.clone(),
                        instance: id.clone(),
                    });
                let instance = Instance::new(id.clone(), addr, gauge);
                let stop_check = cx.stop.child_token();
                spawn_check(&instance, &check, &stop_check, cx);
                Entry {
                    instance,
                    service: service.clone(),
                    check: check.clone(),
                    stop_check,
                }
            });
            if entry.check != check {
                entry.stop_check.cancel();
                entry.stop_check = cx.stop.child_token();
                entry.check = check;
                spawn_check(&entry.instance, &entry.check, &entry.stop_check, cx);
            }
            out.insert(addr, entry.instance.clone());
        }
        (out, drained)
    }

    /// The state of the instance at `addr`, if the table lists it.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Arc<Instance>> {
        self.entries.get(addr).map(|e| &e.instance)
    }
}

fn spawn_check(
    instance: &Arc<Instance>,
    check: &HealthCheck,
    stop: &CancellationToken,
    cx: &Context<'_>,
) {
    let task = health_check::run(instance.clone(), check.clone(), stop.clone());
    cx.tasks.spawn_on(task, cx.runtime);
}

/// No new requests reach a draining instance (it is not in the new
/// snapshot); its in-flight requests and tunnels end at the deadline.
pub(crate) fn drain(instance: Arc<Instance>, timeout: Duration, cx: &Context<'_>) {
    instance.start_draining();
    tracing::info!(instance = %instance.id, timeout_ms = timeout.as_millis() as u64, "draining removed instance");
    let hard_stop = cx.hard_stop.clone();
    cx.tasks.spawn_on(
        async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => {}
                () = hard_stop.cancelled() => {}
            }
            instance.drained.cancel();
        },
        cx.runtime,
    );
}
