//! HTTP/2 from clients: telling it from HTTP/1.1 on a plain listener (the
//! connection preface, RFC 9113 §3.4), and serving an HTTP/2 connection with
//! the limits the HTTP/1.1 side gets from the head guard.
//!
//! The guard reads HTTP/1.1 framing byte by byte; HTTP/2 frames are parsed
//! by hyper's `h2`, which enforces their framing (lengths, `content-length`
//! against the DATA received, a header list size) itself; the proxy checks
//! the head size and field count. What `h2` has no setting for is a
//! watchdog here, so that no client holds a connection (and its place
//! under the connection cap, and its upstream connections) for ever:
//!
//! - no request within the header timeout of the connection's start;
//! - no request in flight for the idle timeout (a request counts until its
//!   response body has been sent);
//! - every request in flight only waiting for the client to take its
//!   response body, and none taken for the body timeout (a client that
//!   opens no flow-control window).
//!
//! The watchdog sees whole requests only: on a connection that has served
//! requests, a HEADERS frame left incomplete is bounded by the idle timeout
//! rather than the header timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Concurrent streams an HTTP/2 client may open on one connection.
pub const MAX_STREAMS: u32 = 100;

/// How a plain connection began.
#[derive(Debug)]
pub enum Opening {
    /// With the HTTP/2 preface: the bytes read so far (the preface and
    /// whatever followed it).
    Http2(BytesMut),
    /// With anything else: the bytes read so far, for the HTTP/1.1 guard.
    Http1(BytesMut),
}

/// Reads the first bytes of a plain connection until they are the HTTP/2
/// preface or cannot become it. `None`: the client closed the connection,
/// the read failed, or nothing arrived within `first_byte` (or the preface
/// did not complete within `rest` after its first bytes).
pub async fn sniff<IO>(io: &mut IO, first_byte: Duration, rest: Duration) -> Option<Opening>
where
    IO: AsyncRead + Unpin,
{
    let mut read = BytesMut::with_capacity(4096);
    match tokio::time::timeout(first_byte, io.read_buf(&mut read)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return None,
    }
    let complete = async {
        loop {
            let n = read.len().min(PREFACE.len());
            if read[..n] != PREFACE[..n] {
                return Some(false);
            }
            if n == PREFACE.len() {
                return Some(true);
            }
            match io.read_buf(&mut read).await {
                Ok(n) if n > 0 => {}
                _ => return None,
            }
        }
    };
    match tokio::time::timeout(rest, complete).await {
        Ok(Some(true)) => Some(Opening::Http2(read)),
        Ok(Some(false)) => Some(Opening::Http1(read)),
        _ => None,
    }
}

/// A connection whose first bytes were already read: reads return them
/// first, then what the connection brings.
#[derive(Debug)]
pub struct Prefixed<IO> {
    prefix: BytesMut,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    /// `inner`, with `prefix` read before it.
    pub fn new(prefix: BytesMut, inner: IO) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The requests of one HTTP/2 connection, for the watchdog: how many are
/// in flight (from their head to the end of their response body), how many
/// of those are sending their response body, and a count of events
/// (a request begun or ended, a response frame taken) that says whether
/// anything moved. Counted, so a request costs no clock reading.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    sending: AtomicUsize,
    events: AtomicU64,
}

impl Activity {
    /// Counts a request from now until the returned value is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight on an HTTP/2 connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.events.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `body`, counted as sending (and its request as in flight) until it has
/// been sent or dropped; each frame taken from it counts as progress.
pub fn counted(body: crate::Body, in_flight: InFlight) -> crate::Body {
    in_flight.0.sending.fetch_add(1, Ordering::Relaxed);
    http_body_util::BodyExt::boxed_unsync(Counted { body, in_flight })
}

/// A response body that keeps its request counted while it is sent.
struct Counted {
    body: crate::Body,
    in_flight: InFlight,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.in_flight.0.sending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = <crate::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(_)) = frame {
            // hyper takes a frame only once the client's flow-control
            // window has room for it: a frame taken is the client reading.
            self.in_flight.0.events.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// How long an HTTP/2 connection may go without any event, by what it is
/// doing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No request yet (the header timeout).
    pub first_request: Duration,
    /// No request in flight after one (the idle timeout).
    pub idle: Duration,
    /// Every request in flight is only waiting for the client to take its
    /// response body (the body timeout): a client that opens no flow-control
    /// window would otherwise hold the connection, and its upstream
    /// connections, for ever.
    pub stalled_send: Duration,
}

/// What the watchdog saw at its last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NoRequestYet,
    Idle,
    StalledSend,
    /// A request reads its body or waits for the upstream: bounded by the
    /// body and upstream timeouts, not here.
    Working,
}

/// Whole seconds without an event, checked once a second.
#[derive(Debug)]
pub struct Watchdog {
    quiet_secs: u64,
    last_events: u64,
    state: State,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            quiet_secs: 0,
            last_events: 0,
            state: State::NoRequestYet,
        }
    }
}

impl Watchdog {
    /// One tick (a second): whether the connection has gone without an
    /// event for longer than the limit of what it is doing, and should be
    /// closed.
    pub fn tick(&mut self, activity: &Activity, limits: &Limits) -> bool {
        let events = activity.events.load(Ordering::Relaxed);
        let in_flight = activity.in_flight.load(Ordering::Relaxed);
        let sending = activity.sending.load(Ordering::Relaxed);
        let state = match (in_flight, events) {
            (0, 0) => State::NoRequestYet,
            (0, _) => State::Idle,
            _ if sending >= in_flight => State::StalledSend,
            _ => State::Working,
        };
        let moved = events != self.last_events;
        if moved || state != self.state {
            self.quiet_secs = 0;
            self.last_events = events;
            self.state = state;
            if moved {
                return false;
            }
        }
        self.quiet_secs += 1;
        let limit = match state {
            State::NoRequestYet => limits.first_request,
            State::Idle => limits.idle,
            State::StalledSend => limits.stalled_send,
            State::Working => return false,
        };
        self.quiet_secs >= limit.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_is_told_from_http1_even_when_split() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut client, &PREFACE[..3])
            .await
            .expect("test");
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client, &PREFACE[3..])
                .await
                .expect("test");
            client
        });
        let opening = sniff(&mut server, Duration::from_secs(5), Duration::from_secs(5)).await;
        assert!(matches!(opening, Some(Opening::Http2(read)) if read[..] == *PREFACE));
        drop(writer.await.expect("test"));

        for start in [&b"PROPFIND / HTTP/1.1\r\n"[..], b"POST / HTTP/1.1\r\n"] {
            let (mut client, mut server) = tokio::io::duplex(4096);
            tokio::io::AsyncWriteExt::write_all(&mut client, start)
                .await
                .expect("test");
            let opening = sniff(&mut server, Duration::from_secs(5), Duration::from_secs(5)).await;
            assert!(matches!(opening, Some(Opening::Http1(_))), "{start:?}");
        }
    }

    #[tokio::test]
    async fn silence_or_a_stalled_preface_gets_nothing() {
        let (_client, mut server) = tokio::io::duplex(4096);
        let started = std::time::Instant::now();
        let opening = sniff(
            &mut server,
            Duration::from_millis(100),
            Duration::from_secs(5),
        )
        .await;
        assert!(opening.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));

        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"PRI * HT")
            .await
            .expect("test");
        let opening = sniff(
            &mut server,
            Duration::from_secs(5),
            Duration::from_millis(100),
        )
        .await;
        assert!(opening.is_none());
    }

    #[test]
    fn the_watchdog_counts_quiet_seconds_by_state() {
        let activity = Arc::new(Activity::default());
        let limits = Limits {
            first_request: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            stalled_send: Duration::from_secs(4),
        };
        let mut dog = Watchdog::default();
        assert!(!dog.tick(&activity, &limits));
        assert!(
            dog.tick(&activity, &limits),
            "no request within the header timeout"
        );

        // A request reading its body or waiting for the upstream: not
        // closed here, however long.
        let mut dog = Watchdog::default();
        let request = activity.begin();
        for _ in 0..10 {
            assert!(!dog.tick(&activity, &limits), "a request at work");
        }
        // Its response body, never taken by the client: closed after the
        // stall limit.
        let body = counted(
            crate::problem::full(bytes::Bytes::from_static(b"x")),
            request,
        );
        for _ in 0..3 {
            assert!(
                !dog.tick(&activity, &limits),
                "stalled, not yet long enough"
            );
        }
        assert!(dog.tick(&activity, &limits), "stalled for the stall limit");
        // Sent: idle from now, closed after the idle timeout.
        drop(body);
        assert!(!dog.tick(&activity, &limits), "a request just ended");
        assert!(!dog.tick(&activity, &limits));
        assert!(!dog.tick(&activity, &limits));
        assert!(dog.tick(&activity, &limits), "idle for the idle timeout");
    }
}
