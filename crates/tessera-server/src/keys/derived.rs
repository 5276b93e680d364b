//! Keys derived from a master secret: no database of secrets.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use tessera_core::{derive_secret, KeyId, SecretKey, SigningKey};

use super::cache::KeyCache;
use super::{DerivedKeyId, KeyError, KeyState, KeyStore, KeyStoreError, ResolvedKey};

/// Default number of prepared keys kept in the cache.
const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A [`KeyStore`] whose secrets are derived from one server master secret
/// and the key id, with `tessera_core::derive_secret` (HKDF-SHA256, salt
/// `"tessera-v1 derived key"`, info = key id).
///
/// Verifiers then need no database of secrets: only the master secret and a
/// revocation list. The metadata (owner, client, scopes, expiry) is encoded
/// in the key id itself; see [`DerivedKeyId`] for the format and why it can
/// be trusted. Revocation and expiry still apply.
///
/// Deriving and preparing a key costs a few microseconds, so prepared keys
/// are cached in a bounded map (default 10,000 keys).
///
/// Any well-formed `d1.` key id yields a key, so the cache is only filled
/// from [`KeyStore::verified`], that is after a request signed with the key
/// passed the MAC check. A lookup that misses the cache derives the key and
/// returns it without caching it: a flood of forged key ids costs one HKDF
/// each but cannot evict the keys of real clients.
pub struct DerivedKeyStore {
    master: SecretKey,
    revoked: RwLock<HashSet<KeyId>>,
    cache: KeyCache,
}

impl DerivedKeyStore {
    /// A store deriving from `master` (at least 32 bytes).
    ///
    /// # Errors
    /// [`KeyError::MasterTooShort`] when the master secret is shorter than 32 bytes.
    pub fn new(master: SecretKey) -> Result<Self, KeyError> {
        Self::with_cache_capacity(master, DEFAULT_CACHE_CAPACITY)
    }

    /// As [`DerivedKeyStore::new`], caching at most `capacity` prepared keys.
    ///
    /// # Errors
    /// As [`DerivedKeyStore::new`].
    pub fn with_cache_capacity(master: SecretKey, capacity: usize) -> Result<Self, KeyError> {
        if master.len() < 32 {
            return Err(KeyError::MasterTooShort(master.len()));
        }
        Ok(DerivedKeyStore {
            master,
            revoked: RwLock::new(HashSet::new()),
            cache: KeyCache::new(capacity),
        })
    }

    /// Derives the secret of `key_id`, for handing it to its owner once.
    ///
    /// # Errors
    /// [`KeyError::Core`] as `tessera_core::derive_secret`.
    pub fn derive(&self, key_id: &KeyId) -> Result<SecretKey, KeyError> {
        Ok(derive_secret(&self.master, key_id)?)
    }

    /// Adds a key id to the revocation list.
    pub fn revoke(&self, key_id: KeyId) {
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key_id);
    }

    /// Adds many key ids to the revocation list (for example, loaded at start-up).
    pub fn revoke_all(&self, key_ids: impl IntoIterator<Item = KeyId>) {
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(key_ids);
    }

    /// Whether `key_id` is on the revocation list.
    pub fn is_revoked(&self, key_id: &KeyId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key_id)
    }

    /// Caches `key` for `key_id`: call it once a request signed with the key
    /// was verified (the [`Verifier`](crate::Verifier) does, through
    /// [`KeyStore::verified`]).
    ///
    /// Only keys whose id this store derives and whose metadata is the one
    /// encoded in the id are cached, so a key carrying a revocation (added
    /// by [`DerivedKeyStore::get`]) is never stored.
    pub fn verified(&self, key_id: &KeyId, key: &ResolvedKey) {
        if key.key().key_id() != key_id || key.metadata().state == KeyState::Revoked {
            return;
        }
        match DerivedKeyId::parse(key_id) {
            Some(parsed) if **key.metadata() == parsed.metadata() => {
                self.cache.insert(key_id.clone(), key.clone());
            }
            _ => {}
        }
    }

    /// Looks a key up synchronously.
    ///
    /// On a cache miss the key is derived and returned but not cached; see
    /// [`DerivedKeyStore::verified`].
    ///
    /// # Errors
    /// When derivation fails (it does not for a valid master secret).
    pub fn get(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        let resolved = match self.cache.get(key_id) {
            Some(hit) => hit,
            None => {
                let Some(parsed) = DerivedKeyId::parse(key_id) else {
                    return Ok(None);
                };
                let secret = self
                    .derive(key_id)
                    .map_err(|e| KeyStoreError::with_source("key derivation failed", e))?;
                // Not cached here: the key id is not authenticated yet.
                ResolvedKey::new(
                    SigningKey::new(key_id.clone(), &secret),
                    Arc::new(parsed.metadata()),
                )
            }
        };
        // The revocation list is consulted on every lookup, never cached.
        if self.is_revoked(key_id) {
            let mut metadata = (**resolved.metadata()).clone();
            metadata.state = KeyState::Revoked;
            return Ok(Some(ResolvedKey::new(
                resolved.key().clone(),
                Arc::new(metadata),
            )));
        }
        Ok(Some(resolved))
    }
}

impl fmt::Debug for DerivedKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedKeyStore")
            .field("master", &self.master)
            .field(
                "revoked",
                &self
                    .revoked
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyStore for DerivedKeyStore {
    async fn resolve(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        self.get(key_id)
    }

    fn verified(&self, key_id: &KeyId, key: &ResolvedKey) {
        DerivedKeyStore::verified(self, key_id, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_parses_and_revokes() {
        let store =
            DerivedKeyStore::new(SecretKey::from_bytes(&[9; 32]).expect("secret")).expect("store");
        assert!(DerivedKeyStore::new(SecretKey::from_bytes(&[9; 16]).expect("secret")).is_err());
        let id = KeyId::new("d1.alice.web.read.1800000000.AAAAAAAAAAAAAAAAAAAAAA").expect("id");
        let key = store.get(&id).expect("lookup").expect("known");
        assert_eq!(key.metadata().owner, "alice");
        assert_eq!(key.metadata().not_after, Some(1_800_000_000));
        assert!(store
            .get(&KeyId::new("not-derived").expect("id"))
            .expect("lookup")
            .is_none());
        store.revoke(id.clone());
        let revoked = store.get(&id).expect("lookup").expect("known");
        assert_eq!(revoked.metadata().state, KeyState::Revoked);
        assert!(!format!("{store:?}").contains("09"));
    }

    fn signed_get(key: &SigningKey, created: u64) -> http::request::Parts {
        use tessera_core::{sign, BodyDigest, Nonce, RequestView, SignOptions};
        let nonce = Nonce::generate(&mut rand::rng());
        let (mut parts, ()) = http::Request::get("https://api.example.com/v1/orders")
            .body(())
            .expect("request")
            .into_parts();
        let options = SignOptions::new(created, &nonce);
        sign(
            key,
            &RequestView::from_parts(&parts).expect("view"),
            &BodyDigest::EMPTY,
            &options,
        )
        .expect("sign")
        .apply_to(&mut parts.headers)
        .expect("apply");
        parts
    }

    #[test]
    fn lookups_alone_never_fill_the_cache() {
        let store = DerivedKeyStore::with_cache_capacity(
            SecretKey::from_bytes(&[9; 32]).expect("secret"),
            4,
        )
        .expect("store");
        for i in 0..100 {
            let id = KeyId::new(format!("d1.mallory.web.read.1800000000.{i:0>22}")).expect("id");
            assert!(store.get(&id).expect("lookup").is_some());
        }
        assert_eq!(store.cache.len(), 0);
    }

    #[tokio::test]
    async fn forged_key_ids_do_not_evict_verified_keys() {
        use crate::{ManualClock, Verifier};
        use tessera_core::ErrorCode;

        const T0: u64 = 1_700_000_000;
        let store = Arc::new(
            DerivedKeyStore::with_cache_capacity(
                SecretKey::from_bytes(&[9; 32]).expect("secret"),
                4,
            )
            .expect("store"),
        );
        let verifier = Verifier::builder(Arc::clone(&store))
            .clock(ManualClock::new(T0))
            .nonce_store(
                crate::MemoryNonceStore::builder()
                    .remembers_since(T0)
                    .build(),
            )
            .authority("api.example.com")
            .build()
            .expect("verifier");

        let legit = KeyId::new("d1.alice.web.read.1800000000.AAAAAAAAAAAAAAAAAAAAAA").expect("id");
        let legit_key = SigningKey::new(legit.clone(), &store.derive(&legit).expect("derive"));
        verifier
            .verify_bytes(&signed_get(&legit_key, T0), bytes::Bytes::new())
            .await
            .expect("verified");
        assert!(store.cache.contains(&legit));
        assert_eq!(store.cache.len(), 1);

        // Well-formed ids the attacker has no secret for: each one resolves
        // (and is derived) but fails the MAC, and none of them is cached.
        let wrong = SecretKey::from_bytes(&[7; 32]).expect("secret");
        for i in 0..100 {
            let id = KeyId::new(format!("d1.mallory.web.read.1800000000.{i:0>22}")).expect("id");
            let err = verifier
                .verify_bytes(
                    &signed_get(&SigningKey::new(id, &wrong), T0),
                    bytes::Bytes::new(),
                )
                .await
                .expect_err("forged");
            assert_eq!(err.code(), ErrorCode::BadSignature);
        }
        assert!(store.cache.contains(&legit), "legitimate key evicted");
        assert_eq!(store.cache.len(), 1);

        // Verifying again through a cache hit does not rotate the cache.
        verifier
            .verify_bytes(&signed_get(&legit_key, T0), bytes::Bytes::new())
            .await
            .expect("verified again");
        assert_eq!(store.cache.len(), 1);
    }
}
