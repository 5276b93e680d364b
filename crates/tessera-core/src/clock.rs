//! The [`Clock`] that signers and verifiers read the time from.
//!
//! The signing and verifying functions of this crate take the time as an
//! argument and never read a clock; the trait lives here so that the client
//! and the server share one definition (and one test clock).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in whole Unix seconds (fractions
/// truncated, spec §11.1).
///
/// A signer adds its learned clock offset to what this returns; a verifier
/// reads it once per request and once more before recording the nonce, so an
/// implementation should be cheap. Inject one to test skew handling or to use
/// a trusted time source.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_unix(&self) -> u64 {
        (**self).now_unix()
    }
}

/// The operating system's wall clock. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SystemClock;

impl SystemClock {
    /// The system clock.
    pub fn new() -> Self {
        SystemClock
    }
}

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        // A clock set before 1970 reads as 0. A signer is then answered
        // `clock_skew` with an authenticated time that corrects it; a
        // verifier sees every signature far in the future and fails closed.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that only moves when told to. **For tests and demos**: it lets a
/// test walk through a replay window second by second.
///
/// Clones share the same time, so a test can keep one handle and give
/// another to a signer or a verifier.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `now` (Unix seconds) until changed.
    pub fn new(now: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs` and returns the new time.
    pub fn advance(&self, secs: u64) -> u64 {
        self.0
            .fetch_add(secs, Ordering::SeqCst)
            .saturating_add(secs)
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let a = ManualClock::new(10);
        let b = a.clone();
        assert_eq!(b.advance(5), 15);
        assert_eq!(a.now_unix(), 15);
        a.set(3);
        assert_eq!(b.now_unix(), 3);
        assert!(SystemClock::new().now_unix() > 1_600_000_000);
    }
}
