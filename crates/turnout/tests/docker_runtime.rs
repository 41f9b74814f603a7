//! The docker runtime end to end (issue 11, DESIGN §6.1), with the real
//! binary and the real engine: `turnout up --runtime docker` serves a
//! public route from containers of the local image `turnout:TAG`, a
//! blue-green release moves traffic with the same CLI verbs as on
//! processes and removes the old containers, a graceful stop removes the
//! app's containers and network, and a container of another owner that
//! holds the first name is skipped and never touched. Also: a missing
//! image and an engine that does not answer are clear errors that start
//! nothing. Internal routes (DESIGN §6.1): an unmodified Python `urllib`
//! client in `turnout-debian:TAG` calls `http://<name>.local/` with no
//! proxy settings and is answered, a container the route's
//! `external_links` do not allow gets 403, a taken port 80 on the app
//! network's gateway fails the deploy naming it, and the hello example's
//! walkthrough (frontend, then backend release) runs on containers with
//! serviceB-v2's containers untouched by the backend release. The
//! router's connections to a container come from inside the container's
//! network namespace (from the gateway with `TURNOUT_DOCKER_NETNS=off`).
//!
//! The docker CLI is used only to look at what turnout made and to clean
//! up. Where no engine answers, the engine tests print a skip and pass.
//! The images' tag is this process's own (`test-<binary hash>-<pid>`,
//! removed at exit; `TURNOUT_TEST_IMAGE_TAG` picks a fixed one instead):
//! two test binaries building at once never retag each other's images.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{
    Cleanup, WAIT, answers, cli, containers, docker, ensure_image, ensure_images, hello_templates,
    tag, unique_app, up, up_refused, wait_containers,
};
use support::{Server, TempDir, output_within, root};

fn web_template(dir: &Path, file: &str, version: &str) -> PathBuf {
    let text = format!(
        "web-{version}:\n  image: turnout:{tag}\n  command: [\"turnout\", \"demo-app\", \"--listen\", \
         \"0.0.0.0:5000\", \"--text\", \"{version}\"]\n  labels:\n    aliyun.scale: 2\n    \
         aliyun.routing.port_5000: web\n",
        tag = tag()
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn up_and_a_blue_green_release_on_containers() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-bg");
    let data = dir.path().join("data");
    let app = unique_app("dk");
    // Another owner's container holds the first name turnout would use.
    let foreign = format!("{app}-web-v1-1");
    let cleanup = Cleanup {
        data_dir: data.clone(),
        own: vec![foreign.clone()],
        own_networks: Vec::new(),
    };
    let foreign_id = docker(&["create", "--name", &foreign, &format!("turnout:{}", tag())]);
    assert!(!foreign_id.is_empty(), "docker create {foreign}");

    let v1 = web_template(dir.path(), "app.yaml", "v1");
    let v2 = web_template(dir.path(), "app-v2.yaml", "v2");
    let mut server = up(&app, &v1, &data);
    assert!(
        cleanup.server_id().is_some(),
        "the data dir has a server id"
    );

    // Containers: the foreign one's name skipped, labels, network, no proxy.
    let running = containers(&app);
    let names: Vec<&str> = running.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [format!("{app}-web-v1-2"), format!("{app}-web-v1-3")],
        "{running:?}"
    );
    assert!(
        running
            .values()
            .all(|(s, st)| s == "web-v1" && st == "running")
    );
    let name = format!("{app}-web-v1-2");
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &name]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["turnout.app"], app.as_str());
    assert_eq!(labels["turnout.service"], "web-v1");
    assert_eq!(
        labels["turnout.server"].as_str(),
        cleanup.server_id().as_deref()
    );
    assert!(
        labels["turnout.instance"]
            .as_str()
            .unwrap()
            .starts_with("web-v1.")
    );
    assert!(!labels["turnout.key"].as_str().unwrap().is_empty());
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &name]);
    assert!(
        !env.contains("HTTP_PROXY") && !env.contains("http_proxy"),
        "{env}"
    );
    let network = docker(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{join $v.Aliases \",\"}}{{end}}",
        &name,
    ]);
    assert!(
        network.starts_with(&format!("{app}_default ")) && network.contains("web-v1"),
        "{network}"
    );
    // No restart policy: turnout supervises restarts (the engine spells none "" or "no").
    let policy = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}}",
        &name,
    ]);
    assert!(policy.is_empty() || policy == "no", "{policy}");

    assert_eq!(
        answers(&server, "web.localhost", 6),
        BTreeMap::from([("v1".into(), 6)])
    );

    // Blue-green: v2 starts beside v1 at weight 0.
    cli(&server, &["release", v2.to_str().unwrap(), "--app", &app]);
    server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");
    wait_containers(&app, "4 running", |c| {
        c.values().filter(|(_, st)| st == "running").count() == 4
    });
    assert_eq!(
        answers(&server, "web.localhost", 6),
        BTreeMap::from([("v1".into(), 6)])
    );

    cli(
        &server,
        &[
            "weights",
            "web.localhost",
            "web-v1=50",
            "web-v2=50",
            "--app",
            &app,
        ],
    );
    let split = answers(&server, "web.localhost", 20);
    assert!(split.get("v1").is_some_and(|n| *n > 0), "{split:?}");
    assert!(split.get("v2").is_some_and(|n| *n > 0), "{split:?}");

    cli(&server, &["switch", "web.localhost", "--app", &app]);
    assert_eq!(
        answers(&server, "web.localhost", 6),
        BTreeMap::from([("v2".into(), 6)])
    );

    cli(&server, &["confirm", "--app", &app]);
    let left = wait_containers(&app, "only web-v2 left", |c| {
        c.len() == 2 && c.values().all(|(s, _)| s == "web-v2")
    });
    assert!(left.values().all(|(_, st)| st == "running"), "{left:?}");
    assert_eq!(
        answers(&server, "web.localhost", 6),
        BTreeMap::from([("v2".into(), 6)])
    );

    // A graceful stop removes the app's containers and its network.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(containers(&app).is_empty(), "{:?}", containers(&app));
    assert_eq!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{app}_default$")
        ]),
        ""
    );
    // The other owner's container is as it was.
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}} {{.State.Status}}", &foreign]),
        format!("{foreign_id} created")
    );
}

/// `DIR/app.yaml`: one service `web` of `image` on a public route, with
/// `extra` (its lines) besides.
fn one_web(dir: &Path, image: &str, extra: &str) -> PathBuf {
    let file = dir.join("app.yaml");
    std::fs::write(
        &file,
        format!("web:\n  image: {image}\n{extra}  labels:\n    aliyun.routing.port_5000: web\n"),
    )
    .unwrap();
    file
}

#[test]
fn a_command_missing_from_its_image_ends_up_at_once_keeping_nothing() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-no-command");
    let data = dir.path().join("data");
    let app = unique_app("dkcmd");
    let _cleanup = Cleanup::of(&data);
    let image = format!("turnout:{}", tag());
    let file = one_web(
        dir.path(),
        &image,
        "  command: [\"turnout-no-such-program\"]\n",
    );
    // Within up_refused's bound, far less than `up`'s ready timeout (120 s).
    let out = up_refused(&app, &file, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot start web.1: its command is not in image {image}"
        )) && stderr.contains("executable file not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("nothing of app {app} is kept")),
        "{stderr}"
    );
    // The container that could not start is not left behind.
    assert!(containers(&app).is_empty(), "{:?}", containers(&app));
}

#[test]
fn a_missing_image_is_refused_before_anything_starts() {
    need_docker!();
    let dir = TempDir::new("docker-missing");
    let data = dir.path().join("data");
    let app = unique_app("dkmiss");
    let _cleanup = Cleanup::of(&data);
    let image = format!("turnout-no-such-image:{}", std::process::id());
    let file = one_web(dir.path(), &image, "");
    let out = up_refused(&app, &file, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "service web needs image {image}, which is not on this machine"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("images/build.sh") && stderr.contains("docker load"),
        "{stderr}"
    );
    assert!(containers(&app).is_empty());
    assert_eq!(
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{app}_default$")
        ]),
        ""
    );
}

#[test]
fn an_engine_that_does_not_answer_is_a_clear_error_and_starts_nothing() {
    let dir = TempDir::new("docker-away");
    let data = dir.path().join("data");
    let socket = dir.path().join("no-engine.sock");
    let host = format!("unix://{}", socket.display());
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["up", "--runtime", "docker"])
            .arg(root().join("examples/hello/app-docker.yaml"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--internal-listen", "127.0.0.1:0"])
            .env("DOCKER_HOST", &host),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot reach the Docker engine at {host}")),
        "{stderr}"
    );
    assert!(stderr.contains("systemctl start docker"), "{stderr}");
    assert!(!out.stdout.starts_with(b"turnout listening"));
    // Nothing was written: no store, no token, no server id.
    for file in ["turnout.db", "token", "server-id"] {
        assert!(!data.join(file).exists(), "{file} was written");
    }

    // `serve` alike; TURNOUT_RUNTIME is the flag's twin.
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--internal-listen", "127.0.0.1:0"])
            .env("TURNOUT_RUNTIME", "docker")
            .env("DOCKER_HOST", &host),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine"),
        "{stderr}"
    );
}

/// A caller in `turnout-debian:TAG`: an HTTP server on port 8000 that, for
/// each request, calls `http://api.local/` with Python's `urllib` (no
/// proxy settings in the container: urllib goes straight to the name) and
/// answers `<status> <body> | proxies=<proxy variables it sees>`.
const CALLER_PY: &str = r#"
import http.server, os, urllib.error, urllib.request

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen("http://api.local/", timeout=10) as r:
                out = "%d %s" % (r.status, r.read().decode())
        except urllib.error.HTTPError as e:
            out = "%d %s" % (e.code, e.read().decode())
        except Exception as e:
            out = "error %r" % (e,)
        proxies = sorted(k for k in os.environ if "proxy" in k.lower() and k.lower() != "no_proxy")
        body = ("%s | proxies=%s" % (out.strip(), ",".join(proxies))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"#;

/// `api` on `api.local`, `caller` (allowed by its `external_links`) and
/// `stranger` (not allowed), both Python callers with public routes.
fn local_routes_template(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("caller.py"), CALLER_PY).unwrap();
    let tag = tag();
    let python = |name: &str, links: &str| {
        format!(
            "{name}:\n  image: turnout-debian:{tag}\n  command: [\"python3\", \"/caller.py\"]\n  \
             volumes: [\"./caller.py:/caller.py:ro\"]\n  labels:\n    \
             aliyun.routing.port_8000: {name}\n{links}"
        )
    };
    let text = format!(
        "api:\n  image: turnout:{tag}\n  command: [\"turnout\", \"demo-app\", \"--listen\", \
         \"0.0.0.0:5000\", \"--text\", \"from-api\"]\n  labels:\n    \
         aliyun.routing.port_5000: api.local\n{}{}",
        python("caller", "  external_links:\n    - api.local\n"),
        python("stranger", ""),
    );
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The address of the app network's gateway, from the engine.
fn gateway(network: &str) -> String {
    docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        network,
    ])
}

#[test]
fn a_python_urllib_client_calls_a_local_route_with_no_proxy_settings() {
    need_docker!();
    ensure_images();
    let dir = TempDir::new("docker-local");
    let data = dir.path().join("data");
    let app = unique_app("dkloc");
    let cleanup = Cleanup::of(&data);
    let file = local_routes_template(dir.path());
    let mut server = up(&app, &file, &data);

    // The allowed caller: urllib resolves api.local to the gateway, where
    // the internal router knows the container by its address.
    let r = server.get("caller.localhost");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "200 from-api | proxies=", "{r:?}");
    // Not in external_links: refused by the router, with the hint.
    let r = server.get("stranger.localhost");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .starts_with("403 service stranger may not call api.local of app ")
            && r.body.contains("add it to external_links of stranger")
            && r.body.ends_with("| proxies="),
        "{r:?}"
    );

    // What made it work: the .local names point at the gateway, where the
    // server listens on port 80, and no container has a proxy variable.
    let network = format!("{app}_default");
    let gw = gateway(&network);
    assert!(!gw.is_empty(), "no gateway for {network}");
    for service in ["caller", "stranger"] {
        let name = format!("{app}-{service}-1");
        let hosts = docker(&[
            "inspect",
            "--format",
            "{{json .HostConfig.ExtraHosts}}",
            &name,
        ]);
        assert_eq!(hosts, format!("[\"api.local:{gw}\"]"), "{name}");
        let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &name]);
        assert!(!env.to_lowercase().contains("http_proxy"), "{env}");
    }
    let ok = support::request(
        format!("{gw}:80").parse().unwrap(),
        "GET",
        "/",
        &[("Host", "api.local")],
        None,
    );
    // From this machine, not a container of the app: no known caller.
    assert_eq!(ok.status, 403, "{ok:?}");
    assert!(ok.body.contains("is no known caller's address"), "{ok:?}");

    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(containers(&app).is_empty(), "{:?}", containers(&app));
    drop(cleanup);
}

#[test]
fn a_taken_port_80_on_the_gateway_fails_the_deploy_naming_it() {
    need_docker!();
    // The images first: a missing one would be refused before the port.
    ensure_images();
    let dir = TempDir::new("docker-port80");
    let data = dir.path().join("data");
    let app = unique_app("dk80");
    let network = format!("{app}_default");
    let _cleanup = Cleanup {
        data_dir: data.clone(),
        own: Vec::new(),
        own_networks: vec![network.clone()],
    };
    // The app's network made beforehand, and its port 80 held by someone else.
    assert!(!docker(&["network", "create", &network]).is_empty());
    let gw = gateway(&network);
    let holder = std::net::TcpListener::bind(format!("{gw}:80"))
        .unwrap_or_else(|e| panic!("cannot hold {gw}:80 for the test: {e}"));
    let file = local_routes_template(dir.path());
    let out = up_refused(&app, &file, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {gw}:80 for the internal (.local) routes of app {app}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("free that port"), "{stderr}");
    assert!(containers(&app).is_empty(), "{:?}", containers(&app));
    // The network is not turnout's: it was left as it was.
    assert_eq!(gateway(&network), gw);
    drop(holder);
}

/// The app's running containers of `service`: their ids, sorted.
fn ids_of(app: &str, service: &str) -> Vec<String> {
    let filter = format!("label=turnout.service={service}");
    let app_filter = format!("label=turnout.app={app}");
    let mut ids: Vec<String> = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &app_filter,
        "--filter",
        &filter,
    ])
    .lines()
    .map(str::to_string)
    .collect();
    ids.sort();
    ids
}

#[test]
fn the_hello_walkthrough_on_containers() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-hello");
    let data = dir.path().join("data");
    let app = unique_app("dkhello");
    let _cleanup = Cleanup::of(&data);
    let [v1, frontend, backend] = hello_templates(dir.path());
    let server = up(&app, &v1, &data);
    // serviceB's containers call http://servicea.local/ with no proxy.
    assert_eq!(
        answers(&server, "serviceb.localhost", 4),
        BTreeMap::from([("Hello world!".into(), 4)])
    );

    // Frontend release: serviceB-v2 beside serviceB-v1, then switched.
    cli(
        &server,
        &["release", frontend.to_str().unwrap(), "--app", &app],
    );
    server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");
    cli(&server, &["switch", "serviceb.localhost", "--app", &app]);
    assert_eq!(
        answers(&server, "serviceb.localhost", 4),
        BTreeMap::from([("Welcome to the world!".into(), 4)])
    );
    cli(&server, &["confirm", "--app", &app]);
    wait_containers(&app, "serviceB-v1 gone", |c| {
        c.len() == 5 && !c.values().any(|(s, _)| s == "serviceB-v1")
    });
    let b_v2 = ids_of(&app, "serviceB-v2");
    assert_eq!(b_v2.len(), 2, "{b_v2:?}");

    // Backend release: serviceA-v2 shares servicea.local; serviceB-v2 is
    // unchanged and keeps its containers.
    cli(
        &server,
        &["release", backend.to_str().unwrap(), "--app", &app],
    );
    server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");
    cli(
        &server,
        &[
            "weights",
            "servicea.local",
            "serviceA-v1=50",
            "serviceA-v2=50",
            "--app",
            &app,
        ],
    );
    let split = answers(&server, "serviceb.localhost", 12);
    assert_eq!(
        split,
        BTreeMap::from([
            ("Welcome to the AliyunContainerService!".into(), 6),
            ("Welcome to the world!".into(), 6)
        ])
    );
    cli(&server, &["switch", "servicea.local", "--app", &app]);
    cli(&server, &["confirm", "--app", &app]);
    wait_containers(&app, "serviceA-v1 gone", |c| {
        c.len() == 5 && !c.values().any(|(s, _)| s == "serviceA-v1")
    });
    assert_eq!(
        answers(&server, "serviceb.localhost", 4),
        BTreeMap::from([("Welcome to the AliyunContainerService!".into(), 4)])
    );
    assert_eq!(
        ids_of(&app, "serviceB-v2"),
        b_v2,
        "serviceB-v2's containers were replaced"
    );
}

/// The ids of the app's containers, sorted (all states).
fn container_ids(app: &str) -> Vec<String> {
    let filter = format!("label=turnout.app={app}");
    let mut ids: Vec<String> = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// A running container made by hand with `labels`, named `name`.
fn labelled_container(name: &str, labels: &[(&str, &str)]) -> String {
    let mut args = vec!["run".to_string(), "-d".into(), "--name".into(), name.into()];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.push(format!("turnout:{}", tag()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = docker(&args);
    assert!(!id.is_empty(), "docker run {name}");
    id
}

/// `turnout serve --runtime docker` on the data dir of a killed server.
fn serve_again(data: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--runtime", "docker"];
    args.extend_from_slice(extra);
    Server::start(&args, data, &[])
}

/// Issue 11 item 5: `kill -9` of the server in `pending-confirmation`,
/// then `serve --runtime docker`: every container adopted (same ids, none
/// duplicated), a stray carrying this server's id removed, a container of
/// another owner untouched.
#[test]
fn a_server_killed_in_pending_confirmation_adopts_its_containers() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-kill-pending");
    let data = dir.path().join("data");
    let app = unique_app("dkp");
    let stray_name = format!("{app}-stray");
    let foreign_name = format!("{app}-foreign");
    let _cleanup = Cleanup {
        data_dir: data.clone(),
        own: vec![stray_name.clone(), foreign_name.clone()],
        own_networks: Vec::new(),
    };
    let v1 = web_template(dir.path(), "app.yaml", "v1");
    let v2 = web_template(dir.path(), "app-v2.yaml", "v2");
    let mut server = up(&app, &v1, &data);
    cli(&server, &["release", v2.to_str().unwrap(), "--app", &app]);
    server.wait_status(&app, WAIT, |s| state(s) == "pending-confirmation");
    let before = container_ids(&app);
    assert_eq!(before.len(), 4, "{:?}", containers(&app));

    server.kill9();
    let server_id = std::fs::read_to_string(data.join("server-id"))
        .unwrap()
        .trim()
        .to_string();
    // What a killed server can leave: a container of its own that no
    // record knows. And one of another owner, with the app's label.
    let stray = labelled_container(
        &stray_name,
        &[
            ("turnout.app", &app),
            ("turnout.server", &server_id),
            ("turnout.key", "no-record-has-this-key"),
        ],
    );
    let foreign = labelled_container(&foreign_name, &[("turnout.app", &app)]);

    let server = serve_again(&data, &[]);
    let s = server.wait_status(&app, WAIT, |s| {
        state(s) == "pending-confirmation"
            && s["services"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["ready"] == x["scale"])
    });
    assert_eq!(s["release"]["id"], 1, "{s:#}");
    // The stray goes, the foreign container stays, the instances are the
    // same containers.
    // (`containers` lists only turnout's: the foreign one has no service.)
    wait_containers(&app, "the stray removed", |c| !c.contains_key(&stray_name));
    let mut expected = before;
    expected.push(foreign.clone());
    expected.sort();
    assert_eq!(container_ids(&app), expected, "adopted, none duplicated");
    assert!(!container_ids(&app).contains(&stray));
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &foreign]),
        "true"
    );
    // And they still serve.
    assert_eq!(
        answers(&server, "web.localhost", 4),
        BTreeMap::from([("v1".into(), 4)])
    );
    // A little later still none duplicated.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(container_ids(&app), expected);
}

/// Issue 11 item 5: `kill -9` while the release is `deploying` (its new
/// service never passes its probe), then `serve`: the new containers are
/// adopted, not started again.
#[test]
fn a_server_killed_while_deploying_adopts_the_new_containers() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-kill-deploying");
    let data = dir.path().join("data");
    let app = unique_app("dkd");
    let _cleanup = Cleanup::of(&data);
    let v1 = web_template(dir.path(), "app.yaml", "v1");
    // The image has no shell: this probe command can never pass, so the
    // release stays `deploying`.
    let v2 = dir.path().join("app-v2.yaml");
    std::fs::write(
        &v2,
        format!(
            "web-v2:\n  image: turnout:{tag}\n  command: [\"turnout\", \"demo-app\", \"--listen\", \
             \"0.0.0.0:5000\", \"--text\", \"v2\"]\n  labels:\n    aliyun.scale: 2\n    \
             aliyun.routing.port_5000: web\n    aliyun.probe.cmd: \"exit 1\"\n",
            tag = tag()
        ),
    )
    .unwrap();
    let flags = ["--ready-timeout", "600"];
    let mut args = vec!["up", "--runtime", "docker", "--name", &app];
    args.extend_from_slice(&flags);
    args.push(v1.to_str().unwrap());
    let mut server = Server::start(&args, &data, &[]);
    server.wait_line(&format!("app {app} is up"), WAIT);
    let r = server.api(
        "POST",
        &format!("/v1/apps/{app}/releases"),
        Some(&serde_json::json!({"template": std::fs::read_to_string(&v2).unwrap()}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    wait_containers(&app, "4 running", |c| {
        c.values().filter(|(_, st)| st == "running").count() == 4
    });
    assert_eq!(state(&server.status(&app)), "deploying");
    let before = container_ids(&app);
    server.kill9();

    let server = serve_again(&data, &flags);
    let s = server.wait_status(&app, WAIT, |s| state(s) == "deploying");
    assert_eq!(s["release"]["id"], 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(container_ids(&app), before, "adopted, none started again");
    assert_eq!(state(&server.status(&app)), "deploying");
    assert_eq!(
        answers(&server, "web.localhost", 4),
        BTreeMap::from([("v1".into(), 4)])
    );
}

/// Issue 11 item 5: a container killed with `docker kill` is replaced or
/// restarted, and traffic goes on meanwhile: at most 1 % of requests fail,
/// and none waits longer than the router's connect timeout (3 s).
#[test]
fn a_killed_container_is_replaced_while_traffic_goes_on() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-kill-one");
    let data = dir.path().join("data");
    let app = unique_app("dkk");
    let _cleanup = Cleanup::of(&data);
    let v1 = web_template(dir.path(), "app.yaml", "v1");
    let server = up(&app, &v1, &data);
    let victim = format!("{app}-web-v1-1");
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &victim]),
        "true"
    );
    let victim_id = docker(&["inspect", "--format", "{{.Id}}", &victim]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let public = server.public;
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
            let deadline = Instant::now() + Duration::from_secs(60);
            // Bounded: 4,000 requests, 60 s, or until told to stop.
            while ok + failed < 4000 && Instant::now() < deadline {
                if stop.load(std::sync::atomic::Ordering::Relaxed) && ok + failed >= 400 {
                    break;
                }
                let started = Instant::now();
                let r = support::request(public, "GET", "/", &[("Host", "web.localhost")], None);
                slowest = slowest.max(started.elapsed());
                if r.status == 200 && r.body.trim() == "v1" {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed, slowest)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    docker(&["kill", &victim_id]);
    // Replaced (or restarted): two running instances again, one of them
    // not the killed container.
    server.wait_status(&app, WAIT, |s| {
        s["services"][0]["ready"] == 2
            && s["services"][0]["instances"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["state"] == "ready")
    });
    let running = wait_containers(&app, "two running again", |c| {
        c.values().filter(|(_, st)| st == "running").count() == 2
    });
    assert_eq!(running.len(), 2, "{running:?}");
    let killed_state = docker(&["inspect", "--format", "{{.State.Running}}", &victim_id]);
    assert_ne!(killed_state, "true", "the killed container is not running");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, slowest) = load.join().unwrap();
    let total = ok + failed;
    eprintln!("docker kill under load: {failed} of {total} failed, slowest {slowest:?}");
    assert!(total >= 400, "{total}");
    assert!(
        f64::from(failed) <= f64::from(total) * 0.01,
        "{failed} of {total} failed"
    );
    // None waits more than the router's connect timeout: a request that
    // was connecting to the killed container gives up when the server
    // takes the container off the route (it looks every 100 ms), else at
    // the connect timeout, and is retried on the other container. The
    // margin is that retry and this 2-core machine's scheduling under load.
    let connect = turnout_proxy::Timeouts::default().connect;
    let margin = Duration::from_secs(1);
    assert!(
        slowest <= connect + margin,
        "{slowest:?} (connect timeout {connect:?})"
    );
}

/// The remote addresses of the established TCP connections to port 5000
/// in the network namespace of `container`'s main process (its
/// `/proc/<pid>/net/tcp`: that namespace's table, addresses in hex, IPv4
/// in the machine's byte order).
fn peers_on_5000(container: &str) -> Vec<std::net::Ipv4Addr> {
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", container]);
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let addr = |hex: &str| {
        let (ip, port) = hex.split_once(':').unwrap();
        let ip = u32::from_str_radix(ip, 16).unwrap();
        (
            std::net::Ipv4Addr::from(ip.to_ne_bytes()),
            u16::from_str_radix(port, 16).unwrap(),
        )
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (addr(fields[1]), addr(fields[2]), fields[3]);
            (state == "01" && local.1 == 5000).then_some(remote.0)
        })
        .collect()
}

/// Each container's address on `app`'s network, by container id.
fn addresses(app: &str) -> Vec<(String, std::net::Ipv4Addr)> {
    container_ids(app)
        .into_iter()
        .map(|id| {
            let ip = docker(&[
                "inspect",
                "--format",
                &format!("{{{{(index .NetworkSettings.Networks \"{app}_default\").IPAddress}}}}"),
                &id,
            ]);
            (id, ip.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_router_reaches_containers_from_inside_their_network_namespaces() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-netns");
    let template = web_template(dir.path(), "app.yaml", "v1");
    // As the router is started by default, and with the namespaces off:
    // its connections to a container come from the container's own
    // address (its loopback) in the first case, from the network's
    // gateway (the host, over the bridge) in the second.
    for (netns, expect_own) in [("on", true), ("off", false)] {
        let data = dir.path().join(format!("data-{netns}"));
        let app = unique_app("ns");
        let _cleanup = Cleanup::of(&data);
        let mut server = Server::start(
            &[
                "up",
                "--runtime",
                "docker",
                "--name",
                &app,
                template.to_str().unwrap(),
            ],
            &data,
            &[("TURNOUT_DOCKER_NETNS", netns)],
        );
        server.wait_line(&format!("app {app} is up"), WAIT);
        // Keep-alive connections stay pooled in the router, so they are
        // still established when looked at.
        assert_eq!(
            answers(&server, "web.localhost", 20),
            BTreeMap::from([("v1".into(), 20)])
        );
        let gateway = gateway(&format!("{app}_default"));
        let mut seen = 0;
        for (id, own) in addresses(&app) {
            for peer in peers_on_5000(&id) {
                seen += 1;
                let from = if peer == own {
                    "own address"
                } else {
                    "elsewhere"
                };
                assert_eq!(
                    peer == own,
                    expect_own,
                    "TURNOUT_DOCKER_NETNS={netns}: a connection to {id} at {own} came from \
                     {peer} ({from}; the gateway is {gateway})"
                );
                if !expect_own {
                    assert_eq!(peer.to_string(), gateway);
                }
            }
        }
        assert!(
            seen > 0,
            "no router connection to a container was established"
        );
        server.stop();
    }
}
