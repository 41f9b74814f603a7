//! The normalised model of an application template.
//!
//! Whatever form the source used (seed v1 or compose v2/v3, lists or maps,
//! string or list commands), a template reads into these types, so two
//! templates that mean the same thing compare equal.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::labels::Settings;

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
