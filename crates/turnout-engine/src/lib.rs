//! turnout's release engine.
//!
//! The core is pure: [`step`] maps an [`App`] and a [`Command`] to the next
//! `App` and the [`Effect`]s to run; [`plan`] says which instances to start
//! or drain; [`route_file`] builds the router's table. The reconciler (IO)
//! observes instances through a runtime, runs the effects and publishes
//! route tables; the server commits every accepted `App` before answering.

mod advance;
mod analysis;
mod checks;
mod controller;
mod error;
mod histogram;
mod internal;
mod model;
mod plan;
mod ports;
mod progressive;
pub mod prometheus;
mod reconciler;
mod report;
mod routes;
mod sampling;
mod stats;
mod status;
mod step;
mod store_map;

pub use checks::CHECK_EVENT;
pub use controller::{ControlError, Controller, DataPlane, Settings};
pub use store_map::stored_template;

pub use analysis::{
    Analysis, DEFAULT_MIN_REQUESTS, Figures, Finding, Gate, Gates, Outside, PrometheusGate, Reason,
    Snapshot, Verdict, Window, analyse,
};
pub use error::EngineError;
pub use histogram::{Histogram, HistogramError};
pub use model::{
    App, PauseReason, Progress, Release, ReleaseState, RouteWeight, ServiceEntry, ServiceRole,
    Weights,
};
pub use plan::{Action, InstanceView, Phase, instance_id, plan, release_ready};
pub use ports::Reserved;
pub use progressive::{stages, weights_at};
pub use routes::{
    CallerIds, Instances, NoInstances, caller_name, calls, internal_hosts, local_hosts, route_file,
    route_ids_of, route_specs, uses_internal_routes,
};
pub use stats::{
    Comparison, Confidence, MannWhitney, Proportion, Variant, ZTest, compare, mann_whitney_u,
    normal_sf, two_proportion_z_test,
};
pub use step::{Command, Effect, deploy, resolve_route, route_ids, step};
