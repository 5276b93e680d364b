//! The body deadline: a request body that fails once its deadline has
//! passed, however steadily bytes trickle in (unlike an idle timeout, which
//! a byte every few seconds keeps resetting).
//!
//! Used by the gateway (on hyper's `Incoming`) and by `tessera serve` (on
//! axum's `Body`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::BoxError;

/// The request body under a fixed deadline, set when the head was parsed.
pub struct DeadlineBody<B = Incoming> {
    /// The body as received.
    inner: B,
    /// Fixed when the head was parsed; never reset.
    deadline: tokio::time::Instant,
    /// A timer for the deadline, made only once the body has to be waited
    /// for: a body already received whole (most of them) costs no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timeout, for the error message.
    timeout: Duration,
    /// Set when the deadline failed the body; the caller answers 408 then.
    expired: Arc<AtomicBool>,
}

impl<B> DeadlineBody<B> {
    /// `inner` has `timeout` from now; `expired` is set if it runs out.
    pub fn new(inner: B, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        DeadlineBody {
            inner,
            deadline: tokio::time::Instant::now() + timeout,
            timer: None,
            timeout,
            expired,
        }
    }

    fn expire<T>(&self) -> Poll<Option<Result<T, BoxError>>> {
        self.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))))
    }
}

/// The error a [`DeadlineBody`] reports after its deadline.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the body did not arrive within {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyTimeout {}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // A body received whole in time stays whole, however late it is polled.
        if http_body::Body::is_end_stream(&this.inner) {
            return Poll::Ready(None);
        }
        // The deadline first: bytes that arrive after it do not count.
        if tokio::time::Instant::now() >= this.deadline {
            return this.expire();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return this.expire();
                }
                Poll::Pending
            }
            ready => ready.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    // The verifier refuses an announced oversized body from this hint.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
