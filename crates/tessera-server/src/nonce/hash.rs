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

/// Computes [`Entry`] values with one random SipHash-1-3 key.
///
/// `key` is the hash of the key id and `pair` the hash of the key id, a
/// separator and the nonce: the same keyed function (a PRF) over two
/// different inputs, so the two values are as independent as with two
/// keys, and the key id is hashed once for both.
#[derive(Clone, Copy)]
pub(crate) struct EntryHasher {
    sip: SipHasher13,
}

impl EntryHasher {
    pub(crate) fn random() -> Self {
        let mut rng = rand::rng();
        EntryHasher {
            sip: SipHasher13::new_with_keys(rng.next_u64(), rng.next_u64()),
        }
    }

    pub(crate) fn entry(&self, key_id: &KeyId, nonce: &Nonce) -> Entry {
        let mut hasher = self.sip;
        hasher.write(key_id.as_str().as_bytes());
        // `finish` reads the state without consuming it: the hash of the
        // key id alone, after which the same state goes on with the nonce.
        let key = hasher.finish();
        // Key ids are ASCII, so 0xff cannot occur in them: the split between
        // key id and nonce is unambiguous.
        hasher.write_u8(0xff);
        hasher.write(nonce.as_str().as_bytes());
        Entry {
            key,
            // 0 marks an empty slot in the fingerprint table.
            pair: hasher.finish().max(1),
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

#[cfg(test)]
mod tests {
    use tessera_core::{KeyId, Nonce};

    use super::EntryHasher;

    fn entry(hasher: &EntryHasher, key_id: &str, nonce: &str) -> super::Entry {
        let key_id = KeyId::new(key_id).expect("key id");
        let nonce = Nonce::new(nonce).expect("nonce");
        hasher.entry(&key_id, &nonce)
    }

    #[test]
    fn the_key_hash_depends_on_the_key_id_alone_and_the_pair_hash_on_both() {
        let hasher = EntryHasher::random();
        let nonce = "AAAAAAAAAAAAAAAAAAAAAAA";
        let other = "BBBBBBBBBBBBBBBBBBBBBBB";
        let a = entry(&hasher, "user-1", nonce);
        let b = entry(&hasher, "user-1", other);
        let c = entry(&hasher, "user-2", nonce);
        assert_eq!(a.key, b.key, "one key id, one per-key count");
        assert_ne!(a.key, c.key);
        assert_ne!(a.pair, b.pair);
        assert_ne!(a.pair, c.pair);
        // Moving a character between key id and nonce makes another pair.
        let shifted = entry(&hasher, "user-1A", &nonce[1..]);
        assert_ne!(a.pair, shifted.pair);
        // The key hash is not the pair hash of some other split either.
        assert_ne!(a.key, a.pair);
        assert_eq!(
            a,
            entry(&hasher, "user-1", nonce),
            "deterministic per store"
        );
        let another_store = EntryHasher::random();
        assert_ne!(
            a,
            entry(&another_store, "user-1", nonce),
            "keys are random per store"
        );
    }
}
