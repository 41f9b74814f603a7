//! The normalised model of an application template.
//!
//! Whatever form the source used (seed v1 or compose v2/v3, lists or maps,
//! string or list commands), a template reads into these types, so two
//! templates that mean the same thing compare equal.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::labels::Settings;
use crate::plan::ReleaseBlock;

/// The layout of the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The seed platform's format (compose v1): a top-level map of services.
    Seed,
    /// Compose v2/v3: services under `services:`.
    Compose,
}

/// A parsed, validated, normalised template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The layout the source used.
    pub format: Format,
    /// The compose `version:` field, if any.
    pub version: Option<String>,
    /// The compose `name:` field, if any.
    pub name: Option<String>,
    /// The services, in the order the file lists them.
    pub services: Vec<Service>,
    /// Top-level `volumes:`: the named volumes services may mount.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, VolumeDecl>,
    /// Top-level `networks:`: the networks services may join.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkDecl>,
    /// The template's folder as an absolute path on the machine it was
    /// read on (DESIGN §6): build contexts, bind mounts and a relative
    /// `working_dir` resolve against it. Not part of the YAML: the CLI
    /// sends it beside the template and the store keeps it in a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
    /// The `x-turnout.release` block (DESIGN §8) as written, if any; its
    /// plan is valid (see [`crate::ReleasePlan::with_overrides`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Box<ReleaseBlock>>,
}

impl Template {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// One service of a template, with its labels interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service name; by convention it carries the version (`serviceB-v2`).
    pub name: String,
    /// The container image.
    pub image: Option<String>,
    /// How to build the image locally.
    pub build: Option<Build>,
    /// The command to run (overrides the image's command).
    pub command: Option<Command>,
    /// The working directory of the command.
    pub working_dir: Option<String>,
    /// Environment variables; `None` means "take it from the environment
    /// the instance is started in", as compose does for a bare `KEY`.
    pub environment: BTreeMap<String, Option<String>>,
    /// Labels as strings, exactly as written (after `${VAR}` substitution).
    pub labels: BTreeMap<String, String>,
    /// Routes and services outside this one that it calls (`servicea.local`).
    pub external_links: Vec<String>,
    /// Compose links (`service` or `service:alias`).
    pub links: Vec<String>,
    /// The restart policy; `None` leaves it to the runtime's default.
    pub restart: Option<Restart>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// The compose health check.
    pub healthcheck: Option<Healthcheck>,
    /// Services this one starts after (`depends_on`).
    pub depends_on: Vec<String>,
    /// `deploy.replicas` (or compose's service-level `scale`).
    pub replicas: Option<u32>,
    /// `env_file`: files of `KEY=VALUE` lines, relative to the template's
    /// folder, in the order given. Their values are merged into
    /// `environment` (which wins) by [`crate::apply_env_files`].
    pub env_file: Vec<String>,
    /// The fields only a container runtime uses (DESIGN §6.1).
    pub container: ContainerSettings,
    /// What turnout makes of the labels and fields together.
    pub settings: Settings,
}

/// A command: a string run by a shell, or a list run directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// `command: python app.py` — run as `sh -c 'exec <command>'`.
    Shell(String),
    /// `command: ["python", "app.py"]` — run directly.
    Exec(Vec<String>),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Exec(args) => f.write_str(&args.join(" ")),
        }
    }
}

/// A compose restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart when the program exits with a non-zero status, at most
    /// `max_retries` times when given.
    OnFailure {
        /// The limit of restarts, if any.
        max_retries: Option<u32>,
    },
    /// Always restart unless stopped by the operator.
    UnlessStopped,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::OnFailure { max_retries: None } => f.write_str("on-failure"),
            Restart::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// A transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

/// One entry of `ports:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address to publish on, if given.
    pub host_ip: Option<String>,
    /// The host port, if given (otherwise one is chosen).
    pub published: Option<u16>,
    /// The container port.
    pub target: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host_ip, self.published) {
            (Some(ip), Some(p)) => write!(f, "{ip}:{p}:{}", self.target)?,
            (Some(ip), None) => write!(f, "{ip}::{}", self.target)?,
            (None, Some(p)) => write!(f, "{p}:{}", self.target)?,
            (None, None) => write!(f, "{}", self.target)?,
        }
        if self.protocol == Protocol::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

/// The compose `healthcheck:` block, durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// The check to run; `None` with `disable` means no check.
    pub test: Option<HealthTest>,
    /// Time between checks.
    pub interval_ms: Option<u64>,
    /// Time a check may take.
    pub timeout_ms: Option<u64>,
    /// Failures in a row before the instance is unhealthy.
    pub retries: Option<u32>,
    /// Grace period after start during which failures do not count.
    pub start_period_ms: Option<u64>,
    /// `disable: true` or `test: ["NONE"]`.
    pub disable: bool,
}

/// The `test` of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthTest {
    /// `["CMD", "prog", "arg"]`: run directly.
    Cmd(Vec<String>),
    /// `"curl -f localhost"` or `["CMD-SHELL", "..."]`: run by a shell.
    Shell(String),
}

/// The compose `build:` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The build context directory.
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: Option<String>,
    /// Build arguments.
    pub args: BTreeMap<String, String>,
    /// The build stage to stop at.
    pub target: Option<String>,
}

/// The compose fields that only a container runtime uses (DESIGN §6.1);
/// the process runtime ignores them, with a warning from the runtime when
/// a template that sets them is deployed. Empty (`Default`) when a template sets none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// `entrypoint`, overriding the image's.
    pub entrypoint: Option<Command>,
    /// `user`: `name`, `uid` or `uid:gid`.
    pub user: Option<String>,
    /// `volumes`: named volumes, bind mounts and anonymous volumes.
    pub volumes: Vec<VolumeMount>,
    /// `tmpfs`: mount points (`/run` or `/run:size=64m`).
    pub tmpfs: Vec<String>,
    /// `stop_signal`, spelt `SIGTERM` (or a number).
    pub stop_signal: Option<String>,
    /// `stop_grace_period` in milliseconds.
    pub stop_grace_period_ms: Option<u64>,
    /// `depends_on` conditions other than `service_started` (the default),
    /// by service name.
    pub depends_conditions: BTreeMap<String, DependsCondition>,
    /// `extra_hosts`: host name → address, in the order written.
    pub extra_hosts: Vec<ExtraHost>,
    /// `dns`: name servers.
    pub dns: Vec<String>,
    /// `cap_add`: capabilities, upper case without `CAP_` (or `ALL`).
    pub cap_add: Vec<String>,
    /// `cap_drop`, spelt as `cap_add`.
    pub cap_drop: Vec<String>,
    /// `read_only`: the root filesystem is read-only.
    pub read_only: bool,
    /// `init`: run an init process as pid 1; `None` leaves it to the engine.
    pub init: Option<bool>,
    /// `ulimits` by name (`nofile`, `nproc`, ...).
    pub ulimits: BTreeMap<String, Ulimit>,
    /// `deploy.resources.limits`.
    pub limits: ResourceLimits,
    /// `pull_policy`.
    pub pull_policy: Option<PullPolicy>,
    /// `container_name`.
    pub container_name: Option<String>,
    /// `networks` the service joins, by name; empty means the app's
    /// default network.
    pub networks: BTreeMap<String, ServiceNetwork>,
}

impl ContainerSettings {
    /// Whether the template set none of these fields.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a mount of `volumes:` mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeKind {
    /// A named volume (declared at top level) or, without a source, an
    /// anonymous one.
    Volume,
    /// A host path, relative to the template's folder unless absolute.
    Bind,
    /// A tmpfs mount (long syntax `type: tmpfs`).
    Tmpfs,
}

/// One entry of a service's `volumes:`, in the short
/// (`source:target[:mode]`) or the long syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// Volume, bind mount or tmpfs.
    pub kind: VolumeKind,
    /// The volume's name or the host path as written (`./data`, `~/x`,
    /// `/srv`); `None` for an anonymous volume or a tmpfs.
    pub source: Option<String>,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only (`:ro`, `read_only: true`).
    pub read_only: bool,
    /// Other options, as compose spells them in the short syntax (`z`,
    /// `Z`, `nocopy`, `rshared`, `size=...`), sorted.
    pub options: Vec<String>,
}

/// A top-level `volumes:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDecl {
    /// `external: true`: the volume exists already and is not created.
    pub external: bool,
    /// `name:`, the engine's name for it when given.
    pub name: Option<String>,
    /// `driver:`, when given.
    pub driver: Option<String>,
}

/// A top-level `networks:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDecl {
    /// `external: true`: the network exists already and is not created.
    pub external: bool,
    /// `name:`, the engine's name for it when given.
    pub name: Option<String>,
    /// `driver:`, when given.
    pub driver: Option<String>,
}

/// How a service joins one network (`networks:` in a service).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// Extra names the service answers to on that network.
    pub aliases: Vec<String>,
    /// A fixed IPv4 address.
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address.
    pub ipv6_address: Option<String>,
}

/// The condition of a `depends_on` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependsCondition {
    /// Started (the default).
    ServiceStarted,
    /// Healthy by its health check.
    ServiceHealthy,
    /// Ran to completion with status 0.
    ServiceCompletedSuccessfully,
}

impl DependsCondition {
    /// The compose spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DependsCondition::ServiceStarted => "service_started",
            DependsCondition::ServiceHealthy => "service_healthy",
            DependsCondition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// One `extra_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The host name.
    pub host: String,
    /// Its address (or `host-gateway`).
    pub ip: String,
}

/// A resource limit of `ulimits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// The soft limit.
    pub soft: i64,
    /// The hard limit (equal to `soft` for the single-number form).
    pub hard: i64,
}

/// `deploy.resources.limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// CPUs in billionths (`cpus: 0.5` → 500,000,000), as the engine's
    /// `NanoCpus` takes them.
    pub nano_cpus: Option<u64>,
    /// Memory in bytes (`memory: 1.5G`).
    pub memory_bytes: Option<u64>,
}

/// `pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Never pull; the image must be there.
    Never,
    /// Pull when the image is missing (`missing`, `if_not_present`).
    Missing,
    /// Build the image from `build:`.
    Build,
}

impl PullPolicy {
    /// The compose spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
            PullPolicy::Missing => "missing",
            PullPolicy::Build => "build",
        }
    }
}
