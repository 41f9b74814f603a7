//! Rules: conditions on a request that send it to a named service before
//! the weights are consulted (A/B tests, beta testers).

use http::HeaderName;

use crate::headers::RequestHeaders;

use crate::cookie::cookie_value;
use crate::matcher::ValueMatcher;
use crate::service::ServiceIndex;

/// Where a condition reads its value from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A request header; when it repeats, any of its values may match.
    Header(HeaderName),
    /// A cookie.
    Cookie(Box<str>),
    /// A query parameter, as sent (not percent-decoded).
    Query(Box<str>),
}

/// One condition: a value from the request and its pattern.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Where the value comes from.
    pub source: Source,
    /// What it must look like.
    pub matcher: ValueMatcher,
}

/// A compiled rule: all conditions hold → `service`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The conditions, all of which must hold.
    pub conditions: Box<[Condition]>,
    /// The target service, an index into the route's services.
    pub service: ServiceIndex,
}

impl Rule {
    /// Whether a request with these headers and query string matches.
    pub fn matches<H: RequestHeaders + ?Sized>(&self, headers: &H, query: Option<&str>) -> bool {
        self.conditions.iter().all(|c| c.matches(headers, query))
    }
}

impl Condition {
    /// Whether the request satisfies this condition; an absent value never
    /// matches.
    pub fn matches<H: RequestHeaders + ?Sized>(&self, headers: &H, query: Option<&str>) -> bool {
        match &self.source {
            Source::Header(name) => headers
                .values(name.as_str())
                .filter_map(|v| std::str::from_utf8(v).ok())
                .any(|v| self.matcher.matches(v)),
            Source::Cookie(name) => {
                cookie_value(headers, name).is_some_and(|v| self.matcher.matches(v))
            }
            Source::Query(name) => {
                query_value(query, name).is_some_and(|v| self.matcher.matches(v))
            }
        }
    }
}

/// The raw value of the first query parameter called `name`; a parameter
/// without `=` has the empty value.
pub(crate) fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn query_lookup() {
        assert_eq!(query_value(Some("a=1&beta=yes"), "beta"), Some("yes"));
        assert_eq!(query_value(Some("beta"), "beta"), Some(""));
        assert_eq!(query_value(Some("xbeta=1"), "beta"), None);
        assert_eq!(query_value(None, "beta"), None);
    }

    #[test]
    fn all_conditions_must_hold() {
        let rule = Rule {
            conditions: vec![
                Condition {
                    source: Source::Header(HeaderName::from_static("x-beta")),
                    matcher: ValueMatcher::parse("1").unwrap(),
                },
                Condition {
                    source: Source::Query("lang".into()),
                    matcher: ValueMatcher::parse("prefix:en").unwrap(),
                },
            ]
            .into(),
            service: 1,
        };
        let mut headers = HeaderMap::new();
        assert!(!rule.matches(&headers, Some("lang=en-GB")));
        headers.append("x-beta", HeaderValue::from_static("0"));
        headers.append("x-beta", HeaderValue::from_static("1"));
        assert!(rule.matches(&headers, Some("lang=en-GB")));
        assert!(!rule.matches(&headers, Some("lang=de")));
    }
}
