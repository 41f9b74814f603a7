//! The runtime side of one upstream instance: its health state, its
//! in-flight count and its drain signal. Kept across table swaps by
//! address, so health survives a reload.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use http::uri::Authority;
use prometheus_client::metrics::gauge::Gauge;

use crate::upstream::Link;

/// The state of an instance as the proxy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// Takes new requests.
    Ready,
    /// Failed its health checks or a connect: no new requests until a probe
    /// succeeds again.
    Unhealthy,
    /// Removed from the table: no new requests; finishes the ones in flight
    /// until they are done or the drain deadline passes.
    Draining,
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceState::Ready => "ready",
            InstanceState::Unhealthy => "unhealthy",
            InstanceState::Draining => "draining",
        })
    }
}

impl InstanceState {
    fn from_u8(value: u8) -> InstanceState {
        match value {
            0 => InstanceState::Ready,
            1 => InstanceState::Unhealthy,
            _ => InstanceState::Draining,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            InstanceState::Ready => 0,
            InstanceState::Unhealthy => 1,
            InstanceState::Draining => 2,
        }
    }
}

/// One upstream instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub id: Arc<str>,
    pub addr: SocketAddr,
    /// `ip:port` as a URI authority, built once.
    pub authority: Authority,
    state: AtomicU8,
    ready_gauge: Gauge,
    /// Wakes the health check early after a passive ejection, so a
    /// recovered instance is readmitted at the fast probe rate.
    pub recheck: tokio::sync::Notify,
    /// The address's drain signal (`link.drained`: cancelled at the drain
    /// deadline or shutdown, when the connections to the address, and
    /// whatever they carry, are cut) and idle connections. Shared with a
    /// later instance at the same address that is listed before the
    /// deadline, since pooled connections are per address.
    pub link: Link,
    /// Requests forwarded to the instance whose response is not finished,
    /// plus open upgraded connections; see [`crate::in_flight::InFlight`].
    pub(crate) in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to 0 while the instance drains.
    pub idle: tokio::sync::Notify,
    /// Woken (every waiter) when the instance stops taking requests:
    /// removed from the table (draining) or ejected. A connect in progress
    /// to it gives up then, and the request tries another instance, rather
    /// than wait out the connect timeout on an address that is gone (a
    /// killed container's: its SYNs go unanswered).
    pub leaving: tokio::sync::Notify,
}

impl Instance {
    /// A new instance, ready; `link` is a fresh one, or the one of a
    /// drained instance at the same address whose deadline has not passed.
    pub fn new(id: Arc<str>, addr: SocketAddr, ready_gauge: Gauge, link: Link) -> Arc<Instance> {
        // A SocketAddr always renders as a valid authority.
        let authority = Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("127.0.0.1"));
        ready_gauge.set(1);
        Arc::new(Instance {
            id,
            addr,
            authority,
            // Endpoints start ready (DESIGN §4); health checks correct that.
            state: AtomicU8::new(InstanceState::Ready.as_u8()),
            ready_gauge,
            recheck: tokio::sync::Notify::new(),
            link,
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            leaving: tokio::sync::Notify::new(),
        })
    }

    pub fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn is_ready(&self) -> bool {
        self.state() == InstanceState::Ready
    }

    /// The state, read in the single total order of `SeqCst` operations
    /// that the in-flight handshake with the drain relies on.
    pub(crate) fn state_seq_cst(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Requests and upgraded connections using the instance now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Moves between ready and unhealthy; a draining instance stays
    /// draining. Returns whether the state changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        let (from, to) = if healthy {
            (InstanceState::Unhealthy, InstanceState::Ready)
        } else {
            (InstanceState::Ready, InstanceState::Unhealthy)
        };
        let changed = self
            .state
            .compare_exchange(
                from.as_u8(),
                to.as_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if changed {
            if !healthy {
                self.leaving.notify_waiters();
            }
            self.ready_gauge.set(i64::from(healthy));
            tracing::info!(instance = %self.id, state = %to, "instance state changed");
        }
        changed
    }

    /// Passive ejection after a failed connect: unhealthy until the health
    /// check, woken now, sees it answer again.
    pub fn eject(&self) {
        if self.set_healthy(false) {
            self.recheck.notify_one();
        }
    }

    /// Marks the instance removed: it gets no new requests. `SeqCst`, so
    /// that a request that counts itself in after this store sees it (see
    /// [`crate::in_flight::InFlight::acquire`]).
    pub fn start_draining(&self) {
        self.state
            .store(InstanceState::Draining.as_u8(), Ordering::SeqCst);
        self.ready_gauge.set(0);
        self.leaving.notify_waiters();
    }

    /// A draining instance listed again before its drain ended: it takes
    /// requests again (its health check, restarted, corrects that).
    pub fn revive(&self) {
        self.state
            .store(InstanceState::Ready.as_u8(), Ordering::SeqCst);
        self.ready_gauge.set(1);
        tracing::info!(instance = %self.id, "draining instance listed again");
    }
}
