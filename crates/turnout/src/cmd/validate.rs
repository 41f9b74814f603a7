//! `turnout validate FILE...`: check templates and report every problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use turnout_spec::{Diagnostic, FieldPath, Pos, Template};

use crate::output::outln;
use crate::output::{OutputFormat, paint, print_diagnostics, use_color};
use crate::runtime::RuntimeKind;

/// Arguments of `turnout validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The fields the runtime ignores are warnings naming it (the process runtime \
    ignores volumes, user and the other container-only fields; the docker runtime ignores \
    container_name and top-level networks), as the server warns when the template is deployed; \
    no server or engine is asked.\n\nExit status: 0 when every template is valid (warnings \
    allowed), 1 when one is not, 2 on a usage error.\n\nExamples:\n  turnout validate \
    examples/hello/*.yaml\n  turnout validate --runtime docker examples/hello/app-docker.yaml"
)]
pub struct Args {
    /// Template files (seed layout or compose v2/v3). `${VAR}` is filled in
    /// from the environment, else from the `.env` of the file's folder.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// The runtime whose warnings to give: the one `up`/`serve --runtime`
    /// would run the templates on.
    #[arg(long, env = "TURNOUT_RUNTIME", value_enum, default_value = "process")]
    runtime: RuntimeKind,
}

/// Loads a template with its `.env` and `env_file`s
/// ([`crate::local_template::load`]); an unreadable file becomes a
/// diagnostic like any other problem, so that every verb reports it the
/// same way.
pub(crate) fn load_diagnosed(file: &Path) -> (Option<Template>, Vec<Diagnostic>) {
    let (loaded, diagnostics) = crate::local_template::load(file);
    (loaded.map(|l| l.template), diagnostics)
}

/// What `runtime` ignores of a valid template, as warnings of `file`
/// (without a line: the runtime names the service and the field).
fn runtime_warnings(runtime: RuntimeKind, template: &Template, file: &str) -> Vec<Diagnostic> {
    runtime
        .warnings(template)
        .into_iter()
        .map(|w| {
            let mut d =
                Diagnostic::warning(Pos::default(), &FieldPath::root(), w.to_string()).hint(w.hint);
            d.file = file.to_string();
            d
        })
        .collect()
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    let mut reports = Vec::new();
    let color = use_color(false);
    for file in &args.files {
        let (template, mut diagnostics) = load_diagnosed(file);
        if let Some(t) = &template {
            diagnostics.extend(runtime_warnings(
                args.runtime,
                t,
                &file.display().to_string(),
            ));
        }
        all_ok &= template.is_some();
        match args.output {
            OutputFormat::Human => {
                print_diagnostics(&diagnostics);
                let name = file.display();
                match &template {
                    Some(t) => {
                        let routes: usize = t
                            .services
                            .iter()
                            .map(|s| {
                                s.settings
                                    .routes
                                    .iter()
                                    .map(|b| b.routes.len())
                                    .sum::<usize>()
                            })
                            .sum();
                        let warnings = diagnostics.len();
                        let mut line = format!(
                            "{name}: {} ({} services, {routes} routes",
                            paint("valid", "green", color),
                            t.services.len()
                        );
                        if warnings > 0 {
                            line.push_str(&format!(", {warnings} warnings"));
                        }
                        line.push(')');
                        outln!("{line}");
                    }
                    None => {
                        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                        outln!(
                            "{name}: {} ({errors} errors)",
                            paint("invalid", "red", color)
                        );
                    }
                }
            }
            OutputFormat::Json => {
                let (errors, warnings): (Vec<_>, Vec<_>) =
                    diagnostics.iter().partition(|d| d.is_error());
                reports.push(json!({
                    "file": file.display().to_string(),
                    "valid": template.is_some(),
                    "template": template,
                    "errors": errors,
                    "warnings": warnings,
                }));
            }
        }
    }
    if args.output == OutputFormat::Json {
        let doc = json!({ "valid": all_ok, "files": reports });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
