//! `turnout deploy FILE`: deploy a new app on the server and wait until
//! its instances are ready.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::client::{self, ApiError, Client, Connection};
use crate::cmd::release::{Goal, print_accepted, print_warnings, wait};
use crate::output::{OutputFormat, print_diagnostics};
use crate::output::{errln, outln};
use turnout_api_types::{AcceptedStatus, AppStatus, DeployRequest};

/// Arguments of `turnout deploy`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The template is read here: `${VAR}` comes from this shell's environment, else \
    from the `.env` of the template's folder; `env_file`s are read here and their values sent; \
    problems are shown as `turnout validate` shows them; nothing is sent when it is invalid.\n\n\
    Exit status: 0 when every instance is ready, 1 when the template or the server refuses, \
    the instances are not ready in time, or one cannot start as things stand (its command is \
    not found, a host port it publishes is held: the status's `error`; the server keeps \
    retrying it).\n\nExample:\n  turnout deploy examples/hello/app.yaml"
)]
pub struct Args {
    /// The template to deploy.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The app's name; default: the template's `name:`, else its directory's
    /// name (`examples/hello/app.yaml` → `hello`), as compose does.
    #[arg(long, visible_alias = "app", value_name = "APP")]
    name: Option<String>,
    /// How long to wait for the instances to be ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
    /// Output format (json: the app's status once it is ready).
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    conn: Connection,
}

/// A template read and checked here, ready to send.
#[derive(Debug)]
pub(crate) struct LocalTemplate {
    /// The template as turnout writes it back (variables filled in,
    /// `env_file` values not merged: the server merges `env_files`).
    pub yaml: String,
    /// The file name, which the server names the template by.
    pub source_name: String,
    /// The compose `name:` field.
    pub name: Option<String>,
    /// The values of its `env_file`s.
    pub env_files: turnout_spec::EnvFiles,
    /// The template's folder, absolute.
    pub base_dir: String,
}

/// Reads a template as `turnout validate` does (with its `.env` and
/// `env_file`s), printing warnings; an invalid one is an error after its
/// diagnostics are printed.
pub(crate) fn load_template(file: &Path) -> anyhow::Result<LocalTemplate> {
    let (loaded, diagnostics) = crate::local_template::load(file);
    print_diagnostics(&diagnostics);
    let Some(loaded) = loaded else {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        return Err(ApiError::local(
            format!("{} is invalid ({errors} errors)", file.display()),
            "fix it and try again; nothing was sent to the server",
        )
        .into());
    };
    Ok(LocalTemplate {
        yaml: turnout_spec::to_yaml(&loaded.sent),
        source_name: file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        name: loaded.template.name,
        env_files: loaded.env_files,
        base_dir: loaded.base_dir,
    })
}

/// The name of the app a template creates, by the one rule of `up` and
/// `deploy` (DESIGN §2, as compose names a project): `--name`, else the
/// template's `name:`, else the name of the directory the file is in
/// (made absolute first, so `app.yaml` in `~/hello` gives `hello`),
/// lowercased and without the characters an app name cannot hold, as
/// compose normalises a directory's name. A given name is checked, not
/// changed, by the API's rule (`up` deploys without the API).
pub(crate) fn app_name(
    flag: Option<&str>,
    template_name: Option<&str>,
    file: &Path,
) -> Result<String, ApiError> {
    let given = flag.or(template_name.filter(|n| !n.is_empty()));
    let name = match given {
        Some(name) => name.to_string(),
        None => directory_name(file).ok_or_else(|| {
            ApiError::local(
                format!(
                    "cannot name the app after the directory of {}",
                    file.display()
                ),
                "name it with --name APP",
            )
        })?,
    };
    if !turnout_api_types::valid_app_name(&name) {
        return Err(ApiError::local(
            format!("invalid app name {name:?}"),
            format!(
                "{}; give one with --name APP",
                turnout_api_types::APP_NAME_RULE
            ),
        ));
    }
    Ok(name)
}

/// The directory part of the rule: `a/./app.yaml` and `a/sub/../app.yaml`
/// name `a`; `My App/` gives `myapp`.
fn directory_name(file: &Path) -> Option<String> {
    let absolute = std::path::absolute(file).ok()?;
    let dir = absolute.parent()?;
    let mut parts: Vec<_> = Vec::new();
    for c in dir.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let raw = match parts.last()? {
        std::path::Component::Normal(n) => n.to_string_lossy(),
        _ => return None,
    };
    let name: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let name = name.trim_start_matches(['-', '_']);
    (!name.is_empty()).then(|| name.to_string())
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let template = load_template(&args.file)?;
    let name = app_name(args.name.as_deref(), template.name.as_deref(), &args.file)?;
    client::block_on(async {
        let client = Client::connect(&args.conn)?;
        let request = DeployRequest {
            name: name.clone(),
            template: template.yaml,
            source_name: Some(template.source_name),
            env_files: template.env_files,
            base_dir: Some(template.base_dir),
        };
        let AcceptedStatus { status, warnings } = client.deploy(&request).await?;
        print_warnings(&warnings);
        if args.output == OutputFormat::Human {
            errln!(
                "deployed app {name} from {}; starting instances",
                args.file.display()
            );
        }
        let waited = wait(
            &client,
            &name,
            status,
            Goal::Deploy,
            Duration::from_secs(args.timeout),
        )
        .await?;
        print_accepted(waited.status.clone(), warnings, args.output)?;
        if args.output == OutputFormat::Human {
            print_try_lines(&client, &waited.status);
        }
        waited.into_result()
    })
}

/// Shows how to reach the app's public routes, when the public address is
/// known from server.json.
fn print_try_lines(client: &Client, s: &AppStatus) {
    let Some(public) = &client.endpoint().public else {
        return;
    };
    for r in s.routes.iter().filter(|r| !r.internal) {
        let (host, path) = r.id.split_once('/').unwrap_or((r.id.as_str(), ""));
        outln!("try: curl -H 'Host: {host}' http://{public}/{path}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_named_after_the_directory_as_compose_does() {
        let name = |p: &str| app_name(None, None, Path::new(p)).ok();
        assert_eq!(name("examples/hello/app.yaml").as_deref(), Some("hello"));
        assert_eq!(name("/srv/shop/./compose.yaml").as_deref(), Some("shop"));
        assert_eq!(name("/srv/shop/sub/../app.yaml").as_deref(), Some("shop"));
        // Normalised as compose normalises a directory's name.
        assert_eq!(
            name("/srv/My Shop.v2/app.yaml").as_deref(),
            Some("myshopv2")
        );
        assert_eq!(name("/srv/_tmp/app.yaml").as_deref(), Some("tmp"));
        assert_eq!(name("/srv/+++/app.yaml"), None);
        // Tests run in crates/turnout.
        assert_eq!(name("app.yaml").as_deref(), Some("turnout"));
        assert_eq!(name("/app.yaml"), None, "the root directory has no name");
    }

    #[test]
    fn the_flag_wins_then_the_template_name() {
        let file = Path::new("examples/hello/app.yaml");
        let name = |flag, template| app_name(flag, template, file).ok();
        assert_eq!(name(None, Some("shop")).as_deref(), Some("shop"));
        assert_eq!(name(Some("x"), Some("shop")).as_deref(), Some("x"));
        assert_eq!(name(Some("x"), None).as_deref(), Some("x"));
        assert_eq!(name(None, Some("")).as_deref(), Some("hello"));
        // A given name is checked as the API checks it, not rewritten.
        let err = app_name(Some("my app"), None, file).unwrap_err();
        assert!(
            err.to_string().contains("invalid app name \"my app\""),
            "{err}"
        );
        assert!(app_name(Some("-x"), None, file).is_err());
        assert!(app_name(Some(&"a".repeat(65)), None, file).is_err());
    }
}
