//! Must hold (issues 4 and 9): 0 failed requests from a bounded loopback
//! load through a release, 50 weight flips, confirm, a second release, a
//! rollback and a third release rolled back — with the traffic seen to
//! move to the new version and back. Every request is also a call through
//! the internal route servicea.local (serviceB calls serviceA); before the
//! confirm and the last rollback, the leaving frontend's instances are
//! slowed down ahead of their inner call, so calls from draining instances
//! are made after their service has left the app, and must not be refused.

mod support;

use std::time::Duration;

use support::load::{Bounds, Load, TRANSITION};
use support::{Server, TempDir, template_body};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);
/// Bounds of the load: whichever comes first.
const LOAD: Bounds = Bounds {
    clients: 4,
    requests_per_client: 20_000,
    time: Duration::from_secs(120),
};

#[test]
fn no_request_fails_through_releases_flips_confirm_and_rollback() {
    let dir = TempDir::new("zero");
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    let load = Load::start(server.public, "serviceb.localhost", LOAD);
    let ok = |r: support::Response| {
        assert!(r.status < 300, "{}", r.body);
        r
    };
    let state = |s: &serde_json::Value| s["release"]["state"].as_str().unwrap_or("").to_string();
    let slow_down = |service: &str| support::load::slow_down(&server, APP, service, 300);
    let settle = || std::thread::sleep(Duration::from_millis(150));

    settle();
    // Phase 1: frontend release, then 50 weight flips.
    load.phase(1);
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&template_body("app-frontend-v2.yaml", &[])),
    ));
    server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    let path = format!("/v1/apps/{APP}/routes/serviceb/weights");
    for i in 0..50 {
        let body = if i % 2 == 0 {
            r#"{"weights":{"serviceB-v2":100,"serviceB-v1":0}}"#
        } else {
            r#"{"weights":{"serviceB-v1":100,"serviceB-v2":0}}"#
        };
        ok(server.api("PUT", &path, Some(body)));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Phase 2: switch to v2 and confirm (v1 drained and removed).
    // Requests that start while a change is being made are counted in a
    // transition phase (99) and not checked against either side.
    load.phase(TRANSITION);
    slow_down("serviceB-v1");
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/routes/serviceb/switch"),
        None,
    ));
    load.phase(2);
    // Requests that reached serviceB-v1 before the switch still sleep and
    // make their call to servicea.local after the confirm.
    std::thread::sleep(Duration::from_millis(50));
    ok(server.api("POST", &format!("/v1/apps/{APP}/confirm"), None));
    settle();
    // Phase 3: backend release, traffic to serviceA-v2.
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&template_body("app-backend-v2.yaml", &[])),
    ));
    server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    load.phase(TRANSITION);
    ok(server.api(
        "PUT",
        &format!("/v1/apps/{APP}/routes/servicea.local/weights"),
        Some(r#"{"weights":{"serviceA-v2":100,"serviceA-v1":0}}"#),
    ));
    load.phase(3);
    settle();
    // Phase 4: rollback.
    load.phase(TRANSITION);
    ok(server.api("POST", &format!("/v1/apps/{APP}/rollback"), None));
    load.phase(4);
    settle();
    // Phase 5: a third frontend, serviceB-v3, takes all the traffic and is
    // rolled back while its requests are in flight.
    let v3 = std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
        .unwrap()
        .replace("serviceB-v2", "serviceB-v3")
        .replace("'Welcome to the '", "'Hi '");
    let body = serde_json::json!({ "template": v3, "source_name": "app-frontend-v3.yaml" });
    load.phase(TRANSITION);
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&body.to_string()),
    ));
    server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    ok(server.api(
        "PUT",
        &path,
        Some(r#"{"weights":{"serviceB-v3":100,"serviceB-v2":0}}"#),
    ));
    load.phase(5);
    settle();
    slow_down("serviceB-v3");
    settle();
    load.phase(TRANSITION);
    ok(server.api("POST", &format!("/v1/apps/{APP}/rollback"), None));
    load.phase(6);
    // The rolled-back instances finish their slow requests, inner calls
    // included, while draining.
    std::thread::sleep(Duration::from_millis(500));
    let outcome = load.finish();
    let (failures, seen, total) = (&outcome.failures, &outcome.seen, outcome.total);
    eprintln!("requests: {total}, failed: {}", failures.len());
    eprintln!("seen: {seen:?}");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        total > 200,
        "the load was too small to mean anything: {total}"
    );
    let in_phase = |p: usize| outcome.in_phase(p);
    // Traffic moved to the new frontend and, in the backend release, to the
    // new backend; after the rollback, back to the old backend.
    assert!(in_phase(1).contains(&"Hello world!"), "{seen:?}");
    assert!(in_phase(1).contains(&"Welcome to the world!"), "{seen:?}");
    assert_eq!(in_phase(2), ["Welcome to the world!"], "{seen:?}");
    assert_eq!(
        in_phase(3),
        ["Welcome to the AliyunContainerService!"],
        "{seen:?}"
    );
    assert_eq!(in_phase(4), ["Welcome to the world!"], "{seen:?}");
    assert_eq!(in_phase(5), ["Hi world!"], "{seen:?}");
    assert_eq!(in_phase(6), ["Welcome to the world!"], "{seen:?}");
}
