//! The tower middleware that verifies requests: [`VerifySignatureLayer`],
//! [`VerifySignature`] and its [`ResponseFuture`].
//!
//! The service buffers the body (under the verifier's limit), verifies the
//! request, puts the [`crate::VerifiedIdentity`] into the request extensions,
//! and calls the inner service with the body re-attached as
//! `http_body_util::Full<Bytes>`. Rejections are responses
//! (`application/problem+json`), never service errors, so the layer works
//! with axum's `Router::layer` (whose routes accept any `Body<Data = Bytes>`).
//!
//! The inner service is only driven to readiness (on a clone, as
//! `tower::ServiceExt::oneshot` does) after the request was verified, so
//! slow uploads and rejected requests hold no inner capacity such as a
//! concurrency-limit permit; see [`VerifySignature`].
//!
//! The inner service's response body must be constructible `From<Bytes>`
//! (true for `axum::body::Body` and `Full<Bytes>`), which is how rejection
//! responses share its type.
//!
//! Pair it with tower-http's `SetSensitiveRequestHeadersLayer` for
//! `signature` so request logging never prints signatures.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::VerifySignatureLayer;
pub use service::VerifySignature;
