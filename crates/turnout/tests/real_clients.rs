//! Service-to-service calls made by real HTTP clients running as
//! instances (issue 9): Python's `urllib.request` and `requests`, and
//! curl, each reading the `HTTP_PROXY` turnout gives it, reach the
//! internal route they list in `external_links`; a caller without
//! credentials and one the route does not list get 403; and a known
//! caller's call to a host that is no internal route (a second loopback
//! server, not covered by `NO_PROXY`) is passed on to that host.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use support::{Server, TempDir};

const WAIT: Duration = Duration::from_secs(30);

/// The clients' template: `api` on the internal route api.local, and one
/// caller per client, each on a public route of its own name.
fn template(dir: &std::path::Path) -> std::path::PathBuf {
    let caller = support::root().join("crates/turnout/tests/clients/caller.py");
    let caller = caller.display();
    let mut text = String::from(
        "services:\n  api:\n    command: turnout demo-app --text 'world!'\n    labels:\n      turnout.route.5000: api.local\n",
    );
    for (name, client, links) in [
        ("urllib", "urllib", true),
        ("requests", "requests", true),
        ("curl", "curl", true),
        ("bare", "bare", true),
        ("intruder", "urllib", false),
    ] {
        text.push_str(&format!(
            "  {name}:\n    command: [\"python3\", \"{caller}\", \"{client}\"]\n    labels:\n      turnout.route.8000: {name}\n"
        ));
        if links {
            text.push_str("    external_links: [\"api.local\"]\n");
        }
    }
    let file = dir.join("clients.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A plain HTTP server on 127.0.0.2 (outside `NO_PROXY`) answering
/// "egress ok" to every request, for as long as the test runs.
fn outside_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\negress ok",
            );
        }
    });
    addr
}

/// Asks the caller on route `name` to make its call; "<status> <body>".
fn call(server: &Server, name: &str, target: Option<&str>) -> String {
    let path = match target {
        Some(t) => format!("/?target={t}"),
        None => "/".to_string(),
    };
    let host = format!("{name}.localhost");
    let r = support::request(server.public, "GET", &path, &[("Host", &host)], None);
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    r.body
}

#[test]
fn real_clients_call_internal_routes_and_the_outside_through_the_router() {
    if !support::have("python3", &["-c", "import requests"])
        || !support::have("curl", &["--version"])
    {
        // .ci/run installs both; elsewhere say why nothing ran.
        eprintln!("skipped: needs python3 with requests, and curl");
        return;
    }
    let dir = TempDir::new("clients");
    let file = template(dir.path());
    let data = dir.path().join("data");
    let file_arg = file.to_string_lossy().into_owned();
    let server = Server::start(&["up", &file_arg, "--name", "clients"], &data, &[]);
    server.wait_line("app clients is up", WAIT);

    for client in ["urllib", "requests", "curl"] {
        assert_eq!(
            call(&server, client, None),
            "200 world!",
            "{client} reaches api.local with the credentials of HTTP_PROXY"
        );
    }
    let bare = call(&server, "bare", None);
    assert!(bare.starts_with("403 "), "no credentials: {bare}");
    let intruder = call(&server, "intruder", None);
    assert!(intruder.starts_with("403 "), "not listed: {intruder}");
    assert!(intruder.contains("external_links"), "a hint: {intruder}");

    // Egress: a known caller's call elsewhere is passed on; an unknown
    // caller's is refused.
    let outside = outside_server();
    let target = format!("http://{outside}/x");
    for client in ["urllib", "requests", "curl"] {
        assert_eq!(
            call(&server, client, Some(&target)),
            "200 egress ok",
            "{client} reaches {outside} through the router"
        );
    }
    let bare = call(&server, "bare", Some(&target));
    assert!(bare.starts_with("403 "), "unknown caller, egress: {bare}");
}

/// A release body for a template of examples/hello-python.
fn python_template(file: &str) -> String {
    let text =
        std::fs::read_to_string(support::root().join("examples/hello-python").join(file)).unwrap();
    serde_json::json!({ "template": text, "source_name": file }).to_string()
}

/// The README's walkthrough when serviceB is a Python `requests` program
/// (examples/hello-python): the same answers as with `turnout demo-app`.
#[test]
fn seed_walkthrough_with_python_requests_services() {
    if !support::have("python3", &["-c", "import requests"]) {
        eprintln!("skipped: needs python3 with requests");
        return;
    }
    const APP: &str = "hello-python";
    let dir = TempDir::new("python-seed");
    let server = Server::start(&["up", "examples/hello-python/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello-python is up", WAIT);
    let state = |s: &serde_json::Value| s["release"]["state"].as_str().unwrap_or("").to_string();
    let answers = |n: usize| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|_| {
                let r = server.get("serviceb.localhost");
                assert_eq!(r.status, 200, "{}", r.body);
                r.body
            })
            .collect()
    };
    let ok = |r: support::Response| assert!(r.status < 300, "{} {}", r.status, r.body);
    let weights = |route: &str, body: &str| {
        ok(server.api(
            "PUT",
            &format!("/v1/apps/{APP}/routes/{route}/weights"),
            Some(body),
        ));
    };
    let release = |file: &str| {
        ok(server.api(
            "POST",
            &format!("/v1/apps/{APP}/releases"),
            Some(&python_template(file)),
        ));
        server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    };

    assert_eq!(answers(4), ["Hello world!".to_string()].into());
    release("app-frontend-v2.yaml");
    assert_eq!(answers(4), ["Hello world!".to_string()].into());
    weights("serviceb", r#"{"weights":{"serviceB-v2":100}}"#);
    assert_eq!(
        answers(8),
        [
            "Hello world!".to_string(),
            "Welcome to the world!".to_string()
        ]
        .into()
    );
    ok(server.api(
        "POST",
        &format!("/v1/apps/{APP}/routes/serviceb/switch"),
        None,
    ));
    assert_eq!(answers(4), ["Welcome to the world!".to_string()].into());
    ok(server.api("POST", &format!("/v1/apps/{APP}/confirm"), None));
    release("app-backend-v2.yaml");
    weights(
        "servicea.local",
        r#"{"weights":{"serviceA-v2":100,"serviceA-v1":0}}"#,
    );
    assert_eq!(
        answers(4),
        ["Welcome to the AliyunContainerService!".to_string()].into()
    );
    ok(server.api("POST", &format!("/v1/apps/{APP}/rollback"), None));
    assert_eq!(answers(4), ["Welcome to the world!".to_string()].into());
}
