//! `turnout status`: an app's template version, release, services and
//! routes, coloured as the console shows them.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::print_status;

/// Arguments of `turnout status`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Services are shown with their role in the release: old (blue, removed on \
    confirm), new (green, removed on rollback), unchanged (yellow); `current` outside a \
    release. Routes show each service's weight and its share of the traffic.\n\nExample:\n  \
    turnout status --app hello --output json"
)]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.status(&app).await?;
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
