//! How many request bytes the gateway holds in memory at once.
//!
//! Every request body is read whole before anything is forwarded (its
//! digest must be checked first), so each one in progress may hold up to
//! the body limit. One HTTP/1.1 connection reads one body at a time, but an
//! HTTP/2 connection carries up to 100 streams: without a bound, a few
//! connections of slowly sent bodies (to a public route, or under any key
//! id, since the digest is checked before the MAC) would hold gigabytes.
//!
//! So a body reserves its size (its declared length, else the body limit)
//! from a process-wide budget before a byte of it is read, and an HTTP/2
//! connection may read a few bodies at once. A request that finds no room
//! is answered `503` with `Retry-After` at once (nothing is queued, so a
//! flood cannot make honest requests wait behind it).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of request bodies held at once, process-wide (or the body limit,
/// if that is larger, so that one largest body always fits).
pub const BUFFERED_BODY_BYTES: usize = 256 << 20;

/// Bodies one HTTP/2 connection may be reading at once.
pub const BODIES_PER_HTTP2_CONNECTION: usize = 4;

/// The budget is kept in KiB, so that it fits a semaphore's permits.
const UNIT: usize = 1024;

/// The process-wide budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    body_limit: usize,
}

/// Room reserved for one body; given back when dropped.
#[derive(Debug)]
pub struct Reserved {
    _bytes: OwnedSemaphorePermit,
    _slot: Option<OwnedSemaphorePermit>,
}

/// Why no room was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The process holds as many body bytes as it may.
    Process,
    /// This HTTP/2 connection is reading as many bodies as it may.
    Connection,
}

impl BodyBudget {
    /// A budget for bodies of at most `body_limit` bytes each.
    pub fn new(body_limit: usize) -> Self {
        let total = BUFFERED_BODY_BYTES.max(body_limit);
        BodyBudget {
            kib: Arc::new(Semaphore::new(total.div_ceil(UNIT))),
            body_limit,
        }
    }

    /// Reserves room for a body of `expected` bytes (at most the body
    /// limit; `None`: unknown, so the limit), and one of the connection's
    /// `slots` when it has them (HTTP/2).
    ///
    /// # Errors
    /// [`Busy`] when either is exhausted right now.
    pub fn reserve(
        &self,
        expected: Option<u64>,
        slots: Option<&Arc<Semaphore>>,
    ) -> Result<Reserved, Busy> {
        let slot = match slots {
            Some(slots) => Some(
                Arc::clone(slots)
                    .try_acquire_owned()
                    .map_err(|_| Busy::Connection)?,
            ),
            None => None,
        };
        let bytes = expected
            .and_then(|n| usize::try_from(n).ok())
            .map_or(self.body_limit, |n| n.min(self.body_limit));
        let kib = u32::try_from(bytes.div_ceil(UNIT).max(1)).map_err(|_| Busy::Process)?;
        let bytes = Arc::clone(&self.kib)
            .try_acquire_many_owned(kib)
            .map_err(|_| Busy::Process)?;
        Ok(Reserved {
            _bytes: bytes,
            _slot: slot,
        })
    }
}

/// The slots of one HTTP/2 connection.
pub fn http2_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(BODIES_PER_HTTP2_CONNECTION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_and_the_connection_slots_bound_what_is_held() {
        let budget = BodyBudget::new(100 << 20);
        // Two bodies at the limit fit the 256 MiB budget, a third does not.
        let a = budget.reserve(None, None).expect("room");
        let b = budget.reserve(Some(u64::MAX), None).expect("room");
        assert_eq!(budget.reserve(None, None).err(), Some(Busy::Process));
        // Small declared bodies still fit.
        let small = budget.reserve(Some(10), None).expect("room");
        drop((a, b));
        let slots = http2_slots();
        let held: Vec<_> = (0..BODIES_PER_HTTP2_CONNECTION)
            .map(|_| budget.reserve(Some(10), Some(&slots)).expect("a slot"))
            .collect();
        assert_eq!(
            budget.reserve(Some(10), Some(&slots)).err(),
            Some(Busy::Connection)
        );
        drop(held);
        drop(small);
        assert!(budget.reserve(Some(10), Some(&slots)).is_ok());
    }
}
