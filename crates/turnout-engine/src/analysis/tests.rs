//! The analysis's unit and property tests.

use super::*;
use proptest::prelude::*;

const INF: f64 = f64::INFINITY;

fn bounds() -> Vec<f64> {
    vec![100.0, 300.0, 1000.0, INF]
}

/// A window of `requests` requests, `errors` of them 5xx, with these
/// latency bucket counts over [`bounds`].
fn window(requests: u64, errors: u64, counts: [u64; 4]) -> Window {
    Window {
        requests,
        errors,
        latency: Histogram::new(bounds(), counts.to_vec()).unwrap(),
        reset: false,
    }
}

/// 1000 requests, `errors` 5xx, all in the first bucket: p99 99 ms.
fn fast(errors: u64) -> Window {
    window(1000, errors, [1000, 0, 0, 0])
}

/// 1000 requests, `errors` 5xx, all in (100, 300]: p99 298 ms.
fn slow(errors: u64) -> Window {
    window(1000, errors, [0, 1000, 0, 0])
}

fn idle() -> Window {
    window(0, 0, [0; 4])
}

fn texts(a: &Analysis) -> Vec<String> {
    a.reasons.iter().map(Reason::to_string).collect()
}

fn snapshot(requests: u64, errors: u64, counts: [u64; 4]) -> Snapshot {
    Snapshot {
        requests,
        errors,
        latency: Histogram::new(bounds(), counts.to_vec()).unwrap(),
    }
}

#[test]
fn a_window_is_the_end_snapshot_minus_the_start() {
    let w = Window::between(
        &snapshot(500, 10, [400, 90, 10, 0]),
        &snapshot(1700, 70, [1300, 340, 60, 0]),
    );
    assert_eq!(w, window(1200, 60, [900, 250, 50, 0]));
    assert_eq!(w.error_rate(), Some(0.05));
}

#[test]
fn a_counter_that_went_down_counts_the_window_from_zero() {
    let start = snapshot(5000, 10, [5000, 0, 0, 0]);
    // The service was added again: its counters restarted.
    let end = snapshot(300, 30, [200, 100, 0, 0]);
    let w = Window::between(&start, &end);
    assert!(w.reset);
    assert_eq!((w.requests, w.errors), (300, 30));
    assert_eq!(w.latency.counts(), &[200, 100, 0, 0]);

    // Only the errors went down: still a reset for every figure.
    let w = Window::between(
        &snapshot(100, 50, [100, 0, 0, 0]),
        &snapshot(150, 5, [150, 0, 0, 0]),
    );
    assert!(w.reset);
    assert_eq!((w.requests, w.errors), (150, 5));

    // Only a latency bucket went down.
    let w = Window::between(
        &snapshot(100, 0, [50, 50, 0, 0]),
        &snapshot(150, 0, [150, 0, 0, 0]),
    );
    assert!(w.reset);
    assert_eq!(w.requests, 150);

    // Other bounds: other counters.
    let other = Snapshot {
        requests: 200,
        errors: 0,
        latency: Histogram::new(vec![50.0, INF], vec![200, 0]).unwrap(),
    };
    let w = Window::between(&snapshot(100, 0, [100, 0, 0, 0]), &other);
    assert!(w.reset);
    assert_eq!(w.latency.bounds_ms(), &[50.0, INF]);
}

#[test]
fn errors_read_ahead_of_their_requests_are_capped() {
    let w = Window::between(&snapshot(100, 0, [0; 4]), &snapshot(110, 12, [0; 4]));
    assert_eq!((w.requests, w.errors), (10, 10));
    assert_eq!(w.error_rate(), Some(1.0));
}

#[test]
fn figures_hold_the_percentiles_and_nothing_without_requests() {
    let f = window(100, 5, [40, 50, 10, 0]).figures();
    assert_eq!(f.requests, 100);
    assert_eq!(f.error_rate, Some(0.05));
    // Rank 50: 10 of the 50 in (100, 300].
    assert_eq!(f.p50_ms, Some(140.0));
    // Rank 99: 9 of the 10 in (300, 1000].
    assert_eq!(f.p99_ms, Some(930.0));
    let f = idle().figures();
    assert_eq!((f.error_rate, f.p50_ms, f.p99_ms), (None, None, None));
}

#[test]
fn the_default_gates_are_min_requests_100_and_nothing_else() {
    let g = Gates::default();
    assert_eq!(g.min_requests, 100);
    assert_eq!(
        (
            g.max_error_rate,
            g.max_error_increase,
            g.max_p99,
            g.max_p99_increase
        ),
        (None, None, None, None)
    );
    assert!(g.prometheus.is_none());
    // No gate set: any window with enough requests passes.
    let a = analyse(1, &g, &slow(1000), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Pass);
    assert!(a.reasons.is_empty());
}

#[test]
fn too_few_requests_is_inconclusive_whatever_the_gates_say() {
    let gates = Gates {
        max_error_rate: Some(0.01),
        max_p99: Some(Duration::from_millis(10)),
        prometheus: Some(PrometheusGate {
            query: "up".into(),
            max: 0.0,
        }),
        ..Gates::default()
    };
    // Every request failed and was slow, yet 99 requests decide nothing.
    let new = window(99, 99, [0, 0, 99, 0]);
    let a = analyse(7, &gates, &new, &fast(0), Some(1.0));
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert_eq!(texts(&a), ["min_requests: 99 requests < 100"]);
    assert_eq!(a.reasons[0].finding, Finding::Unknown);
    assert_eq!(a.failure(), None);
    // The figures are still shown.
    assert_eq!(a.new.requests, 99);
    assert_eq!(a.new.error_rate, Some(1.0));
    // At exactly min_requests the gates are judged.
    let new = window(100, 100, [0, 0, 100, 0]);
    assert_eq!(
        analyse(7, &gates, &new, &fast(0), Some(1.0)).verdict,
        Verdict::Fail
    );
}

#[test]
fn max_error_rate_fails_above_its_limit_and_passes_at_it() {
    let gates = Gates {
        max_error_rate: Some(0.01),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &fast(52), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(texts(&a), ["max_error_rate: 5.2% > 1%"]);
    assert_eq!(
        a.failure().as_deref(),
        Some("analysis: max_error_rate: 5.2% > 1%")
    );
    assert_eq!(
        analyse(1, &gates, &fast(10), &fast(0), None).verdict,
        Verdict::Pass
    );
}

#[test]
fn max_error_increase_compares_with_the_baseline() {
    let gates = Gates {
        max_error_increase: Some(0.01),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &fast(52), &fast(10), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(texts(&a), ["max_error_increase: error rate +4.2% > 1%"]);
    // A baseline as bad as the new version: no increase.
    assert_eq!(
        analyse(1, &gates, &fast(52), &fast(52), None).verdict,
        Verdict::Pass
    );
    // An increase of exactly the limit holds.
    assert_eq!(
        analyse(1, &gates, &fast(20), &fast(10), None).verdict,
        Verdict::Pass
    );
}

#[test]
fn max_p99_fails_a_slow_new_version() {
    let gates = Gates {
        max_p99: Some(Duration::from_millis(250)),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &slow(0), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(texts(&a), ["max_p99: p99 298 ms > 250 ms"]);
    assert_eq!(
        analyse(1, &gates, &fast(0), &slow(0), None).verdict,
        Verdict::Pass
    );
}

#[test]
fn max_p99_increase_fails_a_new_version_slower_than_the_baseline() {
    let gates = Gates {
        max_p99_increase: Some(Duration::from_millis(100)),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &slow(0), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(texts(&a), ["max_p99_increase: p99 +199 ms > 100 ms"]);
    assert_eq!(
        a.failure().as_deref(),
        Some("analysis: max_p99_increase: p99 +199 ms > 100 ms")
    );
    // Slow both: no increase.
    assert_eq!(
        analyse(1, &gates, &slow(0), &slow(0), None).verdict,
        Verdict::Pass
    );
    // Faster than the baseline: a negative increase.
    assert_eq!(
        analyse(1, &gates, &fast(0), &slow(0), None).verdict,
        Verdict::Pass
    );
}

#[test]
fn at_the_full_step_relative_gates_are_skipped_and_absolute_ones_apply() {
    let gates = Gates {
        max_error_rate: Some(0.10),
        max_error_increase: Some(0.01),
        max_p99: Some(Duration::from_millis(500)),
        max_p99_increase: Some(Duration::from_millis(100)),
        ..Gates::default()
    };
    // 5 % errors and p99 298 ms would cross both relative gates
    // against a clean fast baseline; with no baseline traffic they are
    // skipped.
    let a = analyse(1, &gates, &slow(50), &idle(), None);
    assert_eq!(a.verdict, Verdict::Pass);
    assert_eq!(
        texts(&a),
        [
            "max_error_increase: skipped, the baseline got no requests",
            "max_p99_increase: skipped, the baseline got no requests",
        ]
    );
    assert!(
        a.reasons
            .iter()
            .all(|r| r.finding == Finding::Skipped && r.gate.is_relative())
    );
    assert_eq!(a.baseline.requests, 0);
    // The absolute gates still fail.
    let a = analyse(1, &gates, &slow(200), &idle(), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(
        a.failure().as_deref(),
        Some("analysis: max_error_rate: 20% > 10%")
    );
}

#[test]
fn several_crossed_gates_are_all_named_in_plan_order() {
    let gates = Gates {
        max_error_rate: Some(0.01),
        max_error_increase: Some(0.01),
        max_p99: Some(Duration::from_millis(250)),
        max_p99_increase: Some(Duration::from_millis(100)),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &slow(52), &fast(0), None);
    assert_eq!(
        a.failure().as_deref(),
        Some(
            "analysis: max_error_rate: 5.2% > 1%; max_error_increase: error rate +5.2% > 1%; \
             max_p99: p99 298 ms > 250 ms; max_p99_increase: p99 +199 ms > 100 ms"
        )
    );
}

#[test]
fn the_outside_gate_fails_above_max_and_is_inconclusive_without_a_value() {
    let gates = Gates {
        prometheus: Some(PrometheusGate {
            query: "sum(rate(errors[1m]))".into(),
            max: 0.5,
        }),
        ..Gates::default()
    };
    let a = analyse(1, &gates, &fast(0), &fast(0), Some(0.7));
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(texts(&a), ["prometheus: sum(rate(errors[1m])) = 0.7 > 0.5"]);
    assert_eq!(
        analyse(1, &gates, &fast(0), &fast(0), Some(0.5)).verdict,
        Verdict::Pass
    );
    for (missing, why) in [
        (Outside::from(None), "the query gave none"),
        (Outside::Value(f64::NAN), "the query gave NaN"),
        (Outside::Missing("connection refused"), "connection refused"),
    ] {
        let a = analyse(1, &gates, &fast(0), &fast(0), missing);
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert_eq!(
            texts(&a),
            [format!(
                "prometheus: no value for sum(rate(errors[1m])) ({why})"
            )]
        );
    }
    // A crossed gate fails the check even when the outside value is
    // missing.
    let gates = Gates {
        max_error_rate: Some(0.01),
        ..gates
    };
    let a = analyse(1, &gates, &fast(52), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(
        a.failure().as_deref(),
        Some("analysis: max_error_rate: 5.2% > 1%")
    );
    assert_eq!(a.reasons.len(), 2);
}

#[test]
fn latency_gates_without_latency_figures_are_inconclusive() {
    let gates = Gates {
        max_p99: Some(Duration::from_millis(250)),
        max_p99_increase: Some(Duration::from_millis(100)),
        ..Gates::default()
    };
    // Requests counted but no histogram observations (figures read
    // one by one).
    let a = analyse(1, &gates, &window(1000, 0, [0; 4]), &fast(0), None);
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert_eq!(
        texts(&a),
        [
            "max_p99: no latency figures for the new version",
            "max_p99_increase: no latency figures for the new version",
        ]
    );
    let a = analyse(1, &gates, &fast(0), &window(1000, 0, [0; 4]), None);
    assert_eq!(
        texts(&a),
        ["max_p99_increase: no latency figures for the baseline"]
    );
}

#[test]
fn figures_and_limits_get_as_many_decimals_as_tell_them_apart() {
    assert_eq!(pair(5.2, 1.0, 2), ("5.2".into(), "1".into()));
    assert_eq!(pair(33.333_333, 1.0, 2), ("33.33".into(), "1".into()));
    assert_eq!(pair(1.0001, 1.0, 2), ("1.0001".into(), "1".into()));
    assert_eq!(pair(211.96, 100.0, 1), ("212".into(), "100".into()));
    assert_eq!(pair(0.75, 0.5, 1), ("0.8".into(), "0.5".into()));
    assert_eq!(trimmed(-0.0001, 2), "0");
    assert_eq!(signed("4.2"), "+4.2");
    assert_eq!(signed("-3"), "-3");
}

#[test]
fn an_analysis_becomes_the_status_entry() {
    let gates = Gates {
        max_error_rate: Some(0.01),
        ..Gates::default()
    };
    let a = analyse(1_700_000_000_000, &gates, &fast(52), &slow(0), None);
    let e = AnalysisEntry::from(&a);
    assert_eq!(e.at, 1_700_000_000_000);
    assert_eq!(e.verdict, "fail");
    assert_eq!(
        e.new,
        VersionFigures {
            requests: 1000,
            error_rate: Some(0.052),
            p50_ms: Some(50.0),
            p99_ms: Some(99.0),
        }
    );
    assert_eq!(e.baseline.p99_ms, Some(298.0));
    assert_eq!(e.reasons, ["max_error_rate: 5.2% > 1%"]);
    assert_eq!(Verdict::Inconclusive.to_string(), "inconclusive");
    assert_eq!(Verdict::Pass.to_string(), "pass");
}

fn any_window() -> impl Strategy<Value = Window> {
    (0u64..400, proptest::collection::vec(0u64..200, 4)).prop_map(|(errors, counts)| {
        let requests = counts.iter().sum::<u64>();
        Window {
            requests,
            errors: errors.min(requests),
            latency: Histogram::new(bounds(), counts).unwrap(),
            reset: false,
        }
    })
}

fn any_gates() -> impl Strategy<Value = Gates> {
    (
        0u64..500,
        proptest::option::of(0.0f64..0.2),
        proptest::option::of(0.0f64..0.2),
        proptest::option::of(0u64..1000),
        proptest::option::of(0u64..500),
    )
        .prop_map(|(min, rate, rise, p99, p99_rise)| Gates {
            min_requests: min,
            max_error_rate: rate,
            max_error_increase: rise,
            max_p99: p99.map(Duration::from_millis),
            max_p99_increase: p99_rise.map(Duration::from_millis),
            prometheus: None,
        })
}

proptest! {
    #[test]
    fn fewer_than_min_requests_never_passes_or_fails(
        gates in any_gates(), new in any_window(), baseline in any_window()
    ) {
        let a = analyse(0, &gates, &new, &baseline, None);
        if new.requests < gates.min_requests {
            prop_assert_eq!(a.verdict, Verdict::Inconclusive);
            prop_assert_eq!(a.reasons.len(), 1);
            prop_assert_eq!(a.reasons[0].gate, Gate::MinRequests);
        } else {
            prop_assert!(a.reasons.iter().all(|r| r.gate != Gate::MinRequests));
        }
    }

    #[test]
    fn identical_versions_never_cross_a_relative_gate(gates in any_gates(), w in any_window()) {
        let a = analyse(0, &gates, &w, &w, None);
        prop_assert!(!a
            .reasons
            .iter()
            .any(|r| r.gate.is_relative() && r.finding == Finding::Crossed));
    }

    #[test]
    fn a_check_fails_exactly_when_a_gate_is_crossed(
        gates in any_gates(), new in any_window(), baseline in any_window()
    ) {
        let a = analyse(0, &gates, &new, &baseline, None);
        let crossed = a.reasons.iter().any(|r| r.finding == Finding::Crossed);
        prop_assert_eq!(a.verdict == Verdict::Fail, crossed);
        prop_assert_eq!(a.failure().is_some(), crossed);
        for r in &a.reasons {
            let text = r.to_string();
            let prefix = format!("{}: ", r.gate.as_str());
        prop_assert!(text.starts_with(&prefix), "{}", text);
        }
    }

    #[test]
    fn a_window_between_readings_is_what_was_added(
        start in proptest::collection::vec(0u64..1000, 4),
        added in proptest::collection::vec(0u64..1000, 4),
        errors in 0u64..100,
    ) {
        let end: Vec<u64> = start.iter().zip(&added).map(|(s, a)| s + a).collect();
        let at = |counts: Vec<u64>, errors| Snapshot {
            requests: counts.iter().sum(),
            errors,
            latency: Histogram::new(bounds(), counts).unwrap(),
        };
        let started = start.iter().sum::<u64>();
        let w = Window::between(&at(start, 0), &at(end, errors.min(started)));
        prop_assert!(!w.reset);
        prop_assert_eq!(w.requests, added.iter().sum::<u64>());
        prop_assert_eq!(w.latency.counts(), &added[..]);
    }

    #[test]
    fn percentiles_are_ordered_and_inside_the_finite_bounds(w in any_window()) {
        let f = w.figures();
        if let (Some(p50), Some(p99)) = (f.p50_ms, f.p99_ms) {
            prop_assert!(0.0 <= p50 && p50 <= p99 && p99 <= 1000.0, "{} {}", p50, p99);
        } else {
            prop_assert_eq!(w.latency.total(), 0);
        }
    }
}
