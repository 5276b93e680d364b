//! # tessera-core
//!
//! The pure engine of Tessera: the `tessera-v1` profile of RFC 9421 HTTP
//! Message Signatures (`hmac-sha256`) with RFC 9530 `Content-Digest`, as
//! specified in `spec/tessera-v1.md`.
//!
//! This crate does no I/O, runs no async code, and reads neither the clock
//! nor a random source on the signing and verifying paths: the time and the
//! nonce are arguments. The client crate (`tessera-client`) and the server
//! crate (`tessera-server`) supply clocks, randomness and stores.
//!
//! ## Example
//!
//! ```
//! use tessera_core::{
//!     sign, verify, BodyDigest, KeyId, Nonce, Policy, ReceivedRequest, Refusal, RequestView,
//!     SecretKey, SignOptions, SigningKey,
//! };
//!
//! # fn main() -> Result<(), tessera_core::Error> {
//! // The key a user's device received once, at login.
//! let key = SigningKey::new(KeyId::new("user-42-phone")?, &SecretKey::from_bytes(&[7; 32])?);
//!
//! // The client signs.
//! let body = br#"{"qty":1}"#;
//! let mut request = http::Request::post("https://api.example.com/v1/orders?dry_run=1")
//!     .header("content-type", "application/json")
//!     .body(())
//!     .expect("valid request");
//! let nonce = Nonce::new("q8Zl1mVQm0yD9kR3tW5xCA")?; // normally Nonce::generate(&mut rng)
//! let options = SignOptions::new(1_700_000_000, &nonce);
//! let (mut parts, ()) = request.into_parts();
//! let headers = sign(&key, &RequestView::from_parts(&parts)?, &BodyDigest::of(body), &options)?;
//! headers.apply_to(&mut parts.headers)?;
//!
//! // The server verifies the request it received.
//! let authorities = ["api.example.com".to_owned()];
//! let policy = Policy::new(1_700_000_030, 300, &authorities);
//! let verified = verify(
//!     &ReceivedRequest::from_parts(&parts),
//!     &BodyDigest::of(body),
//!     &policy,
//!     |id| if id == key.key_id() { Ok(key.clone()) } else { Err(Refusal::UnknownKey) },
//! )?;
//! assert_eq!(verified.key_id().as_str(), "user-42-phone");
//!
//! // A tampered body fails.
//! let err = verify(&ReceivedRequest::from_parts(&parts), &BodyDigest::of(b"{}"), &policy, |_| Ok(key.clone()))
//!     .unwrap_err();
//! assert_eq!(err.code().as_str(), "digest_mismatch");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod agreement;
mod base;
mod canonical;
#[cfg(any(test, fuzzing))]
mod canonical_agreement;
pub mod challenge;
mod clock;
mod component;
mod digest;
mod error;
mod inline;
mod key;
mod mac_key;
mod nonce;
mod params;
mod parsed;
mod received;
mod request;
mod request_line;
mod sf;
mod sign;
mod target;
mod verify;

pub use base::{RedactedSignatureBase, SignatureBase};
pub use clock::{Clock, ManualClock, SystemClock};
pub use component::{parse_cover, Component, FieldName, CONTENT_DIGEST, MANDATORY, MAX_COMPONENTS};
pub use digest::{BodyDigest, BodyHasher, EMPTY_BODY_CONTENT_DIGEST};
pub use error::{
    check_remembered, memory_point, until_memory_point, Error, ErrorCode, Refusal, Result,
};
pub use key::{
    derive_secret, KeyId, SecretKey, SigningKey, GENERATED_SECRET_LEN, MAX_KEY_ID_LEN,
    MAX_SECRET_LEN, MIN_SECRET_LEN,
};
pub use mac_key::{MacError, MacKey, SignError, MAC_LEN};
pub use nonce::{Nonce, MAX_NONCE_LEN, MIN_NONCE_LEN};
pub use parsed::{ParsedSignature, MAX_SIGNATURE_HEADER_LEN};
pub use received::{check_host_matches_target, Authorities, ReceivedRequest};
pub use request::{
    check_method, check_path, check_query, normalize_authority, Fields, RequestView, Scheme,
};
pub use request_line::RequestLine;
pub use sign::{sign, sign_with_key, signature_base, SignOptions, SignedHeaders, MAX_TIME};
pub use target::Target;
pub use verify::{verify, Policy};

/// The label Tessera signers use for their signature.
pub const LABEL: &str = "tessera";
/// The `tag` parameter value that identifies the tessera-v1 profile.
pub const TAG: &str = "tessera-v1";
/// Default acceptance window, seconds: how far `created` may lie in the past.
pub const DEFAULT_WINDOW_SECS: u64 = 300;
/// How far `created` may lie ahead of the verifier's clock, seconds (spec
/// §11.2, step 4; never more than the window).
///
/// Small on purpose: a nonce store that lost its contents refuses every
/// signature created before its memory point (spec §14.1), and a request
/// dated ahead could otherwise be replayed after the loss. A client whose
/// clock runs further ahead is corrected by the clock-skew challenge
/// (spec §13) before its next request.
pub const MAX_AHEAD_SECS: u64 = 2;

/// Checks for the `fuzz/` targets, which cargo-fuzz builds with
/// `--cfg fuzzing`; not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Panics unless parsing these one-line `Signature-Input` and `Signature`
    /// values gives exactly what the `sfv` path alone gives, errors included.
    pub fn canonical_agrees_with_sfv(input: &[u8], signature: &[u8]) {
        crate::canonical_agreement::assert_agrees(input, signature);
    }
}

/// Generic RFC 9421 pieces outside the tessera-v1 profile, used to reproduce
/// the RFC's own examples (Appendix B.2.5) in the test vectors. Not for
/// production verification: nothing here enforces the profile.
#[doc(hidden)]
pub mod rfc9421 {
    use hmac::Mac;

    use crate::{Component, Fields, RequestView, Result, SignatureBase};

    /// The base for arbitrary components and a given serialized `@signature-params` value.
    ///
    /// # Errors
    /// `missing_component`, `invalid_field_value`.
    pub fn signature_base<F: Fields + ?Sized>(
        request: &RequestView<'_, F>,
        components: &[Component],
        params: &str,
    ) -> Result<SignatureBase> {
        SignatureBase::build(request, components, None, params)
    }

    /// HMAC-SHA256 of `base` under `secret`.
    pub fn hmac_sha256(secret: &[u8], base: &[u8]) -> [u8; 32] {
        let mut mac = crate::key::prepare_mac(secret);
        mac.update(base);
        mac.finalize().into_bytes().into()
    }
}
