//! Reading a template: YAML tree → normalised [`Template`], with every
//! problem reported at once.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean, quoted};
use crate::interpolate::{self, Lookup};
use crate::labels::{self, LabelEntry};
use crate::template::{
    Build, Command, Format, HealthTest, Healthcheck, PortMapping, Protocol, Restart, Service,
    Template,
};
use crate::yaml::{self, Map, Node, Value};

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

fn scalar(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<String> {
    match node.scalar_string() {
        Some(s) => Some(s),
        None => {
            sink.push(
                Diagnostic::error(node.pos, path, format!("{what} must be a string"))
                    .found(node.describe())
                    .expected("a string"),
            );
            None
        }
    }
}

fn count(node: &Node, path: &FieldPath, what: &str, sink: &mut Sink) -> Option<u32> {
    match &node.value {
        Value::Int(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Some(*n as u32),
        _ => {
            sink.push(
                Diagnostic::error(node.pos, path, format!("invalid {what}"))
                    .found(node.describe())
                    .expected("a positive integer"),
            );
            None
        }
    }
}

fn string_list(node: &Node, path: &FieldPath, sink: &mut Sink) -> (Vec<String>, Vec<Pos>) {
    let Value::Seq(items) = &node.value else {
        sink.push(
            Diagnostic::error(node.pos, path, "expected a list")
                .found(node.describe())
                .expected("a list of strings (`- item` lines)"),
        );
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
fn key_values(
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
                        Diagnostic::error(
                            item.pos,
                            &path.index(i),
                            format!("an entry of {what} must be a string"),
                        )
                        .found(item.describe())
                        .expected("a string `KEY=VALUE` or `KEY`")
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
                                Diagnostic::error(
                                    v.pos,
                                    &path.key(&k),
                                    format!("a value in {what} must be a string"),
                                )
                                .found(v.describe())
                                .expected("a string, number or boolean")
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
        _ => sink.push(
            Diagnostic::error(node.pos, path, format!("{what} must be a list or a map"))
                .found(node.describe())
                .expected("a list of `KEY=VALUE` strings or a map of `KEY: VALUE`"),
        ),
    }
    out
}

fn command(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Command> {
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

fn build(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Build> {
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

fn restart(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Restart> {
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

fn ports(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<PortMapping> {
    let Value::Seq(items) = &node.value else {
        sink.push(
            Diagnostic::error(node.pos, path, "ports must be a list")
                .found(node.describe())
                .expected("a list such as `- \"8080:80\"`"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let parsed = match &item.value {
            Value::Map(_) => long_port(item, &p, sink),
            _ => match item.scalar_string() {
                Some(s) => short_port(&s)
                    .map_err(|e| {
                        sink.push(
                        Diagnostic::error(item.pos, &p, e)
                            .found(quoted(&s))
                            .expected("`[host_ip:][host_port:]container_port[/tcp|/udp]`")
                            .hint("quote port mappings: YAML reads `80:80` as a number in base 60"),
                    );
                    })
                    .ok(),
                None => {
                    sink.push(
                        Diagnostic::error(item.pos, &p, "invalid port entry")
                            .found(item.describe())
                            .expected("a string like \"8080:80\" or a map with target"),
                    );
                    None
                }
            },
        };
        out.extend(parsed.into_iter().flatten());
    }
    out
}

fn port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port number {s:?}")),
    }
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a)?, port_number(b)?);
            if a > b {
                return Err(format!("port range {s:?} runs backwards"));
            }
            Ok((a, b))
        }
        None => {
            let p = port_number(s)?;
            Ok((p, p))
        }
    }
}

/// Parses the compose short syntax; a range yields one mapping per port.
fn short_port(s: &str) -> Result<Vec<PortMapping>, String> {
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Protocol::Tcp),
        Some((spec, "udp")) => (spec, Protocol::Udp),
        Some((_, other)) => return Err(format!("unsupported protocol {other:?}")),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (host_ip, published, target) = match parts.as_slice() {
        [target] => (None, None, *target),
        [target, published] => (None, Some(*published), *target),
        [target, published, ip] => (
            Some(ip.trim_matches(['[', ']']).to_string()),
            Some(*published),
            *target,
        ),
        _ => return Err("invalid port mapping".into()),
    };
    let target = port_range(target)?;
    let published = match published {
        Some("") | None => None,
        Some(p) => Some(port_range(p)?),
    };
    if let Some(pub_range) = published
        && pub_range.1 - pub_range.0 != target.1 - target.0
    {
        return Err("host and container port ranges differ in length".into());
    }
    Ok((target.0..=target.1)
        .enumerate()
        .map(|(i, t)| PortMapping {
            host_ip: host_ip.clone(),
            published: published.map(|(start, _)| start + i as u16),
            target: t,
            protocol,
        })
        .collect())
}

fn long_port(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Vec<PortMapping>> {
    let map = Map::read(node, path, "a port", sink)?;
    let mut target = None;
    let mut published = None;
    let mut host_ip = None;
    let mut protocol = Protocol::Tcp;
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        let text = v.scalar_string().unwrap_or_default();
        match k.as_ref() {
            "target" => match port_number(&text) {
                Ok(t) => target = Some(t),
                Err(e) => {
                    sink.push(Diagnostic::error(v.pos, &p, e).expected("a port from 1 to 65535"))
                }
            },
            "published" => match port_number(&text) {
                Ok(t) => published = Some(t),
                Err(e) => {
                    sink.push(Diagnostic::error(v.pos, &p, e).expected("a port from 1 to 65535"))
                }
            },
            "host_ip" => match text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => host_ip = Some(ip.to_string()),
                Err(_) => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid host_ip")
                        .found(quoted(&text))
                        .expected("an IP address such as 127.0.0.1 or ::1"),
                ),
            },
            "protocol" => match text.as_str() {
                "tcp" => protocol = Protocol::Tcp,
                "udp" => protocol = Protocol::Udp,
                _ => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid protocol")
                        .found(quoted(&text))
                        .expected("tcp or udp"),
                ),
            },
            "mode" | "name" | "app_protocol" => sink.push(Diagnostic::warning(
                key_node.pos,
                &p,
                format!("turnout ignores ports.{k}"),
            )),
            _ => sink.push(
                Diagnostic::error(key_node.pos, &p, format!("unknown port field {k:?}"))
                    .expected("target, published, host_ip, protocol or mode"),
            ),
        }
    }
    let Some(target) = target else {
        if map.entries.iter().any(|(k, _, _)| k == "target") {
            return None;
        }
        sink.push(
            Diagnostic::error(node.pos, path, "port has no target")
                .hint("write the container port as `target: 80`"),
        );
        return None;
    };
    Some(vec![PortMapping {
        host_ip,
        published,
        target,
        protocol,
    }])
}

/// Parses a compose duration (`1m30s`, `10s`, `500ms`) into milliseconds.
pub(crate) fn duration_ms(s: &str) -> Option<u64> {
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

fn healthcheck(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<Healthcheck> {
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
                sink.push(
                    Diagnostic::error(v.pos, &p, format!("invalid duration in healthcheck.{k}"))
                        .found(v.describe())
                        .expected("a duration with a unit, e.g. 10s, 1m30s, 500ms"),
                );
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
                _ => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid healthcheck.retries")
                        .found(v.describe())
                        .expected("a non-negative integer"),
                ),
            },
            "disable" => match &v.value {
                Value::Bool(b) => h.disable = *b,
                _ => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid healthcheck.disable")
                        .found(v.describe())
                        .expected("true or false"),
                ),
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

fn depends_on(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<(String, Pos, FieldPath)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let p = path.index(i);
                scalar(item, &p, "a depends_on entry", sink).map(|s| (s, item.pos, p))
            })
            .collect(),
        Value::Map(_) => Map::read(node, path, "depends_on", sink)
            .map(|m| {
                m.entries
                    .into_iter()
                    .map(|(k, key_node, _)| {
                        let p = path.key(&k);
                        (k.into_owned(), key_node.pos, p)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => {
            sink.push(
                Diagnostic::error(node.pos, path, "depends_on must be a list or a map")
                    .found(node.describe())
                    .expected("a list of service names"),
            );
            Vec::new()
        }
    }
}

fn deploy(node: &Node, path: &FieldPath, sink: &mut Sink) -> Option<(u32, Pos)> {
    let map = Map::read(node, path, "deploy", sink)?;
    let mut replicas = None;
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        if k == "replicas" {
            replicas = count(v, &p, "deploy.replicas", sink).map(|n| (n, v.pos));
        } else {
            sink.push(
                Diagnostic::warning(key_node.pos, &p, format!("turnout ignores deploy.{k}"))
                    .hint("only deploy.replicas is used"),
            );
        }
    }
    replicas
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

    #[test]
    fn short_ports() {
        let p = short_port("8080:80").unwrap();
        assert_eq!((p[0].published, p[0].target), (Some(8080), 80));
        let p = short_port("127.0.0.1::5000/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].published, None);
        assert_eq!(p[0].protocol, Protocol::Udp);
        let p = short_port("9000-9002:8000-8002").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].published, p[2].target), (Some(9002), 8002));
        assert!(short_port("0").is_err());
        assert!(short_port("80/sctp").is_err());
        assert!(short_port("9000-9001:80").is_err());
    }

    #[test]
    fn service_names() {
        assert!(valid_service_name("serviceB-v2"));
        assert!(valid_service_name("a.b_c-1"));
        assert!(!valid_service_name("-a"));
        assert!(!valid_service_name("a b"));
        assert!(!valid_service_name(""));
    }
}
