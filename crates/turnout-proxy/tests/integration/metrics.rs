//! Item 8: metrics and health on the admin listener.

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
            "turnout_requests_total{{route=\"app.localhost\",service=\"v1\",instance=\"{}\",code=\"2xx\"}} 9",
            v1.addr
        ),
        format!(
            "turnout_requests_total{{route=\"app.localhost\",service=\"v2\",instance=\"{}\",code=\"2xx\"}} 1",
            v2.addr
        ),
        "turnout_request_duration_seconds_count{route=\"app.localhost\",service=\"v1\"} 9"
            .to_owned(),
        "turnout_request_duration_seconds_bucket{".to_owned(),
        "turnout_route_weight{route=\"app.localhost\",service=\"v1\"} 90".to_owned(),
        "turnout_route_weight{route=\"app.localhost\",service=\"v2\"} 10".to_owned(),
        format!(
            "turnout_instance_ready{{service=\"v1\",instance=\"{}\"}} 1",
            v1.addr
        ),
        "turnout_upstream_errors_total{route=\"app.localhost\",service=\"v1\",kind=\"connect\"} 0"
            .to_owned(),
    ] {
        assert!(metrics.contains(&expected), "missing {expected}\n{metrics}");
    }
    // Weights follow a publish.
    proxy.publish(table(&split_file(&[("v1", 50, &v1), ("v2", 100, &v2)], "")));
    let metrics = get(&c, admin, "localhost", "/metrics", &[]).await.body;
    assert!(
        metrics.contains("turnout_route_weight{route=\"app.localhost\",service=\"v2\"} 100"),
        "{metrics}"
    );
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}
