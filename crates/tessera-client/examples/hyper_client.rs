//! Signing with hyper's connection-level HTTP/1.1 client, no reqwest.
//!
//! Starts a small verifying server on 127.0.0.1 (tessera-server's tower
//! layer, in-memory keys), then sends it signed requests with
//! `hyper::client::conn::http1`. That client writes the request-target as
//! given, so requests carry a path-only URI (`/v1/orders`) and a `Host`
//! header; a path-only URI names no scheme, so it is signed with
//! `Signer::sign_view` and an explicit `Scheme`, or by giving
//! `Signer::sign` the absolute URL the request goes to.
//!
//! ```text
//! cargo run -p tessera-client --example hyper_client
//! ```
//!
//! Exits non-zero if the server does not answer as expected.

use std::error::Error;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tessera_client::{BodyDigest, RequestView, Scheme, Signer, SigningKey};
use tessera_server::{
    KeyIssuer, KeyRequest, MemoryKeyStore, VerifiedIdentity, Verifier, VerifySignatureLayer,
};
use tokio::net::TcpStream;

type Sender = http1::SendRequest<Full<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (authority, key) = start_server().await?;
    println!("verifying server on http://{authority}");

    let signer = Signer::builder(key)
        // Covered on the requests that carry it: the POST below, not the GET.
        .cover("content-type")
        .build()?;

    let stream = TcpStream::connect(&authority).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);

    // 1. A POST with a JSON body, as hyper sends it: origin-form and Host.
    let body = Bytes::from_static(br#"{"item":"book","qty":1}"#);
    let (mut parts, ()) = Request::post("/v1/orders?dry_run=1")
        .header(http::header::HOST, &authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(())?
        .into_parts();
    // The URI has no scheme: say which one the request travels over.
    let view = RequestView::new(
        parts.method.as_str(),
        Scheme::Http,
        &authority,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
    )?;
    let signed = signer.sign_view(&view, &BodyDigest::of(&body))?;
    println!("signed: {signed:?}");
    signed.apply_to(&mut parts);
    let (status, text) = send(&mut sender, Request::from_parts(parts, Full::new(body))).await?;
    println!("POST /v1/orders?dry_run=1 -> {status} {text}");
    expect(status == StatusCode::OK, "the signed POST was accepted")?;

    // 2. A GET: sign the absolute URL it goes to, send it in origin-form.
    let url = format!("http://{authority}/v1/me");
    let (mut parts, ()) = Request::get("/v1/me")
        .header(http::header::HOST, &authority)
        .body(())?
        .into_parts();
    signer
        .sign(
            Method::GET.as_str(),
            &url,
            &parts.headers,
            &BodyDigest::EMPTY,
        )?
        .apply_to(&mut parts);
    let resend = Request::from_parts(parts.clone(), Full::new(Bytes::new()));
    let (status, text) = send(
        &mut sender,
        Request::from_parts(parts, Full::new(Bytes::new())),
    )
    .await?;
    println!("GET /v1/me -> {status} {text}");
    expect(status == StatusCode::OK, "the signed GET was accepted")?;

    // 3. The same signed bytes again: a replay.
    let (status, text) = send(&mut sender, resend).await?;
    println!("GET /v1/me again, same signature -> {status} {text}");
    expect(
        status == StatusCode::UNAUTHORIZED && text.contains("replayed"),
        "the replay was rejected",
    )?;

    // 4. A path-only URI given to `sign` is refused, not guessed.
    let err = signer
        .sign(
            "GET",
            &"/v1/me".parse::<http::Uri>()?,
            &http::HeaderMap::new(),
            &BodyDigest::EMPTY,
        )
        .expect_err("a path-only URI names no scheme");
    println!("path-only URI: {err}");
    Ok(())
}

async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, String), Box<dyn Error>> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn expect(ok: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

/// A verifying server on a free port of 127.0.0.1, and a key it accepts.
async fn start_server() -> Result<(String, SigningKey), Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let authority = listener.local_addr()?.to_string();
    let keys = Arc::new(MemoryKeyStore::new());
    // At login, the server issues the device its key.
    let issued = KeyIssuer::memory(Arc::clone(&keys))
        .issue(&KeyRequest::new("user-42").with_scopes(["read", "write"]))?;
    let key = SigningKey::new(issued.key_id().clone(), issued.expose_secret());
    let verifier = Verifier::builder(keys)
        .scheme(Scheme::Http) // plain HTTP on loopback only
        .authority(authority.clone())
        .build()?;
    // A new verifier's replay store refuses signatures created before its
    // memory point (`store_reset`, spec §14.1: an earlier process may have
    // accepted them): the next second, plus the 2 s a signature may be
    // dated ahead. Serve from then on.
    while !verifier.is_ready() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let app = Router::new()
        .route(
            "/v1/me",
            get(|who: VerifiedIdentity| async move { format!("hello {}", who.owner()) }),
        )
        .route(
            "/v1/orders",
            post(|who: VerifiedIdentity, body: Bytes| async move {
                format!("order of {} bytes from {}", body.len(), who.owner())
            }),
        )
        .layer(VerifySignatureLayer::new(verifier));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((authority, key))
}
