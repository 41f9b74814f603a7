//! Writing a template back out as compose YAML.
//!
//! The output uses the template's layout (seed or compose v3) with every
//! scalar double-quoted (a JSON string is a valid YAML double-quoted
//! scalar), so that no value is re-typed on the way back in: `"0755"` stays
//! a string, `"no"` stays "no". Values are read through `${VAR}`
//! substitution, so a `$` in them is written `$$`. Reading the output gives
//! back the same [`Template`].

use std::fmt::Write;

use crate::template::{Command, Format, HealthTest, Template};

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
            for d in &s.depends_on {
                let _ = writeln!(out, "      - {}", q(d));
            }
        }
        if let Some(r) = s.replicas {
            let _ = writeln!(out, "    deploy:\n      replicas: {r}");
        }
    }
    // A seed template goes back to the seed layout, services at the top
    // level, so that it reads back as the same template, format included.
    if template.format == Format::Seed && template.version.is_none() && template.name.is_none() {
        return out
            .lines()
            .skip(1)
            .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
            .collect();
    }
    out
}
