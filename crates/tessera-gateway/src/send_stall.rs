//! The send-stall limit: a client connection whose writes make no progress
//! for a while fails, so a client that sends requests but never reads the
//! answers cannot hold its connection (its place under the connection cap,
//! its upstream connection, the responses buffered for it) for ever.
//!
//! Reads pass through untouched; the header, body and idle timeouts bound
//! them. A write that the socket cannot take (the client's receive window
//! and the kernel's send buffer are full) arms a timer; any progress
//! disarms it; if it fires first, the write fails with `TimedOut` and the
//! connection ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose writes fail once none has made progress for `limit`.
#[derive(Debug)]
pub struct SendStall<IO> {
    inner: IO,
    limit: Duration,
    /// Armed while a write is waiting for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> SendStall<IO> {
    /// `inner`, whose writes may wait for the client at most `limit` at a time.
    pub fn new(inner: IO, limit: Duration) -> Self {
        SendStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// What a write's outcome means under the limit: progress disarms the
    /// timer; a write still waiting arms it (once) and fails if it fired.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client took no response bytes for {} s",
                            limit.as_secs()
                        ),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SendStall<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SendStall<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        // A pipe whose other end is never read: writes stop once it is full.
        let (near, _far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let big = vec![0u8; 64 * 1024];
        let error = io
            .write_all(&big)
            .await
            .expect_err("the peer reads nothing");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 16 * 1024 {
                // Takes 512 bytes every 3 s: slower than the writer, never
                // idle for the limit.
                tokio::time::sleep(Duration::from_secs(3)).await;
                total += tokio::io::AsyncReadExt::read(&mut far, &mut buf)
                    .await
                    .expect("read");
            }
            total
        });
        io.write_all(&vec![1u8; 16 * 1024])
            .await
            .expect("progress keeps it alive");
        drop(io);
        assert!(reader.await.expect("reader") >= 16 * 1024 - 1024);
    }
}
