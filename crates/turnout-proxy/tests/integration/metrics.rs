//! Item 8: metrics and health on the admin listener.

use turnout_proxy::RELEASE_STATES;

use crate::support::*;

#[tokio::test]
async fn metrics_and_healthz() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let proxy = proxy(&split_file(&[("v1", 90, &v1), ("v2", 10, &v2)], "")).await;
    let c = client();
    for _ in 0..10 {
        get(&c, proxy.addrs().public, "app.localhost", "/", &[]).await;
    }
    get(&c, proxy.addrs().public, "nope.localhost", "/", &[]).await;
    let admin = proxy.addrs().admin.unwrap();
    let health = get(&c, admin, "localhost", "/healthz", &[]).await;
    assert_eq!(
        (health.status.as_u16(), health.body.as_str()),
        (200, "ok\n")
    );
    let metrics = get(&c, admin, "localhost", "/metrics", &[]).await.body;
    for expected in [
        format!(
            "turnout_requests_total{{app=\"\",route=\"app.localhost\",service=\"v1\",instance=\"{}\",code=\"2xx\"}} 9",
            v1.addr
        ),
        format!(
            "turnout_requests_total{{app=\"\",route=\"app.localhost\",service=\"v2\",instance=\"{}\",code=\"2xx\"}} 1",
            v2.addr
        ),
        "turnout_request_duration_seconds_count{app=\"\",route=\"app.localhost\",service=\"v1\"} 9"
            .to_owned(),
        "turnout_request_duration_seconds_bucket{".to_owned(),
        "turnout_route_weight{app=\"\",route=\"app.localhost\",service=\"v1\"} 90".to_owned(),
        "turnout_route_weight{app=\"\",route=\"app.localhost\",service=\"v2\"} 10".to_owned(),
        format!(
            "turnout_instance_ready{{app=\"\",service=\"v1\",instance=\"{}\"}} 1",
            v1.addr
        ),
        "turnout_upstream_errors_total{app=\"\",route=\"app.localhost\",service=\"v1\",kind=\"connect\"} 0"
            .to_owned(),
    ] {
        assert!(metrics.contains(&expected), "missing {expected}\n{metrics}");
    }
    // Weights follow a publish.
    proxy.publish(table(&split_file(&[("v1", 50, &v1), ("v2", 100, &v2)], "")));
    let metrics = get(&c, admin, "localhost", "/metrics", &[]).await.body;
    assert!(
        metrics
            .contains("turnout_route_weight{app=\"\",route=\"app.localhost\",service=\"v2\"} 100"),
        "{metrics}"
    );
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

#[tokio::test]
async fn two_apps_with_a_service_of_the_same_name_never_share_a_series() {
    let shop = Backend::start("shop-web").await;
    let blog = Backend::start("blog-web").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - host: shop.localhost
    app: shop
    services: [{{ name: web, endpoints: ["{shop}"] }}]
  - host: blog.localhost
    app: blog
    services: [{{ name: web, endpoints: ["{blog}"] }}]
"#,
        shop = shop.addr,
        blog = blog.addr
    ))
    .await;
    let c = client();
    for _ in 0..3 {
        get(&c, proxy.addrs().public, "shop.localhost", "/", &[]).await;
    }
    get(&c, proxy.addrs().public, "blog.localhost", "/", &[]).await;
    let admin = proxy.addrs().admin.unwrap();
    let metrics = get(&c, admin, "localhost", "/metrics", &[]).await.body;
    for (app, backend, count) in [("shop", &shop, 3), ("blog", &blog, 1)] {
        let route = format!("{app}.localhost");
        let instance = backend.addr;
        for expected in [
            format!(
                "turnout_requests_total{{app=\"{app}\",route=\"{route}\",service=\"web\",instance=\"{instance}\",code=\"2xx\"}} {count}"
            ),
            format!(
                "turnout_request_duration_seconds_count{{app=\"{app}\",route=\"{route}\",service=\"web\"}} {count}"
            ),
            format!(
                "turnout_upstream_errors_total{{app=\"{app}\",route=\"{route}\",service=\"web\",kind=\"connect\"}} 0"
            ),
            format!("turnout_route_weight{{app=\"{app}\",route=\"{route}\",service=\"web\"}} 100"),
            format!(
                "turnout_instance_ready{{app=\"{app}\",service=\"web\",instance=\"{instance}\"}} 1"
            ),
        ] {
            assert!(metrics.contains(&expected), "missing {expected}\n{metrics}");
        }
    }
    proxy.shutdown().await;
    shop.kill().await;
    blog.kill().await;
}

#[tokio::test]
async fn release_state_gauge() {
    let proxy = proxy("routes: []\n").await;
    let publisher = proxy.publisher();
    let c = client();
    let admin = proxy.addrs().admin.unwrap();
    let metrics = || async { get(&c, admin, "localhost", "/metrics", &[]).await.body };
    let series = |app: &str, state: &str, value: u8| {
        format!("turnout_release_state{{app=\"{app}\",state=\"{state}\"}} {value}\n")
    };
    assert!(!metrics().await.contains("turnout_release_state{"));

    proxy.set_release_state("shop", "deploying");
    let text = metrics().await;
    assert!(text.contains("# HELP turnout_release_state "), "{text}");
    assert!(text.contains(&series("shop", "deploying", 1)), "{text}");
    for state in &RELEASE_STATES[1..] {
        assert!(text.contains(&series("shop", state, 0)), "{text}");
    }

    // The control plane's handle moves it on; another app is separate.
    publisher.set_release_state("shop", "pending-confirmation");
    publisher.set_release_state("blog", "confirmed");
    let text = metrics().await;
    for expected in [
        series("shop", "deploying", 0),
        series("shop", "pending-confirmation", 1),
        series("shop", "confirmed", 0),
        series("blog", "confirmed", 1),
        series("blog", "rolled-back", 0),
    ] {
        assert!(text.contains(&expected), "missing {expected}{text}");
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("turnout_release_state{app=\"shop\"") && l.ends_with(" 1"))
            .count(),
        1,
        "{text}"
    );

    // A state outside the five (a canary's) joins the app's series.
    publisher.set_release_state("shop", "progressing");
    let text = metrics().await;
    assert!(text.contains(&series("shop", "progressing", 1)), "{text}");
    assert!(
        text.contains(&series("shop", "pending-confirmation", 0)),
        "{text}"
    );

    publisher.clear_release_state("shop");
    let text = metrics().await;
    assert!(!text.contains("app=\"shop\""), "{text}");
    assert!(text.contains(&series("blog", "confirmed", 1)), "{text}");
    proxy.shutdown().await;
}
