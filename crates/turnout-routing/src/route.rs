//! A route: a virtual host plus context path, and the services behind it.

use std::sync::Arc;

use crate::goal::Goal;
use crate::health::HealthCheck;
use crate::lane::Lane;
use crate::rule::Rule;
use crate::service::{Service, ServiceIndex};
use turnout_spec::Sticky;

/// Index of a route in its [`crate::RouteTable`].
pub type RouteIndex = u32;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The public listener: serves public routes only.
    Public,
    /// The internal listener: serves internal routes only, and takes
    /// forward-proxy requests with caller credentials.
    Internal,
}

/// One route of a table. Everything is precomputed when the table is built.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) id: Arc<str>,
    pub(crate) hosts: Box<[Arc<str>]>,
    pub(crate) path: Arc<str>,
    pub(crate) internal: bool,
    pub(crate) app: Option<Arc<str>>,
    pub(crate) callers: Option<Box<[Arc<str>]>>,
    /// Lane affinity: empty on nearly every route.
    pub(crate) lanes: Box<[Lane]>,
    pub(crate) sticky: Sticky,
    pub(crate) rules: Box<[Rule]>,
    pub(crate) services: Box<[Service]>,
    /// One round-robin cycle; shared by the routes of a table with the
    /// same weights.
    pub(crate) cycle: Arc<[ServiceIndex]>,
    pub(crate) health: HealthCheck,
    pub(crate) goal: Option<Goal>,
}

impl Route {
    /// The canonical route id: lowercase host plus context path if any.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The hosts the route answers for, lowercase.
    pub fn hosts(&self) -> &[Arc<str>] {
        &self.hosts
    }

    /// The context path, `/` for the whole host.
    pub fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// Whether only the internal listener serves it.
    pub fn internal(&self) -> bool {
        self.internal
    }

    /// The app the route belongs to, if the route file names one.
    pub fn app(&self) -> Option<&Arc<str>> {
        self.app.as_ref()
    }

    /// Services allowed to call (internal routes); `None` is any caller.
    pub fn callers(&self) -> Option<&[Arc<str>]> {
        self.callers.as_deref()
    }

    /// The route's lanes (DESIGN §8), in name order; empty without lane
    /// affinity.
    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The route's stickiness.
    pub fn sticky(&self) -> Sticky {
        self.sticky
    }

    /// The rules, checked in order before the weights.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The services, in listed order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// One service by index.
    pub fn service(&self, index: ServiceIndex) -> Option<&Service> {
        self.services.get(usize::from(index))
    }

    /// A service by name.
    pub fn service_named(&self, name: &str) -> Option<ServiceIndex> {
        self.services
            .iter()
            .position(|s| &*s.name == name)
            .map(|i| i as ServiceIndex)
    }

    /// Health check settings of the route's instances.
    pub fn health(&self) -> &HealthCheck {
        &self.health
    }

    /// The goal of an A/B test on this route, if it has one.
    pub fn goal(&self) -> Option<&Goal> {
        self.goal.as_ref()
    }

    /// Whether the route serves requests of this listener.
    pub fn serves(&self, listener: Listener) -> bool {
        self.internal == (listener == Listener::Internal)
    }
}
