//! Every rule a route file must follow, checked at once so that one run
//! reports every problem.
//!
//! [`RouteFile::validate`] and [`crate::RouteTable::build`] run the same
//! pass ([`Check`]): building reads what the checks already worked out (the
//! canonical hosts and path, the id, the endpoints' addresses, the compiled
//! rules) instead of working it out again, and the two cannot disagree
//! about which files are valid. The pass allocates nothing for a route that
//! is written canonically (lowercase hosts, `ip:port` endpoints); field
//! paths and messages are only formatted for problems.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use http::HeaderName;

use crate::endpoint::Endpoint;
use crate::error::{Problem, RoutingError};
use crate::goal::read_goal;
use crate::matcher::ValueMatcher;
use crate::route_file::{HealthSpec, RouteFile, RouteSpec, WeightValue};
use crate::rule::{Condition, Rule, Source};
use crate::service::ServiceIndex;
use crate::weight::Weight;

/// Most services one route may split between; the smooth round-robin cycle
/// and the per-request scans stay small with this bound.
pub(crate) const MAX_SERVICES_PER_ROUTE: usize = 64;

/// Shortest health check interval or timeout accepted, in ms.
const MIN_HEALTH_MS: u64 = 10;

/// Lists up to this long are checked for repeats by a scan, longer ones by
/// a set.
const SCAN_LIMIT: usize = 16;

/// Maps and sets for building (or publishing) a table, with foldhash
/// instead of std's SipHash: their keys are the table's route ids, hosts
/// and addresses, never a request's, and SipHash costs about a hundred
/// instructions per short key, milliseconds for the 100,000 endpoints of a
/// 10,000-route table.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

impl RouteFile {
    /// Checks the whole file and returns every problem found.
    pub fn validate(&self) -> Result<(), RoutingError> {
        let mut check = Check::new(false, self);
        for (i, route) in self.routes.iter().enumerate() {
            check.route(i, route);
        }
        check.file(self);
        check.finish()
    }
}

/// One pass of checks over a route file, in file order. When building,
/// it also keeps what the last checked route is made of ([`Parts`]) for
/// [`crate::RouteTable::build`].
pub(crate) struct Check<'a> {
    /// Whether a table is being built: endpoint ids and compiled rules are
    /// kept.
    build: bool,
    problems: Problems,
    /// (host, path) → the id of the route that serves it, to find
    /// duplicates.
    served: FastMap<(Cow<'a, str>, &'a str), Cow<'a, str>>,
    ids: FastSet<Cow<'a, str>>,
    /// Endpoints already read, by their text, as indices into `read`: an
    /// address listed by many routes is parsed once and its id allocated
    /// once.
    endpoints: FastMap<&'a str, u32>,
    read: Vec<Endpoint>,
    /// The id given to endpoints when nothing is built.
    no_id: Arc<str>,
    /// The route checked last.
    pub parts: Parts<'a>,
}

/// What the route checked last is made of, in canonical form. Only
/// meaningful when the check found no problem in it.
#[derive(Debug, Default)]
pub(crate) struct Parts<'a> {
    /// The canonical hosts.
    pub hosts: Vec<Cow<'a, str>>,
    /// The canonical context path.
    pub path: &'a str,
    pub id: Cow<'a, str>,
    pub internal: bool,
    /// One per service.
    pub weights: Vec<Weight>,
    /// The endpoints of every service (see [`Check::endpoint`]), one
    /// service after the other; service `j`'s end at `ends[j]`.
    pub endpoints: Vec<u32>,
    pub ends: Vec<usize>,
    /// The compiled rules (when building).
    pub rules: Vec<Rule>,
}

impl<'a> Check<'a> {
    /// A check of `file`, sized for it: its maps never grow on the way.
    pub fn new(build: bool, file: &RouteFile) -> Check<'a> {
        let routes = file.routes.len();
        // At most this many distinct endpoints (fewer when routes share
        // them).
        let endpoints = file
            .routes
            .iter()
            .flat_map(|r| &r.services)
            .map(|s| s.endpoints.len())
            .sum();
        Check {
            build,
            problems: Problems::default(),
            served: FastMap::with_capacity_and_hasher(routes, Default::default()),
            ids: FastSet::with_capacity_and_hasher(routes, Default::default()),
            endpoints: FastMap::with_capacity_and_hasher(endpoints, Default::default()),
            read: Vec::with_capacity(endpoints),
            no_id: Arc::from(""),
            parts: Parts::default(),
        }
    }

    /// An endpoint of [`Parts::endpoints`].
    pub fn endpoint(&self, index: u32) -> &Endpoint {
        &self.read[index as usize]
    }

    /// Whether no problem has been found so far.
    pub fn clean(&self) -> bool {
        self.problems.0.is_empty()
    }

    /// Every problem found, or `Ok`.
    pub fn finish(self) -> Result<(), RoutingError> {
        self.problems.into_result()
    }

    /// The checks of the whole file that come after its routes.
    pub fn file(&mut self, file: &RouteFile) {
        let problems = &mut self.problems;
        if file.drain_timeout_ms.is_some_and(|ms| ms > 3_600_000) {
            problems.push(
                "drain_timeout_ms".to_owned(),
                "must be at most 3600000 (one hour)".to_owned(),
            );
        }
        if let Some(token) = &file.preview_token
            && (token.is_empty() || !token.bytes().all(is_token_byte))
        {
            problems.push(
                "preview_token".to_owned(),
                "must be a non-empty header-safe token (letters, digits and -._~+/=)".to_owned(),
            );
        }
        for (token, service) in &file.caller_tokens {
            let at = || format!("caller_tokens.{token}");
            if token.is_empty() || !token.bytes().all(is_token_byte) || token.contains(':') {
                problems.push(
                    at(),
                    "a proxy credential must be a non-empty token without ':' (callers send it as the password of Proxy-Authorization, HTTP_PROXY=http://<service>:<token>@<internal-address>)".to_owned(),
                );
            }
            if let Err(message) = split_caller(service) {
                problems.push(at(), message);
            }
        }
        for (address, service) in &file.caller_addresses {
            if let Err(message) = split_caller(service) {
                problems.push(format!("caller_addresses.{address}"), message);
            }
        }
    }

    /// Checks route `i` and fills [`Check::parts`] with it.
    pub fn route(&mut self, i: usize, route: &'a RouteSpec) {
        let at = || format!("routes[{i}]");
        let parts = &mut self.parts;
        parts.hosts.clear();
        let hosts: &'a [String] = match route_hosts(route) {
            Ok(hosts) => hosts,
            Err(message) => {
                self.problems.push(at(), message.to_owned());
                &[]
            }
        };
        for (j, host) in hosts.iter().enumerate() {
            match canonical_host(host) {
                Ok(host) => parts.hosts.push(host),
                Err(message) => {
                    let field = if route.host.is_some() {
                        format!("{}.host", at())
                    } else {
                        format!("{}.hosts[{j}]", at())
                    };
                    self.problems.push(field, message);
                }
            }
        }
        parts.path = match canonical_path(route.path.as_deref()) {
            Ok(path) => path,
            Err(message) => {
                self.problems.push(format!("{}.path", at()), message);
                "/"
            }
        };
        let path = parts.path;
        parts.id = route_id(route, &parts.hosts, path);
        if let Some(explicit) = &route.id
            && (explicit.is_empty() || explicit.chars().any(char::is_whitespace))
        {
            self.problems.push(
                format!("{}.id", at()),
                "must be non-empty without spaces".to_owned(),
            );
        }
        if !parts.id.is_empty() && !self.ids.insert(parts.id.clone()) {
            self.problems.push(
                format!("{}.id", at()),
                format!(
                    "route id {:?} is used by an earlier route; ids must be unique",
                    parts.id
                ),
            );
        }
        for host in &parts.hosts {
            if let Some(other) = self.served.insert((host.clone(), path), parts.id.clone()) {
                self.problems.push(
                    at(),
                    format!(
                        "duplicate host: {host}{} is already served by route {other:?}",
                        if path == "/" { "" } else { path }
                    ),
                );
            }
        }
        parts.internal = match route_internal(route, &parts.hosts) {
            Ok(internal) => internal,
            Err(message) => {
                self.problems.push(format!("{}.internal", at()), message);
                false
            }
        };
        if let Some(app) = &route.app
            && let Err(message) = check_app_name(app)
        {
            self.problems.push(format!("{}.app", at()), message);
        }
        if let Some(callers) = &route.callers {
            if !parts.internal {
                self.problems.push(
                    format!("{}.callers", at()),
                    "callers only apply to internal routes (hosts ending in .local or internal: true)"
                        .to_owned(),
                );
            }
            for (j, caller) in callers.iter().enumerate() {
                if let Err(message) = check_service_name(caller) {
                    self.problems
                        .push(format!("{}.callers[{j}]", at()), message);
                }
            }
        }
        self.services(i, route);
        self.rules(i, route);
        if !route.lanes.is_empty() {
            self.lanes(i, route);
        }
        if let Some(health) = &route.health {
            check_health(health, i, &mut self.problems);
        }
        if let Some(goal) = &route.ab_goal {
            let sticky = route.sticky.unwrap_or_default();
            let problems = &mut self.problems;
            read_goal(goal, path, sticky, |field, message| {
                let at = format!("{}.ab_goal", at());
                let field = if field.is_empty() {
                    at
                } else {
                    format!("{at}.{field}")
                };
                problems.push(field, message);
            });
        }
    }

    fn services(&mut self, i: usize, route: &'a RouteSpec) {
        let at = || format!("routes[{i}].services");
        if route.services.is_empty() {
            self.problems
                .push(at(), "a route needs at least one service".to_owned());
        }
        if route.services.len() > MAX_SERVICES_PER_ROUTE {
            self.problems.push(
                at(),
                format!("a route may split between at most {MAX_SERVICES_PER_ROUTE} services"),
            );
        }
        let parts = &mut self.parts;
        parts.weights.clear();
        parts.endpoints.clear();
        parts.ends.clear();
        // Long lists are checked for repeats with a set, short ones by a
        // scan.
        let mut names: FastSet<&str> = FastSet::default();
        let mut seen: FastSet<SocketAddr> = FastSet::default();
        for (j, service) in route.services.iter().enumerate() {
            let sat = || format!("routes[{i}].services[{j}]");
            if let Err(message) = check_service_name(&service.name) {
                self.problems.push(format!("{}.name", sat()), message);
            } else if if route.services.len() > SCAN_LIMIT {
                !names.insert(&service.name)
            } else {
                route.services[..j].iter().any(|s| s.name == service.name)
            } {
                self.problems.push(
                    format!("{}.name", sat()),
                    format!("service {:?} is listed twice on this route", service.name),
                );
            }
            match weight_of(service.weight.as_ref()) {
                Ok(weight) => parts.weights.push(weight),
                Err(message) => {
                    self.problems.push(format!("{}.weight", sat()), message);
                    parts.weights.push(Weight::default());
                }
            }
            let start = parts.endpoints.len();
            let many = service.endpoints.len() > SCAN_LIMIT;
            seen.clear();
            for (k, text) in service.endpoints.iter().enumerate() {
                let index = match self.endpoints.get(text.as_str()) {
                    Some(index) => *index,
                    None => match read_endpoint(text) {
                        Ok((addr, canonical)) => {
                            let id = if !self.build {
                                self.no_id.clone()
                            } else if canonical {
                                Arc::from(text.as_str())
                            } else {
                                Arc::from(addr.to_string())
                            };
                            let index = self.read.len() as u32;
                            self.read.push(Endpoint { id, addr });
                            self.endpoints.insert(text, index);
                            index
                        }
                        Err(message) => {
                            self.problems
                                .push(format!("{}.endpoints[{k}]", sat()), message);
                            continue;
                        }
                    },
                };
                let addr = self.read[index as usize].addr;
                let repeated = if many {
                    !seen.insert(addr)
                } else {
                    parts.endpoints[start..]
                        .iter()
                        .any(|i| self.read[*i as usize].addr == addr)
                };
                if repeated {
                    self.problems.push(
                        format!("{}.endpoints[{k}]", sat()),
                        format!("endpoint {addr} is listed twice"),
                    );
                } else {
                    parts.endpoints.push(index);
                }
            }
            parts.ends.push(parts.endpoints.len());
        }
    }

    /// The lanes of route `i`: on an internal route, each naming services
    /// of the route and callers that may call it, none of either in two
    /// lanes. Only called for a route that has lanes.
    fn lanes(&mut self, i: usize, route: &'a RouteSpec) {
        let problems = &mut self.problems;
        if !self.parts.internal {
            problems.push(
                format!("routes[{i}].lanes"),
                "lanes only apply to internal routes (hosts ending in .local or internal: true): a request on the public listener has no caller to keep in a lane".to_owned(),
            );
        }
        let names = || {
            route
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // The lane each service and each caller is in so far.
        let mut service_lane: Vec<Option<&str>> = vec![None; route.services.len()];
        let mut caller_lane: FastMap<&str, &str> = FastMap::default();
        for (name, lane) in &route.lanes {
            let at = || format!("routes[{i}].lanes.{name}");
            if check_service_name(name).is_err() {
                problems.push(
                    at(),
                    format!(
                        "{name:?} is not a lane name (letters, digits, '_', '.', '-', starting with a letter or digit)"
                    ),
                );
            }
            if lane.services.is_empty() {
                problems.push(
                    format!("{}.services", at()),
                    format!(
                        "a lane needs at least one service of this route ({})",
                        names()
                    ),
                );
            }
            for (k, service) in lane.services.iter().enumerate() {
                let field = || format!("{}.services[{k}]", at());
                match route.services.iter().position(|s| s.name == *service) {
                    None => problems.push(
                        field(),
                        format!(
                            "unknown service {service:?}; a lane names services of this route ({})",
                            names()
                        ),
                    ),
                    Some(j) => match service_lane[j] {
                        Some(other) => problems.push(
                            field(),
                            if other == name {
                                format!("service {service:?} is listed twice in this lane")
                            } else {
                                format!(
                                    "service {service:?} is already in lane {other:?}; a service is in one lane at most"
                                )
                            },
                        ),
                        None => service_lane[j] = Some(name),
                    },
                }
            }
            if lane.callers.is_empty() {
                problems.push(
                    format!("{}.callers", at()),
                    "a lane needs at least one caller: the services whose calls it keeps to its services".to_owned(),
                );
            }
            for (k, caller) in lane.callers.iter().enumerate() {
                let field = || format!("{}.callers[{k}]", at());
                if let Err(message) = check_service_name(caller) {
                    problems.push(field(), message);
                    continue;
                }
                if let Some(allowed) = &route.callers
                    && !allowed.contains(caller)
                {
                    problems.push(
                        field(),
                        format!(
                            "{caller:?} is not one of the route's callers ({}), so it never calls this route; add it to callers or drop it from the lane",
                            if allowed.is_empty() {
                                "none".to_owned()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                    );
                }
                let first = *caller_lane.entry(caller).or_insert(name);
                if first == name && lane.callers[..k].contains(caller) {
                    problems.push(
                        field(),
                        format!("caller {caller:?} is listed twice in this lane"),
                    );
                } else if first != name {
                    problems.push(
                        field(),
                        format!(
                            "caller {caller:?} is already in lane {first:?}; a caller is in one lane of a route at most"
                        ),
                    );
                }
            }
        }
    }

    fn rules(&mut self, i: usize, route: &'a RouteSpec) {
        self.parts.rules.clear();
        for (j, rule) in route.rules.iter().enumerate() {
            let rat = || format!("routes[{i}].rules[{j}]");
            let service = route.services.iter().position(|s| s.name == rule.service);
            if service.is_none() {
                let known: Vec<&str> = route.services.iter().map(|s| s.name.as_str()).collect();
                self.problems.push(
                    format!("{}.service", rat()),
                    format!(
                        "unknown service {:?}; a rule must name a service of this route ({})",
                        rule.service,
                        known.join(", ")
                    ),
                );
            }
            let m = &rule.matches;
            if m.header.is_empty() && m.cookie.is_empty() && m.query.is_empty() {
                self.problems.push(
                    format!("{}.match", rat()),
                    "a rule needs at least one header, cookie or query condition".to_owned(),
                );
            }
            let mut conditions = Vec::new();
            for (name, pattern) in &m.header {
                let field = || format!("{}.match.header.{name}", rat());
                let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes());
                if header.is_err() {
                    self.problems
                        .push(field(), format!("{name:?} is not a valid header name"));
                }
                let matcher = check_pattern(pattern, field, &mut self.problems);
                if let (Ok(name), Some(matcher)) = (header, matcher) {
                    conditions.push(Condition {
                        source: Source::Header(name),
                        matcher,
                    });
                }
            }
            for (name, pattern) in &m.cookie {
                let field = || format!("{}.match.cookie.{name}", rat());
                if name.is_empty() || name.contains([';', '=', ' ', ',']) {
                    self.problems
                        .push(field(), format!("{name:?} is not a valid cookie name"));
                }
                if let Some(matcher) = check_pattern(pattern, field, &mut self.problems) {
                    conditions.push(Condition {
                        source: Source::Cookie(name.as_str().into()),
                        matcher,
                    });
                }
            }
            for (name, pattern) in &m.query {
                let field = || format!("{}.match.query.{name}", rat());
                if name.is_empty() || name.contains(['&', '=', '#']) {
                    self.problems.push(
                        field(),
                        format!("{name:?} is not a valid query parameter name"),
                    );
                }
                if let Some(matcher) = check_pattern(pattern, field, &mut self.problems) {
                    conditions.push(Condition {
                        source: Source::Query(name.as_str().into()),
                        matcher,
                    });
                }
            }
            if self.build
                && let Some(service) = service
            {
                self.parts.rules.push(Rule {
                    conditions: conditions.into(),
                    service: service as ServiceIndex,
                });
            }
        }
    }
}

/// The compiled pattern, or `None` after reporting why it does not compile.
fn check_pattern(
    pattern: &str,
    field: impl FnOnce() -> String,
    problems: &mut Problems,
) -> Option<ValueMatcher> {
    match ValueMatcher::parse(pattern) {
        Ok(matcher) => Some(matcher),
        Err(message) => {
            let first = message.lines().last().unwrap_or("").trim();
            problems.push(field(), format!("bad regex {pattern:?}: {first}"));
            None
        }
    }
}

fn check_health(health: &HealthSpec, i: usize, problems: &mut Problems) {
    let at = || format!("routes[{i}].health");
    if let Some(path) = &health.path
        && (!path.starts_with('/') || path.chars().any(char::is_whitespace))
    {
        problems.push(
            format!("{}.path", at()),
            format!("{path:?} must start with / and hold no spaces"),
        );
    }
    for (name, value) in [
        ("interval_ms", health.interval_ms),
        ("timeout_ms", health.timeout_ms),
    ] {
        if value.is_some_and(|ms| !(MIN_HEALTH_MS..=3_600_000).contains(&ms)) {
            problems.push(
                format!("{}.{name}", at()),
                format!("must be between {MIN_HEALTH_MS} and 3600000"),
            );
        }
    }
    for (name, value) in [("fall", health.fall), ("rise", health.rise)] {
        if value.is_some_and(|n| n == 0 || n > 100) {
            problems.push(
                format!("{}.{name}", at()),
                "must be between 1 and 100".to_owned(),
            );
        }
    }
}

/// The hosts of a route as written, from `host` or `hosts`.
fn route_hosts(route: &RouteSpec) -> Result<&[String], &'static str> {
    match (&route.host, &route.hosts) {
        (Some(_), Some(_)) => Err("give either host or hosts, not both"),
        (Some(host), None) => Ok(std::slice::from_ref(host)),
        (None, Some(hosts)) if !hosts.is_empty() => Ok(hosts),
        _ => Err("a route needs host or hosts"),
    }
}

/// The canonical spelling of a host as written in a route file; borrowed
/// when it is written that way.
fn canonical_host(host: &str) -> Result<Cow<'_, str>, String> {
    // Nearly every host is already canonical: one pass says so.
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if plain_host(trimmed) {
        return Ok(Cow::Borrowed(trimmed));
    }
    let lower = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    let trimmed = match lower {
        Cow::Borrowed(host) => Cow::Borrowed(host.strip_suffix('.').unwrap_or(host)),
        Cow::Owned(mut host) => {
            if host.ends_with('.') {
                host.pop();
            }
            Cow::Owned(host)
        }
    };
    if trimmed.is_empty() {
        return Err("host must not be empty".to_owned());
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err(format!(
            "host {host:?} must be a bare host name; put a context path in path:"
        ));
    }
    if trimmed.contains(':') {
        return Err(format!(
            "host {host:?} must not carry a port; ports are stripped when matching"
        ));
    }
    let valid = trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "host {host:?} is not a valid host name (letters, digits, '-', '_' in dot-separated labels)"
        ));
    }
    Ok(trimmed)
}

/// Whether `host` is a valid canonical host: lowercase dot-separated labels
/// of 1 to 63 letters, digits, '-' and '_', 253 bytes at most.
fn plain_host(host: &str) -> bool {
    let mut label = 0;
    for &b in host.as_bytes() {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            label += 1;
            if label > 63 {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0 && host.len() <= 253
}

/// The canonical context path: `/` when absent, no trailing slash otherwise.
fn canonical_path(path: Option<&str>) -> Result<&str, String> {
    let Some(path) = path else {
        return Ok("/");
    };
    if !path.starts_with('/') {
        return Err(format!("context path {path:?} must start with /"));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "context path {path:?} must hold no spaces, '?' or '#'"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed })
}

/// The route id: the explicit one, else the first host plus the path.
fn route_id<'a>(route: &'a RouteSpec, hosts: &[Cow<'a, str>], path: &str) -> Cow<'a, str> {
    if let Some(id) = &route.id {
        return Cow::Borrowed(id);
    }
    match hosts.first() {
        Some(host) if path == "/" => host.clone(),
        Some(host) => Cow::Owned(format!("{host}{path}")),
        None => Cow::Borrowed(""),
    }
}

/// Whether the route is internal: explicit, else implied by `.local` hosts.
fn route_internal(route: &RouteSpec, hosts: &[Cow<'_, str>]) -> Result<bool, String> {
    let local = hosts.iter().filter(|h| h.ends_with(".local")).count();
    match route.internal {
        Some(true) => Ok(true),
        Some(false) if local > 0 => Err(
            "hosts ending in .local are internal; remove internal: false or rename the host"
                .to_owned(),
        ),
        Some(false) => Ok(false),
        None if local == 0 => Ok(false),
        None if local == hosts.len() => Ok(true),
        None => Err(
            "the route mixes .local (internal) and public hosts; split it in two routes".to_owned(),
        ),
    }
}

/// The weight as a [`Weight`], or why it is not one.
fn weight_of(value: Option<&WeightValue>) -> Result<Weight, String> {
    let Some(value) = value else {
        return Ok(Weight::default());
    };
    let bad = |what: &str| format!("weight must be an integer from 0 to 100, got {value} ({what})");
    match value {
        WeightValue::Integer(v) if *v < 0 => Err(bad("negative")),
        WeightValue::Integer(v) => u8::try_from(*v)
            .ok()
            .and_then(Weight::new)
            .ok_or_else(|| bad("above 100")),
        WeightValue::Float(v) if v.fract() == 0.0 && (0.0..=100.0).contains(v) => {
            Err(bad("write it without a fraction"))
        }
        WeightValue::Float(_) => Err(bad("not an integer")),
        WeightValue::Text(_) => Err(bad("not a number")),
    }
}

/// An endpoint address, or why it cannot be reached; and whether the text
/// is exactly how the address displays (then it is its own id).
fn read_endpoint(text: &str) -> Result<(SocketAddr, bool), String> {
    let (addr, canonical) = match plain_v4(text) {
        Some(addr) => (SocketAddr::V4(addr), true),
        None => (
            text.parse().map_err(|_| {
                format!("endpoint {text:?} must be ip:port, such as 127.0.0.1:19001 or [::1]:19001")
            })?,
            false,
        ),
    };
    if addr.port() == 0 {
        return Err(format!("endpoint {text:?} is unreachable: port 0"));
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == Ipv4Addr::BROADCAST {
        return Err(format!(
            "endpoint {text:?} is unreachable: {ip} is not a unicast address"
        ));
    }
    Ok((addr, canonical))
}

/// `a.b.c.d:port` written exactly as [`SocketAddrV4`] displays it
/// (decimal, no leading zeros, nothing around it): nearly every endpoint.
/// `None` for anything else, which std's parser then reads; what this
/// accepts, std's parser reads to the same address.
fn plain_v4(text: &str) -> Option<SocketAddrV4> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut octets = [0u8; 4];
    for (n, octet) in octets.iter_mut().enumerate() {
        *octet = u8::try_from(plain_decimal(bytes, &mut at, 3)?).ok()?;
        let separator = if n < 3 { b'.' } else { b':' };
        if bytes.get(at) != Some(&separator) {
            return None;
        }
        at += 1;
    }
    let port = u16::try_from(plain_decimal(bytes, &mut at, 5)?).ok()?;
    (at == bytes.len()).then(|| SocketAddrV4::new(Ipv4Addr::from(octets), port))
}

/// A decimal number of 1 to `max` digits at `*at`, without leading zeros.
fn plain_decimal(bytes: &[u8], at: &mut usize, max: usize) -> Option<u32> {
    let start = *at;
    let mut value = 0u32;
    while let Some(digit) = bytes.get(*at).filter(|b| b.is_ascii_digit()) {
        if *at - start == max {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
        *at += 1;
    }
    let len = *at - start;
    (len == 1 || (len > 1 && bytes[start] != b'0')).then_some(value)
}

/// A service name as DESIGN §7 spells it: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(crate) fn check_service_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a service name (letters, digits, '_', '.', '-', starting with a letter or digit)"
        ))
    }
}

/// An app name: a service name without '/', which separates the app from
/// the service in a caller token.
fn check_app_name(name: &str) -> Result<(), String> {
    check_service_name(name).map_err(|_| {
        format!(
            "{name:?} is not an app name (letters, digits, '_', '.', '-', starting with a letter or digit)"
        )
    })
}

/// The caller a `caller_tokens` value names: `service`, or `app/service`
/// (a compose service name cannot hold '/', so there is no doubt where
/// the app ends).
pub(crate) fn split_caller(value: &str) -> Result<(Option<&str>, &str), String> {
    let Some((app, service)) = value.split_once('/') else {
        check_service_name(value)?;
        return Ok((None, value));
    };
    if service.contains('/') {
        return Err(format!(
            "{value:?} holds more than one '/'; a caller is service or app/service"
        ));
    }
    if app.is_empty() || service.is_empty() {
        return Err(format!(
            "{value:?} has an empty {}; a caller is service or app/service",
            if app.is_empty() { "app" } else { "service" }
        ));
    }
    check_app_name(app)?;
    check_service_name(service)?;
    Ok((Some(app), service))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Collects problems in file order.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: String, message: String) {
        self.0.push(Problem { field, message });
    }

    fn into_result(self) -> Result<(), RoutingError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RoutingError::Invalid { problems: self.0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_v4_reads_what_displays_as_itself() {
        for text in [
            "127.0.0.1:19001",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.0.1:1",
        ] {
            let addr = plain_v4(text).unwrap();
            assert_eq!(addr.to_string(), text);
        }
        for text in [
            "127.0.0.01:80",
            "127.0.0.1:080",
            "256.0.0.1:80",
            "1.2.3.4:65536",
            "1.2.3:80",
            "1.2.3.4.5:80",
            "1.2.3.4",
            "1.2.3.4:",
            " 1.2.3.4:80",
            "1.2.3.4:80 ",
            "1.2.3.4:+80",
            "[::1]:80",
            "1.2.3.4:123456",
            "1234.2.3.4:80",
        ] {
            assert_eq!(plain_v4(text), None, "{text}");
        }
    }

    #[test]
    fn endpoints_keep_their_messages() {
        assert!(read_endpoint("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(
            read_endpoint("0.0.0.0:80")
                .unwrap_err()
                .contains("not a unicast")
        );
        assert!(
            read_endpoint("nowhere")
                .unwrap_err()
                .contains("must be ip:port")
        );
        assert_eq!(
            read_endpoint("[::1]:80").unwrap(),
            ("[::1]:80".parse().unwrap(), false)
        );
        assert_eq!(
            read_endpoint("127.0.0.1:80").unwrap(),
            ("127.0.0.1:80".parse().unwrap(), true)
        );
    }

    proptest! {
        /// The one-pass check agrees with the full one.
        #[test]
        fn plain_host_agrees(host in "[a-zA-Z0-9._:/-]{0,70}") {
            let full = {
                let lower = host.to_ascii_lowercase();
                let trimmed = lower.strip_suffix('.').unwrap_or(&lower).to_owned();
                !trimmed.is_empty()
                    && !trimmed.contains('/')
                    && !trimmed.contains(':')
                    && trimmed.len() <= 253
                    && trimmed.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            };
            let trimmed = host.strip_suffix('.').unwrap_or(&host);
            if plain_host(trimmed) {
                prop_assert!(full);
                prop_assert_eq!(canonical_host(&host).unwrap(), trimmed);
            } else if full {
                // Valid, but not written canonically: uppercase.
                prop_assert!(host.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }
    }

    #[test]
    fn canonical_forms_borrow_when_already_canonical() {
        assert!(matches!(
            canonical_host("a.example"),
            Ok(Cow::Borrowed("a.example"))
        ));
        assert!(matches!(
            canonical_host("a.example."),
            Ok(Cow::Borrowed("a.example"))
        ));
        assert_eq!(canonical_host("A.Example.").unwrap(), "a.example");
        assert_eq!(canonical_path(Some("/api//")).unwrap(), "/api");
        assert_eq!(canonical_path(Some("///")).unwrap(), "/");
        assert_eq!(canonical_path(None).unwrap(), "/");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The fast path agrees with std's parser and with how the address
        /// displays, on anything shaped like an address.
        #[test]
        fn plain_v4_agrees_with_std(text in "[0-9]{0,4}(\\.[0-9]{0,4}){0,4}(:[0-9+]{0,6})?") {
            if let Some(addr) = plain_v4(&text) {
                prop_assert_eq!(text.parse::<SocketAddr>().ok(), Some(SocketAddr::V4(addr)));
                prop_assert_eq!(addr.to_string(), text);
            } else if let Ok(SocketAddr::V4(addr)) = text.parse::<SocketAddr>() {
                // std reads it, but it is not written the way it displays.
                prop_assert_ne!(addr.to_string(), text);
            }
        }

        #[test]
        fn plain_v4_agrees_with_std_on_addresses(ip in any::<u32>(), port in any::<u16>()) {
            let text = SocketAddrV4::new(Ipv4Addr::from(ip), port).to_string();
            prop_assert_eq!(plain_v4(&text), Some(SocketAddrV4::new(Ipv4Addr::from(ip), port)));
        }
    }
}
