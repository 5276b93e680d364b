//! The send limits of a client connection: a client that sends requests
//! but does not read the answers, or reads them too slowly, cannot hold its
//! connection (its place under the connection cap, its upstream
//! connection, the responses buffered for it) for ever.
//!
//! Reads pass through untouched; the header, body and idle timeouts bound
//! them. Two limits apply to writes:
//!
//! * **Stall**: a write that the socket cannot take (the client's receive
//!   window and the kernel's send buffer are full) arms a timer; any
//!   progress disarms it; if it fires first, the write fails with
//!   `TimedOut` and the connection ends.
//! * **Minimum rate**: from the first write that has to wait, the bytes the
//!   socket takes are counted; at a write that has to wait once `limit` has
//!   passed, fewer than `min_rate` bytes per second over that time fail the
//!   write the same way, and otherwise a new count starts. A client that
//!   takes a few bytes just often enough to keep the stall timer from
//!   firing is cut off too. A connection whose writes do not wait for a
//!   whole `limit` (the client keeps up, or there is nothing to send) starts
//!   afresh at its next wait, so idle time between answers is never
//!   counted against it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// A connection whose writes fail once none has made progress for `limit`,
/// or once the client, while it keeps writes waiting, takes fewer than
/// `min_rate` bytes per second over `limit`.
#[derive(Debug)]
pub struct SendStall<IO> {
    inner: IO,
    limit: Duration,
    /// Bytes per second; 0: no minimum.
    min_rate: u64,
    /// Armed while a write is waiting for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Since when writes have been waiting for the client, and the bytes the
    /// socket took since then.
    backlog: Option<Backlog>,
}

/// One measurement of the minimum rate.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    since: Instant,
    taken: u64,
    /// The last write that had to wait.
    last_wait: Instant,
}

impl<IO> SendStall<IO> {
    /// `inner`, whose writes may wait for the client at most `limit` at a
    /// time, and who must take `min_rate` bytes per second (0: any rate)
    /// while writes wait for it.
    pub fn new(inner: IO, limit: Duration, min_rate: u64) -> Self {
        SendStall {
            inner,
            limit,
            min_rate,
            stalled: None,
            backlog: None,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Counts the bytes a write put into the socket while the client is
    /// behind.
    fn count(&mut self, outcome: &Poll<io::Result<usize>>) {
        if let (Poll::Ready(Ok(n)), Some(backlog)) = (outcome, self.backlog.as_mut()) {
            backlog.taken = backlog.taken.saturating_add(*n as u64);
        }
    }

    /// A write has to wait for the client: whether the client took enough
    /// since the measurement began (`Err` when it did not).
    fn check_rate(&mut self) -> io::Result<()> {
        if self.min_rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let backlog = match self.backlog {
            // Writes have waited within the last `limit`: the same backlog.
            Some(backlog) if now.duration_since(backlog.last_wait) <= self.limit => backlog,
            // The first wait, or the first after a time without any.
            _ => {
                self.backlog = Some(Backlog {
                    since: now,
                    taken: 0,
                    last_wait: now,
                });
                return Ok(());
            }
        };
        let elapsed = now.duration_since(backlog.since);
        if elapsed < self.limit {
            self.backlog = Some(Backlog {
                last_wait: now,
                ..backlog
            });
            return Ok(());
        }
        // Whole milliseconds: a rate in bytes per second times seconds.
        let owed = u128::from(self.min_rate) * elapsed.as_millis() / 1000;
        if u128::from(backlog.taken) < owed {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took {} response bytes in {:.1} s, under the minimum of {} bytes per second",
                    backlog.taken,
                    elapsed.as_secs_f64(),
                    self.min_rate
                ),
            ));
        }
        self.backlog = Some(Backlog {
            since: now,
            taken: 0,
            last_wait: now,
        });
        Ok(())
    }

    /// What a write's outcome means under the limits: progress disarms the
    /// stall timer; a write still waiting checks the rate, arms the timer
    /// (once) and fails if it fired.
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
                if let Err(e) = self.check_rate() {
                    return Poll::Ready(Err(e));
                }
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
        self.count(&outcome);
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
        self.count(&outcome);
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
        let mut io = SendStall::new(near, Duration::from_secs(5), 0);
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
        let mut io = SendStall::new(near, Duration::from_secs(5), 0);
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

    /// Takes `chunk` bytes from `far` every `every`, until it ends.
    async fn read_steadily(
        mut far: tokio::io::DuplexStream,
        chunk: usize,
        every: Duration,
    ) -> usize {
        let mut buf = vec![0u8; chunk];
        let mut total = 0;
        loop {
            tokio::time::sleep(every).await;
            match tokio::io::AsyncReadExt::read(&mut far, &mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_reader_under_the_minimum_rate_is_cut_off() {
        let (near, far) = tokio::io::duplex(1024);
        // 256 bytes a second: progress every second, so the stall limit
        // alone would never end it, but under 1,000 bytes a second.
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000);
        let reader = tokio::spawn(read_steadily(far, 256, Duration::from_secs(1)));
        let started = tokio::time::Instant::now();
        let error = io
            .write_all(&vec![0u8; 64 * 1024])
            .await
            .expect_err("too slow a reader");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            error
                .to_string()
                .contains("under the minimum of 1000 bytes per second"),
            "{error}"
        );
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_secs(5)..=Duration::from_secs(7)).contains(&elapsed),
            "cut off after {elapsed:?}"
        );
        drop(io);
        assert!(reader.await.expect("reader") < 3 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_reader_over_the_minimum_rate_is_not_cut_off() {
        let (near, far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000);
        // 2,048 bytes a second, for 16 s.
        let reader = tokio::spawn(read_steadily(far, 512, Duration::from_millis(250)));
        io.write_all(&vec![1u8; 32 * 1024])
            .await
            .expect("fast enough");
        drop(io);
        assert!(reader.await.expect("reader") >= 31 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn time_without_waiting_writes_is_not_counted_against_the_rate() {
        let (near, far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000);
        // A reader that takes everything at once: writes wait only while
        // the pipe is full.
        let reader = tokio::spawn(read_steadily(far, 1024, Duration::from_millis(10)));
        // Two answers of 8 KiB, 12 s apart. Counted over the whole time,
        // 16 KiB in 12 s would be under 1,000 bytes a second.
        io.write_all(&vec![2u8; 8 * 1024]).await.expect("first");
        tokio::time::sleep(Duration::from_secs(12)).await;
        io.write_all(&vec![3u8; 8 * 1024]).await.expect("second");
        drop(io);
        assert_eq!(reader.await.expect("reader"), 16 * 1024);
    }
}
