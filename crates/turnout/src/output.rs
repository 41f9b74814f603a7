//! Human and JSON output shared by the verbs, and the standard streams as
//! the long-running verbs write to them.

use std::fmt;
use std::io::{self, IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use owo_colors::OwoColorize;
use turnout_spec::Diagnostic;

/// How a verb prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Text for people, coloured on a terminal.
    #[default]
    Human,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Whether to colour text written to stdout (`stderr = false`) or stderr.
///
/// Colour is on for a terminal, off when `NO_COLOR` is set (any value, see
/// no-color.org) and forced on by `CLICOLOR_FORCE` (for tests of the
/// colours themselves).
pub fn use_color(stderr: bool) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    }
}

/// Paints `text` in a colour by name (the console's blue/green/yellow).
pub fn paint(text: &str, color: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    match color {
        "blue" => text.blue().to_string(),
        "green" => text.green().to_string(),
        "yellow" => text.yellow().to_string(),
        "magenta" => text.magenta().to_string(),
        "red" => text.red().to_string(),
        "bold" => text.bold().to_string(),
        "dim" => text.dimmed().to_string(),
        _ => text.to_string(),
    }
}

/// Writes diagnostics for people: `error: file:line:col: path: message`
/// with the hint on the next line.
pub fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let color = use_color(true);
    for d in diagnostics {
        let label = if d.is_error() {
            paint("error", "red", color)
        } else {
            paint("warning", "yellow", color)
        };
        errln!("{label}: {d}");
    }
}

/// Stdout or stderr, written so that a stream closed under us never
/// stops the program: `turnout up | head -1`, a `tee` killed by Ctrl-C, a
/// terminal that went away. `println!` panics on such a stream (EPIPE:
/// Rust ignores SIGPIPE), and the panic would take the server down with
/// its instances still running.
///
/// The first failed write marks the stream broken and nothing is written
/// to it again: a pipe whose reader left does not come back, and retrying
/// would only spin (or write half lines). Whatever failed is dropped
/// silently, since the place to report it is what failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: the results people and scripts read.
    Stdout,
    /// Standard error: progress, warnings, errors and the logs.
    Stderr,
}

static STDOUT_BROKEN: AtomicBool = AtomicBool::new(false);
static STDERR_BROKEN: AtomicBool = AtomicBool::new(false);

impl Stream {
    fn broken_flag(self) -> &'static AtomicBool {
        match self {
            Stream::Stdout => &STDOUT_BROKEN,
            Stream::Stderr => &STDERR_BROKEN,
        }
    }

    /// Whether a write to this stream has failed (and writing stopped).
    pub fn is_broken(self) -> bool {
        self.broken_flag().load(Ordering::Relaxed)
    }

    /// Writes formatted text (what `outln!` and `errln!` call). Stdout is
    /// flushed at once, so a line is out before the server blocks.
    pub fn write_fmt(self, args: fmt::Arguments<'_>) {
        self.write_with(|w| w.write_fmt(args));
    }

    /// Writes bytes as one piece (a log line).
    pub fn write_bytes(self, bytes: &[u8]) {
        self.write_with(|w| w.write_all(bytes));
    }

    fn write_with(self, write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>) {
        if self.is_broken() {
            return;
        }
        // The lock keeps a line whole against other threads' lines.
        let result = match self {
            Stream::Stdout => {
                let mut out = io::stdout().lock();
                write(&mut out).and_then(|()| out.flush())
            }
            Stream::Stderr => write(&mut io::stderr().lock()),
        };
        if result.is_err() {
            self.broken_flag().store(true, Ordering::Relaxed);
        }
    }
}

/// What the log subscriber writes through: a [`Stream`], which never
/// reports an error (so tracing-subscriber has nothing to `eprintln!`
/// about, which would panic on the same closed stderr).
#[derive(Debug, Clone, Copy)]
pub struct StreamWriter(Stream);

impl io::Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stream {
    type Writer = StreamWriter;

    fn make_writer(&'a self) -> StreamWriter {
        StreamWriter(*self)
    }
}

/// `println!` through [`Stream::Stdout`]: never panics on a closed stdout.
macro_rules! outln {
    () => {
        $crate::output::Stream::Stdout.write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::Stream::Stdout.write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`Stream::Stdout`]: never panics on a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::Stream::Stdout.write_fmt(format_args!($($arg)*))
    };
}

/// `eprint!` through [`Stream::Stderr`]: never panics on a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::Stream::Stderr.write_fmt(format_args!($($arg)*))
    };
}

/// `eprintln!` through [`Stream::Stderr`]: never panics on a closed stderr.
macro_rules! errln {
    () => {
        $crate::output::Stream::Stderr.write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::Stream::Stderr.write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {err, errln, out, outln};
