//! The layers in a plain `tower::ServiceBuilder` stack, without axum routing.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use support::{key_store, Spec, T0};
use tessera_server::{
    ManualClock, MemoryNonceStore, RequireScopeLayer, VerifiedIdentity, Verifier,
    VerifySignatureLayer,
};
use tower::{ServiceBuilder, ServiceExt};

async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let owner = request
        .extensions()
        .get::<VerifiedIdentity>()
        .map(|i| i.owner().to_owned())
        .unwrap_or_default();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{owner}:{}",
        body.len()
    )))))
}

/// A verifier for `api.example.com` on a manual clock at T0, with the test
/// key store and a memory nonce store.
fn verifier() -> Verifier {
    Verifier::builder(key_store())
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(ManualClock::new(T0))
        .authority("api.example.com")
        .build()
        .expect("verifier")
}

#[tokio::test]
async fn service_builder_stack() {
    let verifier = verifier();
    let service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier.clone()))
        .layer(RequireScopeLayer::all(["read", "write"]))
        .service_fn(handler);

    let request = Spec::new(Method::POST, "api.example.com")
        .body(b"0123456789")
        .signed();
    let (parts, body) = request.into_parts();
    let response = service
        .clone()
        .oneshot(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&text[..], b"alice:10");

    // Alice's key lacks "admin".
    let admin_only = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier))
        .layer(RequireScopeLayer::new("admin"))
        .service_fn(handler);
    let request = Spec::new(Method::GET, "api.example.com").signed();
    let (parts, body) = request.into_parts();
    let response = admin_only
        .oneshot(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        response.headers()[tessera_server::ERROR_HEADER],
        "insufficient_scope"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
    .expect("json");
    assert_eq!(json["code"], "insufficient_scope");
}

/// A client resends a `503` or `429` that carries `Tessera-Error` (spec
/// §12.2): the application's own never does, even when it passes on a
/// refusal it got from another service, since it may have acted first.
#[tokio::test]
async fn the_applications_own_503_and_429_never_carry_the_refusal_field() {
    for status in [
        http::StatusCode::SERVICE_UNAVAILABLE,
        http::StatusCode::TOO_MANY_REQUESTS,
    ] {
        let passes_on = ServiceBuilder::new()
            .layer(VerifySignatureLayer::new(verifier()))
            .service_fn(move |_request: Request<Full<Bytes>>| async move {
                let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    tessera_server::ERROR_HEADER,
                    http::HeaderValue::from_static("store_unavailable"),
                );
                Ok::<_, Infallible>(response)
            });
        let (parts, body) = Spec::new(Method::POST, "api.example.com")
            .body(b"{}")
            .signed()
            .into_parts();
        let response = passes_on
            .oneshot(Request::from_parts(parts, Full::new(Bytes::from(body))))
            .await
            .expect("infallible");
        assert_eq!(response.status(), status);
        assert!(
            response
                .headers()
                .get(tessera_server::ERROR_HEADER)
                .is_none(),
            "{status}: {:?}",
            response.headers()
        );
    }
    // The verifier's own refusal carries it.
    let service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier()))
        .service_fn(handler);
    let response = service
        .oneshot(
            Request::get("https://api.example.com/")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()[tessera_server::ERROR_HEADER],
        "missing_signature"
    );
}

#[tokio::test]
async fn scope_guard_without_verifier_fails_closed() {
    let service = ServiceBuilder::new()
        .layer(RequireScopeLayer::new("read"))
        .service_fn(handler);
    let response = service
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 403);
}

/// An inner service that records whether it was asked for readiness before
/// the request body had been read in full, as a concurrency limit would
/// then hold a permit during the upload.
#[derive(Clone)]
struct Probe {
    body_read: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ready_during_upload: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ready_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tower::Service<Request<Full<Bytes>>> for Probe {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.ready_calls.fetch_add(1, SeqCst);
        if !self.body_read.load(SeqCst) {
            self.ready_during_upload.store(true, SeqCst);
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

#[tokio::test]
async fn inner_readiness_is_only_acquired_after_verification() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    use futures_util::{stream, StreamExt};
    use http_body::Frame;
    use http_body_util::StreamBody;

    let verifier = verifier();
    let probe = Probe {
        body_read: Arc::default(),
        ready_during_upload: Arc::default(),
        ready_calls: Arc::default(),
    };
    let service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier))
        .service(probe.clone());

    let request = Spec::new(Method::POST, "api.example.com")
        .body(b"hello world")
        .signed();
    let (parts, _) = request.into_parts();
    let body_read = Arc::clone(&probe.body_read);
    let chunks = [&b"hello "[..], &b"world"[..]];
    let body = StreamBody::new(stream::iter(chunks.into_iter().enumerate()).map(
        move |(i, chunk)| {
            if i + 1 == chunks.len() {
                body_read.store(true, SeqCst);
            }
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(chunk)))
        },
    ));
    let response = service
        .clone()
        .oneshot(Request::from_parts(parts, body))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    assert!(!probe.ready_during_upload.load(SeqCst));
    assert_eq!(probe.ready_calls.load(SeqCst), 1);

    // A rejected request never asks the inner service for readiness.
    let response = service
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 401);
    assert_eq!(probe.ready_calls.load(SeqCst), 1);
}

/// An inner service that is not ready on its first `poll_ready` (it wakes
/// the task and is ready on the next), or whose readiness fails.
#[derive(Clone)]
struct Slow {
    polls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail: bool,
}

impl tower::Service<Request<Full<Bytes>>> for Slow {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Self::Response, &'static str>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), &'static str>> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.fail {
            return std::task::Poll::Ready(Err("inner service closed"));
        }
        if self.polls.fetch_add(1, SeqCst) == 0 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let owner = request
            .extensions()
            .get::<VerifiedIdentity>()
            .map(|i| i.owner().to_owned())
            .unwrap_or_default();
        std::future::ready(Ok(Response::new(Full::new(Bytes::from(owner)))))
    }
}

#[tokio::test]
async fn an_inner_service_not_ready_at_once_gets_the_verified_request() {
    use std::sync::atomic::Ordering::SeqCst;

    let verifier = verifier();
    let slow = Slow {
        polls: std::sync::Arc::default(),
        fail: false,
    };
    let service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier.clone()))
        .service(slow.clone());
    let request = Spec::new(Method::POST, "api.example.com")
        .body(b"hello")
        .signed();
    let response = service
        .oneshot(request.map(|body| Full::new(Bytes::from(body))))
        .await
        .expect("ready on the second poll");
    assert_eq!(response.status(), 200);
    assert_eq!(slow.polls.load(SeqCst), 2, "polled for readiness twice");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        &body[..],
        b"alice",
        "the identity reached the inner service"
    );

    // An inner service whose readiness fails: its error is the layer's.
    let service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier))
        .service(Slow {
            polls: std::sync::Arc::default(),
            fail: true,
        });
    let request = Spec::new(Method::GET, "api.example.com").signed();
    let error = service
        .oneshot(request.map(|body| Full::new(Bytes::from(body))))
        .await
        .expect_err("readiness failed");
    assert_eq!(error, "inner service closed");
}

/// A response future polled again after it answered (which a caller
/// should not do) answers 500 instead of polling a finished future, for an
/// accepted and for a rejected request alike.
#[tokio::test]
async fn polling_the_response_future_after_it_answered_does_not_panic() {
    use std::future::Future;

    let verifier = verifier();
    let mut service = ServiceBuilder::new()
        .layer(VerifySignatureLayer::new(verifier))
        .service_fn(handler);
    let signed = Spec::new(Method::GET, "api.example.com")
        .signed()
        .map(|body| Full::new(Bytes::from(body)));
    for (request, status) in [(signed, 200), (Request::new(Full::new(Bytes::new())), 401)] {
        let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
            .await
            .expect("ready");
        let mut future = Box::pin(tower::Service::call(ready, request));
        let first = (&mut future).await.expect("infallible");
        assert_eq!(first.status(), status);
        let again = std::future::poll_fn(|cx| future.as_mut().poll(cx))
            .await
            .expect("infallible");
        assert_eq!(again.status(), 500);
    }
}
