//! The server of `turnout serve` and `turnout up`: the router, the
//! control plane and the API in one process (DESIGN §3, §5).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use turnout_engine::{Controller, DataPlane, Reserved, Settings};
use turnout_proxy::{Proxy, ProxyConfig, Publisher};
use turnout_routing::RouteTable;
use turnout_store::Store;

use crate::output::{Stream, use_color};
use crate::runtime::{AnyRuntime, RuntimeKind};

/// The file the server writes its bound addresses to.
pub const SERVER_FILE: &str = "server.json";

/// The store's file name in the data dir.
pub const STORE_FILE: &str = "turnout.db";

/// The flags of the server, shared by `serve` and `up`. Each has a
/// `TURNOUT_*` environment twin.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Public listener (public routes), host:port; port 0 picks a free one.
    #[arg(long, env = "TURNOUT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// API and /metrics, host:port (http://host:port accepted).
    #[arg(long, env = "TURNOUT_ADMIN", default_value = "127.0.0.1:7070", value_parser = parse_addr)]
    pub admin: SocketAddr,
    /// Internal listener: internal (.local) routes and the instances' HTTP
    /// proxy. With port 0, a restarted server binds the address it used
    /// before, which its running instances were given.
    #[arg(
        long,
        env = "TURNOUT_INTERNAL_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub internal_listen: SocketAddr,
    /// Where the state (SQLite), the instances' logs and the API token live.
    #[arg(long, env = "TURNOUT_DATA_DIR", default_value = ".turnout")]
    pub data_dir: PathBuf,
    /// How instances run: `process` runs each instance's `command` as a
    /// child process group; `docker` runs each instance as a container
    /// through the Docker Engine API (DOCKER_HOST, default
    /// unix:///var/run/docker.sock); the router then reaches containers
    /// from inside their network namespaces where it may
    /// (TURNOUT_DOCKER_NETNS=off: over the bridge).
    #[arg(long, env = "TURNOUT_RUNTIME", value_enum, default_value = "process")]
    pub runtime: RuntimeKind,
    /// Domain a bare route prefix is completed with (`web` → web.DOMAIN).
    #[arg(long, env = "TURNOUT_DOMAIN", default_value = turnout_spec::DEFAULT_DOMAIN)]
    pub domain: String,
    /// Seconds a release's new instances have to become ready before the
    /// release fails and rolls back.
    #[arg(
        long,
        env = "TURNOUT_READY_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub ready_timeout: u64,
    /// Seconds removed instances get to finish in-flight requests.
    #[arg(
        long,
        env = "TURNOUT_DRAIN_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub drain_timeout: u64,
}

/// `host:port`, or `http://host:port` as a browser would write it.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let bare = text.strip_prefix("http://").unwrap_or(text);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    bare.parse()
        .map_err(|_| format!("{text:?} is not host:port (or http://host:port)"))
}

/// What `<data-dir>/server.json` holds: where the running server listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFile {
    /// Public listener.
    pub public: SocketAddr,
    /// API address.
    pub admin: SocketAddr,
    /// Internal listener.
    pub internal: SocketAddr,
    /// The server's process id.
    pub pid: u32,
}

impl ServerFile {
    /// Reads `<data_dir>/server.json`, if there is one.
    pub fn read(data_dir: &Path) -> Option<ServerFile> {
        let text = std::fs::read_to_string(data_dir.join(SERVER_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The start-up line of DESIGN §5.
    pub fn listening_line(&self) -> String {
        format!(
            "turnout listening public={} admin={} internal={}",
            self.public, self.admin, self.internal
        )
    }

    fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = data_dir.join(SERVER_FILE);
        let tmp = data_dir.join(format!("{SERVER_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The multi-threaded async runtime a server (`up`, `serve`) runs on.
pub fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("turnout")
        .build()
        .context("cannot start the async runtime")
}

/// The router as the control plane sees it.
#[derive(Debug, Clone)]
pub struct ProxyPlane(Publisher);

impl DataPlane for ProxyPlane {
    fn publish(&self, table: RouteTable) {
        self.0.publish(table);
    }

    fn in_flight(&self, addr: SocketAddr) -> Option<usize> {
        self.0.in_flight(addr)
    }

    fn release_state(&self, app: &str, state: Option<&str>) {
        match state {
            Some(state) => self.0.set_release_state(app, state),
            None => self.0.clear_release_state(app),
        }
    }

    fn listen_internal(&self, addr: SocketAddr) -> std::io::Result<()> {
        match self.0.add_internal_listener(addr) {
            Ok(_) => Ok(()),
            Err(turnout_proxy::ProxyError::Bind { source, .. }) => Err(source),
            Err(other) => Err(std::io::Error::other(other.to_string())),
        }
    }

    fn stop_listening_internal(&self, addr: SocketAddr) {
        let publisher = self.0.clone();
        tokio::spawn(async move { publisher.remove_internal_listener(addr).await });
    }

    fn figures(&self, app: &str) -> Vec<turnout_routing::ServiceFigures> {
        self.0.figures(app)
    }

    fn reset_conversions(&self, app: &str) {
        self.0.reset_conversions(app);
    }
}

/// A running server.
pub struct Server {
    /// The control plane.
    pub controller: Controller<AnyRuntime, ProxyPlane>,
    /// Where it listens.
    pub addrs: ServerFile,
    /// The token file.
    pub token_path: PathBuf,
    proxy: Proxy,
    stop: watch::Sender<bool>,
    reconciler: tokio::task::JoinHandle<()>,
    api: tokio::task::JoinHandle<()>,
    ended: mpsc::UnboundedReceiver<&'static str>,
}

/// Held by each of the server's tasks: reports the task's end when
/// dropped, which also happens when a panic ends the task (tokio drops
/// the future), so a dead reconciler or API is noticed.
struct EndGuard(&'static str, mpsc::UnboundedSender<&'static str>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data dir, starts the router, the control plane (which
    /// adopts the instances a previous server left) and the API.
    pub async fn start(args: &ServerArgs) -> anyhow::Result<Server> {
        let data_dir = &args.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        // The runtime first: an engine that does not answer fails here,
        // before anything is written, listens or starts.
        let runtime = AnyRuntime::open(args.runtime, data_dir).await?;
        let token = turnout_api::load_or_create_token(data_dir).with_context(|| {
            format!(
                "cannot read or create the API token in {}",
                data_dir.display()
            )
        })?;
        let store = Store::open(&data_dir.join(STORE_FILE))?;
        // Bound before anything starts: a taken address fails here, not
        // after the first reconcile pass has (re)started instances.
        let listener = tokio::net::TcpListener::bind(args.admin)
            .await
            .with_context(|| format!("cannot listen on the admin address {}", args.admin))?;
        let mut internal = args.internal_listen;
        if internal.port() == 0
            && let Some(previous) = ServerFile::read(data_dir)
        {
            // Running instances were given this address as their proxy.
            internal = previous.internal;
        }
        let config = ProxyConfig {
            listen: args.listen,
            internal_listen: Some(internal),
            admin: None,
            ..ProxyConfig::default()
        };
        let proxy = Proxy::start(config, RouteTable::default())
            .await
            .context("cannot start the router")?;
        if let Some(namespaces) = runtime.upstream_namespaces() {
            proxy.set_upstream_namespaces(namespaces);
        }
        let bound = proxy.addrs();
        let internal = bound
            .internal
            .context("the router started without its internal listener")?;
        let mut settings = Settings::new(data_dir.clone());
        settings.domain = args.domain.clone();
        settings.internal_addr = Some(internal);
        // A container may not publish a host port where the router listens.
        settings.reserved = [
            ("turnout's public listener", Some(bound.public)),
            ("turnout's admin API", Some(listener.local_addr()?)),
            ("turnout's TLS listener", bound.tls),
        ]
        .into_iter()
        .filter_map(|(what, addr)| {
            addr.map(|addr| Reserved {
                addr,
                what: what.into(),
            })
        })
        .collect();
        settings.ready_deadline = Duration::from_secs(args.ready_timeout);
        settings.drain_timeout = Duration::from_secs(args.drain_timeout);
        // The preview override is on, behind its own secret (DESIGN §8):
        // an operator tries a new version at weight 0 with it.
        settings.preview_token = Some(
            turnout_api::load_or_create_preview_token(data_dir).with_context(|| {
                format!(
                    "cannot read or create the preview token in {}",
                    data_dir.display()
                )
            })?,
        );
        let plane = ProxyPlane(proxy.publisher());
        let controller = Controller::new(store, runtime, plane, settings)?;
        // What a killed server left that no record knows goes first.
        match controller.sweep().await {
            Ok(removed) => {
                for name in removed {
                    tracing::info!(instance = %name, "removed a stray instance of this server");
                }
            }
            Err(err) => tracing::warn!(%err, "could not look for stray instances"),
        }
        // One reconcile pass before anything is routed or reported: an
        // instance recorded ready whose process died while no server ran
        // is found dead (and restarted) now, so neither the router nor
        // `up`'s "is up" counts it. The loop below keeps going as usual.
        if let Err(err) = controller.reconcile().await {
            tracing::warn!(%err, "first reconcile pass failed; the reconciler retries");
        }
        controller.publish_now().await?;
        let (stop, stopped) = watch::channel(false);
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let reconciler = {
            let controller = controller.clone();
            let mut stopped = stopped.clone();
            let guard = EndGuard("reconciler", ended_tx.clone());
            tokio::spawn(async move {
                let _guard = guard;
                controller
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            })
        };
        let admin = listener.local_addr()?;
        let publisher = proxy.publisher();
        let metrics: turnout_api::MetricsFn = Arc::new(move || publisher.metrics_text());
        let app = turnout_api::router(controller.clone(), &token, metrics);
        let api = {
            let mut stopped = stopped;
            let guard = EndGuard("API", ended_tx);
            tokio::spawn(async move {
                let _guard = guard;
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = turnout_api::serve(listener, app, shutdown).await {
                    tracing::error!(error = %e, "the API server failed");
                }
            })
        };
        let addrs = ServerFile {
            public: bound.public,
            admin,
            internal,
            pid: std::process::id(),
        };
        addrs.write(data_dir)?;
        Ok(Server {
            controller,
            addrs,
            token_path: data_dir.join(turnout_api::TOKEN_FILE),
            proxy,
            stop,
            reconciler,
            api,
            ended,
        })
    }

    /// Waits until a part of the server (the reconciler or the API) ends
    /// before `stop` was called: it panicked or failed, and the server
    /// should stop rather than run on without it.
    pub async fn ended(&mut self) -> &'static str {
        self.ended.recv().await.unwrap_or("server")
    }

    /// Stops the server. Instances are stopped too unless `keep_instances`
    /// (they are then adopted by the next server on this data dir).
    pub async fn stop(self, keep_instances: bool) {
        let _ = self.stop.send(true);
        let _ = self.reconciler.await;
        if !keep_instances {
            self.controller.stop_all().await;
        }
        let _ = self.api.await;
        self.proxy.shutdown().await;
    }
}

/// Ctrl-C, SIGTERM and SIGHUP, watched from the moment this is created: a
/// signal that arrives while the server starts is not lost (nor does it
/// kill the process with its instances still running). SIGHUP — the
/// terminal went away — is a graceful stop like the others, unless the
/// server was started with it ignored (`nohup turnout up ...`), which is
/// kept.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts watching.
    pub fn new() -> anyhow::Result<Signals> {
        let hup = if hangup_ignored() {
            None
        } else {
            Some(signal(SignalKind::hangup()).context("cannot watch SIGHUP")?)
        };
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup,
        })
    }

    /// Waits for the next Ctrl-C, SIGTERM or SIGHUP.
    pub async fn recv(&mut self) -> &'static str {
        let hup = async {
            match &mut self.hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = hup => "SIGHUP",
        }
    }
}

/// Whether this process inherited SIGHUP ignored (`nohup`): the `SigIgn`
/// mask of `/proc/self/status`, read before any handler is installed.
fn hangup_ignored() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        // SIGHUP is signal 1: bit 0.
        .is_some_and(|mask| mask & 1 == 1)
}

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise; coloured only
/// on a terminal and never with `NO_COLOR` (`output::use_color`). A
/// closed stderr drops the logs and nothing else (`output::Stream`).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,turnout::access=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stream::Stderr)
        .with_ansi(use_color(true))
        .log_internal_errors(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Server::ended` rests on this: tokio drops a task's future when it
    /// panics, so the guard inside reports the end.
    #[tokio::test]
    async fn a_task_that_panics_still_reports_its_end() {
        let (tx, mut ended) = mpsc::unbounded_channel();
        let guard = EndGuard("reconciler", tx);
        let task = tokio::spawn(async move {
            let _guard = guard;
            tokio::task::yield_now().await;
            panic!("a bug in the task");
        });
        assert_eq!(ended.recv().await, Some("reconciler"));
        assert!(task.await.unwrap_err().is_panic());
    }
}
