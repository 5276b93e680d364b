//! A Signer whose MAC is computed outside Rust (a platform key, through
//! `MacKey`) signs exactly as one holding the secret, checks clock-skew
//! challenges through the key, and fails closed when the key fails.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tessera_client::tessera_core::challenge::server_time_header;
use tessera_client::tessera_core::{verify, Policy, ReceivedRequest, MAC_LEN};
use tessera_client::{
    BodyDigest, ClientError, ErrorCode, KeyId, MacError, MacKey, ManualClock, Nonce, SecretKey,
    SignedRequestInfo, Signer, SigningKey,
};

const SECRET: [u8; 32] = [0x5a; 32];
const T0: u64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::new(
        KeyId::new("phone-1").unwrap(),
        &SecretKey::from_bytes(&SECRET).unwrap(),
    )
}

/// The "platform": HMAC-SHA256 computed from the message alone (the RFC 9421
/// helper, not the signer's prepared state), optionally failing.
#[derive(Debug)]
struct Platform {
    id: KeyId,
    fail: AtomicBool,
}

impl MacKey for Platform {
    fn key_id(&self) -> &KeyId {
        &self.id
    }
    fn tag(&self, message: Vec<u8>) -> Result<[u8; MAC_LEN], MacError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(MacError::Failed {
                reason: "KeyPermanentlyInvalidatedException".into(),
            });
        }
        Ok(tessera_client::tessera_core::rfc9421::hmac_sha256(
            &SECRET, &message,
        ))
    }
}

fn platform() -> Arc<Platform> {
    Arc::new(Platform {
        id: KeyId::new("phone-1").unwrap(),
        fail: AtomicBool::new(false),
    })
}

#[test]
fn platform_key_signs_byte_identically_and_verifies() {
    let platform = platform();
    let in_rust = Signer::builder(key())
        .cover("content-type")
        .build()
        .unwrap();
    let external = Signer::builder_with_key(platform.clone())
        .cover("content-type")
        .build()
        .unwrap();
    let headers: http::HeaderMap = [(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    )]
    .into_iter()
    .collect();
    let body = BodyDigest::of(br#"{"qty":1}"#);
    let info = SignedRequestInfo::new(Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").unwrap(), T0, None);
    let view = tessera_client::RequestView::new(
        "POST",
        tessera_client::Scheme::Https,
        "api.example.com",
        "/v1/orders",
        Some("?dry_run=1"),
        &headers,
    )
    .unwrap();
    let a = in_rust.sign_view_at(&view, &body, &info).unwrap();
    let b = external.sign_view_at(&view, &body, &info).unwrap();
    assert_eq!(a, b);

    // A fresh signature from the platform key verifies with the shared secret.
    let mut request = http::Request::post("https://api.example.com/v1/orders")
        .header("content-type", "application/json")
        .body(br#"{"qty":1}"#.to_vec())
        .unwrap();
    external.sign_request(&mut request).unwrap();
    let (parts, body) = request.into_parts();
    let authorities = ["api.example.com".to_owned()];
    let now = external.now();
    verify(
        &ReceivedRequest::from_parts(&parts),
        &BodyDigest::of(&body),
        &Policy::new(now, 300, &authorities),
        |_| Ok(key()),
    )
    .unwrap();
}

#[test]
fn skew_challenges_are_checked_through_the_platform_key() {
    let platform = platform();
    let clock = ManualClock::new(T0);
    let signer = Signer::builder_with_key(platform.clone())
        .clock(clock)
        .build()
        .unwrap();
    let nonce = Nonce::new("BBBBBBBBBBBBBBBBBBBBBB").unwrap();
    let mut response = http::HeaderMap::new();
    let good = server_time_header(&key(), &nonce, T0 + 500);
    response.insert("tessera-server-time", good.parse().unwrap());
    assert_eq!(signer.apply_skew_challenge(&response, &nonce), Ok(500));

    let forged = good.replace(&format!("time={}", T0 + 500), &format!("time={}", T0 - 900));
    response.insert("tessera-server-time", forged.parse().unwrap());
    let err = signer.apply_skew_challenge(&response, &nonce).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadSignature));
    assert_eq!(signer.clock_offset(), 500);

    // A failing key: a named error, the offset untouched.
    platform.fail.store(true, Ordering::Relaxed);
    response.insert("tessera-server-time", good.parse().unwrap());
    assert!(matches!(
        signer.apply_skew_challenge(&response, &nonce),
        Err(ClientError::Mac(MacError::Failed { .. }))
    ));
    assert_eq!(signer.clock_offset(), 500);
}

#[test]
fn a_failing_platform_key_signs_nothing() {
    let platform = platform();
    platform.fail.store(true, Ordering::Relaxed);
    let signer = Signer::builder_with_key(platform).build().unwrap();
    let mut request = http::Request::get("https://api.example.com/v1/me")
        .body(Vec::new())
        .unwrap();
    let err = signer.sign_request(&mut request).unwrap_err();
    assert!(
        matches!(err, ClientError::Mac(MacError::Failed { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the MAC provider failed: KeyPermanentlyInvalidatedException"
    );
    assert!(request.headers().is_empty(), "no header was set");
}
