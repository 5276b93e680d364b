//! The verifying service.

use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::future::{ResponseFuture, VerifyFuture};
use super::VerifySignatureLayer;
use crate::verifier::body::Input;
use crate::{BoxError, Verifier};

/// Verifies each request before calling the inner service; see the
/// [module docs](crate::verify).
///
/// # Readiness
///
/// `poll_ready` is always ready: it does not poll the inner service. Each
/// call clones the inner service, and the response future first verifies
/// the request (reading the body), then drives that clone to readiness and
/// calls it. A slow upload therefore holds no readiness of the inner
/// service, such as a `ConcurrencyLimit` permit, and rejected requests never
/// acquire one. Inner back-pressure is applied per request inside the
/// response future instead of through `poll_ready`, so a load-shedding layer
/// placed *outside* this one no longer sees it; put load shedding inside.
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

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service's readiness is driven by the response future, on
        // its own clone, once the request is verified.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // `self.inner` is never polled for readiness, so it is only ever
        // cloned: the clone is driven to readiness and called by the response
        // future (the `ServiceExt::oneshot` pattern), after verification.
        let service = self.inner.clone();
        let verifier = self.verifier.clone();
        // Split before the async block, so that the boxed state holds the
        // head once (not the request and, later, its parts as well).
        let (parts, body) = request.into_parts();
        let verify: VerifyFuture = Box::pin(verify_request(verifier, parts, body));
        ResponseFuture::new(verify, service)
    }
}

/// The verification a [`VerifySignature`] boxes for each request: verifies
/// the head and body, then rebuilds the request with the identity in its
/// extensions.
///
/// Its state is boxed once per request: the tests below keep it at most
/// [`MAX_BOXED_STATE`] bytes.
// Not an `async fn`: see the comment on the block.
#[allow(clippy::manual_async_fn)]
fn verify_request<B>(
    verifier: Verifier,
    mut parts: http::request::Parts,
    body: B,
) -> impl Future<Output = Result<super::future::Verified, crate::Rejection>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    // An `async` block rather than an `async fn`: the block holds the
    // captured head and verifier once, where an `async fn` would move its
    // arguments into locals of the state, a second copy of each.
    async move {
        // `run` and `trace` rather than `verify`: one nested future
        // less in the boxed state (each level copies it when built).
        // The parsed signature boxed, so this state stays under 1 KiB.
        let result = verifier
            .run::<_, Box<tessera_core::ParsedSignature>>(&parts, Input::Stream(body))
            .await;
        verifier.trace(&result);
        let (mut identity, bytes) = result?;
        let headers = std::mem::take(&mut identity.response_headers);
        parts.extensions.insert(identity);
        Ok((Request::from_parts(parts, Full::new(bytes)), headers))
    }
}

/// Largest boxed verification state: glibc serves requests up to 1,032
/// bytes (its tcache's largest size class) from a per-thread cache, without
/// taking a lock.
#[cfg(test)]
const MAX_BOXED_STATE: usize = 1032;

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    use super::{verify_request, MAX_BOXED_STATE};
    use crate::{MemoryKeyStore, Verifier};

    fn state_size<B>(body: B) -> usize
    where
        B: http_body::Body,
        B::Error: Into<crate::BoxError>,
    {
        let verifier = Verifier::builder(MemoryKeyStore::new())
            .authority("api.example.com")
            .build()
            .expect("verifier");
        let (parts, ()) = http::Request::new(()).into_parts();
        std::mem::size_of_val(&verify_request(verifier, parts, body))
    }

    #[test]
    fn boxed_verification_state_stays_on_the_allocator_fast_path() {
        for (body, size) in [
            ("Full<Bytes>", state_size(Full::new(Bytes::new()))),
            ("Empty<Bytes>", state_size(Empty::<Bytes>::new())),
            (
                "UnsyncBoxBody",
                state_size(http_body_util::BodyExt::boxed_unsync(Full::new(
                    Bytes::new(),
                ))),
            ),
        ] {
            assert!(
                size <= MAX_BOXED_STATE,
                "the boxed verification state for {body} is {size} bytes, over {MAX_BOXED_STATE}"
            );
        }
    }
}
