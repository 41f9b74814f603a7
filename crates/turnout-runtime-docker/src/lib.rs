//! turnout's docker runtime (DESIGN §6.1): each instance a container,
//! made and watched through the Docker Engine API (bollard; never the
//! `docker` CLI), on its app's user-defined bridge network
//! (`<app>_default`) with its compose service name as an alias, reached by
//! the router at its own address and ports (nothing is published unless
//! the template's `ports:` say so).
//!
//! Only the binary names this crate (DESIGN §3); the engine sees it
//! through [`turnout_runtime::Runtime`]. An instance's
//! [`Handle`](turnout_runtime::Handle) is its container id.
//!
//! Ownership: every container carries the labels of [`container`]
//! (`turnout.app`, `turnout.service`, `turnout.instance`, `turnout.key`,
//! `turnout.server`, `turnout.template-version`). A container without
//! this server's id is never stopped or removed; its name is skipped.
//!
//! Decisions beyond DESIGN §6.1:
//!
//! - a string `command`/`entrypoint` is split into words as compose does
//!   (no shell is run: an image need not have one, `turnout:dev` has
//!   none); `${PORT}` and `${PORT_<N>}` are filled in as on processes;
//! - `stop` uses the service's `stop_grace_period` when it has one
//!   (recorded as the container's stop timeout), else the engine's grace;
//!   anonymous volumes go with their container, named ones are kept;
//! - `exec` (probe commands) cannot kill a command past its timeout (the
//!   Engine API has no such call): the probe fails, the command is left;
//! - `build:` is built through the API (`POST /build`, a tar of the
//!   context made here, without what its `.dockerignore` excludes:
//!   [`dockerignore`]) whenever a deploy or
//!   release starts the service, tagged with its `image:`, else
//!   `turnout-build-<service>:<hash of the build spec>`
//!   ([`image::image_ref`]); `pull_policy: never` with the image present
//!   skips the build;
//! - nothing is pulled unless the template asks (`pull_policy: always`,
//!   `aliyun.latest_image: true`); then a failed pull is an error naming
//!   the image and the registry's answer, and the local image is not used
//!   in its place (`missing`, the default, and `never` use the local
//!   image, and a missing one is an error: DESIGN §6.1 pulls nothing
//!   else);
//! - the router reaches a running container from inside its network
//!   namespace where it can ([`ContainerNamespaces`]), over the bridge
//!   otherwise;
//! - progress (builds, pulls, containers being created and started) goes
//!   to the server's log at info level, target `turnout::progress`.

pub mod container;
mod docker;
pub mod dockerignore;
pub mod image;
mod namespaces;
mod start_error;
mod sweep;
mod warnings;

pub use docker::{DEFAULT_HOST, DockerRuntime, engine_host};
pub use namespaces::ContainerNamespaces;
pub use warnings::warnings;
