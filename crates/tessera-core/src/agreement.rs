//! The signer/verifier agreement check behind the property test
//! (`tests/agreement.rs`) and the `sign_verify_agree` fuzz target: the same
//! request goes to the signer and to the verifier, and either it is signable
//! and verifies, or both refuse it with the same code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::{
    parse_cover, sign, verify, BodyDigest, ErrorCode, KeyId, Nonce, Policy, ReceivedRequest,
    RequestView, Scheme, SecretKey, SignOptions, SigningKey, Target,
};

/// One request as a user hands it to a signer.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The method, as the request carries it.
    pub method: &'a str,
    /// The URL given to the signer.
    pub url: &'a str,
    /// Header lines (name, value octets), in order.
    pub headers: &'a [(String, Vec<u8>)],
    /// Header names the caller asks to cover, as written.
    pub cover: &'a [String],
    /// The body.
    pub body: &'a [u8],
    /// Send the target in origin-form with a `Host` line (instead of absolute-form).
    pub origin_form: bool,
}

const CREATED: u64 = 1_700_000_000;

/// Signs `attempt`, sends it (signed, or with a zero MAC when the signer
/// refused), verifies what arrives, and compares.
///
/// Returns `Ok(None)` when the request was signed and verified, `Ok(Some(code))`
/// when both sides refused with `code`.
///
/// # Errors
/// A description of the disagreement.
pub fn sign_and_verify_agree(attempt: &Attempt<'_>) -> Result<Option<ErrorCode>, String> {
    let Ok(target) = Target::parse_url(attempt.url) else {
        // Not a URL a signer takes at all: nothing to compare.
        return Ok(None);
    };
    let key = SigningKey::new(
        KeyId::new("agree-key").map_err(|e| e.to_string())?,
        &SecretKey::from_bytes(&[0x42; 32]).map_err(|e| e.to_string())?,
    );
    let nonce = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").map_err(|e| e.to_string())?;
    let signed = (|| {
        // The signer's order (spec §10): inputs, then the request.
        let extra = parse_cover(attempt.cover)?;
        let options = SignOptions::new(CREATED, &nonce).cover(&extra);
        options.check()?;
        let view = RequestView::new(
            attempt.method,
            target.scheme(),
            target.authority(),
            target.path(),
            target.query(),
            attempt.headers,
        )?;
        sign(&key, &view, &BodyDigest::of(attempt.body), &options)
    })();

    let (content_digest, input, signature) = match &signed {
        Ok(headers) => (
            headers.content_digest.to_string(),
            headers.signature_input.clone(),
            headers.signature.clone(),
        ),
        Err(_) => {
            let mut list =
                String::from(r#""@method" "@authority" "@path" "@query" "content-digest""#);
            for name in attempt.cover {
                if name
                    .bytes()
                    .any(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
                {
                    // Not writable as an sf-string: no received form to compare.
                    return Ok(None);
                }
                list.push_str(&format!(" \"{name}\""));
            }
            (
                BodyDigest::of(attempt.body).header_value().into_owned(),
                format!(
                    "tessera=({list});created={CREATED};keyid=\"agree-key\";nonce=\"{}\";tag=\"tessera-v1\"",
                    nonce.as_str()
                ),
                format!("tessera=:{}:", STANDARD.encode([0u8; 32])),
            )
        }
    };

    // In origin-form the authority travels in Host: a request that brings
    // its own Host line has no single wire form to compare.
    if attempt.origin_form
        && attempt
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        return Ok(None);
    }
    // A Host value cannot begin or end with SP or HTAB: HTTP drops them as
    // OWS, so such an authority would arrive as another one. Only the
    // absolute-form can carry it (and both sides refuse it there).
    let authority = target.authority().as_bytes();
    if attempt.origin_form
        && (authority.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
            || authority.last().is_some_and(|b| matches!(b, b' ' | b'\t')))
    {
        return Ok(None);
    }
    // The request as sent: the fragment never leaves the client.
    let query = target.query().map(|q| format!("?{q}")).unwrap_or_default();
    let scheme = match target.scheme() {
        Scheme::Https => "https",
        Scheme::Http => "http",
    };
    let request_target = if attempt.origin_form {
        format!("{}{query}", target.path())
    } else {
        format!("{scheme}://{}{}{query}", target.authority(), target.path())
    };
    let mut received_headers: Vec<(String, Vec<u8>)> = Vec::new();
    if attempt.origin_form {
        received_headers.push(("Host".to_owned(), target.authority().as_bytes().to_vec()));
    }
    received_headers.extend(attempt.headers.iter().cloned());
    received_headers.push(("Content-Digest".to_owned(), content_digest.into_bytes()));
    received_headers.push(("Signature-Input".to_owned(), input.into_bytes()));
    received_headers.push(("Signature".to_owned(), signature.into_bytes()));
    // An origin-form request with an empty path sends `/`.
    let request_target = if attempt.origin_form && target.path().is_empty() {
        format!("/{request_target}")
    } else {
        request_target
    };
    let received = ReceivedRequest::new(
        attempt.method.as_bytes(),
        request_target.as_bytes(),
        &received_headers[..],
    );
    let served = crate::normalize_authority(target.authority(), target.scheme())
        .map_or_else(|_| "unused.example".to_owned(), |a| a.into_owned());
    let served = [served];
    let policy = Policy::new(CREATED, 300, &served).with_scheme(target.scheme());
    let verified = verify(&received, &BodyDigest::of(attempt.body), &policy, |_| {
        Ok(key.clone())
    });

    match (signed, verified) {
        (Ok(_), Ok(_)) => Ok(None),
        (Err(s), Err(v)) if s.code() == v.code() => Ok(Some(s.code())),
        (Ok(_), Err(v)) => Err(format!(
            "signed, but the verifier rejected it: {v} (target {request_target:?})"
        )),
        (Err(s), Ok(_)) => Err(format!(
            "the signer refused ({s}) but the verifier accepted it (target {request_target:?})"
        )),
        (Err(s), Err(v)) => Err(format!(
            "the signer refused with {s} but the verifier with {v} (target {request_target:?})"
        )),
    }
}
