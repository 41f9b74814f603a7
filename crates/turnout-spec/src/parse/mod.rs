//! Reading a template: YAML tree → normalised [`Template`], with every
//! problem reported at once.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean};
use crate::interpolate::{self, Lookup};
use crate::labels::{self, LabelEntry};
use crate::template::{Command, Format, Service, Template};
use crate::yaml::{self, Map, Node, Value};

mod fields;
mod ports;

use fields::{
    build, command, count, depends_on, deploy, healthcheck, key_values, restart, scalar,
    string_list,
};
use ports::ports;

/// Top-level keys of a compose v2/v3 file.
const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "services", "name", "networks", "volumes", "configs", "secrets",
];

/// Service fields turnout uses.
const USED_FIELDS: &[&str] = &[
    "image",
    "build",
    "command",
    "working_dir",
    "environment",
    "labels",
    "external_links",
    "links",
    "restart",
    "ports",
    "healthcheck",
    "depends_on",
    "deploy",
    "scale",
];

/// Compose service fields turnout accepts and ignores (with a warning).
const IGNORED_FIELDS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "dockerfile",
    "domainname",
    "driver_opts",
    "entrypoint",
    "env_file",
    "expose",
    "extends",
    "extra_hosts",
    "gpus",
    "group_add",
    "hostname",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "log_driver",
    "log_opt",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "net",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "read_only",
    "runtime",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volume_driver",
    "volumes",
    "volumes_from",
];

/// A template that was read, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The normalised template.
    pub template: Template,
    /// Things turnout ignores or finds suspicious; the template is valid.
    pub warnings: Vec<Diagnostic>,
}

/// Where things of a service were written, for the cross-service checks.
#[derive(Debug, Default)]
pub(crate) struct ServiceSource {
    pub(crate) name_pos: Pos,
    pub(crate) path: FieldPath,
    /// Label key → where it is written (a service has a handful: a list
    /// is cheaper than a hash map).
    pub(crate) labels: Vec<(String, Pos)>,
    pub(crate) depends: Vec<(String, Pos, FieldPath)>,
    pub(crate) links: Vec<(String, Pos, FieldPath)>,
    /// String values that may name another service's route (env, command).
    pub(crate) strings: Vec<(String, Pos, FieldPath)>,
}

impl ServiceSource {
    /// Where a label's key is written.
    pub(crate) fn label_pos(&self, key: &str) -> Option<Pos> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, p)| *p)
    }
}

/// Reads a template. `file` is how the user named the file (used in
/// messages); `env` answers `${VAR}` look-ups. On failure, every problem
/// found — errors and warnings — comes back, in file order.
pub fn parse(file: &str, text: &str, env: Lookup<'_>) -> Result<Parsed, Vec<Diagnostic>> {
    let mut sink = Sink::default();
    let result = read(text, env, &mut sink);
    let mut items = sink.items;
    for d in &mut items {
        d.file = file.to_string();
    }
    items.sort_by_key(|d| (d.pos, d.severity));
    match result {
        Some(template) if !items.iter().any(Diagnostic::is_error) => Ok(Parsed {
            template,
            warnings: items,
        }),
        _ => Err(items),
    }
}

fn read(text: &str, env: Lookup<'_>, sink: &mut Sink) -> Option<Template> {
    let mut root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            sink.push(
                Diagnostic::error(
                    e.pos,
                    &FieldPath::root(),
                    format!("invalid YAML: {}", e.message),
                )
                .hint("check the indentation and quoting around this place"),
            );
            return None;
        }
    };
    if matches!(root.value, Value::Null) {
        sink.push(
            Diagnostic::error(Pos::default(), &FieldPath::root(), "the template is empty")
                .hint("list at least one service, e.g. `web:\\n  command: ...`"),
        );
        return None;
    }
    // Most templates have no `$` at all; skip the walk for them.
    if text.contains('$') {
        interpolate::substitute_tree(&mut root, &FieldPath::root(), env, sink);
    }
    let top = Map::read(&root, &FieldPath::root(), "the template", sink)?;
    let is_compose = top
        .entries
        .iter()
        .any(|(k, _, _)| k == "version" || k == "services");
    let mut template = Template {
        format: if is_compose {
            Format::Compose
        } else {
            Format::Seed
        },
        version: None,
        name: None,
        services: Vec::new(),
    };
    let mut sources: Vec<ServiceSource> = Vec::new();
    let mut services_node: Vec<(String, &Node, &Node, FieldPath)> = Vec::new();
    if is_compose {
        let mut found_services = false;
        let mut misspelt_services = false;
        for (key, key_node, value) in &top.entries {
            let path = FieldPath::root().key(key);
            match key.as_ref() {
                "version" => template.version = scalar(value, &path, "version", sink),
                "name" => template.name = scalar(value, &path, "name", sink),
                "services" => {
                    found_services = true;
                    if matches!(value.value, Value::Null) {
                        continue;
                    }
                    if let Some(map) = Map::read(value, &path, "services", sink) {
                        for (name, name_node, service) in map.entries {
                            let p = path.key(&name);
                            services_node.push((name.into_owned(), name_node, service, p));
                        }
                    }
                }
                "networks" | "volumes" | "configs" | "secrets" => sink.push(
                    Diagnostic::warning(key_node.pos, &path, format!("turnout ignores top-level {key}"))
                        .hint("turnout routes traffic itself; networks, volumes, configs and secrets have no effect"),
                ),
                k if k.starts_with("x-") => {}
                _ => {
                    let mut d = Diagnostic::error(key_node.pos, &path, format!("unknown top-level key {key:?}"))
                        .expected(format!("one of {}, or an x-* extension", TOP_LEVEL_KEYS.join(", ")));
                    if let Some(m) = did_you_mean(key, TOP_LEVEL_KEYS) {
                        misspelt_services |= m == "services";
                        d = d.hint(format!("did you mean {m:?}?"));
                    } else {
                        d = d.hint("services go under `services:` in a file with `version:` or `services:`");
                    }
                    sink.push(d);
                }
            }
        }
        if !found_services && !misspelt_services {
            sink.push(
                Diagnostic::error(
                    root.pos,
                    &FieldPath::root(),
                    "the template has no `services:`",
                )
                .hint("list the services under a top-level `services:` key"),
            );
        }
    } else {
        for (name, name_node, service) in top.entries {
            if name.starts_with("x-") {
                continue;
            }
            let p = FieldPath::root().key(&name);
            services_node.push((name.into_owned(), name_node, service, p));
        }
    }
    if services_node.is_empty() {
        if !sink.has_errors() {
            sink.push(
                Diagnostic::error(root.pos, &FieldPath::root(), "the template has no service")
                    .hint("a template lists at least one service with an image, build or command"),
            );
        }
        return None;
    }
    for (name, name_node, node, path) in services_node {
        let mut source = ServiceSource {
            name_pos: name_node.pos,
            path: path.clone(),
            ..ServiceSource::default()
        };
        if let Some(service) = read_service(&name, name_node.pos, node, &path, &mut source, sink) {
            template.services.push(service);
            sources.push(source);
        }
    }
    crate::check::check(&template, &sources, sink);
    Some(template)
}

fn valid_service_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn read_service(
    name: &str,
    name_pos: Pos,
    node: &Node,
    path: &FieldPath,
    source: &mut ServiceSource,
    sink: &mut Sink,
) -> Option<Service> {
    if !valid_service_name(name) {
        sink.push(
            Diagnostic::error(name_pos, path, format!("invalid service name {name:?}"))
                .expected("letters, digits, `_`, `.` and `-`, starting with a letter or digit")
                .hint("rename the service, e.g. `serviceB-v2`"),
        );
    }
    let fields = Map::read(node, path, &format!("service {name}"), sink)?;
    let mut service = Service {
        name: name.to_string(),
        image: None,
        build: None,
        command: None,
        working_dir: None,
        environment: BTreeMap::new(),
        labels: BTreeMap::new(),
        external_links: Vec::new(),
        links: Vec::new(),
        restart: None,
        ports: Vec::new(),
        healthcheck: None,
        depends_on: Vec::new(),
        replicas: None,
        settings: labels::Settings::default(),
    };
    let mut label_entries: Vec<LabelEntry> = Vec::new();
    let mut replicas: Option<(u32, Pos)> = None;
    for (key, key_node, value) in &fields.entries {
        let p = path.key(key);
        match key.as_ref() {
            "image" => service.image = scalar(value, &p, "image", sink),
            "build" => service.build = build(value, &p, sink),
            "command" => service.command = command(value, &p, sink),
            "working_dir" => service.working_dir = scalar(value, &p, "working_dir", sink),
            "environment" => {
                for (k, v, pos) in key_values(value, &p, "environment", sink) {
                    if let Some(v) = &v {
                        source.strings.push((v.clone(), pos, p.key(&k)));
                    }
                    service.environment.insert(k, v);
                }
            }
            "labels" => {
                for (k, v, pos) in key_values(value, &p, "labels", sink) {
                    let key_pos = label_key_pos(value, &k).unwrap_or(pos);
                    source.labels.push((k.clone(), key_pos));
                    let v = v.unwrap_or_default();
                    service.labels.insert(k.clone(), v.clone());
                    label_entries.push(LabelEntry {
                        key: k,
                        value: v,
                        key_pos,
                        value_pos: pos,
                    });
                }
            }
            "external_links" => service.external_links = string_list(value, &p, sink).0,
            "links" => {
                let (links, positions) = string_list(value, &p, sink);
                for (i, (link, pos)) in links.iter().zip(positions).enumerate() {
                    let target = link.split(':').next().unwrap_or(link).to_string();
                    source.links.push((target, pos, p.index(i)));
                }
                service.links = links;
            }
            "restart" => service.restart = restart(value, &p, sink),
            "ports" => service.ports = ports(value, &p, sink),
            "healthcheck" => service.healthcheck = healthcheck(value, &p, sink),
            "depends_on" => {
                for (dep, pos, dp) in depends_on(value, &p, sink) {
                    source.depends.push((dep.clone(), pos, dp));
                    service.depends_on.push(dep);
                }
            }
            "deploy" => {
                if let Some(n) = deploy(value, &p, sink) {
                    replicas = Some(n);
                    service.replicas = Some(n.0);
                }
            }
            "scale" => {
                if let Some(n) = count(value, &p, "scale", sink) {
                    if replicas.is_some_and(|(r, _)| r != n) {
                        sink.push(
                            Diagnostic::error(value.pos, &p, "scale contradicts deploy.replicas")
                                .hint("set the number of instances in one place only"),
                        );
                    }
                    replicas = Some((n, value.pos));
                    service.replicas = Some(n);
                }
            }
            other if IGNORED_FIELDS.contains(&other) => sink.push(
                Diagnostic::warning(key_node.pos, &p, format!("turnout ignores {other}")).hint(
                    "this compose field has no effect on how turnout runs or routes the service",
                ),
            ),
            other => {
                let mut d = Diagnostic::error(key_node.pos, &p, format!("unknown field {other:?}"));
                let all: Vec<&str> = USED_FIELDS.iter().chain(IGNORED_FIELDS).copied().collect();
                d = match did_you_mean(other, &all) {
                    Some(m) => d.hint(format!("did you mean {m:?}?")),
                    None => d.hint(format!(
                        "service fields turnout uses: {}",
                        USED_FIELDS.join(", ")
                    )),
                };
                sink.push(d);
            }
        }
    }
    if let Some(Command::Shell(s)) = &service.command {
        source
            .strings
            .push((s.clone(), name_pos, path.key("command")));
    }
    // A misspelt `comand:` or an invalid `command:` was reported already;
    // saying the service has no command on top of it adds nothing.
    let reported = fields.entries.iter().any(|(k, _, _)| {
        ["image", "build", "command"].contains(&k.as_ref())
            || did_you_mean(k, &["image", "build", "command"]).is_some()
    });
    if service.image.is_none() && service.build.is_none() && service.command.is_none() && !reported
    {
        sink.push(
            Diagnostic::error(name_pos, path, format!("service {name} has no image, build or command"))
                .expected("at least one of image, build, command")
                .hint("add `command:` to run a program (process runtime) or `image:` for a container runtime"),
        );
    }
    let cx = labels::Context {
        service_path: path,
        service_pos: name_pos,
        replicas,
        depends_on: &service.depends_on,
        has_healthcheck: service.healthcheck.as_ref().is_some_and(|h| !h.disable),
    };
    service.settings = labels::interpret(&label_entries, &cx, sink);
    for dep in &service.settings.depends {
        if !source.depends.iter().any(|(d, _, _)| d == dep) {
            let pos = source.label_pos("aliyun.depends").unwrap_or(name_pos);
            source
                .depends
                .push((dep.clone(), pos, path.key("labels").key("aliyun.depends")));
        }
    }
    Some(service)
}

/// The position of a label's key when labels are a map (for a list, the
/// entry's position is the key's).
fn label_key_pos(labels: &Node, key: &str) -> Option<Pos> {
    let Value::Map(entries) = &labels.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.scalar_string().as_deref() == Some(key))
        .map(|(k, _)| k.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(valid_service_name("serviceB-v2"));
        assert!(valid_service_name("a.b_c-1"));
        assert!(!valid_service_name("-a"));
        assert!(!valid_service_name("a b"));
        assert!(!valid_service_name(""));
    }
}
