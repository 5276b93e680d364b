//! The client-facing accept loop: a connection cap (a semaphore: beyond
//! it new connections wait in the listen queue), workers that each serve
//! their connections on an event loop of their own, optional TLS, the head
//! guard, HTTP/1.1 with keep-alive, HTTP/2 (ALPN over TLS, prior knowledge
//! on a plain listener), and a graceful drain on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::send_stall::SendStall;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::client_cap::{ClientCap, ClientSlot};
use crate::config::Limits;
use crate::guard::{Guard, GuardConfig};
use crate::http2::Opening;
use crate::proxy::{ClientConn, Proxy};

/// Bytes the HTTP parser accepts beyond twice the head limit: the guard
/// refuses oversized heads first, so the parser's own limit (an empty 431
/// and a closed connection) is never what a client sees.
const PARSER_HEAD_SLACK: usize = 16 * 1024;

/// What every worker shares.
struct Shared {
    http: hyper::server::conn::http1::Builder,
    /// HTTP/2, unless turned off.
    h2: Option<hyper::server::conn::http2::Builder<TokioExecutor>>,
    limits: Limits,
    /// The proxy of the configuration in force (replaced on a reload).
    proxies: watch::Receiver<Arc<Proxy>>,
    guard: Arc<GuardConfig>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

/// A connection the acceptor hands to a worker, with its place under the
/// connection cap.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    /// Its place under the per-client cap, when there is one.
    client_slot: Option<ClientSlot>,
}

/// The acceptor's side of one worker.
struct WorkerHandle {
    incoming: mpsc::UnboundedSender<Accepted>,
    /// Connections the worker serves now.
    open: Arc<AtomicUsize>,
    /// Whether it drained its connections in time, once it has stopped.
    done: oneshot::Receiver<bool>,
}

/// Serves clients until SIGINT or SIGTERM, then drains the connections in
/// flight for a bounded time.
///
/// One task accepts connections (under the connection cap) and hands each
/// to the least busy of `workers` workers. Each worker is an event loop of
/// its own (a single-threaded runtime: the first on the calling runtime,
/// the others on threads of their own) that serves its connections from
/// start to end, so a request, its verification and its upstream exchange
/// never wake another thread.
pub async fn serve(
    listener: TcpListener,
    proxies: watch::Receiver<Arc<Proxy>>,
    limits: Limits,
    http2: bool,
    guard: Arc<GuardConfig>,
    tls: Option<TlsAcceptor>,
    workers: usize,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's header timer runs from the end of the previous answer (or
    // from accept) to the end of the next head: the idle timeout. The guard
    // bounds the time from a head's first byte to its end.
    // half_close: a client may shut down its sending side once the request
    // is out and still wait for the answer (as HTTP/1.0 clients and some
    // scripts do); the answer is sent before the connection closes.
    http.timer(TokioTimer::new())
        .half_close(true)
        .header_read_timeout(limits.idle_timeout)
        .max_headers(limits.max_headers.saturating_mul(2).max(8))
        .max_header_size(limits.max_header_bytes.saturating_mul(2) + PARSER_HEAD_SLACK);
    let h2 = http2.then(|| {
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(crate::http2::MAX_STREAMS)
            // As for HTTP/1.1, room beyond the limit, so that the proxy
            // answers an oversized head with a problem body rather than the
            // library with a bare 431 (its count adds 32 bytes a field).
            .max_header_list_size(
                u32::try_from(limits.max_header_bytes.saturating_mul(2) + PARSER_HEAD_SLACK)
                    .unwrap_or(u32::MAX),
            );
        h2
    });
    let shared = Arc::new(Shared {
        http,
        h2,
        limits,
        proxies,
        guard,
        tls,
        handshake_timeout: limits.header_timeout,
    });
    let grace = limits.header_timeout + limits.body_timeout + limits.upstream_timeout;
    let (stop, stopped) = watch::channel(false);
    let mut handles = Vec::with_capacity(workers.max(1));
    for index in 0..workers.max(1) {
        match start_worker(index, &shared, stopped.clone(), grace) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                tracing::error!(error = %e, worker = index, "cannot start a worker thread; serving with fewer")
            }
        }
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let client_cap = limits.max_connections_per_client.map(ClientCap::new);
    let mut shutdown = pin!(shutdown_signal());
    let mut next = 0usize;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let Some((stream, peer)) = accept(&listener, shutdown.as_mut(), |e| {
            tracing::warn!(error = %e, "accept failed; retrying in 1 s");
        })
        .await
        else {
            break;
        };
        let client_slot = match client_cap.as_ref().map(|cap| cap.admit(peer.ip())) {
            None => None,
            Some(Some(slot)) => Some(slot),
            Some(None) => {
                // Closed at once: the client has as many connections open
                // as it may hold. The place under the total cap comes back.
                metrics::counter!("gateway_connections_refused_total", "reason" => "per_client_cap")
                    .increment(1);
                tracing::debug!(peer = %peer.ip(), "connection closed: this client already holds limits.max_connections_per_client connections");
                continue;
            }
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand an accepted connection over; closed");
                continue;
            }
        };
        // The least busy worker; among equals, the next in turn.
        let count = handles.len();
        let Some(chosen) = (0..count)
            .map(|i| (next + i) % count)
            .min_by_key(|&i| handles[i].open.load(Ordering::Relaxed))
        else {
            break;
        };
        next = (chosen + 1) % count;
        let accepted = Accepted {
            stream,
            peer,
            permit,
            client_slot,
        };
        if handles[chosen].incoming.send(accepted).is_err() {
            tracing::error!(
                worker = chosen,
                "a worker has stopped; its connection was closed"
            );
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; draining the requests in flight");
    let _ = stop.send(true);
    let mut drained = true;
    for handle in handles {
        drop(handle.incoming);
        // A worker that never answers (its thread panicked) counts as not
        // drained; each bounds its own drain by `grace`.
        let finished = tokio::time::timeout(grace + Duration::from_secs(1), handle.done).await;
        drained &= matches!(finished, Ok(Ok(true)));
    }
    if drained {
        tracing::info!("drained");
    } else {
        tracing::warn!("drain timed out; closing the remaining connections");
    }
}

/// Starts worker `index`: the first as a task on the calling runtime, the
/// others each on a thread with its own single-threaded runtime.
fn start_worker(
    index: usize,
    shared: &Arc<Shared>,
    stopped: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<WorkerHandle> {
    let (incoming, receiver) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicUsize::new(0));
    let (done, done_receiver) = oneshot::channel();
    let work = worker(
        receiver,
        Arc::clone(shared),
        Arc::clone(&open),
        stopped,
        grace,
    );
    if index == 0 {
        tokio::spawn(async move {
            let _ = done.send(work.await);
        });
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                let _ = done.send(runtime.block_on(work));
            })?;
    }
    Ok(WorkerHandle {
        incoming,
        open,
        done: done_receiver,
    })
}

/// One worker: serves the connections handed to it until told to stop,
/// then drains them for up to `grace`; returns whether they all finished.
async fn worker(
    mut incoming: mpsc::UnboundedReceiver<Accepted>,
    shared: Arc<Shared>,
    open: Arc<AtomicUsize>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) -> bool {
    let graceful = GracefulShutdown::new();
    let mut pacemaker = pacemaker();
    loop {
        tokio::select! {
            accepted = incoming.recv() => match accepted {
                Some(accepted) => serve_connection(&shared, &graceful, &open, &stopped, accepted),
                None => break,
            },
            changed = stopped.changed() => if changed.is_err() || *stopped.borrow() {
                break;
            },
            _ = pacemaker.tick() => {}
        }
    }
    // HTTP/1.1 connections drain through `graceful`; HTTP/2 connections
    // (and connections still opening) watch `stopped` themselves and are
    // counted in `open`.
    let drained = async {
        graceful.shutdown().await;
        while open.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = drained => true,
        () = tokio::time::sleep(grace) => false,
    }
}

/// A timer that fires every second for as long as the worker runs, so that
/// the worker's event loop never sleeps with its next timer more than a
/// second away.
///
/// Why: each forwarded request starts an upstream timeout (and hyper resets
/// the connection's header timer). tokio's timer driver wakes its own
/// event loop through a write to an eventfd whenever a timer is set
/// earlier than the deadline the loop last went to sleep with, and under
/// light load that is the case for most requests (the loop slept with only
/// the idle timeouts, tens of seconds away, pending). The write, and the
/// extra turn of the loop that reads it, cost two or three system calls per
/// request. With this timer pending, the loop sleeps for at most a second,
/// every request timeout ends later than that, and nothing is written:
/// one wake-up a second instead of one every few requests.
fn pacemaker() -> tokio::time::Interval {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Spawns the task of one accepted connection on the worker's runtime.
fn serve_connection(
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
    open: &Arc<AtomicUsize>,
    stopped: &watch::Receiver<bool>,
    accepted: Accepted,
) {
    let Accepted {
        stream,
        peer,
        permit,
        client_slot,
    } = accepted;
    if let Err(e) = crate::send_stall::limit_unsent(socket2::SockRef::from(&stream)) {
        tracing::debug!(error = %e, "cannot limit the unsent bytes of a client socket");
    }
    let stream = match TcpStream::from_std(stream) {
        // A client that stops reading its responses is cut off after the
        // body timeout, and one that reads them too slowly after a body
        // timeout of waiting under the minimum rate, wherever TCP holds the
        // gateway's writes back (HTTP/2 streams held back by flow control
        // have the watchdog's stall limit instead).
        Ok(stream) => SendStall::new(
            stream,
            shared.limits.body_timeout,
            shared.limits.min_send_rate,
            "main",
            peer,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve an accepted connection; closed");
            return;
        }
    };
    metrics::gauge!("gateway_connections").increment(1.0);
    open.fetch_add(1, Ordering::Relaxed);
    let open = Arc::clone(open);
    let finished = move || {
        metrics::gauge!("gateway_connections").decrement(1.0);
        open.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        drop(client_slot);
    };
    let shared = Arc::clone(shared);
    match (&shared.tls, &shared.h2) {
        (None, None) => {
            let io = Guard::new(stream, Arc::clone(&shared.guard));
            let connection =
                graceful.watch(connection(&shared.http, io, shared.proxies.clone(), peer));
            tokio::spawn(async move {
                let _ = connection.await;
                finished();
            });
        }
        (None, Some(h2)) => {
            // Plain, both protocols: the first bytes say which (prior
            // knowledge: an HTTP/2 client starts with the preface).
            let watcher = graceful.watcher();
            let mut stopped = stopped.clone();
            let h2 = h2.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let limits = &shared.limits;
                let opening = tokio::select! {
                    opening = crate::http2::sniff(&mut stream, limits.header_timeout, limits.header_timeout) => opening,
                    _ = stopped.changed() => None,
                };
                match opening {
                    Some(Opening::Http2(read)) => {
                        let io = crate::http2::Prefixed::new(read, stream);
                        serve_http2(&shared, &h2, io, peer, stopped).await;
                    }
                    Some(Opening::Http1(read)) => {
                        let io = Guard::with_initial(stream, Arc::clone(&shared.guard), read);
                        let _ = watcher
                            .watch(connection(&shared.http, io, shared.proxies.clone(), peer))
                            .await;
                    }
                    None => {}
                }
                finished();
            });
        }
        (Some(acceptor), _) => {
            let watcher = graceful.watcher();
            let acceptor = acceptor.clone();
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream)).await;
                if let Ok(Ok(stream)) = handshake {
                    let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    match &shared.h2 {
                        Some(h2) if negotiated_h2 => {
                            serve_http2(&shared, h2, stream, peer, stopped).await;
                        }
                        _ => {
                            let io = Guard::new(stream, Arc::clone(&shared.guard));
                            let _ = watcher
                                .watch(connection(&shared.http, io, shared.proxies.clone(), peer))
                                .await;
                        }
                    }
                }
                finished();
            });
        }
    }
}

/// Serves one HTTP/2 connection until it ends: closed once the watchdog
/// fires (idle, or only stalled responses in flight); on SIGTERM shut down
/// gracefully (its streams finish), and closed if that takes longer than a
/// request may (header, body and upstream timeouts together, as for the
/// drain).
async fn serve_http2<IO>(
    shared: &Shared,
    h2: &hyper::server::conn::http2::Builder<TokioExecutor>,
    io: IO,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(ClientConn::http2(peer));
    let service = ProxyService {
        conn: Arc::clone(&conn),
        proxies: shared.proxies.clone(),
    };
    let mut connection = pin!(h2.serve_connection(TokioIo::new(io), service));
    let mut dog = crate::http2::Watchdog::default();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let limits = &shared.limits;
    let watched = crate::http2::Limits {
        first_request: limits.header_timeout,
        idle: limits.idle_timeout,
        stalled_send: limits.body_timeout,
    };
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = ticks.tick() => {
                let Some(activity) = conn.activity() else { break };
                if dog.tick(activity, &watched) {
                    // Nothing in flight, or only responses the client does
                    // not take: no stream to finish, and such a client
                    // would not answer a graceful shutdown's ping either.
                    return;
                }
            }
            changed = stopped.changed() => if changed.is_err() || *stopped.borrow() {
                break;
            },
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(
        limits.header_timeout + limits.body_timeout + limits.upstream_timeout,
        connection,
    )
    .await;
}

/// One HTTP/1.1 connection.
fn connection<IO>(
    http: &hyper::server::conn::http1::Builder,
    io: Guard<IO>,
    proxies: watch::Receiver<Arc<Proxy>>,
    peer: SocketAddr,
) -> hyper::server::conn::http1::Connection<TokioIo<Guard<IO>>, ProxyService>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let body_refusal = io.body_refusal();
    let head_verdict = io.head_verdict();
    http.serve_connection(
        TokioIo::new(io),
        ProxyService {
            conn: Arc::new(ClientConn::new(peer, body_refusal, head_verdict)),
            proxies,
        },
    )
}

/// The hyper service of one connection: the proxy of the configuration in
/// force (each request takes the current one, so a reload reaches
/// connections already open), and the connection's shared state (who is
/// calling, its upstream connection).
#[derive(Debug, Clone)]
pub struct ProxyService {
    proxies: watch::Receiver<Arc<Proxy>>,
    conn: Arc<ClientConn>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for ProxyService {
    type Response = http::Response<crate::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.proxies.borrow());
        Box::pin(proxy.handle(Arc::clone(&self.conn), request))
    }
}

/// Accepts the next connection (with `TCP_NODELAY`: answers are written
/// at once, Nagle would only delay them), or `None` once `shutdown`
/// resolves.
///
/// Errors of one incoming connection are skipped; others (typically
/// EMFILE) go to `on_error` and are retried after a second, so the loop
/// does not spin while connections close and free descriptors.
pub async fn accept<F>(
    listener: &TcpListener,
    mut shutdown: Pin<&mut F>,
    on_error: impl Fn(&std::io::Error),
) -> Option<(TcpStream, SocketAddr)>
where
    F: Future<Output = ()>,
{
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    on_error(&e);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut shutdown => return None,
                    }
                }
            },
            () = &mut shutdown => return None,
        }
    }
}

/// Errors of one incoming connection that say nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed, never resolve: the process
        // still stops on the default signal action.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
