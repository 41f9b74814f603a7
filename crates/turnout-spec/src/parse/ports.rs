//! `ports:` in the short (`"8080:80/udp"`, ranges) and the long (map)
//! syntax.

use crate::diagnostic::{Diagnostic, FieldPath, Sink, quoted};
use crate::template::{PortMapping, Protocol};
use crate::yaml::{Map, Node, Value};

pub(super) fn ports(node: &Node, path: &FieldPath, sink: &mut Sink) -> Vec<PortMapping> {
    let Value::Seq(items) = &node.value else {
        sink.push(node.unexpected(
            path,
            "ports must be a list",
            "a list such as `- \"8080:80\"`",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let parsed = match &item.value {
            Value::Map(_) => long_port(item, &p, sink),
            _ => match item.scalar_string() {
                Some(s) => short_port(&s)
                    .map_err(|e| {
                        sink.push(
                        Diagnostic::error(item.pos, &p, e)
                            .found(quoted(&s))
                            .expected("`[host_ip:][host_port:]container_port[/tcp|/udp]`")
                            .hint("quote port mappings: YAML reads `80:80` as a number in base 60"),
                    );
                    })
                    .ok(),
                None => {
                    sink.push(item.unexpected(
                        &p,
                        "invalid port entry",
                        "a string like \"8080:80\" or a map with target",
                    ));
                    None
                }
            },
        };
        out.extend(parsed.into_iter().flatten());
    }
    out
}

pub(super) fn port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port number {s:?}")),
    }
}

pub(super) fn port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a)?, port_number(b)?);
            if a > b {
                return Err(format!("port range {s:?} runs backwards"));
            }
            Ok((a, b))
        }
        None => {
            let p = port_number(s)?;
            Ok((p, p))
        }
    }
}

/// Parses the compose short syntax; a range yields one mapping per port.
pub(super) fn short_port(s: &str) -> Result<Vec<PortMapping>, String> {
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Protocol::Tcp),
        Some((spec, "udp")) => (spec, Protocol::Udp),
        Some((_, other)) => return Err(format!("unsupported protocol {other:?}")),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (host_ip, published, target) = match parts.as_slice() {
        [target] => (None, None, *target),
        [target, published] => (None, Some(*published), *target),
        [target, published, ip] => (
            Some(ip.trim_matches(['[', ']']).to_string()),
            Some(*published),
            *target,
        ),
        _ => return Err("invalid port mapping".into()),
    };
    let target = port_range(target)?;
    let published = match published {
        Some("") | None => None,
        Some(p) => Some(port_range(p)?),
    };
    if let Some(pub_range) = published
        && pub_range.1 - pub_range.0 != target.1 - target.0
    {
        return Err("host and container port ranges differ in length".into());
    }
    Ok((target.0..=target.1)
        .enumerate()
        .map(|(i, t)| PortMapping {
            host_ip: host_ip.clone(),
            published: published.map(|(start, _)| start + i as u16),
            target: t,
            protocol,
        })
        .collect())
}

pub(super) fn long_port(
    node: &Node,
    path: &FieldPath,
    sink: &mut Sink,
) -> Option<Vec<PortMapping>> {
    let map = Map::read(node, path, "a port", sink)?;
    let mut target = None;
    let mut published = None;
    let mut host_ip = None;
    let mut protocol = Protocol::Tcp;
    for (k, key_node, v) in &map.entries {
        let p = path.key(k);
        let text = v.scalar_string().unwrap_or_default();
        match k.as_ref() {
            "target" => match port_number(&text) {
                Ok(t) => target = Some(t),
                Err(e) => {
                    sink.push(Diagnostic::error(v.pos, &p, e).expected("a port from 1 to 65535"))
                }
            },
            "published" => match port_number(&text) {
                Ok(t) => published = Some(t),
                Err(e) => {
                    sink.push(Diagnostic::error(v.pos, &p, e).expected("a port from 1 to 65535"))
                }
            },
            "host_ip" => match text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => host_ip = Some(ip.to_string()),
                Err(_) => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid host_ip")
                        .found(quoted(&text))
                        .expected("an IP address such as 127.0.0.1 or ::1"),
                ),
            },
            "protocol" => match text.as_str() {
                "tcp" => protocol = Protocol::Tcp,
                "udp" => protocol = Protocol::Udp,
                _ => sink.push(
                    Diagnostic::error(v.pos, &p, "invalid protocol")
                        .found(quoted(&text))
                        .expected("tcp or udp"),
                ),
            },
            "mode" | "name" | "app_protocol" => sink.push(Diagnostic::warning(
                key_node.pos,
                &p,
                format!("turnout ignores ports.{k}"),
            )),
            _ => sink.push(
                Diagnostic::error(key_node.pos, &p, format!("unknown port field {k:?}"))
                    .expected("target, published, host_ip, protocol or mode"),
            ),
        }
    }
    let Some(target) = target else {
        if map.entries.iter().any(|(k, _, _)| k == "target") {
            return None;
        }
        sink.push(
            Diagnostic::error(node.pos, path, "port has no target")
                .hint("write the container port as `target: 80`"),
        );
        return None;
    };
    Some(vec![PortMapping {
        host_ip,
        published,
        target,
        protocol,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let p = short_port("8080:80").unwrap();
        assert_eq!((p[0].published, p[0].target), (Some(8080), 80));
        let p = short_port("127.0.0.1::5000/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].published, None);
        assert_eq!(p[0].protocol, Protocol::Udp);
        let p = short_port("9000-9002:8000-8002").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].published, p[2].target), (Some(9002), 8002));
        assert!(short_port("0").is_err());
        assert!(short_port("80/sctp").is_err());
        assert!(short_port("9000-9001:80").is_err());
    }
}
