//! Ports: which container ports a service declares, and free loopback host
//! ports for them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use turnout_spec::template::HealthTest;
use turnout_spec::{Command, ProbeCheck, Service};

use crate::error::RuntimeError;

/// Picks a free loopback port for each container port: binds
/// `127.0.0.1:0` once per port (all at the same time, so they differ),
/// reads the port the system chose and releases it.
///
/// Between the release and the instance's own bind another program could
/// take the port; with the system's ephemeral ports handed out in turn
/// that is rare, and the instance then fails its probes and is restarted
/// with new ports.
pub fn allocate_ports(container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError> {
    let wanted: BTreeSet<u16> = container_ports.iter().copied().collect();
    let mut held = Vec::with_capacity(wanted.len());
    let mut ports = BTreeMap::new();
    for container in wanted {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|source| RuntimeError::Ports { source })?;
        let host = listener
            .local_addr()
            .map_err(|source| RuntimeError::Ports { source })?
            .port();
        ports.insert(container, host);
        held.push(listener);
    }
    drop(held);
    Ok(ports)
}

/// Every container port the service declares, in order: routed ports
/// (routing labels), the probe's port, `ports:` targets, and `PORT_<N>`
/// referenced in its command or health check. Each gets a host port and a
/// `PORT_<N>` variable.
pub fn service_ports(service: &Service) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    ports.extend(service.settings.routes.iter().map(|r| r.container_port));
    match service.settings.probe.as_ref().map(|p| &p.check) {
        Some(ProbeCheck::Http {
            port: Some(port), ..
        })
        | Some(ProbeCheck::Tcp { port }) => {
            ports.insert(*port);
        }
        Some(ProbeCheck::Cmd(cmd)) => ports.extend(referenced_ports(cmd)),
        _ => {}
    }
    ports.extend(service.ports.iter().map(|p| p.target));
    match &service.command {
        Some(Command::Shell(s)) => ports.extend(referenced_ports(s)),
        Some(Command::Exec(args)) => ports.extend(args.iter().flat_map(|a| referenced_ports(a))),
        None => {}
    }
    match service.healthcheck.as_ref().and_then(|h| h.test.as_ref()) {
        Some(HealthTest::Shell(s)) => ports.extend(referenced_ports(s)),
        Some(HealthTest::Cmd(args)) => ports.extend(args.iter().flat_map(|a| referenced_ports(a))),
        None => {}
    }
    ports.into_iter().collect()
}

/// The container port that is also `PORT`: the service's first routed
/// port, else (a service that publishes a port but has no route) its first
/// `ports:` target.
pub fn primary_port(service: &Service) -> Option<u16> {
    service
        .settings
        .routes
        .first()
        .map(|r| r.container_port)
        .or_else(|| service.ports.first().map(|p| p.target))
}

/// The `<N>` of every `$PORT_<N>` or `${PORT_<N>...}` in `s`.
fn referenced_ports(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for (idx, _) in s.match_indices("PORT_") {
        let before = &s[..idx];
        if !(before.ends_with('$') || before.ends_with("${")) {
            continue;
        }
        let digits: String = s[idx + "PORT_".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let next = s[idx + "PORT_".len() + digits.len()..].chars().next();
        if next.is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
            // `$PORT_80X` is some other variable.
            continue;
        }
        if let Some(port) = digits.parse::<u16>().ok().filter(|p| *p > 0) {
            out.push(port);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_bindable_ports() {
        let ports = allocate_ports(&[5000, 80, 5000, 8080]).unwrap();
        assert_eq!(
            ports.keys().copied().collect::<Vec<_>>(),
            vec![80, 5000, 8080]
        );
        let hosts: BTreeSet<u16> = ports.values().copied().collect();
        assert_eq!(hosts.len(), 3);
        for host in hosts {
            assert_ne!(host, 0);
            TcpListener::bind(("127.0.0.1", host)).unwrap();
        }
    }

    #[test]
    fn finds_port_references() {
        assert_eq!(
            referenced_ports("a $PORT_5000 ${PORT_80:-1} $PORT ${PORT_X} $PORT_9x PORT_7 $PORT_0"),
            vec![5000, 80]
        );
    }

    fn service(yaml: &str) -> Service {
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        parsed.template.services.into_iter().next().unwrap()
    }

    #[test]
    fn service_ports_collects_every_declared_port() {
        let s = service(
            "services:\n  web:\n    command: serve --admin ${PORT_9000}\n    ports: [\"7000\"]\n    \
             labels:\n      aliyun.routing.port_5000: web\n      aliyun.probe.url: tcp://container:6000\n",
        );
        assert_eq!(service_ports(&s), vec![5000, 6000, 7000, 9000]);
        assert_eq!(primary_port(&s), Some(5000));
        let s = service(
            "services:\n  worker:\n    command: [run, \"$PORT_81\"]\n    ports: [\"7000\"]\n",
        );
        assert_eq!(service_ports(&s), vec![81, 7000]);
        assert_eq!(primary_port(&s), Some(7000));
        let s = service("services:\n  batch:\n    command: run\n");
        assert_eq!(service_ports(&s), Vec::<u16>::new());
        assert_eq!(primary_port(&s), None);
    }
}
