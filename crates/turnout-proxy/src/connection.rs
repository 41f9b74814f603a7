//! One client connection: what the proxy learns from its bytes that hyper
//! does not pass on with each request. The bytes go through [`ClientIo`],
//! which follows the connection's request framing; requests read the
//! outcome from the shared [`ConnState`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::framing::RequestFraming;

/// No request index: nothing ambiguous seen.
const NONE: u64 = u64::MAX;

/// What requests on one connection share. One allocation per connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests dispatched on the connection so far.
    requests: AtomicU64,
    /// Index of the first request whose head carried both
    /// `Transfer-Encoding` and `Content-Length`, or [`NONE`].
    ambiguous: AtomicU64,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            requests: AtomicU64::new(0),
            ambiguous: AtomicU64::new(NONE),
        })
    }

    /// Counts a request dispatched on the connection and returns its index.
    /// hyper dispatches HTTP/1.1 requests one at a time in the order of
    /// their heads, so the index is the head's.
    pub fn begin_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the head of request `index`, or of an earlier one, carried
    /// both framings. The head's bytes were read (and followed) before
    /// hyper dispatched the request, in the same connection task.
    pub fn ambiguous(&self, index: u64) -> bool {
        self.ambiguous.load(Ordering::Relaxed) <= index
    }
}

/// A client connection's byte stream, followed on the way in.
#[derive(Debug)]
pub(crate) struct ClientIo<I> {
    io: I,
    framing: RequestFraming,
    reported: bool,
    state: Arc<ConnState>,
}

impl<I> ClientIo<I> {
    pub fn new(io: I, state: Arc<ConnState>) -> ClientIo<I> {
        ClientIo {
            io,
            framing: RequestFraming::default(),
            reported: false,
            state,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if this.framing.following() {
            this.framing.feed(&buf.filled()[before..]);
            if !this.reported
                && let Some(index) = this.framing.first_ambiguous()
            {
                this.reported = true;
                this.state.ambiguous.store(index, Ordering::Relaxed);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ClientIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
