//! What a verifier knows about a key besides its secret.

use std::collections::BTreeSet;

use tessera_core::Refusal;

/// Whether a key may still be used.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyState {
    /// The key verifies requests (within its validity period).
    #[default]
    Active,
    /// The key was revoked; requests signed with it get `key_revoked`.
    Revoked,
}

/// Owner, client, scopes and validity of a key.
///
/// Several active keys may share an owner: each device or installed app
/// gets its own key, so rotating one never breaks the others.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// The user (or service account) the key acts for.
    pub owner: String,
    /// The app, client or device the key was issued to, if recorded.
    pub client: Option<String>,
    /// Scopes granted to the key; route guards check them.
    pub scopes: BTreeSet<String>,
    /// The key is not valid before this time (Unix seconds).
    pub not_before: Option<u64>,
    /// The key is not valid after this time (Unix seconds).
    pub not_after: Option<u64>,
    /// Active or revoked.
    pub state: KeyState,
    /// A free-form JSON object the application attached when it issued the
    /// key (a company or plan id, say); handed back with the verified
    /// identity. Never secret: it is logged and forwarded like the owner.
    pub attributes: Option<serde_json::Value>,
}

impl KeyMetadata {
    /// Metadata for an active key of `owner`, with no scopes and no time limits.
    pub fn new(owner: impl Into<String>) -> Self {
        KeyMetadata {
            owner: owner.into(),
            client: None,
            scopes: BTreeSet::new(),
            not_before: None,
            not_after: None,
            state: KeyState::Active,
            attributes: None,
        }
    }

    /// Attaches the application's JSON attributes (see [`KeyMetadata::attributes`]).
    #[must_use]
    pub fn with_attributes(mut self, attributes: serde_json::Value) -> Self {
        self.attributes = Some(attributes);
        self
    }

    /// Sets the client (app or device).
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

    /// Sets `not_before`.
    #[must_use]
    pub fn with_not_before(mut self, not_before: u64) -> Self {
        self.not_before = Some(not_before);
        self
    }

    /// Sets `not_after`.
    #[must_use]
    pub fn with_not_after(mut self, not_after: u64) -> Self {
        self.not_after = Some(not_after);
        self
    }

    /// Sets the state.
    #[must_use]
    pub fn with_state(mut self, state: KeyState) -> Self {
        self.state = state;
        self
    }

    /// Whether the key was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Step 3 of the procedure after the lookup: revoked, then expired, then not yet valid.
    ///
    /// # Errors
    /// [`Refusal::KeyRevoked`], [`Refusal::KeyExpired`], [`Refusal::KeyNotYetValid`].
    pub fn check_usable(&self, now: u64) -> Result<(), Refusal> {
        if self.state == KeyState::Revoked {
            return Err(Refusal::KeyRevoked);
        }
        if self.not_after.is_some_and(|t| now > t) {
            return Err(Refusal::KeyExpired);
        }
        if self.not_before.is_some_and(|t| now < t) {
            return Err(Refusal::KeyNotYetValid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::ErrorCode;

    #[test]
    fn usability_order_and_bounds() {
        let m = KeyMetadata::new("u").with_not_before(10).with_not_after(20);
        assert!(m.check_usable(10).is_ok());
        assert!(m.check_usable(20).is_ok());
        let code = |m: &KeyMetadata, now| m.check_usable(now).map_err(|e| e.code());
        assert_eq!(code(&m, 21), Err(ErrorCode::KeyExpired));
        assert_eq!(code(&m, 9), Err(ErrorCode::KeyNotYetValid));
        let revoked = m.with_state(KeyState::Revoked);
        assert_eq!(code(&revoked, 21), Err(ErrorCode::KeyRevoked));
    }
}
