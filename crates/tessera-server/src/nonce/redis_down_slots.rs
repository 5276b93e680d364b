//! Which hash slots of a Redis Cluster belong to a primary known to be down,
//! so that [`RedisNonceStore`](super::RedisNonceStore) refuses their checks
//! at once instead of holding each request for the whole timeout.
//!
//! One Redis has a store-wide down mark; a cluster cannot, since one
//! primary down must not refuse the slots of the others. A check that times
//! out (or loses its connection) marks its slot; a background probe then
//! finds the slot's primary in the cluster's map and, if that node does not
//! answer either, marks every slot it owns and watches it (one probe per
//! node) until it answers; then clears what it marked. Each mark names the
//! probe that set it, so that a probe clears only its own marks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// A node of the cluster: host and port, as `CLUSTER SLOTS` names it.
pub(super) type Node = (String, u16);

/// One range of the cluster's map: first and last slot, and its primary.
pub(super) type Range = (u16, u16, Node);

/// Down marks of the cluster's slots, shared by a store's clones.
pub(super) struct DownSlots {
    /// Per slot: 0 when up, else 1 + the slot whose probe marked it.
    marks: Box<[AtomicU16]>,
    /// Probes running, by the slot that started each, and the nodes they
    /// watch (by node: one probe per node).
    probes: Mutex<Probes>,
    /// The cluster's map as last read, for asking its nodes directly.
    map: Mutex<Vec<Range>>,
    /// When a probe last warned that the map named no owner.
    warned: Mutex<Option<std::time::Instant>>,
}

#[derive(Default)]
struct Probes {
    slots: std::collections::HashSet<u16>,
    nodes: HashMap<Node, u16>,
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
            probes: Mutex::new(Probes::default()),
            map: Mutex::new(Vec::new()),
            warned: Mutex::new(None),
        }
    }

    fn probes(&self) -> std::sync::MutexGuard<'_, Probes> {
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `slot`'s primary is known to be down.
    pub(super) fn is_down(&self, slot: u16) -> bool {
        self.marks
            .get(usize::from(slot))
            .is_some_and(|mark| mark.load(Ordering::Acquire) != 0)
    }

    /// Marks `slot` down and claims its probe: `false` (nothing marked)
    /// when `slot` is already marked or its probe already runs.
    ///
    /// Every other slot of the primary that the remembered map names for
    /// `slot` is marked too, until the probe finds out whether that node
    /// answers ([`DownSlots::clear_suspected`]): the client may be sending
    /// them all to a node that is silent, which could answer them when it
    /// wakes. Slots another probe marked keep its mark.
    pub(super) fn start_probe(&self, slot: u16) -> bool {
        let mut probes = self.probes();
        if self.is_down(slot) || !probes.slots.insert(slot) {
            return false;
        }
        self.mark(&[(slot, slot)], slot);
        let tag = slot.saturating_add(1);
        for (first, last) in self.suspected(slot) {
            for mark in self.range(first, last) {
                let _ = mark.compare_exchange(0, tag, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        true
    }

    /// The ranges of the primary the remembered map names for `slot`.
    pub(super) fn suspected(&self, slot: u16) -> Vec<(u16, u16)> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        owner_of(&map, slot)
            .map(|owner| ranges_of(&map, owner))
            .unwrap_or_default()
    }

    /// Probe `probe` found the node that [`DownSlots::start_probe`]
    /// suspected answering: clears the marks it set in `ranges`, all but
    /// its own slot's.
    pub(super) fn clear_suspected(&self, probe: u16, ranges: &[(u16, u16)]) {
        let _probes = self.probes();
        let tag = probe.saturating_add(1);
        for &(first, last) in ranges {
            for (offset, mark) in self.range(first, last).iter().enumerate() {
                if usize::from(first) + offset != usize::from(probe) {
                    let _ = mark.compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Acquire);
                }
            }
        }
    }

    fn range(&self, first: u16, last: u16) -> &[AtomicU16] {
        let last = usize::from(last).min(SLOTS - 1);
        self.marks
            .get(usize::from(first)..=last)
            .unwrap_or_default()
    }

    /// Probe `probe` found `node` silent: marks its `ranges` down and
    /// watches `node`, unless another probe already watches it; then
    /// `probe`'s mark is handed to that probe (which clears it with its own)
    /// and `probe` ends. Returns whether `probe` now watches `node`.
    pub(super) fn watch(&self, probe: u16, node: &Node, ranges: &[(u16, u16)]) -> bool {
        let mut probes = self.probes();
        if let Some(&watcher) = probes.nodes.get(node) {
            // Every mark of `probe` (its slot's, and those it set on
            // suspicion) goes to the watcher, which clears them with its own.
            let (tag, theirs) = (probe.saturating_add(1), watcher.saturating_add(1));
            for mark in self.marks.iter() {
                let _ = mark.compare_exchange(tag, theirs, Ordering::AcqRel, Ordering::Acquire);
            }
            probes.slots.remove(&probe);
            return false;
        }
        probes.nodes.insert(node.clone(), probe);
        self.mark(ranges, probe);
        true
    }

    /// Ends `probe`: clears every mark it set or was handed, and its watch.
    pub(super) fn finish(&self, probe: u16, node: Option<&Node>) {
        let mut probes = self.probes();
        let tag = probe.saturating_add(1);
        for mark in self.marks.iter() {
            let _ = mark.compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        if let Some(node) = node {
            probes.nodes.remove(node);
        }
        probes.slots.remove(&probe);
    }

    /// Whether a warning that the map named no owner may be logged now: at
    /// most one a second, however many slots' probes find the same.
    pub(super) fn first_warning_this_second(&self) -> bool {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if warned.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
            return false;
        }
        *warned = Some(now);
        true
    }

    /// Remembers the cluster's map (see [`DownSlots::nodes`]).
    pub(super) fn remember(&self, map: Vec<Range>) {
        *self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = map;
    }

    /// The map last read (at connection, or by a probe).
    pub(super) fn map(&self) -> Vec<Range> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The primaries of the map last read.
    pub(super) fn nodes(&self) -> Vec<Node> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut nodes: Vec<Node> = map.iter().map(|(_, _, node)| node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    fn mark(&self, ranges: &[(u16, u16)], probe: u16) {
        let tag = probe.saturating_add(1);
        for &(first, last) in ranges {
            for mark in self.range(first, last) {
                mark.store(tag, Ordering::Release);
            }
        }
    }
}

/// The primary that owns `slot` in `map`.
pub(super) fn owner_of(map: &[Range], slot: u16) -> Option<&Node> {
    map.iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, node)| node)
}

/// The slot ranges `node` owns in `map`.
pub(super) fn ranges_of(map: &[Range], node: &Node) -> Vec<(u16, u16)> {
    map.iter()
        .filter(|(_, _, owner)| owner == node)
        .map(|(first, last, _)| (*first, *last))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{owner_of, ranges_of, DownSlots, Node, Range};

    fn node(port: u16) -> Node {
        ("10.0.0.1".to_owned(), port)
    }

    #[test]
    fn a_probe_marks_and_clears_only_its_own_slots() {
        let down = DownSlots::new();
        assert!(down.start_probe(7));
        assert!(down.is_down(7) && !down.is_down(8));
        assert!(!down.start_probe(7), "one probe per slot");
        assert!(down.watch(7, &node(1), &[(0, 99)]));
        assert!(down.is_down(0) && down.is_down(99) && !down.is_down(100));
        assert!(!down.start_probe(50), "a marked slot is covered");
        // Another node, another probe, over part of the same range (a map
        // that changed between the two reads).
        assert!(down.start_probe(200));
        assert!(down.watch(200, &node(2), &[(90, 200)]));
        down.finish(7, Some(&node(1)));
        assert!(!down.is_down(0) && !down.is_down(89));
        assert!(down.is_down(90) && down.is_down(200), "still the other's");
        down.finish(200, Some(&node(2)));
        assert!((0..16384).all(|slot| !down.is_down(slot)));
        assert!(down.start_probe(7), "claimable again");
    }

    #[test]
    fn a_second_probe_of_a_watched_node_hands_its_mark_over() {
        let down = DownSlots::new();
        assert!(down.start_probe(1));
        assert!(down.watch(1, &node(1), &[(0, 9)]));
        // Slot 500 failed before the node's ranges were read (a map
        // without it, say): its probe finds the node watched already.
        assert!(down.start_probe(500));
        assert!(!down.watch(500, &node(1), &[(500, 500)]));
        assert!(down.is_down(500), "still marked, now by the watcher");
        assert!(down.start_probe(501), "probe 500 ended");
        down.finish(501, None);
        down.finish(1, Some(&node(1)));
        assert!((0..16384).all(|slot| !down.is_down(slot)), "all cleared");
        assert!(down.start_probe(1));
        assert!(down.watch(1, &node(1), &[(0, 0)]), "the node is free again");
    }

    #[test]
    fn a_probe_suspects_every_slot_of_the_remembered_owner_until_it_answers() {
        let down = DownSlots::new();
        down.remember(vec![
            (0, 99, node(1)),
            (100, 199, node(2)),
            (200, 299, node(1)),
        ]);
        // Another probe holds slot 250 already (its node's map had it):
        // its mark stays its own.
        assert!(down.start_probe(150));
        assert!(down.watch(150, &node(3), &[(250, 250)]));
        down.clear_suspected(150, &down.suspected(150));
        assert!(!down.is_down(100) && down.is_down(150) && down.is_down(250));
        assert!(down.start_probe(7));
        assert!(down.is_down(0) && down.is_down(99) && down.is_down(200));
        assert!(!down.is_down(100), "another node's slots are not suspected");
        assert!(!down.start_probe(99), "a suspected slot starts no probe");
        // The node answers: only the probe's own slot stays marked.
        down.clear_suspected(7, &down.suspected(7));
        assert!(down.is_down(7) && !down.is_down(0) && !down.is_down(299));
        assert!(down.is_down(250), "the other probe's mark is not cleared");
        down.finish(7, None);
        down.finish(150, Some(&node(3)));
        assert!((0..16384).all(|slot| !down.is_down(slot)));

        // The node is watched by another probe already: the suspected
        // marks go to the watcher, and go with its own.
        assert!(down.start_probe(100));
        assert!(down.watch(100, &node(1), &[(0, 0)]));
        assert!(down.start_probe(50));
        assert!(!down.watch(50, &node(1), &[]));
        assert!(down.is_down(50) && down.is_down(99) && down.is_down(299));
        down.finish(100, Some(&node(1)));
        assert!(
            (0..16384).all(|slot| !down.is_down(slot)),
            "none left behind"
        );
    }

    #[test]
    fn out_of_range_slots_are_ignored() {
        let down = DownSlots::new();
        assert!(down.start_probe(1));
        assert!(down.watch(1, &node(1), &[(16000, u16::MAX), (300, 200)]));
        assert!(down.is_down(16383));
        assert!(!down.is_down(u16::MAX));
        assert!(!down.is_down(250), "an empty range marks nothing");
        down.finish(1, Some(&node(1)));
        assert!(!down.is_down(16383));
    }

    #[test]
    fn owners_and_their_ranges_come_from_the_map() {
        let map: Vec<Range> = vec![(0, 99, node(1)), (100, 199, node(2)), (200, 16383, node(1))];
        assert_eq!(owner_of(&map, 150), Some(&node(2)));
        assert_eq!(owner_of(&map, 5), Some(&node(1)));
        assert_eq!(ranges_of(&map, &node(1)), vec![(0, 99), (200, 16383)]);
        assert_eq!(owner_of(&map[..1], 100), None);
        let down = DownSlots::new();
        down.remember(map);
        assert_eq!(down.nodes(), vec![node(1), node(2)]);
    }
}
