//! Images: the one a service runs, built from its `build:` through the
//! Engine API (`POST /build` with a tar of the context) or pulled when the
//! template asks for it (`pull_policy: always`, `aliyun.latest_image:
//! true`), else used as it is on this machine (DESIGN §6.1). What takes
//! long is said as it happens, in the server's log (target
//! `turnout::progress`), which `up` shows and `deploy`/`release` wait on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use turnout_runtime::RuntimeError;
use turnout_spec::Service;
use turnout_spec::template::{Build, PullPolicy};

use crate::docker::{DockerRuntime, engine, status};
use crate::dockerignore::{BadPattern, Ignore};

/// Label on an image turnout built: the service it was built for.
pub const LABEL_BUILT_FOR: &str = "turnout.built-for";

/// The image a service's containers are created from: its `image:` (a
/// `build:` is tagged with it, as compose does), else, for a `build:`,
/// `turnout-build-<service>:<hash of the build spec and folder>`. `None`
/// when it has neither.
pub fn image_ref(service: &Service, base_dir: Option<&Path>) -> Option<String> {
    if let Some(image) = &service.image {
        return Some(image.clone());
    }
    let build = service.build.as_ref()?;
    Some(built_tag(&service.name, build, base_dir))
}

/// The tag of an image built for `service` with no `image:`: the name as
/// a repository name can spell it, and a hash of everything the build is
/// made from but the files (so two templates, or two folders, never share
/// a tag).
pub fn built_tag(service: &str, build: &Build, base_dir: Option<&Path>) -> String {
    let mut name = String::new();
    for c in service.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-');
    let mut hash = Sha256::new();
    for part in [
        base_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        build.context.clone(),
        build.dockerfile.clone().unwrap_or_default(),
        build.target.clone().unwrap_or_default(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for (k, v) in &build.args {
        hash.update(k.as_bytes());
        hash.update([b'=']);
        hash.update(v.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("turnout-build-{name}:{hex}")
}

/// Whether the template asks for the newest image from its registry.
pub fn wants_pull(service: &Service) -> bool {
    service.settings.latest_image || service.container.pull_policy == Some(PullPolicy::Always)
}

/// The build context's folder: relative to the template's folder unless
/// absolute.
pub fn context_dir(
    service: &Service,
    build: &Build,
    base_dir: Option<&Path>,
) -> Result<PathBuf, RuntimeError> {
    let context = Path::new(&build.context);
    if context.is_absolute() {
        return Ok(context.to_path_buf());
    }
    let base = base_dir.ok_or_else(|| RuntimeError::Engine {
        action: format!("cannot build the image of service {}", service.name),
        message: format!(
            "its build context {} is relative, and the server was not told the template's folder",
            build.context
        ),
        hint: Some(
            "deploy with the CLI (it sends the template's folder), or give an absolute context"
                .into(),
        ),
    })?;
    let rest = build.context.strip_prefix("./").unwrap_or(&build.context);
    Ok(if rest.is_empty() || rest == "." {
        base.to_path_buf()
    } else {
        base.join(rest)
    })
}

/// Why a build context cannot be sent.
#[derive(Debug)]
pub enum ContextError {
    /// A file or folder of it cannot be read.
    Read(std::io::Error),
    /// Its `.dockerignore` has a line that is not a pattern.
    Ignore(BadPattern),
}

impl From<std::io::Error> for ContextError {
    fn from(e: std::io::Error) -> Self {
        ContextError::Read(e)
    }
}

/// The context folder as a tar archive, as `docker build` sends it
/// (symbolic links kept as links), without what its `.dockerignore`
/// excludes ([`crate::dockerignore`]). `dockerfile` and `.dockerignore`
/// are sent even when excluded, as docker sends them: the builder reads
/// them, and `COPY` still leaves them out.
pub fn context_tar(dir: &Path, dockerfile: &str) -> Result<Vec<u8>, ContextError> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text).map_err(ContextError::Ignore)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e.into()),
    };
    let always = [dockerfile.trim_start_matches("./"), ".dockerignore"];
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir(".", dir)?;
    append_folder(&mut tar, dir, "", &ignore, &always)?;
    Ok(tar.into_inner()?)
}

/// Appends what `dir` (the context's `rel` folder) holds and is not
/// excluded, in name order; an excluded folder is walked only when a `!`
/// line may take back something in it.
fn append_folder(
    tar: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &str,
    ignore: &Ignore,
    always: &[&str],
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let excluded = ignore.excludes(&path) && !always.contains(&path.as_str());
        let full = entry.path();
        if entry.file_type()?.is_dir() {
            if !excluded {
                tar.append_dir(&path, &full)?;
            }
            if !excluded || ignore.has_exceptions() {
                append_folder(tar, &full, &path, ignore, always)?;
            }
        } else if !excluded {
            tar.append_path_with_name(&full, &path)?;
        }
    }
    Ok(())
}

impl DockerRuntime {
    /// Builds `service`'s image from its `build:` and tags it `tag`,
    /// reporting the builder's steps as it goes. Every deploy or release
    /// that starts the service builds (the engine's layer cache makes an
    /// unchanged build quick), so that a changed Dockerfile or context is
    /// what the new containers run.
    pub(crate) async fn build(
        &self,
        service: &Service,
        build: &Build,
        base_dir: Option<&Path>,
        tag: &str,
    ) -> Result<(), RuntimeError> {
        let action = || format!("cannot build image {tag} of service {}", service.name);
        let dir = context_dir(service, build, base_dir)?;
        let dockerfile = build.dockerfile.as_deref().unwrap_or("Dockerfile");
        if !dir.is_dir() {
            return Err(RuntimeError::Engine {
                action: action(),
                message: format!("the build context {} is not a folder", dir.display()),
                hint: Some(format!(
                    "build.context ({}) is relative to the template's folder; make it name a \
                     folder that holds {dockerfile}",
                    build.context
                )),
            });
        }
        if !dir.join(dockerfile).is_file() {
            return Err(RuntimeError::Engine {
                action: action(),
                message: format!("there is no {dockerfile} in {}", dir.display()),
                hint: Some(
                    "build.dockerfile is relative to the build context (default Dockerfile)".into(),
                ),
            });
        }
        tracing::info!(
            target: "turnout::progress",
            "building image {tag} of service {} from {}",
            service.name,
            dir.display()
        );
        let tar_dir = dir.clone();
        let tar_dockerfile = dockerfile.to_string();
        let body = tokio::task::spawn_blocking(move || context_tar(&tar_dir, &tar_dockerfile))
            .await
            .map_err(|e| ContextError::Read(std::io::Error::other(e.to_string())))
            .and_then(|r| r)
            .map_err(|e| match e {
                ContextError::Read(e) => RuntimeError::Engine {
                    action: action(),
                    message: format!("cannot read the build context {}: {e}", dir.display()),
                    hint: Some("make every file of the context readable".into()),
                },
                ContextError::Ignore(bad) => RuntimeError::Engine {
                    action: action(),
                    message: format!("{}: {bad}", dir.join(".dockerignore").display()),
                    hint: Some(
                        "a line is a pattern (`*`, `?`, `[a-z]`, `**` for any folders), \
                         `!pattern` to take one back, or a `#` comment"
                            .into(),
                    ),
                },
            })?;
        let labels = HashMap::from([(LABEL_BUILT_FOR, service.name.as_str())]);
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(dockerfile)
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels);
        if !build.args.is_empty() {
            let args: HashMap<&str, &str> = build
                .args
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            options = options.buildargs(&args);
        }
        if let Some(target) = &build.target {
            options = options.target(target);
        }
        let mut stream = self.client().build_image(
            options.build(),
            None,
            Some(bollard::body_full(bytes::Bytes::from(body))),
        );
        // The last lines the builder wrote: the error names a step, and
        // the step's output says what went wrong.
        let mut last: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => return Err(build_error(action(), &e, &last)),
            };
            if let Some(detail) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                return Err(RuntimeError::Engine {
                    action: action(),
                    message: with_output(&detail, &last),
                    hint: Some(format!(
                        "fix the Dockerfile or the context ({}); `docker build {}` shows the \
                         same",
                        dir.display(),
                        dir.display()
                    )),
                });
            }
            for line in info
                .stream
                .iter()
                .chain(info.status.iter())
                .flat_map(|s| s.lines())
            {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                tracing::info!(target: "turnout::progress", "build {tag}: {line}");
                if last.len() == 5 {
                    last.remove(0);
                }
                last.push(line.to_string());
            }
        }
        match self.client().inspect_image(tag).await {
            Ok(_) => {
                tracing::info!(target: "turnout::progress", "built image {tag} of service {}", service.name);
                Ok(())
            }
            Err(e) => Err(engine(
                format!("cannot find the image {tag} just built"),
                &e,
            )),
        }
    }

    /// Pulls `image` from its registry, reporting progress. A failure is
    /// an error naming the image and what the registry (or the way to it)
    /// said: the template asked for the newest image, and an older local
    /// one is not used in its place.
    pub(crate) async fn pull(&self, service: &Service, image: &str) -> Result<(), RuntimeError> {
        let why = if service.container.pull_policy == Some(PullPolicy::Always) {
            "pull_policy: always"
        } else {
            "aliyun.latest_image: true"
        };
        tracing::info!(target: "turnout::progress", "pulling image {image} of service {} ({why})", service.name);
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut stream = self.client().create_image(Some(options), None, None);
        let fail = |message: String| RuntimeError::Engine {
            action: format!("cannot pull image {image} of service {}", service.name),
            message,
            hint: Some(format!(
                "the template asks for the newest image ({why}), so the local one is not used \
                 instead; make the registry reachable, or drop {why} to run the image on this \
                 machine (images/build.sh, docker build or docker load make one)"
            )),
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        return Err(fail(message));
                    }
                    if let Some(line) = info.status {
                        let id = info.id.map(|id| format!("{id}: ")).unwrap_or_default();
                        tracing::info!(target: "turnout::progress", "pull {image}: {id}{line}");
                    }
                }
                Err(e) => return Err(fail(docker_message(&e))),
            }
        }
        Ok(())
    }
}

/// What the engine said, without bollard's wrapping.
fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn with_output(message: &str, last: &[String]) -> String {
    if last.is_empty() {
        message.trim().to_string()
    } else {
        format!("{} (last output: {})", message.trim(), last.join(" | "))
    }
}

fn build_error(action: String, e: &DockerError, last: &[String]) -> RuntimeError {
    if status(e).is_none() && !matches!(e, DockerError::DockerStreamError { .. }) {
        return engine(action, e);
    }
    RuntimeError::Engine {
        action,
        message: with_output(&docker_message(e), last),
        hint: Some("fix the Dockerfile or the build context".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn build(context: &str) -> Build {
        Build {
            context: context.into(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        }
    }

    #[test]
    fn a_built_image_is_tagged_by_service_and_build_spec() {
        let a = built_tag("serviceB_v2", &build("./web"), Some(Path::new("/srv/a")));
        assert!(a.starts_with("turnout-build-serviceb-v2:"), "{a}");
        assert_eq!(a.len(), "turnout-build-serviceb-v2:".len() + 16);
        assert_eq!(
            a,
            built_tag("serviceB_v2", &build("./web"), Some(Path::new("/srv/a")))
        );
        assert_ne!(
            a,
            built_tag("serviceB_v2", &build("./web"), Some(Path::new("/srv/b")))
        );
        let mut with_args = build("./web");
        with_args.args.insert("A".into(), "1".into());
        assert_ne!(
            a,
            built_tag("serviceB_v2", &with_args, Some(Path::new("/srv/a")))
        );
    }

    #[test]
    fn the_context_is_relative_to_the_template_folder() {
        let parsed = turnout_spec::parse("app.yaml", "web:\n  build: ./web\n", &|_| None).unwrap();
        let web = &parsed.template.services[0];
        let b = web.build.as_ref().unwrap();
        assert_eq!(
            context_dir(web, b, Some(Path::new("/srv/app"))).unwrap(),
            Path::new("/srv/app/web")
        );
        assert_eq!(
            context_dir(web, &build("."), Some(Path::new("/srv/app"))).unwrap(),
            Path::new("/srv/app")
        );
        assert_eq!(
            context_dir(web, &build("/abs"), None).unwrap(),
            Path::new("/abs")
        );
        let err = context_dir(web, b, None).unwrap_err();
        assert!(err.to_string().contains("is relative"), "{err}");
    }

    #[test]
    fn the_context_tar_holds_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), "a").unwrap();
        let bytes = context_tar(dir.path(), "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert!(names.iter().any(|n| n.ends_with("Dockerfile")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("sub/a.txt")), "{names:?}");
    }

    #[test]
    fn the_context_tar_leaves_out_what_the_dockerignore_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("Dockerfile.web", "FROM scratch\n");
        write(
            ".dockerignore",
            "# not sent\nsecret.key\ndata\n!data/keep.txt\n**/*.log\nDockerfile.web\n",
        );
        write("secret.key", "k");
        write("data/big.bin", "b");
        write("data/keep.txt", "t");
        write("src/app.py", "p");
        write("src/deep/x.log", "l");
        let bytes = context_tar(dir.path(), "Dockerfile.web").unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .filter(|n| n != ".")
            .collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile.web",
                "data/keep.txt",
                "src",
                "src/app.py",
                "src/deep",
            ]
        );
        write(".dockerignore", "ok\n[oops\n");
        match context_tar(dir.path(), "Dockerfile.web") {
            Err(ContextError::Ignore(bad)) => assert_eq!(bad.line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn latest_image_and_pull_policy_always_ask_for_a_pull() {
        let parse = |yaml: &str| {
            turnout_spec::parse("app.yaml", yaml, &|_| None)
                .unwrap()
                .template
                .services[0]
                .clone()
        };
        assert!(!wants_pull(&parse("web:\n  image: a:1\n")));
        assert!(!wants_pull(&parse(
            "services:\n  web:\n    image: a:1\n    pull_policy: missing\n"
        )));
        assert!(wants_pull(&parse(
            "services:\n  web:\n    image: a:1\n    pull_policy: always\n"
        )));
        assert!(wants_pull(&parse(
            "web:\n  image: a:1\n  labels:\n    aliyun.latest_image: true\n"
        )));
    }
}
