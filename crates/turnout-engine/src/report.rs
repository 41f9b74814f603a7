//! The report of a release (DESIGN §8, `turnout report`): each service's
//! figures on the routes the release shares, counted from where the
//! release's traffic began, and the comparison of the old and the new
//! version on one route — conversions by a two-proportion z-test, latency
//! by Mann-Whitney U. The starting reading and the report of a release
//! that ended are kept in memory only: a restarted server counts from its
//! own start, and has no report of a release that ended before.

use std::collections::BTreeSet;

use turnout_api_types::ReleaseReport;
use turnout_routing::{LatencyHistogram, ServiceFigures};
use turnout_runtime::Runtime;
use turnout_store::now_millis;

use crate::analysis::{Snapshot, Window};
use crate::controller::{ControlError, Controller, DataPlane, State, unknown_app};
use crate::error::EngineError;
use crate::histogram::Histogram;
use crate::model::{App, Release, ServiceRole};
use crate::stats::{Confidence, Variant, compare};

/// One app's reporting state.
#[derive(Debug, Clone)]
pub(crate) struct Reporting {
    /// The release the figures are of.
    pub release_id: i64,
    /// When they start, unix ms.
    pub since_ms: i64,
    /// The router's cumulative figures then.
    pub base: Vec<ServiceFigures>,
    /// The report made as the release ended.
    pub frozen: Option<ReleaseReport>,
}

fn bounds_ms() -> Vec<f64> {
    let mut b: Vec<f64> = LatencyHistogram::bounds()
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    b.push(f64::INFINITY);
    b
}

/// The sum of some services' served figures, as the analysis reads them.
pub(crate) fn snapshot<'a>(
    figures: impl Iterator<Item = &'a turnout_routing::Figures>,
) -> Snapshot {
    let mut requests = 0;
    let mut errors = 0;
    let mut cumulative = vec![0u64; LatencyHistogram::bounds().len() + 1];
    for f in figures {
        requests += f.requests;
        errors += f.errors;
        for (acc, c) in cumulative.iter_mut().zip(&f.latency.cumulative) {
            *acc += c;
        }
    }
    Snapshot {
        requests,
        errors,
        latency: Histogram::from_cumulative(bounds_ms(), &cumulative)
            .unwrap_or_else(|_| Histogram::empty(bounds_ms()).expect("valid bounds")),
    }
}

/// Whether a route's weights hold new services beside others: a route
/// the release shares (moved by its steps, read by its analysis and
/// report).
pub(crate) fn is_shared(app: &App, weights: &[crate::model::RouteWeight]) -> bool {
    let new = |w: &crate::model::RouteWeight| {
        app.services.get(&w.service).map(|e| e.role) == Some(ServiceRole::New)
    };
    weights.iter().any(new) && !weights.iter().all(new)
}

/// The routes a release shares ([`is_shared`]), in table order.
pub(crate) fn shared_routes(app: &App) -> Vec<&String> {
    app.weights
        .iter()
        .filter(|(_, ws)| is_shared(app, ws))
        .map(|(id, _)| id)
        .collect()
}

fn role_name(role: Option<ServiceRole>) -> &'static str {
    match role {
        Some(ServiceRole::New) => "new",
        Some(ServiceRole::Old) => "old",
        _ => "unchanged",
    }
}

/// The report of `release` of `app` from the router's figures `now`,
/// against those `base` taken `since_ms`. `None` when the release shares
/// no route (nothing to compare).
pub(crate) fn build(
    app: &App,
    release: &Release,
    now: &[ServiceFigures],
    base: &[ServiceFigures],
    since_ms: i64,
) -> Option<ReleaseReport> {
    let role = |name: &str| app.services.get(name).map(|e| e.role);
    let internal = crate::routes::internal_route_ids(app);
    let mut shared = shared_routes(app);
    let goal_routes: BTreeSet<&str> = now
        .iter()
        .filter(|f| f.conversions.is_some())
        .map(|f| &*f.route)
        .collect();
    // The compared route first: the goal's, else a public one.
    shared.sort_by_key(|id| {
        (
            !goal_routes.contains(id.as_str()),
            internal.contains(id.as_str()),
        )
    });
    let compared = (*shared.first()?).clone();
    let variant = |route: &str, services: &[&str], role: &str| {
        let pick = |set: &'_ [ServiceFigures]| -> Vec<ServiceFigures> {
            set.iter()
                .filter(|f| &*f.route == route && services.contains(&&*f.service))
                .cloned()
                .collect()
        };
        let (now, then) = (pick(now), pick(base));
        let conversions = now.iter().filter_map(|f| f.conversions);
        Variant {
            service: services.join("+"),
            route: route.to_string(),
            role: role.to_string(),
            clients: conversions.clone().map(|c| c.clients).sum(),
            conversions: conversions.map(|c| c.converted).sum(),
            traffic: Window::between(
                &snapshot(then.iter().map(|f| &f.served)),
                &snapshot(now.iter().map(|f| &f.served)),
            ),
        }
    };
    let mut variants = Vec::new();
    for route in &shared {
        let ws = &app.weights[*route];
        let mut services: Vec<&str> = ws.iter().map(|w| w.service.as_str()).collect();
        services.sort_by_key(|s| role(s) == Some(ServiceRole::New));
        for service in services {
            variants.push(variant(route, &[service], role_name(role(service))).report());
        }
    }
    let ws = &app.weights[&compared];
    let side = |new: bool| -> Vec<&str> {
        ws.iter()
            .filter(|w| (role(&w.service) == Some(ServiceRole::New)) == new)
            .map(|w| w.service.as_str())
            .collect()
    };
    let a = variant(&compared, &side(false), "old");
    let b = variant(&compared, &side(true), "new");
    let comparison = compare(&a, &b, Confidence::default()).ok()?;
    Some(ReleaseReport {
        release_id: release.id,
        strategy: release.strategy.to_string(),
        running: !release.state.is_terminal(),
        since_ms,
        route: compared,
        variants,
        conversion: comparison.conversion,
        latency: comparison.latency,
    })
}

/// The release whose traffic split begins between `current` and `next`:
/// a progressive release's first step (its new instances are ready).
/// Blue-green and standard releases begin at their start.
pub(crate) fn traffic_begins(current: &App, next: &App) -> Option<i64> {
    let step = |app: &App| {
        app.active_release()
            .and_then(|r| Some((r.id, r.progress.as_ref()?.step)))
    };
    match (step(current), step(next)) {
        (Some((a, None)), Some((b, Some(_)))) if a == b => Some(b),
        _ => None,
    }
}

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// Starts counting `release_id`'s figures of `app` from now (its start,
    /// or its first step), and its A/B client counts afresh.
    pub(crate) fn begin_report(&self, state: &mut State, app: &str, release_id: i64) {
        let base = self.inner.plane.figures(app);
        self.inner.plane.reset_conversions(app);
        state.reports.insert(
            app.to_string(),
            Reporting {
                release_id,
                since_ms: now_millis(),
                base,
                frozen: None,
            },
        );
    }

    /// When `current`'s release ends in `next`, its report as it stands
    /// (read before the ended release's services leave the router).
    pub(crate) fn ended_report(
        &self,
        state: &State,
        current: &App,
        next: &App,
    ) -> Option<Reporting> {
        let release = current.active_release()?;
        if next.active_release().is_some_and(|r| r.id == release.id) {
            return None;
        }
        let ended = next
            .release
            .as_ref()
            .filter(|r| r.id == release.id)
            .unwrap_or(release);
        let mut reporting = state
            .reports
            .get(&current.name)
            .filter(|r| r.release_id == release.id)
            .cloned()
            .unwrap_or_else(|| Reporting {
                release_id: release.id,
                since_ms: state.started_ms.max(release.started_at_ms),
                base: Vec::new(),
                frozen: None,
            });
        let now = self.inner.plane.figures(&current.name);
        reporting.frozen = build(current, ended, &now, &reporting.base, reporting.since_ms);
        reporting.base = Vec::new();
        Some(reporting)
    }

    /// The report of `app`'s current release, or of its last one once it
    /// ended (DESIGN §8's `report`).
    pub async fn report(&self, app: &str) -> Result<ReleaseReport, ControlError> {
        let state = self.inner.state.lock().await;
        let current = state
            .apps
            .get(app)
            .ok_or_else(|| unknown_app(app, &state))?;
        let Some(release) = current.release.as_ref() else {
            return Err(EngineError::conflict(
                format!("app {app} has had no release to report on"),
                "start one with `turnout release FILE`; its report covers it from its start",
            )
            .into());
        };
        let reporting = state
            .reports
            .get(app)
            .filter(|r| r.release_id == release.id);
        if !release.state.is_terminal() {
            if release.progress.as_ref().is_some_and(|p| p.step.is_none()) {
                return Err(EngineError::conflict(
                    format!(
                        "release {} is starting its new instances: no traffic is split yet",
                        release.id
                    ),
                    "wait for its first step (`turnout status`); the report counts from there",
                )
                .into());
            }
            let now = self.inner.plane.figures(app);
            let (base, since_ms) = reporting.map_or((&[][..], state.started_ms), |r| {
                (r.base.as_slice(), r.since_ms)
            });
            return build(current, release, &now, base, since_ms)
                .ok_or_else(|| nothing_shared(release.id).into());
        }
        match reporting {
            Some(r) => r.frozen.clone().ok_or_else(|| nothing_shared(release.id).into()),
            None => Err(EngineError::conflict(
                format!(
                    "release {} ended before this server started, and its figures went with the server that ran it",
                    release.id
                ),
                "reports are kept in memory: ask for one while a release runs, or after it ends on the same server",
            )
            .into()),
        }
    }
}

fn nothing_shared(release_id: i64) -> EngineError {
    EngineError::conflict(
        format!(
            "release {release_id} has no route where old and new services run side by side: there is nothing to compare"
        ),
        "`turnout status` shows each service; a standard release replaces services in place",
    )
}
