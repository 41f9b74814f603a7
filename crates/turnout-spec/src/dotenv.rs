//! Env files — the `.env` of a template's folder and the files `env_file`
//! names — read as compose reads them, and their values merged into a
//! template's services. Pure: the caller reads the files (DESIGN §6: the
//! CLI reads them and sends their values).
//!
//! A line is `KEY=VALUE`, optionally after `export `; blank lines and
//! lines starting with `#` are skipped. A value in single quotes is taken
//! literally; in double quotes, `\n`, `\t`, `\"`, `\\` are escapes and
//! `${VAR}` is substituted; unquoted, it ends at ` #` (a comment) and
//! surrounding blanks are trimmed, and `${VAR}` is substituted. Quoted
//! values may span lines. A line with a bare `KEY` takes the key's value
//! from the environment, and is skipped when it is not set. Substitution
//! looks in the environment first, then at the file's earlier keys; an
//! unset variable without a default is an error, as in a template.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, FieldPath, Pos};
use crate::interpolate::{Lookup, substitute};
use crate::template::Template;

/// Reads an env file's text into its variables, in file order (a key set
/// twice keeps the last value, as compose does). `file` names the file in
/// diagnostics; `env` is the environment substitution looks in first.
pub fn parse_env_file(
    file: &str,
    text: &str,
    env: Lookup<'_>,
) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i as u32 + 1;
        let line = lines[i];
        i += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let column = (line.len() - trimmed.len()) as u32 + 1;
        let pos = Pos {
            line: number,
            column,
        };
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let (key, raw) = match body.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (body.trim(), None),
        };
        if !valid_key(key) {
            errors.push(
                Diagnostic::error(pos, &FieldPath::root(), format!("invalid line in env file: {key:?} is not a variable name"))
                    .expected("`KEY=VALUE`, the key letters, digits, `_`, `.` and `-`, not starting with a digit")
                    .hint("write one `KEY=VALUE` per line; start a comment with `#`"),
            );
            continue;
        }
        let Some(raw) = raw else {
            if let Some(v) = env(key) {
                set(&mut out, key, v);
            }
            continue;
        };
        let lookup = |name: &str| {
            env(name).or_else(|| {
                out.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let value = raw.trim_start();
        let result = match value.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // A quoted value ends at its closing quote, which may be on
                // a later line.
                let mut text = value[1..].to_string();
                let mut end = closing_quote(&text, q);
                while end.is_none() && i < lines.len() {
                    text.push('\n');
                    text.push_str(lines[i]);
                    i += 1;
                    end = closing_quote(&text, q);
                }
                match end {
                    None => Err((
                        format!("the value of {key} has no closing {q}"),
                        format!("close the quote with {q}"),
                    )),
                    Some(end) => {
                        let rest = text[end + 1..].trim();
                        if !rest.is_empty() && !rest.starts_with('#') {
                            Err((
                                format!("unexpected text after the quoted value of {key}: {rest:?}"),
                                "put the whole value inside the quotes, or start a comment with ` #`".into(),
                            ))
                        } else if q == '\'' {
                            Ok(text[..end].to_string())
                        } else {
                            substitute(&unescape(&text[..end]), &lookup)
                                .map_err(|e| (e.message, e.hint.unwrap_or_default()))
                        }
                    }
                }
            }
            _ => {
                let value = match value.find(" #").or_else(|| value.find("\t#")) {
                    Some(at) => &value[..at],
                    None => value,
                };
                substitute(value.trim_end(), &lookup)
                    .map_err(|e| (e.message, e.hint.unwrap_or_default()))
            }
        };
        match result {
            Ok(v) => set(&mut out, key, v),
            Err((message, hint)) => {
                errors.push(Diagnostic::error(pos, &FieldPath::root().key(key), message).hint(hint))
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        for d in &mut errors {
            d.file = file.to_string();
        }
        Err(errors)
    }
}

fn set(out: &mut Vec<(String, String)>, key: &str, value: String) {
    match out.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => out.push((key.to_string(), value)),
    }
}

fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The index of the quote that closes a value (`s` starts after the
/// opening one); a backslash escapes a double quote.
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if q == '"' && !escaped => escaped = true,
            c if c == q && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The values of the files `env_file` names, by the path as the template
/// writes it.
pub type EnvFiles = BTreeMap<String, BTreeMap<String, String>>;

/// Merges the values of each service's `env_file`s into its
/// `environment`: the files in the order listed (a later file wins), then
/// `environment` itself (which wins over every file, as in compose).
/// `file` names the template in diagnostics. A file the service names and
/// `values` lacks is an error naming the file and the service; nothing is
/// merged then.
pub fn apply_env_files(
    template: &mut Template,
    values: &EnvFiles,
    file: &str,
) -> Result<(), Vec<Diagnostic>> {
    let mut missing = Vec::new();
    for service in &template.services {
        for (i, name) in service.env_file.iter().enumerate() {
            if !values.contains_key(name) {
                let mut d = Diagnostic::error(
                    Pos::default(),
                    &FieldPath::root().key(&service.name).key("env_file").index(i),
                    format!("the values of env_file {name:?} of service {} were not sent", service.name),
                )
                .hint("send the file's variables in `env_files` under the path the template writes, as `turnout deploy` does");
                d.file = file.to_string();
                missing.push(d);
            }
        }
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    for service in &mut template.services {
        if service.env_file.is_empty() {
            continue;
        }
        let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
        for name in &service.env_file {
            for (k, v) in &values[name] {
                merged.insert(k.clone(), Some(v.clone()));
            }
        }
        merged.extend(std::mem::take(&mut service.environment));
        service.environment = merged;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
        parse_env_file(".env", text, &|name| {
            (name == "HOME").then(|| "/home/u".to_string())
        })
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_lines_as_compose_does() {
        let text = "\
# a comment
TZ=Etc/UTC

export USER=me
URL=your-domain.dyndns.com # free examples http://www.duckdns.org/
EMPTY=
SPACED =  padded value  \n\
SINGLE='keep ${HOME} # as is'
DOUBLE=\"line\\nnext ${HOME}\" # comment
MULTI=\"one
two\"
DIR=${HOME}/data
AGAIN=${DIR}/x
TZ=Europe/Paris
";
        assert_eq!(
            read(text).unwrap(),
            pairs(&[
                ("TZ", "Europe/Paris"),
                ("USER", "me"),
                ("URL", "your-domain.dyndns.com"),
                ("EMPTY", ""),
                ("SPACED", "padded value"),
                ("SINGLE", "keep ${HOME} # as is"),
                ("DOUBLE", "line\nnext /home/u"),
                ("MULTI", "one\ntwo"),
                ("DIR", "/home/u/data"),
                ("AGAIN", "/home/u/data/x"),
            ])
        );
    }

    #[test]
    fn a_bare_key_comes_from_the_environment() {
        assert_eq!(read("HOME\nNOPE\n").unwrap(), pairs(&[("HOME", "/home/u")]));
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let e = read("OK=1\n1BAD=x\nA=\"open\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!((e[0].pos.line, e[0].file.as_str()), (2, ".env"));
        assert!(e[0].message.contains("\"1BAD\" is not a variable name"));
        assert_eq!(e[1].pos.line, 3);
        assert_eq!(e[1].message, "the value of A has no closing \"");
        let e = read("A=${UNSET}\n").unwrap_err();
        assert_eq!(e[0].message, "variable UNSET is not set");
        assert_eq!(e[0].path.to_string(), "A");
        let e = read("A='x' y\n").unwrap_err();
        assert!(
            e[0].message
                .starts_with("unexpected text after the quoted value of A")
        );
    }

    #[test]
    fn env_files_come_before_environment() {
        let text = "services:\n  web:\n    image: w\n    env_file: [a.env, b.env]\n    environment:\n      B: from-environment\n";
        let mut t = crate::parse("t.yaml", text, &|_| None).unwrap().template;
        let mut values = EnvFiles::new();
        values.insert(
            "a.env".into(),
            BTreeMap::from([
                ("A".into(), "a".into()),
                ("B".into(), "a".into()),
                ("C".into(), "a".into()),
            ]),
        );
        values.insert("b.env".into(), BTreeMap::from([("C".into(), "b".into())]));
        let mut missing = t.clone();
        let e = apply_env_files(&mut missing, &BTreeMap::new(), "t.yaml").unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].message,
            "the values of env_file \"a.env\" of service web were not sent"
        );
        assert_eq!(e[0].path.to_string(), "web.env_file[0]");
        assert_eq!(missing, t, "nothing merged");
        apply_env_files(&mut t, &values, "t.yaml").unwrap();
        let env = &t.services[0].environment;
        assert_eq!(env["A"].as_deref(), Some("a"));
        assert_eq!(env["B"].as_deref(), Some("from-environment"));
        assert_eq!(env["C"].as_deref(), Some("b"), "a later file wins");
        // Applying again changes nothing: a stored template reads back the same.
        let once = t.clone();
        apply_env_files(&mut t, &values, "t.yaml").unwrap();
        assert_eq!(t, once);
    }
}
