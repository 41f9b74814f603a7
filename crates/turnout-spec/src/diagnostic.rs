//! Problems found in a template, with everything a user needs to fix them:
//! the file, line and column, the field path, what was found, what was
//! expected and a hint.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a problem is: errors make the template invalid, warnings do not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The template is refused.
    #[default]
    Error,
    /// The template is accepted; something in it is ignored or suspicious.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A place in a source file, 1-based. Line 0 means "the file as a whole".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

/// A path to a field inside a template, e.g. `serviceB-v1.labels."aliyun.scale"`.
///
/// Kept as the rendered text: paths are built for every field while a
/// template is read, and one string per step is far cheaper than a list
/// of segments cloned at every step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The empty path: the document itself.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// This path extended by a map key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = String::with_capacity(self.0.len() + key.len() + 3);
        next.push_str(&self.0);
        if !next.is_empty() {
            next.push('.');
        }
        // Keys that would be ambiguous in a dotted path are quoted, so
        // `labels."aliyun.scale"` reads as one label.
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            next.push_str(key);
        } else {
            next.push_str(&format!("{key:?}"));
        }
        Self(next)
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One problem in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the template came from, as the user named it.
    pub file: String,
    /// Where in the file.
    pub pos: Pos,
    /// The field the problem is in.
    pub path: FieldPath,
    /// What is wrong, in a few words (lowercase, no trailing period).
    pub message: String,
    /// What was found, when there is a value to show.
    pub found: Option<String>,
    /// What was expected instead.
    pub expected: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new error at `pos`/`path`.
    pub fn error(pos: Pos, path: &FieldPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, pos, path, message)
    }

    /// A new warning at `pos`/`path`.
    pub fn warning(pos: Pos, path: &FieldPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, pos, path, message)
    }

    fn new(severity: Severity, pos: Pos, path: &FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: String::new(),
            pos,
            path: path.clone(),
            message: message.into(),
            found: None,
            expected: None,
            hint: None,
        }
    }

    /// Records the value that was found.
    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    /// Records what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Adds a hint saying what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The `file:line:column` prefix of the message.
    pub fn location(&self) -> String {
        if self.pos.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.pos.line, self.pos.column)
        }
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: path: message: found X, expected Y` and, on the next
    /// line, `  hint: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location())?;
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        match (&self.found, &self.expected) {
            (Some(found), Some(expected)) => write!(f, ": found {found}, expected {expected}")?,
            (Some(found), None) => write!(f, ": found {found}")?,
            (None, Some(expected)) => write!(f, ": expected {expected}")?,
            (None, None) => {}
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Diagnostic", 9)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("file", &self.file)?;
        s.serialize_field("line", &self.pos.line)?;
        s.serialize_field("column", &self.pos.column)?;
        s.serialize_field("path", &self.path.to_string())?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("found", &self.found)?;
        s.serialize_field("expected", &self.expected)?;
        s.serialize_field("hint", &self.hint)?;
        s.end()
    }
}

/// The JSON form read back (the API's `diagnostics`, `turnout validate
/// --output json`): the fields [`Diagnostic`]'s `Serialize` writes, each
/// optional, so that a diagnostic from another version still prints.
#[derive(Default, Deserialize)]
#[serde(default)]
struct DiagnosticJson {
    severity: Severity,
    file: String,
    line: u32,
    column: u32,
    path: String,
    message: String,
    found: Option<String>,
    expected: Option<String>,
    hint: Option<String>,
}

impl<'de> Deserialize<'de> for Diagnostic {
    /// Reads the JSON form that `Serialize` writes; the field path is
    /// kept as its rendered text, so it renders again exactly as sent.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let d = DiagnosticJson::deserialize(deserializer)?;
        Ok(Self {
            severity: d.severity,
            file: d.file,
            pos: Pos {
                line: d.line,
                column: d.column,
            },
            path: FieldPath(d.path),
            message: d.message,
            found: d.found,
            expected: d.expected,
            hint: d.hint,
        })
    }
}

/// Collects diagnostics while a template is read.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) items: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }
}

/// Formats a found value for a message: strings quoted, the rest as written.
pub(crate) fn quoted(value: &str) -> String {
    format!("{value:?}")
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_quotes_dotted_keys() {
        let path = FieldPath::root()
            .key("serviceB-v1")
            .key("labels")
            .key("aliyun.scale");
        assert_eq!(path.to_string(), r#"serviceB-v1.labels."aliyun.scale""#);
        let path = FieldPath::root()
            .key("services")
            .key("a")
            .key("ports")
            .index(2);
        assert_eq!(path.to_string(), "services.a.ports[2]");
    }

    #[test]
    fn display_has_location_path_found_expected_and_hint() {
        let mut d = Diagnostic::error(
            Pos {
                line: 7,
                column: 21,
            },
            &FieldPath::root().key("a").key("labels").key("aliyun.scale"),
            "invalid scale",
        )
        .found("\"abc\"")
        .expected("a positive integer")
        .hint("write e.g. aliyun.scale: 3");
        d.file = "app.yaml".into();
        assert_eq!(
            d.to_string(),
            "app.yaml:7:21: a.labels.\"aliyun.scale\": invalid scale: found \"abc\", \
             expected a positive integer\n  hint: write e.g. aliyun.scale: 3"
        );
    }

    #[test]
    fn diagnostics_read_back_from_json_render_the_same() {
        let path = FieldPath::root()
            .key("serviceB-v1")
            .key("labels")
            .key("aliyun.scale");
        let mut d = Diagnostic::error(Pos { line: 7, column: 5 }, &path, "not a number")
            .found("\"x\"")
            .hint("write a number");
        d.file = "app.yaml".into();
        let json = serde_json::to_string(&d).unwrap();
        let back: Diagnostic = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.to_string(), d.to_string());
        let warning: Diagnostic =
            serde_json::from_str(r#"{"severity": "warning", "message": "ignored"}"#).unwrap();
        assert!(!warning.is_error());
        assert_eq!(warning.to_string(), ": ignored");
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let fields = ["labels", "image", "command"];
        assert_eq!(did_you_mean("lables", &fields), Some("labels"));
        assert_eq!(did_you_mean("xyz", &fields), None);
    }
}
