//! Chosen headers end to end, through the reqwest middleware and
//! tessera-server's verifying layer over loopback: `cover` covers a header
//! when the request carries it, `cover_strict` refuses to sign without it,
//! and the verifier's required components stay the floor.
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use reqwest_middleware::ClientBuilder;
use support::App;
use tessera_client::{client_builder, ClientError, ErrorCode, SignRequestMiddleware, Signer};

const FLOOR: &str = r#"tessera=("@method" "@authority" "@path" "@query" "content-digest""#;

fn client_with(inner: reqwest::Client, signer: Signer) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(inner)
        .with(SignRequestMiddleware::new(signer))
        .build()
}

fn client(signer: Signer) -> reqwest_middleware::ClientWithMiddleware {
    client_with(client_builder().build().unwrap(), signer)
}

/// The covered list the server received, after the floor.
fn covered_after_floor(input: Option<&str>) -> String {
    let input = input.expect("signed");
    let rest = input.strip_prefix(FLOOR).expect("the floor comes first");
    rest[..rest.find(')').unwrap()].trim().to_owned()
}

fn signing_error(err: &reqwest_middleware::Error) -> &ClientError {
    match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<ClientError>().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The README's client: one signer covering `content-type`, used for a
/// body-less GET and a JSON POST.
#[tokio::test]
async fn one_signer_covers_content_type_on_the_requests_that_have_it() {
    let app = App::start().await;
    let signer = Signer::builder(app.issue())
        .cover("content-type")
        .cover("x-request-id")
        .build()
        .unwrap();
    let c = client(signer);

    let r = c.get(format!("{}/v1/me", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/v1/orders", app.base))
        .header("content-type", "application/json")
        .body(r#"{"qty":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST /v1/orders 9");
    let r = c
        .post(format!("{}/v1/orders", app.base))
        .header("x-request-id", "r-1")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A 303 drops the body and its content-type; the next hop is signed
    // without it, and accepted.
    let r = c
        .post(format!("{}/redirect/303?to=/v1/orders/1", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /v1/orders/1 0");

    let seen = app.seen();
    let covered: Vec<_> = seen
        .iter()
        .map(|s| (s.status, covered_after_floor(s.signature_input.as_deref())))
        .collect();
    assert_eq!(
        covered,
        [
            (200, String::new()),
            (200, r#""content-type""#.to_owned()),
            (200, r#""content-type" "x-request-id""#.to_owned()),
            (303, r#""content-type""#.to_owned()),
            (200, String::new()),
        ]
    );
}

/// The verifier decides what must be covered: a request without a header
/// the verifier requires is signed (the client's choice is "when present")
/// and rejected there with `missing_component`.
#[tokio::test]
async fn the_verifiers_required_components_remain_the_floor() {
    let app = App::builder().require(&["content-type"]).start().await;
    let c = client(
        Signer::builder(app.issue())
            .cover("content-type")
            .build()
            .unwrap(),
    );
    let r = c.get(format!("{}/v1/me", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let problem: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(problem["code"], "missing_component");

    let r = c
        .post(format!("{}/v1/orders", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.hits(), 2);
}

/// `cover_strict`: a request without the header is not signed and not sent.
#[tokio::test]
async fn strict_cover_refuses_to_sign_without_the_header() {
    let app = App::start().await;
    let c = client(
        Signer::builder(app.issue())
            .cover_strict("content-type")
            .build()
            .unwrap(),
    );
    let err = c
        .get(format!("{}/v1/me", app.base))
        .send()
        .await
        .unwrap_err();
    let inner = signing_error(&err);
    assert!(matches!(inner, ClientError::Signing(_)), "{inner:?}");
    assert_eq!(inner.code(), Some(ErrorCode::MissingComponent));
    assert_eq!(app.hits(), 0, "nothing was sent");

    let r = c
        .post(format!("{}/v1/orders", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.seen();
    assert_eq!(
        covered_after_floor(seen[0].signature_input.as_deref()),
        r#""content-type""#
    );

    // A 303 drops content-type: the next hop cannot be signed strictly, and
    // is not sent.
    let err = c
        .post(format!("{}/redirect/303?to=/v1/orders/1", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        signing_error(&err).code(),
        Some(ErrorCode::MissingComponent)
    );
    assert_eq!(app.hits(), 2);
}

/// reqwest adds a client's default headers after middleware ran: they are
/// not on the request when it is signed. `cover` then sends them uncovered;
/// `cover_strict` points at the problem.
#[tokio::test]
async fn client_default_headers_are_added_after_signing() {
    let app = App::start().await;
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("content-type", "application/json".parse().unwrap());
    let inner = || {
        client_builder()
            .default_headers(defaults.clone())
            .build()
            .unwrap()
    };
    let key = app.issue();

    let lenient = client_with(
        inner(),
        Signer::builder(key.clone())
            .cover("content-type")
            .build()
            .unwrap(),
    );
    let r = lenient
        .post(format!("{}/v1/orders", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.seen();
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(covered_after_floor(seen[0].signature_input.as_deref()), "");

    let strict = client_with(
        inner(),
        Signer::builder(key)
            .cover_strict("content-type")
            .build()
            .unwrap(),
    );
    let err = strict
        .post(format!("{}/v1/orders", app.base))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        signing_error(&err).code(),
        Some(ErrorCode::MissingComponent)
    );
    assert_eq!(app.hits(), 1);
}
