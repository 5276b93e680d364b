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
//! * **Minimum rate**: only time during which a write waits for the client
//!   is measured. From the first wait, the bytes the socket accepts are
//!   counted; once the waits add up to `limit`, fewer than `min_rate` bytes
//!   per second of waiting fail the write the same way, and otherwise a new
//!   measurement starts. A client that takes a few bytes just often enough
//!   to keep the stall timer from firing is cut off too, while time in
//!   which the client keeps up, or there is nothing to send (between
//!   answers), never counts against it.
//!
//! Both limits see the client only through the socket's wake-ups, so the
//! gateway keeps little unsent data in the kernel ([`limit_unsent`]): a
//! full send buffer of several megabytes would otherwise wake a waiting
//! write only after a third of it drained, tens of seconds for a client
//! reading at tens of kilobytes a second, and both limits would take that
//! client for a stalled one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Client connections closed by the send limits, by reason.
pub const CLOSED_METRIC: &str = "gateway_connections_closed_total";

/// Most bytes written to a client socket but not yet sent
/// (`TCP_NOTSENT_LOWAT`). A waiting write wakes once fewer than half of
/// them are left, so every 8 KiB or so the client takes.
pub const MAX_UNSENT_BYTES: u32 = 16 * 1024;

/// Caps what the kernel holds unsent for a client socket at
/// [`MAX_UNSENT_BYTES`] (Linux and Android; elsewhere nothing changes).
/// What the client has not taken then waits in the gateway, where the send
/// limits see it, rather than in a send buffer that can grow to megabytes.
pub fn limit_unsent(socket: socket2::SockRef<'_>) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        socket.set_tcp_notsent_lowat(MAX_UNSENT_BYTES)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = socket;
        Ok(())
    }
}

/// A connection whose writes fail once none has made progress for `limit`,
/// or once the client, over `limit` of waiting writes, took fewer than
/// `min_rate` bytes per second of it.
#[derive(Debug)]
pub struct SendStall<IO> {
    inner: IO,
    limit: Duration,
    /// Bytes per second of waiting; 0: no minimum.
    min_rate: u64,
    /// Which listener the connection came from (a metric label).
    listener: &'static str,
    /// The client's address, for the log.
    peer: std::net::SocketAddr,
    /// Armed while a write is waiting for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    rate: Measurement,
}

/// The minimum rate's measurement: time spent waiting and bytes taken.
#[derive(Debug, Default)]
struct Measurement {
    /// A write has waited since the last measurement ended.
    started: bool,
    /// Time spent in waits that have ended.
    waited: Duration,
    /// When the wait in progress began.
    waiting_since: Option<Instant>,
    /// Bytes the socket took since the measurement began.
    taken: u64,
}

impl<IO> SendStall<IO> {
    /// `inner`, whose writes may wait for the client at most `limit` at a
    /// time, and who must take `min_rate` bytes per second of waiting (0:
    /// any rate). `listener` names the listener in the closed-connection
    /// metric and log, `peer` the client in the log.
    pub fn new(
        inner: IO,
        limit: Duration,
        min_rate: u64,
        listener: &'static str,
        peer: std::net::SocketAddr,
    ) -> Self {
        SendStall {
            inner,
            limit,
            min_rate,
            listener,
            peer,
            stalled: None,
            rate: Measurement::default(),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// A write went through: its bytes count once a measurement has begun.
    fn took(&mut self, outcome: &Poll<io::Result<usize>>) {
        if let (Poll::Ready(Ok(n)), true) = (outcome, self.rate.started) {
            self.rate.taken = self.rate.taken.saturating_add(*n as u64);
        }
    }

    /// A write has to wait for the client: whether it took enough over the
    /// waiting time measured so far (an error once that reaches `limit`
    /// with too few bytes).
    fn check_rate(&mut self) -> io::Result<()> {
        if self.min_rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let rate = &mut self.rate;
        rate.started = true;
        let since = *rate.waiting_since.get_or_insert(now);
        let waited = rate.waited + now.duration_since(since);
        let taken = rate.taken;
        if waited < self.limit {
            return Ok(());
        }
        // Whole milliseconds: a rate in bytes per second times seconds.
        let owed = u128::from(self.min_rate) * waited.as_millis() / 1000;
        if u128::from(taken) < owed {
            return Err(self.closed(
                "slow_reader",
                format!(
                    "the socket accepted {taken} response bytes for the client in {:.1} s of waiting writes, under the minimum of {} bytes per second",
                    waited.as_secs_f64(),
                    self.min_rate
                ),
            ));
        }
        // Enough: a new measurement, from this wait on.
        self.rate = Measurement {
            started: true,
            waited: Duration::ZERO,
            waiting_since: Some(now),
            taken: 0,
        };
        Ok(())
    }

    /// The error that ends the connection, counted and logged.
    fn closed(&self, reason: &'static str, message: String) -> io::Error {
        metrics::counter!(CLOSED_METRIC, "listener" => self.listener, "reason" => reason)
            .increment(1);
        tracing::info!(
            listener = self.listener,
            peer = %self.peer,
            reason,
            "closing a client connection: {message}"
        );
        io::Error::new(io::ErrorKind::TimedOut, message)
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
                // Whatever went through (a write, a flush, a shutdown) ends
                // the wait.
                self.stalled = None;
                if let Some(since) = self.rate.waiting_since.take() {
                    self.rate.waited += since.elapsed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                // The stall first: a client that took nothing for the whole
                // limit is a stalled one, whatever the rate says.
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(self.closed(
                        "send_stall",
                        format!(
                            "the client took no response bytes for {} s",
                            limit.as_secs()
                        ),
                    )));
                }
                match self.check_rate() {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
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
        self.took(&outcome);
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
        self.took(&outcome);
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

    /// Writes `len` bytes until the limits cut the connection off: the
    /// error, a timeout, and how long it took.
    async fn cut_off(
        io: &mut SendStall<tokio::io::DuplexStream>,
        len: usize,
    ) -> (io::Error, Duration) {
        let started = tokio::time::Instant::now();
        let error = io
            .write_all(&vec![0u8; len])
            .await
            .expect_err("the limits cut it off");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        (error, started.elapsed())
    }

    fn peer() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        // A pipe whose other end is never read: writes stop once it is full.
        let (near, _far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 0, "test", peer());
        let (_, after) = cut_off(&mut io, 64 * 1024).await;
        assert_eq!(after, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 0, "test", peer());
        // Takes 512 bytes every 3 s: slower than the writer, never idle for
        // the limit.
        let reader = tokio::spawn(async move {
            read_paced(&mut far, 512, Duration::from_secs(3), 16 * 1024).await
        });
        io.write_all(&vec![1u8; 16 * 1024])
            .await
            .expect("progress keeps it alive");
        drop(io);
        assert!(reader.await.expect("reader") >= 16 * 1024 - 1024);
    }

    /// Takes up to `chunk` bytes from `far` every `every`, until it ends or
    /// `until` bytes have come; returns how many came.
    async fn read_paced(
        far: &mut tokio::io::DuplexStream,
        chunk: usize,
        every: Duration,
        until: usize,
    ) -> usize {
        let mut buf = vec![0u8; chunk];
        let mut total = 0;
        while total < until {
            tokio::time::sleep(every).await;
            match tokio::io::AsyncReadExt::read(far, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    }

    /// [`read_paced`] until `far` ends.
    async fn read_steadily(
        mut far: tokio::io::DuplexStream,
        chunk: usize,
        every: Duration,
    ) -> usize {
        read_paced(&mut far, chunk, every, usize::MAX).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_reader_under_the_minimum_rate_is_cut_off() {
        let (near, far) = tokio::io::duplex(1024);
        // 256 bytes a second: progress every second, so the stall limit
        // alone would never end it, but under 1,000 bytes a second.
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000, "test", peer());
        let reader = tokio::spawn(read_steadily(far, 256, Duration::from_secs(1)));
        let (error, elapsed) = cut_off(&mut io, 64 * 1024).await;
        assert!(
            error
                .to_string()
                .contains("under the minimum of 1000 bytes per second"),
            "{error}"
        );
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
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000, "test", peer());
        // 2,048 bytes a second, for 16 s.
        let reader = tokio::spawn(read_steadily(far, 512, Duration::from_millis(250)));
        io.write_all(&vec![1u8; 32 * 1024])
            .await
            .expect("fast enough");
        drop(io);
        assert!(reader.await.expect("reader") >= 31 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_between_answers_are_not_counted_against_the_rate() {
        // (the reader's pace, for 1 KiB; the first answer; the pause; the
        // second answer). First, a reader that takes everything at once,
        // 12 s between answers of 8 KiB: counted over the whole time, 16 KiB
        // in 12 s would be under 1,000 bytes a second. Then a pause shorter
        // than the limit, the client taking 4 KiB a second whenever there is
        // something: still not waiting time.
        for (pace, first, pause, second) in [
            (
                Duration::from_millis(10),
                8 * 1024,
                Duration::from_secs(12),
                8 * 1024,
            ),
            (
                Duration::from_millis(250),
                2 * 1024,
                Duration::from_millis(4600),
                4 * 1024,
            ),
        ] {
            let (near, far) = tokio::io::duplex(1024);
            let mut io = SendStall::new(near, Duration::from_secs(5), 1000, "test", peer());
            let reader = tokio::spawn(read_steadily(far, 1024, pace));
            io.write_all(&vec![2u8; first]).await.expect("first");
            tokio::time::sleep(pause).await;
            io.write_all(&vec![3u8; second]).await.expect("second");
            drop(io);
            assert_eq!(reader.await.expect("reader"), first + second, "{pause:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_start_buys_at_most_one_measurement_of_trickling() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000, "test", peer());
        let reader = tokio::spawn(async move {
            // 64 KiB at once, then 100 bytes a second.
            let fast = read_paced(&mut far, 1024, Duration::ZERO, 64 * 1024).await;
            fast + read_steadily(far, 100, Duration::from_secs(1)).await
        });
        let (_, after) = cut_off(&mut io, 1024 * 1024).await;
        assert!(after <= Duration::from_secs(11), "cut off after {after:?}");
        drop(io);
        let _ = reader.await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_takes_nothing_is_a_stall_even_under_a_minimum_rate() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut io = SendStall::new(near, Duration::from_secs(5), 1000, "test", peer());
        let (error, _) = cut_off(&mut io, 64 * 1024).await;
        assert_eq!(
            error.to_string(),
            "the client took no response bytes for 5 s",
            "reported as a stall, not as a slow reader"
        );
    }
}
