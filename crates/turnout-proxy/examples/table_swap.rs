//! Issue 5 item 5: a generated table of ROUTES routes × 10 endpoints
//! (default 10,000), parsed, built and published (swapped) SWAPS times
//! while a client keeps sending requests through the proxy; prints each
//! part's time (parse, validate alone, `RouteTable::build` with its
//! validation, publish) and the request latency without swaps and while
//! reloading, the latter split by what overlapped the request: a build +
//! swap (the < 50 ms target, from a parsed `RouteFile` to the table being
//! live), a parse, or neither.
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
/// changes every route. With `generation` `Some(n)`, every route but the
/// first (which the client requests) serves `r{i}-gen{n}.example`
/// instead: a table of new route ids, with no state to carry.
fn route_file(
    routes: usize,
    endpoints: &[SocketAddr],
    flip: bool,
    generation: Option<usize>,
) -> String {
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
        let host = match generation {
            Some(n) if i > 0 => format!("r{i}-gen{n}.example"),
            _ => format!("r{i}.example"),
        };
        text.push_str(&format!(
            "  - host: {host}\n    sticky: off\n    health: {{ interval_ms: 60000 }}\n    services:\n      - {{ name: v1, weight: {a}, endpoints: [{first}] }}\n      - {{ name: v2, weight: {b}, endpoints: [{second}] }}\n"
        ));
    }
    text
}

/// A route file whose routes list endpoints of their own (route `i`:
/// `10.x.y.1..=10:8080`, 100,000 addresses for 10,000 routes), as a real
/// table would: only built, never published (the proxy would health-check
/// every address).
fn distinct_route_file(routes: usize) -> String {
    let mut text = String::from("routes:\n");
    for i in 0..routes {
        let net = format!("10.{}.{}", i / 256 % 256, i % 256);
        let list = |hosts: std::ops::RangeInclusive<u8>| {
            hosts
                .map(|h| format!("\"{net}.{h}:8080\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "  - host: r{i}.example\n    sticky: off\n    services:\n      - {{ name: v1, weight: 90, endpoints: [{}] }}\n      - {{ name: v2, weight: 10, endpoints: [{}] }}\n",
            list(1..=5),
            list(6..=10)
        ));
    }
    text
}

/// One request: when it was sent and how long its response took.
type Sample = (Instant, Duration);

/// Sends GETs for `r0.example` over one keep-alive connection until
/// `stop`, and returns each request's start and latency.
async fn client(addr: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> Vec<Sample> {
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
        latencies.push((started, started.elapsed()));
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints one line of latency figures; returns the p99.
fn summary(name: &str, samples: &[Sample], quiet_p99: Duration) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|(_, l)| *l).collect();
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    let over = latencies.iter().filter(|l| **l > 2 * quiet_p99).count();
    println!(
        "{name:<24} requests {:>7}  p50 {:>5.0} µs  p99 {:>6.0} µs  p99.9 {:>6.0} µs  max {:>7.0} µs  > 2x quiet p99: {over} ({:.2} %)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        percentile(&latencies, 0.999).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
        over as f64 * 100.0 / latencies.len().max(1) as f64,
    );
    p99
}

/// The parts of one reload.
struct Swap {
    parse: Duration,
    /// `RouteFile::validate` alone.
    validate: Duration,
    /// `RouteTable::build`, which validates again and builds.
    build: Duration,
    /// `Publisher::publish`: instance registry, snapshot build, swap.
    publish: Duration,
    /// When parsing started, when building started and when publishing
    /// ended: requests are told apart by what ran while they were in
    /// flight.
    window: (Instant, Instant, Instant),
}

#[derive(Default)]
struct Times(Vec<Swap>);

impl Times {
    fn push(&mut self, swap: Swap) {
        self.0.push(swap);
    }

    /// Median, min and max in ms of one part.
    fn stats(&self, part: impl Fn(&Swap) -> Duration) -> String {
        let mut values: Vec<f64> = self.0.iter().map(|s| part(s).as_secs_f64() * 1e3).collect();
        values.sort_by(f64::total_cmp);
        match (values.first(), values.last()) {
            (Some(min), Some(max)) => format!(
                "{:>7.1}  ({:.1}..{:.1})",
                values[values.len() / 2],
                min,
                max
            ),
            _ => "-".to_owned(),
        }
    }

    fn print(&self) {
        println!("per swap, median ms (min..max):");
        println!(
            "  parse (YAML -> RouteFile)       {}",
            self.stats(|s| s.parse)
        );
        println!(
            "  validate (alone)                {}",
            self.stats(|s| s.validate)
        );
        println!(
            "  RouteTable::build (+ validate)  {}",
            self.stats(|s| s.build)
        );
        println!(
            "  publish (snapshot + swap)       {}",
            self.stats(|s| s.publish)
        );
        println!(
            "  build + swap (target < 50)      {}",
            self.stats(|s| s.build + s.publish)
        );
        let each: Vec<String> = self
            .0
            .iter()
            .map(|s| format!("{:.0}", (s.build + s.publish).as_secs_f64() * 1e3))
            .collect();
        println!("  build + swap, each in order:    {}", each.join(" "));
    }
}

/// Publishes each of `texts` (parsed, built, swapped on a blocking thread)
/// while a client sends requests, then prints the latency by what the
/// requests overlapped and the times of each part.
async fn swap_phase(proxy: &Proxy, addr: SocketAddr, texts: Vec<String>, quiet_p99: Duration) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let busy = tokio::spawn(client(addr, stop_rx));
    let mut times = Times::default();
    for text in texts {
        let publisher = proxy.publisher();
        // `turnout proxy` reloads on its main thread, not on a runtime
        // worker; a blocking thread stands in for it here.
        let swap = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let file = turnout_routing::RouteFile::from_yaml(&text).expect("parse");
            let parsed = Instant::now();
            // `RouteTable::build` validates too; validation is timed on
            // its own first to show its part of the build.
            file.validate().expect("valid");
            let validated = Instant::now();
            let table = RouteTable::build(&file).expect("build");
            let built = Instant::now();
            publisher.publish(table);
            let published = Instant::now();
            let swap = Swap {
                parse: parsed - started,
                validate: validated - parsed,
                build: built - validated,
                publish: published - built,
                window: (started, validated, published),
            };
            // Freed after the clock stopped, as `turnout proxy` frees the
            // parsed file after publishing.
            drop(file);
            swap
        })
        .await
        .expect("reload");
        times.push(swap);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    let busy = busy.await.expect("client");
    // Each request by what it overlapped: a build and swap (the target),
    // else a parse (or the validation timed alone), else neither (the
    // pauses between reloads, where the parsed file and the replaced
    // table are freed).
    let (mut swapping, mut parsing, mut between) = (Vec::new(), Vec::new(), Vec::new());
    for &(start, latency) in &busy {
        let end = start + latency;
        let overlaps = |from: Instant, to: Instant| start < to && end > from;
        if times.0.iter().any(|s| overlaps(s.window.1, s.window.2)) {
            swapping.push((start, latency));
        } else if times.0.iter().any(|s| overlaps(s.window.0, s.window.1)) {
            parsing.push((start, latency));
        } else {
            between.push((start, latency));
        }
    }
    let busy_p99 = summary("while reloading, all", &busy, quiet_p99);
    let swap_p99 = summary("  during build + swap", &swapping, quiet_p99);
    summary("  during parse", &parsing, quiet_p99);
    summary("  between reloads", &between, quiet_p99);
    let swap_max = swapping.iter().map(|(_, l)| *l).max().unwrap_or_default();

    times.print();
    let ratio = |d: Duration| d.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9);
    println!(
        "p99 / p99 without swaps: all {:.2}, during build + swap {:.2}; worst request during build + swap {:.2} ms = {:.1}x p99 without",
        ratio(busy_p99),
        ratio(swap_p99),
        swap_max.as_secs_f64() * 1e3,
        ratio(swap_max),
    );
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
        route_file(routes, &endpoints, false, None),
        route_file(routes, &endpoints, true, None),
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
    let table = RouteTable::from_yaml(&texts[0]).expect("table");
    // The first publish finds no state to carry: every metric handle of
    // every route, service and instance is created.
    let started = Instant::now();
    let proxy = Proxy::start(config, table).await.expect("start");
    println!(
        "start (first publish, every handle new): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let addr = proxy.addrs().public;
    // Let the first health checks pass.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Latency with no swap.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let quiet = tokio::spawn(client(addr, stop_rx));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let quiet = quiet.await.expect("client");
    let mut sorted: Vec<Duration> = quiet.iter().map(|(_, l)| *l).collect();
    sorted.sort();
    let quiet_p99 = summary("no swaps", &quiet, percentile(&sorted, 0.99));

    // Latency while the table is parsed, built and swapped: the same
    // routes with flipped weights (their state is kept), then tables
    // whose routes are all new (but the one requested).
    let reload: Vec<String> = (0..swaps).map(|i| texts[(i + 1) % 2].clone()).collect();
    drop(texts);
    println!("-- reload: the same routes, new weights");
    swap_phase(&proxy, addr, reload, quiet_p99).await;
    println!("-- new routes: every route id new (r{{i}}-gen{{n}}.example), but r0");
    let fresh: Vec<String> = (0..swaps)
        .map(|n| route_file(routes, &endpoints, n % 2 == 1, Some(n)))
        .collect();
    swap_phase(&proxy, addr, fresh, quiet_p99).await;
    proxy.shutdown().await;

    // The build alone when no two routes share an endpoint.
    let text = distinct_route_file(routes);
    let file = turnout_routing::RouteFile::from_yaml(&text).expect("parse");
    let (mut validate, mut build) = (Vec::new(), Vec::new());
    for _ in 0..swaps.clamp(1, 5) {
        let started = Instant::now();
        file.validate().expect("valid");
        let validated = Instant::now();
        let table = RouteTable::build(&file).expect("build");
        build.push(validated.elapsed());
        validate.push(validated - started);
        drop(table);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    println!(
        "distinct endpoints ({} addresses), median ms: validate (alone) {:.1}, RouteTable::build (+ validate) {:.1}",
        routes * 10,
        median(validate),
        median(build)
    );
}
