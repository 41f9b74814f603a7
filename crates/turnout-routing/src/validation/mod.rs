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
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderName;

use crate::endpoint::Endpoint;
use crate::error::{Problem, RoutingError};
use crate::goal::read_goal;
use crate::matcher::ValueMatcher;
use crate::route_file::{HealthSpec, RouteFile, RouteSpec};
use crate::rule::{Condition, Rule, Source};
use crate::service::ServiceIndex;
use crate::weight::Weight;

mod values;

use values::*;
pub(crate) use values::{check_service_name, split_caller};

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
    use std::net::{Ipv4Addr, SocketAddrV4};

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
