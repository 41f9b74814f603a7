//! Item 2: internal routes, the forward-proxy listener and callers.

use base64::Engine;

use crate::support::*;

fn basic(token: &str) -> String {
    basic_pair(token, "")
}

/// `Proxy-Authorization` for `HTTP_PROXY=http://<user>:<password>@...`.
fn basic_pair(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

const CALLERS: &str = r#"
routes:
  - host: servicea.local
    callers: [web-v1]
    services: [{ name: servicea, endpoints: ["ENDPOINT"] }]
caller_tokens: { tok-web: web-v1, tok-batch: batch }
"#;

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
    // And public routes are not served on the internal listener: their
    // host is no internal route, so only a known caller is passed on to
    // it (egress, by name), never to the route's instances.
    assert_eq!(
        get(&c, internal, "web.localhost", "/", &[]).await.status,
        403
    );
    assert_eq!(web.hits(), 0);

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

/// The status line of a request sent as raw bytes to `addr`: HTTP/1.1
/// takes the fast path, HTTP/1.0 is handed to hyper.
async fn status_of(addr: std::net::SocketAddr, version: &str, auth: Option<&str>) -> String {
    let auth = auth.map_or_else(String::new, |a| format!("Proxy-Authorization: {a}\r\n"));
    let answer = raw(
        addr,
        format!(
            "GET http://servicea.local/ {version}\r\nHost: servicea.local\r\n{auth}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    answer.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn proxy_credentials_as_every_client_sends_them() {
    let svc = Backend::start("servicea").await;
    let proxy = proxy(&CALLERS.replace("ENDPOINT", &svc.addr.to_string())).await;
    let internal = proxy.addrs().internal.unwrap();
    let allowed = [
        // HTTP_PROXY=http://<service>:<token>@...: the token is the password.
        basic_pair("web-v1", "tok-web"),
        // The user name is not checked; only the token counts.
        basic_pair("anything", "tok-web"),
        // curl -x http://<token>@...: the user name, password empty.
        basic_pair("tok-web", ""),
    ];
    let refused = [
        // A wrong password is not saved by a user name that is a token.
        basic_pair("tok-web", "wrong"),
        basic_pair("web-v1", "wrong"),
        // Known, but not a listed caller.
        basic_pair("batch", "tok-batch"),
        basic_pair("", ""),
    ];
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        for auth in &allowed {
            let status = status_of(internal, version, Some(auth)).await;
            assert!(status.contains(" 200"), "{version} {auth}: {status}");
        }
        for auth in &refused {
            let status = status_of(internal, version, Some(auth)).await;
            assert!(status.contains(" 403"), "{version} {auth}: {status}");
        }
        let status = status_of(internal, version, None).await;
        assert!(status.contains(" 403"), "{version} without: {status}");
    }
    assert_eq!(svc.hits(), 2 * allowed.len());
    proxy.shutdown().await;
    svc.kill().await;
}

/// Runs a command to its end off the runtime's threads, with `proxy` as
/// its only proxy setting; `None` when the program is not installed.
async fn run(
    mut command: std::process::Command,
    proxy: Option<&str>,
) -> Option<std::process::Output> {
    for name in ["NO_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        command
            .env_remove(name)
            .env_remove(name.to_ascii_lowercase());
    }
    if let Some(proxy) = proxy {
        command.env("HTTP_PROXY", proxy).env("http_proxy", proxy);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .ok()
}

/// Python's urllib (and `requests`, where installed) and curl, given
/// `HTTP_PROXY=http://<service>:<token>@<internal-address>`, reach an
/// internal route that lists the service as a caller.
#[tokio::test]
async fn real_clients_reach_internal_routes_through_http_proxy() {
    let svc = Backend::start("servicea").await;
    let proxy = proxy(&CALLERS.replace("ENDPOINT", &svc.addr.to_string())).await;
    let internal = proxy.addrs().internal.unwrap();
    let mut served = 0;

    // Both read the proxy from the environment, as an instance's code does.
    let script = r#"
import sys, urllib.request, urllib.error
def urllib_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
def show(client, status, text):
    print(client, status, " ".join(text.split()))
show("urllib", *urllib_get("http://servicea.local/"))
try:
    import requests
except ImportError:
    sys.exit(0)
r = requests.get("http://servicea.local/", timeout=10)
show("requests", r.status_code, r.text)
"#;
    for (proxy_url, expect) in [
        (format!("http://web-v1:tok-web@{internal}"), "200 servicea"),
        (format!("http://web-v1:wrong@{internal}"), "403 "),
    ] {
        let mut python = std::process::Command::new("python3");
        python.args(["-c", script]);
        let Some(out) = run(python, Some(&proxy_url)).await else {
            eprintln!("python3 is not installed; skipping its part");
            break;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("urllib "),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            let (_client, answer) = line.split_once(' ').unwrap();
            assert!(answer.starts_with(expect), "{proxy_url}: {line}");
            served += usize::from(answer.starts_with("200"));
        }
    }

    for (proxy_url, expect) in [
        (format!("http://web-v1:tok-web@{internal}"), "200 servicea"),
        // curl sends a token-only user name as "<token>:".
        (format!("http://tok-web@{internal}"), "200 servicea"),
        (format!("http://web-v1:wrong@{internal}"), "403 "),
        (format!("http://{internal}"), "403 "),
    ] {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-sS", "-m", "10", "-x", &proxy_url])
            .args(["-w", "%{http_code} ", "-o", "/dev/stderr"])
            .arg("http://servicea.local/");
        let Some(out) = run(curl, None).await else {
            eprintln!("curl is not installed; skipping its part");
            break;
        };
        // The status code on stdout, then the body (on stderr).
        let answer = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(answer.starts_with(expect), "{proxy_url}: {answer:?}");
        served += usize::from(answer.starts_with("200"));
    }
    // Exactly the calls answered 200 reached the service.
    assert_eq!(svc.hits(), served);
    proxy.shutdown().await;
    svc.kill().await;
}

/// A raw request to `addr` from the source address `from` (any 127/8
/// address is this machine's), and the response head and body.
async fn raw_from(from: &str, addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(10), socket.connect(addr))
        .await
        .expect("connected in time")
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("answered in time")
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A GET for `host` that closes the connection: HTTP/1.1 takes the fast
/// path, HTTP/1.0 hyper's.
fn request(version: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET / {version}\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn callers_without_credentials_are_known_by_their_source_address() {
    let svc = Backend::start("servicea").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - host: servicea.local
    app: shop
    callers: [web]
    services: [{{ name: servicea, endpoints: ["{svc}"] }}]
caller_tokens: {{ tok-batch: shop/batch }}
caller_addresses: {{ "127.0.0.5": shop/web, "127.0.0.6": shop/batch, "127.0.0.7": blog/web }}
"#,
        svc = svc.addr
    ))
    .await;
    let internal = proxy.addrs().internal.unwrap();
    let public = proxy.addrs().public;
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let ok = raw_from(
            "127.0.0.5",
            internal,
            &request(version, "servicea.local", ""),
        )
        .await;
        assert!(
            ok.contains(" 200 ") && ok.ends_with("servicea"),
            "{version}: {ok}"
        );
        let absolute = raw_from(
            "127.0.0.5",
            internal,
            format!("GET http://servicea.local/ {version}\r\nHost: servicea.local\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(absolute.contains(" 200 "), "{version}: {absolute}");

        let not_listed = raw_from(
            "127.0.0.6",
            internal,
            &request(version, "servicea.local", ""),
        )
        .await;
        assert!(not_listed.contains(" 403 "), "{version}: {not_listed}");
        assert!(
            not_listed.contains(
                "service batch may not call servicea.local of app shop; add it to external_links"
            ),
            "{version}: {not_listed}"
        );
        let other_app = raw_from(
            "127.0.0.7",
            internal,
            &request(version, "servicea.local", ""),
        )
        .await;
        assert!(
            other_app.contains(" 403 ")
                && other_app.contains(
                    "blog/web may not call servicea.local of app shop: apps are isolated"
                ),
            "{version}: {other_app}"
        );
        let unknown = raw_from(
            "127.0.0.8",
            internal,
            &request(version, "servicea.local", ""),
        )
        .await;
        assert!(
            unknown.contains(" 403 ") && unknown.contains("127.0.0.8 is no known caller's address"),
            "{version}: {unknown}"
        );
        // A credential, when sent, says who calls, whatever the address.
        let auth = format!("Proxy-Authorization: {}\r\n", basic("tok-batch"));
        let by_token = raw_from(
            "127.0.0.5",
            internal,
            &request(version, "servicea.local", &auth),
        )
        .await;
        assert!(
            by_token.contains(" 403 ") && by_token.contains("service batch may not call"),
            "{version}: {by_token}"
        );
        // The public listener never answers an internal route.
        let public = raw_from("127.0.0.5", public, &request(version, "servicea.local", "")).await;
        assert!(public.contains(" 404 "), "{version}: {public}");
    }
    // Only the allowed calls arrived: plain and absolute form, per version.
    assert_eq!(svc.hits(), 4);
    proxy.shutdown().await;
    svc.kill().await;
}

#[tokio::test]
async fn internal_listeners_open_and_close_while_running() {
    let svc = Backend::start("servicea").await;
    let proxy = proxy(&format!(
        r#"
routes:
  - host: servicea.local
    callers: [web]
    services: [{{ name: servicea, endpoints: ["{svc}"] }}]
  - host: web.localhost
    services: [{{ name: web, endpoints: ["{svc}"] }}]
caller_addresses: {{ "127.0.0.5": web }}
"#,
        svc = svc.addr
    ))
    .await;
    // Another address of this machine, as a network's gateway would be.
    let added = proxy
        .add_internal_listener("127.0.0.9:0".parse().unwrap())
        .unwrap();
    assert_eq!(added.ip().to_string(), "127.0.0.9");
    assert_ne!(added.port(), 0);
    assert_eq!(proxy.internal_listeners(), [added]);
    // Asking again for the same address is fine and opens nothing new.
    assert_eq!(proxy.add_internal_listener(added).unwrap(), added);
    assert_eq!(proxy.internal_listeners(), [added]);
    // It serves internal routes, by address as on the configured one, and
    // no public route.
    let ok = raw_from(
        "127.0.0.5",
        added,
        &request("HTTP/1.1", "servicea.local", ""),
    )
    .await;
    assert!(ok.contains(" 200 "), "{ok}");
    let refused = raw_from(
        "127.0.0.6",
        added,
        &request("HTTP/1.1", "servicea.local", ""),
    )
    .await;
    assert!(refused.contains(" 403 "), "{refused}");
    let public = raw_from(
        "127.0.0.5",
        added,
        &request("HTTP/1.1", "web.localhost", ""),
    )
    .await;
    assert!(
        public.contains(" 403 "),
        "a public host is egress there: {public}"
    );
    assert_eq!(svc.hits(), 1);

    // An address something else holds is an error naming it.
    let holder = std::net::TcpListener::bind("127.0.0.10:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let err = proxy.add_internal_listener(taken).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {taken}: ")),
        "{err}"
    );
    assert_eq!(proxy.internal_listeners(), [added]);

    // Removed: the socket is closed when the call returns, and the same
    // address can be listened on again at once.
    assert!(proxy.remove_internal_listener(added).await);
    assert!(!proxy.remove_internal_listener(added).await);
    assert!(proxy.internal_listeners().is_empty());
    assert!(tokio::net::TcpStream::connect(added).await.is_err());
    assert_eq!(proxy.add_internal_listener(added).unwrap(), added);
    let again = raw_from(
        "127.0.0.5",
        added,
        &request("HTTP/1.1", "servicea.local", ""),
    )
    .await;
    assert!(again.contains(" 200 "), "{again}");
    // The proxy's stop closes it too.
    proxy.shutdown().await;
    assert!(tokio::net::TcpStream::connect(added).await.is_err());
    svc.kill().await;
}

/// The listening sockets on `addr` (an IPv4 address) in this machine's
/// network namespace, from `/proc/net/tcp` (state `0A`).
fn listening_sockets(addr: std::net::SocketAddr) -> usize {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        panic!("IPv4 only: {addr}");
    };
    let o = ip.octets();
    let local = format!(
        "{:02X}{:02X}{:02X}{:02X}:{:04X}",
        o[3],
        o[2],
        o[1],
        o[0],
        addr.port()
    );
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
        })
        .count()
}

/// With `workers: 3`, a listener opened while running is served as the
/// configured ones are: the main runtime and each of the two extra
/// workers accept on a socket of their own (three sockets on the
/// address, `SO_REUSEPORT`), so the kernel spreads new connections over
/// all three and every one is answered (a socket nobody accepted on would
/// leave a third of them hanging). Removing it closes all three; the stop
/// waits for its connections on every worker.
#[tokio::test]
async fn every_worker_serves_the_internal_listeners_opened_while_running() {
    let svc = Backend::start("servicea").await;
    let config = turnout_proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        internal_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin: None,
        workers: 3,
        ..turnout_proxy::ProxyConfig::default()
    };
    let yaml = format!(
        "routes:\n  - host: servicea.local\n    callers: [web]\n    services: [{{ name: servicea, \
         endpoints: [\"{}\"] }}]\ncaller_addresses: {{ \"127.0.0.5\": web }}\n",
        svc.addr
    );
    let proxy = turnout_proxy::Proxy::start(config, table(&yaml))
        .await
        .unwrap();
    let added = proxy
        .add_internal_listener("127.0.0.11:0".parse().unwrap())
        .unwrap();
    assert_eq!(listening_sockets(added), 3, "one socket per runtime");
    for i in 0..60 {
        let answer = raw_from(
            "127.0.0.5",
            added,
            &request("HTTP/1.1", "servicea.local", ""),
        )
        .await;
        assert!(answer.contains(" 200 "), "connection {i}: {answer}");
    }
    assert_eq!(svc.hits(), 60);
    // Something else on an address: refused, and none of the sockets stays.
    let holder = std::net::TcpListener::bind("127.0.0.12:0").unwrap();
    let taken = holder.local_addr().unwrap();
    assert!(proxy.add_internal_listener(taken).is_err());
    assert_eq!(listening_sockets(taken), 1, "only the holder's");
    assert_eq!(proxy.internal_listeners(), [added]);

    assert!(proxy.remove_internal_listener(added).await);
    assert_eq!(listening_sockets(added), 0, "every socket is closed");
    assert!(tokio::net::TcpStream::connect(added).await.is_err());
    // Opened again, then stopped with the proxy, on every worker.
    assert_eq!(proxy.add_internal_listener(added).unwrap(), added);
    assert_eq!(listening_sockets(added), 3);
    tokio::time::timeout(std::time::Duration::from_secs(10), proxy.shutdown())
        .await
        .expect("the workers stopped");
    assert_eq!(listening_sockets(added), 0);
    svc.kill().await;
}
