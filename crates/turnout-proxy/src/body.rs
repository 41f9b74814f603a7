//! The body of responses to clients: an upstream's body streamed through
//! while its request stays counted in flight, or bytes the proxy holds.

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
