//! The analysis's Prometheus gate (DESIGN §8) through the controller and
//! its reconciler, against a small fake Prometheus on 127.0.0.1:0 that
//! answers the real API's JSON: a value above `max` fails the check and
//! rolls back, one at or below it passes and the steps move on, an
//! unreachable or silent server pauses as inconclusive (saying why), and
//! the query runs off the state lock. Each check is an `analysis` event;
//! the ones that change the verdict are stored.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{TestController, controller, settle, settle_ready, template};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use turnout_spec::{PlanSpans, ReleaseBlock, ReleasePlan, Strategy};

const V1: &str = r#"
services:
  front-v1:
    command: run
    labels:
      turnout.route.5000: front
"#;

const QUERY: &str = "sum(rate(errors[1m]))";

/// A fake Prometheus: answers every request with `body` once `gate` gives
/// a permit, and keeps each request's first line.
struct FakePrometheus {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    gate: Arc<Semaphore>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePrometheus {
    async fn start(value: &str, open: bool) -> FakePrometheus {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(vector(value)));
        let gate = Arc::new(Semaphore::new(if open {
            Semaphore::MAX_PERMITS
        } else {
            0
        }));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (b, g, r) = (body.clone(), gate.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (b, g, r) = (b.clone(), g.clone(), r.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    r.lock().unwrap().push(line);
                    let Ok(_permit) = g.acquire().await else {
                        return;
                    };
                    let body = b.lock().unwrap().clone();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        FakePrometheus {
            addr,
            body,
            gate,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Prometheus API's answer to an instant query of one series.
fn vector(value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.1,"{value}"]}}]}}}}"#
    )
}

/// `app` at v1, then a gray release of front-v2 with only the Prometheus
/// gate (`min_requests: 0`: the fake router counts nothing).
async fn gray(c: &TestController, url: &str, window: &str) {
    c.deploy("app", "v1.yaml", template(V1)).await.unwrap();
    settle_ready(c, "app").await;
    let v2 = template(&V1.replace("front-v1", "front-v2"));
    let overrides: ReleaseBlock = serde_json::from_value(serde_json::json!({
        "strategy": "gray", "steps": [50, 100], "pause": "100ms",
        "analysis": {"window": window, "min_requests": 0,
                     "prometheus": {"url": url, "query": QUERY, "max": 0.5}}
    }))
    .unwrap();
    let plan = ReleasePlan::with_overrides(&v2, &PlanSpans::default(), &overrides)
        .unwrap()
        .plan;
    c.release(
        "app",
        "v2.yaml",
        v2,
        Strategy::Gray,
        Some((overrides, plan)),
    )
    .await
    .unwrap();
}

async fn release_state(c: &TestController) -> String {
    c.status("app")
        .await
        .unwrap()
        .release
        .map(|r| r.state)
        .unwrap_or_default()
}

async fn settle_state(c: &TestController, want: &str) {
    settle(c, want, async |c| release_state(c).await == want).await;
}

/// The `analysis` events received so far: (id, data).
fn checks(
    events: &mut tokio::sync::broadcast::Receiver<turnout_store::EventRecord>,
) -> Vec<(i64, serde_json::Value)> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.event.kind == turnout_engine::CHECK_EVENT {
            out.push((e.id, e.event.data.unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn a_value_above_max_fails_the_check_and_rolls_back_naming_the_gate() {
    let prometheus = FakePrometheus::start("0.7", true).await;
    let (c, _runtime, _plane) = controller();
    let mut events = c.subscribe();
    gray(&c, &prometheus.url(), "200ms").await;
    settle_state(&c, "rolled-back").await;
    let release = c.status("app").await.unwrap().release.unwrap();
    assert_eq!(
        release.reason.as_deref(),
        Some("failed: analysis: prometheus: sum(rate(errors[1m])) = 0.7 > 0.5")
    );
    // The query as Prometheus's API takes it.
    assert_eq!(
        prometheus.requests(),
        ["GET /api/v1/query?query=sum%28rate%28errors%5B1m%5D%29%29 HTTP/1.1"]
    );
    // The failing check: in the status and as a stored event.
    let last = release.analysis.last().unwrap();
    assert_eq!(last.verdict, "fail");
    let checks = checks(&mut events);
    assert_eq!(checks.len(), 1, "{checks:?}");
    let (id, data) = &checks[0];
    assert!(*id > 0, "a verdict change is stored");
    assert_eq!(data["verdict"], "fail");
    assert_eq!(data["step"], 0);
    assert_eq!(
        data["reasons"],
        serde_json::json!(["prometheus: sum(rate(errors[1m])) = 0.7 > 0.5"])
    );
    let stored = c.store().events(Some("app"), 0, 1000).unwrap();
    assert!(
        stored
            .iter()
            .any(|e| e.id == *id && e.event.kind == "analysis")
    );
}

#[tokio::test]
async fn a_value_at_or_below_max_passes_each_step_and_repeats_are_live_only() {
    let prometheus = FakePrometheus::start("0.5", true).await;
    let (c, _runtime, _plane) = controller();
    let mut events = c.subscribe();
    gray(&c, &prometheus.url(), "200ms").await;
    settle_state(&c, "pending-confirmation").await;
    let release = c.status("app").await.unwrap().release.unwrap();
    assert!(release.analysis.len() >= 2, "{:?}", release.analysis);
    assert!(release.analysis.iter().all(|a| a.verdict == "pass"));
    // A check per step, each a query; the first pass is stored, the
    // passes that repeat it are sent live only (id 0).
    assert!(prometheus.requests().len() >= 2);
    let checks = checks(&mut events);
    assert!(checks.len() >= 2, "{checks:?}");
    assert!(checks[0].0 > 0);
    assert!(checks[1..].iter().all(|(id, _)| *id == 0), "{checks:?}");
    assert_eq!(checks[1].1["step"], 1);
    let stored = c.store().events(Some("app"), 0, 1000).unwrap();
    assert_eq!(
        stored.iter().filter(|e| e.event.kind == "analysis").count(),
        1
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_pauses_as_inconclusive_and_says_so() {
    // A port just closed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (c, _runtime, _plane) = controller();
    gray(&c, &format!("http://127.0.0.1:{port}"), "200ms").await;
    settle_state(&c, "paused").await;
    let release = c.status("app").await.unwrap().release.unwrap();
    assert_eq!(release.paused.as_deref(), Some("inconclusive"));
    let last = release.analysis.last().unwrap();
    assert_eq!(last.verdict, "inconclusive");
    let reason = &last.reasons[0];
    assert!(
        reason.starts_with("prometheus: no value for sum(rate(errors[1m])) (unreachable: "),
        "{reason}"
    );
    // Neither promoted nor rolled back: still paused at the first step
    // after more windows.
    for _ in 0..10 {
        c.reconcile().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let release = c.status("app").await.unwrap().release.unwrap();
    assert_eq!(release.state, "paused");
    assert_eq!(release.step.unwrap().index, 0);
}

#[tokio::test]
async fn the_query_runs_off_the_lock_one_at_a_time_and_a_silent_server_is_inconclusive() {
    // Holds every answer until the gate opens.
    let prometheus = FakePrometheus::start("0.1", false).await;
    let (c, _runtime, _plane) = controller();
    gray(&c, &prometheus.url(), "1s").await;
    settle(&c, "the first query", async |_| {
        !prometheus.requests().is_empty()
    })
    .await;
    // While the query waits, the state lock is free: the status answers
    // (a query under the lock would never let it) and the release is
    // still progressing; reconcile passes start no second query.
    let status = tokio::time::timeout(Duration::from_secs(5), c.status("app"))
        .await
        .expect("the status answers while the query waits");
    assert_eq!(status.unwrap().release.unwrap().state, "progressing");
    c.reconcile().await.unwrap();
    assert_eq!(prometheus.requests().len(), 1);
    // No answer within the timeout (the window, 1 s): inconclusive.
    settle_state(&c, "paused").await;
    let release = c.status("app").await.unwrap().release.unwrap();
    assert_eq!(
        release.analysis.last().unwrap().reasons,
        ["prometheus: no value for sum(rate(errors[1m])) (no answer within 1000 ms)"]
    );
    // The server answers again, under max: the next window passes and the
    // release resumes by itself.
    prometheus.gate.add_permits(1000);
    *prometheus.body.lock().unwrap() = vector("0.2");
    settle(&c, "resumed", async |c| {
        let r = c.status("app").await.unwrap().release.unwrap();
        r.state != "paused" && r.analysis.last().is_some_and(|a| a.verdict == "pass")
    })
    .await;
}
