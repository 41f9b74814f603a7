//! `turnout confirm`: finish a blue-green release; the old services are
//! drained and removed.

use std::process::ExitCode;

use crate::client::{self, Client, Connection};
use crate::cmd::status::print_status;
use crate::output::OutputFormat;
use crate::output::errln;
use turnout_api_types::AppStatus;

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
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the app's status after the confirm).
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
        let status = client.confirm(&app, args.switch).await?;
        announce(&status, "confirmed", args.output);
        print_status(&status, args.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Says on stderr what happened to the release (`release 2 confirmed`),
/// for people only.
pub(crate) fn announce(status: &AppStatus, what: &str, output: OutputFormat) {
    if output != OutputFormat::Human {
        return;
    }
    if let AppStatus {
        app,
        release: Some(r),
        ..
    } = status
    {
        errln!("release {} of app {app} {what}", r.id);
    }
}
