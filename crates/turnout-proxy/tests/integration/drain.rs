//! Item 7: draining of instances removed by a reload.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turnout_proxy::InstanceState;

use crate::support::*;

/// Opens a WebSocket-style tunnel to `/ws` through the proxy and returns
/// the connection once the 101 has arrived.
async fn open_tunnel(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut tunnel = tokio::net::TcpStream::connect(addr).await.unwrap();
    tunnel
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tunnel.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    tunnel
}

#[tokio::test]
async fn in_flight_counts_requests_and_tunnels_until_they_end() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let publisher = proxy.publisher();
    let c = client();
    assert_eq!(proxy.in_flight(a.addr), Some(0));
    assert_eq!(proxy.in_flight("127.0.0.1:1".parse().unwrap()), None);
    let held = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "app.localhost", "/hold", &[]).await })
    };
    a.held().await;
    // Counted before it was sent, so the backend holding it means 1.
    assert_eq!(proxy.in_flight(a.addr), Some(1));
    assert_eq!(publisher.in_flight(a.addr), Some(1));
    a.release();
    assert_eq!(held.await.unwrap().body, "a");
    eventually("the finished request to leave the count", || {
        proxy.in_flight(a.addr) == Some(0)
    })
    .await;

    // An upgraded connection counts for as long as it is open.
    let mut tunnel = open_tunnel(addr).await;
    eventually("the tunnel to count once", || {
        proxy.in_flight(a.addr) == Some(1)
    })
    .await;
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tunnel.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    assert_eq!(proxy.in_flight(a.addr), Some(1));
    drop(tunnel);
    eventually("the closed tunnel to leave the count", || {
        proxy.in_flight(a.addr) == Some(0)
    })
    .await;
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn a_removed_instance_is_forgotten_as_soon_as_nothing_is_in_flight() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    // The default drain deadline, 30 s, is far beyond `eventually`'s 10 s:
    // the drains below end because nothing is in flight.
    let proxy = proxy(&split_file(&[("old", 100, &old)], "")).await;
    let addr = proxy.addrs().public;
    let c = client();
    let held = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "app.localhost", "/hold", &[]).await })
    };
    old.held().await;
    proxy.publish(table(&split_file(&[("new", 100, &new)], "")));
    assert_eq!(proxy.in_flight(old.addr), Some(1));
    assert_eq!(
        proxy.instance_state(old.addr),
        Some(InstanceState::Draining)
    );
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "new");
    assert_eq!(proxy.in_flight(old.addr), Some(1));
    old.release();
    let answer = held.await.unwrap();
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "old"));
    eventually("the drained instance to be forgotten", || {
        proxy.in_flight(old.addr).is_none()
    })
    .await;
    assert_eq!(proxy.instance_state(old.addr), None);

    // An idle instance is forgotten right after the publish that removes it.
    proxy.publish(table(&split_file(&[("old", 100, &old)], "")));
    eventually("the idle removed instance to be forgotten", || {
        proxy.in_flight(new.addr).is_none()
    })
    .await;
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "old");
    proxy.shutdown().await;
    old.kill().await;
    new.kill().await;
}

#[tokio::test]
async fn an_instance_listed_again_while_draining_keeps_its_count() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let c = client();
    let held = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "app.localhost", "/hold", &[]).await })
    };
    a.held().await;
    proxy.publish(table(&split_file(&[("b", 100, &b)], "")));
    assert_eq!(proxy.instance_state(a.addr), Some(InstanceState::Draining));
    proxy.publish(table(&split_file(&[("a", 100, &a)], "")));
    assert_eq!(proxy.instance_state(a.addr), Some(InstanceState::Ready));
    assert_eq!(proxy.in_flight(a.addr), Some(1));
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "a");
    a.release();
    assert_eq!(held.await.unwrap().body, "a");
    eventually("the request to leave the count", || {
        proxy.in_flight(a.addr) == Some(0)
    })
    .await;
    // Listed, so still tracked: its drain was called off.
    assert_eq!(proxy.instance_state(a.addr), Some(InstanceState::Ready));
    proxy.shutdown().await;
    a.kill().await;
    b.kill().await;
}

#[tokio::test]
async fn removed_instance_finishes_its_in_flight_request() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    let proxy = proxy(&split_file(&[("old", 100, &old)], "")).await;
    let c = client();
    let addr = proxy.addrs().public;
    let in_flight = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "app.localhost", "/hold", &[]).await })
    };
    old.held().await;
    proxy.publish(table(&split_file(&[("new", 100, &new)], "")));
    // New requests go to the new instance only.
    for _ in 0..5 {
        assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "new");
    }
    assert_eq!(old.hits(), 1);
    old.release();
    let answer = in_flight.await.unwrap();
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "old"));
    proxy.shutdown().await;
    old.kill().await;
    new.kill().await;
}

#[tokio::test]
async fn drain_deadline_ends_requests_and_upgraded_connections() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    let deadline = "drain_timeout_ms: 200\n";
    let proxy = proxy(&format!(
        "{}{deadline}",
        split_file(&[("old", 100, &old)], "")
    ))
    .await;
    let c = client();
    let addr = proxy.addrs().public;
    // An upgraded connection to the old instance.
    let mut tunnel = open_tunnel(addr).await;
    // And a request that the old instance never answers.
    let held = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "app.localhost", "/hold", &[]).await })
    };
    old.held().await;
    proxy.publish(table(&format!(
        "{}{deadline}",
        split_file(&[("new", 100, &new)], "")
    )));
    // At the deadline the held request ends (502) and the tunnel closes.
    let answer = held.await.unwrap();
    assert_eq!(answer.status, 502);
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), tunnel.read(&mut buf))
        .await
        .expect("tunnel closed by the drain deadline");
    assert!(matches!(closed, Ok(0) | Err(_)));
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "new");
    proxy.shutdown().await;
    old.release();
    old.kill().await;
    new.kill().await;
}

#[tokio::test]
async fn drain_deadline_cuts_a_streaming_response_but_not_other_instances() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    let deadline = Duration::from_millis(300);
    let file = |name: &str, backend: &Backend| {
        format!(
            "{}drain_timeout_ms: {}\n",
            split_file(&[(name, 100, backend)], ""),
            deadline.as_millis()
        )
    };
    let proxy = proxy(&file("old", &old)).await;
    let addr = proxy.addrs().public;
    let c = client();
    let stream = || {
        http::Request::get(format!("http://{addr}/stream"))
            .header("host", "app.localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // A response from the old instance that has begun and then stalls.
    let response = c.request(stream()).await.unwrap();
    assert_eq!(response.headers()["x-backend"], "old");
    let mut old_body = response.into_body();
    let first = old_body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first\n");

    let removed = Instant::now();
    proxy.publish(table(&file("new", &new)));
    // One from the remaining instance, streaming across the deadline.
    let response = c.request(stream()).await.unwrap();
    assert_eq!(response.headers()["x-backend"], "new");
    let mut new_body = response.into_body();
    let first = new_body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first\n");

    // The old body ends at the deadline, with an error or cut short.
    let rest = tokio::time::timeout(Duration::from_secs(10), old_body.collect())
        .await
        .expect("the streaming body was cut in time");
    if let Ok(rest) = rest {
        assert!(!rest.to_bytes().ends_with(b"rest\n"), "not cut");
    }
    assert!(
        removed.elapsed() >= deadline,
        "cut after {:?}",
        removed.elapsed()
    );
    assert_eq!(proxy.in_flight(old.addr), None);

    // The new one is untouched: it streams on and ends normally.
    assert_eq!(proxy.in_flight(new.addr), Some(1));
    new.release();
    let rest = new_body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"rest\n");
    assert_eq!(get(&c, addr, "app.localhost", "/", &[]).await.body, "new");
    proxy.shutdown().await;
    old.release();
    old.kill().await;
    new.kill().await;
}

#[tokio::test]
async fn an_address_listed_again_before_the_deadline_keeps_its_connections() {
    let old = Backend::start("old").await;
    let new = Backend::start("new").await;
    let deadline = Duration::from_millis(1500);
    let file = |name: &str, backend: &Backend| {
        format!(
            "{}drain_timeout_ms: {}\n",
            split_file(&[(name, 100, backend)], ""),
            deadline.as_millis()
        )
    };
    let proxy = proxy(&file("old", &old)).await;
    let addr = proxy.addrs().public;
    let c = client();
    let port = get(&c, addr, "app.localhost", "/port", &[]).await.body;
    // Removed with nothing in flight: forgotten at once...
    proxy.publish(table(&file("new", &new)));
    eventually("the idle instance to be forgotten", || {
        proxy.in_flight(old.addr).is_none()
    })
    .await;
    // ...but listed again (a rollback) before its deadline, it finds its
    // pooled connection alive: nothing was cut under a request.
    proxy.publish(table(&file("old", &old)));
    assert_eq!(
        get(&c, addr, "app.localhost", "/port", &[]).await.body,
        port
    );
    let req = http::Request::get(format!("http://{addr}/stream"))
        .header("host", "app.localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = c.request(req).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first\n");
    // The next removal's deadline cuts that connection.
    let removed = Instant::now();
    proxy.publish(table(&file("new", &new)));
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the streaming body was cut in time");
    if let Ok(rest) = rest {
        assert!(!rest.to_bytes().ends_with(b"rest\n"), "not cut");
    }
    assert!(removed.elapsed() >= deadline);
    proxy.shutdown().await;
    old.release();
    old.kill().await;
    new.kill().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let addr = proxy.addrs().public;
    let c = client();
    let in_flight = {
        let c = c.clone();
        tokio::spawn(async move {
            let req = http::Request::get(format!("http://{addr}/hold"))
                .header("host", "app.localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(&c, req).await
        })
    };
    a.held().await;
    let stopping = tokio::spawn(proxy.shutdown());
    a.release();
    assert_eq!(in_flight.await.unwrap().body, "a");
    stopping.await.unwrap();
    // The listener is closed now.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    a.kill().await;
}
