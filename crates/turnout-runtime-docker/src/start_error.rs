//! What an engine's refusal to start a container means for the operator:
//! the refusals that starting again cannot mend as things stand (a host
//! port someone else holds, a command the image does not hold) become
//! errors that name the cause and what to do, and that
//! [`RuntimeError::is_permanent`] knows, so a release fails at once and
//! `deploy`/`up` stop waiting; any other refusal is left as it is.

use turnout_runtime::RuntimeError;
use turnout_spec::Service;

/// A start the engine refused because a host port of `ports:` is taken
/// (by another container: "port is already allocated"; by a program
/// outside the engine: "address already in use"), as an error naming the
/// port and what to do; any other error as it is.
pub(crate) fn port_taken(instance: &str, service: &Service, err: RuntimeError) -> RuntimeError {
    let RuntimeError::Engine { message, .. } = &err else {
        return err;
    };
    let by_container = message.contains("port is already allocated");
    if !by_container && !message.contains("address already in use") {
        return err;
    }
    // The port the engine names, among those the service publishes.
    let port = service.ports.iter().filter_map(|m| m.published).find(|p| {
        let needle = format!(":{p}");
        message
            .match_indices(&needle)
            .any(|(at, _)| !message[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
    });
    let what = port.map_or_else(|| "a host port".to_string(), |p| format!("host port {p}"));
    let hint = if by_container {
        format!(
            "another container publishes {what}: two containers cannot publish one host port \
             (`ports:`); publish another host port, or drop `ports:` and reach the service \
             through its turnout route"
        )
    } else {
        let see = port.map_or_else(String::new, |p| {
            format!(" (see what: ss -ltnp 'sport = :{p}')")
        });
        format!(
            "a program outside turnout listens on {what}{see}: stop it, or publish another \
             host port in `ports:`"
        )
    };
    RuntimeError::PortTaken {
        action: format!("cannot start {instance}: {what} is taken"),
        message: message.clone(),
        hint,
    }
}

/// An engine's refusal to start a container because its command is not in
/// its image or cannot be run (the OCI runtime's `exec: "x": executable
/// file not found in $PATH`, `no such file or directory`, `permission
/// denied`), as an error naming it and what to do; any other error as it is.
pub(crate) fn not_runnable(instance: &str, image: &str, err: RuntimeError) -> RuntimeError {
    let RuntimeError::Engine { message, .. } = &err else {
        return err;
    };
    let Some(at) = message.find("exec: ") else {
        return err;
    };
    let after = &message[at..];
    let found = after.contains("executable file not found") || after.contains("no such file");
    if !found && !after.contains("permission denied") {
        return err;
    }
    let what = if found { "not in" } else { "not runnable in" };
    RuntimeError::NotRunnable {
        action: format!("cannot start {instance}: its command is {what} image {image}"),
        message: message.clone(),
        hint: format!(
            "`command:` (or the image's entrypoint) names a program that image {image} does not \
             hold{}: fix `command:`, or rebuild the image with it",
            if found { "" } else { " as an executable file" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{not_runnable, port_taken};
    use turnout_runtime::RuntimeError;

    #[test]
    fn a_taken_host_port_is_named_with_what_to_do() {
        let yaml = "web:\n  image: x\n  ports: [\"1808:5000\", \"18080:5001\"]\n";
        let parsed = turnout_spec::parse("t.yaml", yaml, &|_| None).unwrap();
        let service = &parsed.template.services[0];
        let engine = |message: &str| RuntimeError::Engine {
            action: "cannot start container abc of web.1".into(),
            message: message.into(),
            hint: None,
        };
        let outside = port_taken(
            "web.1",
            service,
            engine(
                "driver failed programming external connectivity on endpoint web-1 (abc): \
                 Error starting userland proxy: listen tcp4 0.0.0.0:18080: bind: address \
                 already in use",
            ),
        );
        let text = format!("{outside} {}", outside.hint().unwrap_or_default());
        assert!(
            text.contains("cannot start web.1: host port 18080 is taken")
                && text.contains("a program outside turnout listens on host port 18080")
                && text.contains("ss -ltnp 'sport = :18080'"),
            "{text}"
        );
        let container = port_taken(
            "web.1",
            service,
            engine("Bind for 0.0.0.0:1808 failed: port is already allocated"),
        );
        let text = format!("{container} {}", container.hint().unwrap_or_default());
        assert!(
            text.contains("host port 1808 is taken")
                && text.contains("another container publishes host port 1808"),
            "{text}"
        );
        // Any other refusal is left as it is.
        let other = port_taken("web.1", service, engine("no such image"));
        assert_eq!(other.hint(), None);
    }

    #[test]
    fn a_command_missing_from_its_image_is_named_and_permanent() {
        let engine = |message: &str| RuntimeError::Engine {
            action: "cannot start container abc of web.1".into(),
            message: message.into(),
            hint: None,
        };
        // Docker 20.10's words for a command not on the image's PATH.
        let missing = not_runnable(
            "web.1",
            "app:1",
            engine(
                "OCI runtime create failed: container_linux.go:380: starting container process \
                 caused: exec: \"nosuch\": executable file not found in $PATH: unknown",
            ),
        );
        assert!(missing.is_permanent());
        let text = format!("{missing} {}", missing.hint().unwrap_or_default());
        assert!(
            text.contains("cannot start web.1: its command is not in image app:1")
                && text.contains("fix `command:`"),
            "{text}"
        );
        let denied = not_runnable(
            "web.1",
            "app:1",
            engine("starting container process caused: exec: \"/etc\": permission denied"),
        );
        assert!(denied.is_permanent() && denied.to_string().contains("not runnable in"));
        // Any other refusal is left as it is, and is retried.
        let other = not_runnable("web.1", "app:1", engine("permission denied on the socket"));
        assert!(!other.is_permanent());
    }
}
