//! `turnout promote`, `pause`, `resume` and `abort`: steering the steps of
//! a progressive (canary or gray) release, DESIGN §8. Each is refused,
//! with a hint, where it makes no sense (promote while the new instances
//! start, pause when nothing runs, a blue-green release, ...), and each is
//! recorded in the app's history.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::{announce, print_status};

/// Arguments of `turnout promote`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Moves a canary or gray release to its next step now, without waiting \
    for the step's pause; after the last step the release is pending-confirmation (or \
    confirmed, with on_success: confirm). A canary's promotion first starts the rest of its \
    new instances. An A/B test has one step: promote ends it at its split (--full: the new \
    version at 100 %), to be confirmed or rolled back.\n\nExamples:\n  turnout promote --app hello\n  turnout promote --full --app hello"
)]
pub struct PromoteArgs {
    /// Straight to 100 %, skipping the remaining steps.
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    on: AppArgs,
}

/// Arguments of `turnout pause` and `turnout resume`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "pause holds a progressive release at its step (its weights stay) \
    until resume or promote; resume runs the step again, its pause counted from now.\n\n\
    Example:\n  turnout pause --app hello"
)]
pub struct HoldArgs {
    #[command(flatten)]
    on: AppArgs,
}

/// Arguments of `turnout abort`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Rolls the release in progress back, as rollback does, and records \
    why: the release ends rolled-back with reason `aborted: <reason>`.\n\nExample:\n  \
    turnout abort --app hello --reason 'checkout errors'"
)]
pub struct AbortArgs {
    /// Why, for the history (default: by the operator).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    on: AppArgs,
}

/// Runs `turnout promote`.
pub fn promote(args: &PromoteArgs) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.promote(&app, args.full).await?;
        announce(&status, "promoted", args.on.output);
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `turnout pause` (`resume: false`) or `turnout resume`.
pub fn hold(args: &HoldArgs, resume: bool) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let (verb, done) = if resume {
            ("resume", "resumed")
        } else {
            ("pause", "paused")
        };
        let status = client.act(&app, verb).await?;
        announce(&status, done, args.on.output);
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `turnout abort`.
pub fn abort(args: &AbortArgs) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.abort(&app, args.reason.clone()).await?;
        announce(&status, "aborted", args.on.output);
        print_status(&status, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
}
