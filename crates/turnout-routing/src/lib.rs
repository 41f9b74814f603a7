//! turnout's routing decision, with no IO.
//!
//! The data plane (`turnout-proxy`) and the control plane share this crate:
//! both describe routes with the [`RouteFile`] schema, turn it into an
//! immutable [`RouteTable`] off the request path, and ask the pure function
//! [`pick`] where each request goes. Everything a decision needs that changes
//! per request (the round-robin sequence number, the request's headers, the
//! caller's proxy credential) comes in through a [`RequestKey`], so the
//! decision is testable without sockets and never allocates.
//!
//! The order of a decision is the one of DESIGN §4: preview override, then
//! rules, then stickiness (instance pin, then version position), then the
//! weights (smooth weighted round robin). On an internal route with lanes
//! (DESIGN §8), a caller in a lane is kept to its lane's services after
//! the rules: stickiness inside the lane, then the lane's own weights.

mod caller;
mod cookie;
mod decision;
mod endpoint;
mod error;
mod figures;
mod goal;
mod headers;
mod health;
mod host;
mod lane;
mod matcher;
mod position;
mod route;
mod route_file;
mod route_table;
mod rule;
mod schedule;
mod service;
mod validation;
mod weight;

pub use caller::Caller;
pub use cookie::{INSTANCE_COOKIE, POSITION_COOKIE, cookie_value};
pub use decision::{
    Decision, Forbidden, PREVIEW_SERVICE_HEADER, PREVIEW_TOKEN_HEADER, RequestKey, Target, Via,
    pick,
};
pub use endpoint::Endpoint;
pub use error::{Problem, RoutingError};
pub use figures::{
    Conversions, Figures, LATENCY_BOUNDS, LATENCY_BUCKETS, LatencyHistogram, ServiceFigures,
    latency_bucket,
};
pub use goal::{Goal, GoalStatus};
pub use headers::RequestHeaders;
pub use health::HealthCheck;
pub use host::{normalize_host, request_host};
pub use lane::Lane;
pub use matcher::ValueMatcher;
pub use position::{POSITION_SPACE, Position};
pub use route::{Listener, Route, RouteIndex};
pub use route_file::{
    GoalSpec, HealthSpec, LaneSpec, MatchSpec, RouteFile, RouteSpec, RuleSpec, ServiceSpec,
    WeightValue,
};
pub use route_table::RouteTable;
pub use rule::{Condition, Rule, Source};
pub use service::{Service, ServiceIndex};
pub use turnout_spec::Sticky;
pub use weight::Weight;
