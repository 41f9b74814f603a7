//! The body of responses to clients: an upstream's body streamed through
//! while its request stays counted in flight, or bytes the proxy holds.
//! And the body of a request on its way upstream, streamed from the client.

use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::connection::InProgress;
use crate::in_flight::InFlight;

/// A response body. Dropping it (sent to the end, or the client went away)
/// ends the request's [`InFlight`] on its instance and its [`InProgress`]
/// on its connection.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    inner: Inner,
    /// Held only for its drop.
    _in_flight: Option<InFlight>,
    /// Held only for its drop.
    _in_progress: Option<InProgress>,
}

#[derive(Debug)]
enum Inner {
    Upstream(Incoming),
    Local(Full<Bytes>),
}

impl ResponseBody {
    /// An upstream's body; the request stays in flight until it is dropped.
    pub fn upstream(body: Incoming, in_flight: InFlight) -> ResponseBody {
        ResponseBody {
            inner: Inner::Upstream(body),
            _in_flight: Some(in_flight),
            _in_progress: None,
        }
    }

    /// The body of a host a request was passed on to (egress): no
    /// instance of ours to count it on.
    pub fn passed_on(body: Incoming) -> ResponseBody {
        ResponseBody {
            inner: Inner::Upstream(body),
            _in_flight: None,
            _in_progress: None,
        }
    }

    /// Bytes the proxy answers itself.
    pub fn local(bytes: Bytes) -> ResponseBody {
        ResponseBody {
            inner: Inner::Local(Full::new(bytes)),
            _in_flight: None,
            _in_progress: None,
        }
    }

    /// Keeps the request's connection busy until the body is dropped.
    pub fn hold(&mut self, in_progress: InProgress) {
        self._in_progress = Some(in_progress);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().inner {
            Inner::Upstream(body) => Pin::new(body).poll_frame(cx),
            Inner::Local(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(body) => body.is_end_stream(),
            Inner::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(body) => body.size_hint(),
            Inner::Local(body) => body.size_hint(),
        }
    }
}

/// A client's request body streamed to an upstream: the start of it that
/// was read before forwarding (of a chunked body, in `forward`), then the
/// rest as it comes.
///
/// An error reading the client's body (malformed chunked framing, or the
/// client went away) comes out as a [`ClientBodyError`]. The upstream
/// client then aborts the request where it is — a chunked request without
/// its last chunk, the connection closed — and fails with that error as
/// its source, which is how the request path tells a client that broke
/// its body (400) from an upstream that failed (502).
#[derive(Debug)]
pub(crate) struct ClientBody {
    start: Option<Bytes>,
    rest: Incoming,
}

/// The client's request body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub(crate) struct ClientBodyError(#[source] hyper::Error);

impl ClientBody {
    /// `rest` as it comes, after `start` (read from it already) if that
    /// is not empty.
    pub fn new(start: Bytes, rest: Incoming) -> ClientBody {
        ClientBody {
            start: (!start.is_empty()).then_some(start),
            rest,
        }
    }

    /// Whether a request failed because its client's body did.
    pub fn failed(err: &(dyn Error + 'static)) -> bool {
        let mut cause = Some(err);
        while let Some(err) = cause {
            if err.is::<ClientBodyError>() {
                return true;
            }
            cause = err.source();
        }
        false
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        if let Some(start) = this.start.take() {
            return Poll::Ready(Some(Ok(Frame::data(start))));
        }
        Pin::new(&mut this.rest)
            .poll_frame(cx)
            .map_err(ClientBodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.start.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let Some(start) = &self.start else {
            return rest;
        };
        let n = start.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + n);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + n);
        }
        hint
    }
}
