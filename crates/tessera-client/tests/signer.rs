//! The Signer against tessera-core's verifier, without a network.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_client::tessera_core::challenge::{server_time_header, SERVER_TIME_HEADER};
use tessera_client::tessera_core::{verify, Policy, ReceivedRequest};
use tessera_client::{
    BodyDigest, ClientError, Clock, ErrorCode, KeyId, Nonce, RequestView, Scheme, SecretKey,
    SignedRequestInfo, Signer, SigningKey,
};

#[derive(Debug, Clone)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const T0: u64 = 1_700_000_000;

fn key() -> SigningKey {
    SigningKey::new(
        KeyId::new("k1").unwrap(),
        &SecretKey::from_bytes(&[9; 32]).unwrap(),
    )
}

fn signer_at(t: u64) -> (Signer, TestClock) {
    let clock = TestClock(Arc::new(AtomicU64::new(t)));
    let signer = Signer::builder(key())
        .clock(clock.clone())
        .cover_all(["content-type", "user-agent"])
        .build()
        .unwrap();
    (signer, clock)
}

fn check(
    parts: &http::request::Parts,
    body: &[u8],
    now: u64,
) -> Result<tessera_client::tessera_core::ParsedSignature, ErrorCode> {
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy::new(now, 300, &authorities);
    verify(
        &ReceivedRequest::from_parts(parts),
        &BodyDigest::of(body),
        &policy,
        |_| Ok(key()),
    )
    .map_err(|e| e.code())
}

fn request(body: &[u8]) -> http::Request<Vec<u8>> {
    http::Request::post("https://API.example.com:443/v1/users/123/orders?limit=50&cursor=abc%2Fdef")
        .header("content-type", "application/json")
        .header("user-agent", "  tessera-test/1  ")
        .body(body.to_vec())
        .unwrap()
}

#[test]
fn signed_requests_verify_and_tampering_fails() {
    let (signer, _) = signer_at(T0);
    let body = br#"{"qty":1}"#;
    let mut req = request(body);
    let info = signer.sign_request(&mut req).unwrap();
    assert_eq!(info.created, T0);
    assert_eq!(info.expires, None);
    let (parts, body) = req.into_parts();
    let parsed = check(&parts, &body, T0 + 10).unwrap();
    assert_eq!(parsed.nonce(), &info.nonce);
    assert_eq!(parsed.components().len(), 7);
    assert_eq!(check(&parts, b"{}", T0), Err(ErrorCode::DigestMismatch));
    assert_eq!(check(&parts, &body, T0 + 301), Err(ErrorCode::ClockSkew));

    let mut tampered = parts.clone();
    tampered
        .headers
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(check(&tampered, &body, T0), Err(ErrorCode::BadSignature));
    let mut moved = parts.clone();
    moved.uri = "https://api.example.com/v1/users/124/orders?limit=50&cursor=abc%2Fdef"
        .parse()
        .unwrap();
    assert_eq!(check(&moved, &body, T0), Err(ErrorCode::BadSignature));
}

#[test]
fn sign_returns_headers_and_a_streamed_digest_agrees() {
    let (signer, _) = signer_at(T0);
    let body = vec![0xa5u8; 100_000];
    let (mut parts, ()) = request(b"").map(|_| ()).into_parts();
    let before = parts.headers.clone();
    let signed = signer
        .sign(
            parts.method.as_str(),
            &parts.uri,
            &parts.headers,
            &BodyDigest::of(&body),
        )
        .unwrap();
    assert_eq!(parts.headers, before, "sign() modifies nothing");
    signed.apply_to(&mut parts);
    assert!(check(&parts, &body, T0).is_ok());

    let mut hasher = tessera_client::BodyHasher::new();
    for chunk in body.chunks(4096) {
        hasher.update(chunk);
    }
    let (mut parts, ()) = request(b"").map(|_| ()).into_parts();
    signer
        .sign(
            parts.method.as_str(),
            &parts.uri,
            &parts.headers,
            &hasher.finish(),
        )
        .unwrap()
        .apply_to_headers(&mut parts.headers);
    assert!(check(&parts, &body, T0).is_ok());
    assert_eq!(
        check(&parts, &body[1..], T0),
        Err(ErrorCode::DigestMismatch)
    );
}

/// `SignedHeaders` carries exactly what was set: three values (the
/// signature marked sensitive and redacted from `Debug`) and the
/// parameters; `apply_to` replaces stale values rather than appending.
#[test]
fn signed_headers_are_complete_redacted_and_replace_stale_values() {
    let (signer, _) = signer_at(T0);
    let mut req = request(b"{}");
    req.headers_mut()
        .insert("signature", "tessera=:c3RhbGU=:".parse().unwrap());
    req.headers_mut()
        .append("content-digest", "sha-256=:stale:".parse().unwrap());
    let signed = signer
        .sign(
            req.method().as_str(),
            req.uri(),
            req.headers(),
            &BodyDigest::of(b"{}"),
        )
        .unwrap();
    assert_eq!(signed.info().created, T0);
    assert!(signed.signature().is_sensitive());
    assert!(!signed.signature_input().is_sensitive());
    assert_eq!(
        signed.content_digest(),
        BodyDigest::of(b"{}").header_value().as_ref()
    );
    let names: Vec<_> = signed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-digest", "signature-input", "signature"]);

    let sig = signed.signature().to_str().unwrap().to_owned();
    let shown = format!("{signed:?}");
    assert!(
        shown.contains("redacted") && !shown.contains(&sig[10..30]),
        "{shown}"
    );
    assert!(shown.contains(signed.info().nonce.as_str()), "{shown}");

    let (mut parts, body) = req.into_parts();
    signed.apply_to(&mut parts);
    for name in ["content-digest", "signature-input", "signature"] {
        assert_eq!(parts.headers.get_all(name).iter().count(), 1, "{name}");
    }
    assert!(parts.headers["signature"].is_sensitive());
    let verified = check(&parts, &body, T0).unwrap();
    assert_eq!(verified.nonce(), &signed.into_info().nonce);
}

/// A path-only URI (what hyper's connection-level client writes) is refused
/// with `invalid_field_value` and a way out, by every URI-based method; the
/// scheme and authority are never guessed from `Host`. `sign_view` with an
/// explicit scheme signs it, and a verifier configured for that scheme
/// accepts the request as received in origin-form.
#[test]
fn a_path_only_uri_needs_an_explicit_scheme() {
    let (signer, _) = signer_at(T0);
    let mut req = http::Request::get("/v1/me?x=1")
        .header("host", "api.example.com:8080")
        .header("content-type", "a")
        .body(Vec::new())
        .unwrap();
    let err = signer.sign_request(&mut req).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue));
    assert!(matches!(err, ClientError::Signing(_)));
    let text = err.to_string();
    assert!(
        text.contains("path-only")
            && text.contains("RequestView::new")
            && text.contains("absolute"),
        "{text}"
    );
    assert!(!req.headers().contains_key("signature"), "nothing was set");
    let err = signer
        .sign("GET", req.uri(), req.headers(), &BodyDigest::EMPTY)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue));

    // Explicit: plain http on port 8080.
    let (mut parts, body) = req.into_parts();
    let signed = {
        let view = RequestView::new(
            parts.method.as_str(),
            Scheme::Http,
            "api.example.com:8080",
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        )
        .unwrap();
        signer.sign_view(&view, &BodyDigest::EMPTY).unwrap()
    };
    signed.apply_to(&mut parts);
    let authorities = ["api.example.com:8080".to_owned()];
    let http = Policy::new(T0, 300, &authorities).with_scheme(Scheme::Http);
    let received = ReceivedRequest::from_parts(&parts);
    let verified = verify(&received, &BodyDigest::of(&body), &http, |_| Ok(key())).unwrap();
    assert_eq!(verified.nonce(), &signed.info().nonce);
}

/// A URL string is split verbatim (spec §8.10), with no URL library: the
/// same bytes a verifier receives.
#[test]
fn a_url_string_is_signed_verbatim() {
    let (signer, _) = signer_at(T0);
    let url = r#"https://API.ex%61mple.com:443/a/{b}|c?q="x"&r=`^`#top"#;
    let headers = [("content-type", "text/plain"), ("user-agent", "t/1")];
    let signed = signer
        .sign("get", url, &headers[..], &BodyDigest::EMPTY)
        .unwrap();
    let view = RequestView::new(
        "get",
        Scheme::Https,
        "api.ex%61mple.com",
        "/a/{b}|c",
        Some(r#"q="x"&r=`^`"#),
        &headers[..],
    )
    .unwrap();
    let base = signer
        .signature_base(&view, &BodyDigest::EMPTY, signed.info())
        .unwrap()
        .to_string();
    assert!(
        base.starts_with(
            "\"@method\": get\n\"@authority\": api.ex%61mple.com\n\"@path\": /a/{b}|c\n\"@query\": ?q=\"x\"&r=`^`\n"
        ),
        "{base}"
    );
    let again = signer
        .sign_view_at(&view, &BodyDigest::EMPTY, signed.info())
        .unwrap();
    assert_eq!(again, signed, "same view, same parameters, same headers");
    let owned = String::from("https://api.example.com/x");
    assert!(signer
        .sign("GET", &owned, &headers[..], &BodyDigest::EMPTY)
        .is_ok());
    for bad in ["/relative", "ftp://h/x", "https://h/a b", "https://u@h/"] {
        let err = signer
            .sign("GET", bad, &headers[..], &BodyDigest::EMPTY)
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue), "{bad}");
    }
}

/// `sign_view_at` is the signer with fixed parameters: what tessera-core
/// computes for the same inputs, byte for byte, and the core's refusals.
#[test]
fn sign_view_at_matches_the_core() {
    let (signer, _) = signer_at(T0);
    let nonce = Nonce::new("q8Zl1mVQm0yD9kR3tW5xCA").unwrap();
    let params = SignedRequestInfo::new(nonce.clone(), 1_700_000_000, Some(1_700_000_060));
    let headers = [("content-type", "application/json"), ("user-agent", "a")];
    let view = RequestView::new(
        "POST",
        Scheme::Https,
        "api.example.com",
        "/v1/orders",
        None,
        &headers[..],
    )
    .unwrap();
    let digest = BodyDigest::of(b"{}");
    let ours = signer.sign_view_at(&view, &digest, &params).unwrap();
    let cover = [
        tessera_client::Component::field("content-type").unwrap(),
        tessera_client::Component::field("user-agent").unwrap(),
    ];
    let options = tessera_client::tessera_core::SignOptions::new(1_700_000_000, &nonce)
        .with_expires(Some(1_700_000_060))
        .cover(&cover);
    let core = tessera_client::tessera_core::sign(&key(), &view, &digest, &options).unwrap();
    assert_eq!(ours.signature().to_str().unwrap(), core.signature);
    assert_eq!(
        ours.signature_input().to_str().unwrap(),
        core.signature_input
    );
    assert_eq!(ours.info(), &params);

    let backwards = SignedRequestInfo::new(nonce.clone(), 10, Some(10));
    assert_eq!(
        signer
            .sign_view_at(&view, &digest, &backwards)
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidParameter)
    );
    let huge = SignedRequestInfo::new(nonce, 1_000_000_000_000_000, None);
    assert_eq!(
        signer
            .sign_view_at(&view, &digest, &huge)
            .unwrap_err()
            .code(),
        Some(ErrorCode::MalformedSignature)
    );
}

/// `cover` covers a header when the request carries it; `cover_strict`
/// refuses to sign a request without it (`missing_component`, nothing set),
/// as the spec requires of a signer whose list names an absent field. The
/// list actually covered is the one in `Signature-Input`, in the chosen
/// order, and it verifies.
#[test]
fn chosen_headers_are_covered_when_present_strict_ones_always() {
    let signer = Signer::builder(key())
        .clock(TestClock(Arc::new(AtomicU64::new(T0))))
        .cover("content-type")
        .cover_strict("x-request-id")
        .cover("user-agent")
        .build()
        .unwrap();
    let covered: Vec<_> = signer
        .covered_headers()
        .iter()
        .map(|h| (h.name(), h.is_strict()))
        .collect();
    assert_eq!(
        covered,
        [
            ("content-type", false),
            ("x-request-id", true),
            ("user-agent", false)
        ]
    );

    let input_of = |req: &http::Request<Vec<u8>>| {
        req.headers()["signature-input"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // Only the strict header: the optional ones are left out.
    let mut get = http::Request::get("https://api.example.com/v1/me")
        .header("x-request-id", "r-1")
        .body(Vec::new())
        .unwrap();
    signer.sign_request(&mut get).unwrap();
    assert!(
        input_of(&get).starts_with(
            r#"tessera=("@method" "@authority" "@path" "@query" "content-digest" "x-request-id");"#
        ),
        "{}",
        input_of(&get)
    );
    let (parts, body) = get.into_parts();
    assert_eq!(check(&parts, &body, T0).unwrap().components().len(), 6);

    // All present: all covered, in the chosen order (an empty value counts).
    let mut post = http::Request::post("https://api.example.com/v1/orders")
        .header("User-Agent", "")
        .header("x-request-id", "r-2")
        .header("Content-Type", "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    signer.sign_request(&mut post).unwrap();
    assert!(
        input_of(&post).starts_with(
            r#"tessera=("@method" "@authority" "@path" "@query" "content-digest" "content-type" "x-request-id" "user-agent");"#
        ),
        "{}",
        input_of(&post)
    );
    let (parts, body) = post.into_parts();
    assert!(check(&parts, &body, T0).is_ok());
    // Covering means covering: changing one now breaks the signature.
    let mut tampered = parts.clone();
    tampered
        .headers
        .insert("user-agent", "evil/1".parse().unwrap());
    assert_eq!(check(&tampered, &body, T0), Err(ErrorCode::BadSignature));

    // The strict one absent: refused, nothing set, whatever else is there.
    let mut req = http::Request::post("https://api.example.com/v1/orders")
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    let err = signer.sign_request(&mut req).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MissingComponent));
    assert!(matches!(err, ClientError::Signing(_)));
    assert!(err.to_string().contains("x-request-id"), "{err}");
    assert!(!req.headers().contains_key("signature"));

    // An optional header that is present but invalid is an error, not skipped.
    let mut bad = http::Request::get("https://api.example.com/")
        .header("x-request-id", "r-3")
        .header(
            "user-agent",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        signer.sign_request(&mut bad).unwrap_err().code(),
        Some(ErrorCode::InvalidFieldValue)
    );
}

#[test]
fn expires_and_offset_are_applied() {
    let clock = TestClock(Arc::new(AtomicU64::new(T0)));
    let signer = Signer::builder(key())
        .clock(clock)
        .expires_after(Duration::from_secs(30))
        .clock_offset(-120)
        .build()
        .unwrap();
    let mut req = http::Request::get("https://api.example.com/x")
        .body(Vec::new())
        .unwrap();
    let info = signer.sign_request(&mut req).unwrap();
    assert_eq!(info.created, T0 - 120);
    assert_eq!(info.expires, Some(T0 - 90));
    let input = req.headers()["signature-input"].to_str().unwrap();
    assert!(
        input.contains(&format!(";created={};expires={};", T0 - 120, T0 - 90)),
        "{input}"
    );
    let (parts, body) = req.into_parts();
    assert!(check(&parts, &body, T0 - 100).is_ok());
    assert_eq!(
        check(&parts, &body, T0 - 80),
        Err(ErrorCode::SignatureExpired)
    );
}

#[test]
fn configuration_is_validated_once() {
    for (bad, code) in [
        ("host", ErrorCode::ForbiddenComponent),
        ("signature", ErrorCode::ForbiddenComponent),
        ("x-forwarded-for", ErrorCode::ForbiddenComponent),
        ("content-digest", ErrorCode::DuplicateComponent),
        ("bad name", ErrorCode::MalformedSignature),
        ("", ErrorCode::MalformedSignature),
    ] {
        let err = Signer::builder(key()).cover(bad).build().unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{bad}");
        assert_eq!(err.code(), Some(code), "{bad}");
    }
    let dup = Signer::builder(key())
        .cover("accept")
        .cover("accept")
        .build()
        .unwrap_err();
    assert_eq!(dup.code(), Some(ErrorCode::DuplicateComponent));
    let many = Signer::builder(key())
        .cover_all(
            (0..40)
                .map(|i| format!("x-h{i}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
        .build()
        .unwrap_err();
    assert!(matches!(many, ClientError::Config(_)));
    let short = Signer::builder(key())
        .expires_after(Duration::from_millis(500))
        .build()
        .unwrap_err();
    assert_eq!(short.code(), Some(ErrorCode::InvalidParameter));
    assert!(Signer::new("bad id", &SecretKey::from_bytes(&[1; 32]).unwrap()).is_err());
}

#[test]
fn debug_and_errors_hide_the_secret() {
    let secret = SecretKey::from_hex("deadbeefdeadbeefdeadbeefdeadbeef").unwrap();
    let signer = Signer::new("k1", &secret).unwrap();
    let shown = format!("{signer:?}");
    assert!(
        shown.contains("k1") && shown.contains("redacted"),
        "{shown}"
    );
    assert!(
        !shown.to_lowercase().contains("deadbeef") && !shown.contains("222, 173"),
        "{shown}"
    );

    let mut req = http::Request::get("https://api.example.com/")
        .body(Vec::new())
        .unwrap();
    signer.sign_request(&mut req).unwrap();
    let sig = req.headers()["signature"].to_str().unwrap().to_owned();
    assert!(req.headers()["signature"].is_sensitive());
    assert!(!format!("{req:?}").contains(&sig[10..30]));
}

#[test]
fn skew_challenge_is_authenticated_and_shared_by_clones() {
    let (signer, clock) = signer_at(T0 + 600); // ten minutes fast
    let clone = signer.clone();
    let mut req = request(b"{}");
    let info = signer.sign_request(&mut req).unwrap();
    let (parts, body) = req.into_parts();
    assert_eq!(check(&parts, &body, T0), Err(ErrorCode::ClockSkew));

    let mut headers = http::HeaderMap::new();
    assert_eq!(
        signer.apply_skew_challenge(&headers, &info.nonce),
        Err(ClientError::MissingChallenge)
    );

    // A challenge MACed with another key (a forger's) is refused and changes nothing.
    let forger = SigningKey::new(
        KeyId::new("k1").unwrap(),
        &SecretKey::from_bytes(&[8; 32]).unwrap(),
    );
    headers.insert(
        SERVER_TIME_HEADER,
        server_time_header(&forger, &info.nonce, T0)
            .parse()
            .unwrap(),
    );
    let err = signer
        .apply_skew_challenge(&headers, &info.nonce)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadSignature));
    assert_eq!(signer.clock_offset(), 0);

    // A genuine challenge for another request is refused too.
    let other = Nonce::generate(&mut rand::rng());
    headers.insert(
        SERVER_TIME_HEADER,
        server_time_header(&key(), &other, T0).parse().unwrap(),
    );
    assert!(matches!(
        signer.apply_skew_challenge(&headers, &info.nonce),
        Err(ClientError::InvalidChallenge(_))
    ));

    // Several lines are one field value, joined as RFC 9651 reads it (spec
    // §13.3): members of a later line replace the earlier ones, so a forged
    // line after the genuine one spoils it, and nothing is adopted.
    let genuine = server_time_header(&key(), &info.nonce, T0);
    let forged = server_time_header(&forger, &info.nonce, T0 - 3600);
    headers.insert(SERVER_TIME_HEADER, genuine.parse().unwrap());
    headers.append(SERVER_TIME_HEADER, forged.parse().unwrap());
    assert!(signer.apply_skew_challenge(&headers, &info.nonce).is_err());
    assert_eq!(signer.clock_offset(), 0);

    // The genuine one is adopted by every clone.
    headers.insert(
        SERVER_TIME_HEADER,
        server_time_header(&key(), &info.nonce, T0).parse().unwrap(),
    );
    assert_eq!(signer.apply_skew_challenge(&headers, &info.nonce), Ok(-600));
    assert_eq!(clone.clock_offset(), -600);
    assert_eq!(clone.now(), T0);
    clock.0.fetch_add(5, Ordering::Relaxed);
    let mut req = request(b"{}");
    let info = clone.sign_request(&mut req).unwrap();
    assert_eq!(info.created, T0 + 5);
    let (parts, body) = req.into_parts();
    assert!(check(&parts, &body, T0 + 5).is_ok());
}

/// An authenticated server time far in the future (a server with a broken
/// clock) with a signature lifetime: signatures still go out, dated so that
/// `expires` is a time a signature can carry, and the next genuine
/// challenge from a sane server corrects the offset. (Before, `expires`
/// overflowed the limit and every call failed locally, so no challenge
/// could ever arrive.)
#[test]
fn a_far_future_server_time_does_not_stop_a_signer_with_a_lifetime() {
    let clock = TestClock(Arc::new(AtomicU64::new(T0)));
    let signer = Signer::builder(key())
        .clock(clock)
        .expires_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    let max = tessera_client::tessera_core::MAX_TIME;
    let mut headers = http::HeaderMap::new();
    let sent = Nonce::generate(&mut rand::rng());
    headers.insert(
        SERVER_TIME_HEADER,
        server_time_header(&key(), &sent, max).parse().unwrap(),
    );
    signer.apply_skew_challenge(&headers, &sent).unwrap();
    let mut req = http::Request::get("https://api.example.com/x")
        .body(Vec::new())
        .unwrap();
    let info = signer.sign_request(&mut req).unwrap();
    assert_eq!((info.created, info.expires), (max - 3600, Some(max)));
    // A verifier with a sane clock refuses it as clock_skew, and its
    // challenge puts the signer right.
    assert_eq!(
        check(&req.into_parts().0, b"", T0).unwrap_err(),
        ErrorCode::ClockSkew
    );
    headers.insert(
        SERVER_TIME_HEADER,
        server_time_header(&key(), &info.nonce, T0).parse().unwrap(),
    );
    assert_eq!(signer.apply_skew_challenge(&headers, &info.nonce), Ok(0));
    // The largest offset there is, too.
    signer.set_clock_offset(i64::MAX);
    let mut req = http::Request::get("https://api.example.com/x")
        .body(Vec::new())
        .unwrap();
    assert_eq!(signer.sign_request(&mut req).unwrap().created, max - 3600);
}

#[test]
fn nonces_are_unique_across_threads() {
    let (signer, _) = signer_at(T0);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let signer = signer.clone();
            std::thread::spawn(move || {
                (0..2_000)
                    .map(|_| {
                        let mut req = http::Request::get("https://api.example.com/")
                            .header("content-type", "a")
                            .header("user-agent", "b")
                            .body(Vec::new())
                            .unwrap();
                        signer.sign_request(&mut req).unwrap().nonce
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        for n in h.join().unwrap() {
            assert_eq!(n.as_str().len(), 22);
            assert!(seen.insert(n));
        }
    }
    assert_eq!(seen.len(), 8_000);
}

#[test]
fn rejection_codes_are_read_from_www_authenticate() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(tessera_client::rejection_code(&headers), None);
    headers.append(
        "www-authenticate",
        r#"Bearer realm="x", error="invalid_token""#.parse().unwrap(),
    );
    headers.append(
        "www-authenticate",
        r#"Tessera realm="api", error="clock_skew""#.parse().unwrap(),
    );
    assert_eq!(
        tessera_client::rejection_code(&headers),
        Some(ErrorCode::ClockSkew)
    );
}

#[test]
fn signature_base_matches_what_was_signed() {
    let (signer, _) = signer_at(T0);
    let mut req = request(b"abc");
    let info = signer.sign_request(&mut req).unwrap();
    let base = signer
        .signature_base(
            &RequestView::from_head(req.method(), req.uri(), req.headers()).unwrap(),
            &BodyDigest::of(b"abc"),
            &info,
        )
        .unwrap();
    let text = base.to_string();
    assert!(text.starts_with("\"@method\": POST\n\"@authority\": api.example.com\n\"@path\": /v1/users/123/orders\n\"@query\": ?limit=50&cursor=abc%2Fdef\n"), "{text}");
    assert!(text.contains("\"user-agent\": tessera-test/1\n"));
    let (parts, _) = req.into_parts();
    let parsed =
        tessera_client::tessera_core::ParsedSignature::from_fields(&parts.headers).unwrap();
    let server = parsed
        .signature_base(&RequestView::from_parts(&parts).unwrap())
        .unwrap();
    assert_eq!(server.sha256_hex(), base.sha256_hex());
}

/// Covered names are never lowercased for the caller: an uppercase letter is
/// a configuration error naming the lowercase form, from `cover` and
/// `cover_all` alike, and nothing is signed with such a signer.
#[test]
fn uppercase_component_names_are_refused_not_lowercased() {
    for (names, bad, lower) in [
        (&["Content-Type"][..], "Content-Type", "content-type"),
        (
            &["x-request-id", "X-Request-Id"][..],
            "X-Request-Id",
            "x-request-id",
        ),
        (&["accept", "ACCEPT"][..], "ACCEPT", "accept"),
    ] {
        let via_cover_all = Signer::builder(key())
            .cover_all(names.iter().copied())
            .build()
            .unwrap_err();
        let via_cover = names
            .iter()
            .fold(Signer::builder(key()), |b, n| b.cover(n))
            .build()
            .unwrap_err();
        for err in [via_cover_all, via_cover] {
            assert!(matches!(err, ClientError::Config(_)), "{err:?}");
            assert_eq!(err.code(), Some(ErrorCode::MalformedSignature), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("\"{bad}\"")) && text.contains(&format!("use \"{lower}\"")),
                "{text}"
            );
        }
    }
    // The same names in lowercase are fine, and the request's own header
    // spelling does not matter.
    let signer = Signer::builder(key())
        .clock(TestClock(Arc::new(AtomicU64::new(T0))))
        .cover_all(["content-type", "x-request-id"])
        .build()
        .unwrap();
    let mut req = http::Request::post("https://api.example.com/v1/orders")
        .header("Content-Type", "application/json")
        .header("X-Request-Id", "r-1")
        .body(b"{}".to_vec())
        .unwrap();
    signer.sign_request(&mut req).unwrap();
    let input = req.headers()["signature-input"].to_str().unwrap();
    assert!(
        input.contains(r#""content-digest" "content-type" "x-request-id");"#),
        "{input}"
    );
    let (parts, body) = req.into_parts();
    assert!(check(&parts, &body, T0).is_ok());
}

/// Methods are case-sensitive (RFC 9110 §9.1): `get` is signed as `get`, a
/// mixed-case extension method as written, and the verifier agrees; the
/// same request received as `GET` does not verify.
#[test]
fn the_method_is_signed_exactly_as_sent() {
    let (signer, _) = signer_at(T0);
    for method in ["get", "PaTcH", "post"] {
        let mut req = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).unwrap())
            .uri("https://api.example.com/v1/x?y=1")
            .header("content-type", "text/plain")
            .header("user-agent", "t/1")
            .body(b"abc".to_vec())
            .unwrap();
        let info = signer.sign_request(&mut req).unwrap();
        assert_eq!(req.method().as_str(), method, "the request is not changed");
        let base = signer
            .signature_base(
                &RequestView::from_head(req.method(), req.uri(), req.headers()).unwrap(),
                &BodyDigest::of(b"abc"),
                &info,
            )
            .unwrap()
            .to_string();
        assert!(
            base.starts_with(&format!("\"@method\": {method}\n")),
            "{base}"
        );
        let (parts, body) = req.into_parts();
        assert!(check(&parts, &body, T0).is_ok(), "{method}");
        let mut upper = parts.clone();
        upper.method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        assert_eq!(
            check(&upper, &body, T0),
            Err(ErrorCode::BadSignature),
            "{method} received as {}",
            upper.method
        );
    }
    // sign() takes the same path.
    let (mut parts, ()) = http::Request::builder()
        .method(http::Method::from_bytes(b"delete").unwrap())
        .uri("https://api.example.com/v1/x")
        .header("content-type", "a")
        .header("user-agent", "b")
        .body(())
        .unwrap()
        .into_parts();
    signer
        .sign(
            parts.method.as_str(),
            &parts.uri,
            &parts.headers,
            &BodyDigest::EMPTY,
        )
        .unwrap()
        .apply_to(&mut parts);
    let input = parts.headers["signature-input"].to_str().unwrap();
    assert!(
        input.contains(r#""content-type" "user-agent");"#),
        "{input}"
    );
    assert!(check(&parts, b"", T0).is_ok());
    parts.method = http::Method::DELETE;
    assert_eq!(check(&parts, b"", T0), Err(ErrorCode::BadSignature));
}

/// Why a path-only URI's scheme is never guessed: the scheme decides which
/// port `@authority` drops. Port 80 is signed as `api.example.com` over
/// http and as `api.example.com:80` over https, so a wrong guess gives a
/// signature the verifier rejects.
#[test]
fn the_scheme_given_decides_the_signed_authority() {
    let signer = Signer::new("k1", &SecretKey::from_bytes(&[2; 32]).unwrap()).unwrap();
    let headers = http::HeaderMap::new();
    let https = signer
        .sign(
            "GET",
            "https://api.example.com:80/x",
            &headers,
            &BodyDigest::EMPTY,
        )
        .unwrap();
    let http = signer
        .sign(
            "GET",
            "http://api.example.com:80/x",
            &headers,
            &BodyDigest::EMPTY,
        )
        .unwrap();
    let base = |params: &SignedRequestInfo, scheme| {
        let view =
            RequestView::new("GET", scheme, "api.example.com:80", "/x", None, &headers).unwrap();
        signer
            .signature_base(&view, &BodyDigest::EMPTY, params)
            .unwrap()
            .to_string()
    };
    assert!(base(https.info(), Scheme::Https).contains("\"@authority\": api.example.com:80\n"));
    assert!(base(http.info(), Scheme::Http).contains("\"@authority\": api.example.com\n"));
}
