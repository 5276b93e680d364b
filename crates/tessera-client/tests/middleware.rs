//! SignRequestMiddleware against a small axum server that verifies with
//! tessera-core directly (the full server layer is exercised in the
//! workspace's `tests/` crate).
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest_middleware::ClientBuilder;
use tessera_client::{
    client_builder, ClientError, Clock, PrecomputedDigest, SignRequestMiddleware, Signer,
};
use tessera_core::challenge::{server_time_header, SERVER_TIME_HEADER};
use tessera_core::{
    BodyDigest, ErrorCode, KeyId, ParsedSignature, Policy, ReceivedRequest, Scheme, SecretKey,
    SigningKey,
};

fn key() -> SigningKey {
    SigningKey::new(
        KeyId::new("k1").unwrap(),
        &SecretKey::from_bytes(&[3; 32]).unwrap(),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Debug)]
struct Skewed(i64);

impl Clock for Skewed {
    fn now_unix(&self) -> u64 {
        now().saturating_add_signed(self.0)
    }
}

#[derive(Default)]
struct State {
    authority: String,
    other_origin: String,
    forge_challenge: bool,
    nonces: Mutex<HashSet<String>>,
    hits: AtomicUsize,
    signature_headers_seen: AtomicUsize,
}

fn problem(code: ErrorCode, challenge: Option<String>) -> Response {
    let mut resp = (
        StatusCode::from_u16(code.http_status()).unwrap(),
        [("content-type", "application/problem+json")],
        format!(r#"{{"code":"{code}"}}"#),
    )
        .into_response();
    resp.headers_mut().insert(
        "www-authenticate",
        format!(r#"Tessera realm="test", error="{code}""#)
            .parse()
            .unwrap(),
    );
    if let Some(c) = challenge {
        resp.headers_mut()
            .insert(SERVER_TIME_HEADER, c.parse().unwrap());
    }
    resp
}

/// Verifies like a tessera-v1 server, then routes: `/redirect/<status>?to=<path or url>` redirects,
/// anything else echoes `METHOD path?query body-length`.
async fn handle(state: Arc<State>, req: Request<Body>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    if parts.headers.contains_key("signature") {
        state.signature_headers_seen.fetch_add(1, Ordering::SeqCst);
    }
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    let received = ReceivedRequest::from_parts(&parts);
    let parsed = match ParsedSignature::from_fields(&parts.headers) {
        Ok(p) => p,
        Err(e) => return problem(e.code(), None),
    };
    let authorities = [state.authority.clone()];
    let policy = Policy::new(now(), 300, &authorities).with_scheme(Scheme::Http);
    if let Err(e) = parsed.verify_with_key(&key(), &received, &BodyDigest::of(&body), &policy) {
        let challenge = (e.code() == ErrorCode::ClockSkew).then(|| {
            let signing = if state.forge_challenge {
                SigningKey::new(
                    KeyId::new("k1").unwrap(),
                    &SecretKey::from_bytes(&[4; 32]).unwrap(),
                )
            } else {
                key()
            };
            server_time_header(&signing, parsed.nonce(), now())
        });
        return problem(e.code(), challenge);
    }
    if !state
        .nonces
        .lock()
        .unwrap()
        .insert(parsed.nonce().to_string())
    {
        return problem(ErrorCode::Replayed, None);
    }
    let path = parts.uri.path();
    if let Some(status) = path.strip_prefix("/redirect/") {
        let to = parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("to="))
            .unwrap_or("/echo");
        let to = to.replace("OTHER", &state.other_origin);
        return (
            StatusCode::from_u16(status.parse().unwrap()).unwrap(),
            [("location", to)],
        )
            .into_response();
    }
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    format!("{} {pq} {}", parts.method, body.len()).into_response()
}

async fn serve(forge_challenge: bool, other_origin: String) -> (String, Arc<State>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let state = Arc::new(State {
        authority: authority.clone(),
        other_origin,
        forge_challenge,
        ..State::default()
    });
    let s = state.clone();
    let app = Router::new().fallback(move |req: Request<Body>| handle(s.clone(), req));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{authority}"), state)
}

fn signer(skew: i64) -> Signer {
    Signer::builder(key()).clock(Skewed(skew)).build().unwrap()
}

fn client(mw: SignRequestMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(client_builder().build().unwrap())
        .with(mw)
        .build()
}

#[tokio::test]
async fn signs_every_method_and_body() {
    let (base, state) = serve(false, String::new()).await;
    let c = client(SignRequestMiddleware::new(signer(0)));
    let r = c
        .get(format!("{base}/a%20b/c?x=1&x=2&e=&p=a+b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .extensions()
        .get::<tessera_client::SignedRequestInfo>()
        .is_some());
    assert_eq!(r.text().await.unwrap(), "GET /a%20b/c?x=1&x=2&e=&p=a+b 0");
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
        // Methods are case-sensitive: these go on the wire, and are signed, as written.
        reqwest::Method::from_bytes(b"get").unwrap(),
        reqwest::Method::from_bytes(b"PaTcH").unwrap(),
    ] {
        let r = c
            .request(method.clone(), format!("{base}/items/7"))
            .body(vec![1u8; 70_000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.text().await.unwrap(), format!("{method} /items/7 70000"));
    }
    assert_eq!(state.hits.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn streaming_bodies_need_a_digest() {
    let (base, state) = serve(false, String::new()).await;
    let c = client(SignRequestMiddleware::new(signer(0)));
    let stream = || {
        let chunks = vec![
            Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"hello "))),
            Ok(http_body::Frame::data(Bytes::from_static(b"world"))),
        ];
        reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )))
    };
    let err = c
        .post(format!("{base}/upload"))
        .body(stream())
        .send()
        .await
        .unwrap_err();
    let inner = match &err {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<ClientError>().unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(inner, &ClientError::StreamingBodyWithoutDigest);
    assert_eq!(
        state.hits.load(Ordering::SeqCst),
        0,
        "nothing was sent unsigned"
    );

    let r = c
        .post(format!("{base}/upload"))
        .body(stream())
        .with_extension(PrecomputedDigest(BodyDigest::of(b"hello world")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST /upload 11");
}

#[tokio::test]
async fn recovers_from_a_fast_or_slow_clock_once() {
    for skew in [600, -600] {
        let (base, state) = serve(false, String::new()).await;
        let s = signer(skew);
        let c = client(SignRequestMiddleware::new(s.clone()));
        let r = c.post(format!("{base}/x")).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 200, "skew {skew}");
        assert_eq!(state.hits.load(Ordering::SeqCst), 2);
        assert!(
            (s.clock_offset() + skew).abs() <= 2,
            "offset {}",
            s.clock_offset()
        );
        // Later and concurrent requests use the learned offset: no more rejections.
        let c2 = client(SignRequestMiddleware::new(s.clone()));
        let rs =
            futures_util::future::join_all((0..10).map(|i| c2.get(format!("{base}/y/{i}")).send()))
                .await;
        assert!(rs.into_iter().all(|r| r.unwrap().status() == 200));
        assert_eq!(state.hits.load(Ordering::SeqCst), 12);
    }
}

#[tokio::test]
async fn a_forged_skew_challenge_is_refused() {
    let (base, state) = serve(true, String::new()).await;
    let s = signer(600);
    let c = client(SignRequestMiddleware::new(s.clone()));
    let r = c.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        tessera_client::rejection_code(r.headers()),
        Some(ErrorCode::ClockSkew)
    );
    assert_eq!(s.clock_offset(), 0);
    assert_eq!(state.hits.load(Ordering::SeqCst), 1, "no retry");
}

#[tokio::test]
async fn same_origin_redirects_are_followed_and_re_signed() {
    let (base, state) = serve(false, String::new()).await;
    let c = client(SignRequestMiddleware::new(signer(0)));
    // 302 turns POST into a bodiless GET.
    let r = c
        .post(format!("{base}/redirect/302?to=/target%2Fx?q=1"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /target%2Fx?q=1 0");
    // 307 keeps the method and body.
    let r = c
        .put(format!("{base}/redirect/307?to=/kept"))
        .body("abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT /kept 4");
    // A chain longer than the limit returns the last 3xx.
    let c1 = client(SignRequestMiddleware::new(signer(0)).max_redirects(1));
    let r = c1
        .get(format!("{base}/redirect/302?to=/redirect/302"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(state.hits.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn cross_origin_redirects_are_not_followed_unless_allowed() {
    let (other, other_state) = serve(false, String::new()).await;
    let (base, _) = serve(false, other.clone()).await;
    let c = client(SignRequestMiddleware::new(signer(0)));
    let r = c
        .get(format!("{base}/redirect/302?to=OTHER/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], format!("{other}/echo").as_str());
    assert_eq!(
        other_state.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the other origin"
    );

    let allowed =
        client(SignRequestMiddleware::new(signer(0)).allow_redirects_to(&other.parse().unwrap()));
    let r = allowed
        .get(format!("{base}/redirect/307?to=OTHER/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "GET /echo 0");
    assert_eq!(other_state.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn reqwest_own_redirects_would_send_a_stale_signature() {
    let (other, other_state) = serve(false, String::new()).await;
    let (base, _) = serve(false, other.clone()).await;

    // The default policy follows below the middleware: the second hop carries
    // the signature made for the first path and is rejected...
    let default = ClientBuilder::new(reqwest::Client::new())
        .with(SignRequestMiddleware::new(signer(0)))
        .build();
    let r = default
        .get(format!("{base}/redirect/302?to=/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        tessera_client::rejection_code(r.headers()),
        Some(ErrorCode::BadSignature)
    );
    // ...and a cross-origin hop leaks it to the other origin.
    let r = default
        .get(format!("{base}/redirect/302?to=OTHER/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(other_state.signature_headers_seen.load(Ordering::SeqCst), 1);

    // The client from client_builder() does not follow at all: the 3xx comes back.
    let bare = client_builder().build().unwrap();
    let s = signer(0);
    let mut req = bare
        .get(format!("{base}/redirect/302?to=OTHER/echo"))
        .build()
        .unwrap();
    s.sign_reqwest(&mut req).unwrap();
    let r = bare.execute(req).await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(other_state.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retried_attempts_get_fresh_nonces() {
    // A middleware placed before the signer that sends every request twice,
    // as a retry middleware would: both attempts must be accepted.
    struct Twice;
    #[async_trait::async_trait]
    impl reqwest_middleware::Middleware for Twice {
        async fn handle(
            &self,
            req: reqwest::Request,
            ext: &mut http::Extensions,
            next: reqwest_middleware::Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            let first = next.clone().run(req.try_clone().unwrap(), ext).await?;
            assert_eq!(first.status(), 200);
            next.run(req, ext).await
        }
    }
    let (base, state) = serve(false, String::new()).await;
    let c = ClientBuilder::new(client_builder().build().unwrap())
        .with(Twice)
        .with(SignRequestMiddleware::new(signer(0)))
        .build();
    let r = c
        .post(format!("{base}/retry"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(state.nonces.lock().unwrap().len(), 2);
}

/// A server that answers, in order: a valid `clock_skew` challenge saying
/// the client is 600 s slow, a 302 to `/second`, then a valid `clock_skew`
/// challenge saying it is 600 s fast, then 200 to anything else.
async fn serve_skew_redirect_skew() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move |req: Request<Body>| {
        let hit = h.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let parsed = ParsedSignature::from_fields(req.headers()).unwrap();
            let challenge = |time: u64| Some(server_time_header(&key(), parsed.nonce(), time));
            match hit {
                1 => problem(ErrorCode::ClockSkew, challenge(now() + 600)),
                2 => (StatusCode::FOUND, [("location", "/second")]).into_response(),
                3 => problem(ErrorCode::ClockSkew, challenge(now() - 600)),
                _ => "ok".into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn one_skew_retry_per_request_across_redirects() {
    let (base, hits) = serve_skew_redirect_skew().await;
    let s = signer(0);
    let c = client(SignRequestMiddleware::new(s.clone()));
    let r = c.get(format!("{base}/first")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        tessera_client::rejection_code(r.headers()),
        Some(ErrorCode::ClockSkew)
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the second clock_skew is not retried"
    );
    // The first challenge's offset was adopted; the second one was not.
    assert!(
        (s.clock_offset() - 600).abs() <= 2,
        "offset {}",
        s.clock_offset()
    );

    // A new logical request has its own budget.
    let r = c.get(format!("{base}/again")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
