//! # tessera-client
//!
//! The client side of Tessera, the `tessera-v1` profile of RFC 9421 HTTP
//! Message Signatures (`hmac-sha256`) with RFC 9530 `Content-Digest`.
//!
//! * [`Signer`] signs `http` requests (and, with the default `reqwest`
//!   feature, `reqwest` requests) with a key id and secret, a fresh nonce
//!   from a user-space CSPRNG, the current time plus a learned clock offset,
//!   and the extra headers it was configured to cover.
//! * [`Signer::apply_skew_challenge`] adopts the server's time from an
//!   authenticated `Tessera-Server-Time` challenge (never from `Date`).
//! * `SignRequestMiddleware` (feature `reqwest`) signs every request sent
//!   through a `reqwest_middleware::ClientWithMiddleware`, retries once after
//!   an authenticated `clock_skew`, and follows redirects itself, re-signing
//!   each hop. Build the inner client with `client_builder()` so reqwest does
//!   not follow redirects with a stale signature.
//!
//! ## Example
//!
//! Sign a request and look at the headers, without a network:
//!
//! ```
//! use std::time::Duration;
//!
//! use tessera_client::Signer;
//! use tessera_core::{BodyDigest, KeyId, SecretKey, SigningKey};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The key this device received once, at login.
//! let secret = SecretKey::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! let key = SigningKey::new(KeyId::new("user-42-phone")?, &secret);
//! let signer = Signer::builder(key)
//!     .cover("content-type")
//!     .expires_after(Duration::from_secs(60))
//!     .build()?;
//!
//! let mut request = http::Request::post("https://api.example.com/v1/orders?dry_run=1")
//!     .header("content-type", "application/json")
//!     .body(br#"{"qty":1}"#.to_vec())?;
//! let info = signer.sign_request(&mut request)?;
//!
//! for name in ["content-digest", "signature-input", "signature"] {
//!     println!("{name}: {:?}", request.headers()[name]);
//! }
//! let input = request.headers()["signature-input"].to_str()?;
//! assert!(input.starts_with(r#"tessera=("@method" "@authority" "@path" "@query" "content-digest" "content-type");created="#));
//! assert!(input.contains(&format!(r#"nonce="{}""#, info.nonce)));
//!
//! // The exact bytes that were signed, for debugging a `bad_signature` answer
//! // (`redacted()` hides the query and header values for logs).
//! let base = signer.signature_base(
//!     request.method(),
//!     request.uri(),
//!     request.headers(),
//!     &BodyDigest::of(request.body()),
//!     &info,
//! )?;
//! println!("{}", base.redacted());
//! # Ok(()) }
//! ```
//!
//! With `reqwest` and `reqwest-middleware`:
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run(signer: tessera_client::Signer) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_client::{client_builder, SignRequestMiddleware};
//!
//! let client = reqwest_middleware::ClientBuilder::new(client_builder().build()?)
//!     // retry middleware goes here, before the signer
//!     .with(SignRequestMiddleware::new(signer))
//!     .build();
//! let response = client.get("https://api.example.com/v1/me").send().await?;
//! if let Some(code) = tessera_client::rejection_code(response.headers()) {
//!     eprintln!("rejected: {code}");
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
#[cfg(feature = "reqwest")]
mod reqwest_mw;
mod signer;

pub use error::ClientError;
#[cfg(feature = "reqwest")]
pub use reqwest_mw::{
    client_builder, redirect_policy, SignRequestMiddleware, DEFAULT_MAX_REDIRECTS,
};
pub use signer::{rejection_code, SignedRequestInfo, Signer, SignerBuilder};
pub use tessera_core::{Clock, ManualClock, SystemClock};

/// A request extension carrying the SHA-256 of a body the caller streams.
///
/// `SignRequestMiddleware` refuses streaming bodies unless this extension is
/// present (`RequestBuilder::with_extension(PrecomputedDigest(digest))`).
/// The digest is trusted as given; a wrong one makes the server answer
/// `digest_mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecomputedDigest(pub tessera_core::BodyDigest);
