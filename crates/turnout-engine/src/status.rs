//! Builds the status of an app as the API and `turnout status --output
//! json` give it (DESIGN §5). The types live in `turnout-api-types`, the
//! one definition that the server and the CLI share.

pub(crate) use turnout_api_types::AppStatus;
use turnout_api_types::{InstanceStatus, ReleaseStatus, RouteStatus, ServiceStatus};

use crate::controller::State;
use crate::model::{App, Release};
use crate::plan::Phase;

fn release_status(
    r: &Release,
    preview_token: Option<&String>,
    analysis: Option<&crate::sampling::Sampler>,
) -> ReleaseStatus {
    ReleaseStatus {
        id: r.id,
        strategy: r.strategy.to_string(),
        state: r.state.to_string(),
        from_version: r.from_version,
        to_version: r.to_version,
        reason: r.reason.clone(),
        preview_token: preview_token.filter(|_| !r.state.is_terminal()).cloned(),
        step: r.progress.as_ref().and_then(|p| {
            let stages = crate::progressive::stages(p);
            let index = p.step?;
            Some(turnout_api_types::StepStatus {
                index: index as u32,
                count: stages.len() as u32,
                share: *stages.get(index)?,
            })
        }),
        paused: r
            .progress
            .as_ref()
            .and_then(|p| p.paused)
            .filter(|_| r.state == crate::model::ReleaseState::Paused)
            .map(|p| p.as_str().to_string()),
        analysis: analysis
            .filter(|s| s.release_id == r.id)
            .map(|s| s.entries.clone())
            .unwrap_or_default(),
    }
}

/// The status of `app`; `preview_token` is the router's (shown while a
/// release is in progress).
pub(crate) fn app_status(app: &App, state: &State, preview_token: Option<&String>) -> AppStatus {
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
                            error: i.start_error.clone(),
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
        release: app
            .release
            .as_ref()
            .map(|r| release_status(r, preview_token, state.analysis.get(&app.name))),
        services,
        routes,
    }
}
