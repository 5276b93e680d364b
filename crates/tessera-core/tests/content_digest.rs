//! Received `Content-Digest` values that are valid but not byte-identical to
//! the canonical `sha-256=:…:` form. The verifier compares against the
//! canonical form first and parses with sfv otherwise; these requests must
//! get exactly the verdicts the spec gives them (Section 11.2: other members
//! such as `sha-512` are ignored, the last duplicate wins).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_core::{
    rfc9421, verify, BodyDigest, ErrorCode, KeyId, Policy, ReceivedRequest, RequestView, Scheme,
    SecretKey, SigningKey, MANDATORY, MAX_SIGNATURE_HEADER_LEN,
};

const SECRET: [u8; 32] = [9; 32];
const BODY: &[u8] = br#"{"hello": "world"}"#;
const PARAMS: &str = r#"("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;keyid="k1";nonce="q8Zl1mVQm0yD9kR3tW5xCA";tag="tessera-v1""#;

/// Verifies a POST whose `Content-Digest` field lines are `digest_lines`,
/// signed over exactly those lines (as a signer that emits them would).
fn verdict(digest_lines: &[&str]) -> Result<(), ErrorCode> {
    let mut headers: Vec<(String, String)> = digest_lines
        .iter()
        .map(|v| ("Content-Digest".to_owned(), (*v).to_owned()))
        .collect();
    let base = rfc9421::signature_base(&post(&headers), &MANDATORY, PARAMS).expect("base");
    let mac = rfc9421::hmac_sha256(&SECRET, base.as_bytes());
    headers.push(("Signature-Input".to_owned(), format!("tessera={PARAMS}")));
    headers.push((
        "Signature".to_owned(),
        format!("tessera=:{}:", STANDARD.encode(mac)),
    ));
    let key = SigningKey::new(
        KeyId::new("k1").expect("id"),
        &SecretKey::from_bytes(&SECRET).expect("secret"),
    );
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy::new(1_700_000_010, 300, &authorities);
    let received =
        ReceivedRequest::new(b"POST", b"https://api.example.com/v1/orders", &headers[..]);
    verify(&received, &BodyDigest::of(BODY), &policy, |_| {
        Ok(key.clone())
    })
    .map(|_| ())
    .map_err(|e| e.code())
}

/// The test's POST with `headers`.
fn post(headers: &[(String, String)]) -> RequestView<'_, [(String, String)]> {
    RequestView::new(
        "POST",
        Scheme::Https,
        "api.example.com",
        "/v1/orders",
        None,
        headers,
    )
    .expect("view")
}

fn sha256_member() -> String {
    BodyDigest::of(BODY).header_value().into_owned()
}

const SHA512_MEMBER: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

#[test]
fn canonical_value_is_accepted() {
    assert_eq!(verdict(&[&sha256_member()]), Ok(()));
}

#[test]
fn other_algorithms_beside_sha256_are_ignored() {
    let both = format!("{SHA512_MEMBER}, {}", sha256_member());
    assert_eq!(verdict(&[&both]), Ok(()));
    let reversed = format!("{}, {SHA512_MEMBER}", sha256_member());
    assert_eq!(verdict(&[&reversed]), Ok(()));
}

#[test]
fn members_split_over_two_field_lines_are_joined() {
    assert_eq!(verdict(&[SHA512_MEMBER, &sha256_member()]), Ok(()));
}

#[test]
fn surrounding_whitespace_is_not_part_of_the_value() {
    assert_eq!(verdict(&[&format!("  {}  ", sha256_member())]), Ok(()));
}

#[test]
fn the_last_duplicate_member_wins() {
    let wrong = BodyDigest::of(b"other body").header_value().into_owned();
    let right = sha256_member();
    assert_eq!(verdict(&[&format!("{wrong}, {right}")]), Ok(()));
    assert_eq!(
        verdict(&[&format!("{right}, {wrong}")]),
        Err(ErrorCode::DigestMismatch)
    );
}

#[test]
fn only_other_algorithms_or_bad_syntax_are_rejected() {
    assert_eq!(verdict(&[SHA512_MEMBER]), Err(ErrorCode::DigestMismatch));
    let truncated = sha256_member().replace(":", "");
    assert_eq!(verdict(&[&truncated]), Err(ErrorCode::DigestMismatch));
}

#[test]
fn the_value_is_bounded_like_the_signature_fields() {
    // A valid dictionary padded with an extra member to an exact length.
    let padded = |len: usize| {
        let member = sha256_member();
        let pad = len - member.len() - ", pad=\"\"".len();
        format!("{member}, pad=\"{}\"", "a".repeat(pad))
    };
    let at_limit = padded(MAX_SIGNATURE_HEADER_LEN);
    assert_eq!(at_limit.len(), MAX_SIGNATURE_HEADER_LEN);
    assert_eq!(verdict(&[&at_limit]), Ok(()));
    let over = padded(MAX_SIGNATURE_HEADER_LEN + 1);
    assert_eq!(verdict(&[&over]), Err(ErrorCode::DigestMismatch));
}
