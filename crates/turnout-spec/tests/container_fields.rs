//! The compose fields a container runtime honours (DESIGN §6.1): read into
//! `Service::container` in every spelling compose allows, written back by
//! `to_yaml` to an equal template, and refused with file, line, column,
//! field path and a hint when wrong.

use std::collections::BTreeMap;

use turnout_spec::template::{
    DependsCondition, ExtraHost, PullPolicy, ServiceNetwork, Ulimit, VolumeKind, VolumeMount,
};
use turnout_spec::{Command, Diagnostic, Parsed, Service, parse, spec_hash, to_yaml};

fn env(name: &str) -> Option<String> {
    (name == "DATA").then(|| "/srv/data".to_string())
}

#[track_caller]
fn ok(text: &str) -> Parsed {
    match parse("compose.yaml", text, &env) {
        Ok(parsed) => parsed,
        Err(d) => panic!(
            "expected a valid template, got:\n{}",
            d.iter().map(|d| format!("{d}\n")).collect::<String>()
        ),
    }
}

#[track_caller]
fn errors(text: &str) -> Vec<Diagnostic> {
    match parse("compose.yaml", text, &env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
    }
}

/// The one error of `text`, checked for place, path and message.
#[track_caller]
fn the_error(text: &str, line: u32, column: u32, path: &str, message: &str) -> Diagnostic {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    let d = e.into_iter().next().unwrap();
    assert_eq!(
        (
            d.pos.line,
            d.pos.column,
            d.path.to_string(),
            d.message.as_str()
        ),
        (line, column, path.to_string(), message),
        "{d}"
    );
    assert_eq!(d.file, "compose.yaml");
    d
}

fn svc<'a>(p: &'a Parsed, name: &str) -> &'a Service {
    p.template.service(name).expect("service")
}

const FULL: &str = "\
services:
  web:
    image: shop/web:1
    entrypoint: [\"/bin/tini\", \"--\"]
    user: \"1000:1000\"
    working_dir: /srv
    volumes:
      - db_data:/var/lib/db
      - ./conf:/etc/conf:ro
      - ${DATA}:/data:rw,z
      - ~/cache:/cache
      - /node_modules
      - type: bind
        source: ./proxy/nginx.conf
        target: /etc/nginx/conf.d/default.conf
        read_only: true
      - type: volume
        source: db_data
        target: /backup
        volume:
          nocopy: true
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 64m
    tmpfs: /run
    stop_signal: int
    stop_grace_period: 1m30s
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
        restart: true
    extra_hosts:
      - \"gw:host-gateway\"
      - \"v6=::1\"
    dns: 1.1.1.1
    cap_add: [net_admin, CAP_SYS_PTRACE]
    cap_drop: [ALL]
    read_only: true
    init: true
    ulimits:
      nproc: 65535
      nofile:
        soft: 20000
        hard: 40000
    deploy:
      replicas: 2
      resources:
        limits:
          cpus: '0.5'
          memory: 1.5G
        reservations:
          memory: 100m
    pull_policy: if_not_present
    container_name: shop-web
    networks:
      front:
        aliases: [www]
      back:
  db:
    image: postgres
    healthcheck:
      test: [\"CMD\", \"pg_isready\"]
    networks: [back]
    dns: [8.8.8.8, 8.8.4.4]
    extra_hosts:
      api.local: 10.0.0.2
    tmpfs: [/tmp, \"/run:size=10m\"]
    entrypoint: docker-entrypoint.sh
    pull_policy: never
  cache:
    build:
      context: ./cache
      dockerfile: Dockerfile.dev
      args:
        - NODE_ENV=development
    stop_grace_period: 500ms
volumes:
  db_data:
networks:
  front: {}
  back:
    driver: bridge
";

#[test]
fn every_container_field_is_read_into_the_model() {
    let parsed = ok(FULL);
    let web = &svc(&parsed, "web").container;
    assert_eq!(
        web.entrypoint,
        Some(Command::Exec(vec!["/bin/tini".into(), "--".into()]))
    );
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(svc(&parsed, "web").working_dir.as_deref(), Some("/srv"));
    let mount =
        |kind, source: Option<&str>, target: &str, read_only, options: &[&str]| VolumeMount {
            kind,
            source: source.map(Into::into),
            target: target.into(),
            read_only,
            options: options.iter().map(|o| o.to_string()).collect(),
        };
    assert_eq!(
        web.volumes,
        [
            mount(
                VolumeKind::Volume,
                Some("db_data"),
                "/var/lib/db",
                false,
                &[]
            ),
            mount(VolumeKind::Bind, Some("./conf"), "/etc/conf", true, &[]),
            mount(VolumeKind::Bind, Some("/srv/data"), "/data", false, &["z"]),
            mount(VolumeKind::Bind, Some("~/cache"), "/cache", false, &[]),
            mount(VolumeKind::Volume, None, "/node_modules", false, &[]),
            mount(
                VolumeKind::Bind,
                Some("./proxy/nginx.conf"),
                "/etc/nginx/conf.d/default.conf",
                true,
                &[]
            ),
            mount(
                VolumeKind::Volume,
                Some("db_data"),
                "/backup",
                false,
                &["nocopy"]
            ),
            mount(VolumeKind::Tmpfs, None, "/scratch", false, &["size=64m"]),
        ]
    );
    assert_eq!(web.tmpfs, ["/run"]);
    assert_eq!(web.stop_signal.as_deref(), Some("SIGINT"), "normalised");
    assert_eq!(web.stop_grace_period_ms, Some(90_000));
    assert_eq!(
        web.depends_conditions,
        BTreeMap::from([("db".to_string(), DependsCondition::ServiceHealthy)]),
        "only conditions other than service_started are kept"
    );
    assert_eq!(svc(&parsed, "web").depends_on, ["db", "cache"]);
    assert_eq!(
        web.extra_hosts,
        [
            ExtraHost {
                host: "gw".into(),
                ip: "host-gateway".into()
            },
            ExtraHost {
                host: "v6".into(),
                ip: "::1".into()
            },
        ]
    );
    assert_eq!(web.dns, ["1.1.1.1"]);
    assert_eq!(web.cap_add, ["NET_ADMIN", "SYS_PTRACE"]);
    assert_eq!(web.cap_drop, ["ALL"]);
    assert!(web.read_only);
    assert_eq!(web.init, Some(true));
    assert_eq!(
        web.ulimits,
        BTreeMap::from([
            (
                "nofile".to_string(),
                Ulimit {
                    soft: 20000,
                    hard: 40000
                }
            ),
            (
                "nproc".to_string(),
                Ulimit {
                    soft: 65535,
                    hard: 65535
                }
            ),
        ])
    );
    assert_eq!(web.limits.nano_cpus, Some(500_000_000));
    assert_eq!(web.limits.memory_bytes, Some(1_610_612_736));
    assert_eq!(svc(&parsed, "web").replicas, Some(2));
    assert_eq!(web.pull_policy, Some(PullPolicy::Missing));
    assert_eq!(web.container_name.as_deref(), Some("shop-web"));
    assert_eq!(
        web.networks,
        BTreeMap::from([
            (
                "front".to_string(),
                ServiceNetwork {
                    aliases: vec!["www".into()],
                    ..ServiceNetwork::default()
                }
            ),
            ("back".to_string(), ServiceNetwork::default()),
        ])
    );
    let db = &svc(&parsed, "db").container;
    assert_eq!(db.dns, ["8.8.8.8", "8.8.4.4"]);
    assert_eq!(
        db.extra_hosts,
        [ExtraHost {
            host: "api.local".into(),
            ip: "10.0.0.2".into()
        }]
    );
    assert_eq!(db.tmpfs, ["/tmp", "/run:size=10m"]);
    assert_eq!(
        db.entrypoint,
        Some(Command::Shell("docker-entrypoint.sh".into()))
    );
    assert_eq!(db.pull_policy, Some(PullPolicy::Never));
    let cache = svc(&parsed, "cache");
    let build = cache.build.as_ref().unwrap();
    assert_eq!(
        (build.context.as_str(), build.dockerfile.as_deref()),
        ("./cache", Some("Dockerfile.dev"))
    );
    assert_eq!(build.args["NODE_ENV"], "development");
    assert_eq!(cache.container.stop_grace_period_ms, Some(500));
    let t = &parsed.template;
    assert_eq!(t.volumes.keys().collect::<Vec<_>>(), ["db_data"]);
    assert_eq!(t.networks["back"].driver.as_deref(), Some("bridge"));
}

#[test]
fn the_parser_leaves_runtime_warnings_to_the_runtime() {
    let parsed = ok(FULL);
    // Which runtime ignores the container fields is known only where the
    // template is deployed (`Runtime::warnings`): the parser names none.
    let named: Vec<String> = parsed
        .warnings
        .iter()
        .filter(|w| w.message.contains("runtime ignores"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(named, Vec::<String>::new());
    for w in &parsed.warnings {
        assert!(
            !w.message.starts_with("turnout ignores volumes")
                && !w.message.starts_with("turnout ignores user"),
            "fields the docker runtime honours must not say turnout ignores them: {w}"
        );
    }
    // What no runtime uses still says so.
    let other: Vec<&str> = parsed
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("turnout ignores"))
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(
        other,
        [
            "turnout ignores depends_on restart",
            "turnout ignores deploy.resources.reservations"
        ]
    );
}

#[test]
fn to_yaml_reads_back_to_the_same_template() {
    let parsed = ok(FULL);
    let text = to_yaml(&parsed.template);
    let again = parse("again.yaml", &text, &|_| None)
        .unwrap_or_else(|d| panic!("{text}\n{d:#?}"))
        .template;
    assert_eq!(again, parsed.template, "{text}");
}

#[test]
fn container_fields_are_part_of_a_service_identity() {
    let base = "services:\n  web:\n    image: web\n";
    let hash = |t: &str| spec_hash(&ok(t).template.services[0]);
    assert_ne!(hash(base), hash(&format!("{base}    user: nobody\n")));
    assert_ne!(hash(base), hash(&format!("{base}    volumes: [./a:/a]\n")));
    // Spelling does not matter: short and long syntax mean the same mount.
    assert_eq!(
        hash(&format!("{base}    volumes: [\"./a:/a:ro\"]\n")),
        hash(&format!(
            "{base}    volumes:\n      - type: bind\n        source: ./a\n        target: /a\n        read_only: true\n"
        ))
    );
}

#[test]
fn a_named_volume_must_be_declared_at_top_level() {
    let d = the_error(
        "services:\n  db:\n    image: pg\n    volumes:\n      - db-data:/var/lib/db\n",
        5,
        9,
        "services.db.volumes[0]",
        "volume \"db-data\" is not declared",
    );
    let hint = d.hint.as_deref().unwrap();
    assert!(hint.contains("volumes:\n  db-data: {}"), "{hint}");
    assert!(hint.contains("./db-data"), "{hint}");
    let d = the_error(
        "services:\n  db:\n    image: pg\n    volumes: [\"dbdata:/x\"]\nvolumes:\n  db-data:\n",
        4,
        15,
        "services.db.volumes[0]",
        "volume \"dbdata\" is not declared",
    );
    assert!(d.hint.unwrap().contains("did you mean \"db-data\"?"));
    // The seed layout (compose v1) has nowhere to declare them.
    ok("db:\n  image: pg\n  volumes: [\"data:/x\"]\n");
}

#[test]
fn a_service_network_must_be_declared_at_top_level() {
    let d = the_error(
        "services:\n  web:\n    image: w\n    networks: [front, default]\n",
        4,
        16,
        "services.web.networks[0]",
        "network \"front\" is not declared",
    );
    assert!(d.hint.unwrap().contains("networks:\n  front: {}"));
}

#[test]
fn bad_volumes_are_errors_with_what_to_write() {
    let d = the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"./a:data\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume: the target \"data\" is not an absolute path",
    );
    assert!(d.hint.unwrap().contains("a host path starts with"));
    let d = the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"./a:/a:rx\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume mode \"rx\"",
    );
    assert!(d.hint.unwrap().contains("`ro` or `rw`"));
    the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"a:/b:ro:x\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume: too many `:`",
    );
    the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"::bad\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume: the source and the target are empty",
    );
    the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"data::ro\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume: the target is empty",
    );
    let d = the_error(
        "services:\n  a:\n    image: i\n    volumes: [\"./a:/a:ro,rw\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume mode: `ro` and `rw` together",
    );
    assert!(d.hint.unwrap().contains("keep one"));
    the_error(
        "services:\n  a:\n    image: i\n    volumes: [\":/b\"]\n",
        4,
        15,
        "services.a.volumes[0]",
        "invalid volume: the source is empty",
    );
    let d = the_error(
        "services:\n  a:\n    image: i\n    volumes:\n      - source: ./a\n        target: /a\n",
        5,
        9,
        "services.a.volumes[0]",
        "a volume in the long syntax needs a type",
    );
    assert!(d.hint.unwrap().contains("type: bind"));
    the_error(
        "services:\n  a:\n    image: i\n    volumes:\n      - type: bind\n        target: /a\n",
        5,
        9,
        "services.a.volumes[0]",
        "a bind mount needs a source",
    );
    the_error(
        "services:\n  a:\n    image: i\n    volumes:\n      - type: npipe\n        target: /a\n",
        5,
        15,
        "services.a.volumes[0].type",
        "unsupported volume type \"npipe\"",
    );
    let d = the_error(
        "services:\n  a:\n    image: i\n    volumes:\n      - type: bind\n        source: .\n        taget: /a\n",
        7,
        9,
        "services.a.volumes[0].taget",
        "unknown volume field \"taget\"",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"target\"?"));
    the_error(
        "services:\n  a:\n    image: i\n    volumes: ./a:/a\n",
        4,
        14,
        "services.a.volumes",
        "volumes must be a list",
    );
}

#[test]
fn bad_values_of_the_other_fields_are_errors() {
    let svc = |field: &str| format!("services:\n  a:\n    image: i\n    {field}\n");
    let cases: &[(&str, u32, &str, &str)] = &[
        (
            "stop_signal: SIGTREM",
            18,
            "services.a.stop_signal",
            "unknown stop_signal \"SIGTREM\"",
        ),
        (
            "stop_grace_period: 10",
            24,
            "services.a.stop_grace_period",
            "invalid duration in stop_grace_period",
        ),
        (
            "pull_policy: daily",
            18,
            "services.a.pull_policy",
            "unsupported pull_policy \"daily\"",
        ),
        (
            "read_only: yes",
            16,
            "services.a.read_only",
            "read_only must be true or false",
        ),
        (
            "init: 1",
            11,
            "services.a.init",
            "init must be true or false",
        ),
        (
            "cap_add: [\"NET ADMIN\"]",
            15,
            "services.a.cap_add[0]",
            "invalid capability \"NET ADMIN\"",
        ),
        (
            "ulimits: {nofiles: 10}",
            15,
            "services.a.ulimits.nofiles",
            "unknown ulimit \"nofiles\"",
        ),
        (
            "ulimits: {nofile: {soft: 20, hard: 10}}",
            23,
            "services.a.ulimits.nofile",
            "ulimits.nofile: soft limit 20 is above the hard limit 10",
        ),
        (
            "ulimits: {nofile: {soft: 20}}",
            23,
            "services.a.ulimits.nofile",
            "ulimits.nofile needs soft and hard",
        ),
        (
            "tmpfs: run",
            12,
            "services.a.tmpfs",
            "a tmpfs mount point must be an absolute path",
        ),
        (
            "extra_hosts: [\"nohost\"]",
            19,
            "services.a.extra_hosts[0]",
            "invalid extra_hosts entry",
        ),
        (
            "dns: {a: b}",
            10,
            "services.a.dns",
            "dns must be a string or a list",
        ),
        (
            "container_name: \"my web\"",
            21,
            "services.a.container_name",
            "invalid container_name \"my web\"",
        ),
        (
            "deploy: {resources: {limits: {cpus: many}}}",
            41,
            "services.a.deploy.resources.limits.cpus",
            "invalid deploy.resources.limits.cpus",
        ),
        (
            "deploy: {resources: {limits: {memory: 1.5Q}}}",
            43,
            "services.a.deploy.resources.limits.memory",
            "invalid deploy.resources.limits.memory",
        ),
        (
            "entrypoint: []",
            17,
            "services.a.entrypoint",
            "command is an empty list",
        ),
        (
            "env_file: \"\"",
            15,
            "services.a.env_file",
            "env_file names no file",
        ),
    ];
    for (field, column, path, message) in cases {
        the_error(&svc(field), 4, *column, path, message);
    }
    let d = the_error(
        &svc("stop_signal: SIGTREM"),
        4,
        18,
        "services.a.stop_signal",
        "unknown stop_signal \"SIGTREM\"",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"SIGTERM\"?"));
    let d = the_error(
        &svc("pull_policy: daily"),
        4,
        18,
        "services.a.pull_policy",
        "unsupported pull_policy \"daily\"",
    );
    assert!(d.hint.unwrap().contains("never pulls on a schedule"));
    let text = "services:\n  a:\n    image: i\n    depends_on:\n      b:\n        condition: service_ready\n  b:\n    image: i\n";
    the_error(
        text,
        6,
        20,
        "services.a.depends_on.b.condition",
        "unknown depends_on condition \"service_ready\"",
    );
}

#[test]
fn env_file_is_a_string_or_a_list() {
    let one = ok("services:\n  a:\n    image: i\n    env_file: web.env\n");
    assert_eq!(one.template.services[0].env_file, ["web.env"]);
    let many = ok("services:\n  a:\n    image: i\n    env_file: [a.env, ./b/c.env]\n");
    assert_eq!(many.template.services[0].env_file, ["a.env", "./b/c.env"]);
    assert!(
        many.warnings.is_empty(),
        "env_file is used on every runtime: {:?}",
        many.warnings
    );
}
