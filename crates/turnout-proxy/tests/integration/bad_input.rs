//! Bad input: malformed HTTP, smuggling, oversized heads, bad route files.

use crate::support::*;

#[tokio::test]
async fn malformed_http_gets_400_and_the_proxy_keeps_serving() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost app.localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1, 2\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let answer = raw(addr, garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} -> {answer:?}"
        );
    }
    let forwarded = a.hits();
    // An oversized head.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: {}\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let answer = raw(addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    // A request without any host.
    let answer = raw(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        get(&client(), addr, "app.localhost", "/", &[]).await.body,
        "a"
    );
    assert_eq!(
        a.hits(),
        forwarded + 1,
        "nothing malformed reached the backend"
    );
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn ambiguous_framing_gets_400_and_is_not_forwarded() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let head = "POST /echo HTTP/1.1\r\nHost: app.localhost\r\n";
    for (framing, body) in [
        // Both framings, in either order.
        (
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            "4\r\nping\r\n0\r\n\r\n",
        ),
        // Transfer codings other than chunked alone.
        ("Transfer-Encoding: gzip\r\n", "0\r\n\r\n"),
        ("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        ("Transfer-Encoding: identity\r\n", ""),
        // Content-Length values that differ.
        ("Content-Length: 4\r\nContent-Length: 5\r\n", "ping"),
    ] {
        let request = format!("{head}{framing}\r\n{body}");
        let answer = raw_until_close(addr, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{framing:?} -> {answer}"
        );
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    }
    assert_eq!(a.hits(), 0, "nothing ambiguous reached the backend");

    // One framing, stated twice the same way, is fine.
    let answer = raw_until_close(
        addr,
        format!("{head}Content-Length: 4\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping")
            .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ping"), "{answer}");

    // On one keep-alive connection: a body that looks like an ambiguous
    // head is just a body, the next real request is served, and the
    // ambiguous one after it is refused and ends the connection.
    let fake = "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
    let pipelined = format!(
        "{head}Content-Length: {}\r\n\r\n{fake}\
         {head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{fake}\r\n0\r\n\r\n\
         GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
         {head}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n\
         GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        fake.len(),
        fake.len()
    );
    let before = a.hits();
    let answer = raw_until_close(addr, pipelined.as_bytes()).await;
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "400"], "{answer}");
    assert_eq!(answer.matches(fake).count(), 2, "{answer}");
    assert_eq!(a.hits(), before + 3);
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn bad_route_file_keeps_the_old_table() {
    let a = Backend::start("a").await;
    let dir = std::env::temp_dir().join(format!("turnout-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.yaml");
    std::fs::write(&path, split_file(&[("a", 100, &a)], "")).unwrap();
    let proxy = proxy(&std::fs::read_to_string(&path).unwrap()).await;
    let publisher = proxy.publisher();
    let c = client();
    let addr = proxy.addrs().public;
    for (bad, expected) in [
        ("routes: [", "route file is not valid"),
        (
            "routes:\n  - host: app.localhost\n    servics: []\n",
            "servics",
        ),
        (
            "routes:\n  - host: app.localhost\n    services: [{ name: a, weight: 150, endpoints: [\"127.0.0.1:1\"] }]\n",
            "routes[0].services[0].weight: weight must be an integer from 0 to 100, got 150",
        ),
        (
            "routes:\n  - host: app.localhost\n    rules: [{ match: { header: { x: \"1\" } }, service: ghost }]\n    services: [{ name: a, endpoints: [\"127.0.0.1:1\"] }]\n",
            "unknown service \"ghost\"",
        ),
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = publisher.reload_file(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(
            err.contains("routes.yaml"),
            "the message names the file: {err}"
        );
        assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "a");
    }
    std::fs::write(&path, "routes: []\n").unwrap();
    publisher.reload_file(&path).unwrap();
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.status, 404);
    std::fs::remove_dir_all(&dir).unwrap();
    proxy.shutdown().await;
    a.kill().await;
}
