//! The analysis of a progressive release (DESIGN §8): one check compares
//! the new version with the baseline (the old version) over the same
//! window of the router's own figures, against the plan's gates, and
//! gives a verdict with its reasons. Pure: the figures, the outside
//! metric's value and the time come in as arguments.

use std::fmt;
use std::time::Duration;

use turnout_api_types::{AnalysisEntry, VersionFigures};

use crate::histogram::Histogram;

/// The plan's default `min_requests`.
pub const DEFAULT_MIN_REQUESTS: u64 = 100;

/// One reading of a version's cumulative router counters (since the
/// router started counting its services).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx.
    pub errors: u64,
    /// Their latencies.
    pub latency: Histogram,
}

/// A version's figures over one window: the end snapshot minus the
/// start snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Requests answered in the window.
    pub requests: u64,
    /// Of those, answered with a 5xx (never more than `requests`).
    pub errors: u64,
    /// Their latencies.
    pub latency: Histogram,
    /// The counters went down during the window, so it counts from zero.
    pub reset: bool,
}

impl Window {
    /// The figures between two readings of the same counters.
    ///
    /// A counter that went down (the service was removed and added again,
    /// so the router counts it afresh), or a histogram whose bounds
    /// changed, means the counters restarted within the window: as
    /// Prometheus's `increase` does, the window then counts what the end
    /// reading holds, from zero, for every figure of the version at once
    /// (subtracting some counters and not others would pair errors with
    /// the wrong requests). `reset` says so.
    ///
    /// The router's counters are read one by one, so a reading can hold an
    /// error whose request is not counted yet: errors are capped at the
    /// requests.
    pub fn between(start: &Snapshot, end: &Snapshot) -> Window {
        let latency = end.latency.since(&start.latency);
        match (
            end.requests.checked_sub(start.requests),
            end.errors.checked_sub(start.errors),
            latency,
        ) {
            (Some(requests), Some(errors), Some(latency)) => Window {
                requests,
                errors: errors.min(requests),
                latency,
                reset: false,
            },
            _ => Window {
                requests: end.requests,
                errors: end.errors.min(end.requests),
                latency: end.latency.clone(),
                reset: true,
            },
        }
    }

    /// The 5xx share, `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// What the status shows of the window.
    pub fn figures(&self) -> Figures {
        Figures {
            requests: self.requests,
            error_rate: self.error_rate(),
            p50_ms: self.latency.percentile(0.5),
            p99_ms: self.latency.percentile(0.99),
        }
    }
}

/// A version's figures in one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Requests in the window.
    pub requests: u64,
    /// The 5xx share (0..=1), `None` without requests.
    pub error_rate: Option<f64>,
    /// The median latency, ms (see [`Histogram::percentile`]).
    pub p50_ms: Option<f64>,
    /// The 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

impl Figures {
    fn to_dto(self) -> VersionFigures {
        VersionFigures {
            requests: self.requests,
            error_rate: self.error_rate,
            p50_ms: self.p50_ms,
            p99_ms: self.p99_ms,
        }
    }
}

/// An outside metric's gate (`analysis.prometheus`): the engine runs the
/// instant query and passes its value to [`analyse`].
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusGate {
    /// The query, as the plan has it (named in the reasons).
    pub query: String,
    /// A value above this fails the check.
    pub max: f64,
}

/// What the outside metric's query gave a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outside<'a> {
    /// The query's single value.
    Value(f64),
    /// No usable value, and why (`connection refused`, `the query
    /// returned no series`): the gate cannot be judged.
    Missing(&'a str),
}

/// `Some(value)`, or `None`: the query gave no value.
impl From<Option<f64>> for Outside<'static> {
    fn from(value: Option<f64>) -> Self {
        value.map_or(Outside::Missing("the query gave none"), Outside::Value)
    }
}

/// The gates of a plan's `analysis` block. Every gate is off unless set;
/// a figure equal to its limit passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    /// Fewer requests to the new version in a window: inconclusive.
    pub min_requests: u64,
    /// The new version's 5xx share, 0..=1.
    pub max_error_rate: Option<f64>,
    /// The new version's 5xx share minus the baseline's, 0..=1.
    pub max_error_increase: Option<f64>,
    /// The new version's p99.
    pub max_p99: Option<Duration>,
    /// The new version's p99 minus the baseline's.
    pub max_p99_increase: Option<Duration>,
    /// An outside metric's limit.
    pub prometheus: Option<PrometheusGate>,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_requests: DEFAULT_MIN_REQUESTS,
            max_error_rate: None,
            max_error_increase: None,
            max_p99: None,
            max_p99_increase: None,
            prometheus: None,
        }
    }
}

/// A gate, by the name the plan spells it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// `min_requests`.
    MinRequests,
    /// `max_error_rate`.
    MaxErrorRate,
    /// `max_error_increase`.
    MaxErrorIncrease,
    /// `max_p99`.
    MaxP99,
    /// `max_p99_increase`.
    MaxP99Increase,
    /// `prometheus`.
    Prometheus,
}

impl Gate {
    /// The plan's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::MinRequests => "min_requests",
            Gate::MaxErrorRate => "max_error_rate",
            Gate::MaxErrorIncrease => "max_error_increase",
            Gate::MaxP99 => "max_p99",
            Gate::MaxP99Increase => "max_p99_increase",
            Gate::Prometheus => "prometheus",
        }
    }

    /// Whether it compares the new version with the baseline.
    pub fn is_relative(self) -> bool {
        matches!(self, Gate::MaxErrorIncrease | Gate::MaxP99Increase)
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every gate that was judged held.
    Pass,
    /// A gate was crossed: the release rolls back.
    Fail,
    /// Not enough evidence (too few requests, a missing value): the
    /// release pauses; never promotes, never rolls back.
    Inconclusive,
}

impl Verdict {
    /// The DESIGN string: `pass`, `fail`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a gate found, when it did not simply hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finding {
    /// The figure is over the limit.
    Crossed,
    /// The gate could not be judged.
    Unknown,
    /// The gate was not judged (a relative gate while the baseline got
    /// no requests).
    Skipped,
}

/// One line of a check's reasons: `<gate>: <detail>`, for example
/// `max_p99_increase: p99 +212 ms > 100 ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The gate, as the plan spells it.
    pub gate: Gate,
    /// What it found.
    pub finding: Finding,
    /// What was measured against what.
    pub detail: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.gate, self.detail)
    }
}

/// One check's result, as the status lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// When the window ended, unix ms.
    pub at_ms: i64,
    /// The verdict.
    pub verdict: Verdict,
    /// The new version's figures.
    pub new: Figures,
    /// The baseline's figures.
    pub baseline: Figures,
    /// Gates crossed, gates that could not be judged, gates skipped.
    pub reasons: Vec<Reason>,
}

impl Analysis {
    /// For a failed check, the release's reason after `failed: `:
    /// `analysis: ` and the crossed gates, `; `-separated.
    pub fn failure(&self) -> Option<String> {
        (self.verdict == Verdict::Fail).then(|| {
            let crossed: Vec<String> = self
                .reasons
                .iter()
                .filter(|r| r.finding == Finding::Crossed)
                .map(Reason::to_string)
                .collect();
            format!("analysis: {}", crossed.join("; "))
        })
    }

    /// The status JSON entry (DESIGN §8).
    pub fn to_entry(&self) -> AnalysisEntry {
        AnalysisEntry {
            at: self.at_ms,
            verdict: self.verdict.to_string(),
            new: self.new.to_dto(),
            baseline: self.baseline.to_dto(),
            reasons: self.reasons.iter().map(Reason::to_string).collect(),
        }
    }
}

impl From<&Analysis> for AnalysisEntry {
    fn from(a: &Analysis) -> Self {
        a.to_entry()
    }
}

/// Judges one window. `at_ms` is when it ended; `outside` is what
/// `gates.prometheus`'s query gave (`Some(value)`, `None`, or an
/// [`Outside`] saying why there is no value).
///
/// Fewer than `min_requests` requests to the new version: inconclusive,
/// and no gate is judged (too little evidence to pass or to fail). When
/// the baseline got no requests (the step at 100 %), the relative gates
/// are skipped (listed as such) and the absolute ones still apply.
/// Otherwise a crossed gate fails the check; a gate that cannot be judged
/// (no value from the outside metric, no latency figures) makes it
/// inconclusive unless another gate failed.
pub fn analyse<'a>(
    at_ms: i64,
    gates: &Gates,
    new: &Window,
    baseline: &Window,
    outside: impl Into<Outside<'a>>,
) -> Analysis {
    let outside = outside.into();
    let newf = new.figures();
    let basef = baseline.figures();
    let mut reasons = Vec::new();
    if new.requests < gates.min_requests {
        reasons.push(Reason {
            gate: Gate::MinRequests,
            finding: Finding::Unknown,
            detail: format!("{} requests < {}", new.requests, gates.min_requests),
        });
        return Analysis {
            at_ms,
            verdict: Verdict::Inconclusive,
            new: newf,
            baseline: basef,
            reasons,
        };
    }
    let mut note = |gate, finding, detail: String| {
        reasons.push(Reason {
            gate,
            finding,
            detail,
        })
    };
    let has_baseline = baseline.requests > 0;
    // `new.requests >= min_requests`, which may be 0.
    let new_rate = newf.error_rate.unwrap_or(0.0);
    let base_rate = basef.error_rate.unwrap_or(0.0);

    if let Some(max) = gates.max_error_rate
        && new_rate > max
    {
        let (v, l) = pair(new_rate * 100.0, max * 100.0, 2);
        note(Gate::MaxErrorRate, Finding::Crossed, format!("{v}% > {l}%"));
    }
    if let Some(max) = gates.max_error_increase {
        let rise = new_rate - base_rate;
        if !has_baseline {
            note(Gate::MaxErrorIncrease, Finding::Skipped, no_baseline());
        } else if rise > max {
            let (v, l) = pair(rise * 100.0, max * 100.0, 2);
            note(
                Gate::MaxErrorIncrease,
                Finding::Crossed,
                format!("error rate {}% > {l}%", signed(&v)),
            );
        }
    }
    if let Some(max) = gates.max_p99 {
        let max = ms(max);
        match newf.p99_ms {
            None => note(Gate::MaxP99, Finding::Unknown, no_latency("new version")),
            Some(p99) if p99 > max => {
                let (v, l) = pair(p99, max, 1);
                note(
                    Gate::MaxP99,
                    Finding::Crossed,
                    format!("p99 {v} ms > {l} ms"),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(max) = gates.max_p99_increase {
        let max = ms(max);
        match (has_baseline, newf.p99_ms, basef.p99_ms) {
            (false, _, _) => note(Gate::MaxP99Increase, Finding::Skipped, no_baseline()),
            (true, None, _) => note(
                Gate::MaxP99Increase,
                Finding::Unknown,
                no_latency("new version"),
            ),
            (true, _, None) => note(
                Gate::MaxP99Increase,
                Finding::Unknown,
                no_latency("baseline"),
            ),
            (true, Some(n), Some(b)) if n - b > max => {
                let (v, l) = pair(n - b, max, 1);
                note(
                    Gate::MaxP99Increase,
                    Finding::Crossed,
                    format!("p99 {} ms > {l} ms", signed(&v)),
                );
            }
            _ => {}
        }
    }
    if let Some(gate) = &gates.prometheus {
        let missing = |why: &str| format!("no value for {} ({why})", gate.query);
        match outside {
            // Prometheus answers NaN for 0/0: no value either.
            Outside::Value(value) if value.is_nan() => note(
                Gate::Prometheus,
                Finding::Unknown,
                missing("the query gave NaN"),
            ),
            Outside::Value(value) if value > gate.max => note(
                Gate::Prometheus,
                Finding::Crossed,
                format!("{} = {value} > {}", gate.query, gate.max),
            ),
            Outside::Value(_) => {}
            Outside::Missing(why) => note(Gate::Prometheus, Finding::Unknown, missing(why)),
        }
    }

    let verdict = if reasons.iter().any(|r| r.finding == Finding::Crossed) {
        Verdict::Fail
    } else if reasons.iter().any(|r| r.finding == Finding::Unknown) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    Analysis {
        at_ms,
        verdict,
        new: newf,
        baseline: basef,
        reasons,
    }
}

fn no_baseline() -> String {
    "skipped, the baseline got no requests".to_string()
}

fn no_latency(whose: &str) -> String {
    format!("no latency figures for the {whose}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A figure and its limit as text: at least `decimals` decimals, trailing
/// zeros dropped, and more decimals (up to 6) while the two would read
/// the same, so a reason never says `1% > 1%`.
fn pair(value: f64, limit: f64, decimals: usize) -> (String, String) {
    let mut d = decimals;
    loop {
        let (v, l) = (trimmed(value, d), trimmed(limit, d));
        if v != l || d >= 6 {
            return (v, l);
        }
        d += 1;
    }
}

fn trimmed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `+` before a figure that has no sign.
fn signed(v: &str) -> String {
    if v.starts_with('-') {
        v.to_string()
    } else {
        format!("+{v}")
    }
}

#[cfg(test)]
mod tests;
