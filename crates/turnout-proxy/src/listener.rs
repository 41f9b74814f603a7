//! Accept loops: each connection is served by hyper (HTTP/1.1 with
//! upgrades, or HTTP/2 by prior knowledge or ALPN) and shut down gracefully
//! when the proxy stops.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use turnout_routing::Listener;

use crate::connection::{ClientIo, ConnState};
use crate::forward::{ConnInfo, handle};
use crate::shared::Shared;

/// How long a client may take for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until the proxy stops, then lets open connections
/// finish their requests until the drain timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    kind: Listener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let builder = Arc::new(connection_builder(&shared));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            listener: kind,
            peer,
            tls: tls.is_some(),
        };
        match &tls {
            None => serve_connection(&shared, &builder, &graceful, stream, conn),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let shared_for_task = shared.clone();
                let builder = builder.clone();
                let hard_stop = shared.hard_stop.clone();
                // The handshake runs in its own task so a slow client does
                // not hold up the accept loop; its connection then closes
                // with the others at the shutdown deadline.
                shared.tasks.spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            _ => return,
                        },
                        () = hard_stop.cancelled() => return,
                    };
                    let state = ConnState::new();
                    let io = TokioIo::new(ClientIo::new(stream, state.clone()));
                    let service = service_fn(move |req| {
                        handle(shared_for_task.clone(), conn, state.clone(), req)
                    });
                    let connection = builder
                        .serve_connection_with_upgrades(io, service)
                        .into_owned();
                    tokio::select! {
                        _ = connection => {}
                        () = hard_stop.cancelled() => {}
                    }
                });
            }
        }
    }
    drop(listener);
    let deadline = shared.current.load().table.drain_timeout();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!("connections still open at the drain deadline; closing them");
        }
    }
}

fn serve_connection<I>(
    shared: &Arc<Shared>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
    stream: I,
    conn: ConnInfo,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared_for_service = shared.clone();
    let state = ConnState::new();
    let io = TokioIo::new(ClientIo::new(stream, state.clone()));
    let service =
        service_fn(move |req| handle(shared_for_service.clone(), conn, state.clone(), req));
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    let connection = graceful.watch(connection);
    let hard_stop = shared.hard_stop.clone();
    shared.tasks.spawn(async move {
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
            }
            () = hard_stop.cancelled() => {}
        }
    });
}

fn connection_builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let config = &shared.config;
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header_read)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}
