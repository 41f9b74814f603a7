//! Upgraded connections (WebSocket and other `Upgrade:` protocols): after
//! the upstream answers 101, bytes are copied both ways until either side
//! closes, the instance's drain deadline passes, or the proxy stops.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::instance::Instance;
use crate::shared::Shared;

/// Joins the client's and the upstream's upgraded connections.
pub(crate) fn spawn(
    shared: &Shared,
    client: OnUpgrade,
    upstream: OnUpgrade,
    instance: Arc<Instance>,
) {
    let hard_stop = shared.hard_stop.clone();
    shared.tasks.spawn(async move {
        let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
            tracing::debug!(instance = %instance.id, "upgrade did not complete");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(err) = result {
                    tracing::debug!(instance = %instance.id, %err, "upgraded connection ended");
                }
            }
            () = instance.drained.cancelled() => {
                tracing::debug!(instance = %instance.id, "upgraded connection closed at drain deadline");
            }
            () = hard_stop.cancelled() => {}
        }
    });
}
