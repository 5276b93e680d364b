//! One shard of the memory nonce store: a hash set plus a ring of time buckets.

use std::collections::HashSet;

use super::hash::{BuildPassThrough, Entry};

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    TtlTooLong,
}

/// The entries expiring in one bucket of `granularity` seconds.
#[derive(Debug, Default)]
struct Slot {
    bucket: u64,
    entries: Vec<Entry>,
}

/// Live entries in a set (for the replay check) and, again, in the ring
/// slot of their expiry bucket (for expiry).
///
/// Expiry drops whole buckets: each entry is removed from the set exactly
/// once, when its bucket passes, so the cost is O(1) amortized per entry and
/// no request ever scans the set.
#[derive(Debug)]
pub(crate) struct Shard {
    set: HashSet<Entry, BuildPassThrough>,
    ring: Box<[Slot]>,
    /// Every bucket below this one has been expired.
    swept_to: u64,
    capacity: usize,
}

impl Shard {
    pub(crate) fn new(ring_len: usize, capacity: usize) -> Self {
        Shard {
            set: HashSet::default(),
            ring: (0..ring_len).map(|_| Slot::default()).collect(),
            swept_to: 0,
            capacity,
        }
    }

    /// Expires every bucket before `current`, calling `on_expire` for each
    /// entry removed. A clock that moves backwards expires nothing.
    pub(crate) fn sweep(&mut self, current: u64, mut on_expire: impl FnMut(&Entry)) {
        if current <= self.swept_to {
            return;
        }
        let ring_len = self.ring.len() as u64;
        let first = if current - self.swept_to >= ring_len {
            // Idle for longer than the ring: every slot is stale.
            current - ring_len
        } else {
            self.swept_to
        };
        for bucket in first..current {
            let slot = &mut self.ring[slot_index(bucket, ring_len)];
            if slot.bucket == bucket || current - self.swept_to >= ring_len {
                // Freeing the vector (rather than clearing it) keeps memory
                // proportional to live entries after a burst.
                for entry in std::mem::take(&mut slot.entries) {
                    self.set.remove(&entry);
                    on_expire(&entry);
                }
            }
        }
        self.swept_to = current;
    }

    pub(crate) fn contains(&self, entry: &Entry) -> bool {
        self.set.contains(entry)
    }

    /// Checks that `entry` could be inserted into `bucket` (clamped to the
    /// current bucket): the shard has room and the bucket fits the ring.
    pub(crate) fn admit(&self, bucket: u64) -> Result<u64, Refused> {
        let bucket = bucket.max(self.swept_to);
        if bucket - self.swept_to >= self.ring.len() as u64 {
            return Err(Refused::TtlTooLong);
        }
        if self.set.len() >= self.capacity {
            return Err(Refused::Full);
        }
        Ok(bucket)
    }

    /// Inserts an entry admitted by [`Shard::admit`] for `bucket`.
    pub(crate) fn insert(&mut self, entry: Entry, bucket: u64) {
        let ring_len = self.ring.len() as u64;
        let slot = &mut self.ring[slot_index(bucket, ring_len)];
        // Live buckets span fewer than `ring_len` indices, so a slot holding
        // another bucket holds an expired, already emptied one.
        if slot.bucket != bucket {
            slot.bucket = bucket;
        }
        slot.entries.push(entry);
        self.set.insert(entry);
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    /// Heap bytes held, estimated from capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<Entry>();
        // hashbrown keeps buckets = next_power_of_two(capacity * 8 / 7), each
        // with one control byte, plus one group of trailing control bytes.
        let buckets = if self.set.capacity() == 0 {
            0
        } else {
            (self.set.capacity() * 8 / 7).next_power_of_two()
        };
        let set = buckets * (entry + 1) + if buckets > 0 { 16 } else { 0 };
        let ring = self.ring.len() * std::mem::size_of::<Slot>()
            + self
                .ring
                .iter()
                .map(|s| s.entries.capacity() * entry)
                .sum::<usize>();
        set + ring
    }
}

fn slot_index(bucket: u64, ring_len: u64) -> usize {
    // ring_len is at most a few thousand, so the remainder fits in usize.
    (bucket % ring_len) as usize
}
