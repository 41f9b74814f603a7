//! The bodies of progressive releases (DESIGN §8): a status's analysis
//! entry and the release report carry the keys DESIGN names, and read
//! back what they write.

use serde_json::{Value, json};
use turnout_api_types::{
    AnalysisEntry, ConversionComparison, LatencyComparison, ReleaseReport, VariantReport,
    VersionFigures,
};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn entry() -> AnalysisEntry {
    AnalysisEntry {
        at: 1_700_000_000_000,
        verdict: "fail".into(),
        new: VersionFigures {
            requests: 1000,
            error_rate: Some(0.052),
            p50_ms: Some(12.5),
            p99_ms: Some(311.0),
        },
        baseline: VersionFigures {
            requests: 0,
            error_rate: None,
            p50_ms: None,
            p99_ms: None,
        },
        reasons: vec!["max_error_rate: 5.2% > 1%".into()],
    }
}

#[test]
fn an_analysis_entry_has_designs_keys_and_reads_back() {
    let e = entry();
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(keys(&v), ["at", "baseline", "new", "reasons", "verdict"]);
    assert_eq!(
        keys(&v["new"]),
        ["error_rate", "p50_ms", "p99_ms", "requests"]
    );
    assert_eq!(v["baseline"]["p99_ms"], Value::Null);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["reasons"], json!(["max_error_rate: 5.2% > 1%"]));
    let back: AnalysisEntry = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
}

#[test]
fn an_analysis_entry_without_reasons_or_figures_reads() {
    let e: AnalysisEntry = serde_json::from_value(json!({
        "at": 5, "verdict": "inconclusive",
        "new": {"requests": 3}, "baseline": {"requests": 0}
    }))
    .unwrap();
    assert_eq!(e.verdict, "inconclusive");
    assert!(e.reasons.is_empty());
    assert_eq!(e.new.error_rate, None);
}

#[test]
fn a_report_has_designs_keys_and_reads_back() {
    let variant = |service: &str, conversions| VariantReport {
        service: service.into(),
        route: "web.localhost".into(),
        role: if service == "web" { "old" } else { "new" }.into(),
        clients: 200,
        requests: 900,
        error_rate: Some(0.0),
        p50_ms: Some(6.5),
        p99_ms: Some(48.0),
        conversions,
        conversion_rate: Some(conversions as f64 / 200.0),
    };
    let r = ReleaseReport {
        release_id: 3,
        strategy: "ab-test".into(),
        running: true,
        since_ms: 1_700_000_000_000,
        route: "web.localhost".into(),
        variants: vec![variant("web", 20), variant("web-v2", 60)],
        conversion: ConversionComparison {
            difference: Some(0.2),
            p_value: Some(5.7e-7),
            significant: true,
            confidence: 0.95,
        },
        latency: LatencyComparison {
            p_value: Some(1.0),
            significant: false,
        },
    };
    let v = serde_json::to_value(&r).unwrap();
    // DESIGN §8's keys, and which release and route the figures are of.
    assert_eq!(
        keys(&v),
        [
            "conversion",
            "latency",
            "release_id",
            "route",
            "running",
            "since_ms",
            "strategy",
            "variants"
        ]
    );
    assert_eq!(
        keys(&v["variants"][0]),
        [
            "clients",
            "conversion_rate",
            "conversions",
            "error_rate",
            "p50_ms",
            "p99_ms",
            "requests",
            "role",
            "route",
            "service"
        ]
    );
    assert_eq!(
        keys(&v["conversion"]),
        ["confidence", "difference", "p_value", "significant"]
    );
    assert_eq!(keys(&v["latency"]), ["p_value", "significant"]);
    assert_eq!(v["variants"][1]["service"], "web-v2");
    let back: ReleaseReport = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}
