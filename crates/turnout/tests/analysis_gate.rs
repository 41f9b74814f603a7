//! The analysis's Prometheus gate end to end (DESIGN §8): the real binary
//! runs the seed demo (`turnout demo-app` instances), a canary of the
//! frontend v2 is judged by an instant query to a fake Prometheus on
//! 127.0.0.1:0 answering the real API's JSON. Above `max` it rolls back
//! with the gate's reason, under it promotes, an unreachable Prometheus
//! pauses it as inconclusive; each check is an `analysis` event on the
//! SSE stream.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Server, TempDir};

const APP: &str = "hello";
const WAIT: Duration = Duration::from_secs(30);
const QUERY: &str = "sum(rate(checkout_errors_total[1m]))";

/// A fake Prometheus answering every request with one series of `value`.
struct FakePrometheus {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePrometheus {
    fn start(value: &str) -> FakePrometheus {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.1,"{value}"]}}]}}}}"#
        )));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((mut socket, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                socket.set_nonblocking(false).unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                if line.starts_with("GET /api/v1/query?query=") {
                    q.fetch_add(1, Ordering::SeqCst);
                }
                let body = body.lock().unwrap().clone();
                let _ = write!(
                    socket,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakePrometheus {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn up(dir: &TempDir) -> Server {
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    server
}

fn state(s: &serde_json::Value) -> String {
    s["release"]["state"].as_str().unwrap_or("").to_string()
}

/// A canary of the frontend v2 judged by the Prometheus gate only
/// (`min_requests: 0`: no traffic needed), one check a second.
fn canary(server: &Server, url: &str, pause: &str) {
    let v2 = std::fs::read_to_string(support::root().join("examples/hello/app-frontend-v2.yaml"))
        .unwrap();
    let body = serde_json::json!({
        "template": v2, "source_name": "v2.yaml",
        "plan": {"strategy": "canary", "canary": {"share": 20}, "pause": pause,
                 "analysis": {"window": "1s", "min_requests": 0,
                              "prometheus": {"url": url, "query": QUERY, "max": 0.5}}},
    });
    let r = server.api(
        "POST",
        &format!("/v1/apps/{APP}/releases"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The app's event stream, open: each event as (its SSE id, its kind,
/// its data).
struct EventStream(BufReader<TcpStream>);

impl EventStream {
    fn open(server: &Server) -> EventStream {
        let mut stream = TcpStream::connect(server.admin).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET /v1/events/stream?app={APP} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            server.token
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        reader.read_line(&mut head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        EventStream(reader)
    }

    /// The next event. Lines other than the SSE fields (the headers,
    /// chunk sizes) are skipped.
    fn next(&mut self) -> (Option<String>, String, serde_json::Value) {
        let (mut id, mut kind, mut data) = (None, None, None);
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else if line.is_empty()
                && let (Some(kind), Some(data)) = (kind.take(), data.take())
            {
                return (id.take(), kind, data);
            }
        }
    }

    /// The next `n` analysis checks, skipping other events.
    fn checks(&mut self, n: usize) -> Vec<(Option<String>, serde_json::Value)> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            assert!(Instant::now() < deadline, "only {out:?}");
            let (id, kind, data) = self.next();
            if kind == "analysis" {
                out.push((id, data));
            }
        }
        out
    }
}

#[test]
fn a_canary_whose_prometheus_value_exceeds_max_is_rolled_back_naming_the_gate() {
    let prometheus = FakePrometheus::start("0.7");
    let dir = TempDir::new("gate-over");
    let mut server = up(&dir);
    canary(&server, &prometheus.url(), "30s");
    let s = server.wait_status(APP, WAIT, |s| state(s) == "rolled-back");
    assert_eq!(
        s["release"]["reason"],
        format!("failed: analysis: prometheus: {QUERY} = 0.7 > 0.5")
    );
    let last = s["release"]["analysis"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["verdict"], "fail", "{last}");
    assert!(prometheus.queries.load(Ordering::SeqCst) >= 1);
    // The old version serves everything again.
    for _ in 0..10 {
        let r = server.get("serviceb.localhost");
        assert_eq!((r.status, r.body.as_str()), (200, "Hello world!"));
    }
    server.stop();
}

#[test]
fn a_canary_under_max_promotes_and_each_check_is_an_event_on_the_stream() {
    let prometheus = FakePrometheus::start("0.2");
    let dir = TempDir::new("gate-under");
    let mut server = up(&dir);
    let mut events = EventStream::open(&server);
    canary(&server, &prometheus.url(), "1s");
    let s = server.wait_status(APP, WAIT, |s| state(s) == "pending-confirmation");
    assert_eq!(s["release"]["step"]["share"], 100, "{s:#}");
    let checks = s["release"]["analysis"].as_array().unwrap().clone();
    // A check at the canary's share, one at 100 %.
    assert!(checks.len() >= 2, "{checks:?}");
    assert!(checks.iter().all(|c| c["verdict"] == "pass"), "{checks:?}");
    // Every check is on the stream, in order, with the status's figures
    // and reasons; the first is stored (it has an SSE id), the passes
    // repeating it are live only (no id).
    let seen = events.checks(checks.len());
    for ((id, data), entry) in seen.iter().zip(&checks) {
        assert_eq!(data["kind"], "analysis");
        assert_eq!(data["app"], APP);
        let check = &data["data"];
        for field in ["at", "verdict", "new", "baseline", "reasons"] {
            assert_eq!(check[field], entry[field], "{field}: {check} vs {entry}");
        }
        assert!(check["release_id"].as_i64().unwrap() > 0, "{check}");
        assert!(check["step"].is_u64(), "{check}");
        assert!(
            data["message"]
                .as_str()
                .unwrap()
                .contains(": pass (new 0 requests"),
            "{data}"
        );
        assert_eq!(
            id.is_some(),
            std::ptr::eq(entry, &checks[0]),
            "{id:?} {data}"
        );
    }
    let r = server.api("GET", &format!("/v1/events?app={APP}"), None);
    let stored: Vec<serde_json::Value> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "analysis")
        .cloned()
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    server.stop();
}

#[test]
fn an_unreachable_prometheus_pauses_the_canary_as_inconclusive() {
    // A port just closed: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("gate-unreachable");
    let mut server = up(&dir);
    canary(&server, &format!("http://127.0.0.1:{port}"), "1s");
    let s = server.wait_status(APP, WAIT, |s| state(s) == "paused");
    assert_eq!(s["release"]["paused"], "inconclusive", "{s:#}");
    let reason = s["release"]["analysis"].as_array().unwrap().last().unwrap()["reasons"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with(&format!("prometheus: no value for {QUERY} (unreachable: ")),
        "{reason}"
    );
    // Neither promoted nor rolled back a few windows later.
    std::thread::sleep(Duration::from_millis(2_500));
    let s = server.status(APP);
    assert_eq!(
        (state(&s), s["release"]["step"]["share"].as_u64()),
        ("paused".into(), Some(20))
    );
    // The inconclusive check is in the history with its reason.
    let r = server.api("GET", &format!("/v1/events?app={APP}"), None);
    let events = r.json()["events"].as_array().unwrap().clone();
    let check = events
        .iter()
        .find(|e| e["kind"] == "analysis")
        .unwrap_or_else(|| panic!("no analysis event: {events:?}"));
    assert_eq!(check["data"]["verdict"], "inconclusive");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("(unreachable: "),
        "{check}"
    );
    server.stop();
}
