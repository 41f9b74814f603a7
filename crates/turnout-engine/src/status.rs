//! The status of an app as the API and `turnout status --output json`
//! give it (DESIGN §5).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::controller::State;
use crate::model::{App, Release};
use crate::plan::Phase;

/// An app's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    /// The app's name.
    pub app: String,
    /// The template version in force (during a release: the target).
    pub template_version: u32,
    /// The latest release, `null` when none was ever made.
    pub release: Option<ReleaseStatus>,
    /// The services, by name.
    pub services: Vec<ServiceStatus>,
    /// The routes, by id.
    pub routes: Vec<RouteStatus>,
}

/// A release in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseStatus {
    /// The release id.
    pub id: i64,
    /// `blue-green` or `standard`.
    pub strategy: String,
    /// The release state string.
    pub state: String,
    /// The version released from.
    pub from_version: u32,
    /// The version released to.
    pub to_version: u32,
    /// Why it ended as it did, when not by the operator.
    pub reason: Option<String>,
}

/// A service in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The service name.
    pub name: String,
    /// `current`, or during a release `unchanged|old|new|changed`.
    pub role: String,
    /// The console colour of the role.
    pub color: String,
    /// Instances wanted.
    pub scale: u32,
    /// Instances ready.
    pub ready: u32,
    /// The instances.
    pub instances: Vec<InstanceStatus>,
}

/// An instance in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    /// `service.n`.
    pub id: String,
    /// `starting|ready|unhealthy|draining|exited`.
    pub state: String,
    /// Where the router sends its requests (the primary port).
    pub endpoint: Option<String>,
    /// The process id, when running.
    pub pid: Option<u32>,
    /// How often it was restarted.
    pub restarts: u32,
}

/// A route in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// The route id.
    pub id: String,
    /// Served on the internal listener only.
    pub internal: bool,
    /// `version`, `instance` or `off`.
    pub sticky: String,
    /// Service → weight.
    pub weights: BTreeMap<String, u8>,
    /// The services in route order (old first), for display.
    pub order: Vec<String>,
}

fn release_status(r: &Release) -> ReleaseStatus {
    ReleaseStatus {
        id: r.id,
        strategy: r.strategy.to_string(),
        state: r.state.to_string(),
        from_version: r.from_version,
        to_version: r.to_version,
        reason: r.reason.clone(),
    }
}

pub(crate) fn app_status(app: &App, state: &State) -> AppStatus {
    let services = app
        .services
        .values()
        .map(|e| {
            let primary = turnout_runtime::primary_port(&e.spec);
            let mut instances: Vec<(u32, InstanceStatus)> = state
                .instances
                .iter()
                .filter(|((a, _), i)| a == &app.name && i.record.service == e.name())
                .map(|((_, id), i)| {
                    (
                        i.record.ordinal,
                        InstanceStatus {
                            id: id.clone(),
                            state: i.phase.as_str().to_string(),
                            endpoint: primary.and_then(|p| i.endpoint(p)).map(|a| a.to_string()),
                            pid: i.record.pid,
                            restarts: i.record.restarts,
                        },
                    )
                })
                .collect();
            instances.sort_by_key(|(o, _)| *o);
            let ready = state
                .instances
                .iter()
                .filter(|((a, _), i)| {
                    a == &app.name
                        && i.record.service == e.name()
                        && i.phase == Phase::Ready
                        && i.record.spec_hash == e.spec_hash
                })
                .count();
            ServiceStatus {
                name: e.name().to_string(),
                role: e.role.to_string(),
                color: e.role.color().to_string(),
                scale: e.spec.settings.scale,
                ready: u32::try_from(ready).unwrap_or(u32::MAX),
                instances: instances.into_iter().map(|(_, i)| i).collect(),
            }
        })
        .collect();
    let specs = crate::routes::route_specs(app, &crate::routes::NoInstances);
    let routes = specs
        .iter()
        .map(|r| {
            let id = r.id.clone().unwrap_or_default();
            let ws = app.weights.get(&id).cloned().unwrap_or_default();
            RouteStatus {
                id,
                internal: r.internal.unwrap_or(false),
                sticky: r
                    .sticky
                    .map_or_else(|| "version".to_string(), |s| s.to_string()),
                weights: ws.iter().map(|w| (w.service.clone(), w.weight)).collect(),
                order: ws.iter().map(|w| w.service.clone()).collect(),
            }
        })
        .collect();
    AppStatus {
        app: app.name.clone(),
        template_version: app.version,
        release: app.release.as_ref().map(release_status),
        services,
        routes,
    }
}
