//! `turnout status`: an app's template version, release, services and
//! routes, coloured as the console shows them.

use std::fmt::Write;
use std::process::ExitCode;

use crate::client::{self, Client, Connection};
use crate::cmd::routes::route_line;
use crate::output::{OutputFormat, paint, use_color};
use crate::output::{out, outln};
use turnout_api_types::AppStatus;

/// Arguments of `turnout status`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Services are shown with their role in the release: old (blue, removed on \
    confirm), new (green, removed on rollback), unchanged (yellow); `current` outside a \
    release. Routes show each service's weight and its share of the traffic.\n\nExample:\n  \
    turnout status --app hello --output json"
)]
pub struct Args {
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the API's status document, DESIGN §5).
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
        let status = client.status(&app).await?;
        print_status(&status, args.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints an app's status: as the API gives it for `--output json`,
/// rendered for people otherwise.
pub(crate) fn print_status(status: &AppStatus, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(status)?),
        OutputFormat::Human => out!("{}", render(status, use_color(false))),
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
pub(crate) fn render(s: &AppStatus, color: bool) -> String {
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
    out
}

/// The console colour of a service of `s`, by name.
pub(crate) fn service_color<'a>(s: &'a AppStatus, name: &str) -> &'a str {
    s.services
        .iter()
        .find(|x| x.name == name)
        .map_or("", |x| x.color.as_str())
}

#[cfg(test)]
mod tests {
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
        let text = render(&sample(), false);
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
    fn colours_follow_the_roles() {
        let text = render(&sample(), true);
        // blue = 34, green = 32, yellow = 33, bold = 1.
        assert!(text.contains("\u{1b}[34mserviceB-v1\u{1b}[39m"), "{text:?}");
        assert!(text.contains("\u{1b}[32mnew      \u{1b}[39m"), "{text:?}");
        assert!(text.contains("\u{1b}[33munchanged\u{1b}[39m"), "{text:?}");
        assert!(
            text.contains("\u{1b}[1mpending-confirmation\u{1b}[0m"),
            "{text:?}"
        );
        assert!(!render(&sample(), false).contains('\u{1b}'));
    }

    #[test]
    fn current_services_are_plain_and_a_missing_release_is_said() {
        let mut s = sample();
        s.release = None;
        for svc in &mut s.services {
            svc.role = "current".into();
            svc.color = "default".into();
        }
        let text = render(&s, true);
        assert!(text.contains("release none\n"), "{text}");
        assert!(
            text.contains("  serviceB-v1  current  2/2 ready"),
            "{text:?}"
        );
    }
}
