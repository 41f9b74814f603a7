//! What requests read: a route table plus the runtime state that goes with
//! each of its routes, services and instances, built together off the
//! request path and swapped in as one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use turnout_routing::{Route, RouteTable, Service};

use crate::conversions::Conversions;
use crate::feed::Tap;
use crate::figures::FigureCells;
use crate::instance::Instance;
use crate::metrics::{LazyServiceMetrics, Metrics, RequestCounters, no_app};

/// An immutable routing snapshot.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub table: Arc<RouteTable>,
    /// Runtime state, one per route of `table`, same order. A route whose
    /// services and instances did not change keeps its state across
    /// reloads (shared by the old and the new snapshot).
    pub routes: Box<[Arc<RouteState>]>,
}

/// Per-route runtime state.
#[derive(Debug)]
pub(crate) struct RouteState {
    /// The round-robin sequence of the route; carried over from the previous
    /// snapshot so a reload does not restart the cycle.
    pub seq: AtomicU64,
    pub services: Box<[ServiceState]>,
    /// Requests answered by the proxy itself (403, 503), by status class.
    pub local: RequestCounters,
}

/// Per-service runtime state on one route.
#[derive(Debug)]
pub(crate) struct ServiceState {
    pub instances: Box<[InstanceSlot]>,
    /// Round robin over the ready instances.
    pub next: AtomicUsize,
    /// The duration histogram and the upstream error counters.
    pub series: LazyServiceMetrics,
    /// Requests for the service that no instance answered (502, 503, 504).
    pub local: RequestCounters,
    /// The per-version figures of the control plane's analysis.
    pub figures: Arc<FigureCells>,
    /// On a route with an A/B goal, where its requests are reported.
    pub tap: Option<Tap>,
}

/// An instance as one route's service sees it.
#[derive(Debug)]
pub(crate) struct InstanceSlot {
    pub instance: Arc<Instance>,
    pub requests: RequestCounters,
}

/// Maps and sets for building (or publishing) a table, with foldhash
/// instead of std's SipHash: their keys are the table's route ids, hosts
/// and addresses, never a request's, and SipHash costs about a hundred
/// instructions per short key, milliseconds for the 100,000 endpoints of a
/// 10,000-route table.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

impl Snapshot {
    /// The runtime state of `table`. What `previous` has for a route (by
    /// id), a service (by name) or an instance (by endpoint id) is carried
    /// over: the round-robin counter and the metric handles, resolved or
    /// not (new ones are resolved by their first request: a lookup hashes
    /// its whole label set, and a table of 10,000 routes x 10 endpoints
    /// has 700,000 of them). A route whose services list the
    /// same endpoints on the same instances keeps its whole state, so a
    /// weight change costs one reference count per route.
    /// `turnout_route_weight` is not stored: `metrics` is given the table,
    /// whose weights it encodes at scrape time. The figures and a goal
    /// route's taps (made by `conversions`) are carried over as the handles
    /// are, a tap only while the route's goal stays the same.
    pub fn build(
        table: RouteTable,
        instances: &HashMap<SocketAddr, Arc<Instance>>,
        metrics: &Metrics,
        conversions: &Conversions,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let instances: FastMap<SocketAddr, &Arc<Instance>> =
            instances.iter().map(|(addr, i)| (*addr, i)).collect();
        // The same instances by identity: an instance in this set is the
        // one listed at its address.
        let current: FastSet<*const Instance> =
            instances.values().map(|i| Arc::as_ptr(i)).collect();
        let previous_routes: FastMap<&str, usize> = previous
            .map(|p| {
                p.table
                    .routes()
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (&**r.id(), i))
                    .collect()
            })
            .unwrap_or_default();
        let mut budget = EAGER_SERIES;
        let routes = table
            .routes()
            .iter()
            .map(|route| {
                // The same route only if it is still the same app's: its
                // series carry the app label.
                let before = previous.and_then(|p| {
                    let i = *previous_routes.get(&**route.id())?;
                    let old = p.table.routes().get(i).filter(|r| r.app() == route.app())?;
                    Some((old, p.routes.get(i)?))
                });
                match before {
                    Some((old_route, old_state))
                        if same_instances(route, old_route, old_state, &current) =>
                    {
                        old_state.clone()
                    }
                    _ => {
                        let before = before.map(|(r, s)| (r, &**s));
                        let state = route_state(route, before, &instances, conversions);
                        resolve(&state, metrics, &mut budget);
                        Arc::new(state)
                    }
                }
            })
            .collect();
        let table = Arc::new(table);
        metrics.set_table(&table);
        Snapshot { table, routes }
    }
}

/// How many series a publish creates at most (a few milliseconds' worth):
/// the handles of new states are resolved in table order until this many
/// series exist, the rest by their first request. A small table's series
/// are all in `/metrics` before any traffic, as they were when every
/// handle was resolved at publish; a 10,000-route table (700,000 series)
/// is published in milliseconds instead of half a second.
const EAGER_SERIES: usize = 5_000;

/// Resolves the handles of a new `state` while `budget` (in series) lasts.
fn resolve(state: &RouteState, metrics: &Metrics, budget: &mut usize) {
    let mut take = |series: usize| {
        let fits = *budget >= series;
        if fits {
            *budget -= series;
        }
        fits
    };
    if take(5) {
        state.local.get(metrics);
    }
    for service in &state.services {
        if take(4 + 5) {
            service.series.get(metrics);
            service.local.get(metrics);
            service.figures.resolve();
        }
        for slot in &service.instances {
            if take(5) {
                slot.requests.get(metrics);
            }
        }
    }
}

/// Snapshots of at least this many routes are freed on a thread of their
/// own (about a millisecond per thousand routes).
const FREE_APART: usize = 1_000;

impl Drop for Snapshot {
    /// Frees a large replaced snapshot on a short-lived thread of its own,
    /// so that neither the publish that replaced it nor a request that held
    /// it last spends the time: the new table is live before the old one
    /// is freed.
    fn drop(&mut self) {
        if self.routes.len() < FREE_APART || Arc::strong_count(&self.table) > 1 {
            return;
        }
        let table = std::mem::take(&mut self.table);
        let routes = std::mem::take(&mut self.routes);
        // Should the thread not start, the closure and what it holds are
        // freed here after all.
        let _ = std::thread::Builder::new()
            .name("turnout-free".to_owned())
            .spawn(move || drop((table, routes)));
    }
}

/// Whether `route` lists, service by service, the same endpoints as
/// `old_route`, on the instances `old_state` holds, which are still the
/// `current` ones: then its state can be kept whole.
fn same_instances(
    route: &Route,
    old_route: &Route,
    old_state: &RouteState,
    current: &FastSet<*const Instance>,
) -> bool {
    let (services, old_services) = (route.services(), old_route.services());
    route.goal() == old_route.goal()
        && services.len() == old_services.len()
        && old_state.services.len() == old_services.len()
        && services
            .iter()
            .zip(old_services)
            .zip(&old_state.services)
            .all(|((service, old), state)| {
                let endpoints = service.endpoints();
                service.name() == old.name()
                    && endpoints.len() == old.endpoints().len()
                    && endpoints.len() == state.instances.len()
                    && endpoints
                        .iter()
                        .zip(old.endpoints())
                        .zip(&state.instances)
                        .all(|((endpoint, old), slot)| {
                            endpoint.addr == old.addr
                                && slot.instance.addr == endpoint.addr
                                && endpoint.id == old.id
                                && current.contains(&Arc::as_ptr(&slot.instance))
                        })
            })
}

/// A new state for `route`, with what `before` (the previous route of the
/// same id and its state) has for services of the same name and instances
/// of the same endpoint id.
fn route_state(
    route: &Route,
    before: Option<(&Route, &RouteState)>,
    instances: &FastMap<SocketAddr, &Arc<Instance>>,
    conversions: &Conversions,
) -> RouteState {
    let empty = no_app();
    let app = route.app().cloned().unwrap_or_else(no_app);
    let id = route.id();
    let seq = before
        .as_ref()
        .map_or(0, |(_, state)| state.seq.load(Ordering::Relaxed));
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
            // A tap is kept while the goal is the same: another goal is
            // another test.
            let tap = route.goal().map(|goal| {
                before
                    .filter(|(old_route, _)| old_route.goal() == Some(goal))
                    .and(was)
                    .and_then(|(_, state)| state.tap.clone())
                    .unwrap_or_else(|| conversions.tap(goal))
            });
            let mut state = service_state(&app, id, service, was, instances, &empty);
            state.tap = tap;
            state
        })
        .collect();
    RouteState {
        seq: AtomicU64::new(seq),
        services,
        local: before.map_or_else(
            || RequestCounters::new(&app, id, &empty, &empty),
            |(_, state)| state.local.clone(),
        ),
    }
}

fn service_state(
    app: &Arc<str>,
    id: &Arc<str>,
    service: &Service,
    was: Option<(&Service, &ServiceState)>,
    instances: &FastMap<SocketAddr, &Arc<Instance>>,
    empty: &Arc<str>,
) -> ServiceState {
    let name = service.name();
    // An instance's counters from the previous state when its endpoint id
    // is the same (its slots line up with the endpoints only when none was
    // skipped).
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
                let instance = (*instances.get(&endpoint.addr)?).clone();
                Some(InstanceSlot {
                    requests: reuse(k, &endpoint.id)
                        .unwrap_or_else(|| RequestCounters::new(app, id, name, &endpoint.id)),
                    instance,
                })
            })
            .collect(),
        next: AtomicUsize::new(0),
        series: was.map_or_else(
            || LazyServiceMetrics::new(app, id, name),
            |(_, state)| state.series.clone(),
        ),
        local: was.map_or_else(
            || RequestCounters::new(app, id, name, empty),
            |(_, state)| state.local.clone(),
        ),
        figures: was.map_or_else(Arc::default, |(_, state)| state.figures.clone()),
        tap: None,
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;
    use crate::upstream::Link;

    fn table(routes: &[(&str, u8, &[&str])]) -> RouteTable {
        let mut text = String::from("routes:\n");
        for (host, weight, endpoints) in routes {
            let list = |e: &[&str]| {
                e.iter()
                    .map(|e| format!("\"{e}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            text.push_str(&format!(
                "  - host: {host}\n    services:\n      - {{ name: v1, weight: {weight}, endpoints: [{}] }}\n      - {{ name: v2, weight: {}, endpoints: [\"127.0.0.1:9\"] }}\n",
                list(endpoints),
                100 - weight,
            ));
        }
        RouteTable::from_yaml(&text).unwrap()
    }

    fn instances(addrs: &[&str]) -> HashMap<SocketAddr, Arc<Instance>> {
        addrs
            .iter()
            .map(|a| {
                let addr: SocketAddr = a.parse().unwrap();
                let instance = Instance::new(Arc::from(*a), addr, Gauge::default(), Link::new());
                (addr, instance)
            })
            .collect()
    }

    fn weight_lines(metrics: &Metrics) -> Vec<String> {
        metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("turnout_route_weight{"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn unchanged_instances_keep_the_route_state_and_weights_follow() {
        let metrics = Metrics::new();
        let feed = Conversions::default();
        let all = instances(&["127.0.0.1:7", "127.0.0.1:8", "127.0.0.1:9"]);
        let first = Snapshot::build(
            table(&[
                ("a.example", 90, &["127.0.0.1:7", "127.0.0.1:8"]),
                ("b.example", 50, &["127.0.0.1:8"]),
            ]),
            &all,
            &metrics,
            &feed,
            None,
        );
        first.routes[0].seq.store(7, Ordering::Relaxed);
        first.routes[0].services[0].instances[1]
            .requests
            .inc(&metrics, 1);

        // Weights flipped, same instances: the state is the same one.
        let second = Snapshot::build(
            table(&[
                ("a.example", 10, &["127.0.0.1:7", "127.0.0.1:8"]),
                ("b.example", 50, &["127.0.0.1:8"]),
            ]),
            &all,
            &metrics,
            &feed,
            Some(&first),
        );
        assert!(Arc::ptr_eq(&first.routes[0], &second.routes[0]));
        assert!(Arc::ptr_eq(&first.routes[1], &second.routes[1]));
        let lines = weight_lines(&metrics);
        assert!(
            lines.contains(
                &"turnout_route_weight{app=\"\",route=\"a.example\",service=\"v1\"} 10".to_owned()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"turnout_route_weight{app=\"\",route=\"a.example\",service=\"v2\"} 90".to_owned()
            ),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 4, "{lines:?}");

        // An endpoint gone: a new state, with the counter and the kept
        // instance's counters carried; a route gone: its weights too.
        let third = Snapshot::build(
            table(&[("a.example", 10, &["127.0.0.1:8"])]),
            &all,
            &metrics,
            &feed,
            Some(&second),
        );
        assert!(!Arc::ptr_eq(&second.routes[0], &third.routes[0]));
        assert_eq!(third.routes[0].seq.load(Ordering::Relaxed), 7);
        let slot = &third.routes[0].services[0].instances[0];
        assert_eq!(slot.instance.addr, "127.0.0.1:8".parse().unwrap());
        assert_eq!(slot.requests.get(&metrics)[1].get(), 1);
        let lines = weight_lines(&metrics);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("a.example")), "{lines:?}");

        // Same endpoints on a new instance (the old one was replaced): not
        // the same state.
        let fresh = instances(&["127.0.0.1:8", "127.0.0.1:9"]);
        let fourth = Snapshot::build(
            table(&[("a.example", 10, &["127.0.0.1:8"])]),
            &fresh,
            &metrics,
            &feed,
            Some(&third),
        );
        assert!(!Arc::ptr_eq(&third.routes[0], &fourth.routes[0]));
        assert!(Arc::ptr_eq(
            &fourth.routes[0].services[0].instances[0].instance,
            &fresh[&"127.0.0.1:8".parse().unwrap()]
        ));
    }

    #[test]
    fn a_route_of_another_app_gets_state_of_its_own() {
        let metrics = Metrics::new();
        let feed = Conversions::default();
        let all = instances(&["127.0.0.1:7"]);
        let of = |app: &str| {
            RouteTable::from_yaml(&format!(
                "routes:\n  - host: a.example\n    app: {app}\n    services:\n      - {{ name: web, endpoints: [\"127.0.0.1:7\"] }}\n"
            ))
            .unwrap()
        };
        let first = Snapshot::build(of("shop"), &all, &metrics, &feed, None);
        first.routes[0].seq.store(7, Ordering::Relaxed);
        first.routes[0].services[0].instances[0]
            .requests
            .inc(&metrics, 1);
        // The same id, instances and service name, but another app's now:
        // nothing is carried over, so no series of one app counts the
        // other's requests.
        let second = Snapshot::build(of("blog"), &all, &metrics, &feed, Some(&first));
        assert!(!Arc::ptr_eq(&first.routes[0], &second.routes[0]));
        assert_eq!(second.routes[0].seq.load(Ordering::Relaxed), 0);
        second.routes[0].services[0].instances[0]
            .requests
            .inc(&metrics, 1);
        let text = metrics.encode();
        for app in ["shop", "blog"] {
            let series = format!(
                "turnout_requests_total{{app=\"{app}\",route=\"a.example\",service=\"web\",instance=\"127.0.0.1:7\",code=\"2xx\"}} 1"
            );
            assert!(text.contains(&series), "missing {series}\n{text}");
        }
        // The same app again keeps its state whole.
        let third = Snapshot::build(of("blog"), &all, &metrics, &feed, Some(&second));
        assert!(Arc::ptr_eq(&second.routes[0], &third.routes[0]));
    }

    #[test]
    fn renamed_service_loses_its_weight_series() {
        let metrics = Metrics::new();
        let feed = Conversions::default();
        let all = instances(&["127.0.0.1:7", "127.0.0.1:9"]);
        let first = Snapshot::build(
            table(&[("a.example", 90, &["127.0.0.1:7"])]),
            &all,
            &metrics,
            &feed,
            None,
        );
        let renamed = RouteTable::from_yaml(
            "routes:\n  - host: a.example\n    services:\n      - { name: v3, endpoints: [\"127.0.0.1:7\"] }\n      - { name: v2, weight: 0, endpoints: [\"127.0.0.1:9\"] }\n",
        )
        .unwrap();
        let _second = Snapshot::build(renamed, &all, &metrics, &feed, Some(&first));
        let mut lines = weight_lines(&metrics);
        lines.sort();
        assert_eq!(
            lines,
            [
                "turnout_route_weight{app=\"\",route=\"a.example\",service=\"v2\"} 0",
                "turnout_route_weight{app=\"\",route=\"a.example\",service=\"v3\"} 100",
            ]
        );
    }
}
