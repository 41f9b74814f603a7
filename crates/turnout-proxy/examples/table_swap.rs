//! Issue 5 item 5: a generated table of ROUTES routes × 10 endpoints
//! (default 10,000), parsed, built and published (swapped) SWAPS times
//! while a client keeps sending requests through the proxy; prints the
//! timings and the request latency before and during the swaps.
//!
//!     cargo run --release -p turnout-proxy --example table_swap
//!
//! Everything is on 127.0.0.1 and ends by itself. The endpoints are ten
//! tiny loopback backends shared by every route (instances are keyed by
//! address, so the proxy health-checks ten instances; the per-route,
//! per-service and per-instance state and metric handles are still built
//! for every route). Figures are printed, not asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use turnout_proxy::{Proxy, ProxyConfig};
use turnout_routing::RouteTable;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A backend that answers `ok` to every request on a keep-alive
/// connection (one small request per read, as the proxy sends them).
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The route file: route `i` serves `r{i}.example` with two services of
/// five endpoints each; `flip` swaps the weights, so every publish
/// changes every route.
fn route_file(routes: usize, endpoints: &[SocketAddr], flip: bool) -> String {
    let (a, b) = if flip { (10, 90) } else { (90, 10) };
    let list = |half: &[SocketAddr]| {
        half.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (first, second) = endpoints.split_at(endpoints.len() / 2);
    let (first, second) = (list(first), list(second));
    let mut text = String::from("routes:\n");
    for i in 0..routes {
        text.push_str(&format!(
            "  - host: r{i}.example\n    sticky: off\n    health: {{ interval_ms: 60000 }}\n    services:\n      - {{ name: v1, weight: {a}, endpoints: [{first}] }}\n      - {{ name: v2, weight: {b}, endpoints: [{second}] }}\n"
        ));
    }
    text
}

/// Sends GETs for `r0.example` over one keep-alive connection until
/// `stop`, and returns each request's latency.
async fn client(addr: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> Vec<Duration> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut latencies = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !*stop.borrow() {
        let started = Instant::now();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: r0.example\r\n\r\n")
            .await
            .expect("write");
        // Read until the body `ok` ends the response.
        let mut seen = Vec::new();
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the proxy closed the connection");
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    break;
                }
            }
        }
        latencies.push(started.elapsed());
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "{name:<22} requests {:>7}  p50 {:>7.0} µs  p99 {:>7.0} µs  max {:>8.0} µs",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
    p99
}

fn median(mut values: Vec<Duration>) -> f64 {
    values.sort();
    values[values.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let routes = env("ROUTES", 10_000);
    let swaps = env("SWAPS", 10);
    let mut endpoints = Vec::new();
    for _ in 0..10 {
        endpoints.push(backend().await);
    }
    let texts = [
        route_file(routes, &endpoints, false),
        route_file(routes, &endpoints, true),
    ];
    println!(
        "table: {routes} routes x {} endpoints, route file {:.1} MB, {swaps} swaps",
        endpoints.len(),
        texts[0].len() as f64 / 1e6
    );

    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        internal_listen: None,
        admin: None,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start(config, RouteTable::from_yaml(&texts[0]).expect("table"))
        .await
        .expect("start");
    let addr = proxy.addrs().public;
    // Let the first health checks pass.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Latency with no swap.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let quiet = tokio::spawn(client(addr, stop_rx));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let quiet_p99 = summary("no swaps", quiet.await.expect("client"));

    // Latency while the table is parsed, built and swapped.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let busy = tokio::spawn(client(addr, stop_rx));
    let (mut parse, mut build, mut publish) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..swaps {
        let text = texts[(i + 1) % 2].clone();
        let publisher = proxy.publisher();
        // `turnout proxy` reloads on its main thread, not on a runtime
        // worker; a blocking thread stands in for it here.
        let (parsed, built, published) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let file = turnout_routing::RouteFile::from_yaml(&text).expect("parse");
            let parsed = Instant::now();
            let table = RouteTable::build(&file).expect("build");
            let built = Instant::now();
            publisher.publish(table);
            (parsed - started, built - parsed, built.elapsed())
        })
        .await
        .expect("reload");
        parse.push(parsed);
        build.push(built);
        publish.push(published);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    let busy_p99 = summary("during swaps", busy.await.expect("client"));

    println!(
        "median ms: parse+validate {:.1}  build {:.1}  publish (snapshot + swap) {:.1}  build+swap {:.1}",
        median(parse.clone()),
        median(build.clone()),
        median(publish.clone()),
        median(build.iter().zip(&publish).map(|(b, p)| *b + *p).collect()),
    );
    println!(
        "p99 during swaps / p99 without: {:.2}",
        busy_p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9)
    );
    proxy.shutdown().await;
}
