//! Subjects the limiter has refused and that are still over their budget,
//! remembered in this process so that their next requests are refused
//! before their bodies are read (spec §12.5).
//!
//! The state of record stays in the [`crate::RateStore`]; this table only
//! keeps, for each refused (plan, subject), the theoretical arrival time
//! that its last refusal reported. `tat` never moves back except by a
//! refund, so a remembered value is at most the store's: a request that
//! [`crate::decide`] refuses on it would be refused by the store too
//! (unless another instance gave a charge back in between, which the spec
//! allows for: the request is then refused with a short `Retry-After`,
//! never admitted wrongly). A refund made here forgets the subject.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::plan::Plan;
use crate::store::Subject;
use crate::subject_key::{PassThrough, SubjectKeys};

/// At most this many subjects are remembered; beyond it, a refused subject
/// is not remembered until expired ones are dropped, and its requests are
/// decided after their bodies, as without this table.
pub(crate) const MAX_HELD: usize = 65_536;

/// Refused subjects and their theoretical arrival time (µs).
pub(crate) struct Held {
    /// Keyed by a keyed hash of (plan, kind, id), as the memory store keys
    /// its state: no allocation per lookup, and collisions are as unlikely
    /// as there.
    map: Mutex<HashMap<u64, u64, PassThrough>>,
    /// Entries in `map`, read without the lock: while nobody is held (the
    /// usual case), a lookup costs one atomic load.
    len: AtomicUsize,
    keys: SubjectKeys,
}

impl Held {
    pub(crate) fn new() -> Self {
        Held {
            map: Mutex::new(HashMap::default()),
            len: AtomicUsize::new(0),
            keys: SubjectKeys::random(),
        }
    }

    fn key(&self, plan: &Plan, subject: Subject<'_>) -> u64 {
        self.keys.key(plan, subject)
    }

    /// Whether no subject is remembered (one atomic load).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// The remembered arrival time of `subject` under `plan`, if any.
    pub(crate) fn get(&self, plan: &Plan, subject: Subject<'_>) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let key = self.key(plan, subject);
        self.lock().get(&key).copied()
    }

    /// Remembers that `subject` was refused under `plan` with arrival time
    /// `tat`, dropping entries that are no longer ahead of `now`.
    pub(crate) fn hold(&self, plan: &Plan, subject: Subject<'_>, tat: u64, now: u64) {
        let key = self.key(plan, subject);
        let mut map = self.lock();
        if map.len() >= MAX_HELD && !map.contains_key(&key) {
            map.retain(|_, held| *held > now);
            if map.len() >= MAX_HELD {
                tracing::debug!("tessera: too many rate-limited subjects to remember; this one is decided after its body");
                return;
            }
        }
        let held = map.entry(key).or_insert(tat);
        *held = (*held).max(tat);
        self.len.store(map.len(), Ordering::Relaxed);
    }

    /// Forgets `subject` under `plan` (its budget came back, or its
    /// remembered time has passed).
    pub(crate) fn forget(&self, plan: &Plan, subject: Subject<'_>) {
        if self.is_empty() {
            return;
        }
        let key = self.key(plan, subject);
        let mut map = self.lock();
        map.remove(&key);
        self.len.store(map.len(), Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, u64, PassThrough>> {
        // Each critical section leaves the map consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        let a = Subject {
            kind: "key",
            id: "a",
        };
        let b = Subject {
            kind: "key",
            id: "b",
        };
        assert_eq!(held.get(&plan("p"), a), None);
        held.hold(&plan("p"), a, 5_000_000, 1_000_000);
        assert_eq!(held.get(&plan("p"), a), Some(5_000_000));
        assert_eq!(held.get(&plan("q"), a), None, "another plan");
        assert_eq!(held.get(&plan("p"), b), None, "another subject");
        assert_eq!(
            held.get(
                &plan("p"),
                Subject {
                    kind: "owner",
                    id: "a"
                }
            ),
            None,
            "another kind"
        );
        // A later refusal with an earlier time does not move it back.
        held.hold(&plan("p"), a, 4_000_000, 1_000_000);
        assert_eq!(held.get(&plan("p"), a), Some(5_000_000));
        held.forget(&plan("p"), a);
        assert_eq!(held.get(&plan("p"), a), None);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let held = Held::new();
        let p = plan("p");
        let ids: Vec<String> = (0..=MAX_HELD).map(|i| i.to_string()).collect();
        for id in &ids[..MAX_HELD] {
            held.hold(&p, Subject { kind: "key", id }, 2_000_000, 1_000_000);
        }
        assert_eq!(held.len(), MAX_HELD);
        let last = Subject {
            kind: "key",
            id: &ids[MAX_HELD],
        };
        // Full of live entries: the newcomer is not remembered.
        held.hold(&p, last, 2_000_000, 1_000_000);
        assert_eq!(held.get(&p, last), None);
        assert_eq!(held.len(), MAX_HELD);
        // Once those have passed, they make room.
        held.hold(&p, last, 9_000_000, 3_000_000);
        assert_eq!(held.get(&p, last), Some(9_000_000));
        assert_eq!(held.len(), 1);
    }
}
