//! A fuzz harness on stable Rust: proptest feeds arbitrary and
//! route-file-shaped input to the parser, the validator, the host and rule
//! matchers and the decision. The property is that nothing panics and that
//! every rejection is an error value.

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use turnout_routing::{
    Decision, Listener, RequestKey, RouteFile, RouteTable, ValueMatcher, normalize_host, pick,
};

/// Pieces a route file is made of, so generated files reach deep into the
/// schema instead of failing at the first character.
fn yaml_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("routes:\n".to_owned()),
        Just("  - host: a.localhost\n".to_owned()),
        Just("  - hosts: [a.local, B.localhost.]\n".to_owned()),
        Just("    path: /ctx\n".to_owned()),
        Just("    sticky: instance\n".to_owned()),
        Just("    internal: true\n".to_owned()),
        Just("    callers: [web]\n".to_owned()),
        Just("    app: shop\n".to_owned()),
        Just("    app: a/b\n".to_owned()),
        Just("    services:\n".to_owned()),
        Just("      - name: s1\n".to_owned()),
        Just("        weight: 50\n".to_owned()),
        Just("        weight: -1\n".to_owned()),
        Just("        weight: 1.5\n".to_owned()),
        Just("        endpoints: [\"127.0.0.1:9\"]\n".to_owned()),
        Just(
            "    rules:\n      - match: { header: { x-a: \"regex:^a\" } }\n        service: s1\n"
                .to_owned()
        ),
        Just("    lanes: { new: { callers: [web], services: [s1] } }\n".to_owned()),
        Just("    lanes: { old: { callers: [web, x], services: [s1, s2] }, new: { callers: [web] } }\n".to_owned()),
        Just("    health: { path: /h, interval_ms: 100 }\n".to_owned()),
        Just("drain_timeout_ms: 10\n".to_owned()),
        Just("preview_token: t\n".to_owned()),
        Just("caller_tokens: { t: web }\n".to_owned()),
        Just("caller_tokens: { t: shop/web, u: /web, v: a/b/c }\n".to_owned()),
        Just("caller_addresses: { \"10.0.0.1\": shop/web, \"::1\": a/b/c }\n".to_owned()),
        Just("caller_addresses: { not-an-ip: web }\n".to_owned()),
        "[ -~]{0,20}\n",
        Just("&a x\n".to_owned()),
        Just("<<: *a\n".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn parser_never_panics_on_any_text(text in "\\PC{0,300}") {
        let _ = RouteTable::from_yaml(&text);
    }

    #[test]
    fn parser_never_panics_on_route_file_shapes(parts in prop::collection::vec(yaml_fragment(), 0..25)) {
        let text: String = parts.concat();
        match RouteFile::from_yaml(&text) {
            Ok(file) => {
                // A valid file builds; an invalid one lists its problems.
                match (file.validate(), RouteTable::build(&file)) {
                    (Ok(()), Ok(_)) => {}
                    (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => prop_assert!(false, "validate {:?} but build {:?}", a, b.map(|_| ())),
                }
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn matchers_never_panic(pattern in "(prefix:|regex:)?\\PC{0,30}", value in "\\PC{0,40}") {
        if let Ok(matcher) = ValueMatcher::parse(&pattern) {
            let _ = matcher.matches(&value);
        }
    }

    #[test]
    fn host_normalisation_is_idempotent(raw in "\\PC{0,80}") {
        let mut buf = [0u8; 255];
        if let Some(host) = normalize_host(&raw, &mut buf) {
            let once = host.to_owned();
            let mut again = [0u8; 255];
            // A normalised host has no port and no trailing dot left to strip,
            // except when the host itself ended in two dots.
            if !once.ends_with('.') && !once.contains(':') {
                prop_assert_eq!(normalize_host(&once, &mut again), Some(once.as_str()));
            }
        }
    }

    /// The three spellings of a host — a template's route host
    /// (`turnout_spec::route::canonical_host`), a route file's and a
    /// request's (`normalize_host`) — always meet: a route written in any
    /// case, with or without a trailing dot, is found for a request naming
    /// its host in any case, with or without a trailing dot and a port.
    #[test]
    fn route_and_request_hosts_meet(
        labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4),
        file_upper in any::<u64>(),
        request_upper in any::<u64>(),
        file_dot in any::<bool>(),
        request_dot in any::<bool>(),
        port in proptest::option::of(1u16..),
    ) {
        let host = format!("{}.localhost", labels.join("."));
        let case = |mask: u64| -> String {
            host.chars()
                .enumerate()
                .map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect()
        };
        let template_host = turnout_spec::route::canonical_host(&case(file_upper));
        prop_assert_eq!(&template_host, &host);
        let written = format!("{}{}", case(file_upper), if file_dot { "." } else { "" });
        let table = RouteTable::from_yaml(&format!(
            "routes:\n  - host: \"{written}\"\n    services: [{{ name: s, endpoints: [\"127.0.0.1:1\"] }}]\n"
        ))
        .unwrap();
        let mut asked = format!("{}{}", case(request_upper), if request_dot { "." } else { "" });
        if let Some(port) = port {
            asked = format!("{asked}:{port}");
        }
        let mut buf = [0u8; 255];
        let normalized = normalize_host(&asked, &mut buf).unwrap();
        prop_assert!(table.lookup(Listener::Public, normalized, "/").is_some(), "{} vs {}", written, asked);
        prop_assert_eq!(&**table.routes()[0].id(), host.as_str());
    }

    #[test]
    fn lookup_and_pick_never_panic(
        host in "\\PC{0,40}",
        path in "/\\PC{0,30}",
        cookie in "[ -~]{0,60}",
        header in "[ -~]{0,20}",
        query in proptest::option::of("[ -~]{0,30}"),
        seq in any::<u64>(),
        internal in any::<bool>(),
        known in 0usize..4,
    ) {
        let table = RouteTable::from_yaml(TABLE).unwrap();
        let listener = if internal { Listener::Internal } else { Listener::Public };
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.insert(http::header::COOKIE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&header) {
            headers.insert(HeaderName::from_static("x-beta"), v.clone());
            headers.insert(HeaderName::from_static("x-turnout-service"), v);
        }
        // An arbitrary credential, or one of the table's (with and without
        // an app).
        let token = ["", "tok-shop", "tok-blog", "tok-bare"][known];
        let token = if token.is_empty() { header.as_str() } else { token };
        let _ = table.serves_host(listener, &host);
        for route in [table.lookup(listener, &host, &path), Some(0), Some(1), Some(2), Some(7)].into_iter().flatten() {
            let decision = pick(&table, &RequestKey {
                route,
                seq,
                headers: &headers,
                query: query.as_deref(),
                caller_token: Some(token),
                caller_address: None,
            });
            // The app route takes its own app's caller and nobody else.
            if route == 2 {
                prop_assert_eq!(
                    matches!(decision, Decision::Forward(_)),
                    token == "tok-shop",
                    "{:?} with {:?}", decision, token
                );
            }
        }
    }
}

const TABLE: &str = r#"
routes:
  - host: app.localhost
    sticky: instance
    rules:
      - match: { header: { x-beta: "regex:^[0-9]+$" }, cookie: { grp: "prefix:b" }, query: { q: "1" } }
        service: v2
    services:
      - { name: v1, weight: 3, endpoints: ["127.0.0.1:1"] }
      - { name: v2, weight: 0, endpoints: ["127.0.0.1:2"] }
  - host: s.local
    callers: []
    services:
      - { name: s, endpoints: ["127.0.0.1:3"] }
  - host: db.local
    app: shop
    callers: [web]
    services:
      - { name: db, endpoints: ["127.0.0.1:4"] }
preview_token: tok
caller_tokens: { tok-shop: shop/web, tok-blog: blog/web, tok-bare: web }
"#;
