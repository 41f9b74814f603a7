//! The analysis of a running progressive release (DESIGN §8), fed from
//! the router's own figures: every window, the new version's and the
//! baseline's counters on the routes the release shares are read, the
//! window between two readings judged by [`crate::analysis::analyse`],
//! and the verdict handed to the state machine (`Command::Analysed`).
//! Pure but for the reading, which the reconciler does. With the plan's
//! Prometheus gate, a window that ends is judged once the query answered
//! ([`Outcome::Query`]), off the state lock; the sampler waits for it.

use std::time::Duration;

use turnout_api_types::AnalysisEntry;
use turnout_routing::ServiceFigures;

use crate::analysis::{Analysis, Gates, Outside, PrometheusGate, Snapshot, Window, analyse};
use crate::model::{App, ServiceRole};

/// How many checks a release keeps for its status (newest last).
const KEPT: usize = 50;

/// One release's analysis between two readings.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    /// The release and step the window belongs to.
    pub release_id: i64,
    pub step: usize,
    /// When the window started, unix ms, and the readings then.
    pub since_ms: i64,
    pub new: Snapshot,
    pub baseline: Snapshot,
    /// The checks of this release so far.
    pub entries: Vec<AnalysisEntry>,
    /// The window before this one waits for its outside query: no
    /// window ends until it is judged (one query at a time).
    pub querying: bool,
}

impl Sampler {
    /// Records a check.
    fn keep(&mut self, judged: &Analysis) {
        self.entries.push(judged.to_entry());
        if self.entries.len() > KEPT {
            self.entries.remove(0);
        }
    }
}

/// A window that ended and waits for the outside query's value to be
/// judged: its figures, taken when it ended.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub release_id: i64,
    pub step: usize,
    /// When the window ended, unix ms.
    pub at_ms: i64,
    pub new: Window,
    pub baseline: Window,
}

impl Ended {
    /// Judges the window with the query's outcome.
    pub fn judge(&self, gates: &Gates, outside: Outside<'_>) -> Analysis {
        analyse(self.at_ms, gates, &self.new, &self.baseline, outside)
    }
}

/// Records `judged`, the verdict of `ended`, in the sampler waiting for
/// it. False, and nothing recorded, when the sampler moved on meanwhile
/// (another release or step): the verdict is about traffic that no longer
/// decides anything.
pub(crate) fn settle(sampler: Option<&mut Sampler>, ended: &Ended, judged: &Analysis) -> bool {
    match sampler {
        Some(s) if s.release_id == ended.release_id && s.step == ended.step && s.querying => {
            s.querying = false;
            s.keep(judged);
            true
        }
        _ => false,
    }
}

/// The gates of a plan's analysis block, as `analyse` takes them.
pub(crate) fn gates(plan: &turnout_spec::plan::Analysis) -> Gates {
    Gates {
        min_requests: plan.min_requests,
        max_error_rate: plan.max_error_rate.map(|r| r.fraction()),
        max_error_increase: plan.max_error_increase.map(|r| r.fraction()),
        max_p99: plan.max_p99.map(|m| Duration::from_millis(m.0)),
        max_p99_increase: plan.max_p99_increase.map(|m| Duration::from_millis(m.0)),
        prometheus: plan.prometheus.as_ref().map(|p| PrometheusGate {
            query: p.query.clone(),
            max: p.max.0,
        }),
    }
}

/// The new version's and the baseline's cumulative counters: summed over
/// the routes where the release's new services share with others (the
/// baseline: those others).
pub(crate) fn readings(app: &App, figures: &[ServiceFigures]) -> (Snapshot, Snapshot) {
    let role = |name: &str| app.services.get(name).map(|e| e.role);
    let shared = crate::report::shared_routes(app);
    let side = |new: bool| {
        crate::report::snapshot(
            figures
                .iter()
                .filter(|f| shared.iter().any(|r| **r == *f.route))
                .filter(|f| (role(&f.service) == Some(ServiceRole::New)) == new)
                .map(|f| &f.served),
        )
    };
    (side(true), side(false))
}

/// What one pass does with a release's sampler: start it (a new release or
/// step), or, once its window has passed, judge the window.
pub(crate) enum Outcome {
    /// Nothing to judge yet.
    Waiting,
    /// A window was judged.
    Judged(Analysis),
    /// A window ended; the plan's outside gate needs its query's value to
    /// judge it ([`Ended::judge`], then [`settle`]).
    Query(Ended),
}

/// Moves `sampler` on to `now_ms`. `read` gives the new version's and
/// the baseline's readings; it is called only when a window starts or
/// ends (reading copies the router's counters), not on every pass.
pub(crate) fn advance(
    sampler: &mut Option<Sampler>,
    release_id: i64,
    step: usize,
    window_ms: u64,
    gates: &Gates,
    now_ms: i64,
    read: impl FnOnce() -> (Snapshot, Snapshot),
) -> Outcome {
    if let Some(s) = sampler
        && s.release_id == release_id
        && s.step == step
        && (s.querying || now_ms - s.since_ms < window_ms as i64)
    {
        return Outcome::Waiting;
    }
    let (new, baseline) = read();
    let fresh = |entries| Sampler {
        release_id,
        step,
        since_ms: now_ms,
        new: new.clone(),
        baseline: baseline.clone(),
        entries,
        querying: false,
    };
    match sampler {
        Some(s) if s.release_id == release_id && s.step == step => {
            let ended = Ended {
                release_id,
                step,
                at_ms: now_ms,
                new: Window::between(&s.new, &new),
                baseline: Window::between(&s.baseline, &baseline),
            };
            *s = fresh(std::mem::take(&mut s.entries));
            if gates.prometheus.is_some() {
                s.querying = true;
                return Outcome::Query(ended);
            }
            let judged = ended.judge(gates, Outside::Missing("no outside gate"));
            s.keep(&judged);
            Outcome::Judged(judged)
        }
        Some(s) if s.release_id == release_id => {
            let entries = std::mem::take(&mut s.entries);
            *s = fresh(entries);
            Outcome::Waiting
        }
        _ => {
            *sampler = Some(fresh(Vec::new()));
            Outcome::Waiting
        }
    }
}
