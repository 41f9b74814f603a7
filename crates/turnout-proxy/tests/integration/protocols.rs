//! Item 6: keep-alive pooling, HTTP/2 (h2c and TLS), WebSocket upgrades.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turnout_proxy::{Proxy, ProxyConfig, TlsConfig};

use crate::support::*;

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addrs().public)
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in [&b"hello"[..], b"\x81\x05frame", b"third"] {
        stream.write_all(message).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo, message);
    }
    drop(stream);
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let stream = tokio::net::TcpStream::connect(proxy.addrs().public)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    // Several streams on one connection; HTTP/2 carries the host in
    // :authority.
    for _ in 0..3 {
        let req = Request::get("http://app.localhost/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"a");
    }
    drop(sender);
    let _ = driver.await;
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let a = Backend::start("a").await;
    let proxy = proxy(&split_file(&[("a", 100, &a)], "")).await;
    let c = client();
    for _ in 0..50 {
        assert_eq!(
            get(&c, proxy.addrs().public, "app.localhost", "/", &[])
                .await
                .body,
            "a"
        );
    }
    let connections = a.connections.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connections <= 2,
        "{connections} upstream connections for 50 sequential requests"
    );
    proxy.shutdown().await;
    a.kill().await;
}

#[tokio::test]
async fn tls_with_http1_and_h2() {
    let a = Backend::start("a").await;
    let certified = rcgen::generate_simple_self_signed(vec!["app.localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("turnout-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        internal_listen: None,
        admin: None,
        tls: Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert,
            key,
        }),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start(config, table(&split_file(&[("a", 100, &a)], "")))
        .await
        .unwrap();
    let tls_addr = proxy.addrs().tls.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        client_config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("app.localhost").unwrap();
        let stream = TokioIo::new(connector.connect(name, tcp).await.unwrap());
        let response = if alpn == b"h2" {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), stream)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = Request::get("https://app.localhost/headers")
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.send_request(req).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get("/headers")
                .header("host", "app.localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.send_request(req).await.unwrap()
        };
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("x-forwarded-proto: https"), "{body}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    proxy.shutdown().await;
    a.kill().await;
}
