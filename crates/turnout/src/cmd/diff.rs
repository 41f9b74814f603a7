//! `turnout diff OLD NEW`: what a release from OLD to NEW would do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use turnout_spec::{Diagnostic, Strategy, Template};

use super::validate::load_diagnosed;
use crate::output::outln;
use crate::output::{OutputFormat, paint, print_diagnostics, use_color};

/// Arguments of `turnout diff`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Services are shown as in the console: unchanged (yellow), old (blue, \
    removed on confirm), new (green, started by the release), changed (same name, other spec: \
    refused by blue-green).\n\nExit status: 0 when the release is possible, 1 when a template is \
    invalid or the strategy refuses the change, 2 on a usage error.\n\nExample:\n  turnout diff \
    examples/hello/app.yaml examples/hello/app-frontend-v2.yaml"
)]
pub struct Args {
    /// The template running now.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The template to release.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// The release strategy to check the change against.
    #[arg(long, default_value = "blue-green", value_parser = parse_strategy)]
    strategy: Strategy,
    /// The route domain a bare route prefix is completed with.
    #[arg(long, env = "TURNOUT_DOMAIN", default_value = turnout_spec::DEFAULT_DOMAIN)]
    domain: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

fn load(
    path: &Path,
    warnings: &mut Vec<Diagnostic>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Template> {
    let (template, diagnostics) = load_diagnosed(path);
    let (e, w): (Vec<_>, Vec<_>) = diagnostics.into_iter().partition(Diagnostic::is_error);
    errors.extend(e);
    warnings.extend(w);
    template
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let old = load(&args.old, &mut warnings, &mut errors);
    let new = load(&args.new, &mut warnings, &mut errors);
    let diff = match (&old, &new) {
        (Some(old), Some(new)) => {
            let diff = turnout_spec::diff(old, new, &args.domain);
            for mut d in diff.check(args.strategy) {
                d.file = args.new.display().to_string();
                errors.push(d);
            }
            Some(diff)
        }
        _ => None,
    };
    match args.output {
        OutputFormat::Json => {
            let doc = json!({
                "old": args.old.display().to_string(),
                "new": args.new.display().to_string(),
                "strategy": args.strategy,
                "services": diff.as_ref().map(|d| &d.services),
                "routes": diff.as_ref().map(|d| &d.routes),
                "errors": errors,
                "warnings": warnings,
            });
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Human => {
            print_diagnostics(&warnings);
            print_diagnostics(&errors);
            if let Some(diff) = &diff {
                print_human(diff, args.strategy);
            }
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(diff: &turnout_spec::TemplateDiff, strategy: Strategy) {
    let color = use_color(false);
    let width = diff
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    outln!("{} ({strategy})", paint("services", "bold", color));
    for s in &diff.services {
        let what = match s.role {
            turnout_spec::Role::Unchanged => "keeps running",
            turnout_spec::Role::Old => "removed on confirm",
            turnout_spec::Role::New => "started by the release",
            turnout_spec::Role::Changed if strategy == Strategy::Standard => "replaced in place",
            turnout_spec::Role::Changed => "refused: rename it",
        };
        let name = format!("{:width$}", s.name);
        let role = format!("{:9}", s.role.to_string());
        outln!(
            "  {}  {}  {}",
            paint(&name, s.color, color),
            paint(&role, s.color, color),
            paint(what, "dim", color)
        );
    }
    if diff.routes.is_empty() {
        return;
    }
    let width = diff.routes.iter().map(|r| r.id.len()).max().unwrap_or(0);
    outln!("{}", paint("routes", "bold", color));
    for r in &diff.routes {
        let services: Vec<String> = r
            .services
            .iter()
            .map(|n| {
                let c = diff
                    .services
                    .iter()
                    .find(|s| &s.name == n)
                    .map_or("", |s| s.color);
                paint(n, c, color)
            })
            .collect();
        let internal = if r.internal { " (internal)" } else { "" };
        outln!(
            "  {:width$}  {:7} {}{internal}",
            r.id,
            r.change.to_string(),
            services.join(", ")
        );
    }
}
