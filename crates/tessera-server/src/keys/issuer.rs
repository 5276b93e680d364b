//! Minting keys at login.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use tessera_core::{KeyId, SecretKey};

use super::{DerivedKeyId, DerivedKeyStore, KeyError, KeyMetadata, MemoryKeyStore};
use tessera_core::{Clock, SystemClock};

/// What to issue: for whom, to which client, with which scopes and lifetime.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// The user the key acts for (already authenticated by the application).
    pub owner: String,
    /// The app or device receiving the key.
    pub client: Option<String>,
    /// Scopes to grant.
    pub scopes: BTreeSet<String>,
    /// How long the key stays valid; `None` means until revoked.
    pub lifetime: Option<Duration>,
}

impl KeyRequest {
    /// A request for a key of `owner` with no scopes and no expiry.
    pub fn new(owner: impl Into<String>) -> Self {
        KeyRequest {
            owner: owner.into(),
            client: None,
            scopes: BTreeSet::new(),
            lifetime: None,
        }
    }

    /// Names the client (app or device).
    #[must_use]
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Adds scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the lifetime (rounded down to whole seconds).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }
}

/// A freshly issued key: returned once, to be sent to its owner's device.
///
/// The secret is reachable only through [`IssuedKey::expose_secret`]; it is
/// zeroized on drop and hidden from `Debug`. The type is not `Clone`.
pub struct IssuedKey {
    key_id: KeyId,
    secret: SecretKey,
    metadata: Arc<KeyMetadata>,
}

impl IssuedKey {
    /// The key id the device signs with.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The metadata recorded for the key.
    pub fn metadata(&self) -> &KeyMetadata {
        &self.metadata
    }

    /// The secret. Send it to the device over the authenticated login
    /// response, then drop this value; never log or store it.
    pub fn expose_secret(&self) -> &SecretKey {
        &self.secret
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key_id", &self.key_id)
            .field("secret", &"** redacted **")
            .field("metadata", &self.metadata)
            .finish()
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Memory(Arc<MemoryKeyStore>),
    Derived(Arc<DerivedKeyStore>),
}

/// Mints keys for users the application has authenticated by its own means
/// (password, passkey, OAuth, ...).
///
/// With a [`MemoryKeyStore`] the issuer generates a random 32-byte secret and
/// a random key id (`m1.<22 base64url chars>`) and stores the key. With a
/// [`DerivedKeyStore`] it builds a [`DerivedKeyId`] carrying the metadata
/// and derives the secret; nothing is stored.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tessera_server::{KeyIssuer, KeyRequest, MemoryKeyStore};
///
/// let store = Arc::new(MemoryKeyStore::new());
/// let issuer = KeyIssuer::memory(Arc::clone(&store));
/// let issued = issuer
///     .issue(&KeyRequest::new("user-42").with_client("ios").with_scopes(["read"])
///         .with_lifetime(Duration::from_secs(90 * 86_400)))
///     .expect("issued");
/// assert_eq!(store.list_by_owner("user-42").len(), 1);
/// assert_eq!(issued.expose_secret().len(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct KeyIssuer {
    backend: Backend,
    clock: Arc<dyn Clock>,
}

impl KeyIssuer {
    /// Issues random keys into `store`.
    pub fn memory(store: Arc<MemoryKeyStore>) -> Self {
        KeyIssuer {
            backend: Backend::Memory(store),
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Issues derived keys of `store`.
    pub fn derived(store: Arc<DerivedKeyStore>) -> Self {
        KeyIssuer {
            backend: Backend::Derived(store),
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Uses `clock` to compute `not_before` / `not_after`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Mints a key for `request`.
    ///
    /// # Errors
    /// [`KeyError::EmptyOwner`], [`KeyError::InvalidField`] when a field
    /// does not fit the derived key id format, or [`KeyError::Core`] when the
    /// OS random source fails.
    pub fn issue(&self, request: &KeyRequest) -> Result<IssuedKey, KeyError> {
        if request.owner.is_empty() {
            return Err(KeyError::EmptyOwner);
        }
        let now = self.clock.now_unix();
        let not_after = request.lifetime.map(|l| now.saturating_add(l.as_secs()));
        let random = random_token();
        match &self.backend {
            Backend::Memory(store) => {
                let key_id = KeyId::new(format!("m1.{random}"))?;
                let secret = SecretKey::generate()?;
                let mut metadata = KeyMetadata::new(request.owner.clone())
                    .with_scopes(request.scopes.iter().cloned())
                    .with_not_before(now);
                metadata.client.clone_from(&request.client);
                metadata.not_after = not_after;
                store.insert(key_id.clone(), &secret, metadata.clone());
                Ok(IssuedKey {
                    key_id,
                    secret,
                    metadata: Arc::new(metadata),
                })
            }
            Backend::Derived(store) => {
                let derived = DerivedKeyId::new(
                    &request.owner,
                    request.client.as_deref(),
                    &request.scopes,
                    not_after,
                    &random,
                )?;
                let key_id = derived.to_key_id()?;
                let secret = store.derive(&key_id)?;
                Ok(IssuedKey {
                    key_id,
                    secret,
                    metadata: Arc::new(derived.metadata()),
                })
            }
        }
    }
}

/// 128 random bits from the thread-local CSPRNG, base64url (22 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::ManualClock;

    #[test]
    fn derived_issuance_round_trips_through_the_store() {
        let store = Arc::new(
            DerivedKeyStore::new(SecretKey::from_bytes(&[5; 32]).expect("s")).expect("store"),
        );
        let issuer = KeyIssuer::derived(Arc::clone(&store)).with_clock(ManualClock::new(1_000));
        let issued = issuer
            .issue(
                &KeyRequest::new("bob")
                    .with_scopes(["read", "write"])
                    .with_lifetime(Duration::from_secs(60)),
            )
            .expect("issued");
        assert!(issued
            .key_id()
            .as_str()
            .starts_with("d1.bob..read+write.1060."));
        let resolved = store.get(issued.key_id()).expect("lookup").expect("known");
        assert_eq!(resolved.metadata().not_after, Some(1_060));
        assert_eq!(
            store
                .derive(issued.key_id())
                .expect("derive")
                .expose_secret(),
            issued.expose_secret().expose_secret()
        );
        let debug = format!("{issued:?}");
        assert!(debug.contains("redacted"));
        assert!(issuer.issue(&KeyRequest::new("bad owner")).is_err());
    }

    #[test]
    fn memory_issuance_stores_the_key() {
        let store = Arc::new(MemoryKeyStore::new());
        let issuer = KeyIssuer::memory(Arc::clone(&store)).with_clock(ManualClock::new(50));
        let a = issuer
            .issue(&KeyRequest::new("carol").with_client("phone"))
            .expect("a");
        let b = issuer
            .issue(&KeyRequest::new("carol").with_client("laptop"))
            .expect("b");
        assert_ne!(a.key_id(), b.key_id());
        let listed = store.list_by_owner("carol");
        assert_eq!(listed.len(), 2);
        assert!(listed
            .iter()
            .all(|(_, m)| m.not_before == Some(50) && m.not_after.is_none()));
    }
}
