//! Every error of the REST API is `{"error": {"code", "message", "hint"}}`
//! JSON with the right status, including what axum and hyper refuse before
//! a handler runs, and a refused request changes nothing. Real HTTP/1.1 on
//! a real `turnout up`; raw bytes where a well-behaved client would not
//! send them.

mod support;

use std::time::Duration;

use support::{Response, Server, TempDir, raw_request};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);

fn up(dir: &TempDir) -> Server {
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    server
}

/// Asserts a JSON error answer with `status` and `code`; returns its
/// message.
fn assert_error(what: &str, r: &Response, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{what}: {r:?}");
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}: {r:?}"
    );
    let e: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|err| panic!("{what}: the body is not JSON ({err}): {r:?}"));
    assert_eq!(e["error"]["code"], code, "{what}: {}", r.body);
    for field in ["message", "hint"] {
        assert!(
            !e["error"][field].as_str().unwrap_or("").is_empty(),
            "{what}: no error.{field}: {}",
            r.body
        );
    }
    e["error"]["message"].as_str().unwrap().to_string()
}

/// A request with the server's token, the head written out by hand.
fn raw(
    server: &Server,
    method: &str,
    target: &[u8],
    headers: &[String],
    body: Vec<u8>,
) -> Response {
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target);
    head.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\n");
    head.extend_from_slice(format!("Host: {}\r\n", server.admin).as_bytes());
    head.extend_from_slice(format!("Authorization: Bearer {}", server.token).as_bytes());
    for h in headers {
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(h.as_bytes());
    }
    if !body.is_empty() {
        head.extend_from_slice(format!("\r\nContent-Length: {}", body.len()).as_bytes());
    }
    raw_request(server.admin, &head, body)
}

fn weights_path() -> String {
    format!("/v1/apps/{APP}/routes/serviceb/weights")
}

#[test]
fn a_body_over_8_mib_is_413_json() {
    let dir = TempDir::new("api-413");
    let server = up(&dir);
    let before = server.status(APP);
    // A valid weights body padded with spaces to 9 MiB: only its size is
    // wrong.
    let mut body = br#"{"weights":{"serviceB-v1":50}}"#.to_vec();
    body.resize(9 * 1024 * 1024, b' ');
    let r = raw(
        &server,
        "PUT",
        weights_path().as_bytes(),
        &["Content-Type: application/json".into()],
        body,
    );
    let message = assert_error("9 MiB body", &r, 413, "payload_too_large");
    assert!(message.contains("8 MiB"), "{message}");
    // Just under the limit, the same body is read (and is valid JSON).
    let mut body = br#"{"weights":{"serviceB-v1":100}}"#.to_vec();
    body.resize(8 * 1024 * 1024 - 16, b' ');
    let r = raw(
        &server,
        "PUT",
        weights_path().as_bytes(),
        &["Content-Type: application/json".into()],
        body,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.status(APP), before);
}

#[test]
fn bad_queries_and_paths_are_400_json() {
    let dir = TempDir::new("api-400");
    let server = up(&dir);
    let before = server.status(APP);
    let cases: &[(&str, &[u8])] = &[
        ("a query value of the wrong type", b"/v1/events?after=abc"),
        ("an unknown query parameter", b"/v1/events?afterr=1"),
        (
            "a bad log tail",
            b"/v1/apps/hello/services/serviceB-v1/logs?tail=-1",
        ),
        (
            "a bad follow flag",
            b"/v1/apps/hello/instances/serviceB-v1.1/logs?follow=maybe",
        ),
        ("invalid UTF-8 in a path", b"/v1/apps/%FF%FE"),
        (
            "invalid UTF-8 in a route",
            b"/v1/apps/hello/routes/%C3%28/switch",
        ),
        ("bad percent-encoding in a path", b"/v1/apps/hel%zzlo"),
        ("a truncated percent-encoding", b"/v1/apps/hello%2"),
        ("bad percent-encoding in a query", b"/v1/events?app=%zz"),
        ("both last and limit", b"/v1/events?last=5&limit=5"),
    ];
    for (what, target) in cases {
        let method = if target.ends_with(b"/switch") {
            "POST"
        } else {
            "GET"
        };
        let r = raw(&server, method, target, &[], Vec::new());
        assert_error(what, &r, 400, "bad_request");
    }
    assert_eq!(server.status(APP), before);
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_json() {
    let dir = TempDir::new("api-404");
    let server = up(&dir);
    let before = server.status(APP);
    for path in ["/v1/nope", "/nope", "/v1/apps/hello/nope", "/v1"] {
        let r = server.api("GET", path, None);
        assert_error(path, &r, 404, "not_found");
    }
    let cases: &[(&str, &str, &[&str])] = &[
        ("DELETE", "/v1/apps", &["GET", "POST"]),
        ("PUT", "/v1/apps/hello", &["GET", "DELETE"]),
        ("GET", "/v1/apps/hello/confirm", &["POST"]),
        ("POST", "/v1/apps/hello/routes/serviceb/weights", &["PUT"]),
        ("DELETE", "/v1/apps/hello/routes/serviceb/switch", &["POST"]),
        ("POST", "/healthz", &["GET"]),
        ("PATCH", "/v1/openapi.json", &["GET"]),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        let r = server.api(method, path, Some("{}"));
        let message = assert_error(&what, &r, 405, "method_not_allowed");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("{what}: no Allow: {r:?}"));
        for m in *allowed {
            assert!(allow.contains(m), "{what}: Allow {allow:?} lacks {m}");
            assert!(message.contains(m), "{what}: {message}");
        }
    }
    assert_eq!(server.status(APP), before);
}

#[test]
fn an_over_long_uri_is_414_json() {
    let dir = TempDir::new("api-414");
    let server = up(&dir);
    let before = server.status(APP);
    let long = format!("/v1/apps/{}", "a".repeat(10 * 1024));
    let r = raw(&server, "GET", long.as_bytes(), &[], Vec::new());
    let message = assert_error("10 KiB path", &r, 414, "uri_too_long");
    assert!(message.contains("8 KiB"), "{message}");
    let long = format!("/v1/events?app={}", "a".repeat(20 * 1024));
    let r = raw(&server, "GET", long.as_bytes(), &[], Vec::new());
    assert_error("20 KiB query", &r, 414, "uri_too_long");
    // Past 64 KiB hyper's parser answers before any of our code runs
    // (ARCHITECTURE.md, turnout-api): still 414, with an empty body.
    let long = format!("/v1/apps/{}", "a".repeat(70 * 1024));
    let r = raw(&server, "GET", long.as_bytes(), &[], Vec::new());
    assert_eq!(r.status, 414, "{r:?}");
    assert_eq!(server.status(APP), before);
}

#[test]
fn oversized_request_headers_are_431_json() {
    let dir = TempDir::new("api-431");
    let server = up(&dir);
    let before = server.status(APP);
    // One huge header.
    let big = format!("X-Big: {}", "b".repeat(100 * 1024));
    let r = raw(&server, "GET", b"/v1/apps", &[big], Vec::new());
    let message = assert_error("a 100 KiB header", &r, 431, "headers_too_large");
    assert!(message.contains("64 KiB"), "{message}");
    // Many small ones, past hyper's default of 100 headers.
    let many: Vec<String> = (0..150).map(|i| format!("X-Many-{i}: {i}")).collect();
    let r = raw(&server, "GET", b"/v1/apps", &many, Vec::new());
    assert_error("150 headers", &r, 431, "headers_too_large");
    // On a call that would change something, too.
    let big = format!("X-Big: {}", "b".repeat(100 * 1024));
    let r = raw(
        &server,
        "PUT",
        weights_path().as_bytes(),
        &[big, "Content-Type: application/json".into()],
        br#"{"weights":{"serviceB-v1":50}}"#.to_vec(),
    );
    assert_error("a 100 KiB header on PUT", &r, 431, "headers_too_large");
    assert_eq!(server.status(APP), before);
}

#[test]
fn a_body_that_is_not_json_is_415_json() {
    let dir = TempDir::new("api-415");
    let server = up(&dir);
    let before = server.status(APP);
    // A body the handler would accept, were it declared JSON.
    let body = br#"{"weights":{"serviceB-v1":50}}"#;
    let cases: &[(&str, Option<&str>)] = &[
        ("text/plain", Some("text/plain")),
        ("form-urlencoded", Some("application/x-www-form-urlencoded")),
        ("multipart", Some("multipart/form-data; boundary=x")),
        ("a JSON lookalike", Some("application/jsonx")),
        ("no Content-Type", None),
    ];
    for (what, ct) in cases {
        let headers: Vec<String> = ct.iter().map(|ct| format!("Content-Type: {ct}")).collect();
        let r = raw(
            &server,
            "PUT",
            weights_path().as_bytes(),
            &headers,
            body.to_vec(),
        );
        let message = assert_error(what, &r, 415, "unsupported_media_type");
        assert!(message.contains("application/json"), "{what}: {message}");
    }
    assert_eq!(server.status(APP), before);
    // JSON with parameters, and `+json` types, are JSON; an empty body
    // needs no Content-Type (the CLI's confirm and rollback send none).
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        let r = raw(
            &server,
            "PUT",
            weights_path().as_bytes(),
            &[format!("Content-Type: {ct}")],
            br#"{"weights":{"serviceB-v1":100}}"#.to_vec(),
        );
        assert_eq!(r.status, 200, "{ct}: {r:?}");
    }
    let r = raw(
        &server,
        "POST",
        format!("/v1/apps/{APP}/rollback").as_bytes(),
        &["Content-Length: 0".into()],
        Vec::new(),
    );
    assert_error("rollback without a release", &r, 409, "conflict");
    assert_eq!(server.status(APP), before);
}

#[test]
fn integral_weights_are_accepted_and_others_refused_naming_the_service() {
    let dir = TempDir::new("api-weights");
    let server = up(&dir);
    let before = server.status(APP);
    let weight = |s: &serde_json::Value| {
        s["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "serviceb.localhost")
            .unwrap()["weights"]["serviceB-v1"]
            .clone()
    };
    assert_eq!(weight(&before), 100);
    let r = server.api(
        "PUT",
        &weights_path(),
        Some(r#"{"weights":{"serviceB-v1":50.0}}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(weight(&r.json()), 50);
    let r = server.api(
        "PUT",
        &weights_path(),
        Some(r#"{"weights":{"serviceB-v1":1e2}}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(weight(&r.json()), 100);
    let r = server.api(
        "PUT",
        &weights_path(),
        Some(r#"{"weights":{"serviceB-v1":100.0}}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.status(APP), before);
    for bad in [
        "100.5", "-1", "101", "-0.5", "1e3", "\"50\"", "null", "true",
    ] {
        let body = format!(r#"{{"weights":{{"serviceB-v1":{bad}}}}}"#);
        let r = server.api("PUT", &weights_path(), Some(&body));
        let message = assert_error(bad, &r, 422, "invalid");
        assert!(message.contains("serviceB-v1"), "{bad}: {message}");
        assert!(message.contains("0..100"), "{bad}: {message}");
    }
    let r = server.api("PUT", &weights_path(), Some(r#"{"weights":{}}"#));
    assert_error("no weights", &r, 422, "invalid");
    assert_eq!(server.status(APP), before);
}

#[test]
fn a_progressive_or_bad_plan_is_refused_and_starts_nothing() {
    let dir = TempDir::new("api-plan");
    let server = up(&dir);
    let before = server.status(APP);
    let releases = || {
        server
            .api("GET", &format!("/v1/apps/{APP}/releases"), None)
            .body
    };
    let history = releases();
    let path = format!("/v1/apps/{APP}/releases");
    let frontend =
        std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
            .unwrap();
    let gray_block =
        format!("{frontend}x-turnout:\n  release:\n    strategy: gray\n    steps: [10, 50, 100]\n");

    // The template's own block asks for gray with an outside metric's
    // gate at a URL the server cannot query (no TLS client).
    let gated = format!(
        "{gray_block}    analysis: {{ prometheus: {{ url: 'https://127.0.0.1:9', query: up, max: 1 }} }}\n"
    );
    let body = serde_json::json!({"template": gated, "source_name": "v2.yaml"}).to_string();
    let message = assert_error(
        "gray with a prometheus gate over https",
        &server.api("POST", &path, Some(&body)),
        422,
        "invalid",
    );
    assert_eq!(
        message,
        "analysis.prometheus.url: https://127.0.0.1:9 is not an http:// URL (the server queries Prometheus over plain HTTP)"
    );

    // The request's overrides ask for an A/B test, old field and new,
    // whose rule sends requests to a service the test does not share.
    let elsewhere = serde_json::json!({"rules": [{"match": {"header": {"x-variant": "a"}}, "service": "serviceA-v1"}]});
    for body in [
        serde_json::json!({"template": frontend, "plan": {"strategy": "ab-test", "ab": elsewhere}}),
        serde_json::json!({"template": frontend, "strategy": "ab-test", "plan": {"ab": elsewhere}}),
    ] {
        let r = server.api("POST", &path, Some(&body.to_string()));
        let message = assert_error("progressive override", &r, 422, "invalid");
        assert_eq!(
            message,
            "the A/B rule sends requests to serviceA-v1, which is on no route the test shares (serviceb.localhost)"
        );
    }

    // A bad merged plan: 422 with the diagnostics, the flag named.
    let body = serde_json::json!({"template": gray_block, "plan": {"steps": [50, 10]}}).to_string();
    let r = server.api("POST", &path, Some(&body));
    let message = assert_error("steps down", &r, 422, "invalid");
    assert!(
        message.starts_with(
            "the release plan has 1 errors; the first: flags: --steps: the steps do not increase"
        ),
        "{message}"
    );
    let d = &r.json()["error"]["diagnostics"];
    assert_eq!(d[0]["path"], "--steps", "{d}");
    assert_eq!(d[0]["file"], "flags", "{d}");

    // A bad block is a template error like any other, at its line.
    let bad_block =
        format!("{frontend}x-turnout:\n  release:\n    strategy: gray\n    pause: 30\n");
    let body = serde_json::json!({"template": bad_block, "source_name": "v2.yaml"}).to_string();
    let r = server.api("POST", &path, Some(&body));
    let message = assert_error("pause without unit", &r, 422, "invalid");
    assert!(
        message.contains("x-turnout.release.pause: the duration \"30\" has no unit"),
        "{message}"
    );

    // Malformed overrides and a disagreement are 400.
    for body in [
        serde_json::json!({"template": frontend, "plan": {"stpes": [10]}}),
        serde_json::json!({"template": frontend, "plan": {"analysis": {"window": "30"}}}),
        serde_json::json!({"template": frontend, "strategy": "standard", "plan": {"strategy": "gray"}}),
        serde_json::json!({"template": frontend, "strategy": "grey"}),
    ] {
        let r = server.api("POST", &path, Some(&body.to_string()));
        assert_error(&body.to_string(), &r, 400, "bad_request");
    }

    assert_eq!(server.status(APP), before);
    assert_eq!(releases(), history, "no release was recorded");

    // The same template released blue-green by the override: accepted,
    // the block's other fields are warnings only.
    let body =
        serde_json::json!({"template": gray_block, "plan": {"strategy": "blue-green"}}).to_string();
    let r = server.api("POST", &path, Some(&body));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["release"]["strategy"], "blue-green");
}
