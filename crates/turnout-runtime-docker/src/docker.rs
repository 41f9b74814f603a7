//! [`DockerRuntime`]: the [`Runtime`] trait on the Docker Engine API.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
    NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc};
use turnout_runtime::{
    ExecOutcome, Handle, InstanceSpec, InstanceStatus, LogTarget, Logs, Runtime, RuntimeError,
    RuntimeWarning, Started,
};
use turnout_spec::template::PullPolicy;
use turnout_spec::{Service, Template};

use crate::container::{
    self, Context, LABEL_APP, LABEL_INSTANCE, LABEL_KEY, LABEL_SERVER, container_name,
    instance_number, network_name,
};
use crate::image;
use crate::namespaces::ContainerNamespaces;
use crate::start_error::{not_runnable, port_taken};

/// How long connecting and the version negotiation may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one Engine API request may take (a stop waits for the grace
/// period on top of this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How many container names `start` tries past one taken by a container
/// turnout does not own.
const NAME_TRIES: u32 = 100;
/// How long one listing of this server's containers answers
/// [`Runtime::status`]: shorter than the reconciler's pass (100 ms), so
/// each pass lists once and its status calls share that list.
const LISTING_FRESH: Duration = Duration::from_millis(50);

/// The port of an app network's gateway where turnout's internal router
/// listens, and where the `.local` names point inside containers.
pub const INTERNAL_PORT: u16 = 80;

/// The default engine address when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Runs instances as containers through the Docker Engine API.
#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    /// Where the engine was reached (`DOCKER_HOST` or the default socket).
    host: String,
    /// This server's id (its data dir's): the `turnout.server` label.
    server_id: String,
    /// Held while a network is made ready and a container created on it,
    /// and while an app's last container's network is removed, so that a
    /// stop never removes the network a start is about to use. It holds
    /// the gateway [`Runtime::internal_addresses`] last reported per app:
    /// where the engine made the internal router listen.
    networks: Mutex<HashMap<String, IpAddr>>,
    /// The last listing of this server's containers (id → running), and
    /// when it was made. `status` is asked about every instance on every
    /// reconciler pass; one inspect each cost the engine a few ms of CPU
    /// per container per pass (dockerd took ~4 % of a core per container
    /// on this 2-core machine, taken from the router and its backends
    /// under load). One list per pass costs the same for any number of
    /// containers. Held while the list is made, so that the status calls
    /// of one pass wait for it instead of each listing.
    listing: Mutex<Option<(Instant, HashMap<String, bool>)>>,
    /// The running containers' network namespaces, for the router.
    namespaces: Arc<ContainerNamespaces>,
}

/// The engine's address as `connect` reads it.
pub fn engine_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

impl DockerRuntime {
    /// Connects to the engine at `DOCKER_HOST` (default
    /// `unix:///var/run/docker.sock`) and negotiates the API version (the
    /// engines here speak 1.41). `server_id` is this server's id, which
    /// every container it starts carries.
    pub async fn connect(server_id: impl Into<String>) -> Result<DockerRuntime, RuntimeError> {
        let host = engine_host();
        let unreachable = |message: String| RuntimeError::Engine {
            action: format!("cannot reach the Docker engine at {host}"),
            message,
            hint: Some(format!(
                "start the engine (`systemctl start docker`, or `dockerd &`), or point \
                 DOCKER_HOST at a running one; the socket tried was {host}; \
                 --runtime process needs no engine"
            )),
        };
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(DockerRuntime {
            docker,
            namespaces: Arc::new(ContainerNamespaces::for_engine(&host)),
            host,
            server_id: server_id.into(),
            networks: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
        })
    }

    /// Whether the container `id` runs, from a listing of this server's
    /// containers at most [`LISTING_FRESH`] old; `None` when the listing
    /// does not have it (made before it started, or not this server's)
    /// or the engine did not answer.
    async fn listed_running(&self, id: &str) -> Option<bool> {
        let mut listing = self.listing.lock().await;
        let fresh = listing
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < LISTING_FRESH);
        if !fresh {
            let filters =
                HashMap::from([("label", vec![format!("{LABEL_SERVER}={}", self.server_id)])]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            let listed = self.docker.list_containers(Some(options)).await.ok()?;
            let running = listed
                .into_iter()
                .filter_map(|c| {
                    let up = matches!(
                        c.state,
                        Some(
                            ContainerSummaryStateEnum::RUNNING
                                | ContainerSummaryStateEnum::PAUSED
                                | ContainerSummaryStateEnum::RESTARTING
                        )
                    );
                    Some((c.id?, up))
                })
                .collect();
            *listing = Some((Instant::now(), running));
        }
        listing.as_ref()?.1.get(id).copied()
    }

    /// The running containers' network namespaces, which the router
    /// reaches them through ([`ContainerNamespaces`]).
    pub fn namespaces(&self) -> Arc<ContainerNamespaces> {
        self.namespaces.clone()
    }

    /// Where the engine was reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version in use (negotiated down to the engine's).
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// The bollard client, for callers that look at what the runtime made
    /// (tests, diagnostics).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Whether a container's labels say this server owns it.
    fn owns(&self, labels: Option<&HashMap<String, String>>) -> bool {
        labels
            .and_then(|l| l.get(LABEL_SERVER))
            .is_some_and(|id| *id == self.server_id)
    }

    /// The app's network, created (labelled as this server's) when
    /// missing, and its gateway address. Called with `networks` held.
    async fn ensure_network(&self, app: &str) -> Result<(String, IpAddr), RuntimeError> {
        let name = network_name(app);
        match self.docker.inspect_network(&name, None).await {
            Ok(found) => return Ok((name.clone(), gateway(&name, &found)?)),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(engine(format!("cannot inspect network {name}"), &e)),
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([
                (LABEL_APP.to_string(), app.to_string()),
                (LABEL_SERVER.to_string(), self.server_id.clone()),
            ])),
            ..NetworkCreateRequest::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => {}
            // Made meanwhile by someone else: as good.
            Err(e) if status(&e) == Some(409) => {}
            Err(e) => return Err(engine(format!("cannot create network {name}"), &e)),
        }
        let found = self
            .docker
            .inspect_network(&name, None)
            .await
            .map_err(|e| engine(format!("cannot inspect network {name}"), &e))?;
        Ok((name.clone(), gateway(&name, &found)?))
    }

    /// Creates the named volumes an instance mounts (kept after it stops,
    /// shared by every version of the app); an external one must exist.
    async fn ensure_volumes(
        &self,
        app: &str,
        volumes: &[(String, bool)],
    ) -> Result<(), RuntimeError> {
        for (name, external) in volumes {
            match self.docker.inspect_volume(name).await {
                Ok(_) => continue,
                Err(e) if status(&e) == Some(404) && *external => {
                    return Err(RuntimeError::Engine {
                        action: format!("cannot mount volume {name}"),
                        message: "it is declared `external: true` and does not exist".into(),
                        hint: Some(format!("create it first: docker volume create {name}")),
                    });
                }
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(engine(format!("cannot inspect volume {name}"), &e)),
            }
            let request = VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([
                    (LABEL_APP.to_string(), app.to_string()),
                    (LABEL_SERVER.to_string(), self.server_id.clone()),
                ])),
                ..VolumeCreateRequest::default()
            };
            self.docker
                .create_volume(request)
                .await
                .map_err(|e| engine(format!("cannot create volume {name}"), &e))?;
        }
        Ok(())
    }

    /// A free container name for `spec`: `<app>-<service>-<n>`, or the next
    /// `<n>` while the name is another container's. A container of this
    /// server left from an earlier start of the same instance (it exited,
    /// or the server died before recording it) is removed and its name
    /// reused; any other container is never touched.
    async fn free_name(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        let first = instance_number(&spec.id);
        for n in first..first.saturating_add(NAME_TRIES) {
            let name = container_name(&spec.app, &spec.service, n);
            match self.docker.inspect_container(&name, None).await {
                Err(e) if status(&e) == Some(404) => return Ok(name),
                Err(e) => return Err(engine(format!("cannot inspect container {name}"), &e)),
                Ok(found) => {
                    let labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
                    let same_instance = labels.is_some_and(|l| {
                        l.get(LABEL_APP) == Some(&spec.app)
                            && l.get(LABEL_INSTANCE) == Some(&spec.id)
                    });
                    if self.owns(labels) && same_instance {
                        self.remove(&name).await?;
                        return Ok(name);
                    }
                }
            }
        }
        Err(RuntimeError::Engine {
            action: format!("cannot name a container for {}", spec.id),
            message: format!(
                "{} names from {} on are taken",
                NAME_TRIES,
                container_name(&spec.app, &spec.service, first)
            ),
            hint: Some("remove containers that are no longer needed (docker rm)".into()),
        })
    }

    /// Removes a container (and its anonymous volumes); gone is fine.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.namespaces.forget(id);
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(404)) => Ok(()),
            // Already being removed.
            Err(e) if matches!(status(&e), Some(409)) => Ok(()),
            Err(e) => Err(engine(format!("cannot remove container {id}"), &e)),
        }
    }

    /// Removes the app's network once no container of the app is left on
    /// this engine (and the network is this server's).
    pub(crate) async fn remove_network_if_unused(&self, app: &str) {
        let mut gateways = self.networks.lock().await;
        let filters = HashMap::from([("label", vec![format!("{LABEL_APP}={app}")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        match self.docker.list_containers(Some(options)).await {
            Ok(left) if left.is_empty() => {}
            _ => return,
        }
        let name = network_name(app);
        let Ok(network) = self.docker.inspect_network(&name, None).await else {
            return;
        };
        if !self.owns(network.labels.as_ref()) {
            return;
        }
        match self.docker.remove_network(&name).await {
            Err(e) if status(&e) != Some(404) => {
                tracing::warn!(network = name, error = %e, "cannot remove the app's network");
            }
            // A network made anew may get another gateway.
            _ => {
                gateways.remove(app);
            }
        }
    }

    /// `Started` from an inspection: the container's address on the app's
    /// network and its main process.
    fn started(
        &self,
        found: &ContainerInspectResponse,
        app: &str,
    ) -> Result<Started, RuntimeError> {
        let id = found.id.clone().unwrap_or_default();
        let network = network_name(app);
        let address = found
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&network))
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| RuntimeError::Engine {
                action: format!("cannot use container {id}"),
                message: format!("it has no address on network {network}"),
                hint: None,
            })?;
        let pid = found
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0);
        self.namespaces.list(&id, address, pid);
        Ok(Started {
            handle: Handle::new(id),
            address,
            pid,
        })
    }

    /// Reads one batch of log lines (or, with `follow`, streams them).
    fn log_stream(
        &self,
        id: &str,
        tail: &str,
        follow: bool,
    ) -> impl futures_util::Stream<Item = Result<bollard::container::LogOutput, DockerError>> + use<>
    {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(tail)
            .build();
        self.docker.logs(id, Some(options))
    }
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn warnings(&self, template: &Template) -> Vec<RuntimeWarning> {
        crate::warnings(template)
    }

    fn check(&self, service: &Service) -> Result<(), RuntimeError> {
        if service.container.pull_policy == Some(PullPolicy::Build) && service.build.is_none() {
            return Err(RuntimeError::Unsupported {
                service: service.name.clone(),
                runtime: self.name(),
                reason: "`pull_policy: build` needs a `build:`".into(),
                hint: "add `build:` (the folder with the Dockerfile), or drop pull_policy".into(),
            });
        }
        if service.image.is_some() || service.build.is_some() {
            return Ok(());
        }
        Err(RuntimeError::Unsupported {
            service: service.name.clone(),
            runtime: self.name(),
            reason: "it has no image".into(),
            hint: "give the service an `image:` that is on this machine (turnout's own: \
                   images/build.sh; others: docker build or docker load), or a `build:`"
                .into(),
        })
    }

    async fn prepare(&self, template: &Template, service: &Service) -> Result<(), RuntimeError> {
        let base_dir = template.base_dir.as_deref().map(Path::new);
        let Some(image) = image::image_ref(service, base_dir) else {
            return self.check(service);
        };
        if let Some(build) = &service.build {
            // Built on every deploy or release that starts the service;
            // `pull_policy: never` with an image already here uses it.
            let keep = service.container.pull_policy == Some(PullPolicy::Never)
                && self.docker.inspect_image(&image).await.is_ok();
            if !keep {
                return self.build(service, build, base_dir, &image).await;
            }
            return Ok(());
        }
        if image::wants_pull(service) {
            return self.pull(service, &image).await;
        }
        match self.docker.inspect_image(&image).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Err(RuntimeError::MissingImage {
                service: service.name.clone(),
                image: image.clone(),
                hint: format!(
                    "build it on this machine (turnout's images: images/build.sh; others: \
                     docker build -t {image} DIR, or a `build:` in the template) or load it \
                     (docker load -i FILE); no image is pulled unless the template asks \
                     (pull_policy: always), and there is no registry here"
                ),
            }),
            Err(e) => Err(engine(format!("cannot look up image {image}"), &e)),
        }
    }

    fn proxies_calls(&self) -> bool {
        false
    }

    fn publishes_ports(&self) -> bool {
        true
    }

    async fn internal_addresses(&self, app: &str) -> Result<Vec<SocketAddr>, RuntimeError> {
        let mut gateways = self.networks.lock().await;
        let (_, gateway) = self.ensure_network(app).await?;
        gateways.insert(app.to_string(), gateway);
        Ok(vec![SocketAddr::new(gateway, INTERNAL_PORT)])
    }

    async fn forget_app(&self, app: &str) {
        self.remove_network_if_unused(app).await;
    }

    fn ports(&self, container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError> {
        // Every container has its own address: its ports are its own.
        Ok(container_ports.iter().map(|p| (*p, *p)).collect())
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let source = spec
            .container
            .as_deref()
            .ok_or_else(|| RuntimeError::Unsupported {
                service: spec.service.clone(),
                runtime: "docker",
                reason: "the engine gave no template for the instance".into(),
                hint: "deploy the app from a template".into(),
            })?;
        let image =
            image::image_ref(&source.service, source.base_dir.as_deref()).ok_or_else(|| {
                RuntimeError::Unsupported {
                    service: spec.service.clone(),
                    runtime: "docker",
                    reason: "it has no image".into(),
                    hint: "give the service an `image:` or a `build:`".into(),
                }
            })?;
        let image = image.as_str();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mounts = container::mounts(&spec.app, &spec.id, source, home.as_deref())?;
        self.ensure_volumes(&spec.app, &mounts.volumes).await?;

        let id = {
            let gateways = self.networks.lock().await;
            let (network, gateway) = self.ensure_network(&spec.app).await?;
            // The `.local` names point at the gateway, where the engine
            // made the internal router listen; a network made anew since
            // (its last container stopped meanwhile) may have another,
            // and the start waits for the next `internal_addresses`.
            let internal = if source.local_hosts.is_empty() {
                None
            } else if gateways.get(&spec.app) == Some(&gateway) {
                Some(gateway)
            } else {
                return Err(RuntimeError::Engine {
                    action: format!("cannot start {}", spec.id),
                    message: format!(
                        "turnout's internal router does not listen on {} yet, where \
                         the .local names of network {network} point",
                        SocketAddr::new(gateway, INTERNAL_PORT)
                    ),
                    hint: Some("the start is tried again once it does".into()),
                });
            };
            let name = self.free_name(spec).await?;
            let cx = Context {
                image,
                network: &network,
                server_id: &self.server_id,
                mounts: &mounts,
                internal,
            };
            let body = container::body(spec, source, cx)?;
            tracing::info!(target: "turnout::progress", "creating container {name} ({image}) for {}", spec.id);
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            let created = self
                .docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| {
                    let mut err = engine(format!("cannot create container {name}"), &e);
                    if status(&e) == Some(404)
                        && let RuntimeError::Engine { hint, .. } = &mut err
                    {
                        *hint = Some(format!(
                            "is image {image} on this machine? build it (images/build.sh for \
                             turnout's) or load it (docker load)"
                        ));
                    }
                    err
                })?;
            created.id
        };
        tracing::info!(target: "turnout::progress", "starting container {} for {}", short(&id), spec.id);
        if let Err(e) = self.docker.start_container(&id, None).await {
            let err = engine(format!("cannot start container {id} of {}", spec.id), &e);
            let _ = self.remove(&id).await;
            return Err(not_runnable(
                &spec.id,
                image,
                port_taken(&spec.id, &source.service, err),
            ));
        }
        let found = self
            .docker
            .inspect_container(&id, None)
            .await
            .map_err(|e| engine(format!("cannot inspect container {id}"), &e))?;
        self.started(&found, &spec.app)
    }

    async fn status(&self, handle: &Handle) -> InstanceStatus {
        // A running container is known from the pass's listing; anything
        // else (exited: its exit code; not listed; no listing) is
        // inspected.
        if self.listed_running(handle.as_str()).await == Some(true) {
            return InstanceStatus::Running;
        }
        match self.docker.inspect_container(handle.as_str(), None).await {
            Ok(found) => {
                let Some(state) = found.state else {
                    return InstanceStatus::Gone;
                };
                match state.status {
                    Some(
                        ContainerStateStatusEnum::RUNNING
                        | ContainerStateStatusEnum::PAUSED
                        | ContainerStateStatusEnum::RESTARTING,
                    ) => InstanceStatus::Running,
                    Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                        InstanceStatus::Exited {
                            code: state.exit_code.and_then(|c| i32::try_from(c).ok()),
                        }
                    }
                    Some(ContainerStateStatusEnum::REMOVING) => InstanceStatus::Gone,
                    _ if state.running == Some(true) => InstanceStatus::Running,
                    _ => InstanceStatus::Exited { code: None },
                }
            }
            Err(e) if status(&e) == Some(404) => InstanceStatus::Gone,
            Err(e) => {
                // The engine did not answer: say nothing changed rather
                // than have every instance restarted.
                tracing::warn!(container = %handle, error = %e, "cannot inspect a container");
                InstanceStatus::Running
            }
        }
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), RuntimeError> {
        let id = handle.as_str();
        let found = match self.docker.inspect_container(id, None).await {
            Ok(found) => found,
            Err(e) if status(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(engine(format!("cannot inspect container {id}"), &e)),
        };
        let config = found.config.as_ref();
        if !self.owns(config.and_then(|c| c.labels.as_ref())) {
            // Never touch a container this server does not own.
            return Ok(());
        }
        let app = config
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_APP))
            .cloned();
        // The service's own stop_grace_period, else the engine's grace.
        let secs = config
            .and_then(|c| c.stop_timeout)
            .unwrap_or_else(|| i64::try_from(grace.as_secs_f64().ceil() as u64).unwrap_or(10));
        let options = StopContainerOptionsBuilder::new()
            .t(i32::try_from(secs).unwrap_or(i32::MAX))
            .build();
        let stop = self.docker.stop_container(id, Some(options));
        let bound = Duration::from_secs(u64::try_from(secs).unwrap_or(0)) + REQUEST_TIMEOUT;
        match tokio::time::timeout(bound, stop).await {
            Ok(Ok(())) => {}
            // 304: not running; 404: gone meanwhile.
            Ok(Err(e)) if matches!(status(&e), Some(304 | 404)) => {}
            Ok(Err(e)) => return Err(engine(format!("cannot stop container {id}"), &e)),
            Err(_) => tracing::warn!(container = id, "stop timed out; removing by force"),
        }
        self.remove(id).await?;
        if let Some(app) = app {
            self.remove_network_if_unused(&app).await;
        }
        Ok(())
    }

    async fn sweep(&self, known: &[String]) -> Result<Vec<String>, RuntimeError> {
        crate::sweep::sweep(self, known).await
    }

    async fn find(&self, spec: &InstanceSpec) -> Option<Started> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_KEY}={}", spec.key),
                format!("{LABEL_SERVER}={}", self.server_id),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        let listed = self.docker.list_containers(Some(options)).await.ok()?;
        let id = listed.into_iter().find_map(|c| c.id)?;
        let found = self.docker.inspect_container(&id, None).await.ok()?;
        self.started(&found, &spec.app).ok()
    }

    async fn exec(
        &self,
        handle: &Handle,
        spec: &InstanceSpec,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        let _ = spec;
        let id = handle.as_str();
        let options = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..CreateExecOptions::default()
        };
        let run =
            async {
                let exec =
                    self.docker.create_exec(id, options).await.map_err(|e| {
                        engine(format!("cannot run {argv:?} in container {id}"), &e)
                    })?;
                let started = self
                    .docker
                    .start_exec(&exec.id, Some(StartExecOptions::default()))
                    .await
                    .map_err(|e| engine(format!("cannot run {argv:?} in container {id}"), &e))?;
                if let StartExecResults::Attached { mut output, .. } = started {
                    // The output ends when the command does; it is not kept.
                    while output.next().await.is_some() {}
                }
                let inspected =
                    self.docker.inspect_exec(&exec.id).await.map_err(|e| {
                        engine(format!("cannot read the exit of {argv:?} in {id}"), &e)
                    })?;
                Ok(
                    match inspected.exit_code.and_then(|c| i32::try_from(c).ok()) {
                        Some(code) => ExecOutcome::Exited(code),
                        None => ExecOutcome::Signalled,
                    },
                )
            };
        // The Engine API cannot kill an exec; past the timeout it is left
        // to finish by itself, and the probe counts as failed.
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Ok(ExecOutcome::TimedOut))
    }

    async fn logs(
        &self,
        target: LogTarget<'_>,
        tail: usize,
        follow: bool,
    ) -> Result<Logs, RuntimeError> {
        let Some(handle) = target.handle else {
            // A container's log goes with the container.
            return Ok(Logs {
                lines: Vec::new(),
                follow: None,
            });
        };
        let id = handle.as_str().to_string();
        let mut lines = Lines::default();
        let mut stream = self.log_stream(&id, &tail.to_string(), false);
        while let Some(item) = stream.next().await {
            match item {
                Ok(out) => lines.push(&out.into_bytes()),
                Err(e) if status(&e) == Some(404) => break,
                Err(e) => return Err(engine(format!("cannot read the log of {}", target.id), &e)),
            }
        }
        let mut last = lines.finish();
        let skip = last.len().saturating_sub(tail);
        last.drain(..skip);
        let follow = follow.then(|| {
            // Lines written between the two reads are not repeated; the
            // Engine API's `since` is whole seconds, too coarse to join them.
            let (tx, rx) = mpsc::channel(256);
            let mut stream = self.log_stream(&id, "0", true);
            tokio::spawn(async move {
                let mut lines = Lines::default();
                while let Some(Ok(out)) = stream.next().await {
                    lines.push(&out.into_bytes());
                    for line in lines.take() {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
                for line in lines.finish() {
                    let _ = tx.send(line).await;
                }
            });
            rx
        });
        Ok(Logs {
            lines: last,
            follow,
        })
    }
}

/// Log chunks to whole lines (the engine's frames need not end at one).
#[derive(Debug, Default)]
struct Lines {
    done: Vec<String>,
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if let Some(line) = chunk.strip_suffix(b"\n") {
                self.partial.extend_from_slice(line);
                let text = String::from_utf8_lossy(&self.partial);
                self.done.push(text.trim_end_matches('\r').to_string());
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(chunk);
            }
        }
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.done)
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.done
                .push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        self.done
    }
}

/// The gateway address of a network, from its IPAM config.
fn gateway(name: &str, network: &bollard::models::NetworkInspect) -> Result<IpAddr, RuntimeError> {
    network
        .ipam
        .as_ref()
        .and_then(|ipam| ipam.config.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|config| config.gateway.as_deref())
        // An IPv4 gateway first: the bridge's usual, and the one the
        // containers' default route goes through.
        .filter_map(|text| text.parse::<IpAddr>().ok())
        .min_by_key(IpAddr::is_ipv6)
        .ok_or_else(|| RuntimeError::Engine {
            action: format!("cannot use network {name}"),
            message: "its IPAM config names no gateway, where .local names would point".into(),
            hint: Some(format!(
                "remove the network (docker network rm {name}) and let turnout make it again"
            )),
        })
}

/// A container id as `docker ps` shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The HTTP status of an engine refusal.
pub(crate) fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An engine error with what was being done.
pub(crate) fn engine(action: String, e: &DockerError) -> RuntimeError {
    let (message, hint) = match e {
        DockerError::DockerResponseServerError { message, .. } => (message.clone(), None),
        other => (
            other.to_string(),
            Some(format!(
                "is the Docker engine running at {}? (systemctl start docker)",
                engine_host()
            )),
        ),
    };
    RuntimeError::Engine {
        action,
        message,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn log_chunks_become_lines() {
        let mut lines = Lines::default();
        lines.push(b"one\ntw");
        lines.push(b"o\r\nthree");
        assert_eq!(lines.take(), ["one", "two"]);
        assert_eq!(lines.finish(), ["three"]);
    }
}
