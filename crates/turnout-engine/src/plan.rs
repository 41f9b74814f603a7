//! The instance planner: which instances to start and which to drain so
//! that the running instances match the app's services. Pure: the
//! reconciler observes the instances, asks `plan`, and runs the actions.

use std::collections::BTreeSet;

use crate::model::{App, ServiceRole};

/// Where an instance stands (DESIGN §2: `starting|ready|unhealthy|draining|exited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Started, not yet ready: gets no traffic.
    Starting,
    /// Ready: gets traffic.
    Ready,
    /// Was ready, now fails its probe: gets no traffic until it recovers.
    Unhealthy,
    /// Being removed: no new requests, in-flight ones finish.
    Draining,
    /// The process is gone (the reconciler restarts it per policy).
    Exited,
}

impl Phase {
    /// The state string used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Unhealthy => "unhealthy",
            Phase::Draining => "draining",
            Phase::Exited => "exited",
        }
    }

    /// Parses a state string.
    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Starting,
            Phase::Ready,
            Phase::Unhealthy,
            Phase::Draining,
            Phase::Exited,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What the planner needs to know of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// `service.ordinal`.
    pub id: String,
    /// The service it belongs to.
    pub service: String,
    /// Its number within the service (1-based).
    pub ordinal: u32,
    /// The spec it was started from.
    pub spec_hash: String,
    /// Where it stands.
    pub phase: Phase,
}

/// What the reconciler should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new instance of `service` with number `ordinal`.
    Start {
        /// The service.
        service: String,
        /// The instance number.
        ordinal: u32,
    },
    /// Take the instance out of the route table, let in-flight requests
    /// finish, then stop it.
    Drain {
        /// The instance id.
        id: String,
    },
}

/// The instance id of `service`'s instance number `ordinal`.
pub fn instance_id(service: &str, ordinal: u32) -> String {
    format!("{service}.{ordinal}")
}

/// Plans the actions that bring `instances` towards `app`'s services.
///
/// A service with dependencies (`aliyun.depends`, `depends_on`) gets no new
/// instance until every dependency has all its instances ready.
///
/// Per service with `scale` N: instances started from another spec (the
/// old generation of a `standard` release) are replaced `parallelism` at a
/// time, and an old one is drained only once enough new ones are ready that
/// N instances stay ready: no request is lost and capacity never drops.
/// Otherwise missing instances are started and surplus ones (highest
/// numbers first) drained. Instances of services the app no longer has are
/// drained.
pub fn plan(app: &App, instances: &[InstanceView]) -> Vec<Action> {
    let mut actions = Vec::new();
    let live = |i: &&InstanceView| !matches!(i.phase, Phase::Draining);
    let ready_count = |service: &str| {
        instances
            .iter()
            .filter(|i| i.service == service && i.phase == Phase::Ready)
            .count()
    };
    for entry in app.services.values() {
        let name = entry.name();
        // `aliyun.depends` / `depends_on`: new instances start only once
        // every dependency of the app is up (all its instances ready).
        let waiting = entry.spec.settings.depends.iter().any(|dep| {
            app.services
                .get(dep)
                .is_some_and(|d| ready_count(dep) < d.spec.settings.scale as usize)
        });
        if waiting {
            continue;
        }
        let scale = crate::progressive::wanted_scale(app, name, entry.spec.settings.scale) as usize;
        let mine: Vec<&InstanceView> = instances
            .iter()
            .filter(|i| i.service == name)
            .filter(live)
            .collect();
        let used: BTreeSet<u32> = instances
            .iter()
            .filter(|i| i.service == name)
            .map(|i| i.ordinal)
            .collect();
        let mut free = (1u32..).filter(move |o| !used.contains(o));
        let (current, old): (Vec<&InstanceView>, Vec<&InstanceView>) = mine
            .into_iter()
            .partition(|i| i.spec_hash == entry.spec_hash);
        let starting = current
            .iter()
            .filter(|i| matches!(i.phase, Phase::Starting))
            .count();
        let ready = current.iter().filter(|i| i.phase == Phase::Ready).count();
        if old.is_empty() {
            if current.len() < scale {
                for _ in current.len()..scale {
                    let ordinal = free.next().expect("ordinals are unbounded");
                    actions.push(Action::Start {
                        service: name.to_string(),
                        ordinal,
                    });
                }
            } else if current.len() > scale {
                let mut surplus: Vec<&&InstanceView> = current.iter().collect();
                surplus.sort_by_key(|i| std::cmp::Reverse(i.ordinal));
                for i in surplus.into_iter().take(current.len() - scale) {
                    actions.push(Action::Drain { id: i.id.clone() });
                }
            }
            continue;
        }
        // Rolling replacement, `parallelism` new instances at a time.
        let batch = entry.spec.settings.parallelism.max(1) as usize;
        let total_new = current.len();
        if total_new < scale && starting < batch {
            let n = (batch - starting).min(scale - total_new);
            for _ in 0..n {
                let ordinal = free.next().expect("ordinals are unbounded");
                actions.push(Action::Start {
                    service: name.to_string(),
                    ordinal,
                });
            }
        }
        // Drain old instances while ready ones stay at or above the scale.
        let old_live = old.len();
        let can_drain = (ready + old_live).saturating_sub(scale).min(old_live);
        let mut old_sorted = old.clone();
        // Unready old instances go first: they serve nothing.
        old_sorted.sort_by_key(|i| (i.phase == Phase::Ready, std::cmp::Reverse(i.ordinal)));
        for i in old_sorted.into_iter().take(can_drain) {
            actions.push(Action::Drain { id: i.id.clone() });
        }
    }
    for i in instances.iter().filter(live) {
        if !app.services.contains_key(&i.service) {
            actions.push(Action::Drain { id: i.id.clone() });
        }
    }
    actions
}

/// Whether the release in progress has all it waits for: every instance of
/// its new and changed services ready, started from the new spec, and no
/// instance of the old spec left.
pub fn release_ready(app: &App, instances: &[InstanceView]) -> bool {
    app.services
        .values()
        .filter(|e| matches!(e.role, ServiceRole::New | ServiceRole::Changed))
        .all(|e| {
            let mine = instances
                .iter()
                .filter(|i| i.service == e.name() && i.phase != Phase::Draining);
            let (mut ready, mut other) = (0usize, 0usize);
            for i in mine {
                if i.spec_hash == e.spec_hash && i.phase == Phase::Ready {
                    ready += 1;
                } else if i.spec_hash != e.spec_hash {
                    other += 1;
                }
            }
            let scale = crate::progressive::wanted_scale(app, e.name(), e.spec.settings.scale);
            ready >= scale as usize && other == 0
        })
}
