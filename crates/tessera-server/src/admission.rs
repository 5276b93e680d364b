//! Admission: a decision on an authenticated request, made after its MAC
//! verified and before its nonce is recorded (spec §11.2 step 8). Rate
//! limits live here, so that a refused request consumes no nonce: a key
//! that floods is answered `429 rate_limited`, and never fills the nonce
//! store until it answers `503`. A policy may also refuse, before the body
//! is read, a request it already knows it will refuse (a key over its
//! budget), so that such a key cannot make the verifier read bodies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, Method};
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

/// Header fields for the response of an admitted request (a `Vec`: empty,
/// it costs no allocation and keeps the verified identity small).
pub(crate) type ResponseFields = Vec<(HeaderName, HeaderValue)>;

/// An admitted request, with header fields for its response (for example
/// the `RateLimit` fields), which the tower layer adds.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub(crate) headers: ResponseFields,
}

impl Admitted {
    /// Admitted, nothing to add to the response.
    pub fn plain() -> Self {
        Admitted::default()
    }

    /// Admitted; `fields` go on the response (a field already there is replaced).
    pub fn with_headers(fields: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Self {
        Admitted {
            headers: fields.into_iter().collect(),
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

    /// A refusal known before the body is read: the verifier calls it once
    /// the MAC has verified and before it reads the body (spec §12.5), so
    /// that a key already over its budget cannot make it read or hash
    /// bodies it would refuse anyway. Refuse only a request that
    /// [`Admission::admit`] would refuse whatever its body; `Ok` lets it go
    /// on to the body and to `admit`, which decides. It runs on every
    /// verified request, on the way to its body: it must be cheap, charge
    /// nothing and wait for nothing (answer from what earlier decisions
    /// taught, not from a remote store). The default refuses nothing.
    ///
    /// # Errors
    /// The refusal the client receives, as from `admit`.
    fn refuse_before_body(&self, request: AdmissionRequest<'_>) -> Result<(), Rejection> {
        let _ = request;
        Ok(())
    }

    /// Gives back what [`Admission::admit`] charged for `request`, which it
    /// admitted: the verifier calls it when the nonce step then refused the
    /// request (`replayed`, `store_reset`, `store_unavailable`), so that such
    /// a request spends nothing. Above all, replayed copies of a captured
    /// request cannot drain the key's budget (spec §12.5). Best effort: a
    /// policy that cannot give back logs it. The default does nothing.
    async fn refund(&self, request: AdmissionRequest<'_>) {
        let _ = request;
    }
}

#[async_trait]
impl<A: Admission + ?Sized> Admission for Arc<A> {
    // Written out rather than `async fn`: the policy's boxed future is
    // returned as it is, not awaited inside a second box (the verifier
    // holds its policy as `Arc<dyn Admission>`).
    fn admit<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: AdmissionRequest<'life1>,
    ) -> Pin<Box<dyn Future<Output = Result<Admitted, Rejection>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).admit(request)
    }

    fn refuse_before_body(&self, request: AdmissionRequest<'_>) -> Result<(), Rejection> {
        (**self).refuse_before_body(request)
    }

    async fn refund(&self, request: AdmissionRequest<'_>) {
        (**self).refund(request).await;
    }
}
