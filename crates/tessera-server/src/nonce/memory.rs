//! The in-memory nonce store: sharded, bounded, expiring by time buckets.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Instant;

use async_trait::async_trait;
use tessera_core::{KeyId, Nonce};

use super::hash::{BuildPassThrough, Entry, EntryHasher};
use super::shard::{Refused, Ring, Shard};
use super::{NonceOutcome, NonceRecord, NonceStore, NonceStoreError, NonceStoreErrorKind};

/// Slots in each shard's ring of expiry buckets.
const RING_LEN: u64 = 1024;
/// 7 Mi: with 32 shards, each shard's fingerprint table is at most 2^18
/// slots (2 MiB), 7/8 full.
const DEFAULT_CAPACITY: usize = 7 << 20;
const DEFAULT_PER_KEY: usize = 100_000;
const DEFAULT_SHARDS: usize = 32;
const DEFAULT_MAX_TTL: u64 = 3600;

/// Configures a [`MemoryNonceStore`].
///
/// Capacity is a rate: a pair is held from when it is recorded until its
/// `expires_at` (`created + window + 1`, 301 s with the default 300 s
/// window) rounded up to the expiry granularity (4 s by default), so a
/// steady `R` requests per second keep about `R × 305` pairs live. Size
/// [`capacity`](Self::capacity) as `peak requests/s × (window + 1 +
/// granularity)` plus a margin.
///
/// ```
/// use tessera_server::MemoryNonceStore;
///
/// // 50,000 requests a second with the default window: 50,000 × 305 live
/// // pairs, plus a margin.
/// let store = MemoryNonceStore::builder().capacity(16_000_000).build();
/// assert!(store.capacity() > 15_000_000); // rounded down to a multiple of the shards
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryNonceStoreBuilder {
    capacity: usize,
    per_key: usize,
    shards: usize,
    max_ttl: u64,
    remembers_since: Option<u64>,
}

impl MemoryNonceStoreBuilder {
    /// The Unix second from which the store counts as remembering every
    /// pair: signatures created before it get `store_reset` (spec §14).
    ///
    /// By default it is the memory point of the second the store was
    /// created ([`tessera_core::memory_point`]: the next second, plus
    /// [`tessera_core::MAX_AHEAD_SECS`]), on the verifier's clock, estimated
    /// at the first check from that check's second minus the whole seconds
    /// elapsed since creation (at most one second later than exact, never
    /// earlier). A new process has forgotten what an earlier one recorded;
    /// `created` has a resolution of one second, and step 4 accepts a
    /// signature dated up to `MAX_AHEAD_SECS` ahead, so a signature created
    /// before the memory point may already have been accepted by the
    /// process before. It is refused too, and the client signs again a
    /// moment later. [`Verifier::builder`] sets it from its own clock when it
    /// creates the store.
    ///
    /// Set it earlier only when no other process accepted requests for these
    /// keys since `since - window` (tests driven by a manual clock);
    /// setting it too early reopens the replay window.
    ///
    /// [`Verifier::builder`]: crate::Verifier::builder
    pub fn remembers_since(mut self, since: u64) -> Self {
        self.remembers_since = Some(since);
        self
    }

    /// Hard limit on live nonces across all keys (default 7,340,032 = 7 Mi).
    ///
    /// With the default 300 s window the default sustains about 24,000
    /// verified requests per second (7,340,032 / 305 s) before the store
    /// refuses with `Full` (`store_unavailable`, 503), in at most about
    /// 160 MB when full (about 21 bytes of RSS per live nonce; see the
    /// `memory` tests) and about 125 MB at a steady 20,000 requests/s.
    /// Memory grows with use: an idle store holds about 2 MB.
    ///
    /// The limit is split evenly over the shards; keyed hashing spreads
    /// entries uniformly, so a shard fills up at most a few per cent before
    /// the store as a whole would.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Limit on live nonces per key id (default 100,000), so one key cannot
    /// use up the store for everyone.
    ///
    /// As a rate: with the default 300 s window one key may sustain about
    /// 100,000 / 305 s ≈ 330 verified requests per second; beyond that its
    /// requests are refused with `KeyFull`, which the verifier answers as
    /// `rate_limited` (429, `Retry-After: 1`: one key too fast is not an
    /// outage) until its older nonces expire. Other keys are unaffected.
    pub fn per_key_capacity(mut self, per_key: usize) -> Self {
        self.per_key = per_key;
        self
    }

    /// Number of independently locked shards (default 32; rounded up to a
    /// power of two, at most 1024, and at most `capacity`).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Longest time a pair can be remembered, seconds (default 3600). The
    /// verifier asks for up to `window + 3` (a pair is kept until
    /// `created + window + 1`, and `created` may be 2 s ahead); longer requests are refused
    /// (fail closed). Expiry granularity is `max_ttl / 1023 + 1` seconds, so
    /// the default expires entries in 4-second buckets.
    pub fn max_ttl_secs(mut self, max_ttl: u64) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryNonceStore {
        let capacity = self.capacity.max(1);
        let mut shards = self.shards.clamp(1, 1024).next_power_of_two();
        while shards > 1 && shards > capacity {
            shards /= 2;
        }
        // Floor division keeps the sum of shard limits within `capacity`.
        let per_shard = capacity / shards;
        MemoryNonceStore {
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::new(RING_LEN as usize, per_shard)))
                .collect(),
            counts: (0..shards)
                .map(|_| Mutex::new(Counts::new(RING_LEN as usize)))
                .collect(),
            mask: shards - 1,
            hasher: EntryHasher::random(),
            per_key: u32::try_from(self.per_key.max(1)).unwrap_or(u32::MAX),
            granularity: self.max_ttl / (RING_LEN - 1) + 1,
            capacity: per_shard * shards,
            since: AtomicU64::new(self.remembers_since.unwrap_or(UNSET)),
            created: Instant::now(),
        }
    }
}

/// The default [`NonceStore`]: in process memory, bounded, fail-closed.
///
/// **Capacity as a rate.** With the verifier's default 300 s window a pair
/// stays live about 305 s (301 s plus the 4 s expiry granularity), so the
/// defaults sustain about **24,000 verified requests per second per
/// instance** (7,340,032 live nonces), in about **160 MB when full** (125 MB
/// at a steady 20,000 requests/s), and about **330 requests per second for
/// any single key** (100,000 live nonces per key). Past the total,
/// requests are refused with `store_unavailable` (503); past one key's
/// share, with `rate_limited` (429); the verifier logs which limit was hit. Memory grows with use: about 21 bytes per live
/// nonce, about 2 MB idle.
/// For a higher rate or a longer window, raise
/// [`MemoryNonceStoreBuilder::capacity`] to `requests/s × (window + 5)`.
///
/// * **Sharded**: pairs are spread over independently locked shards by a
///   keyed hash, so concurrent requests rarely wait on each other.
/// * **Compact**: each pair is an 8-byte keyed fingerprint, kept in an
///   open-addressing table (at most 7/8 full) and once more in the list of
///   its expiry bucket, not the strings; per-key counts are kept per key and
///   time bucket, not per pair. A false `Replayed` needs a 64-bit
///   fingerprint collision: at most `live / 2^64` per request, about
///   4 × 10^-13 at full default capacity.
/// * **Expiring in O(1) amortized**: each shard keeps a ring of 1024 time
///   buckets; once a bucket has passed its entries are removed over the
///   shard's next writes, at most 64 per write (so the request that passes
///   a bucket filled by a burst does not pay for all of it), never by
///   scanning the table.
/// * **Prefetched**: on x86 and x86-64 (with SSE, as every x86-64 target
///   and the usual 32-bit ones have), [`NonceStore::prefetch`] starts
///   loading the one table slot a check reads once steps 1 to 5 of the
///   verification have passed, so that the cache miss on a table larger
///   than the caches overlaps the MAC instead of adding to it (0.1 to
///   0.2 µs per request with 300,000 live nonces; see the README's
///   performance section).
/// * **Bounded**: a hard total capacity and a per-key cap. When either is
///   reached the store returns an error: `Full`, which the verifier turns
///   into `store_unavailable` (503), or `KeyFull`, which it answers as
///   `rate_limited` (429 with `Retry-After: 1`): it never accepts without
///   recording and never grows past its limits.
///
/// A single process only: behind a load balancer, use a shared store (Redis).
pub struct MemoryNonceStore {
    shards: Box<[Mutex<Shard>]>,
    /// Live nonces per key-id hash, sharded by that hash.
    counts: Box<[Mutex<Counts>]>,
    mask: usize,
    hasher: EntryHasher,
    per_key: u32,
    granularity: u64,
    capacity: usize,
    /// The Unix second from which every pair is remembered ([`UNSET`]
    /// until the first check fixes it).
    since: AtomicU64,
    /// When the store was created, to place `since` on the verifier's clock.
    created: Instant,
}

/// `since` before the first check.
const UNSET: u64 = u64::MAX;

type CountMap = HashMap<u64, u32, BuildPassThrough>;

/// Live nonces per key-id hash, and the same counts split by expiry bucket
/// so that a passing bucket releases them without a per-pair record.
#[derive(Debug)]
struct Counts {
    live: CountMap,
    ring: Ring<CountMap>,
}

impl Counts {
    fn new(ring_len: usize) -> Self {
        Counts {
            live: CountMap::default(),
            ring: Ring::new(ring_len),
        }
    }

    fn sweep(&mut self, current: u64) {
        let live = &mut self.live;
        self.ring.sweep(current, |expired| {
            for (key, n) in expired {
                if let Some(count) = live.get_mut(&key) {
                    *count = count.saturating_sub(n);
                    if *count == 0 {
                        live.remove(&key);
                    }
                }
            }
        });
    }

    fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u64, u32)>() + 1;
        self.live.capacity() * entry
            + self.ring.slot_count() * std::mem::size_of::<(u64, CountMap)>()
            + self
                .ring
                .slots()
                .map(|m| m.capacity() * entry)
                .sum::<usize>()
    }
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore::new()
    }
}

impl MemoryNonceStore {
    /// A store with the default limits.
    pub fn new() -> Self {
        MemoryNonceStore::builder().build()
    }

    /// Configures a store.
    pub fn builder() -> MemoryNonceStoreBuilder {
        MemoryNonceStoreBuilder {
            capacity: DEFAULT_CAPACITY,
            per_key: DEFAULT_PER_KEY,
            shards: DEFAULT_SHARDS,
            max_ttl: DEFAULT_MAX_TTL,
            remembers_since: None,
        }
    }

    /// The synchronous form of [`NonceStore::record`].
    ///
    /// # Errors
    /// `Full`, `KeyFull` or `TtlTooLong` (see [`NonceStoreErrorKind`]).
    pub fn check_and_record(
        &self,
        record: NonceRecord<'_>,
    ) -> Result<NonceOutcome, NonceStoreError> {
        let since = self.remembers_since(record.now);
        if tessera_core::check_remembered(record.created, since).is_err() {
            return Ok(NonceOutcome::Forgotten { since });
        }
        let entry = self.hasher.entry(record.key_id, record.nonce);
        self.try_record(entry, &record)
    }

    /// The Unix second from which this store remembers every pair, fixing
    /// it at the first call: the memory point of the second of creation, on
    /// the clock that gave `now` (see
    /// [`MemoryNonceStoreBuilder::remembers_since`]).
    pub fn remembers_since(&self, now: u64) -> u64 {
        let since = self.since.load(Ordering::Acquire);
        if since != UNSET {
            return since;
        }
        let start =
            tessera_core::memory_point(now.saturating_sub(self.created.elapsed().as_secs()));
        match self
            .since
            .compare_exchange(UNSET, start, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => start,
            Err(fixed) => fixed,
        }
    }

    /// Drops every pair that expired before `now` in all shards.
    ///
    /// Not needed for correctness (each shard expires its buckets over its
    /// next writes), but a background task may call it to release memory and
    /// keep [`MemoryNonceStore::len`] exact.
    pub fn expire(&self, now: u64) {
        let current = now / self.granularity;
        for shard in self.shards.iter() {
            lock(shard).sweep_all(current);
        }
        for counts in self.counts.iter() {
            lock(counts).sweep(current);
        }
    }

    fn try_record(
        &self,
        entry: Entry,
        record: &NonceRecord<'_>,
    ) -> Result<NonceOutcome, NonceStoreError> {
        let current = record.now / self.granularity;
        let mut shard = self.shard(&entry);
        shard.sweep(current);
        if shard.contains(entry.pair) {
            return Ok(NonceOutcome::Replayed);
        }
        // This pair's expiry bucket was already swept: the clock that gave
        // `now` once ran later (and has since stepped back), so if this pair
        // was recorded before, it may have been dropped while still live.
        // Refused as forgotten; a pair is safe again from the `created`
        // whose expiry (the same retention after it) lies in a bucket still
        // kept. A clock that only moves forward does not get here: a pair
        // within its window expires after `now` (short of a check delayed
        // past a bucket boundary right at the window's edge, which is
        // refused as forgotten and signed again).
        let swept_to = shard.swept_to();
        if record.expires_at / self.granularity < swept_to {
            let retention = record.expires_at.saturating_sub(record.created);
            let since = swept_to
                .saturating_mul(self.granularity)
                .saturating_sub(retention);
            return Ok(NonceOutcome::Forgotten {
                since: since.max(record.created.saturating_add(1)),
            });
        }
        let bucket = match shard.admit(record.expires_at / self.granularity) {
            Ok(bucket) => bucket,
            Err(Refused::Full) => {
                return Err(NonceStoreError::new(
                    NonceStoreErrorKind::Full,
                    "the in-memory nonce store is full (total capacity reached)",
                ))
            }
            Err(Refused::TtlTooLong) => return Err(ttl_too_long()),
        };
        self.acquire(entry.key, current, bucket)?;
        shard.insert(entry.pair, bucket);
        Ok(NonceOutcome::Fresh)
    }

    /// Number of pairs held.
    ///
    /// Expiry is lazy, per shard: a shard drops expired buckets over its
    /// next writes (a few dozen pairs per write, so that no request pays for
    /// a whole burst's bucket), so this may count pairs that already
    /// expired; [`MemoryNonceStore::expire`] removes them all.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hard total capacity actually enforced (the configured capacity
    /// rounded down to a multiple of the shard count).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes held by the store, from the capacities of its tables and
    /// lists (excludes allocator overhead; see the `bytes_per_nonce` test
    /// for a process-RSS measurement).
    pub fn approximate_heap_bytes(&self) -> usize {
        let shards: usize = self.shards.iter().map(|s| lock(s).heap_bytes()).sum();
        let counts: usize = self.counts.iter().map(|c| lock(c).heap_bytes()).sum();
        shards + counts
    }

    fn shard(&self, entry: &Entry) -> MutexGuard<'_, Shard> {
        lock(self.shard_of(entry))
    }

    fn shard_of(&self, entry: &Entry) -> &Mutex<Shard> {
        // Bits 32.. of the keyed hash: independent of the low bits that
        // index the fingerprint table inside the shard.
        &self.shards[(entry.pair >> 32) as usize & self.mask]
    }

    /// Counts one more live nonce for `key`, expiring in `bucket`, unless
    /// the key is at its cap. The key's counts are first brought up to
    /// `current`, so the cap sees exactly the pairs that have not expired.
    fn acquire(&self, key: u64, current: u64, bucket: u64) -> Result<(), NonceStoreError> {
        let mut counts = lock(&self.counts[(key >> 32) as usize & self.mask]);
        counts.sweep(current);
        let bucket = counts.ring.admit(bucket).map_err(|_| ttl_too_long())?;
        // One lookup for the check and the increment. `per_key` is at least
        // 1, so a count just inserted as 0 never takes the error path (no
        // zero entry is left behind).
        let count = counts.live.entry(key).or_insert(0);
        if *count >= self.per_key {
            return Err(NonceStoreError::new(
                NonceStoreErrorKind::KeyFull,
                "this key has too many live nonces in the in-memory nonce store (per-key cap reached)",
            ));
        }
        *count += 1;
        *counts.ring.slot_mut(bucket).entry(key).or_insert(0) += 1;
        Ok(())
    }
}

fn ttl_too_long() -> NonceStoreError {
    NonceStoreError::new(
        NonceStoreErrorKind::TtlTooLong,
        "the nonce would outlive the store's max_ttl; raise max_ttl_secs or lower the window",
    )
}

// Lock order is always shard, then count shard. Each critical section
// leaves the tables consistent between operations, so a poisoned lock (a
// panic elsewhere while holding it) is still safe to keep using.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for MemoryNonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryNonceStore")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .field("per_key", &self.per_key)
            .field("granularity_secs", &self.granularity)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl NonceStore for MemoryNonceStore {
    async fn record(&self, record: NonceRecord<'_>) -> Result<NonceOutcome, NonceStoreError> {
        self.check_and_record(record)
    }

    fn record_now(&self, record: NonceRecord<'_>) -> Option<Result<NonceOutcome, NonceStoreError>> {
        Some(self.check_and_record(record))
    }

    async fn recorded(&self, key_id: &KeyId, nonce: &Nonce) -> Option<bool> {
        let entry = self.hasher.entry(key_id, nonce);
        Some(self.shard(&entry).contains(entry.pair))
    }

    /// This store's memory point ([`MemoryNonceStore::remembers_since`]).
    fn remembers_from(&self, now: u64) -> u64 {
        self.remembers_since(now)
    }

    /// Prefetches the slot of the pair's fingerprint in its shard's table
    /// (on x86 and x86-64 with SSE): with a few hundred thousand live pairs the
    /// tables outgrow the caches, and the check would otherwise wait for
    /// that miss. Takes the shard's lock only if it is free at once, to read
    /// where the table lies; reads no entry.
    fn prefetch(&self, key_id: &KeyId, nonce: &Nonce) {
        let entry = self.hasher.entry(key_id, nonce);
        let shard = match self.shard_of(&entry).try_lock() {
            Ok(shard) => shard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Busy: a hint never waits.
            Err(TryLockError::WouldBlock) => return,
        };
        shard.prefetch(entry.pair);
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::{KeyId, Nonce};

    use super::*;

    fn nonce(i: usize) -> Nonce {
        Nonce::new(format!("{i:0>22}")).expect("nonce")
    }

    fn key(s: &str) -> KeyId {
        KeyId::new(s).expect("key id")
    }

    /// A pair created at `created`, checked at `now`, kept for a 300 s
    /// window (until `created + 301`).
    fn check(
        store: &MemoryNonceStore,
        k: &KeyId,
        n: &Nonce,
        created: u64,
        now: u64,
    ) -> NonceOutcome {
        store
            .check_and_record(NonceRecord::new(k, n, created, now, created + 301))
            .expect("room")
    }

    /// The clock runs far ahead (the store expires the buckets it passes),
    /// then steps back: a pair accepted before, which the store may have
    /// dropped while it is still within its window on the corrected clock,
    /// is refused as forgotten (never accepted again), for as long as it
    /// could be replayed; a pair whose expiry lies in a bucket still kept
    /// is checked as usual.
    #[test]
    fn a_clock_that_steps_back_never_makes_the_store_forget_silently() {
        const T0: u64 = 1_700_000_000;
        for ahead in [304, 400, 3_600] {
            let store = MemoryNonceStore::builder()
                .shards(1)
                .remembers_since(0)
                .build();
            let k = key("k");
            let captured = nonce(1);
            assert_eq!(check(&store, &k, &captured, T0, T0), NonceOutcome::Fresh);
            assert_eq!(check(&store, &k, &captured, T0, T0), NonceOutcome::Replayed);
            // Requests while the clock is ahead: the store sweeps past T0 + 301.
            for i in 2..50 {
                let now = T0 + ahead;
                assert_eq!(check(&store, &k, &nonce(i), now, now), NonceOutcome::Fresh);
            }
            store.expire(T0 + ahead);
            // Corrected: 20 s after T0, the captured request is within its window.
            match check(&store, &k, &captured, T0, T0 + 20) {
                NonceOutcome::Forgotten { since } => {
                    assert!(since > T0, "{ahead}: since {since}");
                    // Nothing the store may have dropped is vouched for.
                    let granularity = store.granularity;
                    assert!(
                        since >= T0 + ahead - 301 - granularity,
                        "{ahead}: since {since}"
                    );
                }
                other => {
                    panic!("{ahead}: a captured request after the clock stepped back: {other:?}")
                }
            }
            // The pairs recorded while the clock was ahead are still there.
            let now = T0 + 20;
            assert_eq!(
                check(&store, &k, &nonce(2), T0 + ahead, now),
                NonceOutcome::Replayed,
                "{ahead}"
            );
            // A new signature whose expiry lies beyond what was swept is
            // checked as usual; one whose expiry was swept is refused as
            // forgotten until then.
            let fresh = check(&store, &k, &nonce(100), now, now);
            if now + 301 >= T0 + ahead + store.granularity {
                assert_eq!(fresh, NonceOutcome::Fresh, "{ahead}");
            } else {
                assert!(
                    matches!(fresh, NonceOutcome::Forgotten { .. }),
                    "{ahead}: {fresh:?}"
                );
            }
        }
    }

    /// A small step back (less than the window) refuses only what the
    /// store may have dropped: new signatures are unaffected.
    #[test]
    fn a_small_step_back_leaves_new_signatures_alone() {
        const T0: u64 = 1_700_000_000;
        let store = MemoryNonceStore::builder()
            .shards(1)
            .remembers_since(0)
            .build();
        let k = key("k");
        assert_eq!(
            check(&store, &k, &nonce(1), T0 + 60, T0 + 60),
            NonceOutcome::Fresh
        );
        for i in 2..10 {
            assert_eq!(
                check(&store, &k, &nonce(i), T0 + 60, T0 + 60),
                NonceOutcome::Fresh
            );
        }
        // 30 s back: every new signature expires far beyond what was swept.
        for i in 10..20 {
            assert_eq!(
                check(&store, &k, &nonce(i), T0 + 30, T0 + 30),
                NonceOutcome::Fresh
            );
        }
        assert_eq!(
            check(&store, &k, &nonce(1), T0 + 60, T0 + 30),
            NonceOutcome::Replayed
        );
    }

    #[test]
    fn fresh_then_replayed_until_expiry() {
        // One shard: expiry is lazy per shard, and `len` counts what is held.
        let store = MemoryNonceStore::builder()
            .shards(1)
            .max_ttl_secs(1000)
            .remembers_since(0)
            .build();
        let (k, n) = (key("k"), nonce(1));
        let rec = |now| NonceRecord::new(&k, &n, now, now, 1_601);
        let recorded = |nonce: &Nonce| {
            futures_util::FutureExt::now_or_never(store.recorded(&k, nonce))
                .expect("answers at once")
        };
        assert_eq!(recorded(&n), Some(false));
        assert_eq!(
            store.check_and_record(rec(1_000)).ok(),
            Some(NonceOutcome::Fresh)
        );
        assert_eq!(recorded(&n), Some(true));
        assert_eq!(recorded(&nonce(2)), Some(false));
        for now in [1_000, 1_300, 1_600] {
            assert_eq!(
                store.check_and_record(rec(now)).ok(),
                Some(NonceOutcome::Replayed),
                "{now}"
            );
        }
        // Once expires_at has passed, the pair is forgotten.
        let other = nonce(2);
        let _ = store.check_and_record(NonceRecord::new(&k, &other, 1_602, 1_602, 2_000));
        assert_eq!(store.len(), 1);
        // Another key with the same nonce is a different pair.
        let k2 = key("k2");
        assert_eq!(
            store
                .check_and_record(NonceRecord::new(&k2, &other, 1_602, 1_602, 2_000))
                .ok(),
            Some(NonceOutcome::Fresh)
        );
    }

    #[test]
    fn full_store_fails_closed_and_recovers_after_expiry() {
        let store = MemoryNonceStore::builder()
            .shards(1)
            .capacity(4)
            .max_ttl_secs(100)
            .remembers_since(0)
            .build();
        let k = key("k");
        let nonces: Vec<_> = (0..10).map(nonce).collect();
        let mut fresh = 0;
        let mut full = 0;
        for n in &nonces {
            match store.check_and_record(NonceRecord::new(&k, n, 10, 10, 20)) {
                Ok(NonceOutcome::Fresh) => fresh += 1,
                Err(e) if e.kind() == NonceStoreErrorKind::Full => full += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(fresh, 4);
        assert_eq!(fresh + full, 10);
        assert!(store.len() <= store.capacity());
        // After expiry there is room again.
        let late = nonce(99);
        assert_eq!(
            store
                .check_and_record(NonceRecord::new(&k, &late, 21, 21, 30))
                .ok(),
            Some(NonceOutcome::Fresh)
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn per_key_cap_and_ttl_limit() {
        let store = MemoryNonceStore::builder()
            .per_key_capacity(3)
            .max_ttl_secs(100)
            .remembers_since(0)
            .build();
        let (a, b) = (key("a"), key("b"));
        for i in 0..3 {
            let n = nonce(i);
            assert!(store
                .check_and_record(NonceRecord::new(&a, &n, 0, 0, 50))
                .is_ok());
        }
        let n = nonce(3);
        let err = store
            .check_and_record(NonceRecord::new(&a, &n, 0, 0, 50))
            .expect_err("key full");
        assert_eq!(err.kind(), NonceStoreErrorKind::KeyFull);
        assert!(store
            .check_and_record(NonceRecord::new(&b, &n, 0, 0, 50))
            .is_ok());
        let err = store
            .check_and_record(NonceRecord::new(&b, &nonce(7), 0, 0, 10_000))
            .expect_err("ttl");
        assert_eq!(err.kind(), NonceStoreErrorKind::TtlTooLong);
        // Expiry releases the per-key budget.
        assert!(store
            .check_and_record(NonceRecord::new(&a, &n, 51, 51, 90))
            .is_ok());
    }

    #[test]
    fn long_idle_period_expires_everything() {
        let store = MemoryNonceStore::builder()
            .shards(1)
            .max_ttl_secs(100)
            .remembers_since(0)
            .build();
        let k = key("k");
        for i in 0..50 {
            let n = nonce(i);
            let _ = store.check_and_record(NonceRecord::new(
                &k,
                &n,
                1_000,
                1_000,
                1_000 + (i as u64 % 90) + 1,
            ));
        }
        assert_eq!(store.len(), 50);
        let n = nonce(1_000);
        let _ = store.check_and_record(NonceRecord::new(&k, &n, 1_000_000, 1_000_000, 1_000_050));
        assert_eq!(store.len(), 1);
        assert!(store.approximate_heap_bytes() > 0);
    }

    #[test]
    fn a_large_expired_bucket_is_removed_over_later_writes() {
        let store = MemoryNonceStore::builder()
            .shards(1)
            .capacity(1_000)
            .max_ttl_secs(100)
            .remembers_since(0)
            .build();
        let k = key("k");
        for i in 0..500 {
            let n = nonce(i);
            let _ = store.check_and_record(NonceRecord::new(&k, &n, 10, 10, 20));
        }
        assert_eq!(store.len(), 500);
        // The bucket has passed: each write removes a bounded number.
        let mut held = Vec::new();
        for i in 0..4 {
            let n = nonce(10_000 + i);
            let _ = store.check_and_record(NonceRecord::new(&k, &n, 30, 30, 40));
            held.push(store.len());
        }
        assert!(held[0] > 400, "{held:?}");
        assert!(held.windows(2).all(|w| w[1] < w[0]), "{held:?}");
        // The expired pairs are never answered as replays of new requests
        // (their pairs differ) and `expire` removes the rest at once.
        store.expire(30);
        assert_eq!(store.len(), 4);
        // A store at capacity removes the waiting pairs before refusing.
        let full = MemoryNonceStore::builder()
            .shards(1)
            .capacity(300)
            .max_ttl_secs(100)
            .remembers_since(0)
            .build();
        for i in 0..300 {
            let n = nonce(i);
            let _ = full.check_and_record(NonceRecord::new(&k, &n, 10, 10, 20));
        }
        assert_eq!(full.len(), 300);
        for i in 0..300 {
            let n = nonce(1_000 + i);
            assert_eq!(
                full.check_and_record(NonceRecord::new(&k, &n, 30, 30, 40))
                    .ok(),
                Some(NonceOutcome::Fresh),
                "{i}"
            );
        }
    }

    #[test]
    fn prefetch_changes_nothing_and_never_waits_for_a_held_shard() {
        let store = MemoryNonceStore::builder()
            .shards(1)
            .remembers_since(0)
            .build();
        let (k, n) = (key("k"), nonce(1));
        // On an empty store (no table yet), then on a filled one.
        store.prefetch(&k, &n);
        for i in 2..100 {
            let other = nonce(i);
            let _ = store.check_and_record(NonceRecord::new(&k, &other, 10, 10, 20));
        }
        store.prefetch(&k, &n);
        assert_eq!(store.len(), 98, "a prefetch records nothing");
        let rec = NonceRecord::new(&k, &n, 10, 10, 20);
        assert_eq!(store.check_and_record(rec).ok(), Some(NonceOutcome::Fresh));
        store.prefetch(&k, &n);
        assert_eq!(
            store.check_and_record(rec).ok(),
            Some(NonceOutcome::Replayed)
        );
        assert_eq!(store.len(), 99);

        // With the shard locked elsewhere, a prefetch returns at once
        // rather than waiting for it (a thread, so a wait fails the test
        // instead of hanging it).
        let store = std::sync::Arc::new(store);
        let held = lock(&store.shards[0]);
        let (done, finished) = std::sync::mpsc::channel();
        let prefetching = std::sync::Arc::clone(&store);
        let thread = std::thread::spawn(move || {
            prefetching.prefetch(&key("k"), &nonce(5));
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(10));
        drop(held);
        thread.join().expect("prefetch thread");
        assert!(waited.is_ok(), "the prefetch waited for the shard's lock");

        // A shard poisoned by a panic elsewhere: the hint still works, and
        // the store goes on answering (as every lock of it does).
        let poisoning = std::sync::Arc::clone(&store);
        let _ = std::thread::spawn(move || {
            let _held = lock(&poisoning.shards[0]);
            panic!("poison the shard");
        })
        .join();
        assert!(store.shards[0].is_poisoned());
        store.prefetch(&k, &nonce(6));
        let rec = NonceRecord::new(&k, &n, 10, 10, 20);
        assert_eq!(
            store.check_and_record(rec).ok(),
            Some(NonceOutcome::Replayed)
        );
    }
}
