//! A service's `volumes:` in the short (`source:target[:mode]`) and the
//! long syntax (DESIGN §6.1).

use super::container::{boolean, valid_resource_name};
use super::fields::scalar;
use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean, quoted};
use crate::template::{VolumeKind, VolumeMount};
use crate::yaml::{Map, Node, Value};

/// Options of the short volume syntax (after the second `:`).
const VOLUME_MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "cached",
    "delegated",
    "consistent",
];

/// Whether a short-syntax source is a host path rather than a volume name,
/// by compose's rule.
fn is_host_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

/// A service's `volumes:`, the short and the long syntax.
pub(super) fn volumes(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> Vec<(VolumeMount, Pos, FieldPath)> {
    let Value::Seq(items) = &node.value else {
        sink.push(node.unexpected(
            path,
            "volumes must be a list",
            "a list of `source:target[:mode]` strings or of maps with type, source and target",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let mount = match &item.value {
            Value::Map(_) => long_volume(item, &p, sink),
            _ => match scalar(item, &p, "a volumes entry", sink) {
                Some(s) => short_volume(&s, item.pos, &p, sink),
                None => None,
            },
        };
        if let Some(m) = mount {
            out.push((m, item.pos, p));
        }
    }
    out
}

fn short_volume(spec: &str, pos: Pos, path: &FieldPath, sink: &mut Sink) -> Option<VolumeMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = |sink: &mut Sink, message: &str| {
        sink.push(
            Diagnostic::error(pos, path, message.to_string())
                .found(quoted(spec))
                .expected("`target`, `source:target` or `source:target:mode`, target an absolute path")
                .hint("a host path starts with `/`, `./` or `~/`; anything else names a volume declared under top-level `volumes:`"),
        );
    };
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => {
            bad(sink, "invalid volume: too many `:`");
            return None;
        }
    };
    if target.is_empty() {
        // `::x` or `data::ro`: compose's "empty section between colons".
        let what = if source == Some("") {
            "invalid volume: the source and the target are empty"
        } else {
            "invalid volume: the target is empty"
        };
        bad(sink, what);
        return None;
    }
    if !target.starts_with('/') {
        bad(
            sink,
            &format!("invalid volume: the target {target:?} is not an absolute path"),
        );
        return None;
    }
    let mut mount = VolumeMount {
        kind: VolumeKind::Volume,
        source: None,
        target: target.to_string(),
        read_only: false,
        options: Vec::new(),
    };
    match source {
        None => {}
        Some("") => {
            bad(sink, "invalid volume: the source is empty");
            return None;
        }
        Some(s) if is_host_path(s) => {
            mount.kind = VolumeKind::Bind;
            mount.source = Some(s.to_string());
        }
        Some(s) if valid_resource_name(s) => mount.source = Some(s.to_string()),
        Some(s) => {
            bad(
                sink,
                &format!("invalid volume: {s:?} is neither a host path nor a volume name"),
            );
            return None;
        }
    }
    if let Some(mode) = mode {
        let options: Vec<&str> = mode.split(',').collect();
        if options.contains(&"ro") && options.contains(&"rw") {
            sink.push(
                Diagnostic::error(pos, path, "invalid volume mode: `ro` and `rw` together")
                    .found(quoted(spec))
                    .hint("keep one: `ro` (read-only) or `rw` (read-write, the default)"),
            );
            return None;
        }
        for option in options {
            match option {
                "ro" => mount.read_only = true,
                "rw" => mount.read_only = false,
                o if VOLUME_MODES.contains(&o) => mount.options.push(o.to_string()),
                o => {
                    let mut d = Diagnostic::error(pos, path, format!("invalid volume mode {o:?}"))
                        .found(quoted(spec))
                        .expected(format!(
                            "a comma-separated list of {}",
                            VOLUME_MODES.join(", ")
                        ));
                    d = match did_you_mean(o, VOLUME_MODES) {
                        Some(m) => d.hint(format!("did you mean {m:?}?")),
                        None => d.hint("write `ro` or `rw`, optionally with `z`, `Z`, `nocopy` or a propagation such as `rshared`"),
                    };
                    sink.push(d);
                    return None;
                }
            }
        }
    }
    mount.options.sort();
    mount.options.dedup();
    Some(mount)
}

fn long_volume(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<VolumeMount> {
    let map = Map::read(node, path, "a volumes entry", sink)?;
    let mut kind = None;
    let mut source = None;
    let mut target = None;
    let mut read_only = false;
    let mut options = Vec::new();
    // A misspelt key was reported already: its field is not missing too.
    let mut misspelt: Vec<&str> = Vec::new();
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        match k.as_ref() {
            "type" => match scalar(v, &p, "volumes.type", sink).as_deref() {
                Some("volume") => kind = Some(VolumeKind::Volume),
                Some("bind") => kind = Some(VolumeKind::Bind),
                Some("tmpfs") => kind = Some(VolumeKind::Tmpfs),
                Some(other) => sink.push(
                    Diagnostic::error(v.pos, &p, format!("unsupported volume type {other:?}"))
                        .expected("volume, bind or tmpfs")
                        .hint("npipe, image and cluster mounts are not supported"),
                ),
                None => {}
            },
            "source" => source = scalar(v, &p, "volumes.source", sink).map(|s| (s, v.pos)),
            "target" => target = scalar(v, &p, "volumes.target", sink).map(|s| (s, v.pos)),
            "read_only" => read_only = boolean(v, &p, "volumes.read_only", sink).unwrap_or(false),
            "bind" | "volume" | "tmpfs" => {
                let Some(sub) = Map::read(v, &p, &format!("volumes.{k}"), sink) else {
                    continue;
                };
                for (sk, sk_node, sv) in &sub.entries {
                    let sp = p.key(sk);
                    match (k.as_ref(), sk.as_ref()) {
                        ("bind", "propagation") => {
                            if let Some(s) = scalar(sv, &sp, "bind.propagation", sink) {
                                options.push(s);
                            }
                        }
                        ("bind", "selinux") => {
                            if let Some(s) = scalar(sv, &sp, "bind.selinux", sink) {
                                options.push(s);
                            }
                        }
                        ("volume", "nocopy") => {
                            if boolean(sv, &sp, "volume.nocopy", sink) == Some(true) {
                                options.push("nocopy".into());
                            }
                        }
                        ("tmpfs", "size") => {
                            if let Some(s) = sv.scalar_string() {
                                options.push(format!("size={s}"));
                            }
                        }
                        ("tmpfs", "mode") => {
                            if let Some(s) = sv.scalar_string() {
                                options.push(format!("mode={s}"));
                            }
                        }
                        _ => sink.push(
                            Diagnostic::warning(
                                sk_node.pos,
                                &sp,
                                format!("turnout ignores volumes.{k}.{sk}"),
                            )
                            .hint("no runtime of turnout uses this mount option"),
                        ),
                    }
                }
            }
            "consistency" => sink.push(
                Diagnostic::warning(key_node.pos, &p, "turnout ignores volumes.consistency")
                    .hint("it only ever mattered on Docker Desktop for Mac"),
            ),
            other => {
                let known = [
                    "type",
                    "source",
                    "target",
                    "read_only",
                    "bind",
                    "volume",
                    "tmpfs",
                    "consistency",
                ];
                let mut d =
                    Diagnostic::error(key_node.pos, &p, format!("unknown volume field {other:?}"))
                        .expected(known.join(", "));
                if let Some(m) = did_you_mean(other, &known) {
                    misspelt.push(m);
                    d = d.hint(format!("did you mean {m:?}?"));
                }
                sink.push(d);
            }
        }
    }
    let Some(kind) = kind else {
        if !map.entries.iter().any(|(k, _, _)| k == "type") && !misspelt.contains(&"type") {
            sink.push(
                Diagnostic::error(node.pos, path, "a volume in the long syntax needs a type")
                    .hint("add `type: volume`, `type: bind` or `type: tmpfs`"),
            );
        }
        return None;
    };
    let Some((target, target_pos)) = target else {
        if misspelt.contains(&"target") {
            return None;
        }
        sink.push(
            Diagnostic::error(node.pos, path, "a volume needs a target")
                .hint("add `target:` with the absolute path in the container"),
        );
        return None;
    };
    if !target.starts_with('/') {
        sink.push(
            Diagnostic::error(
                target_pos,
                &path.key("target"),
                "the volume target must be an absolute path",
            )
            .found(quoted(&target))
            .expected("a path in the container, e.g. /data"),
        );
        return None;
    }
    match (kind, &source) {
        (VolumeKind::Bind, None) => {
            sink.push(
                Diagnostic::error(node.pos, path, "a bind mount needs a source")
                    .hint("add `source:` with the host path, relative to the template's folder or absolute"),
            );
            return None;
        }
        (VolumeKind::Volume, Some((s, pos))) if !valid_resource_name(s) => {
            sink.push(
                Diagnostic::error(
                    *pos,
                    &path.key("source"),
                    format!("invalid volume name {s:?}"),
                )
                .expected("letters, digits, `_`, `.` and `-`, starting with a letter or digit")
                .hint("for a host path, use `type: bind`"),
            );
            return None;
        }
        (VolumeKind::Tmpfs, Some((_, pos))) => {
            sink.push(
                Diagnostic::error(*pos, &path.key("source"), "a tmpfs mount has no source")
                    .hint("remove `source:`"),
            );
            return None;
        }
        _ => {}
    }
    options.sort();
    options.dedup();
    Some(VolumeMount {
        kind,
        source: source.map(|(s, _)| s),
        target,
        read_only,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_and_names() {
        assert!(is_host_path("./data"));
        assert!(is_host_path("/srv"));
        assert!(is_host_path("~/x"));
        assert!(!is_host_path("db_data"));
    }
}
