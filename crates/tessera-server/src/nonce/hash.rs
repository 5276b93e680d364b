//! Compact, keyed fingerprints of (key id, nonce) pairs.

use std::hash::{Hash, Hasher};

use rand::RngCore;
use siphasher::sip::SipHasher13;
use tessera_core::{KeyId, Nonce};

/// What the memory store remembers per pair: 16 bytes instead of two strings.
///
/// `key` is a keyed hash of the key id (it lets expiry decrement the per-key
/// count without storing the id); `pair` is a keyed hash of the key id and
/// the nonce. Two pairs collide only if both halves do, and for one key a
/// false "replayed" needs a 64-bit collision of `pair` with one of that
/// key's live nonces: at the default per-key cap of 100,000 live nonces the
/// chance per request is below 10^-14. The hash keys are random per store,
/// so clients cannot craft collisions or degrade the hash table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: u64,
    pub(crate) pair: u64,
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // `pair` is already a keyed hash that covers the key id.
        state.write_u64(self.pair);
    }
}

/// Computes [`Entry`] values with two random SipHash-1-3 keys.
#[derive(Clone, Copy)]
pub(crate) struct EntryHasher {
    key: SipHasher13,
    pair: SipHasher13,
}

impl EntryHasher {
    pub(crate) fn random() -> Self {
        let mut rng = rand::rng();
        EntryHasher {
            key: SipHasher13::new_with_keys(rng.next_u64(), rng.next_u64()),
            pair: SipHasher13::new_with_keys(rng.next_u64(), rng.next_u64()),
        }
    }

    pub(crate) fn entry(&self, key_id: &KeyId, nonce: &Nonce) -> Entry {
        let mut key = self.key;
        key.write(key_id.as_str().as_bytes());
        let mut pair = self.pair;
        pair.write(key_id.as_str().as_bytes());
        // Key ids are ASCII, so 0xff cannot occur in them: the split between
        // key id and nonce is unambiguous.
        pair.write_u8(0xff);
        pair.write(nonce.as_str().as_bytes());
        Entry {
            key: key.finish(),
            pair: pair.finish(),
        }
    }
}

impl std::fmt::Debug for EntryHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntryHasher(** keys redacted **)")
    }
}

/// A `Hasher` for values that are already uniformly distributed keyed hashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a non-u64 value is hashed; fold it in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type BuildPassThrough = std::hash::BuildHasherDefault<PassThrough>;
