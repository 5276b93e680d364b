//! The core `Signer` with no reqwest: hyper's connection-level HTTP/1.1
//! client (path-only URIs and a `Host` header on the wire) against
//! tessera-server's verifying layer over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use support::App;
use tessera_client::{BodyDigest, ErrorCode, RequestView, Scheme, Signer};

async fn connect(app: &App) -> http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    parts: http::request::Parts,
    body: &'static [u8],
) -> (StatusCode, String) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(Request::from_parts(
            parts,
            Full::new(Bytes::from_static(body)),
        ))
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// An origin-form request, as hyper writes it.
fn origin_form(
    app: &App,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> http::request::Parts {
    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, app.addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

#[tokio::test]
async fn origin_form_requests_signed_with_an_explicit_scheme_or_the_absolute_url() {
    let app = App::start().await;
    let authority = app.addr.to_string();
    let signer = Signer::builder(app.issue())
        .cover("content-type")
        .build()
        .unwrap();
    let mut sender = connect(&app).await;

    // sign_view: the scheme and authority named explicitly.
    let body = br#"{"qty":1}"#;
    let mut parts = origin_form(
        &app,
        "POST",
        "/v1/orders?dry_run=1",
        &[("content-type", "application/json")],
    );
    let view = RequestView::new(
        parts.method.as_str(),
        Scheme::Http,
        &authority,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
    )
    .unwrap();
    signer
        .sign_view(&view, &BodyDigest::of(body))
        .unwrap()
        .apply_to(&mut parts);
    assert_eq!(
        send(&mut sender, parts, body).await,
        (StatusCode::OK, "POST /v1/orders?dry_run=1 9".to_owned())
    );

    // sign: the absolute URL the request goes to, sent in origin-form.
    let mut parts = origin_form(&app, "GET", "/v1/me", &[]);
    let url = format!("http://{authority}/v1/me");
    let signed = signer
        .sign("GET", &url, &parts.headers, &BodyDigest::EMPTY)
        .unwrap();
    signed.apply_to(&mut parts);
    let replay = parts.clone();
    assert_eq!(
        send(&mut sender, parts, b"").await,
        (StatusCode::OK, "GET /v1/me 0".to_owned())
    );
    // The same signed bytes again are a replay.
    let (status, text) = send(&mut sender, replay, b"").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("\"replayed\""), "{text}");

    // The path-only URI itself is refused, never signed as https.
    let parts = origin_form(&app, "GET", "/v1/me", &[]);
    let err = signer
        .sign("GET", &parts.uri, &parts.headers, &BodyDigest::EMPTY)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue));

    let seen = app.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[0]
        .signature_input
        .as_deref()
        .unwrap()
        .contains(r#""content-digest" "content-type");"#));
    assert!(seen[1]
        .signature_input
        .as_deref()
        .unwrap()
        .contains(r#""content-digest");"#));
}
