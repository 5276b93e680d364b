//! Where the signer reads the time.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current Unix time, in seconds.
///
/// The signer adds its learned clock offset (see
/// [`Signer::apply_skew_challenge`](crate::Signer::apply_skew_challenge)) to
/// whatever this returns. Inject a clock to test skew handling or to use a
/// trusted time source.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        // A clock set before 1970 reads as 0; the server then answers
        // `clock_skew` and the offset it sends corrects it.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_unix(&self) -> u64 {
        (**self).now_unix()
    }
}
