//! The instances the proxy knows, by address, so that health state and
//! health-check tasks survive table swaps; and those a swap removed, until
//! their drain ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::{HealthCheck, RouteTable};

use crate::health_check;
use crate::instance::Instance;
use crate::metrics::{InstanceLabels, Metrics, no_app};
use crate::snapshot::FastMap;
use crate::upstream::Link;

#[derive(Debug)]
struct Entry {
    instance: Arc<Instance>,
    /// The labels of its `turnout_instance_ready` series.
    labels: InstanceLabels,
    check: HealthCheck,
    stop_check: CancellationToken,
}

/// A removed instance whose drain has not ended.
#[derive(Debug)]
struct Draining {
    instance: Arc<Instance>,
    labels: InstanceLabels,
    /// Cancelled when the instance is listed again before the drain ends.
    abort: CancellationToken,
}

/// The link (cut token and idle connections) of a drained instance whose drain ended with nothing in
/// flight, kept until the drain deadline: its idle pooled connections are
/// cut then, unless an instance at the same address adopts it first.
#[derive(Debug)]
struct Parked {
    link: Link,
    /// The drain's abort token; cancelled on adoption.
    abort: CancellationToken,
}

/// An instance a reconcile removed, for the caller to drain once the new
/// snapshot is stored.
#[derive(Debug)]
pub(crate) struct Removed {
    pub instance: Arc<Instance>,
    /// Cancelled if a later table lists the address again first.
    pub abort: CancellationToken,
}

/// Instances by address: the listed ones and the draining ones. Only
/// touched when a table is published, when a drain ends, and by the
/// control plane's queries; never by a request.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: HashMap<SocketAddr, Entry>,
    draining: HashMap<SocketAddr, Draining>,
    parked: HashMap<SocketAddr, Parked>,
}

/// What a reconcile needs from the proxy.
pub(crate) struct Context<'a> {
    pub metrics: &'a Metrics,
    pub tasks: &'a TaskTracker,
    pub runtime: &'a tokio::runtime::Handle,
    /// Parent of every health-check token: cancelled when the proxy stops.
    pub stop: &'a CancellationToken,
}

impl Registry {
    /// Makes the registry list exactly the instances of `table`: new ones
    /// are created (ready) with a health-check task, kept ones keep their
    /// state (their task restarts if the route's check changed), draining
    /// ones listed again are revived with their in-flight count, and
    /// removed ones move to the draining set and are returned for the
    /// caller to drain once the new snapshot is stored. Returns the listed
    /// instances by address and the removed ones.
    pub fn reconcile(
        &mut self,
        table: &RouteTable,
        cx: &Context<'_>,
    ) -> (HashMap<SocketAddr, Arc<Instance>>, Vec<Removed>) {
        // One entry per address, looked up once per listed endpoint (a
        // 10,000-route table lists 100,000): a fast hash.
        let mut wanted: FastMap<SocketAddr, (InstanceLabels, HealthCheck)> = FastMap::default();
        for route in table.routes() {
            for service in route.services() {
                for endpoint in service.endpoints() {
                    // The first route listing an address decides its check
                    // (and labels: an instance is one app's).
                    wanted.entry(endpoint.addr).or_insert_with(|| {
                        let labels = InstanceLabels {
                            app: route.app().cloned().unwrap_or_else(no_app),
                            service: service.name().clone(),
                            instance: endpoint.id.clone(),
                        };
                        (labels, route.health().clone())
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
                let abort = CancellationToken::new();
                self.draining.insert(
                    addr,
                    Draining {
                        instance: entry.instance.clone(),
                        labels: entry.labels,
                        abort: abort.clone(),
                    },
                );
                drained.push(Removed {
                    instance: entry.instance,
                    abort,
                });
            }
        }
        let mut out = HashMap::with_capacity(wanted.len());
        for (addr, (labels, check)) in wanted {
            if !self.entries.contains_key(&addr)
                && let Some(draining) = self.draining.remove(&addr)
            {
                // Still alive and maybe still serving: one instance, one
                // count, whatever table lists it.
                draining.abort.cancel();
                draining.instance.revive();
                let stop_check = cx.stop.child_token();
                spawn_check(&draining.instance, &check, &stop_check, cx);
                self.entries.insert(
                    addr,
                    Entry {
                        instance: draining.instance,
                        labels: draining.labels,
                        check: check.clone(),
                        stop_check,
                    },
                );
            }
            let entry = self.entries.entry(addr).or_insert_with(|| {
                let gauge = cx.metrics.instance_ready.get_or_create_owned(&labels);
                let link = match self.parked.remove(&addr) {
                    Some(parked) => {
                        parked.abort.cancel();
                        parked.link
                    }
                    None => Link::new(),
                };
                let instance = Instance::new(labels.instance.clone(), addr, gauge, link);
                let stop_check = cx.stop.child_token();
                spawn_check(&instance, &check, &stop_check, cx);
                Entry {
                    instance,
                    labels: labels.clone(),
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

    /// The instance at `addr`, listed or draining.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Arc<Instance>> {
        self.entries
            .get(addr)
            .map(|e| &e.instance)
            .or_else(|| self.draining.get(addr).map(|d| &d.instance))
    }

    /// Every instance, listed and draining, by address.
    pub fn instances(&self) -> HashMap<SocketAddr, Arc<Instance>> {
        self.entries
            .iter()
            .map(|(addr, e)| (*addr, e.instance.clone()))
            .chain(
                self.draining
                    .iter()
                    .map(|(addr, d)| (*addr, d.instance.clone())),
            )
            .collect()
    }

    /// Forgets a drained instance, unless it was listed again (its drain
    /// was aborted) meanwhile; `park` keeps its cut token for an instance
    /// listed at the same address before the deadline. Returns whether the
    /// drain really ended.
    pub fn end_drain(
        &mut self,
        instance: &Arc<Instance>,
        abort: &CancellationToken,
        park: bool,
        metrics: &Metrics,
    ) -> bool {
        // Only a revival takes a draining entry away, and it cancels
        // `abort` first, under the same lock.
        if abort.is_cancelled() {
            return false;
        }
        let Some(draining) = self.draining.remove(&instance.addr) else {
            return false;
        };
        metrics.instance_ready.remove(&draining.labels);
        if park {
            self.parked.insert(
                instance.addr,
                Parked {
                    link: instance.link.clone(),
                    abort: abort.clone(),
                },
            );
        }
        true
    }

    /// At the deadline of a drain that ended idle: drops the parked token,
    /// unless an instance at the address adopted it. Returns whether the
    /// caller should cut.
    pub fn unpark(&mut self, addr: SocketAddr, abort: &CancellationToken) -> bool {
        !abort.is_cancelled() && self.parked.remove(&addr).is_some()
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
