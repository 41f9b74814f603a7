//! `GET /v1/apps/{app}/metrics/stream` end to end: the real binary, the
//! requests counted at its router, read back from the stream exactly.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, TempDir};

const WAIT: Duration = Duration::from_secs(30);

/// The stream's `metrics` events, read line by line (HTTP/1.0, so the
/// body is not chunked).
struct Events {
    lines: BufReader<TcpStream>,
    kind: String,
}

impl Events {
    fn open(server: &Server, path: &str) -> Events {
        let mut stream = TcpStream::connect(server.admin).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
            server.token
        )
        .unwrap();
        let mut lines = BufReader::new(stream);
        let mut status = String::new();
        lines.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.0 200"), "{status}");
        loop {
            let mut header = String::new();
            lines.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some(ct) = header.to_ascii_lowercase().strip_prefix("content-type:") {
                assert_eq!(ct.trim(), "text/event-stream");
            }
        }
        Events {
            lines,
            kind: String::new(),
        }
    }

    /// The next event's kind and data.
    fn next(&mut self) -> (String, Value) {
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("an event in time");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(kind) = line.strip_prefix("event: ") {
                self.kind = kind.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                return (
                    std::mem::take(&mut self.kind),
                    serde_json::from_str(data).unwrap(),
                );
            }
        }
    }
}

fn requests(sample: &Value, route: &str, service: &str) -> u64 {
    sample["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == route && r["service"] == service)
        .map_or(0, |r| r["requests"].as_u64().unwrap())
}

#[test]
fn the_metrics_stream_counts_every_request_once() {
    let dir = TempDir::new("metrics-stream");
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);

    let r = server.api("GET", "/v1/apps/nope/metrics/stream", None);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = server.api("GET", "/v1/apps/hello/metrics/stream?interval_ms=0", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("interval_ms 0 is out of range"),
        "{}",
        r.body
    );

    let mut events = Events::open(&server, "/v1/apps/hello/metrics/stream?interval_ms=200");
    let started = Instant::now();
    let (kind, first) = events.next();
    assert_eq!(kind, "metrics");
    assert_eq!(first["app"], "hello");
    assert!(started.elapsed() < Duration::from_secs(2));
    // 40 requests to serviceb, each of which calls servicea once.
    for _ in 0..40 {
        assert_eq!(server.get("serviceb.localhost").status, 200);
    }
    let (mut b, mut a) = (0, 0);
    let deadline = Instant::now() + WAIT;
    let mut last = first;
    let mut busy = None;
    while (b < 40 || a < 40) && Instant::now() < deadline {
        let (kind, sample) = events.next();
        assert_eq!(kind, "metrics");
        let interval = sample["interval_ms"].as_u64().unwrap();
        assert!((100..2000).contains(&interval), "{sample}");
        let in_window = requests(&sample, "serviceb.localhost", "serviceB-v1");
        b += in_window;
        a += requests(&sample, "servicea.local", "serviceA-v1");
        if in_window > 0 && busy.is_none() {
            busy = Some(sample.clone());
        }
        last = sample;
    }
    assert_eq!((b, a), (40, 40), "every request counted once: {last}");
    // Nothing more was sent: the next window is empty, and its totals
    // are the 40.
    let (_, quiet) = events.next();
    assert_eq!(requests(&quiet, "serviceb.localhost", "serviceB-v1"), 0);
    let service = quiet["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "serviceB-v1")
        .unwrap()
        .clone();
    assert_eq!(service["total_requests"], 40, "{quiet}");
    assert_eq!(service["requests_per_second"], 0.0);
    assert_eq!(service["error_rate"], Value::Null);
    assert_eq!(service["p99_ms"], Value::Null);
    // A window with requests has a rate, no errors and a p99.
    let busy = busy.expect("a window with requests");
    let busy = busy["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "serviceB-v1")
        .unwrap();
    assert!(
        busy["requests_per_second"].as_f64().unwrap() > 0.0,
        "{busy}"
    );
    assert_eq!(busy["error_rate"], 0.0, "{busy}");
    assert!(busy["p99_ms"].as_f64().unwrap() > 0.0, "{busy}");

    // A deleted app ends its stream with `gone`.
    let r = server.api("DELETE", "/v1/apps/hello", None);
    assert_eq!(r.status, 204, "{}", r.body);
    let deadline = Instant::now() + WAIT;
    loop {
        let (kind, data) = events.next();
        if kind == "gone" {
            assert_eq!(data["app"], "hello");
            break;
        }
        assert!(Instant::now() < deadline, "no gone event");
    }
}
