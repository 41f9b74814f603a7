//! Property tests of the split: realised shares, monotonic stickiness,
//! pins honoured while their instance lives, and lanes that keep their
//! callers.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use turnout_routing::{
    Decision, LaneSpec, POSITION_SPACE, RequestKey, RouteFile, RouteSpec, RouteTable, ServiceSpec,
    Sticky, Target, Via, pick,
};

fn file(weights: &[u8], sticky: Sticky, endpoints_per_service: u16) -> RouteFile {
    RouteFile {
        routes: vec![RouteSpec {
            host: Some("app.localhost".into()),
            sticky: Some(sticky),
            services: weights
                .iter()
                .enumerate()
                .map(|(i, w)| ServiceSpec {
                    name: format!("svc-{i}"),
                    weight: Some((*w).into()),
                    endpoints: (0..endpoints_per_service)
                        .map(|e| format!("127.0.0.1:{}", 10_000 + i as u16 * 100 + e))
                        .collect(),
                })
                .collect(),
            ..RouteSpec::default()
        }],
        ..RouteFile::default()
    }
}

fn table(weights: &[u8]) -> RouteTable {
    RouteTable::build(&file(weights, Sticky::Version, 1)).unwrap()
}

fn forward(decision: Decision) -> Target {
    match decision {
        Decision::Forward(target) => target,
        other => panic!("expected a target, got {other:?}"),
    }
}

fn cookie_headers(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, HeaderValue::from_str(value).unwrap());
    headers
}

/// The service that a client at `position` is sent to.
fn owner(table: &RouteTable, position: u32) -> Option<u16> {
    let headers = cookie_headers(&format!("turnout_pos={position}"));
    match pick(table, &key(&headers, 0)) {
        Decision::Forward(t) if t.via == Via::Position => Some(t.service),
        _ => None,
    }
}

fn key(headers: &HeaderMap, seq: u64) -> RequestKey<'_> {
    RequestKey {
        route: 0,
        seq,
        headers,
        query: None,
        caller_token: None,
        caller_address: None,
    }
}

fn weights() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..=100, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Cookie-less requests realise the configured shares: exactly over
    /// whole cycles, and within one request per service over any window.
    #[test]
    fn realised_shares(weights in weights(), start in 0u64..1_000_000, len in 1u64..2_000) {
        let table = table(&weights);
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let headers = HeaderMap::new();
        let mut counts = vec![0u64; weights.len()];
        for seq in start..start + len {
            match pick(&table, &key(&headers, seq)) {
                Decision::Forward(t) => counts[t.service as usize] += 1,
                Decision::NoService => prop_assert_eq!(total, 0),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        if total > 0 {
            for (i, w) in weights.iter().enumerate() {
                let ideal = len as f64 * f64::from(*w) / total as f64;
                let deviation = (counts[i] as f64 - ideal).abs();
                prop_assert!(deviation <= weights.len() as f64,
                    "service {} got {} of {}, ideal {:.1}", i, counts[i], len, ideal);
                if *w == 0 { prop_assert_eq!(counts[i], 0); }
            }
        }
    }

    /// A cookie-less client is given a position inside the range of the
    /// service it was sent to, so its next request goes to the same place.
    #[test]
    fn assigned_position_sticks(weights in weights(), seq in any::<u64>()) {
        let table = table(&weights);
        let headers = HeaderMap::new();
        if let Decision::Forward(first) = pick(&table, &key(&headers, seq)) {
            let position = first.set_position.expect("version routes set a position");
            prop_assert_eq!(owner(&table, position.get()), Some(first.service));
        }
    }

    /// Positions split in exact shares: each service owns share × 10⁶ of them.
    #[test]
    fn position_ranges_match_shares(weights in weights()) {
        let table = table(&weights);
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let route = &table.routes()[0];
        let mut next = 0;
        for (i, service) in route.services().iter().enumerate() {
            let range = service.positions();
            prop_assert_eq!(range.start, next);
            next = range.end;
            if total > 0 {
                let ideal = f64::from(POSITION_SPACE) * f64::from(weights[i]) / total as f64;
                prop_assert!((f64::from(range.end - range.start) - ideal).abs() <= 1.0);
            }
        }
        prop_assert_eq!(next, if total > 0 { POSITION_SPACE } else { 0 });
    }

    /// Changing one service's weight moves clients only towards it (rise) or
    /// away from it (fall); nobody leaves a service whose weight rose.
    #[test]
    fn monotonic_under_one_weight_change(
        weights in weights(),
        which in any::<prop::sample::Index>(),
        new_weight in 0u8..=100,
        positions in prop::collection::vec(0u32..POSITION_SPACE, 1..200),
    ) {
        let k = which.index(weights.len());
        let mut changed = weights.clone();
        changed[k] = new_weight;
        let before = table(&weights);
        let after = table(&changed);
        for p in positions {
            let (Some(old), Some(new)) = (owner(&before, p), owner(&after, p)) else { continue };
            let k = k as u16;
            if new_weight > weights[k as usize] {
                if old == k { prop_assert_eq!(new, k, "left a service whose weight rose"); }
                // Every move is towards k in stacking order.
                if old < k { prop_assert!(old <= new && new <= k); }
                if old > k { prop_assert!(k <= new && new <= old); }
            } else if new_weight < weights[k as usize] {
                if new == k { prop_assert_eq!(old, k, "joined a service whose weight fell"); }
            } else {
                prop_assert_eq!(old, new);
            }
        }
    }

    /// With two services (blue-green) every change is monotonic: clients
    /// only ever move to the service whose share rose.
    #[test]
    fn two_services_fully_monotonic(
        a in 0u8..=100, b in 0u8..=100, a2 in 0u8..=100, b2 in 0u8..=100,
        positions in prop::collection::vec(0u32..POSITION_SPACE, 1..200),
    ) {
        let before = table(&[a, b]);
        let after = table(&[a2, b2]);
        let share = |x: u8, y: u8| if x as u32 + y as u32 == 0 { None } else { Some(f64::from(x) / (f64::from(x) + f64::from(y))) };
        let (Some(sa), Some(sa2)) = (share(a, b), share(a2, b2)) else { return Ok(()) };
        for p in positions {
            let (Some(old), Some(new)) = (owner(&before, p), owner(&after, p)) else { continue };
            if old != new {
                // A move to service 0 needs its share to have risen, and back.
                if new == 0 { prop_assert!(sa2 > sa); } else { prop_assert!(sa2 < sa); }
            }
        }
    }

    /// A pin to a live instance is honoured whatever the weights, even at
    /// weight 0; once the instance is gone the client is re-picked silently.
    #[test]
    fn pins_honoured_while_alive(
        weights in weights(),
        service in any::<prop::sample::Index>(),
        endpoint in 0u16..3,
        seq in any::<u64>(),
    ) {
        let s = service.index(weights.len());
        let pinned = format!("127.0.0.1:{}", 10_000 + s as u16 * 100 + endpoint);
        let headers = cookie_headers(&format!("turnout_instance={pinned}; turnout_pos=5"));
        let alive = RouteTable::build(&file(&weights, Sticky::Instance, 3)).unwrap();
        let target = forward(pick(&alive, &key(&headers, seq)));
        prop_assert_eq!(target.via, Via::Pin);
        prop_assert_eq!(target.service as usize, s);
        let instance = &alive.routes()[0].services()[s].endpoints()[target.pinned.unwrap() as usize];
        prop_assert_eq!(&*instance.id, pinned.as_str());
        prop_assert!(!target.set_pin);

        // The instance goes away: the next decision ignores the dead pin.
        let mut without = file(&weights, Sticky::Instance, 3);
        without.routes[0].services[s].endpoints.retain(|e| *e != pinned);
        let gone = RouteTable::build(&without).unwrap();
        match pick(&gone, &key(&headers, seq)) {
            Decision::Forward(t) => {
                prop_assert_ne!(t.via, Via::Pin);
                prop_assert!(t.set_pin);
            }
            Decision::NoService => prop_assert!(weights.iter().all(|w| *w == 0)),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

/// `file` as an internal route `api.local` whose services in `lane` (bits
/// of the service indices) form lane `new` of caller `web-v2`; `web-v1`
/// (token `tok-old`) is in no lane.
fn lane_table(weights: &[u8], lane: u64, sticky: Sticky) -> RouteTable {
    let mut file = file(weights, sticky, 1);
    let route = &mut file.routes[0];
    route.host = Some("api.local".into());
    let services = (0..weights.len())
        .filter(|i| lane & (1 << i) != 0)
        .map(|i| format!("svc-{i}"))
        .collect();
    route.lanes.insert(
        "new".into(),
        LaneSpec {
            callers: vec!["web-v2".into()],
            services,
        },
    );
    file.caller_tokens.insert("tok-new".into(), "web-v2".into());
    file.caller_tokens.insert("tok-old".into(), "web-v1".into());
    RouteTable::build(&file).unwrap()
}

fn lane_key<'a>(headers: &'a HeaderMap, seq: u64, token: &'a str) -> RequestKey<'a> {
    RequestKey {
        caller_token: Some(token),
        ..key(headers, seq)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A caller in a lane reaches only the lane's services, whatever the
    /// weights (all 0 included), its cookies and the sequence number, and
    /// over one whole cycle of the lane they split in the proportion of
    /// their weights (evenly when they all weigh 0); a caller in no lane
    /// is decided exactly as on the same route without lanes.
    #[test]
    fn lanes_keep_their_callers_and_split_by_their_weights(
        weights in weights(),
        lane in any::<u64>(),
        start in any::<u32>(),
        position in 0u32..POSITION_SPACE,
        sticky in prop::sample::select(vec![Sticky::Off, Sticky::Version, Sticky::Instance]),
    ) {
        let n = weights.len();
        let lane = match lane & ((1 << n) - 1) {
            0 => 1,
            bits => bits,
        };
        let with = lane_table(&weights, lane, sticky);
        let without = RouteTable::build(&file(&weights, sticky, 1)).unwrap();
        let members: Vec<usize> = (0..n).filter(|i| lane & (1 << i) != 0).collect();
        let mut lane_weights: Vec<u64> = members.iter().map(|&i| u64::from(weights[i])).collect();
        if lane_weights.iter().all(|&w| w == 0) {
            lane_weights.fill(1);
        }
        let divisor = lane_weights.iter().copied().fold(0, gcd);
        let cycle: u64 = lane_weights.iter().map(|w| w / divisor).sum();
        let none = HeaderMap::new();
        let cookie = cookie_headers(&format!("turnout_pos={position}"));
        let mut counts = vec![0u64; n];
        for seq in u64::from(start)..u64::from(start) + cycle {
            let target = forward(pick(&with, &lane_key(&none, seq, "tok-new")));
            prop_assert_eq!(target.via, Via::Lane);
            counts[usize::from(target.service)] += 1;
            let sticky_target = forward(pick(&with, &lane_key(&cookie, seq, "tok-new")));
            prop_assert!(members.contains(&usize::from(sticky_target.service)));
            for headers in [&none, &cookie] {
                prop_assert_eq!(
                    pick(&with, &lane_key(headers, seq, "tok-old")),
                    pick(&without, &key(headers, seq))
                );
            }
        }
        for (k, &i) in members.iter().enumerate() {
            prop_assert_eq!(counts[i], lane_weights[k] / divisor, "service {} of {:?}", i, counts);
        }
        prop_assert_eq!(counts.iter().sum::<u64>(), cycle);
    }
}

/// 10,000 distinct cookie clients at 90/10 land within ±2 points.
#[test]
fn cookie_clients_split_accurately() {
    let table = table(&[90, 10]);
    let mut heavy = 0;
    // A fixed pseudo-random sequence of positions (a linear congruential
    // generator), so the test is deterministic.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..10_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let p = ((x >> 33) % u64::from(POSITION_SPACE)) as u32;
        if owner(&table, p) == Some(0) {
            heavy += 1;
        }
    }
    let share = f64::from(heavy) / 100.0;
    assert!((share - 90.0).abs() <= 2.0, "heavy share {share}%");
}
