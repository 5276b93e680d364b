//! The scope-checking service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tessera_core::{ErrorCode, Refusal};
use tower_service::Service;

use super::ResponseFuture;
use crate::{Rejection, VerifiedIdentity};

/// Calls the inner service only for requests whose verified key holds the
/// required scopes; see the [module docs](crate::scope).
#[derive(Debug, Clone)]
pub struct RequireScope<S> {
    inner: S,
    scopes: Arc<[String]>,
}

impl<S> RequireScope<S> {
    pub(crate) fn new(inner: S, scopes: Arc<[String]>) -> Self {
        RequireScope { inner, scopes }
    }

    /// The required scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn check(&self, identity: Option<&VerifiedIdentity>) -> Result<(), Rejection> {
        let Some(identity) = identity else {
            // Fail closed: no identity means the verifier did not run first.
            return Err(Rejection::new(Refusal::NoVerifiedIdentity.into()));
        };
        match self.scopes.iter().find(|s| !identity.has_scope(s)) {
            None => Ok(()),
            Some(missing) => {
                tracing::debug!(
                    outcome = "rejected",
                    code = ErrorCode::InsufficientScope.as_str(),
                    key_id = %identity.key_id(),
                    scope = missing.as_str(),
                    "tessera: key lacks a required scope"
                );
                identity.require_scope(missing)
            }
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for RequireScope<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.check(request.extensions().get::<VerifiedIdentity>()) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(rejection) => ResponseFuture::rejected(rejection.into_http_response()),
        }
    }
}
