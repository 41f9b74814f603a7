//! `.dockerignore` as `docker build` reads it (moby's patternmatcher): a
//! pattern a line, `#` lines and blank lines skipped, each line trimmed,
//! cleaned as a path (`./a`, `a/`, `/a` are `a`), relative to the context
//! root. `*` is any run of characters but `/`, `?` one such character,
//! `[a-z]` / `[^a]` a class, `\` escapes, `**` any number of folders
//! (`**/x` is `x` at any depth). A pattern that matches a folder excludes
//! everything in it. `!pattern` takes back what earlier lines excluded; the
//! last line that matches a path decides.

use std::fmt;

/// One part of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A character to match as it is.
    Char(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters but `/`.
    Star,
    /// `**` at the end or before a character other than `/`: anything.
    Any,
    /// `**/`: nothing, or anything that ends with `/`.
    Folders,
    /// `[...]`: one character but `/`, in (or, negated, out of) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A line of a `.dockerignore`.
#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: it takes back an exclusion.
    exception: bool,
    tokens: Vec<Token>,
}

/// A `.dockerignore` read.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// A line that is not a pattern (`!` alone, an unclosed `[`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    /// The line's number, from 1.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {:?}: {}", self.line, self.text, self.why)
    }
}

impl Ignore {
    /// Reads the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Ignore, BadPattern> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| BadPattern {
                line: i + 1,
                text: raw.to_string(),
                why: why.to_string(),
            };
            let (exception, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if rest.is_empty() {
                return Err(bad("`!` needs a pattern after it"));
            }
            let cleaned = clean(rest);
            if cleaned.is_empty() {
                // `.` or `/`: the whole context.
                patterns.push(Pattern {
                    exception,
                    tokens: vec![Token::Any],
                });
                continue;
            }
            let tokens = compile(&cleaned).map_err(|why| bad(&why))?;
            patterns.push(Pattern { exception, tokens });
        }
        Ok(Ignore { patterns })
    }

    /// Whether there is any `!` line: then an excluded folder may still
    /// hold paths to send, and must be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context, `/`-separated, no `./`) is
    /// left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            if excluded == p.exception && p.matches_or_parent(path) {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

impl Pattern {
    /// The path itself or one of the folders it is in.
    fn matches_or_parent(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        if matches(&self.tokens, &chars) {
            return true;
        }
        chars
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .any(|(i, _)| matches(&self.tokens, &chars[..i]))
    }
}

/// A path cleaned as Go's `filepath.Clean` does, without the leading `/`:
/// no `.` parts, no empty parts, `..` taking off the part before it.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    tokens.push(Token::Folders);
                    i += 3;
                } else {
                    tokens.push(Token::Any);
                    i += 2;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '?' => {
                tokens.push(Token::One);
                i += 1;
            }
            '\\' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or("a `\\` at the end escapes nothing")?;
                tokens.push(Token::Char(c));
                i += 2;
            }
            '[' => {
                let (token, next) = class(&chars, i + 1)?;
                tokens.push(token);
                i = next;
            }
            c => {
                tokens.push(Token::Char(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// A class from just after its `[`: the token and the index after its `]`.
fn class(chars: &[char], mut i: usize) -> Result<(Token, usize), String> {
    let unclosed = || "a `[` class is not closed with `]`".to_string();
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i).ok_or_else(unclosed)?;
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        if c == '\\' {
            i += 1;
            c = *chars.get(i).ok_or_else(unclosed)?;
        }
        i += 1;
        let mut hi = c;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|n| *n != ']') {
            hi = chars[i + 1];
            if hi == '\\' {
                hi = *chars.get(i + 2).ok_or_else(unclosed)?;
                i += 1;
            }
            i += 2;
            if hi < c {
                return Err(format!("the range {c}-{hi} is backwards"));
            }
        }
        ranges.push((c, hi));
    }
}

/// Whether `tokens` match the whole of `s`.
fn matches(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Char(c) => s.first() == Some(c) && matches(rest, &s[1..]),
        Token::One => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
        Token::Class { negated, ranges } => {
            s.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }) && matches(rest, &s[1..])
        }
        Token::Star => {
            let run = s.iter().take_while(|c| **c != '/').count();
            (0..=run).any(|n| matches(rest, &s[n..]))
        }
        Token::Any => (0..=s.len()).any(|n| matches(rest, &s[n..])),
        Token::Folders => {
            matches(rest, s)
                || s.iter()
                    .enumerate()
                    .filter(|(_, c)| **c == '/')
                    .any(|(i, _)| matches(rest, &s[i + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn a_pattern_excludes_what_it_matches_and_what_is_in_it() {
        let i = ignore("# secrets\n\nsecret.key\n  build/  \n/tmp\n./logs/*.log\n");
        assert!(i.excludes("secret.key"));
        assert!(!i.excludes("sub/secret.key"), "patterns are rooted");
        assert!(i.excludes("build"));
        assert!(i.excludes("build/out/a.o"));
        assert!(i.excludes("tmp/x"));
        assert!(i.excludes("logs/a.log"));
        assert!(!i.excludes("logs/a.txt"));
        assert!(!i.excludes("logs/deep/a.log"), "`*` stays in one folder");
        assert!(!i.excludes("# secrets"));
        assert!(!i.excludes("Dockerfile"));
    }

    #[test]
    fn double_stars_cross_folders() {
        let i = ignore("**/*.pem\nnode_modules/**\ndocs/**/draft\n");
        assert!(i.excludes("a.pem"));
        assert!(i.excludes("a/b/c.pem"));
        assert!(i.excludes("node_modules/x/y.js"));
        assert!(!i.excludes("node_modules"), "the folder entry itself stays");
        assert!(i.excludes("docs/draft"));
        assert!(i.excludes("docs/a/b/draft/x.md"));
        assert!(!i.excludes("docs/final"));
    }

    #[test]
    fn the_last_matching_line_decides() {
        let i = ignore("*.md\n!README.md\nREADME*\n!README-keep.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(i.excludes("README.md"), "excluded again by README*");
        assert!(!i.excludes("README-keep.md"));
        let i = ignore("data\n!data/keep.txt\n");
        assert!(i.has_exceptions());
        assert!(i.excludes("data/big.bin"));
        assert!(!i.excludes("data/keep.txt"));
        let i = ignore("*\n!src\n");
        assert!(i.excludes("secret"));
        assert!(!i.excludes("src/main.rs"));
    }

    #[test]
    fn classes_question_marks_and_escapes() {
        let i = ignore("file?.txt\n[a-c]*.bin\n[^x]y\n\\*lit\n");
        assert!(i.excludes("file1.txt"));
        assert!(!i.excludes("file12.txt"));
        assert!(i.excludes("b9.bin"));
        assert!(!i.excludes("d9.bin"));
        assert!(i.excludes("ay"));
        assert!(!i.excludes("xy"));
        assert!(i.excludes("*lit"));
        assert!(!i.excludes("alit"));
    }

    #[test]
    fn a_line_that_is_no_pattern_is_an_error_naming_it() {
        let err = Ignore::parse("ok\n!\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("`!` needs a pattern"), "{err}");
        let err = Ignore::parse("[abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: \"[abc\": a `[` class is not closed with `]`"
        );
    }
}
