//! Readers of a route file's single values, each giving the canonical
//! form or the problem: hosts and paths, the route id and whether it is
//! internal, weights, endpoints (`ip:port`, with a fast path for plain
//! IPv4), service and app names, caller tokens.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::route_file::{RouteSpec, WeightValue};
use crate::weight::Weight;

/// The hosts of a route as written, from `host` or `hosts`.
pub(super) fn route_hosts(route: &RouteSpec) -> Result<&[String], &'static str> {
    match (&route.host, &route.hosts) {
        (Some(_), Some(_)) => Err("give either host or hosts, not both"),
        (Some(host), None) => Ok(std::slice::from_ref(host)),
        (None, Some(hosts)) if !hosts.is_empty() => Ok(hosts),
        _ => Err("a route needs host or hosts"),
    }
}

/// The canonical spelling of a host as written in a route file; borrowed
/// when it is written that way.
pub(super) fn canonical_host(host: &str) -> Result<Cow<'_, str>, String> {
    // Nearly every host is already canonical: one pass says so.
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if plain_host(trimmed) {
        return Ok(Cow::Borrowed(trimmed));
    }
    let lower = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    let trimmed = match lower {
        Cow::Borrowed(host) => Cow::Borrowed(host.strip_suffix('.').unwrap_or(host)),
        Cow::Owned(mut host) => {
            if host.ends_with('.') {
                host.pop();
            }
            Cow::Owned(host)
        }
    };
    if trimmed.is_empty() {
        return Err("host must not be empty".to_owned());
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err(format!(
            "host {host:?} must be a bare host name; put a context path in path:"
        ));
    }
    if trimmed.contains(':') {
        return Err(format!(
            "host {host:?} must not carry a port; ports are stripped when matching"
        ));
    }
    let valid = trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "host {host:?} is not a valid host name (letters, digits, '-', '_' in dot-separated labels)"
        ));
    }
    Ok(trimmed)
}

/// Whether `host` is a valid canonical host: lowercase dot-separated labels
/// of 1 to 63 letters, digits, '-' and '_', 253 bytes at most.
pub(super) fn plain_host(host: &str) -> bool {
    let mut label = 0;
    for &b in host.as_bytes() {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            label += 1;
            if label > 63 {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0 && host.len() <= 253
}

/// The canonical context path: `/` when absent, no trailing slash otherwise.
pub(super) fn canonical_path(path: Option<&str>) -> Result<&str, String> {
    let Some(path) = path else {
        return Ok("/");
    };
    if !path.starts_with('/') {
        return Err(format!("context path {path:?} must start with /"));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "context path {path:?} must hold no spaces, '?' or '#'"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed })
}

/// The route id: the explicit one, else the first host plus the path.
pub(super) fn route_id<'a>(
    route: &'a RouteSpec,
    hosts: &[Cow<'a, str>],
    path: &str,
) -> Cow<'a, str> {
    if let Some(id) = &route.id {
        return Cow::Borrowed(id);
    }
    match hosts.first() {
        Some(host) if path == "/" => host.clone(),
        Some(host) => Cow::Owned(format!("{host}{path}")),
        None => Cow::Borrowed(""),
    }
}

/// Whether the route is internal: explicit, else implied by `.local` hosts.
pub(super) fn route_internal(route: &RouteSpec, hosts: &[Cow<'_, str>]) -> Result<bool, String> {
    let local = hosts.iter().filter(|h| h.ends_with(".local")).count();
    match route.internal {
        Some(true) => Ok(true),
        Some(false) if local > 0 => Err(
            "hosts ending in .local are internal; remove internal: false or rename the host"
                .to_owned(),
        ),
        Some(false) => Ok(false),
        None if local == 0 => Ok(false),
        None if local == hosts.len() => Ok(true),
        None => Err(
            "the route mixes .local (internal) and public hosts; split it in two routes".to_owned(),
        ),
    }
}

/// The weight as a [`Weight`], or why it is not one.
pub(super) fn weight_of(value: Option<&WeightValue>) -> Result<Weight, String> {
    let Some(value) = value else {
        return Ok(Weight::default());
    };
    let bad = |what: &str| format!("weight must be an integer from 0 to 100, got {value} ({what})");
    match value {
        WeightValue::Integer(v) if *v < 0 => Err(bad("negative")),
        WeightValue::Integer(v) => u8::try_from(*v)
            .ok()
            .and_then(Weight::new)
            .ok_or_else(|| bad("above 100")),
        WeightValue::Float(v) if v.fract() == 0.0 && (0.0..=100.0).contains(v) => {
            Err(bad("write it without a fraction"))
        }
        WeightValue::Float(_) => Err(bad("not an integer")),
        WeightValue::Text(_) => Err(bad("not a number")),
    }
}

/// An endpoint address, or why it cannot be reached; and whether the text
/// is exactly how the address displays (then it is its own id).
pub(super) fn read_endpoint(text: &str) -> Result<(SocketAddr, bool), String> {
    let (addr, canonical) = match plain_v4(text) {
        Some(addr) => (SocketAddr::V4(addr), true),
        None => (
            text.parse().map_err(|_| {
                format!("endpoint {text:?} must be ip:port, such as 127.0.0.1:19001 or [::1]:19001")
            })?,
            false,
        ),
    };
    if addr.port() == 0 {
        return Err(format!("endpoint {text:?} is unreachable: port 0"));
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == Ipv4Addr::BROADCAST {
        return Err(format!(
            "endpoint {text:?} is unreachable: {ip} is not a unicast address"
        ));
    }
    Ok((addr, canonical))
}

/// `a.b.c.d:port` written exactly as [`SocketAddrV4`] displays it
/// (decimal, no leading zeros, nothing around it): nearly every endpoint.
/// `None` for anything else, which std's parser then reads; what this
/// accepts, std's parser reads to the same address.
pub(super) fn plain_v4(text: &str) -> Option<SocketAddrV4> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut octets = [0u8; 4];
    for (n, octet) in octets.iter_mut().enumerate() {
        *octet = u8::try_from(plain_decimal(bytes, &mut at, 3)?).ok()?;
        let separator = if n < 3 { b'.' } else { b':' };
        if bytes.get(at) != Some(&separator) {
            return None;
        }
        at += 1;
    }
    let port = u16::try_from(plain_decimal(bytes, &mut at, 5)?).ok()?;
    (at == bytes.len()).then(|| SocketAddrV4::new(Ipv4Addr::from(octets), port))
}

/// A decimal number of 1 to `max` digits at `*at`, without leading zeros.
pub(super) fn plain_decimal(bytes: &[u8], at: &mut usize, max: usize) -> Option<u32> {
    let start = *at;
    let mut value = 0u32;
    while let Some(digit) = bytes.get(*at).filter(|b| b.is_ascii_digit()) {
        if *at - start == max {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
        *at += 1;
    }
    let len = *at - start;
    (len == 1 || (len > 1 && bytes[start] != b'0')).then_some(value)
}

/// A service name as DESIGN §7 spells it: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(crate) fn check_service_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a service name (letters, digits, '_', '.', '-', starting with a letter or digit)"
        ))
    }
}

/// An app name: a service name without '/', which separates the app from
/// the service in a caller token.
pub(super) fn check_app_name(name: &str) -> Result<(), String> {
    check_service_name(name).map_err(|_| {
        format!(
            "{name:?} is not an app name (letters, digits, '_', '.', '-', starting with a letter or digit)"
        )
    })
}

/// The caller a `caller_tokens` value names: `service`, or `app/service`
/// (a compose service name cannot hold '/', so there is no doubt where
/// the app ends).
pub(crate) fn split_caller(value: &str) -> Result<(Option<&str>, &str), String> {
    let Some((app, service)) = value.split_once('/') else {
        check_service_name(value)?;
        return Ok((None, value));
    };
    if service.contains('/') {
        return Err(format!(
            "{value:?} holds more than one '/'; a caller is service or app/service"
        ));
    }
    if app.is_empty() || service.is_empty() {
        return Err(format!(
            "{value:?} has an empty {}; a caller is service or app/service",
            if app.is_empty() { "app" } else { "service" }
        ));
    }
    check_app_name(app)?;
    check_service_name(service)?;
    Ok((Some(app), service))
}

pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}
