//! Warnings about template fields a runtime accepts and does not use:
//! which fields those are depends on the runtime the server runs (the
//! process runtime ignores `volumes`, the docker runtime honours them), so
//! they come from [`Runtime::warnings`](crate::Runtime::warnings), not from
//! the template parser.

use std::fmt;

use turnout_spec::Service;
use turnout_spec::template::ContainerSettings;

/// A field of a template that the runtime in use accepts and ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeWarning {
    /// The service the field belongs to; `None` for a top-level field.
    pub service: Option<String>,
    /// The field as compose spells it (`volumes`, `deploy.resources`,
    /// top-level `networks`).
    pub field: String,
    /// What happens to it, naming the runtime (`the process runtime
    /// ignores volumes`).
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl RuntimeWarning {
    /// The warning and its hint on one line, as the API sends it and the
    /// CLI prints it: `service web: the docker runtime ignores
    /// container_name; hint: containers are named ...`.
    pub fn line(&self) -> String {
        format!("{self}; hint: {}", self.hint)
    }
}

impl fmt::Display for RuntimeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(service) => write!(f, "service {service}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The container-only fields (DESIGN §6.1) that `service` sets, as compose
/// spells them, in a fixed order.
pub fn container_fields_set(service: &Service) -> Vec<&'static str> {
    let c: &ContainerSettings = &service.container;
    let set = [
        ("cap_add", !c.cap_add.is_empty()),
        ("cap_drop", !c.cap_drop.is_empty()),
        ("container_name", c.container_name.is_some()),
        ("deploy.resources", c.limits != Default::default()),
        ("dns", !c.dns.is_empty()),
        ("entrypoint", c.entrypoint.is_some()),
        ("extra_hosts", !c.extra_hosts.is_empty()),
        ("init", c.init.is_some()),
        ("networks", !c.networks.is_empty()),
        ("pull_policy", c.pull_policy.is_some()),
        ("read_only", c.read_only),
        ("stop_grace_period", c.stop_grace_period_ms.is_some()),
        ("stop_signal", c.stop_signal.is_some()),
        ("tmpfs", !c.tmpfs.is_empty()),
        ("ulimits", !c.ulimits.is_empty()),
        ("user", c.user.is_some()),
        ("volumes", !c.volumes.is_empty()),
    ];
    set.into_iter()
        .filter_map(|(field, on)| on.then_some(field))
        .collect()
}
