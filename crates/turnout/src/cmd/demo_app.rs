//! `turnout demo-app` (being written).

use std::process::ExitCode;

/// Arguments of `turnout demo-app`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the demo service until it is stopped.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
