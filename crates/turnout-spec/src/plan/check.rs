//! Validation of a release plan (DESIGN §8): against the template it
//! releases (services of the A/B rules, the canary's scale) and, for what
//! needs the app's current template, [`check_release`].

use crate::diagnostic::{Diagnostic, FieldPath, Pos, did_you_mean};
use crate::diff::{Role, Strategy, diff};
use crate::template::Template;

use super::{Places, ReleaseBlock, ReleasePlan, block_path};

/// The strategies that use a block field (by its first segment).
fn users(key: &str) -> &'static [Strategy] {
    const PROGRESSIVE: &[Strategy] = &[Strategy::Canary, Strategy::Gray, Strategy::AbTest];
    match key.split(['.', '[']).next().unwrap_or(key) {
        "steps" => &[Strategy::Gray],
        "canary" => &[Strategy::Canary],
        "ab" => &[Strategy::AbTest],
        _ => PROGRESSIVE,
    }
}

/// Validates a resolved plan; `diagnostics` gets the errors, `warnings`
/// the rest.
pub(super) fn check(
    plan: &ReleasePlan,
    block: &ReleaseBlock,
    template: &Template,
    places: &Places<'_>,
    diagnostics: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    let strategy = plan.strategy;
    for key in block.fields_set() {
        let users = users(key);
        if !users.contains(&strategy) {
            let for_whom = users
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            warnings.push(
                places
                    .diagnostic(
                        false,
                        key,
                        format!(
                            "{key} is for {for_whom} releases; a {strategy} release ignores it"
                        ),
                    )
                    .hint(format!(
                        "remove it, or release with strategy {}",
                        users[0].as_str()
                    )),
            );
        }
    }
    if plan.canary.scale == 0 {
        diagnostics.push(
            places
                .diagnostic(true, "canary.scale", "the canary's scale is 0")
                .hint("the canary runs at least one new instance: give a scale of 1 or more"),
        );
    }
    if strategy == Strategy::Canary
        && let Some(largest) = template.services.iter().map(|s| s.settings.scale).max()
        && plan.canary.scale > largest
    {
        diagnostics.push(
            places
                .diagnostic(
                    true,
                    "canary.scale",
                    format!(
                        "the canary's scale {} is above the scale of every service of the template (at most {largest})",
                        plan.canary.scale
                    ),
                )
                .hint("a canary runs some of the new service's instances: give a scale at most the service's own"),
        );
    }
    if plan.analysis.window.0 == 0 {
        diagnostics.push(
            places
                .diagnostic(true, "analysis.window", "the analysis window is 0")
                .hint("give the window of each check, e.g. `30s`"),
        );
    }
    if let Some(p) = &plan.analysis.prometheus {
        if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        "analysis.prometheus.url",
                        format!("{:?} is not an http URL", p.url),
                    )
                    .hint("give the Prometheus server's base URL, e.g. `http://prometheus:9090`"),
            );
        }
        if p.query.trim().is_empty() {
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        "analysis.prometheus.query",
                        "the Prometheus query is empty",
                    )
                    .hint("give an instant PromQL query whose value the gate compares with max"),
            );
        }
        if !p.max.0.is_finite() {
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        "analysis.prometheus.max",
                        "max is not a finite number",
                    )
                    .hint("give the highest value the query may return, e.g. `0.05`"),
            );
        }
    }
    let names: Vec<&str> = template.services.iter().map(|s| s.name.as_str()).collect();
    for (i, rule) in plan.ab.rules.iter().enumerate() {
        if !names.contains(&rule.service.as_str()) {
            let hint = match did_you_mean(&rule.service, &names) {
                Some(m) => format!("did you mean {m:?}?"),
                None => format!("name one of the template's services: {}", names.join(", ")),
            };
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        &format!("ab.rules[{i}].service"),
                        format!(
                            "the A/B rule names service {:?}, which the template does not have",
                            rule.service
                        ),
                    )
                    .hint(hint),
            );
        }
        let m = &rule.matches;
        if m.header.is_empty() && m.cookie.is_empty() && m.query.is_empty() {
            diagnostics.push(
                places
                    .diagnostic(true, &format!("ab.rules[{i}].match"), "the A/B rule matches nothing")
                    .hint("give a header, cookie or query value, e.g. `match: { header: { x-variant: b } }`"),
            );
        }
    }
    if let Some(goal) = &plan.ab.goal {
        if goal.path.trim().is_empty() {
            diagnostics.push(
                places
                    .diagnostic(true, "ab.goal.path", "the A/B goal has no path")
                    .hint("give the path a conversion reaches, e.g. `goal: { path: /checkout }`"),
            );
        } else if !goal.path.starts_with('/') {
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        "ab.goal.path",
                        format!("the A/B goal's path {:?} does not start with /", goal.path),
                    )
                    .hint(format!("write it from the root: `/{}`", goal.path)),
            );
        }
        if let Some(status) = &goal.status
            && !valid_status(status)
        {
            diagnostics.push(
                places
                    .diagnostic(
                        true,
                        "ab.goal.status",
                        format!("{status:?} is not a status"),
                    )
                    .hint("give a status class such as `2xx` or a code such as `201`"),
            );
        }
    }
    if strategy == Strategy::AbTest && plan.ab.goal.is_none() {
        warnings.push(
            places
                .diagnostic(false, "ab.goal", "the A/B test has no goal: it compares errors and latency only")
                .hint("give the path a conversion reaches, e.g. `goal: { path: /checkout }` or `--goal /checkout`"),
        );
    }
}

/// `2xx` (a class, 1 to 5) or a code from 100 to 599.
fn valid_status(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 3
        && (b'1'..=b'5').contains(&b[0])
        && ((b[1..] == *b"xx") || (b[1].is_ascii_digit() && b[2].is_ascii_digit()))
}

/// The checks that need the app's current template: a canary's scale
/// against each service the release starts, an A/B test's routes
/// ([`check_ab`]).
pub(super) fn check_release(
    plan: &ReleasePlan,
    old: &Template,
    new: &Template,
    domain: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let d = diff(old, new, domain);
    if plan.strategy == Strategy::AbTest {
        check_ab(plan, old, new, &d, &mut out);
        return out;
    }
    if plan.strategy != Strategy::Canary {
        return out;
    }
    for s in d.services.iter().filter(|s| s.role == Role::New) {
        let Some(service) = new.service(&s.name) else {
            continue;
        };
        if plan.canary.scale > service.settings.scale {
            out.push(
                Diagnostic::error(
                    Pos::default(),
                    &block_path("canary.scale"),
                    format!(
                        "the canary's scale {} is above the scale of {}, the new service ({})",
                        plan.canary.scale, s.name, service.settings.scale
                    ),
                )
                .hint(format!(
                    "give a canary scale of at most {}, or raise {}'s scale",
                    service.settings.scale, s.name
                )),
            );
        }
    }
    if !d.services.iter().any(|s| s.role == Role::New) {
        out.push(
            Diagnostic::error(
                Pos::default(),
                &FieldPath::root(),
                "a canary needs a new service, and this release starts none",
            )
            .hint("give the new version a new name (e.g. serviceB-v2) so that it runs beside the old one"),
        );
    }
    out
}

/// An A/B test's checks against both templates: the variants share a
/// route, each rule's service is on one the release shares, and a goal's
/// routes keep clients sticky (they are told apart by their position
/// cookie).
fn check_ab(
    plan: &ReleasePlan,
    old: &Template,
    new: &Template,
    d: &crate::diff::TemplateDiff,
    out: &mut Vec<Diagnostic>,
) {
    let shared: Vec<&crate::diff::RouteDiff> = d
        .routes
        .iter()
        .filter(|r| {
            r.change == crate::diff::RouteChange::Shared
                && r.services.iter().any(|s| d.role(s) == Some(Role::New))
                && r.services.iter().any(|s| d.role(s) == Some(Role::Old))
        })
        .collect();
    if shared.is_empty() {
        out.push(
            Diagnostic::error(
                Pos::default(),
                &FieldPath::root(),
                "an A/B test compares a new service with an old one on the same route, and this release has no such route",
            )
            .hint("give the new variant a new name (e.g. web-v2) on the old variant's route, so that both run side by side"),
        );
        return;
    }
    for (i, rule) in plan.ab.rules.iter().enumerate() {
        if !shared.iter().any(|r| r.services.contains(&rule.service)) {
            let routes: Vec<&str> = shared.iter().map(|r| r.id.as_str()).collect();
            out.push(
                Diagnostic::error(
                    Pos::default(),
                    &block_path(&format!("ab.rules[{i}].service")),
                    format!(
                        "the A/B rule sends requests to {}, which is on no route the test shares ({})",
                        rule.service,
                        routes.join(", ")
                    ),
                )
                .hint("name a service of a shared route: the variants are the old and new services there"),
            );
        }
    }
    if plan.ab.goal.is_some() {
        for route in shared.iter().filter(|r| !r.internal) {
            let off = route.services.iter().find(|name| {
                new.service(name)
                    .or_else(|| old.service(name))
                    .is_some_and(|s| s.settings.sticky == Some(crate::labels::Sticky::Off))
            });
            if let Some(name) = off {
                out.push(
                    Diagnostic::error(
                        Pos::default(),
                        &block_path("ab.goal"),
                        format!(
                            "route {} is not sticky ({name} sets sticky off), and an A/B goal counts clients by the position cookie stickiness gives them",
                            route.id
                        ),
                    )
                    .hint("remove the sticky-off label from the route's services for the test"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_status;

    #[test]
    fn statuses() {
        for ok in ["2xx", "5xx", "200", "404"] {
            assert!(valid_status(ok), "{ok}");
        }
        for bad in ["6xx", "2x", "20", "abc", "2xxx", "x2x"] {
            assert!(!valid_status(bad), "{bad}");
        }
    }
}
