//! Step 9 as a route guard: [`RequireScopeLayer`], [`RequireScope`] and its
//! [`ResponseFuture`].
//!
//! Install it *inside* [`crate::VerifySignatureLayer`] (in axum, call
//! `.layer(RequireScopeLayer::new(..))` on the route, and
//! `.layer(VerifySignatureLayer::new(..))` on the router after it): it reads
//! the [`crate::VerifiedIdentity`] the verifier put in the request
//! extensions. A request without the scope, or without an identity at all,
//! gets `insufficient_scope` (403).

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::RequireScopeLayer;
pub use service::RequireScope;
