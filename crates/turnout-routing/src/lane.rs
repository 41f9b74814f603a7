//! Lane affinity (DESIGN §8): during a release that has new services on
//! several routes, a request served by a new frontend that calls an
//! internal route of the release goes to the new backend, and one served
//! by an old frontend to the old backend.
//!
//! A lane lives on one internal route: the callers in it and the route's
//! services they reach. It is written on the route rather than on the
//! caller (as a caller's lane) so that a table carries lanes only where
//! they apply, and so that deciding is one scan of a route's few lanes
//! with names compared by content, no lookup and no allocation.

use std::sync::Arc;

use crate::caller::Caller;
use crate::service::ServiceIndex;

/// One lane of a route: which callers are in it and which of the route's
/// services they reach.
#[derive(Debug, Clone)]
pub struct Lane {
    pub(crate) name: Arc<str>,
    /// The calling services in the lane (bare names; the route's app is
    /// theirs).
    pub(crate) callers: Box<[Arc<str>]>,
    /// Bit `i` is set when the route's service `i` is in the lane (a route
    /// has at most 64 services).
    pub(crate) services: u64,
    /// Smooth weighted round robin over the lane's services by their
    /// weights relative to each other (equal when they all weigh 0),
    /// as indices into the route's services; never empty.
    pub(crate) cycle: Arc<[ServiceIndex]>,
}

impl Lane {
    /// The lane's name, as the route file writes it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The calling services in the lane.
    pub fn callers(&self) -> &[Arc<str>] {
        &self.callers
    }

    /// Whether the route's service `service` is in the lane.
    pub fn contains(&self, service: ServiceIndex) -> bool {
        service < 64 && self.services & (1 << service) != 0
    }

    /// The route's services in the lane, in listed order.
    pub fn services(&self) -> impl Iterator<Item = ServiceIndex> + '_ {
        (0..64u16).filter(|&i| self.contains(i))
    }

    /// Whether `caller`, a caller of the route's app, is in the lane.
    pub(crate) fn takes(&self, caller: &Caller) -> bool {
        self.callers.contains(&caller.service)
    }
}
