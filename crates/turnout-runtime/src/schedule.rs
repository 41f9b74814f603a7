//! When to probe an instance, and what the results mean (DESIGN §4): the
//! first probe right after start (after `initial_delay_seconds` if set),
//! then every 100 ms until the first success, then at the interval (2 s by
//! default).
//!
//! Pure: the engine asks for the delay before the next probe, sleeps, runs
//! [`probe`](crate::probe()) and tells the schedule the result.

use std::fmt;
use std::time::Duration;

use turnout_spec::Service;

/// The pace of probes before the first success.
pub const STARTUP_RETRY: Duration = Duration::from_millis(100);
/// The interval between probes of a ready instance, unless set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take, unless set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Failures in a row that make a ready instance unhealthy, unless set.
pub const DEFAULT_RETRIES: u32 = 3;

/// The timing of a service's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePlan {
    /// Wait before the first probe.
    pub initial_delay: Duration,
    /// Time between probes once the instance was ready.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Failures in a row that make a ready instance unhealthy.
    pub retries: u32,
}

impl Default for ProbePlan {
    fn default() -> Self {
        ProbePlan {
            initial_delay: Duration::ZERO,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        }
    }
}

impl ProbePlan {
    /// The plan of the probe [`ProbeTarget::from_service`] picks: from the
    /// probe labels (`timeout_seconds`, `initial_delay_seconds`,
    /// `interval_seconds`), else from the compose `healthcheck`
    /// (`interval`, `timeout`, `retries`), else the defaults. A zero
    /// timeout or interval means the default.
    ///
    /// A healthcheck's `start_period` needs no counterpart: failures before
    /// the first success never count (the engine's start deadline decides
    /// when an instance failed to start).
    ///
    /// [`ProbeTarget::from_service`]: crate::ProbeTarget::from_service
    pub fn from_service(service: &Service) -> ProbePlan {
        let mut plan = ProbePlan::default();
        let secs = |s: Option<u32>| s.filter(|s| *s > 0).map(|s| Duration::from_secs(s.into()));
        let millis = |ms: Option<u64>| ms.filter(|ms| *ms > 0).map(Duration::from_millis);
        if let Some(probe) = &service.settings.probe {
            plan.initial_delay = probe
                .initial_delay_seconds
                .map_or(Duration::ZERO, |s| Duration::from_secs(s.into()));
            plan.interval = secs(probe.interval_seconds).unwrap_or(plan.interval);
            plan.timeout = secs(probe.timeout_seconds).unwrap_or(plan.timeout);
        } else if let Some(h) = service
            .healthcheck
            .as_ref()
            .filter(|h| !h.disable && h.test.is_some())
        {
            plan.interval = millis(h.interval_ms).unwrap_or(plan.interval);
            plan.timeout = millis(h.timeout_ms).unwrap_or(plan.timeout);
            plan.retries = h.retries.filter(|r| *r > 0).unwrap_or(plan.retries);
        }
        plan
    }
}

/// What the probes say about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// No probe has passed yet.
    Starting,
    /// The last probes passed: the instance may get traffic.
    Ready,
    /// A ready instance failed `retries` probes in a row.
    Unhealthy,
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Readiness::Starting => "starting",
            Readiness::Ready => "ready",
            Readiness::Unhealthy => "unhealthy",
        })
    }
}

/// What recording a probe result decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Wait this long before the next probe.
    pub next: Duration,
    /// The new readiness, when it changed.
    pub changed: Option<Readiness>,
}

/// The probe schedule of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSchedule {
    plan: ProbePlan,
    readiness: Readiness,
    failures: u32,
}

impl ProbeSchedule {
    /// The schedule of a freshly started instance.
    pub fn new(plan: ProbePlan) -> ProbeSchedule {
        ProbeSchedule {
            plan,
            readiness: Readiness::Starting,
            failures: 0,
        }
    }

    /// Wait this long after start before the first probe.
    pub fn first_delay(&self) -> Duration {
        self.plan.initial_delay
    }

    /// How long one probe may take.
    pub fn timeout(&self) -> Duration {
        self.plan.timeout
    }

    /// What the probes say now.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// Records the result of a probe and says when to probe next.
    pub fn record(&mut self, healthy: bool) -> Step {
        let before = self.readiness;
        if healthy {
            self.failures = 0;
            self.readiness = Readiness::Ready;
        } else if self.readiness != Readiness::Starting {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.plan.retries.max(1) {
                self.readiness = Readiness::Unhealthy;
            }
        }
        let next = match self.readiness {
            Readiness::Starting => STARTUP_RETRY,
            Readiness::Ready | Readiness::Unhealthy => self.plan.interval,
        };
        Step {
            next,
            changed: (self.readiness != before).then_some(self.readiness),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ProbePlan {
        ProbePlan {
            initial_delay: Duration::from_secs(3),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            retries: 2,
        }
    }

    #[test]
    fn retries_fast_until_the_first_success_then_at_the_interval() {
        let mut s = ProbeSchedule::new(plan());
        assert_eq!(s.first_delay(), Duration::from_secs(3));
        assert_eq!(s.readiness(), Readiness::Starting);
        for _ in 0..50 {
            // Failures before the first success never make it unhealthy.
            assert_eq!(
                s.record(false),
                Step {
                    next: STARTUP_RETRY,
                    changed: None
                }
            );
        }
        assert_eq!(
            s.record(true),
            Step {
                next: Duration::from_secs(5),
                changed: Some(Readiness::Ready)
            }
        );
        assert_eq!(
            s.record(true),
            Step {
                next: Duration::from_secs(5),
                changed: None
            }
        );
    }

    #[test]
    fn a_ready_instance_turns_unhealthy_after_retries_failures_in_a_row() {
        let mut s = ProbeSchedule::new(plan());
        s.record(true);
        assert_eq!(s.record(false).changed, None);
        // A success in between resets the count.
        assert_eq!(s.record(true).changed, None);
        assert_eq!(s.record(false).changed, None);
        let step = s.record(false);
        assert_eq!(step.changed, Some(Readiness::Unhealthy));
        assert_eq!(step.next, Duration::from_secs(5));
        assert_eq!(s.record(false).changed, None);
        assert_eq!(s.record(true).changed, Some(Readiness::Ready));
    }

    #[test]
    fn zero_retries_count_as_one() {
        let mut s = ProbeSchedule::new(ProbePlan {
            retries: 0,
            ..plan()
        });
        s.record(true);
        assert_eq!(s.record(false).changed, Some(Readiness::Unhealthy));
    }

    fn service(yaml: &str) -> Service {
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        parsed.template.services.into_iter().next().unwrap()
    }

    #[test]
    fn plans_come_from_labels_then_healthcheck_then_defaults() {
        let s = service(
            "services:\n  web:\n    command: run\n    labels:\n      aliyun.routing.port_80: web\n      \
             aliyun.probe.url: http://container/health\n      aliyun.probe.timeout_seconds: \"4\"\n      \
             aliyun.probe.initial_delay_seconds: \"2\"\n      turnout.probe.interval_seconds: \"7\"\n",
        );
        assert_eq!(
            ProbePlan::from_service(&s),
            ProbePlan {
                initial_delay: Duration::from_secs(2),
                interval: Duration::from_secs(7),
                timeout: Duration::from_secs(4),
                retries: DEFAULT_RETRIES,
            }
        );
        let s = service(
            "services:\n  web:\n    command: run\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      \
             interval: 10s\n      timeout: 500ms\n      retries: 5\n      start_period: 30s\n",
        );
        assert_eq!(
            ProbePlan::from_service(&s),
            ProbePlan {
                initial_delay: Duration::ZERO,
                interval: Duration::from_secs(10),
                timeout: Duration::from_millis(500),
                retries: 5,
            }
        );
        let s = service("services:\n  web:\n    command: run\n");
        assert_eq!(ProbePlan::from_service(&s), ProbePlan::default());
        assert_eq!(ProbePlan::default().interval, Duration::from_secs(2));
        assert_eq!(ProbePlan::default().timeout, Duration::from_secs(1));
    }
}
