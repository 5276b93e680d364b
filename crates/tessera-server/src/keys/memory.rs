//! Keys held in process memory, already prepared.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use tessera_core::{KeyId, SecretKey, SigningKey};

use super::{KeyMetadata, KeyState, KeyStore, KeyStoreError, ResolvedKey};

/// An in-memory [`KeyStore`].
///
/// Each entry holds a [`SigningKey`], so the HMAC state is prepared once at
/// insertion and only copied per request. Lookups take a read lock; writes
/// (insert, revoke) are rare.
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: RwLock<HashMap<KeyId, ResolvedKey>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryKeyStore::default()
    }

    /// Adds (or replaces) a key.
    pub fn insert(&self, key_id: KeyId, secret: &SecretKey, metadata: KeyMetadata) {
        let key = SigningKey::new(key_id.clone(), secret);
        self.write()
            .insert(key_id, ResolvedKey::new(key, Arc::new(metadata)));
    }

    /// Replaces every key with those of `other`, in one step: a lookup
    /// sees either the old set or the new one. A key absent from `other`
    /// is forgotten (`unknown_key`), one revoked there answers
    /// `key_revoked`. The replaced keys are dropped (and zeroized) here.
    pub fn replace_all(&self, other: MemoryKeyStore) {
        let fresh = other
            .keys
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *self.write(), fresh);
        drop(old);
    }

    /// Marks a key revoked. Returns false if the key is unknown.
    ///
    /// The key stays in the store so its requests get `key_revoked` rather
    /// than `unknown_key`; use [`MemoryKeyStore::remove`] to forget it.
    pub fn revoke(&self, key_id: &KeyId) -> bool {
        let mut keys = self.write();
        match keys.get_mut(key_id) {
            Some(entry) => {
                set_state(entry, KeyState::Revoked);
                true
            }
            None => false,
        }
    }

    /// Revokes every key of `owner` ("log out everywhere"); returns how many were active.
    pub fn revoke_owner(&self, owner: &str) -> usize {
        let mut revoked = 0;
        for entry in self.write().values_mut() {
            if entry.metadata().owner == owner && entry.metadata().state == KeyState::Active {
                set_state(entry, KeyState::Revoked);
                revoked += 1;
            }
        }
        revoked
    }

    /// Forgets a key. Returns false if it was unknown.
    pub fn remove(&self, key_id: &KeyId) -> bool {
        self.write().remove(key_id).is_some()
    }

    /// The keys of `owner` with their metadata, sorted by key id.
    pub fn list_by_owner(&self, owner: &str) -> Vec<(KeyId, Arc<KeyMetadata>)> {
        let mut out: Vec<_> = self
            .read()
            .iter()
            .filter(|(_, entry)| entry.metadata().owner == owner)
            .map(|(id, entry)| (id.clone(), Arc::clone(entry.metadata())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Number of keys held (revoked ones included).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Looks a key up synchronously.
    pub fn get(&self, key_id: &KeyId) -> Option<ResolvedKey> {
        self.read().get(key_id).cloned()
    }

    // A panic while holding the lock cannot leave the map half-updated (every
    // write is a single insert or field store), so a poisoned lock is still
    // safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyId, ResolvedKey>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<KeyId, ResolvedKey>> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn set_state(entry: &mut ResolvedKey, state: KeyState) {
    let mut metadata = KeyMetadata::clone(entry.metadata());
    metadata.state = state;
    *entry = ResolvedKey::new(entry.key().clone(), Arc::new(metadata));
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("keys", &self.len())
            .finish()
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn resolve(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        Ok(self.get(key_id))
    }

    fn resolve_now(&self, key_id: &KeyId) -> Option<Result<Option<ResolvedKey>, KeyStoreError>> {
        Some(Ok(self.get(key_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> KeyId {
        KeyId::new(s).expect("valid key id")
    }

    #[test]
    fn insert_revoke_list() {
        let store = MemoryKeyStore::new();
        let secret = SecretKey::from_bytes(&[3; 32]).expect("secret");
        store.insert(id("a1"), &secret, KeyMetadata::new("alice"));
        store.insert(id("a2"), &secret, KeyMetadata::new("alice"));
        store.insert(id("b1"), &secret, KeyMetadata::new("bob"));
        assert_eq!(store.list_by_owner("alice").len(), 2);
        assert!(store.revoke(&id("a1")));
        assert!(!store.revoke(&id("zz")));
        assert_eq!(
            store.get(&id("a1")).map(|k| k.metadata().state),
            Some(KeyState::Revoked)
        );
        assert_eq!(store.revoke_owner("alice"), 1);
        assert_eq!(
            store.get(&id("b1")).map(|k| k.metadata().state),
            Some(KeyState::Active)
        );
        assert!(store.remove(&id("b1")));
        assert_eq!(store.len(), 2);
        assert!(!format!("{store:?}").contains("03"));
    }
}
