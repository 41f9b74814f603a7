//! The `turnout` binary: parses the command line, wires the parts together
//! and runs one verb. Each verb lives in its own module under `cmd/`.

mod cmd;
mod output;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zero-downtime releases of multi-service apps: blue-green, canary, gray
/// and A/B releases on a weighted HTTP router that turnout owns.
#[derive(Debug, Parser)]
#[command(
    name = "turnout",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server with an app deployed from FILE, in the foreground.
    Up(cmd::up::Args),
    /// Run the server (router, release engine, API); resumes its data dir.
    Serve(cmd::serve::Args),
    /// Check templates and report every problem with its file, line and field.
    Validate(cmd::validate::Args),
    /// Compare two templates: which services are unchanged, old, new or changed.
    Diff(cmd::diff::Args),
    /// Run the small HTTP demo service used by the examples and tests.
    DemoApp(cmd::demo_app::Args),
    /// Run the router alone, fed by a route file (reloaded on SIGHUP and on change).
    Proxy(cmd::proxy::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => cmd::up::run(args),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Diff(args) => cmd::diff::run(&args),
        Command::DemoApp(args) => cmd::demo_app::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
