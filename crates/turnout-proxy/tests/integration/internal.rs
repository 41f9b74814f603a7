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
        refused.body.contains("HTTP_PROXY=http://<token>@"),
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
