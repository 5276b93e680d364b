//! The layer that wraps services in [`VerifySignature`].

use tower_layer::Layer;

use super::VerifySignature;
use crate::Verifier;

/// Applies [`VerifySignature`] to a service.
///
/// # Example
/// ```
/// # use std::sync::Arc;
/// use tessera_server::{MemoryKeyStore, Verifier, VerifySignatureLayer};
///
/// let verifier = Verifier::builder(Arc::new(MemoryKeyStore::new()))
///     .authority("api.example.com")
///     .build()
///     .expect("valid configuration");
/// let app: axum::Router = axum::Router::new()
///     .route("/v1/ping", axum::routing::get(|| async { "pong" }))
///     .layer(VerifySignatureLayer::new(verifier));
/// ```
#[derive(Debug, Clone)]
pub struct VerifySignatureLayer {
    verifier: Verifier,
}

impl VerifySignatureLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        VerifySignatureLayer { verifier }
    }
}

impl<S> Layer<S> for VerifySignatureLayer {
    type Service = VerifySignature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifySignature::new(inner, self.verifier.clone())
    }
}
