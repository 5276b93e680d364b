//! Running a case against `tessera_core`: every stage compared, then verified.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tessera_core::{
    rfc9421, sign, signature_base, verify, BodyDigest, Component, Error, ErrorCode, KeyId, Nonce,
    ParsedSignature, Policy, ReceivedRequest, Refusal, RequestView, Scheme, SecretKey, SignOptions,
    SigningKey,
};

use crate::model::{Case, Expected, Generic, Key, Kind, Request, Signed, Verifier};

/// A case that did not behave as recorded, with the stage where it diverged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The case name.
    pub case: String,
    /// The stage: `setup`, `signature_base`, `signature_input`, `signature`,
    /// `content_digest`, `verify` or `expected_error`.
    pub stage: &'static str,
    /// What differed.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "case {}: stage {}: {}",
            self.case, self.stage, self.detail
        )
    }
}

impl std::error::Error for Failure {}

fn fail(case: &Case, stage: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        case: case.name.clone(),
        stage,
        detail: detail.into(),
    }
}

/// The octets a case string stands for: each code point U+0000 to U+00FF
/// is one octet (ISO-8859-1), so cases can hold obs-text.
///
/// # Errors
/// When a code point is above U+00FF.
pub fn octets(text: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                format!(
                    "{text:?} holds {c:?}, above U+00FF; cases write octets as U+0000 to U+00FF"
                )
            })
        })
        .collect()
}

/// The header lines of a case as octets.
///
/// # Errors
/// As [`octets`].
pub fn header_octets(headers: &[(String, String)]) -> Result<Vec<(String, Vec<u8>)>, String> {
    headers
        .iter()
        .map(|(n, v)| Ok((n.clone(), octets(v)?)))
        .collect()
}

/// The prepared key of a case.
///
/// # Errors
/// When the id or secret is invalid.
pub fn signing_key(key: &Key) -> Result<SigningKey, Error> {
    Ok(SigningKey::new(
        KeyId::new(key.id.as_str())?,
        &SecretKey::from_hex(&key.secret_hex)?,
    ))
}

/// The decoded body of a request.
///
/// # Errors
/// When `body_base64` is not standard base64.
pub fn body(request: &Request) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(&request.body_base64)
        .map_err(|e| format!("body_base64 is not base64: {e}"))
}

fn verifier_scheme(case: &Case, verifier: &Verifier) -> Result<Scheme, Failure> {
    Scheme::parse(&verifier.scheme).ok_or_else(|| {
        fail(
            case,
            "setup",
            format!("verifier scheme {:?} is not http(s)", verifier.scheme),
        )
    })
}

/// Computes every stage's output for a tessera-v1 or generic case with `tessera_core`.
///
/// # Errors
/// A [`Failure`] naming the stage that errored.
pub fn produce(case: &Case) -> Result<Signed, Failure> {
    let body = body(&case.request).map_err(|e| fail(case, "setup", e))?;
    let headers = header_octets(&case.request.headers).map_err(|e| fail(case, "setup", e))?;
    let view = RequestView::from_url(&case.request.method, &case.request.target_uri, &headers[..])
        .map_err(|e| fail(case, "setup", format!("request view: {e}")))?;
    match case.kind {
        Kind::TesseraV1 => {
            let s = case
                .sign
                .as_ref()
                .ok_or_else(|| fail(case, "setup", "a tessera-v1 case needs \"sign\""))?;
            let key =
                signing_key(&case.key).map_err(|e| fail(case, "setup", format!("key: {e}")))?;
            let nonce = Nonce::new(s.nonce.as_str())
                .map_err(|e| fail(case, "setup", format!("nonce: {e}")))?;
            let extra = tessera_core::parse_cover(&s.extra_components)
                .map_err(|e| fail(case, "setup", format!("extra component: {e}")))?;
            let opts = SignOptions::new(s.created, &nonce)
                .with_expires(s.expires)
                .cover(&extra);
            let digest = BodyDigest::of(&body);
            let base = signature_base(&key, &view, &digest, &opts)
                .map_err(|e| fail(case, "signature_base", e.to_string()))?;
            let base = String::from_utf8(base.as_bytes().to_vec())
                .map_err(|_| fail(case, "signature_base", "the base is not ASCII"))?;
            let headers = sign(&key, &view, &digest, &opts)
                .map_err(|e| fail(case, "signature", e.to_string()))?;
            Ok(Signed {
                signature_base: base,
                signature_input: headers.signature_input,
                signature: headers.signature,
                content_digest: Some(headers.content_digest.into_owned()),
            })
        }
        Kind::Rfc9421Generic => {
            let g: &Generic = case
                .rfc9421
                .as_ref()
                .ok_or_else(|| fail(case, "setup", "a generic case needs \"rfc9421\""))?;
            let components = g
                .components
                .iter()
                .map(|c| Component::parse(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(case, "setup", format!("component: {e}")))?;
            let base = rfc9421::signature_base(&view, &components, &g.signature_params)
                .map_err(|e| fail(case, "signature_base", e.to_string()))?;
            let secret = hex::decode(&case.key.secret_hex)
                .map_err(|e| fail(case, "setup", format!("key: {e}")))?;
            let mac = rfc9421::hmac_sha256(&secret, base.as_bytes());
            Ok(Signed {
                signature_base: String::from_utf8(base.as_bytes().to_vec())
                    .map_err(|_| fail(case, "signature_base", "the base is not UTF-8"))?,
                signature_input: format!("{}={}", g.label, g.signature_params),
                signature: format!("{}=:{}:", g.label, STANDARD.encode(mac)),
                content_digest: None,
            })
        }
    }
}

/// Verifies the case's request, with `headers` in place of `request.headers`,
/// using the case's verifier: the case key for its id, `unknown_key` for any other id.
/// On success, also returns the base the verifier computed.
///
/// # Errors
/// The verification error. A missing verifier section or an undecodable
/// body is a `Failure` in `setup`.
pub fn verify_received(
    case: &Case,
    headers: &[(String, String)],
) -> Result<Result<(ParsedSignature, String), Error>, Failure> {
    let verifier = case
        .verifier
        .as_ref()
        .ok_or_else(|| fail(case, "setup", "the case has no \"verifier\""))?;
    let scheme = verifier_scheme(case, verifier)?;
    let body = body(&case.request).map_err(|e| fail(case, "setup", e))?;
    let key = signing_key(&case.key).map_err(|e| fail(case, "setup", format!("key: {e}")))?;
    let method = octets(&case.request.method).map_err(|e| fail(case, "setup", e))?;
    let target = octets(&case.request.target_uri).map_err(|e| fail(case, "setup", e))?;
    let headers = header_octets(headers).map_err(|e| fail(case, "setup", e))?;
    let over_http2 = case
        .request
        .over_http2()
        .map_err(|e| fail(case, "setup", e))?;
    let received = ReceivedRequest::new(&method, &target, &headers[..]).over_http2(over_http2);
    let policy = match &verifier.fixed_authority {
        Some(fixed) => Policy::fixed(verifier.now, verifier.window, fixed),
        None => Policy::new(verifier.now, verifier.window, &verifier.authorities),
    }
    .with_scheme(scheme);
    let body = BodyDigest::of(&body);
    let verified = verify(&received, &body, &policy, |id| {
        if id == key.key_id() {
            Ok(key.clone())
        } else {
            Err(Refusal::UnknownKey)
        }
    });
    let outcome = verified.and_then(|parsed| {
        // Step 8 without a store: only its memory point (spec §14.1).
        if let Some(since) = verifier.store_since {
            tessera_core::check_remembered(parsed.created(), since)?;
        }
        let view = received.view(policy.scheme, policy.authorities)?;
        let base = parsed.signature_base(&view)?;
        Ok((parsed, base))
    });
    match outcome {
        Ok((parsed, base)) => {
            let base = String::from_utf8(base.as_bytes().to_vec())
                .map_err(|_| fail(case, "signature_base", "the base is not ASCII"))?;
            Ok(Ok((parsed, base)))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Signs the request of a refused case, which must fail.
///
/// # Errors
/// A `Failure` in `setup` when the case is not a refused one; `Ok(Ok(()))`
/// when signing succeeded (which the caller reports).
pub fn sign_refused(case: &Case) -> Result<Result<(), Error>, Failure> {
    let s = case
        .sign
        .as_ref()
        .ok_or_else(|| fail(case, "setup", "a refused case needs \"sign\""))?;
    let body = body(&case.request).map_err(|e| fail(case, "setup", e))?;
    let target_octets = octets(&case.request.target_uri).map_err(|e| fail(case, "setup", e))?;
    let headers = header_octets(&case.request.headers).map_err(|e| fail(case, "setup", e))?;
    Ok((|| {
        // The order a signer follows (spec §10): key and inputs, then the request.
        // Spec §10 step 2: the secret, the components, then the parameters.
        let secret = SecretKey::from_hex(&case.key.secret_hex)?;
        let extra = tessera_core::parse_cover(&s.extra_components)?;
        let key = SigningKey::new(KeyId::new(case.key.id.as_str())?, &secret);
        let nonce = Nonce::new(s.nonce.as_str())?;
        let opts = SignOptions::new(s.created, &nonce)
            .with_expires(s.expires)
            .cover(&extra);
        // Octets above 0x7F become U+FFFD, which the signer refuses
        // (`invalid_field_value`) just as it would the octets themselves.
        let url = String::from_utf8_lossy(&target_octets);
        let view = RequestView::from_url(&case.request.method, &url, &headers[..])?;
        sign(&key, &view, &BodyDigest::of(&body), &opts).map(|_| ())
    })())
}

/// The case as sent: a signer never sends the fragment of the URL it was
/// given, so the received absolute-form target lacks it.
fn as_sent(case: &Case) -> Case {
    let mut sent = case.clone();
    if let Some((before, _)) = sent.request.target_uri.split_once('#') {
        sent.request.target_uri = before.to_owned();
    }
    sent
}

fn with_signature_headers(
    request: &Request,
    content_digest: &str,
    input: &str,
    signature: &str,
) -> Vec<(String, String)> {
    let mut headers = request.headers.clone();
    headers.push(("Content-Digest".to_owned(), content_digest.to_owned()));
    headers.push(("Signature-Input".to_owned(), input.to_owned()));
    headers.push(("Signature".to_owned(), signature.to_owned()));
    headers
}

fn compare(case: &Case, stage: &'static str, expected: &str, actual: &str) -> Result<(), Failure> {
    if expected == actual {
        Ok(())
    } else {
        Err(fail(
            case,
            stage,
            format!("expected {expected:?}\n      got {actual:?}"),
        ))
    }
}

/// Runs one case: positive cases are signed and every stage compared, then
/// the signed request is verified; negative cases are verified and the
/// error code compared.
///
/// # Errors
/// A [`Failure`] naming the case and the stage.
pub fn check(case: &Case) -> Result<(), Failure> {
    match &case.expected {
        Expected::Signed(expected) => {
            let produced = produce(case)?;
            compare(
                case,
                "signature_base",
                &expected.signature_base,
                &produced.signature_base,
            )?;
            compare(
                case,
                "signature_input",
                &expected.signature_input,
                &produced.signature_input,
            )?;
            compare(case, "signature", &expected.signature, &produced.signature)?;
            if expected.content_digest != produced.content_digest {
                return Err(fail(
                    case,
                    "content_digest",
                    format!(
                        "expected {:?}\n      got {:?}",
                        expected.content_digest, produced.content_digest
                    ),
                ));
            }
            if case.kind == Kind::TesseraV1 {
                let digest = expected.content_digest.as_deref().unwrap_or_default();
                let headers = with_signature_headers(
                    &case.request,
                    digest,
                    &expected.signature_input,
                    &expected.signature,
                );
                match verify_received(&as_sent(case), &headers)? {
                    Ok((_, base)) => compare(case, "verify", &expected.signature_base, &base)?,
                    Err(e) => {
                        return Err(fail(
                            case,
                            "verify",
                            format!("the signed request was rejected: {e}"),
                        ))
                    }
                }
            }
            Ok(())
        }
        Expected::Accepted(accepted) => match verify_received(case, &case.request.headers)? {
            Ok((_, base)) => compare(case, "signature_base", &accepted.signature_base, &base),
            Err(e) => Err(fail(
                case,
                "verify",
                format!("the received request was rejected: {e}"),
            )),
        },
        Expected::Refused(refused) => {
            let outcome = sign_refused(case)?.map(|()| "the signer signed it");
            expect_code(
                case,
                &refused.sign_error,
                "the signer to refuse with",
                outcome,
            )
        }
        Expected::Rejected(rejected) => {
            let outcome =
                verify_received(case, &case.request.headers)?.map(|_| "the request verified");
            expect_code(case, &rejected.error, "", outcome)
        }
    }
}

/// Compares a refusal with the case's expected code; `Ok(what)` says what
/// happened instead of a refusal.
fn expect_code(
    case: &Case,
    expected: &str,
    who: &str,
    outcome: Result<&str, Error>,
) -> Result<(), Failure> {
    if ErrorCode::from_code(expected).is_none() {
        return Err(fail(
            case,
            "setup",
            format!("{expected:?} is not an error code"),
        ));
    }
    let code = expected;
    let expected = if who.is_empty() {
        expected.to_owned()
    } else {
        format!("{who} {expected}")
    };
    match outcome {
        Ok(what) => Err(fail(
            case,
            "expected_error",
            format!("expected {expected} but {what}"),
        )),
        Err(e) if e.code().as_str() == code => Ok(()),
        Err(e) => Err(fail(
            case,
            "expected_error",
            format!("expected {expected} but got {e}"),
        )),
    }
}

/// A signature produced by another implementation for a positive case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSignature {
    /// The case name.
    pub name: String,
    /// The `Signature-Input` value it produced.
    pub signature_input: String,
    /// The `Signature` value it produced.
    pub signature: String,
    /// The `Content-Digest` value it produced, if it added one.
    #[serde(default)]
    pub content_digest: Option<String>,
}

/// Checks another implementation's signature for a positive case.
///
/// tessera-v1 cases: its `Content-Digest` must equal ours and
/// `tessera_core::verify` must accept the request carrying its three headers.
/// Generic cases: its `Signature-Input` and `Signature` must equal the recorded ones.
///
/// # Errors
/// A [`Failure`] naming the stage.
pub fn verify_external(case: &Case, ext: &ExternalSignature) -> Result<(), Failure> {
    let Expected::Signed(expected) = &case.expected else {
        return Err(fail(case, "setup", "not a positive case"));
    };
    match case.kind {
        Kind::TesseraV1 => {
            let digest = ext.content_digest.as_deref().ok_or_else(|| {
                fail(
                    case,
                    "content_digest",
                    "the external signer added no Content-Digest",
                )
            })?;
            compare(
                case,
                "content_digest",
                expected.content_digest.as_deref().unwrap_or_default(),
                digest,
            )?;
            let sent = as_sent(case);
            let headers =
                with_signature_headers(&case.request, digest, &ext.signature_input, &ext.signature);
            if let Err(e) = verify_received(&sent, &headers)? {
                return Err(fail(
                    case,
                    "verify",
                    format!("the external signature was rejected: {e}"),
                ));
            }
            // Control: the same headers with one MAC bit flipped must fail.
            let flipped = flip_mac(&ext.signature)
                .ok_or_else(|| fail(case, "signature", "not a byte sequence"))?;
            let headers =
                with_signature_headers(&case.request, digest, &ext.signature_input, &flipped);
            match verify_received(&sent, &headers)? {
                Err(e) if e.code() == ErrorCode::BadSignature => Ok(()),
                other => Err(fail(
                    case,
                    "verify",
                    format!(
                        "a flipped MAC gave {:?} instead of bad_signature",
                        other.map(|_| ())
                    ),
                )),
            }
        }
        Kind::Rfc9421Generic => {
            compare(
                case,
                "signature_input",
                &expected.signature_input,
                &ext.signature_input,
            )?;
            compare(case, "signature", &expected.signature, &ext.signature)
        }
    }
}

/// `label=:base64:` with the first bit of the MAC flipped.
fn flip_mac(signature: &str) -> Option<String> {
    let (label, rest) = signature.split_once("=:")?;
    let mut mac = STANDARD.decode(rest.strip_suffix(':')?).ok()?;
    *mac.first_mut()? ^= 1;
    Some(format!("{label}=:{}:", STANDARD.encode(mac)))
}
