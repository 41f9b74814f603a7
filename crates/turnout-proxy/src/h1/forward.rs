//! Forwarding a prepared request on the fast path: attempts on the
//! instances `dispatch::Attempts` hands out, over pooled connections,
//! and the response body passed back.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dispatch::{self, Attempts, Failure};
use crate::shared::Shared;
use crate::snapshot::ServiceState;
use crate::upstream::{self, Upstream};

use super::READ_CHUNK;
use super::chunked::ChunkedEnd;
use super::conn::{Clock, Conn, write_local};
use super::request::Prepared;
use super::response::{Framing, HeadError, ResponseHead, read_response_head, write_cookies};

/// Forwards a prepared request with retries and passes the response on.
/// Returns whether the client connection may serve another request.
pub(super) async fn forward(
    shared: &Shared,
    client: &mut TcpStream,
    cx: &mut Conn,
    clock: &mut Clock<'_>,
    p: Prepared,
) -> bool {
    let started = Instant::now();
    let route_state = &p.snapshot.routes[p.route as usize];
    let state: &ServiceState = &route_state.services[usize::from(p.target.service)];
    let mut attempts = Attempts::new(state, p.target, p.first, p.idempotent || p.bodyless);
    let mut failure = None;
    while let Some((slot_index, in_flight)) = attempts.next() {
        let slot = &state.instances[slot_index];
        let instance = &slot.instance;
        let exchanged = exchange(
            shared,
            instance,
            client,
            cx,
            clock,
            started,
            (p.idempotent, p.head_method),
        )
        .await;
        let (mut upstream, head) = match exchanged {
            Ok(answer) => answer,
            Err(kind) => {
                failure = Some(kind);
                if !kind.counted(shared, state, instance, p.idempotent) {
                    break;
                }
                continue;
            }
        };
        dispatch::answered(shared, state, slot_index, head.status, started, p.account);
        if shared.config.access_log
            && let Some(route) = p.snapshot.table.route(p.route)
            && let Some(service) = route.service(p.target.service)
        {
            dispatch::access_log(
                route.id(),
                service.name(),
                &instance.id,
                std::str::from_utf8(&cx.buf[p.method.clone()]).unwrap_or("-"),
                std::str::from_utf8(&cx.buf[p.path.clone()]).unwrap_or("-"),
                head.status,
                started,
            );
        }
        write_cookies(
            &mut cx.upstream_head,
            p.target,
            dispatch::pin(p.target, slot_index, &instance.id),
        );
        let close = p.close || head.framing == Framing::Close || shared.stop.is_cancelled();
        let out = &mut cx.upstream_head;
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let passed = pass_body(client, &mut upstream, &mut cx.response, head, out).await;
        // The request stays in flight on the instance until here.
        drop(in_flight);
        return match passed {
            Ok(reusable) => {
                if reusable {
                    instance.link.pool.put(upstream);
                }
                !close
            }
            Err(_) => false,
        };
    }
    let (status, text) = dispatch::failed(shared, state, failure, p.account, started);
    let close = p.close || shared.stop.is_cancelled();
    write_local(client, &mut cx.response, status.as_u16(), text, close)
        .await
        .is_ok()
        && !close
}

/// One attempt: a connection (pooled or new), the request written, the
/// response head read within `upstream_response`. The client's head is in
/// `cx.upstream_head` on entry; on success it holds the client's response
/// head without its end (cookies and `Connection` still to come).
async fn exchange(
    shared: &Shared,
    instance: &crate::instance::Instance,
    client: &mut TcpStream,
    cx: &mut Conn,
    clock: &mut Clock<'_>,
    started: Instant,
    (idempotent, head_method): (bool, bool),
) -> Result<(Upstream, ResponseHead), Failure> {
    let timeouts = shared.config.timeouts;
    clock.set(tokio::time::Instant::from_std(
        started + timeouts.upstream_response,
    ));
    let mut pooled = instance.link.pool.take(started, timeouts.idle);
    loop {
        let reused = pooled.is_some();
        let mut upstream = match pooled.take() {
            Some(upstream) => upstream,
            None => upstream::connect(shared, instance).await.map_err(|_| {
                if instance.link.drained.is_cancelled() {
                    Failure::Drained
                } else {
                    Failure::Connect
                }
            })?,
        };
        cx.response.clear();
        let attempt = async {
            upstream.stream.write_all(&cx.upstream_head).await?;
            read_response_head(
                &mut upstream.stream,
                client,
                &mut cx.response,
                &mut cx.upstream_head,
                head_method,
            )
            .await
        };
        let answered = tokio::select! {
            biased;
            answered = attempt => answered,
            () = clock.fired() => return Err(Failure::Timeout),
        };
        match answered {
            Ok(head) => return Ok((upstream, head)),
            Err(_) if instance.link.drained.is_cancelled() => return Err(Failure::Drained),
            // A pooled connection the upstream closed just as it was
            // taken: nothing of a response came, so an idempotent request
            // goes again on a new connection.
            Err(HeadError::Closed) if reused && idempotent => continue,
            Err(_) => return Err(Failure::Protocol),
        }
    }
}

/// Sends the client's response head (`head_out`, complete) and the body
/// that follows the upstream's head in `buf`, then the rest of the body
/// as it comes. Returns whether the upstream connection may be reused.
async fn pass_body(
    client: &mut TcpStream,
    upstream: &mut Upstream,
    buf: &mut Vec<u8>,
    head: ResponseHead,
    head_out: &mut Vec<u8>,
) -> io::Result<bool> {
    let available = &buf[head.len..];
    let mut chunked = ChunkedEnd::default();
    // How much of `available` belongs to the body, and whether it ends
    // there.
    let (take, mut done) = match head.framing {
        Framing::Empty => (0, true),
        Framing::Length(n) => {
            let take = (available.len() as u64).min(n) as usize;
            (take, take as u64 == n)
        }
        Framing::Chunked => match chunked.feed(available)? {
            Some(end) => (end, true),
            None => (available.len(), false),
        },
        Framing::Close => (available.len(), false),
    };
    // Bytes after the body: the upstream sent more than one response.
    let mut clean = take == available.len();
    let mut left = match head.framing {
        Framing::Length(n) => n - take as u64,
        _ => 0,
    };
    head_out.extend_from_slice(&available[..take]);
    client.write_all(head_out).await?;
    while !done {
        buf.clear();
        if buf.capacity() < READ_CHUNK * 4 {
            buf.reserve(READ_CHUNK * 4);
        }
        let n = upstream.stream.read_buf(buf).await?;
        if n == 0 {
            if head.framing == Framing::Close {
                break;
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = match head.framing {
            Framing::Length(_) => {
                let take = (n as u64).min(left) as usize;
                left -= take as u64;
                done = left == 0;
                take
            }
            Framing::Chunked => match chunked.feed(buf)? {
                Some(end) => {
                    done = true;
                    end
                }
                None => n,
            },
            _ => n,
        };
        clean &= take == n;
        client.write_all(&buf[..take]).await?;
    }
    Ok(head.keep_alive && clean)
}
