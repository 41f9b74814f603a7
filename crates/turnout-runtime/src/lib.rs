//! What every turnout runtime shares: the [`Runtime`] trait the release
//! engine drives, and what every runtime needs around an instance —
//! ports, environment, command lines and health probes. The runtimes
//! themselves live in their own crates (`turnout-runtime-process`,
//! `turnout-runtime-docker`), which only the binary names (DESIGN §3).
//!
//! An instance is named by the [`Handle`] that [`Runtime::start`] returns,
//! opaque to the engine, which the store keeps, so that a restarted server
//! finds its instances again (DESIGN §5).
//!
//! How the engine uses it, per instance:
//!
//! 1. [`Runtime::check`] each service when a template is deployed, and
//!    [`Runtime::warnings`] for the fields this runtime ignores;
//! 2. ports: [`Runtime::ports`]`(&`[`service_ports`]`(svc))` and
//!    [`primary_port`]`(svc)`; environment: [`template_env`]`(svc)`
//!    followed by [`instance_env`]`(...)`;
//! 3. [`Runtime::start`] → [`Started`], committed to the store (a server
//!    killed before that finds the instance with [`Runtime::find`]);
//! 4. readiness: [`ProbeTarget::from_service`] and
//!    [`ProbePlan::from_service`], then a [`ProbeSchedule`] driving
//!    [`probe_instance`] (commands through [`Runtime::exec`]); the
//!    instance gets traffic once it is [`Readiness::Ready`];
//! 5. liveness: [`Runtime::status`] every 100–200 ms (restart policies act
//!    on [`InstanceStatus::Exited`] and [`InstanceStatus::Gone`]);
//! 6. [`Runtime::stop`] with the drain's grace period;
//! 7. [`Runtime::logs`] for `turnout logs`.

pub mod command;
mod env;
mod error;
mod ports;
mod probe;
mod runtime;
mod schedule;
mod warning;

pub use env::{NO_PROXY, instance_env, template_env};
pub use error::RuntimeError;
pub use ports::{allocate_ports, primary_port, service_ports};
pub use probe::{ProbeResult, ProbeTarget, probe, probe_instance};
pub use runtime::{
    ContainerSource, ExecOutcome, Handle, InstanceSpec, InstanceStatus, LogTarget, Logs, Runtime,
    Started,
};
pub use schedule::{
    DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_TIMEOUT, ProbePlan, ProbeSchedule, Readiness,
    STARTUP_RETRY, Step,
};
pub use warning::{RuntimeWarning, container_fields_set};
