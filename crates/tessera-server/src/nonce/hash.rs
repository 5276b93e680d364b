//! Compact, keyed fingerprints of (key id, nonce) pairs.

use std::hash::Hasher;

use rand::RngCore;
use siphasher::sip::SipHasher13;
use tessera_core::{KeyId, Nonce};

/// The keyed hashes of one (key id, nonce) pair. Only `pair` is stored, in
/// 8 bytes; `key` is computed per request to find the per-key count.
///
/// `key` is a keyed hash of the key id; `pair` a keyed 64-bit hash of the
/// key id and the nonce, never 0. Two different pairs are confused (a false
/// `Replayed`) only if their `pair` values collide: with `L` live nonces
/// the chance per request is `L / 2^64`, about 4 × 10^-13 at the default
/// capacity of 8,000,000 (spec §14 allows a hash of the pair when false
/// `Replayed` answers are negligibly rare). The hash keys are random per
/// store, so clients cannot craft collisions or degrade the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: u64,
    pub(crate) pair: u64,
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
            // 0 marks an empty slot in the fingerprint table.
            pair: pair.finish().max(1),
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
