//! Item 5: round robin, active health checks, passive ejection, retries.

use turnout_proxy::InstanceState;

use crate::support::*;

fn two_instances(a: &Backend, b: &Backend, health: &str) -> String {
    format!(
        "routes:\n  - host: app.localhost\n    sticky: off\n{health}    services:\n      - {{ name: app, endpoints: [\"{}\", \"{}\"] }}\n",
        a.addr, b.addr
    )
}

#[tokio::test]
async fn round_robin_over_instances() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = proxy(&two_instances(&a, &b, "")).await;
    let c = client();
    for _ in 0..10 {
        get(&c, proxy.addrs().public, "app.localhost", "/", &[]).await;
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
    proxy.shutdown().await;
    a.kill().await;
    b.kill().await;
}

/// `active: false` (what the control plane publishes: it probes its own
/// instances): no probe reaches a ready instance, but one that a failed
/// connect ejected is probed until it answers, and readmitted.
#[tokio::test]
async fn a_passive_check_probes_only_ejected_instances() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let health = "    health: { active: false, interval_ms: 100, fall: 1 }\n";
    let proxy = proxy(&two_instances(&a, &b, health)).await;
    let addr = proxy.addrs().public;
    // Ten intervals with no traffic: no probe connects (an active check
    // would have connected ten times).
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        (a.connections(), b.connections()),
        (0, 0),
        "a passive check probed a ready instance"
    );
    let c = client();
    let b_addr = b.addr;
    b.kill().await;
    for i in 0..20 {
        let answer = get(&c, addr, "app.localhost", "/", &[]).await;
        assert_eq!(answer.body, "a", "request {i}");
    }
    assert_eq!(proxy.instance_state(b_addr), Some(InstanceState::Unhealthy));
    let b = Backend::start_on("b", b_addr).await;
    eventually("b readmitted by the check", || {
        proxy.instance_state(b_addr) == Some(InstanceState::Ready)
    })
    .await;
    // Ready again: the probes stop.
    let probed = b.connections();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(b.connections(), probed, "probes went on after readmission");
    proxy.shutdown().await;
    a.kill().await;
    b.kill().await;
}

#[tokio::test]
async fn killed_backend_is_ejected_and_requests_retried() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    // A long interval keeps the active check out of the way: ejection here
    // is the passive kind.
    let health = "    health: { interval_ms: 600000, fall: 3 }\n";
    let proxy = proxy(&two_instances(&a, &b, health)).await;
    let c = client();
    let addr = proxy.addrs().public;
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.status, 200);
    let b_addr = b.addr;
    b.kill().await;
    for i in 0..100 {
        let answer = get(&c, addr, "app.localhost", "/", &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "a"),
            "request {i}"
        );
    }
    assert_eq!(proxy.instance_state(b_addr), Some(InstanceState::Unhealthy));
    // A POST without a body never reached the dead instance either, so it
    // is retried too.
    let post = http::Request::post(format!("http://{addr}/"))
        .header("host", "app.localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, post).await.status, 200);
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("turnout_upstream_errors_total{app=\"\",route=\"app.localhost\",service=\"app\",kind=\"connect\"} 1"),
        "{metrics}"
    );
    // The instance comes back: the health check (fast while unhealthy)
    // readmits it.
    let b = Backend::start_on("b", b_addr).await;
    eventually("b ready again", || {
        proxy.instance_state(b_addr) == Some(InstanceState::Ready)
    })
    .await;
    let mut saw_b = false;
    for _ in 0..4 {
        saw_b |= get(&c, addr, "app.localhost", "/", &[]).await.body == "b";
    }
    assert!(saw_b);
    proxy.shutdown().await;
    a.kill().await;
    b.kill().await;
}

#[tokio::test]
async fn active_checks_find_a_dead_endpoint_and_http_checks_use_the_path() {
    let a = Backend::start("a").await;
    // An address where nothing listens.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let yaml = format!(
        "routes:\n  - host: app.localhost\n    health: {{ path: /health, interval_ms: 600000, fall: 1 }}\n    services:\n      - {{ name: app, endpoints: [\"{}\", \"{dead}\"] }}\n",
        a.addr
    );
    let proxy = proxy(&yaml).await;
    // The first probe runs at once and the next ones every 100 ms, so the
    // dead endpoint is found without waiting for the 10-minute interval.
    eventually("dead endpoint unhealthy", || {
        proxy.instance_state(dead) == Some(InstanceState::Unhealthy)
    })
    .await;
    assert_eq!(proxy.instance_state(a.addr), Some(InstanceState::Ready));
    eventually("health probe reached a", || a.hits() >= 1).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(
            get(&c, proxy.addrs().public, "app.localhost", "/", &[])
                .await
                .body,
            "a"
        );
    }
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(&format!(
            "turnout_instance_ready{{app=\"\",service=\"app\",instance=\"{dead}\"}} 0"
        )),
        "{metrics}"
    );
    proxy.shutdown().await;
    a.kill().await;
}
