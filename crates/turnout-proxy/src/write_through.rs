//! Forwarding the write half of a wrapped byte stream. Tokio's
//! `AsyncWrite` and hyper's `rt::Write` have the same five methods; a
//! wrapper that only watches its reads (the client connection's framing
//! follower) or only lives alongside its stream (an upstream connection's
//! drain watch) passes every write straight to its `io` field.

/// The body of an `AsyncWrite` or `hyper::rt::Write` impl forwarding each
/// method to `self.io` (the trait's methods must be in scope, with `Pin`,
/// `Context`, `Poll` and `io`).
macro_rules! forward_writes {
    () => {
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
    };
}

pub(crate) use forward_writes;
