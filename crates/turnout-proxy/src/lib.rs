//! turnout's data plane.
//!
//! [`Proxy::start`] binds the public, internal and admin listeners (and
//! optionally TLS) and serves requests with the [`RouteTable`] it was given;
//! [`Publisher::publish`] (on the [`Proxy`] or a cloned [`Publisher`]) replaces that table with
//! one atomic swap. Building the per-route runtime state (counters, metric
//! handles, instance health) happens in `publish`, off the request path;
//! requests only load the current snapshot and never take a lock.
//!
//! Instances removed by a publish get no new requests and are drained:
//! in-flight requests may finish until the drain timeout, then what is left
//! is cut. [`Publisher::in_flight`] tells the control plane when a removed
//! instance has nothing left in flight, so it can stop it at once.
//!
//! [`RouteTable`]: turnout_routing::RouteTable

mod admin;
mod body;
mod caller;
mod config;
mod connection;
mod connector;
mod conversions;
mod dispatch;
mod egress;
mod error;
mod feed;
mod figures;
mod forward;
mod framing;
mod h1;
mod health_check;
mod hop;
mod host;
mod in_flight;
mod instance;
mod internal_listeners;
mod listener;
mod metrics;
mod netns;
mod proxy;
mod registry;
mod response;
mod shared;
mod snapshot;
mod tls;
mod tunnel;
mod upstream;
mod write_through;

pub use config::{ProxyConfig, Timeouts, TlsConfig};
pub use error::{ProxyError, RouteFileError};
pub use instance::InstanceState;
pub use metrics::RELEASE_STATES;
pub use netns::UpstreamNamespaces;
pub use proxy::{BoundAddrs, Proxy, Publisher, load_route_file};
