//! # tessera-server
//!
//! The server side of Tessera, a strict profile (`tessera-v1`) of RFC 9421
//! HTTP Message Signatures with `hmac-sha256` and RFC 9530 `Content-Digest`.
//!
//! * [`Verifier`]: the ordered verification procedure (parse, key, time,
//!   authority, MAC, body digest, then replay), configured with a builder
//!   whose defaults are the safe ones.
//! * [`KeyStore`] with [`MemoryKeyStore`] and [`DerivedKeyStore`], and the
//!   [`KeyIssuer`] that mints keys at login.
//! * [`NonceStore`] with the bounded, fail-closed [`MemoryNonceStore`] and,
//!   with the `redis` feature, `RedisNonceStore`, shared by every instance
//!   (`redis-tls` adds `rediss://`).
//! * [`Clock`] with [`SystemClock`] and, for tests, [`ManualClock`].
//! * tower middleware: [`VerifySignatureLayer`] and the route guard
//!   [`RequireScopeLayer`]; with the `axum` feature (default),
//!   [`VerifiedIdentity`] is an axum extractor.
//!
//! Rejections are `application/problem+json` responses carrying the spec's
//! stable error code; 401s carry `WWW-Authenticate: Tessera realm=..., error=...`.
//! Logs (`tracing`) carry the outcome, the code and the key id, never a
//! secret, a signature or a full signature base.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::{routing::get, Router};
//! use tessera_core::{sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey};
//! use tessera_server::{
//!     KeyMetadata, ManualClock, MemoryKeyStore, RequireScopeLayer, VerifiedIdentity, Verifier,
//!     VerifySignatureLayer,
//! };
//! use tower::ServiceExt; // for `oneshot`
//!
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Keys: normally issued at login with `KeyIssuer`.
//! let secret = SecretKey::from_bytes(&[7; 32])?;
//! let keys = Arc::new(MemoryKeyStore::new());
//! keys.insert(KeyId::new("phone-1")?, &secret, KeyMetadata::new("user-42").with_scopes(["read"]));
//!
//! let clock = ManualClock::new(1_700_000_000); // SystemClock in production
//! let verifier = Verifier::builder(Arc::clone(&keys))
//!     .clock(clock.clone())
//!     .authority("api.example.com")
//!     .build()?;
//! // Its replay store vouches for signatures from its memory point on (the
//! // next second, plus the 2 s a signature may be dated ahead): those
//! // created before it, which a process before this one may have accepted,
//! // get `store_reset` (spec §14.1). A real server waits for `is_ready()`.
//! let now = verifier.ready_at();
//! clock.set(now);
//! assert!(verifier.is_ready());
//!
//! let app = Router::new()
//!     .route(
//!         "/v1/me",
//!         get(|who: VerifiedIdentity| async move { format!("hello {}", who.owner()) }),
//!     )
//!     .route_layer(RequireScopeLayer::new("read"))
//!     .layer(VerifySignatureLayer::new(verifier));
//!
//! // A client signs with tessera-core (or tessera-client).
//! let key = SigningKey::new(KeyId::new("phone-1")?, &secret);
//! let nonce = Nonce::generate(&mut rand::rng());
//! let (mut parts, ()) = http::Request::get("https://api.example.com/v1/me").body(())?.into_parts();
//! let options = SignOptions::new(now, &nonce);
//! sign(&key, &RequestView::from_parts(&parts)?, &BodyDigest::EMPTY, &options)?
//!     .apply_to(&mut parts.headers)?;
//!
//! let request = http::Request::from_parts(parts.clone(), axum::body::Body::empty());
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! // The same request again is a replay.
//! let replay = http::Request::from_parts(parts, axum::body::Body::empty());
//! let response = app.oneshot(replay).await?;
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers()["www-authenticate"], "Tessera realm=\"tessera\", error=\"replayed\"");
//! # Ok(()) }
//! ```
//!
//! ## Deployment notes
//!
//! * The authority in the signature base is the one this server is
//!   configured to serve. Behind a proxy that rewrites `Host`, use
//!   [`VerifierBuilder::fixed_authority`].
//! * [`MemoryNonceStore`] protects one process, and it is what a
//!   [`Verifier`] uses when no [`VerifierBuilder::nonce_store`] is set
//!   (`build` then logs a `tracing` warning). Several replicas need a
//!   shared [`NonceStore`], or a captured request can be replayed once on
//!   each replica within the window: `RedisNonceStore` (feature `redis`),
//!   one atomic script call per check (the store epoch, then `SET NX PX`);
//!   run that Redis with
//!   `maxmemory-policy noeviction` (it refuses to connect to one that
//!   reports another policy, unless allowed explicitly).
//! * With the default window, the default [`MemoryNonceStore`] sustains about
//!   24,000 verified requests per second per process (7,340,032 live nonces,
//!   each kept about 305 s), in about 160 MB at full load and about 2 MB idle;
//!   one key id can sustain about 330 requests per second (100,000 live
//!   nonces). Past the total the verifier answers `store_unavailable` (503);
//!   past one key's share, `rate_limited` (429, `Retry-After: 1`): one key
//!   too fast is not an outage. Measured
//!   with `cargo run --release -p tessera-server --example nonce_load --
//!   --seconds 420` (20,000 requests/s for 7 minutes, none refused).
//! * Keep the system clock synchronized (NTP): `created` may be 300 s old
//!   and at most 2 s ahead, and instances that share a nonce store must
//!   agree to well within a second (spec §14.1).
#![forbid(unsafe_code)]

mod admission;
#[cfg(feature = "axum")]
mod extract;
mod identity;
mod keys;
mod nonce;
mod redact;
mod rejection;
pub mod route;
pub mod scope;
mod verifier;
pub mod verify;

pub use admission::{Admission, AdmissionRequest, Admitted};
#[cfg(feature = "axum")]
pub use extract::MissingIdentity;
pub use identity::VerifiedIdentity;
#[cfg(feature = "tokio")]
pub use keys::{follow_file, follow_keys_file, FOLLOW_EVERY};
pub use keys::{
    load_keys_file, reload_keys_file, DerivedKeyId, DerivedKeyStore, IssuedKey, KeyError,
    KeyFileEntry, KeyIssuer, KeyMetadata, KeyRequest, KeyState, KeyStore, KeyStoreError,
    KeysFileError, MemoryKeyStore, ResolvedKey,
};
#[cfg(feature = "redis")]
pub use nonce::{
    is_redis_refusal, RedisConnection, RedisNonceStore, RedisNonceStoreBuilder, RedisStoreError,
    RedisStoreErrorKind, DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_PREFIX,
    DEFAULT_REDIS_TIMEOUT,
};
pub use nonce::{
    MemoryNonceStore, MemoryNonceStoreBuilder, NonceOutcome, NonceRecord, NonceStore,
    NonceStoreError, NonceStoreErrorKind,
};
pub use redact::{redact_url, redacted_path};
pub use rejection::{Rejection, DEFAULT_REALM, ERROR_HEADER, PROBLEM_JSON};
pub use scope::{RequireScope, RequireScopeLayer};
/// The core types a server touches, so that an application depends on this crate alone.
pub use tessera_core::{
    Clock, Error, ErrorCode, KeyId, ManualClock, Nonce, Refusal, Scheme, SecretKey, SigningKey,
    SystemClock,
};
pub use verifier::{
    BuildError, LogThrottle, Verifier, VerifierBuilder, DEFAULT_BODY_LIMIT, MAX_WINDOW_SECS,
};
pub use verify::{VerifySignature, VerifySignatureLayer};

/// The boxed error type body errors are converted into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
