//! Reading cookies from request headers without allocating.

use crate::headers::RequestHeaders;

/// Cookie that holds a client's position in `[0, POSITION_SPACE)` for
/// `version` stickiness.
pub const POSITION_COOKIE: &str = "turnout_pos";

/// Cookie that pins a client to one instance for `instance` stickiness.
pub const INSTANCE_COOKIE: &str = "turnout_instance";

/// The value of the first cookie called `name` in the request's `Cookie`
/// headers (HTTP/2 clients may send several), without its surrounding quotes.
pub fn cookie_value<'h, H: RequestHeaders + ?Sized>(headers: &'h H, name: &str) -> Option<&'h str> {
    for header in headers.values("cookie") {
        // A cookie header that is not text cannot hold a cookie we set.
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for pair in text.split(';') {
            let pair = pair.trim_matches(|c| c == ' ' || c == '\t');
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if key.trim_end() == name {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                return Some(value);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;
    use http::{HeaderMap, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn finds_cookie_among_others() {
        let h = headers(&["a=1; turnout_pos=42; b=2"]);
        assert_eq!(cookie_value(&h, POSITION_COOKIE), Some("42"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
    }

    #[test]
    fn several_headers_and_quotes() {
        let h = headers(&["a=1", "turnout_instance=\"127.0.0.1:80\""]);
        assert_eq!(cookie_value(&h, INSTANCE_COOKIE), Some("127.0.0.1:80"));
    }

    #[test]
    fn name_must_match_whole() {
        let h = headers(&["xturnout_pos=1; turnout_pos2=3"]);
        assert_eq!(cookie_value(&h, POSITION_COOKIE), None);
    }
}
