//! `turnout validate` (being written).

use std::process::ExitCode;

/// Arguments of `turnout validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the verb.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
