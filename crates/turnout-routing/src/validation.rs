//! Every rule a route file must follow, checked at once so that one run
//! reports every problem.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use http::HeaderName;

use crate::error::{Problem, RoutingError};
use crate::matcher::ValueMatcher;
use crate::route_file::{HealthSpec, RouteFile, RouteSpec, WeightValue};
use crate::weight::Weight;

/// Most services one route may split between; the smooth round-robin cycle
/// and the per-request scans stay small with this bound.
pub(crate) const MAX_SERVICES_PER_ROUTE: usize = 64;

/// Shortest health check interval or timeout accepted, in ms.
const MIN_HEALTH_MS: u64 = 10;

impl RouteFile {
    /// Checks the whole file and returns every problem found.
    pub fn validate(&self) -> Result<(), RoutingError> {
        let mut problems = Problems::default();
        // (host, path) → the route that serves it, to find duplicates.
        let mut served: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut ids: HashSet<String> = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            check_route(route, &at, &mut served, &mut ids, &mut problems);
        }
        if self.drain_timeout_ms.is_some_and(|ms| ms > 3_600_000) {
            problems.push(
                "drain_timeout_ms",
                "must be at most 3600000 (one hour)".to_owned(),
            );
        }
        if let Some(token) = &self.preview_token
            && (token.is_empty() || !token.bytes().all(is_token_byte))
        {
            problems.push(
                "preview_token",
                "must be a non-empty header-safe token (letters, digits and -._~+/=)".to_owned(),
            );
        }
        for (token, service) in &self.caller_tokens {
            let at = format!("caller_tokens.{token}");
            if token.is_empty() || !token.bytes().all(is_token_byte) || token.contains(':') {
                problems.push(
                    &at,
                    "a proxy credential must be a non-empty token without ':' (it is the user name of Proxy-Authorization)".to_owned(),
                );
            }
            if let Err(message) = check_service_name(service) {
                problems.push(&at, message);
            }
        }
        problems.into_result()
    }
}

fn check_route(
    route: &RouteSpec,
    at: &str,
    served: &mut BTreeMap<(String, String), String>,
    ids: &mut HashSet<String>,
    problems: &mut Problems,
) {
    let hosts = match route_hosts(route) {
        Ok(hosts) => hosts,
        Err(message) => {
            problems.push(at, message);
            Vec::new()
        }
    };
    let mut canonical_hosts = Vec::new();
    for (j, host) in hosts.iter().enumerate() {
        let field = if route.host.is_some() {
            format!("{at}.host")
        } else {
            format!("{at}.hosts[{j}]")
        };
        match canonical_host(host) {
            Ok(host) => canonical_hosts.push(host),
            Err(message) => problems.push(&field, message),
        }
    }
    let path = match canonical_path(route.path.as_deref()) {
        Ok(path) => path,
        Err(message) => {
            problems.push(&format!("{at}.path"), message);
            "/".to_owned()
        }
    };
    let id = route_id(route, &canonical_hosts, &path);
    if let Some(explicit) = &route.id
        && (explicit.is_empty() || explicit.chars().any(char::is_whitespace))
    {
        problems.push(
            &format!("{at}.id"),
            "must be non-empty without spaces".to_owned(),
        );
    }
    if !id.is_empty() && !ids.insert(id.clone()) {
        problems.push(
            &format!("{at}.id"),
            format!("route id {id:?} is used by an earlier route; ids must be unique"),
        );
    }
    for host in &canonical_hosts {
        if let Some(other) = served.insert((host.clone(), path.clone()), id.clone()) {
            problems.push(
                at,
                format!(
                    "duplicate host: {host}{} is already served by route {other:?}",
                    if path == "/" { "" } else { &path }
                ),
            );
        }
    }
    let internal = match route_internal(route, &canonical_hosts) {
        Ok(internal) => internal,
        Err(message) => {
            problems.push(&format!("{at}.internal"), message);
            false
        }
    };
    if let Some(callers) = &route.callers {
        if !internal {
            problems.push(
                &format!("{at}.callers"),
                "callers only apply to internal routes (hosts ending in .local or internal: true)"
                    .to_owned(),
            );
        }
        for (j, caller) in callers.iter().enumerate() {
            if let Err(message) = check_service_name(caller) {
                problems.push(&format!("{at}.callers[{j}]"), message);
            }
        }
    }
    check_services(route, at, problems);
    check_rules(route, at, problems);
    if let Some(health) = &route.health {
        check_health(health, &format!("{at}.health"), problems);
    }
}

fn check_services(route: &RouteSpec, at: &str, problems: &mut Problems) {
    if route.services.is_empty() {
        problems.push(
            &format!("{at}.services"),
            "a route needs at least one service".to_owned(),
        );
    }
    if route.services.len() > MAX_SERVICES_PER_ROUTE {
        problems.push(
            &format!("{at}.services"),
            format!("a route may split between at most {MAX_SERVICES_PER_ROUTE} services"),
        );
    }
    let mut names = HashSet::new();
    for (j, service) in route.services.iter().enumerate() {
        let sat = format!("{at}.services[{j}]");
        if let Err(message) = check_service_name(&service.name) {
            problems.push(&format!("{sat}.name"), message);
        } else if !names.insert(service.name.as_str()) {
            problems.push(
                &format!("{sat}.name"),
                format!("service {:?} is listed twice on this route", service.name),
            );
        }
        if let Err(message) = weight_of(service.weight.as_ref()) {
            problems.push(&format!("{sat}.weight"), message);
        }
        let mut seen = HashSet::new();
        for (k, endpoint) in service.endpoints.iter().enumerate() {
            let eat = format!("{sat}.endpoints[{k}]");
            match parse_endpoint(endpoint) {
                Ok(addr) => {
                    if !seen.insert(addr) {
                        problems.push(&eat, format!("endpoint {addr} is listed twice"));
                    }
                }
                Err(message) => problems.push(&eat, message),
            }
        }
    }
}

fn check_rules(route: &RouteSpec, at: &str, problems: &mut Problems) {
    for (j, rule) in route.rules.iter().enumerate() {
        let rat = format!("{at}.rules[{j}]");
        if !route.services.iter().any(|s| s.name == rule.service) {
            let known: Vec<&str> = route.services.iter().map(|s| s.name.as_str()).collect();
            problems.push(
                &format!("{rat}.service"),
                format!(
                    "unknown service {:?}; a rule must name a service of this route ({})",
                    rule.service,
                    known.join(", ")
                ),
            );
        }
        let m = &rule.matches;
        if m.header.is_empty() && m.cookie.is_empty() && m.query.is_empty() {
            problems.push(
                &format!("{rat}.match"),
                "a rule needs at least one header, cookie or query condition".to_owned(),
            );
        }
        for (name, pattern) in &m.header {
            let field = format!("{rat}.match.header.{name}");
            if HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
                problems.push(&field, format!("{name:?} is not a valid header name"));
            }
            check_pattern(pattern, &field, problems);
        }
        for (name, pattern) in &m.cookie {
            let field = format!("{rat}.match.cookie.{name}");
            if name.is_empty() || name.contains([';', '=', ' ', ',']) {
                problems.push(&field, format!("{name:?} is not a valid cookie name"));
            }
            check_pattern(pattern, &field, problems);
        }
        for (name, pattern) in &m.query {
            let field = format!("{rat}.match.query.{name}");
            if name.is_empty() || name.contains(['&', '=', '#']) {
                problems.push(
                    &field,
                    format!("{name:?} is not a valid query parameter name"),
                );
            }
            check_pattern(pattern, &field, problems);
        }
    }
}

fn check_pattern(pattern: &str, field: &str, problems: &mut Problems) {
    if let Err(message) = ValueMatcher::parse(pattern) {
        let first = message.lines().last().unwrap_or("").trim();
        problems.push(field, format!("bad regex {pattern:?}: {first}"));
    }
}

fn check_health(health: &HealthSpec, at: &str, problems: &mut Problems) {
    if let Some(path) = &health.path
        && (!path.starts_with('/') || path.chars().any(char::is_whitespace))
    {
        problems.push(
            &format!("{at}.path"),
            format!("{path:?} must start with / and hold no spaces"),
        );
    }
    for (name, value) in [
        ("interval_ms", health.interval_ms),
        ("timeout_ms", health.timeout_ms),
    ] {
        if value.is_some_and(|ms| !(MIN_HEALTH_MS..=3_600_000).contains(&ms)) {
            problems.push(
                &format!("{at}.{name}"),
                format!("must be between {MIN_HEALTH_MS} and 3600000"),
            );
        }
    }
    for (name, value) in [("fall", health.fall), ("rise", health.rise)] {
        if value.is_some_and(|n| n == 0 || n > 100) {
            problems.push(
                &format!("{at}.{name}"),
                "must be between 1 and 100".to_owned(),
            );
        }
    }
}

/// The hosts of a route as written, from `host` or `hosts`.
pub(crate) fn route_hosts(route: &RouteSpec) -> Result<Vec<String>, String> {
    match (&route.host, &route.hosts) {
        (Some(_), Some(_)) => Err("give either host or hosts, not both".to_owned()),
        (Some(host), None) => Ok(vec![host.clone()]),
        (None, Some(hosts)) if !hosts.is_empty() => Ok(hosts.clone()),
        _ => Err("a route needs host or hosts".to_owned()),
    }
}

/// The canonical spelling of a host as written in a route file.
pub(crate) fn canonical_host(host: &str) -> Result<String, String> {
    let lower = host.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
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
    Ok(trimmed.to_owned())
}

/// The canonical context path: `/` when absent, no trailing slash otherwise.
pub(crate) fn canonical_path(path: Option<&str>) -> Result<String, String> {
    let Some(path) = path else {
        return Ok("/".to_owned());
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
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// The route id: the explicit one, else the first host plus the path.
pub(crate) fn route_id(route: &RouteSpec, hosts: &[String], path: &str) -> String {
    if let Some(id) = &route.id {
        return id.clone();
    }
    match hosts.first() {
        Some(host) if path == "/" => host.clone(),
        Some(host) => format!("{host}{path}"),
        None => String::new(),
    }
}

/// Whether the route is internal: explicit, else implied by `.local` hosts.
pub(crate) fn route_internal(route: &RouteSpec, hosts: &[String]) -> Result<bool, String> {
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
pub(crate) fn weight_of(value: Option<&WeightValue>) -> Result<Weight, String> {
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

/// An endpoint address, or why it cannot be reached.
pub(crate) fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!("endpoint {text:?} must be ip:port, such as 127.0.0.1:19001 or [::1]:19001")
    })?;
    if addr.port() == 0 {
        return Err(format!("endpoint {text:?} is unreachable: port 0"));
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == std::net::Ipv4Addr::BROADCAST {
        return Err(format!(
            "endpoint {text:?} is unreachable: {ip} is not a unicast address"
        ));
    }
    Ok(addr)
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

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Collects problems in file order.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: &str, message: String) {
        self.0.push(Problem {
            field: field.to_owned(),
            message,
        });
    }

    fn into_result(self) -> Result<(), RoutingError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RoutingError::Invalid { problems: self.0 })
        }
    }
}
