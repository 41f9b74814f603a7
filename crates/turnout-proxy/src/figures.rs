//! Per-version figures for the control plane's analysis (DESIGN §8): per
//! route and service, the requests, 5xx answers and a latency histogram of
//! turnout-routing's [`LATENCY_BOUNDS`], in atomics that the request path
//! increments (no lock, no allocation) and [`crate::Publisher::figures`] copies
//! out. Preview requests are counted in their own [`Tally`], so they never
//! feed the analysis.
//!
//! A service's [`FigureCells`] live in its `ServiceState` and are carried
//! over by publishes as its metric handles are (a weight change keeps
//! them); they go when the service leaves the route. Each tally is about a
//! kilobyte, so it is allocated by its first request (or at publish, within
//! the snapshot's budget of eager series): a 10,000-route table does not
//! pay for routes nobody calls, nor any route for a preview tally nobody
//! uses.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use turnout_routing::{Figures, LATENCY_BUCKETS, LatencyHistogram, latency_bucket};

/// One kind of requests of one service: per latency bucket (not
/// cumulative; the last counts those slower than every bound), and the 5xx
/// answers among them. The request count is the buckets' sum, so the two
/// always agree.
#[derive(Debug)]
pub(crate) struct Tally {
    buckets: [AtomicU64; LATENCY_BUCKETS + 1],
    errors: AtomicU64,
}

impl Tally {
    fn new() -> Box<Tally> {
        Box::new(Tally {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS + 1],
            errors: AtomicU64::new(0),
        })
    }

    #[inline]
    fn record(&self, status: u16, micros: u64) {
        self.buckets[latency_bucket(micros)].fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn copy(&self) -> Figures {
        // Errors first: a request counted between the two reads shows in
        // the buckets, never in the errors alone.
        let errors = self.errors.load(Ordering::Relaxed);
        let latency =
            LatencyHistogram::from_counts(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)));
        Figures {
            requests: latency.total(),
            errors: errors.min(latency.total()),
            latency,
        }
    }
}

/// The two tallies of one service on one route.
#[derive(Debug, Default)]
pub(crate) struct FigureCells {
    served: OnceLock<Box<Tally>>,
    preview: OnceLock<Box<Tally>>,
}

impl FigureCells {
    /// Counts one answer: `status` after `micros` µs, a preview request's
    /// apart.
    #[inline]
    pub fn record(&self, preview: bool, status: u16, micros: u64) {
        let cell = if preview { &self.preview } else { &self.served };
        cell.get_or_init(Tally::new).record(status, micros);
    }

    /// Allocates the served tally now (at publish), so that the first
    /// request does not.
    pub fn resolve(&self) {
        self.served.get_or_init(Tally::new);
    }

    /// (served, preview), zero for a tally never used.
    pub fn copy(&self) -> (Figures, Figures) {
        let copy = |cell: &OnceLock<Box<Tally>>| cell.get().map(|t| t.copy()).unwrap_or_default();
        (copy(&self.served), copy(&self.preview))
    }
}

/// A duration in whole µs, saturating (the figures' unit).
#[inline]
pub(crate) fn micros(elapsed: Duration) -> u64 {
    elapsed
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(elapsed.subsec_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_and_preview_are_apart_and_errors_are_5xx() {
        let cells = FigureCells::default();
        assert_eq!(cells.copy(), (Figures::default(), Figures::default()));
        cells.record(false, 200, 100);
        cells.record(false, 502, 2_000_000);
        cells.record(false, 404, 100);
        cells.record(true, 503, 100);
        let (served, preview) = cells.copy();
        assert_eq!((served.requests, served.errors), (3, 1));
        assert_eq!((preview.requests, preview.errors), (1, 1));
        let slow =
            turnout_routing::LATENCY_BOUNDS.partition_point(|b| *b <= Duration::from_secs(2));
        let counts: Vec<u64> = served.latency.counts().collect();
        assert_eq!(counts[slow], 1);
        assert_eq!(counts[latency_bucket(100)], 2);
        assert_eq!(micros(Duration::new(2, 5_999)), 2_000_005);
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }
}
