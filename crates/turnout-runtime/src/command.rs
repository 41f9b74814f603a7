//! From a template `command` to the argument vector that is executed.
//!
//! Two things happen here (DESIGN §6): `${PORT}`, `${PORT_<N>}` and their
//! `:-default` forms are filled in from the instance's ports, in string and
//! list commands alike (the template reader left them in place); and a
//! string command becomes `sh -c 'exec <command>'`, so that the instance's
//! pid is the program's own and signals reach it directly.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use turnout_spec::Command;
use turnout_spec::interpolate::closing_brace;

/// Why a port variable could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPort {
    /// The variable's name (`PORT_5000`).
    pub variable: String,
    /// Why it has no value.
    pub reason: String,
}

/// The values of the runtime's port variables for one instance.
#[derive(Debug, Clone, Copy)]
pub struct PortVars<'a> {
    /// Container port → host port.
    pub ports: &'a BTreeMap<u16, u16>,
    /// The container port that is also `PORT`.
    pub primary: Option<u16>,
    /// The instance's environment: a port variable the instance has no
    /// port for takes its value from here (a template that sets `PORT`
    /// itself), as the shell would.
    pub env: &'a [(String, String)],
}

impl PortVars<'_> {
    /// The value of `name` if it is a runtime port variable: `None` when
    /// it is some other variable, `Some(Err)` when it is a port variable
    /// without a value.
    fn lookup(&self, name: &str) -> Option<Result<String, UnknownPort>> {
        if !turnout_spec::interpolate::is_runtime_variable(name) {
            return None;
        }
        let port = self.port(name);
        if port.is_err()
            && let Some((_, value)) = self.env.iter().rev().find(|(k, _)| k == name)
        {
            return Some(Ok(value.clone()));
        }
        Some(port.map(|p| p.to_string()))
    }

    fn port(&self, name: &str) -> Result<u16, UnknownPort> {
        let unknown = |reason: String| UnknownPort {
            variable: name.to_string(),
            reason,
        };
        if name == "PORT" {
            match self.primary {
                Some(p) => self.ports.get(&p).copied().ok_or_else(|| {
                    unknown(format!("the primary port {p} has no mapped host port"))
                }),
                None => Err(unknown("the service has no routed port".into())),
            }
        } else {
            let container: Option<u16> = name["PORT_".len()..].parse().ok();
            match container.and_then(|c| self.ports.get(&c)) {
                Some(host) => Ok(*host),
                None => Err(unknown(format!(
                    "the service declares no container port {}",
                    &name["PORT_".len()..]
                ))),
            }
        }
    }
}

/// Fills in `$PORT`, `${PORT}`, `${PORT:-default}`, `${PORT-default}` and
/// the same forms of `PORT_<N>`. Every other `$` is left as written: the
/// template reader substituted the template's variables already, and what
/// remains (`$$`, `$HOME` in a shell command) is the shell's.
pub fn expand_ports(input: &str, vars: PortVars<'_>) -> Result<String, UnknownPort> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + 1..];
        if let Some(after) = after.strip_prefix('$') {
            // `$$` is the shell's own pid; keep both.
            out.push_str("$$");
            rest = after;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let Some(end) = closing_brace(body_start) else {
                out.push('$');
                rest = after;
                continue;
            };
            let body = &body_start[..end];
            let name_len = name_len(body);
            let (name, op) = body.split_at(name_len);
            match vars.lookup(name) {
                Some(value) => {
                    let default = op.strip_prefix(":-").or_else(|| op.strip_prefix('-'));
                    match (value, default) {
                        (Ok(value), _) if op.is_empty() || default.is_some() => {
                            out.push_str(&value);
                        }
                        (Err(_), Some(default)) => out.push_str(&expand_ports(default, vars)?),
                        (Err(e), None) if op.is_empty() => return Err(e),
                        // Some other operator (`:?`, `:+`): the shell's.
                        _ => out.push_str(&rest[idx..idx + 2 + end + 1]),
                    }
                }
                None => out.push_str(&rest[idx..idx + 2 + end + 1]),
            }
            rest = &body_start[end + 1..];
        } else {
            let len = name_len(after);
            let name = &after[..len];
            match vars.lookup(name) {
                Some(value) => out.push_str(&value?),
                None => {
                    out.push('$');
                    out.push_str(name);
                }
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count()
}

/// The argument vector of `command`, ports filled in; `None` when there is
/// nothing to run. `turnout_exe` replaces a leading `turnout`.
pub fn argv(
    command: &Command,
    vars: PortVars<'_>,
    turnout_exe: &Path,
) -> Result<Option<Vec<OsString>>, UnknownPort> {
    match command {
        Command::Exec(args) => {
            let mut out = Vec::with_capacity(args.len());
            for (i, arg) in args.iter().enumerate() {
                if i == 0 && arg == "turnout" {
                    out.push(turnout_exe.as_os_str().to_owned());
                } else {
                    out.push(OsString::from(expand_ports(arg, vars)?));
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
        Command::Shell(text) => {
            let text = expand_ports(text, vars)?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            let script = shell_script(&text, turnout_exe);
            Ok(Some(vec!["/bin/sh".into(), "-c".into(), script.into()]))
        }
    }
}

/// Words that start a compound command or are shell builtins: `exec`
/// cannot run them, so a command starting with one runs under the shell.
const NOT_EXECUTABLE: &[&str] = &[
    "!", "{", "}", "[[", "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while",
    "until", "for", "in", "function", "select", ".", ":", "break", "continue", "eval", "exec",
    "exit", "export", "readonly", "return", "set", "shift", "times", "trap", "unset", "cd",
    "alias", "ulimit", "umask", "wait", "source",
];

/// The script given to `sh -c`.
///
/// A simple command (`python app.py --port 8000`, possibly with leading
/// `VAR=value` assignments and redirections) is prefixed with `exec`
/// (DESIGN §6). A compound one (`a && b`, `trap '' TERM; sleep 30`,
/// `x | y`, `if ...`) is left as written: `exec` would replace the shell
/// with the first program and drop the rest. Signals still reach every
/// program, because the runtime signals the whole process group.
pub fn shell_script(text: &str, turnout_exe: &Path) -> String {
    let lexed = lex(text);
    let Some(first) = lexed.words.iter().position(|w| !w.assignment) else {
        return text.to_string();
    };
    let word = lexed.words[first];
    let raw = &text[word.start..word.end];
    let mut script = String::with_capacity(text.len() + 16);
    script.push_str(&text[..word.start]);
    if !lexed.compound && !NOT_EXECUTABLE.contains(&raw) {
        script.push_str("exec ");
    }
    if raw == "turnout" {
        script.push_str(&shell_quote(&turnout_exe.to_string_lossy()));
    } else {
        script.push_str(raw);
    }
    script.push_str(&text[word.end..]);
    script
}

/// `s` in single quotes, safe to paste into a shell command.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One word of the first simple command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    start: usize,
    end: usize,
    /// `NAME=value` before the command name.
    assignment: bool,
}

/// What the lexer learned about a shell command.
#[derive(Debug, Default)]
struct Lexed {
    /// The words up to the first control operator.
    words: Vec<Word>,
    /// Whether the text holds more than one simple command (`;`, `&`, `|`,
    /// a newline, a subshell) outside quotes and substitutions.
    compound: bool,
}

/// A small shell lexer: enough to tell a simple command from a compound
/// one and to find its first words. Unsure cases count as compound, which
/// is always correct (only the `exec` optimisation is lost).
fn lex(text: &str) -> Lexed {
    let bytes = text.as_bytes();
    let mut lexed = Lexed::default();
    let mut i = 0;
    let mut word_start: Option<usize> = None;
    // Whether an `=` appeared in the current word before any quote.
    let mut word_assign = false;
    let mut word_quoted = false;
    let close_word = |lexed: &mut Lexed, start: &mut Option<usize>, end: usize, assign: bool| {
        if let Some(s) = start.take() {
            let assignment = assign
                && lexed.words.iter().all(|w| w.assignment)
                && is_name(&text[s..text[s..end].find('=').map_or(end, |e| s + e)]);
            lexed.words.push(Word {
                start: s,
                end,
                assignment,
            });
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' => {
                close_word(&mut lexed, &mut word_start, i, word_assign);
                word_assign = false;
                word_quoted = false;
                i += 1;
                continue;
            }
            b'#' if word_start.is_none() => {
                // A comment runs to the end of the line.
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            // A `;` or newline that ends the text (YAML block scalars end
            // with one) does not make a second command.
            b';' | b'\n' if text[i + 1..].trim().is_empty() => {
                close_word(&mut lexed, &mut word_start, i, word_assign);
                return lexed;
            }
            b';' | b'&' | b'|' | b'\n' | b'(' | b')' | b'`' => {
                close_word(&mut lexed, &mut word_start, i, word_assign);
                lexed.compound = true;
                return lexed;
            }
            _ => {}
        }
        if word_start.is_none() {
            word_start = Some(i);
        }
        match b {
            b'\\' => i += 2,
            b'\'' => {
                word_quoted = true;
                match text[i + 1..].find('\'') {
                    Some(n) => i += n + 2,
                    None => return unsure(lexed),
                }
            }
            b'"' => {
                word_quoted = true;
                match skip_double_quoted(bytes, i + 1) {
                    Some(next) => i = next,
                    None => return unsure(lexed),
                }
            }
            b'$' if matches!(bytes.get(i + 1), Some(b'(' | b'{')) => {
                word_quoted = true;
                match skip_substitution(bytes, i + 1) {
                    Some(next) => i = next,
                    None => return unsure(lexed),
                }
            }
            b'=' if !word_quoted => {
                word_assign = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    close_word(&mut lexed, &mut word_start, bytes.len(), word_assign);
    lexed
}

fn unsure(mut lexed: Lexed) -> Lexed {
    lexed.compound = true;
    lexed
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The index after the `"` that closes a double-quoted string starting at
/// `i` (just after the opening quote).
fn skip_double_quoted(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            b'$' if matches!(bytes.get(i + 1), Some(b'(' | b'{')) => {
                i = skip_substitution(bytes, i + 1)?;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index after the bracket that closes a `$(` or `${` whose opening
/// bracket is at `i`.
fn skip_substitution(bytes: &[u8], i: usize) -> Option<usize> {
    let (open, close) = match bytes[i] {
        b'(' => (b'(', b')'),
        _ => (b'{', b'}'),
    };
    let mut depth = 0usize;
    let mut j = i;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 1,
            b'\'' if open == b'(' => {
                j += bytes[j + 1..].iter().position(|&c| c == b'\'')? + 1;
            }
            b'"' => {
                j = skip_double_quoted(bytes, j + 1)? - 1;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> BTreeMap<u16, u16> {
        BTreeMap::from([(5000, 41000), (8080, 41001)])
    }

    fn expand(s: &str) -> Result<String, UnknownPort> {
        let ports = ports();
        expand_ports(
            s,
            PortVars {
                ports: &ports,
                primary: Some(5000),
                env: &[],
            },
        )
    }

    #[test]
    fn fills_in_every_form_of_the_port_variables() {
        assert_eq!(
            expand("serve --port ${PORT} --admin $PORT_8080").unwrap(),
            "serve --port 41000 --admin 41001"
        );
        assert_eq!(expand("${PORT_5000:-80}").unwrap(), "41000");
        assert_eq!(expand("${PORT_9000:-80}").unwrap(), "80");
        assert_eq!(expand("${PORT_9000-80}").unwrap(), "80");
        assert_eq!(expand("${PORT_9000:-${PORT_8080}}").unwrap(), "41001");
        assert_eq!(expand("x=$PORT;").unwrap(), "x=41000;");
    }

    #[test]
    fn leaves_other_variables_to_the_shell() {
        assert_eq!(
            expand("echo $HOME ${USER:-me} $$ $PORTAL ${PORT_X} $1").unwrap(),
            "echo $HOME ${USER:-me} $$ $PORTAL ${PORT_X} $1"
        );
        assert_eq!(expand("cost $").unwrap(), "cost $");
        assert_eq!(expand("${PORT:?required}").unwrap(), "${PORT:?required}");
        assert_eq!(expand("${unclosed").unwrap(), "${unclosed");
    }

    #[test]
    fn a_port_without_value_or_default_is_an_error() {
        let e = expand("--port ${PORT_9000}").unwrap_err();
        assert_eq!(e.variable, "PORT_9000");
        assert_eq!(e.reason, "the service declares no container port 9000");
        let none = BTreeMap::new();
        let e = expand_ports(
            "$PORT",
            PortVars {
                ports: &none,
                primary: None,
                env: &[],
            },
        )
        .unwrap_err();
        assert_eq!(e.reason, "the service has no routed port");
        // A template that sets the variable itself gives the value.
        let env = [("PORT".to_string(), "8080".to_string())];
        let vars = PortVars {
            ports: &none,
            primary: None,
            env: &env,
        };
        assert_eq!(expand_ports("-p ${PORT}", vars).unwrap(), "-p 8080");
    }

    fn script(s: &str) -> String {
        shell_script(s, Path::new("/opt/turnout bin/turnout"))
    }

    #[test]
    fn a_simple_command_is_execed() {
        assert_eq!(script("python app.py"), "exec python app.py");
        assert_eq!(script("  sleep 30 > out.txt"), "  exec sleep 30 > out.txt");
        assert_eq!(
            script("echo \"a; b\" 'c | d' $(date; true)"),
            "exec echo \"a; b\" 'c | d' $(date; true)"
        );
        assert_eq!(
            script("FOO=1 BAR='x y' prog --flag"),
            "FOO=1 BAR='x y' exec prog --flag"
        );
        assert_eq!(script("prog a=b"), "exec prog a=b");
        assert_eq!(script("prog --flag\n"), "exec prog --flag\n");
        assert_eq!(
            script("prog # a comment; not a list"),
            "exec prog # a comment; not a list"
        );
    }

    #[test]
    fn a_compound_command_runs_under_the_shell() {
        for s in [
            "trap '' TERM; sleep 30",
            "cd /srv && ./run",
            "sleep 300 & wait",
            "a | b",
            "(sleep 1)",
            "if true; then sleep 1; fi",
            "echo a\necho b",
            "echo `date`",
            "echo 'unclosed",
        ] {
            assert_eq!(script(s), s, "{s}");
        }
        // Builtins and reserved words cannot be `exec`ed.
        assert_eq!(script("exec prog"), "exec prog");
        assert_eq!(script("eval \"$CMD\""), "eval \"$CMD\"");
        assert_eq!(script("{ prog; }"), "{ prog; }");
        assert_eq!(script("FOO=1"), "FOO=1");
    }

    #[test]
    fn a_leading_turnout_runs_the_running_binary() {
        assert_eq!(
            script("turnout demo-app --text hi"),
            "exec '/opt/turnout bin/turnout' demo-app --text hi"
        );
        assert_eq!(
            script("TURNOUT_X=1 turnout demo-app && echo done"),
            "TURNOUT_X=1 '/opt/turnout bin/turnout' demo-app && echo done"
        );
        assert_eq!(script("echo turnout"), "exec echo turnout");
        assert_eq!(
            shell_script("turnout x", Path::new("/it's/turnout")),
            r"exec '/it'\''s/turnout' x"
        );
    }

    #[test]
    fn argv_of_both_forms() {
        let ports = ports();
        let vars = PortVars {
            ports: &ports,
            primary: Some(8080),
            env: &[],
        };
        let exe = Path::new("/usr/bin/turnout");
        let list = Command::Exec(vec![
            "turnout".into(),
            "demo-app".into(),
            "--port=${PORT}".into(),
        ]);
        assert_eq!(
            argv(&list, vars, exe).unwrap().unwrap(),
            vec![
                OsString::from("/usr/bin/turnout"),
                "demo-app".into(),
                "--port=41001".into()
            ]
        );
        let shell = Command::Shell("serve --port $PORT".into());
        assert_eq!(
            argv(&shell, vars, exe).unwrap().unwrap(),
            vec![
                OsString::from("/bin/sh"),
                "-c".into(),
                "exec serve --port 41001".into()
            ]
        );
        assert_eq!(argv(&Command::Exec(vec![]), vars, exe).unwrap(), None);
        assert_eq!(argv(&Command::Shell("  ".into()), vars, exe).unwrap(), None);
    }
}
