//! What requests read: a route table plus the runtime state that goes with
//! each of its routes, services and instances, built together off the
//! request path and swapped in as one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::metrics::counter::Counter;
use turnout_routing::RouteTable;

use crate::instance::Instance;
use crate::metrics::{ErrorLabels, Histogram, Metrics, ServiceLabels};

/// An immutable routing snapshot.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub table: Arc<RouteTable>,
    /// Runtime state, one per route of `table`, same order.
    pub routes: Box<[RouteState]>,
}

/// Per-route runtime state.
#[derive(Debug)]
pub(crate) struct RouteState {
    /// The round-robin sequence of the route; carried over from the previous
    /// snapshot so a reload does not restart the cycle.
    pub seq: AtomicU64,
    pub services: Box<[ServiceState]>,
    /// Requests answered by the proxy itself (403, 503), by status class.
    pub local: [Counter; 5],
}

/// Per-service runtime state on one route.
#[derive(Debug)]
pub(crate) struct ServiceState {
    pub instances: Box<[InstanceSlot]>,
    /// Round robin over the ready instances.
    pub next: AtomicUsize,
    pub duration: Histogram,
    pub errors: UpstreamErrors,
    /// Requests for the service that no instance answered (502, 503, 504).
    pub local: [Counter; 5],
}

/// An instance as one route's service sees it.
#[derive(Debug)]
pub(crate) struct InstanceSlot {
    pub instance: Arc<Instance>,
    pub requests: [Counter; 5],
}

/// Counters of failed upstream attempts, by kind.
#[derive(Debug)]
pub(crate) struct UpstreamErrors {
    pub connect: Counter,
    pub timeout: Counter,
    pub protocol: Counter,
}

impl Snapshot {
    pub fn build(
        table: RouteTable,
        instances: &HashMap<SocketAddr, Arc<Instance>>,
        metrics: &Metrics,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let empty: Arc<str> = Arc::from("");
        let routes = table
            .routes()
            .iter()
            .map(|route| {
                let id = route.id();
                let seq = previous
                    .and_then(|p| {
                        p.table
                            .routes()
                            .iter()
                            .position(|r| r.id() == id)
                            .and_then(|i| p.routes.get(i))
                    })
                    .map_or(0, |r| r.seq.load(Ordering::Relaxed));
                let services = route
                    .services()
                    .iter()
                    .map(|service| {
                        let name = service.name();
                        let labels = ServiceLabels {
                            route: id.clone(),
                            service: name.clone(),
                        };
                        let error = |kind: &'static str| {
                            metrics.upstream_errors.get_or_create_owned(&ErrorLabels {
                                route: id.clone(),
                                service: name.clone(),
                                kind,
                            })
                        };
                        ServiceState {
                            instances: service
                                .endpoints()
                                .iter()
                                .filter_map(|endpoint| {
                                    let instance = instances.get(&endpoint.addr)?.clone();
                                    Some(InstanceSlot {
                                        requests: metrics.request_counters(id, name, &endpoint.id),
                                        instance,
                                    })
                                })
                                .collect(),
                            next: AtomicUsize::new(0),
                            duration: metrics.duration.get_or_create_owned(&labels),
                            errors: UpstreamErrors {
                                connect: error("connect"),
                                timeout: error("timeout"),
                                protocol: error("protocol"),
                            },
                            local: metrics.request_counters(id, name, &empty),
                        }
                    })
                    .collect();
                RouteState {
                    seq: AtomicU64::new(seq),
                    services,
                    local: metrics.request_counters(id, &empty, &empty),
                }
            })
            .collect();
        metrics.route_weight.clear();
        for route in table.routes() {
            for service in route.services() {
                metrics
                    .route_weight
                    .get_or_create(&ServiceLabels {
                        route: route.id().clone(),
                        service: service.name().clone(),
                    })
                    .set(i64::from(service.weight().get()));
            }
        }
        Snapshot {
            table: Arc::new(table),
            routes,
        }
    }
}
