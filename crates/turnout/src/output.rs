//! Human and JSON output shared by the verbs.

use std::io::IsTerminal;

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
        eprintln!("{label}: {d}");
    }
}
