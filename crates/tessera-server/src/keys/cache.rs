//! A bounded cache of prepared keys.

use std::collections::HashMap;
use std::mem;
use std::sync::{Mutex, PoisonError};

use tessera_core::KeyId;

use super::ResolvedKey;

/// Two generations of at most `half` entries each: lookups promote entries
/// from the old generation to the new one; when the new one is full it
/// becomes the old one and the previous old one is dropped.
///
/// This approximates LRU with O(1) work per operation and no per-entry
/// bookkeeping, and never holds more than `2 * half` keys.
#[derive(Debug)]
pub(crate) struct KeyCache {
    half: usize,
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<KeyId, ResolvedKey>,
    old: HashMap<KeyId, ResolvedKey>,
}

impl KeyCache {
    /// A cache holding at most `capacity` keys (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        KeyCache {
            half: (capacity / 2).max(1),
            generations: Mutex::new(Generations::default()),
        }
    }

    pub(crate) fn get(&self, key_id: &KeyId) -> Option<ResolvedKey> {
        let mut g = self.lock();
        if let Some(hit) = g.young.get(key_id) {
            return Some(hit.clone());
        }
        let hit = g.old.remove(key_id)?;
        Self::insert_young(&mut g, self.half, key_id.clone(), hit.clone());
        Some(hit)
    }

    pub(crate) fn insert(&self, key_id: KeyId, key: ResolvedKey) {
        let mut g = self.lock();
        Self::insert_young(&mut g, self.half, key_id, key);
    }

    fn insert_young(g: &mut Generations, half: usize, key_id: KeyId, key: ResolvedKey) {
        // Replacing an entry of the young generation does not make it grow,
        // so it must not rotate the generations either.
        if !g.young.contains_key(&key_id) && g.young.len() >= half {
            g.old = mem::take(&mut g.young);
        }
        g.young.insert(key_id, key);
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key_id: &KeyId) -> bool {
        let g = self.lock();
        g.young.contains_key(key_id) || g.old.contains_key(key_id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    // Every critical section is a single map operation, so a poisoned lock
    // never guards a half-updated cache.
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_core::{SecretKey, SigningKey};

    use super::*;
    use crate::keys::KeyMetadata;

    #[test]
    fn stays_bounded_and_keeps_hot_keys() {
        let cache = KeyCache::new(4);
        let secret = SecretKey::from_bytes(&[1; 32]).expect("secret");
        let entry = |i: usize| {
            let id = KeyId::new(format!("k{i}")).expect("id");
            (
                id.clone(),
                ResolvedKey::new(
                    SigningKey::new(id, &secret),
                    Arc::new(KeyMetadata::new("o")),
                ),
            )
        };
        let (hot, hot_key) = entry(0);
        cache.insert(hot.clone(), hot_key);
        for i in 1..100 {
            let (id, key) = entry(i);
            cache.insert(id, key);
            assert!(cache.get(&hot).is_some(), "hot key evicted at {i}");
            assert!(cache.len() <= 4);
        }
    }
}
