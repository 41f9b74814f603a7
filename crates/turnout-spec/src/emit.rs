//! Writing a template back out as compose YAML.
//!
//! The output uses the template's layout (seed or compose v3) with every
//! scalar double-quoted (a JSON string is a valid YAML double-quoted
//! scalar), so that no value is re-typed on the way back in: `"0755"` stays
//! a string, `"no"` stays "no". Values are read through `${VAR}`
//! substitution, so a `$` in them is written `$$`. Reading the output gives
//! back the same [`Template`].

use std::fmt::Write;

use crate::template::{
    Command, ContainerSettings, DependsCondition, Format, HealthTest, Template, VolumeKind,
};

/// A value: quoted, with `$` doubled so that substitution gives it back.
fn q(s: &str) -> String {
    key(&s.replace('$', "$$"))
}

/// A map key: quoted as it is (keys are never substituted).
fn key(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    // YAML allows fewer characters unescaped than JSON does: DEL, the C1
    // controls and U+FFFE/U+FFFF must be written as escapes.
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}') {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `template` as compose YAML.
pub fn to_yaml(template: &Template) -> String {
    let mut out = String::new();
    if let Some(v) = &template.version {
        let _ = writeln!(out, "version: {}", q(v));
    }
    if let Some(n) = &template.name {
        let _ = writeln!(out, "name: {}", q(n));
    }
    out.push_str("services:\n");
    for s in &template.services {
        let _ = writeln!(out, "  {}:", key(&s.name));
        if let Some(image) = &s.image {
            let _ = writeln!(out, "    image: {}", q(image));
        }
        if let Some(b) = &s.build {
            out.push_str("    build:\n");
            let _ = writeln!(out, "      context: {}", q(&b.context));
            if let Some(d) = &b.dockerfile {
                let _ = writeln!(out, "      dockerfile: {}", q(d));
            }
            if let Some(t) = &b.target {
                let _ = writeln!(out, "      target: {}", q(t));
            }
            if !b.args.is_empty() {
                out.push_str("      args:\n");
                for (k, v) in &b.args {
                    let _ = writeln!(out, "        {}: {}", key(k), q(v));
                }
            }
        }
        match &s.command {
            Some(Command::Shell(c)) => {
                let _ = writeln!(out, "    command: {}", q(c));
            }
            Some(Command::Exec(args)) => {
                out.push_str("    command:\n");
                for a in args {
                    let _ = writeln!(out, "      - {}", q(a));
                }
            }
            None => {}
        }
        if let Some(w) = &s.working_dir {
            let _ = writeln!(out, "    working_dir: {}", q(w));
        }
        if !s.environment.is_empty() {
            out.push_str("    environment:\n");
            for (k, v) in &s.environment {
                match v {
                    Some(v) => {
                        let _ = writeln!(out, "      {}: {}", key(k), q(v));
                    }
                    None => {
                        let _ = writeln!(out, "      {}: null", key(k));
                    }
                }
            }
        }
        if !s.labels.is_empty() {
            out.push_str("    labels:\n");
            for (k, v) in &s.labels {
                let _ = writeln!(out, "      {}: {}", key(k), q(v));
            }
        }
        for (field, list) in [("external_links", &s.external_links), ("links", &s.links)] {
            if !list.is_empty() {
                let _ = writeln!(out, "    {field}:");
                for item in list {
                    let _ = writeln!(out, "      - {}", q(item));
                }
            }
        }
        if let Some(r) = &s.restart {
            let _ = writeln!(out, "    restart: {}", q(&r.to_string()));
        }
        if !s.ports.is_empty() {
            out.push_str("    ports:\n");
            for p in &s.ports {
                let _ = writeln!(out, "      - {}", q(&p.to_string()));
            }
        }
        if let Some(h) = &s.healthcheck {
            out.push_str("    healthcheck:\n");
            match &h.test {
                Some(HealthTest::Cmd(args)) => {
                    out.push_str("      test:\n        - \"CMD\"\n");
                    for a in args {
                        let _ = writeln!(out, "        - {}", q(a));
                    }
                }
                Some(HealthTest::Shell(c)) => {
                    let _ = writeln!(out, "      test: {}", q(c));
                }
                None => {}
            }
            for (k, v) in [
                ("interval", h.interval_ms),
                ("timeout", h.timeout_ms),
                ("start_period", h.start_period_ms),
            ] {
                if let Some(ms) = v {
                    let _ = writeln!(out, "      {k}: \"{ms}ms\"");
                }
            }
            if let Some(r) = h.retries {
                let _ = writeln!(out, "      retries: {r}");
            }
            if h.disable {
                out.push_str("      disable: true\n");
            }
        }
        if !s.depends_on.is_empty() {
            out.push_str("    depends_on:\n");
            let conditions = &s.container.depends_conditions;
            for d in &s.depends_on {
                if conditions.is_empty() {
                    let _ = writeln!(out, "      - {}", q(d));
                } else {
                    let condition = conditions
                        .get(d)
                        .copied()
                        .unwrap_or(DependsCondition::ServiceStarted);
                    let _ = writeln!(
                        out,
                        "      {}:\n        condition: {}",
                        key(d),
                        q(condition.as_str())
                    );
                }
            }
        }
        let limits = &s.container.limits;
        if s.replicas.is_some() || limits.nano_cpus.is_some() || limits.memory_bytes.is_some() {
            out.push_str("    deploy:\n");
            if let Some(r) = s.replicas {
                let _ = writeln!(out, "      replicas: {r}");
            }
            if limits.nano_cpus.is_some() || limits.memory_bytes.is_some() {
                out.push_str("      resources:\n        limits:\n");
                if let Some(n) = limits.nano_cpus {
                    let _ = writeln!(
                        out,
                        "          cpus: \"{}.{:09}\"",
                        n / 1_000_000_000,
                        n % 1_000_000_000
                    );
                }
                if let Some(m) = limits.memory_bytes {
                    let _ = writeln!(out, "          memory: \"{m}\"");
                }
            }
        }
        if !s.env_file.is_empty() {
            out.push_str("    env_file:\n");
            for f in &s.env_file {
                let _ = writeln!(out, "      - {}", q(f));
            }
        }
        container(&mut out, &s.container);
    }
    for (section, entries) in [
        (
            "volumes",
            decls(
                template
                    .volumes
                    .iter()
                    .map(|(n, d)| (n, d.external, &d.name, &d.driver)),
            ),
        ),
        (
            "networks",
            decls(
                template
                    .networks
                    .iter()
                    .map(|(n, d)| (n, d.external, &d.name, &d.driver)),
            ),
        ),
    ] {
        if !entries.is_empty() {
            let _ = writeln!(out, "{section}:");
            out.push_str(&entries);
        }
    }
    // A seed template goes back to the seed layout, services at the top
    // level, so that it reads back as the same template, format included.
    if template.format == Format::Seed && template.version.is_none() && template.name.is_none() {
        out = out
            .lines()
            .skip(1)
            .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
            .collect();
    }
    if let Some(block) = &template.release {
        // One flow-style line: the block's JSON form, with every string
        // written as the rest of the file writes them (quoted, `$` doubled).
        let json = serde_json::to_value(block).unwrap_or_default();
        let _ = writeln!(out, "x-turnout: {{\"release\": {}}}", flow(&json));
    }
    out
}

/// A JSON value as a YAML flow value, strings quoted by [`q`] and keys by
/// [`key`].
fn flow(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => q(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", key(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The entries of a top-level `volumes:` or `networks:`.
fn decls<'a>(
    items: impl Iterator<Item = (&'a String, bool, &'a Option<String>, &'a Option<String>)>,
) -> String {
    let mut out = String::new();
    for (name, external, real_name, driver) in items {
        if !external && real_name.is_none() && driver.is_none() {
            let _ = writeln!(out, "  {}: {{}}", key(name));
            continue;
        }
        let _ = writeln!(out, "  {}:", key(name));
        if external {
            out.push_str("    external: true\n");
        }
        if let Some(n) = real_name {
            let _ = writeln!(out, "    name: {}", q(n));
        }
        if let Some(d) = driver {
            let _ = writeln!(out, "    driver: {}", q(d));
        }
    }
    out
}

fn list(out: &mut String, field: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = writeln!(out, "    {field}:");
        for item in items {
            let _ = writeln!(out, "      - {}", q(item));
        }
    }
}

/// The container-only fields of a service.
fn container(out: &mut String, c: &ContainerSettings) {
    match &c.entrypoint {
        Some(Command::Shell(e)) => {
            let _ = writeln!(out, "    entrypoint: {}", q(e));
        }
        Some(Command::Exec(args)) => list(out, "entrypoint", args),
        None => {}
    }
    for (field, value) in [
        ("user", &c.user),
        ("stop_signal", &c.stop_signal),
        ("container_name", &c.container_name),
    ] {
        if let Some(v) = value {
            let _ = writeln!(out, "    {field}: {}", q(v));
        }
    }
    if let Some(ms) = c.stop_grace_period_ms {
        let _ = writeln!(out, "    stop_grace_period: \"{ms}ms\"");
    }
    if let Some(p) = c.pull_policy {
        let _ = writeln!(out, "    pull_policy: {}", q(p.as_str()));
    }
    if c.read_only {
        out.push_str("    read_only: true\n");
    }
    if let Some(init) = c.init {
        let _ = writeln!(out, "    init: {init}");
    }
    if !c.volumes.is_empty() {
        out.push_str("    volumes:\n");
        for v in &c.volumes {
            let kind = match v.kind {
                VolumeKind::Volume => "volume",
                VolumeKind::Bind => "bind",
                VolumeKind::Tmpfs => "tmpfs",
            };
            let _ = writeln!(out, "      - type: {kind}");
            if let Some(source) = &v.source {
                let _ = writeln!(out, "        source: {}", q(source));
            }
            let _ = writeln!(out, "        target: {}", q(&v.target));
            if v.read_only {
                out.push_str("        read_only: true\n");
            }
            // Options go back in the long syntax's own fields.
            let mut sections: Vec<(&str, String)> = Vec::new();
            for o in &v.options {
                let (section, line) = match o.as_str() {
                    "nocopy" => ("volume", "nocopy: true".to_string()),
                    "z" | "Z" => ("bind", format!("selinux: {}", q(o))),
                    o if o.starts_with("size=") => ("tmpfs", format!("size: {}", q(&o[5..]))),
                    o if o.starts_with("mode=") => ("tmpfs", format!("mode: {}", q(&o[5..]))),
                    o => ("bind", format!("propagation: {}", q(o))),
                };
                match sections.iter_mut().find(|(s, _)| *s == section) {
                    Some((_, lines)) => {
                        let _ = writeln!(lines, "          {line}");
                    }
                    None => sections.push((section, format!("          {line}\n"))),
                }
            }
            for (section, lines) in sections {
                let _ = writeln!(out, "        {section}:");
                out.push_str(&lines);
            }
        }
    }
    list(out, "tmpfs", &c.tmpfs);
    list(out, "dns", &c.dns);
    list(out, "cap_add", &c.cap_add);
    list(out, "cap_drop", &c.cap_drop);
    if !c.extra_hosts.is_empty() {
        out.push_str("    extra_hosts:\n");
        for h in &c.extra_hosts {
            let _ = writeln!(out, "      - {}", q(&format!("{}={}", h.host, h.ip)));
        }
    }
    if !c.ulimits.is_empty() {
        out.push_str("    ulimits:\n");
        for (name, u) in &c.ulimits {
            let _ = writeln!(
                out,
                "      {}:\n        soft: {}\n        hard: {}",
                key(name),
                u.soft,
                u.hard
            );
        }
    }
    if !c.networks.is_empty() {
        out.push_str("    networks:\n");
        for (name, n) in &c.networks {
            if n.aliases.is_empty() && n.ipv4_address.is_none() && n.ipv6_address.is_none() {
                let _ = writeln!(out, "      {}: {{}}", key(name));
                continue;
            }
            let _ = writeln!(out, "      {}:", key(name));
            if !n.aliases.is_empty() {
                out.push_str("        aliases:\n");
                for a in &n.aliases {
                    let _ = writeln!(out, "          - {}", q(a));
                }
            }
            for (field, v) in [
                ("ipv4_address", &n.ipv4_address),
                ("ipv6_address", &n.ipv6_address),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(out, "        {field}: {}", q(v));
                }
            }
        }
    }
}
