//! The steps of a progressive release (DESIGN §8): gray's steps and the
//! canary's share and promotion, moved on by the pause timer and by the
//! operator's verbs (promote, pause, resume, abort). Pure, like the rest
//! of `step`: the time comes in with each command.
//!
//! A step sets, on every route the release shares (a route with new
//! services and others), the new services' weights so that together they
//! get the step's share; the others keep the rest in the proportion they
//! had before the release. Routes with only new services keep their
//! weights.

use turnout_routing::Weight;
use turnout_spec::plan::Pause;
use turnout_spec::{OnSuccess, Strategy};

use crate::error::EngineError;
use crate::model::{App, PauseReason, Progress, ReleaseState, ServiceRole, Weights};
use crate::step::{Effect, event};

/// The new version's share at each stage: gray's steps; a canary's share,
/// then 100 % once promoted (with every instance); an A/B test's share.
pub fn stages(progress: &Progress) -> Vec<u8> {
    let mut stages = progress.shares();
    if progress.plan.strategy == Strategy::Canary && stages.last() != Some(&100) {
        stages.push(100);
    }
    stages
}

/// How many instances of a new service the release wants now: a canary
/// runs `canary.scale` of them until it is promoted to its last stage.
pub fn wanted_scale(app: &App, service: &str, scale: u32) -> u32 {
    let Some(release) = app.active_release() else {
        return scale;
    };
    let Some(progress) = &release.progress else {
        return scale;
    };
    let new = app.services.get(service).map(|e| e.role) == Some(ServiceRole::New);
    let full = progress
        .step
        .is_some_and(|s| s + 1 >= stages(progress).len());
    if progress.plan.strategy == Strategy::Canary && new && !full && !progress.scaling {
        progress.plan.canary.scale.min(scale)
    } else {
        scale
    }
}

/// `app`'s weights with the new version at `share` percent of every route
/// the release shares.
pub fn weights_at(app: &App, saved: &Weights, share: u8) -> Weights {
    let role = |name: &str| app.services.get(name).map(|e| e.role);
    let mut out = app.weights.clone();
    for (route, ws) in out.iter_mut() {
        if !crate::report::is_shared(app, ws) {
            continue;
        }
        let new: Vec<usize> = (0..ws.len())
            .filter(|&i| role(&ws[i].service) == Some(ServiceRole::New))
            .collect();
        let before = |service: &str| {
            saved
                .get(route)
                .and_then(|s| s.iter().find(|w| w.service == service))
                .map_or(0, |w| u32::from(w.weight.get()))
        };
        let others: Vec<usize> = (0..ws.len()).filter(|i| !new.contains(i)).collect();
        let total: u32 = others.iter().map(|&i| before(&ws[i].service)).sum();
        let rest = 100 - u32::from(share);
        let mut given = 0;
        for (n, &i) in others.iter().enumerate() {
            let w = if n + 1 == others.len() {
                rest - given
            } else {
                (rest * before(&ws[i].service))
                    .checked_div(total)
                    .unwrap_or(rest / others.len() as u32)
            };
            given += w;
            ws[i].weight = weight(w);
        }
        let each = u32::from(share) / new.len() as u32;
        for (n, &i) in new.iter().enumerate() {
            let extra = if n == 0 {
                u32::from(share) - each * new.len() as u32
            } else {
                0
            };
            ws[i].weight = weight(each + extra);
        }
    }
    out
}

fn weight(w: u32) -> Weight {
    Weight::new(u8::try_from(w.min(100)).unwrap_or(100)).unwrap_or(Weight::MAX)
}

/// The weights of the routes a release shares (`route: a=90 b=10; ...`).
fn describe_shares(weights: &Weights) -> String {
    weights
        .iter()
        .filter(|(_, ws)| ws.len() > 1)
        .map(|(route, ws)| format!("{route}: {}", crate::step::describe(ws)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Starts stage `index` of the release in `next`: its weights, its pause.
fn enter(next: &mut App, index: usize, now_ms: i64) -> Vec<Effect> {
    let Some(release) = next.release.clone() else {
        return Vec::new();
    };
    let Some(progress) = release.progress.clone() else {
        return Vec::new();
    };
    let stages = stages(&progress);
    let share = stages[index];
    let weights = weights_at(next, &release.saved_weights, share);
    next.weights = weights;
    let until_promoted = progress.plan.pause == Pause::UntilPromoted;
    if let Some(r) = next.release.as_mut() {
        r.state = if until_promoted {
            ReleaseState::Paused
        } else {
            ReleaseState::Progressing
        };
        if let Some(p) = r.progress.as_mut() {
            p.step = Some(index);
            p.step_started_ms = now_ms;
            p.scaling = false;
            p.passed = false;
            p.paused = until_promoted.then_some(PauseReason::UntilPromoted);
        }
    }
    let mut message = format!(
        "release {}: step {} of {}, the new version at {share}% ({})",
        release.id,
        index + 1,
        stages.len(),
        describe_shares(&next.weights)
    );
    if until_promoted {
        message.push_str("; paused until promoted (`turnout promote`)");
    }
    vec![event("release-step", message)]
}

/// Moves past the current stage: to the next one, to a canary's scale-up
/// before its last, or, after the last, to `pending-confirmation` (or
/// confirmed, with `on_success: confirm`). `to_last`: straight to the last
/// stage (`promote --full`).
fn advance(app: &App, to_last: bool, now_ms: i64) -> (App, Vec<Effect>) {
    let mut next = app.clone();
    let release = app.release.clone().expect("an active release");
    let progress = release.progress.clone().expect("a progressive release");
    let stages = stages(&progress);
    let current = progress.step.unwrap_or(0);
    let last = stages.len() - 1;
    if current >= last {
        // `--full` is 100 % for the new version, also when the last stage
        // is less (an A/B test's one stage is its split).
        if to_last && stages[last] < 100 {
            next.weights = weights_at(&next, &release.saved_weights, 100);
        }
        return complete(next, &progress);
    }
    let target = if to_last { last } else { current + 1 };
    let scales_up = progress.plan.strategy == Strategy::Canary
        && target == last
        && next.services.values().any(|e| {
            e.role == ServiceRole::New && progress.plan.canary.scale < e.spec.settings.scale
        });
    if scales_up {
        // Every new instance first; the reconciler's ready check then
        // brings the last stage (`ready`).
        if let Some(r) = next.release.as_mut() {
            r.state = ReleaseState::Progressing;
            if let Some(p) = r.progress.as_mut() {
                p.scaling = true;
                p.paused = None;
            }
        }
        let message = format!(
            "release {}: promoted; starting every new instance before the last step",
            release.id
        );
        return (next, vec![event("release-promoted", message)]);
    }
    let effects = enter(&mut next, target, now_ms);
    (next, effects)
}

/// After the last stage.
fn complete(mut next: App, progress: &Progress) -> (App, Vec<Effect>) {
    let release = next.release.clone().expect("an active release");
    if progress.plan.on_success == OnSuccess::Confirm {
        let old = crate::step::finish(&mut next, release.to_version);
        let message = format!(
            "release {} done: every step passed; confirmed, removing {}",
            release.id,
            if old.is_empty() {
                "nothing".to_string()
            } else {
                old.join(", ")
            }
        );
        return (next, vec![event("release-confirmed", message)]);
    }
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::PendingConfirmation;
        if let Some(p) = r.progress.as_mut() {
            p.paused = None;
        }
    }
    let message = format!(
        "release {}: every step passed; pending-confirmation (`turnout confirm` or `turnout rollback`)",
        release.id
    );
    (next, vec![event("release-ready", message)])
}

/// Every new instance is ready (the reconciler's check): the first stage
/// starts, or, after a canary's scale-up, the last.
pub fn ready(app: &App, now_ms: i64) -> (App, Vec<Effect>) {
    let mut next = app.clone();
    let progress = app
        .release
        .as_ref()
        .and_then(|r| r.progress.clone())
        .expect("a progressive release");
    let index = match progress.step {
        None => 0,
        Some(_) if progress.scaling => stages(&progress).len() - 1,
        Some(_) => return (next, Vec::new()),
    };
    let effects = enter(&mut next, index, now_ms);
    (next, effects)
}

/// The reconciler's clock: a stage whose pause has run out moves on.
pub fn tick(app: &App, now_ms: i64) -> (App, Vec<Effect>) {
    let Some(release) = app.active_release() else {
        return (app.clone(), Vec::new());
    };
    let Some(progress) = &release.progress else {
        return (app.clone(), Vec::new());
    };
    if release.state != ReleaseState::Progressing || progress.scaling || progress.step.is_none() {
        return (app.clone(), Vec::new());
    }
    // With gates, a step moves on only once a check of it passed.
    let judged = !progress.plan.analysis.has_gates() || progress.passed;
    match progress.plan.pause {
        Pause::For(d) if judged && now_ms - progress.step_started_ms >= d.0 as i64 => {
            advance(app, false, now_ms)
        }
        _ => (app.clone(), Vec::new()),
    }
}

/// One analysis window's verdict (see `Command::Analysed`).
pub fn analysed(
    app: &App,
    verdict: crate::analysis::Verdict,
    failure: Option<String>,
) -> (App, Vec<Effect>) {
    use crate::analysis::Verdict;
    let Some(release) = app.active_release() else {
        return (app.clone(), Vec::new());
    };
    let Some(progress) = &release.progress else {
        return (app.clone(), Vec::new());
    };
    let inconclusive_pause =
        release.state == ReleaseState::Paused && progress.paused == Some(PauseReason::Inconclusive);
    if release.state != ReleaseState::Progressing && !inconclusive_pause {
        return (app.clone(), Vec::new());
    }
    let mut next = app.clone();
    let id = release.id;
    let r = next.release.as_mut().expect("an active release");
    let p = r.progress.as_mut().expect("a progressive release");
    match verdict {
        Verdict::Fail => {
            // Recorded as `failed` (DESIGN §8); the reconciler then rolls
            // the release back, and it ends `rolled-back` with the reason.
            let reason = format!("failed: {}", failure.unwrap_or_else(|| "analysis".into()));
            r.state = ReleaseState::Failed;
            r.reason = Some(reason.clone());
            p.paused = None;
            (
                next,
                vec![event(
                    "release-failed",
                    format!("release {id} {reason}; rolling back"),
                )],
            )
        }
        Verdict::Inconclusive if !inconclusive_pause => {
            r.state = ReleaseState::Paused;
            p.paused = Some(PauseReason::Inconclusive);
            let message = format!(
                "release {id} paused: the analysis is inconclusive (its check's reasons say why); it resumes by itself on the first passing window"
            );
            (next, vec![event("release-paused", message)])
        }
        Verdict::Inconclusive => (app.clone(), Vec::new()),
        Verdict::Pass => {
            p.passed = true;
            if inconclusive_pause {
                r.state = ReleaseState::Progressing;
                p.paused = None;
                let message = format!("release {id} resumed: the analysis passed");
                return (next, vec![event("release-resumed", message)]);
            }
            (next, Vec::new())
        }
    }
}

fn progressive<'a>(
    app: &'a App,
    verb: &str,
) -> Result<(&'a crate::model::Release, &'a Progress), EngineError> {
    let release = app.active_release().ok_or_else(|| {
        EngineError::conflict(
            format!("app {} has no release in progress to {verb}", app.name),
            "start one with `turnout release FILE --strategy gray` (or canary)",
        )
    })?;
    let progress = release.progress.as_ref().ok_or_else(|| {
        EngineError::conflict(
            format!(
                "release {} is a {} release; only canary, gray and A/B-test releases {verb}",
                release.id, release.strategy
            ),
            "move its weights (`turnout weights`), then confirm or roll back",
        )
    })?;
    Ok((release, progress))
}

/// `promote` (`--full`: straight to the last stage).
pub fn promote(app: &App, full: bool, now_ms: i64) -> Result<(App, Vec<Effect>), EngineError> {
    let (release, progress) = progressive(app, "promote")?;
    match release.state {
        ReleaseState::Progressing | ReleaseState::Paused if !progress.scaling => {}
        ReleaseState::Progressing | ReleaseState::Paused => {
            return Err(EngineError::conflict(
                format!("release {} is starting its new instances", release.id),
                "wait until they are ready (`turnout status`)",
            ));
        }
        ReleaseState::Deploying => {
            return Err(EngineError::conflict(
                format!(
                    "release {} is deploying: its new instances are not ready yet",
                    release.id
                ),
                "wait until they are ready (`turnout status`); the first step starts then",
            ));
        }
        other => {
            return Err(EngineError::conflict(
                format!(
                    "release {} is {other}; there is no step to promote",
                    release.id
                ),
                "confirm it (`turnout confirm`) or roll it back (`turnout rollback`)",
            ));
        }
    }
    let (next, mut effects) = advance(app, full, now_ms);
    effects.insert(
        0,
        event(
            "release-promoted",
            format!(
                "release {} promoted{} by the operator",
                release.id,
                if full { " to 100%" } else { "" }
            ),
        ),
    );
    Ok((next, effects))
}

/// `pause`: the stage holds until `resume` or `promote`.
pub fn pause(app: &App) -> Result<(App, Vec<Effect>), EngineError> {
    let (release, _) = progressive(app, "pause")?;
    if release.state != ReleaseState::Progressing {
        return Err(EngineError::conflict(
            format!(
                "release {} is {}, not progressing",
                release.id, release.state
            ),
            "only a running step pauses; `turnout resume` goes on after a pause",
        ));
    }
    let mut next = app.clone();
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::Paused;
        if let Some(p) = r.progress.as_mut() {
            p.paused = Some(PauseReason::Manual);
        }
    }
    let message = format!("release {} paused by the operator", release.id);
    Ok((next, vec![event("release-paused", message)]))
}

/// `resume`: a paused stage runs again, its pause counted from now.
pub fn resume(app: &App, now_ms: i64) -> Result<(App, Vec<Effect>), EngineError> {
    let (release, progress) = progressive(app, "resume")?;
    if release.state != ReleaseState::Paused {
        return Err(EngineError::conflict(
            format!("release {} is {}, not paused", release.id, release.state),
            "`turnout pause` holds a running step; `turnout promote` moves to the next",
        ));
    }
    if progress.paused == Some(PauseReason::UntilPromoted) {
        return Err(EngineError::conflict(
            format!(
                "release {} waits to be promoted (its plan's pause is until-promoted)",
                release.id
            ),
            "promote it (`turnout promote`) or abort it (`turnout abort`)",
        ));
    }
    let mut next = app.clone();
    if let Some(r) = next.release.as_mut() {
        r.state = ReleaseState::Progressing;
        if let Some(p) = r.progress.as_mut() {
            p.paused = None;
            p.step_started_ms = now_ms;
        }
    }
    let message = format!("release {} resumed by the operator", release.id);
    Ok((next, vec![event("release-resumed", message)]))
}
