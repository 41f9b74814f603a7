//! `turnout switch ROUTE`: flip a two-service route 0/100 in one step.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::print_route;

/// Arguments of `turnout switch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The service that has traffic gets weight 0 and the other 100, in one atomic \
    step: during a blue-green release, all new traffic moves to the new version.\n\nExample:\n  \
    turnout switch serviceb"
)]
pub struct Args {
    /// The route: its id (`serviceb.localhost`) or an unambiguous bare
    /// prefix (`serviceb`).
    #[arg(value_name = "ROUTE")]
    route: String,
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.switch(&app, &args.route).await?;
        print_route(&status, &args.route, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
