//! The release state machine: `step(&App, Command) -> (App, Vec<Effect>)`.
//!
//! A pure function: no IO, no clock (times come in with the commands), so
//! every transition is tested without processes or sockets. The reconciler
//! runs the effects; the server commits the new `App` before it answers.

use std::collections::BTreeMap;

use turnout_routing::Weight;
use turnout_spec::{Role, Strategy, Template};

use crate::error::EngineError;
use crate::model::{
    App, Progress, Release, ReleaseState, RouteWeight, ServiceEntry, ServiceRole, Weights,
};
use crate::progressive;

/// Something asked of an app: by the operator, or observed by the
/// reconciler.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start a release to `template` (version `version`).
    StartRelease {
        /// The new template.
        template: Template,
        /// Its version number.
        version: u32,
        /// How to release it.
        strategy: Strategy,
        /// The id the release gets.
        release_id: i64,
        /// The time, unix ms.
        now_ms: i64,
        /// A progressive release's plan: the flags over the template's
        /// block, and the plan they make (`None` for blue-green and
        /// standard).
        plan: Option<Box<(turnout_spec::ReleaseBlock, turnout_spec::ReleasePlan)>>,
    },
    /// Set the weights of some services of one route, in one step; the
    /// route's other services keep theirs.
    SetWeights {
        /// The route id, or a bare prefix that names one route
        /// ([`resolve_route`]), resolved against the app the step runs on.
        route: String,
        /// Service → weight 0..=100.
        weights: Vec<(String, Weight)>,
    },
    /// Move all of a route's traffic to the other side in one step.
    Switch {
        /// The route id or an unambiguous prefix, as for `SetWeights`.
        route: String,
    },
    /// Confirm the release in progress: old services go.
    Confirm {
        /// Switch every route whose new services carry weight 0 first.
        switch: bool,
    },
    /// Roll the release in progress back: new services go, weights return.
    Rollback,
    /// A progressive release's next step (`full`: straight to 100 %).
    Promote {
        /// Skip the remaining steps.
        full: bool,
        /// The time, unix ms.
        now_ms: i64,
    },
    /// Hold a progressive release's step.
    Pause,
    /// Run a paused step again.
    Resume {
        /// The time, unix ms (the step's pause counts from here).
        now_ms: i64,
    },
    /// Roll the release in progress back, with why (DESIGN §8: the release
    /// ends `rolled-back`, reason `aborted: <why>`).
    Abort {
        /// Who or why, for the history.
        reason: String,
    },
    /// The verdict of one analysis window of a progressive release: a
    /// failed check fails the release (the reconciler then rolls it back),
    /// an inconclusive one pauses it, a passing one lets the step move on
    /// (and resumes a release paused as inconclusive).
    Analysed {
        /// The release this is about.
        release_id: i64,
        /// The verdict.
        verdict: crate::analysis::Verdict,
        /// For a failed check, the reason after `failed: `
        /// (`analysis: max_p99_increase: p99 +212 ms > 100 ms`).
        failure: Option<String>,
    },
    /// The reconciler's clock: a progressive step whose pause has run out
    /// moves on.
    Tick {
        /// The release this is about.
        release_id: i64,
        /// The time, unix ms.
        now_ms: i64,
    },
    /// The reconciler saw every new instance of the release ready (or, for
    /// `standard`, every replacement done).
    Ready {
        /// The release this is about.
        release_id: i64,
        /// The time, unix ms (a progressive release's first step starts).
        now_ms: i64,
    },
    /// The release cannot succeed (instances never became ready).
    Fail {
        /// The release this is about.
        release_id: i64,
        /// Why, for the operator.
        reason: String,
    },
}

/// What a step asks of the controller besides committing the new state.
/// (Starting and stopping instances needs no effect: the controller wakes
/// the reconciler after every accepted change, and the reconciler plans
/// from the committed state.) Later strategies add effects of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Record an event for the operator (history, SSE).
    Event {
        /// A short kind (`release-started`, `weights`, ...).
        kind: &'static str,
        /// What happened, in a sentence.
        message: String,
    },
}

pub(crate) fn event(kind: &'static str, message: impl Into<String>) -> Effect {
    Effect::Event {
        kind,
        message: message.into(),
    }
}

/// The route ids of a service, spelled with `domain`.
pub fn route_ids(spec: &turnout_spec::Service, domain: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for binding in &spec.settings.routes {
        for route in &binding.routes {
            let id = route.id(domain);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// A new app running `template` as version `version` (no release).
pub fn deploy(name: &str, domain: &str, template: Template, version: u32) -> App {
    let mut services = BTreeMap::new();
    let mut weights: Weights = BTreeMap::new();
    for spec in &template.services {
        for id in route_ids(spec, domain) {
            weights.entry(id).or_default().push(RouteWeight {
                service: spec.name.clone(),
                weight: template_weight(spec).unwrap_or(Weight::MAX),
            });
        }
        services.insert(
            spec.name.clone(),
            ServiceEntry::new(spec.clone(), version, ServiceRole::Current),
        );
    }
    let mut templates = BTreeMap::new();
    templates.insert(version, template);
    App {
        name: name.to_string(),
        domain: domain.to_string(),
        version,
        templates,
        services,
        weights,
        release: None,
    }
}

/// Applies `command` to `app`. On refusal, nothing changed.
pub fn step(app: &App, command: Command) -> Result<(App, Vec<Effect>), EngineError> {
    match command {
        Command::StartRelease {
            template,
            version,
            strategy,
            release_id,
            now_ms,
            plan,
        } => start_release(app, template, version, strategy, release_id, now_ms, plan),
        Command::SetWeights { route, weights } => {
            set_weights(app, &resolve_route(app, &route)?, &weights)
        }
        Command::Switch { route } => switch(app, &resolve_route(app, &route)?),
        Command::Confirm { switch } => confirm(app, switch),
        Command::Rollback => rollback(app, None),
        Command::Abort { reason } => rollback(app, Some(format!("aborted: {reason}"))),
        Command::Promote { full, now_ms } => progressive::promote(app, full, now_ms),
        Command::Pause => progressive::pause(app),
        Command::Resume { now_ms } => progressive::resume(app, now_ms),
        Command::Analysed {
            release_id,
            verdict,
            failure,
        } => Ok(match app.active_release() {
            Some(r) if r.id == release_id => progressive::analysed(app, verdict, failure),
            _ => (app.clone(), Vec::new()),
        }),
        Command::Tick { release_id, now_ms } => Ok(match app.active_release() {
            Some(r) if r.id == release_id => progressive::tick(app, now_ms),
            _ => (app.clone(), Vec::new()),
        }),
        Command::Ready { release_id, now_ms } => ready(app, release_id, now_ms),
        Command::Fail { release_id, reason } => fail(app, release_id, &reason),
    }
}

fn no_release(app: &App) -> EngineError {
    EngineError::conflict(
        format!("app {} has no release in progress", app.name),
        "start one with `turnout release FILE`",
    )
}

/// What of a progressive plan this server does not run yet: refused, so
/// that nothing runs as less than the plan says.
fn unsupported(plan: &turnout_spec::ReleasePlan) -> Result<(), EngineError> {
    if let Some(gate) = &plan.analysis.prometheus
        && let Err(e) = crate::prometheus::query_uri(&gate.url, &gate.query)
    {
        return Err(EngineError::invalid(
            format!("analysis.prometheus.url: {e}"),
            "give the Prometheus server's base URL, e.g. `url: http://prometheus:9090`; nothing was changed",
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn start_release(
    app: &App,
    template: Template,
    version: u32,
    strategy: Strategy,
    release_id: i64,
    now_ms: i64,
    plan: Option<Box<(turnout_spec::ReleaseBlock, turnout_spec::ReleasePlan)>>,
) -> Result<(App, Vec<Effect>), EngineError> {
    let progress = match (strategy.is_progressive(), plan) {
        (false, _) => None,
        (true, None) => {
            return Err(EngineError::invalid(
                format!("a {strategy} release needs its plan"),
                "give the plan (the API's `plan`, the template's x-turnout.release block)",
            ));
        }
        (true, Some(given)) => {
            let (overrides, plan) = *given;
            unsupported(&plan)?;
            Some(Progress {
                overrides,
                plan,
                step: None,
                step_started_ms: now_ms,
                paused: None,
                scaling: false,
                passed: false,
            })
        }
    };
    if let Some(current) = app.active_release() {
        return Err(EngineError::conflict(
            format!(
                "release {} of app {} is {}; one release at a time",
                current.id, app.name, current.state
            ),
            "confirm it (`turnout confirm`) or roll it back (`turnout rollback`) first",
        ));
    }
    let old = app.template().ok_or_else(|| {
        EngineError::not_found(
            format!("app {} has no template version {}", app.name, app.version),
            "deploy the app again",
        )
    })?;
    let diff = turnout_spec::diff(old, &template, &app.domain);
    let against_old = progress.as_ref().map_or_else(Vec::new, |p| {
        p.plan.check_release(old, &template, &app.domain)
    });
    if let Some(problem) = diff.check(strategy).into_iter().chain(against_old).next() {
        return Err(EngineError::invalid(
            problem.message,
            problem.hint.unwrap_or_default(),
        ));
    }
    let mut next = app.clone();
    let mut weights = app.weights.clone();
    for s in &diff.services {
        let role = match s.role {
            Role::Unchanged => ServiceRole::Unchanged,
            Role::Old => ServiceRole::Old,
            Role::New => ServiceRole::New,
            Role::Changed => ServiceRole::Changed,
        };
        match s.role {
            Role::Old => {
                if let Some(entry) = next.services.get_mut(&s.name) {
                    entry.role = role;
                }
            }
            Role::Unchanged | Role::Changed | Role::New => {
                let spec = template
                    .service(&s.name)
                    .expect("diff names services of the new template")
                    .clone();
                if s.role == Role::New {
                    for id in route_ids(&spec, &app.domain) {
                        let route = weights.entry(id).or_default();
                        // A new service joins a shared route at weight 0 in a
                        // blue-green release (the operator moves traffic); on a
                        // route of its own, or in a standard release, it takes
                        // traffic at once.
                        let shared = !route.is_empty();
                        let default = if shared && strategy != Strategy::Standard {
                            Weight::ZERO
                        } else {
                            Weight::MAX
                        };
                        route.push(RouteWeight {
                            service: spec.name.clone(),
                            weight: template_weight(&spec).unwrap_or(default),
                        });
                    }
                }
                next.services
                    .insert(s.name.clone(), ServiceEntry::new(spec, version, role));
            }
        }
    }
    next.templates.insert(version, template);
    next.version = version;
    next.weights = weights;
    next.release = Some(Release {
        id: release_id,
        strategy,
        state: ReleaseState::Deploying,
        from_version: app.version,
        to_version: version,
        reason: None,
        saved_weights: app.weights.clone(),
        started_at_ms: now_ms,
        progress,
    });
    let summary = summarize(&next);
    Ok((
        next,
        vec![event(
            "release-started",
            format!(
                "release {release_id} ({strategy}) from version {} to {version}: {summary}",
                app.version
            ),
        )],
    ))
}

fn summarize(app: &App) -> String {
    let names = |role: ServiceRole| -> Vec<&str> {
        app.services
            .values()
            .filter(|e| e.role == role)
            .map(ServiceEntry::name)
            .collect()
    };
    let mut parts = Vec::new();
    for (label, role) in [
        ("new", ServiceRole::New),
        ("old", ServiceRole::Old),
        ("changed", ServiceRole::Changed),
        ("unchanged", ServiceRole::Unchanged),
    ] {
        let list = names(role);
        if !list.is_empty() {
            parts.push(format!("{label} {}", list.join(", ")));
        }
    }
    parts.join("; ")
}

/// The weight a template gives a service (`turnout.route.weight`), which
/// the template layer has checked to be 0..=100.
fn template_weight(spec: &turnout_spec::Service) -> Option<Weight> {
    spec.settings.weight.and_then(Weight::new)
}

/// The route id `name` stands for: an id, or a bare prefix that is
/// unambiguous (`serviceb` for `serviceb.localhost`).
pub fn resolve_route(app: &App, name: &str) -> Result<String, EngineError> {
    let lower = name.to_ascii_lowercase();
    if app.weights.contains_key(&lower) {
        return Ok(lower);
    }
    let prefix = format!("{lower}.");
    let matches: Vec<&String> = app
        .weights
        .keys()
        .filter(|id| id.starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(EngineError::not_found(
            format!("app {} has no route {name:?}", app.name),
            format!(
                "routes: {}",
                app.weights.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        many => Err(EngineError::invalid(
            format!("route {name:?} is ambiguous"),
            format!(
                "name one of {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn route_weights<'a>(app: &'a App, route: &str) -> Result<&'a Vec<RouteWeight>, EngineError> {
    app.weights.get(route).ok_or_else(|| {
        EngineError::not_found(
            format!("app {} has no route {route:?}", app.name),
            format!(
                "routes: {}",
                app.weights.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

pub(crate) fn describe(weights: &[RouteWeight]) -> String {
    weights
        .iter()
        .map(|w| format!("{}={}", w.service, w.weight))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_weights(
    app: &App,
    route: &str,
    changes: &[(String, Weight)],
) -> Result<(App, Vec<Effect>), EngineError> {
    let current = route_weights(app, route)?;
    if changes.is_empty() {
        return Err(EngineError::invalid(
            "no weights given",
            format!("name services and weights, e.g. `turnout weights {route} SERVICE=100`"),
        ));
    }
    let mut updated = current.clone();
    for (service, weight) in changes {
        let Some(slot) = updated.iter_mut().find(|w| &w.service == service) else {
            return Err(EngineError::not_found(
                format!("service {service:?} is not on route {route}"),
                format!(
                    "services on {route}: {}",
                    current
                        .iter()
                        .map(|w| w.service.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        slot.weight = *weight;
    }
    if updated.iter().all(|w| w.weight == Weight::ZERO) {
        return Err(EngineError::invalid(
            format!("these weights would leave route {route} with no traffic target"),
            "raise another service's weight first (raise the new version before lowering the old one)",
        ));
    }
    let mut next = app.clone();
    let message = format!("{route}: {}", describe(&updated));
    next.weights.insert(route.to_string(), updated);
    Ok((next, vec![event("weights", message)]))
}

/// The weights of `route` after a switch, or why it cannot switch.
fn switched(app: &App, route: &str) -> Result<Vec<RouteWeight>, EngineError> {
    let current = route_weights(app, route)?;
    let role = |name: &str| app.services.get(name).map(|e| e.role);
    let has_new = current
        .iter()
        .any(|w| role(&w.service) == Some(ServiceRole::New));
    if app.active_release().is_some() && has_new {
        // In a release, switching moves the route to the new services.
        return Ok(current
            .iter()
            .map(|w| RouteWeight {
                service: w.service.clone(),
                weight: match role(&w.service) {
                    Some(ServiceRole::New) => Weight::MAX,
                    Some(ServiceRole::Old) => Weight::ZERO,
                    _ => w.weight,
                },
            })
            .collect());
    }
    match current.as_slice() {
        [a, b] if (a.weight == Weight::ZERO) != (b.weight == Weight::ZERO) => Ok(vec![
            RouteWeight {
                service: a.service.clone(),
                weight: if a.weight == Weight::ZERO {
                    Weight::MAX
                } else {
                    Weight::ZERO
                },
            },
            RouteWeight {
                service: b.service.clone(),
                weight: if b.weight == Weight::ZERO {
                    Weight::MAX
                } else {
                    Weight::ZERO
                },
            },
        ]),
        [_, _] => Err(EngineError::invalid(
            format!(
                "route {route} has no side to switch to: {}",
                describe(current)
            ),
            "switch flips a route whose traffic is all on one of its two services; set the weights instead",
        )),
        _ => Err(EngineError::invalid(
            format!("route {route} has {} services, not two", current.len()),
            "set the weights instead (`turnout weights ROUTE SERVICE=W ...`)",
        )),
    }
}

fn switch(app: &App, route: &str) -> Result<(App, Vec<Effect>), EngineError> {
    let updated = switched(app, route)?;
    let mut next = app.clone();
    let message = format!("{route} switched: {}", describe(&updated));
    next.weights.insert(route.to_string(), updated);
    Ok((next, vec![event("switch", message)]))
}

fn confirm(app: &App, switch_first: bool) -> Result<(App, Vec<Effect>), EngineError> {
    let release = app.active_release().ok_or_else(|| no_release(app))?;
    if release.state != ReleaseState::PendingConfirmation {
        return Err(EngineError::conflict(
            format!(
                "release {} is {}, not pending-confirmation",
                release.id, release.state
            ),
            "wait until every new instance is ready (`turnout status`), or roll back",
        ));
    }
    let mut next = app.clone();
    let mut effects = Vec::new();
    // Routes on which the new services carry no traffic: confirming would
    // remove every service that does.
    let idle: Vec<String> = app
        .weights
        .iter()
        .filter(|(_, ws)| {
            let news: Vec<&RouteWeight> = ws
                .iter()
                .filter(|w| app.services.get(&w.service).map(|e| e.role) == Some(ServiceRole::New))
                .collect();
            let others_live = ws.iter().any(|w| {
                w.weight > Weight::ZERO
                    && app.services.get(&w.service).map(|e| e.role) != Some(ServiceRole::Old)
                    && app.services.get(&w.service).map(|e| e.role) != Some(ServiceRole::New)
            });
            !news.is_empty() && news.iter().all(|w| w.weight == Weight::ZERO) && !others_live
        })
        .map(|(id, _)| id.clone())
        .collect();
    if !idle.is_empty() {
        if !switch_first {
            return Err(EngineError::conflict(
                format!(
                    "the new services of {} carry weight 0; confirming would leave {} without traffic",
                    idle.join(", "),
                    if idle.len() == 1 { "it" } else { "them" }
                ),
                format!(
                    "switch first (`turnout switch {}`) or confirm with --switch",
                    idle[0]
                ),
            ));
        }
        for route in &idle {
            let updated = switched(&next, route)?;
            effects.push(event(
                "switch",
                format!("{route} switched: {}", describe(&updated)),
            ));
            next.weights.insert(route.clone(), updated);
        }
    }
    let old = finish(&mut next, release.to_version);
    let id = release.id;
    effects.push(event(
        "release-confirmed",
        format!(
            "release {id} confirmed; removing {}",
            if old.is_empty() {
                "nothing".to_string()
            } else {
                old.join(", ")
            }
        ),
    ));
    Ok((next, effects))
}

/// Ends a release as confirmed: the old services and their weights go,
/// every role clears, only the released template stays. Returns the names
/// of the services removed.
pub(crate) fn finish(next: &mut App, to_version: u32) -> Vec<String> {
    let old: Vec<String> = next
        .services
        .values()
        .filter(|e| e.role == ServiceRole::Old)
        .map(|e| e.name().to_string())
        .collect();
    for name in &old {
        next.services.remove(name);
    }
    remove_from_weights(&mut next.weights, &old);
    for entry in next.services.values_mut() {
        entry.role = ServiceRole::Current;
    }
    next.templates.retain(|v, _| *v == to_version);
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::Confirmed;
    }
    old
}

fn remove_from_weights(weights: &mut Weights, services: &[String]) {
    for ws in weights.values_mut() {
        ws.retain(|w| !services.contains(&w.service));
    }
    weights.retain(|_, ws| !ws.is_empty());
}

/// Rolls the release back; `why` (an abort's reason) is recorded, as a
/// failed release's own reason is.
fn rollback(app: &App, why: Option<String>) -> Result<(App, Vec<Effect>), EngineError> {
    let release = app.active_release().ok_or_else(|| no_release(app))?;
    let mut next = app.clone();
    let from = release.from_version;
    let old_template = app.templates.get(&from).cloned().ok_or_else(|| {
        EngineError::not_found(
            format!("template version {from} of app {} is missing", app.name),
            "the store lost it; deploy the app again",
        )
    })?;
    let new: Vec<String> = next
        .services
        .values()
        .filter(|e| e.role == ServiceRole::New)
        .map(|e| e.name().to_string())
        .collect();
    for name in &new {
        next.services.remove(name);
    }
    // Changed and unchanged services go back to the old template's spec.
    for entry in next.services.values_mut() {
        if let Some(spec) = old_template.service(entry.name()) {
            *entry = ServiceEntry::new(spec.clone(), from, ServiceRole::Current);
        }
    }
    next.weights = release.saved_weights.clone();
    next.version = from;
    next.templates.retain(|v, _| *v == from);
    let id = release.id;
    // A failed release keeps why it failed.
    let reason = why.or_else(|| {
        (release.state == ReleaseState::Failed)
            .then(|| release.reason.clone())
            .flatten()
    });
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::RolledBack;
        r.reason.clone_from(&reason);
    }
    let mut message = format!(
        "release {id} rolled back; removing {}",
        if new.is_empty() {
            "nothing".to_string()
        } else {
            new.join(", ")
        }
    );
    if let Some(reason) = reason {
        message.push_str(&format!(" ({reason})"));
    }
    Ok((next, vec![event("release-rolled-back", message)]))
}

fn ready(app: &App, release_id: i64, now_ms: i64) -> Result<(App, Vec<Effect>), EngineError> {
    let Some(release) = app.active_release().filter(|r| r.id == release_id) else {
        // A late observation about a release that already moved on.
        return Ok((app.clone(), Vec::new()));
    };
    if release.progress.as_ref().is_some_and(|p| p.scaling) {
        return Ok(progressive::ready(app, now_ms));
    }
    if release.state != ReleaseState::Deploying {
        return Ok((app.clone(), Vec::new()));
    }
    if release.progress.is_some() {
        return Ok(progressive::ready(app, now_ms));
    }
    let mut next = app.clone();
    match release.strategy {
        // Progressive releases (with their plan) went to their first step
        // above.
        Strategy::BlueGreen | Strategy::Canary | Strategy::Gray | Strategy::AbTest => {
            if let Some(r) = next.release.as_mut() {
                r.state = ReleaseState::PendingConfirmation;
            }
            Ok((
                next,
                vec![event(
                    "release-ready",
                    format!(
                        "release {release_id}: every new instance is ready; pending-confirmation"
                    ),
                )],
            ))
        }
        Strategy::Standard => {
            // A standard release ends by itself: old services go, roles clear.
            finish(&mut next, release.to_version);
            Ok((
                next,
                vec![event(
                    "release-confirmed",
                    format!("release {release_id} (standard) done: every instance replaced"),
                )],
            ))
        }
    }
}

fn fail(app: &App, release_id: i64, reason: &str) -> Result<(App, Vec<Effect>), EngineError> {
    let Some(release) = app.active_release().filter(|r| r.id == release_id) else {
        return Ok((app.clone(), Vec::new()));
    };
    // A deploying release, or a promoted canary starting the rest of its
    // instances, fails when they never become ready.
    let scaling = release.progress.as_ref().is_some_and(|p| p.scaling);
    if release.state != ReleaseState::Deploying && !scaling {
        return Ok((app.clone(), Vec::new()));
    }
    // Recorded as `failed` first (DESIGN §2); the reconciler then rolls
    // the release back, and it ends as `rolled-back` with this reason.
    let reason = format!("failed: {reason}");
    let mut next = app.clone();
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::Failed;
        r.reason = Some(reason.clone());
    }
    Ok((
        next,
        vec![event(
            "release-failed",
            format!("release {release_id} {reason}; rolling back"),
        )],
    ))
}
