//! The control plane end to end: `turnout up` / `turnout serve` as real
//! processes, the seed walkthrough on examples/hello over the REST API,
//! failures, crash and resume, and bad input.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Server, TempDir, alive, instance_pids, kill_all, template_body};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

fn up(dir: &TempDir, extra: &[&str]) -> Server {
    let mut args = vec!["up", "examples/hello/app.yaml"];
    args.extend_from_slice(extra);
    let server = Server::start(&args, dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    server
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

/// Starts a release of an `examples/hello` template; it must be accepted.
fn start_release(server: &Server, file: &str) -> support::Response {
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&template_body(file, &[])),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r
}

fn weights(server: &Server, route: &str, body: &str) -> serde_json::Value {
    let r = server.api(
        "PUT",
        &format!("/v1/apps/{APP}/routes/{route}/weights"),
        Some(body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn seed_walkthrough_frontend_then_backend() {
    let dir = TempDir::new("walkthrough");
    let mut server = up(&dir, &[]);
    assert_eq!(server.get("serviceb.localhost").body, "Hello world!");
    let v1 = server.status(APP);
    assert_eq!(v1["release"], serde_json::Value::Null);
    assert_eq!(v1["template_version"], 1);

    // Frontend release, blue-green.
    start_release(&server, "app-frontend-v2.yaml");
    let s = server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    let role = |s: &serde_json::Value, name: &str| {
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .map(|x| {
                (
                    x["role"].as_str().unwrap().to_string(),
                    x["color"].as_str().unwrap().to_string(),
                )
            })
    };
    assert_eq!(
        role(&s, "serviceA-v1"),
        Some(("unchanged".into(), "yellow".into()))
    );
    assert_eq!(role(&s, "serviceB-v1"), Some(("old".into(), "blue".into())));
    assert_eq!(
        role(&s, "serviceB-v2"),
        Some(("new".into(), "green".into()))
    );
    // The router's metrics carry the release state.
    let m = support::request(server.admin, "GET", "/metrics", &[], None).body;
    assert!(
        m.contains("turnout_release_state{app=\"hello\",state=\"pending-confirmation\"} 1"),
        "{m}"
    );
    // Weight 0: all traffic still on v1.
    assert_eq!(
        answers(&server, 10).keys().collect::<Vec<_>>(),
        ["Hello world!"]
    );
    // A second release is refused, naming the state.
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&template_body("app-backend-v2.yaml", &[])),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("pending-confirmation"), "{}", r.body);
    // Confirm refused while the new service has weight 0.
    let r = server.api("POST", &format!("/v1/apps/{APP}/confirm"), None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(state(&server.status(APP)), "pending-confirmation");
    // 100/100: half each (cookie-less requests split exactly).
    weights(&server, "serviceb", r#"{"weights":{"serviceB-v2":100}}"#);
    let counts = answers(&server, 20);
    assert_eq!(counts.get("Hello world!"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("Welcome to the world!"), Some(&10), "{counts:?}");
    // Switch: all new traffic to v2.
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/routes/serviceb/switch"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        answers(&server, 10).keys().collect::<Vec<_>>(),
        ["Welcome to the world!"]
    );
    let old_pids: Vec<u32> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "serviceB-v1")
        .flat_map(|x| x["instances"].as_array().unwrap().clone())
        .map(|i| i["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(old_pids.len(), 2);
    let r = server.api("POST", &format!("/v1/apps/{APP}/confirm"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = server.wait_status(APP, WAIT, |s| {
        state(s) == "confirmed" && s["services"].as_array().unwrap().len() == 2
    });
    assert!(role(&s, "serviceB-v1").is_none());
    // The old instances are stopped.
    let deadline = std::time::Instant::now() + WAIT;
    while old_pids.iter().any(|p| alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "old instances still alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Backend release with coexist: serviceB-v2 unchanged, not restarted.
    let b_pids: Vec<u64> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "serviceB-v2")
        .flat_map(|x| x["instances"].as_array().unwrap().clone())
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    start_release(&server, "app-backend-v2.yaml");
    let s = server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    assert_eq!(role(&s, "serviceB-v2").unwrap().0, "unchanged");
    assert_eq!(role(&s, "serviceA-v1").unwrap().0, "old");
    assert_eq!(role(&s, "serviceA-v2").unwrap().0, "new");
    let b_now: Vec<u64> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "serviceB-v2")
        .flat_map(|x| x["instances"].as_array().unwrap().clone())
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(b_now, b_pids, "an unchanged service must not restart");
    weights(
        &server,
        "servicea.local",
        r#"{"weights":{"serviceA-v2":100,"serviceA-v1":0}}"#,
    );
    assert_eq!(
        answers(&server, 6).keys().collect::<Vec<_>>(),
        ["Welcome to the AliyunContainerService!"]
    );
    // Roll back: weights and services as before the release.
    let r = server.api("POST", &format!("/v1/apps/{APP}/rollback"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = server.status(APP);
    assert_eq!(state(&s), "rolled-back");
    assert_eq!(s["release"]["reason"], serde_json::Value::Null);
    assert_eq!(
        answers(&server, 6).keys().collect::<Vec<_>>(),
        ["Welcome to the world!"]
    );
    let routes = s["routes"].as_array().unwrap();
    let a = routes.iter().find(|r| r["id"] == "servicea.local").unwrap();
    assert_eq!(a["weights"], serde_json::json!({"serviceA-v1": 100}));

    // History: both releases, newest first.
    let h = server
        .api("GET", &format!("/v1/apps/{APP}/releases"), None)
        .json();
    let states: Vec<&str> = h["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["rolled-back", "confirmed"]);

    // A graceful stop leaves no instance behind.
    let pids = instance_pids(&server.status(APP));
    assert!(!pids.is_empty());
    assert!(server.stop().success());
    for pid in pids {
        assert!(!alive(pid), "instance {pid} survived a graceful stop");
    }
}

#[test]
fn a_release_whose_instances_never_get_ready_rolls_back() {
    let dir = TempDir::new("failed");
    let server = up(&dir, &["--ready-timeout", "2"]);
    let broken = "serviceA-v1:\n  command: turnout demo-app --text 'world!'\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_5000: servicea.local\nserviceB-v1:\n  command: turnout demo-app --upstream \"$$dep_endpoint\" --prefix 'Hello '\n  environment:\n    - 'dep_endpoint=http://servicea.local'\n  labels:\n    aliyun.scale: 2\n    aliyun.routing.port_5001: serviceb\n  external_links:\n    - \"servicea.local\"\nserviceB-v2:\n  command: turnout demo-app --unhealthy --text broken\n  labels:\n    aliyun.routing.port_5001: serviceb\n    aliyun.routing.coexist: true\n    aliyun.probe.url: http://container:5001/health\n";
    let body = serde_json::json!({ "template": broken, "source_name": "broken.yaml" }).to_string();
    let r = server.api("POST", &format!("/v1/apps/{APP}/releases"), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let s = server.wait_status(APP, WAIT, |s| state(s) == "rolled-back");
    let reason = s["release"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("failed: "), "{reason}");
    assert!(reason.contains("serviceB-v2"), "{reason}");
    assert!(
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["name"] != "serviceB-v2")
    );
    assert_eq!(server.get("serviceb.localhost").body, "Hello world!");
    let events = server
        .api("GET", &format!("/v1/events?app={APP}&limit=1000"), None)
        .json();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"release-failed"), "{kinds:?}");
}

/// Releases the hello app's backend as a `serviceB-v2` whose definition
/// is `v2` (its lines after `serviceB-v2:`) and waits for the release to
/// be rolled back, long before its ready deadline; the release's reason.
fn release_that_cannot_start(name: &str, v2: &str) -> String {
    let dir = TempDir::new(name);
    // A ready deadline far beyond the test's wait: only the start error
    // can end the release in time.
    let server = up(&dir, &["--ready-timeout", "600"]);
    let unstartable = format!(
        "serviceA-v1:\n  command: turnout demo-app --text 'world!'\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_5000: servicea.local\nserviceB-v1:\n  command: turnout demo-app --upstream \"$$dep_endpoint\" --prefix 'Hello '\n  environment:\n    - 'dep_endpoint=http://servicea.local'\n  labels:\n    aliyun.scale: 2\n    aliyun.routing.port_5001: serviceb\n  external_links:\n    - \"servicea.local\"\nserviceB-v2:\n{v2}  labels:\n    aliyun.routing.port_5001: serviceb\n    aliyun.routing.coexist: true\n"
    );
    let body = serde_json::json!({ "template": unstartable, "source_name": "unstartable.yaml" })
        .to_string();
    let r = server.api("POST", &format!("/v1/apps/{APP}/releases"), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    // WAIT is far less than the deadline.
    let s = server.wait_status(APP, WAIT, |s| state(s) == "rolled-back");
    assert_eq!(server.get("serviceb.localhost").body, "Hello world!");
    s["release"]["reason"].as_str().unwrap().to_string()
}

#[test]
fn a_release_whose_instances_cannot_start_fails_at_once_not_at_its_deadline() {
    let reason = release_that_cannot_start(
        "cannot-start",
        "  command: turnout demo-app --text two\n  working_dir: /nonexistent/turnout-dir\n",
    );
    assert!(
        reason.starts_with("failed: cannot start serviceB-v2.1 (")
            && reason.contains("working directory /nonexistent/turnout-dir does not exist"),
        "{reason}"
    );
}

#[test]
fn a_release_whose_command_is_not_found_fails_at_once_not_at_its_deadline() {
    // The shell starts; the program it runs is not there (exit 127).
    let reason = release_that_cannot_start(
        "not-found",
        "  command: turnout-no-such-program --port 5001\n",
    );
    assert!(
        reason.starts_with(
            "failed: cannot start serviceB-v2.1: it exited with status 127 before it was ready"
        ) && reason.contains("its command was not found"),
        "{reason}"
    );
}

#[test]
fn kill_9_in_pending_confirmation_then_serve_resumes_and_adopts() {
    let dir = TempDir::new("crash");
    let mut server = up(&dir, &[]);
    start_release(&server, "app-frontend-v2.yaml");
    server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    let before = weights(&server, "serviceb", r#"{"weights":{"serviceB-v2":100}}"#);
    let pids = instance_pids(&before);
    assert_eq!(pids.len(), 7);
    server.kill9();
    for pid in &pids {
        assert!(alive(*pid), "instance {pid} died with the server");
    }
    let mut resumed = Server::start(&["serve"], dir.path(), &[]);
    let after = resumed.wait_status(APP, WAIT, |s| {
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["ready"] == x["scale"])
    });
    assert_eq!(state(&after), "pending-confirmation");
    assert_eq!(after["routes"], before["routes"]);
    let mut again = instance_pids(&after);
    let mut old = pids.clone();
    again.sort_unstable();
    old.sort_unstable();
    assert_eq!(again, old, "instances must be adopted, not duplicated");
    // Adopted instances keep their ids (`serviceA-v1.1`, not the store's
    // `hello/serviceA-v1.1`).
    let ids = |s: &serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = s["services"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|x| x["instances"].as_array().unwrap().clone())
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&before));
    assert!(
        ids(&after).iter().all(|id| !id.contains('/')),
        "{:?}",
        ids(&after)
    );
    let counts = answers(&resumed, 20);
    assert_eq!(counts.len(), 2, "{counts:?}");
    // Confirm works after the restart.
    let r = resumed.api("POST", &format!("/v1/apps/{APP}/confirm"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(resumed.stop().success());
    let leftovers: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    kill_all(&leftovers);
    assert!(
        leftovers.is_empty(),
        "instances left after stop: {leftovers:?}"
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = TempDir::new("bad");
    let server = up(&dir, &[]);
    let before = server.status(APP);
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        ("GET", "/v1/apps/nope".into(), None, 404, "not_found"),
        (
            "POST",
            format!("/v1/apps/{APP}/releases"),
            Some(r#"{"template": "web:\n  lables: {}\n"}"#.into()),
            422,
            "invalid",
        ),
        (
            "POST",
            format!("/v1/apps/{APP}/releases"),
            Some("{not json".into()),
            400,
            "bad_request",
        ),
        (
            "PUT",
            format!("/v1/apps/{APP}/routes/nope/weights"),
            Some(r#"{"weights":{"serviceB-v1":1}}"#.into()),
            404,
            "not_found",
        ),
        (
            "PUT",
            format!("/v1/apps/{APP}/routes/serviceb/weights"),
            Some(r#"{"weights":{"serviceA-v1":1}}"#.into()),
            404,
            "not_found",
        ),
        (
            "PUT",
            format!("/v1/apps/{APP}/routes/serviceb/weights"),
            Some(r#"{"weights":{"serviceB-v1":101}}"#.into()),
            422,
            "invalid",
        ),
        (
            "PUT",
            format!("/v1/apps/{APP}/routes/serviceb/weights"),
            Some(r#"{"weights":{"serviceB-v1":-1}}"#.into()),
            422,
            "invalid",
        ),
        (
            "POST",
            format!("/v1/apps/{APP}/confirm"),
            None,
            409,
            "conflict",
        ),
        (
            "POST",
            format!("/v1/apps/{APP}/rollback"),
            None,
            409,
            "conflict",
        ),
        (
            "POST",
            "/v1/apps".into(),
            Some(template_body("app.yaml", &[("name", APP)])),
            409,
            "conflict",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let r = server.api(method, &path, body.as_deref());
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{method} {path}: {}", r.body);
        assert!(
            !e["error"]["hint"].as_str().unwrap_or("").is_empty(),
            "{method} {path}: no hint"
        );
    }
    // The process runtime refuses a service with only an image, with a hint.
    let r = server.api(
        "POST",
        "/v1/apps",
        Some(r#"{"name": "img", "template": "web:\n  image: nginx:1.25\n"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let hint = r.json()["error"]["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("command"), "{hint}");
    assert_eq!(server.api("GET", "/v1/apps/img", None).status, 404);
    // A second app whose routes are hello's: refused, naming hello, and
    // nothing of it is stored; hello keeps answering.
    let r = server.api(
        "POST",
        "/v1/apps",
        Some(&template_body("app.yaml", &[("name", "other")])),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("belongs to app hello"), "{message}");
    assert_eq!(server.api("GET", "/v1/apps/other", None).status, 404);
    assert_eq!(server.get("serviceb.localhost").status, 200);
    // The invalid template's diagnostics come with it.
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(r#"{"template": "web:\n  lables: {}\n"}"#),
    );
    let d = &r.json()["error"]["diagnostics"];
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .any(|x| x["path"] == "web.lables"),
        "{d}"
    );
    // Missing and wrong tokens.
    let r = support::request(server.admin, "GET", "/v1/apps", &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = support::request(
        server.admin,
        "GET",
        "/v1/apps",
        &[("Authorization", "Bearer wrong")],
        None,
    );
    assert_eq!(r.status, 401);
    // Open endpoints.
    assert_eq!(
        support::request(server.admin, "GET", "/healthz", &[], None).status,
        200
    );
    let m = support::request(server.admin, "GET", "/metrics", &[], None);
    assert!(m.body.contains("turnout_requests_total"), "{}", m.body);
    // Nothing changed.
    let after = server.status(APP);
    assert_eq!(after["routes"], before["routes"]);
    assert_eq!(after["release"], before["release"]);
    assert_eq!(after["template_version"], before["template_version"]);
}

#[test]
fn up_refuses_another_template_on_a_data_dir_that_holds_the_app() {
    let dir = TempDir::new("up-resume");
    let mut first = up(&dir, &[]);
    assert!(first.stop().success());
    // Same file: resumes.
    let mut again = up(&dir, &[]);
    assert_eq!(again.get("serviceb.localhost").body, "Hello world!");
    assert!(again.stop().success());
    // Another file: exit 1, nothing changed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["up", "examples/hello/app-frontend-v2.yaml", "--name", APP])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .current_dir(support::root())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("turnout release"), "{err}");
    // Nothing started: no instance was recorded (so none runs).
    let store = turnout_store::Store::open(&dir.path().join("turnout.db")).unwrap();
    assert_eq!(store.all_instances().unwrap(), Vec::new());
}

#[test]
fn kill_9_while_deploying_then_serve_finishes_the_release_without_duplicates() {
    let dir = TempDir::new("crash-deploying");
    let mut server = up(&dir, &[]);
    let r = start_release(&server, "app-frontend-v2.yaml");
    assert_eq!(state(&r.json()), "deploying");
    server.kill9();
    let mut resumed = Server::start(&["serve"], dir.path(), &[]);
    let s = resumed.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    for svc in s["services"].as_array().unwrap() {
        let live = svc["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["state"] != "draining" && i["state"] != "exited")
            .count();
        assert_eq!(
            live as u64,
            svc["scale"].as_u64().unwrap(),
            "{}: {svc:#}",
            svc["name"]
        );
    }
    // Every instance ever recorded, including any the killed server
    // started but had not yet given a pid.
    let tokens: Vec<String> = turnout_store::Store::open(&dir.path().join("turnout.db"))
        .unwrap()
        .all_instances()
        .unwrap()
        .into_iter()
        .map(|i| i.token)
        .collect();
    assert!(!tokens.is_empty());
    let pids = instance_pids(&s);
    assert!(resumed.stop().success());
    let mut leftovers: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for token in &tokens {
        leftovers.extend(support::processes_with_env("TURNOUT_INSTANCE_KEY", token));
    }
    kill_all(&leftovers);
    assert!(
        leftovers.is_empty(),
        "instances left after stop: {leftovers:?}"
    );
}

#[test]
fn sigterm_while_instances_start_still_stops_them() {
    let dir = TempDir::new("early-term");
    std::fs::create_dir_all(dir.path().join("slow")).unwrap();
    let file = dir.path().join("slow/app.yaml");
    // Never ready: `up` is still waiting for it when the signal comes.
    std::fs::write(
        &file,
        "web:\n  command: turnout demo-app --unhealthy --text x\n  labels:\n    aliyun.routing.port_80: web\n    aliyun.probe.url: http://container:80/health\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&["up", file.to_str().unwrap()], &data, &[]);
    let s = server.wait_status("slow", WAIT, |s| {
        s["services"][0]["instances"][0]["pid"].as_u64().is_some()
    });
    let pids = instance_pids(&s);
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(server.stop().success());
    let leftovers: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    kill_all(&leftovers);
    assert!(leftovers.is_empty(), "instances left: {leftovers:?}");
}
