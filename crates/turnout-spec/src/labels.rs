//! Interpretation of service labels: the seed platform's `aliyun.*` labels
//! and their strict native `turnout.*` twins.
//!
//! `aliyun.*` labels are read as the seed platform read them; the ones
//! turnout does not support warn and are ignored, as are unknown ones.
//! `turnout.*` labels are strict: an unknown one is an error, because a
//! typo in a routing label must not silently change where traffic goes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, FieldPath, Pos, Sink, did_you_mean, quoted};
use crate::route::{self, RouteBinding};

/// Labels that only say how a service shares its routes. They are left out
/// of a service's identity, so adding `coexist: true` for a release does
/// not make the service "changed".
pub const ROUTING_SHARE_LABELS: &[&str] = &[
    "aliyun.routing.coexist",
    "turnout.route.coexist",
    "turnout.route.weight",
];

/// How a route keeps a client on what it saw before (DESIGN §2): the
/// template's `turnout.route.sticky` and the route file's `sticky`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sticky {
    /// A client keeps its version (service) while the weights stand,
    /// through the position cookie; weight changes move clients only
    /// towards the service whose weight rose. The default.
    #[default]
    Version,
    /// As `Version`, and the client is also pinned to one instance, even
    /// when that instance's service has weight 0, for as long as it lives.
    Instance,
    /// Every request is weighted anew.
    Off,
}

impl fmt::Display for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sticky::Version => "version",
            Sticky::Instance => "instance",
            Sticky::Off => "off",
        })
    }
}

impl FromStr for Sticky {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "version" => Ok(Sticky::Version),
            "instance" => Ok(Sticky::Instance),
            "off" => Ok(Sticky::Off),
            _ => Err(()),
        }
    }
}

/// An active health probe from `aliyun.probe.*` / `turnout.probe.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What the probe checks.
    pub check: ProbeCheck,
    /// How long one probe may take, in seconds.
    pub timeout_seconds: Option<u32>,
    /// Delay before the first probe, in seconds.
    pub initial_delay_seconds: Option<u32>,
    /// Time between probes once the instance is ready, in seconds.
    pub interval_seconds: Option<u32>,
}

/// The check a probe makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeCheck {
    /// `http://container[:port]/path`: a 2xx or 3xx answer is healthy.
    /// Without a port, the service's first routed port is probed.
    Http {
        /// The container port, if written.
        port: Option<u16>,
        /// The path to request.
        path: String,
    },
    /// `tcp://container:port`: an accepted connection is healthy.
    Tcp {
        /// The container port.
        port: u16,
    },
    /// A shell command inside the instance: exit status 0 is healthy.
    Cmd(String),
}

/// What turnout makes of a service's labels and fields together.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Number of instances (labels, `deploy.replicas`, else 1).
    pub scale: u32,
    /// Routes by container port, in port order.
    pub routes: Vec<RouteBinding>,
    /// `coexist: true`: the service may share a route with another one of
    /// the same template.
    pub coexist: bool,
    /// Stickiness of the service's routes, when a label sets it.
    pub sticky: Option<Sticky>,
    /// Initial route weight, when a label sets it.
    pub weight: Option<u8>,
    /// The active health probe, if any.
    pub probe: Option<Probe>,
    /// Services to start first: `aliyun.depends` and `depends_on` together.
    pub depends: Vec<String>,
    /// `aliyun.rolling_updates`: replace instances batch by batch.
    pub rolling_updates: bool,
    /// Batch size of a rolling replacement (default 1).
    pub parallelism: u32,
    /// `aliyun.latest_image`: pull the newest image on deploy.
    pub latest_image: bool,
}

/// A label as read from the template, with its positions.
#[derive(Debug)]
pub(crate) struct LabelEntry {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) key_pos: Pos,
    pub(crate) value_pos: Pos,
}

/// Everything of the service besides labels that the interpretation needs.
pub(crate) struct Context<'a> {
    /// Path of the service (`serviceB-v1` or `services.serviceB-v1`).
    pub(crate) service_path: &'a FieldPath,
    /// Position of the service's name.
    pub(crate) service_pos: Pos,
    /// `deploy.replicas` or `scale`, with its position.
    pub(crate) replicas: Option<(u32, Pos)>,
    /// `depends_on` names.
    pub(crate) depends_on: &'a [String],
    /// Whether the service has a compose `healthcheck`.
    pub(crate) has_healthcheck: bool,
}

/// Native labels, for "did you mean" hints.
const TURNOUT_LABELS: &[&str] = &[
    "turnout.scale",
    "turnout.route.<port>",
    "turnout.route.coexist",
    "turnout.route.sticky",
    "turnout.route.weight",
    "turnout.probe.url",
    "turnout.probe.cmd",
    "turnout.probe.timeout_seconds",
    "turnout.probe.initial_delay_seconds",
    "turnout.probe.interval_seconds",
];

/// The seed's labels, for "did you mean" hints.
const ALIYUN_LABELS: &[&str] = &[
    "aliyun.scale",
    "aliyun.routing.port_<port>",
    "aliyun.routing.session_sticky",
    "aliyun.routing.coexist",
    "aliyun.probe.url",
    "aliyun.probe.cmd",
    "aliyun.probe.timeout_seconds",
    "aliyun.probe.initial_delay_seconds",
    "aliyun.depends",
    "aliyun.rolling_updates",
    "aliyun.rolling_updates.parallelism",
    "aliyun.global",
    "aliyun.latest_image",
    "aliyun.lb.port_<port>",
    "aliyun.log_<name>",
    "aliyun.auto_scaling.<setting>",
];

/// A value read from a label, remembered with the label it came from so
/// that twins (`aliyun.scale` and `turnout.scale`) can be compared.
struct Found<T> {
    value: T,
    key: String,
    pos: Pos,
}

#[derive(Default)]
struct Collected {
    scale: Option<Found<u32>>,
    coexist: Option<Found<bool>>,
    sticky: Option<Found<Sticky>>,
    weight: Option<Found<u8>>,
    probe_url: Option<Found<ProbeCheck>>,
    probe_cmd: Option<Found<String>>,
    probe_timeout: Option<Found<u32>>,
    probe_delay: Option<Found<u32>>,
    probe_interval: Option<Found<u32>>,
    routes: Vec<(u16, Vec<route::RouteSpec>, String, Pos)>,
    depends: Vec<String>,
    rolling_updates: bool,
    parallelism: Option<u32>,
    latest_image: bool,
}

/// Interprets the labels of one service. Problems go to `sink`.
pub(crate) fn interpret(labels: &[LabelEntry], cx: &Context<'_>, sink: &mut Sink) -> Settings {
    let mut c = Collected::default();
    let labels_path = cx.service_path.key("labels");
    for label in labels {
        let path = labels_path.key(&label.key);
        if let Some(rest) = label.key.strip_prefix("aliyun.") {
            aliyun_label(rest, label, &path, &mut c, sink);
        } else if let Some(rest) = label.key.strip_prefix("turnout.") {
            turnout_label(rest, label, &path, &mut c, sink);
        }
    }
    finish(c, cx, sink)
}

fn aliyun_label(rest: &str, l: &LabelEntry, path: &FieldPath, c: &mut Collected, sink: &mut Sink) {
    match rest {
        "scale" => set(&mut c.scale, positive(l, path, sink), l, path, sink),
        "routing.session_sticky" => {
            let sticky = boolean(l, path, false, sink)
                .map(|b| if b { Sticky::Instance } else { Sticky::Off });
            set(&mut c.sticky, sticky, l, path, sink);
        }
        "routing.coexist" => set(&mut c.coexist, boolean(l, path, false, sink), l, path, sink),
        "probe.url" => set(&mut c.probe_url, probe_url(l, path, sink), l, path, sink),
        "probe.cmd" => set(&mut c.probe_cmd, probe_cmd(l, path, sink), l, path, sink),
        "probe.timeout_seconds" => set(&mut c.probe_timeout, seconds(l, path, sink), l, path, sink),
        "probe.initial_delay_seconds" => {
            set(&mut c.probe_delay, seconds(l, path, sink), l, path, sink);
        }
        "depends" => c.depends.extend(depends_list(l, path, sink)),
        "rolling_updates" => {
            c.rolling_updates = boolean(l, path, false, sink).unwrap_or(false);
        }
        "rolling_updates.parallelism" => c.parallelism = positive(l, path, sink),
        "latest_image" => c.latest_image = boolean(l, path, false, sink).unwrap_or(false),
        "global" => {
            if boolean(l, path, false, sink) == Some(true) {
                sink.push(
                    Diagnostic::warning(l.key_pos, path, "turnout ignores aliyun.global")
                        .hint("turnout runs `scale` instances; set aliyun.scale instead"),
                );
            }
        }
        _ if rest.starts_with("routing.port_") => {
            let port = &rest["routing.port_".len()..];
            route_label(port, l, path, true, c, sink);
        }
        _ if rest.starts_with("lb.port_") || rest.starts_with("log_") => {
            sink.push(
                Diagnostic::warning(l.key_pos, path, format!("turnout ignores {}", l.key)).hint(
                    "external load balancers and log shipping are outside turnout; \
                     the label has no effect",
                ),
            );
        }
        _ if rest.starts_with("auto_scaling.") => {
            sink.push(
                Diagnostic::warning(l.key_pos, path, format!("turnout ignores {}", l.key)).hint(
                    "autoscaling is not supported; set the number of instances with aliyun.scale",
                ),
            );
        }
        _ => {
            let mut d = Diagnostic::warning(
                l.key_pos,
                path,
                format!("unknown label {}; turnout ignores it", l.key),
            );
            if let Some(m) = suggest("aliyun.", rest, ALIYUN_LABELS) {
                d = d.hint(format!("did you mean {m}?"));
            }
            sink.push(d);
        }
    }
}

fn turnout_label(rest: &str, l: &LabelEntry, path: &FieldPath, c: &mut Collected, sink: &mut Sink) {
    match rest {
        "scale" => set(&mut c.scale, positive(l, path, sink), l, path, sink),
        "route.coexist" => set(&mut c.coexist, boolean(l, path, true, sink), l, path, sink),
        "route.sticky" => {
            let sticky = l.value.parse::<Sticky>().ok();
            if sticky.is_none() {
                sink.push(
                    Diagnostic::error(l.value_pos, path, "invalid stickiness")
                        .found(quoted(&l.value))
                        .expected("one of version, instance, off")
                        .hint("`version` keeps a client on its version, `instance` on its instance, `off` weighs every request anew"),
                );
            }
            set(&mut c.sticky, sticky, l, path, sink);
        }
        "route.weight" => {
            let weight = match l.value.parse::<u8>() {
                Ok(w) if w <= 100 => Some(w),
                _ => {
                    sink.push(
                        Diagnostic::error(l.value_pos, path, "invalid route weight")
                            .found(quoted(&l.value))
                            .expected("an integer from 0 to 100")
                            .hint("weights are relative: 100 and 100 split traffic 50/50"),
                    );
                    None
                }
            };
            set(&mut c.weight, weight, l, path, sink);
        }
        "probe.url" => set(&mut c.probe_url, probe_url(l, path, sink), l, path, sink),
        "probe.cmd" => set(&mut c.probe_cmd, probe_cmd(l, path, sink), l, path, sink),
        "probe.timeout_seconds" => set(&mut c.probe_timeout, seconds(l, path, sink), l, path, sink),
        "probe.initial_delay_seconds" => {
            set(&mut c.probe_delay, seconds(l, path, sink), l, path, sink);
        }
        "probe.interval_seconds" => {
            let interval = seconds(l, path, sink);
            if interval == Some(0) {
                sink.push(
                    Diagnostic::error(l.value_pos, path, "probe interval of 0 seconds")
                        .expected("a positive number of seconds")
                        .hint("probes run every 2 seconds when the label is absent"),
                );
            }
            set(&mut c.probe_interval, interval, l, path, sink);
        }
        // `turnout.route.<port>`; a name that is not a number is most
        // likely a misspelt `turnout.route.sticky` or the like.
        _ if rest
            .strip_prefix("route.")
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            let port = &rest["route.".len()..];
            route_label(port, l, path, false, c, sink);
        }
        _ => {
            let mut d = Diagnostic::error(l.key_pos, path, format!("unknown label {}", l.key));
            d = match suggest("turnout.", rest, TURNOUT_LABELS) {
                Some(m) => d.hint(format!("did you mean {m}?")),
                None => d.hint(format!(
                    "turnout.* labels are: {}",
                    TURNOUT_LABELS.join(", ")
                )),
            };
            sink.push(d);
        }
    }
}

/// A known label close to `prefix` + `rest`. The shared prefix is left out
/// of the comparison, or every `turnout.*` label would look alike.
fn suggest(prefix: &str, rest: &str, known: &[&'static str]) -> Option<&'static str> {
    let suffixes: Vec<&str> = known.iter().map(|k| &k[prefix.len()..]).collect();
    let best = did_you_mean(rest, &suffixes)?;
    known.iter().copied().find(|k| &k[prefix.len()..] == best)
}

/// Records a label's value; a twin with a different value is an error.
fn set<T: PartialEq + fmt::Debug>(
    slot: &mut Option<Found<T>>,
    value: Option<T>,
    l: &LabelEntry,
    path: &FieldPath,
    sink: &mut Sink,
) {
    let Some(value) = value else { return };
    match slot {
        Some(prev) if prev.value != value => sink.push(
            Diagnostic::error(
                l.key_pos,
                path,
                format!("{} contradicts {}", l.key, prev.key),
            )
            .hint(format!(
                "{} (line {}) sets the same thing differently; keep one of the two",
                prev.key, prev.pos.line
            )),
        ),
        Some(_) => {}
        None => {
            *slot = Some(Found {
                value,
                key: l.key.clone(),
                pos: l.key_pos,
            });
        }
    }
}

fn positive(l: &LabelEntry, path: &FieldPath, sink: &mut Sink) -> Option<u32> {
    match l.value.parse::<u32>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            sink.push(
                Diagnostic::error(l.value_pos, path, format!("invalid {}", l.key))
                    .found(quoted(&l.value))
                    .expected("a positive integer")
                    .hint(format!(
                        "write a whole number of at least 1, e.g. {}: 3",
                        l.key
                    )),
            );
            None
        }
    }
}

fn seconds(l: &LabelEntry, path: &FieldPath, sink: &mut Sink) -> Option<u32> {
    match l.value.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            sink.push(
                Diagnostic::error(l.value_pos, path, format!("invalid {}", l.key))
                    .found(quoted(&l.value))
                    .expected("a non-negative integer number of seconds")
                    .hint(format!(
                        "write whole seconds without a unit, e.g. {}: 5",
                        l.key
                    )),
            );
            None
        }
    }
}

fn boolean(l: &LabelEntry, path: &FieldPath, strict: bool, sink: &mut Sink) -> Option<bool> {
    let v = if strict {
        l.value.clone()
    } else {
        l.value.to_ascii_lowercase()
    };
    match v.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            sink.push(
                Diagnostic::error(l.value_pos, path, format!("invalid {}", l.key))
                    .found(quoted(&l.value))
                    .expected("true or false"),
            );
            None
        }
    }
}

fn depends_list(l: &LabelEntry, path: &FieldPath, sink: &mut Sink) -> Vec<String> {
    let names: Vec<String> = l
        .value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        sink.push(
            Diagnostic::error(l.value_pos, path, "aliyun.depends names no service")
                .found(quoted(&l.value))
                .expected("service names separated by commas")
                .hint("write e.g. aliyun.depends: serviceA-v1,db, or remove the label"),
        );
    }
    names
}

fn route_label(
    port: &str,
    l: &LabelEntry,
    path: &FieldPath,
    legacy: bool,
    c: &mut Collected,
    sink: &mut Sink,
) {
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        let example = if legacy {
            "aliyun.routing.port_5000"
        } else {
            "turnout.route.5000"
        };
        sink.push(
            Diagnostic::error(l.key_pos, path, "invalid container port in route label")
                .found(quoted(port))
                .expected("a port number from 1 to 65535")
                .hint(format!(
                    "name the container port the service listens on, e.g. {example}"
                )),
        );
        return;
    };
    match route::parse_value(&l.value, legacy) {
        Ok(routes) => {
            if let Some((_, _, prev, prev_pos)) = c.routes.iter().find(|(p, ..)| *p == port) {
                sink.push(
                    Diagnostic::error(l.key_pos, path, format!("port {port} is routed twice"))
                        .hint(format!(
                            "{prev} (line {}) routes the same port; put all routes of a port in \
                             one label, separated by `;`",
                            prev_pos.line
                        )),
                );
                return;
            }
            c.routes.push((port, routes, l.key.clone(), l.key_pos));
        }
        Err(e) => sink.push(
            Diagnostic::error(l.value_pos, path, e.message)
                .found(e.found)
                .expected(e.expected)
                .hint(e.hint),
        ),
    }
}

fn probe_url(l: &LabelEntry, path: &FieldPath, sink: &mut Sink) -> Option<ProbeCheck> {
    let err = |sink: &mut Sink, message: &str| {
        sink.push(
            Diagnostic::error(l.value_pos, path, message.to_string())
                .found(quoted(&l.value))
                .expected("`http://container[:port]/path` or `tcp://container:port`")
                .hint("`container` stands for the instance's own address; write it literally"),
        );
        None
    };
    let (scheme, rest) = match l.value.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => return err(sink, "probe url has no scheme"),
    };
    if scheme != "http" && scheme != "tcp" {
        return err(sink, &format!("unsupported probe scheme {scheme:?}"));
    }
    let (authority, probe_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, Some(port)),
            _ => return err(sink, &format!("invalid port {p:?} in probe url")),
        },
        None => (authority, None),
    };
    if host != "container" {
        return err(
            sink,
            &format!("probe url host must be `container`, not {host:?}"),
        );
    }
    if scheme == "tcp" {
        if probe_path != "/" {
            return err(sink, "a tcp probe url has no path");
        }
        return match port {
            Some(port) => Some(ProbeCheck::Tcp { port }),
            None => err(sink, "a tcp probe url needs a port"),
        };
    }
    Some(ProbeCheck::Http {
        port,
        path: probe_path.to_string(),
    })
}

fn probe_cmd(l: &LabelEntry, path: &FieldPath, sink: &mut Sink) -> Option<String> {
    if l.value.trim().is_empty() {
        sink.push(
            Diagnostic::error(l.value_pos, path, format!("{} is empty", l.key))
                .expected("a shell command whose exit status 0 means healthy"),
        );
        return None;
    }
    Some(l.value.clone())
}

fn finish(c: Collected, cx: &Context<'_>, sink: &mut Sink) -> Settings {
    let labels_path = cx.service_path.key("labels");
    let scale = match (&c.scale, cx.replicas) {
        (Some(label), Some((replicas, pos))) if label.value != replicas => {
            sink.push(
                Diagnostic::error(
                    pos,
                    &cx.service_path.key("deploy").key("replicas"),
                    format!(
                        "replicas {replicas} contradicts {} {}",
                        label.key, label.value
                    ),
                )
                .hint("set the number of instances in one place only"),
            );
            label.value
        }
        (Some(label), _) => label.value,
        (None, Some((replicas, _))) => replicas,
        (None, None) => 1,
    };
    let probe_url_at = c.probe_url.as_ref().map(|f| (f.key.clone(), f.pos));
    let probe = match (c.probe_url, c.probe_cmd) {
        (Some(url), Some(cmd)) => {
            sink.push(
                Diagnostic::error(
                    cmd.pos,
                    &labels_path.key(&cmd.key),
                    "probe url and probe cmd are exclusive",
                )
                .hint(format!(
                    "{} (line {}) already sets a probe; keep one of the two",
                    url.key, url.pos.line
                )),
            );
            None
        }
        (Some(url), None) => Some(url.value),
        (None, Some(cmd)) => Some(ProbeCheck::Cmd(cmd.value)),
        (None, None) => None,
    };
    let mut routes: Vec<RouteBinding> = c
        .routes
        .into_iter()
        .map(|(container_port, routes, _, _)| RouteBinding {
            container_port,
            routes,
        })
        .collect();
    routes.sort_by_key(|r| r.container_port);
    if let Some(ProbeCheck::Http { port: None, .. }) = &probe
        && routes.is_empty()
        && let Some((key, pos)) = &probe_url_at
    {
        sink.push(
            Diagnostic::error(
                *pos,
                &labels_path.key(key),
                "the http probe names no port and the service has no routed port",
            )
            .hint("write the port in the probe url, e.g. http://container:5000/health"),
        );
    }
    let probe_settings = [&c.probe_timeout, &c.probe_delay, &c.probe_interval];
    let probe = match probe {
        Some(check) => Some(Probe {
            check,
            timeout_seconds: c.probe_timeout.map(|f| f.value),
            initial_delay_seconds: c.probe_delay.map(|f| f.value),
            interval_seconds: c.probe_interval.map(|f| f.value),
        }),
        None => {
            if let Some(orphan) = probe_settings.into_iter().flatten().next() {
                sink.push(
                    Diagnostic::warning(
                        orphan.pos,
                        &labels_path.key(&orphan.key),
                        format!("{} has no effect without a probe", orphan.key),
                    )
                    .hint("add aliyun.probe.url or aliyun.probe.cmd, or remove the label"),
                );
            }
            None
        }
    };
    if probe.is_some() && cx.has_healthcheck {
        sink.push(
            Diagnostic::warning(
                cx.service_pos,
                &cx.service_path.key("healthcheck"),
                "both a probe label and a healthcheck are set; the probe label is used",
            )
            .hint("remove one of the two"),
        );
    }
    let mut depends = c.depends;
    for name in cx.depends_on {
        if !depends.contains(name) {
            depends.push(name.clone());
        }
    }
    Settings {
        scale,
        routes,
        coexist: c.coexist.is_some_and(|f| f.value),
        sticky: c.sticky.map(|f| f.value),
        weight: c.weight.map(|f| f.value),
        probe,
        depends,
        rolling_updates: c.rolling_updates,
        parallelism: c.parallelism.unwrap_or(1),
        latest_image: c.latest_image,
    }
}
