//! What a verified request proves.

use std::collections::BTreeSet;
use std::sync::Arc;

use tessera_core::{KeyId, Nonce, Refusal};

use crate::keys::KeyMetadata;
use crate::rejection::Rejection;

/// The identity a request proved by its signature.
///
/// The middleware puts it in the request extensions; handlers read it from
/// there (or, with the `axum` feature, take it as an extractor).
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    key_id: KeyId,
    metadata: Arc<KeyMetadata>,
    created: u64,
    nonce: Nonce,
    /// Headers the verifier's admission policy wants on the response.
    pub(crate) response_headers: crate::admission::ResponseFields,
}

impl VerifiedIdentity {
    /// Built in one piece, response headers included: the identity is a
    /// few hundred bytes, and every builder-style step would move it again.
    #[inline]
    pub(crate) fn new(
        key_id: &KeyId,
        metadata: Arc<KeyMetadata>,
        created: u64,
        nonce: &Nonce,
        response_headers: crate::admission::ResponseFields,
    ) -> Self {
        VerifiedIdentity {
            key_id: key_id.clone(),
            metadata,
            created,
            nonce: nonce.clone(),
            response_headers,
        }
    }

    /// Headers for the response that the admission policy (a rate limiter,
    /// say) produced, such as `RateLimit-Policy` and `RateLimit`.
    /// [`crate::VerifySignatureLayer`] adds them to the response itself; a
    /// handler that calls [`crate::Verifier::verify`] directly adds them.
    pub fn response_headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &self.response_headers
    }

    /// The key that signed the request.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The user the key acts for.
    pub fn owner(&self) -> &str {
        &self.metadata.owner
    }

    /// The app or client the key was issued to, if recorded.
    pub fn client(&self) -> Option<&str> {
        self.metadata.client.as_deref()
    }

    /// The key's scopes.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.metadata.scopes
    }

    /// Whether the key has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.metadata.has_scope(scope)
    }

    /// Step 9 inside a handler: `Ok` when the key has `scope`.
    ///
    /// # Errors
    /// An `insufficient_scope` rejection (403).
    pub fn require_scope(&self, scope: &str) -> Result<(), Rejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Rejection::new(
                Refusal::InsufficientScope {
                    scope: scope.to_owned(),
                }
                .into(),
            )
            .with_key_id(&self.key_id))
        }
    }

    /// All metadata of the key.
    pub fn metadata(&self) -> &KeyMetadata {
        &self.metadata
    }

    /// The signature's `created` time, Unix seconds.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The request's nonce.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }
}
