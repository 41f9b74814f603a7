//! The reconciler: brings the instances in line with the committed state.
//!
//! Each pass it (1) observes every instance through the runtime (adopting
//! the ones a previous server started, restarting the dead per policy),
//! (2) probes the ones that are due, outside the lock, (3) asks the pure
//! planner what to start and drain and does it, (4) stops drained
//! instances once nothing is in flight to them (or at the drain deadline),
//! (5) moves releases on (`Ready` once every new instance is ready, `Fail`
//! past the deadline), and (6) publishes a new route table when readiness
//! changed. Every change is committed before it is acted on where it
//! matters for crash safety: an instance is recorded as soon as it runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turnout_runtime::{
    InstanceSpec, InstanceStatus, ProbePlan, ProbeSchedule, ProbeTarget, Readiness, Runtime,
    Started,
};
use turnout_spec::template::Restart;
use turnout_store::{Change, InstanceRecord, NewEvent, now_millis};

use crate::controller::{ControlError, Controller, DataPlane, Inst, State};
use crate::model::ReleaseState;
use crate::plan::{Action, InstanceView, Phase, plan, release_ready};
use crate::step::Command;

/// The environment variable that carries an instance's token, by which a
/// restarted server finds a process it started but did not record.
pub(crate) const INSTANCE_KEY: &str = "TURNOUT_INSTANCE_KEY";

/// The longest wait between restarts of a crashing instance.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// An instance's key: (app, instance id).
type Key = (String, String);

/// What one probe is about, collected under the lock and run outside it.
struct ProbeJob {
    key: Key,
    target: ProbeTarget,
    timeout: Duration,
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
    pub async fn reconcile(&self) -> Result<(), ControlError> {
        self.observe().await?;
        self.probe_due().await?;
        let mut state = self.inner.state.lock().await;
        let routing_changed = self.act(&mut state).await?;
        self.advance_releases(&mut state)?;
        if routing_changed {
            self.publish(&state)?;
        }
        Ok(())
    }

    /// Observes every instance's process; restarts or forgets the dead.
    /// The router stops sending to a dead instance before the lock is let
    /// go, so nothing that reads the state (status) sees it gone while the
    /// router still routes to it.
    async fn observe(&self) -> Result<(), ControlError> {
        let snapshot: Vec<(Key, Option<(u32, u64)>)> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .iter()
                .map(|(k, i)| (k.clone(), i.record.pid.zip(i.record.start_time)))
                .collect()
        };
        let mut statuses = Vec::with_capacity(snapshot.len());
        for (key, process) in snapshot {
            let status = match process {
                Some((pid, start)) => self.inner.runtime.status(pid, start).await,
                None => InstanceStatus::Gone,
            };
            statuses.push((key, status));
        }
        let mut state = self.inner.state.lock().await;
        let mut change = Change::default();
        let mut routing_changed = false;
        let now = Instant::now();
        for (key, status) in statuses {
            let Some(inst) = state.instances.get_mut(&key) else {
                continue;
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
            inst.phase = Phase::Exited;
            inst.record.pid = None;
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
                if !probe_phase || inst.probing || inst.next_probe > now {
                    continue;
                }
                let Some(entry) = apps
                    .get(&key.0)
                    .and_then(|a| a.services.get(&inst.record.service))
                else {
                    continue;
                };
                let spec = instance_spec(&self.inner.settings, &key.0, &key.1, entry, inst, None);
                match ProbeTarget::from_service(&entry.spec, &spec, inst.address) {
                    Ok(target) => {
                        inst.probing = true;
                        jobs.push(ProbeJob {
                            key: key.clone(),
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
        let results = futures_join(jobs).await;
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

    /// Starts, restarts, drains and stops instances as the plan says.
    async fn act(&self, state: &mut State) -> Result<bool, ControlError> {
        let now = Instant::now();
        let mut change = Change::default();
        let mut routing_changed = false;
        // Restarts of exited instances whose backoff is over.
        let due: Vec<(String, String)> = state
            .instances
            .iter()
            .filter(|(_, i)| i.phase == Phase::Exited && i.restart_at.is_some_and(|t| t <= now))
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
        if !starts.is_empty() {
            // The router knows an instance's proxy credential before its
            // program runs: a call made while it starts is not refused.
            self.publish(state)?;
        }
        for (app, id) in &starts {
            self.start_instance(state, app, id, &mut change).await;
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
            .filter(|(_, i)| i.phase == Phase::Draining && !i.stopping)
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
            match inst.record.pid.zip(inst.record.start_time) {
                Some((pid, start)) => {
                    let controller = self.clone();
                    let grace = self.inner.settings.stop_grace;
                    tokio::spawn(async move {
                        if let Err(e) = controller.inner.runtime.stop(pid, start, grace).await {
                            tracing::warn!(error = %e, pid, "stopping an instance failed");
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
        self.commit(state, &change)?;
        Ok(routing_changed)
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
            pid: None,
            start_time: None,
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
                calls: crate::routes::calls(&entry.spec),
            },
        );
    }

    /// Starts (or restarts) the process of an instance that has a record.
    async fn start_instance(&self, state: &mut State, app: &str, id: &str, change: &mut Change) {
        let key = (app.to_string(), id.to_string());
        let Some(entry) = state
            .apps
            .get(app)
            .and_then(|a| {
                a.services.get(
                    &state
                        .instances
                        .get(&key)
                        .map(|i| i.record.service.clone())
                        .unwrap_or_default(),
                )
            })
            .cloned()
        else {
            return;
        };
        let Some(inst) = state.instances.get_mut(&key) else {
            return;
        };
        let restarting = inst.phase == Phase::Exited;
        if restarting {
            // The old ports may be taken by now (a port is free between
            // allocation and bind only by luck): a restart gets fresh ones,
            // and the route table follows the instance record.
            inst.record.ports.clear();
        }
        // Ports: allocate what is missing (an adopted instance keeps its own).
        let wanted = turnout_runtime::service_ports(&entry.spec);
        let missing: Vec<u16> = wanted
            .iter()
            .copied()
            .filter(|p| !inst.record.ports.contains_key(p))
            .collect();
        match turnout_runtime::allocate_ports(&missing) {
            Ok(ports) => inst.record.ports.extend(ports),
            Err(e) => {
                tracing::error!(instance = id, error = %e, "no free port for an instance");
                inst.restart_at = Some(Instant::now() + Duration::from_secs(1));
                inst.phase = Phase::Exited;
                return;
            }
        }
        let spec = instance_spec(
            &self.inner.settings,
            app,
            id,
            &entry,
            inst,
            self.inner.settings.internal_addr,
        );
        // Recorded before it runs: a server killed while starting it finds
        // the record, and through INSTANCE_KEY the process.
        inst.record.pid = None;
        inst.record.start_time = None;
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
            return;
        }
        let Some(inst) = state.instances.get_mut(&key) else {
            return;
        };
        let result: Result<Started, _> = self.inner.runtime.start(&spec).await;
        let now = now_millis();
        match result {
            Ok(started) => {
                inst.record.pid = Some(started.pid);
                inst.record.start_time = Some(started.start_time);
                inst.address = started.address;
                inst.record.spec_hash = entry.spec_hash.clone();
                if restarting {
                    inst.record.restarts += 1;
                }
                inst.phase = Phase::Starting;
                inst.record.updated_at = now;
                inst.schedule = ProbeSchedule::new(ProbePlan::from_service(&entry.spec));
                inst.next_probe = Instant::now() + inst.schedule.first_delay();
                inst.restart_at = None;
                // Recorded at once, not with the rest of the pass: a server
                // killed now must find this process on restart, or it would
                // run untracked beside its replacement.
                let started_now = Change {
                    instances: vec![inst.stored()],
                    events: vec![NewEvent {
                        app: app.to_string(),
                        kind: if restarting {
                            "instance-restarted".into()
                        } else {
                            "instance-started".into()
                        },
                        message: format!("instance {id} started (pid {})", started.pid),
                        data: None,
                    }],
                    ..Change::default()
                };
                if let Err(e) = self.commit(state, &started_now) {
                    tracing::error!(instance = id, error = %e, "cannot record a started instance");
                    change.instances.extend(started_now.instances);
                }
            }
            Err(e) => {
                inst.phase = Phase::Exited;
                inst.record.restarts += u32::from(restarting);
                inst.restart_at = Some(Instant::now() + MAX_BACKOFF.min(Duration::from_secs(2)));
                change.instances.push(inst.stored());
                change.events.push(NewEvent {
                    app: app.to_string(),
                    kind: "instance-failed".into(),
                    message: format!("instance {id} could not start: {e}"),
                    data: None,
                });
            }
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

    /// Moves releases on: ready ones to the next state, late ones to
    /// failed, failed ones to rolled-back.
    fn advance_releases(&self, state: &mut State) -> Result<(), ControlError> {
        let now = Instant::now();
        let apps: Vec<String> = state.apps.keys().cloned().collect();
        for app_name in apps {
            let Some(release) = state.apps[&app_name]
                .active_release()
                .filter(|r| r.state == ReleaseState::Deploying)
                .cloned()
            else {
                continue;
            };
            let views = views(state, &app_name);
            if release_ready(&state.apps[&app_name], &views) {
                self.apply(
                    state,
                    &app_name,
                    Command::Ready {
                        release_id: release.id,
                    },
                )?;
            } else if state.deadlines.get(&app_name).is_some_and(|d| *d <= now) {
                let waiting: Vec<String> = state.apps[&app_name]
                    .services
                    .values()
                    .filter(|e| {
                        matches!(
                            e.role,
                            crate::model::ServiceRole::New | crate::model::ServiceRole::Changed
                        )
                    })
                    .map(|e| e.name().to_string())
                    .collect();
                let reason = format!(
                    "new instances of {} not ready within {}s",
                    waiting.join(", "),
                    self.inner.settings.ready_deadline.as_secs()
                );
                self.apply(
                    state,
                    &app_name,
                    Command::Fail {
                        release_id: release.id,
                        reason,
                    },
                )?;
            }
        }
        // A failed release is rolled back once its `failed` state is
        // committed: at once, or by the next server when this one died in
        // between.
        let failed: Vec<String> = state
            .apps
            .iter()
            .filter(|(_, a)| {
                a.active_release()
                    .is_some_and(|r| r.state == ReleaseState::Failed)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for app_name in failed {
            self.apply(state, &app_name, Command::Rollback)?;
        }
        Ok(())
    }

    /// Stops every instance (a graceful stop of `turnout up`), waiting for
    /// them; their records are removed.
    pub async fn stop_all(&self) {
        let targets: Vec<(String, u32, u64)> = {
            let state = self.inner.state.lock().await;
            state
                .instances
                .values()
                .filter_map(|i| {
                    i.record
                        .pid
                        .zip(i.record.start_time)
                        .map(|(p, s)| (i.record.id.clone(), p, s))
                })
                .collect()
        };
        let grace = self.inner.settings.stop_grace;
        let mut set = tokio::task::JoinSet::new();
        for (id, pid, start) in targets {
            let controller = self.clone();
            set.spawn(async move {
                if let Err(e) = controller.inner.runtime.stop(pid, start, grace).await {
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
fn views(state: &State, app: &str) -> Vec<InstanceView> {
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
    settings: &crate::controller::Settings,
    app: &str,
    id: &str,
    entry: &crate::model::ServiceEntry,
    inst: &Inst,
    internal: Option<SocketAddr>,
) -> InstanceSpec {
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
    // Lets a restarted server find the process if it died between starting
    // it and recording its pid.
    env.push((INSTANCE_KEY.to_string(), inst.record.token.clone()));
    InstanceSpec {
        id: id.to_string(),
        app: app.to_string(),
        service: entry.name().to_string(),
        command: entry
            .spec
            .command
            .clone()
            .unwrap_or(turnout_spec::Command::Exec(Vec::new())),
        env,
        ports: inst.record.ports.clone(),
        primary_port: primary,
        working_dir: entry.spec.working_dir.as_ref().map(Into::into),
        log_path: turnout_runtime::log_path(&settings.data_dir, app, id),
    }
}

/// Runs the probes concurrently.
async fn futures_join(jobs: Vec<ProbeJob>) -> Vec<(Key, bool)> {
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        set.spawn(async move {
            let result = turnout_runtime::probe(&job.target, job.timeout).await;
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
