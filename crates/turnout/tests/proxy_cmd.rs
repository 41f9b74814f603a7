//! `turnout proxy` end to end: the real binary, a route file, reloads on
//! file change and SIGHUP, and a bad file that keeps the old routes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

#[test]
fn proxy_serves_and_reloads_its_route_file() {
    let a = backend("a");
    let b = backend("b");
    let dir = std::env::temp_dir().join(format!("turnout-proxy-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    routes(&file, &route_to(a));

    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["proxy", "--config"])
            .arg(&file)
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
