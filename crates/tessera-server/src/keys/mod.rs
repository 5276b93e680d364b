//! Key lookup: the [`KeyStore`] trait, its in-memory and derived
//! implementations, and the [`KeyIssuer`] used at login.

mod cache;
mod derived;
mod derived_id;
mod error;
mod file;
#[cfg(feature = "tokio")]
mod follow;
mod issuer;
mod memory;
mod metadata;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::{KeyId, SigningKey};

pub use derived::DerivedKeyStore;
pub use derived_id::DerivedKeyId;
pub use error::KeyError;
pub use file::{load_keys_file, reload_keys_file, KeyFileEntry, KeysFileError};
#[cfg(feature = "tokio")]
pub use follow::{follow_file, follow_keys_file, FOLLOW_EVERY};
pub use issuer::{IssuedKey, KeyIssuer, KeyRequest};
pub use memory::MemoryKeyStore;
pub use metadata::{KeyMetadata, KeyState};

/// A key found by a [`KeyStore`]: the prepared HMAC key and what is known about it.
///
/// The verifier, not the store, decides whether the key is usable (state,
/// `not_before`, `not_after`), so every store gets the same rules.
///
/// Cloning is two reference-count increments: stores hand out clones of
/// the keys they cache on every look-up.
#[derive(Clone)]
pub struct ResolvedKey {
    key: Arc<SigningKey>,
    metadata: Arc<KeyMetadata>,
}

impl ResolvedKey {
    /// Pairs a prepared key with its metadata.
    pub fn new(key: SigningKey, metadata: Arc<KeyMetadata>) -> Self {
        ResolvedKey {
            key: Arc::new(key),
            metadata,
        }
    }

    /// The prepared key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The key's metadata.
    pub fn metadata(&self) -> &Arc<KeyMetadata> {
        &self.metadata
    }

    /// The metadata, taken rather than cloned: for the verified identity,
    /// once the key is no longer needed (one reference-count update less
    /// on each side).
    pub(crate) fn into_metadata(self) -> Arc<KeyMetadata> {
        self.metadata
    }
}

impl fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SigningKey's own Debug is redacted; spelled out here for clarity.
        f.debug_struct("ResolvedKey")
            .field("key_id", self.key.key_id())
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Where the verifier looks keys up by key id.
///
/// Async so keys can live in a database. The trait uses `async-trait`
/// (boxed futures) so it stays object-safe: the verifier holds an
/// `Arc<dyn KeyStore>`.
///
/// Implementations should hand out *prepared* keys ([`SigningKey`] holds the
/// HMAC state computed once) and cache them, rather than rebuilding the key
/// from its secret on every request.
///
/// # Caching and unauthenticated key ids
///
/// `resolve` runs before anything is authenticated, on a key id chosen by
/// whoever sent the request. A store that fills a bounded cache from
/// `resolve` lets a flood of made-up key ids evict the keys real clients
/// use. Stores that can produce a key for any key id (such as
/// [`DerivedKeyStore`]) should therefore only fill their cache from
/// [`KeyStore::verified`], which the verifier calls once a request's MAC
/// has been checked.
#[async_trait]
pub trait KeyStore: fmt::Debug + Send + Sync {
    /// The key named `key_id`, or `Ok(None)` when it is unknown.
    ///
    /// Revoked and expired keys should still be returned, with their
    /// metadata saying so, so that clients get `key_revoked` or
    /// `key_expired` rather than `unknown_key`.
    ///
    /// # Errors
    /// When the store cannot answer; the verifier then refuses the request
    /// with `store_unavailable` (fail closed).
    async fn resolve(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError>;

    /// The answer [`KeyStore::resolve`] would give, when the store has it
    /// at hand without waiting (an in-memory map, a cache hit); `None` when
    /// it does not, and the verifier then awaits [`KeyStore::resolve`].
    ///
    /// A fast path only: it must agree with `resolve` (same key, same
    /// metadata, same errors), and must not block. The verifier tries it
    /// first on every request, so stores whose keys are in memory skip the
    /// boxed future of `resolve`. The default answers `None`.
    fn resolve_now(&self, key_id: &KeyId) -> Option<Result<Option<ResolvedKey>, KeyStoreError>> {
        let _ = key_id;
        None
    }

    /// Called by the verifier after step 6, once a request signed with `key`
    /// (as returned by [`KeyStore::resolve`] for `key_id`) carried a valid
    /// MAC: the sender holds the secret, so the key id is not made up.
    ///
    /// The request may still be refused afterwards (its body, a rate limit,
    /// time re-check, key state re-check, replay). This is the place to cache keys that `resolve`
    /// built on a cache miss. It runs on the request path: keep it cheap and
    /// non-blocking. The default does nothing.
    fn verified(&self, key_id: &KeyId, key: &ResolvedKey) {
        let _ = (key_id, key);
    }
}

#[async_trait]
impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    // Written out rather than `async fn`: the inner store's boxed future is
    // returned as it is, instead of being awaited inside a second box (the
    // verifier holds its store as `Arc<dyn KeyStore>`, so every lookup comes
    // through here).
    fn resolve<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key_id: &'life1 KeyId,
    ) -> Pin<
        Box<dyn Future<Output = Result<Option<ResolvedKey>, KeyStoreError>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).resolve(key_id)
    }

    fn resolve_now(&self, key_id: &KeyId) -> Option<Result<Option<ResolvedKey>, KeyStoreError>> {
        (**self).resolve_now(key_id)
    }

    fn verified(&self, key_id: &KeyId, key: &ResolvedKey) {
        (**self).verified(key_id, key);
    }
}

/// A key store could not answer (for example, its database is down).
#[derive(Debug)]
pub struct KeyStoreError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl KeyStoreError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        KeyStoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by a backend error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        KeyStoreError {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for KeyStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key store unavailable: {}", self.message)
    }
}

impl std::error::Error for KeyStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
