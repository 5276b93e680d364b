//! The upstream's response body under a read-idle timeout (nginx's
//! `proxy_read_timeout`): an upstream that starts an answer and then sends
//! nothing more would otherwise hold the client's connection and the
//! upstream connection for as long as either stays open.
//!
//! Only time in which the gateway waits for the upstream counts: the timer
//! runs while the body is polled and has nothing, and restarts with every
//! frame. A client that reads slowly does not poll it, and is bounded by
//! the send limits instead ([`crate::send_stall`]).
//!
//! It is also where the answer's trailers pass, so it drops
//! `Tessera-Error` from them, as the proxy drops it from the head: only the
//! gateway's own refusals may carry it (spec §12.2).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::BoxError;

/// A response body that fails when its upstream sends nothing for `timeout`.
pub struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed while the body waits; made at the first wait and reset after.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the timer is armed for the current wait.
    waiting: bool,
}

impl<B> IdleBody<B> {
    /// `inner`, failing after `timeout` without a frame while it is polled.
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleBody {
            inner,
            timeout,
            timer: None,
            waiting: false,
        }
    }
}

/// The error an [`IdleBody`] fails with.
#[derive(Debug)]
pub struct UpstreamIdle(Duration);

impl std::fmt::Display for UpstreamIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the upstream sent nothing of its response body for {} s (limits.upstream_timeout_secs)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for UpstreamIdle {}

/// `frame`, without `Tessera-Error` if it is the trailers.
fn without_refusal_field(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            trailers.remove(tessera_server::ERROR_HEADER);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map(without_refusal_field).map_err(Into::into)));
        }
        let deadline = tokio::time::Instant::now() + this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !this.waiting {
            // A new wait: the timer counts from now.
            timer.as_mut().reset(deadline);
            this.waiting = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let idle = UpstreamIdle(this.timeout);
                tracing::warn!(error = %idle, "closing the response");
                Poll::Ready(Some(Err(Box::new(idle))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::IdleBody;

    /// A body whose frames come from a channel: the upstream, sending when
    /// the test says.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl http_body::Body for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
        }
    }

    fn channel_body() -> (mpsc::Sender<Bytes>, IdleBody<ChannelBody>) {
        let (tx, rx) = mpsc::channel(4);
        (tx, IdleBody::new(ChannelBody(rx), Duration::from_secs(10)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_sending_is_never_cut() {
        let (tx, mut body) = channel_body();
        tokio::spawn(async move {
            // 30 s in all, never 10 s without a frame.
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = tx.send(Bytes::from_static(b"x")).await;
            }
        });
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            frame.expect("no idle timeout");
            frames += 1;
        }
        assert_eq!(frames, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_timeout() {
        let (tx, mut body) = channel_body();
        tx.send(Bytes::from_static(b"abc")).await.expect("send");
        let started = tokio::time::Instant::now();
        assert!(body.frame().await.expect("frame").is_ok());
        let error = body.frame().await.expect("an error").expect_err("idle");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(error.to_string().contains("for 10 s"), "{error}");
        drop(tx);
    }

    /// A body that sends `frames`, then ends.
    struct Frames(std::collections::VecDeque<Frame<Bytes>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    #[tokio::test]
    async fn the_refusal_field_never_passes_in_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert(
            "tessera-error",
            http::HeaderValue::from_static("store_unavailable"),
        );
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let frames = [
            Frame::data(Bytes::from_static(b"body")),
            Frame::trailers(trailers),
        ];
        let body = IdleBody::new(Frames(frames.into()), Duration::from_secs(10));
        let collected = body.collect().await.expect("collects");
        let trailers = collected.trailers().expect("trailers kept").clone();
        assert_eq!(collected.to_bytes(), "body");
        assert_eq!(
            trailers.get("x-checksum").map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );
        assert!(trailers.get("tessera-error").is_none(), "{trailers:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_body_is_not_polled_does_not_count() {
        let (tx, mut body) = channel_body();
        // The client reads nothing for a minute: the body is not polled.
        tokio::time::sleep(Duration::from_secs(60)).await;
        tx.send(Bytes::from_static(b"late")).await.expect("send");
        assert!(body.frame().await.expect("frame").is_ok());
        drop(tx);
        assert!(body.frame().await.is_none());
    }
}
