//! The route table the data plane gets: built from the app's weights and
//! its instances, in the router's own schema (`RouteFile`). Everything is
//! keyed by (app, service): a route belongs to one app, its endpoints are
//! that app's instances and its callers that app's services, even when
//! another app has services of the same names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use turnout_routing::{HealthSpec, LaneSpec, RouteFile, RouteSpec, ServiceSpec, WeightValue};
use turnout_spec::Service;

use crate::model::{App, ServiceRole};

/// What the route builder reads of the instances.
pub trait Instances {
    /// The addresses of the ready instances of `app`'s `service` for
    /// `container_port`.
    fn ready(&self, app: &str, service: &str, container_port: u16) -> Vec<SocketAddr>;

    /// The services of `app` with an instance that may call the internal
    /// `host` because the spec it was started from lists the host in
    /// `external_links`. An instance keeps this until it is stopped, also
    /// once its service has left the app (draining after a confirm or a
    /// rollback), so its in-flight calls are never refused.
    fn callers(&self, app: &str, host: &str) -> Vec<String>;
}

/// No instances at all (the status view, which needs no endpoints).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInstances;

impl Instances for NoInstances {
    fn ready(&self, _: &str, _: &str, _: u16) -> Vec<SocketAddr> {
        Vec::new()
    }

    fn callers(&self, _: &str, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// The internal hosts `service` may call: every `:`-separated part of its
/// `external_links` (`servicea.local`, `servicea.local:alias`), spelled
/// as route hosts are ([`turnout_spec::route::canonical_host`]).
pub fn calls(service: &Service) -> Vec<String> {
    let mut hosts: Vec<String> = service
        .external_links
        .iter()
        .flat_map(|l| l.split(':'))
        .filter(|p| !p.is_empty())
        .map(turnout_spec::route::canonical_host)
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The hosts of the internal routes that `services` declare (the routes
/// of a template or an app), spelled as route hosts are.
pub fn internal_hosts<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    domain: &str,
) -> BTreeSet<String> {
    services
        .into_iter()
        .flat_map(|s| &s.settings.routes)
        .flat_map(|binding| &binding.routes)
        .filter(|route| route.is_internal(domain))
        .map(|route| route.host_name(domain))
        .collect()
}

/// The `.local` names an instance of `service` may call, which a
/// container runtime points at the internal router (DESIGN §6.1): the
/// `.local` hosts of its `external_links`, and every internal route of
/// its app (`internal`, from [`internal_hosts`]), so that a call the route
/// does not allow reaches the router and is refused with a hint rather
/// than failing to resolve.
pub fn local_hosts(service: &Service, internal: &BTreeSet<String>) -> Vec<String> {
    let mut hosts: BTreeSet<String> = calls(service)
        .into_iter()
        .filter(|h| h.ends_with(".local"))
        .collect();
    hosts.extend(internal.iter().cloned());
    hosts.into_iter().collect()
}

/// Whether instances of `services` call or serve internal routes, so
/// that a container runtime's internal router must listen for them.
pub fn uses_internal_routes<'a>(
    services: impl IntoIterator<Item = &'a Service> + Clone,
    domain: &str,
) -> bool {
    !internal_hosts(services.clone(), domain).is_empty()
        || services
            .into_iter()
            .any(|s| calls(s).iter().any(|h| h.ends_with(".local")))
}

/// How a caller is named in the route file's `caller_tokens`: the app and
/// the service, so that same-named services of two apps stay apart.
pub fn caller_name(app: &str, service: &str) -> String {
    format!("{app}/{service}")
}

/// The route ids `app` holds: those its services declare and those it
/// has weights for. No two apps may hold the same one.
pub fn route_ids_of(app: &App) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = route_infos(app).into_keys().collect();
    ids.extend(app.weights.keys().cloned());
    ids
}

/// The ids of `app`'s internal (`.local`) routes.
pub(crate) fn internal_route_ids(app: &App) -> BTreeSet<String> {
    route_infos(app)
        .into_iter()
        .filter(|(_, info)| info.internal)
        .map(|(id, _)| id)
        .collect()
}

/// What one route is made of, read from the services' specs.
struct RouteInfo {
    host: String,
    path: Option<String>,
    internal: bool,
    sticky: Option<turnout_routing::Sticky>,
    /// Service → the container port it is routed on.
    ports: BTreeMap<String, u16>,
}

fn route_infos(app: &App) -> BTreeMap<String, RouteInfo> {
    let mut infos: BTreeMap<String, RouteInfo> = BTreeMap::new();
    for entry in app.services.values() {
        for binding in &entry.spec.settings.routes {
            for route in &binding.routes {
                let id = route.id(&app.domain);
                let info = infos.entry(id).or_insert_with(|| RouteInfo {
                    host: route.host_name(&app.domain),
                    path: route.path.clone(),
                    internal: route.is_internal(&app.domain),
                    sticky: None,
                    ports: BTreeMap::new(),
                });
                info.ports
                    .insert(entry.name().to_string(), binding.container_port);
                if let Some(s) = entry.spec.settings.sticky {
                    info.sticky = Some(s);
                }
            }
        }
    }
    infos
}

/// Builds the route file of `app`: every weighted route with the ready
/// endpoints of its services, in the weights' order (old services first).
/// Internal routes carry their callers: the services of the app that list
/// the route's host in `external_links`, and those of its instances that
/// were started listing it (see [`Instances::callers`]).
pub fn route_specs(app: &App, instances: &impl Instances) -> Vec<RouteSpec> {
    let infos = route_infos(app);
    let mut routes = Vec::new();
    for (id, weights) in &app.weights {
        let Some(info) = infos.get(id) else { continue };
        let callers = info.internal.then(|| {
            let mut names: BTreeSet<String> = app
                .services
                .values()
                .filter(|e| calls(&e.spec).contains(&info.host))
                .map(|e| e.name().to_string())
                .collect();
            names.extend(instances.callers(&app.name, &info.host));
            names.into_iter().collect::<Vec<_>>()
        });
        let services = weights
            .iter()
            .map(|w| {
                let port = info.ports.get(&w.service).copied();
                let endpoints = port
                    .map(|p| instances.ready(&app.name, &w.service, p))
                    .unwrap_or_default();
                ServiceSpec {
                    name: w.service.clone(),
                    weight: Some(WeightValue::from(w.weight)),
                    endpoints: endpoints.iter().map(ToString::to_string).collect(),
                }
            })
            .collect();
        let lanes = callers
            .as_deref()
            .map(|callers| lanes(app, callers, weights))
            .unwrap_or_default();
        let (rules, ab_goal) = ab_test(app, info.internal, weights);
        routes.push(RouteSpec {
            lanes,
            rules,
            ab_goal,
            id: Some(id.clone()),
            app: Some(app.name.clone()),
            host: Some(info.host.clone()),
            path: info.path.clone(),
            internal: Some(info.internal),
            callers,
            sticky: info.sticky,
            services,
            // The engine probes its instances and publishes only the
            // ready ones: the router checks an instance only after a
            // failed connect took it out (one owner of health).
            health: Some(HealthSpec {
                active: Some(false),
                ..HealthSpec::default()
            }),
            ..RouteSpec::default()
        });
    }
    routes
}

/// An A/B test's rules and goal on a route it shares (DESIGN §8), from
/// its first step until it ends: the rules that name one of the route's
/// services, and, on a public route, the goal the router counts
/// conversions of. Nothing on other routes, in other releases, or while
/// the new instances start (their clients would be counted on the old
/// side before the split begins).
fn ab_test(
    app: &App,
    internal: bool,
    weights: &[crate::model::RouteWeight],
) -> (Vec<turnout_spec::RuleSpec>, Option<turnout_spec::GoalSpec>) {
    let Some(progress) = app
        .active_release()
        .and_then(|r| r.progress.as_ref())
        .filter(|p| p.plan.strategy == turnout_spec::Strategy::AbTest && p.step.is_some())
    else {
        return (Vec::new(), None);
    };
    if !crate::report::is_shared(app, weights) {
        return (Vec::new(), None);
    }
    let rules = progress
        .plan
        .ab
        .rules
        .iter()
        .filter(|rule| weights.iter().any(|w| w.service == rule.service))
        .cloned()
        .collect();
    let goal = (!internal).then(|| progress.plan.ab.goal.clone()).flatten();
    (rules, goal)
}

/// Lane affinity on an internal route during a progressive release whose
/// plan has `lanes` (DESIGN §8): the release's new callers reach only the
/// route's new services, its old callers only the old ones. Nothing when
/// no new service calls the route or the route has no new and old side.
fn lanes(
    app: &App,
    callers: &[String],
    weights: &[crate::model::RouteWeight],
) -> BTreeMap<String, LaneSpec> {
    let on = app
        .active_release()
        .and_then(|r| r.progress.as_ref())
        .is_some_and(|p| p.plan.lanes);
    if !on {
        return BTreeMap::new();
    }
    let role = |name: &str| app.services.get(name).map(|e| e.role);
    let pick = |names: &mut dyn Iterator<Item = String>, wanted: ServiceRole| -> Vec<String> {
        names.filter(|n| role(n) == Some(wanted)).collect()
    };
    let new_callers = pick(&mut callers.iter().cloned(), ServiceRole::New);
    let old_callers = pick(&mut callers.iter().cloned(), ServiceRole::Old);
    let services = || weights.iter().map(|w| w.service.clone());
    let new_services = pick(&mut services(), ServiceRole::New);
    let old_services: Vec<String> = services()
        .filter(|s| role(s) != Some(ServiceRole::New))
        .collect();
    if new_callers.is_empty() || !crate::report::is_shared(app, weights) {
        return BTreeMap::new();
    }
    let mut lanes = BTreeMap::from([(
        "new".to_string(),
        LaneSpec {
            callers: new_callers,
            services: new_services,
        },
    )]);
    if !old_callers.is_empty() {
        lanes.insert(
            "old".to_string(),
            LaneSpec {
                callers: old_callers,
                services: old_services,
            },
        );
    }
    lanes
}

/// Who the instances are to the router: their proxy credentials
/// (`caller_tokens`) and, on container runtimes, their addresses
/// (`caller_addresses`), each mapped to [`caller_name`].
#[derive(Debug, Clone, Default)]
pub struct CallerIds {
    /// Proxy credential → `app/service`.
    pub tokens: BTreeMap<String, String>,
    /// Source address → `app/service`.
    pub addresses: BTreeMap<IpAddr, String>,
}

/// The whole route file for several apps, with the callers' identities
/// (see [`CallerIds`]).
pub fn route_file(
    apps: &[&App],
    instances: &impl Instances,
    callers: CallerIds,
    drain_timeout_ms: u64,
) -> RouteFile {
    RouteFile {
        routes: apps
            .iter()
            .flat_map(|app| route_specs(app, instances))
            .collect(),
        drain_timeout_ms: Some(drain_timeout_ms),
        preview_token: None,
        caller_tokens: callers.tokens,
        caller_addresses: callers.addresses,
    }
}
