//! The HTTP/1.1 fast path against upstreams that frame their responses in
//! every way HTTP/1.1 allows, close connections under it, and clients that
//! pipeline, split bodies across packets or switch to what only the
//! general path serves in the middle of a connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// What a scripted upstream does with one request.
enum Script {
    /// Writes these parts (a short pause between them), then keeps the
    /// connection open for the next request, or closes it.
    Reply(Vec<&'static [u8]>, bool),
    /// Closes the connection without answering.
    Drop,
}

/// A raw-socket upstream that answers each request as `script` says,
/// given the request's head and its index on its connection.
struct Scripted {
    addr: SocketAddr,
    /// Connections accepted so far.
    connections: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(script: fn(&str, usize) -> Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                tokio::spawn(serve(stream, script));
            }
        });
        Scripted {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, script: fn(&str, usize) -> Script) {
    let mut buf = Vec::new();
    let mut index = 0;
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        let body = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < end + 4 + body {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body);
        match script(&head, index) {
            Script::Drop => return,
            Script::Reply(parts, close) => {
                for part in parts {
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if close {
                    return;
                }
            }
        }
        index += 1;
    }
}

fn route_to(addr: SocketAddr) -> String {
    format!(
        "routes:\n  - host: app.localhost\n    health: {{ interval_ms: 60000 }}\n    services:\n      - {{ name: a, weight: 100, endpoints: [\"{addr}\"] }}\n"
    )
}

fn path(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

/// Reads one response (head and a body framed by `Content-Length`, or
/// until the connection closes) from a raw connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_lowercase();
            if let Some(length) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                && out.len() >= end + 4 + length
            {
                return String::from_utf8_lossy(&out[..end + 4 + length]).into_owned();
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the proxy answered in time");
        match read {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn responses_pass_with_every_framing() {
    let upstream = Scripted::start(|head, _| match path(head) {
        "/chunked" => Script::Reply(
            vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
                b"lo\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
            ],
            false,
        ),
        "/until-close" => Script::Reply(
            vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the upstream closes"],
            true,
        ),
        "/head" => Script::Reply(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-head: yes\r\n\r\n"],
            false,
        ),
        "/early" => Script::Reply(
            vec![
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            ],
            false,
        ),
        "/hop" => Script::Reply(
            vec![b"HTTP/1.1 200 OK\r\nconnection: x-private, keep-alive\r\nx-private: 1\r\nkeep-alive: timeout=5\r\nx-kept: 1\r\ncontent-length: 3\r\n\r\nhop"],
            false,
        ),
        "/split-length" => Script::Reply(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234",
                b"56789",
            ],
            false,
        ),
        _ => Script::Reply(
            vec![b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"],
            false,
        ),
    })
    .await;
    let proxy = proxy(&route_to(upstream.addr)).await;
    let addr = proxy.addrs().public;
    let c = client();

    let chunked = get(&c, addr, "app.localhost", "/chunked", &[]).await;
    assert_eq!(chunked.body, "hello world");
    let split = get(&c, addr, "app.localhost", "/split-length", &[]).await;
    assert_eq!(split.body, "0123456789");
    let hop = get(&c, addr, "app.localhost", "/hop", &[]).await;
    assert_eq!(hop.body, "hop");
    assert!(hop.headers.contains_key("x-kept"));
    for gone in ["x-private", "keep-alive"] {
        assert!(!hop.headers.contains_key(gone), "{gone} passed on");
    }
    let head = send(
        &c,
        http::Request::head(format!("http://{addr}/head"))
            .header("host", "app.localhost")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(head.headers["x-head"], "yes");
    assert_eq!(head.headers["content-length"], "5");
    assert_eq!(head.body, "");
    // After a HEAD, the same connection still works.
    assert_eq!(
        get(&c, addr, "app.localhost", "/chunked", &[]).await.body,
        "hello world"
    );

    // A close-delimited response reaches the client whole, and the
    // client's connection is closed after it.
    let answer = raw_until_close(
        addr,
        b"GET /until-close HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nuntil the upstream closes"),
        "{answer}"
    );

    // An interim response is passed on before the final one.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /early HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let mut chunk = [0u8; 1024];
    while !answer.ends_with("ok") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the proxy answered in time")
            .unwrap();
        assert!(n > 0, "closed after {answer:?}");
        answer.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(
        answer.starts_with(
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_and_split_bodies() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Three requests in one write: three answers, in order.
    stream
        .write_all(
            b"GET /port HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
              POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\nfirst\
              GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
        )
        .await
        .unwrap();
    let port = read_response(&mut stream).await;
    assert!(port.starts_with("HTTP/1.1 200"), "{port}");
    let echo = read_response(&mut stream).await;
    assert!(echo.ends_with("\r\n\r\nfirst"), "{echo}");
    let name = read_response(&mut stream).await;
    assert!(name.ends_with("\r\n\r\na"), "{name}");
    // A body that comes in pieces, after its head.
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 11\r\n\r\nhel")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    stream.write_all(b"lo ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    stream.write_all(b"world").await.unwrap();
    let echo = read_response(&mut stream).await;
    assert!(echo.ends_with("\r\n\r\nhello world"), "{echo}");
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn a_connection_moves_to_the_general_path_mid_way() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big = "x".repeat(100 * 1024);
    let requests = [
        // Fast path.
        "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n".to_owned(),
        // A chunked body: the general path from here on.
        "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n".to_owned(),
    ];
    let mut answers = Vec::new();
    for request in &requests {
        stream.write_all(request.as_bytes()).await.unwrap();
        answers.push(read_response(&mut stream).await);
    }
    assert!(answers[0].ends_with("\r\n\r\na"), "{answers:?}");
    assert!(answers[1].contains("wiki"), "{answers:?}");
    assert!(answers[2].ends_with("\r\n\r\na"), "{answers:?}");
    // HTTP/1.0 and a body larger than the fast path buffers, each on a
    // new connection.
    let answer = raw_until_close(addr, b"GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let echo = read_response(&mut stream).await;
    assert!(echo.starts_with("HTTP/1.1 200"), "{:.80}", echo);
    assert!(echo.ends_with(&big), "the large body came back whole");
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn upstreams_that_close_keep_alive_connections_cost_no_request() {
    // Answers keep-alive, then closes the connection a moment later, the
    // way an upstream's idle timeout does.
    let closing = Scripted::start(|_, _| {
        Script::Reply(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b""],
            true,
        )
    })
    .await;
    let first = proxy(&route_to(closing.addr)).await;
    let addr = first.addrs().public;
    let c = client();
    for _ in 0..10 {
        let answer = get(&c, addr, "app.localhost", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "ok"));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // (Plus the health check's first probe.)
    assert!(closing.connections() >= 10, "a new connection per request");
    first.shutdown().await;

    // Takes a second request on a connection and closes it unanswered:
    // the race of a request sent as the upstream's idle timeout fires.
    let racing = Scripted::start(|head, index| match index {
        0 => Script::Reply(
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
            false,
        ),
        _ if head.starts_with("GET") => Script::Drop,
        _ => Script::Drop,
    })
    .await;
    let proxy = proxy(&route_to(racing.addr)).await;
    let addr = proxy.addrs().public;
    for _ in 0..5 {
        let answer = get(&c, addr, "app.localhost", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "ok"));
    }
    // A POST is not sent twice: it fails where it was dropped.
    let post = send(
        &c,
        http::Request::post(format!("http://{addr}/"))
            .header("host", "app.localhost")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"once",
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status.as_u16(), 502, "{}", post.body);
    proxy.shutdown().await;
}

#[tokio::test]
async fn several_workers_serve_the_same_listeners() {
    let a = Backend::start("a").await;
    let config = turnout_proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        internal_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin: None,
        workers: 3,
        ..turnout_proxy::ProxyConfig::default()
    };
    let proxy = turnout_proxy::Proxy::start(config, table(&split_file(&[("a", 100, &a)], "")))
        .await
        .unwrap();
    let addr = proxy.addrs().public;
    // New connections each time, so the kernel spreads them over the
    // three listeners; every one is served.
    for _ in 0..60 {
        let answer = raw_until_close(
            addr,
            b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    }
    tokio::time::timeout(Duration::from_secs(10), proxy.shutdown())
        .await
        .expect("the workers stopped");
    // Nothing listens any more on any of the three.
    assert!(TcpStream::connect(addr).await.is_err());
    a.kill().await;
}

/// The proxy's own answers (404, 403, 503) honour the client's
/// `Connection: close` on the fast path, as forwarded answers do: the
/// connection closes after the answer instead of idling until
/// `client_idle`.
#[tokio::test]
async fn own_answers_close_when_the_client_asks() {
    let a = Backend::start("a").await;
    let yaml = format!(
        "routes:\n  - host: api.local\n    callers: [web]\n    services: [{{ name: api, endpoints: [\"{}\"] }}]\n  - host: zero.localhost\n    services: [{{ name: z, weight: 0, endpoints: [\"{}\"] }}]\n",
        a.addr, a.addr
    );
    let proxy = proxy(&yaml).await;
    let addrs = proxy.addrs();
    let cases = [
        (addrs.public, "nobody.localhost", "404"),
        (addrs.public, "zero.localhost", "503"),
        (addrs.internal.unwrap(), "api.local", "403"),
    ];
    for (addr, host, status) in cases {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            raw_until_close(addr, request.as_bytes()),
        )
        .await
        .unwrap_or_else(|_| panic!("{host}: the connection stayed open after the answer"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    assert_eq!(a.hits(), 0);
}
