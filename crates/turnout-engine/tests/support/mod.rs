//! Test support for the controller and the reconciler: a fake runtime
//! (instances are tasks holding real listeners on their ports, so the
//! engine's own TCP probes find them) and a fake data plane (it keeps the
//! last published table and reports whatever in-flight count a test sets).
//! Shared by every engine test that needs a `Controller`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use turnout_engine::{Controller, DataPlane, Settings};
use turnout_routing::{Decision, Listener, RequestKey, RouteTable};
use turnout_runtime::{
    ExecOutcome, Handle, InstanceSpec, InstanceStatus, LogTarget, Logs, Runtime, RuntimeError,
    Started,
};
use turnout_spec::{Service, Template};
use turnout_store::Store;

/// The router as the controller sees it.
#[derive(Debug, Clone, Default)]
pub struct FakePlane(Arc<PlaneState>);

#[derive(Debug, Default)]
pub struct PlaneState {
    table: Mutex<Option<Arc<RouteTable>>>,
    publishes: AtomicU32,
    /// When set, every address reports one request in flight (drains hold).
    busy: AtomicBool,
}

impl std::ops::Deref for FakePlane {
    type Target = PlaneState;

    fn deref(&self) -> &PlaneState {
        &self.0
    }
}

impl PlaneState {
    /// The last table published.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table
            .lock()
            .unwrap()
            .clone()
            .expect("a table was published")
    }

    pub fn publishes(&self) -> u32 {
        self.publishes.load(Ordering::SeqCst)
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
    }
}

impl DataPlane for FakePlane {
    fn publish(&self, table: RouteTable) {
        *self.table.lock().unwrap() = Some(Arc::new(table));
        self.publishes.fetch_add(1, Ordering::SeqCst);
    }

    fn in_flight(&self, _addr: SocketAddr) -> Option<usize> {
        self.busy.load(Ordering::SeqCst).then_some(1)
    }

    fn release_state(&self, _app: &str, _state: Option<&str>) {}
}

/// One instance the fake runtime started.
#[derive(Debug, Clone)]
pub struct FakeInstance {
    pub spec: InstanceSpec,
    pub pid: u32,
    /// Whether the table in the router knew the instance's proxy
    /// credential when its "program" started.
    pub known_at_start: bool,
    pub stopped: bool,
}

impl FakeInstance {
    pub fn env(&self, key: &str) -> Option<&str> {
        self.spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token in `HTTP_PROXY=http://<service>:<token>@addr`.
    pub fn token(&self) -> String {
        let url = self.env("HTTP_PROXY").expect("HTTP_PROXY is set");
        let userinfo = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(userinfo, _)| userinfo)
            .expect("the proxy URL has credentials");
        let (user, token) = userinfo.split_once(':').expect("user:password");
        assert_eq!(user, self.spec.service, "the user name is the service");
        token.to_string()
    }
}

#[derive(Debug, Default)]
struct Instances {
    by_pid: BTreeMap<u32, (FakeInstance, Option<tokio::task::JoinHandle<()>>)>,
}

/// A runtime whose instances are tasks accepting on their host ports.
#[derive(Debug, Clone)]
pub struct FakeRuntime {
    plane: FakePlane,
    instances: Arc<Mutex<Instances>>,
    next_pid: Arc<AtomicU32>,
}

impl FakeRuntime {
    pub fn new(plane: FakePlane) -> Self {
        Self {
            plane,
            instances: Arc::default(),
            next_pid: Arc::new(AtomicU32::new(1000)),
        }
    }

    /// Every instance started so far, stopped ones included.
    pub fn started(&self) -> Vec<FakeInstance> {
        let instances = self.instances.lock().unwrap();
        instances.by_pid.values().map(|(i, _)| i.clone()).collect()
    }

    /// The instances of `app`'s `service` that run.
    pub fn running(&self, app: &str, service: &str) -> Vec<FakeInstance> {
        self.started()
            .into_iter()
            .filter(|i| i.spec.app == app && i.spec.service == service && !i.stopped)
            .collect()
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn check(&self, _service: &Service) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Services whose name starts with `never` cannot start.
    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        if spec.service.starts_with("never") {
            return Err(RuntimeError::Spawn {
                instance: spec.id.clone(),
                program: "fake".into(),
                source: std::io::Error::other("this service never starts"),
            });
        }
        let token = spec.key.clone();
        let known_at_start = self
            .plane
            .table
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|t| t.caller(&token).is_some());
        let mut listeners = Vec::new();
        for port in spec.ports.values() {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", *port))
                .await
                .map_err(|e| RuntimeError::Spawn {
                    instance: spec.id.clone(),
                    program: "fake".into(),
                    source: e,
                })?;
            listeners.push(listener);
        }
        let task = tokio::spawn(async move {
            let accepts = listeners.into_iter().map(|l| async move {
                while let Ok((conn, _)) = l.accept().await {
                    drop(conn);
                }
            });
            for accept in accepts {
                tokio::spawn(accept);
            }
            std::future::pending::<()>().await;
        });
        let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
        self.instances.lock().unwrap().by_pid.insert(
            pid,
            (
                FakeInstance {
                    spec: spec.clone(),
                    pid,
                    known_at_start,
                    stopped: false,
                },
                Some(task),
            ),
        );
        Ok(Started {
            handle: Handle::new(format!("fake-{pid}")),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            pid: Some(pid),
        })
    }

    fn ports(&self, container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError> {
        turnout_runtime::allocate_ports(container_ports)
    }

    async fn status(&self, handle: &Handle) -> InstanceStatus {
        let pid = fake_pid(handle);
        match self.instances.lock().unwrap().by_pid.get(&pid) {
            Some((i, _)) if !i.stopped => InstanceStatus::Running,
            _ => InstanceStatus::Gone,
        }
    }

    async fn stop(&self, handle: &Handle, _grace: Duration) -> Result<(), RuntimeError> {
        let pid = fake_pid(handle);
        if let Some((i, task)) = self.instances.lock().unwrap().by_pid.get_mut(&pid) {
            i.stopped = true;
            if let Some(task) = task.take() {
                task.abort();
            }
        }
        Ok(())
    }

    /// Probe commands pass.
    async fn exec(
        &self,
        _handle: &Handle,
        _spec: &InstanceSpec,
        _argv: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        Ok(ExecOutcome::Exited(0))
    }

    /// Fake instances write nothing.
    async fn logs(
        &self,
        _target: LogTarget<'_>,
        _tail: usize,
        _follow: bool,
    ) -> Result<Logs, RuntimeError> {
        Ok(Logs {
            lines: Vec::new(),
            follow: None,
        })
    }
}

fn fake_pid(handle: &Handle) -> u32 {
    handle
        .as_str()
        .strip_prefix("fake-")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or(0)
}

pub type TestController = Controller<FakeRuntime, FakePlane>;

/// A controller over an in-memory store, a fake runtime and a fake router;
/// its reconciler is driven by the test (`settle`), not by a task.
pub fn controller() -> (TestController, FakeRuntime, FakePlane) {
    controller_with(|_| {})
}

/// [`controller`] with its settings changed by `adjust`.
pub fn controller_with(
    adjust: impl FnOnce(&mut Settings),
) -> (TestController, FakeRuntime, FakePlane) {
    let plane = FakePlane::default();
    let runtime = FakeRuntime::new(plane.clone());
    let dir = std::env::temp_dir().join(format!("turnout-engine-test-{}", std::process::id()));
    let mut settings = Settings::new(dir);
    settings.internal_addr = Some(SocketAddr::from(([127, 0, 0, 1], 8081)));
    settings.drain_timeout = Duration::from_secs(30);
    adjust(&mut settings);
    let store = Store::open_in_memory().expect("an in-memory store");
    let controller =
        Controller::new(store, runtime.clone(), plane.clone(), settings).expect("a controller");
    (controller, runtime, plane)
}

pub fn template(text: &str) -> Template {
    turnout_spec::parse("app.yaml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .template
}

/// Runs reconcile passes until `done` holds, at most 5 s.
pub async fn settle(
    controller: &TestController,
    what: &str,
    mut done: impl AsyncFnMut(&TestController) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        controller
            .reconcile()
            .await
            .unwrap_or_else(|e| panic!("a reconcile pass failed while waiting for {what}: {e}"));
        if done(controller).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every instance of `app` is ready and its release (if any)
/// is no longer deploying.
pub async fn settle_ready(controller: &TestController, app: &str) {
    settle(controller, &format!("app {app} ready"), async |c| {
        let status = c.status(app).await.unwrap();
        status.services.iter().all(|s| s.ready == s.scale)
            && status
                .release
                .as_ref()
                .is_none_or(|r| r.state != "deploying")
    })
    .await;
}

/// What the router decides for a call to the internal `host` made with
/// `token` as the proxy credential.
pub fn internal_call(table: &RouteTable, host: &str, token: Option<&str>) -> Decision {
    let route = table
        .lookup(Listener::Internal, host, "/")
        .unwrap_or_else(|| panic!("no internal route {host}"));
    let headers = http::HeaderMap::new();
    turnout_routing::pick(
        table,
        &RequestKey {
            route,
            seq: 0,
            headers: &headers,
            query: None,
            caller_token: token,
            caller_address: None,
        },
    )
}

/// The endpoints of `service` on the public route of `host`.
pub fn endpoints(table: &RouteTable, host: &str, service: &str) -> Vec<SocketAddr> {
    let route = table
        .lookup(Listener::Public, host, "/")
        .and_then(|r| table.route(r))
        .unwrap_or_else(|| panic!("no public route {host}"));
    let index = route
        .service_named(service)
        .unwrap_or_else(|| panic!("no service {service} on {host}"));
    route
        .service(index)
        .unwrap()
        .endpoints()
        .iter()
        .map(|e| e.addr)
        .collect()
}
