//! Issue 12 (items 2, 3, 7): the per-version figures the release engine
//! samples every analysis window, preview requests counted apart, and the
//! A/B feed of a route with a goal.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use turnout_proxy::Proxy;
use turnout_routing::{Figures, POSITION_COOKIE, ServiceFigures};

use crate::support::*;

/// The figures of `service` on `app.localhost`.
fn of(proxy: &Proxy, service: &str) -> ServiceFigures {
    proxy
        .figures("")
        .into_iter()
        .find(|f| &*f.route == "app.localhost" && &*f.service == service)
        .unwrap_or_else(|| panic!("no figures of {service}"))
}

fn served(proxy: &Proxy, service: &str) -> Figures {
    of(proxy, service).served
}

#[tokio::test]
async fn figures_count_requests_errors_and_latency_per_service_across_a_weight_change() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let rule =
        "    sticky: off\n    rules: [{ match: { header: { x-variant: b } }, service: v2 }]\n";
    let proxy = proxy(&split_file(&[("v1", 100, &v1), ("v2", 0, &v2)], rule)).await;
    let c = client();
    let public = proxy.addrs().public;
    assert_eq!(served(&proxy, "v1"), Figures::default());
    for _ in 0..20 {
        get(&c, public, "app.localhost", "/", &[]).await;
    }
    for _ in 0..4 {
        let answer = get(&c, public, "app.localhost", "/?status=503", &[]).await;
        assert_eq!(answer.status.as_u16(), 503);
    }
    // One more 5xx through the hyper path (HTTP/1.0 is handed to it).
    let old = raw_until_close(
        public,
        b"GET /?status=500 HTTP/1.0\r\nHost: app.localhost\r\n\r\n",
    )
    .await;
    assert!(old.starts_with("HTTP/1.0 500"), "{old}");
    for _ in 0..10 {
        let answer = get(
            &c,
            public,
            "app.localhost",
            "/?sleep=40",
            &[("x-variant", "b")],
        )
        .await;
        assert_eq!(answer.body, "v2");
    }
    let (one, two) = (served(&proxy, "v1"), served(&proxy, "v2"));
    assert_eq!((one.requests, one.errors), (25, 5));
    assert_eq!((two.requests, two.errors), (10, 0));
    let p50 = two.latency.quantile(0.5).unwrap();
    assert!(
        (Duration::from_millis(40)..Duration::from_millis(400)).contains(&p50),
        "{p50:?}"
    );
    let fast = one.latency.quantile(0.5).unwrap();
    assert!(fast < Duration::from_millis(40), "{fast:?}");

    // A weight change keeps the counts; a window is the difference of two
    // reads.
    proxy.publish(table(&split_file(
        &[("v1", 50, &v1), ("v2", 50, &v2)],
        rule,
    )));
    assert_eq!(served(&proxy, "v1"), one);
    assert_eq!(served(&proxy, "v2"), two);
    for _ in 0..10 {
        get(&c, public, "app.localhost", "/", &[]).await;
    }
    let window = |now: Figures, then: &Figures| now.since(then).requests;
    assert_eq!(window(served(&proxy, "v1"), &one), 5);
    assert_eq!(window(served(&proxy, "v2"), &two), 5);

    // The proxy's own answers for a service count as its 5xx.
    v2.kill().await;
    for _ in 0..3 {
        let answer = get(&c, public, "app.localhost", "/", &[("x-variant", "b")]).await;
        assert!(answer.status.is_server_error(), "{answer:?}");
    }
    let now = served(&proxy, "v2");
    assert_eq!((now.requests, now.errors), (18, 3));

    // A service that leaves the route takes its counts along.
    proxy.publish(table(&split_file(&[("v1", 100, &v1)], "")));
    proxy.publish(table(&split_file(
        &[("v1", 100, &v1), ("v2", 0, &v2)],
        rule,
    )));
    assert_eq!(served(&proxy, "v2"), Figures::default());
    assert_eq!(served(&proxy, "v1").requests, 30);
    proxy.shutdown().await;
    v1.kill().await;
}

#[tokio::test]
async fn preview_requests_are_counted_apart_and_never_as_clients() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let goal = "    ab_goal: { path: /checkout }\n";
    let yaml = split_file(&[("v1", 100, &v1), ("v2", 0, &v2)], goal) + "preview_token: secret\n";
    let proxy = proxy(&yaml).await;
    let c = client();
    let public = proxy.addrs().public;
    let preview = [
        ("x-turnout-service", "v2"),
        ("x-turnout-preview-token", "secret"),
    ];
    for path in ["/", "/checkout", "/checkout"] {
        let answer = get(&c, public, "app.localhost", path, &preview).await;
        assert_eq!(answer.body, "v2");
    }
    let answer = get(&c, public, "app.localhost", "/?status=502", &preview).await;
    assert_eq!(answer.status.as_u16(), 502);
    // A wrong token is no preview: v1 serves it, as any request.
    let wrong = [
        ("x-turnout-service", "v2"),
        ("x-turnout-preview-token", "guess"),
    ];
    for _ in 0..2 {
        let answer = get(&c, public, "app.localhost", "/checkout", &wrong).await;
        assert_eq!(answer.body, "v1");
    }
    let (one, two) = (of(&proxy, "v1"), of(&proxy, "v2"));
    assert_eq!(two.served, Figures::default());
    assert_eq!((two.preview.requests, two.preview.errors), (4, 1));
    assert_eq!((one.served.requests, one.preview.requests), (2, 0));
    let clients = two.conversions.unwrap();
    assert_eq!(
        (clients.clients, clients.converted, clients.unidentified),
        (0, 0, 0)
    );
    let clients = one.conversions.unwrap();
    assert_eq!((clients.clients, clients.converted), (2, 2));
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

#[tokio::test]
async fn a_goal_route_counts_distinct_clients_and_conversions_per_variant() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let goal = "    ab_goal: { path: /checkout, status: 2xx }\n";
    let proxy = proxy(&split_file(&[("v1", 50, &v1), ("v2", 50, &v2)], goal)).await;
    let c = client();
    let public = proxy.addrs().public;
    // Per variant: the positions of its clients, and of those that reach
    // the goal.
    let mut clients: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut converted: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let first = get(&c, public, "app.localhost", "/", &[]).await;
        let variant = first.body.clone();
        let position = first.cookies()[POSITION_COOKIE].clone();
        let cookie = format!("{POSITION_COOKIE}={position}");
        let headers = [("cookie", cookie.as_str())];
        let n = seen.entry(variant.clone()).or_default();
        *n += 1;
        // One client in four converts on v1, one in two on v2; a failed
        // checkout is no conversion, a second one no second conversion.
        // Every client sends five requests, so that the first requests,
        // the only ones the round robin places, alternate.
        let converts = if variant == "v1" {
            *n % 4 == 1
        } else {
            *n % 2 == 1
        };
        let mut paths = vec!["/products", "/checkouts"];
        if converts {
            paths.extend(["/checkout", "/checkout/done"]);
        } else {
            paths.extend(["/checkout?status=500", "/checkout?status=302"]);
        }
        for path in paths {
            let answer = get(&c, public, "app.localhost", path, &headers).await;
            assert_eq!(answer.body, variant, "sticky: {path}");
        }
        clients
            .entry(variant.clone())
            .or_default()
            .insert(position.clone());
        if converts {
            converted.entry(variant).or_default().insert(position);
        }
    }
    // The round robin splits 50/50 exactly.
    assert_eq!((seen["v1"], seen["v2"]), (20, 20));
    for variant in ["v1", "v2"] {
        let counted = of(&proxy, variant).conversions.unwrap();
        assert_eq!(counted.clients, clients[variant].len() as u64, "{variant}");
        assert_eq!(
            counted.converted,
            converted[variant].len() as u64,
            "{variant}"
        );
        assert_eq!((counted.unidentified, counted.dropped), (0, 0), "{variant}");
    }
    // 20 and 20 clients, converting 5 and 10, each with a position of
    // its own (drawn from 500,000: a shared one is a one-in-ten-thousand
    // event).
    assert_eq!((converted["v1"].len(), converted["v2"].len()), (5, 10));
    assert_eq!((clients["v1"].len(), clients["v2"].len()), (20, 20));

    // A weight change keeps the tallies; a reset starts them again.
    proxy.publish(table(&split_file(
        &[("v1", 30, &v1), ("v2", 70, &v2)],
        goal,
    )));
    assert_eq!(
        of(&proxy, "v1").conversions.unwrap().clients,
        clients["v1"].len() as u64
    );
    proxy.reset_conversions("");
    let after = of(&proxy, "v1").conversions.unwrap();
    assert_eq!((after.clients, after.converted), (0, 0));
    // The lowest position of v1 is still v1's at 30 %.
    let position = clients["v1"]
        .iter()
        .map(|p| p.parse::<u32>().unwrap())
        .min();
    let cookie = format!("{POSITION_COOKIE}={}", position.unwrap());
    let answer = get(
        &c,
        public,
        "app.localhost",
        "/checkout",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(answer.body, "v1");
    let after = of(&proxy, "v1").conversions.unwrap();
    assert_eq!((after.clients, after.converted), (1, 1));
    // Request figures are cumulative and not reset: 20 clients x 5
    // requests, and the one above.
    assert_eq!(of(&proxy, "v1").served.requests, 101);

    // A route without a goal reports no conversions.
    proxy.publish(table(&split_file(&[("v1", 50, &v1), ("v2", 50, &v2)], "")));
    assert_eq!(of(&proxy, "v1").conversions, None);
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}
