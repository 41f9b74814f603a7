//! `turnout diff` (being written).

use std::process::ExitCode;

/// Arguments of `turnout diff`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the verb.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
