//! The layers in a plain `tower::ServiceBuilder` stack, without axum routing.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use support::{key_store, Spec, T0};
use tessera_server::{
    ManualClock, RequireScopeLayer, VerifiedIdentity, Verifier, VerifySignatureLayer,
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

#[tokio::test]
async fn service_builder_stack() {
    let verifier = Verifier::builder()
        .key_store(key_store())
        .clock(ManualClock::new(T0))
        .authority("api.example.com")
        .build()
        .expect("verifier");
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
