//! Admission: a decision on an authenticated request, made after its MAC
//! verified and before its nonce is recorded (spec §11.2 step 8). Rate
//! limits live here, so that a refused request consumes no nonce: a key
//! that floods is answered `429 rate_limited`, and never fills the nonce
//! store until it answers `503`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderMap, Method};
use tessera_core::KeyId;

use crate::keys::KeyMetadata;
use crate::rejection::Rejection;

/// What an [`Admission`] policy sees: the verified key and the route.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    /// The key whose MAC verified.
    pub key_id: &'a KeyId,
    /// What the key store knows about it (owner, scopes, attributes).
    pub metadata: &'a KeyMetadata,
    /// The request's method.
    pub method: &'a Method,
    /// The request's path, as received.
    pub path: &'a str,
}

/// An admitted request, with headers for its response (for example the
/// `RateLimit` fields), which the tower layer adds.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub(crate) headers: Option<Arc<HeaderMap>>,
}

impl Admitted {
    /// Admitted, nothing to add to the response.
    pub fn plain() -> Self {
        Admitted::default()
    }

    /// Admitted; `headers` go on the response.
    pub fn with_headers(headers: HeaderMap) -> Self {
        Admitted {
            headers: (!headers.is_empty()).then(|| Arc::new(headers)),
        }
    }
}

/// A policy that admits or refuses authenticated requests.
///
/// It runs on the request path after the MAC check: keep it fast. A refusal
/// is a [`Rejection`] (for rate limits, `rate_limited` from
/// [`tessera_core::Refusal::RateLimited`], with `Retry-After`).
#[async_trait]
pub trait Admission: fmt::Debug + Send + Sync {
    /// Admits `request`, or refuses it.
    ///
    /// # Errors
    /// The refusal the client receives.
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, Rejection>;
}

#[async_trait]
impl<A: Admission + ?Sized> Admission for Arc<A> {
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, Rejection> {
        (**self).admit(request).await
    }
}
