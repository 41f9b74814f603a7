//! Item 2: internal routes, the forward-proxy listener and callers.

use base64::Engine;

use crate::support::*;

fn basic(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{token}:"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn internal_routes_never_answer_on_public() {
    let svc = Backend::start("servicea").await;
    let web = Backend::start("web").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - host: servicea.local
    callers: [web-v1]
    services: [{{ name: servicea, endpoints: ["{svc}"] }}]
  - host: open.local
    services: [{{ name: open, endpoints: ["{svc}"] }}]
  - host: web.localhost
    services: [{{ name: web-v1, endpoints: ["{web}"] }}]
caller_tokens: {{ tok-web: web-v1, tok-batch: batch }}
"#,
        svc = svc.addr,
        web = web.addr
    ))
    .await;
    let c = client();
    let public = proxy.addrs().public;
    let internal = proxy.addrs().internal.unwrap();
    let auth = basic("tok-web");
    for host in ["servicea.local", "open.local"] {
        // Even with valid credentials, never on the public listener.
        let answer = get(&c, public, host, "/", &[("proxy-authorization", &auth)]).await;
        assert_eq!(answer.status, 404, "{host} answered on the public listener");
    }
    // And public routes are not served on the internal listener.
    assert_eq!(
        get(&c, internal, "web.localhost", "/", &[]).await.status,
        404
    );

    // Forward-proxy form with allowed credentials.
    let ok = raw(
        internal,
        format!(
            "GET http://servicea.local/ HTTP/1.1\r\nHost: servicea.local\r\nProxy-Authorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(svc.hits(), 1);

    // Without credentials: 403 with a hint.
    let refused = get(&c, internal, "servicea.local", "/", &[]).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .body
            .contains("HTTP_PROXY=http://<service>:<token>@"),
        "{}",
        refused.body
    );
    // Known caller, not allowed.
    let batch = basic("tok-batch");
    let refused = get(
        &c,
        internal,
        "servicea.local",
        "/",
        &[("proxy-authorization", &batch)],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .body
            .contains("service batch may not call servicea.local; add it to external_links"),
        "{}",
        refused.body
    );
    let unknown = basic("tok-nobody");
    let refused = get(
        &c,
        internal,
        "servicea.local",
        "/",
        &[("proxy-authorization", &unknown)],
    )
    .await;
    assert_eq!(refused.status, 403);
    // A route without callers is open to any caller of the internal listener.
    assert_eq!(get(&c, internal, "open.local", "/", &[]).await.status, 200);
    // The credential never reaches the upstream.
    let headers = get(
        &c,
        internal,
        "servicea.local",
        "/headers",
        &[("proxy-authorization", &auth)],
    )
    .await;
    assert!(
        !headers.body.contains("proxy-authorization"),
        "{}",
        headers.body
    );
    proxy.shutdown().await;
    svc.kill().await;
    web.kill().await;
}

#[tokio::test]
async fn apps_are_isolated_on_internal_routes() {
    let shop_db = Backend::start("shop-db").await;
    let blog_db = Backend::start("blog-db").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - host: db.local
    app: shop
    callers: [web]
    services: [{{ name: db, endpoints: ["{shop}"] }}]
  - host: blogdb.local
    app: blog
    callers: [web]
    services: [{{ name: db, endpoints: ["{blog}"] }}]
caller_tokens: {{ tok-shop: shop/web, tok-blog: blog/web, tok-bare: web }}
"#,
        shop = shop_db.addr,
        blog = blog_db.addr
    ))
    .await;
    let c = client();
    let internal = proxy.addrs().internal.unwrap();
    let call = |host: &'static str, token: &'static str| {
        let c = c.clone();
        async move {
            let auth = basic(token);
            get(&c, internal, host, "/", &[("proxy-authorization", &auth)]).await
        }
    };
    let ok = call("db.local", "tok-shop").await;
    assert_eq!((ok.status.as_u16(), ok.body.as_str()), (200, "shop-db"));
    let ok = call("blogdb.local", "tok-blog").await;
    assert_eq!((ok.status.as_u16(), ok.body.as_str()), (200, "blog-db"));
    // The web service of another app (or of none) is another caller.
    for token in ["tok-blog", "tok-bare"] {
        let refused = call("db.local", token).await;
        assert_eq!(refused.status, 403, "{token}: {}", refused.body);
        assert!(
            refused
                .body
                .contains("may not call db.local of app shop: apps are isolated"),
            "{}",
            refused.body
        );
    }
    assert_eq!(shop_db.hits(), 1);
    assert_eq!(blog_db.hits(), 1);
    proxy.shutdown().await;
    shop_db.kill().await;
    blog_db.kill().await;
}
