//! The goal of an A/B-tested route (DESIGN §8): a client converts when one
//! of its requests reaches the goal path and is answered with a matching
//! status. The proxy counts, per service, the distinct clients (by their
//! `turnout_pos` cookie) and the converting ones; this is only the goal's
//! definition and its checks.

use std::sync::Arc;

use crate::host::path_under;
use crate::route_file::GoalSpec;
use turnout_spec::Sticky;

/// Which answers count as reaching the goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoalStatus {
    /// Any status of the class: `2` for `2xx`.
    Class(u8),
    /// Exactly this status.
    Exact(u16),
}

impl GoalStatus {
    /// Whether `status` matches.
    #[inline]
    pub fn matches(self, status: u16) -> bool {
        match self {
            GoalStatus::Class(class) => status / 100 == u16::from(class),
            GoalStatus::Exact(exact) => status == exact,
        }
    }

    /// Reads `2xx` (a class, `1xx` to `5xx`) or `201` (one status, 100 to
    /// 599).
    fn parse(text: &str) -> Option<GoalStatus> {
        let bytes = text.as_bytes();
        if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
            return None;
        }
        if bytes[1..].eq_ignore_ascii_case(b"xx") {
            return Some(GoalStatus::Class(bytes[0] - b'0'));
        }
        if bytes[1..].iter().all(u8::is_ascii_digit) {
            return text.parse().ok().map(GoalStatus::Exact);
        }
        None
    }
}

/// A route's goal, as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Goal {
    /// The request path that counts (and every path under it, on segment
    /// boundaries, as for context paths); the full path, not relative to
    /// the route's context path.
    pub path: Arc<str>,
    /// The answers that count; `2xx` when the route file gives none.
    pub status: GoalStatus,
}

impl Goal {
    /// Whether a request for `path` (without its query) is at the goal.
    #[inline]
    pub fn at(&self, path: &str) -> bool {
        path_under(path, &self.path)
    }
}

/// The goal path (canonical: no trailing slash) and status of `spec`, or
/// every problem with it as (field under `ab_goal`, message). `route_path`
/// is the route's canonical context path, `sticky` its stickiness.
pub(crate) fn read_goal<'a>(
    spec: &'a GoalSpec,
    route_path: &str,
    sticky: Sticky,
    mut problem: impl FnMut(&'static str, String),
) -> Option<(&'a str, GoalStatus)> {
    let mut ok = true;
    let path = spec.path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    if !spec.path.starts_with('/')
        || spec
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        problem(
            "path",
            format!(
                "goal path {:?} must start with / and hold no spaces, '?' or '#' (write the path only, such as /checkout)",
                spec.path
            ),
        );
        ok = false;
    } else if !path_under(path, route_path) {
        problem(
            "path",
            format!(
                "goal path {path:?} is outside the route's path {route_path:?}, so no request of this route reaches it; give a path under {route_path:?}"
            ),
        );
        ok = false;
    }
    let status = match spec.status.as_deref() {
        None => GoalStatus::Class(2),
        Some(text) => GoalStatus::parse(text).unwrap_or_else(|| {
            problem(
                "status",
                format!(
                    "{text:?} is not a status: give a class such as \"2xx\" (1xx to 5xx) or one status such as \"201\""
                ),
            );
            ok = false;
            GoalStatus::Class(2)
        }),
    };
    if sticky == Sticky::Off {
        problem(
            "",
            "an A/B goal needs sticky: version or instance: clients are told apart by their turnout_pos cookie, which sticky: off never gives".to_owned(),
        );
        ok = false;
    }
    ok.then_some((path, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str, status: Option<&str>, route: &str, sticky: Sticky) -> Vec<String> {
        let spec = GoalSpec {
            path: path.to_owned(),
            status: status.map(str::to_owned),
        };
        let mut problems = Vec::new();
        let read = read_goal(&spec, route, sticky, |field, message| {
            problems.push(format!("{field}: {message}"));
        });
        assert_eq!(read.is_some(), problems.is_empty(), "{problems:?}");
        problems
    }

    #[test]
    fn statuses() {
        assert_eq!(GoalStatus::parse("2xx"), Some(GoalStatus::Class(2)));
        assert_eq!(GoalStatus::parse("3XX"), Some(GoalStatus::Class(3)));
        assert_eq!(GoalStatus::parse("201"), Some(GoalStatus::Exact(201)));
        for bad in ["6xx", "0xx", "2x", "20", "2000", "abc", "", "2x1", "099"] {
            assert_eq!(GoalStatus::parse(bad), None, "{bad}");
        }
        assert!(GoalStatus::Class(2).matches(204));
        assert!(!GoalStatus::Class(2).matches(302));
        assert!(GoalStatus::Exact(201).matches(201));
        assert!(!GoalStatus::Exact(201).matches(200));
    }

    #[test]
    fn goal_paths_match_on_segments() {
        let goal = Goal {
            path: Arc::from("/checkout"),
            status: GoalStatus::Class(2),
        };
        assert!(goal.at("/checkout"));
        assert!(goal.at("/checkout/done"));
        assert!(!goal.at("/checkouts"));
        assert!(!goal.at("/"));
    }

    #[test]
    fn problems_name_the_field_and_the_fix() {
        assert!(read("/checkout", None, "/", Sticky::Version).is_empty());
        assert!(read("/shop/checkout/", Some("201"), "/shop", Sticky::Instance).is_empty());
        assert_eq!(
            read("checkout", None, "/", Sticky::Version),
            [
                "path: goal path \"checkout\" must start with / and hold no spaces, '?' or '#' (write the path only, such as /checkout)"
            ]
        );
        assert_eq!(
            read("/checkout", None, "/shop", Sticky::Version),
            [
                "path: goal path \"/checkout\" is outside the route's path \"/shop\", so no request of this route reaches it; give a path under \"/shop\""
            ]
        );
        assert_eq!(
            read("/checkout", Some("ok"), "/", Sticky::Version),
            [
                "status: \"ok\" is not a status: give a class such as \"2xx\" (1xx to 5xx) or one status such as \"201\""
            ]
        );
        let off = read("/checkout", None, "/", Sticky::Off);
        assert_eq!(off.len(), 1);
        assert!(
            off[0].contains("needs sticky: version or instance"),
            "{off:?}"
        );
    }
}
