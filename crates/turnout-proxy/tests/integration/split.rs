//! Items 3 and 4: split accuracy, stickiness, rules and preview.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::*;

/// Sends `count` requests from `workers` concurrent tasks; `headers_for(i)`
/// gives request i's cookie header. Returns the backend that answered each.
async fn spread(
    addr: SocketAddr,
    count: usize,
    cookie_for: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
) -> Vec<String> {
    let cookie_for = Arc::new(cookie_for);
    let workers = 16;
    let mut handles = Vec::new();
    for w in 0..workers {
        let cookie_for = cookie_for.clone();
        handles.push(tokio::spawn(async move {
            let c = client();
            let mut out = Vec::new();
            for i in (w..count).step_by(workers) {
                let cookie = cookie_for(i);
                let headers: Vec<(&str, &str)> = cookie
                    .as_deref()
                    .map(|c| ("cookie", c))
                    .into_iter()
                    .collect();
                let answer = get(&c, addr, "app.localhost", "/", &headers).await;
                assert_eq!(answer.status, 200);
                out.push(answer.body);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

fn share(answers: &[String], name: &str) -> f64 {
    answers.iter().filter(|a| *a == name).count() as f64 * 100.0 / answers.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_less_split_is_exact() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let proxy = proxy(&split_file(&[("v1", 90, &v1), ("v2", 10, &v2)], "")).await;
    let answers = spread(proxy.addrs().public, 10_000, |_| None).await;
    let heavy = share(&answers, "v1");
    assert!((heavy - 90.0).abs() <= 0.5, "v1 got {heavy}%");
    assert_eq!(answers.len(), 10_000);
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_clients_split_within_two_points_and_stick() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let proxy = proxy(&split_file(&[("v1", 90, &v1), ("v2", 10, &v2)], "")).await;
    // 10,000 distinct clients, each holding its own position (a fixed
    // pseudo-random sequence, so the test is deterministic).
    let answers = spread(proxy.addrs().public, 10_000, |i| {
        let x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
        Some(format!("turnout_pos={}", x % 1_000_000))
    })
    .await;
    let heavy = share(&answers, "v1");
    assert!(
        (heavy - 90.0).abs() <= 2.0,
        "v1 got {heavy}% of cookie clients"
    );

    // A new client gets a position cookie and keeps its version with it.
    let c = client();
    let addr = proxy.addrs().public;
    for _ in 0..50 {
        let first = get(&c, addr, "app.localhost", "/", &[]).await;
        let cookies = first.cookies();
        let position = cookies.get("turnout_pos").expect("position cookie set");
        let cookie = format!("turnout_pos={position}");
        for _ in 0..3 {
            let again = get(&c, addr, "app.localhost", "/", &[("cookie", &cookie)]).await;
            assert_eq!(again.body, first.body);
            assert!(
                again.cookies().is_empty(),
                "no new cookie for a sticky client"
            );
        }
    }
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

#[tokio::test]
async fn weight_change_moves_clients_only_to_the_rising_service() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let proxy = proxy(&split_file(&[("v1", 100, &v1), ("v2", 0, &v2)], "")).await;
    let c = client();
    let addr = proxy.addrs().public;
    let positions: Vec<u32> = (0..200).map(|i| i * 4_999).collect();
    let ask = |p: u32| {
        let c = c.clone();
        async move {
            get(
                &c,
                addr,
                "app.localhost",
                "/",
                &[("cookie", &format!("turnout_pos={p}"))],
            )
            .await
            .body
        }
    };
    let mut before = Vec::new();
    for p in &positions {
        before.push(ask(*p).await);
    }
    assert!(before.iter().all(|b| b == "v1"));
    proxy.publish(table(&split_file(&[("v1", 100, &v1), ("v2", 30, &v2)], "")));
    let mut middle = Vec::new();
    for p in &positions {
        middle.push(ask(*p).await);
    }
    proxy.publish(table(&split_file(
        &[("v1", 100, &v1), ("v2", 100, &v2)],
        "",
    )));
    for (i, p) in positions.iter().enumerate() {
        let after = ask(*p).await;
        // Nobody who reached v2 (whose weight rose) goes back.
        if middle[i] == "v2" {
            assert_eq!(after, "v2", "position {p} left the rising service");
        }
    }
    assert!(middle.iter().any(|m| m == "v2"));
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

#[tokio::test]
async fn instance_pins_survive_weight_zero_and_repick_when_gone() {
    let a1 = Backend::start("a1").await;
    let a2 = Backend::start("a2").await;
    let b = Backend::start("b").await;
    let file = |wa: u8, a_endpoints: &[&Backend]| {
        let endpoints: Vec<String> = a_endpoints
            .iter()
            .map(|e| format!("\"{}\"", e.addr))
            .collect();
        format!(
            "routes:\n  - host: app.localhost\n    sticky: instance\n    services:\n      - {{ name: a, weight: {wa}, endpoints: [{}] }}\n      - {{ name: b, weight: 100, endpoints: [\"{}\"] }}\n",
            endpoints.join(", "),
            b.addr
        )
    };
    let proxy = proxy(&file(100, &[&a1, &a2])).await;
    let c = client();
    let addr = proxy.addrs().public;
    // Find a client pinned to an instance of service a.
    let (pin, pinned_body) = loop {
        let first = get(&c, addr, "app.localhost", "/", &[]).await;
        if first.body.starts_with('a') {
            let cookies = first.cookies();
            break (cookies["turnout_instance"].clone(), first.body);
        }
    };
    let cookie = format!("turnout_instance={pin}");
    proxy.publish(table(&file(0, &[&a1, &a2])));
    for _ in 0..20 {
        let again = get(&c, addr, "app.localhost", "/", &[("cookie", &cookie)]).await;
        assert_eq!(again.body, pinned_body, "pin not honoured at weight 0");
    }
    // The pinned instance goes away: the client is re-picked silently,
    // inside service a when it still has weight.
    let survivor = if pinned_body == "a1" { &a2 } else { &a1 };
    proxy.publish(table(&file(100, &[survivor])));
    let moved = get(&c, addr, "app.localhost", "/", &[("cookie", &cookie)]).await;
    assert_eq!(moved.status, 200);
    assert_ne!(moved.body, pinned_body);
    assert!(
        moved.cookies().contains_key("turnout_instance"),
        "a new pin is given"
    );
    proxy.shutdown().await;
    for backend in [a1, a2, b] {
        backend.kill().await;
    }
}

#[tokio::test]
async fn rules_then_preview_override() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let rules = "    rules:\n      - match: { header: { x-beta: \"1\" } }\n        service: v2\n      - match: { cookie: { group: \"prefix:beta\" } }\n        service: v2\n      - match: { query: { lang: \"regex:^en(-[A-Z]+)?$\" } }\n        service: v2\n";
    let mut yaml = split_file(&[("v1", 100, &v1), ("v2", 0, &v2)], rules);
    yaml.push_str("preview_token: sesame\n");
    let proxy = proxy(&yaml).await;
    let c = client();
    let addr = proxy.addrs().public;
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "v1");
    assert_eq!(
        get(&c, addr, "app.localhost", "/", &[("x-beta", "1")])
            .await
            .body,
        "v2"
    );
    assert_eq!(
        get(&c, addr, "app.localhost", "/", &[("x-beta", "2")])
            .await
            .body,
        "v1"
    );
    assert_eq!(
        get(
            &c,
            addr,
            "app.localhost",
            "/",
            &[("cookie", "group=beta-7")]
        )
        .await
        .body,
        "v2"
    );
    assert_eq!(
        get(&c, addr, "app.localhost", "/?lang=en-GB", &[])
            .await
            .body,
        "v2"
    );
    assert_eq!(
        get(&c, addr, "app.localhost", "/?lang=de", &[]).await.body,
        "v1"
    );
    // Preview beats rules, and needs the right token.
    let preview = [
        ("x-turnout-service", "v1"),
        ("x-turnout-preview-token", "sesame"),
        ("x-beta", "1"),
    ];
    assert_eq!(
        get(&c, addr, "app.localhost", "/", &preview).await.body,
        "v1"
    );
    let wrong = [
        ("x-turnout-service", "v2"),
        ("x-turnout-preview-token", "nope"),
    ];
    assert_eq!(get(&c, addr, "app.localhost", "/", &wrong).await.body, "v1");
    let right = [
        ("x-turnout-service", "v2"),
        ("x-turnout-preview-token", "sesame"),
    ];
    assert_eq!(get(&c, addr, "app.localhost", "/", &right).await.body, "v2");
    // The token does not travel to the upstream.
    let echoed = get(&c, addr, "app.localhost", "/headers", &right)
        .await
        .body;
    assert!(!echoed.contains("sesame"), "{echoed}");
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}
