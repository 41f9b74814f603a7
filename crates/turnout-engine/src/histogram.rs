//! A latency histogram as the analysis reads it: per-bucket counts with
//! their upper bounds in milliseconds, the last bound `+Inf` (the router's
//! buckets, `turnout-proxy`'s `DURATION_BOUNDS` in seconds × 1000). Pure:
//! no IO, no clock.

/// Why a histogram's figures were refused.
///
/// Not an [`EngineError`](crate::EngineError): that one says why an
/// operator's command was refused, and these are malformed figures from
/// the router (a bug), which the caller logs and skips a check for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// The bounds and the counts are not of one length.
    #[error("a histogram has {bounds} bounds and {counts} counts")]
    Length {
        /// How many bounds.
        bounds: usize,
        /// How many counts.
        counts: usize,
    },
    /// A bound is negative, not a number, or not above the previous one,
    /// or a finite bound is missing.
    #[error(
        "histogram bounds must be finite, non-negative, strictly increasing, and end with +Inf"
    )]
    Bounds,
    /// Cumulative (`le`) counts went down from one bucket to the next.
    #[error("cumulative bucket counts must not decrease")]
    Cumulative,
    /// Two histograms compared bucket by bucket have different bounds.
    #[error("the histograms have different bounds")]
    Mismatch,
}

/// Per-bucket counts with their upper bounds (ms). Bucket `i` holds the
/// observations in `(bounds[i-1], bounds[i]]` (the first from 0); the last
/// bound is `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds_ms: Vec<f64>,
    counts: Vec<u64>,
}

impl Histogram {
    /// A histogram from per-bucket counts (what the router keeps). The
    /// bounds must be finite, non-negative and strictly increasing, with
    /// at least one finite bound, and end with `f64::INFINITY`.
    pub fn new(bounds_ms: Vec<f64>, counts: Vec<u64>) -> Result<Self, HistogramError> {
        if bounds_ms.len() != counts.len() {
            return Err(HistogramError::Length {
                bounds: bounds_ms.len(),
                counts: counts.len(),
            });
        }
        let (last, finite) = bounds_ms.split_last().ok_or(HistogramError::Bounds)?;
        let increasing = finite.windows(2).all(|w| w[0] < w[1]);
        let valid = finite.iter().all(|b| b.is_finite() && *b >= 0.0);
        if *last != f64::INFINITY || finite.is_empty() || !increasing || !valid {
            return Err(HistogramError::Bounds);
        }
        Ok(Histogram { bounds_ms, counts })
    }

    /// A histogram from cumulative (`le`, Prometheus exposition) counts:
    /// `cumulative[i]` observations at or below `bounds_ms[i]`.
    pub fn from_cumulative(
        bounds_ms: Vec<f64>,
        cumulative: &[u64],
    ) -> Result<Self, HistogramError> {
        let mut counts = Vec::with_capacity(cumulative.len());
        let mut below = 0;
        for &c in cumulative {
            counts.push(c.checked_sub(below).ok_or(HistogramError::Cumulative)?);
            below = c;
        }
        Histogram::new(bounds_ms, counts)
    }

    /// A histogram with these bounds and no observations.
    pub fn empty(bounds_ms: Vec<f64>) -> Result<Self, HistogramError> {
        let counts = vec![0; bounds_ms.len()];
        Histogram::new(bounds_ms, counts)
    }

    /// The upper bounds, ms, the last `+Inf`.
    pub fn bounds_ms(&self) -> &[f64] {
        &self.bounds_ms
    }

    /// The per-bucket counts.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// How many observations.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed after `start`, bucket by bucket, when `self` is a
    /// later reading of the same cumulative counters; `None` when a bucket
    /// went down or the bounds differ (the counters were reset).
    pub fn since(&self, start: &Histogram) -> Option<Histogram> {
        if self.bounds_ms != start.bounds_ms {
            return None;
        }
        let counts = self
            .counts
            .iter()
            .zip(&start.counts)
            .map(|(end, start)| end.checked_sub(*start))
            .collect::<Option<Vec<u64>>>()?;
        Some(Histogram {
            bounds_ms: self.bounds_ms.clone(),
            counts,
        })
    }

    /// The `q` quantile (`0 < q <= 1`), ms, as Prometheus's
    /// `histogram_quantile` estimates it: the rank `q × total` falls in
    /// the first bucket whose cumulative count reaches it, and the value
    /// is interpolated linearly between that bucket's lower bound (the
    /// previous upper bound, 0 for the first bucket) and its upper bound,
    /// as if its observations were spread evenly. A rank in the `+Inf`
    /// bucket gives the highest finite bound (a lower bound of the truth).
    /// `None` without observations or for `q` outside `(0, 1]`.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 || !(q > 0.0 && q <= 1.0) {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, (&upper, &count)) in self.bounds_ms.iter().zip(&self.counts).enumerate() {
            let reached = below + count;
            if reached as f64 >= rank {
                if upper == f64::INFINITY {
                    return Some(self.bounds_ms[i - 1]);
                }
                let lower = if i == 0 { 0.0 } else { self.bounds_ms[i - 1] };
                // `count` is not 0: the previous bucket did not reach `rank`.
                let within = (rank - below as f64) / count as f64;
                return Some(lower + (upper - lower) * within);
            }
            below = reached;
        }
        // Rounding can leave `q = 1` a hair above the total.
        self.bounds_ms.iter().rev().nth(1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Vec<f64> {
        vec![10.0, 20.0, 50.0, f64::INFINITY]
    }

    #[test]
    fn shapes_that_are_not_histograms_are_refused() {
        assert_eq!(
            Histogram::new(bounds(), vec![1, 2]),
            Err(HistogramError::Length {
                bounds: 4,
                counts: 2
            })
        );
        let bad = [
            vec![10.0, 20.0],
            vec![f64::INFINITY],
            vec![20.0, 10.0, f64::INFINITY],
            vec![10.0, 10.0, f64::INFINITY],
            vec![-1.0, 10.0, f64::INFINITY],
            vec![f64::NAN, f64::INFINITY],
            vec![],
        ];
        for b in bad {
            let n = b.len();
            assert_eq!(
                Histogram::new(b.clone(), vec![0; n]),
                Err(HistogramError::Bounds),
                "{b:?}"
            );
        }
        assert_eq!(
            Histogram::from_cumulative(bounds(), &[1, 3, 2, 4]),
            Err(HistogramError::Cumulative)
        );
    }

    #[test]
    fn cumulative_counts_become_per_bucket_counts() {
        let h = Histogram::from_cumulative(bounds(), &[1, 3, 3, 7]).unwrap();
        assert_eq!(h.counts(), &[1, 2, 0, 4]);
        assert_eq!(h.total(), 7);
    }

    #[test]
    fn percentiles_interpolate_linearly_inside_the_bucket() {
        // 100 observations: 40 in (0,10], 50 in (10,20], 10 in (20,50].
        let h = Histogram::new(bounds(), vec![40, 50, 10, 0]).unwrap();
        // Rank 50: 10 of the 50 in (10,20] -> 10 + 10 × 10/50.
        assert_eq!(h.percentile(0.5), Some(12.0));
        // Rank 99: 9 of the 10 in (20,50] -> 20 + 30 × 9/10.
        assert_eq!(h.percentile(0.99), Some(47.0));
        // Rank 20 in the first bucket, whose lower bound is 0.
        assert_eq!(h.percentile(0.2), Some(5.0));
        // Exactly at a bucket's top.
        assert_eq!(h.percentile(0.4), Some(10.0));
        assert_eq!(h.percentile(1.0), Some(50.0));
    }

    #[test]
    fn a_rank_in_the_infinite_bucket_gives_the_highest_finite_bound() {
        let h = Histogram::new(bounds(), vec![50, 0, 0, 50]).unwrap();
        assert_eq!(h.percentile(0.99), Some(50.0));
        assert_eq!(h.percentile(0.5), Some(10.0));
    }

    #[test]
    fn no_observations_or_a_bad_quantile_give_no_percentile() {
        let h = Histogram::empty(bounds()).unwrap();
        assert_eq!(h.percentile(0.5), None);
        let h = Histogram::new(bounds(), vec![1, 0, 0, 0]).unwrap();
        assert_eq!(h.percentile(0.0), None);
        assert_eq!(h.percentile(1.5), None);
        assert_eq!(h.percentile(f64::NAN), None);
    }

    #[test]
    fn since_subtracts_bucket_by_bucket_and_sees_resets() {
        let start = Histogram::new(bounds(), vec![1, 2, 3, 4]).unwrap();
        let end = Histogram::new(bounds(), vec![5, 2, 4, 4]).unwrap();
        assert_eq!(end.since(&start).unwrap().counts(), &[4, 0, 1, 0]);
        // A bucket that went down: a reset.
        assert_eq!(start.since(&end), None);
        // Other bounds: not the same counters.
        let other = Histogram::new(vec![10.0, 30.0, 50.0, f64::INFINITY], vec![9; 4]).unwrap();
        assert_eq!(other.since(&start), None);
    }
}
