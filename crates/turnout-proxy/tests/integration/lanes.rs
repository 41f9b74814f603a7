//! Issue 12 (item 5): lane affinity. Two frontends' callers, the old
//! (`web-v1`) and the new (`web-v2`), call one internal route whose old
//! and new backends share it 50/50: every call of the new frontend reaches
//! the new backend and every call of the old one the old backend, on both
//! request paths, by credential and by source address; each call is
//! counted under the service that served it.

use base64::Engine;
use turnout_proxy::Proxy;
use turnout_routing::Figures;

use crate::support::*;

fn basic(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("web:{token}"));
    format!("Basic {encoded}")
}

/// The route file: `api.local` split between `api-v1` and `api-v2` by
/// `weights`, with the lanes of a two-route release when `lanes` is set.
fn file(v1: &Backend, v2: &Backend, weights: (u8, u8), lanes: bool) -> String {
    let lanes = if lanes {
        "    lanes:\n      old: { callers: [web-v1], services: [api-v1] }\n      new: { callers: [web-v2], services: [api-v2] }\n"
    } else {
        ""
    };
    format!(
        r#"
routes:
  - host: api.local
    app: shop
    callers: [web-v1, web-v2, batch]
{lanes}    services:
      - {{ name: api-v1, weight: {w1}, endpoints: ["{v1}"] }}
      - {{ name: api-v2, weight: {w2}, endpoints: ["{v2}"] }}
caller_tokens: {{ tok-old: shop/web-v1, tok-new: shop/web-v2, tok-batch: shop/batch }}
caller_addresses: {{ "127.0.0.5": shop/web-v1, "127.0.0.6": shop/web-v2 }}
"#,
        v1 = v1.addr,
        v2 = v2.addr,
        w1 = weights.0,
        w2 = weights.1,
    )
}

/// What `service` served on `api.local`.
fn served(proxy: &Proxy, service: &str) -> Figures {
    proxy
        .figures("shop")
        .into_iter()
        .find(|f| &*f.route == "api.local" && &*f.service == service)
        .unwrap_or_else(|| panic!("no figures of {service}"))
        .served
}

/// The body a call with credential `token` got: through the fast path
/// (HTTP/1.1, keep-alive client) or hyper's (HTTP/1.0, handed over).
async fn call(proxy: &Proxy, token: &str, fast: bool) -> String {
    let internal = proxy.addrs().internal.unwrap();
    let auth = basic(token);
    if fast {
        let answer = get(
            &client(),
            internal,
            "api.local",
            "/",
            &[("proxy-authorization", &auth)],
        )
        .await;
        assert_eq!(answer.status, 200, "{token}: {}", answer.body);
        answer.body
    } else {
        let answer = raw_until_close(
            internal,
            format!(
                "GET http://api.local/ HTTP/1.0\r\nHost: api.local\r\nProxy-Authorization: {auth}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{token}: {answer}");
        answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
    }
}

/// The body a call without a credential from source address `from` got.
async fn call_from(proxy: &Proxy, from: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let internal = proxy.addrs().internal.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(internal).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: api.local\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("answered in time")
    .unwrap();
    let answer = String::from_utf8_lossy(&out).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{from}: {answer}");
    answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn each_frontend_reaches_its_own_backend_at_50_50() {
    let v1 = Backend::start("api-v1").await;
    let v2 = Backend::start("api-v2").await;
    let proxy = proxy(&file(&v1, &v2, (50, 50), true)).await;
    // Interleaved, so that the route's round robin would alternate.
    for _ in 0..50 {
        assert_eq!(call(&proxy, "tok-new", true).await, "api-v2");
        assert_eq!(call(&proxy, "tok-old", true).await, "api-v1");
    }
    for _ in 0..10 {
        assert_eq!(call(&proxy, "tok-new", false).await, "api-v2");
        assert_eq!(call(&proxy, "tok-old", false).await, "api-v1");
        assert_eq!(call_from(&proxy, "127.0.0.6").await, "api-v2");
        assert_eq!(call_from(&proxy, "127.0.0.5").await, "api-v1");
    }
    assert_eq!((v1.hits(), v2.hits()), (70, 70));
    // A caller in no lane gets the route's split.
    let mut batch = [0usize; 2];
    for _ in 0..100 {
        match call(&proxy, "tok-batch", true).await.as_str() {
            "api-v1" => batch[0] += 1,
            "api-v2" => batch[1] += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(batch, [50, 50]);
    // Every call is counted under the service that served it.
    let (one, two) = (served(&proxy, "api-v1"), served(&proxy, "api-v2"));
    assert_eq!((one.requests, one.errors), (120, 0));
    assert_eq!((two.requests, two.errors), (120, 0));
    assert_eq!((v1.hits(), v2.hits()), (120, 120));

    // Lanes off (the release ends, or a table without them): the new
    // frontend's calls take the route's split again.
    proxy.publish(table(&file(&v1, &v2, (50, 50), false)));
    let mut new = [0usize; 2];
    for _ in 0..20 {
        match call(&proxy, "tok-new", true).await.as_str() {
            "api-v1" => new[0] += 1,
            _ => new[1] += 1,
        }
    }
    assert_eq!(new, [10, 10]);
    assert_eq!(served(&proxy, "api-v1").requests, 130);
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}

/// Weight 0 on the new backend (a blue-green release before the switch):
/// the old frontend never reaches it, the new frontend (previewed) does.
#[tokio::test]
async fn a_lane_holds_before_its_backend_takes_traffic() {
    let v1 = Backend::start("api-v1").await;
    let v2 = Backend::start("api-v2").await;
    let proxy = proxy(&file(&v1, &v2, (100, 0), true)).await;
    for _ in 0..20 {
        assert_eq!(call(&proxy, "tok-old", true).await, "api-v1");
        assert_eq!(call(&proxy, "tok-batch", true).await, "api-v1");
        assert_eq!(call(&proxy, "tok-new", true).await, "api-v2");
    }
    assert_eq!((v1.hits(), v2.hits()), (40, 20));
    proxy.shutdown().await;
    v1.kill().await;
    v2.kill().await;
}
