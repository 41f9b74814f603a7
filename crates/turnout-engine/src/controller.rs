//! The controller: the one owner of the control plane's state. Operator
//! commands go through `step`, are committed to the store, and only then
//! answered; the reconciler (see `reconciler.rs`) brings the instances and
//! the router in line with the committed state.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, broadcast};
use turnout_routing::RouteTable;
use turnout_runtime::{Handle, LogTarget, Logs, ProbeSchedule, Runtime, Started};
use turnout_spec::{Service, Strategy, Template};
use turnout_store::{Change, EventRecord, InstanceRecord, NewEvent, Store, now_millis};

use crate::error::EngineError;
use crate::model::{App, ReleaseState};
use crate::plan::Phase;
use crate::ports::{self, Reserved};
use crate::status::{AppStatus, app_status};
use crate::step::{Command, deploy, step};
use crate::store_map::{app_record, events_of, load_app, release_record, template_record};
use turnout_api_types::AcceptedStatus;

/// How the control plane runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where logs (and the store) live.
    pub data_dir: PathBuf,
    /// The route domain bare prefixes are completed with.
    pub domain: String,
    /// The internal listener, given to instances as their HTTP proxy.
    pub internal_addr: Option<SocketAddr>,
    /// New instances of a release must be ready within this, or the release
    /// fails and rolls back.
    pub ready_deadline: Duration,
    /// Removed instances get this long to finish in-flight requests.
    pub drain_timeout: Duration,
    /// Time between SIGTERM and SIGKILL when an instance is stopped.
    pub stop_grace: Duration,
    /// How often the reconciler looks at the instances.
    pub tick: Duration,
    /// The secret that enables the router's preview override
    /// (`X-Turnout-Service` with `X-Turnout-Preview-Token`, DESIGN §8);
    /// `None` leaves it off.
    pub preview_token: Option<String>,
    /// Where turnout's router listens besides `internal_addr` (its public
    /// listener, the admin API): a container may not publish a host port
    /// there (DESIGN §6.1).
    pub reserved: Vec<Reserved>,
}

impl Settings {
    /// Defaults of DESIGN §5 under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            domain: turnout_spec::DEFAULT_DOMAIN.to_string(),
            internal_addr: None,
            ready_deadline: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            tick: Duration::from_millis(100),
            preview_token: None,
            reserved: Vec::new(),
        }
    }
}

/// The router the controller publishes to.
pub trait DataPlane: Send + Sync + 'static {
    /// Replaces the route table (one atomic swap).
    fn publish(&self, table: RouteTable);
    /// Requests in flight to `addr`; `None` when the router no longer
    /// tracks it (nothing can be in flight).
    fn in_flight(&self, addr: SocketAddr) -> Option<usize>;
    /// Reports an app's release state in the router's metrics (`None`:
    /// the app is gone).
    fn release_state(&self, app: &str, state: Option<&str>);
    /// Serves internal routes on `addr` too (a container network's
    /// gateway, DESIGN §6.1), unless it already does. Routers that serve
    /// no such address need not implement it.
    fn listen_internal(&self, addr: SocketAddr) -> std::io::Result<()> {
        let _ = addr;
        Ok(())
    }
    /// Stops serving on an address [`listen_internal`](Self::listen_internal)
    /// opened.
    fn stop_listening_internal(&self, addr: SocketAddr) {
        let _ = addr;
    }
    /// Cumulative per-service figures of `app`'s routes, counted by the
    /// router since it started (a reader takes differences between two
    /// readings). Routers that count nothing return none.
    fn figures(&self, app: &str) -> Vec<turnout_routing::ServiceFigures> {
        let _ = app;
        Vec::new()
    }
    /// Starts `app`'s A/B client counts again, as a new test begins.
    fn reset_conversions(&self, app: &str) {
        let _ = app;
    }
}

/// Why the controller could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The command was refused; nothing changed.
    #[error(transparent)]
    Refused(#[from] EngineError),
    /// The store failed; nothing changed.
    #[error("the store failed: {0}")]
    Store(#[from] turnout_store::StoreError),
    /// The route table of the new state could not be built; nothing was
    /// committed (every path builds the table before it commits).
    #[error("the route table could not be built: {0}")]
    Routes(#[from] turnout_routing::RoutingError),
    /// The runtime failed (reading a log).
    #[error(transparent)]
    Runtime(#[from] turnout_runtime::RuntimeError),
}

/// One instance as the controller tracks it.
#[derive(Debug)]
pub(crate) struct Inst {
    /// What the store keeps of the instance; its `state` is read once, on
    /// load, and written from `phase` by [`Inst::stored`].
    pub(crate) record: InstanceRecord,
    pub(crate) phase: Phase,
    pub(crate) address: IpAddr,
    pub(crate) schedule: ProbeSchedule,
    pub(crate) next_probe: Instant,
    pub(crate) probing: bool,
    pub(crate) drain_deadline: Option<Instant>,
    pub(crate) stopping: bool,
    pub(crate) restart_at: Option<Instant>,
    /// Its start is under way, outside the lock: nothing else may remove,
    /// stop or restart it until the start's outcome is recorded.
    pub(crate) launching: bool,
    /// Loaded without a handle while not exited: a server died between
    /// starting it and recording the handle, so the runtime is asked to
    /// [find](turnout_runtime::Runtime::find) it before it counts as gone.
    pub(crate) unfound: bool,
    /// The internal hosts the instance may call ([`crate::calls`] of the
    /// spec it was started from), kept until it is stopped: a draining
    /// instance of a service that left the app keeps its caller identity.
    pub(crate) calls: Vec<String>,
    /// Why its last start failed, when starting again cannot help
    /// ([`turnout_runtime::RuntimeError::is_permanent`], or a command
    /// that its shell did not find: [`crate::reconciler`]'s exit codes
    /// 126 and 127 before it was ever ready): a release waiting for it
    /// fails at once, and the status shows it.
    pub(crate) start_error: Option<String>,
}

impl Inst {
    /// The record to commit: the instance's phase is kept once, in
    /// `phase`, and written into the record's `state` only here.
    pub(crate) fn stored(&self) -> InstanceRecord {
        InstanceRecord {
            state: self.phase.as_str().to_string(),
            ..self.record.clone()
        }
    }

    /// The runtime's handle, once started.
    pub(crate) fn handle(&self) -> Option<Handle> {
        self.record.handle.as_deref().map(Handle::new)
    }

    /// Records what the runtime said of the started instance.
    pub(crate) fn set_started(&mut self, started: &Started) {
        self.record.handle = Some(started.handle.as_str().to_string());
        self.record.pid = started.pid;
        self.record.address = Some(started.address.to_string());
        self.address = started.address;
    }

    /// Forgets the handle of an instance that is gone.
    pub(crate) fn clear_started(&mut self) {
        self.record.handle = None;
        self.record.pid = None;
    }

    /// The address the router sends to for `container_port`.
    pub(crate) fn endpoint(&self, container_port: u16) -> Option<SocketAddr> {
        self.record
            .ports
            .get(&container_port)
            .map(|p| SocketAddr::new(self.address, *p))
    }
}

/// The state behind the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) apps: BTreeMap<String, App>,
    /// By (app, instance id).
    pub(crate) instances: BTreeMap<(String, String), Inst>,
    pub(crate) next_release_id: i64,
    /// When each active release's deadline expires.
    pub(crate) deadlines: BTreeMap<String, Instant>,
    /// Where the router listens for each app's internal routes apart from
    /// the configured internal listener (container runtimes).
    pub(crate) listening: BTreeMap<String, Vec<SocketAddr>>,
    /// Each progressive release's analysis windows, by app (memory only:
    /// a restarted server starts a new window).
    pub(crate) analysis: BTreeMap<String, crate::sampling::Sampler>,
    /// Each app's release report: where its figures start, and the report
    /// of the last release once it ended (memory only, see `report.rs`).
    pub(crate) reports: BTreeMap<String, crate::report::Reporting>,
    /// When this controller started, unix ms (a release's figures start
    /// here at the latest).
    pub(crate) started_ms: i64,
}

pub(crate) struct Inner<R, D> {
    pub(crate) store: Store,
    pub(crate) runtime: R,
    pub(crate) plane: D,
    pub(crate) settings: Settings,
    pub(crate) state: Mutex<State>,
    pub(crate) wake: Notify,
    pub(crate) events: broadcast::Sender<EventRecord>,
}

/// The control plane's state and its commands. Cheap to clone.
pub struct Controller<R, D> {
    pub(crate) inner: Arc<Inner<R, D>>,
}

impl<R, D> Clone for Controller<R, D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R, D> std::fmt::Debug for Controller<R, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// A controller over `store`, reading back every app it holds. Instances
    /// are adopted (or restarted) by the reconciler once it runs.
    pub fn new(
        store: Store,
        runtime: R,
        plane: D,
        settings: Settings,
    ) -> Result<Self, ControlError> {
        let mut state = State {
            started_ms: now_millis(),
            ..State::default()
        };
        for record in store.apps()? {
            let app = load_app(&store, &record, &settings.domain)?;
            state.next_release_id = state
                .next_release_id
                .max(app.release.as_ref().map_or(0, |r| r.id));
            for r in store.releases(&record.name)? {
                state.next_release_id = state.next_release_id.max(r.id);
            }
            if let Some(r) = app.active_release()
                && r.state == ReleaseState::Deploying
            {
                // The deadline restarts with the server: the instances get a
                // full deadline to come back.
                state
                    .deadlines
                    .insert(app.name.clone(), Instant::now() + settings.ready_deadline);
            }
            state.apps.insert(record.name.clone(), app);
        }
        for record in store.all_instances()? {
            let Some(app) = state.apps.get(&record.app) else {
                continue;
            };
            // Started by a server that died before recording the handle:
            // the reconciler asks the runtime to find it.
            let unfound = record.handle.is_none() && record.state != Phase::Exited.as_str();
            // Records from before addresses were kept are processes.
            let address = record
                .address
                .as_deref()
                .and_then(|a| a.parse().ok())
                .unwrap_or(IpAddr::from([127, 0, 0, 1]));
            let entry = app.services.get(&record.service);
            let plan = entry
                .map(|e| turnout_runtime::ProbePlan::from_service(&e.spec))
                .unwrap_or_default();
            let calls = entry
                .map(|e| crate::routes::calls(&e.spec))
                .unwrap_or_default();
            let phase = match Phase::parse(&record.state) {
                Some(Phase::Draining) => Phase::Draining,
                // An instance that was ready keeps its traffic across a
                // restart of the server: its probe runs at once, and the
                // reconciler's first look finds it dead if it is.
                Some(Phase::Ready) => Phase::Ready,
                Some(Phase::Exited) => Phase::Exited,
                _ => Phase::Starting,
            };
            // The store keys instances across apps (`app/service.n`); the
            // engine by (app, `service.n`).
            let local = record
                .id
                .strip_prefix(&format!("{}/", record.app))
                .unwrap_or(&record.id)
                .to_string();
            let key = (record.app.clone(), local);
            state.instances.insert(
                key,
                Inst {
                    record,
                    phase,
                    address,
                    schedule: ProbeSchedule::new(plan),
                    next_probe: Instant::now(),
                    probing: false,
                    drain_deadline: (phase == Phase::Draining)
                        .then(|| Instant::now() + settings.drain_timeout),
                    stopping: false,
                    restart_at: (phase == Phase::Exited).then(Instant::now),
                    start_error: None,
                    launching: false,
                    unfound,
                    calls,
                },
            );
        }
        let (events, _) = broadcast::channel(1024);
        let controller = Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                plane,
                settings,
                state: Mutex::new(state),
                wake: Notify::new(),
                events,
            }),
        };
        Ok(controller)
    }

    /// The settings the controller runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The store (read-only uses: history, events).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// New events as they are committed (for SSE).
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.inner.events.subscribe()
    }

    /// The status of `app` (in `state`), with the preview token while a
    /// release runs.
    fn status_in(&self, state: &State, app: &App) -> AppStatus {
        app_status(app, state, self.inner.settings.preview_token.as_ref())
    }

    /// The router's cumulative per-service figures of `app` (requests,
    /// 5xx, latency histogram, preview requests apart, A/B tallies); an
    /// unknown app is refused. Read from the router, outside the lock.
    pub async fn figures(
        &self,
        app: &str,
    ) -> Result<Vec<turnout_routing::ServiceFigures>, ControlError> {
        {
            let state = self.inner.state.lock().await;
            if !state.apps.contains_key(app) {
                return Err(unknown_app(app, &state).into());
            }
        }
        Ok(self.inner.plane.figures(app))
    }

    /// The names of the apps.
    pub async fn app_names(&self) -> Vec<String> {
        self.inner.state.lock().await.apps.keys().cloned().collect()
    }

    /// The status of one app (DESIGN §5 shape).
    pub async fn status(&self, app: &str) -> Result<AppStatus, ControlError> {
        let state = self.inner.state.lock().await;
        let a = state
            .apps
            .get(app)
            .ok_or_else(|| unknown_app(app, &state))?;
        Ok(self.status_in(&state, a))
    }

    /// The last `tail` lines of an instance's output, and with `follow`
    /// the lines written after them, from its runtime. The runtime is
    /// asked outside the lock.
    pub async fn logs(
        &self,
        app: &str,
        id: &str,
        tail: usize,
        follow: bool,
    ) -> Result<Logs, ControlError> {
        let handle = {
            let state = self.inner.state.lock().await;
            if !state.apps.contains_key(app) {
                return Err(unknown_app(app, &state).into());
            }
            state
                .instances
                .get(&(app.to_string(), id.to_string()))
                .and_then(Inst::handle)
        };
        let target = LogTarget {
            app,
            id,
            handle: handle.as_ref(),
        };
        Ok(self.inner.runtime.logs(target, tail, follow).await?)
    }

    /// Has the runtime remove what it started for this server that no
    /// instance record knows (strays of a server killed mid-way; DESIGN
    /// §6.1), outside the lock; says what was removed. The server calls it
    /// once, before its first reconcile pass.
    pub async fn sweep(&self) -> Result<Vec<String>, ControlError> {
        let known: Vec<String> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .values()
                .map(|i| i.record.token.clone())
                .collect()
        };
        Ok(self.inner.runtime.sweep(&known).await?)
    }

    /// A copy of one app's state.
    pub async fn app(&self, app: &str) -> Result<App, ControlError> {
        let state = self.inner.state.lock().await;
        state
            .apps
            .get(app)
            .cloned()
            .ok_or_else(|| unknown_app(app, &state).into())
    }

    /// The status of every app.
    pub async fn statuses(&self) -> Vec<AppStatus> {
        let state = self.inner.state.lock().await;
        state
            .apps
            .values()
            .map(|a| self.status_in(&state, a))
            .collect()
    }

    /// The template in force of `app`, for `up`'s resume check.
    pub async fn template(&self, app: &str) -> Option<Template> {
        let state = self.inner.state.lock().await;
        state.apps.get(app).and_then(|a| a.template().cloned())
    }

    fn check_runnable(
        &self,
        template: &Template,
        only: Option<&[String]>,
    ) -> Result<(), EngineError> {
        for service in &template.services {
            if only.is_some_and(|names| !names.contains(&service.name)) {
                continue;
            }
            if let Err(e) = self.inner.runtime.check(service) {
                return Err(EngineError::invalid(
                    e.to_string(),
                    e.hint().unwrap_or_else(|| {
                        format!(
                            "the {} runtime cannot run service {}; give it a `command:` or start the server with a container runtime",
                            self.inner.runtime.name(),
                            service.name
                        )
                    }),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a host port that one of `incoming` (services of `app` the
    /// deploy or release would start) publishes when another container
    /// publishes it or the router listens there (DESIGN §6.1), on runtimes
    /// whose instances publish host ports; before anything starts.
    fn check_ports(
        &self,
        state: &State,
        app: &str,
        incoming: &[&Service],
    ) -> Result<(), EngineError> {
        if !self.inner.runtime.publishes_ports() {
            return Ok(());
        }
        let running: Vec<_> = state.apps.values().flat_map(ports::running).collect();
        let mut reserved = self.inner.settings.reserved.clone();
        if let Some(addr) = self.inner.settings.internal_addr {
            reserved.push(Reserved {
                addr,
                what: "turnout's internal listener".into(),
            });
        }
        for (owner, addrs) in &state.listening {
            reserved.extend(addrs.iter().map(|addr| Reserved {
                addr: *addr,
                what: format!("turnout's internal router for app {owner}"),
            }));
        }
        ports::check(app, incoming, &running, &reserved)
    }

    /// [`check_runnable`](Self::check_runnable), then what the runtime
    /// needs before the services start (their images), all before
    /// anything changes. Runs without the state lock: the runtime may ask
    /// an engine.
    async fn prepare_runnable(
        &self,
        template: &Template,
        only: Option<&[String]>,
    ) -> Result<Vec<String>, EngineError> {
        self.check_runnable(template, only)?;
        // The fields this runtime ignores: only the runtime in use knows
        // which (the process runtime ignores `volumes`, docker does not).
        let mut warnings = Vec::new();
        for w in self.inner.runtime.warnings(template) {
            let incoming = match (&w.service, only) {
                (Some(service), Some(names)) => names.contains(service),
                _ => true,
            };
            if incoming {
                tracing::warn!(hint = %w.hint, "{w}");
                warnings.push(w.line());
            }
        }
        for service in &template.services {
            if only.is_some_and(|names| !names.contains(&service.name)) {
                continue;
            }
            if let Err(e) = self.inner.runtime.prepare(template, service).await {
                let hint = e.hint().unwrap_or_default();
                return Err(EngineError::invalid(e.to_string(), hint));
            }
        }
        Ok(warnings)
    }

    /// Deploys a new app from `template` (no release); its status and
    /// the runtime's warnings about the template.
    pub async fn deploy(
        &self,
        name: &str,
        source_name: &str,
        template: Template,
    ) -> Result<AcceptedStatus, ControlError> {
        let all: Vec<&Service> = template.services.iter().collect();
        {
            // Published ports first: a clash is refused before an image is
            // built (an app already deployed is refused below, as such).
            let state = self.inner.state.lock().await;
            if !state.apps.contains_key(name) {
                self.check_ports(&state, name, &all)?;
            }
        }
        let warnings = self.prepare_runnable(&template, None).await?;
        let known = self.inner.state.lock().await.apps.contains_key(name);
        if !known && self.needs_internal(&template.services) {
            self.listen_for(name, true).await?;
        }
        let mut state = self.inner.state.lock().await;
        if state.apps.contains_key(name) {
            return Err(EngineError::conflict(
                format!("app {name} is already deployed"),
                format!("release a new template with `turnout release FILE --app {name}`, or delete the app first"),
            )
            .into());
        }
        self.check_ports(&state, name, &all)?;
        let app = deploy(name, &self.inner.settings.domain, template, 1);
        check_routes_free(&state, &app)?;
        // Built before the commit: a state whose table cannot be built is
        // never committed.
        let table = self.route_table(&state, Some((name, Some(&app))))?;
        let services = app.services.len();
        let change = Change {
            templates: vec![template_record(&app, 1, source_name)],
            apps: vec![app_record(&app, now_millis())],
            events: vec![NewEvent {
                app: name.to_string(),
                kind: "deployed".into(),
                message: format!("app {name} deployed from {source_name}: {services} services"),
                data: None,
            }],
            ..Change::default()
        };
        self.commit(&mut state, &change)?;
        state.apps.insert(name.to_string(), app);
        self.swap_in(&state, table);
        let status = self.status_in(&state, &state.apps[name]);
        drop(state);
        self.inner.wake.notify_one();
        Ok(AcceptedStatus { status, warnings })
    }

    /// Starts a release of `app` to `template`; the app's status and the
    /// runtime's warnings about the services that will start.
    pub async fn release(
        &self,
        app: &str,
        source_name: &str,
        template: Template,
        strategy: Strategy,
        plan: Option<(turnout_spec::ReleaseBlock, turnout_spec::ReleasePlan)>,
    ) -> Result<AcceptedStatus, ControlError> {
        // Only services that will start need to be runnable; what they
        // need is looked for without the lock (the runtime may ask an
        // engine), and the services are counted again under it.
        let incoming = |state: &State| -> Result<Vec<String>, ControlError> {
            let current = state.apps.get(app).ok_or_else(|| unknown_app(app, state))?;
            Ok(template
                .services
                .iter()
                .filter(|s| {
                    current
                        .services
                        .get(&s.name)
                        .is_none_or(|e| e.spec_hash != turnout_spec::spec_hash(s))
                })
                .map(|s| s.name.clone())
                .collect())
        };
        let services_named = |names: &[String]| -> Vec<&Service> {
            template
                .services
                .iter()
                .filter(|s| names.contains(&s.name))
                .collect()
        };
        let prepared = {
            let state = self.inner.state.lock().await;
            let prepared = incoming(&state)?;
            // Published ports first: a clash is refused before an image is built.
            self.check_ports(&state, app, &services_named(&prepared))?;
            prepared
        };
        let warnings = self.prepare_runnable(&template, Some(&prepared)).await?;
        if self.needs_internal(&template.services) {
            self.listen_for(app, false).await?;
        }
        let mut state = self.inner.state.lock().await;
        let incoming = incoming(&state)?;
        self.check_runnable(&template, Some(&incoming))?;
        self.check_ports(&state, app, &services_named(&incoming))?;
        let current = state
            .apps
            .get(app)
            .ok_or_else(|| unknown_app(app, &state))?;
        let version = self
            .inner
            .store
            .templates(app)?
            .iter()
            .map(|t| t.version)
            .max()
            .unwrap_or(0)
            .max(current.version)
            + 1;
        let release_id = state.next_release_id + 1;
        let (next, effects) = step(
            current,
            Command::StartRelease {
                template,
                version,
                strategy,
                release_id,
                now_ms: now_millis(),
                plan: plan.map(Box::new),
            },
        )?;
        check_routes_free(&state, &next)?;
        let table = self.route_table(&state, Some((app, Some(&next))))?;
        let release = next.release.as_ref().expect("a release was started");
        let change = Change {
            templates: vec![template_record(&next, version, source_name)],
            apps: vec![app_record(&next, now_millis())],
            releases: vec![release_record(app, release)],
            events: events_of(app, &effects),
            ..Change::default()
        };
        self.commit(&mut state, &change)?;
        state.next_release_id = release_id;
        state.deadlines.insert(
            app.to_string(),
            Instant::now() + self.inner.settings.ready_deadline,
        );
        state.apps.insert(app.to_string(), next);
        self.swap_in(&state, table);
        // A progressive release's figures start at its first step (see
        // `apply`); the others' traffic moves from now on.
        if !strategy.is_progressive() {
            self.begin_report(&mut state, app, release_id);
        }
        let status = self.status_in(&state, &state.apps[app]);
        drop(state);
        self.inner.wake.notify_one();
        Ok(AcceptedStatus { status, warnings })
    }

    /// Runs an operator command (weights, switch, confirm, rollback) on
    /// `app`. The new route table is in the router before this returns.
    pub async fn command(&self, app: &str, command: Command) -> Result<AppStatus, ControlError> {
        let mut state = self.inner.state.lock().await;
        self.apply(&mut state, app, command)?;
        let status = self.status_in(&state, &state.apps[app]);
        drop(state);
        self.inner.wake.notify_one();
        Ok(status)
    }

    /// Applies a command under the lock: step, commit, then swap the state
    /// and publish. Refused or failed commands change nothing.
    pub(crate) fn apply(
        &self,
        state: &mut State,
        app: &str,
        command: Command,
    ) -> Result<bool, ControlError> {
        let current = state.apps.get(app).ok_or_else(|| unknown_app(app, state))?;
        let (next, effects) = step(current, command)?;
        if &next == current {
            return Ok(false);
        }
        // A release waits for instances while deploying and while a
        // promoted canary starts the rest of its own: then it has a
        // deadline (set when the wait starts), otherwise none.
        let waits = |a: &App| {
            a.active_release().is_some_and(|r| {
                r.state == ReleaseState::Deploying || r.progress.as_ref().is_some_and(|p| p.scaling)
            })
        };
        let waited = waits(current);
        let mut change = Change {
            apps: vec![app_record(&next, now_millis())],
            events: events_of(app, &effects),
            ..Change::default()
        };
        if let Some(r) = &next.release
            && current.release.as_ref() != Some(r)
        {
            change.releases.push(release_record(app, r));
        }
        // The route table of the new state is built before anything is
        // committed: if it could not be built, nothing changes.
        let table = self.route_table(state, Some((app, Some(&next))))?;
        let traffic_begins = crate::report::traffic_begins(current, &next);
        let ended = self.ended_report(state, current, &next);
        self.commit(state, &change)?;
        if let Some(report) = ended {
            state.reports.insert(app.to_string(), report);
        }
        if !waits(&next) {
            state.deadlines.remove(app);
        } else if !waited {
            state.deadlines.insert(
                app.to_string(),
                Instant::now() + self.inner.settings.ready_deadline,
            );
        }
        state.apps.insert(app.to_string(), next);
        self.swap_in(state, table);
        if let Some(release_id) = traffic_begins {
            self.begin_report(state, app, release_id);
        }
        Ok(true)
    }

    /// Deletes an app; its instances are stopped by the reconciler.
    pub async fn delete(&self, app: &str) -> Result<(), ControlError> {
        let mut state = self.inner.state.lock().await;
        if !state.apps.contains_key(app) {
            return Err(unknown_app(app, &state).into());
        }
        let table = self.route_table(&state, Some((app, None)))?;
        let change = Change {
            deleted_apps: vec![app.to_string()],
            events: vec![NewEvent {
                app: app.to_string(),
                kind: "deleted".into(),
                message: format!("app {app} deleted"),
                data: None,
            }],
            ..Change::default()
        };
        self.commit(&mut state, &change)?;
        state.apps.remove(app);
        state.deadlines.remove(app);
        state.reports.remove(app);
        self.inner.plane.release_state(app, None);
        self.swap_in(&state, table);
        drop(state);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Commits `change` and publishes its events to subscribers.
    pub(crate) fn commit(&self, _state: &mut State, change: &Change) -> Result<(), ControlError> {
        if change.is_empty() {
            return Ok(());
        }
        let result = self.inner.store.commit(change)?;
        for event in result.events {
            // Nobody listening is fine.
            let _ = self.inner.events.send(event);
        }
        Ok(())
    }

    /// Publishes the route table of the current state (at start-up).
    pub async fn publish_now(&self) -> Result<(), ControlError> {
        let state = self.inner.state.lock().await;
        self.publish(&state)
    }

    /// Builds the route table from the state and swaps it into the router.
    pub(crate) fn publish(&self, state: &State) -> Result<(), ControlError> {
        let table = self.route_table(state, None)?;
        self.swap_in(state, table);
        Ok(())
    }

    /// The route table of `state`, or of the state about to be committed
    /// when `change` is `Some((name, next))`: the app `name` replaced by
    /// `next` (added when it is new, left out when `next` is `None`).
    fn route_table(
        &self,
        state: &State,
        change: Option<(&str, Option<&App>)>,
    ) -> Result<RouteTable, ControlError> {
        let changed = change.map(|(name, _)| name);
        let mut apps: Vec<&App> = state
            .apps
            .values()
            .filter(|a| Some(a.name.as_str()) != changed)
            .collect();
        apps.extend(change.and_then(|(_, next)| next));
        let caller = |i: &Inst| crate::routes::caller_name(&i.record.app, &i.record.service);
        let tokens = state
            .instances
            .values()
            .map(|i| (i.record.token.clone(), caller(i)))
            .collect();
        // Containers call with no credential: the router knows them by
        // their address, from the start until they are stopped (a handle
        // and an address are recorded together).
        let addresses = if self.inner.runtime.proxies_calls() {
            BTreeMap::new()
        } else {
            state
                .instances
                .values()
                .filter(|i| i.record.handle.is_some() && i.phase != Phase::Exited)
                .map(|i| (i.address, caller(i)))
                .collect()
        };
        let callers = crate::routes::CallerIds { tokens, addresses };
        let mut file = crate::routes::route_file(
            &apps,
            &LiveInstances(state),
            callers,
            u64::try_from(self.inner.settings.drain_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        file.preview_token
            .clone_from(&self.inner.settings.preview_token);
        Ok(RouteTable::build(&file)?)
    }

    /// Swaps `table` into the router and reports the apps' release states.
    fn swap_in(&self, state: &State, table: RouteTable) {
        self.inner.plane.publish(table);
        for app in state.apps.values() {
            if let Some(r) = &app.release {
                self.inner
                    .plane
                    .release_state(&app.name, Some(&r.state.to_string()));
            }
        }
    }
}

/// The controller's instances as the route builder reads them.
struct LiveInstances<'a>(&'a State);

impl crate::routes::Instances for LiveInstances<'_> {
    fn ready(&self, app: &str, service: &str, container_port: u16) -> Vec<SocketAddr> {
        self.0
            .instances
            .iter()
            .filter(|((a, _), i)| {
                a == app && i.record.service == service && i.phase == Phase::Ready
            })
            .filter_map(|(_, i)| i.endpoint(container_port))
            .collect()
    }

    fn callers(&self, app: &str, host: &str) -> Vec<String> {
        self.0
            .instances
            .iter()
            .filter(|((a, _), i)| a == app && i.calls.iter().any(|h| h == host))
            .map(|(_, i)| i.record.service.clone())
            .collect()
    }
}

/// Refuses `app` when one of its routes is already another app's: a
/// route belongs to one app (DESIGN §4).
fn check_routes_free(state: &State, app: &App) -> Result<(), EngineError> {
    let mine = crate::routes::route_ids_of(app);
    for other in state.apps.values().filter(|o| o.name != app.name) {
        let theirs = crate::routes::route_ids_of(other);
        if let Some(route) = mine.intersection(&theirs).next() {
            return Err(EngineError::conflict(
                format!("route {route} belongs to app {}", other.name),
                format!(
                    "a route belongs to one app: give the service another host in its routing label, or release this template to app {} (`--app {}`)",
                    other.name, other.name
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn unknown_app(app: &str, state: &State) -> EngineError {
    let names: Vec<&str> = state.apps.keys().map(String::as_str).collect();
    EngineError::not_found(
        format!("no app named {app:?}"),
        if names.is_empty() {
            "no app is deployed; deploy one with `turnout deploy FILE`".to_string()
        } else {
            format!("apps: {}", names.join(", "))
        },
    )
}
