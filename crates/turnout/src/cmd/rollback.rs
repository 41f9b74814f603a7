//! `turnout rollback`: undo a release; the new services are removed and
//! the weights from before it are restored.

use std::process::ExitCode;

use crate::client::{self, Client, Connection};
use crate::cmd::confirm::announce;
use crate::cmd::status::print_status;
use crate::output::OutputFormat;

/// Arguments of `turnout rollback`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  turnout rollback --app hello")]
pub struct Args {
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the app's status after the rollback).
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
        let status = client.rollback(&app).await?;
        announce(&status, "rolled back", args.output);
        print_status(&status, args.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
