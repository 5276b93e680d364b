//! The middleware's clock-skew recovery against stub servers that answer
//! what a real verifier would not: forged or missing challenges, and a
//! second `clock_skew` after a redirect.
#![cfg(feature = "reqwest")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest_middleware::ClientBuilder;
use support::{now, Skewed};
use tessera_client::tessera_core::challenge::{server_time_header, SERVER_TIME_HEADER};
use tessera_client::tessera_core::ParsedSignature;
use tessera_client::{
    client_builder, rejection_code, ErrorCode, KeyId, Nonce, SecretKey, SignRequestMiddleware,
    Signer, SigningKey,
};

fn key() -> SigningKey {
    SigningKey::new(
        KeyId::new("victim-key").unwrap(),
        &SecretKey::from_bytes(&[5; 32]).unwrap(),
    )
}

fn client(signer: Signer) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(client_builder().build().unwrap())
        .with(SignRequestMiddleware::new(signer))
        .build()
}

fn clock_skew(challenge: Option<String>) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        [
            ("content-type", "application/problem+json"),
            (
                "www-authenticate",
                r#"Tessera realm="tessera", error="clock_skew""#,
            ),
            // A Date an attacker would like adopted: never read.
            ("date", "Sun, 09 Sep 2001 01:46:40 GMT"),
        ],
        r#"{"code":"clock_skew","server_time":1000000000}"#,
    )
        .into_response();
    if let Some(c) = challenge {
        resp.headers_mut()
            .insert(SERVER_TIME_HEADER, c.parse().unwrap());
    }
    resp
}

/// Serves `answer(hit number from 1, request headers)` on loopback.
async fn stub(
    answer: impl Fn(usize, &HeaderMap) -> Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move |req: Request<Body>| {
        let hit = h.fetch_add(1, Ordering::SeqCst) + 1;
        let response = answer(hit, req.headers());
        async move { response }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// MAC under a key the attacker made up, bound to the real nonce.
    WrongKey,
    /// The genuine key's MAC, but for another request's nonce (a replayed challenge).
    OtherNonce,
    /// The genuine key's MAC with the time edited afterwards.
    EditedTime,
    /// No challenge at all, only the `Date` header and the problem body's time.
    Missing,
}

#[tokio::test]
async fn forged_or_missing_skew_challenges_are_refused_and_not_retried() {
    for forgery in [
        Forgery::WrongKey,
        Forgery::OtherNonce,
        Forgery::EditedTime,
        Forgery::Missing,
    ] {
        let (base, hits) = stub(move |_, headers| {
            let parsed = ParsedSignature::from_fields(headers).unwrap();
            let attacker_time = 1_000_000_000; // 2001: would make every later signature stale
            let challenge = match forgery {
                Forgery::WrongKey => {
                    let made_up = SigningKey::new(
                        parsed.key_id().clone(),
                        &SecretKey::from_bytes(&[6; 32]).unwrap(),
                    );
                    Some(server_time_header(&made_up, parsed.nonce(), attacker_time))
                }
                Forgery::OtherNonce => {
                    let other = Nonce::generate(&mut rand::rng());
                    Some(server_time_header(&key(), &other, attacker_time))
                }
                Forgery::EditedTime => Some(
                    server_time_header(&key(), parsed.nonce(), now())
                        .replacen("time=", "time=1", 1),
                ),
                Forgery::Missing => None,
            };
            clock_skew(challenge)
        })
        .await;
        let signer = Signer::builder(key()).clock(Skewed(0)).build().unwrap();
        let resp = client(signer.clone())
            .get(format!("{base}/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{forgery:?}");
        assert_eq!(rejection_code(resp.headers()), Some(ErrorCode::ClockSkew));
        assert_eq!(
            signer.clock_offset(),
            0,
            "{forgery:?}: neither the forged time nor Date was adopted"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{forgery:?}: no retry");
    }
}

/// The answers, in order: a valid `clock_skew` challenge saying the client
/// is 600 s slow, a 302 to `/second`, then a valid `clock_skew` challenge
/// saying it is 600 s fast, then 200 to anything else. Every request's
/// nonce and `created` are recorded.
#[tokio::test]
async fn one_skew_retry_per_request_across_redirects() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    let (base, hits) = stub(move |hit, headers| {
        let parsed = ParsedSignature::from_fields(headers).unwrap();
        record
            .lock()
            .unwrap()
            .push((parsed.nonce().to_string(), parsed.created()));
        let challenge = |time: u64| Some(server_time_header(&key(), parsed.nonce(), time));
        match hit {
            1 => clock_skew(challenge(now() + 600)),
            2 => (StatusCode::FOUND, [("location", "/second")]).into_response(),
            3 => clock_skew(challenge(now() - 600)),
            _ => "ok".into_response(),
        }
    })
    .await;
    let s = Signer::builder(key()).clock(Skewed(0)).build().unwrap();
    let c = client(s.clone());
    let r = c.get(format!("{base}/first")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rejection_code(r.headers()), Some(ErrorCode::ClockSkew));
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
    // Each of the three was signed afresh: new nonces, and the retry and the
    // redirect hop carry the corrected time.
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].0 != sent[1].0 && sent[1].0 != sent[2].0 && sent[0].0 != sent[2].0);
    assert!(sent[0].1.abs_diff(now()) <= 2);
    assert!(sent[1].1.abs_diff(now() + 600) <= 2);
    assert!(sent[2].1.abs_diff(now() + 600) <= 2);

    // A new logical request has its own budget.
    let r = c.get(format!("{base}/again")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
