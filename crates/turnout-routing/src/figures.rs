//! What the data plane reports of each version (DESIGN §8): per route and
//! service, requests, 5xx answers and a latency histogram, cumulative since
//! the service joined the route, and for a route with an A/B goal the
//! distinct clients and converting clients. Plain data, so that the control
//! plane, which reads it every analysis window, needs only this crate; the
//! proxy keeps the live counts in atomics and copies them into these.
//!
//! The histogram is log-linear on 64 µs units: one bucket per unit below
//! 512 µs, then eight buckets per doubling up to 33.5 s, so a bucket is at
//! most 1/8 of its lower bound wide (8 ms around 100 ms), and finding one
//! is a few shifts ([`latency_bucket`]).

use std::sync::Arc;
use std::time::Duration;

/// log2 of the unit, in µs.
const UNIT_SHIFT: u32 = 6;
/// log2 of the buckets per doubling.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// The highest bit a value (in units) may have and still fall in a finite
/// bucket.
const TOP_BIT: u32 = 18;

/// How many finite buckets the histogram has; one more counts the slower
/// requests.
pub const LATENCY_BUCKETS: usize = ((TOP_BIT - SUB_BITS + 2) << SUB_BITS) as usize;

/// The lower bound of bucket `i`, in µs.
const fn lower_micros(i: usize) -> u64 {
    let i = i as u64;
    let units = if i < SUB {
        i
    } else {
        let octave = i >> SUB_BITS;
        (SUB + (i & (SUB - 1))) << (octave - 1)
    };
    units << UNIT_SHIFT
}

/// The upper bounds of the finite buckets (exclusive): bucket `i` counts
/// requests that took at least `LATENCY_BOUNDS[i - 1]` (0 for the first)
/// and less than `LATENCY_BOUNDS[i]`; 64 µs, 128 µs, ... 512 µs, 576 µs,
/// ... 1 ms, 1.125 ms, ... 33.55 s.
pub const LATENCY_BOUNDS: [Duration; LATENCY_BUCKETS] = {
    let mut bounds = [Duration::ZERO; LATENCY_BUCKETS];
    let mut i = 0;
    while i < LATENCY_BUCKETS {
        bounds[i] = Duration::from_micros(lower_micros(i + 1));
        i += 1;
    }
    bounds
};

/// The bucket of a request that took `micros` µs: an index into
/// [`LATENCY_BOUNDS`], or `LATENCY_BUCKETS` for one slower than the last bound.
#[inline]
pub fn latency_bucket(micros: u64) -> usize {
    let units = micros >> UNIT_SHIFT;
    if units < SUB {
        return units as usize;
    }
    let top = 63 - units.leading_zeros();
    if top > TOP_BIT {
        return LATENCY_BUCKETS;
    }
    let octave = u64::from(top - SUB_BITS + 1);
    ((octave << SUB_BITS) | ((units >> (top - SUB_BITS)) & (SUB - 1))) as usize
}

/// A latency histogram as cumulative counts: `cumulative[i]` requests took
/// less than `LATENCY_BOUNDS[i]`, and the last entry (one past the bounds)
/// is every request. Two snapshots give a window's histogram by
/// [`LatencyHistogram::since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `LATENCY_BUCKETS + 1` counts, non-decreasing.
    pub cumulative: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            cumulative: vec![0; LATENCY_BUCKETS + 1],
        }
    }
}

impl LatencyHistogram {
    /// A histogram from per-bucket (not cumulative) counts, `LATENCY_BUCKETS + 1`
    /// of them (shorter lists are padded with zeros).
    pub fn from_counts(counts: impl IntoIterator<Item = u64>) -> LatencyHistogram {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS + 1);
        let mut total = 0u64;
        for count in counts.into_iter().take(LATENCY_BUCKETS + 1) {
            total = total.saturating_add(count);
            cumulative.push(total);
        }
        cumulative.resize(LATENCY_BUCKETS + 1, total);
        LatencyHistogram { cumulative }
    }

    /// The bucket bounds, the same for every histogram.
    pub fn bounds() -> &'static [Duration] {
        &LATENCY_BOUNDS
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The requests of each bucket (not cumulative), the slower-than-every-
    /// bound bucket last: binned samples, as a rank test wants them.
    pub fn counts(&self) -> impl Iterator<Item = u64> + '_ {
        let mut before = 0;
        self.cumulative.iter().map(move |&c| {
            let n = c.saturating_sub(before);
            before = c;
            n
        })
    }

    /// What was counted after `earlier` (a snapshot of the same service
    /// taken before this one): the histogram of that window.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        // Per bucket, then summed again, so that the result stays
        // cumulative even if a snapshot caught a bucket mid-update.
        let zero = std::iter::repeat(0);
        let before: Vec<u64> = earlier
            .counts()
            .chain(zero)
            .take(LATENCY_BUCKETS + 1)
            .collect();
        LatencyHistogram::from_counts(self.counts().zip(before).map(|(n, b)| n.saturating_sub(b)))
    }

    /// The latency below which a share `q` (0..=1) of the requests fell,
    /// interpolated linearly inside its bucket; `None` without requests.
    /// Requests slower than every bound count as the last bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // The rank of the request asked for, 1-based (nearest rank).
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let i = self.cumulative.partition_point(|&c| c < rank);
        if i >= LATENCY_BUCKETS {
            return Some(LATENCY_BOUNDS[LATENCY_BUCKETS - 1]);
        }
        let before = if i == 0 { 0 } else { self.cumulative[i - 1] };
        let in_bucket = self.cumulative[i] - before;
        let low = if i == 0 {
            Duration::ZERO
        } else {
            LATENCY_BOUNDS[i - 1]
        };
        let width = LATENCY_BOUNDS[i] - low;
        let share = (rank - before) as f64 / in_bucket as f64;
        Some(low + width.mul_f64(share))
    }
}

/// Requests of one service on one route, of one kind (served or preview).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests answered (by the service or, for it, by the proxy: 502,
    /// 503, 504). Always `latency.total()`.
    pub requests: u64,
    /// Of those, answered with a 5xx status, the proxy's own included.
    pub errors: u64,
    /// Time from the request to the response head (or to the proxy's own
    /// answer).
    pub latency: LatencyHistogram,
}

impl Figures {
    /// What was counted after `earlier` (see [`LatencyHistogram::since`]).
    pub fn since(&self, earlier: &Figures) -> Figures {
        let latency = self.latency.since(&earlier.latency);
        Figures {
            requests: latency.total(),
            errors: self
                .errors
                .saturating_sub(earlier.errors)
                .min(latency.total()),
            latency,
        }
    }
}

/// The A/B tally of one service on a route with a goal: clients are told
/// apart by their `turnout_pos` cookie (the one they sent, or the one the
/// proxy just gave them). Counted since the service joined the route, or
/// since the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conversions {
    /// Distinct positions seen among the service's requests.
    pub clients: u64,
    /// Of those, the positions with a request that reached the goal path
    /// and was answered with the goal's status.
    pub converted: u64,
    /// Requests without a position (a rule sent them and they carried no
    /// cookie): counted here, in no client.
    pub unidentified: u64,
    /// Requests the proxy could not report because its queue was full:
    /// their clients and conversions are missing. Counted since the
    /// service joined the route; a reset leaves it.
    pub dropped: u64,
}

/// Everything the proxy reports of one service on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFigures {
    /// The route's id.
    pub route: Arc<str>,
    /// The service.
    pub service: Arc<str>,
    /// Requests routed by rules, stickiness and weights: what the analysis
    /// reads.
    pub served: Figures,
    /// Preview requests (`X-Turnout-Service` with a valid token), counted
    /// apart so that they never feed the analysis.
    pub preview: Figures,
    /// The A/B tally, when the route has a goal.
    pub conversions: Option<Conversions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_and_agree_with_their_bounds() {
        assert_eq!(LATENCY_BUCKETS, 136);
        assert_eq!(LATENCY_BOUNDS[0], Duration::from_micros(64));
        assert_eq!(LATENCY_BOUNDS[7], Duration::from_micros(512));
        assert_eq!(LATENCY_BOUNDS[8], Duration::from_micros(576));
        assert_eq!(
            LATENCY_BOUNDS[LATENCY_BUCKETS - 1],
            Duration::from_micros(33_554_432)
        );
        for i in 0..LATENCY_BUCKETS {
            let high = LATENCY_BOUNDS[i].as_micros() as u64;
            let low = if i == 0 {
                0
            } else {
                LATENCY_BOUNDS[i - 1].as_micros() as u64
            };
            assert!(low < high, "{i}");
            // At most an eighth of the lower bound wide, past the linear
            // start.
            if low >= 512 {
                assert!((high - low) * 8 <= low, "{i}: {low}..{high}");
            }
            assert_eq!(latency_bucket(low), i, "{low}");
            assert_eq!(latency_bucket(high - 1), i, "{}", high - 1);
            assert_eq!(latency_bucket(high), i + 1, "{high}");
        }
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS);
        // A 100 ms gate: the buckets around it are 8 ms wide.
        let at = latency_bucket(100_000);
        assert_eq!(
            LATENCY_BOUNDS[at] - LATENCY_BOUNDS[at - 1],
            Duration::from_micros(8192)
        );
    }

    fn histogram(samples_ms: &[u64]) -> LatencyHistogram {
        let mut counts = vec![0; LATENCY_BUCKETS + 1];
        for ms in samples_ms {
            counts[latency_bucket(ms * 1000)] += 1;
        }
        LatencyHistogram::from_counts(counts)
    }

    #[test]
    fn quantiles_fall_in_the_bucket_of_the_sample() {
        let samples: Vec<u64> = (1..=100).collect();
        let h = histogram(&samples);
        assert_eq!(h.total(), 100);
        for (q, ms) in [(0.5, 50), (0.99, 99), (0.01, 1), (1.0, 100)] {
            let got = h.quantile(q).unwrap();
            let i = latency_bucket(ms * 1000);
            let low = if i == 0 {
                Duration::ZERO
            } else {
                LATENCY_BOUNDS[i - 1]
            };
            assert!(low <= got && got <= LATENCY_BOUNDS[i], "q{q}: {got:?}");
        }
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
        assert_eq!(
            histogram(&[60_000]).quantile(0.5),
            Some(LATENCY_BOUNDS[LATENCY_BUCKETS - 1])
        );
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let earlier = Figures {
            requests: 3,
            errors: 1,
            latency: histogram(&[1, 2, 300]),
        };
        let later = Figures {
            requests: 6,
            errors: 3,
            latency: histogram(&[1, 2, 300, 200, 210, 220]),
        };
        let window = later.since(&earlier);
        assert_eq!(window.requests, 3);
        assert_eq!(window.errors, 2);
        assert_eq!(window.latency, histogram(&[200, 210, 220]));
        let p50 = window.latency.quantile(0.5).unwrap();
        assert!(
            (Duration::from_millis(196)..Duration::from_millis(213)).contains(&p50),
            "{p50:?}"
        );
        assert_eq!(
            window.latency.counts().sum::<u64>(),
            3,
            "per-bucket counts add up"
        );
    }
}
