//! Item 2: host matching, context paths, 404 and 503.

use crate::support::*;

#[tokio::test]
async fn hosts_paths_unknown_and_no_service() {
    let a = Backend::start("a").await;
    let api = Backend::start("api").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - hosts: [app.localhost, www.app.localhost]
    services: [{{ name: a, endpoints: ["{a}"] }}]
  - host: app.localhost
    path: /api
    services: [{{ name: api, endpoints: ["{api}"] }}]
  - host: zero.localhost
    services: [{{ name: z, weight: 0, endpoints: ["{a}"] }}]
"#,
        a = a.addr,
        api = api.addr
    ))
    .await;
    let c = client();
    let addr = proxy.addrs().public;
    for host in [
        "app.localhost",
        "APP.LocalHost:8080",
        "app.localhost.",
        "www.app.localhost",
    ] {
        let answer = get(&c, addr, host, "/", &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "a"),
            "{host}"
        );
    }
    assert_eq!(
        get(&c, addr, "app.localhost", "/api/v1", &[]).await.body,
        "api"
    );
    assert_eq!(
        get(&c, addr, "app.localhost", "/api", &[]).await.body,
        "api"
    );
    assert_eq!(get(&c, addr, "app.localhost", "/apix", &[]).await.body, "a");

    let unknown = get(&c, addr, "nope.localhost", "/", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body, "unknown host\n");
    let zero = get(&c, addr, "zero.localhost", "/", &[]).await;
    assert_eq!(zero.status, 503);
    assert!(zero.body.contains("every weight is 0"), "{}", zero.body);

    // Absolute-form request URIs win over the Host header.
    let absolute = raw(
        addr,
        b"GET http://app.localhost/api/x HTTP/1.1\r\nHost: nope.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    proxy.shutdown().await;
    a.kill().await;
    api.kill().await;
}

#[tokio::test]
async fn forwarding_headers_reach_the_upstream() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let c = client();
    let answer = get(
        &c,
        proxy.addrs().public,
        "app.localhost",
        "/headers",
        &[
            ("x-forwarded-for", "10.1.2.3"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
        ],
    )
    .await;
    let body = answer.body;
    assert!(
        body.contains("x-forwarded-for: 10.1.2.3, 127.0.0.1\n"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(body.contains("x-forwarded-host: app.localhost\n"), "{body}");
    assert!(body.contains("host: app.localhost\n"), "{body}");
    assert!(
        !body.contains("x-secret"),
        "hop-by-hop header leaked: {body}"
    );
    proxy.shutdown().await;
    a.kill().await;
}
