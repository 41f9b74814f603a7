//! Progressive releases end to end (DESIGN §8): a gray release of the
//! seed demo through `turnout up`, its steps moved on by their pause and
//! by the CLI's promote, pause, resume and abort, the split measured at
//! the router, and what this server does not judge yet refused.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Server, TempDir, template_body};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);

fn up(dir: &TempDir) -> Server {
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    server
}

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

/// Starts a gray release of the frontend v2 with `plan` (a release block).
fn release(server: &Server, plan: serde_json::Value) -> support::Response {
    let mut body: serde_json::Value =
        serde_json::from_str(&template_body("app-frontend-v2.yaml", &[])).unwrap();
    body["plan"] = plan;
    server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&body.to_string()),
    )
}

/// `turnout ARGS` finding the server through its data dir.
fn cli(dir: &TempDir, args: &[&str]) -> std::process::Output {
    support::cli_in(dir.path(), args)
}

/// Answers of `n` requests to serviceb, counted by body.
fn answers(server: &Server, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = server.get("serviceb.localhost");
        assert_eq!(r.status, 200, "{r:?}");
        *counts.entry(r.body).or_insert(0) += 1;
    }
    counts
}

fn front_weights(s: &serde_json::Value) -> Vec<(String, u64)> {
    let route = s["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "serviceb.localhost")
        .unwrap();
    route["weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn a_gray_release_steps_by_its_pause_and_is_steered_from_the_cli() {
    let dir = TempDir::new("gray-e2e");
    let mut server = up(&dir);
    let r = release(
        &server,
        serde_json::json!({"strategy": "gray", "steps": [50, 100], "pause": "until-promoted"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // The first step once serviceB-v2 is ready: half the traffic, waiting
    // for the operator.
    let s = server.wait_status(APP, WAIT, |s| state(s) == "paused");
    assert_eq!(
        s["release"]["step"],
        serde_json::json!({"index": 0, "count": 2, "share": 50})
    );
    assert_eq!(s["release"]["paused"], "until-promoted");
    assert_eq!(
        front_weights(&s),
        [
            ("serviceB-v1".to_string(), 50),
            ("serviceB-v2".to_string(), 50)
        ]
    );
    // Clients keep their version (the position cookie is not sent here,
    // so each request is weighted anew): both versions answer.
    let seen = answers(&server, 200);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n >= 50), "{seen:?}");

    // resume is refused while the plan waits for promote, with a hint.
    let o = cli(&dir, &["resume", "--app", APP]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("until-promoted"), "{err}");
    // The human status names the step.
    let o = cli(&dir, &["status", "--app", APP]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("step 1/2 at 50%"), "{out}");
    assert!(out.contains("paused: until-promoted"), "{out}");

    // promote: the last step, all traffic to the new version.
    let o = cli(&dir, &["promote", "--app", APP]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = server.status(APP);
    assert_eq!(s["release"]["step"]["share"], 100);
    let seen = answers(&server, 50);
    assert_eq!(seen.len(), 1, "{seen:?}");
    // promote after the last step: pending-confirmation; then confirm.
    let o = cli(&dir, &["promote", "--app", APP]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(state(&server.status(APP)), "pending-confirmation");
    let o = cli(&dir, &["confirm", "--app", APP]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    server.wait_status(APP, WAIT, |s| state(s) == "confirmed");

    // The history has each verb.
    let r = server.api("GET", &format!("/v1/events?app={APP}"), None);
    let kinds: Vec<String> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for kind in ["release-step", "release-promoted", "release-confirmed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
    }
    server.stop();
}

#[test]
fn a_timed_gray_release_moves_on_by_itself_and_abort_rolls_back() {
    let dir = TempDir::new("gray-timed");
    let mut server = up(&dir);
    let r = release(
        &server,
        serde_json::json!({"strategy": "gray", "steps": [20, 100], "pause": "1s"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    server.wait_status(APP, WAIT, |s| s["release"]["step"]["share"] == 20);
    // pause holds the step past its pause time.
    let o = cli(&dir, &["pause", "--app", APP]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(2_500));
    let s = server.status(APP);
    assert_eq!(
        (state(&s), s["release"]["step"]["share"].as_u64()),
        ("paused".into(), Some(20))
    );
    assert_eq!(s["release"]["paused"], "manual");
    // resume, and the next step comes by itself after the pause.
    let o = cli(&dir, &["resume", "--app", APP]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    server.wait_status(APP, WAIT, |s| s["release"]["step"]["share"] == 100);
    // abort rolls back with its reason; the old version serves again.
    let o = cli(
        &dir,
        &["abort", "--app", APP, "--reason", "checkout errors"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = server.wait_status(APP, WAIT, |s| state(s) == "rolled-back");
    assert_eq!(s["release"]["reason"], "aborted: checkout errors");
    let seen = answers(&server, 20);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["Hello world!"],
        "{seen:?}"
    );
    // Nothing to abort or promote any more.
    let o = cli(&dir, &["promote", "--app", APP]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no release in progress"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    server.stop();
}

#[test]
fn plans_the_server_cannot_run_are_refused_and_change_nothing() {
    let dir = TempDir::new("gray-refused");
    let mut server = up(&dir);
    for (plan, says) in [
        (
            serde_json::json!({"strategy": "gray", "analysis": {"prometheus": {"url": "https://127.0.0.1:9", "query": "up", "max": 1}}}),
            "analysis.prometheus.url",
        ),
        // An A/B rule whose service is on no route the test shares
        // (serviceA-v1 is unchanged, on its own route).
        (
            serde_json::json!({"strategy": "ab-test", "ab": {"rules": [{"match": {"header": {"x-variant": "a"}}, "service": "serviceA-v1"}]}}),
            "on no route the test shares",
        ),
    ] {
        let r = release(&server, plan);
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.contains(says), "{}", r.body);
    }
    // The API's plan lays the release out against the running template,
    // refuses what a release would, and starts nothing.
    let mut body: serde_json::Value =
        serde_json::from_str(&template_body("app-frontend-v2.yaml", &[])).unwrap();
    body["plan"] = serde_json::json!({"strategy": "gray", "steps": [10, 50, 100], "pause": "2s"});
    let path = format!("/v1/apps/{APP}/plan");
    let r = server.api("POST", &path, Some(&body.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let schedule = r.json();
    let steps = schedule["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{schedule:#}");
    assert_eq!(steps[0]["routes"][0]["route"], "serviceb.localhost");
    assert_eq!(steps[0]["routes"][0]["new"], 10);
    assert_eq!(steps[0]["routes"][0]["old"], 90);
    assert_eq!(schedule["routes_from_diff"], true);
    assert_eq!(schedule["min_promote_ms"], 6000);
    body["plan"] = serde_json::json!({"strategy": "ab-test", "ab": {"rules": [{"match": {"header": {"x-variant": "a"}}, "service": "serviceA-v1"}]}});
    let r = server.api("POST", &path, Some(&body.to_string()));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("on no route the test shares"), "{}", r.body);
    let s = server.status(APP);
    assert_eq!(s["release"], serde_json::Value::Null);
    assert_eq!(s["template_version"], 1);
    // pause on a blue-green release: refused, naming why.
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&template_body("app-frontend-v2.yaml", &[])),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = server.api("POST", &format!("/v1/apps/{APP}/pause"), None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("blue-green"), "{}", r.body);
    server.stop();
}

#[test]
fn during_a_gray_release_each_frontend_calls_its_own_backend() {
    let dir = TempDir::new("gray-lanes");
    let server = Server::start(&["up", "examples/hello-gray/app.yaml"], dir.path(), &[]);
    server.wait_line("is up", WAIT);
    let app = "hello-gray";
    let v1 = std::fs::read_to_string(support::root().join("examples/hello-gray/app.yaml")).unwrap();
    // Both services get a new version; the new frontend says `Hi `.
    let v2 = v1
        .replace("-v1:", "-v2:")
        .replace("'world!'", "'world v2!'")
        .replace("--prefix 'Hello '", "--prefix 'Hi '");
    let body = serde_json::json!({
        "template": v2,
        "source_name": "app-v2.yaml",
        "plan": {"strategy": "gray", "steps": [50, 100], "pause": "until-promoted"},
    });
    let r = server.api(
        "POST",
        &format!("/v1/apps/{app}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    server.wait_status(app, WAIT, |s| state(s) == "paused");
    // Half the traffic to each frontend, and each frontend's calls stay in
    // its lane: never an old frontend with the new backend or the reverse.
    let seen = answers(&server, 200);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["Hello world!", "Hi world v2!"],
        "{seen:?}"
    );
    assert!(seen.values().all(|&n| n >= 50), "{seen:?}");
    let r = server.api("POST", &format!("/v1/apps/{app}/abort"), Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut server = server;
    server.stop();
}

#[test]
fn a_gray_release_whose_new_version_fails_is_rolled_back_by_its_analysis() {
    let dir = TempDir::new("gray-analysis");
    let mut server = up(&dir);
    let v2 = std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
        .unwrap()
        .replace(
            "--prefix 'Welcome to the '",
            "--prefix 'Welcome to the ' --fail-rate 0.5",
        );
    let body = serde_json::json!({
        "template": v2,
        "source_name": "v2.yaml",
        "plan": {"strategy": "gray", "steps": [50, 100], "pause": "1s",
                 "analysis": {"window": "1s", "min_requests": 20, "max_error_rate": "5%"}},
    });
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    server.wait_status(APP, WAIT, |s| s["release"]["step"]["share"] == 50);
    // Traffic, bounded in count and time, until the analysis judges.
    let deadline = std::time::Instant::now() + WAIT;
    let mut sent = 0;
    let s = loop {
        for _ in 0..20 {
            let _ = server.get("serviceb.localhost");
            sent += 1;
        }
        let s = server.status(APP);
        if state(&s) == "rolled-back" || std::time::Instant::now() > deadline || sent > 20_000 {
            break s;
        }
    };
    assert_eq!(state(&s), "rolled-back", "{s:#}");
    let reason = s["release"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failed: analysis: max_error_rate: "),
        "{reason}"
    );
    // The check that failed is in the status, with both versions' figures.
    let checks = s["release"]["analysis"].as_array().unwrap();
    let last = checks.last().unwrap();
    assert_eq!(last["verdict"], "fail", "{checks:?}");
    assert!(last["new"]["requests"].as_u64().unwrap() >= 20, "{last}");
    assert!(last["new"]["error_rate"].as_f64().unwrap() > 0.05, "{last}");
    assert!(
        last["baseline"]["error_rate"].as_f64().unwrap() < 0.05,
        "{last}"
    );
    // The old version serves everything again.
    let seen = answers(&server, 20);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["Hello world!"],
        "{seen:?}"
    );
    server.stop();
}

/// Starts a release of the frontend v2 with extra demo-app flags on
/// serviceB-v2 and `plan`; returns once its first step runs.
fn release_v2(server: &Server, flags: &str, plan: &serde_json::Value) {
    let v2 = std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
        .unwrap()
        .replace(
            "--prefix 'Welcome to the '",
            &format!("--prefix 'Welcome to the ' {flags}"),
        );
    let body = serde_json::json!({"template": v2, "source_name": "v2.yaml", "plan": plan});
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    server.wait_status(APP, WAIT, |s| s["release"]["step"].is_object());
}

/// Requests to serviceb until `done` holds for the status (checked every
/// 10 requests), bounded in count and time: (status codes by answer
/// kind, the last status).
fn load_until(
    server: &Server,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (BTreeMap<String, usize>, serde_json::Value) {
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = BTreeMap::new();
    for round in 0.. {
        for _ in 0..10 {
            let r = server.get("serviceb.localhost");
            let kind = if r.status != 200 {
                format!("status {}", r.status)
            } else if r.body.starts_with("Welcome") {
                "new".to_string()
            } else {
                "old".to_string()
            };
            *seen.entry(kind).or_insert(0) += 1;
        }
        let s = server.status(APP);
        if done(&s) || std::time::Instant::now() > deadline || round > 2_000 {
            return (seen, s);
        }
    }
    unreachable!()
}

#[test]
fn a_healthy_gray_release_walks_every_step_under_load_without_a_failed_request() {
    let dir = TempDir::new("gray-healthy");
    let mut server = up(&dir);
    release_v2(
        &server,
        "",
        &serde_json::json!({"strategy": "gray", "steps": [20, 60, 100], "pause": "1s",
            "analysis": {"window": "1s", "min_requests": 5, "max_error_rate": "1%",
                         "max_p99_increase": "500ms"}}),
    );
    let (seen, s) = load_until(&server, |s| state(s) != "progressing");
    assert_eq!(state(&s), "pending-confirmation", "{seen:?} {s:#}");
    assert!(
        seen.keys().all(|k| k == "new" || k == "old"),
        "failed requests: {seen:?}"
    );
    let checks = s["release"]["analysis"].as_array().unwrap();
    let passes = checks.iter().filter(|c| c["verdict"] == "pass").count();
    assert!(passes >= 3, "a passing check per step: {checks:?}");
    assert_eq!(s["release"]["step"]["share"], 100);
    println!("healthy gray: {seen:?}, {} checks", checks.len());
    server.stop();
}

#[test]
fn a_canary_with_half_its_requests_failing_is_rolled_back_within_its_share() {
    let dir = TempDir::new("canary-errors");
    let mut server = up(&dir);
    let started = std::time::Instant::now();
    release_v2(
        &server,
        "--fail-rate 0.5",
        &serde_json::json!({"strategy": "canary", "canary": {"share": 20}, "pause": "30s",
            "analysis": {"window": "1s", "min_requests": 5, "max_error_rate": "5%"}}),
    );
    let (seen, s) = load_until(&server, |s| state(s) == "rolled-back");
    assert_eq!(state(&s), "rolled-back", "{seen:?} {s:#}");
    let reason = s["release"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failed: analysis: max_error_rate: "),
        "{reason}"
    );
    // Rolled back at its first failing check.
    let checks = s["release"]["analysis"].as_array().unwrap();
    let fails = checks.iter().filter(|c| c["verdict"] == "fail").count();
    assert_eq!(fails, 1, "{checks:?}");
    // What the canary served stays near its share of the traffic.
    let total: usize = seen.values().sum();
    let canary = total - seen.get("old").copied().unwrap_or(0);
    let served = canary as f64 / total as f64;
    println!(
        "canary served {canary} of {total} requests ({:.1} %, share 20 %) in {:?}",
        served * 100.0,
        started.elapsed()
    );
    assert!(
        served < 0.35,
        "the canary served {served:.2} of the traffic: {seen:?}"
    );
    server.stop();
}

#[test]
fn a_slower_canary_is_caught_by_max_p99_increase() {
    let dir = TempDir::new("canary-slow");
    let mut server = up(&dir);
    release_v2(
        &server,
        "--latency-ms 200",
        &serde_json::json!({"strategy": "canary", "canary": {"share": 50}, "pause": "30s",
            "analysis": {"window": "1s", "min_requests": 3, "max_p99_increase": "100ms"}}),
    );
    let (seen, s) = load_until(&server, |s| state(s) == "rolled-back");
    assert_eq!(state(&s), "rolled-back", "{seen:?} {s:#}");
    let reason = s["release"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failed: analysis: max_p99_increase: "),
        "{reason}"
    );
    server.stop();
}

#[test]
fn a_release_with_too_little_traffic_pauses_as_inconclusive() {
    let dir = TempDir::new("gray-quiet");
    let mut server = up(&dir);
    release_v2(
        &server,
        "",
        &serde_json::json!({"strategy": "gray", "steps": [50, 100], "pause": "1s",
            "analysis": {"window": "1s", "min_requests": 1000, "max_error_rate": "1%"}}),
    );
    let s = server.wait_status(APP, WAIT, |s| state(s) == "paused");
    assert_eq!(s["release"]["paused"], "inconclusive", "{s:#}");
    assert_eq!(
        s["release"]["step"]["share"], 50,
        "it never promotes by itself"
    );
    let checks = s["release"]["analysis"].as_array().unwrap();
    assert_eq!(
        checks.last().unwrap()["verdict"],
        "inconclusive",
        "{checks:?}"
    );
    // Nor does it roll back: still paused a few windows later.
    std::thread::sleep(Duration::from_millis(2_500));
    let s = server.status(APP);
    assert_eq!(
        (state(&s), s["release"]["step"]["share"].as_u64()),
        ("paused".into(), Some(50))
    );
    server.stop();
}
