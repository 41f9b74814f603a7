//! Upgraded connections (WebSocket and other `Upgrade:` protocols): after
//! the upstream answers 101, bytes are copied both ways until either side
//! closes, the instance's drain ends, or the proxy stops. The connection
//! counts in the instance's in-flight for as long as it lasts.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::in_flight::InFlight;
use crate::shared::Shared;

/// Joins the client's and the upstream's upgraded connections.
pub(crate) fn spawn(shared: &Shared, client: OnUpgrade, upstream: OnUpgrade, in_flight: InFlight) {
    let hard_stop = shared.hard_stop.clone();
    shared.tasks.spawn(async move {
        let instance = in_flight.instance();
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
            () = instance.link.drained.cancelled() => {
                tracing::debug!(instance = %instance.id, "upgraded connection closed at drain deadline");
            }
            () = hard_stop.cancelled() => {}
        }
    });
}
