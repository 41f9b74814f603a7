//! `turnout routes`: an app's routes with each service's weight and share.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::{service_color, weights_text};
use crate::output::{OutputFormat, use_color};
use crate::output::{out, outln};
use turnout_api_types::{AppStatus, RouteList};

/// Arguments of `turnout routes`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Weights are relative: 100 and 100 is half the traffic each. Internal routes \
    (*.local) are served on the internal listener only.\n\nExample:\n  turnout routes --app hello"
)]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        match args.on.output {
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
