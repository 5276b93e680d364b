//! How many request bytes the gateway holds in memory at once.
//!
//! Every request body is read whole before anything is forwarded (its
//! digest must be checked first), so each one in progress may hold up to
//! the body limit. One HTTP/1.1 connection reads one body at a time, but an
//! HTTP/2 connection carries up to 100 streams: without a bound, a few
//! connections of slowly sent bodies (to a public route, or under a key
//! whose secret the client holds: a signed request's body is read only
//! after its MAC verified) would hold gigabytes.
//!
//! So the bytes of a body are charged, as they arrive, to a process-wide
//! budget and, on HTTP/2, to a budget of its connection (a few body limits:
//! many small bodies multiplex freely, a few large ones fill it). Charging
//! what arrived rather than what a request declares means a client that
//! announces large bodies and sends nothing holds nothing. A body that
//! finds no room fails at once and its request is answered `503` with
//! `Retry-After` (nothing is queued, so a flood cannot make honest
//! requests wait behind it); the bytes it had are given back. The room is
//! kept until the answer is ready, since the bytes are held until they are
//! forwarded.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::BoxError;

/// Bytes of request bodies held at once, process-wide (or the body limit,
/// if that is larger, so that one largest body always fits).
pub const BUFFERED_BODY_BYTES: usize = 256 << 20;

/// Body limits' worth of bytes one HTTP/2 connection may hold at once.
pub const BODY_LIMITS_PER_HTTP2_CONNECTION: usize = 4;

/// The budgets are kept in KiB, so that they fit a semaphore's permits.
const UNIT: usize = 1024;

/// The process-wide budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    body_limit: usize,
}

/// The budget of one HTTP/2 connection, sized by the body limit in force
/// when it first carried a body.
#[derive(Debug, Default)]
pub struct ConnectionBudget(OnceLock<Arc<Semaphore>>);

/// Why a body found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The process holds as many body bytes as it may.
    Process,
    /// This HTTP/2 connection holds as many body bytes as it may.
    Connection,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Busy::Process => "no room for the request body in the gateway",
            Busy::Connection => "no room for the request body on this connection",
        })
    }
}

impl std::error::Error for Busy {}

/// The room one body holds, shared by the body as it is read and by the
/// request's handler, which keeps it until the answer is ready; given back
/// when both are dropped.
#[derive(Debug, Clone)]
pub struct Room(Arc<Mutex<Charged>>);

#[derive(Debug)]
struct Charged {
    process: Arc<Semaphore>,
    connection: Option<Arc<Semaphore>>,
    /// Charged at most this many bytes: what is past the limit is refused
    /// by the body limit, not by the budget.
    body_limit: usize,
    received: usize,
    held: Option<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>)>,
    busy: Option<Busy>,
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

    /// Room for one body, charged to this budget and to `connection`'s
    /// when there is one (HTTP/2). Nothing is charged yet.
    pub fn room(&self, connection: Option<&ConnectionBudget>) -> Room {
        let connection = connection.map(|budget| {
            Arc::clone(budget.0.get_or_init(|| {
                let bytes = (BODY_LIMITS_PER_HTTP2_CONNECTION * self.body_limit)
                    .min(BUFFERED_BODY_BYTES.max(self.body_limit));
                Arc::new(Semaphore::new(bytes.div_ceil(UNIT)))
            }))
        });
        Room(Arc::new(Mutex::new(Charged {
            process: Arc::clone(&self.kib),
            connection,
            body_limit: self.body_limit,
            received: 0,
            held: None,
            busy: None,
        })))
    }
}

impl Room {
    /// Why the body found no room, if it did not.
    pub fn busy(&self) -> Option<Busy> {
        self.lock().busy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Charged> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges `bytes` more received bytes.
    fn charge(&self, bytes: usize) -> Result<(), Busy> {
        let mut charged = self.lock();
        if let Some(busy) = charged.busy {
            return Err(busy);
        }
        charged.received = charged.received.saturating_add(bytes);
        let needed = charged.received.min(charged.body_limit).div_ceil(UNIT);
        let held = charged
            .held
            .as_ref()
            .map_or(0, |(permit, _)| permit.num_permits());
        let Some(more) = needed
            .checked_sub(held)
            .filter(|&more| more > 0)
            .and_then(|more| u32::try_from(more).ok())
        else {
            return Ok(());
        };
        let taken = Self::take(&charged.process, charged.connection.as_ref(), more);
        match (taken, charged.held.as_mut()) {
            (Ok((process, connection)), Some((held_process, held_connection))) => {
                held_process.merge(process);
                if let (Some(held), Some(more)) = (held_connection.as_mut(), connection) {
                    held.merge(more);
                }
                Ok(())
            }
            (Ok(taken), None) => {
                charged.held = Some(taken);
                Ok(())
            }
            (Err(busy), _) => {
                // What it held goes back now: its request is refused.
                charged.held = None;
                charged.busy = Some(busy);
                Err(busy)
            }
        }
    }

    fn take(
        process: &Arc<Semaphore>,
        connection: Option<&Arc<Semaphore>>,
        kib: u32,
    ) -> Result<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>), Busy> {
        let connection = connection
            .map(|budget| {
                Arc::clone(budget)
                    .try_acquire_many_owned(kib)
                    .map_err(|_| Busy::Connection)
            })
            .transpose()?;
        let process = Arc::clone(process)
            .try_acquire_many_owned(kib)
            .map_err(|_| Busy::Process)?;
        Ok((process, connection))
    }
}

/// A request body whose bytes are charged to a [`Room`] as they arrive;
/// it fails with [`Busy`] when the room runs out.
pub struct MeteredBody<B> {
    inner: B,
    room: Room,
}

impl<B> MeteredBody<B> {
    /// `inner`, charged to `room`.
    pub fn new(inner: B, room: Room) -> Self {
        MeteredBody { inner, room }
    }
}

impl<B> http_body::Body for MeteredBody<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                match this.room.charge(bytes) {
                    Ok(()) => Poll::Ready(Some(Ok(frame))),
                    Err(busy) => Poll::Ready(Some(Err(Box::new(busy)))),
                }
            }
            other => other.map_err(Into::into),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_bytes_are_charged_and_given_back() {
        let budget = BodyBudget::new(100 << 20);
        let a = budget.room(None);
        let b = budget.room(None);
        // Rooms charge nothing until bytes arrive.
        for _ in 0..1000 {
            drop(budget.room(None));
        }
        // Two bodies at the limit fit the 256 MiB budget, a third does not.
        a.charge(100 << 20).expect("room");
        // Past the limit is the body limit's to refuse, not charged.
        a.charge(1 << 30).expect("room");
        b.charge(100 << 20).expect("room");
        let c = budget.room(None);
        c.charge(50 << 20).expect("room");
        assert_eq!(c.charge(10 << 20), Err(Busy::Process));
        assert_eq!(c.busy(), Some(Busy::Process));
        // A refused body gave back what it had: 56 MiB are left.
        let d = budget.room(None);
        d.charge(56 << 20).expect("room");
        assert_eq!(d.charge(1), Err(Busy::Process));
        drop((a, b));
        let e = budget.room(None);
        e.charge(100 << 20).expect("room after bodies finished");
    }

    #[test]
    fn a_connection_holds_a_few_body_limits() {
        let budget = BodyBudget::new(1 << 20);
        let connection = ConnectionBudget::default();
        // Many small bodies multiplex freely.
        let small: Vec<Room> = (0..100).map(|_| budget.room(Some(&connection))).collect();
        for room in &small {
            room.charge(100).expect("room");
        }
        drop(small);
        let big: Vec<Room> = (0..BODY_LIMITS_PER_HTTP2_CONNECTION)
            .map(|_| budget.room(Some(&connection)))
            .collect();
        for room in &big {
            room.charge(1 << 20).expect("room");
        }
        let one_more = budget.room(Some(&connection));
        assert_eq!(one_more.charge(1), Err(Busy::Connection));
        // Another connection is not affected.
        let other = ConnectionBudget::default();
        budget
            .room(Some(&other))
            .charge(1 << 20)
            .expect("room on another connection");
        drop(big);
        budget
            .room(Some(&connection))
            .charge(1 << 20)
            .expect("room after bodies finished");
    }
}
