//! `turnout proxy` end to end: the real binary, a route file, reloads on
//! file change and SIGHUP, and a bad file that keeps the old routes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// A backend on a thread: answers every request with `text` and closes.
fn backend(text: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    addr
}

fn get(addr: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out.rsplit("\r\n\r\n").next().unwrap_or("").to_owned()
}

fn routes(path: &Path, body: &str) {
    // Write then rename, as editors and deploy tools do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn route_to(addr: SocketAddr) -> String {
    format!(
        "routes:\n  - host: app.localhost\n    services: [{{ name: app, endpoints: [\"{addr}\"] }}]\n"
    )
}

/// Waits for a log line containing `needle` (bounded by the channel's
/// timeout).
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `turnout proxy --config FILE` on ephemeral ports: the process,
/// its public address and its log lines.
fn start_proxy(file: &Path) -> (Running, SocketAddr, mpsc::Receiver<String>) {
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["proxy", "--config"])
            .arg(file)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--internal-listen",
                "127.0.0.1:0",
                "--admin",
                "http://127.0.0.1:0",
                "--workers",
                "1",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("turnout listening public=127.0.0.1:"),
        "{first}"
    );
    assert!(
        first.contains(" internal=127.0.0.1:") && first.contains(" admin=127.0.0.1:"),
        "{first}"
    );
    let public: SocketAddr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("public="))
        .unwrap()
        .parse()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    (child, public, lines)
}

#[test]
fn proxy_serves_and_reloads_its_route_file() {
    let a = backend("a");
    let b = backend("b");
    let dir = std::env::temp_dir().join(format!("turnout-proxy-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    routes(&file, &route_to(a));

    let (mut child, public, lines) = start_proxy(&file);

    assert_eq!(get(public, "app.localhost"), "a");

    // A bad file is rejected with the problem named, and "a" keeps serving.
    routes(
        &file,
        "routes:\n  - host: app.localhost\n    services: [{ name: app, weight: 101, endpoints: [\"127.0.0.1:1\"] }]\n",
    );
    let rejected = wait_for(&lines, "rejected route file");
    assert!(rejected.contains("routes.yaml"), "{rejected}");
    assert!(
        rejected.contains("routes[0].services[0].weight"),
        "{rejected}"
    );
    assert_eq!(get(public, "app.localhost"), "a");

    // A good file is picked up on change.
    routes(&file, &route_to(b));
    wait_for(&lines, "reloaded routes");
    assert_eq!(get(public, "app.localhost"), "b");

    // SIGHUP reloads too.
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(&lines, "(SIGHUP)");
    assert_eq!(get(public, "app.localhost"), "b");

    // SIGTERM stops it cleanly.
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn proxy_refuses_a_bad_file_at_start() {
    let dir = std::env::temp_dir().join(format!("turnout-proxy-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    std::fs::write(&file, "routes:\n  - hosts: []\n    services: []\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("routes[0]: a route needs host or hosts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[0].services: a route needs at least one service"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A backend that counts the bytes it receives and answers "ok".
fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    count.fetch_add(n, Ordering::SeqCst);
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                        break;
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Sends raw bytes and returns the whole answer.
fn send_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 9112: two Host fields, a Host with userinfo, and malformed chunked
/// bodies are answered 400 by the real binary, and nothing of them reaches
/// the upstream.
#[test]
fn proxy_refuses_ambiguous_hosts_and_malformed_chunks_and_forwards_nothing() {
    let (backend, received) = counting_backend();
    let dir = std::env::temp_dir().join(format!("turnout-proxy-400-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    routes(&file, &route_to(backend));
    let (_child, public, _lines) = start_proxy(&file);
    let chunked = |body: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        )
    };
    let cases = [
        (
            "two Host fields",
            "GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other.localhost\r\nConnection: close\r\n\r\n".to_string(),
        ),
        (
            "two Host fields, the same value",
            "GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: app.localhost\r\nConnection: close\r\n\r\n".to_string(),
        ),
        (
            "two Host fields on a chunked request",
            "POST / HTTP/1.1\r\nHost: app.localhost\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_string(),
        ),
        (
            "a Host with userinfo",
            "GET / HTTP/1.1\r\nHost: user@app.localhost\r\nConnection: close\r\n\r\n".to_string(),
        ),
        ("a chunk size that overflows", chunked("ffffffffffffffffff\r\nx\r\n0\r\n\r\n")),
        ("a negative chunk size", chunked("-5\r\nhello\r\n0\r\n\r\n")),
        ("no CRLF after chunk data", chunked("5\r\nhelloXX0\r\n\r\n")),
        ("garbage for a chunk size", chunked("zz\r\nhello\r\n0\r\n\r\n")),
    ];
    for (what, request) in &cases {
        let answer = send_raw(public, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{what}: expected 400, got {answer:?}"
        );
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "nothing of a refused request may reach the upstream"
    );
    // The same route serves a well-formed chunked request.
    let answer = send_raw(public, chunked("5\r\nhello\r\n0\r\n\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(received.load(Ordering::SeqCst) > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
