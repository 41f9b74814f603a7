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
//! - `build:` is refused with a hint until images are built through the
//!   API; nothing is pulled.

pub mod container;
mod docker;
mod sweep;
mod warnings;

pub use docker::{DEFAULT_HOST, DockerRuntime, engine_host};
pub use warnings::warnings;
