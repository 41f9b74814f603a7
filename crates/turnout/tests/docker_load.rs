//! Must hold on containers (issue 11 item 7): 0 failed requests from a
//! bounded loopback load through blue-green releases of the hello
//! example on the docker runtime — a frontend release weighted 50/50,
//! switched and confirmed, then a backend release switched and rolled
//! back — with the answers seen to move to the new version and back.
//!
//! The load is on the public route serviceb, whose containers answer with
//! what `http://servicea.local/` answers them: every request is also a
//! call from inside a container to the router's gateway listener (port
//! 80 on the app network's gateway, the caller known by its container's
//! address) and on to a serviceA container. Before the confirm, the
//! leaving frontend's containers are slowed down ahead of that inner
//! call, so containers that are draining make their `.local` calls after
//! their service has left the app, and must still be answered; before the
//! rollback the leaving backend's containers are slowed down, so requests
//! are in flight on them when they leave.

#[macro_use]
mod support;

use std::time::Duration;

use support::TempDir;
use support::docker::{
    Cleanup, WAIT, cli, ensure_image, hello_templates, unique_app, up, wait_containers,
};
use support::load::{Bounds, Load, TRANSITION, slow_down};

/// Bounds of the load: whichever comes first.
const LOAD: Bounds = Bounds {
    clients: 4,
    requests_per_client: 10_000,
    time: Duration::from_secs(240),
};
/// Requests each checked phase gets before the test moves on.
const PER_PHASE: usize = 200;

const HELLO: &str = "Hello world!";
const WELCOME: &str = "Welcome to the world!";
const WELCOME_V2: &str = "Welcome to the AliyunContainerService!";

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn no_request_fails_through_releases_confirm_and_rollback_on_containers() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-load");
    let data = dir.path().join("data");
    let app = unique_app("dkload");
    let _cleanup = Cleanup::of(&data);
    let [v1, frontend, backend] = hello_templates(dir.path());
    let server = up(&app, &v1, &data);
    let cli = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--app", &app]);
        cli(&server, &args)
    };
    let pending = || server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");

    let load = Load::start(server.public, "serviceb.localhost", LOAD);
    load.wait_for(PER_PHASE, WAIT);

    // Frontend release (confirmed): serviceB-v2 beside serviceB-v1 at
    // weight 0, then 50/50, then switched.
    load.phase(TRANSITION);
    cli(&["release", frontend.to_str().unwrap()]);
    pending();
    load.phase(1);
    load.wait_for(PER_PHASE, WAIT);
    load.phase(TRANSITION);
    cli(&[
        "weights",
        "serviceb.localhost",
        "serviceB-v1=50",
        "serviceB-v2=50",
    ]);
    load.phase(2);
    load.wait_for(PER_PHASE, WAIT);
    load.phase(TRANSITION);
    slow_down(&server, &app, "serviceB-v1", 300);
    cli(&["switch", "serviceb.localhost"]);
    load.phase(3);
    // Requests that reached serviceB-v1 before the switch still sleep and
    // call servicea.local after the confirm, from draining containers.
    std::thread::sleep(Duration::from_millis(50));
    cli(&["confirm"]);
    load.wait_for(PER_PHASE, WAIT);
    wait_containers(&app, "serviceB-v1's containers removed", |c| {
        c.len() == 5 && !c.values().any(|(s, _)| s == "serviceB-v1")
    });
    load.wait_for(PER_PHASE, WAIT);

    // Backend release (rolled back): serviceA-v2 shares servicea.local at
    // weight 0, then takes all of it, then the release is rolled back.
    load.phase(TRANSITION);
    cli(&["release", backend.to_str().unwrap()]);
    pending();
    load.phase(4);
    load.wait_for(PER_PHASE, WAIT);
    load.phase(TRANSITION);
    cli(&["switch", "servicea.local"]);
    load.phase(5);
    load.wait_for(PER_PHASE, WAIT);
    load.phase(TRANSITION);
    slow_down(&server, &app, "serviceA-v2", 300);
    cli(&["rollback"]);
    load.phase(6);
    load.wait_for(PER_PHASE, WAIT);
    wait_containers(&app, "serviceA-v2's containers removed", |c| {
        c.len() == 5 && !c.values().any(|(s, _)| s == "serviceA-v2")
    });
    load.wait_for(PER_PHASE, WAIT);
    let released = state(&server.status(&app));

    let outcome = load.finish();
    let seen = &outcome.seen;
    let failures = &outcome.failures;
    eprintln!(
        "requests: {}, failed: {}; seen: {seen:?}",
        outcome.total,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} failed: {:?}",
        failures.len(),
        outcome.total,
        &failures[..failures.len().min(10)]
    );
    assert!(
        !outcome.cut_short,
        "the load's bounds ended it before the test did: {seen:?}"
    );
    for phase in 0..=6 {
        assert!(
            outcome.count(phase) >= PER_PHASE / 2,
            "phase {phase} had too little load to mean anything: {seen:?}"
        );
    }
    // The answers moved to the new frontend and stayed there through its
    // confirm; to the new backend, and back to the old one on rollback.
    assert_eq!(outcome.in_phase(0), [HELLO], "{seen:?}");
    assert_eq!(outcome.in_phase(1), [HELLO], "{seen:?}");
    let mut split = outcome.in_phase(2);
    split.sort_unstable();
    assert_eq!(split, [HELLO, WELCOME], "{seen:?}");
    assert_eq!(outcome.in_phase(3), [WELCOME], "{seen:?}");
    assert_eq!(outcome.in_phase(4), [WELCOME], "{seen:?}");
    assert_eq!(outcome.in_phase(5), [WELCOME_V2], "{seen:?}");
    assert_eq!(outcome.in_phase(6), [WELCOME], "{seen:?}");
    assert_eq!(released, "rolled-back", "the release's state at the end");
}
