//! Host ports that containers publish (`ports:`), checked before anything
//! starts: two containers cannot publish one host port, and neither can a
//! container publish one where turnout's own router listens (DESIGN §6.1).
//! A blue-green (or canary, gray, A/B) release runs both versions side by
//! side, and a standard release starts each new instance before it stops
//! an old one, so a new version that publishes the running version's host
//! port could never start: it is refused up front, naming the port.
//!
//! Pure: the caller says which services are already there (every app's,
//! old and new generations of a release in progress alike), which ones
//! the deploy or release would start, and where the router listens.

use std::net::{IpAddr, SocketAddr};

use turnout_spec::Service;
use turnout_spec::template::{PortMapping, Protocol};

use crate::error::EngineError;
use crate::model::App;

/// One service (one generation of it) that publishes host ports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publisher<'a> {
    /// The app it belongs to.
    pub app: &'a str,
    /// Its spec.
    pub service: &'a Service,
}

/// A place where turnout itself listens, and what it is (`the router's
/// public listener`).
#[derive(Debug, Clone)]
pub struct Reserved {
    /// The address.
    pub addr: SocketAddr,
    /// What listens there, for the error message.
    pub what: String,
}

/// Every generation of `app`'s services that may run now: the services
/// in force and those of the templates it keeps (during a release, the one
/// it came from: a standard release's old generation still runs).
pub(crate) fn running(app: &App) -> Vec<Publisher<'_>> {
    let mut out: Vec<Publisher<'_>> = Vec::new();
    out.extend(app.services.values().map(|e| Publisher {
        app: &app.name,
        service: &e.spec,
    }));
    for template in app.templates.values() {
        for s in &template.services {
            if !out.iter().any(|p| p.service == s) {
                out.push(Publisher {
                    app: &app.name,
                    service: s,
                });
            }
        }
    }
    out
}

/// Whether two host addresses of a publish (or a listener) meet: the same
/// address, or either unspecified (`0.0.0.0`, `::`, or no `host_ip`: all of
/// the machine's addresses).
fn overlaps(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.is_unspecified() || b.is_unspecified() || a == b,
    }
}

/// The host address of a mapping; `None` for all of them. An address that
/// does not parse is compared as unspecified (the engine would refuse it
/// at start anyway).
fn host_ip(m: &PortMapping) -> Option<IpAddr> {
    m.host_ip
        .as_deref()
        .map(|ip| ip.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|ip| ip.parse().ok())
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The fixed host ports a service publishes.
fn fixed(service: &Service) -> impl Iterator<Item = (&PortMapping, u16)> {
    service
        .ports
        .iter()
        .filter_map(|m| m.published.map(|p| (m, p)))
}

/// Refuses the first clash of a host port published by one of `incoming`
/// (services of `app` the deploy or release would start) with another
/// publisher (`running`, or another of `incoming`), with itself (more than
/// one instance), or with a place where turnout listens.
pub(crate) fn check(
    app: &str,
    incoming: &[&Service],
    running: &[Publisher<'_>],
    reserved: &[Reserved],
) -> Result<(), EngineError> {
    for (i, service) in incoming.iter().enumerate() {
        for (mapping, port) in fixed(service) {
            let what = format!(
                "service {} publishes host port {port}/{} (ports: \"{mapping}\")",
                service.name,
                proto(mapping.protocol)
            );
            let scale = service.settings.scale;
            if scale > 1 {
                return Err(EngineError::invalid(
                    format!("{what} and has {scale} instances: each would publish it"),
                    "a host port is published by one container: give the port to one \
                     instance (scale 1), or drop the host port and reach the service \
                     through its turnout route, which balances over every instance",
                ));
            }
            for r in reserved {
                if mapping.protocol == Protocol::Tcp
                    && r.addr.port() == port
                    && overlaps(host_ip(mapping), Some(r.addr.ip()))
                {
                    return Err(EngineError::conflict(
                        format!("{what}, where {} listens ({})", r.what, r.addr),
                        "publish another host port, or start turnout with that listener \
                         on another port",
                    ));
                }
            }
            let others = running
                .iter()
                .copied()
                .filter(|p| !(p.app == app && p.service == *service))
                .chain(incoming[..i].iter().map(|s| Publisher { app, service: s }));
            for other in others {
                let Some((theirs, _)) = fixed(other.service).find(|(m, p)| {
                    *p == port
                        && m.protocol == mapping.protocol
                        && overlaps(host_ip(m), host_ip(mapping))
                }) else {
                    continue;
                };
                let whose = if other.app != app {
                    format!("service {} of app {}", other.service.name, other.app)
                } else if other.service.name == service.name {
                    format!("the running version of service {}", service.name)
                } else {
                    format!("service {}", other.service.name)
                };
                let message = format!("{what}, which {whose} publishes too (\"{theirs}\")");
                let hint = if other.app != app {
                    "a host port is published by one container: publish another host port, \
                     or drop `ports:` and reach the service through its turnout route"
                        .to_string()
                } else {
                    "two containers cannot publish one host port, and a release runs the new \
                     version beside the old one (blue-green, canary, gray, A/B test side by \
                     side; standard starts each new instance before it stops an old one): \
                     publish another host port in the new version, or drop `ports:` and reach \
                     the service through its turnout route"
                        .to_string()
                };
                return Err(EngineError::conflict(message, hint));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Publisher, Reserved, check};
    use turnout_spec::Service;

    fn service(yaml: &str) -> Service {
        let parsed = turnout_spec::parse("t.yaml", yaml, &|_| None).expect("parses");
        parsed.template.services.into_iter().next().unwrap()
    }

    fn web(name: &str, ports: &str) -> Service {
        service(&format!(
            "{name}:\n  image: x\n  ports: [{ports}]\n  labels:\n    aliyun.routing.port_5000: web\n"
        ))
    }

    fn message(r: Result<(), crate::EngineError>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn a_new_version_on_the_running_versions_host_port_is_refused() {
        let v1 = web("web-v1", "\"18080:5000\"");
        let v2 = web("web-v2", "\"18080:5000\"");
        let running = [Publisher {
            app: "a",
            service: &v1,
        }];
        let m = message(check("a", &[&v2], &running, &[]));
        assert!(
            m.contains("service web-v2 publishes host port 18080/tcp (ports: \"18080:5000\")")
                && m.contains("service web-v1 publishes too"),
            "{m}"
        );
        // Another host port, another protocol or another host address is fine.
        for ports in [
            "\"18081:5000\"",
            "\"18080:5000/udp\"",
            "\"5000\"",
            "\"127.0.0.2:18080:5000\"",
        ] {
            let v1 = web("web-v1", "\"127.0.0.1:18080:5000\"");
            let v2 = web("web-v2", ports);
            let running = [Publisher {
                app: "a",
                service: &v1,
            }];
            assert!(check("a", &[&v2], &running, &[]).is_ok(), "{ports}");
        }
        // No host address is every address: it meets 127.0.0.1.
        let v1 = web("web-v1", "\"127.0.0.1:18080:5000\"");
        let running = [Publisher {
            app: "a",
            service: &v1,
        }];
        assert!(check("a", &[&v2], &running, &[]).is_err());
    }

    #[test]
    fn the_same_service_in_place_another_app_and_two_incoming_clash_too() {
        let old = web("web", "\"18080:5000\"");
        let new = service(
            "web:\n  image: y\n  ports: [\"18080:5000\"]\n  labels:\n    aliyun.routing.port_5000: web\n",
        );
        let running = [Publisher {
            app: "a",
            service: &old,
        }];
        let m = message(check("a", &[&new], &running, &[]));
        assert!(m.contains("the running version of service web"), "{m}");

        let theirs = web("api", "\"18080:5000\"");
        let running = [Publisher {
            app: "b",
            service: &theirs,
        }];
        let m = message(check("a", &[&new], &running, &[]));
        assert!(m.contains("service api of app b publishes too"), "{m}");

        let other = web("other", "\"18080:6000\"");
        let m = message(check("a", &[&new, &other], &[], &[]));
        assert!(
            m.contains("service other publishes host port 18080") && m.contains("service web"),
            "{m}"
        );
    }

    #[test]
    fn more_than_one_instance_or_a_router_port_is_refused() {
        let many = service(
            "web:\n  image: x\n  ports: [\"18080:5000\"]\n  labels:\n    aliyun.scale: 2\n",
        );
        let m = message(check("a", &[&many], &[], &[]));
        assert!(m.contains("has 2 instances: each would publish it"), "{m}");
        let one = web("web", "\"18080:5000\"");
        let reserved = [Reserved {
            addr: "127.0.0.1:18080".parse().unwrap(),
            what: "turnout's public listener".into(),
        }];
        let m = message(check("a", &[&one], &[], &reserved));
        assert!(
            m.contains("where turnout's public listener listens (127.0.0.1:18080)"),
            "{m}"
        );
        // A UDP publish does not meet the router's TCP listener.
        let udp = web("web", "\"18080:5000/udp\"");
        assert!(check("a", &[&udp], &[], &reserved).is_ok());
    }
}
