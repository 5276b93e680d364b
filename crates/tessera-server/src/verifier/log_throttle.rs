//! At most one log line a second for a refusal that can hit every request.
//!
//! A full or unreachable store, or a store that restarted and forgot its
//! pairs, refuses every request at once: one line per request would flood
//! the logs at the moment an operator reads them, and cost the time the
//! server is short of. The first event of each second is logged with the
//! number of the same events left out since the previous line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The gap between two lines of one kind, milliseconds.
const EVERY_MS: u64 = 1_000;

/// At most one log line a second for events of one kind: the first event
/// of each second is admitted with the number left out since the previous
/// line. Used by [`crate::Verifier`] for store refusals, and by other
/// crates of the workspace (the rate limiter's store failures).
#[derive(Debug)]
pub struct LogThrottle {
    origin: Instant,
    /// Milliseconds since `origin` from which the next line may be logged.
    next_ms: AtomicU64,
    /// Events not logged since the last line.
    suppressed: AtomicU64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LogThrottle {
    /// A throttle that admits its first event at once.
    pub fn new() -> Self {
        LogThrottle {
            origin: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(left_out)` when this event is to be logged (`left_out` events
    /// of its kind were not, since the previous line); `None` otherwise.
    pub fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(EVERY_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn one_line_a_second_with_the_count_left_out() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.admit(), Some(0), "the first event is logged");
        for _ in 0..999 {
            assert_eq!(throttle.admit(), None);
        }
        // The next second's first event says how many were left out.
        throttle
            .next_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(throttle.admit(), Some(999));
        assert_eq!(throttle.admit(), None);
    }
}
