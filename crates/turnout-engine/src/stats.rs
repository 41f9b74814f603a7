//! The statistics of an A/B report (DESIGN §8): a two-proportion z-test
//! on the variants' conversions and a Mann-Whitney U test on their binned
//! latencies, and the report built from them. Pure: the figures come in
//! as arguments.

use std::f64::consts::SQRT_2;

use turnout_api_types::{ConversionComparison, LatencyComparison, VariantReport};

use crate::analysis::Window;
use crate::histogram::{Histogram, HistogramError};

/// A confidence level, strictly between 0 and 1; 95 % by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence(f64);

impl Confidence {
    /// A level in `(0, 1)`, else `None`.
    pub fn new(level: f64) -> Option<Confidence> {
        (level > 0.0 && level < 1.0).then_some(Confidence(level))
    }

    /// The level, for example 0.95.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether a p-value is significant at this level: below `1 - level`
    /// (written as `1 - p > level`, which is exact for the usual levels:
    /// `1 - 0.99` is a hair above 0.01 in floating point).
    pub fn significant(self, p_value: f64) -> bool {
        1.0 - p_value > self.0
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Confidence(0.95)
    }
}

/// `P(Z > z)` for a standard normal `Z`, through `erfc`, which keeps its
/// precision far into the tail (where `1 - Φ(z)` would round to 0).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / SQRT_2)
}

/// `P(|Z| > |z|)`: the two-sided p-value of a z statistic.
fn two_sided(z: f64) -> f64 {
    libm::erfc(z.abs() / SQRT_2).min(1.0)
}

/// Trials and successes of one variant (clients and converting clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proportion {
    /// How many tried (clients).
    pub trials: u64,
    /// How many of them succeeded (converted); at most `trials`.
    pub successes: u64,
}

impl Proportion {
    /// `successes / trials`, `None` without trials.
    pub fn rate(self) -> Option<f64> {
        (self.trials > 0).then(|| self.successes.min(self.trials) as f64 / self.trials as f64)
    }
}

/// The result of a two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// `b`'s rate minus `a`'s.
    pub difference: f64,
    /// The z statistic, with the pooled standard error.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The two-proportion z-test with the pooled proportion (statsmodels'
/// `proportions_ztest` default):
/// `z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b))`. `None` when a variant has no trials. When nobody or
/// everybody succeeded in both, there is no variance and no difference:
/// `z = 0`, `p = 1`. Successes above the trials count as the trials (the
/// counters are read one by one).
pub fn two_proportion_z_test(a: Proportion, b: Proportion) -> Option<ZTest> {
    let (ra, rb) = (a.rate()?, b.rate()?);
    let (na, nb) = (a.trials as f64, b.trials as f64);
    let pooled = (ra * na + rb * nb) / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    let difference = rb - ra;
    let z = if se > 0.0 { difference / se } else { 0.0 };
    Some(ZTest {
        difference,
        z,
        p_value: two_sided(z),
    })
}

/// The result of a Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: how often one of its observations is above
    /// one of the second's, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The Mann-Whitney U test on two latency histograms with the same
/// bounds. The observations of a bucket are ties (their order inside it
/// is unknown) and get its mid-rank; the p-value is scipy's
/// `mannwhitneyu(method="asymptotic")` two-sided one: the normal
/// approximation with the tie correction `Σ(t³ - t) / (n (n - 1))` over the
/// buckets' sizes `t` and a continuity correction of 0.5. With every
/// observation in one bucket there is no evidence of a difference: `p =
/// 1`. `Ok(None)` when a histogram is empty; an error when the bounds
/// differ.
pub fn mann_whitney_u(a: &Histogram, b: &Histogram) -> Result<Option<MannWhitney>, HistogramError> {
    if a.bounds_ms() != b.bounds_ms() {
        return Err(HistogramError::Mismatch);
    }
    let (n1, n2) = (a.total() as f64, b.total() as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return Ok(None);
    }
    let n = n1 + n2;
    let mut u1 = 0.0;
    let mut b_below = 0.0;
    let mut ties = 0.0;
    for (&ca, &cb) in a.counts().iter().zip(b.counts()) {
        let (ca, cb) = (ca as f64, cb as f64);
        // Each of `a`'s observations here is above every `b` below and
        // ties with the `b`s here.
        u1 += ca * (b_below + cb / 2.0);
        b_below += cb;
        let t = ca + cb;
        ties += t * t * t - t;
    }
    let mu = n1 * n2 / 2.0;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    let u = u1.max(n1 * n2 - u1);
    let p_value = if sigma > 0.0 {
        (2.0 * normal_sf((u - mu - 0.5) / sigma)).min(1.0)
    } else {
        1.0
    };
    Ok(Some(MannWhitney { u: u1, p_value }))
}

/// One variant of an A/B test since the release started.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The service (services, joined by `+`, for a side of several).
    pub service: String,
    /// The route.
    pub route: String,
    /// `old`, `new` or `unchanged`.
    pub role: String,
    /// Distinct clients.
    pub clients: u64,
    /// Clients that reached the goal.
    pub conversions: u64,
    /// Its requests, 5xx and latencies.
    pub traffic: Window,
}

impl Variant {
    /// Its figures as the report shows them.
    pub fn report(&self) -> VariantReport {
        let figures = self.traffic.figures();
        let conversions = Proportion {
            trials: self.clients,
            successes: self.conversions,
        };
        VariantReport {
            service: self.service.clone(),
            route: self.route.clone(),
            role: self.role.clone(),
            clients: self.clients,
            requests: figures.requests,
            error_rate: figures.error_rate,
            p50_ms: figures.p50_ms,
            p99_ms: figures.p99_ms,
            conversions: self.conversions.min(self.clients),
            conversion_rate: conversions.rate(),
        }
    }
}

/// The two sides of an A/B test compared (DESIGN §8's report).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The conversion rates (two-proportion z-test).
    pub conversion: ConversionComparison,
    /// The latencies (Mann-Whitney U).
    pub latency: LatencyComparison,
}

/// Compares two variants, the baseline `a` first: the conversion
/// difference is `b`'s rate minus `a`'s, and both tests are judged at
/// `confidence`. An error when the variants' latency histograms have
/// different bounds.
pub fn compare(
    a: &Variant,
    b: &Variant,
    confidence: Confidence,
) -> Result<Comparison, HistogramError> {
    let conversion = two_proportion_z_test(
        Proportion {
            trials: a.clients,
            successes: a.conversions,
        },
        Proportion {
            trials: b.clients,
            successes: b.conversions,
        },
    );
    let latency = mann_whitney_u(&a.traffic.latency, &b.traffic.latency)?;
    Ok(Comparison {
        conversion: ConversionComparison {
            difference: conversion.map(|t| t.difference),
            p_value: conversion.map(|t| t.p_value),
            significant: conversion.is_some_and(|t| confidence.significant(t.p_value)),
            confidence: confidence.get(),
        },
        latency: LatencyComparison {
            p_value: latency.map(|t| t.p_value),
            significant: latency.is_some_and(|t| confidence.significant(t.p_value)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The expected numbers below come from scipy 1.17.1 and statsmodels
    // 0.15.0 (Python 3.11), computed once and written down:
    //   scipy.stats.norm.sf(z)
    //   statsmodels.stats.proportion.proportions_ztest([x_b, x_a], [n_b, n_a])
    //   scipy.stats.mannwhitneyu(np.repeat(np.arange(4), a),
    //       np.repeat(np.arange(4), b), alternative="two-sided",
    //       method="asymptotic", use_continuity=True)
    // (the bucket index stands for every observation of the bucket, so
    // scipy sees the same ties).

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-12 + 1e-9 * want.abs()
    }

    #[test]
    fn the_normal_tail_matches_scipy() {
        let known = [
            (0.0, 0.5),
            (1.0, 0.158_655_253_931_457_07),
            (1.96, 0.024_997_895_148_220_435),
            (3.0, 0.001_349_898_031_630_093_3),
            (5.0, 2.866_515_718_791_933e-7),
            (-1.5, 0.933_192_798_731_141_9),
            (8.0, 6.220_960_574_271_74e-16),
        ];
        for (z, want) in known {
            let got = normal_sf(z);
            assert!(close(got, want), "sf({z}) = {got}, scipy {want}");
        }
    }

    fn prop(trials: u64, successes: u64) -> Proportion {
        Proportion { trials, successes }
    }

    #[test]
    fn the_z_test_matches_statsmodels() {
        let known = [
            (
                (20, 200),
                (60, 200),
                4.999_999_999_999_999,
                5.733_031_437_583_89e-7,
            ),
            (
                (50, 170),
                (45, 150),
                0.114_932_564_245_497_07,
                0.908_498_573_580_885_3,
            ),
            (
                (100, 1000),
                (112, 1000),
                0.871_654_860_464_017_2,
                0.383_396_692_514_582_2,
            ),
            ((20, 200), (20, 200), 0.0, 1.0),
        ];
        for ((xa, na), (xb, nb), z, p) in known {
            let t = two_proportion_z_test(prop(na, xa), prop(nb, xb)).unwrap();
            assert!(close(t.z, z), "{xa}/{na} vs {xb}/{nb}: z {} != {z}", t.z);
            assert!(
                close(t.p_value, p),
                "{xa}/{na} vs {xb}/{nb}: p {} != {p}",
                t.p_value
            );
            let want = xb as f64 / nb as f64 - xa as f64 / na as f64;
            assert!(close(t.difference, want));
        }
    }

    #[test]
    fn the_z_test_needs_trials_and_variance() {
        assert_eq!(two_proportion_z_test(prop(0, 0), prop(10, 5)), None);
        assert_eq!(two_proportion_z_test(prop(10, 5), prop(0, 0)), None);
        for (a, b) in [(prop(10, 0), prop(20, 0)), (prop(10, 10), prop(20, 20))] {
            let t = two_proportion_z_test(a, b).unwrap();
            assert_eq!((t.difference, t.z, t.p_value), (0.0, 0.0, 1.0));
        }
        // More conversions than clients count as every client.
        let t = two_proportion_z_test(prop(10, 12), prop(10, 10)).unwrap();
        assert_eq!(t.difference, 0.0);
    }

    fn hist(counts: [u64; 4]) -> Histogram {
        Histogram::new(vec![10.0, 20.0, 50.0, f64::INFINITY], counts.to_vec()).unwrap()
    }

    #[test]
    fn mann_whitney_on_bins_matches_scipy_with_ties() {
        let known = [
            ([5, 10, 3, 0], [2, 6, 8, 1], 91.0, 0.029_178_782_951_834_07),
            (
                [40, 50, 10, 0],
                [30, 40, 25, 5],
                3925.0,
                0.004_654_784_195_429_592,
            ),
            (
                [10, 0, 0, 0],
                [0, 0, 0, 10],
                0.0,
                1.593_791_168_806_624_4e-5,
            ),
            ([3, 4, 5, 6], [3, 4, 5, 6], 162.0, 1.0),
        ];
        for (a, b, u, p) in known {
            let t = mann_whitney_u(&hist(a), &hist(b)).unwrap().unwrap();
            assert_eq!(t.u, u, "{a:?} vs {b:?}");
            assert!(
                close(t.p_value, p),
                "{a:?} vs {b:?}: p {} != {p}",
                t.p_value
            );
        }
    }

    #[test]
    fn mann_whitney_needs_observations_and_one_set_of_bounds() {
        assert_eq!(mann_whitney_u(&hist([0; 4]), &hist([1, 2, 3, 4])), Ok(None));
        let other = Histogram::new(vec![10.0, f64::INFINITY], vec![1, 1]).unwrap();
        assert_eq!(
            mann_whitney_u(&hist([1, 0, 0, 0]), &other),
            Err(HistogramError::Mismatch)
        );
        // Everything in one bucket: no evidence either way.
        let t = mann_whitney_u(&hist([0, 9, 0, 0]), &hist([0, 4, 0, 0]))
            .unwrap()
            .unwrap();
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn confidence_is_strictly_between_0_and_1_and_95_percent_by_default() {
        assert_eq!(Confidence::default().get(), 0.95);
        assert_eq!(Confidence::new(0.0), None);
        assert_eq!(Confidence::new(1.0), None);
        assert_eq!(Confidence::new(f64::NAN), None);
        let c = Confidence::new(0.99).unwrap();
        assert!(c.significant(0.009));
        assert!(!c.significant(0.01));
        assert!(!Confidence::default().significant(0.05));
        assert!(Confidence::default().significant(0.049));
    }

    fn variant(service: &str, clients: u64, conversions: u64, latency: [u64; 4]) -> Variant {
        let requests = latency.iter().sum();
        Variant {
            service: service.into(),
            route: "web.localhost".into(),
            role: if service.ends_with("-v2") {
                "new"
            } else {
                "old"
            }
            .into(),
            clients,
            conversions,
            traffic: Window {
                requests,
                errors: 0,
                latency: hist(latency),
                reset: false,
            },
        }
    }

    /// DESIGN §8's acceptance shape: 400 sticky clients split evenly,
    /// 30 % of the new variant's converting against 10 % of the old's.
    #[test]
    fn thirty_against_ten_percent_over_400_clients_is_significant() {
        let a = variant("web", 200, 20, [150, 40, 10, 0]);
        let b = variant("web-v2", 200, 60, [150, 40, 10, 0]);
        let r = compare(&a, &b, Confidence::default()).unwrap();
        assert!(r.conversion.significant);
        assert!(close(r.conversion.difference.unwrap(), 0.2));
        assert!(r.conversion.p_value.unwrap() < 1e-6);
        assert_eq!(r.conversion.confidence, 0.95);
        // Same latencies: no latency difference.
        assert_eq!(r.latency.p_value, Some(1.0));
        assert!(!r.latency.significant);
        assert_eq!(a.report().service, "web");
        let b = b.report();
        assert_eq!(b.conversion_rate, Some(0.3));
        assert_eq!(b.requests, 200);
        assert_eq!(b.role, "new");
        assert!(close(b.p50_ms.unwrap(), 100.0 / 15.0));
    }

    #[test]
    fn identical_conversion_rates_are_not_significant() {
        let a = variant("web", 200, 40, [150, 40, 10, 0]);
        let b = variant("web-v2", 200, 40, [40, 150, 10, 0]);
        let r = compare(&a, &b, Confidence::default()).unwrap();
        assert!(!r.conversion.significant);
        assert_eq!(r.conversion.difference, Some(0.0));
        assert_eq!(r.conversion.p_value, Some(1.0));
        // The second variant is clearly slower.
        assert!(r.latency.significant);
    }

    #[test]
    fn a_variant_without_clients_or_requests_has_no_comparison() {
        let a = variant("web", 0, 0, [0; 4]);
        let b = variant("web-v2", 200, 60, [150, 40, 10, 0]);
        let r = compare(&a, &b, Confidence::default()).unwrap();
        assert_eq!(
            (r.conversion.difference, r.conversion.p_value),
            (None, None)
        );
        assert!(!r.conversion.significant);
        assert_eq!(r.latency.p_value, None);
        assert!(!r.latency.significant);
        assert_eq!(a.report().conversion_rate, None);
        assert_eq!(a.report().error_rate, None);
    }

    proptest! {
        #[test]
        fn the_z_test_is_symmetric_in_the_variants(
            na in 1u64..5000, nb in 1u64..5000, fa in 0.0f64..=1.0, fb in 0.0f64..=1.0
        ) {
            let a = prop(na, (na as f64 * fa) as u64);
            let b = prop(nb, (nb as f64 * fb) as u64);
            let ab = two_proportion_z_test(a, b).unwrap();
            let ba = two_proportion_z_test(b, a).unwrap();
            prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12);
            prop_assert_eq!(ab.difference, -ba.difference);
            prop_assert!((0.0..=1.0).contains(&ab.p_value));
        }

        #[test]
        fn mann_whitney_is_symmetric_in_the_samples(
            a in proptest::array::uniform4(0u64..300),
            b in proptest::array::uniform4(0u64..300),
        ) {
            let (ha, hb) = (hist(a), hist(b));
            match (mann_whitney_u(&ha, &hb).unwrap(), mann_whitney_u(&hb, &ha).unwrap()) {
                (Some(ab), Some(ba)) => {
                    prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12);
                    let n1n2 = (ha.total() * hb.total()) as f64;
                    prop_assert_eq!(ab.u + ba.u, n1n2);
                    prop_assert!((0.0..=1.0).contains(&ab.p_value));
                }
                (None, None) => prop_assert!(ha.total() == 0 || hb.total() == 0),
                other => prop_assert!(false, "asymmetric: {:?}", other),
            }
        }

        #[test]
        fn identical_samples_are_never_significant(a in proptest::array::uniform4(0u64..300)) {
            let h = hist(a);
            if let Some(t) = mann_whitney_u(&h, &h).unwrap() {
                prop_assert_eq!(t.p_value, 1.0);
            }
            let p = prop(h.total() + 1, a[0]);
            prop_assert_eq!(two_proportion_z_test(p, p).unwrap().p_value, 1.0);
        }
    }
}
