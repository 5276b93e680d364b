//! The verifying service.

use std::mem;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::future::{ResponseFuture, VerifyFuture};
use super::VerifySignatureLayer;
use crate::{BoxError, Verifier};

/// Verifies each request before calling the inner service; see the
/// [module docs](crate::verify).
#[derive(Debug, Clone)]
pub struct VerifySignature<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> VerifySignature<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, verifier: Verifier) -> Self {
        VerifySignature { inner, verifier }
    }

    /// A layer producing this service.
    pub fn layer(verifier: Verifier) -> VerifySignatureLayer {
        VerifySignatureLayer::new(verifier)
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
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
}

impl<S, B, ResBody> Service<Request<B>> for VerifySignature<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was driven to readiness is the one to call; keep a
        // fresh clone in its place (tower's "be careful when cloning inner
        // services" advice).
        let clone = self.inner.clone();
        let ready = mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let verify: VerifyFuture = Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let (identity, bytes) = verifier.verify(&parts, body).await?;
            parts.extensions.insert(identity);
            Ok(Request::from_parts(parts, Full::new(bytes)))
        });
        ResponseFuture::new(verify, ready)
    }
}
