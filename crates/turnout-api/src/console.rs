//! The web console (DESIGN §9): hand-written HTML, CSS and JavaScript
//! under `crates/turnout-api/console/`, embedded in the binary and served
//! at `/` on the admin address without a token (the page holds no data;
//! everything it shows it reads from `/v1` with the token the user types).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// What the console serves, path and content type (a test fetches each).
pub(crate) const ASSETS: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/console/console.js", "text/javascript; charset=utf-8"),
    ("/console/console.css", "text/css; charset=utf-8"),
];

/// Only our own scripts, styles and API: no inline script, no other
/// origin, not framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary serves a new console: never keep an old one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) async fn index() -> Response {
    asset(ASSETS[0].1, INDEX)
}

pub(crate) async fn script() -> Response {
    asset(ASSETS[1].1, SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset(ASSETS[2].1, STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_assets_and_no_other_origin() {
        for (path, _) in &ASSETS[1..] {
            assert!(INDEX.contains(&format!("\"{path}\"")), "{path}");
        }
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        // DESIGN §9: one password field labelled "API token", and the
        // token never in a URL.
        assert!(INDEX.contains(r#"<label for="token">API token</label>"#));
        assert!(INDEX.contains(r#"id="token" name="token" type="password""#));
        assert!(SCRIPT.contains("sessionStorage"));
        assert!(!SCRIPT.contains("localStorage"));
        assert!(!SCRIPT.contains("?token") && !SCRIPT.contains("&token"));
        assert!(!SCRIPT.contains("EventSource("));
        // No inline script or style: the policy forbids them.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
    }
}
