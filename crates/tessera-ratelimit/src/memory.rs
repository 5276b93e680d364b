//! The in-memory [`RateStore`]: one process, bounded, sharded.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::gcra::{decide, refund, Decision};
use crate::plan::Plan;
use crate::store::{RateStore, RateStoreError, Subject};
use crate::subject_key::{PassThrough, SubjectKeys};

/// Default bound on subjects with live state (about 40 MB when full).
pub const DEFAULT_MEMORY_CAPACITY: usize = 1_000_000;
const SHARDS: usize = 64;

/// Limits in process memory: exact GCRA per subject, for one instance (or
/// per-instance limits behind a load balancer). Replicas that must share a
/// budget use the Redis store.
///
/// Entries whose key is back to a full burst carry no information and are
/// dropped when their shard is swept (at most once per shard per second, and
/// whenever the shard is full), so memory follows the number of subjects
/// active within one burst period. When a shard is full of live entries,
/// decisions for new subjects fail ([`RateStoreError`]), which the limiter
/// handles by its failure mode.
pub struct MemoryRateStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    keys: SubjectKeys,
}

struct Shard {
    /// Keyed by a SipHash of (plan, kind, id): ids chosen by clients cannot
    /// aim at one bucket. The value: the GCRA state and when it stops mattering.
    entries: HashMap<u64, Entry, PassThrough>,
    swept_at: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    tat: u64,
    /// When the key is back to a full burst: the entry can go.
    idle_at: u64,
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        MemoryRateStore::new(DEFAULT_MEMORY_CAPACITY)
    }
}

impl MemoryRateStore {
    /// A store for at most `capacity` subjects with live state.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        MemoryRateStore {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::default(),
                        swept_at: 0,
                    })
                })
                .collect(),
            per_shard,
            keys: SubjectKeys::random(),
        }
    }

    /// Subjects with live state (entries not yet swept included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// Whether no subject has state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, subject: Subject<'_>, plan: &Plan) -> u64 {
        self.keys.key(plan, subject)
    }

    /// The synchronous form of [`RateStore::decide`].
    ///
    /// # Errors
    /// When the subject is new and its shard is full of live state.
    pub fn decide_now(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<Decision, RateStoreError> {
        let key = self.hash(subject, plan);
        let mut shard = lock(&self.shards[(key >> 58) as usize % SHARDS]);
        let stored = shard
            .entries
            .get(&key)
            .filter(|e| e.idle_at > now_micros)
            .map(|e| e.tat);
        let decision = decide(stored, now_micros, plan, cost);
        if decision.allowed {
            if stored.is_none() && shard.entries.len() >= self.per_shard {
                shard.sweep(now_micros);
                if shard.entries.len() >= self.per_shard {
                    return Err(RateStoreError::new(
                        "the in-memory rate limit store is full (every subject in this shard is active)",
                    ));
                }
            } else if now_micros.saturating_sub(shard.swept_at) >= 1_000_000 {
                shard.sweep(now_micros);
            }
            let idle_at = decision.tat;
            shard.entries.insert(
                key,
                Entry {
                    tat: decision.tat,
                    idle_at,
                },
            );
        }
        Ok(decision)
    }
}

impl MemoryRateStore {
    /// The synchronous form of [`RateStore::refund`].
    pub fn refund_now(&self, subject: Subject<'_>, plan: &Plan, cost: u32, now_micros: u64) {
        let key = self.hash(subject, plan);
        let mut shard = lock(&self.shards[(key >> 58) as usize % SHARDS]);
        if let Some(entry) = shard.entries.get_mut(&key) {
            let tat = refund(entry.tat, plan, cost);
            if tat <= now_micros {
                // Back to a full burst: nothing left to remember.
                shard.entries.remove(&key);
            } else {
                *entry = Entry { tat, idle_at: tat };
            }
        }
    }
}

impl Shard {
    fn sweep(&mut self, now: u64) {
        self.entries.retain(|_, e| e.idle_at > now);
        self.swept_at = now;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section leaves the map consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for MemoryRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateStore")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateStore for MemoryRateStore {
    async fn decide(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<Decision, RateStoreError> {
        self.decide_now(subject, plan, cost, now_micros)
    }

    async fn refund(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<(), RateStoreError> {
        self.refund_now(subject, plan, cost, now_micros);
        Ok(())
    }
}
