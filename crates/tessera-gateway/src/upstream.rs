//! The upstream side: keep-alive HTTP/1.1 connections held by each client
//! connection, driven inside the task of the request that uses them.
//!
//! Why not a shared pool (hyper-util's client): there every request pays a
//! pool checkout under a lock, a hand-off over a channel to the task that
//! owns the upstream connection, and wake-ups of that task for the request
//! and for the response. Here a client connection keeps its upstream
//! connections in a [`LinkSlot`] and lends each to one request at a time;
//! the request's future, then the response body, drive the upstream
//! connection themselves, so the whole exchange runs in one task.
//!
//! An HTTP/1.1 client connection serves one request at a time, so it holds
//! one upstream connection, opened at its first forwarded request and closed
//! with it. An HTTP/2 client connection's concurrent streams each need one
//! (the upstream speaks HTTP/1.1): it holds at most [`MAX_LINKS_PER_CLIENT`],
//! and further streams wait for one of them; between requests it keeps at
//! most [`MAX_IDLE_LINKS_PER_CLIENT`] idle and closes the others. Across all client connections
//! the upstream connections are bounded by `limits.max_connections` too, so
//! they never outnumber what the connection cap allows; a request that gets
//! none within the upstream timeout is answered 504.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// TCP keep-alive probes on upstream connections start after this idle time.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Upstream connections one client connection may hold at once (idle or
/// in use): one is all an HTTP/1.1 client connection uses; an HTTP/2 one
/// shares this many among its streams.
pub const MAX_LINKS_PER_CLIENT: usize = 8;

/// Idle upstream connections one client connection keeps between its
/// requests: one, as an HTTP/1.1 client connection uses. More would let a
/// client hold the gateway's upstream connections without using them: 130
/// HTTP/2 connections that once ran 8 streams each would keep 1,040 idle,
/// every upstream connection the default limit allows (with two each, 520
/// would), and every other client would wait for one. With one, idle
/// connections hold no more upstream connections than client connections,
/// which `limits.max_connections` bounds already.
pub const MAX_IDLE_LINKS_PER_CLIENT: usize = 1;

/// One upstream connection: the request sender and the connection state
/// machine that must be polled for anything to happen on the socket.
struct Link {
    sender: SendRequest<Full<Bytes>>,
    conn: Conn,
    /// The [`Upstream`] it was made for (a reload may change the upstream).
    upstream: u64,
    /// Its places under the client connection's and the gateway's limits,
    /// given back when it closes.
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Link {
    /// Drives the connection once; `false` once it has ended (the
    /// upstream closed it, or it failed), after which it must not be
    /// polled again.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.conn).poll(cx).is_pending()
    }

    /// Whether a kept-alive connection can take the next request now.
    fn reusable(&mut self, cx: &mut Context<'_>, upstream: u64) -> bool {
        self.upstream == upstream
            && self.drive(cx)
            && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }
}

/// The upstream connections of one client connection: those idle between
/// requests, and the permits that bound how many it holds.
///
/// Boxed: hyper's connection state is several hundred bytes, and a link
/// changes hands a few times per request (slot, request future, response
/// body), so it moves as a pointer.
pub struct LinkSlot {
    // Boxes, not links: each leaves the slot as the box it travels in.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Link>>>,
    permits: Arc<Semaphore>,
    /// A link came back: a request waiting for one looks again.
    returned: Notify,
    /// Requests waiting for a link: one coming back is kept for them.
    waiting: AtomicUsize,
}

impl Default for LinkSlot {
    fn default() -> Self {
        LinkSlot {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_LINKS_PER_CLIENT)),
            returned: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Debug for LinkSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSlot")
    }
}

impl LinkSlot {
    fn take(&self) -> Option<Box<Link>> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put(&self, link: Box<Link>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = MAX_IDLE_LINKS_PER_CLIENT.max(self.waiting.load(Ordering::Acquire));
        if idle.len() >= keep {
            // Closed rather than kept (no request here waits for it): its
            // places under the limits go back, so another client
            // connection can open one. Links kept earlier for requests
            // that then opened one of their own (a place came free first)
            // go too, so the client connection is back to `keep` idle.
            let surplus: Vec<Box<Link>> = idle.drain(keep..).collect();
            drop(idle);
            drop(surplus);
            drop(link);
            return;
        }
        idle.push(link);
        drop(idle);
        self.returned.notify_one();
    }
}

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The connection could not be made (refused, unreachable, name not
    /// resolved).
    Connect(std::io::Error),
    /// The HTTP exchange failed (connection closed, malformed response).
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::ConnectTimeout => f.write_str("connect timed out"),
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Where and how to connect to the upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Distinguishes the upstreams of successive configurations.
    id: u64,
    host: String,
    port: u16,
    connect_timeout: Duration,
    http: Builder,
    /// Bounds the upstream connections of all client connections together.
    links: Arc<Semaphore>,
}

impl Upstream {
    /// An upstream at `host:port`, with at most `max_links` connections to
    /// it at once.
    pub fn new(host: &str, port: u16, connect_timeout: Duration, max_links: usize) -> Self {
        // A name in brackets is an IPv6 literal; the resolver wants it bare.
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Upstream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            host: host.to_owned(),
            port,
            connect_timeout,
            http: Builder::new(),
            links: Arc::new(Semaphore::new(max_links.max(1))),
        }
    }

    /// Sends `request` (origin-form target, `Host` set) on one of the client
    /// connection's idle upstream connections, opening one if it has none
    /// (or they were closed), within its limits. A request that provably
    /// never left (the kept-alive connection closed under it) is sent again
    /// once on a new connection.
    pub async fn send(
        &self,
        slot: &Arc<LinkSlot>,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (link, fresh) = match self.idle_link(slot).await {
            Some(link) => (link, false),
            // Rare (once per client connection, or per stream HTTP/2 runs
            // at once) and its state large: boxed, it leaves the
            // per-request future small.
            None => Box::pin(self.wait_for_link(slot)).await?,
        };
        match exchange(link, request, slot).await {
            Ok(response) => Ok(response),
            Err((e, Some(request))) if !fresh => {
                tracing::debug!(error = %e, "kept-alive upstream connection closed; sending on a new one");
                let permit = Arc::clone(&slot.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| UpstreamError::ConnectTimeout)?;
                let link = Box::pin(self.connect(permit)).await?;
                exchange(link, request, slot)
                    .await
                    .map_err(|(e, _)| UpstreamError::Http(e))
            }
            Err((e, _)) => Err(UpstreamError::Http(e)),
        }
    }

    /// A kept-alive link of the client connection that can take a request
    /// now, if any (closed ones are dropped on the way).
    async fn idle_link(&self, slot: &LinkSlot) -> Option<Box<Link>> {
        while let Some(mut link) = slot.take() {
            if poll_fn(|cx| Poll::Ready(link.reusable(cx, self.id))).await {
                return Some(link);
            }
        }
        None
    }

    /// A link for a request that found none idle: one that comes back to
    /// the client connection, or a new one once it is under its limit,
    /// whichever comes first (the caller's upstream timeout bounds the
    /// wait). The `bool` says whether the link is new.
    async fn wait_for_link(&self, slot: &LinkSlot) -> Result<(Box<Link>, bool), UpstreamError> {
        /// Counts the request as waiting until it leaves, however it leaves
        /// (a link, an error, or its future dropped at the upstream timeout).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        slot.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&slot.waiting);
        loop {
            // Registered before looking, so a link put back in between
            // is not missed.
            let returned = slot.returned.notified();
            let mut returned = std::pin::pin!(returned);
            returned.as_mut().enable();
            if let Some(link) = self.idle_link(slot).await {
                return Ok((link, false));
            }
            tokio::select! {
                () = &mut returned => {}
                permit = Arc::clone(&slot.permits).acquire_owned() => {
                    // The semaphore is never closed.
                    let permit = permit.map_err(|_| UpstreamError::ConnectTimeout)?;
                    return Ok((self.connect(permit).await?, true));
                }
            }
        }
    }

    /// Opens a link under the client connection's `permit`, once there is
    /// room under the gateway's limit.
    async fn connect(&self, mine: OwnedSemaphorePermit) -> Result<Box<Link>, UpstreamError> {
        // The semaphore is never closed.
        let gateway = Arc::clone(&self.links)
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?;
        metrics::counter!("gateway_upstream_connects_total").increment(1);
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
        // Requests are written whole; Nagle would only hold them back.
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let (sender, conn) = self
            .http
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        Ok(Box::new(Link {
            sender,
            conn,
            upstream: self.id,
            _permits: (mine, gateway),
        }))
    }
}

/// Sends one request on `link` and drives the connection until the
/// response head arrives. On failure, the request comes back if it was
/// never written.
async fn exchange(
    mut link: Box<Link>,
    request: Request<Full<Bytes>>,
    slot: &Arc<LinkSlot>,
) -> Result<Response<UpstreamBody>, (hyper::Error, Option<Request<Full<Bytes>>>)> {
    let asked = Asked::of(&request);
    let mut response = std::pin::pin!(link.sender.try_send_request(request));
    let mut open = true;
    let result = poll_fn(|cx| {
        if open {
            open = link.drive(cx);
        }
        response.as_mut().poll(cx)
    })
    .await;
    match result {
        Ok(response) => {
            let (head, body) = response.into_parts();
            let link = open.then_some(link);
            // Decided now, from the head: the connection still carries the
            // body, if any, and is closed at its end instead of kept.
            let slot = asked.may_reuse_after(&head).then(|| Arc::clone(slot));
            Ok(Response::from_parts(
                head,
                UpstreamBody::new(body, link, slot),
            ))
        }
        Err(mut e) => {
            let request = e.take_message();
            Err((e.into_error(), request))
        }
    }
}

/// What of a request decides whether its upstream connection may carry
/// another one after the answer.
#[derive(Debug, Clone, Copy)]
struct Asked {
    /// A `HEAD`: the answer has no body, whatever its fields say.
    head: bool,
    /// The request asked the upstream to close (`Connection: close`).
    close: bool,
}

impl Asked {
    fn of(request: &Request<Full<Bytes>>) -> Self {
        Asked {
            head: request.method() == http::Method::HEAD,
            close: request
                .headers()
                .get_all(http::header::CONNECTION)
                .iter()
                .any(|v| {
                    v.as_bytes()
                        .split(|&b| b == b',')
                        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
                }),
        }
    }

    /// Whether the connection may carry another request after the answer
    /// `head`. Not after an answer that has no body by rule (to a `HEAD`,
    /// a 204 or a 304): an upstream that sends one anyway (a HEAD handler
    /// that is its GET handler) may send it after the head, and those
    /// bytes would be read as the answer to the next request on the
    /// connection, which may be another user's when a proxy in front
    /// shares its connections to the gateway. Nor after an interim or
    /// upgrade answer that reached this far, a response framed with both
    /// `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3: handled as
    /// an error), or a request that asked the upstream to close.
    fn may_reuse_after(self, head: &http::response::Parts) -> bool {
        !(self.head
            || self.close
            || head.status.is_informational()
            || matches!(
                head.status,
                http::StatusCode::NO_CONTENT | http::StatusCode::NOT_MODIFIED
            )
            || (head.headers.contains_key(http::header::CONTENT_LENGTH)
                && head.headers.contains_key(http::header::TRANSFER_ENCODING)))
    }
}

/// A response body from the upstream. Polling it also drives the upstream
/// connection (which is what reads the body from the socket); once the
/// body has been read to its end the connection goes back to the client
/// connection's slot for the next request (hyper drops a body whose length
/// it knows without polling it for its end, hence the check on drop), or
/// is closed when the exchange left it unfit for another (an answer to a
/// `HEAD`, a 204 or 304, or a request that asked the upstream to close).
/// Dropped early (the client went away), it
/// closes the upstream connection with it.
pub struct UpstreamBody {
    body: Incoming,
    link: Option<Box<Link>>,
    /// Where the link goes back at the end; `None`: it is closed then.
    slot: Option<Arc<LinkSlot>>,
}

impl UpstreamBody {
    fn new(body: Incoming, link: Option<Box<Link>>, slot: Option<Arc<LinkSlot>>) -> Self {
        let mut this = UpstreamBody { body, link, slot };
        // An empty body (204, 304, a HEAD answer) may never be polled:
        // the connection is free now.
        if this.body.is_end_stream() {
            this.release();
        }
        this
    }

    fn release(&mut self) {
        if let (Some(link), Some(slot)) = (self.link.take(), &self.slot) {
            slot.put(link);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(link) = &mut this.link {
            if !link.drive(cx) {
                // Ended: whatever it read is in the body channel already.
                this.link = None;
            }
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.link = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{LinkSlot, Upstream, MAX_IDLE_LINKS_PER_CLIENT, MAX_LINKS_PER_CLIENT};

    fn idle(slot: &LinkSlot) -> usize {
        slot.idle.lock().expect("idle list").len()
    }

    /// Links kept for waiting requests that then opened their own do not
    /// stay idle after the burst: the next link put back with nobody
    /// waiting brings the slot down to `MAX_IDLE_LINKS_PER_CLIENT`, and the
    /// places of the links it closes go back.
    #[tokio::test]
    async fn a_link_put_back_with_nobody_waiting_trims_the_idle_links() {
        // Connections complete in the listener's backlog; nothing is sent.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let upstream = Upstream::new("127.0.0.1", port, Duration::from_secs(5), 16);
        let slot = Arc::new(LinkSlot::default());
        let mut links = Vec::new();
        for _ in 0..3 {
            let permit = Arc::clone(&slot.permits)
                .acquire_owned()
                .await
                .expect("permit");
            links.push(upstream.connect(permit).await.expect("link"));
        }
        assert_eq!(slot.permits.available_permits(), MAX_LINKS_PER_CLIENT - 3);

        // Two requests wait: both links coming back are kept for them.
        slot.waiting.store(2, Ordering::Release);
        slot.put(links.pop().expect("link"));
        slot.put(links.pop().expect("link"));
        assert_eq!(idle(&slot), 2);

        // They got places of their own instead and left.
        slot.waiting.store(0, Ordering::Release);
        slot.put(links.pop().expect("link"));
        assert_eq!(idle(&slot), MAX_IDLE_LINKS_PER_CLIENT);
        assert_eq!(
            slot.permits.available_permits(),
            MAX_LINKS_PER_CLIENT - MAX_IDLE_LINKS_PER_CLIENT,
            "the closed links' places are back"
        );
        assert_eq!(
            upstream.links.available_permits(),
            16 - MAX_IDLE_LINKS_PER_CLIENT
        );
    }
}
