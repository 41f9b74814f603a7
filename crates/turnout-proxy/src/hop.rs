//! Hop-by-hop header fields (RFC 9110 §7.6.1): the one list of them, and
//! the `Connection` tokens, for both header representations — the fast
//! path's `httparse` fields ([`crate::h1`]) and hyper's `HeaderMap`
//! ([`crate::forward`], [`crate::egress`]).

use http::header::{self, HeaderMap, HeaderName};

/// What a hop-by-hop field is to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// `Connection`: ends at the proxy, and so do the fields it names.
    Connection,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`: they end at the proxy.
    Field,
    /// `Transfer-Encoding`, `Trailer`: they describe the message's
    /// framing, which the fast path passes on as it came (a response body
    /// and its trailers go through as bytes) and hyper makes anew.
    Framing,
    /// `Upgrade`: passed on only with an upgrade, which the caller decides.
    Upgrade,
}

/// The kind of the hop-by-hop field `name` (any case), or `None` for an
/// end-to-end field. This is the list: every place that drops hop-by-hop
/// fields asks here. A match on the length first, so that the fast path
/// pays one comparison or none per field. Always inlined: out of line,
/// the call cost more than the match (callgrind, `bench/callgrind.sh`).
#[inline(always)]
pub(crate) fn kind(name: &str) -> Option<Hop> {
    let n = name.as_bytes();
    let is = |literal: &[u8]| n.eq_ignore_ascii_case(literal);
    match n.len() {
        2 if is(b"te") => Some(Hop::Field),
        7 if is(b"trailer") => Some(Hop::Framing),
        7 if is(b"upgrade") => Some(Hop::Upgrade),
        10 if is(b"connection") => Some(Hop::Connection),
        10 if is(b"keep-alive") => Some(Hop::Field),
        16 if is(b"proxy-connection") => Some(Hop::Field),
        17 if is(b"transfer-encoding") => Some(Hop::Framing),
        _ => None,
    }
}

/// One token of a `Connection` field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Close,
    KeepAlive,
    Upgrade,
    /// The name of another field, which is hop-by-hop too.
    Other,
}

/// The tokens of one `Connection` field value, trimmed, empty ones
/// skipped, each with the bytes it was.
#[inline]
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = (Token, &[u8])> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .map(|t| (classify(t), t))
}

/// One `Connection` token's meaning; a match on the length first, as in
/// [`kind`], and inlined for the same reason.
#[inline(always)]
fn classify(t: &[u8]) -> Token {
    match t.len() {
        5 if t.eq_ignore_ascii_case(b"close") => Token::Close,
        7 if t.eq_ignore_ascii_case(b"upgrade") => Token::Upgrade,
        10 if t.eq_ignore_ascii_case(b"keep-alive") => Token::KeepAlive,
        _ => Token::Other,
    }
}

/// Whether a `Connection` field among `headers` names `name`.
pub(crate) fn named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| kind(h.name) == Some(Hop::Connection))
        .flat_map(|h| tokens(h.value))
        .any(|(_, token)| token.eq_ignore_ascii_case(name.as_bytes()))
}

/// Whether a `Connection` field of `headers` carries `wanted`.
pub(crate) fn connection_has(headers: &HeaderMap, wanted: Token) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| tokens(v.as_bytes()))
        .any(|(token, _)| token == wanted)
}

/// Removes the fields that describe one connection, not the message, from
/// a `HeaderMap`. An `Upgrade` field is left for the caller to decide.
///
/// One pass over the names first: most messages carry at most
/// `Connection: keep-alive`, and a removal costs a hash lookup.
///
/// Returns whether it removed fields the `Connection` field named.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let (mut connection, mut others) = (false, false);
    for name in headers.keys() {
        match kind(name.as_str()) {
            Some(Hop::Connection) => connection = true,
            Some(Hop::Field | Hop::Framing) => others = true,
            Some(Hop::Upgrade) | None => {}
        }
    }
    let mut named_removed = false;
    if connection {
        // Fields the Connection field names are hop-by-hop too. A
        // `keep-alive` token names a field removed below anyway, so the
        // usual `Connection: keep-alive` needs no list.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| tokens(v.as_bytes()))
            .filter(|(token, _)| !matches!(token, Token::KeepAlive | Token::Upgrade))
            .filter_map(|(_, t)| HeaderName::from_bytes(t).ok())
            .collect();
        named_removed = !named.is_empty();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    if others {
        // At most one pass per kind of field present, and no allocation:
        // the names are found again by `kind`, not listed a second time.
        while let Some(name) = headers
            .keys()
            .find(|n| matches!(kind(n.as_str()), Some(Hop::Field | Hop::Framing)))
            .cloned()
        {
            headers.remove(&name);
        }
    }
    named_removed
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_list_of_rfc_9110() {
        for (name, expected) in [
            ("Connection", Some(Hop::Connection)),
            ("keep-alive", Some(Hop::Field)),
            ("Proxy-Connection", Some(Hop::Field)),
            ("TE", Some(Hop::Field)),
            ("Trailer", Some(Hop::Framing)),
            ("transfer-encoding", Some(Hop::Framing)),
            ("Upgrade", Some(Hop::Upgrade)),
            ("content-length", None),
            ("host", None),
            ("tx", None),
            ("trailers", None),
        ] {
            assert_eq!(kind(name), expected, "{name}");
        }
    }

    #[test]
    fn connection_tokens() {
        let found: Vec<_> = tokens(b" close,,Keep-Alive , upgrade, x-a ").collect();
        assert_eq!(
            found,
            [
                (Token::Close, &b"close"[..]),
                (Token::KeepAlive, b"Keep-Alive"),
                (Token::Upgrade, b"upgrade"),
                (Token::Other, b"x-a"),
            ]
        );
    }

    #[test]
    fn header_map_loses_hop_by_hop_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private, upgrade"),
        );
        for (name, value) in [
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        assert!(strip_hop_by_hop(&mut headers), "x-private was named");
        let mut left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["upgrade", "x-kept"]);

        let mut plain = HeaderMap::new();
        plain.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        plain.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!strip_hop_by_hop(&mut plain));
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn parsed_fields_named_by_connection() {
        let raw = b"GET / HTTP/1.1\r\nConnection: close, X-Private\r\nX-Private: 1\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(raw).unwrap().is_complete());
        assert!(named_by_connection(req.headers, "x-private"));
        assert!(!named_by_connection(req.headers, "x-other"));
    }

    #[test]
    fn connection_has_a_token() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.append(header::CONNECTION, HeaderValue::from_static(" Upgrade"));
        assert!(connection_has(&headers, Token::Upgrade));
        assert!(!connection_has(&headers, Token::Close));
    }
}
