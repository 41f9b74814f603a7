//! `${VAR}` substitution, as compose does it, on the string values of a
//! template (never on keys).
//!
//! Supported: `${VAR}`, `${VAR:-default}` (unset or empty → default),
//! `${VAR-default}` (unset → default), `${VAR:?message}` / `${VAR?message}`
//! (an error), bare `$VAR`, and `$$` for a literal `$`. An unset variable
//! without a default is an error (compose only warns and substitutes an
//! empty string, which has started many an outage). `${PORT}`, `${PORT_*}`
//! and their `:-default` forms are left in place: the runtime fills them in
//! per instance (DESIGN §6).

use crate::diagnostic::{Diagnostic, FieldPath, Sink};
use crate::yaml::{Node, Value};

/// Looks a variable up in the environment the template is read in.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Substitutes variables in every string value of `node`.
pub(crate) fn substitute_tree(node: &mut Node, path: &FieldPath, env: Lookup<'_>, sink: &mut Sink) {
    match &mut node.value {
        Value::Str(s) => {
            if s.contains('$') {
                match substitute(s, env) {
                    Ok(out) => *s = out,
                    Err(e) => {
                        let mut d =
                            Diagnostic::error(node.pos, path, e.message).found(format!("{s:?}"));
                        if let Some(hint) = e.hint {
                            d = d.hint(hint);
                        }
                        sink.push(d);
                    }
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_tree(item, &path.index(i), env, sink);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let key = key.scalar_string().unwrap_or_default();
                substitute_tree(value, &path.key(&key), env, sink);
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

/// Why a substitution failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SubstError {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// Whether the runtime, not the reader, fills this variable in.
pub fn is_runtime_variable(name: &str) -> bool {
    name == "PORT"
        || name
            .strip_prefix("PORT_")
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Substitutes the variables of one string.
pub(crate) fn substitute(input: &str, env: Lookup<'_>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = closing_brace(body_start).ok_or_else(|| SubstError {
                message: "unclosed `${` in variable reference".into(),
                hint: Some("close it with `}`, or write `$$` for a literal dollar sign".into()),
            })?;
            let body = &body_start[..end];
            let whole = &rest[idx..idx + 2 + end + 1];
            out.push_str(&expand_braced(body, whole, env)?);
            rest = &body_start[end + 1..];
        } else {
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &after[..name_len];
            if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
                // `$` followed by something that is not a name stays literal.
                out.push('$');
                rest = after;
            } else {
                if is_runtime_variable(name) {
                    out.push('$');
                    out.push_str(name);
                } else {
                    out.push_str(&lookup(name, env)?);
                }
                rest = &after[name_len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes a `${` (`s` starts after the `${`),
/// counting nested `${...}`. Shared with the runtime, which fills in
/// `${PORT...}` with the same syntax.
pub fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_braced(body: &str, whole: &str, env: Lookup<'_>) -> Result<String, SubstError> {
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (name, op) = body.split_at(name_len);
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(SubstError {
            message: format!("invalid variable reference {whole}"),
            hint: Some("a variable name is letters, digits and `_`, not starting with a digit; write `$$` for a literal dollar sign".into()),
        });
    }
    if is_runtime_variable(name) {
        return Ok(whole.to_string());
    }
    let value = env(name);
    if op.is_empty() {
        return lookup(name, env);
    }
    if let Some(default) = op.strip_prefix(":-") {
        return match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => substitute(default, env),
        };
    }
    if let Some(default) = op.strip_prefix('-') {
        return match value {
            Some(v) => Ok(v),
            None => substitute(default, env),
        };
    }
    let required = |message: &str, allow_empty: bool| match &value {
        Some(v) if allow_empty || !v.is_empty() => Ok(v.clone()),
        _ => Err(SubstError {
            message: if message.is_empty() {
                format!("variable {name} is required but not set")
            } else {
                format!("variable {name} is not set: {message}")
            },
            hint: Some(format!(
                "set {name} in the environment before reading the template"
            )),
        }),
    };
    if let Some(message) = op.strip_prefix(":?") {
        return required(message, false);
    }
    if let Some(message) = op.strip_prefix('?') {
        return required(message, true);
    }
    Err(SubstError {
        message: format!("invalid variable reference {whole}"),
        hint: Some("use ${VAR}, ${VAR:-default}, ${VAR-default} or ${VAR:?message}".into()),
    })
}

fn lookup(name: &str, env: Lookup<'_>) -> Result<String, SubstError> {
    env(name).ok_or_else(|| SubstError {
        message: format!("variable {name} is not set"),
        hint: Some(format!(
            "set {name} in the environment, give a default with ${{{name}:-value}}, or write \
             $${{{name}}} for a literal"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(s: &str) -> Result<String, SubstError> {
        substitute(s, &env)
    }

    #[test]
    fn substitutes_the_compose_forms() {
        assert_eq!(sub("http://${HOST}/x").unwrap(), "http://example.com/x");
        assert_eq!(sub("$HOST:80").unwrap(), "example.com:80");
        assert_eq!(sub("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(sub("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(sub("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(sub("${NOPE-dflt}").unwrap(), "dflt");
        assert_eq!(sub("${NOPE:-${HOST}}").unwrap(), "example.com");
        assert_eq!(sub("cost: $$5 and $1").unwrap(), "cost: $5 and $1");
    }

    #[test]
    fn leaves_runtime_ports_alone() {
        assert_eq!(sub("serve --port ${PORT}").unwrap(), "serve --port ${PORT}");
        assert_eq!(
            sub("${PORT_5000:-80} $PORT_8080").unwrap(),
            "${PORT_5000:-80} $PORT_8080"
        );
        // PORTAL is an ordinary variable.
        assert!(sub("${PORTAL}").is_err());
    }

    #[test]
    fn unset_variables_are_errors_with_a_hint() {
        let e = sub("${NOPE}").unwrap_err();
        assert_eq!(e.message, "variable NOPE is not set");
        assert!(e.hint.unwrap().contains("${NOPE:-value}"));
        let e = sub("${EMPTY:?needs a host}").unwrap_err();
        assert_eq!(e.message, "variable EMPTY is not set: needs a host");
        assert!(sub("${HOST").is_err());
        assert!(sub("${1X}").is_err());
        assert!(sub("${HOST:+x}").is_err());
    }
}
