//! `turnout completions SHELL`: shell completion scripts.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `turnout completions`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  turnout completions bash > /etc/bash_completion.d/turnout\n  \
    turnout completions zsh > \"${fpath[1]}/_turnout\"\n  \
    turnout completions fish > ~/.config/fish/completions/turnout.fish"
)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the completion script of `shell` for `turnout`.
pub fn run<C: CommandFactory>(args: &Args) -> anyhow::Result<ExitCode> {
    let mut command = C::command();
    clap_complete::generate(args.shell, &mut command, "turnout", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
