//! turnout's process runtime: each instance a child process of the server
//! (DESIGN §6), in its own process group, its output appended to a log
//! file in the data dir, found again by a restarted server through `/proc`.
//!
//! Only the binary names this crate (DESIGN §3); the engine sees it
//! through [`turnout_runtime::Runtime`]. An instance's
//! [`Handle`](turnout_runtime::Handle) is `<pid>:<start time>` (the start
//! time in clock ticks since boot, field 22 of `/proc/<pid>/stat`): with
//! the pid it names the process uniquely, so a reused pid is never taken
//! for the instance.
//!
//! Decisions beyond DESIGN §6:
//!
//! - a string command that is a single simple command runs as
//!   `sh -c 'exec <command>'`; a compound one (`a && b`, `x | y`,
//!   `trap '' TERM; prog`) runs as `sh -c '<command>'`, since `exec` would
//!   drop all but its first program. Stopping signals the whole process
//!   group either way;
//! - when an instance's main process exits by itself, what is left of its
//!   process group (background programs of a shell) is killed, as a
//!   container's processes die with its main process;
//! - a `${PORT}`/`${PORT_<N>}` the instance has no port for and no
//!   `:-default` is an error at start, unless the instance's environment
//!   sets the variable itself;
//! - probe commands (`exec`) run beside the instance, with its environment
//!   and working directory, in a process group of their own that is
//!   killed at the timeout.

mod exec;
mod log;
mod proc_stat;
mod process;
mod warnings;

pub use log::{LogFollower, Tail, log_path, tail};
pub use process::{INSTANCE_KEY, ProcessRuntime};
pub use warnings::warnings;
