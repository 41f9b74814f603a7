//! The public face of the data plane: start, publish, shut down.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::{Listener, RouteTable, ServiceFigures};

use crate::config::ProxyConfig;
use crate::connector::Connector;
use crate::conversions::Conversions;
use crate::error::{ProxyError, RouteFileError};
use crate::instance::InstanceState;
use crate::internal_listeners::{InternalListeners, Worker};
use crate::metrics::Metrics;
use crate::netns::{Namespaces, UpstreamNamespaces};
use crate::registry::Registry;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::{admin, listener, tls};

/// The addresses the proxy is listening on (port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddrs {
    /// Public listener.
    pub public: SocketAddr,
    /// Internal listener, if any.
    pub internal: Option<SocketAddr>,
    /// Admin listener, if any.
    pub admin: Option<SocketAddr>,
    /// TLS listener, if any.
    pub tls: Option<SocketAddr>,
}

impl fmt::Display for BoundAddrs {
    /// `public=... internal=... admin=...`, the form of DESIGN §5.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "public={}", self.public)?;
        if let Some(addr) = self.internal {
            write!(f, " internal={addr}")?;
        }
        if let Some(addr) = self.admin {
            write!(f, " admin={addr}")?;
        }
        if let Some(addr) = self.tls {
            write!(f, " tls={addr}")?;
        }
        Ok(())
    }
}

/// A running proxy: its [`Publisher`] (every method of which it has, by
/// `Deref`), its listeners and workers.
#[derive(Debug)]
pub struct Proxy {
    handle: Publisher,
    addrs: BoundAddrs,
    listeners: Vec<JoinHandle<()>>,
    /// The extra worker threads (`ProxyConfig::workers` − 1).
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// A cheap handle that publishes new route tables to a running proxy, for
/// the reload watcher or the control plane.
#[derive(Debug, Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    /// Internal listeners opened while running.
    internal: Arc<InternalListeners>,
}

impl std::ops::Deref for Proxy {
    type Target = Publisher;

    fn deref(&self) -> &Publisher {
        &self.handle
    }
}

impl Publisher {
    /// Replaces the route table with one atomic swap. The runtime state of
    /// the new table is built first; instances it no longer lists drain.
    pub fn publish(&self, table: RouteTable) {
        self.shared.publish(table);
    }

    /// Gives the proxy the network namespaces its upstream addresses are
    /// local to (the docker runtime's containers): new connections to
    /// those addresses are made from inside them, over the namespace's
    /// loopback instead of the bridge ([`UpstreamNamespaces`]). Once per
    /// proxy: false (and nothing changes) when they were given already.
    pub fn set_upstream_namespaces(&self, namespaces: impl UpstreamNamespaces + 'static) -> bool {
        self.shared
            .namespaces
            .set(Namespaces::new(Box::new(namespaces)))
            .is_ok()
    }

    /// The Prometheus text of the proxy's metrics.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// The table requests are routed with now.
    pub fn table(&self) -> Arc<RouteTable> {
        self.shared.current.load().table.clone()
    }

    /// Reads, validates and publishes a route file. On any problem the
    /// error names the file and every problem, and the table in use stays.
    pub fn reload_file(&self, path: &Path) -> Result<(), ProxyError> {
        self.publish(load_route_file(path)?);
        Ok(())
    }

    /// The proxy's view of the instance at `addr`, if the table lists it
    /// or it is still draining.
    pub fn instance_state(&self, addr: SocketAddr) -> Option<InstanceState> {
        self.shared.registry.lock().get(&addr).map(|i| i.state())
    }

    /// How many requests and upgraded connections use the instance at
    /// `addr` now: a request counts from the moment it is sent to the
    /// instance until its response body is sent to the end or aborted; an
    /// upgraded (WebSocket) connection counts until it closes.
    ///
    /// `None` when the proxy does not track the address: it was never
    /// listed, or it was removed by a publish and its drain has ended. A
    /// drain ends as soon as nothing is in flight (or at the drain
    /// deadline, which cuts what is left), so after removing an instance
    /// the control plane can poll this and stop the process when it reads
    /// `Some(0)` or `None`: once a removed instance is marked draining (when
    /// `publish` returns), a request that has not been counted yet never
    /// goes to it.
    pub fn in_flight(&self, addr: SocketAddr) -> Option<usize> {
        self.shared.in_flight(addr)
    }

    /// Sets `turnout_release_state{app, state}` on `/metrics`: 1 for
    /// `state`, 0 for the app's other states — the five of
    /// [`RELEASE_STATES`](crate::RELEASE_STATES) (`deploying`,
    /// `pending-confirmation`, `confirmed`, `rolled-back`, `failed`) and any
    /// other state set for the app before (a canary's `progressing`, say).
    /// For the control plane, at every release state change.
    pub fn set_release_state(&self, app: &str, state: &str) {
        self.shared.metrics.set_release_state(app, state);
    }

    /// The per-version figures of every service of `app`'s routes ("" for
    /// routes without an app), in table order: per (route, service), the
    /// requests, 5xx answers (the proxy's own 502/503/504 for the service
    /// included) and latency histogram, cumulative since the service
    /// joined the route (a republish that keeps it on the route, such as a
    /// weight change, keeps its counts); preview requests apart; and on a
    /// route with an `ab_goal`, the distinct and converting clients. A
    /// window's figures are the difference of two reads
    /// ([`Figures::since`](turnout_routing::Figures::since)). Costs a copy
    /// of the app's counters and one drain of the A/B queue: meant for
    /// every analysis window, not every request.
    pub fn figures(&self, app: &str) -> Vec<ServiceFigures> {
        self.shared.figures(app)
    }

    /// Starts the A/B client counts (clients, converted, unidentified) of
    /// `app`'s goal routes again, as a new test begins; reports queued
    /// before count before the reset. Request figures are cumulative and
    /// stay.
    pub fn reset_conversions(&self, app: &str) {
        self.shared.reset_conversions(app);
    }

    /// Removes every `turnout_release_state` series of `app` (the app was
    /// deleted).
    pub fn clear_release_state(&self, app: &str) {
        self.shared.metrics.clear_release_state(app);
    }

    /// Listens for internal routes on `addr` too, as on the configured
    /// internal listener, unless it already does (a second call for the
    /// same address is `Ok`); the bound address. For the docker runtime:
    /// port 80 of an app network's gateway, where `.local` names point
    /// inside containers (DESIGN §6.1). An address taken by anything else
    /// is [`ProxyError::Bind`] naming it, and nothing changes.
    pub fn add_internal_listener(&self, addr: SocketAddr) -> Result<SocketAddr, ProxyError> {
        self.internal.add(&self.shared, addr)
    }

    /// Closes a listener that [`add_internal_listener`](Self::add_internal_listener)
    /// opened; returns once its socket is closed (the address is free
    /// again), while its open connections finish their requests. `false`
    /// when there was none at `addr`.
    pub async fn remove_internal_listener(&self, addr: SocketAddr) -> bool {
        self.internal.remove(addr).await
    }

    /// Where the listeners opened while running listen.
    pub fn internal_listeners(&self) -> Vec<SocketAddr> {
        self.internal.addrs()
    }
}

/// Reads and validates a route file into a table.
pub fn load_route_file(path: &Path) -> Result<RouteTable, ProxyError> {
    let error = |source: RouteFileError| ProxyError::RouteFile {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|err| error(err.into()))?;
    RouteTable::from_yaml(&text).map_err(|err| error(err.into()))
}

impl Proxy {
    /// Binds every configured listener and starts serving `table`. Must be
    /// called inside a Tokio runtime, which then runs the proxy's tasks.
    pub async fn start(config: ProxyConfig, table: RouteTable) -> Result<Proxy, ProxyError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind { addr, source })
        };
        let workers = config.workers.max(1);
        let served = |addr: SocketAddr| async move {
            if workers == 1 {
                bind(addr).await
            } else {
                bind_reuseport(addr)
            }
        };
        let public = served(config.listen).await?;
        let internal = match config.internal_listen {
            Some(addr) => Some(served(addr).await?),
            None => None,
        };
        let admin = match config.admin {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let tls = match &config.tls {
            Some(tls_config) => Some((bind(tls_config.listen).await?, tls::acceptor(tls_config)?)),
            None => None,
        };
        let local = |l: &TcpListener| l.local_addr().ok();
        let addrs = BoundAddrs {
            public: local(&public).unwrap_or(config.listen),
            internal: internal.as_ref().and_then(local),
            admin: admin.as_ref().and_then(local),
            tls: tls.as_ref().and_then(|(l, _)| local(l)),
        };

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeouts.connect));
        connector.set_nodelay(true);
        let mut egress = HttpConnector::new();
        egress.set_connect_timeout(Some(config.timeouts.connect));
        egress.set_nodelay(true);
        let metrics = Metrics::new();
        let conversions = Arc::new(Conversions::default());
        let empty = Snapshot::build(
            RouteTable::default(),
            &Default::default(),
            &metrics,
            &conversions,
            None,
        );
        let shared = Arc::new_cyclic(|weak| Shared {
            current: ArcSwap::from_pointee(empty),
            registry: parking_lot::Mutex::new(Registry::default()),
            instances: ArcSwap::default(),
            metrics,
            conversions,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(config.timeouts.idle)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(Connector::new(connector, weak.clone())),
            egress: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(config.timeouts.idle)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(egress),
            config,
            namespaces: OnceLock::new(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
        });
        shared.publish(table);
        // The A/B feed's drainer: it sleeps until a route with a goal is
        // published.
        shared
            .tasks
            .spawn(shared.conversions.clone().run(shared.stop.clone()));

        // The extra workers' listeners: the same addresses (the bound
        // ports, for port 0), bound again with SO_REUSEPORT.
        let mut extra = Vec::new();
        for _ in 1..workers {
            let mut mine = vec![(
                bind_reuseport(addrs.public)?
                    .into_std()
                    .map_err(|source| ProxyError::Bind {
                        addr: addrs.public,
                        source,
                    })?,
                Listener::Public,
            )];
            if let Some(addr) = addrs.internal {
                let listener = bind_reuseport(addr)?
                    .into_std()
                    .map_err(|source| ProxyError::Bind { addr, source })?;
                mine.push((listener, Listener::Internal));
            }
            extra.push(mine);
        }
        let (workers, worker_runtimes): (Vec<_>, Vec<_>) = extra
            .into_iter()
            .enumerate()
            .map(|(index, mine)| spawn_worker(index + 1, mine, shared.clone()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();

        let mut listeners = vec![tokio::spawn(listener::serve(
            public,
            Listener::Public,
            None,
            shared.clone(),
        ))];
        if let Some(internal) = internal {
            listeners.push(tokio::spawn(listener::serve(
                internal,
                Listener::Internal,
                None,
                shared.clone(),
            )));
        }
        if let Some((tls_listener, acceptor)) = tls {
            listeners.push(tokio::spawn(listener::serve(
                tls_listener,
                Listener::Public,
                Some(acceptor),
                shared.clone(),
            )));
        }
        if let Some(admin) = admin {
            listeners.push(tokio::spawn(admin::serve(admin, shared.clone())));
        }
        Ok(Proxy {
            handle: Publisher {
                shared,
                internal: Arc::new(InternalListeners::new(worker_runtimes)),
            },
            addrs,
            listeners,
            workers,
        })
    }

    /// Where the proxy listens.
    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// A handle that can publish from elsewhere.
    pub fn publisher(&self) -> Publisher {
        self.handle.clone()
    }

    /// Stops accepting, lets in-flight requests finish until the drain
    /// timeout, then closes what is left and waits for every task.
    pub async fn shutdown(self) {
        let Publisher { shared, internal } = self.handle;
        shared.stop.cancel();
        let opened = internal.take_tasks();
        for listener in self.listeners.into_iter().chain(opened) {
            let _ = listener.await;
        }
        // Each worker stops like the listeners above: its accept loops end
        // and its connections drain.
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        shared.hard_stop.cancel();
        shared.tasks.close();
        shared.tasks.wait().await;
    }
}

/// A listener bound with `SO_REUSEPORT`, so that each worker can have its
/// own on the same address.
fn bind_reuseport(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    listen_on(addr, true, 4096)
}

/// A listener on `addr` with `SO_REUSEADDR` (a listener closed a moment
/// ago may leave connections in TIME_WAIT there; they must not keep it
/// from opening) and, with `reuse_port`, `SO_REUSEPORT`. A failure is
/// [`ProxyError::Bind`] naming the address.
pub(crate) fn listen_on(
    addr: SocketAddr,
    reuse_port: bool,
    backlog: u32,
) -> Result<TcpListener, ProxyError> {
    let error = |source| ProxyError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_reuseaddr(true).map_err(error)?;
    if reuse_port {
        socket.set_reuseport(true).map_err(error)?;
    }
    socket.bind(addr).map_err(error)?;
    socket.listen(backlog).map_err(error)
}

/// A worker thread: a current-thread runtime serving its own listeners,
/// and the internal listeners opened while running
/// ([`InternalListeners`]), until the proxy stops and they have drained.
fn spawn_worker(
    index: usize,
    listeners: Vec<(std::net::TcpListener, Listener)>,
    shared: Arc<Shared>,
) -> Result<(std::thread::JoinHandle<()>, Worker), ProxyError> {
    let addr = shared.config.listen;
    let error = |source| ProxyError::Bind { addr, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(error)?;
    let worker = Worker {
        runtime: runtime.handle().clone(),
        tasks: TaskTracker::new(),
    };
    let tasks = worker.tasks.clone();
    let thread = std::thread::Builder::new()
        .name(format!("turnout-proxy-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                for (listener, kind) in listeners {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tasks.spawn(listener::serve(listener, kind, None, shared.clone()));
                        }
                        Err(err) => tracing::error!(%err, worker = index, "worker cannot listen"),
                    }
                }
                // The listeners end once the proxy stops and their
                // connections drained; so do the ones opened later on
                // this runtime.
                shared.stop.cancelled().await;
                tasks.close();
                tasks.wait().await;
            });
        })
        .map_err(error)?;
    Ok((thread, worker))
}
