//! Active health checks: a TCP connect or an HTTP GET per instance.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use turnout_routing::HealthCheck;

use crate::instance::Instance;

/// Probes `instance` until `stop` is cancelled: the first probe at once,
/// then every 100 ms while the instance has not answered (or is unhealthy),
/// then at the configured interval. A passive check (`active: false`)
/// probes only while a failed connect has the instance ejected.
pub(crate) async fn run(instance: Arc<Instance>, check: HealthCheck, stop: CancellationToken) {
    let mut answered = false;
    let mut successes = 0u32;
    let mut failures = 0u32;
    loop {
        if !check.active && instance.is_ready() {
            // Someone else owns health: wait for an ejection.
            tokio::select! {
                () = instance.recheck.notified() => {}
                () = stop.cancelled() => return,
            }
            answered = true;
            failures = 0;
            successes = 0;
            continue;
        }
        let ok = tokio::select! {
            ok = probe(&instance, &check) => ok,
            () = stop.cancelled() => return,
        };
        if ok {
            answered = true;
            failures = 0;
            successes = successes.saturating_add(1);
            if successes >= check.rise {
                instance.set_healthy(true);
            }
        } else {
            successes = 0;
            failures = failures.saturating_add(1);
            if failures >= check.fall {
                instance.set_healthy(false);
            }
        }
        let wait = if answered && instance.is_ready() {
            check.interval
        } else {
            HealthCheck::FAST_INTERVAL
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = instance.recheck.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn probe(instance: &Instance, check: &HealthCheck) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(instance.addr).await.ok()?;
        let Some(path) = &check.path else {
            return Some(true);
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        // The connection task ends when the probe's response is read and the
        // sender is dropped.
        tokio::spawn(conn);
        let request = Request::get(&**path)
            .header(header::HOST, instance.authority.as_str())
            .header(header::USER_AGENT, "turnout-health")
            .header(header::CONNECTION, "close")
            .body(Empty::<bytes::Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        Some(response.status().is_success() || response.status().is_redirection())
    };
    matches!(
        tokio::time::timeout(check.timeout.max(Duration::from_millis(1)), attempt).await,
        Ok(Some(true))
    )
}
