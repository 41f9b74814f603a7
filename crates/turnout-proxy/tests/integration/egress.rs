//! Issue 9 item 3: the internal listener passes known callers' requests
//! for other hosts on (egress); unknown callers get 403; the public
//! listener never does.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::support::*;

/// `Proxy-Authorization` for `HTTP_PROXY=http://<service>:<token>@...`.
fn basic(service: &str, token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{service}:{token}"));
    format!("Basic {encoded}")
}

/// A table with one internal route, a known caller with an app and one
/// without, and (so that the host is known to the table) one public route.
fn file(inside: &Backend) -> String {
    format!(
        r#"
routes:
  - host: servicea.local
    callers: [web-v1]
    services: [{{ name: servicea, endpoints: ["{inside}"] }}]
  - host: scoped.local
    path: /api
    services: [{{ name: scoped, endpoints: ["{inside}"] }}]
  - host: app.localhost
    services: [{{ name: app, endpoints: ["{inside}"] }}]
caller_tokens: {{ tok-web: web-v1, tok-shop: shop/web }}
"#,
        inside = inside.addr
    )
}

/// A backend outside the route table, on another loopback address (Linux
/// routes all of 127/8 to lo).
async fn outside() -> Backend {
    Backend::start_on("outside", "127.0.0.2:0".parse().unwrap()).await
}

#[tokio::test]
async fn known_callers_reach_other_hosts_by_uri_and_by_host() {
    let inside = Backend::start("inside").await;
    let outside = outside().await;
    let proxy = proxy(&file(&inside)).await;
    let internal = proxy.addrs().internal.unwrap();
    let to = outside.addr;
    let auth = basic("web-v1", "tok-web");

    // A forward-proxy request: the URI's authority wins over Host.
    // Hop-by-hop fields and the credential stay here.
    let answer = raw_until_close(
        internal,
        format!(
            "GET http://{to}/headers HTTP/1.1\r\nHost: servicea.local\r\nProxy-Authorization: {auth}\r\nX-Private: 1\r\nX-Kept: 1\r\nConnection: close, x-private\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = answer.to_ascii_lowercase();
    assert!(seen.contains(&format!("host: {to}\n")), "{answer}");
    assert!(seen.contains("x-kept: 1\n"), "{answer}");
    for gone in ["proxy-authorization", "x-private"] {
        assert!(
            !seen.contains(&format!("{gone}:")),
            "{gone} passed on: {answer}"
        );
    }
    assert_eq!(outside.hits(), 1);

    // By Host header (origin form), through the fast path's hand-off, from
    // a caller with an app, and with a request body.
    let c = client();
    let shop = basic("web", "tok-shop");
    let answer = get(
        &c,
        internal,
        &to.to_string(),
        "/",
        &[("proxy-authorization", &shop)],
    )
    .await;
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "outside")
    );
    let echo = c
        .request(
            http::Request::post(format!("http://{internal}/echo"))
                .header("host", to.to_string())
                .header("proxy-authorization", &auth)
                .body(Full::new(Bytes::from_static(b"posted")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(
        &echo.into_body().collect().await.unwrap().to_bytes()[..],
        b"posted"
    );
    // HTTP/1.0 goes to hyper directly, with the same result.
    let answer = raw_until_close(
        internal,
        format!("GET http://{to}/ HTTP/1.0\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.0 200") && answer.ends_with("outside"),
        "{answer}"
    );
    assert_eq!(outside.hits(), 4);

    // Internal routes are still routed, not passed on.
    let routed = get(
        &c,
        internal,
        "servicea.local",
        "/",
        &[("proxy-authorization", &auth)],
    )
    .await;
    assert_eq!(routed.body, "inside");

    // A host an internal route serves at another path is unknown there,
    // as before: it is not passed on by name.
    for (version, path) in [("HTTP/1.1", "/other"), ("HTTP/1.0", "/")] {
        let unknown = raw(
            internal,
            format!(
                "GET http://scoped.local{path} {version}\r\nProxy-Authorization: {auth}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(unknown.starts_with(&format!("{version} 404")), "{unknown}");
    }
    assert_eq!(inside.hits(), 1);

    // The public listener never passes anything on.
    let public = proxy.addrs().public;
    let refused = get(
        &c,
        public,
        &to.to_string(),
        "/",
        &[("proxy-authorization", &auth)],
    )
    .await;
    assert_eq!(refused.status, 404);
    let refused = raw(
        public,
        format!("GET http://{to}/ HTTP/1.1\r\nHost: {to}\r\nProxy-Authorization: {auth}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 404"), "{refused}");
    assert_eq!(outside.hits(), 4);
    proxy.shutdown().await;
    inside.kill().await;
    outside.kill().await;
}

#[tokio::test]
async fn unknown_callers_get_403_for_other_hosts() {
    let inside = Backend::start("inside").await;
    let outside = outside().await;
    let proxy = proxy(&file(&inside)).await;
    let internal = proxy.addrs().internal.unwrap();
    let to = outside.addr;
    let c = client();
    let unknown = basic("web-v1", "tok-nobody");
    for headers in [vec![], vec![("proxy-authorization", unknown.as_str())]] {
        let refused = get(&c, internal, &to.to_string(), "/", &headers).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        let hint = if headers.is_empty() {
            "HTTP_PROXY=http://<service>:<token>@<internal-address>"
        } else {
            "the proxy credential is not known to this router"
        };
        assert!(refused.body.contains(hint), "{}", refused.body);
        assert!(
            refused
                .body
                .contains(&format!("{to} is not an internal route")),
            "{}",
            refused.body
        );
    }
    for auth in [String::new(), format!("Proxy-Authorization: {unknown}\r\n")] {
        let refused = raw(
            internal,
            format!("GET http://{to}/ HTTP/1.1\r\nHost: {to}\r\n{auth}\r\n").as_bytes(),
        )
        .await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    }
    // A public route's host is no internal route either: refused without
    // a known credential, as before never served from the internal side.
    let refused = get(&c, internal, "app.localhost", "/", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(outside.hits(), 0);
    assert_eq!(inside.hits(), 0);
    proxy.shutdown().await;
    inside.kill().await;
    outside.kill().await;
}

#[tokio::test]
async fn egress_streams_counts_and_names_the_host_it_cannot_reach() {
    let inside = Backend::start("inside").await;
    let outside = outside().await;
    let proxy = proxy(&file(&inside)).await;
    let internal = proxy.addrs().internal.unwrap();
    let to = outside.addr;
    let auth = basic("web", "tok-shop");
    let c = client();

    // The response is streamed: its first part arrives while the rest is
    // still held back by the backend.
    let response = c
        .request(
            http::Request::get(format!("http://{internal}/stream"))
                .header("host", to.to_string())
                .header("proxy-authorization", &auth)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-backend"], "outside");
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first part came before the rest")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    outside.release();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"rest\n");

    // Nothing listens here: 502 naming the host.
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let failed = get(
        &c,
        internal,
        &gone.to_string(),
        "/",
        &[("proxy-authorization", &auth)],
    )
    .await;
    assert_eq!(failed.status, 502);
    assert!(
        failed.body.starts_with(&format!("cannot reach {gone}: ")),
        "{}",
        failed.body
    );

    let admin = proxy.addrs().admin.unwrap();
    let metrics = get(&c, admin, "localhost", "/metrics", &[]).await.body;
    for expected in [
        "turnout_egress_requests_total{app=\"shop\",service=\"web\",code=\"2xx\"} 1",
        "turnout_egress_requests_total{app=\"shop\",service=\"web\",code=\"5xx\"} 1",
    ] {
        assert!(metrics.contains(expected), "missing {expected}\n{metrics}");
    }
    proxy.shutdown().await;
    inside.kill().await;
    outside.kill().await;
}
