//! The `turnout` binary: parses the command line, wires the parts together
//! and runs one verb. Each verb lives in its own module under `cmd/`.

mod client;
mod cmd;
mod local_template;
mod output;
mod runtime;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zero-downtime releases of multi-service apps: blue-green and standard
/// (rolling) releases on a weighted HTTP router that turnout owns.
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Deploy a new app from a template and wait until its instances are ready.
    Deploy(cmd::deploy::Args),
    /// Release an app to a new template (blue-green by default).
    Release(cmd::release::Args),
    /// Print a template's release plan: steps, shares, least times; starts nothing.
    Plan(cmd::plan::Args),
    /// Show an app's release, services (old/new/unchanged) and route weights.
    Status(cmd::status::Args),
    /// List an app's instances with their state, endpoint, pid and restarts.
    Ps(cmd::ps::Args),
    /// Show the output of a service's instances, or follow it.
    Logs(cmd::logs::Args),
    /// List an app's routes with each service's weight and traffic share.
    Routes(cmd::routes::Args),
    /// Set the weights of services on a route, in one atomic step.
    Weights(cmd::weights::Args),
    /// Flip a two-service route 0/100 in one step.
    Switch(cmd::switch::Args),
    /// Confirm a release: the old services are drained and removed.
    Confirm(cmd::confirm::Args),
    /// Roll a release back: the new services are removed, weights restored.
    Rollback(cmd::rollback::Args),
    /// Move a canary or gray release to its next step now (--full: to 100%).
    Promote(cmd::steps::PromoteArgs),
    /// Hold a canary or gray release at its step.
    Pause(cmd::steps::HoldArgs),
    /// Run a paused step again.
    Resume(cmd::steps::HoldArgs),
    /// Roll the release back, recording why (aborted: <reason>).
    Abort(cmd::steps::AbortArgs),
    /// List an app's releases, newest first.
    History(cmd::history::Args),
    /// Per-version figures of the release and the A/B comparison.
    Report(cmd::report::Args),
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
        Command::Completions(args) => cmd::completions::run::<Cli>(&args),
        Command::Deploy(args) => cmd::deploy::run(&args),
        Command::Release(args) => cmd::release::run(&args),
        Command::Plan(args) => cmd::plan::run(&args),
        Command::Status(args) => cmd::status::run(&args),
        Command::Ps(args) => cmd::ps::run(&args),
        Command::Logs(args) => cmd::logs::run(&args),
        Command::Routes(args) => cmd::routes::run(&args),
        Command::Weights(args) => cmd::weights::run(&args),
        Command::Switch(args) => cmd::switch::run(&args),
        Command::Confirm(args) => cmd::confirm::run(&args),
        Command::Rollback(args) => cmd::rollback::run(&args),
        Command::Promote(args) => cmd::steps::promote(&args),
        Command::Pause(args) => cmd::steps::hold(&args, false),
        Command::Resume(args) => cmd::steps::hold(&args, true),
        Command::Abort(args) => cmd::steps::abort(&args),
        Command::History(args) => cmd::history::run(&args),
        Command::Report(args) => cmd::report::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::errln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
