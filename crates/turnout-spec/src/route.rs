//! Route declarations of a service: `aliyun.routing.port_<N>: <value>` and
//! its native twin `turnout.route.<N>: <value>`.
//!
//! A value is one or more entries separated by `;`, each
//! `[http://]host-or-prefix[/context/path]`. The seed's `host:context`
//! form is accepted in `aliyun.*` labels only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest host name a route may carry.
pub const MAX_HOST_LEN: usize = 128;

/// The default route domain: a bare prefix `web` becomes `web.localhost`.
pub const DEFAULT_DOMAIN: &str = "localhost";

/// The host part of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteHost {
    /// A full host name (it contains a dot): `servicea.local`, `wp.sample.com`.
    Full(String),
    /// A bare prefix, completed with the server's route domain.
    Prefix(String),
}

/// One route of a service: a host and an optional context path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteSpec {
    /// The host, lowercase.
    pub host: RouteHost,
    /// The context path (`/context`), without a trailing slash; `None` for `/`.
    pub path: Option<String>,
}

impl RouteSpec {
    /// The host name once the route domain is applied.
    pub fn host_name(&self, domain: &str) -> String {
        match &self.host {
            RouteHost::Full(host) => host.clone(),
            RouteHost::Prefix(prefix) => format!("{prefix}.{domain}"),
        }
    }

    /// The canonical route id: host plus context path (`wp.sample.com/context`).
    pub fn id(&self, domain: &str) -> String {
        let mut id = self.host_name(domain);
        if let Some(path) = &self.path {
            id.push_str(path);
        }
        id
    }

    /// Whether the route is internal (its host ends in `.local`): served to
    /// other services only, never on the public listener.
    pub fn is_internal(&self, domain: &str) -> bool {
        self.host_name(domain).ends_with(".local")
    }
}

impl fmt::Display for RouteSpec {
    /// The route in the canonical label syntax (`host/path`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            RouteHost::Full(h) | RouteHost::Prefix(h) => f.write_str(h)?,
        }
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        Ok(())
    }
}

/// The routes one container port of a service is exposed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBinding {
    /// The container port (the `<N>` of the label key).
    pub container_port: u16,
    /// The routes, in the order written.
    pub routes: Vec<RouteSpec>,
}

/// Why a route value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteValueError {
    pub(crate) message: String,
    pub(crate) found: String,
    pub(crate) expected: &'static str,
    pub(crate) hint: String,
}

const EXPECTED: &str = "`[http://]host-or-prefix[/context]` entries separated by `;`";

/// Parses a route label value. `legacy` allows the seed's `host:context`
/// spelling (for `aliyun.*` labels); the native label refuses it.
pub(crate) fn parse_value(value: &str, legacy: bool) -> Result<Vec<RouteSpec>, RouteValueError> {
    let mut routes: Vec<RouteSpec> = Vec::new();
    let entries: Vec<&str> = value.split(';').map(str::trim).collect();
    let last = entries.len() - 1;
    for (i, entry) in entries.iter().enumerate() {
        if entry.is_empty() {
            // A trailing `;` is harmless; an empty entry elsewhere is a typo.
            if i == last && i > 0 {
                continue;
            }
            return Err(RouteValueError {
                message: "empty route entry".into(),
                found: format!("{value:?}"),
                expected: EXPECTED,
                hint: "write at least one host or prefix, e.g. `web` or `web.example.com/app`"
                    .into(),
            });
        }
        let route = parse_entry(entry, legacy)?;
        if routes.contains(&route) {
            return Err(RouteValueError {
                message: format!("route {route} is listed twice"),
                found: format!("{value:?}"),
                expected: EXPECTED,
                hint: "remove the repeated entry".into(),
            });
        }
        routes.push(route);
    }
    Ok(routes)
}

fn parse_entry(entry: &str, legacy: bool) -> Result<RouteSpec, RouteValueError> {
    let err = |message: String, hint: String| RouteValueError {
        message,
        found: format!("{entry:?}"),
        expected: EXPECTED,
        hint,
    };
    let rest = match entry.find("://") {
        Some(idx) => {
            let scheme = &entry[..idx];
            if !scheme.eq_ignore_ascii_case("http") {
                return Err(err(
                    format!("unsupported scheme {scheme:?} in route"),
                    "routes are plain HTTP virtual hosts; write `http://` or no scheme at all \
                     (TLS is terminated in front of the router)"
                        .into(),
                ));
            }
            &entry[idx + 3..]
        }
        None => entry,
    };
    let host_end = rest.find(['/', ':']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    let after = &rest[host_end..];
    let path = if let Some(ctx) = after.strip_prefix(':') {
        // Digits after the colon are a port, also when a path follows them
        // (`http://host:80/x`), as in any URL.
        let port = ctx.split('/').next().unwrap_or_default();
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                format!("port {port} in a route value"),
                "a route carries no port: the container port is the <N> of the label key \
                 (`aliyun.routing.port_<N>`); remove the port"
                    .into(),
            ));
        }
        if !legacy {
            return Err(err(
                "`host:context` is the seed's spelling and is not accepted in turnout.* labels"
                    .into(),
                format!(
                    "write the context path after a slash: `{host}/{}`",
                    ctx.trim_start_matches('/')
                ),
            ));
        }
        if ctx.is_empty() {
            return Err(err(
                "empty context path after `:`".into(),
                "write `host:/context` or drop the colon".into(),
            ));
        }
        if ctx.starts_with('/') {
            ctx.to_string()
        } else {
            format!("/{ctx}")
        }
    } else {
        after.to_string()
    };
    let host = check_host(host).map_err(|(message, hint)| err(message, hint))?;
    let path = check_path(&path).map_err(|(message, hint)| err(message, hint))?;
    let host = if host.contains('.') {
        RouteHost::Full(host)
    } else {
        RouteHost::Prefix(host)
    };
    Ok(RouteSpec { host, path })
}

/// The one spelling of a route host in templates: lowercase, without a
/// trailing dot. The route id, the route file and the engine's
/// `external_links` checks all use it (a request's host is spelled the
/// same way by turnout-routing's `normalize_host`).
pub fn canonical_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn check_host(host: &str) -> Result<String, (String, String)> {
    if host.is_empty() {
        return Err((
            "route has no host".into(),
            "start the entry with a host name or a prefix, e.g. `web`".into(),
        ));
    }
    if host.len() > MAX_HOST_LEN {
        return Err((
            format!("route host is {} characters long", host.len()),
            format!("a host has at most {MAX_HOST_LEN} characters; use a shorter name"),
        ));
    }
    let host = canonical_host(host);
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err((
                format!("invalid host name {host:?}"),
                "a host is dot-separated names of letters, digits and `-` (not at either end of \
                 a name), e.g. `servicea.local`"
                    .into(),
            ));
        }
    }
    Ok(host)
}

fn check_path(path: &str) -> Result<Option<String>, (String, String)> {
    if path.is_empty() || path == "/" {
        return Ok(None);
    }
    let ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~' | b'%'));
    if !ok || path.contains("//") {
        return Err((
            format!("invalid context path {path:?}"),
            "a context path is `/name[/name...]` of letters, digits and `-_.~`, without query \
             or fragment"
                .into(),
        ));
    }
    Ok(Some(path.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(value: &str, legacy: bool) -> Vec<String> {
        parse_value(value, legacy)
            .unwrap()
            .iter()
            .map(|r| r.id(DEFAULT_DOMAIN))
            .collect()
    }

    #[test]
    fn prefixes_hosts_and_paths() {
        assert_eq!(ids("serviceb", true), ["serviceb.localhost"]);
        assert_eq!(ids("servicea.local", true), ["servicea.local"]);
        assert_eq!(
            ids("http://WP.Sample.com/context/; web", true),
            ["wp.sample.com/context", "web.localhost"]
        );
        assert_eq!(ids("wp.sample.com:/ctx", true), ["wp.sample.com/ctx"]);
        assert_eq!(ids("wp.sample.com:ctx", true), ["wp.sample.com/ctx"]);
        assert_eq!(ids("a.b/", true), ["a.b"]);
    }

    #[test]
    fn internal_routes_end_in_local() {
        let r = &parse_value("servicea.local", true).unwrap()[0];
        assert!(r.is_internal(DEFAULT_DOMAIN));
        let r = &parse_value("servicea", true).unwrap()[0];
        assert!(!r.is_internal(DEFAULT_DOMAIN));
    }

    #[test]
    fn ports_schemes_and_bad_hosts_are_refused() {
        let e = parse_value("web:8080", true).unwrap_err();
        assert!(e.message.contains("port 8080"), "{e:?}");
        let e = parse_value("https://web.example.com", true).unwrap_err();
        assert!(e.message.contains("scheme"), "{e:?}");
        let e = parse_value("web_1", true).unwrap_err();
        assert!(e.message.contains("invalid host"), "{e:?}");
        let long = "a".repeat(60) + "." + &"b".repeat(60) + ".example";
        let e = parse_value(&long, true).unwrap_err();
        assert!(e.message.contains("characters long"), "{e:?}");
        let e = parse_value("a;;b", true).unwrap_err();
        assert!(e.message.contains("empty"), "{e:?}");
        let e = parse_value("a.b/x?y=1", true).unwrap_err();
        assert!(e.message.contains("context path"), "{e:?}");
    }

    #[test]
    fn native_labels_refuse_the_colon_form() {
        let e = parse_value("wp.sample.com:ctx", false).unwrap_err();
        assert!(e.hint.contains("wp.sample.com/ctx"), "{e:?}");
        assert_eq!(ids("wp.sample.com/ctx", false), ["wp.sample.com/ctx"]);
    }
}
