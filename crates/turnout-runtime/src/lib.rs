//! turnout's runtimes: the [`Runtime`] trait the release engine drives,
//! the process runtime, and what every runtime needs around an instance —
//! ports, environment, health probes and log files.
//!
//! The engine is generic over [`Runtime`]; only the binary picks a
//! concrete one (DESIGN §3). An instance is named by what
//! [`Runtime::start`] returns ([`Started`]: pid and start time for
//! processes), which the store keeps, so that a restarted server finds its
//! instances again (DESIGN §5).
//!
//! How the engine uses it, per instance:
//!
//! 1. [`Runtime::check`] each service when a template is deployed;
//! 2. ports: [`allocate_ports`]`(&`[`service_ports`]`(svc))` and
//!    [`primary_port`]`(svc)`; environment: [`template_env`]`(svc)` followed
//!    by [`instance_env`]`(...)`; the log file: [`log_path`];
//! 3. [`Runtime::start`] → [`Started`], committed to the store;
//! 4. readiness: [`ProbeTarget::from_service`] and
//!    [`ProbePlan::from_service`], then a [`ProbeSchedule`] driving
//!    [`probe()`]; the instance gets traffic once it is
//!    [`Readiness::Ready`];
//! 5. liveness: [`Runtime::status`] every 100–200 ms (restart policies act
//!    on [`InstanceStatus::Exited`] and [`InstanceStatus::Gone`]);
//! 6. [`Runtime::stop`] with the drain's grace period.
//!
//! Decisions beyond DESIGN §6, for the process runtime:
//!
//! - a string command that is a single simple command runs as
//!   `sh -c 'exec <command>'`; a compound one (`a && b`, `x | y`,
//!   `trap '' TERM; prog`) runs as `sh -c '<command>'`, since `exec` would
//!   drop all but its first program. Stopping signals the whole process
//!   group either way;
//! - when an instance's main process exits by itself, what is left of its
//!   process group (background programs of a shell) is killed, as a
//!   container's processes die with its main process;
//! - a `${PORT}`/`${PORT_<N>}` the instance has no port for and no
//!   `:-default` is an error at start, unless the instance's environment
//!   sets the variable itself.

mod command;
mod env;
mod error;
mod log;
mod ports;
mod probe;
mod proc_stat;
mod process;
mod runtime;
mod schedule;

pub use env::{NO_PROXY, instance_env, template_env};
pub use error::RuntimeError;
pub use log::{LogFollower, Tail, log_path, tail};
pub use ports::{allocate_ports, primary_port, service_ports};
pub use probe::{ProbeResult, ProbeTarget, probe};
pub use process::ProcessRuntime;
pub use runtime::{InstanceSpec, InstanceStatus, Runtime, Started};
pub use schedule::{
    DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_TIMEOUT, ProbePlan, ProbeSchedule, Readiness,
    STARTUP_RETRY, Step,
};
