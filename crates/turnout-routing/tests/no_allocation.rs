//! `RouteTable::lookup` and `pick` allocate nothing (ARCHITECTURE.md's
//! invariant for turnout-routing): a counting global allocator counts the
//! allocations this thread makes while it routes a realistic mix of
//! requests (several routes and hosts, context paths, rules of every kind,
//! weights, both stickiness cookies, preview, callers, lanes) through a table
//! built beforehand. (The workspace forbids `unsafe`, which a
//! `GlobalAlloc` of our own would need, hence the small dev-dependency.)

use std::net::IpAddr;

use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};
use turnout_routing::{
    Decision, Forbidden, Listener, PREVIEW_SERVICE_HEADER, PREVIEW_TOKEN_HEADER, RequestKey,
    RouteTable, Via, pick,
};

/// The allocations (reallocations included) `f` makes on this thread.
/// Linking `allocation_counter` makes its counting wrapper around `System`
/// the global allocator of this test binary; it counts per thread, so the
/// harness and the other tests of this file do not count.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    (out.expect("measure runs the closure"), info.count_total)
}

/// The table: `REGEX_RULE` stands where the first route's `regex:` rule
/// goes (see `table`).
const FILE: &str = r#"
routes:
  - hosts: [shop.example.com, www.shop.example.com]
    app: shop
    sticky: version
    ab_goal: { path: /checkout, status: 2xx }
    rules:
      - match: { header: { x-beta: "1" } }
        service: web-v2
      - match: { cookie: { group: "prefix:canary" }, query: { lang: "prefix:en" } }
        service: web-v2
REGEX_RULE
    services:
      - { name: web-v1, weight: 90, endpoints: ["127.0.0.1:19001", "127.0.0.1:19011", "127.0.0.1:19021"] }
      - { name: web-v2, weight: 10, endpoints: ["127.0.0.1:19002", "127.0.0.1:19012"] }
  - host: shop.example.com
    path: /api
    app: shop
    sticky: instance
    services:
      - { name: api-v1, weight: 70, endpoints: ["127.0.0.1:19101", "127.0.0.1:19111"] }
      - { name: api-v2, weight: 20, endpoints: ["127.0.0.1:19102"] }
      - { name: api-v3, weight: 10, endpoints: ["127.0.0.1:19103"] }
  - host: shop.example.com
    path: /api/admin
    app: shop
    sticky: off
    services:
      - { name: admin, endpoints: ["127.0.0.1:19201"] }
  - host: blog.example.com
    app: blog
    sticky: off
    services:
      - { name: blog-blue, weight: 50, endpoints: ["127.0.0.1:19301"] }
      - { name: blog-green, weight: 50, endpoints: ["127.0.0.1:19302"] }
  - host: db.local
    app: shop
    callers: [web-v1, web-v2]
    services:
      - { name: db, endpoints: ["127.0.0.1:19401"] }
  - host: cache.local
    app: shop
    services:
      - { name: cache-v1, weight: 0, endpoints: ["127.0.0.1:19501"] }
      - { name: cache-v2, weight: 100, endpoints: ["127.0.0.1:19502"] }
  - host: api.local
    app: shop
    sticky: instance
    lanes:
      old: { callers: [web-v1], services: [api-v1] }
      new: { callers: [web-v2], services: [api-v2, api-v3] }
    services:
      - { name: api-v1, weight: 50, endpoints: ["127.0.0.1:19701", "127.0.0.1:19711"] }
      - { name: api-v2, weight: 40, endpoints: ["127.0.0.1:19702"] }
      - { name: api-v3, weight: 10, endpoints: ["127.0.0.1:19703"] }
  - host: dark.example.com
    services:
      - { name: dark, weight: 0, endpoints: ["127.0.0.1:19601"] }
preview_token: preview-secret
caller_tokens: { tok-web: shop/web-v1, tok-blog: blog/web-v1, tok-batch: shop/batch }
caller_addresses: { "172.18.0.5": shop/web-v2, "172.18.0.6": shop/batch, "fd00::7": blog/web-v1 }
"#;

/// A `regex:` rule of the first route.
const REGEX_RULE: &str = r#"      - match: { header: { user-agent: "regex:^Mozilla/[0-9]+\\.[0-9]+ \\(X11" } }
        service: web-v2"#;

/// The table of `FILE`, with its `regex:` rule or without.
fn table(with_regex: bool) -> RouteTable {
    let rule = if with_regex { REGEX_RULE } else { "" };
    RouteTable::from_yaml(&FILE.replace("REGEX_RULE\n", &format!("{rule}\n"))).unwrap()
}

/// One request as the proxy sees it: listener, host as sent, path, query,
/// headers and proxy credential.
struct Request {
    what: &'static str,
    listener: Listener,
    host: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    headers: HeaderMap,
    caller_token: Option<&'static str>,
    caller_address: Option<IpAddr>,
}

fn request(
    what: &'static str,
    listener: Listener,
    host: &'static str,
    path: &'static str,
) -> Request {
    Request {
        what,
        listener,
        host,
        path,
        query: None,
        headers: HeaderMap::new(),
        caller_token: None,
        caller_address: None,
    }
}

impl Request {
    fn header(mut self, name: &'static str, value: &'static str) -> Request {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    fn cookie(self, value: &'static str) -> Request {
        self.header(COOKIE.as_str(), value)
    }

    fn query(mut self, query: &'static str) -> Request {
        self.query = Some(query);
        self
    }

    fn caller(mut self, token: &'static str) -> Request {
        self.caller_token = Some(token);
        self
    }

    fn from(mut self, address: &'static str) -> Request {
        self.caller_address = Some(address.parse().unwrap());
        self
    }
}

fn requests() -> Vec<Request> {
    use Listener::{Internal, Public};
    vec![
        request("plain", Public, "shop.example.com", "/"),
        request(
            "host with case, port and dot",
            Public,
            "WWW.Shop.Example.COM.:8080",
            "/cart",
        ),
        request(
            "absolute form with userinfo",
            Public,
            "user@shop.example.com:80",
            "/",
        ),
        request("unknown host", Public, "nowhere.example.com", "/"),
        request("garbage host", Public, "a:b", "/"),
        request("internal host on public", Public, "db.local", "/"),
        request(
            "context path",
            Public,
            "shop.example.com",
            "/api/orders?id=1",
        ),
        request(
            "longer context path",
            Public,
            "shop.example.com",
            "/api/admin/users",
        ),
        request("not under the path", Public, "shop.example.com", "/apis"),
        request("header rule", Public, "shop.example.com", "/").header("x-beta", "1"),
        request(
            "header rule, several values",
            Public,
            "shop.example.com",
            "/",
        )
        .header("x-beta", "0")
        .header("x-beta", "1"),
        request("cookie and query rule", Public, "shop.example.com", "/")
            .cookie("session=abc; group=canary-7")
            .query("q=shoes&lang=en-GB"),
        request("query rule half met", Public, "shop.example.com", "/")
            .cookie("group=canary-7")
            .query("lang=de"),
        request("regex rule", Public, "shop.example.com", "/")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        request("regex rule missed", Public, "shop.example.com", "/")
            .header("user-agent", "curl/8.5.0"),
        request("position cookie", Public, "shop.example.com", "/")
            .cookie("a=1; turnout_pos=950000; b=2"),
        request("quoted position cookie", Public, "shop.example.com", "/")
            .cookie("turnout_pos=\"12\""),
        request("bad position cookie", Public, "shop.example.com", "/").cookie("turnout_pos=abc"),
        request("instance pin", Public, "shop.example.com", "/api/x")
            .cookie("turnout_instance=127.0.0.1:19111"),
        request("dead instance pin", Public, "shop.example.com", "/api/x")
            .cookie("turnout_instance=127.0.0.1:1; turnout_pos=999999"),
        request("preview", Public, "shop.example.com", "/")
            .header(PREVIEW_SERVICE_HEADER, "WEB-V2")
            .header(PREVIEW_TOKEN_HEADER, "preview-secret"),
        request("preview, wrong token", Public, "shop.example.com", "/")
            .header(PREVIEW_SERVICE_HEADER, "web-v2")
            .header(PREVIEW_TOKEN_HEADER, "guess"),
        request(
            "sticky off ignores cookies",
            Public,
            "blog.example.com",
            "/post/1",
        )
        .cookie("turnout_pos=1; turnout_instance=127.0.0.1:19301"),
        request("every weight 0", Public, "dark.example.com", "/"),
        request("caller allowed", Internal, "db.local", "/").caller("tok-web"),
        request("caller of another app", Internal, "db.local", "/").caller("tok-blog"),
        request("caller not listed", Internal, "db.local", "/").caller("tok-batch"),
        request("caller unknown", Internal, "db.local", "/").caller("nope"),
        request("no credential", Internal, "db.local", "/"),
        request("caller by address", Internal, "db.local", "/").from("172.18.0.5"),
        request("address not listed", Internal, "db.local", "/").from("172.18.0.6"),
        request("address of another app", Internal, "db.local", "/").from("fd00::7"),
        request("unknown address", Internal, "db.local", "/").from("172.18.0.99"),
        request("credential over address", Internal, "db.local", "/")
            .caller("tok-batch")
            .from("172.18.0.5"),
        request("open internal route", Internal, "cache.local:80", "/"),
        request("public host on internal", Internal, "blog.example.com", "/"),
        request("lane caller", Internal, "api.local", "/").caller("tok-web"),
        request("lane caller by address", Internal, "api.local", "/").from("172.18.0.5"),
        request("lane caller pinned in its lane", Internal, "api.local", "/")
            .caller("tok-web")
            .cookie("turnout_instance=127.0.0.1:19711"),
        request("lane caller pinned outside it", Internal, "api.local", "/")
            .from("172.18.0.5")
            .cookie("turnout_instance=127.0.0.1:19711; turnout_pos=10"),
        request("caller in no lane", Internal, "api.local", "/").caller("tok-batch"),
        request("lane caller of another app", Internal, "api.local", "/").caller("tok-blog"),
        request("unknown caller on a lane route", Internal, "api.local", "/").caller("nope"),
    ]
}

/// Where `request` goes with sequence number `seq`: the lookup and `pick`
/// the proxy does per request (and, on a route with an A/B goal, whether
/// the request is at the goal).
fn route(table: &RouteTable, request: &Request, seq: u64) -> Option<Decision> {
    let route = table.lookup(request.listener, request.host, request.path)?;
    if let Some(goal) = table.route(route).and_then(|r| r.goal()) {
        std::hint::black_box(goal.at(request.path) && goal.status.matches(200));
    }
    Some(pick(
        table,
        &RequestKey {
            route,
            seq,
            headers: &request.headers,
            query: request.query,
            caller_token: request.caller_token,
            caller_address: request.caller_address,
        },
    ))
}

/// Routes every request of the mix for 2,000 sequence numbers (whole
/// cycles of every route's round robin, positions spread over many) and
/// names the requests that allocated.
fn allocating_requests(table: &RouteTable) -> Vec<String> {
    let mut allocating = Vec::new();
    let mut decisions = 0u64;
    for request in &requests() {
        let (routed, n) = allocations(|| {
            let mut routed = 0u64;
            for seq in 0..2_000 {
                routed += u64::from(std::hint::black_box(route(table, request, seq)).is_some());
            }
            routed
        });
        decisions += routed;
        if n > 0 {
            allocating.push(format!("{}: {n} allocations", request.what));
        }
    }
    // The mix reached the decision, not only the lookup.
    assert!(decisions > 20 * 2_000, "{decisions}");
    allocating
}

/// From the first request on a thread, with every kind of condition but
/// `regex:`.
#[test]
fn lookup_and_pick_allocate_nothing() {
    let table = table(false);
    let allocating = allocating_requests(&table);
    assert!(
        allocating.is_empty(),
        "lookup + pick allocated:\n{}",
        allocating.join("\n")
    );
}

/// A `regex:` condition matches with a cache that the regex crate keeps per
/// thread in its own pool, made at the thread's first match against that
/// regex (tens of allocations). Once it is there, nothing allocates.
#[test]
fn with_a_regex_rule_only_a_threads_first_match_allocates() {
    let table = table(true);
    let first = allocating_requests(&table);
    assert!(
        first.len() == 1 && first[0].starts_with("regex rule:"),
        "the first request with a value for the regex rule, and only it, makes the cache: {first:?}"
    );
    let allocating = allocating_requests(&table);
    assert!(
        allocating.is_empty(),
        "lookup + pick allocated after the regex cache was made:\n{}",
        allocating.join("\n")
    );
}

/// The requests above take every branch of the decision, so that the test
/// above covers them (a change to the table that made them all unknown
/// hosts would otherwise pass it).
#[test]
fn the_requests_take_every_branch() {
    let table = table(true);
    let mut vias = std::collections::HashSet::new();
    let mut outcomes = std::collections::HashSet::new();
    for request in &requests() {
        match route(&table, request, 0) {
            None => {
                outcomes.insert("unknown host");
            }
            Some(Decision::Forward(target)) => {
                vias.insert(target.via);
                if target.set_position.is_some() {
                    outcomes.insert("sets a position");
                }
                if target.set_pin {
                    outcomes.insert("sets a pin");
                }
            }
            Some(Decision::Forbidden(why)) => {
                outcomes.insert(match why {
                    Forbidden::NoCredential => "no credential",
                    Forbidden::UnknownCredential => "unknown credential",
                    Forbidden::NotAllowed => "not allowed",
                    Forbidden::OtherApp => "other app",
                });
            }
            Some(Decision::NoService) => {
                outcomes.insert("no service");
            }
            Some(Decision::UnknownRoute) => {
                outcomes.insert("unknown route");
            }
        }
    }
    let all = [
        Via::Preview,
        Via::Rule,
        Via::Pin,
        Via::Position,
        Via::Weighted,
        Via::Lane,
    ];
    for via in all {
        assert!(vias.contains(&via), "no request went by {via:?}");
    }
    for outcome in [
        "unknown host",
        "sets a position",
        "sets a pin",
        "no credential",
        "unknown credential",
        "not allowed",
        "other app",
        "no service",
    ] {
        assert!(outcomes.contains(outcome), "no request ended in {outcome}");
    }
}

/// The counter counts: without this a broken allocator wrapper would let
/// the test above pass whatever `pick` does.
#[test]
fn the_counter_sees_an_allocation() {
    let (v, n) = allocations(|| std::hint::black_box(Vec::<u8>::with_capacity(16)));
    drop(v);
    assert!(n >= 1, "{n}");
    let (s, n) = allocations(|| std::hint::black_box(String::from("shop")).to_uppercase());
    drop(s);
    assert!(n >= 1, "{n}");
}
