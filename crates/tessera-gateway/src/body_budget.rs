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
//! many small bodies multiplex freely, a few large ones fill it). They are
//! also charged to a share of the process budget that depends on who sends
//! them: all bodies to public routes share a quarter of it (nothing
//! authenticates them, so they cannot keep signed requests' bodies out),
//! and the bodies signed with one key a sixteenth (one key cannot keep
//! other keys' bodies out). A signed request's body is read only once its
//! MAC has verified, so its first bytes, where its key's share is taken,
//! come from whoever holds the key or a request it signed; and a copy of a
//! request whose body is still being read (the same key and nonce: every
//! signature has its own) is refused at its first bytes, so one captured
//! request cannot fill its key's share with stalled copies. Charging what
//! arrived rather than what a request declares means a client that
//! announces large bodies and sends nothing holds nothing. A body that
//! finds no room fails at once and its request is answered `503` with
//! `Retry-After` (nothing is queued, so a flood cannot make honest
//! requests wait behind it); the bytes it had are given back. The room is
//! kept until the answer is ready, since the bytes are held until they are
//! forwarded.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tessera_core::{KeyId, Nonce};

use crate::BoxError;

/// Bytes of request bodies held at once, process-wide (or the body limit,
/// if that is larger, so that one largest body always fits).
pub const BUFFERED_BODY_BYTES: usize = 256 << 20;

/// Body limits' worth of bytes one HTTP/2 connection may hold at once.
pub const BODY_LIMITS_PER_HTTP2_CONNECTION: usize = 4;

/// The bodies of requests to public routes, together, may hold at most
/// this fraction (1/n) of [`BUFFERED_BODY_BYTES`] (or one body limit, if
/// larger).
pub const PUBLIC_SHARE: usize = 4;

/// The bodies signed with one key, together, may hold at most this
/// fraction (1/n) of [`BUFFERED_BODY_BYTES`] (or one body limit, if
/// larger).
pub const KEY_SHARE: usize = 16;

/// The budgets are kept in KiB, so that they fit a semaphore's permits.
const UNIT: usize = 1024;

/// The process-wide budget, with its shares for public routes and per key.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    public: Arc<Semaphore>,
    keys: Arc<Mutex<KeyShares>>,
    key_kib: usize,
    body_limit: usize,
}

/// Each key with a body in progress: its share, and the nonces of its
/// bodies in progress (a key's entry goes with its last body).
type KeyShares = HashMap<KeyId, KeyShare>;

#[derive(Debug)]
struct KeyShare {
    kib: Arc<Semaphore>,
    nonces: HashSet<Nonce>,
}

/// Who sends a body, for the share of the budget it is also charged to.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A request to a public route: nothing authenticates it, so all of
    /// them share one part of the budget ([`PUBLIC_SHARE`]).
    Public,
    /// A signed request naming this key id and nonce: its body is read only
    /// once its MAC has verified, so the key is the sender's
    /// ([`KEY_SHARE`]), and the nonce tells a copy of a request in progress.
    Key {
        /// The key id its signature names.
        key_id: KeyId,
        /// Its signature's nonce.
        nonce: Nonce,
    },
    /// A request without a key id to charge (the verifier refuses it before
    /// reading its body): the process and connection budgets only.
    Unknown,
}

/// The budget of one HTTP/2 connection, sized by the body limit in force
/// when it first carried a body.
#[derive(Debug, Default)]
pub struct ConnectionBudget(OnceLock<Arc<Semaphore>>);

/// Why a body found no room.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The process holds as many body bytes as it may.
    Process,
    /// This HTTP/2 connection holds as many body bytes as it may.
    Connection,
    /// The bodies to public routes hold as many bytes as they may.
    Public,
    /// The bodies signed with this key hold as many bytes as they may.
    Key,
    /// A request with the same signature (key id and nonce) is already
    /// sending its body: this one is a copy.
    Duplicate,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Busy::Process => "no room for the request body in the gateway",
            Busy::Connection => "no room for the request body on this connection",
            Busy::Public => "no room for the request body among those to public routes",
            Busy::Key => "no room for the request body among those of its key",
            Busy::Duplicate => "a request with the same signature is already sending its body",
        })
    }
}

impl std::error::Error for Busy {}

/// The room one body holds, shared by the body as it is read and by the
/// request's handler, which keeps it until the answer is ready; given back
/// when both are dropped.
#[derive(Debug, Clone)]
pub struct Room(Arc<Mutex<Charged>>, usize);

#[derive(Debug)]
struct Charged {
    /// The budgets charged, in order (the connection's, the sender's share,
    /// the process's), with what running out of each means.
    budgets: Vec<(Arc<Semaphore>, Busy)>,
    /// Charged at most this many bytes: what is past the limit is refused
    /// by the body limit, not by the budget.
    body_limit: usize,
    received: usize,
    /// One permit per budget, in the same order, once bytes arrived.
    held: Vec<OwnedSemaphorePermit>,
    busy: Option<Busy>,
    /// The `sender` label of the bytes-in-progress gauge.
    sender: &'static str,
    /// A signed request's key and nonce, taken into [`KeyShares`] when its
    /// first bytes arrive (after its MAC verified), not before: a request
    /// that never gets that far leaves no trace there.
    claimed: Option<(Arc<Mutex<KeyShares>>, KeyId, Nonce)>,
    /// Held for its `Drop`, declared last: takes the nonce out of its key's
    /// entry (and the entry, with its last body) after the permits above
    /// went back.
    key: Option<KeyRoom>,
}

/// A body's place in its key's entry of [`KeyShares`].
#[derive(Debug)]
struct KeyRoom {
    shares: Arc<Mutex<KeyShares>>,
    key_id: KeyId,
    nonce: Nonce,
}

impl Drop for KeyRoom {
    fn drop(&mut self) {
        let mut shares = lock(&self.shares);
        if let Some(share) = shares.get_mut(&self.key_id) {
            share.nonces.remove(&self.nonce);
            if share.nonces.is_empty() {
                shares.remove(&self.key_id);
            }
        }
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.release();
        // The permits went back above; now the key's entry may go.
        self.key = None;
    }
}

impl Charged {
    /// Gives back what this body holds.
    fn release(&mut self) {
        if let Some(permit) = self.held.first() {
            let bytes = (permit.num_permits() * UNIT) as f64;
            metrics::gauge!(BYTES_IN_PROGRESS, "sender" => self.sender).decrement(bytes);
        }
        self.held = Vec::new();
    }

    /// Takes the claimed key's share into the budgets, and the nonce into
    /// its entry: a nonce already there is a copy of a body in progress.
    fn take_key_share(&mut self, key_kib: usize) -> Result<(), Busy> {
        let Some((shares, key_id, nonce)) = self.claimed.take() else {
            return Ok(());
        };
        let kib = {
            let mut map = lock(&shares);
            let share = map.entry(key_id.clone()).or_insert_with(|| KeyShare {
                kib: Arc::new(Semaphore::new(key_kib)),
                nonces: HashSet::new(),
            });
            if !share.nonces.insert(nonce.clone()) {
                return Err(Busy::Duplicate);
            }
            Arc::clone(&share.kib)
        };
        // Before the process budget, the last one.
        let at = self.budgets.len() - 1;
        self.budgets.insert(at, (kib, Busy::Key));
        self.key = Some(KeyRoom {
            shares,
            key_id,
            nonce,
        });
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section leaves the value consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gauge of request body bytes charged to the budget (in whole KiB, at
/// most the body limit per body), labelled `sender` (`public`, `key`,
/// `unknown`).
pub const BYTES_IN_PROGRESS: &str = "gateway_request_body_bytes_in_progress";

impl BodyBudget {
    /// A budget for bodies of at most `body_limit` bytes each.
    pub fn new(body_limit: usize) -> Self {
        let total = BUFFERED_BODY_BYTES.max(body_limit);
        let share = |n: usize| (BUFFERED_BODY_BYTES / n).max(body_limit).div_ceil(UNIT);
        BodyBudget {
            kib: Arc::new(Semaphore::new(total.div_ceil(UNIT))),
            public: Arc::new(Semaphore::new(share(PUBLIC_SHARE))),
            keys: Arc::default(),
            key_kib: share(KEY_SHARE),
            body_limit,
        }
    }

    /// Room for one body from `sender`, charged to this budget, to the
    /// sender's share and to `connection`'s budget when there is one
    /// (HTTP/2). Nothing is charged yet.
    pub fn room(&self, connection: Option<&ConnectionBudget>, sender: Sender) -> Room {
        let mut budgets = Vec::with_capacity(3);
        if let Some(budget) = connection {
            let semaphore = budget.0.get_or_init(|| {
                let bytes = (BODY_LIMITS_PER_HTTP2_CONNECTION * self.body_limit)
                    .min(BUFFERED_BODY_BYTES.max(self.body_limit));
                Arc::new(Semaphore::new(bytes.div_ceil(UNIT)))
            });
            budgets.push((Arc::clone(semaphore), Busy::Connection));
        }
        let (label, claimed) = match sender {
            Sender::Public => {
                budgets.push((Arc::clone(&self.public), Busy::Public));
                ("public", None)
            }
            Sender::Key { key_id, nonce } => ("key", Some((Arc::clone(&self.keys), key_id, nonce))),
            Sender::Unknown => ("unknown", None),
        };
        budgets.push((Arc::clone(&self.kib), Busy::Process));
        let charged = Charged {
            budgets,
            body_limit: self.body_limit,
            received: 0,
            held: Vec::new(),
            busy: None,
            sender: label,
            claimed,
            key: None,
        };
        Room(Arc::new(Mutex::new(charged)), self.key_kib)
    }

    /// Keys with a body in progress (each has a share).
    pub fn keys_in_progress(&self) -> usize {
        lock(&self.keys).len()
    }
}

impl Room {
    /// Why the body found no room, if it did not.
    pub fn busy(&self) -> Option<Busy> {
        lock(&self.0).busy
    }

    /// Charges `bytes` more received bytes.
    fn charge(&self, bytes: usize) -> Result<(), Busy> {
        let mut charged = lock(&self.0);
        if let Some(busy) = charged.busy {
            return Err(busy);
        }
        if let Err(busy) = charged.take_key_share(self.1) {
            charged.busy = Some(busy);
            return Err(busy);
        }
        charged.received = charged.received.saturating_add(bytes);
        let needed = charged.received.min(charged.body_limit).div_ceil(UNIT);
        let held = charged
            .held
            .first()
            .map_or(0, |permit| permit.num_permits());
        let Some(more) = needed
            .checked_sub(held)
            .filter(|&more| more > 0)
            .and_then(|more| u32::try_from(more).ok())
        else {
            return Ok(());
        };
        match Self::take(&charged.budgets, more) {
            Ok(taken) => {
                metrics::gauge!(BYTES_IN_PROGRESS, "sender" => charged.sender)
                    .increment(f64::from(more) * UNIT as f64);
                if charged.held.is_empty() {
                    charged.held = taken;
                } else {
                    for (held, more) in charged.held.iter_mut().zip(taken) {
                        held.merge(more);
                    }
                }
                Ok(())
            }
            Err(busy) => {
                // What it held goes back now: its request is refused.
                charged.release();
                charged.busy = Some(busy);
                Err(busy)
            }
        }
    }

    /// `kib` from every budget, or none (what was taken goes back) and the
    /// first that had no room.
    fn take(
        budgets: &[(Arc<Semaphore>, Busy)],
        kib: u32,
    ) -> Result<Vec<OwnedSemaphorePermit>, Busy> {
        budgets
            .iter()
            .map(|(budget, busy)| {
                Arc::clone(budget)
                    .try_acquire_many_owned(kib)
                    .map_err(|_| *busy)
            })
            .collect()
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

    /// A signed request's sender: `id`, with a fresh nonce.
    fn key(id: &str) -> Sender {
        Sender::Key {
            key_id: KeyId::new(id).expect("key id"),
            nonce: Nonce::generate(&mut rand::rng()),
        }
    }

    #[test]
    fn received_bytes_are_charged_and_given_back() {
        let budget = BodyBudget::new(100 << 20);
        let a = budget.room(None, Sender::Unknown);
        let b = budget.room(None, Sender::Unknown);
        // Rooms charge nothing until bytes arrive.
        for _ in 0..1000 {
            drop(budget.room(None, Sender::Unknown));
        }
        // Two bodies at the limit fit the 256 MiB budget, a third does not.
        a.charge(100 << 20).expect("room");
        // Past the limit is the body limit's to refuse, not charged.
        a.charge(1 << 30).expect("room");
        b.charge(100 << 20).expect("room");
        let c = budget.room(None, Sender::Unknown);
        c.charge(50 << 20).expect("room");
        assert_eq!(c.charge(10 << 20), Err(Busy::Process));
        assert_eq!(c.busy(), Some(Busy::Process));
        // A refused body gave back what it had: 56 MiB are left.
        let d = budget.room(None, Sender::Unknown);
        d.charge(56 << 20).expect("room");
        assert_eq!(d.charge(1), Err(Busy::Process));
        drop((a, b));
        let e = budget.room(None, Sender::Unknown);
        e.charge(100 << 20).expect("room after bodies finished");
    }

    #[test]
    fn a_connection_holds_a_few_body_limits() {
        let budget = BodyBudget::new(1 << 20);
        let connection = ConnectionBudget::default();
        // Many small bodies multiplex freely.
        let small: Vec<Room> = (0..100)
            .map(|_| budget.room(Some(&connection), Sender::Unknown))
            .collect();
        for room in &small {
            room.charge(100).expect("room");
        }
        drop(small);
        let big: Vec<Room> = (0..BODY_LIMITS_PER_HTTP2_CONNECTION)
            .map(|_| budget.room(Some(&connection), Sender::Unknown))
            .collect();
        for room in &big {
            room.charge(1 << 20).expect("room");
        }
        let one_more = budget.room(Some(&connection), Sender::Unknown);
        assert_eq!(one_more.charge(1), Err(Busy::Connection));
        // Another connection is not affected.
        let other = ConnectionBudget::default();
        budget
            .room(Some(&other), Sender::Unknown)
            .charge(1 << 20)
            .expect("room on another connection");
        drop(big);
        budget
            .room(Some(&connection), Sender::Unknown)
            .charge(1 << 20)
            .expect("room after bodies finished");
    }

    #[test]
    fn public_routes_share_a_quarter_and_cannot_keep_signed_bodies_out() {
        let budget = BodyBudget::new(1 << 20);
        let public = BUFFERED_BODY_BYTES / PUBLIC_SHARE;
        let rooms: Vec<Room> = (0..public >> 20)
            .map(|_| budget.room(None, Sender::Public))
            .collect();
        for room in &rooms {
            room.charge(1 << 20).expect("room");
        }
        let one_more = budget.room(None, Sender::Public);
        assert_eq!(one_more.charge(1), Err(Busy::Public));
        // Signed bodies still have the other three quarters.
        let keys: Vec<Room> = (0..(BUFFERED_BODY_BYTES - public) >> 20)
            .map(|i| budget.room(None, key(&format!("key-{}", i % 64))))
            .collect();
        for room in &keys {
            room.charge(1 << 20).expect("room for signed bodies");
        }
        assert_eq!(
            budget.room(None, key("another")).charge(1),
            Err(Busy::Process)
        );
        drop(rooms);
        budget
            .room(None, Sender::Public)
            .charge(1 << 20)
            .expect("room once public bodies finished");
    }

    #[test]
    fn one_key_holds_a_sixteenth_and_its_share_goes_with_its_last_body() {
        let budget = BodyBudget::new(1 << 20);
        let share = BUFFERED_BODY_BYTES / KEY_SHARE;
        let alice = || key("alice");
        let rooms: Vec<Room> = (0..share >> 20)
            .map(|_| budget.room(None, alice()))
            .collect();
        for room in &rooms {
            room.charge(1 << 20).expect("room");
        }
        assert_eq!(budget.room(None, alice()).charge(1), Err(Busy::Key));
        // Another key, and bodies without a key, are not affected.
        budget
            .room(None, key("bob"))
            .charge(1 << 20)
            .expect("bob has his own share");
        budget
            .room(None, Sender::Unknown)
            .charge(1 << 20)
            .expect("the process budget");
        assert_eq!(
            budget.keys_in_progress(),
            1,
            "bob's share went with his body"
        );
        drop(rooms);
        assert_eq!(budget.keys_in_progress(), 0);
        budget
            .room(None, alice())
            .charge(1 << 20)
            .expect("room once alice's bodies finished");
        // A body limit larger than the share still fits once.
        let large = BodyBudget::new(64 << 20);
        let at_limit = large.room(None, alice());
        at_limit.charge(64 << 20).expect("one body at the limit");
        assert_eq!(large.room(None, alice()).charge(1 << 10), Err(Busy::Key));
        drop(at_limit);
    }

    #[test]
    fn a_key_enters_at_its_first_bytes_and_a_copy_in_progress_is_refused() {
        let budget = BodyBudget::new(1 << 20);
        let nonce = Nonce::generate(&mut rand::rng());
        let copy = || Sender::Key {
            key_id: KeyId::new("alice").expect("key id"),
            nonce: nonce.clone(),
        };
        // A request that never sends a byte (its MAC failed, say) leaves
        // no entry, and holds no nonce.
        let silent: Vec<Room> = (0..10).map(|_| budget.room(None, copy())).collect();
        assert_eq!(budget.keys_in_progress(), 0);
        let first = budget.room(None, copy());
        first.charge(10).expect("room");
        assert_eq!(budget.keys_in_progress(), 1);
        // A copy of it (same key and nonce) is refused at its first bytes.
        let second = budget.room(None, copy());
        assert_eq!(second.charge(10), Err(Busy::Duplicate));
        assert_eq!(second.busy(), Some(Busy::Duplicate));
        // Another request of the same key is not.
        budget
            .room(None, key("alice"))
            .charge(10)
            .expect("another nonce");
        drop((first, second, silent));
        assert_eq!(budget.keys_in_progress(), 0);
        // Once the first is over, the nonce is free again here (the nonce
        // store, not this budget, refuses a replay then).
        budget.room(None, copy()).charge(10).expect("room");
    }
}
