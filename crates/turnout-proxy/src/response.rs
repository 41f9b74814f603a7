//! Responses the proxy writes itself (404, 403, 503...), short text bodies.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;

/// A plain-text response from the proxy itself.
pub(crate) fn local(status: StatusCode, text: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::local(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A 400 for a request whose head or body breaks the protocol (two `Host`
/// fields, ambiguous or malformed framing). The connection closes after
/// it: where the request ends, or what else the client sends, is not
/// trusted. (HTTP/2 has no `Connection` field; hyper drops it there.)
pub(crate) fn refuse(text: &'static str) -> Response<ResponseBody> {
    let mut response = local(StatusCode::BAD_REQUEST, text);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
