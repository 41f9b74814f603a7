//! Upstream connections made inside another network namespace
//! (`Publisher::set_upstream_namespaces`, as the docker runtime gives its
//! containers'): a backend that listens on 127.0.0.1 inside a namespace of
//! its own, where the router's namespace has nothing on that port, is
//! answered through the router; a namespace the router cannot enter falls
//! back to the usual connect, once and for all.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnout_proxy::UpstreamNamespaces;

use crate::support::*;

/// Gives `namespace` (opened anew each time) for every address, and counts
/// the questions.
#[derive(Debug)]
struct Everywhere {
    namespace: std::path::PathBuf,
    asked: Arc<AtomicUsize>,
}

impl UpstreamNamespaces for Everywhere {
    fn namespace(&self, _addr: SocketAddr) -> Option<OwnedFd> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        std::fs::File::open(&self.namespace).ok().map(OwnedFd::from)
    }
}

/// A network namespace made with `ip netns add`, deleted when dropped.
struct Netns(String);

impl Netns {
    /// `None` where one cannot be made (no `ip`, not root).
    fn make() -> Option<Netns> {
        // One name per namespace: the tests run at once in one process.
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("turnout-test-{}-{n}", std::process::id());
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let netns = Netns(name);
        ip(&["-n", &netns.0, "link", "set", "lo", "up"]).then_some(netns)
    }

    fn path(&self) -> std::path::PathBuf {
        std::path::Path::new("/run/netns").join(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

/// An HTTP/1.1 backend on 127.0.0.1 answering `text` to every request:
/// inside `netns` (its listening socket made there by a thread of its
/// own) or, without one, in this namespace; it keeps connections open, or
/// with `close` ends each after one answer. Also: the connections it
/// accepted.
async fn backend(
    netns: Option<&Netns>,
    text: &'static str,
    close: bool,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let path = netns.map(Netns::path);
    let listener = std::thread::spawn(move || {
        if let Some(path) = path {
            let ns = std::fs::File::open(path).unwrap();
            setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    })
    .join()
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let connection = if close { "close" } else { "keep-alive" };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{text}",
                            text.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn one_route(addr: SocketAddr) -> String {
    format!(
        "routes:\n  - host: app.localhost\n    services:\n      - {{ name: web, weight: 100, \
         endpoints: [\"{addr}\"] }}\n"
    )
}

#[tokio::test]
async fn a_backend_inside_another_network_namespace_is_reached_from_inside_it() {
    let Some(netns) = Netns::make() else {
        eprintln!("skipped: cannot make a network namespace here (`ip netns add` needs root)");
        return;
    };
    let (addr, _) = backend(Some(&netns), "inside", false).await;
    // Nothing listens there in the router's namespace: without the
    // namespace, the connection is refused.
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} answers outside the namespace; the test would prove nothing"
    );
    let proxy = proxy(&one_route(addr)).await;
    let public = proxy.addrs().public;
    let client = client();
    let asked = Arc::new(AtomicUsize::new(0));
    assert!(proxy.set_upstream_namespaces(Everywhere {
        namespace: netns.path(),
        asked: asked.clone(),
    }));
    // Given once only.
    assert!(!proxy.set_upstream_namespaces(Everywhere {
        namespace: netns.path(),
        asked: asked.clone(),
    }));
    for _ in 0..3 {
        // The fast path (plain GET) and the hyper path (a chunked body).
        let fast = get(&client, public, "app.localhost", "/", &[]).await;
        assert_eq!((fast.status.as_u16(), fast.body.as_str()), (200, "inside"));
        let body = raw(
            public,
            b"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        )
        .await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with("inside"), "{body}");
    }
    assert!(asked.load(Ordering::Relaxed) >= 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_namespace_that_cannot_be_entered_falls_back_once_and_for_all() {
    // It closes every connection after one answer: each request makes a
    // new upstream connection.
    let (addr, accepted) = backend(None, "plain", true).await;
    let proxy = proxy(&one_route(addr)).await;
    let public = proxy.addrs().public;
    let asked = Arc::new(AtomicUsize::new(0));
    // Not a namespace: setns refuses it (EINVAL), as it refuses one
    // without the privilege (EPERM).
    proxy.set_upstream_namespaces(Everywhere {
        namespace: "/dev/null".into(),
        asked: asked.clone(),
    });
    let client = client();
    for _ in 0..4 {
        let answer = get(&client, public, "app.localhost", "/", &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "plain")
        );
    }
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted >= 4, "{accepted} connections for 4 requests");
    assert_eq!(
        asked.load(Ordering::Relaxed),
        1,
        "asked again after the refusal"
    );
    proxy.shutdown().await;
}

/// The threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[tokio::test]
async fn a_namespace_has_one_thread_for_all_its_new_connections() {
    use std::os::unix::fs::MetadataExt;
    let Some(netns) = Netns::make() else {
        eprintln!("skipped: cannot make a network namespace here (`ip netns add` needs root)");
        return;
    };
    // Every answer ends its connection: each request is a new upstream
    // connection, made inside the namespace.
    let (addr, accepted) = backend(Some(&netns), "inside", true).await;
    let proxy = proxy(&one_route(addr)).await;
    let public = proxy.addrs().public;
    let asked = Arc::new(AtomicUsize::new(0));
    assert!(proxy.set_upstream_namespaces(Everywhere {
        namespace: netns.path(),
        asked: asked.clone(),
    }));
    // Its thread is named after the namespace's inode.
    let name = format!("netns{}", std::fs::metadata(netns.path()).unwrap().ino());
    let client = client();
    for _ in 0..8 {
        let answer = get(&client, public, "app.localhost", "/", &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "inside")
        );
    }
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted >= 8, "{accepted} connections for 8 requests");
    // One thread made them all, and it waits for the next (not one thread
    // per connection, each gone once its socket was made).
    assert_eq!(threads_named(&name), 1, "threads named {name}");
    proxy.shutdown().await;
}
