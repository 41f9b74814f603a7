//! Matching one request value (a header, cookie or query parameter) against
//! a rule's pattern.

use regex::Regex;

/// Regexes are compiled once per table; this bounds what one rule may cost.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled rule pattern: `exact`, `prefix:...` or `regex:...`.
#[derive(Debug, Clone)]
pub enum ValueMatcher {
    /// The value equals the text.
    Exact(Box<str>),
    /// The value starts with the text (`prefix:` in the route file).
    Prefix(Box<str>),
    /// The regex finds a match in the value (`regex:`; anchor it with `^`
    /// and `$` to match the whole value).
    Regex(Regex),
}

impl ValueMatcher {
    /// Compiles a route file pattern. The error is the regex parser's message.
    pub fn parse(pattern: &str) -> Result<ValueMatcher, String> {
        if let Some(prefix) = pattern.strip_prefix("prefix:") {
            Ok(ValueMatcher::Prefix(prefix.into()))
        } else if let Some(source) = pattern.strip_prefix("regex:") {
            regex::RegexBuilder::new(source)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(ValueMatcher::Regex)
                .map_err(|err| err.to_string())
        } else {
            Ok(ValueMatcher::Exact(pattern.into()))
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatcher::Exact(text) => value == &**text,
            ValueMatcher::Prefix(text) => value.starts_with(&**text),
            ValueMatcher::Regex(regex) => regex.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let exact = ValueMatcher::parse("1").unwrap();
        assert!(exact.matches("1"));
        assert!(!exact.matches("10"));
        let prefix = ValueMatcher::parse("prefix:be").unwrap();
        assert!(prefix.matches("beta"));
        assert!(!prefix.matches("alpha"));
        let regex = ValueMatcher::parse("regex:^(a|b)[0-9]+$").unwrap();
        assert!(regex.matches("a12"));
        assert!(!regex.matches("c12"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = ValueMatcher::parse("regex:(").unwrap_err();
        assert!(err.contains("unclosed"), "{err}");
    }
}
