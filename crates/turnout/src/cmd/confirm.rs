//! `turnout confirm`: finish a blue-green release; the old services are
//! drained and removed.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::announce;
use crate::cmd::render::print_status;

/// Arguments of `turnout confirm`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Refused while a shared route gives the new services weight 0 (that would \
    leave it without traffic target): move traffic first with `turnout weights` or `turnout \
    switch`, or pass --switch.\n\nExample:\n  turnout confirm --switch"
)]
pub struct Args {
    /// Switch every shared route to the new services first (as `turnout
    /// switch` does), then confirm.
    #[arg(long)]
    switch: bool,
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.confirm(&app, args.switch).await?;
        announce(&status, "confirmed", args.on.output);
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
