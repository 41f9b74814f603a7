//! Active health checking settings of a route's instances.

use std::sync::Arc;
use std::time::Duration;

/// How the proxy probes the instances of a route. The proxy runs the probes;
/// this is only their configuration, resolved with defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    /// HTTP path to GET; `None` means a TCP connect check.
    pub path: Option<Arc<str>>,
    /// Time between probes once the instance has answered once.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Consecutive failures that make a ready instance unhealthy.
    pub fall: u32,
    /// Consecutive successes that make an unhealthy instance ready.
    pub rise: u32,
    /// Probe all along; when false, only an instance that a failed connect
    /// ejected is probed, until it is ready again (the control plane owns
    /// health otherwise).
    pub active: bool,
}

impl HealthCheck {
    /// Probe interval until the first success (DESIGN §4).
    pub const FAST_INTERVAL: Duration = Duration::from_millis(100);
}

impl Default for HealthCheck {
    /// A TCP check every 2 s, 1 s timeout, 3 failures down, 1 success up,
    /// all along.
    fn default() -> Self {
        HealthCheck {
            path: None,
            interval: Duration::from_millis(2000),
            timeout: Duration::from_millis(1000),
            fall: 3,
            rise: 1,
            active: true,
        }
    }
}
