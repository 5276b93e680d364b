//! A hand-rolled server that answers every request with `clock_skew` and a
//! `Tessera-Server-Time` challenge it cannot legitimately produce.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tessera_client::{rejection_code, Signer};
use tessera_core::challenge::server_time_header;
use tessera_core::{ErrorCode, KeyId, Nonce, ParsedSignature, SecretKey, SigningKey};
use tessera_e2e::{serve, signed_client, SkewedClock};

#[derive(Clone, Copy)]
enum Forgery {
    /// MAC under a key the attacker made up, bound to the real nonce.
    WrongKey,
    /// The genuine key's MAC, but for another request's nonce (a replayed challenge).
    OtherNonce,
    /// The genuine key's MAC with the time edited afterwards.
    EditedTime,
}

fn real_key() -> SigningKey {
    SigningKey::new(
        KeyId::new("victim-key").unwrap(),
        &SecretKey::from_bytes(&[5; 32]).unwrap(),
    )
}

async fn forging_server(forgery: Forgery) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let parsed = ParsedSignature::from_fields(&headers).unwrap();
            let attacker_time = 1_000_000_000; // 2001: would make every later signature "expired"
            let challenge = match forgery {
                Forgery::WrongKey => {
                    let made_up = SigningKey::new(
                        parsed.key_id().clone(),
                        &SecretKey::from_bytes(&[6; 32]).unwrap(),
                    );
                    server_time_header(&made_up, parsed.nonce(), attacker_time)
                }
                Forgery::OtherNonce => {
                    let other = Nonce::generate(&mut rand::rng());
                    server_time_header(&real_key(), &other, attacker_time)
                }
                Forgery::EditedTime => {
                    server_time_header(&real_key(), parsed.nonce(), tessera_e2e::now())
                        .replacen("time=", "time=1", 1)
                }
            };
            (
                StatusCode::UNAUTHORIZED,
                [
                    ("content-type", "application/problem+json".to_owned()),
                    (
                        "www-authenticate",
                        r#"Tessera realm="tessera", error="clock_skew""#.to_owned(),
                    ),
                    ("tessera-server-time", challenge),
                    ("date", "Sun, 09 Sep 2001 01:46:40 GMT".to_owned()),
                ],
                r#"{"code":"clock_skew"}"#,
            )
                .into_response()
        }
    });
    let addr = serve(app).await.unwrap();
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn forged_skew_challenges_are_refused() {
    for forgery in [Forgery::WrongKey, Forgery::OtherNonce, Forgery::EditedTime] {
        let (base, hits) = forging_server(forgery).await;
        let signer = Signer::builder(real_key())
            .clock(SkewedClock(0))
            .build()
            .unwrap();
        let client = signed_client(signer.clone());
        let resp = client.get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(rejection_code(resp.headers()), Some(ErrorCode::ClockSkew));
        assert_eq!(
            signer.clock_offset(),
            0,
            "the forged time (and the Date header) were not adopted"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "no retry after a forged challenge"
        );
    }
}
