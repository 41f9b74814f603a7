//! Reading a template file on the CLI's machine, with the files it names
//! (DESIGN §6, §7): the `.env` of its folder feeds `${VAR}` (the process
//! environment wins), and the `env_file`s of its services are read here
//! and their values sent with it, so the server needs no access to them.
//! turnout-spec stays pure: this module does the reading.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use turnout_spec::{Diagnostic, EnvFiles, FieldPath, PlanSpans, Pos, Template};

/// A template read with its files.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The template as it runs: `env_file` values merged into
    /// `environment`, `base_dir` set.
    pub template: Template,
    /// The template as read, before the merge: what is sent, with
    /// `env_files`, for the server to merge (DESIGN §6).
    pub sent: Template,
    /// The values of every `env_file`, by the path as the template writes it.
    pub env_files: EnvFiles,
    /// The template's folder, absolute.
    pub base_dir: String,
    /// Where its `x-turnout.release` fields are written (`turnout plan`
    /// names them in the merged plan's diagnostics).
    pub plan_spans: PlanSpans,
}

/// The folder of `file`, absolute and without `.` or `..` parts.
fn base_dir(file: &Path) -> PathBuf {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut out = PathBuf::new();
    for c in absolute.parent().unwrap_or(Path::new("/")).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn error(file: &str, path: &FieldPath, message: String, hint: &str) -> Diagnostic {
    let mut d = Diagnostic::error(Pos::default(), path, message).hint(hint);
    d.file = file.to_string();
    d
}

/// Reads `file`, its folder's `.env` and its services' `env_file`s. On
/// failure, every problem found comes back (warnings too); on success,
/// the template and its warnings.
pub(crate) fn load(file: &Path) -> (Option<Loaded>, Vec<Diagnostic>) {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            let d = error(
                &name,
                &FieldPath::root(),
                format!("cannot read {name}: {e}"),
                "check the path",
            );
            return (None, vec![d]);
        }
    };
    let base = base_dir(file);
    let process = |var: &str| std::env::var(var).ok();
    // `.env` is optional, as in compose; one that is there must read.
    let dotenv_path = base.join(".env");
    let dotenv: BTreeMap<String, String> = match std::fs::read_to_string(&dotenv_path) {
        Ok(text) => {
            match turnout_spec::parse_env_file(&dotenv_path.display().to_string(), &text, &process)
            {
                Ok(vars) => vars.into_iter().collect(),
                Err(diagnostics) => return (None, diagnostics),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            let d = error(
                &dotenv_path.display().to_string(),
                &FieldPath::root(),
                format!("cannot read the .env of {name}: {e}"),
                "make it readable, or remove it",
            );
            return (None, vec![d]);
        }
    };
    let lookup = |var: &str| process(var).or_else(|| dotenv.get(var).cloned());
    let parsed = match turnout_spec::parse(&name, &text, &lookup) {
        Ok(parsed) => parsed,
        Err(diagnostics) => return (None, diagnostics),
    };
    let mut diagnostics = parsed.warnings;
    let mut env_files = EnvFiles::new();
    let mut failed = false;
    for service in &parsed.template.services {
        for (i, path) in service.env_file.iter().enumerate() {
            if env_files.contains_key(path) {
                continue;
            }
            let field = FieldPath::root()
                .key(&service.name)
                .key("env_file")
                .index(i);
            let resolved = base.join(path);
            match std::fs::read_to_string(&resolved) {
                Ok(text) => match turnout_spec::parse_env_file(
                    &resolved.display().to_string(),
                    &text,
                    &lookup,
                ) {
                    Ok(vars) => {
                        env_files.insert(path.clone(), vars.into_iter().collect());
                    }
                    Err(d) => {
                        failed = true;
                        diagnostics.extend(d);
                    }
                },
                Err(e) => {
                    failed = true;
                    diagnostics.push(error(
                        &name,
                        &field,
                        format!(
                            "cannot read env_file {path:?} of service {} ({}): {e}",
                            service.name,
                            resolved.display()
                        ),
                        "create the file, or remove it from env_file; its path is relative to the template's folder",
                    ));
                }
            }
        }
    }
    if failed {
        return (None, diagnostics);
    }
    let base_dir = base.display().to_string();
    let mut sent = parsed.template;
    sent.base_dir = Some(base_dir.clone());
    let mut template = sent.clone();
    if let Err(d) = turnout_spec::apply_env_files(&mut template, &env_files, &name) {
        // Every file named was read above; this would be a bug here.
        diagnostics.extend(d);
        return (None, diagnostics);
    }
    (
        Some(Loaded {
            template,
            sent,
            env_files,
            base_dir,
            plan_spans: parsed.plan_spans,
        }),
        diagnostics,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_dir_is_absolute_and_normalised() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(base_dir(Path::new("a/./b/../app.yaml")), cwd.join("a"));
        assert_eq!(base_dir(Path::new("/srv/x/app.yaml")), Path::new("/srv/x"));
    }
}
