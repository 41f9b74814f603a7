//! The YAML layer: a document tree in which every node keeps its source
//! position, duplicate keys stay visible and merge keys are applied.
//!
//! serde-saphyr does the parsing (see ARCHITECTURE.md for why). We read the
//! document into our own [`Node`] tree rather than into typed structs, so
//! that one pass can report every problem at once with its position and
//! field path, instead of stopping at the first serde error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

use crate::diagnostic::{Diagnostic, FieldPath, Pos};

/// A YAML node with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    /// Where the value is defined (for an alias or a merged key: the
    /// anchored original, which is where a fix has to be made).
    pub(crate) pos: Pos,
    /// The scalar as written in the source, for numbers and booleans, so
    /// that `0755` or `1.10` keep their spelling when used as strings.
    pub(crate) raw: Option<Box<str>>,
}

thread_local! {
    /// The text being parsed, so that `Node::deserialize` can copy the
    /// spelling of numbers and booleans as it builds the tree (no second
    /// pass, no offsets kept in every node).
    static SOURCE: std::cell::RefCell<std::rc::Rc<str>> =
        std::cell::RefCell::new(std::rc::Rc::from(""));
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar as a string, the way compose reads label and environment
    /// values: strings as they are, numbers and booleans as written.
    pub(crate) fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(
                self.raw
                    .as_deref()
                    .map_or_else(|| b.to_string(), str::to_string),
            ),
            Value::Int(i) => Some(
                self.raw
                    .as_deref()
                    .map_or_else(|| i.to_string(), str::to_string),
            ),
            Value::Float(x) => Some(
                self.raw
                    .as_deref()
                    .map_or_else(|| x.to_string(), str::to_string),
            ),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A short description of the node's kind for "found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".into(),
            Value::Bool(_) => format!("the boolean {}", self.scalar_string().unwrap_or_default()),
            Value::Int(_) | Value::Float(_) => {
                format!("the number {}", self.scalar_string().unwrap_or_default())
            }
            Value::Str(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a map".into(),
        }
    }

    /// An error at this node: `message`, with what was found here and
    /// what was `expected` instead.
    pub(crate) fn unexpected(
        &self,
        path: &FieldPath,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::error(self.pos, path, message)
            .found(self.describe())
            .expected(expected)
    }
}

/// A problem the YAML parser itself reported (syntax, budget).
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses one YAML document into a [`Node`] tree.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // Duplicate keys are reported by us, all at once and with both places;
    // merged keys that an explicit key overrides are still dropped by the
    // parser, as YAML's merge semantics require.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // Merge keys (`<<: *common`) are applied by `apply_merges` on our own
    // tree: left to the parser, they make it buffer and fingerprint every
    // key of every map, which costs more than the rest of reading.
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    // YAML 1.2 booleans: `no`, `on` and `y` stay strings (`restart: no`).
    options.strict_booleans = true;
    options.with_snippet = false;
    let mut budget = serde_saphyr::Budget::default();
    // Compose files share one anchor across many services; that is normal
    // use, not an alias bomb (the absolute caps still apply).
    budget.enforce_alias_anchor_ratio = false;
    // A template is a few levels deep; 32 keeps the recursive tree build
    // well inside a 2 MiB thread stack even in debug builds.
    budget.max_depth = 32;
    options.budget = Some(budget);
    SOURCE.with(|source| *source.borrow_mut() = std::rc::Rc::from(text));
    let parsed: Result<Node, _> = serde_saphyr::from_str_with_options(text, options);
    SOURCE.with(|source| *source.borrow_mut() = std::rc::Rc::from(""));
    let mut root: Node = parsed.map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line() as u32,
                column: l.column() as u32,
            })
            .unwrap_or_default();
        let message = strip_location(&e.to_string());
        let message = if message.starts_with("budget breached") {
            format!(
                "the document exceeds a parser limit ({}): too deeply nested or too many aliases",
                message.trim_start_matches("budget breached: ")
            )
        } else {
            message
        };
        SyntaxError { pos, message }
    })?;
    apply_merges(&mut root);
    Ok(root)
}

/// A key and its value in a map.
type Entry = (Node, Node);

/// Applies YAML merge keys: the entries of the map (or maps, earlier ones
/// first) under `<<` are added to the map that holds it, unless the map
/// sets the key itself. Merged values keep the position where they are
/// defined (the anchor), which is where a fix has to be made.
fn apply_merges(node: &mut Node) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(apply_merges),
        Value::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                apply_merges(v);
            }
            let is_merge = |k: &Node| matches!(&k.value, Value::Str(s) if s == "<<");
            if !entries.iter().any(|(k, _)| is_merge(k)) {
                return;
            }
            let (merges, mut own): (Vec<Entry>, Vec<Entry>) = std::mem::take(entries)
                .into_iter()
                .partition(|(k, _)| is_merge(k));
            let mut sources: Vec<Node> = Vec::new();
            let mut invalid: Vec<Entry> = Vec::new();
            for (key, value) in merges {
                let mergeable = match &value.value {
                    Value::Map(_) => true,
                    Value::Seq(items) => items.iter().all(|i| matches!(i.value, Value::Map(_))),
                    _ => false,
                };
                if !mergeable {
                    // Kept as an ordinary key, so that the reader reports it
                    // where it stands.
                    invalid.push((key, value));
                    continue;
                }
                match value.value {
                    Value::Seq(items) => sources.extend(items),
                    _ => sources.push(value),
                }
            }
            let mut seen: std::collections::HashSet<String> =
                own.iter().filter_map(|(k, _)| k.scalar_string()).collect();
            for source in sources {
                let Value::Map(merged) = source.value else {
                    continue;
                };
                for (k, v) in merged {
                    let Some(name) = k.scalar_string() else {
                        continue;
                    };
                    if seen.insert(name) {
                        own.push((k, v));
                    }
                }
            }
            own.extend(invalid);
            *entries = own;
        }
        _ => {}
    }
}

/// serde-saphyr prefixes its messages with "error: line L column C: ";
/// we print the location ourselves.
fn strip_location(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let rest = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(after) = rest.strip_prefix("line ")
        && let Some(idx) = after.find(": ")
        && after[..idx].contains(" column ")
    {
        return strip_trailing_location(&after[idx + 2..]);
    }
    strip_trailing_location(rest)
}

/// Some messages repeat the place at their end (" at line 3, column 9").
fn strip_trailing_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) if message[idx..].contains(", column ") => message[..idx].to_string(),
        _ => message.to_string(),
    }
}

// The tree is deserialised straight into `Node`s: each node through
// `Spanned` for its position, its children through `Node` again.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Value> = Spanned::deserialize(deserializer)?;
        let defined = spanned.defined;
        let pos = Pos {
            line: defined.line() as u32,
            column: defined.column() as u32,
        };
        let raw = match spanned.value {
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
                let span = defined.span();
                let range = span.byte_offset().zip(span.byte_len()).and_then(|(o, l)| {
                    let start = usize::try_from(o).ok()?;
                    Some(start..start + usize::try_from(l).ok()?)
                });
                range.and_then(|r| {
                    SOURCE.with(|source| source.borrow().get(r).map(|t| t.trim().into()))
                })
            }
            _ => None,
        };
        Ok(Node {
            value: spanned.value,
            pos,
            raw,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// A map whose keys were checked: string keys, no duplicates (duplicates
/// are reported and the first one is kept).
pub(crate) struct Map<'a> {
    pub(crate) entries: Vec<(Cow<'a, str>, &'a Node, &'a Node)>,
}

impl<'a> Map<'a> {
    /// Reads `node` as a map with string keys. Reports a non-map, non-string
    /// keys and duplicate keys; returns `None` when `node` is not a map.
    pub(crate) fn read(
        node: &'a Node,
        path: &FieldPath,
        what: &str,
        sink: &mut crate::diagnostic::Sink,
    ) -> Option<Map<'a>> {
        let Value::Map(raw) = &node.value else {
            sink.push(node.unexpected(
                path,
                format!("{what} must be a map"),
                "a map of `key: value` lines",
            ));
            return None;
        };
        let mut entries: Vec<(Cow<'a, str>, &Node, &Node)> = Vec::with_capacity(raw.len());
        // Index of each key in `entries`, so that a file with thousands of
        // services is checked for duplicates in linear time.
        let mut seen: std::collections::HashMap<Cow<'a, str>, usize> =
            std::collections::HashMap::new();
        for (key, value) in raw {
            let Some(name) = key_string(key) else {
                sink.push(key.unexpected(
                    path,
                    format!("a key of {what} is not a string"),
                    "a plain name as key",
                ));
                continue;
            };
            // Small maps (a service's fields, its labels) are searched
            // directly; a hash map pays off for the big ones.
            let found = if raw.len() <= 16 {
                entries.iter().position(|(n, _, _)| *n == name)
            } else {
                seen.get(&name).copied()
            };
            if let Some(idx) = found {
                let first = entries[idx].1;
                sink.push(
                    Diagnostic::error(key.pos, &path.key(&name), format!("duplicate key {name:?}"))
                        .hint(format!(
                            "it is already set on line {}; keep one of the two",
                            first.pos.line
                        )),
                );
                continue;
            }
            if raw.len() > 16 {
                seen.insert(name.clone(), entries.len());
            }
            entries.push((name, key, value));
        }
        Some(Map { entries })
    }
}

fn key_string(key: &Node) -> Option<Cow<'_, str>> {
    match &key.value {
        Value::Str(s) => Some(Cow::Borrowed(s)),
        Value::Seq(_) | Value::Map(_) | Value::Null => None,
        _ => match &key.raw {
            Some(raw) => Some(Cow::Borrowed(raw)),
            None => key.scalar_string().map(Cow::Owned),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(node: &Node) -> Vec<String> {
        let Value::Map(entries) = &node.value else {
            panic!("not a map")
        };
        entries
            .iter()
            .map(|(k, _)| k.scalar_string().unwrap())
            .collect()
    }

    #[test]
    fn positions_are_one_based_and_kept() {
        let doc = parse("a:\n  b: 1\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        let (_, inner) = &entries[0];
        let Value::Map(inner) = &inner.value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, column: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 2, column: 6 });
    }

    #[test]
    fn numbers_keep_their_spelling() {
        let doc = parse("a: 0755\nb: 1.10\nc: no\nd: true\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        let values: Vec<_> = entries
            .iter()
            .map(|(_, v)| v.scalar_string().unwrap())
            .collect();
        assert_eq!(values, ["0755", "1.10", "no", "true"]);
    }

    #[test]
    fn merge_keys_are_applied_and_explicit_keys_win() {
        let doc = parse("x: &c\n  image: a\n  command: b\ns:\n  <<: *c\n  image: z\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        let service = &entries[1].1;
        let mut keys = map_keys(service);
        keys.sort();
        assert_eq!(keys, ["command", "image"]);
    }

    #[test]
    fn merge_lists_take_the_earlier_map_first_and_bad_merges_stay_visible() {
        let doc = parse("a: &a\n  x: 1\n  y: 1\nb: &b\n  y: 2\n  z: 2\nc:\n  <<: [*a, *b]\n  z: 3\nd:\n  <<: 5\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        let c = &entries[2].1;
        let Value::Map(fields) = &c.value else {
            panic!()
        };
        let got: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.scalar_string().unwrap(), v.scalar_string().unwrap()))
            .collect();
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            [
                ("x".into(), "1".into()),
                ("y".into(), "1".into()),
                ("z".into(), "3".into())
            ]
        );
        // A merge of something that is not a map stays as an ordinary key.
        assert_eq!(map_keys(&entries[3].1), ["<<"]);
    }

    #[test]
    fn duplicate_keys_are_reported_not_swallowed() {
        let doc = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let mut sink = crate::diagnostic::Sink::default();
        let map = Map::read(&doc, &FieldPath::root(), "the file", &mut sink).unwrap();
        assert_eq!(map.entries.len(), 2);
        assert_eq!(sink.items.len(), 1);
        assert_eq!(sink.items[0].pos.line, 3);
        assert!(sink.items[0].hint.as_deref().unwrap().contains("line 1"));
    }

    #[test]
    fn syntax_errors_have_a_position_and_plain_message() {
        let err = parse("a: [1,\nb: c").unwrap_err();
        assert_eq!(err.pos.line, 1);
        assert!(!err.message.starts_with("error:"), "{}", err.message);
        assert!(err.message.contains("bracket"), "{}", err.message);
    }
}
