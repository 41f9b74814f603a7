//! Issue 5 item 4: a loopback client that holds many idle keep-alive
//! connections to a proxy, so the proxy's memory per idle connection can
//! be read (bench/idle.sh reads it; this program only holds connections).
//!
//!     idle_clients ADDR HOST CONNECTIONS [CONCURRENCY]
//!
//! Opens CONNECTIONS connections to ADDR, at most CONCURRENCY (default 32)
//! at a time, sends one keep-alive `GET /` with `Host: HOST` on each and
//! reads its whole response, then keeps every connection open and idle
//! and prints `OPENED ...`. Then it obeys lines on stdin:
//!
//! - `check`: every connection is tested without sending anything (a
//!   connection the proxy closed reads as end of stream), then one more
//!   request is sent on SAMPLE of them (environment, default 100), evenly
//!   spread; prints `CHECK ...`.
//! - `close`, or the end of stdin: closes every connection, prints
//!   `CLOSED n` and exits.
//!
//! A connection that fails to open is counted, not retried. Every wait is
//! bounded (10 s per connect, request or response). Figures are printed,
//! never asserted.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest wait for one connect, request write or response.
const STEP: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [addr, host, n] => Some((addr, host, n, "32")),
        [addr, host, n, c] => Some((addr, host, n, c.as_str())),
        _ => None,
    }
    .and_then(|(addr, host, n, c)| {
        Some((
            addr.parse::<SocketAddr>().ok()?,
            host.clone(),
            n.parse::<usize>().ok()?,
            c.parse::<usize>().ok().filter(|&c| c > 0)?,
        ))
    });
    let Some((addr, host, connections, concurrency)) = parsed else {
        eprintln!("usage: idle_clients ADDR HOST CONNECTIONS [CONCURRENCY]");
        return ExitCode::from(2);
    };
    let sample = std::env::var("SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(addr, host, connections, concurrency, sample))
}

async fn run(
    addr: SocketAddr,
    host: String,
    connections: usize,
    concurrency: usize,
    sample: usize,
) -> ExitCode {
    let request: Arc<[u8]> = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: idle-clients\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
    .into();

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut openers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(connections) {
        let (next, request) = (next.clone(), request.clone());
        openers.spawn(async move {
            let mut opened = Vec::new();
            let mut failed = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < connections {
                match open(addr, &request).await {
                    Ok(stream) => opened.push(stream),
                    Err(err) => failed.push(err.to_string()),
                }
            }
            (opened, failed)
        });
    }
    let mut streams = Vec::with_capacity(connections);
    let mut failures = Vec::new();
    while let Some(joined) = openers.join_next().await {
        let (opened, failed) = joined.expect("opener task");
        streams.extend(opened);
        failures.extend(failed);
    }
    if let Some(first) = failures.first() {
        eprintln!("{} connections failed; first: {first}", failures.len());
    }
    println!(
        "OPENED {} failed={} secs={:.2}",
        streams.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        match line.trim() {
            "check" => check(&mut streams, &request, sample).await,
            "close" => break,
            other => eprintln!("unknown command {other:?} (check, close)"),
        }
    }
    let n = streams.len();
    drop(streams);
    println!("CLOSED {n}");
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Connects and completes one keep-alive exchange.
async fn open(addr: SocketAddr, request: &[u8]) -> io::Result<TcpStream> {
    let mut stream = timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    exchange(&mut stream, request).await?;
    Ok(stream)
}

/// Sends `request` and reads its whole response, which must be a 200 that
/// keeps the connection open.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> io::Result<()> {
    timeout(STEP, stream.write_all(request))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request write timed out"))??;
    timeout(STEP, read_response(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "response timed out"))?
}

async fn read_response(stream: &mut TcpStream) -> io::Result<()> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    // (end of head, body framing) once the head is complete.
    let mut head: Option<(usize, Body)> = None;
    loop {
        if let Some((end, body)) = head {
            let rest = &buf[end..];
            let done = match body {
                Body::Length(n) => rest.len() >= n,
                Body::Chunked => rest.ends_with(b"0\r\n\r\n"),
            };
            if done {
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed before the response ended".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none()
            && let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head = Some((at + 4, parse_head(&buf[..at]).map_err(bad)?));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Length(usize),
    Chunked,
}

fn parse_head(head: &[u8]) -> Result<Body, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("response {status:?}"));
    }
    let mut body = Body::Length(0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = Body::Length(value.parse().map_err(|_| format!("length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            body = Body::Chunked;
        } else if name.eq_ignore_ascii_case("connection") && value.contains("close") {
            return Err("the response closes the connection".into());
        }
    }
    Ok(body)
}

/// Tests every connection without writing to it, then sends one more
/// request on `sample` of them, spread evenly.
async fn check(streams: &mut Vec<TcpStream>, request: &Arc<[u8]>, sample: usize) {
    // Let the runtime take in pending readiness events (a peer's FIN), so
    // `try_read` below sees every closed connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut open, mut closed, mut data, mut errors) = (0, 0, 0, 0);
    let mut byte = [0u8; 64];
    for stream in streams.iter() {
        match stream.try_read(&mut byte) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => open += 1,
            Ok(0) => closed += 1,
            Ok(_) => data += 1,
            Err(_) => errors += 1,
        }
    }
    // The sample's requests run at once (each bounded by STEP), on
    // streams taken out of the list and put back after.
    let step = (streams.len() / sample.max(1)).max(1);
    let picked: Vec<usize> = (0..streams.len()).step_by(step).take(sample).collect();
    let mut requests = tokio::task::JoinSet::new();
    for &i in picked.iter().rev() {
        let mut stream = streams.swap_remove(i);
        let request = request.clone();
        requests.spawn(async move {
            let result = exchange(&mut stream, &request).await;
            (stream, result)
        });
    }
    let (sampled, mut sample_ok) = (picked.len(), 0);
    while let Some(joined) = requests.join_next().await {
        let (stream, result) = joined.expect("sample task");
        streams.push(stream);
        match result {
            Ok(()) => sample_ok += 1,
            Err(err) => eprintln!("sample request failed: {err}"),
        }
    }
    println!(
        "CHECK open={open} closed={closed} unexpected_data={data} errors={errors} sample={sampled} sample_ok={sample_ok}"
    );
}
