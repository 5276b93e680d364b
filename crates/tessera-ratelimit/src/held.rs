//! Subjects this limiter has refused and that are still over their budget,
//! remembered so that their next requests are refused before their bodies
//! are read (spec §12.5).
//!
//! The state of record stays in the [`crate::RateStore`]; this table only
//! keeps, for each refused (plan, subject), the theoretical arrival time
//! (`tat`, µs) that its last refusal found. `tat` moves back only by a
//! refund, so a remembered value is at most the store's, with three
//! exceptions the spec names: a refund made by another instance, a store
//! that lost the subject's state (a Redis eviction or failover), and a
//! store that cannot answer (failing open, the limiter admits, while a
//! remembered refusal still refuses until its time has passed). Refunds
//! made by this limiter are exact: one that overlaps a decision makes that
//! decision's refusal unrememberable (the refund generation below), and the
//! subject is forgotten before and after the store gives the charge back.
//!
//! An entry stops mattering once its `tat` has passed: it is dropped when
//! met, and the whole table once the latest `tat` it holds has passed, so
//! that while nobody is over their budget a lookup costs one atomic load
//! (two and a clock reading until the table is emptied).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::plan::Plan;
use crate::store::Subject;
use crate::subject_key::{PassThrough, SubjectKeys};

/// At most this many subjects are remembered; beyond it, a refused subject
/// is not remembered until expired ones are dropped, and its requests are
/// decided after their bodies, as without this table.
pub(crate) const MAX_HELD: usize = 65_536;

/// Independently locked parts of the table.
const SHARDS: usize = 16;

/// Refused subjects and their theoretical arrival time (µs).
pub(crate) struct Held {
    /// Keyed by a keyed hash of (plan, kind, id), as the memory store keys
    /// its state: no allocation per lookup.
    shards: [Mutex<HashMap<u64, u64, PassThrough>>; SHARDS],
    /// Entries in all shards, read without a lock.
    len: AtomicUsize,
    /// The latest `tat` held: once it has passed, nothing held matters.
    latest: AtomicU64,
    /// Counts refunds begun and ended: a refusal decided while one was
    /// under way may report a `tat` the refund then lowers, so it is not
    /// remembered ([`Held::generation`], [`Held::hold`]).
    refunds: AtomicU64,
    keys: SubjectKeys,
}

impl Held {
    pub(crate) fn new() -> Self {
        Held {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            len: AtomicUsize::new(0),
            latest: AtomicU64::new(0),
            refunds: AtomicU64::new(0),
            keys: SubjectKeys::random(),
        }
    }

    /// Whether nothing is remembered (one atomic load).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Whether nothing remembered can refuse a request at `now`.
    pub(crate) fn is_clear(&self, now: u64) -> bool {
        self.len.load(Ordering::Acquire) == 0 || now >= self.latest.load(Ordering::Acquire)
    }

    /// The refund generation, read before the store decides: a refusal is
    /// remembered only if no refund began or ended since.
    pub(crate) fn generation(&self) -> u64 {
        self.refunds.load(Ordering::SeqCst)
    }

    /// The remembered arrival time of `subject` under `plan`, if it is
    /// still ahead of `now` (entries behind it are dropped).
    pub(crate) fn get(&self, plan: &Plan, subject: Subject<'_>, now: u64) -> Option<u64> {
        if self.is_clear(now) {
            return None;
        }
        let key = self.keys.key(plan, subject);
        let mut shard = self.shard(key);
        let tat = *shard.get(&key)?;
        if tat > now {
            return Some(tat);
        }
        shard.remove(&key);
        self.len.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Remembers that `subject` was refused under `plan`, the store holding
    /// `tat`, unless a refund began or ended since `generation` was read.
    pub(crate) fn hold(
        &self,
        plan: &Plan,
        subject: Subject<'_>,
        tat: u64,
        now: u64,
        generation: u64,
    ) {
        if tat <= now {
            return;
        }
        let key = self.keys.key(plan, subject);
        let mut shard = self.shard(key);
        // Checked under the shard's lock, which the refund's forget takes
        // after it moved the generation ([`Held::refunding`]).
        if self.refunds.load(Ordering::SeqCst) != generation {
            return;
        }
        if !shard.contains_key(&key) {
            if self.len.load(Ordering::Acquire) >= MAX_HELD {
                let before = shard.len();
                shard.retain(|_, held| *held > now);
                self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
                if self.len.load(Ordering::Acquire) >= MAX_HELD {
                    tracing::debug!("tessera: too many rate-limited subjects to remember; this one is decided after its body");
                    return;
                }
            }
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        // The store's latest answer, even if lower than what was held: a
        // lower `tat` only comes from a refund, and the store is the record.
        shard.insert(key, tat);
        self.latest.fetch_max(tat, Ordering::AcqRel);
    }

    /// Forgets `subject` under `plan`: it was admitted, so its budget is
    /// not exhausted.
    pub(crate) fn forget(&self, plan: &Plan, subject: Subject<'_>) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        self.remove(self.keys.key(plan, subject));
    }

    /// Around a refund of `subject` under `plan`: moves the generation,
    /// then forgets the subject, so that no refusal decided before the
    /// refund landed in the store is remembered (called when the refund
    /// begins and again when it has ended). A [`Held::hold`] that checked
    /// the generation before it moved has inserted by the time the
    /// subject is forgotten; one that checks after sees it moved.
    pub(crate) fn refunding(&self, plan: &Plan, subject: Subject<'_>) {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        self.remove(self.keys.key(plan, subject));
    }

    fn remove(&self, key: u64) {
        if self.shard(key).remove(&key).is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Empties the table once the latest `tat` it held has passed.
    pub(crate) fn clear_if_passed(&self, now: u64) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        for shard in &self.shards {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(|_, held| *held > now);
            self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, u64, PassThrough>> {
        // The top bits: the map inside a shard uses the low ones.
        lock(&self.shards[(key >> 60) as usize % SHARDS])
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section leaves the map consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> Plan {
        Plan::new(name, "1/s".parse().expect("rate"), 1).expect("plan")
    }

    #[test]
    fn remembers_per_plan_and_subject_and_forgets() {
        let held = Held::new();
        let (p, now) = (plan("p"), 1_000_000);
        let a = Subject {
            kind: "key",
            id: "a",
        };
        let b = Subject {
            kind: "key",
            id: "b",
        };
        assert!(held.is_clear(now));
        assert_eq!(held.get(&p, a, now), None);
        held.hold(&p, a, 5_000_000, now, held.generation());
        assert!(!held.is_clear(now));
        assert_eq!(held.get(&p, a, now), Some(5_000_000));
        assert_eq!(held.get(&plan("q"), a, now), None, "another plan");
        assert_eq!(held.get(&p, b, now), None, "another subject");
        assert_eq!(
            held.get(
                &p,
                Subject {
                    kind: "owner",
                    id: "a"
                },
                now
            ),
            None,
            "another kind"
        );
        // The store's latest answer replaces what was held.
        held.hold(&p, a, 4_000_000, now, held.generation());
        assert_eq!(held.get(&p, a, now), Some(4_000_000));
        held.forget(&p, a);
        assert_eq!(held.get(&p, a, now), None);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn entries_go_once_their_time_has_passed() {
        let held = Held::new();
        let p = plan("p");
        let a = Subject {
            kind: "key",
            id: "a",
        };
        let b = Subject {
            kind: "key",
            id: "b",
        };
        held.hold(&p, a, 2_000_000, 1_000_000, held.generation());
        held.hold(&p, b, 3_000_000, 1_000_000, held.generation());
        // Met after its time: dropped.
        assert_eq!(held.get(&p, a, 2_000_000), None);
        assert_eq!(held.len(), 1);
        // Once the latest time has passed, the table is clear, and emptied.
        assert!(!held.is_clear(2_999_999));
        assert!(held.is_clear(3_000_000));
        assert_eq!(held.get(&p, b, 3_000_000), None);
        held.clear_if_passed(3_000_000);
        assert_eq!(held.len(), 0);
        assert!(held.is_empty());
        // A time already passed is not remembered.
        held.hold(&p, a, 3_000_000, 3_000_000, held.generation());
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn a_refusal_decided_during_a_refund_is_not_remembered() {
        let held = Held::new();
        let p = plan("p");
        let a = Subject {
            kind: "key",
            id: "a",
        };
        // Decided before the refund began, remembered after it began.
        let before = held.generation();
        held.refunding(&p, a);
        held.hold(&p, a, 9_000_000, 1_000_000, before);
        assert_eq!(held.get(&p, a, 1_000_000), None);
        // Decided while the refund was under way, remembered after it ended.
        let during = held.generation();
        held.refunding(&p, a);
        held.hold(&p, a, 9_000_000, 1_000_000, during);
        assert_eq!(held.get(&p, a, 1_000_000), None);
        // Remembered before the refund ended: forgotten when it does.
        let during = held.generation();
        held.hold(&p, a, 9_000_000, 1_000_000, during);
        assert_eq!(held.get(&p, a, 1_000_000), Some(9_000_000));
        held.refunding(&p, a);
        assert_eq!(held.get(&p, a, 1_000_000), None);
        // Decided after the refund ended: remembered.
        held.hold(&p, a, 9_000_000, 1_000_000, held.generation());
        assert_eq!(held.get(&p, a, 1_000_000), Some(9_000_000));
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let held = Held::new();
        let p = plan("p");
        let ids: Vec<String> = (0..=MAX_HELD).map(|i| i.to_string()).collect();
        for id in &ids[..MAX_HELD] {
            held.hold(&p, Subject { kind: "key", id }, 2_000_000, 1_000_000, 0);
        }
        assert_eq!(held.len(), MAX_HELD);
        let last = Subject {
            kind: "key",
            id: &ids[MAX_HELD],
        };
        // Full of live entries: the newcomer is not remembered.
        held.hold(&p, last, 2_000_000, 1_000_000, 0);
        assert_eq!(held.get(&p, last, 1_000_000), None);
        assert_eq!(held.len(), MAX_HELD);
        // Once those have passed, they make room.
        held.hold(&p, last, 9_000_000, 3_000_000, 0);
        assert_eq!(held.get(&p, last, 3_000_000), Some(9_000_000));
        assert!(held.len() < MAX_HELD);
    }
}
