//! The runtime the server runs instances on (`--runtime`): the one place
//! that names the concrete runtimes (DESIGN §3). [`AnyRuntime`] delegates
//! the [`Runtime`] trait to the chosen backend, so the engine stays
//! generic and the binary is built once for all of them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use turnout_proxy::UpstreamNamespaces;
use turnout_runtime::{
    ExecOutcome, Handle, InstanceSpec, InstanceStatus, LogTarget, Logs, Runtime, RuntimeError,
    RuntimeWarning, Started,
};
use turnout_runtime_docker::{ContainerNamespaces, DockerRuntime};
use turnout_runtime_process::ProcessRuntime;
use turnout_spec::{Service, Template};

/// The file holding the data dir's server id (the `turnout.server` label
/// of the containers this server owns).
pub const SERVER_ID_FILE: &str = "server-id";

/// `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// Each instance's `command` as a child process group on this machine.
    Process,
    /// Each instance a container, through the Docker Engine API
    /// (`DOCKER_HOST`, default unix:///var/run/docker.sock).
    Docker,
}

impl RuntimeKind {
    /// What this runtime ignores of `template`, naming itself, as the
    /// server says at deploy (`turnout validate --runtime` says it
    /// offline, with no engine asked).
    pub fn warnings(self, template: &Template) -> Vec<RuntimeWarning> {
        match self {
            RuntimeKind::Process => turnout_runtime_process::warnings(template),
            RuntimeKind::Docker => turnout_runtime_docker::warnings(template),
        }
    }
}

/// The chosen runtime.
#[derive(Debug)]
pub enum AnyRuntime {
    /// `--runtime process`.
    Process(ProcessRuntime),
    /// `--runtime docker`.
    Docker(Box<DockerRuntime>),
}

impl AnyRuntime {
    /// Opens the runtime `kind` for the data dir: for docker, connects to
    /// the engine (an engine that does not answer is an error here, before
    /// anything starts) with the data dir's server id.
    pub async fn open(kind: RuntimeKind, data_dir: &Path) -> anyhow::Result<AnyRuntime> {
        match kind {
            RuntimeKind::Process => {
                let exe = std::env::current_exe().context("cannot find the turnout binary")?;
                Ok(AnyRuntime::Process(ProcessRuntime::new(
                    exe,
                    data_dir.to_path_buf(),
                )))
            }
            RuntimeKind::Docker => {
                let (id, fresh) = read_server_id(data_dir)?;
                let docker =
                    DockerRuntime::connect(id.clone())
                        .await
                        .map_err(|e| match e.hint() {
                            Some(hint) => anyhow::anyhow!("{e}\nhint: {hint}"),
                            None => anyhow::anyhow!("{e}"),
                        })?;
                // Written only once the engine answered: a refused start
                // leaves the data dir as it was.
                if fresh {
                    write_server_id(data_dir, &id)?;
                }
                tracing::info!(
                    host = docker.host(),
                    api = docker.api_version(),
                    "docker runtime"
                );
                Ok(AnyRuntime::Docker(Box::new(docker)))
            }
        }
    }
}

/// The docker runtime's containers' network namespaces, as the router
/// asks for them: new upstream connections to a container are made from
/// inside its namespace (turnout-proxy's `UpstreamNamespaces`).
#[derive(Debug)]
pub struct ContainerUpstreams(Arc<ContainerNamespaces>);

impl UpstreamNamespaces for ContainerUpstreams {
    fn namespace(&self, addr: SocketAddr) -> Option<OwnedFd> {
        self.0.open(addr.ip())
    }
}

impl AnyRuntime {
    /// What the router needs to reach this runtime's instances from inside
    /// their network namespaces: only containers have their own.
    pub fn upstream_namespaces(&self) -> Option<ContainerUpstreams> {
        match self {
            AnyRuntime::Process(_) => None,
            AnyRuntime::Docker(docker) => Some(ContainerUpstreams(docker.namespaces())),
        }
    }
}

/// The data dir's server id: read from `<data-dir>/server-id`, or made
/// (16 random bytes, hex) and written there on first use. It stays with
/// the data dir, so a restarted server on it owns the same containers,
/// and two servers on two data dirs never take each other's.
#[cfg(test)]
fn server_id(data_dir: &Path) -> anyhow::Result<String> {
    let (id, fresh) = read_server_id(data_dir)?;
    if fresh {
        write_server_id(data_dir, &id)?;
    }
    Ok(id)
}

/// The stored id, or a new one (`true`: not written yet).
fn read_server_id(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join(SERVER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a server id")?;
    Ok((bytes.iter().map(|b| format!("{b:02x}")).collect(), true))
}

/// Writes the id whole under another name, then renames it: a reader
/// never sees half an id.
fn write_server_id(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let path = data_dir.join(SERVER_ID_FILE);
    let tmp = data_dir.join(format!("{SERVER_ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Implements `Runtime` for `AnyRuntime` from the trait's signatures,
/// written once below: each method hands its call to the runtime chosen.
macro_rules! delegate_runtime {
    (
        $(fn $f:ident(&self $(, $a:ident: $t:ty)*) $(-> $r:ty)?;)*
        $(async fn $af:ident(&self $(, $aa:ident: $at:ty)*) $(-> $ar:ty)?;)*
    ) => {
        impl Runtime for AnyRuntime {
            $(fn $f(&self $(, $a: $t)*) $(-> $r)? {
                match self {
                    AnyRuntime::Process(r) => r.$f($($a),*),
                    AnyRuntime::Docker(r) => r.$f($($a),*),
                }
            })*
            $(async fn $af(&self $(, $aa: $at)*) $(-> $ar)? {
                match self {
                    AnyRuntime::Process(r) => r.$af($($aa),*).await,
                    AnyRuntime::Docker(r) => r.$af($($aa),*).await,
                }
            })*
        }
    };
}

delegate_runtime! {
    fn name(&self) -> &'static str;
    fn check(&self, service: &Service) -> Result<(), RuntimeError>;
    fn warnings(&self, template: &Template) -> Vec<RuntimeWarning>;
    fn proxies_calls(&self) -> bool;
    fn publishes_ports(&self) -> bool;
    fn ports(&self, container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError>;
    async fn prepare(&self, template: &Template, service: &Service) -> Result<(), RuntimeError>;
    async fn internal_addresses(&self, app: &str) -> Result<Vec<SocketAddr>, RuntimeError>;
    async fn forget_app(&self, app: &str);
    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError>;
    async fn status(&self, handle: &Handle) -> InstanceStatus;
    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), RuntimeError>;
    async fn sweep(&self, known: &[String]) -> Result<Vec<String>, RuntimeError>;
    async fn find(&self, spec: &InstanceSpec) -> Option<Started>;
    async fn exec(&self, handle: &Handle, spec: &InstanceSpec, argv: &[String], timeout: Duration) -> Result<ExecOutcome, RuntimeError>;
    async fn logs(&self, target: LogTarget<'_>, tail: usize, follow: bool) -> Result<Logs, RuntimeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_id_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("turnout-server-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = server_id(&dir).unwrap();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(server_id(&dir).unwrap(), first);
        let other = dir.join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert_ne!(server_id(&other).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
