//! The layer that wraps services in [`RequireScope`].

use std::sync::Arc;

use tower_layer::Layer;

use super::RequireScope;

/// Applies [`RequireScope`]: the verified key must hold every listed scope.
///
/// # Example
/// ```
/// use axum::routing::post;
/// use tessera_server::RequireScopeLayer;
///
/// let orders: axum::Router = axum::Router::new()
///     .route("/v1/orders", post(|| async { "created" }))
///     .route_layer(RequireScopeLayer::new("orders:write"));
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopeLayer {
    scopes: Arc<[String]>,
}

impl RequireScopeLayer {
    /// Requires `scope`.
    pub fn new(scope: impl Into<String>) -> Self {
        RequireScopeLayer {
            scopes: Arc::from([scope.into()]),
        }
    }

    /// Requires every scope in `scopes`.
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireScopeLayer {
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope::new(inner, Arc::clone(&self.scopes))
    }
}
