//! Moving releases on, each reconciler pass: the analysis checks of a
//! progressive release ([`crate::checks`]), a step whose pause ran out, a
//! deploying release whose new instances are all ready (`Ready`), one
//! that cannot succeed (`Fail`: a new instance's start error that starting
//! again cannot mend, or its ready deadline passed), and a failed one
//! rolled back.

use std::time::Instant;

use turnout_runtime::Runtime;
use turnout_store::now_millis;

use crate::controller::{ControlError, Controller, DataPlane, State};
use crate::model::{ReleaseState, ServiceRole};
use crate::plan::{Phase, release_ready};
use crate::reconciler::views;
use crate::step::Command;

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// Moves releases on: ready ones to the next state, late ones and
    /// those with a new instance that cannot start to failed, failed ones
    /// to rolled-back.
    pub(crate) fn advance_releases(&self, state: &mut State) -> Result<(), ControlError> {
        let now = Instant::now();
        let apps: Vec<String> = state.apps.keys().cloned().collect();
        for app_name in apps {
            let Some(release) = state.apps[&app_name].active_release().cloned() else {
                continue;
            };
            // A promoted canary starting the rest of its instances waits
            // for them as a deploying release does.
            let scaling = release.progress.as_ref().is_some_and(|p| p.scaling);
            if let Some(progress) = release.progress.as_ref().filter(|p| {
                p.plan.analysis.has_gates()
                    && !scaling
                    && (release.state == ReleaseState::Progressing
                        || p.paused == Some(crate::model::PauseReason::Inconclusive))
            }) && let Some(step) = progress.step
            {
                // Analysis: every window, the router's figures of the new
                // version and the baseline over the same window (and the
                // plan's Prometheus query, off the lock).
                self.check_release(state, &app_name, &release, step)?;
            }
            let release = match state.apps[&app_name].active_release() {
                Some(r) => r.clone(),
                None => continue,
            };
            if release.state == ReleaseState::Progressing && !scaling {
                // A step whose pause ran out moves on.
                self.apply(
                    state,
                    &app_name,
                    Command::Tick {
                        release_id: release.id,
                        now_ms: now_millis(),
                    },
                )?;
                continue;
            }
            if release.state != ReleaseState::Deploying && !scaling {
                continue;
            }
            let views = views(state, &app_name);
            let command = if release_ready(&state.apps[&app_name], &views) {
                Command::Ready {
                    release_id: release.id,
                    now_ms: now_millis(),
                }
            } else if let Some(reason) =
                cannot_start(state, &app_name).or_else(|| self.late(state, &app_name, now))
            {
                Command::Fail {
                    release_id: release.id,
                    reason,
                }
            } else {
                continue;
            };
            self.apply(state, &app_name, command)?;
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

    /// Why `app`'s release fails for being late: its ready deadline has
    /// passed (the new services named), if it has.
    fn late(&self, state: &State, app: &str, now: Instant) -> Option<String> {
        if state.deadlines.get(app).is_none_or(|d| *d > now) {
            return None;
        }
        let waiting: Vec<&str> = state.apps[app]
            .services
            .values()
            .filter(|e| starting(e.role))
            .map(|e| e.name())
            .collect();
        Some(format!(
            "new instances of {} not ready within {}s",
            waiting.join(", "),
            self.inner.settings.ready_deadline.as_secs()
        ))
    }
}

/// Whether a service in `role` is one a release starts (and waits for).
fn starting(role: ServiceRole) -> bool {
    matches!(role, ServiceRole::New | ServiceRole::Changed)
}

/// Why a new instance of `app`'s release cannot start (its last start
/// failed so that starting again cannot help), if one cannot.
fn cannot_start(state: &State, app: &str) -> Option<String> {
    let services = &state.apps.get(app)?.services;
    state
        .instances
        .iter()
        .filter(|((a, _), i)| {
            a == app
                && i.phase != Phase::Draining
                && services
                    .get(&i.record.service)
                    .is_some_and(|e| starting(e.role))
        })
        .find_map(|(_, i)| i.start_error.clone())
}
