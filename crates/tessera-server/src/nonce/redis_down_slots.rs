//! Which hash slots of a Redis Cluster belong to a primary known to be down,
//! so that [`RedisNonceStore`](super::RedisNonceStore) refuses their checks
//! at once instead of holding each request for the whole timeout.
//!
//! One Redis has a store-wide down mark; a cluster cannot, since one
//! primary down must not refuse the slots of the others. A check that times
//! out (or loses its connection) marks its slot; a background probe then
//! widens the mark to every slot of that slot's primary (from
//! `CLUSTER SLOTS`) and pings the primary of the slot until it answers,
//! then clears what it marked. Each mark names the probe that set it, so
//! that a probe clears only its own marks (another probe may have marked a
//! slot again since).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// Down marks of the cluster's slots, shared by a store's clones.
pub(super) struct DownSlots {
    /// Per slot: 0 when up, else 1 + the slot whose probe marked it.
    marks: Box<[AtomicU16]>,
    /// Slots whose probe is running: one probe per slot at most.
    probing: Mutex<HashSet<u16>>,
}

impl std::fmt::Debug for DownSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let down = self
            .marks
            .iter()
            .filter(|mark| mark.load(Ordering::Relaxed) != 0)
            .count();
        f.debug_struct("DownSlots").field("down", &down).finish()
    }
}

impl DownSlots {
    pub(super) fn new() -> Self {
        DownSlots {
            marks: (0..SLOTS).map(|_| AtomicU16::new(0)).collect(),
            probing: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `slot`'s primary is known to be down.
    pub(super) fn is_down(&self, slot: u16) -> bool {
        self.marks
            .get(usize::from(slot))
            .is_some_and(|mark| mark.load(Ordering::Acquire) != 0)
    }

    /// Claims the probe of `slot`: `false` when one already runs, or when
    /// `slot` is already marked by another probe (that probe covers it).
    pub(super) fn start_probe(&self, slot: u16) -> bool {
        if self.is_down(slot) {
            return false;
        }
        self.probing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(slot)
    }

    /// Ends `probe`'s claim (see [`DownSlots::start_probe`]).
    pub(super) fn end_probe(&self, probe: u16) {
        self.probing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&probe);
    }

    /// Marks every slot of `ranges` (`(first, last)`, inclusive) down, as
    /// `probe`'s.
    pub(super) fn mark(&self, ranges: &[(u16, u16)], probe: u16) {
        let tag = probe.saturating_add(1);
        for slot in self.slots_of(ranges) {
            slot.store(tag, Ordering::Release);
        }
    }

    /// Clears the marks `probe` set in `ranges` (not those another probe
    /// set since).
    pub(super) fn clear(&self, ranges: &[(u16, u16)], probe: u16) {
        let tag = probe.saturating_add(1);
        for slot in self.slots_of(ranges) {
            let _ = slot.compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn slots_of<'a>(&'a self, ranges: &'a [(u16, u16)]) -> impl Iterator<Item = &'a AtomicU16> {
        ranges.iter().flat_map(move |&(first, last)| {
            let last = usize::from(last).min(SLOTS - 1);
            self.marks
                .get(usize::from(first)..=last)
                .unwrap_or_default()
                .iter()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DownSlots;

    #[test]
    fn a_probe_marks_and_clears_only_its_own_slots() {
        let down = DownSlots::new();
        assert!(down.start_probe(7));
        assert!(!down.start_probe(7), "one probe per slot");
        down.mark(&[(0, 99)], 7);
        assert!(down.is_down(0) && down.is_down(7) && down.is_down(99));
        assert!(!down.is_down(100));
        assert!(
            !down.start_probe(50),
            "a slot another probe marked is covered by it"
        );
        // Another probe marks part of the range again.
        assert!(down.start_probe(200));
        down.mark(&[(90, 200)], 200);
        down.clear(&[(0, 99)], 7);
        down.end_probe(7);
        assert!(!down.is_down(0) && !down.is_down(89));
        assert!(down.is_down(90) && down.is_down(99), "still the other's");
        down.clear(&[(90, 200)], 200);
        down.end_probe(200);
        assert!((0..16384).all(|slot| !down.is_down(slot)));
        assert!(down.start_probe(7), "claimable again");
    }

    #[test]
    fn out_of_range_slots_are_ignored() {
        let down = DownSlots::new();
        down.mark(&[(16000, u16::MAX), (300, 200)], 1);
        assert!(down.is_down(16383));
        assert!(!down.is_down(u16::MAX));
        assert!(!down.is_down(250), "an empty range marks nothing");
        down.clear(&[(16000, u16::MAX)], 1);
        assert!(!down.is_down(16383));
    }
}
