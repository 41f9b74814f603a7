//! Item 7: draining of instances removed by a reload.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

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
    let mut tunnel = tokio::net::TcpStream::connect(addr).await.unwrap();
    tunnel
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tunnel.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
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
