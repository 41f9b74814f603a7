//! Must hold (issues 4 and 9): 0 failed requests from a bounded loopback
//! load through a release, 50 weight flips, confirm, a second release, a
//! rollback and a third release rolled back — with the traffic seen to
//! move to the new version and back. Every request is also a call through
//! the internal route servicea.local (serviceB calls serviceA); before the
//! confirm and the last rollback, the leaving frontend's instances are
//! slowed down ahead of their inner call, so calls from draining instances
//! are made after their service has left the app, and must not be refused.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Server, TempDir, template_body};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);
/// Bounds of the load: whichever comes first.
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);
const CLIENTS: usize = 4;
const TRANSITION: usize = 99;

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// Body → count, per phase.
    seen: Mutex<BTreeMap<(usize, String), usize>>,
    failures: Mutex<Vec<String>>,
}

#[test]
fn no_request_fails_through_releases_flips_confirm_and_rollback() {
    let dir = TempDir::new("zero");
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let public = server.public;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, phase, tally) = (stop.clone(), phase.clone(), tally.clone());
            std::thread::spawn(move || {
                for _ in 0..MAX_REQUESTS_PER_CLIENT {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > MAX_LOAD_TIME {
                        break;
                    }
                    let p = phase.load(Ordering::Relaxed);
                    let r = support::request(
                        public,
                        "GET",
                        "/",
                        &[("Host", "serviceb.localhost")],
                        None,
                    );
                    // A request that straddles a phase change is counted in
                    // the transition: its inner call may see either side.
                    let p = if phase.load(Ordering::Relaxed) == p {
                        p
                    } else {
                        TRANSITION
                    };
                    if r.status == 200 {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        *tally.seen.lock().unwrap().entry((p, r.body)).or_insert(0) += 1;
                    } else {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        tally
                            .failures
                            .lock()
                            .unwrap()
                            .push(format!("phase {p}: {} {}", r.status, r.body));
                    }
                }
            })
        })
        .collect();
    let ok = |r: support::Response| {
        assert!(r.status < 300, "{}", r.body);
        r
    };
    let state = |s: &serde_json::Value| s["release"]["state"].as_str().unwrap_or("").to_string();
    // Slows every instance of `service` down before its inner call, so
    // requests are in flight there when the service leaves the app.
    let slow_down = |service: &str| {
        let status = server.status(APP);
        let endpoints: Vec<std::net::SocketAddr> = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["name"] == service)
            .flat_map(|s| s["instances"].as_array().unwrap().clone())
            .filter_map(|i| i["endpoint"].as_str().and_then(|e| e.parse().ok()))
            .collect();
        assert!(!endpoints.is_empty(), "no endpoints of {service}: {status}");
        for endpoint in endpoints {
            let r = support::request(
                endpoint,
                "POST",
                "/control",
                &[],
                Some(r#"{"latency_ms":300}"#),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    let settle = || std::thread::sleep(Duration::from_millis(150));

    settle();
    // Phase 1: frontend release, then 50 weight flips.
    phase.store(1, Ordering::Relaxed);
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
    phase.store(TRANSITION, Ordering::Relaxed);
    slow_down("serviceB-v1");
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/routes/serviceb/switch"),
        None,
    ));
    phase.store(2, Ordering::Relaxed);
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
    phase.store(TRANSITION, Ordering::Relaxed);
    ok(server.api(
        "PUT",
        &format!("/v1/apps/{APP}/routes/servicea.local/weights"),
        Some(r#"{"weights":{"serviceA-v2":100,"serviceA-v1":0}}"#),
    ));
    phase.store(3, Ordering::Relaxed);
    settle();
    // Phase 4: rollback.
    phase.store(TRANSITION, Ordering::Relaxed);
    ok(server.api("POST", &format!("/v1/apps/{APP}/rollback"), None));
    phase.store(4, Ordering::Relaxed);
    settle();
    // Phase 5: a third frontend, serviceB-v3, takes all the traffic and is
    // rolled back while its requests are in flight.
    let v3 = std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
        .unwrap()
        .replace("serviceB-v2", "serviceB-v3")
        .replace("'Welcome to the '", "'Hi '");
    let body = serde_json::json!({ "template": v3, "source_name": "app-frontend-v3.yaml" });
    phase.store(TRANSITION, Ordering::Relaxed);
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
    phase.store(5, Ordering::Relaxed);
    settle();
    slow_down("serviceB-v3");
    settle();
    phase.store(TRANSITION, Ordering::Relaxed);
    ok(server.api("POST", &format!("/v1/apps/{APP}/rollback"), None));
    phase.store(6, Ordering::Relaxed);
    // The rolled-back instances finish their slow requests, inner calls
    // included, while draining.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = tally.failures.lock().unwrap();
    let seen = tally.seen.lock().unwrap();
    let total = tally.ok.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed);
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
    let in_phase = |p: usize| -> Vec<&str> {
        seen.keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, b)| b.as_str())
            .collect()
    };
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
