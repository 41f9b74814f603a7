//! The error type of the runtime crate.

use std::path::PathBuf;

/// Why a runtime could not start, stop, probe or read an instance.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The service cannot run on this runtime (the process runtime needs a
    /// `command`).
    #[error("service {service} cannot run on the {runtime} runtime: {reason}")]
    Unsupported {
        /// The service's name.
        service: String,
        /// The runtime's name.
        runtime: &'static str,
        /// What is missing.
        reason: String,
        /// What to do instead.
        hint: String,
    },
    /// The command has nothing to run (an empty string or list).
    #[error("instance {instance} has an empty command")]
    EmptyCommand {
        /// The instance id.
        instance: String,
    },
    /// A `${PORT}` or `${PORT_<N>}` reference names a port the instance was
    /// not given, and has no `:-default`.
    #[error("{variable} is not set for {instance}: {reason}")]
    UnknownPort {
        /// The instance id (or the probe's service).
        instance: String,
        /// The variable as written (`PORT_5000`).
        variable: String,
        /// Why it has no value.
        reason: String,
    },
    /// The probe names a container port that has no mapped host port.
    #[error("the probe of {service} checks container port {port}, which has no mapped port")]
    UnmappedPort {
        /// The service's name.
        service: String,
        /// The container port.
        port: u16,
    },
    /// The instance's log file (or its folder) could not be created.
    #[error("cannot open log file {}: {source}", path.display())]
    LogFile {
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A log file could not be read.
    #[error("cannot read log file {}: {source}", path.display())]
    ReadLog {
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The program could not be started (not found, not executable, no
    /// such working directory).
    #[error("cannot start {instance} ({program}): {source}")]
    Spawn {
        /// The instance id.
        instance: String,
        /// The program that was to run.
        program: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The started process could not be read from `/proc`.
    #[error("cannot read /proc/{pid}/stat of {instance}: {reason}")]
    ProcStat {
        /// The instance id.
        instance: String,
        /// The process id.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
    /// A signal could not be sent (other than to a process that is gone).
    #[error("cannot send {signal} to process group {pid}: {source}")]
    Signal {
        /// The process (group) id.
        pid: u32,
        /// The signal's name.
        signal: &'static str,
        /// What the operating system said.
        source: nix::errno::Errno,
    },
    /// The instance was still running after SIGKILL (a process stuck in
    /// the kernel, for example on a dead network file system).
    #[error("process {pid} is still running after sigkill")]
    StillRunning {
        /// The process id.
        pid: u32,
    },
    /// A service's image is not on this machine (nothing is pulled unless
    /// the template asks for it).
    #[error("service {service} needs image {image}, which is not on this machine")]
    MissingImage {
        /// The service's name.
        service: String,
        /// The image as the template names it.
        image: String,
        /// How to build or load it.
        hint: String,
    },
    /// The container engine could not be reached, or refused a request.
    #[error("{action}: {message}")]
    Engine {
        /// What was being done (`cannot create container hello-web-1`).
        action: String,
        /// What the engine (or the connection to it) said.
        message: String,
        /// What to do about it, when there is something to say.
        hint: Option<String>,
    },
    /// A host port the instance publishes is taken (by another container,
    /// or by a program outside the engine): starting again does not help
    /// while its holder keeps it.
    #[error("{action}: {message}")]
    PortTaken {
        /// What was being done (`cannot start web.1: host port 8080 is taken`).
        action: String,
        /// What the engine said.
        message: String,
        /// Who holds it and what to do.
        hint: String,
    },
    /// The instance's program is not there or cannot be run (a container
    /// command its image does not hold): starting again does not help.
    #[error("{action}: {message}")]
    NotRunnable {
        /// What was being done (`cannot start web.1: its command is not in image turnout:dev`).
        action: String,
        /// What the engine said.
        message: String,
        /// What to do.
        hint: String,
    },
    /// No free loopback port could be bound.
    #[error("cannot allocate a loopback port: {source}")]
    Ports {
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// Whether starting the instance again cannot succeed as things stand:
    /// the template or the machine must change first (a program that is
    /// not there or not executable, an empty command, a port reference
    /// that has no value, a host port someone else holds). A release whose
    /// new instance fails so fails at once, instead of at its ready
    /// deadline; other start errors are retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            RuntimeError::Spawn { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            RuntimeError::Unsupported { .. }
            | RuntimeError::EmptyCommand { .. }
            | RuntimeError::UnknownPort { .. }
            | RuntimeError::UnmappedPort { .. }
            | RuntimeError::MissingImage { .. }
            | RuntimeError::PortTaken { .. }
            | RuntimeError::NotRunnable { .. } => true,
            RuntimeError::LogFile { .. }
            | RuntimeError::ReadLog { .. }
            | RuntimeError::ProcStat { .. }
            | RuntimeError::Signal { .. }
            | RuntimeError::StillRunning { .. }
            | RuntimeError::Engine { .. }
            | RuntimeError::Ports { .. } => false,
        }
    }

    /// What the operator can do about it, when there is something to say
    /// (for the API's `hint` and the CLI).
    pub fn hint(&self) -> Option<String> {
        match self {
            RuntimeError::Unsupported { hint, .. }
            | RuntimeError::MissingImage { hint, .. }
            | RuntimeError::PortTaken { hint, .. }
            | RuntimeError::NotRunnable { hint, .. } => Some(hint.clone()),
            RuntimeError::Engine { hint, .. } => hint.clone(),
            RuntimeError::UnknownPort { variable, .. } if variable == "PORT" => Some(
                "route a port with a routing label (aliyun.routing.port_<N>), or give a default: \
                 ${PORT:-8080}"
                    .to_string(),
            ),
            RuntimeError::UnknownPort { variable, .. } => {
                let port = variable.trim_start_matches("PORT_");
                Some(format!(
                    "declare the port (a routing label, a probe url or `ports: [\"{port}\"]`), \
                     or give a default: ${{{variable}:-{port}}}"
                ))
            }
            RuntimeError::EmptyCommand { .. } => {
                Some("give the service a command to run".to_string())
            }
            RuntimeError::Spawn { .. } => Some(
                "check that the program exists on this machine and is executable, and that the \
                 working directory exists"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeError;

    #[test]
    fn only_errors_a_new_start_cannot_mend_are_permanent() {
        let spawn = |kind| RuntimeError::Spawn {
            instance: "web.1".into(),
            program: "web".into(),
            source: std::io::Error::from(kind),
        };
        assert!(spawn(std::io::ErrorKind::NotFound).is_permanent());
        assert!(spawn(std::io::ErrorKind::PermissionDenied).is_permanent());
        // Out of processes or memory: it may work a moment later.
        assert!(!spawn(std::io::ErrorKind::WouldBlock).is_permanent());
        assert!(!spawn(std::io::ErrorKind::OutOfMemory).is_permanent());
        let taken = RuntimeError::PortTaken {
            action: "cannot start web.1: host port 8080 is taken".into(),
            message: "address already in use".into(),
            hint: "stop it".into(),
        };
        assert!(taken.is_permanent());
        assert_eq!(taken.hint().as_deref(), Some("stop it"));
        let engine = RuntimeError::Engine {
            action: "cannot start container abc".into(),
            message: "connection reset".into(),
            hint: None,
        };
        assert!(!engine.is_permanent());
    }
}
