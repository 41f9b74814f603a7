//! The `Runtime` trait the engine drives, and the types it speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use turnout_spec::{Command, Service};

use crate::error::RuntimeError;

/// Everything a runtime needs to start one instance of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The instance id, `<service>.<n>` (`serviceB-v2.1`).
    pub id: String,
    /// The app the instance belongs to.
    pub app: String,
    /// The service the instance belongs to.
    pub service: String,
    /// What to run.
    pub command: Command,
    /// Variables to set on top of the server's environment: the template's
    /// `environment` first, then turnout's own (see
    /// [`instance_env`](crate::instance_env)). A later entry wins over an
    /// earlier one of the same name.
    pub env: Vec<(String, String)>,
    /// Container port → host port (see
    /// [`allocate_ports`](crate::allocate_ports)).
    pub ports: BTreeMap<u16, u16>,
    /// The container port whose host port is also `PORT` (the service's
    /// first routed port).
    pub primary_port: Option<u16>,
    /// The directory the command runs in; `None` is the server's own.
    /// A relative path is taken relative to the server's directory, so the
    /// engine resolves it against the template's directory first.
    pub working_dir: Option<PathBuf>,
    /// Where the instance's stdout and stderr are appended (see
    /// [`log_path`](crate::log_path)).
    pub log_path: PathBuf,
}

/// A started instance: what the store keeps to find it again, also after a
/// restart of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Started {
    /// The process id (the program's own: string commands are `exec`ed).
    pub pid: u32,
    /// The start time of the process in clock ticks since boot (field 22
    /// of `/proc/<pid>/stat`); with `pid` it names the process uniquely,
    /// so a reused pid is never taken for the instance.
    pub start_time: u64,
    /// The address the instance's ports listen on (127.0.0.1 for
    /// processes).
    pub address: IpAddr,
}

/// What became of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    /// The instance is running.
    Running,
    /// The instance has exited and the runtime knows it; `code` is the exit
    /// status, `None` when a signal ended it or the status is unknown
    /// (a process of a previous server that became a zombie).
    Exited {
        /// The exit status, when the program exited by itself.
        code: Option<i32>,
    },
    /// No such instance: it exited and was reaped by someone else, or the
    /// pid now belongs to another process.
    Gone,
}

impl InstanceStatus {
    /// Whether the instance is running.
    pub fn is_running(self) -> bool {
        self == InstanceStatus::Running
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceStatus::Running => f.write_str("running"),
            InstanceStatus::Exited { code: Some(code) } => write!(f, "exited with status {code}"),
            InstanceStatus::Exited { code: None } => f.write_str("exited"),
            InstanceStatus::Gone => f.write_str("gone"),
        }
    }
}

/// A way to run instances: processes, containers, pods.
///
/// The engine is generic over it; only the binary knows the concrete
/// runtimes. Every method is safe to call for an instance started by an
/// earlier server (an adopted instance).
pub trait Runtime: Send + Sync {
    /// The runtime's name, as `--runtime` spells it (`process`).
    fn name(&self) -> &'static str;

    /// Checks that this runtime can run `service` at all; the engine calls
    /// it when a template is deployed, before anything starts.
    fn check(&self, service: &Service) -> Result<(), RuntimeError>;

    /// Starts one instance. It returns once the program runs; readiness is
    /// the probes' business.
    fn start(
        &self,
        spec: &InstanceSpec,
    ) -> impl Future<Output = Result<Started, RuntimeError>> + Send;

    /// What became of the instance `pid` started at `start_time`. Cheap
    /// enough to poll every 100–200 ms. A pid whose start time differs is
    /// [`InstanceStatus::Gone`].
    fn status(&self, pid: u32, start_time: u64) -> impl Future<Output = InstanceStatus> + Send;

    /// Stops the instance: SIGTERM to its process group, up to `grace` to
    /// exit, then SIGKILL. Does nothing (and succeeds) when the instance is
    /// already gone or the pid belongs to another process.
    fn stop(
        &self,
        pid: u32,
        start_time: u64,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Finds a running instance whose environment holds `KEY=value` —
    /// one that a server started and was killed before it could record
    /// its pid. `None` when there is none (or the runtime cannot tell).
    fn find(&self, key: &str, value: &str) -> Option<Started> {
        let _ = (key, value);
        None
    }
}
