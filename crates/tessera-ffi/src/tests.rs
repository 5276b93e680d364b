//! Unit tests of the FFI surface, called as Rust (the foreign suites call the same functions).

use tessera_core::{Authorities, Policy, ReceivedRequest, Scheme};
use uniffi::{Lift, RustBuffer};

use super::*;

const SECRET_HEX: &str = "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186";

fn secret() -> SecretBytes {
    SecretBytes::from(hex_decode(SECRET_HEX))
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn signer(covered: &[&str]) -> Arc<Signer> {
    signer_with(covered, false)
}

/// With `required`, every covered header must be present.
fn signer_with(covered: &[&str], required: bool) -> Arc<Signer> {
    Signer::new(
        "device-7f3a2c".into(),
        secret(),
        covered.iter().map(|s| (*s).to_owned()).collect(),
        None,
        required,
    )
    .expect("valid signer")
}

fn get(url: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(n, v)| HttpHeader {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        body: None,
    }
}

fn system_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(now.as_secs()).expect("fits")
}

fn code<T: std::fmt::Debug>(r: Result<T, TesseraError>) -> String {
    r.expect_err("an error").code().to_owned()
}

/// spec/vectors/pos-basic-get, signed through the FFI surface.
#[test]
fn sign_at_reproduces_the_basic_vector() {
    let s = signer(&[]);
    let req = get(
        "https://api.example.com/v1/orders?limit=10",
        &[("Accept", "application/json")],
    );
    let signed = s
        .sign_at(
            req.clone(),
            1_700_000_000,
            "sWdxpjKCug4loESa7u_Yzg".into(),
            None,
        )
        .expect("signs");
    let names: Vec<_> = signed.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["content-digest", "signature-input", "signature"]);
    assert_eq!(
        signed.get("signature"),
        Some("tessera=:egSwrhVo92N7oJhkbfRWjM7ZdfnfSQl4/SXI217/40g=:")
    );
    assert_eq!(
        signed.get("content-digest"),
        Some(tessera_core::EMPTY_BODY_CONTENT_DIGEST)
    );
    assert_eq!(signed.created, 1_700_000_000);
    assert_eq!(signed.nonce, "sWdxpjKCug4loESa7u_Yzg");
    // The signature is a credential until its window ends: never in Debug.
    let debug = format!("{signed:?}");
    assert!(!debug.contains("egSwrhVo92N7"), "{debug}");
    assert!(
        debug.contains("name: \"signature\", value: \"** redacted **\""),
        "{debug}"
    );
    assert!(debug.contains("sWdxpjKCug4loESa7u_Yzg"), "{debug}");
    let authorization = HttpHeader {
        name: "Authorization".into(),
        value: "Bearer app-token".into(),
    };
    assert!(!format!("{authorization:?}").contains("app-token"));
    let base = s.signature_base(req, signed).expect("base");
    assert!(base.starts_with("\"@method\": GET\n\"@authority\": api.example.com\n"));
    assert!(base.ends_with(";created=1700000000;keyid=\"device-7f3a2c\";nonce=\"sWdxpjKCug4loESa7u_Yzg\";tag=\"tessera-v1\""));
}

#[test]
fn sign_uses_fresh_nonces_and_the_clock() {
    let s = signer(&["content-type"]);
    let mut req = get(
        "https://api.example.com/v1/orders",
        &[("Content-Type", "application/json")],
    );
    req.method = "POST".into();
    req.body = Some(br#"{"qty":1}"#.to_vec());
    let a = s.sign(req.clone()).expect("signs");
    let b = s.sign(req.clone()).expect("signs");
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.nonce.len(), 22);
    assert!((a.created - system_now()).abs() <= 1);
    assert!(a
        .get("signature-input")
        .expect("input")
        .starts_with(r#"tessera=("@method" "@authority" "@path" "@query" "content-digest" "content-type");created="#));
    assert_eq!(a.expires, None);
    assert_eq!(s.covered_headers(), ["content-type"]);
    assert_eq!(s.key_id(), "device-7f3a2c");
    // The digest variant produces the same Content-Digest and a valid signature.
    let sha: [u8; 32] = sha256(br#"{"qty":1}"#);
    let mut streamed = req.clone();
    streamed.body = None;
    let c = s
        .sign_with_digest(streamed.clone(), sha.to_vec())
        .expect("signs");
    assert_eq!(c.get("content-digest"), a.get("content-digest"));
    assert_eq!(
        c.get("content-digest"),
        Some(content_digest(br#"{"qty":1}"#.to_vec()).as_str())
    );
    // Both bases rebuild from the signed parameters alone.
    assert!(s.signature_base(streamed, c).is_ok());
}

fn sha256(data: &[u8]) -> [u8; 32] {
    *BodyDigest::of(data).as_bytes()
}

#[test]
fn expires_after_adds_expires() {
    let s = Signer::new("k1".into(), secret(), vec![], Some(60), false).expect("signer");
    let signed = s.sign(get("https://a.example/", &[])).expect("signs");
    assert_eq!(signed.expires, Some(signed.created + 60));
    assert!(signed
        .get("signature-input")
        .is_some_and(|v| v.contains(";expires=")));
}

#[test]
fn configuration_errors_carry_codes() {
    let new = |id: &str, secret: Vec<u8>, covered: &[&str], exp| {
        Signer::new(
            id.into(),
            SecretBytes::from(secret),
            covered.iter().map(|s| (*s).to_owned()).collect(),
            exp,
            false,
        )
    };
    let ok = vec![7u8; 32];
    assert_eq!(
        code(new("has space", ok.clone(), &[], None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(new("k", vec![7u8; 15], &[], None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(new("k", vec![7u8; 129], &[], None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(new("k", ok.clone(), &["host"], None)),
        "forbidden_component"
    );
    assert_eq!(
        code(new("k", ok.clone(), &["signature"], None)),
        "forbidden_component"
    );
    assert_eq!(
        code(new("k", ok.clone(), &["content-digest"], None)),
        "duplicate_component"
    );
    assert_eq!(
        code(new("k", ok.clone(), &["a", "a"], None)),
        "duplicate_component"
    );
    assert_eq!(
        code(new("k", ok.clone(), &[], Some(0))),
        "invalid_parameter"
    );
    let many: Vec<String> = (0..40).map(|i| format!("x-h{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        code(new("k", ok.clone(), &many, None)),
        "malformed_signature"
    );
    // Spec §10 step 2: the secret, then the components, then the key id.
    assert_eq!(
        code(new("has space", vec![7u8; 15], &["host"], None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(new("has space", ok.clone(), &["host"], None)),
        "forbidden_component"
    );
    assert_eq!(
        code(new("has space", ok.clone(), &[], Some(0))),
        "invalid_parameter"
    );
    let e = new("k", vec![1u8; 3], &[], None).expect_err("short");
    assert!(matches!(e, TesseraError::InvalidConfig { .. }));
    assert!(!e.to_string().contains("0101"));
    assert!(e.detail().contains("got 3"), "{e}");
    // The hex text of a key instead of the key (what `tessera keygen`
    // prints, encoded as bytes): refused, with the way out.
    let e = new("k", SECRET_HEX.as_bytes().to_vec(), &[], None).expect_err("hex text");
    assert_eq!(e.code(), "invalid_parameter");
    assert!(
        e.detail().contains("64 ASCII hex digits") && e.detail().contains("bytes.fromhex"),
        "{e}"
    );
    assert!(!e.detail().contains(SECRET_HEX), "{e}");
    // Shorter than 32 bytes, odd, or one byte that is not a hex digit: a key.
    for secret in [
        b"0123456789abcdef0123456789abcde".to_vec(),
        b"0123456789abcdef0123456789abcdef0".to_vec(),
        b"0123456789abcdef0123456789abcdeg".to_vec(),
    ] {
        assert!(new("k", secret, &[], None).is_ok());
    }
}

#[test]
fn request_errors_carry_codes() {
    let s = signer_with(&["content-type"], true);
    let ok = [("content-type", "text/plain")];
    assert_eq!(
        code(s.sign(get("https://api.example.com/", &[]))),
        "missing_component"
    );
    assert_eq!(
        code(s.sign(get("https://api.example.com/", &[("content-type", "a\nb")]))),
        "invalid_field_value"
    );
    assert_eq!(code(s.sign(get("/relative", &ok))), "invalid_field_value");
    assert_eq!(
        code(s.sign(get("ftp://host/x", &ok))),
        "invalid_field_value"
    );
    assert_eq!(code(s.sign(get("not a url", &ok))), "invalid_field_value");
    let mut bad_method = get("https://api.example.com/", &ok);
    bad_method.method = "GE T".into();
    assert_eq!(code(s.sign(bad_method)), "invalid_field_value");
    let e = s
        .sign(get("https://api.example.com/", &[]))
        .expect_err("missing");
    assert!(matches!(e, TesseraError::InvalidRequest { .. }));
    // Digest and test-parameter checks.
    let req = get("https://api.example.com/", &ok);
    assert_eq!(
        code(s.sign_with_digest(req.clone(), vec![0; 31])),
        "invalid_parameter"
    );
    let mut with_body = req.clone();
    with_body.body = Some(b"x".to_vec());
    assert_eq!(
        code(s.sign_with_digest(with_body, vec![0; 32])),
        "invalid_parameter"
    );
    assert_eq!(
        code(s.sign_at(req.clone(), -1, "A".repeat(22), None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(s.sign_at(req.clone(), 10, "short".into(), None)),
        "invalid_parameter"
    );
    assert_eq!(
        code(s.sign_at(req, 10, "A".repeat(22), Some(10))),
        "invalid_parameter"
    );
    // Uncovered headers with odd values are ignored.
    assert!(s
        .sign(get(
            "https://api.example.com/",
            &[("content-type", "x"), ("x-other", "a\r\nb")]
        ))
        .is_ok());
}

#[test]
fn skew_challenge_adjusts_the_offset() {
    let s = signer(&[]);
    assert_eq!(s.clock_offset(), 0);
    let sent = s.sign(get("https://api.example.com/", &[])).expect("signs");
    let key = SigningKey::new(
        KeyId::new("device-7f3a2c").expect("id"),
        &SecretKey::from_hex(SECRET_HEX).expect("secret"),
    );
    let nonce = Nonce::new(sent.nonce.clone()).expect("nonce");
    let server_time = u64::try_from(system_now() + 1000).expect("positive");
    let header = tessera_core::challenge::server_time_header(&key, &nonce, server_time);

    // Forgeries and mismatches leave the offset alone.
    let forged = header.replace(&format!("time={server_time}"), "time=1");
    let e = s
        .apply_skew_challenge(forged, sent.nonce.clone())
        .expect_err("forged");
    assert_eq!(e.code(), "bad_signature");
    assert!(matches!(e, TesseraError::InvalidChallenge { .. }));
    assert_eq!(
        code(s.apply_skew_challenge(header.clone(), "B".repeat(22))),
        "malformed_signature"
    );
    assert_eq!(
        code(s.apply_skew_challenge("garbage((".into(), sent.nonce.clone())),
        "malformed_signature"
    );
    assert_eq!(
        code(s.apply_skew_challenge(header.clone(), "bad nonce".into())),
        "invalid_parameter"
    );
    assert_eq!(
        code(s.apply_skew_challenge("t=1\n".into(), sent.nonce.clone())),
        "malformed_signature"
    );
    assert_eq!(s.clock_offset(), 0);

    let offset = s
        .apply_skew_challenge(header, sent.nonce)
        .expect("authentic challenge");
    assert!((999..=1001).contains(&offset), "{offset}");
    assert_eq!(s.clock_offset(), offset);
    let next = s.sign(get("https://api.example.com/", &[])).expect("signs");
    assert!((next.created - (system_now() + 1000)).abs() <= 1);
    assert!((s.now() - next.created).abs() <= 1);
    s.set_clock_offset(-5);
    assert_eq!(s.clock_offset(), -5);
}

#[test]
fn debug_output_hides_the_secret() {
    let s = signer(&[]);
    let text = format!("{s:?}");
    assert!(text.contains("device-7f3a2c") && text.contains("redacted"));
    assert!(!text.to_ascii_lowercase().contains("0b30557a"));
    assert_eq!(format!("{:?}", secret()), "SecretBytes(32 bytes, redacted)");
}

/// The secret's FFI lift reads the same wire format as `Vec<u8>` and
/// rejects truncated or padded buffers.
#[test]
fn secret_lift_matches_the_bytes_wire_format() {
    let lower = |bytes: Vec<u8>| <Vec<u8> as uniffi::Lower<crate::UniFfiTag>>::lower(bytes);
    let lifted = <SecretBytes as Lift<UniFfiTag>>::try_lift(lower(vec![9u8; 20])).expect("lifts");
    assert_eq!(&**lifted.into_inner(), &[9u8; 20]);
    let mut padded = Vec::new();
    padded.extend_from_slice(&2i32.to_be_bytes());
    padded.extend_from_slice(&[1, 2, 3]);
    assert!(<SecretBytes as Lift<UniFfiTag>>::try_lift(RustBuffer::from_vec(padded)).is_err());
    let mut short = Vec::new();
    short.extend_from_slice(&5i32.to_be_bytes());
    short.extend_from_slice(&[1, 2]);
    assert!(<SecretBytes as Lift<UniFfiTag>>::try_lift(RustBuffer::from_vec(short)).is_err());
}

/// Best effort: after a key is dropped in place, the prepared HMAC state it
/// held (the key material) reads as zeros; only the (public) key id's inline
/// storage may keep its bytes. The key is built as [`Signer::new`] builds it;
/// the signer holds it only inside its `tessera_client::Signer`, which drops
/// it with the signer's last reference. What this checks is that sha2's
/// `zeroize` feature (this crate's `sha2` dependency) reaches the SHA-256
/// states inside it.
#[test]
fn key_material_is_zeroized_on_drop() {
    let secret = SecretKey::from_bytes(&secret().into_inner()).expect("secret");
    let signing_key = SigningKey::new(KeyId::new("device-7f3a2c").expect("id"), &secret);
    let mut slot = std::mem::ManuallyDrop::new(signing_key);
    let key: *const SigningKey = &*slot;
    let len = std::mem::size_of::<SigningKey>();
    // SAFETY: reads the bytes of a live value on this stack frame.
    let before = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), len) }.to_vec();
    // SAFETY: dropped exactly once, never used afterwards except the raw read below.
    unsafe { std::mem::ManuallyDrop::drop(&mut slot) };
    let after: Vec<u8> = (0..len)
        // SAFETY: the storage is still this frame's (only its contents were
        // dropped); volatile so the reads are not optimized away.
        .map(|i| unsafe { std::ptr::read_volatile(key.cast::<u8>().add(i)) })
        .collect();
    // The key id is public (every request carries it) and stored inline
    // (`ArrayString`, repr(C): a 4-byte length, then the text, then a zeroed
    // tail). Located by address, its length and text are the only bytes that
    // may survive, with the struct padding that may follow its storage (up
    // to the key's alignment: never written, so it holds whatever the stack
    // held); everything else is key material.
    let id = slot.key_id();
    let id_at = std::ptr::from_ref(id) as usize - key as usize;
    let id_bytes = id_at..id_at + 4 + id.as_str().len();
    let id_end = id_at + std::mem::size_of::<KeyId>();
    let padding = id_end..id_end.next_multiple_of(std::mem::align_of::<SigningKey>());
    let outside = |i: &usize| !id_bytes.contains(i) && !padding.contains(i);
    let material = (0..len).filter(outside).filter(|&i| before[i] != 0).count();
    assert!(
        material > 64,
        "the prepared HMAC state should be in the value ({material} non-zero bytes)"
    );
    let survivors: Vec<usize> = (0..len)
        .filter(outside)
        .filter(|&i| before[i] != 0 && after[i] == before[i])
        .collect();
    assert!(
        survivors.is_empty(),
        "{} key-material bytes survived the drop at offsets {survivors:?} (size {len}, key id at {id_bytes:?})",
        survivors.len()
    );
}

/// What a tessera-v1 verifier makes of `request` sent with `signed`: the URL
/// goes on the wire in absolute-form without its fragment, beside a `Host`
/// line, and is verified with the signer's key at `created` for `served`.
fn verify_sent(
    request: &HttpRequest,
    signed: &SignedHeaders,
    served: &str,
) -> Result<(), ErrorCode> {
    let sent = request.url.split('#').next().unwrap_or_default();
    let scheme = if sent
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let mut lines: Vec<(String, String)> = vec![("Host".into(), served.into())];
    lines.extend(
        request
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone())),
    );
    lines.extend(
        signed
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone())),
    );
    let key = SigningKey::new(
        KeyId::new("device-7f3a2c").expect("id"),
        &SecretKey::from_hex(SECRET_HEX).expect("secret"),
    );
    let served = [served.to_owned()];
    let policy =
        Policy::new(u64::try_from(signed.created).expect("time"), 300, &served).with_scheme(scheme);
    let received = ReceivedRequest::new(request.method.as_bytes(), sent.as_bytes(), &lines[..]);
    let body = BodyDigest::of(request.body.as_deref().unwrap_or_default());
    tessera_core::verify(&received, &body, &policy, |_| Ok(key))
        .map(|_| ())
        .map_err(|e| e.code())
}

/// The code step 5 of verification gives `url` received in absolute-form
/// (`None`: accepted), for comparison with the signer's.
fn verifier_code(method: &str, url: &str) -> Option<String> {
    let lines = [("Host", "api.example.com")];
    let served = ["api.example.com".to_owned()];
    let sent = url.split('#').next().unwrap_or_default();
    ReceivedRequest::new(method.as_bytes(), sent.as_bytes(), &lines[..])
        .view(Scheme::Https, Authorities::Served(&served))
        .err()
        .map(|e| e.code().as_str().to_owned())
}

fn signed_at(s: &Signer, req: &HttpRequest) -> Result<SignedHeaders, TesseraError> {
    s.sign_at(
        req.clone(),
        1_700_000_000,
        "sWdxpjKCug4loESa7u_Yzg".into(),
        None,
    )
}

/// Methods are case-sensitive: `get` is signed as `get`, a mixed-case one as
/// written, and the verifier accepts them; the same request received with
/// the method uppercased does not verify.
#[test]
fn methods_are_signed_exactly_as_given() {
    let s = signer(&["content-type"]);
    for method in ["get", "PaTcH", "post", "GET"] {
        let mut req = get(
            "https://api.example.com/v1/orders?x=1",
            &[("Content-Type", "text/plain")],
        );
        req.method = method.into();
        req.body = Some(b"hello".to_vec());
        let signed = signed_at(&s, &req).expect("signs");
        let base = s.signature_base(req.clone(), signed.clone()).expect("base");
        assert!(
            base.starts_with(&format!("\"@method\": {method}\n")),
            "{base}"
        );
        assert_eq!(
            verify_sent(&req, &signed, "api.example.com"),
            Ok(()),
            "{method}"
        );
        let fresh = s.sign(req.clone()).expect("signs");
        assert_eq!(
            verify_sent(&req, &fresh, "api.example.com"),
            Ok(()),
            "{method}"
        );
        if method != method.to_ascii_uppercase() {
            let mut upper = req.clone();
            upper.method = method.to_ascii_uppercase();
            assert_eq!(
                verify_sent(&upper, &signed, "api.example.com"),
                Err(ErrorCode::BadSignature),
                "{method} received as {}",
                upper.method
            );
        }
    }
}

/// The URL is split verbatim, not parsed by a URL library: characters that
/// `http::Uri` refuses but a verifier accepts, and a percent-encoded host,
/// are signed byte for byte, and the verifier agrees.
#[test]
fn urls_are_signed_verbatim() {
    let s = signer(&[]);
    for (url, authority, path, query) in [
        (
            r#"https://api.example.com/a/"q"/<b>/c\d/^/`e`/{f}/g|h?x="1"&y=<2>&z=\`^{}|"#,
            "api.example.com",
            r#"/a/"q"/<b>/c\d/^/`e`/{f}/g|h"#,
            Some(r#"?x="1"&y=<2>&z=\`^{}|"#),
        ),
        (
            "https://api.ex%61mple.com/v1/x",
            "api.ex%61mple.com",
            "/v1/x",
            Some("?"),
        ),
        (
            "HTTP://API.Example.COM:80/a%2fb%2F?%7e=~#frag",
            "api.example.com",
            "/a%2fb%2F",
            Some("?%7e=~"),
        ),
        ("https://api.example.com", "api.example.com", "/", Some("?")),
        (
            "https://api.example.com:8443?",
            "api.example.com:8443",
            "/",
            Some("?"),
        ),
        (
            "http://[2001:DB8::1]:8080/p",
            "[2001:db8::1]:8080",
            "/p",
            Some("?"),
        ),
    ] {
        let req = get(url, &[]);
        let signed = signed_at(&s, &req).unwrap_or_else(|e| panic!("{url}: {e}"));
        let base = s.signature_base(req.clone(), signed.clone()).expect("base");
        let expected = format!(
            "\"@method\": GET\n\"@authority\": {authority}\n\"@path\": {path}\n\"@query\": {}\n",
            query.expect("query line")
        );
        assert!(base.starts_with(&expected), "{url}\n{base}");
        assert_eq!(verify_sent(&req, &signed, authority), Ok(()), "{url}");
    }
}

/// What the verifier rejects, the signer refuses, with the same code; and
/// what it accepts, the signer signs. Non-ASCII paths and queries are
/// refused with `invalid_field_value`, never percent-encoded behind the
/// caller's back.
#[test]
fn the_signer_refuses_what_the_verifier_rejects() {
    let s = signer(&[]);
    let refused = [
        "https://api.example.com/café",
        "https://api.example.com/v1/orders?q=ÿ",
        "https://api.example.com/caf%C3%A9 x",
        "https://api.example.com/a b",
        "https://api.example.com/a?b c",
        "https://api.example.com/a\tb",
        "https://api.example.com/a\u{7f}",
        "https://api.example.com:65536/v1/orders",
        "https://api.example.com:99999999999999999999/",
        "https://user@api.example.com/v1/orders",
        "https://[fe80::1%25eth0]/v1/orders",
        "https://api.exa mple.com/",
        "https://bücher.example/",
        "https:///v1/orders",
    ];
    for url in refused {
        let e = s.sign(get(url, &[])).expect_err(url);
        assert!(
            matches!(e, TesseraError::InvalidRequest { .. }),
            "{url}: {e:?}"
        );
        assert_eq!(e.code(), "invalid_field_value", "{url}: {e}");
        assert_eq!(code(signed_at(&s, &get(url, &[]))), "invalid_field_value");
        assert_eq!(
            verifier_code("GET", url).as_deref(),
            Some("invalid_field_value"),
            "the verifier accepts {url}, which the signer refuses"
        );
    }
    let e = s
        .sign(get("https://api.example.com/café", &[]))
        .expect_err("non-ASCII path");
    assert!(e.detail().contains("0xc3"), "{e}");
    // Not absolute http(s) URLs at all: refused with the same code.
    for url in [
        "ftp://api.example.com/x",
        "/relative",
        "api.example.com/x",
        "",
    ] {
        assert_eq!(code(s.sign(get(url, &[]))), "invalid_field_value", "{url}");
    }
    // The method: a token, any case.
    for (method, ok) in [
        ("get", true),
        ("M-SEARCH", true),
        ("GET X", false),
        ("", false),
    ] {
        let mut req = get("https://api.example.com/", &[]);
        req.method = method.into();
        let signer_code = s.sign(req).err().map(|e| e.code().to_owned());
        assert_eq!(signer_code.is_none(), ok, "{method}");
        assert_eq!(
            signer_code,
            verifier_code(method, "https://api.example.com/"),
            "{method}"
        );
    }
}

/// Covered names are never lowercased: an uppercase letter is a
/// configuration error (`malformed_signature`) whose detail names the
/// lowercase form. Header lines themselves match in any case.
#[test]
fn uppercase_covered_names_are_refused_not_lowercased() {
    for (covered, bad, lower) in [
        (&["Content-Type"][..], "Content-Type", "content-type"),
        (
            &["x-request-id", "X-Request-ID"][..],
            "X-Request-ID",
            "x-request-id",
        ),
        (&["Host"][..], "Host", "host"),
    ] {
        let e = Signer::new(
            "k1".into(),
            secret(),
            covered.iter().map(|s| (*s).to_owned()).collect(),
            None,
            false,
        )
        .expect_err(bad);
        assert!(matches!(e, TesseraError::InvalidConfig { .. }), "{e:?}");
        assert_eq!(e.code(), "malformed_signature", "{e}");
        assert!(
            e.detail().contains(&format!("\"{bad}\""))
                && e.detail().contains(&format!("use \"{lower}\"")),
            "{e}"
        );
    }
    let s = signer(&["content-type", "x-request-id"]);
    assert_eq!(s.covered_headers(), ["content-type", "x-request-id"]);
    let req = get(
        "https://api.example.com/",
        &[("CONTENT-TYPE", "text/plain"), ("X-Request-Id", "r-1")],
    );
    let signed = s.sign(req.clone()).expect("signs");
    assert!(signed
        .get("signature-input")
        .is_some_and(|v| v.contains(r#""content-digest" "content-type" "x-request-id");"#)));
    assert_eq!(verify_sent(&req, &signed, "api.example.com"), Ok(()));
}

/// Covered headers are covered when present (as the Rust `cover`), so one
/// signer serves a body-less GET and a POST with `content-type`; with
/// `covered_headers_required` an absent one is `missing_component`.
#[test]
fn covered_headers_are_covered_when_present_unless_required() {
    let lenient = signer(&["content-type", "x-request-id"]);
    let bare = lenient
        .sign(get("https://api.example.com/v1/me", &[]))
        .expect("a GET without content-type signs");
    let input = bare.get("signature-input").expect("signature-input");
    assert!(
        !input.contains("content-type") && !input.contains("x-request-id"),
        "{input}"
    );
    let typed = lenient
        .sign(get(
            "https://api.example.com/v1/me",
            &[("Content-Type", "application/json")],
        ))
        .expect("signs");
    let input = typed.get("signature-input").expect("signature-input");
    assert!(
        input.contains(r#""content-digest" "content-type")"#),
        "{input}"
    );
    assert_eq!(lenient.covered_headers(), ["content-type", "x-request-id"]);

    let strict = signer_with(&["content-type"], true);
    assert_eq!(
        code(strict.sign(get("https://api.example.com/v1/me", &[]))),
        "missing_component"
    );
}

/// `sign_at` and `signature_base` apply the Host rule `sign` applies: a
/// `Host` naming another authority than the URL is refused, since the
/// verifier would check the signature against that `Host`.
#[test]
fn every_signing_path_refuses_a_contradicting_host() {
    let s = signer(&[]);
    let request = || get("https://api.example.com/v1/me", &[("Host", "evil.example")]);
    assert_eq!(code(s.sign(request())), "authority_mismatch");
    let nonce = "AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    assert_eq!(
        code(s.sign_at(request(), 1_700_000_000, nonce.clone(), None)),
        "authority_mismatch"
    );
    let signed = s
        .sign_at(
            get("https://api.example.com/v1/me", &[]),
            1_700_000_000,
            nonce,
            None,
        )
        .expect("signs");
    assert_eq!(
        code(s.signature_base(request(), signed)),
        "authority_mismatch"
    );
    // The same authority written as the URL has it is fine.
    s.sign(get(
        "https://api.example.com/v1/me",
        &[("Host", "api.example.com")],
    ))
    .expect("a matching Host signs");
}
