//! Replay protection: the [`NonceStore`] trait, the in-memory default and,
//! with the `redis` feature, the shared Redis store.

mod hash;
mod memory;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_connection;
#[cfg(feature = "redis")]
mod redis_down_slots;
#[cfg(feature = "redis")]
mod redis_node_probe;
#[cfg(feature = "redis")]
mod redis_settings;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
mod redis_trial;
mod shard;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::{KeyId, Nonce};

pub use memory::{MemoryNonceStore, MemoryNonceStoreBuilder};
#[cfg(feature = "redis")]
pub use redis_connection::{is_redis_refusal, RedisConnection};
#[cfg(feature = "redis")]
pub use redis_store::{
    RedisNonceStore, RedisNonceStoreBuilder, RedisStoreError, RedisStoreErrorKind,
    DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT,
};

/// One (key id, nonce) pair to remember until `expires_at`.
///
/// `now` is the verifier's clock reading, so stores that expire entries
/// themselves use the same time as the verifier (and tests can drive both
/// with one manual clock).
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct NonceRecord<'a> {
    /// The key that signed the request.
    pub key_id: &'a KeyId,
    /// The request's nonce.
    pub nonce: &'a Nonce,
    /// The signature's `created` time, Unix seconds: a store that may have
    /// forgotten pairs this old answers [`NonceOutcome::Forgotten`].
    pub created: u64,
    /// The verifier's current time, Unix seconds.
    pub now: u64,
    /// When the pair may be forgotten, Unix seconds: `created + window + 1`.
    /// From that second on, the verifier rejects the request as `clock_skew`
    /// without consulting the store.
    pub expires_at: u64,
}

impl<'a> NonceRecord<'a> {
    /// A record of `nonce` under `key_id`, for a signature created at
    /// `created`, checked at `now`, to keep until `expires_at`.
    pub fn new(
        key_id: &'a KeyId,
        nonce: &'a Nonce,
        created: u64,
        now: u64,
        expires_at: u64,
    ) -> Self {
        NonceRecord {
            key_id,
            nonce,
            created,
            now,
            expires_at,
        }
    }

    /// Seconds a store that counts time itself (Redis `PX`) keeps the
    /// pair: `max(1, expires_at - min(now, created))` (spec §14). Counted
    /// from `created` when the verifier's clock reads later than it: a
    /// clock running ahead and corrected later must not shorten the
    /// retention, or a replay within the window on the corrected clock
    /// would find the pair gone.
    pub fn ttl_secs(&self) -> u64 {
        self.expires_at
            .saturating_sub(self.now.min(self.created))
            .max(1)
    }

    /// [`NonceRecord::ttl_secs`] in milliseconds, for Redis `PX`.
    pub fn ttl_millis(&self) -> u64 {
        self.ttl_secs().saturating_mul(1000)
    }
}

/// The answer of [`NonceStore::record`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceOutcome {
    /// The pair was not known and is now recorded: accept the request.
    Fresh,
    /// The pair was already recorded: reject the request as `replayed`.
    Replayed,
    /// The store remembers pairs only from Unix second `since` (it started
    /// then, or lost its contents and started again), and the signature was
    /// created before that: the pair may have been recorded and forgotten.
    /// Nothing was recorded; reject the request as `store_reset` (spec §14).
    Forgotten {
        /// The first second from which the store remembers every pair.
        since: u64,
    },
}

/// Remembers (key id, nonce) pairs for the acceptance window.
///
/// There is exactly one operation, and it must be **atomic**: of any number
/// of concurrent calls with the same pair, exactly one may answer
/// [`NonceOutcome::Fresh`]. A check followed by a separate insert is not
/// enough. Redis does it in one round trip with a short script (see
/// `RedisNonceStore`: an epoch check, then
/// `SET <prefix>:{<tag>}:nonce:<hex SHA-256 of (key id LF nonce)> 1 NX PX <ttl ms>`;
/// spec §14). The verifier calls the store only after the MAC has been
/// verified, so unauthenticated traffic cannot fill it (the one exception,
/// [`NonceStore::prefetch`], is a hint that changes nothing).
///
/// The trait uses `async-trait` (boxed futures) so it is object-safe: the
/// verifier holds an `Arc<dyn NonceStore>`.
///
/// A store knows from which second it remembers: a memory store from the
/// moment it was created, a Redis store from the moment its epoch key was
/// written (a restart without persistence, `FLUSHALL` or a failover to an
/// empty replica removes the key, and the next check writes a new one). It
/// answers [`NonceOutcome::Forgotten`], and records nothing, for a
/// signature created before that second: otherwise a store that forgot its
/// pairs would accept every request of the last window a second time.
///
/// Stores must fail closed: when they cannot answer, or are full, they
/// return an error and the verifier refuses the request with
/// `store_unavailable` (HTTP 503). They must never answer `Fresh` for a pair
/// they did not record.
#[async_trait]
pub trait NonceStore: fmt::Debug + Send + Sync {
    /// Atomically records the pair unless it is already recorded.
    ///
    /// # Errors
    /// When the store is full or unreachable.
    async fn record(&self, record: NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError>;

    /// The answer of [`NonceStore::record`], when the store can give it
    /// without waiting (an in-memory store); `None` when it cannot, and the
    /// verifier then awaits [`NonceStore::record`].
    ///
    /// When it answers `Some`, it has done exactly what `record` would have
    /// done (atomically recorded the pair, or refused it): the verifier does
    /// not call `record` afterwards. It must not block. The default answers
    /// `None` without touching the store.
    fn record_now(&self, record: NonceRecord<'_>) -> Option<Result<NonceOutcome, NonceStoreError>> {
        let _ = record;
        None
    }

    /// Whether the pair is already recorded, read-only: `Some(true)` when
    /// it is, `Some(false)` when it is not (as of the read), `None` when
    /// the store cannot tell (the default, and on any error: the verifier
    /// then goes on, and [`NonceStore::record`] decides).
    ///
    /// The verifier asks only when an admission policy (rate limits) runs
    /// before the record, so that a replay of a recorded request is refused
    /// without charging the key's budget: a charge given back after the
    /// record still holds the budget while the store answers, and a flood
    /// of replayed copies would keep it spent (spec §12.5). An answer of
    /// `Some(false)` changes nothing: the record that follows is still
    /// the one atomic check.
    async fn recorded(&self, key_id: &KeyId, nonce: &Nonce) -> Option<bool> {
        let _ = (key_id, nonce);
        None
    }

    /// A hint that this pair may soon be recorded: an in-memory store can
    /// start loading the memory the check will read, so that the check does
    /// not wait for it.
    ///
    /// The verifier gives it once steps 1 to 5 have passed (the key is
    /// known and usable, the time is in the window, the authority is
    /// served) and **before the MAC is checked**: the pair is not
    /// authenticated, and many hints are never followed by a record. So it
    /// must change nothing, read no recorded pair (its answer could not
    /// depend on one anyway: it has none), never wait for a lock or for
    /// I/O, and never fail or panic. The default does nothing.
    fn prefetch(&self, key_id: &KeyId, nonce: &Nonce) {
        let _ = (key_id, nonce);
    }

    /// The Unix second from which this store vouches for every pair, as far
    /// as it knows without I/O: a signature created before it is answered
    /// [`NonceOutcome::Forgotten`] (spec §14.1). `now` is the verifier's
    /// clock. A memory store answers its memory point; the default, `0`,
    /// suits a store that learns its point from its backend at the first
    /// check (a Redis store) or has none.
    fn remembers_from(&self, now: u64) -> u64 {
        let _ = now;
        0
    }
}

#[async_trait]
impl<N: NonceStore + ?Sized> NonceStore for Arc<N> {
    // Written out rather than `async fn`: hands on the inner store's boxed
    // future instead of boxing a second one around it (the verifier holds
    // its store as `Arc<dyn NonceStore>`, so every record comes through here).
    fn record<'life0, 'life1, 'async_trait>(
        &'life0 self,
        record: NonceRecord<'life1>,
    ) -> Pin<Box<dyn Future<Output = Result<NonceOutcome, NonceStoreError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).record(record)
    }

    fn record_now(&self, record: NonceRecord<'_>) -> Option<Result<NonceOutcome, NonceStoreError>> {
        (**self).record_now(record)
    }

    fn recorded<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        key_id: &'life1 KeyId,
        nonce: &'life2 Nonce,
    ) -> Pin<Box<dyn Future<Output = Option<bool>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        (**self).recorded(key_id, nonce)
    }

    fn prefetch(&self, key_id: &KeyId, nonce: &Nonce) {
        (**self).prefetch(key_id, nonce);
    }

    fn remembers_from(&self, now: u64) -> u64 {
        (**self).remembers_from(now)
    }
}

/// Why a nonce store could not record a pair.
///
/// The verifier refuses the request with `store_unavailable` (503) whatever
/// the kind, but logs the kind (`tracing` warning, field `kind`) and says in
/// the problem `detail` which limit was hit, so a full store is told apart
/// from one busy key and from a backend failure.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStoreErrorKind {
    /// The store's total capacity is used up: it holds as many live pairs
    /// as it may, i.e. the sustained request rate exceeds what the capacity
    /// covers (for [`MemoryNonceStore`], `capacity / (window + 5 s)`
    /// requests per second). Problem detail: "replay protection is at
    /// capacity (nonce store full); retry later".
    Full,
    /// The key has as many live nonces as the per-key cap allows: this one
    /// key sends faster than `per_key_capacity / (window + 5 s)` requests per
    /// second (about 330/s by default). The verifier answers `rate_limited`
    /// (429, `Retry-After: 1`), not `store_unavailable`: one key sending too
    /// fast is not an outage.
    KeyFull,
    /// The pair would have to be remembered longer than the store supports.
    TtlTooLong,
    /// The backend could not be reached or failed.
    Unavailable,
}

/// A nonce store could not answer. The verifier maps every such error to
/// `store_unavailable` and refuses the request.
#[derive(Debug)]
pub struct NonceStoreError {
    kind: NonceStoreErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl NonceStoreError {
    /// An error of `kind` with a message.
    pub fn new(kind: NonceStoreErrorKind, message: impl Into<String>) -> Self {
        NonceStoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A backend failure (for example a Redis connection error).
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        NonceStoreError {
            kind: NonceStoreErrorKind::Unavailable,
            message: "the nonce store backend failed".to_owned(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> NonceStoreErrorKind {
        self.kind
    }
}

impl fmt::Display for NonceStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NonceStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::{KeyId, Nonce};

    use super::NonceRecord;

    #[test]
    fn retention_counts_from_created_when_the_clock_reads_later() {
        let k = KeyId::new("k").expect("id");
        let n = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").expect("nonce");
        let ttl = |created: u64, now: u64| {
            NonceRecord::new(&k, &n, created, now, created + 301).ttl_secs()
        };
        assert_eq!(ttl(1000, 1000), 301);
        // Dated 2 s ahead of the verifier: kept 2 s longer from now.
        assert_eq!(ttl(1002, 1000), 303);
        // The verifier's clock 298 s ahead of `created` (running fast, or
        // a request signed long ago): still the whole retention, so a
        // corrected clock finds the pair for as long as it accepts it.
        assert_eq!(ttl(1000, 1298), 301);
        assert_eq!(ttl(1000, 5000), 301);
        // Never zero.
        let past = NonceRecord::new(&k, &n, 1000, 1000, 900);
        assert_eq!(past.ttl_secs(), 1);
    }
}
