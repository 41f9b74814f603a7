//! The route table the data plane gets: built from the app's weights and
//! its ready instances, in the router's own schema (`RouteFile`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use turnout_routing::{RouteFile, RouteSpec, ServiceSpec, WeightValue};

use crate::model::App;

/// Where a service's instances answer for one container port.
pub trait Endpoints {
    /// The addresses of the ready instances of `service` for
    /// `container_port`.
    fn ready(&self, service: &str, container_port: u16) -> Vec<SocketAddr>;
}

impl<F: Fn(&str, u16) -> Vec<SocketAddr>> Endpoints for F {
    fn ready(&self, service: &str, container_port: u16) -> Vec<SocketAddr> {
        self(service, container_port)
    }
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

fn sticky(s: turnout_spec::Sticky) -> turnout_routing::Sticky {
    match s {
        turnout_spec::Sticky::Version => turnout_routing::Sticky::Version,
        turnout_spec::Sticky::Instance => turnout_routing::Sticky::Instance,
        turnout_spec::Sticky::Off => turnout_routing::Sticky::Off,
    }
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
                    info.sticky = Some(sticky(s));
                }
            }
        }
    }
    infos
}

/// Builds the route file of `app`: every weighted route with the ready
/// endpoints of its services, in the weights' order (old services first).
/// Internal routes carry their callers: the services of the app that list
/// the route's host in `external_links`.
pub fn route_specs(app: &App, endpoints: &impl Endpoints) -> Vec<RouteSpec> {
    let infos = route_infos(app);
    let mut routes = Vec::new();
    for (id, weights) in &app.weights {
        let Some(info) = infos.get(id) else { continue };
        let callers = info.internal.then(|| {
            app.services
                .values()
                .filter(|e| {
                    e.spec
                        .external_links
                        .iter()
                        .any(|l| l.split(':').any(|p| p.eq_ignore_ascii_case(&info.host)))
                })
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
        });
        let services = weights
            .iter()
            .map(|w| {
                let port = info.ports.get(&w.service).copied();
                let endpoints = port
                    .map(|p| endpoints.ready(&w.service, p))
                    .unwrap_or_default();
                ServiceSpec {
                    name: w.service.clone(),
                    weight: Some(WeightValue::from(w.weight)),
                    endpoints: endpoints.iter().map(ToString::to_string).collect(),
                }
            })
            .collect();
        routes.push(RouteSpec {
            id: Some(id.clone()),
            host: Some(info.host.clone()),
            path: info.path.clone(),
            internal: Some(info.internal),
            callers,
            sticky: info.sticky,
            services,
            ..RouteSpec::default()
        });
    }
    routes
}

/// The whole route file for several apps, with the proxy credentials of
/// every instance (`caller_tokens`: token → calling service).
pub fn route_file(
    apps: &[&App],
    endpoints: &impl Endpoints,
    caller_tokens: BTreeMap<String, String>,
    drain_timeout_ms: u64,
) -> RouteFile {
    RouteFile {
        routes: apps
            .iter()
            .flat_map(|app| route_specs(app, endpoints))
            .collect(),
        drain_timeout_ms: Some(drain_timeout_ms),
        preview_token: None,
        caller_tokens,
    }
}
