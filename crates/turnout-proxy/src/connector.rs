//! Connections to upstream instances: hyper-util's `HttpConnector`, plus a
//! watch per connection that shuts the socket down when its instance's
//! drain ends (or the proxy stops). That is how the drain deadline cuts a
//! response body that is still streaming, or a request still waiting for
//! its head: the connection under it ends, with no cost per request or per
//! read (the watch is one small task per pooled connection, holding a
//! duplicate of the socket's descriptor).

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::DropGuard;

use crate::shared::Shared;

type BoxError = Box<dyn Error + Send + Sync>;

/// The upstream client's connector.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    /// Weak: the client that holds this connector lives in `Shared`.
    shared: Weak<Shared>,
}

impl Connector {
    pub fn new(http: HttpConnector, shared: Weak<Shared>) -> Connector {
        Connector { http, shared }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The instance connected to, to give up on should it stop taking
        // requests meanwhile (as the fast path does).
        let target = uri
            .authority()
            .and_then(|a| a.as_str().parse::<std::net::SocketAddr>().ok());
        let http = self.http.call(uri);
        let shared = self.shared.clone();
        // From inside the instance's network namespace where there is one
        // ([`crate::netns`]), else as `HttpConnector` does.
        let within = self.shared.clone();
        let connecting = async move {
            if let Some(shared) = within.upgrade()
                && let Some(namespaces) = shared.namespaces.get()
                && let Some(addr) = target
            {
                let timeout = shared.config.timeouts.connect;
                match tokio::time::timeout(timeout, namespaces.connect(addr)).await {
                    Ok(Some(connected)) => {
                        let stream = connected?;
                        stream.set_nodelay(true)?;
                        return Ok::<_, BoxError>(TokioIo::new(stream));
                    }
                    Ok(None) => {}
                    Err(_) => return Err(format!("connect to {addr} timed out").into()),
                }
            }
            Ok(http.await?)
        };
        // One allocation per new connection, not per request.
        Box::pin(async move {
            let instance = shared
                .upgrade()
                .zip(target)
                .and_then(|(s, addr)| s.instances.load().get(&addr).cloned());
            let io = match instance {
                Some(instance) => {
                    crate::upstream::while_taking_requests(&instance, connecting).await??
                }
                None => connecting.await?,
            };
            let shared = shared.upgrade().ok_or("the proxy has stopped")?;
            let addr = io.inner().peer_addr()?;
            // A request only connects to an instance it counts in flight
            // on, so the instance is known unless its drain deadline has
            // passed: then nothing must reach it, and the request may try
            // another instance, as after any connect error.
            let drained = match shared.instances.load().get(&addr) {
                Some(instance) if !instance.link.drained.is_cancelled() => {
                    instance.link.drained.clone()
                }
                _ => return Err(format!("instance {addr} has been drained").into()),
            };
            // At the drain deadline the connection is cut: hyper ends
            // whatever request or body it carries.
            let watch = crate::upstream::cut_at_drain(&shared, io.inner(), drained)?;
            Ok(UpstreamIo { io, _closed: watch })
        })
    }
}

/// An upstream connection; dropping it ends its watch.
#[derive(Debug)]
pub(crate) struct UpstreamIo {
    io: TokioIo<TcpStream>,
    /// Held only for its drop.
    _closed: DropGuard,
}

impl Connection for UpstreamIo {
    /// Plain `Connected`, without the `HttpInfo` extra `HttpConnector`
    /// adds: the client copies that into every response's extensions,
    /// three allocations per request that nothing here reads.
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for UpstreamIo {
    crate::write_through::forward_writes!();
}
