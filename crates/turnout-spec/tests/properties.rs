//! Property tests of the template reader: what it writes back reads back
//! the same, a template diffed with itself is all unchanged, routing-share
//! labels never change a service's identity, and no input makes it panic.
//!
//! Templates are generated as YAML text from a small model ([`Tpl`]) that
//! covers the layouts, the fields and the labels, always valid by
//! construction, so every generated template must parse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use turnout_spec::{
    DEFAULT_DOMAIN, Diagnostic, Parsed, Role, RouteChange, Template, diff, parse, to_yaml,
};

/// The environment generated templates are read in.
fn env(name: &str) -> Option<String> {
    match name {
        "SET_VAR" => Some("from-env".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn show(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

fn must_parse(file: &str, text: &str) -> Result<Parsed, TestCaseError> {
    parse(file, text, &env).map_err(|d| {
        TestCaseError::fail(format!(
            "{file} does not parse:\n{}\n--- text ---\n{text}",
            show(&d)
        ))
    })
}

/// A YAML double-quoted scalar: a JSON string, with the characters YAML
/// does not allow raw (DEL, C1 controls, U+FFFE/U+FFFF) escaped.
fn q(s: &str) -> String {
    let json = serde_json::to_string(s).expect("a string serialises");
    json.chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The model templates are generated from.

#[derive(Debug, Clone)]
struct Tpl {
    compose: bool,
    version: Option<&'static str>,
    name: Option<String>,
    /// An `x-defaults` anchor that services may merge in.
    defaults: Option<&'static str>,
    services: Vec<Svc>,
}

#[derive(Debug, Clone)]
struct Svc {
    base: String,
    merge_defaults: bool,
    image: Option<String>,
    build: Option<BuildGen>,
    command: Option<CmdGen>,
    working_dir: Option<String>,
    env: BTreeMap<String, EnvVal>,
    env_as_list: bool,
    labels_as_list: bool,
    count: Option<(u32, CountAt)>,
    route: Option<RouteGen>,
    sticky: Option<&'static str>,
    probe: Option<ProbeGen>,
    share: Share,
    extra_labels: BTreeMap<String, String>,
    aliyun_flags: Vec<&'static str>,
    depends: Vec<Index>,
    depends_label: Vec<Index>,
    depends_as_map: bool,
    links: Vec<(Index, bool)>,
    external_links: Vec<String>,
    restart: Option<&'static str>,
    ports: Vec<PortGen>,
    healthcheck: Option<HcGen>,
}

#[derive(Debug, Clone)]
enum BuildGen {
    Context(String),
    Map {
        context: String,
        dockerfile: Option<String>,
        args: BTreeMap<String, String>,
        target: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum CmdGen {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone)]
enum EnvVal {
    /// A bare key (list) or a null value (map).
    Unset,
    Text(String),
    /// A plain YAML scalar that is not a string (`8080`, `1.10`, `true`).
    Plain(&'static str),
}

/// Where the number of instances is written.
#[derive(Debug, Clone, Copy)]
enum CountAt {
    Aliyun,
    Turnout,
    BothLabels,
    Replicas,
    Scale,
    LabelAndReplicas,
}

#[derive(Debug, Clone)]
struct RouteGen {
    port: u16,
    native: bool,
    entries: Vec<EntryGen>,
}

#[derive(Debug, Clone)]
struct EntryGen {
    scheme: Option<&'static str>,
    prefix: String,
    domain: Option<&'static str>,
    upper: bool,
    path: Vec<String>,
    /// The seed's `host:/ctx` (true) or `host:ctx` (false) spelling.
    colon: Option<bool>,
}

#[derive(Debug, Clone)]
struct ProbeGen {
    check: CheckGen,
    native: bool,
    timeout: Option<u32>,
    delay: Option<u32>,
    interval: Option<u32>,
}

#[derive(Debug, Clone)]
enum CheckGen {
    Http { port: Option<u16>, path: String },
    Tcp(u16),
    Cmd(String),
}

/// The routing-share labels of a service.
#[derive(Debug, Clone)]
struct Share {
    coexist: bool,
    aliyun: bool,
    native: bool,
    weight: Option<u8>,
}

#[derive(Debug, Clone)]
enum PortGen {
    Short(String),
    Long {
        target: u16,
        published: Option<u16>,
        protocol: Option<&'static str>,
        host_ip: Option<&'static str>,
    },
}

#[derive(Debug, Clone)]
struct HcGen {
    test: HcTest,
    interval: Option<&'static str>,
    timeout: Option<&'static str>,
    start_period: Option<&'static str>,
    retries: Option<u32>,
}

#[derive(Debug, Clone)]
enum HcTest {
    Cmd(Vec<String>),
    CmdShell(String),
    Plain(String),
    None,
    Disable,
}

// ---------------------------------------------------------------------------
// Strategies.

/// Free text for values: printable ASCII without `$`, some non-ASCII, and
/// the `$` forms the reader handles (`$$`, runtime ports, set variables,
/// defaults).
fn text() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            8 => "[ -#%-~]{1,8}",
            1 => "[\u{a0}-\u{17f}\u{4e00}-\u{4e20}]{1,3}",
            1 => Just("$$".to_string()),
            1 => Just("${PORT}".to_string()),
            1 => Just("$PORT_5000 ".to_string()),
            1 => Just("${PORT_8080:-80}".to_string()),
            1 => Just("${SET_VAR}".to_string()),
            1 => Just("${UNSET_VAR:-fallback}".to_string()),
            1 => Just("\n".to_string()),
            1 => "[\u{0}-\u{1f}\u{7f}-\u{9f}\u{fffe}\u{ffff}\u{2028}\u{feff}]",
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,7}"
}

fn env_val() -> impl Strategy<Value = EnvVal> {
    prop_oneof![
        1 => Just(EnvVal::Unset),
        6 => text().prop_map(EnvVal::Text),
        2 => select(&["8080", "1.10", "0755", "true", "false", "-5", "1e3", "0x1F", "~"][..])
            .prop_map(EnvVal::Plain),
    ]
}

fn command() -> impl Strategy<Value = CmdGen> {
    prop_oneof![
        (word(), text()).prop_map(|(w, t)| CmdGen::Shell(format!("{w} {t}"))),
        vec(text(), 0..4).prop_map(|rest| {
            let mut args = vec!["prog".to_string()];
            args.extend(rest);
            CmdGen::Exec(args)
        }),
    ]
}

fn build() -> impl Strategy<Value = BuildGen> {
    prop_oneof![
        "\\./[a-z]{1,6}".prop_map(BuildGen::Context),
        (
            "\\.(/[a-z]{1,6}){0,2}",
            option::of("Dockerfile(\\.[a-z]{1,4})?"),
            btree_map("[A-Z][A-Z0-9_]{0,5}", text(), 0..3),
            option::of(word()),
        )
            .prop_map(|(context, dockerfile, args, target)| BuildGen::Map {
                context,
                dockerfile,
                args,
                target,
            }),
    ]
}

fn entry(native: bool) -> impl Strategy<Value = EntryGen> {
    (
        option::of(select(&["http://", "HTTP://", "Http://"][..])),
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        option::of(select(
            &["local", "example.com", "sample.co.uk", "test"][..],
        )),
        any::<bool>(),
        vec("[a-z0-9_~.-]{1,6}", 0..3),
        option::of(any::<bool>()),
    )
        .prop_map(move |(scheme, prefix, domain, upper, path, colon)| {
            let path: Vec<String> = path
                .into_iter()
                // `.` and `..` alone are fine as route text but read oddly.
                .map(|p| {
                    if p.chars().all(|c| c == '.') {
                        "d".into()
                    } else {
                        p
                    }
                })
                .collect();
            EntryGen {
                scheme,
                prefix,
                domain,
                upper,
                // The seed's colon spelling is for aliyun labels with a path.
                colon: colon.filter(|_| !native && !path.is_empty()),
                path,
            }
        })
}

fn route() -> impl Strategy<Value = RouteGen> {
    (1u16..=65535, any::<bool>()).prop_flat_map(|(port, native)| {
        vec(entry(native), 1..4).prop_map(move |entries| RouteGen {
            port,
            native,
            entries,
        })
    })
}

fn probe() -> impl Strategy<Value = ProbeGen> {
    (
        prop_oneof![
            (option::of(1u16..=65535), "(/[a-z0-9_-]{0,6}){0,3}")
                .prop_map(|(port, path)| CheckGen::Http { port, path }),
            (1u16..=65535).prop_map(CheckGen::Tcp),
            (word(), text()).prop_map(|(w, t)| CheckGen::Cmd(format!("{w} {t}"))),
        ],
        any::<bool>(),
        option::of(0u32..120),
        option::of(0u32..600),
        option::of(1u32..60),
    )
        .prop_map(|(check, native, timeout, delay, interval)| ProbeGen {
            check,
            native,
            timeout,
            delay,
            interval,
        })
}

fn share() -> impl Strategy<Value = Share> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        option::of(0u8..=100),
    )
        .prop_map(|(coexist, aliyun, native, weight)| Share {
            coexist,
            aliyun,
            native,
            weight,
        })
}

fn port() -> impl Strategy<Value = PortGen> {
    prop_oneof![
        (1u16..=65535).prop_map(|t| PortGen::Short(t.to_string())),
        (1u16..=65535, 1u16..=65535).prop_map(|(p, t)| PortGen::Short(format!("{p}:{t}"))),
        (
            1u16..=65535,
            1u16..=65535,
            select(&["127.0.0.1", "0.0.0.0", "[::1]"][..])
        )
            .prop_map(|(p, t, ip)| PortGen::Short(format!("{ip}:{p}:{t}"))),
        (1u16..=65535).prop_map(|t| PortGen::Short(format!("127.0.0.1::{t}"))),
        (1u16..=65535, 1u16..=65535, select(&["tcp", "udp"][..]))
            .prop_map(|(p, t, proto)| PortGen::Short(format!("{p}:{t}/{proto}"))),
        (1u16..=60000, 1u16..=60000, 0u16..4).prop_map(|(p, t, n)| PortGen::Short(format!(
            "{p}-{}:{t}-{}",
            p + n,
            t + n
        ))),
        (
            1u16..=65535,
            option::of(1u16..=65535),
            option::of(select(&["tcp", "udp"][..])),
            option::of(select(&["127.0.0.1", "::1", "0.0.0.0"][..])),
        )
            .prop_map(|(target, published, protocol, host_ip)| PortGen::Long {
                target,
                published,
                protocol,
                host_ip,
            }),
    ]
}

fn healthcheck() -> impl Strategy<Value = HcGen> {
    let duration = || {
        option::of(select(
            &["10s", "1m30s", "500ms", "1h", "2s", "0s", "1.5s"][..],
        ))
    };
    (
        prop_oneof![
            vec(text(), 1..3).prop_map(HcTest::Cmd),
            text().prop_map(|t| HcTest::CmdShell(format!("curl {t}"))),
            text().prop_map(|t| HcTest::Plain(format!("curl {t}"))),
            Just(HcTest::None),
            Just(HcTest::Disable),
        ],
        duration(),
        duration(),
        duration(),
        option::of(0u32..10),
    )
        .prop_map(|(test, interval, timeout, start_period, retries)| HcGen {
            test,
            interval,
            timeout,
            start_period,
            retries,
        })
}

fn service() -> impl Strategy<Value = Svc> {
    // Grouped in tuples of at most 12, proptest's limit.
    let what = (
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,8}",
        any::<bool>(),
        option::of("[a-z]{1,8}(/[a-z]{1,8})?(:[0-9]\\.[0-9]{1,2})?"),
        option::of(build()),
        option::of(command()),
        option::of("/[a-z]{1,8}"),
        btree_map("[A-Za-z_][A-Za-z0-9_]{0,7}", env_val(), 0..4),
        any::<bool>(),
        any::<bool>(),
    );
    let labels = (
        option::of((
            1u32..20,
            select(
                &[
                    CountAt::Aliyun,
                    CountAt::Turnout,
                    CountAt::BothLabels,
                    CountAt::Replicas,
                    CountAt::Scale,
                    CountAt::LabelAndReplicas,
                ][..],
            ),
        )),
        option::of(route()),
        option::of(select(
            &[
                "aliyun:true",
                "aliyun:false",
                "turnout:version",
                "turnout:instance",
                "turnout:off",
            ][..],
        )),
        option::of(probe()),
        share(),
        btree_map("com\\.example\\.[a-z]{1,6}", text(), 0..3),
        btree_set(
            select(
                &[
                    "aliyun.rolling_updates: true",
                    "aliyun.rolling_updates.parallelism: 2",
                    "aliyun.latest_image: true",
                    "aliyun.global: false",
                ][..],
            ),
            0..3,
        ),
    );
    let wiring = (
        vec(any::<Index>(), 0..3),
        vec(any::<Index>(), 0..2),
        any::<bool>(),
        vec((any::<Index>(), any::<bool>()), 0..2),
        vec("[a-z]{1,8}(\\.local)?(:[a-z]{1,4})?", 0..3),
        option::of(select(
            &[
                "no",
                "\"no\"",
                "always",
                "on-failure",
                "on-failure:3",
                "unless-stopped",
            ][..],
        )),
        vec(port(), 0..3),
        option::of(healthcheck()),
    );
    (what, labels, wiring).prop_map(
        |(
            (
                base,
                merge_defaults,
                image,
                build,
                command,
                working_dir,
                env,
                env_as_list,
                labels_as_list,
            ),
            (count, route, sticky, probe, share, extra_labels, aliyun_flags),
            (
                depends,
                depends_label,
                depends_as_map,
                links,
                external_links,
                restart,
                ports,
                healthcheck,
            ),
        )| {
            // A service needs an image, a build or a command.
            let image = if image.is_none() && build.is_none() && command.is_none() {
                Some("demo".to_string())
            } else {
                image
            };
            Svc {
                base,
                merge_defaults,
                image,
                build,
                command,
                working_dir,
                env,
                env_as_list,
                labels_as_list,
                count,
                route,
                sticky,
                probe,
                share,
                extra_labels,
                aliyun_flags: aliyun_flags.into_iter().collect(),
                depends,
                depends_label,
                depends_as_map,
                links,
                external_links,
                restart,
                ports,
                healthcheck,
            }
        },
    )
}

fn template() -> impl Strategy<Value = Tpl> {
    (
        any::<bool>(),
        option::of(select(&["'3'", "3.8", "\"2.4\""][..])),
        option::of(word()),
        option::of(select(
            &["restart: always", "working_dir: /srv", "image: base:1"][..],
        )),
        vec(service(), 1..6),
    )
        .prop_map(|(compose, version, name, defaults, services)| Tpl {
            compose,
            version: version.filter(|_| compose),
            name: name.filter(|_| compose),
            defaults,
            services,
        })
}

// ---------------------------------------------------------------------------
// Rendering the model as YAML.

impl Svc {
    fn name(&self, i: usize) -> String {
        let name = format!("{}-v{i}", self.base);
        // `x-*` keys are extensions, not services.
        if name.starts_with("x-") {
            format!("s{name}")
        } else {
            name
        }
    }

    /// Labels other than the routing-share ones, as (key, YAML value).
    fn labels(&self, i: usize, names: &[String]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some((n, at)) = self.count {
            match at {
                CountAt::Aliyun | CountAt::LabelAndReplicas => {
                    out.push(("aliyun.scale".into(), n.to_string()));
                }
                CountAt::Turnout => out.push(("turnout.scale".into(), q(&n.to_string()))),
                CountAt::BothLabels => {
                    out.push(("aliyun.scale".into(), n.to_string()));
                    out.push(("turnout.scale".into(), n.to_string()));
                }
                CountAt::Replicas | CountAt::Scale => {}
            }
        }
        if let Some(route) = &self.route {
            let entries: Vec<String> = route
                .entries
                .iter()
                .enumerate()
                .map(|(j, e)| e.render(i, j))
                .collect();
            let key = if route.native {
                format!("turnout.route.{}", route.port)
            } else {
                format!("aliyun.routing.port_{}", route.port)
            };
            out.push((key, q(&entries.join(";"))));
        }
        if let Some(sticky) = self.sticky {
            let (ns, value) = sticky.split_once(':').expect("ns:value");
            if ns == "aliyun" {
                out.push(("aliyun.routing.session_sticky".into(), value.into()));
            } else {
                out.push(("turnout.route.sticky".into(), q(value)));
            }
        }
        if let Some(p) = &self.probe {
            let ns = if p.native { "turnout" } else { "aliyun" };
            let (key, value) = match &p.check {
                // An http probe without a port aims at the first routed
                // port; without a route it must name one.
                CheckGen::Http { port, path } => match port.or(if self.route.is_some() {
                    None
                } else {
                    Some(8080)
                }) {
                    Some(port) => ("url", format!("http://container:{port}{path}")),
                    None => ("url", format!("http://container{path}")),
                },
                CheckGen::Tcp(port) => ("url", format!("tcp://container:{port}")),
                CheckGen::Cmd(cmd) => ("cmd", cmd.clone()),
            };
            out.push((format!("{ns}.probe.{key}"), q(&value)));
            if let Some(t) = p.timeout {
                out.push((format!("{ns}.probe.timeout_seconds"), t.to_string()));
            }
            if let Some(d) = p.delay {
                out.push((format!("{ns}.probe.initial_delay_seconds"), d.to_string()));
            }
            if let Some(iv) = p.interval {
                out.push(("turnout.probe.interval_seconds".into(), iv.to_string()));
            }
        }
        let label_deps = earlier(&self.depends_label, i, names);
        if !label_deps.is_empty() {
            out.push(("aliyun.depends".into(), q(&label_deps.join(","))));
        }
        for flag in &self.aliyun_flags {
            let (k, v) = flag.split_once(": ").expect("key: value");
            out.push((k.into(), v.into()));
        }
        for (k, v) in &self.extra_labels {
            out.push((k.clone(), q(v)));
        }
        out
    }

    fn share_labels(share: &Share) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if share.aliyun {
            out.push(("aliyun.routing.coexist".into(), share.coexist.to_string()));
        }
        if share.native {
            out.push(("turnout.route.coexist".into(), share.coexist.to_string()));
        }
        if let Some(w) = share.weight {
            out.push(("turnout.route.weight".into(), w.to_string()));
        }
        out
    }

    fn render(&self, out: &mut String, i: usize, names: &[String], share: &Share, ind: &str) {
        let _ = writeln!(out, "{ind}{}:", names[i]);
        let f = format!("{ind}  ");
        if self.merge_defaults {
            let _ = writeln!(out, "{f}<<: *defaults");
        }
        if let Some(image) = &self.image {
            let _ = writeln!(out, "{f}image: {image}");
        }
        match &self.build {
            Some(BuildGen::Context(c)) => {
                let _ = writeln!(out, "{f}build: {c}");
            }
            Some(BuildGen::Map {
                context,
                dockerfile,
                args,
                target,
            }) => {
                let _ = writeln!(out, "{f}build:\n{f}  context: {context}");
                if let Some(d) = dockerfile {
                    let _ = writeln!(out, "{f}  dockerfile: {d}");
                }
                if let Some(t) = target {
                    let _ = writeln!(out, "{f}  target: {t}");
                }
                if !args.is_empty() {
                    let _ = writeln!(out, "{f}  args:");
                    for (k, v) in args {
                        let _ = writeln!(out, "{f}    {k}: {}", q(v));
                    }
                }
            }
            None => {}
        }
        match &self.command {
            Some(CmdGen::Shell(c)) => {
                let _ = writeln!(out, "{f}command: {}", q(c));
            }
            Some(CmdGen::Exec(args)) => {
                let args: Vec<String> = args.iter().map(|a| q(a)).collect();
                let _ = writeln!(out, "{f}command: [{}]", args.join(", "));
            }
            None => {}
        }
        if let Some(w) = &self.working_dir {
            let _ = writeln!(out, "{f}working_dir: {w}");
        }
        if !self.env.is_empty() {
            let _ = writeln!(out, "{f}environment:");
            for (k, v) in &self.env {
                if self.env_as_list {
                    let item = match v {
                        EnvVal::Unset => k.clone(),
                        EnvVal::Text(t) => format!("{k}={t}"),
                        EnvVal::Plain(p) => format!("{k}={p}"),
                    };
                    let _ = writeln!(out, "{f}  - {}", q(&item));
                } else {
                    let value = match v {
                        EnvVal::Unset => "null".to_string(),
                        EnvVal::Text(t) => q(t),
                        EnvVal::Plain(p) => p.to_string(),
                    };
                    let _ = writeln!(out, "{f}  {k}: {value}");
                }
            }
        }
        let mut labels = self.labels(i, names);
        labels.extend(Self::share_labels(share));
        if !labels.is_empty() {
            let _ = writeln!(out, "{f}labels:");
            for (k, v) in labels {
                if self.labels_as_list {
                    // The value as text: unquote what was quoted for a map.
                    let text: String = serde_json::from_str(&v).unwrap_or(v);
                    let _ = writeln!(out, "{f}  - {}", q(&format!("{k}={text}")));
                } else {
                    let _ = writeln!(out, "{f}  {k}: {v}");
                }
            }
        }
        if !self.external_links.is_empty() {
            let _ = writeln!(out, "{f}external_links:");
            for l in &self.external_links {
                let _ = writeln!(out, "{f}  - {l}");
            }
        }
        let links: Vec<String> = self
            .links
            .iter()
            .filter(|_| i > 0)
            .map(|(idx, alias)| {
                let target = &names[idx.index(i)];
                if *alias {
                    format!("{target}:alias")
                } else {
                    target.clone()
                }
            })
            .collect();
        if !links.is_empty() {
            let _ = writeln!(out, "{f}links:");
            for l in links {
                let _ = writeln!(out, "{f}  - {}", q(&l));
            }
        }
        if let Some(r) = self.restart {
            let _ = writeln!(out, "{f}restart: {r}");
        }
        if !self.ports.is_empty() {
            let _ = writeln!(out, "{f}ports:");
            for p in &self.ports {
                match p {
                    PortGen::Short(s) => {
                        let _ = writeln!(out, "{f}  - {}", q(s));
                    }
                    PortGen::Long {
                        target,
                        published,
                        protocol,
                        host_ip,
                    } => {
                        let _ = writeln!(out, "{f}  - target: {target}");
                        if let Some(p) = published {
                            let _ = writeln!(out, "{f}    published: {p}");
                        }
                        if let Some(p) = protocol {
                            let _ = writeln!(out, "{f}    protocol: {p}");
                        }
                        if let Some(ip) = host_ip {
                            let _ = writeln!(out, "{f}    host_ip: {}", q(ip));
                        }
                    }
                }
            }
        }
        if let Some(h) = &self.healthcheck {
            let _ = writeln!(out, "{f}healthcheck:");
            match &h.test {
                HcTest::Cmd(args) => {
                    let args: Vec<String> = args.iter().map(|a| q(a)).collect();
                    let _ = writeln!(out, "{f}  test: [\"CMD\", {}]", args.join(", "));
                }
                HcTest::CmdShell(c) => {
                    let _ = writeln!(out, "{f}  test: [\"CMD-SHELL\", {}]", q(c));
                }
                HcTest::Plain(c) => {
                    let _ = writeln!(out, "{f}  test: {}", q(c));
                }
                HcTest::None => {
                    let _ = writeln!(out, "{f}  test: [\"NONE\"]");
                }
                HcTest::Disable => {
                    let _ = writeln!(out, "{f}  disable: true");
                }
            }
            for (k, v) in [
                ("interval", h.interval),
                ("timeout", h.timeout),
                ("start_period", h.start_period),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{f}  {k}: {v}");
                }
            }
            if let Some(r) = h.retries {
                let _ = writeln!(out, "{f}  retries: {r}");
            }
        }
        let deps = earlier(&self.depends, i, names);
        if !deps.is_empty() {
            if self.depends_as_map {
                let _ = writeln!(out, "{f}depends_on:");
                for d in deps {
                    let _ = writeln!(out, "{f}  {}:\n{f}    condition: service_started", q(&d));
                }
            } else {
                let deps: Vec<String> = deps.iter().map(|d| q(d)).collect();
                let _ = writeln!(out, "{f}depends_on: [{}]", deps.join(", "));
            }
        }
        match self.count {
            Some((n, CountAt::Replicas | CountAt::LabelAndReplicas)) => {
                let _ = writeln!(out, "{f}deploy:\n{f}  replicas: {n}");
            }
            Some((n, CountAt::Scale)) => {
                let _ = writeln!(out, "{f}scale: {n}");
            }
            _ => {}
        }
    }
}

/// The distinct services before `i` that `picks` point at (dependencies
/// only go backwards, so there is never a cycle).
fn earlier(picks: &[Index], i: usize, names: &[String]) -> Vec<String> {
    if i == 0 {
        return Vec::new();
    }
    let chosen: BTreeSet<usize> = picks.iter().map(|p| p.index(i)).collect();
    chosen.into_iter().map(|j| names[j].clone()).collect()
}

impl EntryGen {
    /// The route entry of service `i`, entry `j`: unique across the
    /// template, so that no two services share a route by accident.
    fn render(&self, i: usize, j: usize) -> String {
        let mut host = format!("{}-{i}-{j}", self.prefix);
        if let Some(d) = self.domain {
            host = format!("{host}.{d}");
        }
        if self.upper {
            host = host.to_ascii_uppercase();
        }
        let path = self.path.join("/");
        let mut out = self.scheme.unwrap_or("").to_string();
        out.push_str(&host);
        match self.colon {
            _ if path.is_empty() => {}
            Some(true) => write!(out, ":/{path}").expect("write to string"),
            // Digits alone after the colon would be a port.
            Some(false) if self.path[0].bytes().all(|b| b.is_ascii_digit()) => {
                write!(out, ":c{path}").expect("write to string")
            }
            Some(false) => write!(out, ":{path}").expect("write to string"),
            None => write!(out, "/{path}").expect("write to string"),
        }
        out
    }
}

impl Tpl {
    fn names(&self) -> Vec<String> {
        self.services
            .iter()
            .enumerate()
            .map(|(i, s)| s.name(i))
            .collect()
    }

    fn render(&self) -> String {
        let shares: Vec<Share> = self.services.iter().map(|s| s.share.clone()).collect();
        self.render_with(&shares)
    }

    /// The template with the given routing-share labels per service.
    fn render_with(&self, shares: &[Share]) -> String {
        let mut out = String::new();
        if let Some(d) = self.defaults {
            let _ = writeln!(out, "x-defaults: &defaults\n  {d}");
        }
        let names = self.names();
        let ind = if self.compose {
            if let Some(v) = self.version {
                let _ = writeln!(out, "version: {v}");
            }
            if let Some(n) = &self.name {
                let _ = writeln!(out, "name: {n}");
            }
            out.push_str("services:\n");
            "  "
        } else {
            ""
        };
        for (i, s) in self.services.iter().enumerate() {
            let mut s = s.clone();
            s.merge_defaults &= self.defaults.is_some();
            s.render(&mut out, i, &names, &shares[i], ind);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The properties.

fn config() -> ProptestConfig {
    cases(256)
}

/// Properties built on the generated templates cost a few milliseconds a
/// case in a debug build; the ones derived from the round trip run fewer.
/// `PROPTEST_CASES` overrides the count for a longer run.
fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Shrinking a failing template can take long; the first failure,
        // printed with its text, is usually clear enough.
        max_shrink_iters: 2_000,
        // Failures are printed with their template; nothing is written
        // into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// parse → to_yaml → parse gives the same template, and writing it
    /// again gives the same text.
    #[test]
    fn parse_write_parse_is_stable(tpl in template()) {
        let text = tpl.render();
        let first = must_parse("generated.yaml", &text)?.template;
        prop_assert_eq!(first.services.len(), tpl.services.len());
        let written = to_yaml(&first);
        let second = must_parse("written.yaml", &written)?.template;
        prop_assert_eq!(&first, &second, "--- source ---\n{}\n--- written ---\n{}", text, written);
        prop_assert_eq!(to_yaml(&second), written);
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// A template diffed with itself is all unchanged, every route shared.
    #[test]
    fn diff_with_itself_is_all_unchanged(tpl in template()) {
        let t = must_parse("generated.yaml", &tpl.render())?.template;
        let d = diff(&t, &t, DEFAULT_DOMAIN);
        prop_assert_eq!(d.services.len(), t.services.len());
        for s in &d.services {
            prop_assert_eq!(s.role, Role::Unchanged, "{}", s.name);
            prop_assert_eq!(s.color, "yellow");
        }
        let routes: BTreeSet<String> = t
            .services
            .iter()
            .flat_map(|s| s.settings.routes.iter())
            .flat_map(|b| b.routes.iter().map(|r| r.id(DEFAULT_DOMAIN)))
            .collect();
        prop_assert_eq!(d.routes.len(), routes.len());
        for r in &d.routes {
            prop_assert_eq!(r.change, RouteChange::Shared, "{}", &r.id);
            prop_assert!(routes.contains(&r.id));
        }
    }

    /// Adding, removing or changing only routing-share labels never makes
    /// a service changed, and the template otherwise reads the same.
    #[test]
    fn routing_share_labels_never_change_a_service(
        (tpl, shares) in template().prop_flat_map(|tpl| {
            let n = tpl.services.len();
            (Just(tpl), vec(share(), n))
        })
    ) {
        let old = must_parse("old.yaml", &tpl.render())?.template;
        let new = must_parse("new.yaml", &tpl.render_with(&shares))?.template;
        let d = diff(&old, &new, DEFAULT_DOMAIN);
        for s in &d.services {
            prop_assert_eq!(s.role, Role::Unchanged, "{}", s.name);
        }
        prop_assert!(d.routes.iter().all(|r| r.change == RouteChange::Shared));
        // What changed is the share settings, nothing else.
        for (o, n) in old.services.iter().zip(&new.services) {
            prop_assert_eq!(without_share(o), without_share(n));
        }
        for (n, share) in new.services.iter().zip(&shares) {
            prop_assert_eq!(n.settings.coexist, share.coexist && (share.aliyun || share.native));
            prop_assert_eq!(n.settings.weight, share.weight);
        }
    }

    /// Any change to a non-share label does make the service changed.
    #[test]
    fn other_label_changes_do_change_a_service(tpl in template(), victim in any::<Index>()) {
        let old = must_parse("old.yaml", &tpl.render())?.template;
        let mut tpl2 = tpl;
        let i = victim.index(tpl2.services.len());
        tpl2.services[i]
            .extra_labels
            .insert("com.example.zzz-changed".into(), "x".into());
        let new = must_parse("new.yaml", &tpl2.render())?.template;
        let d = diff(&old, &new, DEFAULT_DOMAIN);
        for (j, s) in d.services.iter().enumerate() {
            let expected = if j == i { Role::Changed } else { Role::Unchanged };
            prop_assert_eq!(s.role, expected, "{}", s.name);
        }
    }
}

/// A service without its routing-share labels and settings.
fn without_share(s: &turnout_spec::Service) -> turnout_spec::Service {
    let mut s = s.clone();
    for k in [
        "aliyun.routing.coexist",
        "turnout.route.coexist",
        "turnout.route.weight",
    ] {
        s.labels.remove(k);
    }
    s.settings.coexist = false;
    s.settings.weight = None;
    s
}

// ---------------------------------------------------------------------------
// The parser never panics.

/// Checks what any parse result must satisfy: an invalid template has at
/// least one error, and every diagnostic points inside the file.
fn sane(text: &str, result: &Result<Parsed, Vec<Diagnostic>>) -> Result<(), TestCaseError> {
    // YAML breaks lines at LF, CR and CRLF (a lone CR counts, as the
    // parser counts it).
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u32;
    let diagnostics: &[Diagnostic] = match result {
        Ok(parsed) => &parsed.warnings,
        Err(diagnostics) => {
            prop_assert!(
                diagnostics.iter().any(Diagnostic::is_error),
                "an invalid template without an error: {}",
                show(diagnostics)
            );
            diagnostics
        }
    };
    for d in diagnostics {
        prop_assert_eq!(&d.file, "fuzz.yaml");
        prop_assert!(
            d.pos.line <= lines + 1,
            "{} is past the end ({} lines)",
            d,
            lines
        );
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

/// A text edit: (position, what to do).
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Indent(Index, usize),
    Dedent(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<Index>(),
            prop_oneof![
                "[ -~]{1,6}",
                select(
                    &[
                        ": ", "- ", "&a ", "*a", "<<: *a", "\n", "\t", "'", "\"", "${", "$", "#",
                        "{", "[", ":", "~", "!!str ", "? "
                    ][..]
                )
                .prop_map(str::to_string),
            ]
        )
            .prop_map(|(i, s)| Edit::Insert(i, s)),
        any::<Index>().prop_map(Edit::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<Index>(), 1usize..4).prop_map(|(i, n)| Edit::Indent(i, n)),
        any::<Index>().prop_map(Edit::Dedent),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    match edit {
        Edit::Delete(at, n) if !chars.is_empty() => {
            let start = at.index(chars.len());
            let end = (start + n).min(chars.len());
            chars[..start].iter().chain(&chars[end..]).collect()
        }
        Edit::Insert(at, s) => {
            let at = at.index(chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(s);
            out.extend(&chars[at..]);
            out
        }
        Edit::DuplicateLine(at) => {
            let i = at.index(lines.len());
            let line = lines[i].clone();
            lines.insert(i, line);
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
            lines.join("\n")
        }
        Edit::Indent(at, n) => {
            let i = at.index(lines.len());
            lines[i] = format!("{}{}", " ".repeat(*n), lines[i]);
            lines.join("\n")
        }
        Edit::Dedent(at) => {
            let i = at.index(lines.len());
            lines[i] = lines[i].trim_start().to_string();
            lines.join("\n")
        }
        Edit::Delete(..) => text.to_string(),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let result = parse("fuzz.yaml", &text, &env);
        sane(&text, &result)?;
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let result = parse("fuzz.yaml", &text, &env);
        sane(&text, &result)?;
    }

    #[test]
    fn never_panics_on_yaml_like_text(
        text in "([a-z0-9_.]{0,6}(: |:|- |-|\n|  |&a |\\*a|<<|\\{|\\}|\\[|\\]|,|'|\"|#|\\$\\{|\\}|!!|\\?|\\|)){0,40}"
    ) {
        let result = parse("fuzz.yaml", &text, &env);
        sane(&text, &result)?;
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Random edits of a valid template: the reader reports or accepts,
    /// never panics; what it accepts still writes back and reads the same.
    #[test]
    fn never_panics_on_mutated_templates(tpl in template(), edits in vec(edit(), 1..6)) {
        let mut text = tpl.render();
        for e in &edits {
            text = apply(&text, e);
        }
        let result = parse("fuzz.yaml", &text, &env);
        sane(&text, &result)?;
        if let Ok(parsed) = result {
            let written = to_yaml(&parsed.template);
            let again = must_parse("written.yaml", &written)?;
            prop_assert_eq!(&parsed.template, &again.template, "--- source ---\n{}\n--- written ---\n{}", text, written);
        }
    }
}

/// Aliases that expand exponentially are refused, not expanded.
#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a: &a [\"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\"]\n");
    let mut prev = 'a';
    for name in 'b'..='m' {
        let _ = writeln!(
            text,
            "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]"
        );
        prev = name;
    }
    let result = parse("fuzz.yaml", &text, &env);
    sane(&text, &result).expect("sane diagnostics");
    assert!(result.is_err(), "an alias bomb is not a template");
}

/// Deep nesting is refused with an error, not a stack overflow.
///
/// The YAML layer allows 64 levels. Reading that deep takes about 40 KiB of
/// stack per level in a debug build (under 8 KiB in release), more than the
/// 2 MiB of a test thread, so this runs on a thread with a main-sized stack.
#[test]
fn deep_nesting_is_refused() {
    let run = || {
        for depth in [100, 10_000, 200_000] {
            let text = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
            let errors = parse("fuzz.yaml", &text, &env).expect_err("too deep");
            assert!(
                errors[0].message.starts_with("invalid YAML"),
                "{}",
                errors[0]
            );
            let text = format!(
                "a:\n  labels: {}1{}\n",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            );
            assert!(parse("fuzz.yaml", &text, &env).is_err());
            let text: String = (0..depth.min(1_000))
                .map(|i| format!("{}k:\n", "  ".repeat(i)))
                .collect();
            assert!(parse("fuzz.yaml", &text, &env).is_err());
        }
    };
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(run)
        .expect("a thread")
        .join()
        .expect("no panic");
}

/// A template written by `to_yaml` of a hand-made seed demo reads back the
/// same, layout included.
#[test]
fn the_seed_demo_writes_back_in_its_own_layout() {
    let text = "\
serviceA-v1:
  image: 'demo-service-a:1.0'
  command: echo $$HOME costs $$5 at ${PORT}
  labels:
    aliyun.scale: 3
    aliyun.routing.port_5000: servicea.local
";
    let first: Template = parse("app.yaml", text, &env).expect("valid").template;
    let written = to_yaml(&first);
    let second = parse("written.yaml", &written, &env)
        .unwrap_or_else(|d| panic!("{}\n{written}", show(&d)))
        .template;
    assert_eq!(first, second, "\n{written}");
}

/// Found by `never_panics_on_arbitrary_bytes`: YAML counts a lone CR as a
/// line break, so the error of "\r\r\x0e" is on line 3 of a 3-line file.
#[test]
fn lone_carriage_returns_are_line_breaks() {
    let text = "\r\r\u{e}";
    let result = turnout_spec::parse("fuzz.yaml", text, &env);
    let diagnostics = result.expect_err("a control character is not YAML");
    assert_eq!(diagnostics[0].pos.line, 3, "{}", show(&diagnostics));
    sane(text, &Err(diagnostics)).unwrap();
}
