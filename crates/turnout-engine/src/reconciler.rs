//! The reconciler: brings the instances in line with the committed state.
//!
//! Each pass it (1) observes every instance through the runtime (adopting
//! the ones a previous server started, restarting the dead per policy),
//! (2) probes the ones that are due, outside the lock, (3) asks the pure
//! planner what to start and drain and does it, (4) stops drained
//! instances once nothing is in flight to them (or at the drain deadline),
//! (5) moves releases on ([`crate::advance`]), and (6) publishes a new route table when readiness
//! changed. Every change is committed before it is acted on where it
//! matters for crash safety: an instance is recorded as soon as it runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turnout_runtime::{
    Handle, InstanceSpec, InstanceStatus, ProbePlan, ProbeSchedule, ProbeTarget, Readiness,
    Runtime, RuntimeError, Started,
};
use turnout_spec::template::Restart;
use turnout_store::{Change, InstanceRecord, NewEvent, now_millis};

use crate::controller::{ControlError, Controller, DataPlane, Inst, State};
use crate::plan::{Action, InstanceView, Phase, plan};

/// The longest wait between restarts of a crashing instance.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// An instance's key: (app, instance id).
type Key = (String, String);

/// What one probe is about, collected under the lock and run outside it.
struct ProbeJob {
    key: Key,
    handle: Handle,
    spec: InstanceSpec,
    target: ProbeTarget,
    timeout: Duration,
}

/// An instance to start, prepared under the lock and started outside it.
struct Launch {
    key: Key,
    spec: InstanceSpec,
    restarting: bool,
    spec_hash: String,
    plan: ProbePlan,
    /// The router must listen for the app's internal routes first.
    internal: bool,
}

/// How the reconciler watches one instance this pass.
enum Watch {
    /// Through its handle.
    Handle(Handle),
    /// It has no handle yet: the runtime is asked to find it.
    Find(Box<InstanceSpec>),
    /// It has no handle and cannot be found.
    Nothing,
}

/// What a look at one instance found.
enum Seen {
    Status(InstanceStatus),
    /// Found without a handle: adopted as it runs.
    Found(Started),
}

fn store_id(app: &str, id: &str) -> String {
    // Instance ids are unique per app; the store keys them across apps.
    format!("{app}/{id}")
}

fn random_token() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// Runs the reconciler until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::error!(error = %e, "reconcile pass failed; retrying");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.settings.tick) => {}
            }
        }
    }

    /// One pass of the reconciler.
    ///
    /// Runtime IO (looking at, probing, starting and stopping instances)
    /// happens outside the state lock: what it is about is collected under
    /// the lock, and what came of it is recorded under it again.
    pub async fn reconcile(&self) -> Result<(), ControlError> {
        self.tend_listeners().await;
        self.observe().await?;
        self.probe_due().await?;
        let (launches, acted) = {
            let mut state = self.inner.state.lock().await;
            let (launches, acted) = self.act(&mut state);
            let acted = acted.and_then(|routing_changed| {
                if routing_changed {
                    self.publish(&state)?;
                }
                Ok(())
            });
            (launches, acted)
        };
        // Started even when the pass failed after preparing them: their
        // records are committed and they are marked as launching.
        let outcomes = self.launch(launches).await;
        let mut state = self.inner.state.lock().await;
        self.record_launches(&mut state, outcomes);
        acted?;
        self.advance_releases(&mut state)?;
        Ok(())
    }

    /// Observes every instance's process; restarts or forgets the dead.
    /// The router stops sending to a dead instance before the lock is let
    /// go, so nothing that reads the state (status) sees it gone while the
    /// router still routes to it.
    async fn observe(&self) -> Result<(), ControlError> {
        let snapshot: Vec<(Key, Watch)> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .iter()
                .filter(|(_, i)| !i.launching)
                .map(|(k, i)| {
                    let watch = match i.handle() {
                        Some(handle) => Watch::Handle(handle),
                        None if i.unfound => state
                            .apps
                            .get(&k.0)
                            .and_then(|a| a.services.get(&i.record.service))
                            .map_or(Watch::Nothing, |entry| {
                                let template = state
                                    .apps
                                    .get(&k.0)
                                    .and_then(|a| a.templates.get(&entry.template_version));
                                Watch::Find(Box::new(instance_spec(
                                    &k.0,
                                    &k.1,
                                    entry,
                                    template,
                                    i,
                                    self.proxy_addr(),
                                    Vec::new(),
                                )))
                            }),
                        None => Watch::Nothing,
                    };
                    (k.clone(), watch)
                })
                .collect()
        };
        let mut statuses = Vec::with_capacity(snapshot.len());
        for (key, watch) in snapshot {
            let seen = match watch {
                Watch::Handle(handle) => Seen::Status(self.inner.runtime.status(&handle).await),
                Watch::Find(spec) => match self.inner.runtime.find(&spec).await {
                    Some(started) => Seen::Found(started),
                    None => Seen::Status(InstanceStatus::Gone),
                },
                Watch::Nothing => Seen::Status(InstanceStatus::Gone),
            };
            statuses.push((key, seen));
        }
        let mut state = self.inner.state.lock().await;
        let mut change = Change::default();
        let mut routing_changed = false;
        let now = Instant::now();
        for (key, seen) in statuses {
            let Some(inst) = state.instances.get_mut(&key) else {
                continue;
            };
            inst.unfound = false;
            let status = match seen {
                Seen::Found(started) => {
                    // Started by a server that died before recording it.
                    inst.set_started(&started);
                    inst.record.updated_at = now_millis();
                    change.instances.push(inst.stored());
                    InstanceStatus::Running
                }
                Seen::Status(status) => status,
            };
            if status.is_running() || inst.phase == Phase::Exited {
                continue;
            }
            // The process is gone.
            if inst.phase == Phase::Draining {
                // Stopped (by us or by itself) while draining: forget it.
                change.deleted_instances.push(inst.record.id.clone());
                state.instances.remove(&key);
                routing_changed = true;
                continue;
            }
            routing_changed |= inst.phase == Phase::Ready;
            if inst.phase == Phase::Starting {
                inst.start_error = not_found(&key.1, status);
            }
            inst.phase = Phase::Exited;
            inst.clear_started();
            inst.record.updated_at = now_millis();
            let backoff = Duration::from_millis(200)
                .saturating_mul(1 << inst.record.restarts.min(6))
                .min(MAX_BACKOFF);
            inst.restart_at = Some(now + backoff);
            change.instances.push(inst.stored());
            change.events.push(NewEvent {
                app: key.0.clone(),
                kind: "instance-exited".into(),
                message: format!("instance {} {status}", key.1),
                data: None,
            });
        }
        self.commit(&mut state, &change)?;
        if routing_changed {
            self.publish(&state)?;
        }
        Ok(())
    }

    /// Runs the probes that are due, concurrently and without the lock. A
    /// readiness change reaches the router before the lock is let go: an
    /// instance that status reports ready is routed to.
    async fn probe_due(&self) -> Result<(), ControlError> {
        let now = Instant::now();
        let jobs: Vec<ProbeJob> = {
            let mut state = self.inner.state.lock().await;
            let State {
                apps, instances, ..
            } = &mut *state;
            let mut jobs = Vec::new();
            for (key, inst) in instances.iter_mut() {
                let probe_phase = matches!(
                    inst.phase,
                    Phase::Starting | Phase::Ready | Phase::Unhealthy
                );
                if !probe_phase || inst.probing || inst.launching || inst.next_probe > now {
                    continue;
                }
                let Some(handle) = inst.handle() else {
                    continue;
                };
                let Some(app) = apps.get(&key.0) else {
                    continue;
                };
                let Some(entry) = app.services.get(&inst.record.service) else {
                    continue;
                };
                let template = app.templates.get(&entry.template_version);
                let spec = instance_spec(&key.0, &key.1, entry, template, inst, None, Vec::new());
                match ProbeTarget::from_service(&entry.spec, &spec, inst.address) {
                    Ok(target) => {
                        inst.probing = true;
                        jobs.push(ProbeJob {
                            key: key.clone(),
                            handle,
                            spec,
                            target,
                            timeout: inst.schedule.timeout(),
                        });
                    }
                    Err(e) => {
                        tracing::warn!(instance = %key.1, error = %e, "cannot probe instance");
                        inst.next_probe = now + Duration::from_secs(1);
                    }
                }
            }
            jobs
        };
        if jobs.is_empty() {
            return Ok(());
        }
        let results = self.run_probes(jobs).await;
        let mut state = self.inner.state.lock().await;
        let mut change = Change::default();
        let mut routing_changed = false;
        let now = Instant::now();
        for (key, healthy) in results {
            let Some(inst) = state.instances.get_mut(&key) else {
                continue;
            };
            inst.probing = false;
            if !matches!(
                inst.phase,
                Phase::Starting | Phase::Ready | Phase::Unhealthy
            ) {
                continue;
            }
            let step = inst.schedule.record(healthy);
            inst.next_probe = now + step.next;
            if let Some(readiness) = step.changed {
                let phase = match readiness {
                    Readiness::Starting => Phase::Starting,
                    Readiness::Ready => Phase::Ready,
                    Readiness::Unhealthy => Phase::Unhealthy,
                };
                routing_changed = true;
                inst.phase = phase;
                inst.record.updated_at = now_millis();
                change.instances.push(inst.stored());
                if phase == Phase::Unhealthy {
                    change.events.push(NewEvent {
                        app: key.0.clone(),
                        kind: "instance-unhealthy".into(),
                        message: format!("instance {} failed its probes", key.1),
                        data: None,
                    });
                }
            }
        }
        self.commit(&mut state, &change)?;
        if routing_changed {
            self.publish(&state)?;
        }
        Ok(())
    }

    /// Drains and stops instances as the plan says, and prepares the
    /// starts and restarts it asks for (run by [`Self::launch`], outside
    /// the lock). The launches are returned even when the pass failed
    /// after preparing them; the result says whether routing changed.
    fn act(&self, state: &mut State) -> (Vec<Launch>, Result<bool, ControlError>) {
        let now = Instant::now();
        let mut change = Change::default();
        let mut routing_changed = false;
        // Restarts of exited instances whose backoff is over.
        let due: Vec<(String, String)> = state
            .instances
            .iter()
            .filter(|(_, i)| {
                i.phase == Phase::Exited && !i.launching && i.restart_at.is_some_and(|t| t <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut starts: Vec<Key> = Vec::new();
        for key in due {
            let restart = state
                .apps
                .get(&key.0)
                .and_then(|a| a.services.get(&state.instances[&key].record.service))
                .map(|e| e.spec.restart);
            let inst = &state.instances[&key];
            let allowed = match restart {
                // A service under turnout keeps its scale, as Swarm does:
                // without a policy, an exited instance is restarted.
                Some(None | Some(Restart::Always | Restart::UnlessStopped)) => true,
                Some(Some(Restart::OnFailure { max_retries })) => {
                    max_retries.is_none_or(|m| inst.record.restarts < m)
                }
                Some(Some(Restart::No)) | None => false,
            };
            if allowed {
                starts.push(key);
            } else if let Some(i) = state.instances.get_mut(&key) {
                i.restart_at = None;
            }
        }
        // The plan, per app.
        let mut drains: Vec<Key> = Vec::new();
        let apps: Vec<String> = state.apps.keys().cloned().collect();
        for app_name in &apps {
            let views = views(state, app_name);
            for action in plan(&state.apps[app_name], &views) {
                match action {
                    Action::Start { service, ordinal } => {
                        let id = crate::plan::instance_id(&service, ordinal);
                        self.create_instance(state, app_name, &service, ordinal, &id);
                        starts.push((app_name.clone(), id));
                    }
                    Action::Drain { id } => drains.push((app_name.clone(), id)),
                }
            }
        }
        let mut launches = Vec::with_capacity(starts.len());
        if !starts.is_empty() {
            // The router knows an instance's proxy credential before its
            // program runs: a call made while it starts is not refused.
            if let Err(e) = self.publish(state) {
                return (launches, Err(e));
            }
        }
        for (app, id) in &starts {
            launches.extend(self.prepare_launch(state, app, id));
        }
        for (app, id) in &drains {
            routing_changed |= self.drain(state, app, id, &mut change);
        }
        // Instances of deleted apps.
        let orphans: Vec<(String, String)> = state
            .instances
            .iter()
            .filter(|((a, _), i)| !state.apps.contains_key(a) && i.phase != Phase::Draining)
            .map(|(k, _)| k.clone())
            .collect();
        for (app, id) in orphans {
            routing_changed |= self.drain(state, &app, &id, &mut change);
        }
        // Stop drained instances once idle, or at the deadline.
        let stoppable: Vec<(String, String)> = state
            .instances
            .iter()
            .filter(|(_, i)| i.phase == Phase::Draining && !i.stopping && !i.launching)
            .filter(|(_, i)| {
                let idle = i.record.ports.values().all(|p| {
                    let addr = SocketAddr::new(i.address, *p);
                    self.inner.plane.in_flight(addr).unwrap_or(0) == 0
                });
                idle || i.drain_deadline.is_some_and(|d| d <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stoppable {
            let Some(inst) = state.instances.get_mut(&key) else {
                continue;
            };
            inst.stopping = true;
            match inst.handle() {
                Some(handle) => {
                    let controller = self.clone();
                    let grace = self.inner.settings.stop_grace;
                    tokio::spawn(async move {
                        if let Err(e) = controller.inner.runtime.stop(&handle, grace).await {
                            tracing::warn!(error = %e, %handle, "stopping an instance failed");
                        }
                        controller.inner.wake.notify_one();
                    });
                }
                None => {
                    change.deleted_instances.push(inst.record.id.clone());
                    state.instances.remove(&key);
                }
            }
        }
        let committed = self.commit(state, &change).map(|()| routing_changed);
        (launches, committed)
    }

    fn create_instance(&self, state: &mut State, app: &str, service: &str, ordinal: u32, id: &str) {
        let Some(entry) = state.apps.get(app).and_then(|a| a.services.get(service)) else {
            return;
        };
        let now = now_millis();
        let record = InstanceRecord {
            id: store_id(app, id),
            app: app.to_string(),
            service: service.to_string(),
            ordinal,
            handle: None,
            pid: None,
            address: None,
            ports: BTreeMap::new(),
            token: random_token(),
            spec_hash: entry.spec_hash.clone(),
            state: Phase::Starting.as_str().to_string(),
            restarts: 0,
            created_at: now,
            updated_at: now,
        };
        state.instances.insert(
            (app.to_string(), id.to_string()),
            Inst {
                record,
                phase: Phase::Starting,
                address: std::net::IpAddr::from([127, 0, 0, 1]),
                schedule: ProbeSchedule::new(ProbePlan::from_service(&entry.spec)),
                next_probe: Instant::now(),
                probing: false,
                drain_deadline: None,
                stopping: false,
                restart_at: None,
                start_error: None,
                launching: false,
                unfound: false,
                calls: crate::routes::calls(&entry.spec),
            },
        );
    }

    /// Prepares the start (or restart) of an instance that has a record:
    /// its ports, its spec, and its record committed before it runs (a
    /// server killed while starting it finds the record, and through the
    /// instance's key the instance). It is marked as launching.
    fn prepare_launch(&self, state: &mut State, app: &str, id: &str) -> Option<Launch> {
        let key = (app.to_string(), id.to_string());
        let service = state.instances.get(&key)?.record.service.clone();
        let entry = state.apps.get(app)?.services.get(&service)?.clone();
        let template = state
            .apps
            .get(app)?
            .templates
            .get(&entry.template_version)
            .cloned();
        let services = state.apps.get(app)?.services.values().map(|e| &e.spec);
        let internal = self.needs_internal(services.clone());
        let app_internal = crate::routes::internal_hosts(services, &self.inner.settings.domain);
        let inst = state.instances.get_mut(&key)?;
        let restarting = inst.phase == Phase::Exited;
        if restarting {
            // The old ports may be taken by now (a port is free between
            // allocation and bind only by luck): a restart gets fresh ones,
            // and the route table follows the instance record.
            inst.record.ports.clear();
        }
        // Ports: assign what is missing (an adopted instance keeps its own).
        let wanted = turnout_runtime::service_ports(&entry.spec);
        let missing: Vec<u16> = wanted
            .iter()
            .copied()
            .filter(|p| !inst.record.ports.contains_key(p))
            .collect();
        match self.inner.runtime.ports(&missing) {
            Ok(ports) => inst.record.ports.extend(ports),
            Err(e) => {
                tracing::error!(instance = id, error = %e, "no free port for an instance");
                inst.restart_at = Some(Instant::now() + Duration::from_secs(1));
                inst.phase = Phase::Exited;
                return None;
            }
        }
        let proxy = self.proxy_addr();
        let local_hosts = if self.inner.runtime.proxies_calls() {
            Vec::new()
        } else {
            crate::routes::local_hosts(&entry.spec, &app_internal)
        };
        let spec = instance_spec(app, id, &entry, template.as_ref(), inst, proxy, local_hosts);
        inst.clear_started();
        let before = Change {
            instances: vec![inst.stored()],
            ..Change::default()
        };
        if let Err(e) = self.commit(state, &before) {
            tracing::error!(instance = id, error = %e, "cannot record an instance; not starting it");
            if let Some(inst) = state.instances.get_mut(&key) {
                inst.restart_at = Some(Instant::now() + Duration::from_secs(1));
                inst.phase = Phase::Exited;
            }
            return None;
        }
        state.instances.get_mut(&key)?.launching = true;
        Some(Launch {
            key,
            spec,
            restarting,
            spec_hash: entry.spec_hash.clone(),
            plan: ProbePlan::from_service(&entry.spec),
            internal,
        })
    }

    /// Starts the prepared instances, concurrently and without the lock;
    /// first, the router listens where the instances of apps with internal
    /// routes reach them (an app where it cannot starts nothing now, and
    /// its starts are tried again).
    async fn launch(&self, launches: Vec<Launch>) -> Vec<(Launch, Result<Started, RuntimeError>)> {
        let mut out = Vec::new();
        let mut listened: BTreeMap<String, Result<(), String>> = BTreeMap::new();
        let mut ready = Vec::with_capacity(launches.len());
        for launch in launches {
            let app = &launch.key.0;
            if launch.internal {
                if !listened.contains_key(app) {
                    let result = self.listen_for(app, false).await.map_err(|e| e.to_string());
                    listened.insert(app.clone(), result);
                }
                if let Some(Err(message)) = listened.get(app) {
                    let err = RuntimeError::Engine {
                        action: format!("cannot start {}", launch.spec.id),
                        message: message.clone(),
                        hint: None,
                    };
                    out.push((launch, Err(err)));
                    continue;
                }
            }
            ready.push(launch);
        }
        let mut set = tokio::task::JoinSet::new();
        for launch in ready {
            let controller = self.clone();
            set.spawn(async move {
                let result = controller.inner.runtime.start(&launch.spec).await;
                (launch, result)
            });
        }
        while let Some(done) = set.join_next().await {
            match done {
                Ok(outcome) => out.push(outcome),
                // A start that panicked: its instance stays launching and
                // is never restarted, so say so loudly.
                Err(e) => tracing::error!(error = %e, "an instance start panicked"),
            }
        }
        out
    }

    /// Records what came of the starts. A started instance is committed at
    /// once: a server killed now must find it on restart, or it would run
    /// untracked beside its replacement.
    fn record_launches(
        &self,
        state: &mut State,
        outcomes: Vec<(Launch, Result<Started, RuntimeError>)>,
    ) {
        if outcomes.is_empty() {
            return;
        }
        let mut change = Change::default();
        for (launch, result) in outcomes {
            let (app, id) = &launch.key;
            let app_exists = state.apps.contains_key(app);
            let Some(inst) = state.instances.get_mut(&launch.key) else {
                continue;
            };
            inst.launching = false;
            let now = now_millis();
            match result {
                Ok(started) => {
                    inst.set_started(&started);
                    inst.record.spec_hash = launch.spec_hash;
                    if launch.restarting {
                        inst.record.restarts += 1;
                    }
                    // Drained while it started (a rollback, a deleted app):
                    // it stays draining and is stopped once idle.
                    if inst.phase != Phase::Draining {
                        inst.phase = Phase::Starting;
                    }
                    inst.record.updated_at = now;
                    inst.schedule = ProbeSchedule::new(launch.plan);
                    inst.next_probe = Instant::now() + inst.schedule.first_delay();
                    inst.restart_at = None;
                    inst.start_error = None;
                    let what = started.pid.map_or_else(
                        || format!("({})", started.handle),
                        |pid| format!("(pid {pid})"),
                    );
                    if app_exists {
                        change.instances.push(inst.stored());
                        change.events.push(NewEvent {
                            app: app.clone(),
                            kind: if launch.restarting {
                                "instance-restarted".into()
                            } else {
                                "instance-started".into()
                            },
                            message: format!("instance {id} started {what}"),
                            data: None,
                        });
                    }
                }
                Err(e) => {
                    if inst.phase == Phase::Draining {
                        // Nothing runs; nothing to stop.
                        change.deleted_instances.push(inst.record.id.clone());
                        state.instances.remove(&launch.key);
                        continue;
                    }
                    inst.phase = Phase::Exited;
                    inst.start_error = e.is_permanent().then(|| e.to_string());
                    inst.record.restarts += u32::from(launch.restarting);
                    inst.restart_at =
                        Some(Instant::now() + MAX_BACKOFF.min(Duration::from_secs(2)));
                    if app_exists {
                        change.instances.push(inst.stored());
                        change.events.push(NewEvent {
                            app: app.clone(),
                            kind: "instance-failed".into(),
                            message: format!("instance {id} could not start: {e}"),
                            data: None,
                        });
                    }
                }
            }
        }
        if let Err(e) = self.commit(state, &change) {
            tracing::error!(error = %e, "cannot record started instances");
        }
        // Containers are known to the router by their address, which only
        // their start tells: published at once, so that their calls are
        // not refused while they start (the runtime cannot say it sooner).
        if !self.inner.runtime.proxies_calls()
            && let Err(e) = self.publish(state)
        {
            tracing::error!(error = %e, "cannot publish the started instances' addresses");
        }
    }

    /// Takes an instance out of routing; it is stopped once idle.
    fn drain(&self, state: &mut State, app: &str, id: &str, change: &mut Change) -> bool {
        let Some(inst) = state.instances.get_mut(&(app.to_string(), id.to_string())) else {
            return false;
        };
        let was_routed = inst.phase == Phase::Ready;
        inst.phase = Phase::Draining;
        inst.record.updated_at = now_millis();
        inst.drain_deadline = Some(Instant::now() + self.inner.settings.drain_timeout);
        // An instance of a deleted app has no record left to update (the
        // app's rows are gone, and writing one would break the store's
        // foreign key).
        if state.apps.contains_key(app) {
            change.instances.push(inst.stored());
        }
        was_routed
    }

    /// Stops every instance (a graceful stop of `turnout up`), waiting for
    /// them; their records are removed.
    pub async fn stop_all(&self) {
        let targets: Vec<(String, Handle)> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .values()
                .filter_map(|i| Some((i.record.id.clone(), i.handle()?)))
                .collect()
        };
        let grace = self.inner.settings.stop_grace;
        let mut set = tokio::task::JoinSet::new();
        for (id, handle) in targets {
            let controller = self.clone();
            set.spawn(async move {
                if let Err(e) = controller.inner.runtime.stop(&handle, grace).await {
                    tracing::warn!(instance = %id, error = %e, "stopping an instance failed");
                }
            });
        }
        while set.join_next().await.is_some() {}
        let mut state = self.inner.state.lock().await;
        let change = Change {
            deleted_instances: state
                .instances
                .values()
                .map(|i| i.record.id.clone())
                .collect(),
            ..Change::default()
        };
        if let Err(e) = self.commit(&mut state, &change) {
            tracing::warn!(error = %e, "could not record the stopped instances");
        }
        state.instances.clear();
    }
}

/// The planner's view of an app's instances.
pub(crate) fn views(state: &State, app: &str) -> Vec<InstanceView> {
    state
        .instances
        .iter()
        .filter(|((a, _), _)| a == app)
        .map(|((_, id), i)| InstanceView {
            id: id.clone(),
            service: i.record.service.clone(),
            ordinal: i.record.ordinal,
            spec_hash: i.record.spec_hash.clone(),
            phase: i.phase,
        })
        .collect()
}

/// The runtime's view of an instance.
fn instance_spec(
    app: &str,
    id: &str,
    entry: &crate::model::ServiceEntry,
    template: Option<&turnout_spec::Template>,
    inst: &Inst,
    internal: Option<SocketAddr>,
    local_hosts: Vec<String>,
) -> InstanceSpec {
    let base_dir = template
        .and_then(|t| t.base_dir.as_deref())
        .map(std::path::PathBuf::from);
    // A relative working directory is the template folder's (DESIGN §6) on
    // the process runtime; containers take `working_dir` as a path inside
    // the container, from `container.service`.
    let working_dir = entry.spec.working_dir.as_ref().map(|dir| {
        let dir = std::path::PathBuf::from(dir);
        match &base_dir {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir,
        }
    });
    let container = turnout_runtime::ContainerSource {
        service: entry.spec.clone(),
        volumes: template.map(|t| t.volumes.clone()).unwrap_or_default(),
        base_dir,
        template_version: entry.template_version,
        local_hosts,
    };
    let primary = turnout_runtime::primary_port(&entry.spec);
    // The service as the user name and the token as the password: every
    // common client (curl, Python's urllib and requests, Go, Node) sends
    // both as `Proxy-Authorization: Basic`; some send nothing for a user
    // without a password (DESIGN §4).
    let proxy =
        internal.map(|addr| format!("http://{}:{}@{addr}", entry.name(), inst.record.token));
    let mut env = turnout_runtime::template_env(&entry.spec);
    env.extend(turnout_runtime::instance_env(
        &inst.record.ports,
        primary,
        proxy.as_deref(),
        id,
    ));
    InstanceSpec {
        id: id.to_string(),
        app: app.to_string(),
        service: entry.name().to_string(),
        key: inst.record.token.clone(),
        command: entry
            .spec
            .command
            .clone()
            .unwrap_or(turnout_spec::Command::Exec(Vec::new())),
        env,
        ports: inst.record.ports.clone(),
        primary_port: primary,
        working_dir,
        container: Some(std::sync::Arc::new(container)),
    }
}

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// The internal listener instances reach internal routes through as
    /// their `HTTP_PROXY`, when the runtime's instances use one.
    fn proxy_addr(&self) -> Option<SocketAddr> {
        self.inner
            .settings
            .internal_addr
            .filter(|_| self.inner.runtime.proxies_calls())
    }

    /// Runs the probes concurrently, commands through the runtime.
    async fn run_probes(&self, jobs: Vec<ProbeJob>) -> Vec<(Key, bool)> {
        let mut set = tokio::task::JoinSet::new();
        for job in jobs {
            let controller = self.clone();
            set.spawn(async move {
                let result = turnout_runtime::probe_instance(
                    &controller.inner.runtime,
                    &job.handle,
                    &job.spec,
                    &job.target,
                    job.timeout,
                )
                .await;
                (job.key, result.is_healthy())
            });
        }
        let mut out = Vec::new();
        while let Some(result) = set.join_next().await {
            if let Ok(r) = result {
                out.push(r);
            }
        }
        out
    }
}

/// Why an instance that exited before it was ever ready cannot start as
/// things stand, when its exit status is a shell's for a command it could
/// not run (POSIX: 127 not found, 126 found but not executable): process
/// commands run through `sh -c`, and so do many container entrypoints.
/// Any other exit is retried as a crash.
fn not_found(id: &str, status: InstanceStatus) -> Option<String> {
    let why = match status {
        InstanceStatus::Exited { code: Some(127) } => {
            "its command was not found (its shell names it in `turnout logs SERVICE`); fix \
             `command:` or install the program"
        }
        InstanceStatus::Exited { code: Some(126) } => {
            "its command was found but cannot be run (not executable, or a directory; see \
             `turnout logs SERVICE`)"
        }
        _ => return None,
    };
    Some(format!(
        "cannot start {id}: it {status} before it was ready: {why}"
    ))
}
