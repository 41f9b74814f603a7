//! The immutable routing table: built once from a [`RouteFile`], off the
//! request path, then only read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::endpoint::Endpoint;
use crate::error::RoutingError;
use crate::health::HealthCheck;
use crate::host::{MAX_HOST_LEN, normalize_host, path_under};
use crate::matcher::ValueMatcher;
use crate::position::ranges;
use crate::route::{Listener, Route, RouteIndex};
use crate::route_file::{DEFAULT_DRAIN_TIMEOUT_MS, RouteFile, RouteSpec};
use crate::rule::{Condition, Rule, Source};
use crate::schedule::smooth_cycle;
use crate::service::{Service, ServiceIndex};
use crate::validation::{
    canonical_host, canonical_path, parse_endpoint, route_hosts, route_id, route_internal,
    weight_of,
};

/// A context path on a host and the route that serves it.
type PathEntry = (Arc<str>, RouteIndex);

/// Every route, indexed by host. A new configuration is a new table; the
/// proxy swaps tables atomically and never changes one in place.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Box<[Route]>,
    /// host → (context path, route), longest path first.
    hosts: HashMap<Box<str>, Box<[PathEntry]>>,
    caller_tokens: HashMap<Box<str>, Arc<str>>,
    preview_token: Option<Box<[u8]>>,
    drain_timeout: Duration,
}

impl RouteTable {
    /// Validates a route file and builds its table; the error lists every
    /// problem.
    pub fn build(file: &RouteFile) -> Result<RouteTable, RoutingError> {
        file.validate()?;
        let mut routes = Vec::with_capacity(file.routes.len());
        let mut hosts: HashMap<Box<str>, Vec<(Arc<str>, RouteIndex)>> = HashMap::new();
        for (index, spec) in file.routes.iter().enumerate() {
            let route = build_route(spec)?;
            for host in route.hosts.iter() {
                hosts
                    .entry(Box::from(&**host))
                    .or_default()
                    .push((route.path.clone(), index as RouteIndex));
            }
            routes.push(route);
        }
        let hosts = hosts
            .into_iter()
            .map(|(host, mut paths)| {
                paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
                (host, paths.into_boxed_slice())
            })
            .collect();
        Ok(RouteTable {
            routes: routes.into(),
            hosts,
            caller_tokens: file
                .caller_tokens
                .iter()
                .map(|(token, service)| (Box::from(token.as_str()), Arc::from(service.as_str())))
                .collect(),
            preview_token: file.preview_token.as_ref().map(|t| t.as_bytes().into()),
            drain_timeout: Duration::from_millis(
                file.drain_timeout_ms.unwrap_or(DEFAULT_DRAIN_TIMEOUT_MS),
            ),
        })
    }

    /// Parses, validates and builds in one step.
    pub fn from_yaml(text: &str) -> Result<RouteTable, RoutingError> {
        RouteTable::build(&RouteFile::from_yaml(text)?)
    }

    /// The route serving `host` (as sent: any case, port, trailing dot) and
    /// `path` on `listener`, by the longest context path. `None` is an
    /// unknown host, which is also what an internal route is on the public
    /// listener. No allocation.
    pub fn lookup(&self, listener: Listener, host: &str, path: &str) -> Option<RouteIndex> {
        let mut buf = [0u8; MAX_HOST_LEN];
        let host = normalize_host(host, &mut buf)?;
        let candidates = self.hosts.get(host)?;
        candidates
            .iter()
            .find(|(prefix, index)| {
                path_under(path, prefix)
                    && self
                        .routes
                        .get(*index as usize)
                        .is_some_and(|r| r.serves(listener))
            })
            .map(|(_, index)| *index)
    }

    /// All routes, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// One route by index.
    pub fn route(&self, index: RouteIndex) -> Option<&Route> {
        self.routes.get(index as usize)
    }

    /// A route by id.
    pub fn route_by_id(&self, id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| &*r.id == id)
    }

    /// The service that calls with this proxy credential.
    pub fn caller(&self, token: &str) -> Option<&Arc<str>> {
        self.caller_tokens.get(token)
    }

    /// Whether the preview override is enabled.
    pub fn preview_enabled(&self) -> bool {
        self.preview_token.is_some()
    }

    pub(crate) fn preview_token(&self) -> Option<&[u8]> {
        self.preview_token.as_deref()
    }

    /// How long removed instances may finish in-flight requests.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}

fn build_route(spec: &RouteSpec) -> Result<Route, RoutingError> {
    // validate() has accepted the file, so these conversions succeed; the
    // errors are still mapped rather than unwrapped so a mismatch between
    // validation and building can never panic the control plane.
    let invalid = |message: String| RoutingError::Invalid {
        problems: vec![crate::error::Problem {
            field: "routes".to_owned(),
            message,
        }],
    };
    let hosts: Vec<String> = route_hosts(spec)
        .map_err(invalid)?
        .iter()
        .map(|h| canonical_host(h))
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    let path = canonical_path(spec.path.as_deref()).map_err(invalid)?;
    let id = route_id(spec, &hosts, &path);
    let internal = route_internal(spec, &hosts).map_err(invalid)?;
    let mut weights = Vec::with_capacity(spec.services.len());
    let mut services = Vec::with_capacity(spec.services.len());
    for service in &spec.services {
        let weight = weight_of(service.weight.as_ref()).map_err(invalid)?;
        weights.push(u32::from(weight.get()));
        let endpoints = service
            .endpoints
            .iter()
            .map(|text| {
                parse_endpoint(text).map(|addr| Endpoint {
                    id: Arc::from(addr.to_string()),
                    addr,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        services.push(Service {
            name: Arc::from(service.name.as_str()),
            weight,
            endpoints: endpoints.into(),
            range: 0..0,
        });
    }
    for (service, range) in services.iter_mut().zip(ranges(&weights)) {
        service.range = range;
    }
    let index_of = |name: &str| -> Option<ServiceIndex> {
        services
            .iter()
            .position(|s| &*s.name == name)
            .map(|i| i as ServiceIndex)
    };
    let mut rules = Vec::with_capacity(spec.rules.len());
    for rule in &spec.rules {
        let service = index_of(&rule.service)
            .ok_or_else(|| invalid(format!("unknown service {:?}", rule.service)))?;
        let mut conditions = Vec::new();
        for (name, pattern) in &rule.matches.header {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|err| invalid(err.to_string()))?;
            conditions.push(Condition {
                source: Source::Header(name),
                matcher: ValueMatcher::parse(pattern).map_err(invalid)?,
            });
        }
        for (name, pattern) in &rule.matches.cookie {
            conditions.push(Condition {
                source: Source::Cookie(name.as_str().into()),
                matcher: ValueMatcher::parse(pattern).map_err(invalid)?,
            });
        }
        for (name, pattern) in &rule.matches.query {
            conditions.push(Condition {
                source: Source::Query(name.as_str().into()),
                matcher: ValueMatcher::parse(pattern).map_err(invalid)?,
            });
        }
        rules.push(Rule {
            conditions: conditions.into(),
            service,
        });
    }
    let defaults = HealthCheck::default();
    let health = spec
        .health
        .as_ref()
        .map_or(defaults.clone(), |h| HealthCheck {
            path: h.path.as_deref().map(Arc::from),
            interval: h
                .interval_ms
                .map_or(defaults.interval, Duration::from_millis),
            timeout: h.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
            fall: h.fall.unwrap_or(defaults.fall),
            rise: h.rise.unwrap_or(defaults.rise),
        });
    Ok(Route {
        id: Arc::from(id),
        hosts: hosts.into_iter().map(Arc::from).collect(),
        path: Arc::from(path),
        internal,
        callers: spec
            .callers
            .as_ref()
            .map(|c| c.iter().map(|name| Arc::from(name.as_str())).collect()),
        sticky: spec.sticky.unwrap_or_default(),
        rules: rules.into(),
        services: services.into(),
        cycle: smooth_cycle(&weights).into(),
        health,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
routes:
  - hosts: [App.Localhost.]
    services:
      - name: app-v1
        weight: 90
        endpoints: ["127.0.0.1:19001"]
      - name: app-v2
        weight: 10
        endpoints: ["127.0.0.1:19002"]
  - host: app.localhost
    path: /api/
    services:
      - name: api
        endpoints: ["127.0.0.1:19003"]
  - host: servicea.local
    callers: [web-v1]
    services:
      - name: servicea
        endpoints: ["127.0.0.1:19004"]
caller_tokens: { "tok-1f3a": web-v1 }
"#;

    #[test]
    fn lookup_by_host_and_context_path() {
        let table = RouteTable::from_yaml(FILE).unwrap();
        let id = |i: Option<RouteIndex>| i.map(|i| table.route(i).unwrap().id().to_string());
        assert_eq!(
            id(table.lookup(Listener::Public, "APP.localhost:8080", "/")).as_deref(),
            Some("app.localhost")
        );
        assert_eq!(
            id(table.lookup(Listener::Public, "app.localhost.", "/api/x")).as_deref(),
            Some("app.localhost/api")
        );
        assert_eq!(
            id(table.lookup(Listener::Public, "app.localhost", "/apix")).as_deref(),
            Some("app.localhost")
        );
        assert_eq!(table.lookup(Listener::Public, "nope.localhost", "/"), None);
    }

    #[test]
    fn internal_routes_only_on_internal_listener() {
        let table = RouteTable::from_yaml(FILE).unwrap();
        assert_eq!(table.lookup(Listener::Public, "servicea.local", "/"), None);
        assert!(
            table
                .lookup(Listener::Internal, "servicea.local", "/")
                .is_some()
        );
        assert_eq!(table.lookup(Listener::Internal, "app.localhost", "/"), None);
        assert_eq!(table.caller("tok-1f3a").map(|s| &**s), Some("web-v1"));
    }

    #[test]
    fn positions_and_cycle_precomputed() {
        let table = RouteTable::from_yaml(FILE).unwrap();
        let route = &table.routes()[0];
        assert_eq!(route.services()[0].positions(), 0..900_000);
        assert_eq!(route.services()[1].positions(), 900_000..1_000_000);
        assert_eq!(route.cycle.len(), 10);
        assert_eq!(table.drain_timeout(), Duration::from_secs(30));
        assert_eq!(route.health().interval, Duration::from_secs(2));
    }

    fn problems(yaml: &str) -> Vec<String> {
        match RouteTable::from_yaml(yaml) {
            Err(RoutingError::Invalid { problems }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let found = problems(
            r#"
routes:
  - host: a.localhost
    rules:
      - match: { header: { x-beta: "regex:(" } }
        service: ghost
    services:
      - { name: a1, weight: -5, endpoints: ["127.0.0.1:1"] }
      - { name: a2, weight: 101, endpoints: ["nowhere"] }
      - { name: a3, weight: 12.5, endpoints: ["0.0.0.0:80"] }
  - host: A.localhost
    services:
      - { name: b, endpoints: ["127.0.0.1:0"] }
  - host: x.localhost
    callers: [web]
    services: []
"#,
        );
        let expect = [
            "routes[0].rules[0].service: unknown service \"ghost\"; a rule must name a service of this route (a1, a2, a3)",
            "routes[0].rules[0].match.header.x-beta: bad regex \"regex:(\"",
            "routes[0].services[0].weight: weight must be an integer from 0 to 100, got -5 (negative)",
            "routes[0].services[1].weight: weight must be an integer from 0 to 100, got 101 (above 100)",
            "routes[0].services[1].endpoints[0]: endpoint \"nowhere\" must be ip:port",
            "routes[0].services[2].weight: weight must be an integer from 0 to 100, got 12.5 (not an integer)",
            "routes[0].services[2].endpoints[0]: endpoint \"0.0.0.0:80\" is unreachable",
            "routes[1]: duplicate host: a.localhost is already served by route \"a.localhost\"",
            "routes[1].services[0].endpoints[0]: endpoint \"127.0.0.1:0\" is unreachable: port 0",
            "routes[2].callers: callers only apply to internal routes",
            "routes[2].services: a route needs at least one service",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len() + 1, "{found:#?}");
    }

    #[test]
    fn schema_errors_name_the_field() {
        let err = RouteTable::from_yaml("routes:\n  - hots: [a.localhost]\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("hots"), "{text}");
        let err = RouteTable::from_yaml(
            "routes:\n  - host: a.localhost\n    sticky: sometimes\n    services: [{name: a}]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }

    #[test]
    fn mixed_and_contradicting_internal() {
        let found = problems(
            "routes:\n  - hosts: [a.local, a.localhost]\n    services: [{name: a}]\n  - host: b.local\n    internal: false\n    services: [{name: b}]\n",
        );
        assert!(found[0].contains("mixes .local"), "{found:?}");
        assert!(found[1].contains("remove internal: false"), "{found:?}");
    }
}
