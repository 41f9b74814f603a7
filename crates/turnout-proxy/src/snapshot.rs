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
#[derive(Debug, Clone)]
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
        // The previous snapshot's routes by id, so a reload carries the
        // round-robin counters and reuses the metric handles of what did
        // not change (a handle lookup hashes its whole label set; a table
        // of 10,000 routes x 10 endpoints has 700,000 of them).
        let previous_routes: HashMap<&str, usize> = previous
            .map(|p| {
                p.table
                    .routes()
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (&**r.id(), i))
                    .collect()
            })
            .unwrap_or_default();
        let routes = table
            .routes()
            .iter()
            .map(|route| {
                let id = route.id();
                let before = previous.and_then(|p| {
                    let i = *previous_routes.get(&**id)?;
                    Some((p.table.routes().get(i)?, p.routes.get(i)?))
                });
                let seq = before.map_or(0, |(_, state)| state.seq.load(Ordering::Relaxed));
                let services = route
                    .services()
                    .iter()
                    .enumerate()
                    .map(|(j, service)| {
                        let name = service.name();
                        // The same service (by name) in the previous table.
                        let was = before.and_then(|(old_route, old_state)| {
                            let old = old_route.services();
                            let k = if old.get(j).is_some_and(|s| s.name() == name) {
                                j
                            } else {
                                old.iter().position(|s| s.name() == name)?
                            };
                            Some((&old[k], old_state.services.get(k)?))
                        });
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
                        // An instance's counters from the previous state
                        // when its endpoint id is the same (its slots line
                        // up with the endpoints only when none was skipped).
                        let reuse = |k: usize, endpoint_id: &Arc<str>| {
                            let (old_service, old_state) = was?;
                            let old_endpoints = old_service.endpoints();
                            if old_state.instances.len() != old_endpoints.len() {
                                return None;
                            }
                            let k = if old_endpoints.get(k).is_some_and(|e| e.id == *endpoint_id) {
                                k
                            } else {
                                old_endpoints.iter().position(|e| e.id == *endpoint_id)?
                            };
                            Some(old_state.instances[k].requests.clone())
                        };
                        ServiceState {
                            instances: service
                                .endpoints()
                                .iter()
                                .enumerate()
                                .filter_map(|(k, endpoint)| {
                                    let instance = instances.get(&endpoint.addr)?.clone();
                                    Some(InstanceSlot {
                                        requests: reuse(k, &endpoint.id).unwrap_or_else(|| {
                                            metrics.request_counters(id, name, &endpoint.id)
                                        }),
                                        instance,
                                    })
                                })
                                .collect(),
                            next: AtomicUsize::new(0),
                            duration: was.map_or_else(
                                || metrics.duration.get_or_create_owned(&labels),
                                |(_, state)| state.duration.clone(),
                            ),
                            errors: match was {
                                Some((_, state)) => state.errors.clone(),
                                None => UpstreamErrors {
                                    connect: error("connect"),
                                    timeout: error("timeout"),
                                    protocol: error("protocol"),
                                },
                            },
                            local: was.map_or_else(
                                || metrics.request_counters(id, name, &empty),
                                |(_, state)| state.local.clone(),
                            ),
                        }
                    })
                    .collect();
                RouteState {
                    seq: AtomicU64::new(seq),
                    services,
                    local: before.map_or_else(
                        || metrics.request_counters(id, &empty, &empty),
                        |(_, state)| state.local.clone(),
                    ),
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
