//! Reading the template's `x-turnout` block: `release` into a
//! [`ReleaseBlock`], with where each field is written ([`PlanSpans`]).
//! Only the syntax of each value is checked here (a duration with its
//! unit, a rate, a whole number); ranges and everything that depends on
//! other fields are [`super::ReleasePlan::with_overrides`]'s, which the
//! parser runs on the block with no overrides.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Sink, did_you_mean};
use crate::rules::{GoalSpec, MatchSpec, RuleSpec};
use crate::yaml::{Map, Node, Value};

use super::units::{ValueError, parse_duration, parse_pause, parse_rate};
use super::{
    AbBlock, AnalysisBlock, CanaryBlock, PlanSpans, PrometheusGate, ReleaseBlock, Threshold,
    parse_strategy,
};

const X_TURNOUT_KEYS: &[&str] = &["release"];
const RELEASE_KEYS: &[&str] = &[
    "strategy",
    "steps",
    "pause",
    "canary",
    "analysis",
    "on_success",
    "lanes",
    "ab",
];
const CANARY_KEYS: &[&str] = &["share", "scale"];
const ANALYSIS_KEYS: &[&str] = &[
    "window",
    "min_requests",
    "max_error_rate",
    "max_error_increase",
    "max_p99",
    "max_p99_increase",
    "prometheus",
];
const PROMETHEUS_KEYS: &[&str] = &["url", "query", "max"];
const AB_KEYS: &[&str] = &["rules", "share", "goal"];
const RULE_KEYS: &[&str] = &["match", "service"];
const MATCH_KEYS: &[&str] = &["header", "cookie", "query"];
const GOAL_KEYS: &[&str] = &["path", "status"];

/// Reads the top-level `x-turnout` node. `None` when it has no `release`
/// (or it could not be read: the problems are in `sink`).
pub(crate) fn x_turnout(node: &Node, sink: &mut Sink) -> Option<(ReleaseBlock, PlanSpans)> {
    let path = FieldPath::root().key("x-turnout");
    if matches!(node.value, Value::Null) {
        return None;
    }
    let map = Map::read(node, &path, "x-turnout", sink)?;
    let mut out = None;
    for (key, key_node, value) in &map.entries {
        match key.as_ref() {
            "release" => {
                let mut spans = PlanSpans::default();
                spans.insert(String::new(), value.pos);
                if let Some(block) = release(value, &path.key("release"), &mut spans, sink) {
                    out = Some((block, spans));
                }
            }
            other => unknown(
                other,
                key_node,
                &path.key(other),
                X_TURNOUT_KEYS,
                "x-turnout",
                sink,
            ),
        }
    }
    out
}

fn unknown(key: &str, node: &Node, path: &FieldPath, known: &[&str], what: &str, sink: &mut Sink) {
    let d = Diagnostic::error(node.pos, path, format!("unknown field {key:?} in {what}"))
        .expected(format!("one of {}", known.join(", ")));
    sink.push(match did_you_mean(key, known) {
        Some(m) => d.hint(format!("did you mean {m:?}?")),
        None => d.hint(format!("{what} takes {}", known.join(", "))),
    });
}

/// The error of a value that does not read.
fn bad(node: &Node, path: &FieldPath, e: ValueError, sink: &mut Sink) {
    let mut d = Diagnostic::error(node.pos, path, e.message).hint(e.hint);
    // The message quotes a string already; a number is worth naming as one.
    if !matches!(node.value, Value::Str(_)) {
        d = d.found(node.describe());
    }
    sink.push(d);
}

/// A string value (numbers and booleans as written).
fn text(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<String> {
    match &node.value {
        Value::Str(_) | Value::Int(_) | Value::Float(_) => node.scalar_string(),
        _ => {
            sink.push(node.unexpected(path, format!("{what} must be a string"), "a string"));
            None
        }
    }
}

/// A whole number of 0 or more (a share may be written `5%`).
fn whole(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<u64> {
    let n = match &node.value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Str(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok()),
        _ => None,
    };
    if n.is_none() {
        sink.push(node.unexpected(
            path,
            format!("invalid {what}"),
            "a whole number of 0 or more",
        ));
    }
    n
}

fn share(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<u32> {
    whole(node, path, what, sink).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// A duration: a string with its unit. A bare number is the usual slip.
fn duration(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<super::Millis> {
    let s = text(node, path, "a duration", sink)?;
    parse_duration(&s)
        .map_err(|e| bad(node, path, e, sink))
        .ok()
}

fn rate(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<super::Rate> {
    let s = text(node, path, "a rate", sink)?;
    parse_rate(&s).map_err(|e| bad(node, path, e, sink)).ok()
}

fn release(
    node: &Node,
    path: &FieldPath,
    spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<ReleaseBlock> {
    if matches!(node.value, Value::Null) {
        return Some(ReleaseBlock::default());
    }
    let map = Map::read(node, path, "x-turnout.release", sink)?;
    let mut block = ReleaseBlock::default();
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(key.to_string(), value.pos);
        match key.as_ref() {
            "strategy" => {
                if let Some(s) = text(value, &p, "strategy", sink) {
                    block.strategy = parse_strategy(&s).map_err(|e| bad(value, &p, e, sink)).ok();
                }
            }
            "steps" => block.steps = steps(value, &p, spans, sink),
            "pause" => {
                if let Some(s) = text(value, &p, "pause", sink) {
                    block.pause = parse_pause(&s).map_err(|e| bad(value, &p, e, sink)).ok();
                }
            }
            "canary" => block.canary = canary(value, &p, spans, sink),
            "analysis" => block.analysis = analysis(value, &p, spans, sink),
            "on_success" => {
                if let Some(s) = text(value, &p, "on_success", sink) {
                    block.on_success = s.parse().map_err(|e| bad(value, &p, e, sink)).ok();
                }
            }
            "lanes" => match value.value {
                Value::Bool(b) => block.lanes = Some(b),
                _ => sink.push(
                    Diagnostic::error(value.pos, &p, "lanes must be true or false")
                        .found(value.describe())
                        .hint(
                            "`lanes: true` keeps new frontends on new backends during the release",
                        ),
                ),
            },
            "ab" => block.ab = ab(value, &p, spans, sink),
            other => unknown(other, key_node, &p, RELEASE_KEYS, "x-turnout.release", sink),
        }
    }
    Some(block)
}

fn steps(
    node: &Node,
    path: &FieldPath,
    spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<Vec<u32>> {
    let Value::Seq(items) = &node.value else {
        sink.push(
            node.unexpected(path, "steps must be a list", "a list of shares in percent")
                .hint("write e.g. `steps: [10, 50, 100]`"),
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        spans.insert(format!("steps[{i}]"), item.pos);
        out.push(share(item, &path.index(i), "step", sink)?);
    }
    Some(out)
}

fn canary(
    node: &Node,
    path: &FieldPath,
    spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<CanaryBlock> {
    let map = Map::read(node, path, "canary", sink)?;
    let mut c = CanaryBlock::default();
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(format!("canary.{key}"), value.pos);
        match key.as_ref() {
            "share" => c.share = share(value, &p, "share", sink),
            "scale" => c.scale = share(value, &p, "scale", sink),
            other => unknown(other, key_node, &p, CANARY_KEYS, "canary", sink),
        }
    }
    Some(c)
}

fn analysis(
    node: &Node,
    path: &FieldPath,
    spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<AnalysisBlock> {
    let map = Map::read(node, path, "analysis", sink)?;
    let mut a = AnalysisBlock::default();
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(format!("analysis.{key}"), value.pos);
        match key.as_ref() {
            "window" => a.window = duration(value, &p, sink),
            "min_requests" => a.min_requests = whole(value, &p, "min_requests", sink),
            "max_error_rate" => a.max_error_rate = rate(value, &p, sink),
            "max_error_increase" => a.max_error_increase = rate(value, &p, sink),
            "max_p99" => a.max_p99 = duration(value, &p, sink),
            "max_p99_increase" => a.max_p99_increase = duration(value, &p, sink),
            "prometheus" => a.prometheus = prometheus(value, &p, spans, sink),
            other => unknown(other, key_node, &p, ANALYSIS_KEYS, "analysis", sink),
        }
    }
    Some(a)
}

fn prometheus(
    node: &Node,
    path: &FieldPath,
    spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<PrometheusGate> {
    let map = Map::read(node, path, "prometheus", sink)?;
    let (mut url, mut query, mut max) = (None, None, None);
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(format!("analysis.prometheus.{key}"), value.pos);
        match key.as_ref() {
            "url" => url = text(value, &p, "url", sink),
            "query" => query = text(value, &p, "query", sink),
            "max" => match value.value {
                Value::Int(n) => max = Some(n as f64),
                Value::Float(x) if x.is_finite() => max = Some(x),
                _ => sink.push(
                    Diagnostic::error(value.pos, &p, "max must be a number")
                        .found(value.describe())
                        .hint("give the highest value the query may return, e.g. `max: 0.05`"),
                ),
            },
            other => unknown(other, key_node, &p, PROMETHEUS_KEYS, "prometheus", sink),
        }
    }
    let mut missing = Vec::new();
    for (name, set) in [
        ("url", url.is_some()),
        ("query", query.is_some()),
        ("max", max.is_some()),
    ] {
        if !set && !map.entries.iter().any(|(k, _, _)| k == name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        sink.push(
            Diagnostic::error(node.pos, path, format!("prometheus needs {}", missing.join(", ")))
                .hint("write e.g. `prometheus: { url: http://prometheus:9090, query: 'sum(rate(errors[1m]))', max: 5 }`"),
        );
    }
    Some(PrometheusGate {
        url: url?,
        query: query?,
        max: Threshold(max?),
    })
}

fn ab(node: &Node, path: &FieldPath, spans: &mut PlanSpans, sink: &mut Sink) -> Option<AbBlock> {
    let map = Map::read(node, path, "ab", sink)?;
    let mut a = AbBlock::default();
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(format!("ab.{key}"), value.pos);
        match key.as_ref() {
            "rules" => a.rules = rules(value, &p, spans, sink),
            "share" => a.share = share(value, &p, "share", sink),
            "goal" => a.goal = goal(value, &p, spans, sink),
            other => unknown(other, key_node, &p, AB_KEYS, "ab", sink),
        }
    }
    Some(a)
}

fn rules(node: &Node, path: &FieldPath, spans: &mut PlanSpans, sink: &mut Sink) -> Vec<RuleSpec> {
    let Value::Seq(items) = &node.value else {
        sink.push(
            Diagnostic::error(node.pos, path, "rules must be a list")
                .found(node.describe())
                .hint("write e.g. `rules: [{ match: { header: { x-variant: b } }, service: web-v2 }]`"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        spans.insert(format!("ab.rules[{i}]"), item.pos);
        let Some(map) = Map::read(item, &p, "an A/B rule", sink) else {
            continue;
        };
        let mut matches = None;
        let mut service = None;
        for (key, key_node, value) in &map.entries {
            let kp = p.key(key);
            spans.insert(format!("ab.rules[{i}].{key}"), value.pos);
            match key.as_ref() {
                "match" => matches = rule_match(value, &kp, sink),
                "service" => service = text(value, &kp, "service", sink),
                other => unknown(other, key_node, &kp, RULE_KEYS, "an A/B rule", sink),
            }
        }
        if service.is_none() && !map.entries.iter().any(|(k, _, _)| k == "service") {
            sink.push(
                Diagnostic::error(item.pos, &p, "the A/B rule names no service")
                    .hint("add `service: NAME`, the variant its requests go to"),
            );
        }
        if matches.is_none() && !map.entries.iter().any(|(k, _, _)| k == "match") {
            sink.push(
                Diagnostic::error(item.pos, &p, "the A/B rule has no match")
                    .hint("add e.g. `match: { header: { x-variant: b } }`"),
            );
        }
        if let (Some(matches), Some(service)) = (matches, service) {
            out.push(RuleSpec { matches, service });
        }
    }
    out
}

fn rule_match(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<MatchSpec> {
    let map = Map::read(node, path, "match", sink)?;
    let mut m = MatchSpec::default();
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        let target: &mut BTreeMap<String, String> = match key.as_ref() {
            "header" => &mut m.header,
            "cookie" => &mut m.cookie,
            "query" => &mut m.query,
            other => {
                unknown(other, key_node, &p, MATCH_KEYS, "match", sink);
                continue;
            }
        };
        let Some(values) = Map::read(value, &p, key, sink) else {
            continue;
        };
        for (name, _, v) in &values.entries {
            let name = if key == "header" {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            if let Some(v) = text(v, &p.key(&name), "a match value", sink) {
                target.insert(name, v);
            }
        }
    }
    Some(m)
}

fn goal(node: &Node, path: &FieldPath, spans: &mut PlanSpans, sink: &mut Sink) -> Option<GoalSpec> {
    let map = Map::read(node, path, "goal", sink)?;
    let (mut goal_path, mut status) = (None, None);
    for (key, key_node, value) in &map.entries {
        let p = path.key(key);
        spans.insert(format!("ab.goal.{key}"), value.pos);
        match key.as_ref() {
            "path" => goal_path = text(value, &p, "path", sink),
            "status" => status = text(value, &p, "status", sink),
            other => unknown(other, key_node, &p, GOAL_KEYS, "goal", sink),
        }
    }
    if goal_path.is_none() && !map.entries.iter().any(|(k, _, _)| k == "path") {
        sink.push(
            Diagnostic::error(node.pos, path, "the A/B goal has no path").hint(
                "give the path a conversion reaches, e.g. `goal: { path: /checkout, status: 2xx }`",
            ),
        );
    }
    Some(GoalSpec {
        path: goal_path?,
        status,
    })
}
