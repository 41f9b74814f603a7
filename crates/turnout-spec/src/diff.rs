//! The difference between two templates, by service identity: what a
//! release from the old template to the new one would do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, FieldPath, Pos};
use std::collections::{HashMap, HashSet};

use crate::identity::spec_hash;
use crate::template::{Service, Template};

/// What a release does with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// In both templates with the same identity: left running (yellow).
    Unchanged,
    /// Only in the old template: removed when the release is confirmed (blue).
    Old,
    /// Only in the new template: started by the release (green).
    New,
    /// Same name, different spec: refused by blue-green, replaced in place
    /// by `standard`.
    Changed,
}

impl Role {
    /// The colour the console and the CLI show the role in.
    pub fn color(self) -> &'static str {
        match self {
            Role::Unchanged => "yellow",
            Role::Old => "blue",
            Role::New => "green",
            Role::Changed => "magenta",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Unchanged => "unchanged",
            Role::Old => "old",
            Role::New => "new",
            Role::Changed => "changed",
        })
    }
}

/// A release strategy (DESIGN §2, §5, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Old and new run side by side; traffic moves by weights (default).
    #[default]
    BlueGreen,
    /// Changed services are replaced in place, health-gated, batch by batch.
    Standard,
    /// A few new instances take a small share, are analysed, then promoted.
    Canary,
    /// The new version's share rises by steps, each analysed.
    Gray,
    /// Two variants split by rules and a sticky share, compared.
    AbTest,
}

impl Strategy {
    /// Every strategy, in DESIGN §8's order.
    pub const ALL: [Strategy; 5] = [
        Strategy::BlueGreen,
        Strategy::Standard,
        Strategy::Canary,
        Strategy::Gray,
        Strategy::AbTest,
    ];

    /// The spelling of templates, flags and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Standard => "standard",
            Strategy::Canary => "canary",
            Strategy::Gray => "gray",
            Strategy::AbTest => "ab-test",
        }
    }

    /// Whether the strategy moves traffic by itself, step by step, judged
    /// by analysis (canary, gray, A/B test).
    pub fn is_progressive(self) -> bool {
        matches!(self, Strategy::Canary | Strategy::Gray | Strategy::AbTest)
    }

    /// Whether old and new versions run side by side (everything but
    /// standard), so that a service may not change under its name.
    pub fn side_by_side(self) -> bool {
        self != Strategy::Standard
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown strategy {s:?}: expected blue-green, standard, canary, gray or ab-test"
                )
            })
    }
}

/// One service in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceDiff {
    /// The service name.
    pub name: String,
    /// What the release does with it.
    pub role: Role,
    /// The role's colour (`yellow`, `blue`, `green`, `magenta`).
    pub color: &'static str,
}

/// How a route fares in a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteChange {
    /// Only the new template has it.
    Gained,
    /// Only the old template has it.
    Lost,
    /// Both have it: old and new services share it during the release.
    Shared,
}

impl fmt::Display for RouteChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteChange::Gained => "gained",
            RouteChange::Lost => "lost",
            RouteChange::Shared => "shared",
        })
    }
}

/// One route in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDiff {
    /// The route id (`serviceb.localhost`).
    pub id: String,
    /// Gained, lost or shared.
    pub change: RouteChange,
    /// Whether the route is internal (`.local`).
    pub internal: bool,
    /// The services on the route across both templates, old ones first.
    pub services: Vec<String>,
}

/// The difference between two templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateDiff {
    /// Services of the old template in its order, then those only in the new.
    pub services: Vec<ServiceDiff>,
    /// Routes of either template, by id.
    pub routes: Vec<RouteDiff>,
}

impl TemplateDiff {
    /// The role of the named service, if it is in either template.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.role)
    }

    /// The problems that make a release with `strategy` impossible.
    pub fn check(&self, strategy: Strategy) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        if strategy.side_by_side() {
            for s in self.services.iter().filter(|s| s.role == Role::Changed) {
                errors.push(
                    Diagnostic::error(Pos::default(), &FieldPath::root().key(&s.name),
                        format!("service {} changed, and {strategy} never changes a running service", s.name))
                        .hint(format!(
                            "give the new version a new name (e.g. {}) so that old and new run side by side, or release with --strategy standard",
                            next_version_name(&s.name)
                        )),
                );
            }
        }
        if self.services.iter().all(|s| s.role == Role::Unchanged) {
            errors.push(
                Diagnostic::error(
                    Pos::default(),
                    &FieldPath::root(),
                    "the templates are the same: nothing to release",
                )
                .hint("change a service, or add one with a new name"),
            );
        }
        errors
    }
}

/// Suggests the next version's name: `serviceB-v1` → `serviceB-v2`,
/// `web` → `web-v2`.
pub fn next_version_name(name: &str) -> String {
    if let Some(idx) = name.rfind("-v")
        && let Ok(n) = name[idx + 2..].parse::<u64>()
    {
        return format!("{}-v{}", &name[..idx], n + 1);
    }
    format!("{name}-v2")
}

/// Compares two templates. Route ids are spelled with `domain`.
pub fn diff(old: &Template, new: &Template, domain: &str) -> TemplateDiff {
    // Indexes by name keep a diff of thousands of services linear.
    let new_by_name: HashMap<&str, &Service> =
        new.services.iter().map(|s| (s.name.as_str(), s)).collect();
    let old_names: HashSet<&str> = old.services.iter().map(|s| s.name.as_str()).collect();
    let mut services = Vec::new();
    for s in &old.services {
        let role = match new_by_name.get(s.name.as_str()) {
            Some(n) if spec_hash(s) == spec_hash(n) => Role::Unchanged,
            Some(_) => Role::Changed,
            None => Role::Old,
        };
        services.push(ServiceDiff {
            name: s.name.clone(),
            role,
            color: role.color(),
        });
    }
    for s in &new.services {
        if !old_names.contains(s.name.as_str()) {
            services.push(ServiceDiff {
                name: s.name.clone(),
                role: Role::New,
                color: Role::New.color(),
            });
        }
    }
    let old_routes = route_users(old, domain);
    let mut new_routes = route_users(new, domain);
    let mut routes: Vec<RouteDiff> = Vec::new();
    for (id, (internal, users)) in old_routes {
        let (change, services) = match new_routes.remove(&id) {
            Some((_, new_users)) => {
                let mut all = users;
                for u in new_users {
                    if !all.contains(&u) {
                        all.push(u);
                    }
                }
                (RouteChange::Shared, all)
            }
            None => (RouteChange::Lost, users),
        };
        routes.push(RouteDiff {
            id,
            change,
            internal,
            services,
        });
    }
    for (id, (internal, services)) in new_routes {
        routes.push(RouteDiff {
            id,
            change: RouteChange::Gained,
            internal,
            services,
        });
    }
    routes.sort_by(|a, b| a.id.cmp(&b.id));
    TemplateDiff { services, routes }
}

/// Route id → (internal, service names on it in file order).
fn route_users(t: &Template, domain: &str) -> HashMap<String, (bool, Vec<String>)> {
    let mut out: HashMap<String, (bool, Vec<String>)> = HashMap::new();
    for s in &t.services {
        for (id, internal) in routes_of(s, domain) {
            let (_, users) = out.entry(id).or_insert_with(|| (internal, Vec::new()));
            if !users.contains(&s.name) {
                users.push(s.name.clone());
            }
        }
    }
    out
}

fn routes_of(s: &Service, domain: &str) -> Vec<(String, bool)> {
    s.settings
        .routes
        .iter()
        .flat_map(|b| b.routes.iter())
        .map(|r| (r.id(domain), r.is_internal(domain)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::next_version_name;

    #[test]
    fn next_names() {
        assert_eq!(next_version_name("serviceB-v1"), "serviceB-v2");
        assert_eq!(next_version_name("web"), "web-v2");
        assert_eq!(next_version_name("a-v9"), "a-v10");
    }
}
