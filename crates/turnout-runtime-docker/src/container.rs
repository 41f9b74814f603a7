//! From an [`InstanceSpec`] to the Engine API's container body: a pure
//! function of the spec, the network and the server id, so the mapping of
//! compose fields (DESIGN §6.1) is tested without an engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding, ResourcesUlimits,
};
use turnout_runtime::{ContainerSource, InstanceSpec, RuntimeError};
use turnout_spec::Command;
use turnout_spec::template::{Protocol, VolumeKind};

/// Label: the app the container belongs to.
pub const LABEL_APP: &str = "turnout.app";
/// Label: the service, as the template spells it.
pub const LABEL_SERVICE: &str = "turnout.service";
/// Label: the store's instance id (`serviceB-v2.1`).
pub const LABEL_INSTANCE: &str = "turnout.instance";
/// Label: the instance's key ([`InstanceSpec::key`]), by which a restarted
/// server finds a container it started but did not record.
pub const LABEL_KEY: &str = "turnout.key";
/// Label: the id of the server (its data dir) that owns the container.
/// Nothing that lacks this server's id is ever stopped or removed.
pub const LABEL_SERVER: &str = "turnout.server";
/// Label: the template version the service comes from.
pub const LABEL_TEMPLATE_VERSION: &str = "turnout.template-version";

/// The app's network (compose's `<project>_default`).
pub fn network_name(app: &str) -> String {
    format!("{app}_default")
}

/// The engine's name of a named volume: `name:` of its declaration, else
/// the name itself for an external one, else `<app>_<name>` as compose
/// spells it.
pub fn volume_name(app: &str, source: &ContainerSource, name: &str) -> String {
    let decl = source.volumes.get(name);
    match decl.and_then(|d| d.name.clone()) {
        Some(engine_name) => engine_name,
        None if decl.is_some_and(|d| d.external) => name.to_string(),
        None => format!("{app}_{name}"),
    }
}

/// The container name for instance number `n`: `<app>-<service>-<n>`.
pub fn container_name(app: &str, service: &str, n: u32) -> String {
    format!("{app}-{service}-{n}")
}

/// The instance's number, the `<n>` of its id `<service>.<n>` (1 when the
/// id has none).
pub fn instance_number(id: &str) -> u32 {
    id.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// The mounts of `source`'s `volumes:` and `tmpfs:`; bind mounts as
/// `binds` (the engine creates a missing host folder, as compose does),
/// the rest as `mounts`.
#[derive(Debug, Default, PartialEq)]
pub struct Mounts {
    /// `host:container[:ro]` bind mounts, host paths absolute.
    pub binds: Vec<String>,
    /// Named and anonymous volumes and tmpfs mounts.
    pub mounts: Vec<Mount>,
    /// Named volumes to create (engine names), unless external.
    pub volumes: Vec<(String, bool)>,
    /// `tmpfs:` entries: path → options.
    pub tmpfs: HashMap<String, String>,
}

/// Works out the mounts of one instance; `home` resolves `~/`.
pub fn mounts(
    app: &str,
    instance: &str,
    source: &ContainerSource,
    home: Option<&Path>,
) -> Result<Mounts, RuntimeError> {
    let mut out = Mounts::default();
    for mount in &source.service.container.volumes {
        match mount.kind {
            VolumeKind::Bind => {
                let written = mount.source.as_deref().unwrap_or_default();
                let host =
                    bind_source(written, source.base_dir.as_deref(), home).ok_or_else(|| {
                        RuntimeError::Engine {
                            action: format!("cannot mount {written} into {instance}"),
                            message: "a relative bind mount needs the template's folder, and the \
                                  server was not told it"
                                .to_string(),
                            hint: Some(
                                "deploy with the CLI (it sends the template's folder), or give an \
                             absolute path"
                                    .to_string(),
                            ),
                        }
                    })?;
                let mut spec = format!("{}:{}", host.display(), mount.target);
                let mut opts: Vec<&str> = mount.options.iter().map(String::as_str).collect();
                if mount.read_only {
                    opts.insert(0, "ro");
                }
                if !opts.is_empty() {
                    spec.push(':');
                    spec.push_str(&opts.join(","));
                }
                out.binds.push(spec);
            }
            VolumeKind::Volume => {
                let engine_name = mount.source.as_deref().map(|name| {
                    let external = source.volumes.get(name).is_some_and(|d| d.external);
                    let engine_name = volume_name(app, source, name);
                    out.volumes.push((engine_name.clone(), external));
                    engine_name
                });
                out.mounts.push(Mount {
                    target: Some(mount.target.clone()),
                    source: engine_name,
                    typ: Some(MountType::VOLUME),
                    read_only: Some(mount.read_only),
                    ..Mount::default()
                });
            }
            VolumeKind::Tmpfs => out.mounts.push(Mount {
                target: Some(mount.target.clone()),
                typ: Some(MountType::TMPFS),
                ..Mount::default()
            }),
        }
    }
    for entry in &source.service.container.tmpfs {
        let (path, options) = entry.split_once(':').unwrap_or((entry, ""));
        out.tmpfs.insert(path.to_string(), options.to_string());
    }
    Ok(out)
}

/// A bind mount's host path: `~/` is `home`'s, a relative one the
/// template folder's.
fn bind_source(written: &str, base_dir: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(rest) = written.strip_prefix("~/") {
        return home.map(|h| h.join(rest));
    }
    let path = Path::new(written);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let rest = written.strip_prefix("./").unwrap_or(written);
    base_dir.map(|b| {
        if rest.is_empty() {
            b.to_path_buf()
        } else {
            b.join(rest)
        }
    })
}

/// A template command as the container's argument vector, `${PORT}` and
/// `${PORT_<N>}` filled in. A string is split into words as compose does
/// (quotes and backslashes as a shell reads them, no shell run: images
/// need not have one).
pub fn command_words(command: &Command, spec: &InstanceSpec) -> Result<Vec<String>, RuntimeError> {
    let expand = |s: &str| spec.expand_ports(s);
    match command {
        Command::Exec(args) => args.iter().map(|a| expand(a)).collect(),
        Command::Shell(text) => {
            let text = expand(text)?;
            split_words(&text).ok_or_else(|| RuntimeError::Engine {
                action: format!("cannot start {}", spec.id),
                message: format!("the command {text:?} has an unclosed quote"),
                hint: Some("close the quote, or write the command as a list".to_string()),
            })
        }
    }
}

/// Splits `text` into words: blanks separate, `'...'` is literal, `"..."`
/// keeps blanks (a backslash escapes `"`, `\` and `$` in it), a backslash
/// outside quotes escapes the next character. `None` for an unclosed
/// quote.
pub fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Everything [`body`] needs besides the spec.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The image to run.
    pub image: &'a str,
    /// The app's network.
    pub network: &'a str,
    /// The owning server's id.
    pub server_id: &'a str,
    /// The instance's mounts.
    pub mounts: &'a Mounts,
    /// Where the internal router listens for the app (the network's
    /// gateway): the address the instance's `.local` names resolve to.
    pub internal: Option<std::net::IpAddr>,
}

/// The container to create for `spec` (DESIGN §6.1): labels, environment
/// (the image's stays underneath: the engine merges it), command and
/// entrypoint overrides, the app's network with the compose service name
/// as an alias, and the compose fields with a direct Engine API twin. No
/// restart policy: turnout supervises restarts itself.
pub fn body(
    spec: &InstanceSpec,
    source: &ContainerSource,
    cx: Context<'_>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let service = &source.service;
    let c = &service.container;
    let mut labels: HashMap<String, String> = service
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_APP.into(), spec.app.clone());
    labels.insert(LABEL_SERVICE.into(), spec.service.clone());
    labels.insert(LABEL_INSTANCE.into(), spec.id.clone());
    labels.insert(LABEL_KEY.into(), spec.key.clone());
    labels.insert(LABEL_SERVER.into(), cx.server_id.to_string());
    labels.insert(
        LABEL_TEMPLATE_VERSION.into(),
        source.template_version.to_string(),
    );

    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cmd = service
        .command
        .as_ref()
        .map(|command| command_words(command, spec))
        .transpose()?;
    let entrypoint = c
        .entrypoint
        .as_ref()
        .map(|command| command_words(command, spec))
        .transpose()?;

    let mut aliases = vec![service.name.clone()];
    for net in c.networks.values() {
        for alias in &net.aliases {
            if !aliases.contains(alias) {
                aliases.push(alias.clone());
            }
        }
    }
    let endpoint = EndpointSettings {
        aliases: Some(aliases),
        ..EndpointSettings::default()
    };

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &service.ports {
        let Some(published) = port.published else {
            continue;
        };
        let proto = match port.protocol {
            Protocol::Udp => "udp",
            _ => "tcp",
        };
        let key = format!("{}/{proto}", port.target);
        exposed.push(key.clone());
        bindings
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: Some(published.to_string()),
            });
    }

    let host_config = HostConfig {
        network_mode: Some(cx.network.to_string()),
        binds: non_empty(cx.mounts.binds.clone()),
        mounts: non_empty(cx.mounts.mounts.clone()),
        tmpfs: (!cx.mounts.tmpfs.is_empty()).then(|| cx.mounts.tmpfs.clone()),
        extra_hosts: non_empty(extra_hosts(source, cx.internal)),
        dns: non_empty(c.dns.clone()),
        cap_add: non_empty(c.cap_add.clone()),
        cap_drop: non_empty(c.cap_drop.clone()),
        readonly_rootfs: c.read_only.then_some(true),
        init: c.init,
        ulimits: non_empty(
            c.ulimits
                .iter()
                .map(|(name, u)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect(),
        ),
        memory: c.limits.memory_bytes.and_then(|m| i64::try_from(m).ok()),
        nano_cpus: c.limits.nano_cpus.and_then(|n| i64::try_from(n).ok()),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        ..HostConfig::default()
    };

    Ok(ContainerCreateBody {
        image: Some(cx.image.to_string()),
        cmd,
        entrypoint,
        env: Some(env),
        labels: Some(labels),
        working_dir: service.working_dir.clone(),
        user: c.user.clone(),
        stop_signal: c.stop_signal.clone(),
        stop_timeout: c
            .stop_grace_period_ms
            .map(|ms| i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)),
        exposed_ports: non_empty(exposed),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(cx.network.to_string(), endpoint)])),
        }),
        ..ContainerCreateBody::default()
    })
}

/// `extra_hosts` as the engine takes them (`name:ip`): the template's own,
/// then each `.local` name the instance may call pointing at the internal
/// router (`internal`), unless the template names it itself.
pub fn extra_hosts(source: &ContainerSource, internal: Option<std::net::IpAddr>) -> Vec<String> {
    let own = &source.service.container.extra_hosts;
    let mut hosts: Vec<String> = own.iter().map(|h| format!("{}:{}", h.host, h.ip)).collect();
    if let Some(ip) = internal {
        for name in &source.local_hosts {
            if !own.iter().any(|h| h.host.eq_ignore_ascii_case(name)) {
                hosts.push(format!("{name}:{ip}"));
            }
        }
    }
    hosts
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    fn source(yaml: &str, base_dir: Option<&str>) -> ContainerSource {
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        ContainerSource {
            service: parsed.template.services[0].clone(),
            volumes: parsed.template.volumes.clone(),
            base_dir: base_dir.map(PathBuf::from),
            template_version: 3,
            local_hosts: Vec::new(),
        }
    }

    /// The context of an instance of the `shop` app on its default network.
    fn shop_context(mounts: &Mounts, internal: Option<std::net::IpAddr>) -> Context<'_> {
        Context {
            image: "shop:1",
            network: "shop_default",
            server_id: "srv-1",
            mounts,
            internal,
        }
    }

    fn spec(source: &ContainerSource) -> InstanceSpec {
        InstanceSpec {
            id: format!("{}.2", source.service.name),
            app: "shop".into(),
            service: source.service.name.clone(),
            key: "key-1".into(),
            command: Command::Exec(Vec::new()),
            env: vec![("A".into(), "1".into()), ("PORT".into(), "5000".into())],
            ports: BTreeMap::from([(5000, 5000)]),
            primary_port: Some(5000),
            working_dir: None,
            container: Some(Arc::new(source.clone())),
        }
    }

    const WEB: &str = "version: '3'\nservices:\n  web:\n    image: shop:1\n    \
        command: demo --port ${PORT} --text 'a b'\n    entrypoint: [\"/bin/tini\", \"--\"]\n    \
        user: '1000:1000'\n    working_dir: /srv\n    labels: { team: blue }\n    \
        volumes: [\"./data:/data:ro\", \"cache:/cache\", \"/abs:/abs\"]\n    \
        tmpfs: [\"/run:size=64m\"]\n    extra_hosts: [\"db.local:10.0.0.9\"]\n    dns: [1.1.1.1]\n    \
        cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    read_only: true\n    init: true\n    \
        stop_signal: SIGINT\n    stop_grace_period: 1500ms\n    \
        ulimits: { nofile: { soft: 1024, hard: 2048 } }\n    \
        deploy: { resources: { limits: { cpus: '0.5', memory: 64M } } }\n    \
        ports: [\"8088:5000\"]\nvolumes:\n  cache: {}\n";

    #[test]
    fn maps_the_compose_fields_to_the_engine_api() {
        let src = source(WEB, Some("/home/u/shop"));
        let spec = spec(&src);
        let mounts = mounts("shop", &spec.id, &src, Some(Path::new("/root"))).unwrap();
        assert_eq!(
            mounts.binds,
            vec![
                "/home/u/shop/data:/data:ro".to_string(),
                "/abs:/abs".to_string()
            ]
        );
        assert_eq!(mounts.volumes, vec![("shop_cache".to_string(), false)]);
        let cx = shop_context(&mounts, None);
        let body = body(&spec, &src, cx).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_APP], "shop");
        assert_eq!(labels[LABEL_SERVICE], "web");
        assert_eq!(labels[LABEL_INSTANCE], "web.2");
        assert_eq!(labels[LABEL_KEY], "key-1");
        assert_eq!(labels[LABEL_SERVER], "srv-1");
        assert_eq!(labels[LABEL_TEMPLATE_VERSION], "3");
        assert_eq!(labels["team"], "blue");
        assert_eq!(
            body.cmd.unwrap(),
            ["demo", "--port", "5000", "--text", "a b"]
        );
        assert_eq!(body.entrypoint.unwrap(), ["/bin/tini", "--"]);
        assert_eq!(body.env.unwrap(), ["A=1", "PORT=5000"]);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(body.stop_timeout, Some(2));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("shop_default"));
        assert!(host.restart_policy.is_none(), "turnout supervises restarts");
        assert_eq!(host.extra_hosts.unwrap(), ["db.local:10.0.0.9"]);
        assert_eq!(host.dns.unwrap(), ["1.1.1.1"]);
        assert_eq!(host.cap_add.unwrap(), ["NET_ADMIN"]);
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.tmpfs.unwrap()["/run"], "size=64m");
        let ulimit = &host.ulimits.unwrap()[0];
        assert_eq!(
            (ulimit.name.as_deref(), ulimit.soft, ulimit.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        let volume = &host.mounts.unwrap()[0];
        assert_eq!(volume.source.as_deref(), Some("shop_cache"));
        assert_eq!(volume.target.as_deref(), Some("/cache"));
        let bound = &host.port_bindings.unwrap()["5000/tcp"];
        assert_eq!(
            bound.as_ref().unwrap()[0].host_port.as_deref(),
            Some("8088")
        );
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["shop_default"].aliases.as_ref().unwrap(),
            &["web"]
        );
    }

    #[test]
    fn local_names_point_at_the_internal_router() {
        let mut src = source(WEB, None);
        src.local_hosts = vec!["servicea.local".into(), "db.local".into()];
        let gateway = "172.18.0.1".parse().ok();
        // The template's own `db.local` stays as written.
        assert_eq!(
            extra_hosts(&src, gateway),
            ["db.local:10.0.0.9", "servicea.local:172.18.0.1"]
        );
        // No internal router for the app: only the template's.
        assert_eq!(extra_hosts(&src, None), ["db.local:10.0.0.9"]);
        let spec = spec(&src);
        let mounts = Mounts::default();
        let cx = shop_context(&mounts, gateway);
        let host = body(&spec, &src, cx).unwrap().host_config.unwrap();
        assert_eq!(
            host.extra_hosts.unwrap(),
            ["db.local:10.0.0.9", "servicea.local:172.18.0.1"]
        );
    }

    #[test]
    fn no_command_keeps_the_images() {
        let src = source("services:\n  web:\n    image: shop:1\n", None);
        let spec = spec(&src);
        let mounts = Mounts::default();
        let cx = shop_context(&mounts, None);
        let body = body(&spec, &src, cx).unwrap();
        assert_eq!(body.cmd, None);
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.stop_timeout, None);
    }

    #[test]
    fn a_relative_bind_mount_needs_the_template_folder() {
        let src = source(
            "services:\n  web:\n    image: shop:1\n    volumes: [\"./data:/data\"]\n",
            None,
        );
        let err = mounts("shop", "web.1", &src, None).unwrap_err();
        assert!(
            err.to_string().contains("cannot mount ./data into web.1"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("absolute path"));
    }

    #[test]
    fn a_declared_name_or_external_volume_is_used_as_declared() {
        let src = source(
            "services:\n  web:\n    image: shop:1\n    volumes: [\"db:/db\", \"logs:/logs\"]\n\
             volumes:\n  db: { external: true }\n  logs: { name: shared-logs }\n",
            None,
        );
        let m = mounts("shop", "web.1", &src, None).unwrap();
        assert_eq!(
            m.volumes,
            vec![("db".to_string(), true), ("shared-logs".to_string(), false)]
        );
    }

    #[test]
    fn splits_words_as_compose_does() {
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\"" f\ g  "#).unwrap(),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(split_words("''").unwrap(), [""]);
        assert_eq!(split_words("a 'b"), None);
    }

    #[test]
    fn names() {
        assert_eq!(
            container_name("hello", "serviceA-v1", 2),
            "hello-serviceA-v1-2"
        );
        assert_eq!(instance_number("serviceA-v1.12"), 12);
        assert_eq!(instance_number("odd"), 1);
        assert_eq!(network_name("hello"), "hello_default");
    }
}
