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
//! decision's refusal unrememberable (the refund generation of the
//! subject's shard, below), and the subject is forgotten before and after
//! the store gives the charge back, even if the refund is cancelled half
//! way ([`Refunding`]).
//!
//! An entry stops mattering once a request of cost 1 would be admitted on
//! its `tat` (`tat − (B − 1)·T`): it is dropped when met after that, and
//! the whole table once the latest such time has passed, so that while
//! nobody is over their budget a lookup costs one atomic load (two and a
//! clock reading until the table is emptied).

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

/// A remembered refusal: the `tat` it found, and when it stops mattering.
#[derive(Clone, Copy)]
struct Entry {
    tat: u64,
    /// When a request of cost 1 is admitted again on `tat`.
    until: u64,
}

/// Refused subjects and their theoretical arrival time (µs).
pub(crate) struct Held {
    /// Keyed by a keyed hash of (plan, kind, id) ([`Held::key`]), as the
    /// memory store keys its state: no allocation per lookup.
    shards: [Mutex<HashMap<u64, Entry, PassThrough>>; SHARDS],
    /// Per shard, refunds begun and ended: a refusal decided while one was
    /// under way may report a `tat` the refund then lowers, so it is not
    /// remembered ([`Held::generation`], [`Held::hold`]).
    refunds: [AtomicU64; SHARDS],
    /// Entries in all shards, read without a lock.
    len: AtomicUsize,
    /// The latest `until` held: once it has passed, nothing held matters.
    latest: AtomicU64,
    keys: SubjectKeys,
}

impl Held {
    pub(crate) fn new() -> Self {
        Held {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            refunds: std::array::from_fn(|_| AtomicU64::new(0)),
            len: AtomicUsize::new(0),
            latest: AtomicU64::new(0),
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

    /// The table's key for `subject` under `plan`: computed once per
    /// decision and passed to the methods below.
    pub(crate) fn key(&self, plan: &Plan, subject: Subject<'_>) -> u64 {
        self.keys.key(plan, subject)
    }

    /// The refund generation of `key`'s shard, read before the store
    /// decides: a refusal is remembered only if no refund of a subject in
    /// that shard began or ended since.
    pub(crate) fn generation(&self, key: u64) -> u64 {
        self.refunds[shard_index(key)].load(Ordering::SeqCst)
    }

    /// The remembered arrival time of `key`, if it still matters at `now`
    /// (an entry that no longer does is dropped).
    pub(crate) fn get(&self, key: u64, now: u64) -> Option<u64> {
        if self.is_clear(now) {
            return None;
        }
        let mut shard = self.shard(key);
        let entry = *shard.get(&key)?;
        if entry.until > now {
            return Some(entry.tat);
        }
        shard.remove(&key);
        self.len.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Remembers that `key` was refused under `plan`, the store holding
    /// `tat`, unless a refund in its shard began or ended since
    /// `generation` was read.
    pub(crate) fn hold(&self, key: u64, plan: &Plan, tat: u64, now: u64, generation: u64) {
        let interval = plan.rate().interval_micros().max(1);
        let until =
            tat.saturating_sub(interval.saturating_mul(u64::from(plan.burst()).saturating_sub(1)));
        if until <= now {
            return;
        }
        let mut shard = self.shard(key);
        // Checked under the shard's lock, which the refund's forget takes
        // after it moved the generation ([`Held::refunding`]).
        if self.generation(key) != generation {
            return;
        }
        if !shard.contains_key(&key) {
            if self.len.load(Ordering::Acquire) >= MAX_HELD {
                let before = shard.len();
                shard.retain(|_, held| held.until > now);
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
        shard.insert(key, Entry { tat, until });
        self.latest.fetch_max(until, Ordering::AcqRel);
    }

    /// Forgets `key`: it was admitted, so its budget is not exhausted.
    pub(crate) fn forget(&self, key: u64) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        self.remove(key);
    }

    /// A refund of `key` begins: its shard's generation moves and the key
    /// is forgotten now, and again when the returned guard is dropped (the
    /// refund has ended, or was cancelled half way), so that no refusal
    /// decided before the refund landed in the store is remembered.
    pub(crate) fn refunding(&self, key: u64) -> Refunding<'_> {
        self.moved(key);
        Refunding { held: self, key }
    }

    /// Moves `key`'s shard generation, then forgets `key`: a [`Held::hold`]
    /// that checked the generation before it moved has inserted by the time
    /// the key is forgotten; one that checks after sees it moved.
    fn moved(&self, key: u64) {
        self.refunds[shard_index(key)].fetch_add(1, Ordering::SeqCst);
        self.remove(key);
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
            shard.retain(|_, held| held.until > now);
            self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Entry, PassThrough>> {
        lock(&self.shards[shard_index(key)])
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

/// The top bits: the map inside a shard uses the low ones.
fn shard_index(key: u64) -> usize {
    (key >> 60) as usize % SHARDS
}

/// A refund under way ([`Held::refunding`]): when dropped, moves the
/// generation and forgets the key again.
pub(crate) struct Refunding<'a> {
    held: &'a Held,
    key: u64,
}

impl Drop for Refunding<'_> {
    fn drop(&mut self) {
        self.held.moved(self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section leaves the map consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 a second, bursts of 1: a refusal's `tat` stops mattering at `tat`.
    fn plan(name: &str) -> Plan {
        Plan::new(name, "1/s".parse().expect("rate"), 1).expect("plan")
    }

    #[test]
    fn remembers_per_plan_and_subject_and_forgets() {
        let held = Held::new();
        let (p, now) = (plan("p"), 1_000_000);
        let a = held.key(
            &p,
            Subject {
                kind: "key",
                id: "a",
            },
        );
        assert!(held.is_clear(now));
        assert_eq!(held.get(a, now), None);
        held.hold(a, &p, 5_000_000, now, held.generation(a));
        assert!(!held.is_clear(now));
        assert_eq!(held.get(a, now), Some(5_000_000));
        for other in [
            held.key(
                &plan("q"),
                Subject {
                    kind: "key",
                    id: "a",
                },
            ),
            held.key(
                &p,
                Subject {
                    kind: "key",
                    id: "b",
                },
            ),
            held.key(
                &p,
                Subject {
                    kind: "owner",
                    id: "a",
                },
            ),
        ] {
            assert_ne!(other, a);
            assert_eq!(held.get(other, now), None);
        }
        // The store's latest answer replaces what was held.
        held.hold(a, &p, 4_000_000, now, held.generation(a));
        assert_eq!(held.get(a, now), Some(4_000_000));
        held.forget(a);
        assert_eq!(held.get(a, now), None);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn an_entry_goes_once_a_request_of_cost_one_would_pass() {
        let held = Held::new();
        // 1 a second, bursts of 10: a `tat` 10 s ahead admits a request of
        // cost 1 again 1 s on, so it is remembered for 1 s, not 10.
        let p = Plan::new("p", "1/s".parse().expect("rate"), 10).expect("plan");
        let a = held.key(
            &p,
            Subject {
                kind: "key",
                id: "a",
            },
        );
        let b = held.key(
            &p,
            Subject {
                kind: "key",
                id: "b",
            },
        );
        held.hold(a, &p, 11_000_000, 1_000_000, held.generation(a));
        held.hold(b, &p, 12_000_000, 1_000_000, held.generation(b));
        assert_eq!(held.get(a, 1_999_999), Some(11_000_000));
        // Met after that time: dropped.
        assert_eq!(held.get(a, 2_000_000), None);
        assert_eq!(held.len(), 1);
        // Once the latest such time has passed, the table is clear, and emptied.
        assert!(!held.is_clear(2_999_999));
        assert!(held.is_clear(3_000_000));
        assert_eq!(held.get(b, 3_000_000), None);
        held.clear_if_passed(3_000_000);
        assert!(held.is_empty());
        // A refusal whose time has already passed is not remembered.
        held.hold(a, &p, 12_000_000, 3_000_000, held.generation(a));
        assert!(held.is_empty());
    }

    #[test]
    fn a_refusal_decided_during_a_refund_is_not_remembered() {
        let held = Held::new();
        let p = plan("p");
        let a = held.key(
            &p,
            Subject {
                kind: "key",
                id: "a",
            },
        );
        // Decided before the refund began, remembered after it began.
        let before = held.generation(a);
        let refund = held.refunding(a);
        held.hold(a, &p, 9_000_000, 1_000_000, before);
        assert_eq!(held.get(a, 1_000_000), None);
        // Decided while it was under way, remembered after it ended.
        let during = held.generation(a);
        drop(refund);
        held.hold(a, &p, 9_000_000, 1_000_000, during);
        assert_eq!(held.get(a, 1_000_000), None);
        // Remembered while it was under way: forgotten when it ends, or
        // when it is cancelled (the guard dropped half way).
        let refund = held.refunding(a);
        held.hold(a, &p, 9_000_000, 1_000_000, held.generation(a));
        assert_eq!(held.get(a, 1_000_000), Some(9_000_000));
        drop(refund);
        assert_eq!(held.get(a, 1_000_000), None);
        // Decided after it ended: remembered.
        held.hold(a, &p, 9_000_000, 1_000_000, held.generation(a));
        assert_eq!(held.get(a, 1_000_000), Some(9_000_000));
        // A refund of a subject in another shard does not stop it.
        let other = (0..)
            .map(|i: u32| {
                held.key(
                    &p,
                    Subject {
                        kind: "key",
                        id: &i.to_string(),
                    },
                )
            })
            .find(|k| shard_index(*k) != shard_index(a))
            .expect("another shard");
        let generation = held.generation(a);
        drop(held.refunding(other));
        held.hold(a, &p, 9_500_000, 1_000_000, generation);
        assert_eq!(held.get(a, 1_000_000), Some(9_500_000));
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let held = Held::new();
        let p = plan("p");
        let ids: Vec<String> = (0..=MAX_HELD).map(|i| i.to_string()).collect();
        for id in &ids[..MAX_HELD] {
            let key = held.key(&p, Subject { kind: "key", id });
            held.hold(key, &p, 2_000_000, 1_000_000, 0);
        }
        assert_eq!(held.len(), MAX_HELD);
        let last = held.key(
            &p,
            Subject {
                kind: "key",
                id: &ids[MAX_HELD],
            },
        );
        // Full of live entries: the newcomer is not remembered.
        held.hold(last, &p, 2_000_000, 1_000_000, 0);
        assert_eq!(held.get(last, 1_000_000), None);
        assert_eq!(held.len(), MAX_HELD);
        // Once those have passed, they make room.
        held.hold(last, &p, 9_000_000, 3_000_000, 0);
        assert_eq!(held.get(last, 3_000_000), Some(9_000_000));
        assert!(held.len() < MAX_HELD);
    }
}
