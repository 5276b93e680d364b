//! # tessera-client
//!
//! The client side of Tessera, the `tessera-v1` profile of RFC 9421 HTTP
//! Message Signatures (`hmac-sha256`) with RFC 9530 `Content-Digest`
//! (`spec/tessera-v1.md`).
//!
//! ## Where it sits
//!
//! ```text
//!  your app ──▶ tessera-client ──▶ tessera-core           (signature base, MAC; no I/O)
//!               Signer: clock, offset, nonces, covered headers
//!               + feature `reqwest`: SignRequestMiddleware
//!                        │ signed HTTP request
//!                        ▼
//!               tessera-server (Verifier, tower layer) ──▶ tessera-core
//! ```
//!
//! A device gets a key id and secret once (at login, from tessera-server's
//! `KeyIssuer`), builds one [`Signer`] with it, and signs every request.
//! The server verifies each request with the same secret and rejects
//! tampered, replayed and stale ones. The mobile bindings (`tessera-ffi`:
//! Kotlin, Swift, Python) wrap this same `Signer`.
//!
//! This crate re-exports the tessera-core types an application touches
//! ([`KeyId`], [`SecretKey`], [`SigningKey`], [`BodyDigest`], [`Nonce`],
//! [`ErrorCode`], [`Clock`], [`Scheme`], ...), so it is the only Tessera
//! dependency a client needs; the whole core is at [`tessera_core`].
//!
//! ## Main entry point
//!
//! [`Signer::builder`] takes the key; the signer then signs requests with a
//! fresh nonce from a user-space CSPRNG and the current time plus a clock
//! offset learned from the server:
//!
//! ```
//! use std::time::Duration;
//!
//! use tessera_client::{KeyId, SecretKey, Signer, SigningKey};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The key this device received once, at login.
//! let secret = SecretKey::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! let key = SigningKey::new(KeyId::new("user-42-phone")?, &secret);
//! let signer = Signer::builder(key)
//!     .cover("content-type") // covered on the requests that carry it
//!     .expires_after(Duration::from_secs(60))
//!     .build()?;
//!
//! // A POST with a JSON body: content-type is covered.
//! let mut post = http::Request::post("https://api.example.com/v1/orders?dry_run=1")
//!     .header("content-type", "application/json")
//!     .body(br#"{"qty":1}"#.to_vec())?;
//! let info = signer.sign_request(&mut post)?;
//! let input = post.headers()["signature-input"].to_str()?;
//! assert!(input.starts_with(r#"tessera=("@method" "@authority" "@path" "@query" "content-digest" "content-type");created="#));
//! assert!(input.contains(&format!(r#"nonce="{}""#, info.nonce)));
//!
//! // A body-less GET from the same signer: nothing to cover beyond the floor.
//! let mut get = http::Request::get("https://api.example.com/v1/me").body(Vec::new())?;
//! signer.sign_request(&mut get)?;
//! assert!(get.headers()["signature-input"]
//!     .to_str()?
//!     .starts_with(r#"tessera=("@method" "@authority" "@path" "@query" "content-digest");"#));
//!
//! // Any other HTTP stack: compute the headers without touching a request.
//! let signed = signer.sign("DELETE", "https://api.example.com/v1/orders/7", &http::HeaderMap::new(), &tessera_client::BodyDigest::EMPTY)?;
//! for (name, value) in signed.iter() {
//!     println!("{name}: {value:?}"); // the signature prints as Sensitive
//! }
//! # Ok(()) }
//! ```
//!
//! What a verifier does with these requests, over a real socket, is in the
//! crate's `examples/` (`hyper_client`, `ureq_client`) and tests.
//!
//! ## Signing methods
//!
//! * [`Signer::sign_request`]: an `http::Request` with its body in memory,
//!   in place.
//! * [`Signer::sign`]: method, absolute URL and headers of any HTTP stack
//!   (hyper, ureq, your own), with the body's [`BodyDigest`]; returns
//!   [`SignedHeaders`] to set with [`SignedHeaders::apply_to`].
//! * [`Signer::sign_view`]: the same for a [`RequestView`] that names the
//!   scheme and authority explicitly (a path-only URI, as hyper's
//!   connection-level client writes, is refused by the others: see
//!   [`SignableUrl`]).
//! * `Signer::sign_reqwest` and `SignRequestMiddleware` (feature
//!   `reqwest`).
//!
//! ## Clock skew
//!
//! [`Signer::apply_skew_challenge`] adopts the server's time from an
//! authenticated `Tessera-Server-Time` challenge (never from `Date`); the
//! reqwest middleware does it for you and retries once, signed afresh.
//!
//! ## Cargo features
//!
//! * `reqwest` (off by default): `SignRequestMiddleware` for
//!   `reqwest-middleware` (signs every attempt, retries once after an
//!   authenticated `clock_skew`, follows redirects itself and re-signs each
//!   hop), `Signer::sign_reqwest`, `client_builder()`, `redirect_policy()`,
//!   and `reqwest::Url` as a [`SignableUrl`]. TLS is not chosen here: enable
//!   a TLS feature on your own `reqwest` dependency.
//!
//! Without features the crate depends on no HTTP client and no async
//! runtime (tessera-core, `http`, `rand`, `thiserror`, `tracing`), which is
//! what the mobile bindings build.
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
mod rate_limited;
#[cfg(feature = "reqwest")]
mod reqwest_mw;
mod signed;
mod signer;
mod url;

pub use error::{ClientError, ConfigError};
pub use rate_limited::RateLimited;
#[cfg(feature = "reqwest")]
pub use reqwest_mw::{
    client_builder, redirect_policy, SignRequestMiddleware, DEFAULT_MAX_REDIRECTS,
};
pub use signed::{SignedHeaders, SignedRequestInfo};
pub use signer::{rejection_code, CoveredHeader, Signer, SignerBuilder};
pub use url::SignableUrl;

/// The whole of tessera-core, for what the re-exports below leave out.
pub use tessera_core;
pub use tessera_core::{
    BodyDigest, BodyHasher, Clock, Component, ErrorCode, Fields, KeyId, MacError, MacKey,
    ManualClock, Nonce, RequestView, Scheme, SecretKey, SignatureBase, SigningKey, SystemClock,
};

/// A request extension carrying the SHA-256 of a body the caller streams.
///
/// `SignRequestMiddleware` (feature `reqwest`) refuses streaming bodies
/// unless this extension is present
/// (`RequestBuilder::with_extension(PrecomputedDigest::new(digest))`). The
/// digest is trusted as given; a wrong one makes the server answer
/// `digest_mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecomputedDigest(BodyDigest);

impl PrecomputedDigest {
    /// The extension for a body whose digest is `digest` (from a
    /// [`BodyHasher`], for example).
    pub fn new(digest: BodyDigest) -> Self {
        PrecomputedDigest(digest)
    }

    /// The digest.
    pub fn digest(&self) -> BodyDigest {
        self.0
    }
}
