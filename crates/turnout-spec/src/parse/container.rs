//! Readers of the compose fields that only a container runtime uses
//! (DESIGN §6.1; `volumes` is in `volumes.rs`): `tmpfs`, `user`, `stop_signal`,
//! `stop_grace_period`, `extra_hosts`, `dns`, `cap_add`/`cap_drop`,
//! `read_only`, `init`, `ulimits`, `deploy.resources.limits`,
//! `pull_policy`, `container_name`, `networks`, and the top-level
//! `volumes:` and `networks:` they refer to.

use std::collections::BTreeMap;

use super::fields::{duration_ms, named_entries, scalar, string_list};
use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean, quoted};
use crate::template::{
    ExtraHost, NetworkDecl, PullPolicy, ResourceLimits, ServiceNetwork, Ulimit, VolumeDecl,
};
use crate::yaml::{Map, Node, Value};

/// A boolean field (`read_only`, `init`).
pub(super) fn boolean(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        _ => {
            sink.push(node.unexpected(
                path,
                format!("{what} must be true or false"),
                "true or false",
            ));
            None
        }
    }
}

/// A string or a list of strings (`dns`, `tmpfs`, `env_file`).
pub(super) fn one_or_list(
    node: &Node,
    path: &FieldPath,
    what: &str,
    sink: &mut Sink,
) -> Vec<(String, Pos)> {
    match &node.value {
        Value::Seq(_) => {
            let (items, positions) = string_list(node, path, sink);
            items.into_iter().zip(positions).collect()
        }
        _ => match node.scalar_string() {
            Some(s) => vec![(s, node.pos)],
            None => {
                sink.push(node.unexpected(
                    path,
                    format!("{what} must be a string or a list"),
                    "a string, or a list of strings",
                ));
                Vec::new()
            }
        },
    }
}

/// `tmpfs`: absolute mount points, each with optional `:options`.
pub(super) fn tmpfs(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<String> {
    let many = matches!(node.value, Value::Seq(_));
    let mut out = Vec::new();
    for (i, (entry, pos)) in one_or_list(node, path, "tmpfs", sink)
        .into_iter()
        .enumerate()
    {
        let p = if many { path.index(i) } else { path.clone() };
        let target = entry.split(':').next().unwrap_or_default();
        if !target.starts_with('/') {
            sink.push(
                Diagnostic::error(pos, &p, "a tmpfs mount point must be an absolute path")
                    .found(quoted(&entry))
                    .expected("a path in the container, e.g. /run or /tmp:size=64m"),
            );
            continue;
        }
        out.push(entry);
    }
    out
}

/// Volume names and network names, as compose allows them.
pub(super) fn valid_resource_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Top-level `volumes:` or `networks:`: names with optional `external`,
/// `name` and `driver`; other keys are kept out of the model.
fn declarations(
    node: &Node,
    path: &FieldPath,
    what: &str,
    sink: &mut Sink,
) -> Vec<(String, bool, Option<String>, Option<String>)> {
    if matches!(node.value, Value::Null) {
        return Vec::new();
    }
    let Some(map) = Map::read(node, path, what, sink) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, name_node, v) in &map.entries {
        let p = path.key(name);
        if !valid_resource_name(name) {
            sink.push(
                Diagnostic::error(
                    name_node.pos,
                    &p,
                    format!("invalid name {name:?} in top-level {what}"),
                )
                .expected("letters, digits, `_`, `.` and `-`, starting with a letter or digit"),
            );
            continue;
        }
        let (mut external, mut real_name, mut driver) = (false, None, None);
        if !matches!(v.value, Value::Null)
            && let Some(fields) = Map::read(v, &p, &format!("{what}.{name}"), sink)
        {
            for (k, _, fv) in &fields.entries {
                let fp = p.key(k);
                match k.as_ref() {
                    "external" => external = boolean(fv, &fp, "external", sink).unwrap_or(false),
                    "name" => real_name = scalar(fv, &fp, "name", sink),
                    "driver" => driver = scalar(fv, &fp, "driver", sink),
                    // driver_opts, ipam, labels, attachable, ...: passed
                    // over; the top-level warning already says the
                    // process runtime ignores the whole block.
                    _ => {}
                }
            }
        }
        out.push((name.to_string(), external, real_name, driver));
    }
    out
}

/// Top-level `volumes:`.
pub(super) fn volume_decls(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> BTreeMap<String, VolumeDecl> {
    declarations(node, path, "volumes", sink)
        .into_iter()
        .map(|(n, external, name, driver)| {
            (
                n,
                VolumeDecl {
                    external,
                    name,
                    driver,
                },
            )
        })
        .collect()
}

/// Top-level `networks:`.
pub(super) fn network_decls(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> BTreeMap<String, NetworkDecl> {
    declarations(node, path, "networks", sink)
        .into_iter()
        .map(|(n, external, name, driver)| {
            (
                n,
                NetworkDecl {
                    external,
                    name,
                    driver,
                },
            )
        })
        .collect()
}

/// A service's `networks:`: a list of names, or a map of name → null or
/// `{aliases, ipv4_address, ipv6_address}`.
pub(super) fn service_networks(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> Vec<(String, ServiceNetwork, Pos, FieldPath)> {
    let expected = "a list of network names, or a map of name to settings";
    named_entries(node, path, "networks", expected, sink)
        .into_iter()
        .map(|(name, pos, p, settings)| {
            let mut net = ServiceNetwork::default();
            if let Some(v) = settings.filter(|v| !matches!(v.value, Value::Null))
                && let Some(fields) = Map::read(v, &p, &format!("networks.{name}"), sink)
            {
                for (k, key_node, fv) in &fields.entries {
                    let fp = p.key(k);
                    match k.as_ref() {
                        "aliases" => net.aliases = string_list(fv, &fp, sink).0,
                        "ipv4_address" => net.ipv4_address = scalar(fv, &fp, "ipv4_address", sink),
                        "ipv6_address" => net.ipv6_address = scalar(fv, &fp, "ipv6_address", sink),
                        other => sink.push(
                            Diagnostic::warning(
                                key_node.pos,
                                &fp,
                                format!("turnout ignores networks.{name}.{other}"),
                            )
                            .hint("only aliases, ipv4_address and ipv6_address are used"),
                        ),
                    }
                }
            }
            (name, net, pos, p)
        })
        .collect()
}

/// `extra_hosts`: `host:ip` / `host=ip` entries, or a map host → ip.
pub(super) fn extra_hosts(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<ExtraHost> {
    let mut out = Vec::new();
    let mut push = |host: &str, ip: &str, pos: Pos, p: &FieldPath, sink: &mut Sink| {
        if host.is_empty() || ip.is_empty() || host.contains(char::is_whitespace) {
            sink.push(
                Diagnostic::error(pos, p, "invalid extra_hosts entry")
                    .found(quoted(&format!("{host}:{ip}")))
                    .expected("`host:address`, e.g. `db.local:10.0.0.5` or `gw:host-gateway`"),
            );
            return;
        }
        out.push(ExtraHost {
            host: host.to_string(),
            ip: ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        });
    };
    match &node.value {
        Value::Seq(_) => {
            let (items, positions) = string_list(node, path, sink);
            for (i, (entry, pos)) in items.iter().zip(positions).enumerate() {
                // `host=ip` is compose's newer spelling; `host:ip` splits
                // at the first `:` so that IPv6 addresses stay whole.
                let split = entry.split_once('=').or_else(|| entry.split_once(':'));
                match split {
                    Some((h, ip)) => push(h, ip, pos, &path.index(i), sink),
                    None => push(entry, "", pos, &path.index(i), sink),
                }
            }
        }
        Value::Map(_) => {
            if let Some(map) = Map::read(node, path, "extra_hosts", sink) {
                for (host, _, v) in &map.entries {
                    let p = path.key(host);
                    if let Some(ip) = scalar(v, &p, "an extra_hosts address", sink) {
                        push(host, &ip, v.pos, &p, sink);
                    }
                }
            }
        }
        _ => sink.push(node.unexpected(
            path,
            "extra_hosts must be a list or a map",
            "a list of `host:address` strings, or a map of host to address",
        )),
    }
    out
}

/// `cap_add` / `cap_drop`: capability names, normalised to upper case
/// without the `CAP_` prefix.
pub(super) fn capabilities(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<String> {
    let (items, positions) = string_list(node, path, sink);
    let mut out = Vec::new();
    for (i, (cap, pos)) in items.iter().zip(positions).enumerate() {
        let upper = cap.to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            sink.push(
                Diagnostic::error(pos, &path.index(i), format!("invalid capability {cap:?}"))
                    .expected("a Linux capability such as NET_ADMIN or SYS_PTRACE, or ALL"),
            );
            continue;
        }
        if !out.iter().any(|c| c == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// Signal names compose and the engine accept (`SIG` optional).
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// `stop_signal`: a signal name (normalised to `SIGTERM`) or number.
pub(super) fn stop_signal(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<String> {
    let s = scalar(node, path, "stop_signal", sink)?;
    if let Ok(n) = s.parse::<u8>()
        && (1..=64).contains(&n)
    {
        return Some(n.to_string());
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = bare
        .strip_prefix("RTMIN")
        .or_else(|| bare.strip_prefix("RTMAX"))
        .is_some_and(|rest| {
            rest.is_empty()
                || rest[1..].parse::<u8>().is_ok()
                    && (rest.starts_with('+') || rest.starts_with('-'))
        });
    if SIGNALS.contains(&bare) || realtime {
        return Some(format!("SIG{bare}"));
    }
    let names: Vec<String> = SIGNALS.iter().map(|n| format!("SIG{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut d = Diagnostic::error(node.pos, path, format!("unknown stop_signal {s:?}"))
        .expected("a signal name such as SIGTERM, SIGINT or SIGQUIT, or its number");
    if let Some(m) = did_you_mean(&format!("SIG{bare}"), &names) {
        d = d.hint(format!("did you mean {m:?}?"));
    }
    sink.push(d);
    None
}

/// `stop_grace_period`: a compose duration (`10s`, `1m30s`).
pub(super) fn grace_period(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<u64> {
    let text = node.scalar_string().unwrap_or_default();
    let ms = duration_ms(&text);
    if ms.is_none() {
        sink.push(node.unexpected(
            path,
            "invalid duration in stop_grace_period",
            "a duration with a unit, e.g. 10s, 1m30s, 500ms",
        ));
    }
    ms
}

/// The resource names of `ulimits`.
const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `ulimits`: name → a number, or `{soft, hard}`.
pub(super) fn ulimits(node: &Node, path: &FieldPath, sink: &mut Sink) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Some(map) = Map::read(node, path, "ulimits", sink) else {
        return out;
    };
    for (name, name_node, v) in &map.entries {
        let p = path.key(name);
        if !ULIMITS.contains(&name.as_ref()) {
            let mut d = Diagnostic::error(name_node.pos, &p, format!("unknown ulimit {name:?}"))
                .expected(ULIMITS.join(", "));
            if let Some(m) = did_you_mean(name, ULIMITS) {
                d = d.hint(format!("did you mean {m:?}?"));
            }
            sink.push(d);
            continue;
        }
        let limit = |node: &Node, p: &FieldPath, sink: &mut Sink| match node.value {
            Value::Int(n) if n >= -1 => Some(n),
            _ => {
                sink.push(node.unexpected(
                    p,
                    format!("invalid ulimit {name}"),
                    "an integer (-1 for unlimited)",
                ));
                None
            }
        };
        let value = match &v.value {
            Value::Map(_) => {
                let Some(fields) = Map::read(v, &p, &format!("ulimits.{name}"), sink) else {
                    continue;
                };
                let (mut soft, mut hard) = (None, None);
                for (k, key_node, fv) in &fields.entries {
                    let fp = p.key(k);
                    match k.as_ref() {
                        "soft" => soft = limit(fv, &fp, sink),
                        "hard" => hard = limit(fv, &fp, sink),
                        other => sink.push(
                            Diagnostic::error(
                                key_node.pos,
                                &fp,
                                format!("unknown field {other:?} in ulimits.{name}"),
                            )
                            .expected("soft and hard"),
                        ),
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) => {
                        if hard != -1 && (soft == -1 || soft > hard) {
                            sink.push(
                                Diagnostic::error(v.pos, &p, format!("ulimits.{name}: soft limit {soft} is above the hard limit {hard}"))
                                    .hint("the soft limit must not exceed the hard one"),
                            );
                            continue;
                        }
                        Ulimit { soft, hard }
                    }
                    _ => {
                        if !fields.entries.iter().any(|(k, _, _)| k == "soft")
                            || !fields.entries.iter().any(|(k, _, _)| k == "hard")
                        {
                            sink.push(
                                Diagnostic::error(
                                    v.pos,
                                    &p,
                                    format!("ulimits.{name} needs soft and hard"),
                                )
                                .hint(format!(
                                    "write `{name}: {{soft: N, hard: M}}`, or `{name}: N` for both"
                                )),
                            );
                        }
                        continue;
                    }
                }
            }
            _ => match limit(v, &p, sink) {
                Some(n) => Ulimit { soft: n, hard: n },
                None => continue,
            },
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// Parses a compose memory size (`512m`, `1.5G`, `1gb`, `1024`) into
/// bytes; units are binary and case-insensitive, as the engine reads them.
pub(super) fn memory_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

/// `deploy.resources`: `limits` (cpus, memory) are used; `reservations`
/// and the rest warn.
pub(super) fn resources(node: &Node, path: &FieldPath, sink: &mut Sink) -> ResourceLimits {
    let mut out = ResourceLimits::default();
    let Some(map) = Map::read(node, path, "deploy.resources", sink) else {
        return out;
    };
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        if k != "limits" {
            sink.push(
                Diagnostic::warning(
                    key_node.pos,
                    &p,
                    format!("turnout ignores deploy.resources.{k}"),
                )
                .hint("only deploy.resources.limits (cpus, memory) is used"),
            );
            continue;
        }
        let Some(limits) = Map::read(v, &p, "deploy.resources.limits", sink) else {
            continue;
        };
        for (lk, lk_node, lv) in &limits.entries {
            let lp = p.key(lk);
            match lk.as_ref() {
                "cpus" => {
                    let text = lv.scalar_string().unwrap_or_default();
                    match text.trim().parse::<f64>() {
                        Ok(cpus) if cpus > 0.0 && cpus <= 4096.0 => {
                            out.nano_cpus = Some((cpus * 1e9).round() as u64);
                        }
                        _ => sink.push(lv.unexpected(
                            &lp,
                            "invalid deploy.resources.limits.cpus",
                            "a positive number of CPUs, e.g. 0.5 or '2'",
                        )),
                    }
                }
                "memory" => {
                    let text = lv.scalar_string().unwrap_or_default();
                    match memory_bytes(&text) {
                        Some(bytes) => out.memory_bytes = Some(bytes),
                        None => sink.push(lv.unexpected(
                            &lp,
                            "invalid deploy.resources.limits.memory",
                            "a size with a unit, e.g. 512m, 1.5G, 2gb (or bytes)",
                        )),
                    }
                }
                other => sink.push(
                    Diagnostic::warning(
                        lk_node.pos,
                        &lp,
                        format!("turnout ignores deploy.resources.limits.{other}"),
                    )
                    .hint("only cpus and memory are used"),
                ),
            }
        }
    }
    out
}

/// `pull_policy`.
pub(super) fn pull_policy(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<PullPolicy> {
    let s = scalar(node, path, "pull_policy", sink)?;
    let policy = match s.as_str() {
        "always" => Some(PullPolicy::Always),
        "never" => Some(PullPolicy::Never),
        "missing" | "if_not_present" => Some(PullPolicy::Missing),
        "build" => Some(PullPolicy::Build),
        _ => None,
    };
    if policy.is_none() {
        let mut d = Diagnostic::error(node.pos, path, format!("unsupported pull_policy {s:?}"))
            .expected("always, never, missing (if_not_present) or build");
        if s == "daily" || s == "weekly" || s.starts_with("every_") {
            d = d.hint("turnout never pulls on a schedule; use `always` or `missing`");
        }
        sink.push(d);
    }
    policy
}

/// `container_name`: a name the engine accepts.
pub(super) fn container_name(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<String> {
    let s = scalar(node, path, "container_name", sink)?;
    if !valid_resource_name(&s) {
        sink.push(
            Diagnostic::error(node.pos, path, format!("invalid container_name {s:?}"))
                .expected("letters, digits, `_`, `.` and `-`, starting with a letter or digit"),
        );
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(memory_bytes("1024"), Some(1024));
        assert_eq!(memory_bytes("512m"), Some(512 << 20));
        assert_eq!(memory_bytes("1.5G"), Some(3 << 29));
        assert_eq!(memory_bytes("2gb"), Some(2 << 30));
        assert_eq!(memory_bytes("64KiB"), Some(64 << 10));
        assert_eq!(memory_bytes("lots"), None);
        assert_eq!(memory_bytes("1x"), None);
        assert_eq!(memory_bytes("0"), None);
    }
}
