//! `turnout routes`: an app's routes with each service's weight and share.

use std::process::ExitCode;

use crate::client::{self, Client, Connection};
use crate::cmd::status::service_color;
use crate::output::{OutputFormat, paint, use_color};
use crate::output::{out, outln};
use turnout_api_types::{AppStatus, RouteList, RouteStatus};

/// Arguments of `turnout routes`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Weights are relative: 100 and 100 is half the traffic each. Internal routes \
    (*.local) are served on the internal listener only.\n\nExample:\n  turnout routes --app hello"
)]
pub struct Args {
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the API's `{"routes": [...]}`).
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    conn: Connection,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    client::block_on(async {
        let client = Client::connect(&args.conn)?;
        let app = client.app(args.app.as_deref()).await?;
        match args.output {
            OutputFormat::Json => {
                let routes = RouteList {
                    routes: client.routes(&app).await?,
                };
                outln!("{}", serde_json::to_string_pretty(&routes)?);
            }
            OutputFormat::Human => {
                // The status has the services' roles, which colour the names.
                let status = client.status(&app).await?;
                out!("{}", render(&status, use_color(false)));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One line per route: id, public/internal, stickiness, weights and shares.
pub(crate) fn render(s: &AppStatus, color: bool) -> String {
    if s.routes.is_empty() {
        return format!("app {} has no routes\n", s.app);
    }
    let id_w = s.routes.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in &s.routes {
        let id = format!("{:id_w$}", r.id);
        let place = if r.internal { "internal" } else { "public  " };
        let sticky = format!("sticky={:8}", r.sticky);
        let weights = weights_text(r, &|name| service_color(s, name).to_string(), color);
        out.push_str(&format!("{id}  {place}  {sticky}  {weights}\n"));
    }
    out
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
fn weights_text(r: &RouteStatus, color_of: &dyn Fn(&str) -> String, color: bool) -> String {
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

#[cfg(test)]
mod tests {
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
