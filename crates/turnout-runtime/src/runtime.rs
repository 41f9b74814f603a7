//! The `Runtime` trait the engine drives, and the types it speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use turnout_spec::template::VolumeDecl;
use turnout_spec::{Command, Service, Template};

use crate::error::RuntimeError;
use crate::warning::RuntimeWarning;

/// Everything a runtime needs to start one instance of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The instance id, `<service>.<n>` (`serviceB-v2.1`).
    pub id: String,
    /// The app the instance belongs to.
    pub app: String,
    /// The service the instance belongs to.
    pub service: String,
    /// The instance's key, unique to it and kept in the store: the
    /// runtime keeps it with what it starts (an environment variable, a
    /// label), so that [`Runtime::find`] can tell an instance a server
    /// started but did not record.
    pub key: String,
    /// What to run.
    pub command: Command,
    /// Variables to set: the template's `environment` first, then
    /// turnout's own (see [`instance_env`](crate::instance_env)). A later
    /// entry wins over an earlier one of the same name.
    pub env: Vec<(String, String)>,
    /// Container port → the port it is reached at on the instance's
    /// address (from [`Runtime::ports`]).
    pub ports: BTreeMap<u16, u16>,
    /// The container port whose mapped port is also `PORT` (the service's
    /// first routed port).
    pub primary_port: Option<u16>,
    /// The directory the command runs in; `None` is the runtime's default.
    /// A relative path is taken relative to the server's directory, so the
    /// engine resolves it against the template's directory first.
    pub working_dir: Option<PathBuf>,
    /// What a container runtime builds the instance's container from (the
    /// service as its template gives it, and the template's volumes and
    /// folder); the process runtime needs none of it. `None` where a caller
    /// has no template (tests of the process runtime).
    pub container: Option<Arc<ContainerSource>>,
}

/// The parts of a template a container runtime needs beyond the
/// [`InstanceSpec`]'s command and environment (DESIGN §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSource {
    /// The service as its template gives it: `image`, `build`, whether it
    /// has a `command` at all (none: the image's), `entrypoint`,
    /// `working_dir`, `user`, `volumes` and the other container fields.
    pub service: Service,
    /// The template's top-level `volumes:` declarations (`external`,
    /// `name`), by the name services mount them by.
    pub volumes: BTreeMap<String, VolumeDecl>,
    /// The template's folder on this machine: bind mounts and build
    /// contexts resolve against it.
    pub base_dir: Option<PathBuf>,
    /// The template version the service comes from.
    pub template_version: u32,
    /// The `.local` names the instance may call (its `external_links` and
    /// the app's internal routes): a container runtime makes each resolve,
    /// inside the container, to where turnout's internal router listens
    /// for the app ([`Runtime::internal_addresses`], DESIGN §6.1).
    pub local_hosts: Vec<String>,
}

impl InstanceSpec {
    /// `s` with the instance's `${PORT}`, `${PORT_<N>}` (and `:-default`
    /// forms) filled in, as in its command (DESIGN §6).
    pub fn expand_ports(&self, s: &str) -> Result<String, RuntimeError> {
        crate::command::expand_ports(s, self.port_vars()).map_err(|e| RuntimeError::UnknownPort {
            instance: self.id.clone(),
            variable: e.variable,
            reason: e.reason,
        })
    }

    /// The values of the port variables for this instance.
    pub fn port_vars(&self) -> crate::command::PortVars<'_> {
        crate::command::PortVars {
            ports: &self.ports,
            primary: self.primary_port,
            env: &self.env,
        }
    }
}

/// The runtime's name for one started instance: a process and its start
/// time, a container id. Opaque to everything but the runtime that made
/// it; the store keeps it as text, so that a restarted server (with the
/// same runtime) finds its instances again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    /// A handle from the runtime's own text (or the store's copy of it).
    pub fn new(text: impl Into<String>) -> Handle {
        Handle(text.into())
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A started instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Started {
    /// What every later call about the instance takes.
    pub handle: Handle,
    /// The address the instance's ports are reached at (127.0.0.1 for
    /// processes, the container's address on its network).
    pub address: IpAddr,
    /// The id of the instance's main process on this machine, when there
    /// is one: shown to operators (`turnout ps`), never acted on.
    pub pid: Option<u32>,
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
    /// No such instance: it exited and was reaped by someone else, was
    /// removed, or its handle now names something else.
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

/// How a command run in an instance ([`Runtime::exec`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signalled,
    /// It ran past its timeout and was killed.
    TimedOut,
}

/// Whose log [`Runtime::logs`] reads.
#[derive(Debug, Clone, Copy)]
pub struct LogTarget<'a> {
    /// The app.
    pub app: &'a str,
    /// The instance id.
    pub id: &'a str,
    /// The instance's handle, when it has one (an exited instance may
    /// not; runtimes that keep logs apart from the instance, as the
    /// process runtime does, read them anyway).
    pub handle: Option<&'a Handle>,
}

/// An instance's log: the last lines, and the lines written from then on
/// when following.
#[derive(Debug)]
pub struct Logs {
    /// Up to the number of lines asked for, oldest first.
    pub lines: Vec<String>,
    /// When following: every later line, until the receiver is dropped
    /// (the runtime stops reading then) or the log ends.
    pub follow: Option<mpsc::Receiver<String>>,
}

/// A way to run instances: processes, containers, pods.
///
/// The engine is generic over it; only the binary knows the concrete
/// runtimes. Every method is safe to call for an instance started by an
/// earlier server (an adopted instance), and with a handle whose instance
/// is gone.
pub trait Runtime: Send + Sync {
    /// The runtime's name, as `--runtime` spells it (`process`).
    fn name(&self) -> &'static str;

    /// Checks that this runtime can run `service` at all; the engine calls
    /// it when a template is deployed, before anything starts.
    fn check(&self, service: &Service) -> Result<(), RuntimeError>;

    /// The fields of `template` this runtime accepts and does not use,
    /// each naming this runtime (DESIGN §7: "a warning naming the runtime
    /// that ignores them"). Shown where the runtime is known: `up`, and
    /// the server when a template is deployed or released. Pure: no
    /// engine is asked.
    fn warnings(&self, template: &Template) -> Vec<RuntimeWarning> {
        let _ = template;
        Vec::new()
    }

    /// Makes sure what `service` of `template` needs before it starts is
    /// there (a container runtime: its image, built from `build:` in the
    /// template's folder or pulled when the template asks), so that a
    /// deploy or release that could not start is refused before anything
    /// changes. The engine calls it after [`check`](Runtime::check),
    /// outside its state lock; it may take long (a build), and says what
    /// it does meanwhile in the server's log.
    fn prepare(
        &self,
        template: &Template,
        service: &Service,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let _ = (template, service);
        std::future::ready(Ok(()))
    }

    /// Whether instances call internal routes through `HTTP_PROXY` with
    /// their credentials (processes, which share the machine's network),
    /// rather than being told apart by their address (containers, DESIGN
    /// §6.1). When `false` the engine sets no proxy variables.
    fn proxies_calls(&self) -> bool {
        true
    }

    /// Whether instances publish the fixed host ports of `ports:` on the
    /// machine (containers), so that two of them cannot publish one, nor
    /// one where turnout's router listens: the engine refuses such a
    /// deploy or release before anything starts. `false` for runtimes that
    /// give every instance free host ports of its own (processes).
    fn publishes_ports(&self) -> bool {
        false
    }

    /// Where turnout's internal router must listen so that `app`'s
    /// instances reach its internal (`.local`) routes with no proxy
    /// settings (containers: port 80 of the app network's gateway, made
    /// ready here if missing). Empty for runtimes whose instances call
    /// through `HTTP_PROXY` (processes). The engine calls it, and listens
    /// there, before it starts an instance of an app with internal routes.
    fn internal_addresses(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Vec<SocketAddr>, RuntimeError>> + Send {
        let _ = app;
        std::future::ready(Ok(Vec::new()))
    }

    /// Lets go of what the runtime made for `app` beyond its instances
    /// (a container runtime: its network) when nothing of the app runs,
    /// after [`internal_addresses`](Runtime::internal_addresses) made it
    /// for a deploy that was then refused.
    fn forget_app(&self, app: &str) -> impl Future<Output = ()> + Send {
        let _ = app;
        std::future::ready(())
    }

    /// The ports an instance's container ports are reached at: free host
    /// ports for processes (which share the machine's), the ports
    /// themselves for containers (each has its own address).
    fn ports(&self, container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError>;

    /// Starts one instance. It returns once the program runs; readiness is
    /// the probes' business.
    fn start(
        &self,
        spec: &InstanceSpec,
    ) -> impl Future<Output = Result<Started, RuntimeError>> + Send;

    /// What became of the instance. Cheap enough to poll every 100–200 ms.
    fn status(&self, handle: &Handle) -> impl Future<Output = InstanceStatus> + Send;

    /// Stops the instance: its stop signal, up to `grace` to exit, then a
    /// kill; whatever the runtime keeps of it is removed. Does nothing
    /// (and succeeds) when the instance is already gone.
    fn stop(
        &self,
        handle: &Handle,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Finds a running instance started from `spec` (by its
    /// [`key`](InstanceSpec::key)) — one that a server started and was
    /// killed before it could record the handle. `None` when there is
    /// none, or the runtime cannot tell.
    fn find(&self, spec: &InstanceSpec) -> impl Future<Output = Option<Started>> + Send {
        let _ = spec;
        std::future::ready(None)
    }

    /// Removes what this runtime started for this server that no instance
    /// record knows (`known` holds the [`key`](InstanceSpec::key) of every
    /// recorded instance): a container left behind by a server killed
    /// after an app's records were deleted but before its containers were.
    /// Says what it removed. The process runtime cannot tell its own
    /// processes from another server's without a record, so by default
    /// nothing is removed.
    fn sweep(
        &self,
        known: &[String],
    ) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send {
        let _ = known;
        std::future::ready(Ok(Vec::new()))
    }

    /// Runs `argv` inside the instance (for a probe command), killing it
    /// after `timeout`. `spec` is the instance's: runtimes that run the
    /// command beside the instance rather than in it (processes) take its
    /// environment and directory from there.
    fn exec(
        &self,
        handle: &Handle,
        spec: &InstanceSpec,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutcome, RuntimeError>> + Send;

    /// The last `tail` lines of an instance's output (stdout and stderr
    /// together), and with `follow` the lines written from then on.
    fn logs(
        &self,
        target: LogTarget<'_>,
        tail: usize,
        follow: bool,
    ) -> impl Future<Output = Result<Logs, RuntimeError>> + Send;
}
