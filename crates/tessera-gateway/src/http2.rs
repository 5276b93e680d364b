//! HTTP/2 from clients: telling it from HTTP/1.1 on a plain listener (the
//! connection preface, RFC 9113 §3.4), and serving an HTTP/2 connection with
//! the limits the HTTP/1.1 side gets from the head guard.
//!
//! The guard reads HTTP/1.1 framing byte by byte; HTTP/2 frames are parsed
//! by hyper's `h2`, which enforces their framing (lengths, `content-length`
//! against the DATA received, a header list size) itself. What the guard
//! adds for HTTP/1.1 and `h2` has no setting for, a connection that sends no
//! complete request, is a watchdog here: a connection with no request in
//! flight (a request counts until its response body has been sent) is
//! closed once it has been idle for the header timeout (before its first
//! request) or the idle timeout (after one).

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

/// The requests of one HTTP/2 connection: how many are in flight (from
/// their head to the end of their response body) and how many have ended,
/// for the idle watchdog (counted, so a request costs no clock reading).
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    ended: AtomicU64,
}

impl Activity {
    /// Counts a request from now until the returned value is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight on an HTTP/2 connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `body`, holding `in_flight` until it has been sent (or dropped).
pub fn counted(body: crate::Body, in_flight: InFlight) -> crate::Body {
    http_body_util::BodyExt::boxed_unsync(Counted {
        body,
        _in_flight: in_flight,
    })
}

/// A response body that keeps its request counted while it is sent.
struct Counted {
    body: crate::Body,
    _in_flight: InFlight,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = <crate::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whole seconds of idleness the watchdog has seen, checked once a second.
#[derive(Debug, Default)]
pub struct Watchdog {
    idle_secs: u64,
    last_ended: u64,
}

impl Watchdog {
    /// One tick (a second): whether the connection has now been idle for
    /// longer than its limit: `header_timeout` before its first request,
    /// `idle_timeout` after.
    pub fn tick(
        &mut self,
        activity: &Activity,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> bool {
        let ended = activity.ended.load(Ordering::Relaxed);
        let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
        if busy || ended != self.last_ended {
            self.idle_secs = 0;
            self.last_ended = ended;
            return false;
        }
        self.idle_secs += 1;
        let limit = if ended == 0 {
            header_timeout
        } else {
            idle_timeout
        };
        self.idle_secs >= limit.as_secs().max(1)
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
    fn the_watchdog_counts_idle_seconds_only() {
        let activity = Arc::new(Activity::default());
        let mut dog = Watchdog::default();
        let (header, idle) = (Duration::from_secs(2), Duration::from_secs(3));
        assert!(!dog.tick(&activity, header, idle));
        assert!(
            dog.tick(&activity, header, idle),
            "no request within the header timeout"
        );

        let mut dog = Watchdog::default();
        let request = activity.begin();
        for _ in 0..10 {
            assert!(!dog.tick(&activity, header, idle), "a request in flight");
        }
        drop(request);
        assert!(!dog.tick(&activity, header, idle), "a request just ended");
        assert!(!dog.tick(&activity, header, idle));
        assert!(!dog.tick(&activity, header, idle));
        assert!(
            dog.tick(&activity, header, idle),
            "idle for the idle timeout"
        );
    }
}
