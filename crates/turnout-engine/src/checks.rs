//! The reconciler's analysis checks of a progressive release (DESIGN §8):
//! every window it reads the router's figures (`sampling`), judges the
//! window, and hands the verdict to the state machine
//! (`Command::Analysed`). A plan's Prometheus gate is queried off the
//! state lock: the window's figures are taken when it ends, a task runs
//! the bounded query and judges the window when the answer (or its
//! absence) is in, then takes the lock again to hand the verdict on.
//!
//! Each check is an `analysis` event with the status's `AnalysisEntry`
//! (verdict, both versions' figures, reasons) as its data, sent to the
//! event stream. Only the checks that change the verdict are stored (see
//! ARCHITECTURE.md): a release judged every second would otherwise fill
//! the history, which keeps `EVENTS_KEPT` events per app, with passes.

use std::time::Duration;

use turnout_runtime::Runtime;
use turnout_store::{Change, EventRecord, NewEvent, now_millis};

use crate::analysis::{Analysis, Outside};
use crate::controller::{ControlError, Controller, DataPlane, State};
use crate::model::Release;
use crate::sampling::{self, Outcome};
use crate::step::Command;

/// The kind of a check's event.
pub const CHECK_EVENT: &str = "analysis";

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// Moves the analysis of `app`'s active progressive `release`, at its
    /// `step`, on by one reconcile pass (under the state lock).
    pub(crate) fn check_release(
        &self,
        state: &mut State,
        app_name: &str,
        release: &Release,
        step: usize,
    ) -> Result<(), ControlError> {
        let Some(progress) = release.progress.as_ref() else {
            return Ok(());
        };
        let gates = sampling::gates(&progress.plan.analysis);
        let mut sampler = state.analysis.remove(app_name);
        let app = &state.apps[app_name];
        let read = || sampling::readings(app, &self.inner.plane.figures(app_name));
        let outcome = sampling::advance(
            &mut sampler,
            release.id,
            step,
            progress.plan.analysis.window.0,
            &gates,
            now_millis(),
            read,
        );
        if let Some(s) = sampler {
            state.analysis.insert(app_name.to_string(), s);
        }
        match outcome {
            Outcome::Waiting => Ok(()),
            Outcome::Judged(judged) => self.judged(state, app_name, release.id, step, &judged),
            Outcome::Query(ended) => {
                let Some(gate) = progress.plan.analysis.prometheus.clone() else {
                    return Ok(());
                };
                let timeout = crate::prometheus::timeout_for(Duration::from_millis(
                    progress.plan.analysis.window.0,
                ));
                let controller = self.clone();
                let app = app_name.to_string();
                tokio::spawn(async move {
                    let value = crate::prometheus::instant(&gate.url, &gate.query, timeout).await;
                    let why = value.as_ref().err().map(ToString::to_string);
                    let outside = match (&value, &why) {
                        (Ok(v), _) => Outside::Value(*v),
                        (Err(_), why) => Outside::Missing(why.as_deref().unwrap_or_default()),
                    };
                    let judged = ended.judge(&gates, outside);
                    let mut state = controller.inner.state.lock().await;
                    if !sampling::settle(state.analysis.get_mut(&app), &ended, &judged) {
                        tracing::debug!(app = %app, "an analysis check outlived its step; dropped");
                        return;
                    }
                    if let Err(e) =
                        controller.judged(&mut state, &app, ended.release_id, ended.step, &judged)
                    {
                        tracing::error!(app = %app, error = %e, "cannot record an analysis check");
                    }
                    drop(state);
                    controller.inner.wake.notify_one();
                });
                Ok(())
            }
        }
    }

    /// A judged window: its event, then its verdict to the state machine.
    fn judged(
        &self,
        state: &mut State,
        app: &str,
        release_id: i64,
        step: usize,
        judged: &Analysis,
    ) -> Result<(), ControlError> {
        tracing::info!(app = %app, verdict = %judged.verdict, reasons = ?judged.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(), "analysis");
        let event = check_event(app, release_id, step, judged);
        // The check is already in the sampler's entries: stored when its
        // verdict differs from the check before it (or it is the first).
        let entries = state.analysis.get(app).map_or(&[][..], |s| &s.entries[..]);
        let changed = match entries {
            [.., before, _] => before.verdict != judged.verdict.as_str(),
            _ => true,
        };
        if changed {
            self.commit(
                state,
                &Change {
                    events: vec![event],
                    ..Change::default()
                },
            )?;
        } else {
            // Live only: id 0, which the event stream sends without an
            // SSE id (nothing to resume from) and the store never holds.
            let _ = self.inner.events.send(EventRecord {
                id: 0,
                at: now_millis(),
                event,
            });
        }
        self.apply(
            state,
            app,
            Command::Analysed {
                release_id,
                verdict: judged.verdict,
                failure: judged.failure(),
            },
        )?;
        Ok(())
    }
}

/// A check's event: `release 3, step 1: fail (new 48 requests, 52% 5xx,
/// p99 3 ms; baseline 190 requests, 0% 5xx, p99 2 ms): max_error_rate: 52%
/// > 5%`, its data the status's `AnalysisEntry` with `release_id` and
/// `step` (0-based, as the status's `step.index`).
fn check_event(app: &str, release_id: i64, step: usize, judged: &Analysis) -> NewEvent {
    let figures = |f: &crate::analysis::Figures| {
        let mut out = format!("{} requests", f.requests);
        if let Some(r) = f.error_rate {
            out.push_str(&format!(", {:.1}% 5xx", r * 100.0));
        }
        if let Some(p) = f.p99_ms {
            out.push_str(&format!(", p99 {p:.0} ms"));
        }
        out
    };
    let mut message = format!(
        "release {release_id}, step {}: {} (new {}; baseline {})",
        step + 1,
        judged.verdict,
        figures(&judged.new),
        figures(&judged.baseline)
    );
    if !judged.reasons.is_empty() {
        let reasons: Vec<String> = judged.reasons.iter().map(ToString::to_string).collect();
        message.push_str(": ");
        message.push_str(&reasons.join("; "));
    }
    let mut data = serde_json::to_value(judged.to_entry()).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.insert("release_id".into(), release_id.into());
        map.insert("step".into(), step.into());
    }
    NewEvent {
        app: app.to_string(),
        kind: CHECK_EVENT.into(),
        message,
        data: Some(data),
    }
}
