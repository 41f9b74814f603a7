//! Every service field, every label and every cross-service rule of a
//! template (DESIGN §2 and §7, SEED.md's label table), read through the
//! public `parse`, with the model checked on success and the diagnostic's
//! place, field path, message and hint checked on failure.

use std::collections::BTreeMap;

use turnout_spec::template::{Build, HealthTest, Healthcheck, PortMapping, Protocol, Restart};
use turnout_spec::{
    Command, DEFAULT_DOMAIN, Diagnostic, Format, Parsed, Probe, ProbeCheck, Role, RouteHost,
    Service, Severity, Sticky, diff, parse,
};

/// The fake environment templates are read in.
fn env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("example.com".into()),
        "TAG" => Some("2.0".into()),
        "PREFIX" => Some("shop".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[track_caller]
fn ok(text: &str) -> Parsed {
    match parse("app.yaml", text, &env) {
        Ok(parsed) => parsed,
        Err(diagnostics) => panic!("expected a valid template, got:\n{}", show(&diagnostics)),
    }
}

/// A valid template without any warning.
#[track_caller]
fn clean(text: &str) -> Parsed {
    let parsed = ok(text);
    assert!(
        parsed.warnings.is_empty(),
        "unexpected warnings:\n{}",
        show(&parsed.warnings)
    );
    parsed
}

#[track_caller]
fn errors(text: &str) -> Vec<Diagnostic> {
    match parse("app.yaml", text, &env) {
        Ok(parsed) => panic!(
            "expected errors, the template is valid: {:?}",
            parsed.template
        ),
        Err(diagnostics) => {
            assert!(diagnostics.iter().all(|d| d.file == "app.yaml"));
            diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect()
        }
    }
}

/// The one error of an invalid template.
#[track_caller]
fn the_error(text: &str) -> Diagnostic {
    let mut errors = errors(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        show(&errors)
    );
    errors.remove(0)
}

/// The one warning of a valid template.
#[track_caller]
fn the_warning(text: &str) -> Diagnostic {
    let mut warnings = ok(text).warnings;
    assert_eq!(
        warnings.len(),
        1,
        "expected one warning, got:\n{}",
        show(&warnings)
    );
    let w = warnings.remove(0);
    assert_eq!(w.severity, Severity::Warning);
    w
}

fn show(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("{d} [{:?}]\n", d.severity))
        .collect()
}

/// Checks where a diagnostic points and what it says.
#[track_caller]
fn at(d: &Diagnostic, line: u32, column: u32, path: &str, message: &str) {
    assert_eq!(
        (d.pos.line, d.pos.column, d.path.to_string().as_str()),
        (line, column, path),
        "wrong place for: {d}"
    );
    assert_eq!(d.message, message, "wrong message for: {d}");
    assert_eq!(d.file, "app.yaml");
}

#[track_caller]
fn hint(d: &Diagnostic) -> &str {
    d.hint
        .as_deref()
        .unwrap_or_else(|| panic!("no hint in: {d}"))
}

#[track_caller]
fn svc<'a>(parsed: &'a Parsed, name: &str) -> &'a Service {
    parsed
        .template
        .service(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// The route ids of a service, in port order then written order.
fn route_ids(service: &Service) -> Vec<String> {
    service
        .settings
        .routes
        .iter()
        .flat_map(|b| b.routes.iter().map(|r| r.id(DEFAULT_DOMAIN)))
        .collect()
}

/// One service `a` with an image and the given labels (map form).
fn with_labels(labels: &str) -> String {
    format!("a:\n  image: demo\n  labels:\n{labels}")
}

// ---------------------------------------------------------------------------
// Layouts: seed (compose v1) and compose v2/v3.

const SEED_DEMO: &str = "\
serviceA-v1:
  image: 'registry.example.com/demo-service-a:1.0'
  labels:
    aliyun.scale: 3
    aliyun.routing.port_5000: servicea.local
serviceB-v1:
  image: 'registry.example.com/demo-service-b:1.0'
  environment:
    - 'dep_endpoint=http://servicea.local'
  labels:
    aliyun.scale: 2
    aliyun.routing.port_5001: serviceb
  external_links:
    - \"servicea.local\"
";

#[test]
fn seed_layout_reads_the_seed_demo() {
    let parsed = clean(SEED_DEMO);
    let t = &parsed.template;
    assert_eq!(t.format, Format::Seed);
    assert_eq!((t.version.as_deref(), t.name.as_deref()), (None, None));
    let names: Vec<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["serviceA-v1", "serviceB-v1"]);

    let a = svc(&parsed, "serviceA-v1");
    assert_eq!(
        a.image.as_deref(),
        Some("registry.example.com/demo-service-a:1.0")
    );
    assert_eq!(a.settings.scale, 3);
    assert_eq!(a.settings.routes.len(), 1);
    assert_eq!(a.settings.routes[0].container_port, 5000);
    let route = &a.settings.routes[0].routes[0];
    assert_eq!(route.host, RouteHost::Full("servicea.local".into()));
    assert_eq!(route.id("localhost"), "servicea.local");
    assert!(route.is_internal("localhost"));

    let b = svc(&parsed, "serviceB-v1");
    assert_eq!(b.settings.scale, 2);
    assert_eq!(b.settings.routes[0].container_port, 5001);
    let route = &b.settings.routes[0].routes[0];
    assert_eq!(route.host, RouteHost::Prefix("serviceb".into()));
    assert_eq!(route.id("localhost"), "serviceb.localhost");
    assert_eq!(route.id("apps.example.com"), "serviceb.apps.example.com");
    assert!(!route.is_internal("localhost"));
    assert_eq!(
        b.environment.get("dep_endpoint"),
        Some(&Some("http://servicea.local".to_string()))
    );
    assert_eq!(b.external_links, ["servicea.local"]);
    // Labels are kept as written, numbers as strings.
    assert_eq!(b.labels.get("aliyun.scale").map(String::as_str), Some("2"));
}

#[test]
fn compose_layout_reads_the_same_services_as_the_seed_layout() {
    let compose = "\
version: '3'
services:
  serviceA-v1:
    image: 'registry.example.com/demo-service-a:1.0'
    labels:
      aliyun.scale: 3
      aliyun.routing.port_5000: servicea.local
  serviceB-v1:
    image: 'registry.example.com/demo-service-b:1.0'
    environment:
      dep_endpoint: http://servicea.local
    labels:
      - aliyun.scale=2
      - aliyun.routing.port_5001=serviceb
    external_links: [servicea.local]
";
    let compose = clean(compose).template;
    let seed = clean(SEED_DEMO).template;
    assert_eq!(compose.format, Format::Compose);
    assert_eq!(compose.version.as_deref(), Some("3"));
    assert_eq!(compose.services, seed.services);
}

#[test]
fn compose_top_level_keys_name_version_and_extensions() {
    let parsed = ok("\
version: 3.8
name: shop
x-defaults: &defaults
  image: demo
services:
  web:
    <<: *defaults
networks:
  front: {}
volumes:
  data: {}
configs: {}
secrets: {}
");
    let t = &parsed.template;
    assert_eq!(t.format, Format::Compose);
    assert_eq!(t.version.as_deref(), Some("3.8"), "number kept as written");
    assert_eq!(t.name.as_deref(), Some("shop"));
    assert_eq!(t.services.len(), 1, "x-defaults is not a service");
    assert_eq!(t.services[0].image.as_deref(), Some("demo"));
    let ignored: Vec<(u32, String, String)> = parsed
        .warnings
        .iter()
        .map(|w| (w.pos.line, w.path.to_string(), w.message.clone()))
        .collect();
    assert_eq!(
        ignored,
        [
            // Top-level networks and volumes: the runtime in use warns
            // when it ignores them (`Runtime::warnings`), not the parser.
            (
                12,
                "configs".to_string(),
                "turnout ignores top-level configs".into()
            ),
            (
                13,
                "secrets".into(),
                "turnout ignores top-level secrets".into()
            ),
        ]
    );
}

#[test]
fn services_key_alone_makes_a_compose_file() {
    let t = clean("services:\n  web:\n    command: serve\n").template;
    assert_eq!(t.format, Format::Compose);
    assert_eq!(t.version, None);
    assert_eq!(t.services[0].command, Some(Command::Shell("serve".into())));
}

#[test]
fn seed_layout_skips_extension_keys() {
    let parsed = clean(
        "\
x-common: &common
  image: demo
web:
  <<: *common
",
    );
    assert_eq!(parsed.template.format, Format::Seed);
    assert_eq!(parsed.template.services.len(), 1);
    assert_eq!(svc(&parsed, "web").image.as_deref(), Some("demo"));
}

#[test]
fn unknown_compose_top_level_key_is_an_error_with_a_hint() {
    let d = the_error(
        "\
version: '3'
services:
  web:
    image: demo
service:
  db:
    image: pg
",
    );
    at(&d, 5, 1, "service", "unknown top-level key \"service\"");
    assert_eq!(hint(&d), "did you mean \"services\"?");
    assert!(d.expected.as_deref().unwrap().contains("x-* extension"));
}

#[test]
fn compose_file_without_services_is_an_error() {
    let d = the_error("version: '3'\nname: empty\n");
    at(&d, 1, 1, "", "the template has no `services:`");
}

#[test]
fn a_template_needs_a_service() {
    let d = the_error("");
    assert_eq!(d.message, "the template is empty");
    let d = the_error("x-only: 1\n");
    at(&d, 1, 1, "", "the template has no service");
    let d = the_error("services:\n");
    assert_eq!(d.message, "the template has no service");
}

#[test]
fn a_template_is_a_map() {
    let d = the_error("- web\n- db\n");
    assert_eq!((d.pos.line, d.pos.column), (1, 1));
    assert_eq!(d.message, "the template must be a map");
    assert_eq!(d.found.as_deref(), Some("a list"));
}

#[test]
fn invalid_yaml_is_reported_with_its_place() {
    let d = the_error("web:\n  image: [demo\n  command: x\n");
    assert!(d.message.starts_with("invalid YAML: "), "{d}");
    assert!(d.pos.line >= 2, "{d}");
    assert!(d.hint.is_some());
}

// ---------------------------------------------------------------------------
// Service names and the image/build/command rule.

#[test]
fn service_names_follow_the_rule() {
    let parsed = clean(
        "\
web.v1_a-2:
  image: demo
9lives:
  image: demo
",
    );
    assert_eq!(parsed.template.services.len(), 2);
    // Names that are not plain are quoted in the field path.
    for (bad, path) in [
        ("-web", "-web"),
        ("_web", "_web"),
        ("web app", "\"web app\""),
        ("wéb", "\"wéb\""),
    ] {
        let d = the_error(&format!("\"{bad}\":\n  image: demo\n"));
        at(&d, 1, 1, path, &format!("invalid service name {bad:?}"));
        assert!(d.expected.as_deref().unwrap().contains("starting with"));
        assert!(hint(&d).contains("serviceB-v2"));
    }
    let d = the_error("services:\n  \"a/b\":\n    image: demo\n");
    at(
        &d,
        2,
        3,
        r#"services."a/b""#,
        "invalid service name \"a/b\"",
    );
}

#[test]
fn a_service_needs_image_build_or_command() {
    let d = the_error("web:\n  working_dir: /srv\n");
    at(
        &d,
        1,
        1,
        "web",
        "service web has no image, build or command",
    );
    assert_eq!(
        d.expected.as_deref(),
        Some("at least one of image, build, command")
    );
    assert!(hint(&d).contains("command:"));
    clean("a:\n  image: demo\nb:\n  build: .\nc:\n  command: run\n");
}

#[test]
fn a_service_is_a_map() {
    let d = the_error("web: nginx\n");
    at(&d, 1, 6, "web", "service web must be a map");
    assert_eq!(d.found.as_deref(), Some("\"nginx\""));
}

// ---------------------------------------------------------------------------
// Service fields.

#[test]
fn image_is_a_string() {
    let parsed = clean("a:\n  image: nginx:1.25\nb:\n  image: 1.10\n");
    assert_eq!(svc(&parsed, "a").image.as_deref(), Some("nginx:1.25"));
    assert_eq!(
        svc(&parsed, "b").image.as_deref(),
        Some("1.10"),
        "kept as written"
    );
    let d = the_error("a:\n  image: [nginx]\n");
    at(&d, 2, 10, "a.image", "image must be a string");
    assert_eq!(d.found.as_deref(), Some("a list"));
}

#[test]
fn command_as_string_or_list() {
    let parsed = clean(
        "\
shell:
  command: python app.py --port ${PORT}
exec:
  command: [\"python\", \"app.py\", 8080]
",
    );
    assert_eq!(
        svc(&parsed, "shell").command,
        Some(Command::Shell("python app.py --port ${PORT}".into()))
    );
    assert_eq!(
        svc(&parsed, "exec").command,
        Some(Command::Exec(vec![
            "python".into(),
            "app.py".into(),
            "8080".into()
        ]))
    );
    assert_eq!(
        svc(&parsed, "exec").command.as_ref().unwrap().to_string(),
        "python app.py 8080"
    );
}

#[test]
fn command_must_not_be_empty_or_a_map() {
    let d = the_error("a:\n  command: []\n");
    at(&d, 2, 12, "a.command", "command is an empty list");
    let d = the_error("a:\n  command: '  '\n");
    at(&d, 2, 12, "a.command", "command is empty");
    let d = the_error("a:\n  command:\n    run: x\n");
    at(&d, 3, 5, "a.command", "command must be a string");
    let d = the_error("a:\n  command: [run, [x]]\n");
    at(&d, 2, 18, "a.command[1]", "a list item must be a string");
}

#[test]
fn environment_as_list() {
    let parsed = clean(
        "\
a:
  image: demo
  environment:
    - A=1
    - BARE
    - EMPTY_VALUE=
    - URL=http://x/?a=b
",
    );
    let env = &svc(&parsed, "a").environment;
    let expected: BTreeMap<String, Option<String>> = [
        ("A", Some("1")),
        ("BARE", None),
        ("EMPTY_VALUE", Some("")),
        ("URL", Some("http://x/?a=b")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    .collect();
    assert_eq!(*env, expected);
}

#[test]
fn environment_as_map_with_null_number_and_bool_values() {
    let parsed = clean(
        "\
a:
  image: demo
  environment:
    NULL_VALUE: null
    TILDE: ~
    NOTHING:
    INT: 8080
    OCTAL: 0755
    FLOAT: 1.10
    BOOL: true
    NO: no
    TEXT: 'hello world'
",
    );
    let env = &svc(&parsed, "a").environment;
    let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(get("NULL_VALUE"), None);
    assert_eq!(get("TILDE"), None);
    assert_eq!(get("NOTHING"), None);
    assert_eq!(get("INT").as_deref(), Some("8080"));
    assert_eq!(get("OCTAL").as_deref(), Some("0755"), "kept as written");
    assert_eq!(get("FLOAT").as_deref(), Some("1.10"), "kept as written");
    assert_eq!(get("BOOL").as_deref(), Some("true"));
    assert_eq!(get("NO").as_deref(), Some("no"), "YAML 1.2: `no` is text");
    assert_eq!(get("TEXT").as_deref(), Some("hello world"));
}

#[test]
fn environment_list_and_map_read_alike() {
    let list = clean("a:\n  image: d\n  environment:\n    - A=1\n    - B\n").template;
    let map = clean("a:\n  image: d\n  environment:\n    B:\n    A: 1\n").template;
    assert_eq!(list, map);
}

#[test]
fn environment_problems() {
    let d = the_error("a:\n  image: d\n  environment:\n    - A=1\n    - A=2\n");
    at(
        &d,
        5,
        7,
        "a.environment.A",
        "duplicate key \"A\" in environment",
    );
    assert!(hint(&d).contains("line 4"));
    let d = the_error("a:\n  image: d\n  environment:\n    A: 1\n    A: 2\n");
    at(&d, 5, 5, "a.environment.A", "duplicate key \"A\"");
    assert!(hint(&d).contains("line 4"));
    let d = the_error("a:\n  image: d\n  environment:\n    - =1\n");
    at(&d, 4, 7, "a.environment[0]", "invalid entry in environment");
    assert_eq!(d.found.as_deref(), Some("\"=1\""));
    let d = the_error("a:\n  image: d\n  environment:\n    - MY VAR=1\n");
    at(&d, 4, 7, "a.environment[0]", "invalid entry in environment");
    let d = the_error("a:\n  image: d\n  environment:\n    A: [1, 2]\n");
    at(
        &d,
        4,
        8,
        "a.environment.A",
        "a value in environment must be a string",
    );
    assert!(hint(&d).contains("quote"));
    let d = the_error("a:\n  image: d\n  environment: A=1\n");
    at(
        &d,
        3,
        16,
        "a.environment",
        "environment must be a list or a map",
    );
}

#[test]
fn environment_list_entries_must_be_strings_as_in_compose() {
    // `- 42` names no variable: compose's schema wants strings in the list
    // form. Every such entry is reported, each at its own place.
    let d = errors("a:\n  image: d\n  environment:\n    - 42\n    - A=1\n    - true\n    - [x]\n");
    assert_eq!(d.len(), 3, "{d:#?}");
    at(
        &d[0],
        4,
        7,
        "a.environment[0]",
        "an entry of environment must be a string",
    );
    assert_eq!(d[0].found.as_deref(), Some("the number 42"));
    assert_eq!(
        d[0].expected.as_deref(),
        Some("a string `KEY=VALUE` or `KEY`")
    );
    assert!(hint(&d[0]).contains("KEY: VALUE"), "{}", hint(&d[0]));
    at(
        &d[1],
        6,
        7,
        "a.environment[2]",
        "an entry of environment must be a string",
    );
    assert_eq!(d[1].found.as_deref(), Some("the boolean true"));
    assert_eq!(d[2].found.as_deref(), Some("a list"));
    // Quoted, the same text is an entry (a bare key), as in compose.
    let parsed = clean("a:\n  image: d\n  environment:\n    - '42'\n");
    assert_eq!(
        svc(&parsed, "a").environment.get("42"),
        Some(&None),
        "a quoted entry is a bare key"
    );
    // The map form stringifies numbers and booleans, as compose does.
    let parsed = clean("a:\n  image: d\n  environment:\n    A: 42\n    B: true\n");
    let env = &svc(&parsed, "a").environment;
    assert_eq!(env.get("A"), Some(&Some("42".to_string())));
    assert_eq!(env.get("B"), Some(&Some("true".to_string())));
}

#[test]
fn labels_as_list_or_map() {
    let list =
        clean("a:\n  image: d\n  labels:\n    - com.example.team=shop\n    - flag\n    - eq=a=b\n");
    let labels = &svc(&list, "a").labels;
    assert_eq!(labels.get("com.example.team").unwrap(), "shop");
    assert_eq!(labels.get("flag").unwrap(), "", "a bare label is empty");
    assert_eq!(labels.get("eq").unwrap(), "a=b");
    let map =
        clean("a:\n  image: d\n  labels:\n    com.example.team: shop\n    flag:\n    eq: a=b\n");
    assert_eq!(list.template, map.template);
}

#[test]
fn label_problems() {
    let d = the_error("a:\n  image: d\n  labels:\n    - a=1\n    - a=2\n");
    at(&d, 5, 7, "a.labels.a", "duplicate key \"a\" in labels");
    let d = the_error("a:\n  image: d\n  labels:\n    k: {x: 1}\n");
    at(&d, 4, 8, "a.labels.k", "a value in labels must be a string");
    let d = the_error("a:\n  image: d\n  labels: 3\n");
    at(&d, 3, 11, "a.labels", "labels must be a list or a map");
    assert_eq!(d.found.as_deref(), Some("the number 3"));
}

#[test]
fn external_links_and_links() {
    let parsed = clean(
        "\
db:
  image: pg
web:
  image: demo
  external_links:
    - servicea.local
    - other_app_db:db2
  links:
    - db
    - db:database
",
    );
    let web = svc(&parsed, "web");
    assert_eq!(web.external_links, ["servicea.local", "other_app_db:db2"]);
    assert_eq!(web.links, ["db", "db:database"]);
}

#[test]
fn links_name_services_of_the_template() {
    let d = the_error("web:\n  image: demo\n  links:\n    - db\n    - web\n");
    at(&d, 4, 7, "web.links[0]", "link to unknown service \"db\"");
    assert!(hint(&d).contains("external_links"));
    let d = the_error("web:\n  image: demo\n  external_links: servicea.local\n");
    at(&d, 3, 19, "web.external_links", "expected a list");
}

#[test]
fn restart_policies() {
    let parsed = clean(
        "\
a:
  image: d
  restart: no
b:
  image: d
  restart: always
c:
  image: d
  restart: on-failure
d:
  image: d
  restart: on-failure:5
e:
  image: d
  restart: unless-stopped
f:
  image: d
  restart: false
g:
  image: d
",
    );
    let restart = |n: &str| svc(&parsed, n).restart;
    assert_eq!(restart("a"), Some(Restart::No));
    assert_eq!(restart("b"), Some(Restart::Always));
    assert_eq!(restart("c"), Some(Restart::OnFailure { max_retries: None }));
    assert_eq!(
        restart("d"),
        Some(Restart::OnFailure {
            max_retries: Some(5)
        })
    );
    assert_eq!(restart("e"), Some(Restart::UnlessStopped));
    assert_eq!(restart("f"), Some(Restart::No), "YAML 1.1 `no`");
    assert_eq!(restart("g"), None);
    assert_eq!(restart("d").unwrap().to_string(), "on-failure:5");
}

#[test]
fn bad_restart_policies() {
    for (bad, col) in [
        ("sometimes", 12),
        ("on-failure:x", 12),
        ("on-failure:-1", 12),
        ("Always", 12),
        ("true", 12),
    ] {
        let d = the_error(&format!("a:\n  image: d\n  restart: {bad}\n"));
        at(&d, 3, col, "a.restart", "invalid restart policy");
        assert!(
            d.found.as_deref().unwrap().contains(bad),
            "{d} should quote {bad}"
        );
        assert!(d.expected.as_deref().unwrap().contains("unless-stopped"));
    }
}

#[test]
fn ports_short_syntax() {
    let parsed = clean(
        "\
a:
  image: d
  ports:
    - 3000
    - \"8080:80\"
    - \"127.0.0.1:8081:81\"
    - \"127.0.0.1::82\"
    - \"[::1]:8083:83\"
    - \"53:53/udp\"
    - \"84/tcp\"
    - \"9000-9002:7000-7002\"
    - \"6000-6001\"
",
    );
    let p = |published: Option<u16>, target: u16| PortMapping {
        host_ip: None,
        published,
        target,
        protocol: Protocol::Tcp,
    };
    let with_ip = |ip: &str, published: Option<u16>, target: u16| PortMapping {
        host_ip: Some(ip.into()),
        ..p(published, target)
    };
    let expected = vec![
        p(None, 3000),
        p(Some(8080), 80),
        with_ip("127.0.0.1", Some(8081), 81),
        with_ip("127.0.0.1", None, 82),
        with_ip("::1", Some(8083), 83),
        PortMapping {
            protocol: Protocol::Udp,
            ..p(Some(53), 53)
        },
        p(None, 84),
        p(Some(9000), 7000),
        p(Some(9001), 7001),
        p(Some(9002), 7002),
        p(None, 6000),
        p(None, 6001),
    ];
    assert_eq!(svc(&parsed, "a").ports, expected);
}

#[test]
fn ports_long_syntax() {
    let parsed = ok("\
a:
  image: d
  ports:
    - target: 80
      published: 8080
      host_ip: 0.0.0.0
      protocol: udp
      mode: host
    - target: 81
");
    assert_eq!(
        svc(&parsed, "a").ports,
        [
            PortMapping {
                host_ip: Some("0.0.0.0".into()),
                published: Some(8080),
                target: 80,
                protocol: Protocol::Udp,
            },
            PortMapping {
                host_ip: None,
                published: None,
                target: 81,
                protocol: Protocol::Tcp,
            },
        ]
    );
    assert_eq!(parsed.warnings.len(), 1);
    at(
        &parsed.warnings[0],
        8,
        7,
        "a.ports[0].mode",
        "turnout ignores ports.mode",
    );
}

#[test]
fn bad_ports() {
    let errors = errors(
        "\
a:
  image: d
  ports:
    - \"80/sctp\"
    - \"0\"
    - \"70000:80\"
    - \"9000-9001:80\"
    - \"82-81\"
    - published: 80
    - target: 80
      bogus: 1
    - target: 0
    - target: 80
      protocol: icmp
    - [1]
",
    );
    let got: Vec<(u32, String, String)> = errors
        .iter()
        .map(|d| (d.pos.line, d.path.to_string(), d.message.clone()))
        .collect();
    let expected: Vec<(u32, &str, &str)> = vec![
        (4, "a.ports[0]", "unsupported protocol \"sctp\""),
        (5, "a.ports[1]", "invalid port number \"0\""),
        (6, "a.ports[2]", "invalid port number \"70000\""),
        (
            7,
            "a.ports[3]",
            "host and container port ranges differ in length",
        ),
        (8, "a.ports[4]", "port range \"82-81\" runs backwards"),
        (9, "a.ports[5]", "port has no target"),
        (11, "a.ports[6].bogus", "unknown port field \"bogus\""),
        (12, "a.ports[7].target", "invalid port number \"0\""),
        (14, "a.ports[8].protocol", "invalid protocol"),
        (15, "a.ports[9]", "invalid port entry"),
    ];
    let expected: Vec<(u32, String, String)> = expected
        .into_iter()
        .map(|(l, p, m)| (l, p.to_string(), m.to_string()))
        .collect();
    assert_eq!(got, expected);
    assert!(hint(&errors[0]).contains("quote port mappings"));
    let d = the_error("a:\n  image: d\n  ports: \"80:80\"\n");
    at(&d, 3, 10, "a.ports", "ports must be a list");
}

#[test]
fn healthcheck_forms() {
    let parsed = clean(
        "\
cmd:
  image: d
  healthcheck:
    test: [\"CMD\", \"curl\", \"-f\", \"http://localhost/health\"]
    interval: 1m30s
    timeout: 500ms
    retries: 3
    start_period: 10s
shell:
  image: d
  healthcheck:
    test: [\"CMD-SHELL\", \"curl -f localhost || exit 1\"]
string:
  image: d
  healthcheck:
    test: curl -f localhost
    interval: 1h2m3s
none:
  image: d
  healthcheck:
    test: [\"NONE\"]
disabled:
  image: d
  healthcheck:
    disable: true
",
    );
    let hc = |n: &str| svc(&parsed, n).healthcheck.clone().unwrap();
    assert_eq!(
        hc("cmd"),
        Healthcheck {
            test: Some(HealthTest::Cmd(vec![
                "curl".into(),
                "-f".into(),
                "http://localhost/health".into()
            ])),
            interval_ms: Some(90_000),
            timeout_ms: Some(500),
            retries: Some(3),
            start_period_ms: Some(10_000),
            disable: false,
        }
    );
    assert_eq!(
        hc("shell").test,
        Some(HealthTest::Shell("curl -f localhost || exit 1".into()))
    );
    assert_eq!(
        hc("string").test,
        Some(HealthTest::Shell("curl -f localhost".into()))
    );
    assert_eq!(hc("string").interval_ms, Some(3_723_000));
    assert!(hc("none").disable);
    assert_eq!(hc("none").test, None);
    assert!(hc("disabled").disable);
}

#[test]
fn bad_healthchecks() {
    let errors = errors(
        "\
a:
  image: d
  healthcheck:
    test: [\"CMD\"]
    interval: 10
    timeout: 5x
    retries: -1
    disable: maybe
    foo: 1
",
    );
    let by_path = |path: &str| {
        errors
            .iter()
            .find(|d| d.path.to_string() == path)
            .unwrap_or_else(|| panic!("no error at {path}:\n{}", show(&errors)))
    };
    at(
        by_path("a.healthcheck.test"),
        4,
        11,
        "a.healthcheck.test",
        "invalid healthcheck test",
    );
    let d = by_path("a.healthcheck.interval");
    at(
        d,
        5,
        15,
        "a.healthcheck.interval",
        "invalid duration in healthcheck.interval",
    );
    assert_eq!(d.found.as_deref(), Some("the number 10"));
    assert!(d.expected.as_deref().unwrap().contains("1m30s"));
    at(
        by_path("a.healthcheck.timeout"),
        6,
        14,
        "a.healthcheck.timeout",
        "invalid duration in healthcheck.timeout",
    );
    at(
        by_path("a.healthcheck.retries"),
        7,
        14,
        "a.healthcheck.retries",
        "invalid healthcheck.retries",
    );
    at(
        by_path("a.healthcheck.disable"),
        8,
        14,
        "a.healthcheck.disable",
        "invalid healthcheck.disable",
    );
    at(
        by_path("a.healthcheck.foo"),
        9,
        5,
        "a.healthcheck.foo",
        "unknown healthcheck field \"foo\"",
    );

    let d = the_error("a:\n  image: d\n  healthcheck:\n    interval: 10s\n");
    at(&d, 4, 5, "a.healthcheck", "healthcheck has no test");
    assert!(hint(&d).contains("disable: true"));

    let w = the_warning("a:\n  image: d\n  healthcheck:\n    test: x\n    start_interval: 1s\n");
    at(
        &w,
        5,
        5,
        "a.healthcheck.start_interval",
        "turnout ignores healthcheck.start_interval",
    );
}

#[test]
fn depends_on_as_list_or_map() {
    let parsed = clean(
        "\
db:
  image: pg
cache:
  image: redis
list:
  image: d
  depends_on: [db, cache]
map:
  image: d
  depends_on:
    db:
      condition: service_healthy
    cache: {}
",
    );
    assert_eq!(svc(&parsed, "list").depends_on, ["db", "cache"]);
    assert_eq!(svc(&parsed, "map").depends_on, ["db", "cache"]);
    assert_eq!(svc(&parsed, "map").settings.depends, ["db", "cache"]);
    let d = the_error("db:\n  image: d\na:\n  image: d\n  depends_on: db\n");
    at(
        &d,
        5,
        15,
        "a.depends_on",
        "depends_on must be a list or a map",
    );
}

#[test]
fn deploy_replicas_and_scale() {
    let parsed = ok("\
replicas:
  image: d
  deploy:
    replicas: 4
    resources:
      limits: {cpus: '0.5'}
scaled:
  image: d
  scale: 2
both:
  image: d
  scale: 3
  deploy:
    replicas: 3
default:
  image: d
");
    let s = |n: &str| svc(&parsed, n);
    assert_eq!(
        (s("replicas").replicas, s("replicas").settings.scale),
        (Some(4), 4)
    );
    assert_eq!(
        (s("scaled").replicas, s("scaled").settings.scale),
        (Some(2), 2)
    );
    assert_eq!(s("both").settings.scale, 3);
    assert_eq!(
        (s("default").replicas, s("default").settings.scale),
        (None, 1)
    );
    // `deploy.resources` is the runtime's to warn about, where it is known.
    assert_eq!(parsed.warnings.len(), 0, "{:?}", parsed.warnings);
}

#[test]
fn bad_replicas_and_scale() {
    let d = the_error("a:\n  image: d\n  scale: 0\n");
    at(&d, 3, 10, "a.scale", "invalid scale");
    assert_eq!(d.expected.as_deref(), Some("a positive integer"));
    let d = the_error("a:\n  image: d\n  deploy:\n    replicas: two\n");
    at(&d, 4, 15, "a.deploy.replicas", "invalid deploy.replicas");
    let d = the_error("a:\n  image: d\n  deploy:\n    replicas: 2\n  scale: 3\n");
    at(&d, 5, 10, "a.scale", "scale contradicts deploy.replicas");
    let d =
        the_error("a:\n  image: d\n  deploy:\n    replicas: 2\n  labels:\n    aliyun.scale: 3\n");
    at(
        &d,
        4,
        15,
        "a.deploy.replicas",
        "replicas 2 contradicts aliyun.scale 3",
    );
    assert!(hint(&d).contains("one place"));
    let d = the_error("a:\n  image: d\n  deploy: 3\n");
    at(&d, 3, 11, "a.deploy", "deploy must be a map");
}

#[test]
fn build_as_string_or_map() {
    let parsed = ok("\
string:
  build: ./app
map:
  build:
    context: ./db
    dockerfile: Dockerfile.dev
    target: dev
    args:
      VERSION: 1.10
      EMPTY:
    cache_from: [x]
");
    assert_eq!(
        svc(&parsed, "string").build,
        Some(Build {
            context: "./app".into(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        })
    );
    assert_eq!(
        svc(&parsed, "map").build,
        Some(Build {
            context: "./db".into(),
            dockerfile: Some("Dockerfile.dev".into()),
            args: [("VERSION", "1.10"), ("EMPTY", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: Some("dev".into()),
        })
    );
    assert_eq!(parsed.warnings.len(), 1);
    at(
        &parsed.warnings[0],
        11,
        5,
        "map.build.cache_from",
        "turnout ignores build.cache_from",
    );
    let d = the_error("a:\n  build: [x]\n");
    at(&d, 2, 10, "a.build", "build must be a map");
}

#[test]
fn working_dir() {
    let parsed = clean("a:\n  command: ./run\n  working_dir: /srv/app\n");
    assert_eq!(svc(&parsed, "a").working_dir.as_deref(), Some("/srv/app"));
    let d = the_error("a:\n  command: ./run\n  working_dir: {}\n");
    at(&d, 3, 16, "a.working_dir", "working_dir must be a string");
}

#[test]
fn ignored_compose_fields_warn() {
    let parsed = ok("\
services:
  web:
    image: demo
    container_name: web1
    volumes:
      - ./data:/data
    networks: [front]
    entrypoint: /bin/sh
    hostname: web
networks:
  front: {}
");
    let got: Vec<(u32, u32, String, String)> = parsed
        .warnings
        .iter()
        .map(|w| {
            (
                w.pos.line,
                w.pos.column,
                w.path.to_string(),
                w.message.clone(),
            )
        })
        .collect();
    // Fields a container runtime honours are left to the runtime in use
    // (`Runtime::warnings` names it when it ignores them); a field no
    // runtime uses says turnout ignores it.
    let expected = [(9, 5, "services.web.hostname", "turnout ignores hostname")]
        .map(|(l, c, p, m)| (l, c, p.to_string(), m.to_string()));
    assert_eq!(got, expected);
    assert!(parsed.warnings.iter().all(|w| w.hint.is_some()));
    // A field no runtime uses leaves the model as it would be without it;
    // the container fields are in `container` and nowhere else.
    let web = svc(&parsed, "web");
    let without = clean("services:\n  web:\n    image: demo\n");
    let mut stripped = web.clone();
    stripped.container = Default::default();
    assert_eq!(stripped, without.template.services[0]);
    assert_eq!(web.container.container_name.as_deref(), Some("web1"));
    assert_eq!(web.container.volumes.len(), 1);
    assert!(web.container.networks.contains_key("front"));
    assert_eq!(
        web.container.entrypoint,
        Some(turnout_spec::Command::Shell("/bin/sh".into()))
    );
}

#[test]
fn a_misspelt_field_is_an_error_with_did_you_mean() {
    let d = the_error(
        "\
serviceB-v1:
  image: demo
  lables:
    aliyun.scale: 2
",
    );
    at(&d, 3, 3, "serviceB-v1.lables", "unknown field \"lables\"");
    assert_eq!(hint(&d), "did you mean \"labels\"?");

    let d = the_error("a:\n  image: d\n  enviroment: {A: 1}\n");
    at(&d, 3, 3, "a.enviroment", "unknown field \"enviroment\"");
    assert_eq!(hint(&d), "did you mean \"environment\"?");

    let d = the_error("a:\n  image: d\n  frobnicate: 1\n");
    at(&d, 3, 3, "a.frobnicate", "unknown field \"frobnicate\"");
    assert!(
        hint(&d).starts_with("service fields turnout uses: image"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------
// YAML anchors, aliases, merge keys and duplicate keys.

#[test]
fn anchors_aliases_and_merge_keys() {
    let parsed = clean(
        "\
x-common: &common
  image: demo:1
  restart: always
  labels: &labels
    aliyun.scale: 2
x-links: &links
  - servicea.local
a:
  <<: *common
  command: serve a
b:
  <<: *common
  image: demo:2
  labels: *labels
  external_links: *links
",
    );
    let (a, b) = (svc(&parsed, "a"), svc(&parsed, "b"));
    assert_eq!(a.image.as_deref(), Some("demo:1"));
    assert_eq!(a.restart, Some(Restart::Always));
    assert_eq!(a.command, Some(Command::Shell("serve a".into())));
    assert_eq!(a.settings.scale, 2);
    assert_eq!(b.image.as_deref(), Some("demo:2"), "explicit keys win");
    assert_eq!(b.restart, Some(Restart::Always));
    assert_eq!(b.settings.scale, 2);
    assert_eq!(b.external_links, ["servicea.local"]);
}

#[test]
fn one_anchor_shared_by_many_services() {
    let mut text = String::from(
        "x-common: &common\n  image: demo\n  restart: on-failure:3\n  labels:\n    aliyun.scale: 2\n",
    );
    for i in 0..500 {
        text.push_str(&format!("s{i}:\n  <<: *common\n  command: run {i}\n"));
    }
    let t = clean(&text).template;
    assert_eq!(t.services.len(), 500);
    for (i, s) in t.services.iter().enumerate() {
        assert_eq!(s.name, format!("s{i}"));
        assert_eq!(s.image.as_deref(), Some("demo"));
        assert_eq!(
            s.restart,
            Some(Restart::OnFailure {
                max_retries: Some(3)
            })
        );
        assert_eq!(s.settings.scale, 2);
        assert_eq!(s.command, Some(Command::Shell(format!("run {i}"))));
    }
}

#[test]
fn an_error_in_an_anchor_is_reported_where_it_is_written_for_each_user() {
    let errors = errors(
        "\
x-common: &common
  image: demo
  restart: sometimes
a:
  <<: *common
b:
  <<: *common
",
    );
    assert_eq!(errors.len(), 2, "{}", show(&errors));
    at(&errors[0], 3, 12, "a.restart", "invalid restart policy");
    at(&errors[1], 3, 12, "b.restart", "invalid restart policy");
}

#[test]
fn duplicate_service_names_are_errors() {
    let d = the_error("a:\n  image: x\nb:\n  image: y\na:\n  image: z\n");
    at(&d, 5, 1, "a", "duplicate key \"a\"");
    assert_eq!(hint(&d), "it is already set on line 1; keep one of the two");
    let d = the_error("services:\n  a:\n    image: x\n  a:\n    image: z\n");
    at(&d, 4, 3, "services.a", "duplicate key \"a\"");
    assert!(hint(&d).contains("line 2"));
}

#[test]
fn duplicate_label_keys_are_errors_in_map_and_list_form() {
    let d = the_error("a:\n  image: x\n  labels:\n    aliyun.scale: 1\n    aliyun.scale: 2\n");
    at(
        &d,
        5,
        5,
        r#"a.labels."aliyun.scale""#,
        "duplicate key \"aliyun.scale\"",
    );
    assert!(hint(&d).contains("line 4"));
    let d = the_error("a:\n  image: x\n  labels:\n    - aliyun.scale=1\n    - aliyun.scale=1\n");
    at(
        &d,
        5,
        7,
        r#"a.labels."aliyun.scale""#,
        "duplicate key \"aliyun.scale\" in labels",
    );
    assert!(hint(&d).contains("line 4"));
}

#[test]
fn duplicate_service_fields_are_errors() {
    let d = the_error("a:\n  image: x\n  image: y\n");
    at(&d, 3, 3, "a.image", "duplicate key \"image\"");
}

// ---------------------------------------------------------------------------
// aliyun.* labels (SEED.md's label table).

#[test]
fn aliyun_scale() {
    let parsed = clean(&with_labels("    aliyun.scale: 5\n"));
    assert_eq!(svc(&parsed, "a").settings.scale, 5);
    let parsed = clean("a:\n  image: d\n  labels:\n    - aliyun.scale=7\n");
    assert_eq!(svc(&parsed, "a").settings.scale, 7);
    for (bad, col) in [("abc", 19), ("0", 19), ("-1", 19), ("1.5", 19), ("''", 19)] {
        let d = the_error(&with_labels(&format!("    aliyun.scale: {bad}\n")));
        at(
            &d,
            4,
            col,
            r#"a.labels."aliyun.scale""#,
            "invalid aliyun.scale",
        );
        assert_eq!(d.expected.as_deref(), Some("a positive integer"));
        assert!(hint(&d).contains("aliyun.scale: 3"));
    }
    // In list form the value's place is the entry's.
    let d = the_error("a:\n  image: d\n  labels:\n    - aliyun.scale=x\n");
    at(
        &d,
        4,
        7,
        r#"a.labels."aliyun.scale""#,
        "invalid aliyun.scale",
    );
    assert_eq!(d.found.as_deref(), Some("\"x\""));
}

#[test]
fn aliyun_routing_single_values() {
    let cases: &[(&str, &[&str])] = &[
        ("serviceb", &["serviceb.localhost"]),
        ("ServiceB", &["serviceb.localhost"]),
        ("servicea.local", &["servicea.local"]),
        ("wp.sample.com", &["wp.sample.com"]),
        ("http://wp.sample.com", &["wp.sample.com"]),
        ("HTTP://wp.sample.com/", &["wp.sample.com"]),
        ("wp.sample.com/context", &["wp.sample.com/context"]),
        ("wp.sample.com/a/b/", &["wp.sample.com/a/b"]),
        ("wp.sample.com:/ctx", &["wp.sample.com/ctx"]),
        ("wp.sample.com:ctx", &["wp.sample.com/ctx"]),
        ("http://web:/ctx", &["web.localhost/ctx"]),
    ];
    for (value, ids) in cases {
        let parsed = clean(&with_labels(&format!(
            "    aliyun.routing.port_8080: '{value}'\n"
        )));
        let a = svc(&parsed, "a");
        assert_eq!(a.settings.routes[0].container_port, 8080, "{value}");
        assert_eq!(route_ids(a), *ids, "{value}");
    }
}

#[test]
fn aliyun_routing_multiple_values_and_ports() {
    let parsed = clean(&with_labels(
        "    aliyun.routing.port_80: 'web; http://WWW.Example.com/shop ;api.example.com:v1;'\n    aliyun.routing.port_5000: admin\n",
    ));
    let a = svc(&parsed, "a");
    assert_eq!(a.settings.routes.len(), 2);
    assert_eq!(a.settings.routes[0].container_port, 80, "in port order");
    assert_eq!(a.settings.routes[1].container_port, 5000);
    assert_eq!(
        route_ids(a),
        [
            "web.localhost",
            "www.example.com/shop",
            "api.example.com/v1",
            "admin.localhost"
        ]
    );
    let r = &a.settings.routes[0].routes;
    assert_eq!(r[0].host, RouteHost::Prefix("web".into()));
    assert_eq!(r[1].host, RouteHost::Full("www.example.com".into()));
    assert_eq!(r[1].path.as_deref(), Some("/shop"));
    assert_eq!(r[1].to_string(), "www.example.com/shop");
}

#[test]
fn local_routes_are_internal() {
    let parsed = clean(&with_labels(
        "    aliyun.routing.port_80: servicea.local;servicea;servicea.localhost\n",
    ));
    let internal: Vec<bool> = svc(&parsed, "a").settings.routes[0]
        .routes
        .iter()
        .map(|r| r.is_internal(DEFAULT_DOMAIN))
        .collect();
    assert_eq!(internal, [true, false, false]);
}

#[test]
fn bad_aliyun_routing_values() {
    let long_ok = format!("{}.{}.example", "a".repeat(60), "b".repeat(59));
    assert_eq!(long_ok.len(), 128);
    clean(&with_labels(&format!(
        "    aliyun.routing.port_80: {long_ok}\n"
    )));
    let too_long = format!("{}.{}.example", "a".repeat(60), "b".repeat(60));
    let cases: Vec<(String, String, &str)> = vec![
        (
            "web:8080".into(),
            "port 8080 in a route value".into(),
            "remove the port",
        ),
        (
            "http://web.example.com:80/x".into(),
            "port 80 in a route value".into(),
            "remove the port",
        ),
        (
            "https://web.example.com".into(),
            "unsupported scheme \"https\" in route".into(),
            "write `http://`",
        ),
        (
            "tcp://web".into(),
            "unsupported scheme \"tcp\" in route".into(),
            "write `http://`",
        ),
        (
            too_long,
            "route host is 129 characters long".into(),
            "at most 128 characters",
        ),
        (
            "web_1".into(),
            "invalid host name \"web_1\"".into(),
            "letters, digits and `-`",
        ),
        (
            "-web".into(),
            "invalid host name \"-web\"".into(),
            "letters, digits",
        ),
        (
            "a;;b".into(),
            "empty route entry".into(),
            "at least one host",
        ),
        (
            "web;web".into(),
            "route web is listed twice".into(),
            "remove the repeated entry",
        ),
        (
            "wp.sample.com/x?y=1".into(),
            "invalid context path \"/x?y=1\"".into(),
            "without query",
        ),
        (
            "wp.sample.com:".into(),
            "empty context path after `:`".into(),
            "host:/context",
        ),
        ("/ctx".into(), "route has no host".into(), "start the entry"),
    ];
    for (value, message, hint_part) in cases {
        let d = the_error(&with_labels(&format!(
            "    aliyun.routing.port_80: '{value}'\n"
        )));
        at(&d, 4, 29, r#"a.labels."aliyun.routing.port_80""#, &message);
        assert!(hint(&d).contains(hint_part), "{d}");
        assert!(d.expected.as_deref().unwrap().contains("separated by `;`"));
    }
}

#[test]
fn route_label_ports_are_numbers_from_1_to_65535() {
    clean(&with_labels(
        "    aliyun.routing.port_1: one\n    aliyun.routing.port_65535: last\n",
    ));
    for port in ["0", "65536", "http", "", "-1"] {
        let d = the_error(&with_labels(&format!(
            "    aliyun.routing.port_{port}: web\n"
        )));
        at(
            &d,
            4,
            5,
            &format!("a.labels.\"aliyun.routing.port_{port}\""),
            "invalid container port in route label",
        );
        assert_eq!(d.found, Some(format!("{port:?}")));
        assert_eq!(d.expected.as_deref(), Some("a port number from 1 to 65535"));
        assert!(hint(&d).contains("aliyun.routing.port_5000"));
    }
    let d = the_error(&with_labels("    turnout.route.70000: web\n"));
    at(
        &d,
        4,
        5,
        r#"a.labels."turnout.route.70000""#,
        "invalid container port in route label",
    );
    assert!(hint(&d).contains("turnout.route.5000"));
}

#[test]
fn aliyun_session_sticky() {
    let sticky = |value: &str| {
        svc(
            &clean(&with_labels(&format!(
                "    aliyun.routing.port_80: web\n    aliyun.routing.session_sticky: {value}\n"
            ))),
            "a",
        )
        .settings
        .sticky
    };
    assert_eq!(sticky("true"), Some(Sticky::Instance));
    assert_eq!(sticky("false"), Some(Sticky::Off));
    assert_eq!(
        sticky("'TRUE'"),
        Some(Sticky::Instance),
        "seed labels are lenient"
    );
    let parsed = clean(&with_labels("    aliyun.routing.port_80: web\n"));
    assert_eq!(svc(&parsed, "a").settings.sticky, None, "default: unset");
    let d = the_error(&with_labels("    aliyun.routing.session_sticky: yes\n"));
    at(
        &d,
        4,
        36,
        r#"a.labels."aliyun.routing.session_sticky""#,
        "invalid aliyun.routing.session_sticky",
    );
    assert_eq!(d.expected.as_deref(), Some("true or false"));
}

#[test]
fn aliyun_coexist() {
    let coexist = |labels: &str| svc(&clean(&with_labels(labels)), "a").settings.coexist;
    assert!(coexist("    aliyun.routing.coexist: true\n"));
    assert!(!coexist("    aliyun.routing.coexist: false\n"));
    assert!(!coexist("    aliyun.scale: 1\n"));
    let d = the_error(&with_labels("    aliyun.routing.coexist: 1\n"));
    at(
        &d,
        4,
        29,
        r#"a.labels."aliyun.routing.coexist""#,
        "invalid aliyun.routing.coexist",
    );
}

#[test]
fn aliyun_probe_url_forms() {
    let probe = |labels: &str| {
        svc(&clean(&with_labels(labels)), "a")
            .settings
            .probe
            .clone()
            .expect("a probe")
    };
    let p =
        probe("    aliyun.routing.port_5000: web\n    aliyun.probe.url: http://container/health\n");
    assert_eq!(
        p,
        Probe {
            check: ProbeCheck::Http {
                port: None,
                path: "/health".into()
            },
            timeout_seconds: None,
            initial_delay_seconds: None,
            interval_seconds: None,
        }
    );
    let p = probe("    aliyun.probe.url: http://container:5000\n");
    assert_eq!(
        p.check,
        ProbeCheck::Http {
            port: Some(5000),
            path: "/".into()
        }
    );
    let p = probe("    aliyun.probe.url: HTTP://container:8080/a/b?x=1\n");
    assert_eq!(
        p.check,
        ProbeCheck::Http {
            port: Some(8080),
            path: "/a/b?x=1".into()
        }
    );
    let p = probe("    aliyun.probe.url: tcp://container:3306\n");
    assert_eq!(p.check, ProbeCheck::Tcp { port: 3306 });
}

#[test]
fn bad_aliyun_probe_urls() {
    let cases = [
        ("container/health", "probe url has no scheme"),
        ("https://container/", "unsupported probe scheme \"https\""),
        ("ftp://container/x", "unsupported probe scheme \"ftp\""),
        (
            "http://localhost:80/",
            "probe url host must be `container`, not \"localhost\"",
        ),
        ("http://container:0/", "invalid port \"0\" in probe url"),
        ("http://container:x/", "invalid port \"x\" in probe url"),
        ("tcp://container", "a tcp probe url needs a port"),
        ("tcp://container:80/health", "a tcp probe url has no path"),
    ];
    for (value, message) in cases {
        let d = the_error(&with_labels(&format!("    aliyun.probe.url: '{value}'\n")));
        at(&d, 4, 23, r#"a.labels."aliyun.probe.url""#, message);
        assert!(
            d.expected
                .as_deref()
                .unwrap()
                .contains("tcp://container:port")
        );
        assert!(hint(&d).contains("`container`"));
    }
    // An http probe without a port needs a routed port to aim at.
    let d = the_error(&with_labels(
        "    aliyun.probe.url: http://container/health\n",
    ));
    assert_eq!(
        d.message,
        "the http probe names no port and the service has no routed port"
    );
    assert_eq!(d.pos.line, 4);
    assert!(d.path.to_string().starts_with("a.labels"), "{d}");
    assert!(hint(&d).contains("http://container:5000/health"));
}

#[test]
fn aliyun_probe_cmd_and_exclusivity() {
    let parsed = clean(&with_labels(
        "    aliyun.probe.cmd: pg_isready -h 127.0.0.1\n",
    ));
    assert_eq!(
        svc(&parsed, "a").settings.probe.as_ref().unwrap().check,
        ProbeCheck::Cmd("pg_isready -h 127.0.0.1".into())
    );
    let d = the_error(&with_labels("    aliyun.probe.cmd: ' '\n"));
    at(
        &d,
        4,
        23,
        r#"a.labels."aliyun.probe.cmd""#,
        "aliyun.probe.cmd is empty",
    );
    let d = the_error(&with_labels(
        "    aliyun.probe.url: tcp://container:3306\n    aliyun.probe.cmd: pg_isready\n",
    ));
    at(
        &d,
        5,
        5,
        r#"a.labels."aliyun.probe.cmd""#,
        "probe url and probe cmd are exclusive",
    );
    assert!(hint(&d).contains("aliyun.probe.url (line 4)"));
}

#[test]
fn aliyun_probe_durations_are_non_negative_integers() {
    let parsed = clean(&with_labels(
        "    aliyun.probe.cmd: 'true'\n    aliyun.probe.timeout_seconds: 3\n    aliyun.probe.initial_delay_seconds: 0\n",
    ));
    let probe = svc(&parsed, "a").settings.probe.clone().unwrap();
    assert_eq!(probe.timeout_seconds, Some(3));
    assert_eq!(probe.initial_delay_seconds, Some(0));
    for key in [
        "aliyun.probe.timeout_seconds",
        "aliyun.probe.initial_delay_seconds",
    ] {
        for bad in ["-1", "1.5", "5s", "''"] {
            let d = the_error(&with_labels(&format!(
                "    aliyun.probe.cmd: 'true'\n    {key}: {bad}\n"
            )));
            at(
                &d,
                5,
                key.len() as u32 + 7,
                &format!("a.labels.{key:?}"),
                &format!("invalid {key}"),
            );
            assert_eq!(
                d.expected.as_deref(),
                Some("a non-negative integer number of seconds")
            );
            assert!(hint(&d).contains("without a unit"));
        }
    }
    let w = the_warning(&with_labels("    aliyun.probe.timeout_seconds: 3\n"));
    at(
        &w,
        4,
        5,
        r#"a.labels."aliyun.probe.timeout_seconds""#,
        "aliyun.probe.timeout_seconds has no effect without a probe",
    );
}

#[test]
fn aliyun_depends() {
    let parsed = clean(
        "\
a:
  image: d
  labels:
    aliyun.depends: 'b, c'
b:
  image: d
c:
  image: d
  depends_on: [b]
  labels:
    - aliyun.depends=b
",
    );
    assert_eq!(svc(&parsed, "a").settings.depends, ["b", "c"]);
    assert_eq!(
        svc(&parsed, "c").settings.depends,
        ["b"],
        "label and depends_on merge without repeats"
    );
    let d = the_error(&with_labels("    aliyun.depends: ' , '\n"));
    at(
        &d,
        4,
        21,
        r#"a.labels."aliyun.depends""#,
        "aliyun.depends names no service",
    );
}

#[test]
fn aliyun_rolling_updates_and_latest_image() {
    let parsed = clean(&with_labels(
        "    aliyun.rolling_updates: true\n    aliyun.rolling_updates.parallelism: 3\n    aliyun.latest_image: true\n",
    ));
    let s = &svc(&parsed, "a").settings;
    assert!(s.rolling_updates);
    assert_eq!(s.parallelism, 3);
    assert!(s.latest_image);
    let parsed = clean(&with_labels("    aliyun.scale: 1\n"));
    let s = &svc(&parsed, "a").settings;
    assert!(!s.rolling_updates && !s.latest_image);
    assert_eq!(s.parallelism, 1, "default batch size");
    let d = the_error(&with_labels("    aliyun.rolling_updates.parallelism: 0\n"));
    at(
        &d,
        4,
        41,
        r#"a.labels."aliyun.rolling_updates.parallelism""#,
        "invalid aliyun.rolling_updates.parallelism",
    );
    let d = the_error(&with_labels("    aliyun.rolling_updates: sometimes\n"));
    at(
        &d,
        4,
        29,
        r#"a.labels."aliyun.rolling_updates""#,
        "invalid aliyun.rolling_updates",
    );
}

#[test]
fn unsupported_aliyun_labels_warn() {
    let parsed = ok(&with_labels(
        "    aliyun.global: true\n    aliyun.lb.port_80: 'tcp://slb:80'\n    aliyun.log_nginx: stdout\n    aliyun.auto_scaling.max_cpu: 70\n    aliyun.frobnicate: 1\n    aliyun.scael: 2\n",
    ));
    let got: Vec<(u32, String, String)> = parsed
        .warnings
        .iter()
        .map(|w| (w.pos.line, w.path.to_string(), w.message.clone()))
        .collect();
    let expected = [
        (
            4,
            r#"a.labels."aliyun.global""#,
            "turnout ignores aliyun.global",
        ),
        (
            5,
            r#"a.labels."aliyun.lb.port_80""#,
            "turnout ignores aliyun.lb.port_80",
        ),
        (
            6,
            r#"a.labels."aliyun.log_nginx""#,
            "turnout ignores aliyun.log_nginx",
        ),
        (
            7,
            r#"a.labels."aliyun.auto_scaling.max_cpu""#,
            "turnout ignores aliyun.auto_scaling.max_cpu",
        ),
        (
            8,
            r#"a.labels."aliyun.frobnicate""#,
            "unknown label aliyun.frobnicate; turnout ignores it",
        ),
        (
            9,
            r#"a.labels."aliyun.scael""#,
            "unknown label aliyun.scael; turnout ignores it",
        ),
    ]
    .map(|(l, p, m)| (l, p.to_string(), m.to_string()));
    assert_eq!(got, expected);
    assert!(hint(&parsed.warnings[0]).contains("aliyun.scale"));
    assert!(hint(&parsed.warnings[3]).contains("autoscaling"));
    assert_eq!(hint(&parsed.warnings[5]), "did you mean aliyun.scale?");
    // Ignored labels change nothing but the labels themselves.
    let s = &svc(&parsed, "a").settings;
    assert_eq!((s.scale, s.routes.len()), (1, 0));
    // `aliyun.global: false` asks for nothing turnout ignores.
    clean(&with_labels("    aliyun.global: false\n"));
}

#[test]
fn labels_of_other_namespaces_are_kept_and_ignored() {
    let parsed = clean(&with_labels(
        "    com.example.team: shop\n    traefik.enable: 'true'\n",
    ));
    let a = svc(&parsed, "a");
    assert_eq!(a.labels.len(), 2);
    assert_eq!(
        a.settings,
        turnout_spec::Settings {
            scale: 1,
            parallelism: 1,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------
// turnout.* labels: the strict native twins.

#[test]
fn turnout_scale_and_routes() {
    let parsed = clean(&with_labels(
        "    turnout.scale: 4\n    turnout.route.8080: 'web;http://api.example.com/v2'\n",
    ));
    let a = svc(&parsed, "a");
    assert_eq!(a.settings.scale, 4);
    assert_eq!(a.settings.routes[0].container_port, 8080);
    assert_eq!(route_ids(a), ["web.localhost", "api.example.com/v2"]);
    let d = the_error(&with_labels("    turnout.scale: none\n"));
    at(
        &d,
        4,
        20,
        r#"a.labels."turnout.scale""#,
        "invalid turnout.scale",
    );
}

#[test]
fn turnout_route_refuses_the_legacy_colon_form() {
    let d = the_error(&with_labels("    turnout.route.80: 'wp.sample.com:ctx'\n"));
    at(
        &d,
        4,
        23,
        r#"a.labels."turnout.route.80""#,
        "`host:context` is the seed's spelling and is not accepted in turnout.* labels",
    );
    assert_eq!(
        hint(&d),
        "write the context path after a slash: `wp.sample.com/ctx`"
    );
    let d = the_error(&with_labels("    turnout.route.80: 'web:/ctx'\n"));
    assert!(hint(&d).contains("`web/ctx`"), "{d}");
    let d = the_error(&with_labels("    turnout.route.80: 'web:8080'\n"));
    assert_eq!(d.message, "port 8080 in a route value");
}

#[test]
fn turnout_coexist_is_strict() {
    let parsed = clean(&with_labels("    turnout.route.coexist: true\n"));
    assert!(svc(&parsed, "a").settings.coexist);
    for bad in ["True", "yes", "1"] {
        let d = the_error(&with_labels(&format!("    turnout.route.coexist: {bad}\n")));
        at(
            &d,
            4,
            28,
            r#"a.labels."turnout.route.coexist""#,
            "invalid turnout.route.coexist",
        );
        assert_eq!(d.found, Some(format!("{bad:?}")));
    }
}

#[test]
fn turnout_sticky() {
    for (value, sticky) in [
        ("version", Sticky::Version),
        ("instance", Sticky::Instance),
        ("'off'", Sticky::Off),
    ] {
        let parsed = clean(&with_labels(&format!(
            "    turnout.route.sticky: {value}\n"
        )));
        assert_eq!(svc(&parsed, "a").settings.sticky, Some(sticky));
    }
    for bad in ["Version", "cookie", "false"] {
        let d = the_error(&with_labels(&format!("    turnout.route.sticky: {bad}\n")));
        at(
            &d,
            4,
            27,
            r#"a.labels."turnout.route.sticky""#,
            "invalid stickiness",
        );
        assert_eq!(d.expected.as_deref(), Some("one of version, instance, off"));
    }
}

#[test]
fn turnout_weight() {
    for w in [0u8, 1, 50, 100] {
        let parsed = clean(&with_labels(&format!("    turnout.route.weight: {w}\n")));
        assert_eq!(svc(&parsed, "a").settings.weight, Some(w));
    }
    assert_eq!(
        svc(&clean(&with_labels("    turnout.scale: 1\n")), "a")
            .settings
            .weight,
        None
    );
    for bad in ["101", "-1", "50%", "1.5", "256"] {
        let d = the_error(&with_labels(&format!("    turnout.route.weight: {bad}\n")));
        at(
            &d,
            4,
            27,
            r#"a.labels."turnout.route.weight""#,
            "invalid route weight",
        );
        assert_eq!(d.expected.as_deref(), Some("an integer from 0 to 100"));
        assert!(hint(&d).contains("relative"));
    }
}

#[test]
fn turnout_probe_labels() {
    let parsed = clean(&with_labels(
        "    turnout.probe.url: tcp://container:6379\n    turnout.probe.timeout_seconds: 2\n    turnout.probe.initial_delay_seconds: 5\n    turnout.probe.interval_seconds: 10\n",
    ));
    assert_eq!(
        svc(&parsed, "a").settings.probe,
        Some(Probe {
            check: ProbeCheck::Tcp { port: 6379 },
            timeout_seconds: Some(2),
            initial_delay_seconds: Some(5),
            interval_seconds: Some(10),
        })
    );
    let parsed = clean(&with_labels("    turnout.probe.cmd: redis-cli ping\n"));
    assert_eq!(
        svc(&parsed, "a").settings.probe.as_ref().unwrap().check,
        ProbeCheck::Cmd("redis-cli ping".into())
    );
    let d = the_error(&with_labels(
        "    turnout.probe.cmd: x\n    turnout.probe.interval_seconds: 0\n",
    ));
    at(
        &d,
        5,
        37,
        r#"a.labels."turnout.probe.interval_seconds""#,
        "probe interval of 0 seconds",
    );
    let d = the_error(&with_labels("    turnout.probe.url: udp://container:53\n"));
    at(
        &d,
        4,
        24,
        r#"a.labels."turnout.probe.url""#,
        "unsupported probe scheme \"udp\"",
    );
    let d = the_error(&with_labels(
        "    turnout.probe.cmd: x\n    turnout.probe.timeout_seconds: -5\n",
    ));
    at(
        &d,
        5,
        36,
        r#"a.labels."turnout.probe.timeout_seconds""#,
        "invalid turnout.probe.timeout_seconds",
    );
    let d = the_error(&with_labels(
        "    turnout.probe.url: http://container:80/\n    turnout.probe.cmd: x\n",
    ));
    at(
        &d,
        5,
        5,
        r#"a.labels."turnout.probe.cmd""#,
        "probe url and probe cmd are exclusive",
    );
}

#[test]
fn unknown_turnout_labels_are_errors() {
    let d = the_error(&with_labels("    turnout.scael: 2\n"));
    at(
        &d,
        4,
        5,
        r#"a.labels."turnout.scael""#,
        "unknown label turnout.scael",
    );
    assert_eq!(hint(&d), "did you mean turnout.scale?");
    let d = the_error(&with_labels("    turnout.route.stiky: version\n"));
    at(
        &d,
        4,
        5,
        r#"a.labels."turnout.route.stiky""#,
        "unknown label turnout.route.stiky",
    );
    assert_eq!(hint(&d), "did you mean turnout.route.sticky?");
    let d = the_error(&with_labels("    turnout.colour: blue\n"));
    at(
        &d,
        4,
        5,
        r#"a.labels."turnout.colour""#,
        "unknown label turnout.colour",
    );
    assert!(
        hint(&d).starts_with("turnout.* labels are: turnout.scale"),
        "{d}"
    );
}

#[test]
fn agreeing_twins_are_fine() {
    let parsed = clean(&with_labels(
        "    aliyun.scale: 3\n    turnout.scale: '3'\n    aliyun.routing.session_sticky: true\n    turnout.route.sticky: instance\n    aliyun.routing.coexist: 'TRUE'\n    turnout.route.coexist: true\n    aliyun.probe.cmd: x\n    turnout.probe.cmd: x\n",
    ));
    let s = &svc(&parsed, "a").settings;
    assert_eq!(s.scale, 3);
    assert_eq!(s.sticky, Some(Sticky::Instance));
    assert!(s.coexist);
    assert_eq!(s.probe.as_ref().unwrap().check, ProbeCheck::Cmd("x".into()));
}

#[test]
fn contradicting_twins_are_errors() {
    let errors = errors(&with_labels(
        "    aliyun.scale: 3\n    turnout.scale: 2\n    aliyun.routing.session_sticky: true\n    turnout.route.sticky: 'off'\n    aliyun.routing.coexist: true\n    turnout.route.coexist: 'false'\n    aliyun.probe.timeout_seconds: 1\n    turnout.probe.timeout_seconds: 2\n    aliyun.probe.url: tcp://container:1\n    turnout.probe.url: tcp://container:2\n",
    ));
    let got: Vec<(u32, String, String)> = errors
        .iter()
        .map(|d| (d.pos.line, d.path.to_string(), d.message.clone()))
        .collect();
    let expected = [
        (
            5,
            r#"a.labels."turnout.scale""#,
            "turnout.scale contradicts aliyun.scale",
        ),
        (
            7,
            r#"a.labels."turnout.route.sticky""#,
            "turnout.route.sticky contradicts aliyun.routing.session_sticky",
        ),
        (
            9,
            r#"a.labels."turnout.route.coexist""#,
            "turnout.route.coexist contradicts aliyun.routing.coexist",
        ),
        (
            11,
            r#"a.labels."turnout.probe.timeout_seconds""#,
            "turnout.probe.timeout_seconds contradicts aliyun.probe.timeout_seconds",
        ),
        (
            13,
            r#"a.labels."turnout.probe.url""#,
            "turnout.probe.url contradicts aliyun.probe.url",
        ),
    ]
    .map(|(l, p, m)| (l, p.to_string(), m.to_string()));
    assert_eq!(got, expected);
    assert_eq!(
        hint(&errors[0]),
        "aliyun.scale (line 4) sets the same thing differently; keep one of the two"
    );
}

#[test]
fn a_port_routed_by_both_twins_is_an_error() {
    let d = the_error(&with_labels(
        "    aliyun.routing.port_80: web\n    turnout.route.80: web\n",
    ));
    at(
        &d,
        5,
        5,
        r#"a.labels."turnout.route.80""#,
        "port 80 is routed twice",
    );
    assert!(hint(&d).contains("aliyun.routing.port_80 (line 4)"));
}

#[test]
fn a_probe_label_and_a_healthcheck_warn() {
    let w = the_warning(
        "\
a:
  image: d
  healthcheck:
    test: [\"CMD\", \"true\"]
  labels:
    turnout.probe.cmd: 'true'
",
    );
    assert_eq!(
        w.message,
        "both a probe label and a healthcheck are set; the probe label is used"
    );
    assert_eq!(w.path.to_string(), "a.healthcheck");
    // A disabled healthcheck does not compete with the probe.
    clean(
        "a:\n  image: d\n  healthcheck:\n    disable: true\n  labels:\n    turnout.probe.cmd: x\n",
    );
}

// ---------------------------------------------------------------------------
// Checks across services.

#[test]
fn two_services_on_one_route_need_coexist() {
    let d = the_error(
        "\
web-v1:
  image: d
  labels:
    aliyun.routing.port_80: web
web-v2:
  image: d
  labels:
    turnout.route.80: WEB.localhost
",
    );
    at(
        &d,
        8,
        5,
        r#"web-v2.labels."turnout.route.80""#,
        "route web.localhost is used by web-v1 and web-v2 without coexist",
    );
    assert!(hint(&d).contains("aliyun.routing.coexist: true"));
    for coexist in [
        "    aliyun.routing.coexist: true\n",
        "    turnout.route.coexist: true\n",
    ] {
        let parsed = clean(&format!(
            "web-v1:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\nweb-v2:\n  image: d\n  labels:\n    aliyun.routing.port_81: web\n{coexist}"
        ));
        assert_eq!(
            route_ids(svc(&parsed, "web-v1")),
            route_ids(svc(&parsed, "web-v2"))
        );
    }
    // `coexist: false` says no, and different context paths are different routes.
    the_error(
        "a:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\nb:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\n    aliyun.routing.coexist: false\n",
    );
    clean(
        "a:\n  image: d\n  labels:\n    aliyun.routing.port_80: web/a\nb:\n  image: d\n  labels:\n    aliyun.routing.port_80: web/b\n",
    );
}

#[test]
fn services_of_a_route_agree_on_stickiness() {
    let d = the_error(
        "\
a:
  image: d
  labels:
    aliyun.routing.port_80: web
    aliyun.routing.session_sticky: true
b:
  image: d
  labels:
    aliyun.routing.port_80: web
    aliyun.routing.coexist: true
    turnout.route.sticky: 'off'
",
    );
    at(
        &d,
        9,
        5,
        r#"b.labels."aliyun.routing.port_80""#,
        "services on route web.localhost disagree on stickiness: a is instance, b is off",
    );
    assert!(hint(&d).contains("same session_sticky"));
    // Agreeing, or leaving it to the other service, is fine.
    clean(
        "a:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\n    turnout.route.sticky: version\nb:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\n    aliyun.routing.coexist: true\n",
    );
    clean(
        "a:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\n    turnout.route.sticky: instance\nb:\n  image: d\n  labels:\n    aliyun.routing.port_80: web\n    aliyun.routing.coexist: true\n    aliyun.routing.session_sticky: true\n",
    );
}

#[test]
fn calling_a_local_route_without_external_links_warns() {
    let parsed = ok("\
servicea:
  image: d
  labels:
    aliyun.routing.port_5000: servicea.local
map-env:
  image: d
  environment:
    dep: http://servicea.local/x
list-env:
  image: d
  environment:
    - dep=http://ServiceA.local
shell:
  command: curl -s http://servicea.local:5000/
listed:
  image: d
  environment:
    dep: http://servicea.local
  external_links: [servicea.local]
aliased:
  command: curl http://servicea.local
  external_links: ['servicea.local:a']
unrelated:
  image: d
  environment:
    dep: http://xservicea.local
");
    let got: Vec<(u32, u32, String, String)> = parsed
        .warnings
        .iter()
        .map(|w| {
            (
                w.pos.line,
                w.pos.column,
                w.path.to_string(),
                w.message.clone(),
            )
        })
        .collect();
    let expected = [
        (
            8,
            10,
            "map-env.environment.dep",
            "map-env calls the internal route servicea.local without listing it in external_links",
        ),
        (
            12,
            7,
            "list-env.environment.dep",
            "list-env calls the internal route servicea.local without listing it in external_links",
        ),
        (
            13,
            1,
            "shell.command",
            "shell calls the internal route servicea.local without listing it in external_links",
        ),
    ]
    .map(|(l, c, p, m)| (l, c, p.to_string(), m.to_string()));
    assert_eq!(got, expected);
    assert!(hint(&parsed.warnings[0]).contains("external_links: [\"servicea.local\"]"));
}

#[test]
fn dependencies_must_exist() {
    let d = the_error("a:\n  image: d\n  depends_on: [bb]\nb:\n  image: d\n");
    at(
        &d,
        3,
        16,
        "a.depends_on[0]",
        "depends on unknown service \"bb\"",
    );
    assert_eq!(d.expected.as_deref(), Some("one of a, b"));
    let d =
        the_error("db-v1:\n  image: d\nweb:\n  image: d\n  labels:\n    aliyun.depends: db-v2\n");
    at(
        &d,
        6,
        5,
        r#"web.labels."aliyun.depends""#,
        "depends on unknown service \"db-v2\"",
    );
    assert_eq!(hint(&d), "did you mean \"db-v1\"?");
    let d = the_error(
        "a:\n  image: d\n  depends_on:\n    missing:\n      condition: service_started\n",
    );
    at(
        &d,
        4,
        5,
        "a.depends_on.missing",
        "depends on unknown service \"missing\"",
    );
}

#[test]
fn a_service_cannot_depend_on_itself() {
    let d = the_error("a:\n  image: d\n  depends_on: [a]\n");
    at(&d, 3, 16, "a.depends_on[0]", "a depends on itself");
    let d = the_error(&with_labels("    aliyun.depends: a\n"));
    at(
        &d,
        4,
        5,
        r#"a.labels."aliyun.depends""#,
        "a depends on itself",
    );
}

#[test]
fn dependency_cycles_are_errors() {
    let d = the_error("a:\n  image: d\n  depends_on: [b]\nb:\n  image: d\n  depends_on: [a]\n");
    at(
        &d,
        6,
        16,
        "b.depends_on[0]",
        "dependency cycle: a -> b -> a",
    );
    assert!(hint(&d).contains("remove one of these dependencies"));
    let d = the_error(
        "\
a:
  image: d
  depends_on: [b]
b:
  image: d
  depends_on:
    c: {condition: service_healthy}
c:
  image: d
  labels:
    - aliyun.depends=a
",
    );
    at(
        &d,
        11,
        7,
        r#"c.labels."aliyun.depends""#,
        "dependency cycle: a -> b -> c -> a",
    );
    // A diamond is not a cycle.
    clean(
        "a:\n  image: d\n  depends_on: [b, c]\nb:\n  image: d\n  depends_on: [d]\nc:\n  image: d\n  depends_on: [d]\nd:\n  image: d\n",
    );
}

// ---------------------------------------------------------------------------
// ${VAR} substitution.

#[test]
fn variables_are_substituted() {
    let parsed = clean(
        "\
a:
  image: ${HOST}/app:${TAG}
  command: echo $HOST ${MISSING:-fallback} ${EMPTY:-dflt} ${EMPTY-kept} ${MISSING-dash}
  environment:
    NESTED: ${MISSING:-${HOST}}
    PRICE: $$5 and $${HOST}
  labels:
    aliyun.routing.port_80: ${PREFIX:-web};${MISSING:-api}
",
    );
    let a = svc(&parsed, "a");
    assert_eq!(a.image.as_deref(), Some("example.com/app:2.0"));
    assert_eq!(
        a.command,
        Some(Command::Shell(
            "echo example.com fallback dflt  dash".into()
        ))
    );
    assert_eq!(
        a.environment.get("NESTED"),
        Some(&Some("example.com".to_string()))
    );
    assert_eq!(
        a.environment.get("PRICE"),
        Some(&Some("$5 and ${HOST}".to_string()))
    );
    assert_eq!(route_ids(a), ["shop.localhost", "api.localhost"]);
}

#[test]
fn runtime_port_variables_are_left_in_place() {
    let parsed = clean(
        "\
a:
  command: serve --port ${PORT} --admin $PORT_5001 --x ${PORT_5000:-80}
  environment:
    - LISTEN=:${PORT}
    - OTHER=${PORT_8080}
",
    );
    let a = svc(&parsed, "a");
    assert_eq!(
        a.command,
        Some(Command::Shell(
            "serve --port ${PORT} --admin $PORT_5001 --x ${PORT_5000:-80}".into()
        ))
    );
    assert_eq!(
        a.environment.get("LISTEN"),
        Some(&Some(":${PORT}".to_string()))
    );
    assert_eq!(
        a.environment.get("OTHER"),
        Some(&Some("${PORT_8080}".to_string()))
    );
}

#[test]
fn unset_variables_are_errors() {
    let d = the_error("a:\n  image: d\n  environment:\n    U: ${UNSET}\n");
    at(&d, 4, 8, "a.environment.U", "variable UNSET is not set");
    assert_eq!(d.found.as_deref(), Some("\"${UNSET}\""));
    assert!(hint(&d).contains("${UNSET:-value}"), "{d}");
    let d = the_error("a:\n  image: $NOPE\n");
    at(&d, 2, 10, "a.image", "variable NOPE is not set");
    let d = the_error("a:\n  image: d\n  environment:\n    - X=${NEEDED:?set NEEDED first}\n");
    at(
        &d,
        4,
        7,
        "a.environment[0]",
        "variable NEEDED is not set: set NEEDED first",
    );
    let d = the_error("a:\n  image: d\n  environment:\n    - X=${OPEN\n");
    at(
        &d,
        4,
        7,
        "a.environment[0]",
        "unclosed `${` in variable reference",
    );
    let d = the_error("a:\n  image: d\n  environment:\n    - X=${1X}\n");
    at(
        &d,
        4,
        7,
        "a.environment[0]",
        "invalid variable reference ${1X}",
    );
}

// ---------------------------------------------------------------------------
// Several problems at once.

#[test]
fn every_error_of_a_file_is_reported_together_in_file_order() {
    let diagnostics = parse(
        "app.yaml",
        "\
serviceA-v1:
  image: demo
  lables:
    aliyun.scale: 3
  restart: sometimes
  container_name: a
serviceB-v1:
  image: ${MISSING}
  labels:
    aliyun.scale: many
    aliyun.routing.port_0: serviceb
    turnout.route.weight: 300
    turnout.nope: 1
  depends_on: [serviceC-v1]
  ports:
    - \"80/sctp\"
bad name:
  image: demo
",
        &env,
    )
    .expect_err("the template is invalid");
    let got: Vec<(Severity, u32, String)> = diagnostics
        .iter()
        .map(|d| (d.severity, d.pos.line, d.path.to_string()))
        .collect();
    let expected = [
        (Severity::Error, 3, "serviceA-v1.lables"),
        (Severity::Error, 5, "serviceA-v1.restart"),
        (Severity::Error, 8, "serviceB-v1.image"),
        (Severity::Error, 10, r#"serviceB-v1.labels."aliyun.scale""#),
        (
            Severity::Error,
            11,
            r#"serviceB-v1.labels."aliyun.routing.port_0""#,
        ),
        (
            Severity::Error,
            12,
            r#"serviceB-v1.labels."turnout.route.weight""#,
        ),
        (Severity::Error, 13, r#"serviceB-v1.labels."turnout.nope""#),
        (Severity::Error, 14, "serviceB-v1.depends_on[0]"),
        (Severity::Error, 16, "serviceB-v1.ports[0]"),
        (Severity::Error, 17, r#""bad name""#),
    ]
    .map(|(s, l, p)| (s, l, p.to_string()));
    assert_eq!(got, expected, "\n{}", show(&diagnostics));
    // Display gives file:line:column, the path, the message and the hint.
    let text = diagnostics[0].to_string();
    assert_eq!(
        text,
        "app.yaml:3:3: serviceA-v1.lables: unknown field \"lables\"\n  hint: did you mean \"labels\"?"
    );
}

#[test]
fn errors_in_several_services_of_a_compose_file() {
    let errors = errors(
        "\
version: '3'
services:
  a:
    image: d
    labels:
      aliyun.scale: 0
  b:
    image: d
    labels:
      aliyun.scale: x
",
    );
    assert_eq!(errors.len(), 2);
    at(
        &errors[0],
        6,
        21,
        r#"services.a.labels."aliyun.scale""#,
        "invalid aliyun.scale",
    );
    at(
        &errors[1],
        10,
        21,
        r#"services.b.labels."aliyun.scale""#,
        "invalid aliyun.scale",
    );
}

// ---------------------------------------------------------------------------
// The seed's releases, read as templates and diffed.

#[test]
fn the_seed_backend_release_leaves_serviceb_unchanged() {
    let old = clean(&SEED_DEMO.replace("serviceB-v1", "serviceB-v2")).template;
    let new = clean(
        "\
serviceA-v1:
  image: 'registry.example.com/demo-service-a:1.0'
  labels:
    aliyun.scale: 3
    aliyun.routing.port_5000: servicea.local
serviceA-v2:
  image: 'registry.example.com/demo-service-a:2.0'
  labels:
    aliyun.scale: 3
    aliyun.routing.port_5000: servicea.local
    aliyun.routing.coexist: true
serviceB-v2:
  image: 'registry.example.com/demo-service-b:1.0'
  environment:
    - 'dep_endpoint=http://servicea.local'
  labels:
    aliyun.scale: 2
    aliyun.routing.port_5001: serviceb
    aliyun.routing.coexist: true
  external_links:
    - \"servicea.local\"
",
    )
    .template;
    let d = diff(&old, &new, DEFAULT_DOMAIN);
    assert_eq!(d.role("serviceA-v1"), Some(Role::Unchanged));
    assert_eq!(d.role("serviceB-v2"), Some(Role::Unchanged));
    assert_eq!(d.role("serviceA-v2"), Some(Role::New));
}
