//! The immutable routing table: built once from a [`RouteFile`], off the
//! request path, then only read.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::caller::Caller;
use crate::error::RoutingError;
use crate::goal::{Goal, read_goal};
use crate::health::HealthCheck;
use crate::host::{MAX_HOST_LEN, normalize_host, path_under};
use crate::lane::Lane;
use crate::position::ranges;
use crate::route::{Listener, Route, RouteIndex};
use crate::route_file::{DEFAULT_DRAIN_TIMEOUT_MS, RouteFile, RouteSpec};
use crate::schedule::smooth_cycle;
use crate::service::{Service, ServiceIndex};
use crate::validation::{Check, FastMap, MAX_SERVICES_PER_ROUTE, split_caller};

/// A context path on a host and the route that serves it.
type PathEntry = (Arc<str>, RouteIndex);

/// The context paths of one host: nearly always one, kept without a
/// separate allocation.
#[derive(Debug, Clone)]
enum Paths {
    One(PathEntry),
    /// Longest path first.
    Many(Vec<PathEntry>),
}

impl Paths {
    fn as_slice(&self) -> &[PathEntry] {
        match self {
            Paths::One(entry) => std::slice::from_ref(entry),
            Paths::Many(entries) => entries,
        }
    }
}

/// Every route, indexed by host. A new configuration is a new table; the
/// proxy swaps tables atomically and never changes one in place.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Box<[Route]>,
    /// host → (context path, route), longest path first.
    hosts: HashMap<Arc<str>, Paths>,
    caller_tokens: HashMap<Box<str>, Caller>,
    /// Source address → caller, for callers that send no credential
    /// (containers). Looked up by value: no allocation.
    caller_addresses: HashMap<IpAddr, Caller>,
    preview_token: Option<Box<[u8]>>,
    drain_timeout: Duration,
}

impl RouteTable {
    /// Validates a route file and builds its table; the error lists every
    /// problem. One pass: each route is checked and, while no problem has
    /// been found, built from what the checks worked out.
    pub fn build(file: &RouteFile) -> Result<RouteTable, RoutingError> {
        let mut check = Check::new(true, file);
        let mut strings = Strings::default();
        let mut schedules = Schedules::default();
        let mut routes = Vec::with_capacity(file.routes.len());
        let mut hosts: HashMap<Arc<str>, Paths> = HashMap::with_capacity(file.routes.len());
        for (index, spec) in file.routes.iter().enumerate() {
            check.route(index, spec);
            if !check.clean() {
                // The file is refused; only the checks go on.
                continue;
            }
            let route = build_route(spec, &mut check, &mut strings, &mut schedules);
            for host in route.hosts.iter() {
                let entry = (route.path.clone(), index as RouteIndex);
                match hosts.entry(host.clone()) {
                    Entry::Vacant(vacant) => {
                        vacant.insert(Paths::One(entry));
                    }
                    Entry::Occupied(mut paths) => {
                        let paths = paths.get_mut();
                        match paths {
                            Paths::One(first) => *paths = Paths::Many(vec![first.clone(), entry]),
                            Paths::Many(entries) => entries.push(entry),
                        }
                    }
                }
            }
            routes.push(route);
        }
        check.file(file);
        check.finish()?;
        for paths in hosts.values_mut() {
            if let Paths::Many(entries) = paths {
                entries.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
            }
        }
        // Both maps were checked by `check.file` above.
        let caller_tokens = file
            .caller_tokens
            .iter()
            .filter_map(|(token, value)| {
                Some((Box::from(token.as_str()), caller(&mut strings, value)?))
            })
            .collect();
        let caller_addresses = file
            .caller_addresses
            .iter()
            .filter_map(|(address, value)| Some((*address, caller(&mut strings, value)?)))
            .collect();
        Ok(RouteTable {
            routes: routes.into(),
            hosts,
            caller_tokens,
            caller_addresses,
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
            .as_slice()
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

    /// Whether some route serves `host` (as sent) on `listener`, at any
    /// context path. On the internal listener, a request for a host no
    /// internal route serves is passed on to that host (egress). No
    /// allocation.
    pub fn serves_host(&self, listener: Listener, host: &str) -> bool {
        let mut buf = [0u8; MAX_HOST_LEN];
        normalize_host(host, &mut buf)
            .and_then(|host| self.hosts.get(host))
            .is_some_and(|paths| {
                paths.as_slice().iter().any(|(_, index)| {
                    self.routes
                        .get(*index as usize)
                        .is_some_and(|r| r.serves(listener))
                })
            })
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

    /// The service (and its app) that calls with this proxy credential.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.caller_tokens.get(token)
    }

    /// The service (and its app) that calls from this source address
    /// (`caller_addresses`).
    pub fn caller_at(&self, address: IpAddr) -> Option<&Caller> {
        self.caller_addresses.get(&address)
    }

    /// Who calls: by the proxy credential when one was sent (an unknown
    /// one names nobody, whatever the address), else by the source
    /// address. No allocation.
    pub fn identify(&self, token: Option<&str>, address: Option<IpAddr>) -> Option<&Caller> {
        match token {
            Some(token) => self.caller(token),
            None => address.and_then(|a| self.caller_at(a)),
        }
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

/// The round-robin cycle and the position ranges of a list of weights,
/// worked out once per table for each list: most routes carry the same
/// few (100, or 90/10 while a release moves).
#[derive(Default)]
struct Schedules(FastMap<Box<[u32]>, Schedule>);

/// A round-robin cycle and the position range of each service.
type Schedule = (Arc<[ServiceIndex]>, Vec<Range<u32>>);

impl Schedules {
    fn get(&mut self, weights: &[u32]) -> &Schedule {
        // Looked up first: the entry API would need an owned key.
        if !self.0.contains_key(weights) {
            self.0.insert(
                weights.into(),
                (smooth_cycle(weights).into(), ranges(weights)),
            );
        }
        &self.0[weights]
    }
}

/// One shared copy of each service name and context path of a table:
/// thousands of routes name the same few.
#[derive(Default)]
struct Strings<'a>(FastMap<&'a str, Arc<str>>);

impl<'a> Strings<'a> {
    fn get(&mut self, text: &'a str) -> Arc<str> {
        self.0
            .entry(text)
            .or_insert_with(|| Arc::from(text))
            .clone()
    }
}

/// The caller a checked `caller_tokens` or `caller_addresses` value names.
fn caller<'a>(strings: &mut Strings<'a>, value: &'a str) -> Option<Caller> {
    let (app, service) = split_caller(value).ok()?;
    Some(Caller {
        app: app.map(|app| strings.get(app)),
        service: strings.get(service),
    })
}

/// The route checked last (no problem found in it) as the table holds it.
fn build_route<'a>(
    spec: &'a RouteSpec,
    check: &mut Check<'a>,
    strings: &mut Strings<'a>,
    schedules: &mut Schedules,
) -> Route {
    let parts = &check.parts;
    let hosts: Box<[Arc<str>]> = parts.hosts.iter().map(|h| Arc::from(&**h)).collect();
    // The id is usually the first host; then they share one string.
    let id = match hosts.first() {
        Some(host) if **host == *parts.id => host.clone(),
        _ => Arc::from(&*parts.id),
    };
    let count = spec.services.len().min(MAX_SERVICES_PER_ROUTE);
    let mut weights = [0u32; MAX_SERVICES_PER_ROUTE];
    for (weight, checked) in weights.iter_mut().zip(&parts.weights) {
        *weight = u32::from(checked.get());
    }
    let (cycle, ranges) = schedules.get(&weights[..count]);
    let mut start = 0;
    let services: Box<[Service]> = spec
        .services
        .iter()
        .zip(&parts.weights)
        .zip(&parts.ends)
        .zip(ranges)
        .map(|(((service, weight), &end), range)| {
            let endpoints = parts.endpoints[start..end]
                .iter()
                .map(|&i| check.endpoint(i).clone())
                .collect();
            start = end;
            Service {
                name: strings.get(&service.name),
                weight: *weight,
                endpoints,
                range: range.clone(),
            }
        })
        .collect();
    let health = match &spec.health {
        None => HealthCheck::default(),
        Some(h) => {
            let defaults = HealthCheck::default();
            HealthCheck {
                path: h.path.as_deref().map(|path| strings.get(path)),
                interval: h
                    .interval_ms
                    .map_or(defaults.interval, Duration::from_millis),
                timeout: h.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
                fall: h.fall.unwrap_or(defaults.fall),
                rise: h.rise.unwrap_or(defaults.rise),
                active: h.active.unwrap_or(defaults.active),
            }
        }
    };
    // Checked with the route: no problem is reported again.
    let goal = spec.ab_goal.as_ref().and_then(|goal| {
        let sticky = spec.sticky.unwrap_or_default();
        let (path, status) = read_goal(goal, check.parts.path, sticky, |_, _| {})?;
        Some(Goal {
            path: strings.get(path),
            status,
        })
    });
    Route {
        id,
        hosts,
        path: strings.get(check.parts.path),
        internal: check.parts.internal,
        app: spec.app.as_deref().map(|app| strings.get(app)),
        callers: spec
            .callers
            .as_ref()
            .map(|c| c.iter().map(|name| strings.get(name)).collect()),
        lanes: build_lanes(spec, &services, strings),
        sticky: spec.sticky.unwrap_or_default(),
        rules: std::mem::take(&mut check.parts.rules).into(),
        services,
        cycle: cycle.clone(),
        health,
        goal,
    }
}

/// The lanes of a checked route: each lane's services as a bit set and
/// its own round-robin cycle. Nothing is allocated for a route without
/// lanes.
fn build_lanes<'a>(
    spec: &'a RouteSpec,
    services: &[Service],
    strings: &mut Strings<'a>,
) -> Box<[Lane]> {
    spec.lanes
        .iter()
        .map(|(name, lane)| {
            let members: Vec<usize> = lane
                .services
                .iter()
                .filter_map(|s| spec.services.iter().position(|t| t.name == *s))
                .collect();
            let mut weights: Vec<u32> = members
                .iter()
                .map(|&j| u32::from(services[j].weight.get()))
                .collect();
            // A lane whose services all weigh 0 still holds: its callers
            // reach them evenly (a previewed new frontend reaches the new
            // backend before either takes traffic).
            if weights.iter().all(|&w| w == 0) {
                weights.fill(1);
            }
            Lane {
                name: Arc::from(name.as_str()),
                callers: lane.callers.iter().map(|c| strings.get(c)).collect(),
                services: members.iter().fold(0, |bits, &j| bits | 1 << j),
                cycle: smooth_cycle(&weights)
                    .into_iter()
                    .map(|k| members[usize::from(k)] as ServiceIndex)
                    .collect(),
            }
        })
        .collect()
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
        assert!(table.serves_host(Listener::Internal, "ServiceA.local.:80"));
        assert!(!table.serves_host(Listener::Internal, "app.localhost"));
        assert!(table.serves_host(Listener::Public, "app.localhost"));
        assert!(!table.serves_host(Listener::Public, "servicea.local"));
        assert!(!table.serves_host(Listener::Internal, "example.com"));
        assert_eq!(
            table.caller("tok-1f3a").map(ToString::to_string).as_deref(),
            Some("web-v1")
        );
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

    #[test]
    fn endpoint_ids_are_their_canonical_address() {
        let table = RouteTable::from_yaml(
            "routes:\n  - host: a.localhost\n    services:\n      - { name: a, endpoints: [\"127.0.0.1:19001\", \"[0::1]:19002\", \"[::ffff:127.0.0.2]:19003\"] }\n  - host: b.localhost\n    services:\n      - { name: a, endpoints: [\"127.0.0.1:19001\"] }\n",
        )
        .unwrap();
        let ids = |route: usize| -> Vec<String> {
            table.routes()[route].services()[0]
                .endpoints()
                .iter()
                .map(|e| {
                    assert_eq!(e.id.parse::<std::net::SocketAddr>().ok(), Some(e.addr));
                    e.id.to_string()
                })
                .collect()
        };
        assert_eq!(
            ids(0),
            ["127.0.0.1:19001", "[::1]:19002", "[::ffff:127.0.0.2]:19003"]
        );
        assert_eq!(ids(1), ["127.0.0.1:19001"]);
    }

    #[test]
    fn validate_and_build_report_the_same_problems() {
        let file = RouteFile::from_yaml(
            "routes:\n  - host: A.localhost\n    services: [{ name: a, endpoints: [\"127.0.0.1:1\", \"127.0.0.1:1\"] }]\n  - host: a.localhost.\n    services: [{ name: b, weight: 7.5 }]\ncaller_tokens: { \"x:y\": web }\n",
        )
        .unwrap();
        let validated = file.validate().unwrap_err().to_string();
        let built = RouteTable::build(&file).unwrap_err().to_string();
        assert_eq!(validated, built);
        assert!(
            validated.contains(
                "routes[0].services[0].endpoints[1]: endpoint 127.0.0.1:1 is listed twice"
            ),
            "{validated}"
        );
        assert!(
            validated.contains(
                "routes[1]: duplicate host: a.localhost is already served by route \"a.localhost\""
            ),
            "{validated}"
        );
        assert!(validated.contains("caller_tokens.x:y"), "{validated}");
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
    fn apps_and_caller_tokens_are_checked() {
        let found = problems(
            r#"
routes:
  - host: a.local
    app: "shop/x"
    services: [{name: a}]
  - host: b.local
    app: ""
    services: [{name: b}]
caller_tokens: { t1: "/web", t2: "shop/", t3: "a/b/c", t4: "shop/web", t5: "web", t6: "sh op/web" }
"#,
        );
        let expect = [
            "routes[0].app: \"shop/x\" is not an app name",
            "routes[1].app: \"\" is not an app name",
            "caller_tokens.t1: \"/web\" has an empty app; a caller is service or app/service",
            "caller_tokens.t2: \"shop/\" has an empty service; a caller is service or app/service",
            "caller_tokens.t3: \"a/b/c\" holds more than one '/'; a caller is service or app/service",
            "caller_tokens.t6: \"sh op\" is not an app name",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn caller_addresses_are_checked_and_looked_up() {
        let found = problems(
            "routes: []\ncaller_addresses: { \"172.18.0.5\": shop/web, \"172.18.0.6\": \"a/b/c\", \"fd00::1\": \"\" }\n",
        );
        assert_eq!(
            found,
            [
                "caller_addresses.172.18.0.6: \"a/b/c\" holds more than one '/'; a caller is service or app/service",
                "caller_addresses.fd00::1: \"\" is not a service name (letters, digits, '_', '.', '-', starting with a letter or digit)",
            ],
            "{found:#?}"
        );
        // Not an address at all: the schema refuses it.
        let err = RouteFile::from_yaml("caller_addresses: { web-1: web }\n").unwrap_err();
        assert!(err.to_string().contains("invalid IP address"), "{err}");

        let table = RouteTable::from_yaml(
            "caller_addresses: { \"172.18.0.5\": shop/web }\ncaller_tokens: { tok: other }\n",
        )
        .unwrap();
        let web = table.caller_at("172.18.0.5".parse().unwrap()).unwrap();
        assert_eq!(web.to_string(), "shop/web");
        assert!(table.caller_at("172.18.0.6".parse().unwrap()).is_none());
        // The credential wins; an unknown one names nobody.
        let at = "172.18.0.5".parse().ok();
        assert_eq!(
            table.identify(Some("tok"), at).unwrap().to_string(),
            "other"
        );
        assert!(table.identify(Some("nope"), at).is_none());
        assert_eq!(table.identify(None, at).unwrap().to_string(), "shop/web");
    }

    #[test]
    fn lanes_are_built_and_checked_with_their_field() {
        let table = RouteTable::from_yaml(
            r#"
routes:
  - host: api.local
    app: shop
    lanes:
      old: { callers: [web-v1], services: [api-v1] }
      new: { callers: [web-v2, worker-v2], services: [api-v2] }
    services:
      - { name: api-v1, weight: 90 }
      - { name: api-v2, weight: 10 }
"#,
        )
        .unwrap();
        let lanes = table.routes()[0].lanes();
        // In name order, as the file's map reads.
        let names: Vec<&str> = lanes.iter().map(|l| &**l.name()).collect();
        assert_eq!(names, ["new", "old"]);
        let callers: Vec<&str> = lanes[0].callers().iter().map(|c| &**c).collect();
        assert_eq!(callers, ["web-v2", "worker-v2"]);
        assert_eq!(lanes[0].services().collect::<Vec<_>>(), [1]);
        assert_eq!(lanes[1].services().collect::<Vec<_>>(), [0]);

        let text = r#"
routes:
  - host: api.local
    callers: [web-v1, web-v2]
    lanes:
      new: { callers: [web-v2, web-v3, web-v2], services: [api-v2, api-v9, api-v2] }
      old: { callers: [web-v2, "sh op"], services: [api-v2] }
      "bad lane": { callers: [web-v1], services: [api-v1] }
      empty: {}
    services:
      - { name: api-v1 }
      - { name: api-v2 }
  - host: web.localhost
    lanes:
      new: { callers: [x], services: [web] }
    services: [{ name: web }]
"#;
        let found = problems(text);
        let expect = [
            "routes[0].lanes.bad lane: \"bad lane\" is not a lane name",
            "routes[0].lanes.empty.services: a lane needs at least one service of this route (api-v1, api-v2)",
            "routes[0].lanes.empty.callers: a lane needs at least one caller",
            "routes[0].lanes.new.services[1]: unknown service \"api-v9\"; a lane names services of this route (api-v1, api-v2)",
            "routes[0].lanes.new.services[2]: service \"api-v2\" is listed twice in this lane",
            "routes[0].lanes.new.callers[1]: \"web-v3\" is not one of the route's callers (web-v1, web-v2), so it never calls this route",
            "routes[0].lanes.new.callers[2]: caller \"web-v2\" is listed twice in this lane",
            "routes[0].lanes.old.services[0]: service \"api-v2\" is already in lane \"new\"; a service is in one lane at most",
            "routes[0].lanes.old.callers[0]: caller \"web-v2\" is already in lane \"new\"; a caller is in one lane of a route at most",
            "routes[0].lanes.old.callers[1]: \"sh op\" is not a service name",
            "routes[1].lanes: lanes only apply to internal routes",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        let file = RouteFile::from_yaml(text).unwrap();
        assert_eq!(
            file.validate().unwrap_err().to_string(),
            RouteTable::build(&file).unwrap_err().to_string()
        );
        let unknown = RouteTable::from_yaml(
            "routes:
  - host: a.local
    lanes: { new: { caller: [web], services: [a] } }
    services: [{name: a}]
",
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("caller"), "{unknown}");
    }

    #[test]
    fn mixed_and_contradicting_internal() {
        let found = problems(
            "routes:\n  - hosts: [a.local, a.localhost]\n    services: [{name: a}]\n  - host: b.local\n    internal: false\n    services: [{name: b}]\n",
        );
        assert!(found[0].contains("mixes .local"), "{found:?}");
        assert!(found[1].contains("remove internal: false"), "{found:?}");
    }

    #[test]
    fn ab_goals_are_built_and_checked_with_their_field() {
        let table = RouteTable::from_yaml(
            "routes:\n  - host: a.localhost\n    path: /shop\n    ab_goal: { path: /shop/checkout/ }\n    services: [{name: a}]\n  - host: b.localhost\n    services: [{name: b}]\n",
        )
        .unwrap();
        let goal = table.routes()[0].goal().unwrap();
        assert_eq!(&*goal.path, "/shop/checkout");
        assert_eq!(goal.status, crate::GoalStatus::Class(2));
        assert!(table.routes()[1].goal().is_none());

        let text = "routes:\n  - host: a.localhost\n    sticky: off\n    ab_goal: { path: checkout, status: \"2xy\" }\n    services: [{name: a}]\n";
        let found = problems(text);
        let expect = [
            "routes[0].ab_goal.path: goal path \"checkout\" must start with /",
            "routes[0].ab_goal.status: \"2xy\" is not a status",
            "routes[0].ab_goal: an A/B goal needs sticky: version or instance",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        let file = RouteFile::from_yaml(text).unwrap();
        assert_eq!(
            file.validate().unwrap_err().to_string(),
            RouteTable::build(&file).unwrap_err().to_string()
        );
        let unknown = RouteTable::from_yaml(
            "routes:\n  - host: a.localhost\n    ab_goal: { path: /x, when: 2xx }\n    services: [{name: a}]\n",
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("when"), "{unknown}");
    }
}
