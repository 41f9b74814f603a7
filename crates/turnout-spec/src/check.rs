//! Checks across the services of one template: dependencies, shared
//! routes, stickiness agreement and calls to internal routes.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::{Diagnostic, Sink};
use crate::labels::Sticky;
use crate::parse::ServiceSource;
use crate::route::DEFAULT_DOMAIN;
use crate::template::Template;

pub(crate) fn check(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    dependencies(template, sources, sink);
    links(template, sources, sink);
    shared_routes(template, sources, sink);
    internal_calls(template, sources, sink);
    declared_resources(template, sources, sink);
}

/// Named volumes and networks a service uses must be declared at top
/// level, as compose requires (`default` is every app's own network).
fn declared_resources(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    // The seed layout (compose v1) has no top-level `volumes:` or
    // `networks:` to declare them in: there a name is a volume as it is.
    if template.format == crate::template::Format::Seed {
        return;
    }
    let volumes: Vec<&str> = template.volumes.keys().map(String::as_str).collect();
    let networks: Vec<&str> = template.networks.keys().map(String::as_str).collect();
    for source in sources {
        for (name, pos, path) in &source.volumes {
            if volumes.contains(&name.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(*pos, path, format!("volume {name:?} is not declared"))
                .expected("a volume listed under the top-level `volumes:`");
            d = match crate::diagnostic::did_you_mean(name, &volumes) {
                Some(m) => d.hint(format!("did you mean {m:?}? else declare it: `volumes:\n  {name}: {{}}`")),
                None => d.hint(format!(
                    "declare it at the top level (`volumes:\n  {name}: {{}}`), or write a host path as `./{name}` for a bind mount"
                )),
            };
            sink.push(d);
        }
        for (name, pos, path) in &source.networks {
            if name == "default" || networks.contains(&name.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(*pos, path, format!("network {name:?} is not declared"))
                .expected("a network listed under the top-level `networks:`");
            d = match crate::diagnostic::did_you_mean(name, &networks) {
                Some(m) => d.hint(format!(
                    "did you mean {m:?}? else declare it: `networks:\n  {name}: {{}}`"
                )),
                None => d.hint(format!(
                    "declare it at the top level: `networks:\n  {name}: {{}}`"
                )),
            };
            sink.push(d);
        }
    }
}

fn dependencies(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    let names: Vec<&str> = template.services.iter().map(|s| s.name.as_str()).collect();
    for (service, source) in template.services.iter().zip(sources) {
        for (dep, pos, path) in &source.depends {
            if dep == &service.name {
                sink.push(
                    Diagnostic::error(*pos, path, format!("{} depends on itself", service.name))
                        .hint("remove the service from its own dependencies"),
                );
            } else if !names.contains(&dep.as_str()) {
                let mut d =
                    Diagnostic::error(*pos, path, format!("depends on unknown service {dep:?}"))
                        .expected(format!("one of {}", names.join(", ")));
                if let Some(m) = crate::diagnostic::did_you_mean(dep, &names) {
                    d = d.hint(format!("did you mean {m:?}?"));
                }
                sink.push(d);
            }
        }
    }
    // Cycles: depth-first search over the known edges; each cycle is
    // reported once, at the service where the search closed it.
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = template
        .services
        .iter()
        .map(|s| {
            s.settings
                .depends
                .iter()
                .filter(|d| *d != &s.name)
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; names.len()];
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..names.len() {
        visit(start, &edges, &mut state, &mut stack, &names, sources, sink);
    }
}

fn visit(
    node: usize,
    edges: &[Vec<usize>],
    state: &mut [u8],
    stack: &mut Vec<usize>,
    names: &[&str],
    sources: &[ServiceSource],
    sink: &mut Sink,
) {
    if state[node] != 0 {
        return;
    }
    state[node] = 1;
    stack.push(node);
    for &next in &edges[node] {
        if state[next] == 1 {
            let from = stack.iter().position(|&n| n == next).unwrap_or(0);
            let mut cycle: Vec<&str> = stack[from..].iter().map(|&i| names[i]).collect();
            cycle.push(names[next]);
            let (_, pos, path) = sources[node]
                .depends
                .iter()
                .find(|(d, _, _)| d == names[next])
                .cloned()
                .unwrap_or_else(|| {
                    (
                        String::new(),
                        sources[node].name_pos,
                        sources[node].path.clone(),
                    )
                });
            sink.push(
                Diagnostic::error(
                    pos,
                    &path,
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                )
                .hint("services cannot start before each other; remove one of these dependencies"),
            );
        } else {
            visit(next, edges, state, stack, names, sources, sink);
        }
    }
    stack.pop();
    state[node] = 2;
}

fn links(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    let names: Vec<&str> = template.services.iter().map(|s| s.name.as_str()).collect();
    for source in sources {
        for (target, pos, path) in &source.links {
            if !names.contains(&target.as_str()) {
                sink.push(
                    Diagnostic::error(*pos, path, format!("link to unknown service {target:?}"))
                        .hint("links name services of this template; for a route of another app use external_links"),
                );
            }
        }
    }
}

fn shared_routes(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    // route id -> services on it, in file order.
    let mut by_route: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, service) in template.services.iter().enumerate() {
        for binding in &service.settings.routes {
            for route in &binding.routes {
                let users = by_route.entry(route.id(DEFAULT_DOMAIN)).or_default();
                if !users.contains(&i) {
                    users.push(i);
                }
            }
        }
    }
    for (route, users) in &by_route {
        if users.len() < 2 {
            continue;
        }
        let services: Vec<_> = users.iter().map(|&i| &template.services[i]).collect();
        let label_pos = |i: usize| {
            let source = &sources[i];
            let key = template.services[i]
                .labels
                .keys()
                .find(|k| k.starts_with("aliyun.routing.port_") || is_native_route(k))
                .cloned()
                .unwrap_or_default();
            let pos = source.label_pos(&key).unwrap_or(source.name_pos);
            (pos, source.path.key("labels").key(&key))
        };
        if !services.iter().any(|s| s.settings.coexist) {
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            let (pos, path) = label_pos(users[1]);
            sink.push(
                Diagnostic::error(pos, &path, format!("route {route} is used by {} without coexist", names.join(" and ")))
                    .hint("two services of one template share a route only on purpose: add `aliyun.routing.coexist: true` (or turnout.route.coexist) to one of them, or give them different routes"),
            );
        }
        let stickies: Vec<(usize, Sticky)> = users
            .iter()
            .filter_map(|&i| template.services[i].settings.sticky.map(|s| (i, s)))
            .collect();
        if let Some((first, first_sticky)) = stickies.first()
            && let Some((other, other_sticky)) = stickies.iter().find(|(_, s)| s != first_sticky)
        {
            let (pos, path) = label_pos(*other);
            sink.push(
                Diagnostic::error(pos, &path, format!(
                    "services on route {route} disagree on stickiness: {} is {first_sticky}, {} is {other_sticky}",
                    template.services[*first].name, template.services[*other].name
                ))
                .hint("give every service of a route the same session_sticky / turnout.route.sticky"),
            );
        }
    }
}

fn is_native_route(key: &str) -> bool {
    key.strip_prefix("turnout.route.")
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Warns when a service refers to another service's internal (`.local`)
/// route without listing it in `external_links`, which the router will
/// refuse at run time.
fn internal_calls(template: &Template, sources: &[ServiceSource], sink: &mut Sink) {
    let mut internal: Vec<(String, &str)> = Vec::new();
    for service in &template.services {
        for binding in &service.settings.routes {
            for route in &binding.routes {
                if route.is_internal(DEFAULT_DOMAIN) {
                    internal.push((route.host_name(DEFAULT_DOMAIN), service.name.as_str()));
                }
            }
        }
    }
    if internal.is_empty() {
        return;
    }
    for (service, source) in template.services.iter().zip(sources) {
        for (host, owner) in &internal {
            if *owner == service.name {
                continue;
            }
            let listed = service
                .external_links
                .iter()
                .any(|l| l.split(':').any(|part| part.eq_ignore_ascii_case(host)));
            if listed {
                continue;
            }
            if let Some((_, pos, path)) = source
                .strings
                .iter()
                .find(|(s, _, _)| mentions_host(s, host))
            {
                sink.push(
                    Diagnostic::warning(*pos, path, format!("{} calls the internal route {host} without listing it in external_links", service.name))
                        .hint(format!("add `external_links: [\"{host}\"]` to {}; the router refuses callers that do not list the route", service.name)),
                );
            }
        }
    }
}

/// Whether `text` names `host` as a whole host (not as part of a longer one).
fn mentions_host(text: &str, host: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(idx) = lower[from..].find(host) {
        let start = from + idx;
        let end = start + host.len();
        let before_ok = start == 0 || !is_host_char(lower.as_bytes()[start - 1]);
        let after_ok = end == lower.len() || !is_host_char(lower.as_bytes()[end]);
        if before_ok && after_ok {
            return true;
        }
        from = end;
    }
    false
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

#[cfg(test)]
mod tests {
    use super::mentions_host;

    #[test]
    fn host_mentions_are_whole_words() {
        assert!(mentions_host("http://servicea.local", "servicea.local"));
        assert!(mentions_host(
            "http://ServiceA.local:80/x",
            "servicea.local"
        ));
        assert!(!mentions_host("http://xservicea.local", "servicea.local"));
        assert!(!mentions_host("http://servicea.locals", "servicea.local"));
    }
}
