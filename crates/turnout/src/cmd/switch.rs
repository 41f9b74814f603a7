//! `turnout switch ROUTE`: flip a two-service route 0/100 in one step.

use std::process::ExitCode;

use crate::client::{self, Client, Connection};
use crate::cmd::weights::print_route;
use crate::output::OutputFormat;

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
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the app's status after the switch).
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
        let status = client.switch(&app, &args.route).await?;
        print_route(&status, &args.route, args.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
