//! A service on a route, as the decision sees it.

use std::ops::Range;
use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::weight::Weight;

/// Index of a service within its route.
pub type ServiceIndex = u16;

/// A service with its weight, its instances and its slice of the position
/// space.
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) name: Arc<str>,
    pub(crate) weight: Weight,
    pub(crate) endpoints: Box<[Endpoint]>,
    pub(crate) range: Range<u32>,
}

impl Service {
    /// The service name (the `service` metrics label).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its weight on this route.
    pub fn weight(&self) -> Weight {
        self.weight
    }

    /// Its instances.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The positions whose clients this service serves under `version`
    /// stickiness; empty at weight 0.
    pub fn positions(&self) -> Range<u32> {
        self.range.clone()
    }
}
