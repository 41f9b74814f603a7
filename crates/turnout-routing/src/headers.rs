//! What the decision reads of a request's headers, whatever holds them: an
//! `http::HeaderMap` (requests served by hyper) or the proxy's own view of
//! a parsed HTTP/1.1 head (its fast path), so that neither has to build
//! the other's form.

use http::{HeaderMap, HeaderValue};

/// A request's headers, looked up by lowercase name.
pub trait RequestHeaders {
    /// Every value of the header called `name` (lowercase), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of the header called `name`, as text.
    fn first_str<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl RequestHeaders for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}
