//! Reading a template: YAML tree → normalised [`Template`], with every
//! problem reported at once.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean};
use crate::interpolate::{self, Lookup};
use crate::labels::{self, LabelEntry};
use crate::plan::{self, PlanSpans, ReleaseBlock, ReleasePlan, Resolved};
use crate::template::{
    Command, ContainerSettings, DependsCondition, Format, Service, Template, VolumeKind,
};
use crate::yaml::{self, Map, Node, Value};

mod container;
mod fields;
mod ports;
mod volumes;

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
    "env_file",
];

/// Service fields that a container runtime uses and the process runtime
/// ignores (DESIGN §6.1): parsed into `Service::container`. The warning
/// naming the runtime that ignores one comes from that runtime
/// (`turnout_runtime::Runtime::warnings`) when the template is deployed:
/// the parser cannot know which runtime will run it.
const CONTAINER_FIELDS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "container_name",
    "dns",
    "entrypoint",
    "extra_hosts",
    "init",
    "networks",
    "pull_policy",
    "read_only",
    "stop_grace_period",
    "stop_signal",
    "tmpfs",
    "ulimits",
    "user",
    "volumes",
];

/// Compose service fields turnout accepts and ignores (with a warning).
const IGNORED_FIELDS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "configs",
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
    "dns_opt",
    "dns_search",
    "dockerfile",
    "domainname",
    "driver_opts",
    "expose",
    "extends",
    "gpus",
    "group_add",
    "hostname",
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
    "runtime",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "storage_opt",
    "sysctls",
    "tty",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volume_driver",
    "volumes_from",
];

/// A template that was read, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The normalised template.
    pub template: Template,
    /// Things turnout ignores or finds suspicious; the template is valid.
    pub warnings: Vec<Diagnostic>,
    /// Where the fields of its `x-turnout.release` block are written, for
    /// [`crate::ReleasePlan::with_overrides`]'s diagnostics.
    pub plan_spans: PlanSpans,
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
    /// Named volumes it mounts, for the check against top-level `volumes:`.
    pub(crate) volumes: Vec<(String, Pos, FieldPath)>,
    /// Networks it joins, for the check against top-level `networks:`.
    pub(crate) networks: Vec<(String, Pos, FieldPath)>,
    /// `env_file` entries, as written.
    pub(crate) env_files: Vec<(String, Pos, FieldPath)>,
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
    let mut plan_spans = PlanSpans::default();
    let result = read(text, env, &mut plan_spans, &mut sink);
    let mut items = sink.items;
    for d in &mut items {
        d.file = file.to_string();
    }
    items.sort_by_key(|d| (d.pos, d.severity));
    plan_spans.file = file.to_string();
    match result {
        Some(template) if !items.iter().any(Diagnostic::is_error) => Ok(Parsed {
            template,
            warnings: items,
            plan_spans,
        }),
        _ => Err(items),
    }
}

fn read(
    text: &str,
    env: Lookup<'_>,
    plan_spans: &mut PlanSpans,
    sink: &mut Sink,
) -> Option<Template> {
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
        volumes: BTreeMap::new(),
        networks: BTreeMap::new(),
        base_dir: None,
        release: None,
    };
    let mut x_turnout: Option<&Node> = None;
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
                // Whether the runtime in use ignores them is the runtime's
                // to say (`Runtime::warnings`), where it is known.
                "volumes" | "networks" => {
                    if key == "volumes" {
                        template.volumes = container::volume_decls(value, &path, sink);
                    } else {
                        template.networks = container::network_decls(value, &path, sink);
                    }
                }
                "configs" | "secrets" => sink.push(
                    Diagnostic::warning(
                        key_node.pos,
                        &path,
                        format!("turnout ignores top-level {key}"),
                    )
                    .hint(
                        "no runtime of turnout mounts configs or secrets yet; they have no effect",
                    ),
                ),
                "x-turnout" => x_turnout = Some(value),
                k if k.starts_with("x-") => {}
                _ => {
                    let mut d = Diagnostic::error(
                        key_node.pos,
                        &path,
                        format!("unknown top-level key {key:?}"),
                    )
                    .expected(format!(
                        "one of {}, or an x-* extension",
                        TOP_LEVEL_KEYS.join(", ")
                    ));
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
            if name == "x-turnout" {
                x_turnout = Some(service);
                continue;
            }
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
    if let Some((block, spans)) = x_turnout.and_then(|node| plan::read::x_turnout(node, sink)) {
        template.release = Some(Box::new(block));
        // The block alone, with no flags: its ranges, the services its
        // A/B rules name, its canary's scale, fields of other strategies.
        // Diagnostics get their file from `parse`, like every other.
        let (Err(problems)
        | Ok(Resolved {
            warnings: problems, ..
        })) = ReleasePlan::with_overrides(&template, &spans, &ReleaseBlock::default());
        for d in problems {
            sink.push(d);
        }
        *plan_spans = spans;
    }
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
        env_file: Vec::new(),
        container: ContainerSettings::default(),
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
                for (dep, pos, dp, condition) in depends_on(value, &p, sink) {
                    source.depends.push((dep.clone(), pos, dp));
                    if condition != DependsCondition::ServiceStarted {
                        service.container.depends_conditions.insert(dep.clone(), condition);
                    }
                    service.depends_on.push(dep);
                }
            }
            "deploy" => {
                let d = deploy(value, &p, sink);
                if let Some(n) = d.replicas {
                    replicas = Some(n);
                    service.replicas = Some(n.0);
                }
                if let Some((limits, _, _)) = d.limits {
                    service.container.limits = limits;
                }
            }
            "env_file" => {
                let many = matches!(value.value, Value::Seq(_));
                let files = container::one_or_list(value, &p, "env_file", sink);
                for (i, (file, pos)) in files.into_iter().enumerate() {
                    let fp = if many { p.index(i) } else { p.clone() };
                    if file.trim().is_empty() {
                        sink.push(
                            Diagnostic::error(pos, &fp, "env_file names no file")
                                .hint("give a path relative to the template's folder, e.g. `.env.web`"),
                        );
                        continue;
                    }
                    source.env_files.push((file.clone(), pos, fp));
                    service.env_file.push(file);
                }
            }
            other if CONTAINER_FIELDS.contains(&other) => {
                read_container_field(other, value, &p, &mut service.container, source, sink);
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
                    "no runtime of turnout uses this compose field; it has no effect on how the service runs or is routed",
                ),
            ),
            other => {
                let mut d = Diagnostic::error(key_node.pos, &p, format!("unknown field {other:?}"));
                let all: Vec<&str> = USED_FIELDS
                    .iter()
                    .chain(CONTAINER_FIELDS)
                    .chain(IGNORED_FIELDS)
                    .copied()
                    .collect();
                d = match did_you_mean(other, &all) {
                    Some(m) => d.hint(format!("did you mean {m:?}?")),
                    None => d.hint(format!(
                        "service fields turnout uses: {}; on the docker runtime also {}",
                        USED_FIELDS.join(", "),
                        CONTAINER_FIELDS.join(", ")
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

/// Reads one of [`CONTAINER_FIELDS`] into `c`.
fn read_container_field(
    field: &str,
    value: &Node,
    p: &FieldPath,
    c: &mut ContainerSettings,
    source: &mut ServiceSource,
    sink: &mut Sink,
) {
    match field {
        "cap_add" => c.cap_add = container::capabilities(value, p, sink),
        "cap_drop" => c.cap_drop = container::capabilities(value, p, sink),
        "container_name" => c.container_name = container::container_name(value, p, sink),
        "dns" => {
            c.dns = container::one_or_list(value, p, "dns", sink)
                .into_iter()
                .map(|(s, _)| s)
                .collect();
        }
        "entrypoint" => c.entrypoint = command(value, p, sink),
        "extra_hosts" => c.extra_hosts = container::extra_hosts(value, p, sink),
        "init" => c.init = container::boolean(value, p, "init", sink),
        "networks" => {
            for (name, net, pos, np) in container::service_networks(value, p, sink) {
                source.networks.push((name.clone(), pos, np));
                c.networks.insert(name, net);
            }
        }
        "pull_policy" => c.pull_policy = container::pull_policy(value, p, sink),
        "read_only" => {
            c.read_only = container::boolean(value, p, "read_only", sink).unwrap_or(false)
        }
        "stop_grace_period" => c.stop_grace_period_ms = container::grace_period(value, p, sink),
        "stop_signal" => c.stop_signal = container::stop_signal(value, p, sink),
        "tmpfs" => c.tmpfs = container::tmpfs(value, p, sink),
        "ulimits" => c.ulimits = container::ulimits(value, p, sink),
        "user" => c.user = scalar(value, p, "user", sink),
        "volumes" => {
            for (mount, pos, vp) in volumes::volumes(value, p, sink) {
                if mount.kind == VolumeKind::Volume
                    && let Some(name) = &mount.source
                {
                    source.volumes.push((name.clone(), pos, vp));
                }
                c.volumes.push(mount);
            }
        }
        _ => unreachable!("{field} is listed in CONTAINER_FIELDS"),
    }
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
