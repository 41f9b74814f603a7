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

/// Two routes to two backends: `app.localhost` (what the bad requests are
/// for) and `hyper.localhost`, for the requests that move a connection to
/// the general path first; so `app` must receive nothing at all.
fn two_routes(app: &Backend, other: &Backend) -> String {
    format!(
        "routes:\n  - host: app.localhost\n    services: [{{ name: app, endpoints: [\"{}\"] }}]\n  - host: hyper.localhost\n    services: [{{ name: other, endpoints: [\"{}\"] }}]\n",
        app.addr, other.addr
    )
}

/// What comes before a bad request on its connection, so that it meets
/// each path: nothing (the fast path reads it first and hands over what it
/// does not serve), an ordinary request (the fast path serves it, then
/// hands over mid-way), and a chunked one (the connection is on hyper
/// already). With the statuses of the answers to them.
const BEFORE: [(&str, &[&str]); 3] = [
    ("", &[]),
    ("GET / HTTP/1.1\r\nHost: hyper.localhost\r\n\r\n", &["200"]),
    (
        "POST /echo HTTP/1.1\r\nHost: hyper.localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n",
        &["200"],
    ),
];

fn statuses(answer: &str) -> Vec<&str> {
    answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect()
}

/// Sends `request` after each of [`BEFORE`] on a new connection and checks
/// that it alone gets 400 and that the connection closes after it.
async fn refused_on_every_path(addr: std::net::SocketAddr, request: &str) {
    for (before, answers) in BEFORE {
        let answer = raw_until_close(addr, format!("{before}{request}").as_bytes()).await;
        let mut expected = answers.to_vec();
        expected.push("400");
        assert_eq!(
            statuses(&answer),
            expected,
            "{request:?} after {before:?} -> {answer}"
        );
    }
}

#[tokio::test]
async fn duplicate_or_invalid_host_gets_400_and_is_not_forwarded() {
    let (app, other) = (Backend::start("app").await, Backend::start("other").await);
    let proxy = proxy(&two_routes(&app, &other)).await;
    let addr = proxy.addrs().public;
    for hosts in [
        // RFC 9112 §3.2: more than one Host field, even with one value.
        "Host: app.localhost\r\nHost: app.localhost\r\n",
        "Host: app.localhost\r\nHost: evil.localhost\r\n",
        "host: app.localhost\r\nHOST: app.localhost:80\r\n",
        // Not host[:port].
        "Host: user@app.localhost\r\n",
        "Host: user:secret@app.localhost:80\r\n",
        "Host: app.localhost/x\r\n",
        "Host: app.localhost:80:80\r\n",
        "Host: app.localhost:8o\r\n",
        "Host: app.localhost:123456\r\n",
        "Host: app.localhost,evil.localhost\r\n",
        "Host: app.localhost evil.localhost\r\n",
        "Host: [::1\r\n",
        "Host: app.local\thost\r\n",
    ] {
        refused_on_every_path(addr, &format!("GET / HTTP/1.1\r\n{hosts}\r\n")).await;
        // Absolute form: the target names the host, but the Host field
        // must still be one valid field.
        refused_on_every_path(
            addr,
            &format!("GET http://app.localhost/ HTTP/1.1\r\n{hosts}\r\n"),
        )
        .await;
    }
    // With a body, which is left unread.
    refused_on_every_path(
        addr,
        "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nHost: app.localhost\r\nContent-Length: 4\r\n\r\nping",
    )
    .await;
    assert_eq!(app.received(), 0, "nothing reached the backend");
    assert_eq!(app.hits(), 0);

    // Valid spellings are served, on both paths.
    for host in [
        "app.localhost",
        "APP.localhost.",
        "app.localhost:8080",
        "app.localhost:",
    ] {
        for (before, answers) in BEFORE {
            let request =
                format!("{before}GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let answer = raw_until_close(addr, request.as_bytes()).await;
            let mut expected = answers.to_vec();
            expected.push("200");
            assert_eq!(
                statuses(&answer),
                expected,
                "{host:?} after {before:?}: {answer}"
            );
            assert!(answer.ends_with("\r\n\r\napp"), "{answer}");
        }
    }
    assert!(app.received() > 0);
    proxy.shutdown().await;
    app.kill().await;
    other.kill().await;
}

#[tokio::test]
async fn malformed_chunked_bodies_get_400_and_nothing_is_forwarded() {
    let (app, other) = (Backend::start("app").await, Backend::start("other").await);
    let proxy = proxy(&two_routes(&app, &other)).await;
    let addr = proxy.addrs().public;
    let head = "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        // A chunk size that overflows 64 bits.
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "10000000000000005\r\nhello\r\n0\r\n\r\n",
        // Negative.
        "-5\r\nhello\r\n0\r\n\r\n",
        // No CRLF after the chunk data.
        "5\r\nhelloXY0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        // Garbage in the size line.
        "5 x\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5;ext\nx\r\nhello\r\n0\r\n\r\n",
        // A good chunk, then a bad one.
        "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
        // A last chunk with a broken end.
        "5\r\nhello\r\n0\r\n\rX",
    ] {
        refused_on_every_path(addr, &format!("{head}{body}")).await;
        // Idempotent methods too (those are buffered for retries).
        refused_on_every_path(
            addr,
            &format!("PUT /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
        )
        .await;
    }
    assert_eq!(app.received(), 0, "nothing reached the backend");
    assert_eq!(app.hits(), 0);

    // Well-formed chunked bodies pass whole, small or larger than what is
    // read before forwarding, after each of the openings.
    let big = "y".repeat(200 * 1024);
    for body in ["hello world".to_owned(), big] {
        let chunked = format!(
            "{:x};ext=1\r\n{}\r\n{:x}\r\n{}\r\n0\r\nx-trailer: 1\r\n\r\n",
            3,
            &body[..3],
            body.len() - 3,
            &body[3..]
        );
        for (before, answers) in BEFORE {
            let request = format!(
                "{before}POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}"
            );
            let answer = raw_until_close(addr, request.as_bytes()).await;
            let mut expected = answers.to_vec();
            expected.push("200");
            assert_eq!(
                statuses(&answer),
                expected,
                "after {before:?}: {answer:.200}"
            );
            assert!(answer.ends_with(&body), "the body came back whole");
        }
    }
    proxy.shutdown().await;
    app.kill().await;
    other.kill().await;
}

#[tokio::test]
async fn a_chunked_body_that_breaks_while_streaming_is_never_completed_upstream() {
    // An upstream that reads until the proxy closes and never answers, and
    // reports the bytes of each connection that carried any.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let accept = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes).await;
                if !bytes.is_empty() {
                    let _ = tx.send(bytes);
                }
            });
        }
    });
    let proxy = proxy(&format!(
        "routes:\n  - host: app.localhost\n    health: {{ interval_ms: 60000 }}\n    services: [{{ name: a, endpoints: [\"{upstream}\"] }}]\n"
    ))
    .await;
    let addr = proxy.addrs().public;
    // More than is read before forwarding, then a chunk size that is not
    // one.
    let data = "z".repeat(256 * 1024);
    for method in ["POST", "PUT"] {
        let request = format!(
            "{method} /upload HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{data}\r\nnot-a-size\r\n\r\n",
            data.len()
        );
        let answer = raw_until_close(addr, request.as_bytes()).await;
        assert_eq!(statuses(&answer), ["400"], "{method}: {answer}");
        let bytes = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
            .await
            .expect("the upstream connection was closed in time")
            .expect("the upstream got the start of the request");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with(&format!("{method} /upload HTTP/1.1\r\n")),
            "{text:.200}"
        );
        // The body streamed as chunks and was cut: no last chunk, so no
        // complete request.
        assert!(
            text.contains("transfer-encoding: chunked\r\n"),
            "{text:.400}"
        );
        assert!(!text.contains("\r\n0\r\n"), "the upstream saw a last chunk");
        assert!(!text.contains("not-a-size"), "{text:.400}");
        assert!(bytes.len() < request.len() + 1024);
    }
    proxy.shutdown().await;
    accept.abort();
}
