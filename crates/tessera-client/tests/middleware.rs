//! `SignRequestMiddleware` against tessera-server's verifying tower layer,
//! over loopback: every method and body, streaming bodies, clock-skew
//! recovery, redirects, and a fresh signature for every attempt.
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashSet;

use axum::body::Bytes;
use reqwest_middleware::ClientBuilder;
use support::{App, Skewed};
use tessera_client::{
    client_builder, rejection_code, BodyDigest, BodyHasher, ClientError, ErrorCode, ManualClock,
    PrecomputedDigest, SignRequestMiddleware, SignedRequestInfo, Signer, SigningKey,
};

const T0: u64 = 1_700_000_000;

fn signer(key: SigningKey, skew: i64) -> Signer {
    Signer::builder(key).clock(Skewed(skew)).build().unwrap()
}

fn client(mw: SignRequestMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(client_builder().build().unwrap())
        .with(mw)
        .build()
}

/// No nonce and no `Signature` value reached the server twice.
fn assert_all_fresh(app: &App) {
    let seen = app.seen();
    let nonces: HashSet<_> = seen.iter().filter_map(|s| s.nonce.clone()).collect();
    let signatures: HashSet<_> = seen.iter().filter_map(|s| s.signature.clone()).collect();
    assert_eq!(nonces.len(), seen.len(), "{seen:#?}");
    assert_eq!(signatures.len(), seen.len(), "{seen:#?}");
}

#[tokio::test]
async fn signs_every_method_and_body() {
    let app = App::start().await;
    let c = client(SignRequestMiddleware::new(signer(app.issue(), 0)));
    let r = c
        .get(format!("{}/a%20b/c?x=1&x=2&e=&p=a+b", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.extensions().get::<SignedRequestInfo>().is_some());
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
            .request(method.clone(), format!("{}/items/7", app.base))
            .body(vec![1u8; 70_000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.text().await.unwrap(), format!("{method} /items/7 70000"));
    }
    assert_eq!(app.hits(), 7);
    assert_all_fresh(&app);
}

#[tokio::test]
async fn streaming_bodies_need_a_digest() {
    let app = App::start().await;
    let c = client(SignRequestMiddleware::new(signer(app.issue(), 0)));
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
        .post(format!("{}/upload", app.base))
        .body(stream())
        .send()
        .await
        .unwrap_err();
    let inner = match &err {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<ClientError>().unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(inner, &ClientError::StreamingBodyWithoutDigest);
    assert_eq!(app.hits(), 0, "nothing was sent unsigned");

    let mut hasher = BodyHasher::new();
    hasher.update(b"hello ");
    hasher.update(b"world");
    let r = c
        .post(format!("{}/upload", app.base))
        .body(stream())
        .with_extension(PrecomputedDigest::new(hasher.finish()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST /upload 11");

    // A wrong digest is trusted, and the verifier says so.
    let r = c
        .post(format!("{}/upload", app.base))
        .body(stream())
        .with_extension(PrecomputedDigest::new(BodyDigest::of(b"hello")))
        .send()
        .await
        .unwrap();
    assert_eq!(rejection_code(r.headers()), Some(ErrorCode::DigestMismatch));
}

/// A `Host` header that names another authority than the URL is refused
/// before anything is sent: hyper would send it in origin-form, and the
/// verifier would put that `Host` in the base instead of the URL's
/// authority. One that agrees once normalized is sent and verifies.
#[tokio::test]
async fn a_host_header_that_contradicts_the_url_is_refused_before_sending() {
    let app = App::start().await;
    let c = client(SignRequestMiddleware::new(signer(app.issue(), 0)));
    let err = c
        .get(format!("{}/me", app.base))
        .header("host", "api.example.com")
        .send()
        .await
        .unwrap_err();
    let inner = match &err {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<ClientError>().unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(inner.code(), Some(ErrorCode::AuthorityMismatch));
    let text = inner.to_string();
    assert!(
        text.contains("`api.example.com`") && text.contains(&format!("`{}`", app.addr)),
        "{text}"
    );
    assert_eq!(app.hits(), 0, "nothing was sent");

    let r = c
        .get(format!("{}/me", app.base))
        .header("host", format!(" {} ", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.hits(), 1);
}

/// A bare reqwest client with a streaming body: `Signer::sign` with the
/// digest and `reqwest::Url`, then `apply_to_headers`.
#[tokio::test]
async fn a_bare_reqwest_request_with_a_streamed_body_signs_with_its_digest() {
    let app = App::start().await;
    let s = signer(app.issue(), 0);
    let bare = client_builder().build().unwrap();
    let chunks = vec![Ok::<_, std::io::Error>(http_body::Frame::data(
        Bytes::from_static(b"streamed"),
    ))];
    let mut req = bare
        .put(format!("{}/blob?v=2", app.base))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(
            futures_util::stream::iter(chunks),
        )))
        .build()
        .unwrap();
    assert_eq!(
        s.sign_reqwest(&mut req).unwrap_err(),
        ClientError::StreamingBodyWithoutDigest
    );
    let signed = s
        .sign(
            req.method().as_str(),
            req.url(),
            req.headers(),
            &BodyDigest::of(b"streamed"),
        )
        .unwrap();
    signed.apply_to_headers(req.headers_mut());
    let r = bare.execute(req).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT /blob?v=2 8");
}

#[tokio::test]
async fn recovers_from_a_fast_or_slow_clock_once() {
    for skew in [600, -600] {
        let app = App::start().await;
        let s = signer(app.issue(), skew);
        let c = client(SignRequestMiddleware::new(s.clone()));
        let r = c
            .post(format!("{}/x", app.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        let info = r.extensions().get::<SignedRequestInfo>().cloned().unwrap();
        assert_eq!(r.status(), 200, "skew {skew}");
        let seen = app.seen();
        assert_eq!(
            seen.iter().map(|s| s.status).collect::<Vec<_>>(),
            [401, 200]
        );
        // The accepted request is the retry: its own nonce, corrected time.
        assert_eq!(seen[1].nonce.as_deref(), Some(info.nonce.as_str()));
        assert!(info.created.abs_diff(support::now()) <= 2);
        assert!(
            (s.clock_offset() + skew).abs() <= 2,
            "offset {}",
            s.clock_offset()
        );
        // Later and concurrent requests use the learned offset: no more rejections.
        let c2 = client(SignRequestMiddleware::new(s.clone()));
        let rs = futures_util::future::join_all(
            (0..10).map(|i| c2.get(format!("{}/y/{i}", app.base)).send()),
        )
        .await;
        assert!(rs.into_iter().all(|r| r.unwrap().status() == 200));
        assert_eq!(app.hits(), 12);
        assert_all_fresh(&app);
    }
}

/// Without the middleware: the verifier's `clock_skew` answer carries a
/// challenge this signer verifies and adopts; the request signed again is
/// accepted, the old signature is never resent.
#[tokio::test]
async fn a_bare_client_recovers_from_clock_skew_by_hand() {
    let app = App::start().await;
    let s = signer(app.issue(), -600);
    let bare = client_builder().build().unwrap();
    let request = || {
        bare.post(format!("{}/orders", app.base))
            .body("{}")
            .build()
            .unwrap()
    };
    let mut first = request();
    let sent = s.sign_reqwest(&mut first).unwrap();
    let r = bare.execute(first).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rejection_code(r.headers()), Some(ErrorCode::ClockSkew));
    // A challenge bound to another nonce is refused and changes nothing.
    let other = tessera_client::Nonce::generate(&mut rand::rng());
    assert!(matches!(
        s.apply_skew_challenge(r.headers(), &other),
        Err(ClientError::InvalidChallenge(_))
    ));
    assert_eq!(s.clock_offset(), 0);
    let offset = s.apply_skew_challenge(r.headers(), &sent.nonce).unwrap();
    assert!((offset - 600).abs() <= 2, "offset {offset}");
    let problem: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(problem["code"], "clock_skew");

    let mut retry = request();
    let info = s.sign_reqwest(&mut retry).unwrap();
    assert_ne!(info.nonce, sent.nonce);
    assert!(info.created.abs_diff(support::now()) <= 2);
    let r = bare.execute(retry).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "POST /orders 2");
    assert_all_fresh(&app);
}

/// The retry after `clock_skew` is a new signature: a new nonce, a
/// `created` read again (with the adopted offset), a different `Signature`.
#[tokio::test]
async fn the_skew_retry_is_signed_afresh() {
    let server_clock = ManualClock::new(T0 + 600);
    let app = App::builder().clock(server_clock).start().await;
    let s = Signer::builder(app.issue())
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    let c = client(SignRequestMiddleware::new(s.clone()));
    let r = c
        .put(format!("{}/doc/1", app.base))
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT /doc/1 2");
    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].status, seen[1].status), (401, 200));
    assert_eq!(seen[0].created, Some(T0));
    assert_eq!(seen[1].created, Some(T0 + 600));
    assert_ne!(seen[0].nonce, seen[1].nonce);
    assert_ne!(seen[0].signature, seen[1].signature);
    assert_eq!(s.clock_offset(), 600);
}

/// Each redirect hop is a new signature: `created` is read at each hop
/// (the server's clock, shared with the signer, moves one second per
/// request), with a new nonce each time.
#[tokio::test]
async fn each_redirect_hop_is_signed_afresh() {
    let clock = ManualClock::new(T0);
    let app = App::builder()
        .clock(clock.clone())
        .tick(clock.clone())
        .start()
        .await;
    let s = Signer::builder(app.issue()).clock(clock).build().unwrap();
    let c = client(SignRequestMiddleware::new(s));
    let r = c
        .post(format!(
            "{}/redirect/307?to=/redirect/303?to=/landing",
            app.base
        ))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /landing 0");
    let seen = app.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.as_str(), s.status, s.created))
            .collect::<Vec<_>>(),
        [
            ("POST", 307, Some(T0)),
            ("POST", 303, Some(T0 + 1)),
            ("GET", 200, Some(T0 + 2)),
        ]
    );
    assert_all_fresh(&app);
}

#[tokio::test]
async fn same_origin_redirects_are_followed_and_re_signed() {
    let app = App::start().await;
    let key = app.issue();
    let c = client(SignRequestMiddleware::new(signer(key.clone(), 0)));
    // 302 turns POST into a bodiless GET.
    let r = c
        .post(format!("{}/redirect/302?to=/target%2Fx?q=1", app.base))
        .header("content-type", "text/plain")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /target%2Fx?q=1 0");
    // 307 keeps the method and body.
    let r = c
        .put(format!("{}/redirect/307?to=/kept", app.base))
        .body("abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT /kept 4");
    // A chain longer than the limit returns the last 3xx.
    let c1 = client(SignRequestMiddleware::new(signer(key, 0)).max_redirects(1));
    let r = c1
        .get(format!("{}/redirect/302?to=/redirect/302", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(app.hits(), 6);
    assert!(app.seen().iter().all(|s| s.status != 401), "all verified");
    assert_all_fresh(&app);
}

#[tokio::test]
async fn cross_origin_redirects_are_not_followed_unless_allowed() {
    let app = App::start().await;
    let other = App::builder().keys(app.keys.clone()).start().await;
    let c = client(SignRequestMiddleware::new(signer(app.issue(), 0)));
    let to = format!("{}/echo", other.base);
    let r = c
        .get(format!("{}/redirect/302?to={to}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], to.as_str());
    assert_eq!(other.hits(), 0, "nothing reached the other origin");

    let allowed = client(
        SignRequestMiddleware::new(signer(app.issue(), 0))
            .allow_redirects_to(&other.base.parse().unwrap()),
    );
    let r = allowed
        .get(format!("{}/redirect/307?to={to}", app.base))
        .header("authorization", "Bearer not-for-the-other-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "GET /echo 0");
    let seen = other.seen();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn reqwest_own_redirects_would_send_a_stale_signature() {
    let app = App::start().await;
    let other = App::start().await;

    // The default policy follows below the middleware: the second hop carries
    // the signature made for the first path and is rejected...
    let default = ClientBuilder::new(reqwest::Client::new())
        .with(SignRequestMiddleware::new(signer(app.issue(), 0)))
        .build();
    let r = default
        .get(format!("{}/redirect/302?to=/echo", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rejection_code(r.headers()), Some(ErrorCode::BadSignature));
    let seen = app.seen();
    assert_eq!(seen[1].signature, seen[0].signature, "resent as is");
    // ...and a cross-origin hop leaks it to the other origin.
    let r = default
        .get(format!("{}/redirect/302?to={}/echo", app.base, other.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(other.seen()[0].signature.is_some());

    // The client from client_builder() does not follow at all: the 3xx comes back.
    let bare = client_builder().build().unwrap();
    let mut req = bare
        .get(format!("{}/redirect/302?to={}/echo", app.base, other.base))
        .build()
        .unwrap();
    signer(app.issue(), 0).sign_reqwest(&mut req).unwrap();
    let r = bare.execute(req).await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(other.hits(), 1);
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
    let app = App::start().await;
    let c = ClientBuilder::new(client_builder().build().unwrap())
        .with(Twice)
        .with(SignRequestMiddleware::new(signer(app.issue(), 0)))
        .build();
    let r = c
        .post(format!("{}/retry", app.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.hits(), 2);
    assert_all_fresh(&app);

    // Placed the other way round, the retry resends the signature: replayed.
    let wrong = ClientBuilder::new(client_builder().build().unwrap())
        .with(SignRequestMiddleware::new(signer(app.issue(), 0)))
        .with(Twice)
        .build();
    let r = wrong
        .post(format!("{}/retry", app.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(rejection_code(r.headers()), Some(ErrorCode::Replayed));
}

/// A key past its budget gets `429 rate_limited`: by default the response
/// comes back with a typed [`RateLimited`] (its `Retry-After` usable as is);
/// with `wait_on_rate_limit` the middleware waits and retries once, signed
/// afresh, and the retry is accepted.
#[tokio::test]
async fn rate_limited_is_typed_and_optionally_waited_for() {
    use std::time::{Duration, Instant};
    use tessera_client::RateLimited;
    use tessera_ratelimit::{MemoryRateStore, Plan, RateLimiter};

    let plan = Plan::new("default", "1/s".parse().unwrap(), 1).unwrap();
    let limiter = RateLimiter::builder(MemoryRateStore::default())
        .default_plan(plan)
        .build();
    let app = App::builder().admission(limiter).start().await;
    let key = app.issue();

    let plain = client(SignRequestMiddleware::new(signer(key.clone(), 0)));
    let first = plain.get(format!("{}/x", app.base)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().contains_key("ratelimit"));
    let second = plain.get(format!("{}/x", app.base)).send().await.unwrap();
    assert_eq!(second.status(), 429);
    let limited = second
        .extensions()
        .get::<RateLimited>()
        .cloned()
        .expect("typed");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(limited.policy(), Some("default"));
    let problem: serde_json::Value =
        serde_json::from_slice(&second.bytes().await.unwrap()).unwrap();
    assert_eq!(problem["code"], "rate_limited");

    // Waits (up to 5 s), retries once signed afresh: accepted.
    let waiting = client(
        SignRequestMiddleware::new(signer(key.clone(), 0))
            .wait_on_rate_limit(Duration::from_secs(5)),
    );
    let started = Instant::now();
    let _ = waiting.get(format!("{}/x", app.base)).send().await.unwrap();
    let r = waiting.get(format!("{}/x", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "retried after Retry-After");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_all_fresh(&app);

    // A cap below Retry-After returns the 429 at once.
    let impatient = client(
        SignRequestMiddleware::new(signer(key, 0)).wait_on_rate_limit(Duration::from_millis(10)),
    );
    let _ = impatient
        .get(format!("{}/x", app.base))
        .send()
        .await
        .unwrap();
    let r = impatient
        .get(format!("{}/x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}
