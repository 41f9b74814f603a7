//! Renderers shared by the CLI verbs: an app's status, a route's line
//! with weights and shares, and the one-line notes verbs print on
//! stderr. A verb's own renderers stay in its file.

use std::fmt::Write;

use crate::output::{OutputFormat, errln, out, outln, paint, use_color};
use turnout_api_types::{AppStatus, RouteStatus};

/// Prints an app's status: as the API gives it for `--output json`,
/// rendered for people otherwise.
pub(crate) fn print_status(status: &AppStatus, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(status)?),
        OutputFormat::Human => out!("{}", status_text(status, use_color(false))),
    }
    Ok(())
}

/// Renders a status for people:
///
/// ```text
/// app hello  template v2
/// release 2  blue-green  pending-confirmation  v1 -> v2
/// services
///   serviceA-v1  unchanged  3/3 ready
///   serviceB-v2  new        2/2 ready
/// routes
///   serviceb.localhost  serviceB-v1 100 (50%)  serviceB-v2 100 (50%)
/// ```
pub(crate) fn status_text(s: &AppStatus, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "app {}  template v{}",
        paint(&s.app, "bold", color),
        s.template_version
    );
    match &s.release {
        Some(r) => {
            let _ = write!(
                out,
                "release {}  {}  {}  v{} -> v{}",
                r.id,
                r.strategy,
                paint(&r.state, "bold", color),
                r.from_version,
                r.to_version
            );
            if let Some(reason) = &r.reason {
                let _ = write!(out, "  ({reason})");
            }
            if let Some(step) = &r.step {
                let _ = write!(
                    out,
                    "  step {}/{} at {}%",
                    step.index + 1,
                    step.count,
                    step.share
                );
            }
            if let Some(why) = &r.paused {
                let _ = write!(out, "  paused: {why}");
            }
            out.push('\n');
        }
        None => out.push_str("release none\n"),
    }
    out.push_str("services\n");
    let name_w = s.services.iter().map(|x| x.name.len()).max().unwrap_or(0);
    let role_w = s.services.iter().map(|x| x.role.len()).max().unwrap_or(0);
    for svc in &s.services {
        // Pad before painting: escape sequences have no width.
        let name = format!("{:name_w$}", svc.name);
        let role = format!("{:role_w$}", svc.role);
        let _ = writeln!(
            out,
            "  {}  {}  {}/{} ready",
            paint(&name, &svc.color, color),
            paint(&role, &svc.color, color),
            svc.ready,
            svc.scale
        );
    }
    if !s.routes.is_empty() {
        out.push_str("routes\n");
        let id_w = s.routes.iter().map(|r| r.id.len()).max().unwrap_or(0);
        for r in &s.routes {
            let _ = writeln!(
                out,
                "  {}",
                route_line(r, id_w, &|name| service_color(s, name).to_string(), color)
            );
        }
    }
    // While a release runs: how to try its new services before they get
    // traffic (the router's preview override).
    if let Some(token) = s.release.as_ref().and_then(|r| r.preview_token.as_deref()) {
        let new: Vec<&str> = s
            .services
            .iter()
            .filter(|x| matches!(x.role.as_str(), "new" | "changed"))
            .map(|x| x.name.as_str())
            .collect();
        if !new.is_empty() {
            out.push_str("preview (any weight, this request only)\n");
            for name in new {
                let _ = writeln!(
                    out,
                    "  -H 'X-Turnout-Service: {name}' -H 'X-Turnout-Preview-Token: {token}'"
                );
            }
        }
    }
    out
}

/// The console colour of a service of `s`, by name.
pub(crate) fn service_color<'a>(s: &'a AppStatus, name: &str) -> &'a str {
    s.services
        .iter()
        .find(|x| x.name == name)
        .map_or("", |x| x.color.as_str())
}

/// `serviceb.localhost  serviceB-v1 100 (50%)  serviceB-v2 100 (50%)`,
/// the id padded to `id_w`.
pub(crate) fn route_line(
    r: &RouteStatus,
    id_w: usize,
    color_of: &dyn Fn(&str) -> String,
    color: bool,
) -> String {
    format!("{:id_w$}  {}", r.id, weights_text(r, color_of, color))
}

/// The services of a route in route order, each with weight and share.
pub(crate) fn weights_text(
    r: &RouteStatus,
    color_of: &dyn Fn(&str) -> String,
    color: bool,
) -> String {
    let ordered = ordered_weights(r);
    let shares = shares(&ordered.iter().map(|(_, w)| *w).collect::<Vec<_>>());
    let mut parts = Vec::with_capacity(ordered.len());
    for ((name, weight), share) in ordered.iter().zip(shares) {
        parts.push(format!(
            "{} {weight} ({share})",
            paint(name, &color_of(name), color)
        ));
    }
    let mut text = parts.join("  ");
    if ordered.iter().all(|(_, w)| *w == 0) {
        text.push_str(&format!("  {}", paint("no traffic target", "red", color)));
    }
    text
}

/// A route's weights in route order (`order`, old first); services the
/// order does not list follow by name, so none is ever hidden.
pub(crate) fn ordered_weights(r: &RouteStatus) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = r
        .order
        .iter()
        .filter_map(|name| {
            r.weights
                .get(name)
                .map(|w| (name.clone(), u32::from(w.get())))
        })
        .collect();
    for (name, w) in &r.weights {
        if !r.order.contains(name) {
            out.push((name.clone(), u32::from(w.get())));
        }
    }
    out
}

/// Each weight's share of the total as a percentage: whole when exact
/// (`50%`), else to one decimal (`33.3%`); all `0%` when every weight is 0.
pub(crate) fn shares(weights: &[u32]) -> Vec<String> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    weights
        .iter()
        .map(|w| {
            if total == 0 {
                return "0%".to_string();
            }
            let scaled = u64::from(*w) * 100;
            if scaled % total == 0 {
                format!("{}%", scaled / total)
            } else {
                // Weights are at most 100 each, so f64 is exact enough.
                #[allow(clippy::cast_precision_loss)]
                let pct = scaled as f64 / total as f64;
                format!("{pct:.1}%")
            }
        })
        .collect()
}

/// Prints the route a command changed (the status, for `--output json`).
pub(crate) fn print_route(s: &AppStatus, route: &str, output: OutputFormat) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let color = use_color(false);
    let lower = route.to_ascii_lowercase();
    // The route may have been named by its bare prefix.
    let matching: Vec<_> = s
        .routes
        .iter()
        .filter(|r| r.id == lower || r.id.starts_with(&format!("{lower}.")))
        .collect();
    let shown = if matching.is_empty() {
        s.routes.iter().collect()
    } else {
        matching
    };
    let id_w = shown.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in shown {
        outln!(
            "{}",
            route_line(r, id_w, &|name| service_color(s, name).to_string(), color)
        );
    }
    Ok(())
}

/// Says on stderr what happened to the release (`release 2 confirmed`),
/// for people only.
pub(crate) fn announce(status: &AppStatus, what: &str, output: OutputFormat) {
    if output != OutputFormat::Human {
        return;
    }
    if let AppStatus {
        app,
        release: Some(r),
        ..
    } = status
    {
        errln!("release {} of app {app} {what}", r.id);
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    fn sample() -> AppStatus {
        serde_json::from_value(serde_json::json!({
            "app": "hello", "template_version": 2,
            "release": {"id": 2, "strategy": "blue-green", "state": "pending-confirmation",
                        "from_version": 1, "to_version": 2, "reason": null},
            "services": [
                {"name": "serviceA-v1", "role": "unchanged", "color": "yellow", "scale": 3, "ready": 3, "instances": []},
                {"name": "serviceB-v1", "role": "old", "color": "blue", "scale": 2, "ready": 2, "instances": []},
                {"name": "serviceB-v2", "role": "new", "color": "green", "scale": 2, "ready": 1, "instances": []}
            ],
            "routes": [
                {"id": "servicea.local", "internal": true, "sticky": "version",
                 "weights": {"serviceA-v1": 100}, "order": ["serviceA-v1"]},
                {"id": "serviceb.localhost", "internal": false, "sticky": "version",
                 "weights": {"serviceB-v1": 100, "serviceB-v2": 100},
                 "order": ["serviceB-v1", "serviceB-v2"]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn plain_rendering_has_roles_ready_counts_and_shares() {
        let text = status_text(&sample(), false);
        assert_eq!(
            text,
            "app hello  template v2\n\
             release 2  blue-green  pending-confirmation  v1 -> v2\n\
             services\n  \
             serviceA-v1  unchanged  3/3 ready\n  \
             serviceB-v1  old        2/2 ready\n  \
             serviceB-v2  new        1/2 ready\n\
             routes\n  \
             servicea.local      serviceA-v1 100 (100%)\n  \
             serviceb.localhost  serviceB-v1 100 (50%)  serviceB-v2 100 (50%)\n"
        );
    }

    #[test]
    fn a_release_with_a_preview_token_says_how_to_try_its_new_services() {
        let mut s = sample();
        s.release.as_mut().unwrap().preview_token = Some("p7x".into());
        let text = status_text(&s, false);
        assert!(
            text.ends_with(
                "preview (any weight, this request only)\n  \
                 -H 'X-Turnout-Service: serviceB-v2' -H 'X-Turnout-Preview-Token: p7x'\n"
            ),
            "{text}"
        );
        // Without a token (no release in progress), nothing is said.
        assert!(!status_text(&sample(), false).contains("preview"));
    }

    #[test]
    fn colours_follow_the_roles() {
        let text = status_text(&sample(), true);
        // blue = 34, green = 32, yellow = 33, bold = 1.
        assert!(text.contains("\u{1b}[34mserviceB-v1\u{1b}[39m"), "{text:?}");
        assert!(text.contains("\u{1b}[32mnew      \u{1b}[39m"), "{text:?}");
        assert!(text.contains("\u{1b}[33munchanged\u{1b}[39m"), "{text:?}");
        assert!(
            text.contains("\u{1b}[1mpending-confirmation\u{1b}[0m"),
            "{text:?}"
        );
        assert!(!status_text(&sample(), false).contains('\u{1b}'));
    }

    #[test]
    fn current_services_are_plain_and_a_missing_release_is_said() {
        let mut s = sample();
        s.release = None;
        for svc in &mut s.services {
            svc.role = "current".into();
            svc.color = "default".into();
        }
        let text = status_text(&s, true);
        assert!(text.contains("release none\n"), "{text}");
        assert!(
            text.contains("  serviceB-v1  current  2/2 ready"),
            "{text:?}"
        );
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn route(weights: &[(&str, u8)], order: &[&str]) -> RouteStatus {
        RouteStatus {
            id: "serviceb.localhost".into(),
            internal: false,
            sticky: "version".into(),
            weights: weights
                .iter()
                .map(|(n, w)| ((*n).to_string(), turnout_routing::Weight::new(*w).unwrap()))
                .collect(),
            order: order.iter().map(|n| (*n).to_string()).collect(),
        }
    }

    #[test]
    fn shares_are_relative() {
        assert_eq!(shares(&[100, 100]), ["50%", "50%"]);
        assert_eq!(shares(&[100, 0]), ["100%", "0%"]);
        assert_eq!(shares(&[90, 10]), ["90%", "10%"]);
        assert_eq!(shares(&[100, 100, 100]), ["33.3%", "33.3%", "33.3%"]);
        assert_eq!(shares(&[1, 2]), ["33.3%", "66.7%"]);
        assert_eq!(shares(&[0, 0]), ["0%", "0%"]);
        assert!(shares(&[]).is_empty());
    }

    #[test]
    fn weights_follow_route_order_not_names() {
        // Old first even though "serviceB-v2" sorts before "serviceB-v10".
        let r = route(
            &[("serviceB-v10", 30), ("serviceB-v2", 10)],
            &["serviceB-v2", "serviceB-v10"],
        );
        let line = route_line(&r, 0, &|_| String::new(), false);
        assert_eq!(
            line,
            "serviceb.localhost  serviceB-v2 10 (25%)  serviceB-v10 30 (75%)"
        );
        // A service missing from `order` is still shown.
        let r = route(&[("a", 100), ("b", 100)], &["b"]);
        assert_eq!(
            ordered_weights(&r),
            [("b".to_string(), 100), ("a".to_string(), 100)]
        );
    }

    #[test]
    fn a_route_without_traffic_says_so() {
        let r = route(&[("a", 0)], &["a"]);
        let line = route_line(&r, 0, &|_| String::new(), false);
        assert_eq!(line, "serviceb.localhost  a 0 (0%)  no traffic target");
    }

    #[test]
    fn service_names_take_their_role_colour() {
        let r = route(&[("old", 100), ("new", 0)], &["old", "new"]);
        let color_of = |n: &str| {
            if n == "old" {
                "blue".to_string()
            } else {
                "green".to_string()
            }
        };
        let line = route_line(&r, 0, &color_of, true);
        assert!(
            line.contains("\u{1b}[34mold\u{1b}[39m 100 (100%)"),
            "{line:?}"
        );
        assert!(line.contains("\u{1b}[32mnew\u{1b}[39m 0 (0%)"), "{line:?}");
        assert!(!route_line(&r, 0, &color_of, false).contains('\u{1b}'));
    }
}

/// A table with a header row, columns padded to their widest cell and
/// separated by two spaces; `style` paints a body cell (already padded)
/// by its column.
pub(crate) fn table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    style: impl Fn(usize, &str) -> String,
) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; N], body: bool| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let padded = format!("{cell:w$}");
            line.push_str(&if body { style(i, &padded) } else { padded });
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(header, false);
    for row in rows {
        push(row.each_ref().map(String::as_str), true);
    }
    out
}
