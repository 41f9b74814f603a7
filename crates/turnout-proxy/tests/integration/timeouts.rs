//! Item 6: client timeouts — idle keep-alive connections and slow request
//! heads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnout_proxy::Timeouts;

use crate::support::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n";

/// Reads one response whose body is the backend name `a`.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.ends_with(b"\r\n\r\na") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until the proxy closes `stream` (end of file or a reset).
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the proxy closed the connection in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_client_idle() {
    let a = Backend::start("a").await;
    // The head timeout is shorter: a connection waiting between requests
    // is on the idle clock, not the head one.
    let timeouts = Timeouts {
        header_read: Duration::from_millis(100),
        client_idle: Duration::from_millis(400),
        ..Timeouts::default()
    };
    let proxy = proxy_with(&split_file(&[("a", 100, &a)], ""), timeouts).await;
    let mut stream = TcpStream::connect(proxy.addrs().public).await.unwrap();
    stream.write_all(GET).await.unwrap();
    assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Kept alive: the next request goes on the same connection.
    let sent = Instant::now();
    stream.write_all(GET).await.unwrap();
    assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    closed(&mut stream).await;
    assert!(
        sent.elapsed() >= timeouts.client_idle,
        "closed after {:?}",
        sent.elapsed()
    );
    assert_eq!(a.hits(), 2);
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_client_idle() {
    let a = Backend::start("a").await;
    let timeouts = Timeouts {
        client_idle: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let proxy = proxy_with(&split_file(&[("a", 100, &a)], ""), timeouts).await;
    let stream = TcpStream::connect(proxy.addrs().public).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    let sent = Instant::now();
    let req = Request::get("http://app.localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"a");
    // The sender stays alive: the connection ends because the proxy sent
    // GOAWAY and closed it.
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the proxy closed the idle HTTP/2 connection in time")
        .unwrap()
        .unwrap();
    assert!(sent.elapsed() >= timeouts.client_idle);
    drop(sender);
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn a_request_in_progress_keeps_its_connection_open() {
    let a = Backend::start("a").await;
    let timeouts = Timeouts {
        header_read: Duration::from_millis(100),
        client_idle: Duration::from_millis(100),
        ..Timeouts::default()
    };
    let proxy = proxy_with(&split_file(&[("a", 100, &a)], ""), timeouts).await;
    let addr = proxy.addrs().public;
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(b"GET /hold HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .await
        .unwrap();
    a.held().await;
    // Another connection opened now idles out: by then the held request
    // has been in progress for longer than both timeouts.
    let started = Instant::now();
    let mut other = TcpStream::connect(addr).await.unwrap();
    closed(&mut other).await;
    assert!(started.elapsed() >= timeouts.client_idle);
    a.release();
    assert!(read_answer(&mut held).await.starts_with("HTTP/1.1 200"));
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn slow_request_heads_are_cut_after_header_read() {
    let a = Backend::start("a").await;
    let timeouts = Timeouts {
        header_read: Duration::from_millis(200),
        client_idle: Duration::from_secs(60),
        ..Timeouts::default()
    };
    let proxy = proxy_with(&split_file(&[("a", 100, &a)], ""), timeouts).await;
    let addr = proxy.addrs().public;
    // A new connection that sends nothing, or half a head.
    for partial in [&b""[..], b"GET / HTTP/1.1\r\nHost: app"] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(partial).await.unwrap();
        closed(&mut stream).await;
        assert!(started.elapsed() >= timeouts.header_read);
    }
    // A head that starts after a request and stalls, on a connection that
    // could otherwise idle for a minute.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(GET).await.unwrap();
    assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    closed(&mut stream).await;
    assert!(started.elapsed() >= timeouts.header_read);
    assert_eq!(a.hits(), 1);
    proxy.shutdown().await;
    a.kill().await;
}

/// A listener whose accept queue is full: the kernel drops the SYNs of
/// further connects, which hang as a connect to a killed container's
/// address does. The held connections keep it full.
async fn unanswered() -> (
    tokio::net::TcpListener,
    Vec<TcpStream>,
    std::net::SocketAddr,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connect to the full listener failed: {e}"),
            Err(_) => break,
        }
        assert!(held.len() < 8, "the accept queue never filled");
    }
    (listener, held, addr)
}

/// A request connecting to an instance that does not answer gives up once
/// the instance left the route (a republish without it, as when the
/// control plane sees its container die) and the connect is still pending
/// `LEAVING_GRACE` (100 ms) later, and is answered by the service's other
/// instance, instead of waiting out the connect timeout
/// (60 s here): on both request paths (HTTP/1.1 takes the fast path,
/// HTTP/1.0 hyper's). Of two requests sent at once, round robin sends one
/// to each instance: one is answered at once, the other hangs until the
/// republish.
#[tokio::test]
async fn a_connect_in_progress_gives_up_when_its_instance_leaves_the_route() {
    let b = Backend::start("b").await;
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let (_listener, _held, dead) = unanswered().await;
        let route = |endpoints: &str| {
            format!(
                "routes:\n  - host: app.localhost\n    services:\n      - {{ name: s, endpoints: \
                 [{endpoints}] }}\n"
            )
        };
        let timeouts = Timeouts {
            connect: Duration::from_secs(60),
            ..Timeouts::default()
        };
        let proxy = proxy_with(&route(&format!("\"{dead}\", \"{}\"", b.addr)), timeouts).await;
        let public = proxy.addrs().public;
        let request =
            format!("GET / {version}\r\nHost: app.localhost\r\nConnection: close\r\n\r\n");
        let send = || {
            let request = request.clone();
            tokio::spawn(async move { raw_until_close(public, request.as_bytes()).await })
        };
        let (one, two) = (send(), send());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_ne!(
            one.is_finished(),
            two.is_finished(),
            "{version}: one request hangs connecting"
        );
        let started = Instant::now();
        proxy.publish(table(&route(&format!("\"{}\"", b.addr))));
        for answer in [one, two] {
            let answer = tokio::time::timeout(Duration::from_secs(20), answer)
                .await
                .expect("answered long before the 60 s connect timeout")
                .unwrap();
            assert!(
                answer.starts_with(&format!("{version} 200")),
                "{version}: {answer}"
            );
            assert!(answer.ends_with("\r\n\r\nb"), "{version}: {answer}");
        }
        eprintln!(
            "{version}: answered {:?} after the republish",
            started.elapsed()
        );
        proxy.shutdown().await;
    }
    b.kill().await;
}
