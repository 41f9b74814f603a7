//! Readers of a service's field values: scalars, counts, lists, key=value
//! maps, `command`, `build`, `restart`, durations, `healthcheck`,
//! `depends_on` and `deploy`, each reporting its own problems (the
//! container-only fields are in `container.rs`).

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, quoted};
use crate::template::{
    Build, Command, DependsCondition, HealthTest, Healthcheck, ResourceLimits, Restart,
};
use crate::yaml::{Map, Node, Value};

pub(super) fn scalar(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<String> {
    match node.scalar_string() {
        Some(s) => Some(s),
        None => {
            sink.push(node.unexpected(path, format!("{what} must be a string"), "a string"));
            None
        }
    }
}

pub(super) fn count(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<u32> {
    match &node.value {
        Value::Int(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Some(*n as u32),
        _ => {
            sink.push(node.unexpected(path, format!("invalid {what}"), "a positive integer"));
            None
        }
    }
}

pub(super) fn string_list(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> (Vec<String>, Vec<Pos>) {
    let Value::Seq(items) = &node.value else {
        sink.push(node.unexpected(
            path,
            "expected a list",
            "a list of strings (`- item` lines)",
        ));
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(s) = scalar(item, &path.index(i), "a list item", sink) {
            out.push(s);
            positions.push(item.pos);
        }
    }
    (out, positions)
}

/// Reads `environment` or `labels`: a list of `KEY=VALUE` or a map.
/// Returns (key, value, value position); `None` values are bare keys.
pub(super) fn key_values(
    node: &Node,
    path: &FieldPath,
    what: &str,
    sink: &mut Sink,
) -> Vec<(String, Option<String>, Pos)> {
    let mut out: Vec<(String, Option<String>, Pos)> = Vec::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                // As in compose, a list entry is text: `- 42` or `- true`
                // names no variable, so it is refused rather than read as
                // the key "42" (map values are stringified, below).
                let Value::Str(s) = &item.value else {
                    sink.push(
                        item.unexpected(
                            &path.index(i),
                            format!("an entry of {what} must be a string"),
                            "a string `KEY=VALUE` or `KEY`",
                        )
                        .hint("write the entry as `- KEY=VALUE`, or use the map form `KEY: VALUE`"),
                    );
                    continue;
                };
                let (k, v) = match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None if what == "labels" => (s.clone(), Some(String::new())),
                    None => (s.clone(), None),
                };
                if k.is_empty() || k.contains(char::is_whitespace) {
                    sink.push(
                        Diagnostic::error(
                            item.pos,
                            &path.index(i),
                            format!("invalid entry in {what}"),
                        )
                        .found(quoted(s))
                        .expected("`KEY=VALUE` with a key without spaces"),
                    );
                    continue;
                }
                if let Some((_, _, first)) = out.iter().find(|(k2, _, _)| *k2 == k) {
                    sink.push(
                        Diagnostic::error(
                            item.pos,
                            &path.key(&k),
                            format!("duplicate key {k:?} in {what}"),
                        )
                        .hint(format!(
                            "it is already set on line {}; keep one of the two",
                            first.line
                        )),
                    );
                    continue;
                }
                out.push((k, v, item.pos));
            }
        }
        Value::Map(_) => {
            if let Some(map) = Map::read(node, path, what, sink) {
                for (k, _, v) in map.entries {
                    let value = match &v.value {
                        Value::Null => None,
                        Value::Seq(_) | Value::Map(_) => {
                            sink.push(
                                v.unexpected(
                                    &path.key(&k),
                                    format!("a value in {what} must be a string"),
                                    "a string, number or boolean",
                                )
                                .hint("quote the value if it is meant as text"),
                            );
                            continue;
                        }
                        _ => v.scalar_string(),
                    };
                    let value = if what == "labels" {
                        Some(value.unwrap_or_default())
                    } else {
                        value
                    };
                    out.push((k.into_owned(), value, v.pos));
                }
            }
        }
        _ => sink.push(node.unexpected(
            path,
            format!("{what} must be a list or a map"),
            "a list of `KEY=VALUE` strings or a map of `KEY: VALUE`",
        )),
    }
    out
}

pub(super) fn command(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Command> {
    match &node.value {
        Value::Seq(_) => {
            let (args, _) = string_list(node, path, sink);
            if args.is_empty() {
                sink.push(
                    Diagnostic::error(node.pos, path, "command is an empty list")
                        .expected("the program and its arguments"),
                );
                return None;
            }
            Some(Command::Exec(args))
        }
        _ => {
            let s = scalar(node, path, "command", sink)?;
            if s.trim().is_empty() {
                sink.push(
                    Diagnostic::error(node.pos, path, "command is empty")
                        .expected("a command line, e.g. `turnout demo-app --text hi`"),
                );
                return None;
            }
            Some(Command::Shell(s))
        }
    }
}

pub(super) fn build(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Build> {
    if let Some(context) = node.scalar_string() {
        return Some(Build {
            context,
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        });
    }
    let map = Map::read(node, path, "build", sink)?;
    let mut b = Build {
        context: ".".into(),
        dockerfile: None,
        args: BTreeMap::new(),
        target: None,
    };
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        match k.as_ref() {
            "context" => b.context = scalar(v, &p, "build.context", sink).unwrap_or_default(),
            "dockerfile" => b.dockerfile = scalar(v, &p, "build.dockerfile", sink),
            "target" => b.target = scalar(v, &p, "build.target", sink),
            "args" => {
                for (k, v, _) in key_values(v, &p, "build.args", sink) {
                    b.args.insert(k, v.unwrap_or_default());
                }
            }
            other => sink.push(
                Diagnostic::warning(key_node.pos, &p, format!("turnout ignores build.{other}"))
                    .hint("only context, dockerfile, args and target are used"),
            ),
        }
    }
    Some(b)
}

pub(super) fn restart(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Restart> {
    let s = match &node.value {
        // `restart: no` needs no quotes here: YAML 1.2 reads it as a string;
        // `false` is read the same way for compose files written for 1.1.
        Value::Bool(false) => "no".to_string(),
        _ => scalar(node, path, "restart", sink)?,
    };
    let policy = match s.as_str() {
        "no" => Some(Restart::No),
        "always" => Some(Restart::Always),
        "unless-stopped" => Some(Restart::UnlessStopped),
        "on-failure" => Some(Restart::OnFailure { max_retries: None }),
        other => other
            .strip_prefix("on-failure:")
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| Restart::OnFailure {
                max_retries: Some(n),
            }),
    };
    if policy.is_none() {
        sink.push(
            Diagnostic::error(node.pos, path, "invalid restart policy")
                .found(quoted(&s))
                .expected("no, always, on-failure, on-failure:<max retries> or unless-stopped"),
        );
    }
    policy
}

/// Parses a compose duration (`1m30s`, `10s`, `500ms`) into milliseconds.
pub(super) fn duration_ms(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(total.round() as u64)
}

pub(super) fn healthcheck(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Healthcheck> {
    let map = Map::read(node, path, "healthcheck", sink)?;
    let mut h = Healthcheck {
        test: None,
        interval_ms: None,
        timeout_ms: None,
        retries: None,
        start_period_ms: None,
        disable: false,
    };
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        let duration = |sink: &mut Sink| {
            let text = v.scalar_string().unwrap_or_default();
            let ms = duration_ms(&text);
            if ms.is_none() {
                sink.push(v.unexpected(
                    &p,
                    format!("invalid duration in healthcheck.{k}"),
                    "a duration with a unit, e.g. 10s, 1m30s, 500ms",
                ));
            }
            ms
        };
        match k.as_ref() {
            "test" => match &v.value {
                Value::Seq(_) => {
                    let (args, _) = string_list(v, &p, sink);
                    match args.split_first() {
                        Some((first, rest)) if first == "CMD" && !rest.is_empty() => {
                            h.test = Some(HealthTest::Cmd(rest.to_vec()));
                        }
                        Some((first, rest)) if first == "CMD-SHELL" && rest.len() == 1 => {
                            h.test = Some(HealthTest::Shell(rest[0].clone()));
                        }
                        Some((first, [])) if first == "NONE" => h.disable = true,
                        _ => sink.push(
                            Diagnostic::error(v.pos, &p, "invalid healthcheck test")
                                .expected("[\"CMD\", prog, args...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]"),
                        ),
                    }
                }
                _ => {
                    if let Some(s) = scalar(v, &p, "healthcheck.test", sink) {
                        h.test = Some(HealthTest::Shell(s));
                    }
                }
            },
            "interval" => h.interval_ms = duration(sink),
            "timeout" => h.timeout_ms = duration(sink),
            "start_period" => h.start_period_ms = duration(sink),
            "retries" => match &v.value {
                Value::Int(n) if *n >= 0 && *n <= i64::from(u32::MAX) => {
                    h.retries = Some(*n as u32)
                }
                _ => sink.push(v.unexpected(
                    &p,
                    "invalid healthcheck.retries",
                    "a non-negative integer",
                )),
            },
            "disable" => match &v.value {
                Value::Bool(b) => h.disable = *b,
                _ => sink.push(v.unexpected(&p, "invalid healthcheck.disable", "true or false")),
            },
            "start_interval" => sink.push(
                Diagnostic::warning(
                    key_node.pos,
                    &p,
                    "turnout ignores healthcheck.start_interval",
                )
                .hint("turnout probes every 100 ms until the first success anyway"),
            ),
            _ => sink.push(
                Diagnostic::error(key_node.pos, &p, format!("unknown healthcheck field {k:?}"))
                    .expected("test, interval, timeout, retries, start_period or disable"),
            ),
        }
    }
    let test_given = map.entries.iter().any(|(k, _, _)| k == "test");
    if h.test.is_none() && !h.disable && !test_given {
        sink.push(
            Diagnostic::error(node.pos, path, "healthcheck has no test")
                .hint("add `test: [\"CMD\", ...]`, or `disable: true`"),
        );
    }
    Some(h)
}

/// A list of names, or a map of name → settings (`depends_on`,
/// `networks`): each entry's name, position and path, and its settings'
/// node in the map form (`None` for a list entry). `what` names the field,
/// `expected` what it should have been.
pub(super) fn named_entries<'a>(
    node: &'a Node,
    path: &FieldPath,
    what: &str,
    expected: &str,
    sink: &mut Sink,
) -> Vec<(String, Pos, FieldPath, Option<&'a Node>)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let p = path.index(i);
                scalar(item, &p, &format!("a {what} entry"), sink).map(|s| (s, item.pos, p, None))
            })
            .collect(),
        Value::Map(_) => Map::read(node, path, what, sink)
            .map(|m| {
                m.entries
                    .into_iter()
                    .map(|(k, key_node, v)| {
                        let p = path.key(&k);
                        (k.into_owned(), key_node.pos, p, Some(v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => {
            sink.push(node.unexpected(path, format!("{what} must be a list or a map"), expected));
            Vec::new()
        }
    }
}

/// Reads `depends_on`: a list of names, or a map of name → `{condition,
/// restart, required}`. Returns (name, position, path, condition).
pub(super) fn depends_on(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> Vec<(String, Pos, FieldPath, DependsCondition)> {
    named_entries(node, path, "depends_on", "a list of service names", sink)
        .into_iter()
        .map(|(name, pos, p, settings)| {
            let condition = match settings {
                Some(v) => depends_condition(v, &p, sink),
                None => DependsCondition::ServiceStarted,
            };
            (name, pos, p, condition)
        })
        .collect()
}

/// The settings of one entry of `depends_on` in the map form.
fn depends_condition(node: &Node, path: &FieldPath, sink: &mut Sink) -> DependsCondition {
    let mut condition = DependsCondition::ServiceStarted;
    if matches!(node.value, Value::Null) {
        return condition;
    }
    let Some(map) = Map::read(node, path, "a depends_on entry", sink) else {
        return condition;
    };
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        match k.as_ref() {
            "condition" => match scalar(v, &p, "depends_on condition", sink).as_deref() {
                Some("service_started") => condition = DependsCondition::ServiceStarted,
                Some("service_healthy") => condition = DependsCondition::ServiceHealthy,
                Some("service_completed_successfully") => {
                    condition = DependsCondition::ServiceCompletedSuccessfully;
                }
                Some(other) => sink.push(
                    Diagnostic::error(v.pos, &p, format!("unknown depends_on condition {other:?}"))
                        .expected(
                            "service_started, service_healthy or service_completed_successfully",
                        ),
                ),
                None => {}
            },
            "restart" | "required" => {
                if !matches!(v.value, Value::Bool(_)) {
                    sink.push(v.unexpected(
                        &p,
                        format!("depends_on {k} must be true or false"),
                        "true or false",
                    ));
                } else if k == "restart" {
                    sink.push(
                        Diagnostic::warning(key_node.pos, &p, "turnout ignores depends_on restart")
                            .hint("turnout restarts an instance only when it fails its own checks"),
                    );
                } else if matches!(v.value, Value::Bool(false)) {
                    sink.push(
                        Diagnostic::warning(
                            key_node.pos,
                            &p,
                            "turnout ignores depends_on required: false",
                        )
                        .hint("the dependency must be a service of the same template"),
                    );
                }
            }
            other => sink.push(
                Diagnostic::error(
                    key_node.pos,
                    &p,
                    format!("unknown depends_on field {other:?}"),
                )
                .expected("condition, restart or required"),
            ),
        }
    }
    condition
}

/// What `deploy:` holds that turnout uses.
#[derive(Default)]
pub(super) struct Deploy {
    pub(super) replicas: Option<(u32, Pos)>,
    /// `deploy.resources.limits`, with where `resources` is written.
    pub(super) limits: Option<(ResourceLimits, Pos, FieldPath)>,
}

pub(super) fn deploy(node: &Node, path: &FieldPath, sink: &mut Sink) -> Deploy {
    let mut out = Deploy::default();
    let Some(map) = Map::read(node, path, "deploy", sink) else {
        return out;
    };
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        match k.as_ref() {
            "replicas" => out.replicas = count(v, &p, "deploy.replicas", sink).map(|n| (n, v.pos)),
            "resources" => {
                out.limits = Some((super::container::resources(v, &p, sink), key_node.pos, p));
            }
            _ => sink.push(
                Diagnostic::warning(key_node.pos, &p, format!("turnout ignores deploy.{k}"))
                    .hint("only deploy.replicas and deploy.resources.limits are used"),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("10s"), Some(10_000));
        assert_eq!(duration_ms("1m30s"), Some(90_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("1.5s"), Some(1_500));
        assert_eq!(duration_ms("1h"), Some(3_600_000));
        assert_eq!(duration_ms("10"), None);
        assert_eq!(duration_ms("s"), None);
        assert_eq!(duration_ms("10x"), None);
    }
}
