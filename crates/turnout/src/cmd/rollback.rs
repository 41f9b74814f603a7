//! `turnout rollback`: undo a release; the new services are removed and
//! the weights from before it are restored.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::announce;
use crate::cmd::render::print_status;

/// Arguments of `turnout rollback`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  turnout rollback --app hello")]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.rollback(&app).await?;
        announce(&status, "rolled back", args.on.output);
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
