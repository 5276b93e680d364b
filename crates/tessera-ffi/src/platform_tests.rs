//! The platform-MAC mode through the FFI surface, with a Rust provider
//! standing in for the platform (the foreign suites use the JDK and `hmac`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tessera_core::{KeyId, Nonce, SecretKey, SigningKey};

use crate::{HttpHeader, HttpRequest, MacProvider, MacProviderError, SecretBytes, Signer};

// Not all ASCII hex digits: `Signer::new` refuses hex text as a secret.
const SECRET: [u8; 32] = [0x13; 32];

/// HMAC-SHA256 over the message, or a fixed failure, counting calls.
struct Provider {
    mode: &'static str,
    calls: Arc<AtomicUsize>,
}

impl MacProvider for Provider {
    fn mac(&self, message: Vec<u8>) -> Result<Vec<u8>, MacProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let tag = tessera_core::rfc9421::hmac_sha256(&SECRET, &message);
        match self.mode {
            "ok" => Ok(tag.to_vec()),
            "short" => Ok(tag[..20].to_vec()),
            "verbose" => Err(MacProviderError::Failed {
                reason: "é".repeat(5_000),
            }),
            "unexpected" => Err(uniffi::UnexpectedUniFFICallbackError {
                reason: "not enough bytes remaining in buffer (0 < 4)".into(),
            }
            .into()),
            _ => Err(MacProviderError::Failed {
                reason: "android.security.KeyStoreException: key invalidated".into(),
            }),
        }
    }
}

fn platform(mode: &'static str, covered: &[&str]) -> (Arc<Signer>, Arc<AtomicUsize>) {
    platform_with(mode, covered, false)
}

/// With `required`, every covered header must be present.
fn platform_with(
    mode: &'static str,
    covered: &[&str],
    required: bool,
) -> (Arc<Signer>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let signer = Signer::with_mac_provider(
        "phone-1".into(),
        Box::new(Provider {
            mode,
            calls: calls.clone(),
        }),
        covered.iter().map(|s| (*s).to_owned()).collect(),
        None,
        required,
    )
    .expect("valid signer");
    (signer, calls)
}

fn post() -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: "https://api.example.com/v1/orders?dry_run=1".into(),
        headers: vec![HttpHeader {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        body: Some(br#"{"qty":1}"#.to_vec()),
    }
}

#[test]
fn platform_mode_gives_the_in_rust_headers() {
    let (external, calls) = platform("ok", &["content-type"]);
    let in_rust = Signer::new(
        "phone-1".into(),
        SecretBytes::from(SECRET.to_vec()),
        vec!["content-type".into()],
        None,
        false,
    )
    .expect("valid signer");
    let nonce = "AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let a = in_rust
        .sign_at(post(), 1_700_000_000, nonce.clone(), Some(1_700_000_060))
        .expect("signs");
    let b = external
        .sign_at(post(), 1_700_000_000, nonce, Some(1_700_000_060))
        .expect("signs");
    assert_eq!(a, b);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(external.key_id(), "phone-1");
    assert_eq!(external.covered_headers(), vec!["content-type".to_owned()]);
}

#[test]
fn provider_failures_are_named_errors() {
    let (failing, _) = platform("fail", &[]);
    let e = failing.sign(post()).expect_err("fails");
    assert_eq!(e.code(), "mac_provider_failed");
    assert!(matches!(e, crate::TesseraError::MacFailed { .. }));
    assert!(e.detail().contains("key invalidated"), "{e}");

    // The provider's own text is passed on, but cut to a log line's size.
    let (verbose, _) = platform("verbose", &[]);
    let detail = verbose.sign(post()).expect_err("fails").detail().to_owned();
    assert!(detail.contains(&"é".repeat(300)), "{detail}");
    assert!(!detail.contains(&"é".repeat(301)), "{detail}");
    assert!(detail.contains("(9400 more bytes cut)"), "{detail}");
    // What UniFFI reports for an undeclared exception or an unreadable
    // return says what the provider may have done.
    let (unexpected, _) = platform("unexpected", &[]);
    let detail = unexpected
        .sign(post())
        .expect_err("fails")
        .detail()
        .to_owned();
    assert!(
        detail.contains("other than MacProviderError, or returned no bytes")
            && detail.contains("KeyboardInterrupt"),
        "{detail}"
    );

    let (short, _) = platform("short", &[]);
    let e = short.sign(post()).expect_err("fails");
    assert_eq!(e.code(), "mac_wrong_length");
    assert!(e.detail().contains("20 bytes"), "{e}");

    // A refused request is refused before the provider is asked.
    let (s, calls) = platform_with("ok", &["x-missing"], true);
    assert_eq!(
        s.sign(post()).expect_err("missing").code(),
        "missing_component"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    // Configuration is checked as for `Signer::new`.
    let bad = Signer::with_mac_provider(
        "bad id".into(),
        Box::new(Provider {
            mode: "ok",
            calls: Arc::new(AtomicUsize::new(0)),
        }),
        vec![],
        None,
        false,
    )
    .expect_err("bad key id");
    assert_eq!(bad.code(), "invalid_parameter");
}

#[test]
fn challenges_are_checked_through_the_provider() {
    let (s, calls) = platform("ok", &[]);
    let sent = s.sign(post()).expect("signs");
    let key = SigningKey::new(
        KeyId::new("phone-1").expect("id"),
        &SecretKey::from_bytes(&SECRET).expect("secret"),
    );
    let nonce = Nonce::new(sent.nonce.clone()).expect("nonce");
    let server_time = u64::try_from(s.now() + 700).expect("positive");
    let header = tessera_core::challenge::server_time_header(&key, &nonce, server_time);
    let forged = header.replace(&format!("time={server_time}"), "time=1");
    assert_eq!(
        s.apply_skew_challenge(forged, sent.nonce.clone())
            .expect_err("forged")
            .code(),
        "bad_signature"
    );
    assert_eq!(s.clock_offset(), 0);
    let offset = s
        .apply_skew_challenge(header.clone(), sent.nonce.clone())
        .expect("authentic");
    assert!((699..=701).contains(&offset), "{offset}");
    assert_eq!(calls.load(Ordering::Relaxed), 3);

    let (failing, _) = platform("fail", &[]);
    assert_eq!(
        failing
            .apply_skew_challenge(header, sent.nonce)
            .expect_err("fails")
            .code(),
        "mac_provider_failed"
    );
    assert_eq!(failing.clock_offset(), 0);
}
