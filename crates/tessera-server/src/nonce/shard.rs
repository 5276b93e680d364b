//! One shard of the memory nonce store: a table of 8-byte fingerprints plus
//! a ring of time buckets that lists, per bucket, the fingerprints to drop.

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    TtlTooLong,
}

/// A ring of expiry buckets: slot `b % len` holds what expires in bucket `b`.
///
/// Live buckets span fewer than `len` indices, so a slot that holds another
/// bucket holds an expired, already emptied one.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    slots: Box<[(u64, T)]>,
    /// Every bucket below this one has been expired.
    swept_to: u64,
}

impl<T: Default> Ring<T> {
    pub(crate) fn new(len: usize) -> Self {
        Ring {
            slots: (0..len).map(|_| (0, T::default())).collect(),
            swept_to: 0,
        }
    }

    /// Expires every bucket before `current`, handing each expired slot's
    /// contents to `on_expire` (and leaving a fresh default in its place, so
    /// memory stays proportional to what is live). A clock that moves
    /// backwards expires nothing.
    pub(crate) fn sweep(&mut self, current: u64, mut on_expire: impl FnMut(T)) {
        if current <= self.swept_to {
            return;
        }
        let len = self.slots.len() as u64;
        let idle = current - self.swept_to >= len;
        // Idle for longer than the ring: every slot is stale.
        let first = if idle { current - len } else { self.swept_to };
        for bucket in first..current {
            let slot = &mut self.slots[slot_index(bucket, len)];
            if slot.0 == bucket || idle {
                on_expire(std::mem::take(&mut slot.1));
            }
        }
        self.swept_to = current;
    }

    /// `bucket` clamped to the current one, or `TtlTooLong` if it lies
    /// beyond the ring.
    pub(crate) fn admit(&self, bucket: u64) -> Result<u64, Refused> {
        let bucket = bucket.max(self.swept_to);
        if bucket - self.swept_to >= self.slots.len() as u64 {
            return Err(Refused::TtlTooLong);
        }
        Ok(bucket)
    }

    /// The contents of `bucket`, which [`Ring::admit`] returned.
    pub(crate) fn slot_mut(&mut self, bucket: u64) -> &mut T {
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[slot_index(bucket, len)];
        slot.0 = bucket;
        &mut slot.1
    }

    /// The contents of `bucket`, if its slot holds that bucket.
    pub(crate) fn get(&self, bucket: u64) -> Option<&T> {
        let len = self.slots.len() as u64;
        let slot = &self.slots[slot_index(bucket, len)];
        (slot.0 == bucket).then_some(&slot.1)
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|(_, t)| t)
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Every bucket below this one has been expired.
    pub(crate) fn swept_to(&self) -> u64 {
        self.swept_to
    }
}

/// A prefetch of the cache line holding `slot` into every cache level.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse"
))]
fn prefetch(slot: &u64) {
    safe_arch::prefetch_t0(slot);
}

/// No safe prefetch here: the check waits for its miss instead.
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse"
)))]
fn prefetch(slot: &u64) {
    let _ = slot;
}

fn slot_index(bucket: u64, ring_len: u64) -> usize {
    // ring_len is at most a few thousand, so the remainder fits in usize.
    (bucket % ring_len) as usize
}

/// An open-addressing set of non-zero 64-bit fingerprints: linear probing,
/// deletion by backward shift (no tombstones, so churn never forces a
/// rehash), at most 7/8 full, doubling as it fills.
///
/// Fingerprints are keyed hashes, uniformly distributed, so their low bits
/// index the table directly.
#[derive(Debug, Default)]
pub(crate) struct FingerprintSet {
    /// `0` marks an empty slot.
    slots: Box<[u64]>,
    len: usize,
}

impl FingerprintSet {
    const MIN_SLOTS: usize = 16;

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where the probe for `fp` starts (the table is not empty).
    fn home(&self, fp: u64) -> usize {
        fp as usize & self.mask()
    }

    /// The slot holding `fp`, or the empty slot where it would go.
    fn find(&self, fp: u64) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(fp);
        loop {
            match self.slots[i] {
                0 => return (i, false),
                v if v == fp => return (i, true),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Reads the home slot of every fingerprint in `fps`, all at once,
    /// before they are removed one by one: the reads are independent, so
    /// the processor overlaps their cache misses instead of waiting for
    /// each removal's probe in turn (a bucket expires ~100 fingerprints
    /// at once, each in a random line of a table larger than the caches).
    fn warm(&self, fps: &[u64]) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        // The home slot, and the slot one line (8 slots) on: a removal's
        // backward shift scans on to the end of the cluster, which often
        // crosses into the next line.
        let touched = fps.iter().fold(0u64, |acc, &fp| {
            let home = self.home(fp);
            acc ^ self.slots[home] ^ self.slots[(home + 8) & mask]
        });
        std::hint::black_box(touched);
    }

    pub(crate) fn contains(&self, fp: u64) -> bool {
        debug_assert_ne!(fp, 0);
        !self.slots.is_empty() && self.find(fp).1
    }

    /// Asks the processor to start loading the home slot of `fp`, which a
    /// [`FingerprintSet::contains`] or [`FingerprintSet::insert`] of `fp`
    /// reads first. Reads no slot itself.
    fn prefetch(&self, fp: u64) {
        if self.slots.is_empty() {
            return;
        }
        prefetch(&self.slots[self.home(fp)]);
    }

    /// Inserts `fp` (non-zero); false if it was already present.
    pub(crate) fn insert(&mut self, fp: u64) -> bool {
        debug_assert_ne!(fp, 0);
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.resize((self.slots.len() * 2).max(Self::MIN_SLOTS));
        }
        let (i, found) = self.find(fp);
        if found {
            return false;
        }
        self.slots[i] = fp;
        self.len += 1;
        true
    }

    /// Removes `fp` if present.
    pub(crate) fn remove(&mut self, fp: u64) {
        if self.slots.is_empty() {
            return;
        }
        let (mut hole, found) = self.find(fp);
        if !found {
            return;
        }
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        loop {
            let v = self.slots[j];
            if v == 0 {
                break;
            }
            // `v` may move back into the hole if the hole lies on its probe
            // path, i.e. cyclically within [home, j).
            let home = v as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = v;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = 0;
        self.len -= 1;
        // Shrink after a burst, with hysteresis (at most 7/32 full after).
        if self.slots.len() > Self::MIN_SLOTS && self.len * 16 < self.slots.len() {
            self.resize(self.slots.len() / 4);
        }
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, zeroed_table(slots));
        for fp in old.iter().copied().filter(|&fp| fp != 0) {
            let (i, _) = self.find(fp);
            self.slots[i] = fp;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }
}

/// A table of `slots` zeros whose pages have all been written once.
///
/// A large zeroed allocation comes from fresh pages that the kernel maps
/// lazily. Reinserting reads a slot before writing it, so each page would
/// first be mapped read-only to the shared zero page and then copied on the
/// first write, and that copy flushes the page's mapping from the TLB of
/// every processor running this process (an interrupt to each: hundreds
/// per resize of a large table, on every core of a busy server). A write
/// first maps each page once, with no flush.
fn zeroed_table(slots: usize) -> Box<[u64]> {
    // Through `black_box`, so that the compiler, which would otherwise know
    // the memory is already zero, keeps the writes below.
    let mut table = std::hint::black_box(vec![0u64; slots].into_boxed_slice());
    // 512 slots of 8 bytes: one write per 4 KiB page. The allocation need
    // not start on a page (glibc puts 16 bytes of its own first), so the
    // last slot is written too, for the last page.
    for slot in table.iter_mut().step_by(512) {
        *slot = 0;
    }
    if let Some(last) = table.last_mut() {
        *last = 0;
    }
    table
}

/// Fingerprints removed from the set per write, at most, while expired
/// ones wait: a bucket filled by a burst (thousands of entries in a shard)
/// is removed over the next writes instead of inside one request.
const DRAIN_PER_WRITE: usize = 64;

/// Live fingerprints in a set (for the replay check) and, again, in the
/// ring slot of their expiry bucket (for expiry): 8 bytes each, twice.
///
/// Expiry drops whole buckets: each fingerprint is removed from the set
/// exactly once, after its bucket passes, so the cost is O(1) amortized per
/// entry and no request ever scans the set. The removals are spread over
/// the following writes ([`DRAIN_PER_WRITE`] each), so that the request
/// that happens to pass a large bucket does not pay for all of it: an
/// expired pair may stay a little longer, which only keeps it past its
/// `retain_until` (allowed: retention is a minimum), and a shard at its
/// capacity removes every expired pair before it refuses.
#[derive(Debug)]
pub(crate) struct Shard {
    set: FingerprintSet,
    ring: Ring<Vec<u64>>,
    /// Expired fingerprints still in the set, removed a few per write.
    expired: Vec<u64>,
    capacity: usize,
}

impl Shard {
    pub(crate) fn new(ring_len: usize, capacity: usize) -> Self {
        Shard {
            set: FingerprintSet::default(),
            ring: Ring::new(ring_len),
            expired: Vec::new(),
            capacity,
        }
    }

    /// Expires every bucket before `current`, removing at most
    /// [`DRAIN_PER_WRITE`] fingerprints now.
    pub(crate) fn sweep(&mut self, current: u64) {
        let waiting = &mut self.expired;
        self.ring.sweep(current, |list| {
            if waiting.is_empty() {
                *waiting = list;
            } else {
                waiting.extend_from_slice(&list);
            }
        });
        self.drain(DRAIN_PER_WRITE);
    }

    /// Expires every bucket before `current` and removes every expired
    /// fingerprint.
    pub(crate) fn sweep_all(&mut self, current: u64) {
        self.sweep(current);
        self.drain(usize::MAX);
    }

    /// Removes up to `budget` expired fingerprints from the set.
    fn drain(&mut self, budget: usize) {
        let start = self.expired.len().saturating_sub(budget);
        if start == self.expired.len() {
            return;
        }
        self.set.warm(&self.expired[start..]);
        for fp in self.expired.drain(start..) {
            self.set.remove(fp);
        }
        if self.expired.is_empty() {
            // Dropped rather than cleared: memory stays proportional to
            // live entries after a burst.
            self.expired = Vec::new();
        }
    }

    pub(crate) fn contains(&self, fp: u64) -> bool {
        self.set.contains(fp)
    }

    /// Every expiry bucket below this one has been expired (and its
    /// fingerprints dropped or queued for dropping).
    pub(crate) fn swept_to(&self) -> u64 {
        self.ring.swept_to()
    }

    /// See [`FingerprintSet::prefetch`].
    pub(crate) fn prefetch(&self, fp: u64) {
        self.set.prefetch(fp);
    }

    /// Checks that a fingerprint could be inserted into `bucket` (clamped to
    /// the current bucket): the bucket fits the ring and the shard has room.
    pub(crate) fn admit(&mut self, bucket: u64) -> Result<u64, Refused> {
        let bucket = self.ring.admit(bucket)?;
        if self.set.len() >= self.capacity {
            // Expired pairs waiting for removal never cause a refusal.
            self.drain(usize::MAX);
            if self.set.len() >= self.capacity {
                return Err(Refused::Full);
            }
        }
        Ok(bucket)
    }

    /// Inserts a fingerprint admitted by [`Shard::admit`] for `bucket`.
    pub(crate) fn insert(&mut self, fp: u64, bucket: u64) {
        if self.set.insert(fp) {
            // A bucket's list starts with the length of the bucket before
            // it, if that one is still held: under a steady rate, one
            // allocation per bucket instead of a dozen reallocations
            // (copies) as it fills.
            let previous = match bucket.checked_sub(1) {
                Some(previous) => self.ring.get(previous).map_or(0, Vec::len),
                None => 0,
            };
            let list = self.ring.slot_mut(bucket);
            if list.len() == list.capacity() {
                // Then grow by a quarter, not double: still amortized O(1),
                // with at most 25% unused capacity instead of 50%.
                let more = if list.is_empty() {
                    previous
                } else {
                    list.len() / 4
                };
                list.reserve_exact(more.max(16));
            }
            list.push(fp);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    /// Heap bytes held, from capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        let ring = self.ring.slot_count() * std::mem::size_of::<(u64, Vec<u64>)>()
            + self.expired.capacity() * std::mem::size_of::<u64>()
            + self
                .ring
                .slots()
                .map(|v| v.capacity() * std::mem::size_of::<u64>())
                .sum::<usize>();
        self.set.heap_bytes() + ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_set_insert_remove_with_collisions_and_wraparound() {
        let mut set = FingerprintSet::default();
        // Values sharing low bits probe into the same cluster; some home at
        // the last slot so the cluster wraps around.
        let values: Vec<u64> = (1..=12u64)
            .map(|i| (i << 32) | 0xffff_ffff)
            .chain((1..=6u64).map(|i| (i << 40) | 3))
            .collect();
        for &v in &values {
            assert!(set.insert(v));
            assert!(!set.insert(v));
        }
        assert_eq!(set.len(), values.len());
        for (n, &v) in values.iter().enumerate() {
            set.remove(v);
            assert!(!set.contains(v));
            for &w in &values[n + 1..] {
                assert!(set.contains(w), "lost {w:#x} after removing {v:#x}");
            }
        }
        assert_eq!(set.len(), 0);
        set.remove(99);
    }

    #[test]
    fn fingerprint_set_grows_and_shrinks() {
        let mut set = FingerprintSet::default();
        let fp = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in 0..100_000 {
            assert!(set.insert(fp(i)));
        }
        assert_eq!(set.len(), 100_000);
        assert!(set.heap_bytes() <= 262_144 * 8);
        for i in 0..99_990 {
            set.remove(fp(i));
        }
        for i in 99_990..100_000 {
            assert!(set.contains(fp(i)));
        }
        assert!(set.heap_bytes() <= 1024, "{}", set.heap_bytes());
    }
}
