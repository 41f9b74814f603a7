//! Releases and bad input on the docker runtime (issue 11, items 4 and 7;
//! DESIGN §6.1, §8), with the real binary and the real engine.
//!
//! Bad input, table-style: a `ports:` clash (a blue-green release whose new
//! service publishes the running version's host port, a standard release
//! in place on the same port, the router's own public and admin ports, a
//! published port with two instances, another app's port) and bad volume
//! specs are each refused with an error that names the problem and the
//! fix, and nothing changes: no container, network or volume is made, the
//! status and the app list are as they were, the old version still serves.
//! A host port held by a program outside turnout fails the start, naming
//! the port.
//!
//! Releases through the same engine as processes: a `standard` release of
//! 4 containers with parallelism 2 never has more than 2 new containers
//! starting nor fewer than 4 ready, with no failed request; a new container
//! that fails its health check stops the roll and the old ones keep
//! serving; a gray release walks its steps to pending-confirmation with
//! the router's weights following.
//!
//! The docker CLI is used only to look at what turnout made and to clean
//! up (`Cleanup`: this data dir's server id only).

#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::docker::{
    Cleanup, WAIT, cli, cli_refused, containers, docker, engine_objects, ensure_image,
    free_host_port, tag, unique_app, wait_containers,
};
use support::load::{Bounds, Load};
use support::{Server, TempDir, request};

/// One service (compose `services:` layout) of the local image running
/// `turnout demo-app` on port 5000, routed at `web.localhost`; `labels`
/// are more label lines (6 spaces in), `fields` more field lines (4 in).
fn service(name: &str, text: &str, labels: &str, fields: &str) -> String {
    format!(
        "  {name}:\n    image: turnout:{tag}\n    command: [\"turnout\", \"demo-app\", \"--listen\", \
         \"0.0.0.0:5000\", \"--text\", \"{text}\"]\n    labels:\n      aliyun.routing.port_5000: \
         web\n{labels}{fields}",
        tag = tag()
    )
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

/// `turnout serve --runtime docker` on ephemeral ports, and the guard that
/// removes what it made.
fn serve(dir: &TempDir, flags: &[&str]) -> (Server, Cleanup) {
    let data = dir.path().join("data");
    let cleanup = Cleanup::of(&data);
    let mut args = vec!["serve", "--runtime", "docker"];
    args.extend_from_slice(flags);
    (Server::start(&args, &data, &[]), cleanup)
}

/// What a refused request must leave as it was: the app's status, the
/// apps, and every container, network and volume of the server.
fn everything(
    server: &Server,
    app: &str,
    cleanup: &Cleanup,
) -> (serde_json::Value, String, Vec<String>) {
    let apps = server.api("GET", "/v1/apps", None);
    assert_eq!(apps.status, 200, "{}", apps.body);
    (server.status(app), apps.body, engine_objects(cleanup))
}

/// `GET /` on `127.0.0.1:port` (a published port), its body.
fn direct(port: u16) -> String {
    let r = request(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "GET",
        "/",
        &[("Host", "direct")],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

#[test]
fn bad_input_is_refused_before_anything_starts_and_changes_nothing() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-bad-input");
    let (server, cleanup) = serve(&dir, &[]);
    let app = unique_app("dkbad");
    let port = free_host_port();
    let other_port = free_host_port();
    let on_port = |p: u16| format!("    ports: [\"{p}:5000\"]\n");
    let v1 = write(
        dir.path(),
        "v1.yaml",
        &format!("services:\n{}", service("web-v1", "v1", "", &on_port(port))),
    );
    cli(&server, &["deploy", v1.to_str().unwrap(), "--name", &app]);
    assert_eq!(server.get("web.localhost").body, "v1");
    // The publish is real: the container answers on the host port.
    assert_eq!(direct(port), "v1");
    let before = everything(&server, &app, &cleanup);

    let public = server.public.port();
    let admin = server.admin.port();
    let two = "      aliyun.scale: 2\n";
    // (what, template, release flags, what the error must say)
    let table: Vec<(&str, String, Vec<&str>, Vec<String>)> = vec![
        (
            "a blue-green release on the running version's host port",
            format!("services:\n{}", service("web-v2", "v2", "", &on_port(port))),
            vec![],
            vec![
                format!("service web-v2 publishes host port {port}/tcp (ports: \"{port}:5000\")"),
                format!("which service web-v1 publishes too (\"{port}:5000\")"),
                "publish another host port in the new version".into(),
                "reach the service through its turnout route".into(),
            ],
        ),
        (
            "a standard release in place on the same host port",
            format!("services:\n{}", service("web-v1", "v1b", "", &on_port(port))),
            vec!["--strategy", "standard"],
            vec![
                format!("service web-v1 publishes host port {port}/tcp"),
                "which the running version of service web-v1 publishes too".into(),
                "standard starts each new instance before it stops an old one".into(),
            ],
        ),
        (
            "the router's public port",
            format!("services:\n{}", service("web-v2", "v2", "", &on_port(public))),
            vec![],
            vec![
                format!("service web-v2 publishes host port {public}/tcp"),
                format!("where turnout's public listener listens ({})", server.public),
                "publish another host port".into(),
            ],
        ),
        (
            "the router's admin port",
            format!("services:\n{}", service("web-v2", "v2", "", &on_port(admin))),
            vec![],
            vec![format!(
                "where turnout's admin API listens ({})",
                server.admin
            )],
        ),
        (
            "a published host port with two instances",
            format!(
                "services:\n{}",
                service("web-v2", "v2", two, &on_port(other_port))
            ),
            vec![],
            vec![
                format!("service web-v2 publishes host port {other_port}/tcp"),
                "has 2 instances: each would publish it".into(),
                "give the port to one instance (scale 1)".into(),
            ],
        ),
        (
            "a volume spec with empty parts",
            format!(
                "services:\n{}",
                service("web-v2", "v2", "", "    volumes: [\"::bad\"]\n")
            ),
            vec![],
            vec![
                "services.web-v2.volumes[0]: invalid volume: the source and the target are empty"
                    .into(),
                "found \"::bad\"".into(),
                "expected `target`, `source:target` or `source:target:mode`".into(),
            ],
        ),
        (
            "a named volume not declared at top level",
            format!(
                "services:\n{}",
                service("web-v2", "v2", "", "    volumes: [\"data:/data\"]\n")
            ),
            vec![],
            vec![
                "services.web-v2.volumes[0]: volume \"data\" is not declared".into(),
                "declare it at the top level".into(),
                "write a host path as `./data` for a bind mount".into(),
            ],
        ),
        (
            "a volume mode that is not ro or rw",
            format!(
                "services:\n{}",
                service("web-v2", "v2", "", "    volumes: [\"./site:/site:rx\"]\n")
            ),
            vec![],
            vec![
                "services.web-v2.volumes[0]: invalid volume mode \"rx\"".into(),
                "write `ro` or `rw`".into(),
            ],
        ),
        (
            "read-only and read-write at once",
            format!(
                "services:\n{}",
                service("web-v2", "v2", "", "    volumes: [\"./site:/site:ro,rw\"]\n")
            ),
            vec![],
            vec![
                "services.web-v2.volumes[0]: invalid volume mode: `ro` and `rw` together".into(),
                "keep one: `ro` (read-only) or `rw`".into(),
            ],
        ),
        (
            "a volume target that is not an absolute path",
            format!(
                "services:\n{}\nvolumes:\n  data: {{}}\n",
                service("web-v2", "v2", "", "    volumes: [\"data:data\"]\n")
            ),
            vec![],
            vec![
                "services.web-v2.volumes[0]: invalid volume: the target \"data\" is not an absolute path".into(),
            ],
        ),
    ];
    for (what, text, flags, wanted) in &table {
        eprintln!("bad input: {what}");
        let file = write(dir.path(), "bad.yaml", text);
        // A release wrongly accepted fails within this, not the CLI's 120 s.
        let mut args = vec![
            "release",
            file.to_str().unwrap(),
            "--app",
            &app,
            "--timeout",
            "20",
        ];
        args.extend_from_slice(flags);
        let said = cli_refused(&server, &args);
        for w in wanted {
            assert!(said.contains(w.as_str()), "{what}: {w:?} not in:\n{said}");
        }
        // The server refuses it too when the CLI is not there to (the API).
        let mut body = serde_json::json!({"template": text, "source_name": "bad.yaml"});
        if flags.contains(&"standard") {
            body["strategy"] = "standard".into();
        }
        let r = server.api(
            "POST",
            &format!("/v1/apps/{app}/releases"),
            Some(&body.to_string()),
        );
        let error = &r.json()["error"];
        let said = format!(
            "{} {}",
            error["message"].as_str().unwrap_or(""),
            error["hint"].as_str().unwrap_or("")
        );
        assert!(
            (400..500).contains(&r.status) && said.contains(wanted[0].as_str()),
            "{what}: the API said {} {}",
            r.status,
            r.body
        );
        assert_eq!(
            everything(&server, &app, &cleanup),
            before,
            "{what} changed something"
        );
        assert_eq!(server.get("web.localhost").body, "v1", "{what}");
    }

    // Another app cannot publish this app's host port either.
    let theirs = write(
        dir.path(),
        "theirs.yaml",
        &format!(
            "services:\n  api:\n    image: turnout:{}\n    command: [\"turnout\", \"demo-app\", \
             \"--listen\", \"0.0.0.0:5000\"]\n    ports: [\"{port}:5000\"]\n",
            tag()
        ),
    );
    let other_app = format!("{app}b");
    let said = cli_refused(
        &server,
        &["deploy", theirs.to_str().unwrap(), "--name", &other_app],
    );
    assert!(
        said.contains(&format!(
            "service api publishes host port {port}/tcp (ports: \"{port}:5000\"), which \
             service web-v1 of app {app} publishes too"
        )),
        "{said}"
    );
    assert_eq!(everything(&server, &app, &cleanup), before);
    assert_eq!(direct(port), "v1");

    // The check refuses only clashes: another host port is released as usual.
    let v2 = write(
        dir.path(),
        "v2.yaml",
        &format!(
            "services:\n{}",
            service("web-v2", "v2", "", &on_port(other_port))
        ),
    );
    cli(&server, &["release", v2.to_str().unwrap(), "--app", &app]);
    server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");
    assert_eq!(
        (direct(port), direct(other_port)),
        ("v1".into(), "v2".into())
    );
    cli(&server, &["rollback", "--app", &app]);
    wait_containers(&app, "only web-v1 left", |c| {
        c.len() == 1 && c.values().all(|(s, _)| s == "web-v1")
    });
    assert_eq!(direct(port), "v1");
}

#[test]
fn a_host_port_held_outside_turnout_fails_the_start_naming_it() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-port-held");
    let (server, _cleanup) = serve(&dir, &[]);
    let app = unique_app("dkheld");
    // A program outside turnout (this test) holds the port on every address.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let text = format!(
        "services:\n{}",
        service("web", "x", "", &format!("    ports: [\"{port}:5000\"]\n"))
    );
    let body = serde_json::json!({"name": app, "template": text, "source_name": "app.yaml"});
    let r = server.api("POST", "/v1/apps", Some(&body.to_string()));
    assert!(r.status < 300, "{} {}", r.status, r.body);
    // The start fails, naming the port and how to find its holder.
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let r = server.api("GET", &format!("/v1/events?app={app}"), None);
        let found = r.json()["events"].as_array().unwrap().iter().find_map(|e| {
            (e["kind"] == "instance-failed").then(|| e["message"].as_str().unwrap().to_string())
        });
        if let Some(message) = found {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "no instance-failed event: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        failed.contains(&format!("cannot start web.1: host port {port} is taken")),
        "{failed}"
    );
    // The status says it too, for `deploy` and `up` to stop waiting at.
    let status = server.wait_status(&app, WAIT, |s| {
        s["services"][0]["instances"][0]["error"].is_string()
    });
    let error = status["services"][0]["instances"][0]["error"]
        .as_str()
        .unwrap();
    assert!(
        error.contains(&format!("host port {port} is taken")),
        "{error}"
    );
    // The failed container is not left behind.
    let left: Vec<String> = containers(&app)
        .values()
        .map(|(_, st)| st.clone())
        .filter(|st| st == "running")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let r = server.api("DELETE", &format!("/v1/apps/{app}"), None);
    assert!(r.status < 300, "{} {}", r.status, r.body);
    drop(holder);
}

#[test]
fn a_release_onto_a_host_port_held_outside_turnout_fails_at_once_and_rolls_back() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-port-held-release");
    // A ready deadline far beyond the test's wait: only the start error
    // can end the release in time.
    let (server, _cleanup) = serve(&dir, &["--ready-timeout", "600"]);
    let app = unique_app("dkheldr");
    let v1 = write(
        dir.path(),
        "v1.yaml",
        &format!("services:\n{}", service("web-v1", "v1", "", "")),
    );
    cli(&server, &["deploy", v1.to_str().unwrap(), "--name", &app]);
    let old = ids_by_version(&app);
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let text = format!(
        "services:\n{}",
        service(
            "web-v2",
            "v2",
            "",
            &format!("    ports: [\"{port}:5000\"]\n")
        )
    );
    let body = serde_json::json!({"template": text, "source_name": "v2.yaml"});
    let r = server.api(
        "POST",
        &format!("/v1/apps/{app}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let s = server.wait_status(&app, WAIT, |s| state(s) == "rolled-back");
    let reason = s["release"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "failed: cannot start web-v2.1: host port {port} is taken"
        )),
        "{reason}"
    );
    wait_containers(&app, "only the old containers", |_| {
        !ids_by_version(&app).contains_key("2")
    });
    assert_eq!(ids_by_version(&app), old);
    let r = server.get("web.localhost");
    assert_eq!((r.status, r.body.as_str()), (200, "v1"), "{r:?}");
    drop(holder);
}

/// The instances of service `name` in a status: id → state.
fn instance_states(s: &serde_json::Value, name: &str) -> BTreeMap<String, String> {
    s["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|svc| svc["name"] == name)
        .flat_map(|svc| svc["instances"].as_array().unwrap().clone())
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The app's containers' ids by template version (the label turnout puts
/// on each).
fn ids_by_version(app: &str) -> BTreeMap<String, BTreeSet<String>> {
    let filter = format!("label=turnout.app={app}");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in docker(&[
        "ps",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{.ID}} {{.Label \"turnout.template-version\"}}",
    ])
    .lines()
    {
        if let Some((id, version)) = line.split_once(' ') {
            out.entry(version.to_string())
                .or_default()
                .insert(id.to_string());
        }
    }
    out
}

/// One client on `web.localhost`, bounded (20 000 requests, 120 s).
const ONE_CLIENT: Bounds = Bounds {
    clients: 1,
    requests_per_client: 20_000,
    time: Duration::from_secs(120),
};

const ROLLING: &str = "      aliyun.scale: 4\n      aliyun.rolling_updates: true\n      \
                       aliyun.rolling_updates.parallelism: 2\n      \
                       aliyun.probe.url: http://container:5000/health\n";

#[test]
fn a_standard_release_rolls_containers_two_at_a_time_without_losing_a_request() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-standard");
    let (server, _cleanup) = serve(&dir, &[]);
    let app = unique_app("dkstd");
    let v1 = write(
        dir.path(),
        "v1.yaml",
        &format!("services:\n{}", service("web", "one", ROLLING, "")),
    );
    let v2 = write(
        dir.path(),
        "v2.yaml",
        &format!("services:\n{}", service("web", "two", ROLLING, "")),
    );
    cli(&server, &["deploy", v1.to_str().unwrap(), "--name", &app]);
    let old = ids_by_version(&app);
    assert_eq!(old.get("1").map(BTreeSet::len), Some(4), "{old:?}");

    // The status while the roll goes on, every 25 ms (bounded by WAIT).
    let snapshots = Arc::new(Mutex::new(Vec::<BTreeMap<String, String>>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (snapshots, done) = (snapshots.clone(), done.clone());
        let (admin, token, app) = (server.admin, server.token.clone(), app.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let r = request(
                    admin,
                    "GET",
                    &format!("/v1/apps/{app}"),
                    &[("Authorization", &format!("Bearer {token}"))],
                    None,
                );
                if r.status == 200 {
                    snapshots
                        .lock()
                        .unwrap()
                        .push(instance_states(&r.json(), "web"));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let client = Load::start(server.public, "web.localhost", ONE_CLIENT);
    let out = cli(
        &server,
        &[
            "release",
            v2.to_str().unwrap(),
            "--app",
            &app,
            "--strategy",
            "standard",
        ],
    );
    assert!(out.contains("confirmed"), "{out}");
    // The last old containers may still be draining: wait for them to go.
    wait_containers(&app, "4 containers of version 2", |_| {
        let ids = ids_by_version(&app);
        ids.len() == 1 && ids.get("2").map(BTreeSet::len) == Some(4)
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = client.finish();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    out.assert_none_failed();
    let seen = out.answers();
    assert!(
        seen.contains_key("one") && seen.contains_key("two"),
        "{seen:?}"
    );
    let snapshots = snapshots.lock().unwrap();
    assert!(snapshots.len() > 10, "{} snapshots", snapshots.len());
    let count =
        |s: &BTreeMap<String, String>, state: &str| s.values().filter(|v| *v == state).count();
    let most_starting = snapshots
        .iter()
        .map(|s| count(s, "starting"))
        .max()
        .unwrap();
    let fewest_ready = snapshots.iter().map(|s| count(s, "ready")).min().unwrap();
    let most_live = snapshots
        .iter()
        .map(|s| s.len() - count(s, "draining"))
        .max()
        .unwrap();
    // parallelism 2: new containers start two at a time, and capacity never drops.
    assert_eq!(most_starting, 2, "{snapshots:?}");
    assert!(
        fewest_ready >= 4,
        "{fewest_ready} ready at one point: {snapshots:?}"
    );
    assert!(
        most_live <= 6,
        "{most_live} live instances at one point: {snapshots:?}"
    );
    // Every container was replaced.
    let now = ids_by_version(&app);
    assert!(now["2"].is_disjoint(&old["1"]), "{now:?} {old:?}");
    for _ in 0..5 {
        assert_eq!(server.get("web.localhost").body, "two");
    }
}

#[test]
fn a_new_container_failing_its_health_check_stops_the_roll_and_the_old_ones_serve() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-standard-unhealthy");
    let (server, _cleanup) = serve(&dir, &["--ready-timeout", "8"]);
    let app = unique_app("dkstdbad");
    let v1 = write(
        dir.path(),
        "v1.yaml",
        &format!("services:\n{}", service("web", "one", ROLLING, "")),
    );
    // v2's /health answers 503: its containers run and never become ready.
    let v2 = write(
        dir.path(),
        "v2.yaml",
        &format!("services:\n{}", service("web", "two", ROLLING, "")).replace(
            "\"--text\", \"two\"",
            "\"--text\", \"two\", \"--unhealthy\"",
        ),
    );
    cli(&server, &["deploy", v1.to_str().unwrap(), "--name", &app]);
    let old = ids_by_version(&app);
    assert_eq!(old.get("1").map(BTreeSet::len), Some(4), "{old:?}");

    let client = Load::start(server.public, "web.localhost", ONE_CLIENT);
    let body = serde_json::json!({"template": std::fs::read_to_string(&v2).unwrap(),
                                  "source_name": "v2.yaml", "strategy": "standard"});
    let r = server.api(
        "POST",
        &format!("/v1/apps/{app}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // While it tries: never more than `parallelism` new containers, and
    // the old four all running.
    let mut most_new = 0;
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let ids = ids_by_version(&app);
        most_new = most_new.max(ids.get("2").map_or(0, BTreeSet::len));
        assert_eq!(ids.get("1"), old.get("1"), "an old container went: {ids:?}");
        let s = server.status(&app);
        if state(&s) == "rolled-back" {
            break s;
        }
        assert!(state(&s) == "deploying" || state(&s) == "failed", "{s:#}");
        assert!(Instant::now() < deadline, "never rolled back: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let reason = s["release"]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("failed:"), "{reason}");
    assert!(
        (1..=2).contains(&most_new),
        "{most_new} new containers at once"
    );
    // The new ones are removed; the old ones serve, untouched.
    wait_containers(&app, "only the old containers", |_| {
        !ids_by_version(&app).contains_key("2")
    });
    assert_eq!(ids_by_version(&app).get("1"), old.get("1"));
    let out = client.finish();
    out.assert_none_failed();
    let seen = out.answers();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        ["one"],
        "{seen:?}"
    );
}

/// web-v1 and web-v2 sharing `web.localhost`: the weights of the route.
fn weights(s: &serde_json::Value) -> (u64, u64) {
    let route = s["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "web.localhost")
        .unwrap();
    (
        route["weights"]["web-v1"].as_u64().unwrap_or(0),
        route["weights"]["web-v2"].as_u64().unwrap_or(0),
    )
}

#[test]
fn a_gray_release_on_containers_walks_its_steps_to_pending_confirmation() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-gray");
    let (server, _cleanup) = serve(&dir, &[]);
    let app = unique_app("dkgray");
    let two = "      aliyun.scale: 2\n";
    let v1 = write(
        dir.path(),
        "v1.yaml",
        &format!("services:\n{}", service("web-v1", "v1", two, "")),
    );
    cli(&server, &["deploy", v1.to_str().unwrap(), "--name", &app]);
    let v1_ids = ids_by_version(&app);

    let client = Load::start(server.public, "web.localhost", ONE_CLIENT);
    // Steps of 1 s each, an analysis window of 1 s with a gate the healthy
    // new version passes.
    let text = format!("services:\n{}", service("web-v2", "v2", two, ""));
    let body = serde_json::json!({
        "template": text, "source_name": "v2.yaml",
        "plan": {"strategy": "gray", "steps": [25, 50, 100], "pause": "1s",
                 "analysis": {"window": "1s", "min_requests": 1, "max_error_rate": "5%"}}
    });
    let r = server.api(
        "POST",
        &format!("/v1/apps/{app}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Each step's share shows in the router's weights, in order.
    let mut seen_steps = Vec::new();
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = server.status(&app);
        if let Some(share) = s["release"]["step"]["share"].as_u64()
            && seen_steps.last() != Some(&share)
        {
            // The route's weights are the step's share, in one step.
            assert_eq!(weights(&s), (100 - share, share), "{s:#}");
            seen_steps.push(share);
        }
        if state(&s) == "pending-confirmation" {
            break s;
        }
        assert!(
            ["deploying", "progressing"].contains(&state(&s).as_str()),
            "{s:#}"
        );
        assert!(
            Instant::now() < deadline,
            "never pending-confirmation: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(seen_steps, [25, 50, 100], "{s:#}");
    assert_eq!(weights(&s), (0, 100), "{s:#}");
    let passed = s["release"]["analysis"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|c| c["verdict"] == "pass").count());
    assert!(passed >= 1, "{s:#}");
    // All traffic on the new containers now; the old ones still run.
    let after: BTreeMap<String, usize> =
        (0..10)
            .map(|_| server.get("web.localhost").body)
            .fold(BTreeMap::new(), |mut m, b| {
                *m.entry(b).or_insert(0) += 1;
                m
            });
    assert_eq!(after, BTreeMap::from([("v2".to_string(), 10)]));
    assert_eq!(ids_by_version(&app).get("1"), v1_ids.get("1"));
    cli(&server, &["confirm", "--app", &app]);
    wait_containers(&app, "only web-v2 left", |c| {
        c.len() == 2 && c.values().all(|(s, _)| s == "web-v2")
    });
    let out = client.finish();
    out.assert_none_failed();
    let seen = out.answers();
    assert!(
        seen.contains_key("v1") && seen.contains_key("v2"),
        "{seen:?}"
    );
}
