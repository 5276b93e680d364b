//! Which hash slots of a Redis Cluster belong to a primary known to be down,
//! so that [`RedisNonceStore`](super::RedisNonceStore) refuses their checks
//! at once instead of holding each request for the whole timeout.
//!
//! One Redis has a store-wide down mark; a cluster cannot, since one
//! primary down must not refuse the slots of the others. A check that times
//! out (or loses its connection) starts a probe of its slot, which holds
//! the slot and, on suspicion, every slot of every primary any map seen
//! since connection named for it (the client routes by a map of its own,
//! which may be any of them); the probe asks those nodes, holds every slot
//! of one that does not answer and watches it (one probe per node) until it
//! answers, then lets go of what it holds.
//!
//! A slot is down while any probe holds it: holds are counted, and each
//! probe releases exactly the holds it took (or was handed), so that one
//! node answering never frees the slots another silent node may still be
//! sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Mutex;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// [`SLOTS`] as a slot number's type.
pub(super) const SLOT_COUNT: u16 = 16384;

/// Distinct (range, primary) entries kept from the maps seen.
const SEEN_ENTRIES: usize = 4096;

/// A node of the cluster: host and port, as `CLUSTER SLOTS` names it.
pub(super) type Node = (String, u16);

/// One range of the cluster's map: first and last slot, and its primary.
pub(super) type Range = (u16, u16, Node);

/// Down marks of the cluster's slots, shared by a store's clones.
pub(super) struct DownSlots {
    /// Per slot: how many holds keep it down (0 when up).
    holds: Box<[AtomicU16]>,
    /// Probes running, by the slot that started each, with their holds,
    /// and the nodes they watch (by node: one probe per node).
    probes: Mutex<Probes>,
    /// The cluster's map as last read, for asking its nodes directly.
    map: Mutex<Vec<Range>>,
    /// Every (range, primary) of the maps read since connection.
    seen: Mutex<Vec<Range>>,
    /// When a probe last warned that the map named no owner.
    warned: Mutex<Option<std::time::Instant>>,
    /// A sweep of every slot through the client runs.
    sweeping: AtomicBool,
}

#[derive(Default)]
struct Probes {
    held: HashMap<u16, Holds>,
    nodes: HashMap<Node, u16>,
}

/// The holds of one probe: each range is one hold on each of its slots.
#[derive(Default)]
struct Holds {
    /// Taken on suspicion when the probe started.
    suspected: Vec<(u16, u16)>,
    /// Its own slot, its watched node's ranges, and those handed over.
    kept: Vec<(u16, u16)>,
}

impl std::fmt::Debug for DownSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let down = self
            .holds
            .iter()
            .filter(|holds| holds.load(Ordering::Relaxed) != 0)
            .count();
        f.debug_struct("DownSlots").field("down", &down).finish()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DownSlots {
    pub(super) fn new() -> Self {
        DownSlots {
            holds: (0..SLOTS).map(|_| AtomicU16::new(0)).collect(),
            probes: Mutex::new(Probes::default()),
            map: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            warned: Mutex::new(None),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Whether `slot`'s primary is known (or suspected) to be down.
    pub(super) fn is_down(&self, slot: u16) -> bool {
        self.holds
            .get(usize::from(slot))
            .is_some_and(|holds| holds.load(Ordering::Acquire) != 0)
    }

    /// Holds `slot` down and claims its probe: `false` (nothing held) when
    /// `slot` is already down or its probe already runs.
    ///
    /// Every slot of every primary that a map seen since connection names
    /// for `slot` is held too, until the probe finds out which of them
    /// answer ([`DownSlots::clear_suspected`]): the client may be sending
    /// them all to a node that is silent, which could answer them when it
    /// wakes.
    pub(super) fn start_probe(&self, slot: u16) -> bool {
        let mut probes = locked(&self.probes);
        if self.is_down(slot) || probes.held.contains_key(&slot) {
            return false;
        }
        let suspected: Vec<(u16, u16)> = self
            .owners_seen(slot)
            .iter()
            .flat_map(|owner| self.ranges_seen(owner))
            .collect();
        let holds = Holds {
            kept: vec![(slot, slot)],
            suspected,
        };
        self.take(&holds.kept);
        self.take(&holds.suspected);
        probes.held.insert(slot, holds);
        true
    }

    /// Every primary a map seen since connection names for `slot`, the
    /// most recently seen last.
    pub(super) fn owners_seen(&self, slot: u16) -> Vec<Node> {
        let seen = locked(&self.seen);
        let mut owners: Vec<Node> = Vec::new();
        for (first, last, node) in seen.iter() {
            if (*first..=*last).contains(&slot) {
                owners.retain(|owner| owner != node);
                owners.push(node.clone());
            }
        }
        owners
    }

    /// Every range a map seen since connection gives `node`.
    pub(super) fn ranges_seen(&self, node: &Node) -> Vec<(u16, u16)> {
        ranges_of(&locked(&self.seen), node)
    }

    /// Probe `probe` has asked the nodes it suspected: releases the holds
    /// taken on suspicion (its own slot, and any node it watches, stay held).
    pub(super) fn clear_suspected(&self, probe: u16) {
        let mut probes = locked(&self.probes);
        if let Some(holds) = probes.held.get_mut(&probe) {
            let suspected = std::mem::take(&mut holds.suspected);
            self.release(&suspected);
        }
    }

    /// Probe `probe` found `node` silent: holds its `ranges` down and
    /// watches `node`, unless another probe already watches it; then every
    /// hold of `probe` is handed to that probe (which releases them with its
    /// own) and `probe` ends. Returns whether `probe` now watches `node`.
    pub(super) fn watch(&self, probe: u16, node: &Node, ranges: &[(u16, u16)]) -> bool {
        let mut probes = locked(&self.probes);
        if let Some(&watcher) = probes.nodes.get(node) {
            // What `probe` kept goes to the watcher, which releases it with
            // its own; its suspicions go (the watcher holds the node's ranges,
            // and other candidates answered or are watched by their own).
            let handed = probes.held.remove(&probe).unwrap_or_default();
            self.release(&handed.suspected);
            if let Some(theirs) = probes.held.get_mut(&watcher) {
                theirs.kept.extend(handed.kept);
            } else {
                self.release(&handed.kept);
            }
            return false;
        }
        let Some(holds) = probes.held.get_mut(&probe) else {
            return false;
        };
        self.take(ranges);
        holds.kept.extend_from_slice(ranges);
        probes.nodes.insert(node.clone(), probe);
        true
    }

    /// Probe `probe` holds `ranges` down too, until it ends.
    pub(super) fn hold(&self, probe: u16, ranges: &[(u16, u16)]) {
        let mut probes = locked(&self.probes);
        if let Some(holds) = probes.held.get_mut(&probe) {
            self.take(ranges);
            holds.kept.extend_from_slice(ranges);
        }
    }

    /// Probe `probe` no longer holds `slot` (held by [`DownSlots::hold`]):
    /// one of its holds on it is released, and its range split around it.
    pub(super) fn let_go(&self, probe: u16, slot: u16) {
        let mut probes = locked(&self.probes);
        let Some(holds) = probes.held.get_mut(&probe) else {
            return;
        };
        let Some(at) = holds
            .kept
            .iter()
            .position(|(first, last)| (*first..=*last).contains(&slot))
        else {
            return;
        };
        let (first, last) = holds.kept.swap_remove(at);
        if first < slot {
            holds.kept.push((first, slot - 1));
        }
        if slot < last {
            holds.kept.push((slot + 1, last));
        }
        self.release(&[(slot, slot)]);
    }

    /// Claims the one sweep of every slot through the client (see the
    /// probe): `false` while another runs.
    pub(super) fn start_sweep(&self) -> bool {
        !self.sweeping.swap(true, Ordering::AcqRel)
    }

    /// Ends the sweep [`DownSlots::start_sweep`] claimed.
    pub(super) fn end_sweep(&self) {
        self.sweeping.store(false, Ordering::Release);
    }

    /// Ends `probe`: releases every hold it took or was handed, and its
    /// watch.
    pub(super) fn finish(&self, probe: u16, node: Option<&Node>) {
        let mut probes = locked(&self.probes);
        if let Some(holds) = probes.held.remove(&probe) {
            self.release(&holds.kept);
            self.release(&holds.suspected);
        }
        if let Some(node) = node {
            if probes.nodes.get(node) == Some(&probe) {
                probes.nodes.remove(node);
            }
        }
    }

    /// Whether a warning that the map named no owner may be logged now: at
    /// most one a second, however many slots' probes find the same.
    pub(super) fn first_warning_this_second(&self) -> bool {
        let mut warned = locked(&self.warned);
        let now = std::time::Instant::now();
        if warned.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
            return false;
        }
        *warned = Some(now);
        true
    }

    /// Remembers the cluster's map (see [`DownSlots::nodes`]), and adds
    /// its ranges to those seen (see [`DownSlots::owners_seen`]).
    pub(super) fn remember(&self, map: Vec<Range>) {
        {
            let mut seen = locked(&self.seen);
            for range in &map {
                if !seen.contains(range) {
                    if seen.len() == SEEN_ENTRIES {
                        seen.remove(0);
                    }
                    seen.push(range.clone());
                }
            }
        }
        *locked(&self.map) = map;
    }

    /// Forgets what the maps seen gave `node` beyond what `map` (just read)
    /// gives it: `node` answered, so the client, should it still send it a
    /// slot it no longer owns, is redirected.
    pub(super) fn forget_seen(&self, node: &Node, map: &[Range]) {
        if map.is_empty() {
            return;
        }
        locked(&self.seen).retain(|range| &range.2 != node || map.contains(range));
    }

    /// The primaries of the map last read.
    pub(super) fn nodes(&self) -> Vec<Node> {
        let map = locked(&self.map);
        let mut nodes: Vec<Node> = map.iter().map(|(_, _, node)| node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    fn slots(&self, first: u16, last: u16) -> &[AtomicU16] {
        let last = usize::from(last).min(SLOTS - 1);
        self.holds
            .get(usize::from(first)..=last)
            .unwrap_or_default()
    }

    fn take(&self, ranges: &[(u16, u16)]) {
        for &(first, last) in ranges {
            for holds in self.slots(first, last) {
                holds.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn release(&self, ranges: &[(u16, u16)]) {
        for &(first, last) in ranges {
            for holds in self.slots(first, last) {
                // Never below zero, whatever happens.
                let _ =
                    holds.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            }
        }
    }
}

/// `slots` (ascending) as ranges of consecutive slots.
pub(super) fn runs(slots: impl IntoIterator<Item = u16>) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for slot in slots {
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(slot) => *last = slot,
            _ => ranges.push((slot, slot)),
        }
    }
    ranges
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

    fn all_up(down: &DownSlots) -> bool {
        (0..16384).all(|slot| !down.is_down(slot))
    }

    #[test]
    fn a_probe_holds_and_releases_only_its_own_slots() {
        let down = DownSlots::new();
        assert!(down.start_probe(7));
        assert!(down.is_down(7) && !down.is_down(8));
        assert!(!down.start_probe(7), "one probe per slot");
        assert!(down.watch(7, &node(1), &[(0, 99)]));
        assert!(down.is_down(0) && down.is_down(99) && !down.is_down(100));
        assert!(!down.start_probe(50), "a held slot is covered");
        // Another node, another probe, over part of the same range (a map
        // that changed between the two reads).
        assert!(down.start_probe(200));
        assert!(down.watch(200, &node(2), &[(90, 200)]));
        down.finish(7, Some(&node(1)));
        assert!(!down.is_down(0) && !down.is_down(89));
        assert!(down.is_down(90) && down.is_down(200), "still the other's");
        down.finish(200, Some(&node(2)));
        assert!(all_up(&down));
        assert!(down.start_probe(7), "claimable again");
    }

    /// Review 17: a second watcher over a silent node's slots (its heir's,
    /// whose map gives it those slots) must not free them when its own
    /// node answers.
    #[test]
    fn a_second_watcher_over_the_same_slots_does_not_free_the_first_ones() {
        let down = DownSlots::new();
        assert!(down.start_probe(5));
        assert!(down.watch(5, &node(1), &[(0, 99)]));
        assert!(down.start_probe(150));
        assert!(down.watch(150, &node(2), &[(100, 199), (0, 199)]));
        down.finish(150, Some(&node(2)));
        let freed = (0..100).filter(|slot| !down.is_down(*slot)).count();
        assert_eq!(freed, 0, "slots of a still-watched silent node freed");
        assert!(!down.is_down(150), "the heir's own slots are free again");
        down.finish(5, Some(&node(1)));
        assert!(all_up(&down));
    }

    #[test]
    fn a_second_probe_of_a_watched_node_hands_its_holds_over() {
        let down = DownSlots::new();
        assert!(down.start_probe(1));
        assert!(down.watch(1, &node(1), &[(0, 9)]));
        // Slot 500 failed before the node's ranges were read (a map
        // without it, say): its probe finds the node watched already.
        assert!(down.start_probe(500));
        assert!(!down.watch(500, &node(1), &[(500, 500)]));
        assert!(down.is_down(500), "still held, now by the watcher");
        assert!(down.start_probe(501), "probe 500 ended");
        down.finish(501, None);
        down.finish(1, Some(&node(1)));
        assert!(all_up(&down), "all released");
        assert!(down.start_probe(1));
        assert!(down.watch(1, &node(1), &[(0, 0)]), "the node is free again");
    }

    #[test]
    fn a_probe_suspects_every_owner_any_map_named_until_they_are_asked() {
        let down = DownSlots::new();
        // The map at connection, then one read after a failover of node 1
        // to node 3: the client may still route by the first.
        down.remember(vec![
            (0, 99, node(1)),
            (100, 199, node(2)),
            (200, 299, node(1)),
        ]);
        down.remember(vec![
            (0, 99, node(3)),
            (100, 199, node(2)),
            (200, 299, node(3)),
            (300, 399, node(3)),
        ]);
        assert_eq!(down.owners_seen(7), vec![node(1), node(3)]);
        assert!(down.start_probe(7));
        assert!(down.is_down(0) && down.is_down(299) && down.is_down(350));
        assert!(!down.is_down(100), "another node's slots are not suspected");
        assert!(!down.start_probe(99), "a suspected slot starts no probe");
        // Node 1 is silent: watched over every range any map gave it.
        assert!(down.watch(7, &node(1), &down.ranges_seen(&node(1))));
        down.clear_suspected(7);
        assert!(down.is_down(0) && down.is_down(299));
        assert!(!down.is_down(350), "only node 3's were merely suspected");
        down.finish(7, Some(&node(1)));
        assert!(all_up(&down));
        // Node 1 answered meanwhile: what older maps gave it is forgotten.
        down.forget_seen(&node(1), &[(0, 99, node(3))]);
        assert_eq!(down.owners_seen(7), vec![node(3)]);
    }

    /// A probe whose silent node is already watched hands over what it
    /// kept, not its suspicions: the ranges of an owner that answered (X)
    /// are not held until the watched node answers (review 18).
    #[test]
    fn a_handed_over_probe_keeps_no_answered_owners_ranges() {
        let down = DownSlots::new();
        down.remember(vec![(0, 99, node(1)), (100, 199, node(2))]);
        // Probe A (slot 150): V (node 9, in no map seen) silent, watched.
        assert!(down.start_probe(150));
        assert!(down.watch(150, &node(9), &[(150, 150)]));
        down.clear_suspected(150);
        // Probe B (slot 50, also sent to V by the client): suspects X
        // (node 1), which answers; V is silent, already watched.
        assert!(down.start_probe(50));
        assert!(!down.watch(50, &node(9), &[(50, 50)]));
        let held: Vec<u16> = (0..100).filter(|slot| down.is_down(*slot)).collect();
        assert!(
            held.len() <= 1,
            "{} slots of X (answered) held until V answers",
            held.len()
        );
    }

    #[test]
    fn a_probe_lets_go_of_one_slot_and_keeps_the_rest() {
        let down = DownSlots::new();
        assert!(down.start_probe(7));
        down.hold(7, &[(100, 110)]);
        // Held by another probe too: one hold of two is released.
        assert!(down.start_probe(8));
        down.hold(8, &[(105, 105)]);
        down.let_go(7, 105);
        down.let_go(7, 100);
        down.let_go(7, 110);
        assert!(!down.is_down(100) && !down.is_down(110));
        assert!((101..=104).chain(106..=109).all(|s| down.is_down(s)));
        assert!(down.is_down(105), "still held by probe 8");
        // Letting go twice, or of a slot never held, changes nothing.
        down.let_go(7, 100);
        down.let_go(7, 200);
        down.let_go(9, 101);
        assert!(down.is_down(101) && !down.is_down(200));
        down.finish(7, None);
        assert!(down.is_down(105) && !down.is_down(101));
        down.finish(8, None);
        assert!(all_up(&down));
    }

    #[test]
    fn consecutive_slots_make_one_range() {
        assert_eq!(
            super::runs([1, 2, 3, 7, 9, 10]),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert!(super::runs([]).is_empty());
        assert_eq!(super::runs([16383]), vec![(16383, 16383)]);
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
