//! The split decision: which service (and, for pinned clients, which
//! instance) a request goes to. Pure and allocation-free.

use std::net::IpAddr;

use http::HeaderMap;

use crate::caller::Caller;
use crate::cookie::{INSTANCE_COOKIE, POSITION_COOKIE, cookie_value};
use crate::headers::RequestHeaders;
use crate::lane::Lane;
use crate::position::Position;
use crate::route::{Route, RouteIndex};
use crate::route_table::RouteTable;
use crate::service::ServiceIndex;
use turnout_spec::Sticky;

/// Header naming the service a preview request wants.
pub const PREVIEW_SERVICE_HEADER: &str = "x-turnout-service";
/// Header carrying the preview token.
pub const PREVIEW_TOKEN_HEADER: &str = "x-turnout-preview-token";

/// Everything about one request that the decision reads.
#[derive(Debug)]
pub struct RequestKey<'a, H: ?Sized = HeaderMap> {
    /// The route found by [`RouteTable::lookup`].
    pub route: RouteIndex,
    /// A number that grows by one per request on this route (the proxy's
    /// atomic counter); it drives the smooth weighted round robin.
    pub seq: u64,
    /// The request headers (cookies, rule headers, preview headers).
    pub headers: &'a H,
    /// The raw query string, for query rules.
    pub query: Option<&'a str>,
    /// The proxy credential presented on the internal listener, if any.
    pub caller_token: Option<&'a str>,
    /// The source address of the connection on the internal listener:
    /// the caller when it sent no credential (`caller_addresses`).
    pub caller_address: Option<IpAddr>,
}

// By hand: a derive would ask `H: Clone`, but only the reference is copied.
impl<H: ?Sized> Clone for RequestKey<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: ?Sized> Copy for RequestKey<'_, H> {}

/// Why a request was sent where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// `X-Turnout-Service` with a valid preview token.
    Preview,
    /// A rule matched.
    Rule,
    /// The client's instance pin named a live instance.
    Pin,
    /// The client's position cookie.
    Position,
    /// Smooth weighted round robin.
    Weighted,
    /// The caller's lane (DESIGN §8): round robin over the lane's
    /// services by their weights relative to each other.
    Lane,
}

/// Where the request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The service, an index into the route's services.
    pub service: ServiceIndex,
    /// The pinned instance, an index into the service's endpoints; `None`
    /// lets the proxy choose among ready instances.
    pub pinned: Option<u32>,
    /// Why.
    pub via: Via,
    /// A position cookie to give the client (`version`/`instance` routes,
    /// clients without a valid one).
    pub set_position: Option<Position>,
    /// Whether the proxy should pin the client to the instance it chooses.
    pub set_pin: bool,
}

/// Why a caller may not use an internal route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forbidden {
    /// The route lists its callers, the request carried no credential
    /// and its source address is no known caller's.
    NoCredential,
    /// The credential is not one of the table's caller tokens.
    UnknownCredential,
    /// The caller is known but not in the route's `callers`.
    NotAllowed,
    /// The caller is known but belongs to another app than the route:
    /// apps are isolated, even when they have services of the same name.
    OtherApp,
}

/// The outcome of [`pick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward to this target.
    Forward(Target),
    /// Refuse with 403 (internal routes only).
    Forbidden(Forbidden),
    /// No service can take the request (every weight is 0): 503.
    NoService,
    /// The route index is not in this table (a key built for another
    /// table): the proxy answers as for an unknown host.
    UnknownRoute,
}

/// Decides where a request goes: caller check, then preview override, then
/// rules, then (for a caller in one of the route's lanes: only among the
/// lane's services) stickiness, then the weights.
pub fn pick<H: RequestHeaders + ?Sized>(table: &RouteTable, key: &RequestKey<'_, H>) -> Decision {
    let Some(route) = table.route(key.route) else {
        return Decision::UnknownRoute;
    };
    let lane = match check_caller(table, route, key.caller_token, key.caller_address) {
        Ok(caller) => caller.and_then(|caller| lane_of(route, caller)),
        Err(refusal) => return Decision::Forbidden(refusal),
    };
    let pin = if route.sticky == Sticky::Instance {
        cookie_value(key.headers, INSTANCE_COOKIE).and_then(|id| find_instance(route, id))
    } else {
        None
    };
    let chosen = |service: ServiceIndex, via: Via| {
        // A pin inside the chosen service still holds, so a preview or rule
        // client keeps its session too.
        let pinned = pin.filter(|(s, _)| *s == service).map(|(_, e)| e);
        Decision::Forward(Target {
            service,
            pinned,
            via,
            set_position: None,
            set_pin: route.sticky == Sticky::Instance && pinned.is_none(),
        })
    };
    if let Some(service) = preview_service(table, route, key.headers) {
        return chosen(service, Via::Preview);
    }
    if let Some(rule) = route
        .rules
        .iter()
        .find(|r| r.matches(key.headers, key.query))
    {
        return chosen(rule.service, Via::Rule);
    }
    if let Some(lane) = lane {
        return pick_in_lane(route, lane, pin, key);
    }
    if let Some((service, endpoint)) = pin {
        return Decision::Forward(Target {
            service,
            pinned: Some(endpoint),
            via: Via::Pin,
            set_position: None,
            set_pin: false,
        });
    }
    if route.sticky != Sticky::Off
        && let Some(position) = cookie_value(key.headers, POSITION_COOKIE).and_then(Position::parse)
        && let Some(service) = owner(route, position)
    {
        return chosen(service, Via::Position);
    }
    if route.cycle.is_empty() {
        return Decision::NoService;
    }
    let slot = (key.seq % route.cycle.len() as u64) as usize;
    let service = route.cycle[slot];
    let set_position = if route.sticky == Sticky::Off {
        None
    } else {
        route
            .service(service)
            .and_then(|s| Position::spread(&s.range, key.seq))
    };
    Decision::Forward(Target {
        service,
        pinned: None,
        via: Via::Weighted,
        set_position,
        set_pin: route.sticky == Sticky::Instance,
    })
}

/// [`pick`] past the rules for a caller in `lane`: the pin or position
/// when it names a service of the lane, else the lane's own round robin.
/// The lane's cycle is never empty, so there is always a service.
fn pick_in_lane<H: RequestHeaders + ?Sized>(
    route: &Route,
    lane: &Lane,
    pin: Option<(ServiceIndex, u32)>,
    key: &RequestKey<'_, H>,
) -> Decision {
    if let Some((service, endpoint)) = pin
        && lane.contains(service)
    {
        return Decision::Forward(Target {
            service,
            pinned: Some(endpoint),
            via: Via::Pin,
            set_position: None,
            set_pin: false,
        });
    }
    if route.sticky != Sticky::Off
        && let Some(position) = cookie_value(key.headers, POSITION_COOKIE).and_then(Position::parse)
        && let Some(service) = owner(route, position).filter(|&s| lane.contains(s))
    {
        return Decision::Forward(Target {
            service,
            pinned: None,
            via: Via::Position,
            set_position: None,
            set_pin: route.sticky == Sticky::Instance,
        });
    }
    if lane.cycle.is_empty() {
        return Decision::NoService;
    }
    let service = lane.cycle[(key.seq % lane.cycle.len() as u64) as usize];
    let set_position = if route.sticky == Sticky::Off {
        None
    } else {
        route
            .service(service)
            .and_then(|s| Position::spread(&s.range, key.seq))
    };
    Decision::Forward(Target {
        service,
        pinned: None,
        via: Via::Lane,
        set_position,
        set_pin: route.sticky == Sticky::Instance,
    })
}

/// The lane of `route` that `caller` is in: a caller of the route's own
/// app (as for `callers`) listed in one of its lanes. A scan of a route's
/// few lanes, names compared by content.
fn lane_of<'t>(route: &'t Route, caller: &Caller) -> Option<&'t Lane> {
    if route.lanes.is_empty() || caller.app != route.app {
        return None;
    }
    route.lanes.iter().find(|lane| lane.takes(caller))
}

/// The service whose range holds `position`, if any service has weight.
pub(crate) fn owner(route: &Route, position: Position) -> Option<ServiceIndex> {
    let p = position.get();
    route
        .services
        .iter()
        .position(|s| s.range.contains(&p))
        .map(|i| i as ServiceIndex)
}

/// Whether the caller may use the route, and who it is when the route
/// needs to know (it lists its callers or has lanes); `Ok(None)` on a
/// route open to anyone without lanes, which looks nobody up.
fn check_caller<'t>(
    table: &'t RouteTable,
    route: &Route,
    token: Option<&str>,
    address: Option<IpAddr>,
) -> Result<Option<&'t Caller>, Forbidden> {
    let Some(allowed) = route.callers.as_deref() else {
        // Open to any caller; only a lane asks who calls.
        return Ok(if route.lanes.is_empty() {
            None
        } else {
            table.identify(token, address)
        });
    };
    // A credential, when sent, says who calls; else the source address.
    let caller = match token {
        Some(token) => table.caller(token).ok_or(Forbidden::UnknownCredential)?,
        None => address
            .and_then(|a| table.caller_at(a))
            .ok_or(Forbidden::NoCredential)?,
    };
    // Compared by content (a few bytes), which allocates nothing.
    if caller.app != route.app {
        Err(Forbidden::OtherApp)
    } else if allowed.contains(&caller.service) {
        Ok(Some(caller))
    } else {
        Err(Forbidden::NotAllowed)
    }
}

fn preview_service<H: RequestHeaders + ?Sized>(
    table: &RouteTable,
    route: &Route,
    headers: &H,
) -> Option<ServiceIndex> {
    let expected = table.preview_token()?;
    let name = headers.first_str(PREVIEW_SERVICE_HEADER)?;
    let presented = headers.values(PREVIEW_TOKEN_HEADER).next()?;
    if !constant_time_eq(expected, presented) {
        return None;
    }
    route
        .services
        .iter()
        .position(|s| s.name.eq_ignore_ascii_case(name))
        .map(|i| i as ServiceIndex)
}

fn find_instance(route: &Route, id: &str) -> Option<(ServiceIndex, u32)> {
    route.services.iter().enumerate().find_map(|(s, service)| {
        service
            .endpoints
            .iter()
            .position(|e| &*e.id == id)
            .map(|e| (s as ServiceIndex, e as u32))
    })
}

/// Compares tokens without an early exit, so timing does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Listener;
    use http::HeaderValue;
    use http::header::COOKIE;

    const FILE: &str = r#"
routes:
  - host: app.localhost
    sticky: instance
    rules:
      - match: { header: { x-beta: "1" }, query: { lang: "prefix:en" } }
        service: app-v2
    services:
      - { name: app-v1, weight: 90, endpoints: ["127.0.0.1:19001", "127.0.0.1:19011"] }
      - { name: app-v2, weight: 10, endpoints: ["127.0.0.1:19002"] }
  - host: off.localhost
    sticky: off
    services:
      - { name: a, weight: 50, endpoints: ["127.0.0.1:19003"] }
      - { name: b, weight: 50, endpoints: ["127.0.0.1:19004"] }
  - host: zero.localhost
    services:
      - { name: z, weight: 0, endpoints: ["127.0.0.1:19005"] }
  - host: servicea.local
    callers: [web-v1]
    services:
      - { name: servicea, endpoints: ["127.0.0.1:19006"] }
preview_token: secret
caller_tokens: { tok-web: web-v1, tok-batch: batch }
"#;

    fn table() -> RouteTable {
        RouteTable::from_yaml(FILE).unwrap()
    }

    fn key<'a>(route: RouteIndex, seq: u64, headers: &'a HeaderMap) -> RequestKey<'a> {
        RequestKey {
            route,
            seq,
            headers,
            query: None,
            caller_token: None,
            caller_address: None,
        }
    }

    fn forward(d: Decision) -> Target {
        match d {
            Decision::Forward(t) => t,
            other => panic!("expected forward, got {other:?}"),
        }
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn weighted_gives_exact_shares_and_positions() {
        let t = table();
        let h = HeaderMap::new();
        let mut counts = [0u32; 2];
        for seq in 0..10_000 {
            let target = forward(pick(&t, &key(0, seq, &h)));
            assert_eq!(target.via, Via::Weighted);
            counts[target.service as usize] += 1;
            let p = target.set_position.unwrap().get();
            let range = t.routes()[0].services()[target.service as usize].positions();
            assert!(range.contains(&p));
            assert!(target.set_pin);
        }
        assert_eq!(counts, [9000, 1000]);
    }

    #[test]
    fn position_cookie_keeps_the_version() {
        let t = table();
        let h = with_cookie("turnout_pos=950000");
        for seq in 0..50 {
            let target = forward(pick(&t, &key(0, seq, &h)));
            assert_eq!((target.service, target.via), (1, Via::Position));
            assert_eq!(target.set_position, None);
        }
        // Garbage positions are treated as absent.
        let h = with_cookie("turnout_pos=abc");
        assert_eq!(forward(pick(&t, &key(0, 0, &h))).via, Via::Weighted);
    }

    #[test]
    fn pin_beats_position_and_dead_pin_is_ignored() {
        let t = table();
        let h = with_cookie("turnout_pos=10; turnout_instance=127.0.0.1:19002");
        let target = forward(pick(&t, &key(0, 0, &h)));
        assert_eq!(
            (target.service, target.pinned, target.via),
            (1, Some(0), Via::Pin)
        );
        let h = with_cookie("turnout_pos=10; turnout_instance=127.0.0.1:1");
        let target = forward(pick(&t, &key(0, 0, &h)));
        assert_eq!(
            (target.service, target.pinned, target.via),
            (0, None, Via::Position)
        );
        assert!(target.set_pin);
    }

    #[test]
    fn rules_beat_stickiness() {
        let t = table();
        let mut h = with_cookie("turnout_pos=10");
        h.insert("x-beta", HeaderValue::from_static("1"));
        let mut k = key(0, 0, &h);
        k.query = Some("lang=en-US");
        assert_eq!(forward(pick(&t, &k)).via, Via::Rule);
        assert_eq!(forward(pick(&t, &k)).service, 1);
        k.query = Some("lang=de");
        assert_eq!(forward(pick(&t, &k)).via, Via::Position);
    }

    #[test]
    fn preview_needs_the_token() {
        let t = table();
        let mut h = with_cookie("turnout_pos=950000");
        h.insert(PREVIEW_SERVICE_HEADER, HeaderValue::from_static("app-v1"));
        h.insert(PREVIEW_TOKEN_HEADER, HeaderValue::from_static("wrong"));
        assert_eq!(forward(pick(&t, &key(0, 0, &h))).service, 1);
        h.insert(PREVIEW_TOKEN_HEADER, HeaderValue::from_static("secret"));
        let target = forward(pick(&t, &key(0, 0, &h)));
        assert_eq!((target.service, target.via), (0, Via::Preview));
    }

    #[test]
    fn off_sets_no_cookie_and_zero_is_no_service() {
        let t = table();
        let h = with_cookie("turnout_pos=999999");
        let a = forward(pick(&t, &key(1, 0, &h)));
        let b = forward(pick(&t, &key(1, 1, &h)));
        assert_ne!(a.service, b.service);
        assert_eq!(a.set_position, None);
        assert!(!a.set_pin);
        assert_eq!(pick(&t, &key(2, 0, &h)), Decision::NoService);
        assert_eq!(pick(&t, &key(99, 0, &h)), Decision::UnknownRoute);
    }

    #[test]
    fn callers_are_checked() {
        let t = table();
        let h = HeaderMap::new();
        let route = t.lookup(Listener::Internal, "servicea.local", "/").unwrap();
        let mut k = key(route, 0, &h);
        assert_eq!(pick(&t, &k), Decision::Forbidden(Forbidden::NoCredential));
        k.caller_token = Some("nope");
        assert_eq!(
            pick(&t, &k),
            Decision::Forbidden(Forbidden::UnknownCredential)
        );
        k.caller_token = Some("tok-batch");
        assert_eq!(pick(&t, &k), Decision::Forbidden(Forbidden::NotAllowed));
        k.caller_token = Some("tok-web");
        assert!(matches!(pick(&t, &k), Decision::Forward(_)));
    }

    #[test]
    fn callers_are_known_by_their_address_when_they_send_no_credential() {
        let t = RouteTable::from_yaml(
            r#"
routes:
  - host: db.local
    app: shop
    callers: [web]
    services:
      - { name: db, endpoints: ["172.18.0.2:5432"] }
caller_tokens: { tok-batch: shop/batch }
caller_addresses: { "172.18.0.5": shop/web, "172.18.0.6": shop/batch, "172.19.0.5": blog/web }
"#,
        )
        .unwrap();
        let h = HeaderMap::new();
        let route = t.lookup(Listener::Internal, "db.local", "/").unwrap();
        let decide = |token: Option<&str>, address: &str| {
            let mut k = key(route, 0, &h);
            k.caller_token = token;
            k.caller_address = Some(address.parse().unwrap());
            pick(&t, &k)
        };
        assert!(matches!(decide(None, "172.18.0.5"), Decision::Forward(_)));
        assert_eq!(
            decide(None, "172.18.0.6"),
            Decision::Forbidden(Forbidden::NotAllowed)
        );
        assert_eq!(
            decide(None, "172.19.0.5"),
            Decision::Forbidden(Forbidden::OtherApp)
        );
        assert_eq!(
            decide(None, "172.18.0.99"),
            Decision::Forbidden(Forbidden::NoCredential)
        );
        // A credential, when sent, says who calls, whatever the address.
        assert_eq!(
            decide(Some("tok-batch"), "172.18.0.5"),
            Decision::Forbidden(Forbidden::NotAllowed)
        );
        assert_eq!(
            decide(Some("nope"), "172.18.0.5"),
            Decision::Forbidden(Forbidden::UnknownCredential)
        );
        assert_eq!(
            t.identify(None, "172.18.0.5".parse().ok())
                .map(ToString::to_string),
            Some("shop/web".to_string())
        );
    }

    #[test]
    fn callers_of_another_app_are_refused() {
        let t = RouteTable::from_yaml(
            r#"
routes:
  - host: db.local
    app: shop
    callers: [web]
    services:
      - { name: db, endpoints: ["127.0.0.1:19001"] }
  - host: bare.local
    callers: [web]
    services:
      - { name: bare, endpoints: ["127.0.0.1:19002"] }
caller_tokens: { tok-shop: shop/web, tok-blog: blog/web, tok-bare: web, tok-shop-batch: shop/batch }
"#,
        )
        .unwrap();
        let h = HeaderMap::new();
        let decide = |host: &str, token: &str| {
            let route = t.lookup(Listener::Internal, host, "/").unwrap();
            let mut k = key(route, 0, &h);
            k.caller_token = Some(token);
            pick(&t, &k)
        };
        assert!(matches!(
            decide("db.local", "tok-shop"),
            Decision::Forward(_)
        ));
        // A service of the same name in another app, or in none.
        for token in ["tok-blog", "tok-bare"] {
            assert_eq!(
                decide("db.local", token),
                Decision::Forbidden(Forbidden::OtherApp),
                "{token}"
            );
        }
        assert_eq!(
            decide("db.local", "tok-shop-batch"),
            Decision::Forbidden(Forbidden::NotAllowed)
        );
        // A route without an app takes callers without one, as before.
        assert!(matches!(
            decide("bare.local", "tok-bare"),
            Decision::Forward(_)
        ));
        assert_eq!(
            decide("bare.local", "tok-shop"),
            Decision::Forbidden(Forbidden::OtherApp)
        );
        assert_eq!(t.caller("tok-shop").unwrap().to_string(), "shop/web");
        assert_eq!(t.route(0).unwrap().app().map(|a| &**a), Some("shop"));
    }

    /// A two-route release in lockstep: the frontends `web-v1` (old) and
    /// `web-v2` (new) call `api.local`, where `api-v1` and `api-v2` share
    /// the traffic 50/50; `db.local` has no lanes.
    const LANES: &str = r#"
routes:
  - host: api.local
    app: shop
    callers: [web-v1, web-v2, batch]
    lanes:
      old: { callers: [web-v1], services: [api-v1] }
      new: { callers: [web-v2], services: [api-v2] }
    rules:
      - match: { header: { x-force: old } }
        service: api-v1
    services:
      - { name: api-v1, weight: 50, endpoints: ["127.0.0.1:19001", "127.0.0.1:19011"] }
      - { name: api-v2, weight: 50, endpoints: ["127.0.0.1:19002"] }
  - host: db.local
    app: shop
    sticky: off
    services:
      - { name: db-v1, weight: 50, endpoints: ["127.0.0.1:19003"] }
      - { name: db-v2, weight: 50, endpoints: ["127.0.0.1:19004"] }
preview_token: secret
caller_tokens: { tok-old: shop/web-v1, tok-new: shop/web-v2, tok-batch: shop/batch, tok-blog: blog/web-v2 }
caller_addresses: { "172.18.0.5": shop/web-v2 }
"#;

    /// How many of `seqs` requests from `token` on `host` each service got,
    /// and the ways they went.
    fn spread(
        t: &RouteTable,
        host: &str,
        token: Option<&str>,
        headers: &HeaderMap,
    ) -> (Vec<u32>, std::collections::BTreeSet<String>) {
        let route = t.lookup(Listener::Internal, host, "/").unwrap();
        let mut counts = vec![0u32; t.route(route).unwrap().services().len()];
        let mut vias = std::collections::BTreeSet::new();
        for seq in 0..10_000 {
            let mut k = key(route, seq, headers);
            k.caller_token = token;
            let target = forward(pick(t, &k));
            counts[usize::from(target.service)] += 1;
            vias.insert(format!("{:?}", target.via));
        }
        (counts, vias)
    }

    #[test]
    fn a_caller_in_a_lane_always_reaches_its_lane() {
        let t = RouteTable::from_yaml(LANES).unwrap();
        let h = HeaderMap::new();
        let (new, vias) = spread(&t, "api.local", Some("tok-new"), &h);
        assert_eq!(new, [0, 10_000]);
        assert_eq!(vias.into_iter().collect::<Vec<_>>(), ["Lane"]);
        let (old, _) = spread(&t, "api.local", Some("tok-old"), &h);
        assert_eq!(old, [10_000, 0]);
        // A lane caller known by its address is kept in its lane too.
        let route = t.lookup(Listener::Internal, "api.local", "/").unwrap();
        for seq in 0..100 {
            let mut k = key(route, seq, &h);
            k.caller_address = "172.18.0.5".parse().ok();
            assert_eq!(forward(pick(&t, &k)).service, 1);
        }
        // The lane's pick still gives a position in the chosen service.
        let target = forward(pick(&t, &key_with(route, 7, &h, "tok-new")));
        let range = t.routes()[0].services()[1].positions();
        assert!(range.contains(&target.set_position.unwrap().get()));
    }

    fn key_with<'a>(
        route: RouteIndex,
        seq: u64,
        headers: &'a HeaderMap,
        token: &'a str,
    ) -> RequestKey<'a> {
        RequestKey {
            caller_token: Some(token),
            ..key(route, seq, headers)
        }
    }

    #[test]
    fn callers_in_no_lane_and_routes_without_lanes_get_the_weights() {
        let t = RouteTable::from_yaml(LANES).unwrap();
        let h = HeaderMap::new();
        // A listed caller in no lane.
        let (batch, vias) = spread(&t, "api.local", Some("tok-batch"), &h);
        assert_eq!(batch, [5_000, 5_000]);
        assert_eq!(vias.into_iter().collect::<Vec<_>>(), ["Weighted"]);
        // Lane callers on a route without lanes, and any caller (or none)
        // on that open route.
        for token in [Some("tok-new"), Some("tok-old"), None, Some("nope")] {
            let (db, vias) = spread(&t, "db.local", token, &h);
            assert_eq!(db, [5_000, 5_000], "{token:?}");
            assert_eq!(vias.into_iter().collect::<Vec<_>>(), ["Weighted"]);
        }
    }

    #[test]
    fn preview_and_rules_beat_lanes_and_stickiness_holds_inside_them() {
        let t = RouteTable::from_yaml(LANES).unwrap();
        let route = t.lookup(Listener::Internal, "api.local", "/").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-force", HeaderValue::from_static("old"));
        let target = forward(pick(&t, &key_with(route, 1, &h, "tok-new")));
        assert_eq!((target.service, target.via), (0, Via::Rule));
        let mut h = HeaderMap::new();
        h.insert(PREVIEW_SERVICE_HEADER, HeaderValue::from_static("api-v1"));
        h.insert(PREVIEW_TOKEN_HEADER, HeaderValue::from_static("secret"));
        let target = forward(pick(&t, &key_with(route, 1, &h, "tok-new")));
        assert_eq!((target.service, target.via), (0, Via::Preview));
        // A position in the old service's range is no way out of the new
        // lane; one in the lane is kept.
        for seq in 0..100 {
            let h = with_cookie("turnout_pos=10");
            let target = forward(pick(&t, &key_with(route, seq, &h, "tok-new")));
            assert_eq!((target.service, target.via), (1, Via::Lane));
            let h = with_cookie("turnout_pos=999999");
            let target = forward(pick(&t, &key_with(route, seq, &h, "tok-new")));
            assert_eq!((target.service, target.via), (1, Via::Position));
            let target = forward(pick(&t, &key_with(route, seq, &h, "tok-old")));
            assert_eq!((target.service, target.via), (0, Via::Lane));
        }
    }

    #[test]
    fn pins_hold_inside_a_lane_only() {
        let t = RouteTable::from_yaml(&LANES.replace(
            "  - host: api.local\n    app: shop\n",
            "  - host: api.local\n    app: shop\n    sticky: instance\n",
        ))
        .unwrap();
        let route = t.lookup(Listener::Internal, "api.local", "/").unwrap();
        assert_eq!(t.routes()[0].sticky(), Sticky::Instance);
        let h = with_cookie("turnout_instance=127.0.0.1:19011");
        let target = forward(pick(&t, &key_with(route, 0, &h, "tok-old")));
        assert_eq!(
            (target.service, target.pinned, target.via),
            (0, Some(1), Via::Pin)
        );
        let target = forward(pick(&t, &key_with(route, 0, &h, "tok-new")));
        assert_eq!(
            (target.service, target.pinned, target.via),
            (1, None, Via::Lane)
        );
        assert!(target.set_pin);
    }

    #[test]
    fn a_lane_splits_by_its_own_weights_and_holds_at_weight_0() {
        let file = |weights: [u8; 3]| {
            format!(
                r#"
routes:
  - host: api.local
    sticky: off
    lanes:
      new: {{ callers: [web-v2], services: [api-v2, api-v2b] }}
    services:
      - {{ name: api-v1, weight: {}, endpoints: ["127.0.0.1:19001"] }}
      - {{ name: api-v2, weight: {}, endpoints: ["127.0.0.1:19002"] }}
      - {{ name: api-v2b, weight: {}, endpoints: ["127.0.0.1:19003"] }}
caller_tokens: {{ tok-new: web-v2, tok-other: web-v1, tok-app: shop/web-v2 }}
"#,
                weights[0], weights[1], weights[2]
            )
        };
        let h = HeaderMap::new();
        let t = RouteTable::from_yaml(&file([60, 30, 10])).unwrap();
        assert_eq!(
            spread(&t, "api.local", Some("tok-new"), &h).0,
            [0, 7_500, 2_500]
        );
        assert_eq!(
            spread(&t, "api.local", Some("tok-other"), &h).0,
            [6_000, 3_000, 1_000]
        );
        // A service of the lane's name in an app the route is not of is
        // another caller: it may call this open route, outside the lane.
        assert_eq!(
            spread(&t, "api.local", Some("tok-app"), &h).0,
            [6_000, 3_000, 1_000]
        );
        // A lane service at weight 0 beside one with weight gets nothing.
        let t = RouteTable::from_yaml(&file([90, 10, 0])).unwrap();
        assert_eq!(
            spread(&t, "api.local", Some("tok-new"), &h).0,
            [0, 10_000, 0]
        );
        // Before the lane takes traffic its callers still reach it, evenly;
        // everyone else gets the route's weights.
        let t = RouteTable::from_yaml(&file([100, 0, 0])).unwrap();
        assert_eq!(
            spread(&t, "api.local", Some("tok-new"), &h).0,
            [0, 5_000, 5_000]
        );
        assert_eq!(
            spread(&t, "api.local", Some("tok-other"), &h).0,
            [10_000, 0, 0]
        );
        let lane = &t.routes()[0].lanes()[0];
        assert_eq!(&**lane.name(), "new");
        assert_eq!(lane.services().collect::<Vec<_>>(), [1, 2]);
        assert!(!lane.contains(0) && !lane.contains(64));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
