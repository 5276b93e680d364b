//! # tessera-ffi
//!
//! The tessera-v1 request signer for Kotlin (Android, JVM), Swift (iOS,
//! macOS) and Python, through [UniFFI](https://mozilla.github.io/uniffi-rs/)
//! 0.32 (proc-macro style, no UDL).
//!
//! The foreign API is one object, three records and one callback interface:
//!
//! * [`Signer`]: built from a key id, the secret bytes and the headers to
//!   cover ([`Signer::new`]), or from a key id and a [`MacProvider`] when the
//!   platform holds the key and computes the MAC itself
//!   ([`Signer::with_mac_provider`]: Android Keystore, iOS Keychain; the
//!   secret never enters app or Rust memory). [`Signer::sign`] returns the headers to add to a request
//!   ([`SignedHeaders`]: `Content-Digest`, `Signature-Input`, `Signature`, plus
//!   the nonce and `created` it used); [`Signer::sign_with_digest`] takes the
//!   SHA-256 of a body the caller streams; [`Signer::apply_skew_challenge`]
//!   checks a `Tessera-Server-Time` challenge and adopts the server's clock;
//!   [`Signer::signature_base`] rebuilds the signed bytes for debugging.
//! * [`HttpRequest`] and [`HttpHeader`]: the request as the app will send it
//!   (method, absolute URL, header lines in order, optional body).
//! * [`TesseraError`]: every failure, carrying the stable tessera-v1 error
//!   code (`spec/tessera-v1.md` §12.1) as a string and a detail message that never
//!   contains key material (a [`MacProvider`]'s own exception text, passed
//!   on when it fails, is the app's to keep clean).
//!
//! The FFI is a thin layer over [`tessera_client::Signer`]: the clock
//! offset, the `clock_skew` challenge, the covered-header rules, nonces and
//! lifetimes are the Rust client's, so every rule lives in one place. This
//! crate only converts the foreign types (strings, byte arrays, header
//! lists) and maps errors to [`TesseraError`]. It pulls in no HTTP client
//! and no async runtime (tessera-client without its `reqwest` feature).
//!
//! ## Example
//!
//! The same calls the Kotlin, Swift and Python wrappers make, from Rust:
//!
//! ```
//! use tessera_ffi::{HttpHeader, HttpRequest, SecretBytes, Signer};
//!
//! # fn main() -> Result<(), tessera_ffi::TesseraError> {
//! // Issued once at login and kept in the Keychain / Keystore.
//! let signer = Signer::new(
//!     "user-42-phone".into(),
//!     SecretBytes::from(vec![7u8; 32]),
//!     vec!["content-type".into()], // covered when the request carries it
//!     None,                         // no `expires`
//!     false,                        // true: every covered header must be present
//! )?;
//! let signed = signer.sign(HttpRequest {
//!     method: "POST".into(),
//!     url: "https://api.example.com/v1/orders?dry_run=1".into(),
//!     headers: vec![HttpHeader {
//!         name: "Content-Type".into(),
//!         value: "application/json".into(),
//!     }],
//!     body: Some(br#"{"qty":1}"#.to_vec()),
//! })?;
//! // Add these three headers to the request as it is sent.
//! for header in &signed.headers {
//!     println!("{}: {}", header.name, header.value);
//! }
//! assert!(signed.get("signature-input").is_some_and(|v| v.contains("\"content-type\"")));
//! # Ok(()) }
//! ```
//!
//! ## Secrets
//!
//! The secret is taken by value and held only as `tessera-core`'s prepared
//! HMAC state, which is zeroized when the `Signer` is dropped (in Kotlin:
//! `close()`/`use {}` or the garbage collector's cleaner; in Swift: the last
//! reference going away; in Python: the object being collected). The buffer
//! that carried the secret across the FFI is zeroized as soon as it has been
//! read. Copies the foreign side holds (a `ByteArray`, `Data`, `bytes`) are the
//! app's to clear; keep the secret in the Android Keystore or the iOS Keychain
//! at rest. Better still, let the key store compute the MAC:
//! [`Signer::with_mac_provider`] takes a [`MacProvider`] instead of the
//! secret, and the secret is then never in app memory after provisioning.
#![allow(unsafe_code)] // UniFFI's generated scaffolding and the zeroizing secret lift need it.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::{ClientError, SignedRequestInfo};
use tessera_core::{
    BodyDigest, ErrorCode, Fields, KeyId, Nonce, RequestView, SecretKey, SigningKey, Target,
};

mod platform;
mod secret;

pub use platform::{MacProvider, MacProviderError};
pub use secret::SecretBytes;

uniffi::setup_scaffolding!();

/// Name of the response header carrying the server-time challenge (lowercase).
pub const SERVER_TIME_HEADER: &str = tessera_core::challenge::SERVER_TIME_HEADER;

/// Every failure of the Tessera API.
///
/// Each variant carries `code`, the stable tessera-v1 error code string
/// (`"missing_component"`, `"invalid_parameter"`, ...; `spec/tessera-v1.md`
/// §12.1), and `detail`, a human-readable message that never contains key
/// material, MACs or signature bases of Tessera's making. (A
/// [`MacProvider`]'s own exception text is passed on in
/// [`TesseraError::MacFailed`], cut to 300 characters: it is the app's to
/// keep clean.) The variant says which step failed.
///
/// In Kotlin this is `TesseraException` (a sealed class; every subclass has
/// `code` and `detail`), in Swift `TesseraError` (an `Error` enum; the
/// package adds `code`/`detail` properties), in Python `TesseraError` (an
/// exception; every subclass has `.code` and `.detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TesseraError {
    /// The signer's configuration is invalid: a bad key id, a secret outside
    /// 16..=128 bytes, a covered header name that is not lowercase or not a
    /// field name, is forbidden, mandatory already or listed twice, or too
    /// many covered headers.
    #[error("invalid signer configuration ({code}): {detail}")]
    InvalidConfig {
        /// The stable tessera-v1 error code.
        code: String,
        /// What is wrong; safe to log.
        detail: String,
    },
    /// The request cannot be signed: the URL is not an absolute `http`/`https`
    /// URL or its authority, path or query break the profile's rules, a
    /// covered header holds control characters or octets above 0x7F
    /// (`invalid_field_value`) or a required one is missing
    /// (`missing_component`, `covered_headers_required`), a `Host` header
    /// names another authority than the URL (`authority_mismatch`), the
    /// method is not a token, or a parameter given for a test signature is
    /// out of range.
    #[error("cannot sign the request ({code}): {detail}")]
    InvalidRequest {
        /// The stable tessera-v1 error code.
        code: String,
        /// What is wrong; safe to log.
        detail: String,
    },
    /// A `Tessera-Server-Time` challenge was refused: it does not parse or
    /// names another key or request (`malformed_signature`), or its MAC does
    /// not verify under this signer's key (`bad_signature`). The clock offset
    /// is unchanged.
    #[error("the server-time challenge was refused ({code}): {detail}")]
    InvalidChallenge {
        /// The stable tessera-v1 error code.
        code: String,
        /// What is wrong; safe to log.
        detail: String,
    },
    /// The [`MacProvider`] of a signer built with
    /// [`Signer::with_mac_provider`] failed (`mac_provider_failed`: the
    /// detail carries its reason) or returned a tag that is not 32 bytes
    /// (`mac_wrong_length`). These two codes are the client's own, never
    /// sent by a server. Nothing was signed, so nothing can be sent; a
    /// challenge being checked was not adopted.
    #[error("the MAC provider failed ({code}): {detail}")]
    MacFailed {
        /// `mac_provider_failed` or `mac_wrong_length`.
        code: String,
        /// What is wrong; safe to log.
        detail: String,
    },
}

impl TesseraError {
    /// The stable tessera-v1 error code string.
    pub fn code(&self) -> &str {
        match self {
            TesseraError::InvalidConfig { code, .. }
            | TesseraError::InvalidRequest { code, .. }
            | TesseraError::InvalidChallenge { code, .. }
            | TesseraError::MacFailed { code, .. } => code,
        }
    }

    /// The detail message.
    pub fn detail(&self) -> &str {
        match self {
            TesseraError::InvalidConfig { detail, .. }
            | TesseraError::InvalidRequest { detail, .. }
            | TesseraError::InvalidChallenge { detail, .. }
            | TesseraError::MacFailed { detail, .. } => detail,
        }
    }

    pub(crate) fn config(e: tessera_core::Error) -> Self {
        TesseraError::InvalidConfig {
            code: e.code().as_str().to_owned(),
            detail: e.detail().to_owned(),
        }
    }

    fn request(e: tessera_core::Error) -> Self {
        TesseraError::InvalidRequest {
            code: e.code().as_str().to_owned(),
            detail: e.detail().to_owned(),
        }
    }

    /// An [`TesseraError::InvalidRequest`] found by this crate's own checks.
    fn request_code(code: ErrorCode, detail: impl Into<String>) -> Self {
        TesseraError::InvalidRequest {
            code: code.as_str().to_owned(),
            detail: detail.into(),
        }
    }

    /// An [`TesseraError::InvalidChallenge`] found by this crate's own checks.
    fn challenge_code(code: ErrorCode, detail: impl Into<String>) -> Self {
        TesseraError::InvalidChallenge {
            code: code.as_str().to_owned(),
            detail: detail.into(),
        }
    }

    fn challenge(e: tessera_core::Error) -> Self {
        TesseraError::InvalidChallenge {
            code: e.code().as_str().to_owned(),
            detail: e.detail().to_owned(),
        }
    }
}

/// Refuses a secret that is the hex text of a key rather than the key: `tessera
/// keygen` prints hex and key files hold `secret_hex`, so `secret.encode()`
/// (Python) or `toByteArray()` (Kotlin) of that text is an easy mistake, which
/// would otherwise show only as `bad_signature` on every request. Random key
/// bytes are all ASCII hex digits with a chance of (22/256)^32, about 10^-34,
/// for the shortest length checked.
fn refuse_hex_text(secret: &[u8]) -> Result<(), TesseraError> {
    let hex_text = secret.len() >= 32
        && secret.len().is_multiple_of(2)
        && secret.iter().all(u8::is_ascii_hexdigit);
    if !hex_text {
        return Ok(());
    }
    Err(TesseraError::InvalidConfig {
        code: ErrorCode::InvalidParameter.as_str().to_owned(),
        detail: format!(
            "the secret is {} ASCII hex digits: that is the hex text of a {}-byte key, not the key; pass the decoded bytes (Python: bytes.fromhex(text); Kotlin: decode the hex into a ByteArray; Swift: decode it into Data)",
            secret.len(),
            secret.len() / 2
        ),
    })
}

/// The FFI error for a failure of the Rust client, by the step that failed.
pub(crate) fn client_err(e: ClientError) -> TesseraError {
    match e {
        ClientError::Config(e) => TesseraError::InvalidConfig {
            code: e.code().as_str().to_owned(),
            detail: e.detail(),
        },
        ClientError::Signing(e) => TesseraError::request(e),
        ClientError::InvalidChallenge(e) => TesseraError::challenge(e),
        ClientError::Mac(e) => TesseraError::MacFailed {
            code: e.code().to_owned(),
            detail: e.to_string(),
        },
        // Not reachable through this API (the challenge value is always
        // given, the body always known); mapped for completeness.
        other => TesseraError::request_code(
            other.code().unwrap_or(ErrorCode::InvalidParameter),
            other.to_string(),
        ),
    }
}

/// One header field line: a name and its value.
///
/// Its `Debug` redacts the value of a credential field (`Signature`,
/// `Authorization`, `Proxy-Authorization`, `Cookie`).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpHeader {
    /// The field name, any case.
    pub name: String,
    /// The field value, as it will be sent.
    pub value: String,
}

/// A request as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// The method exactly as it will be sent, for example `"GET"`. Methods
    /// are case-sensitive: `"get"` is signed as `get`, never uppercased.
    pub method: String,
    /// The absolute URL, `http` or `https`, with the path and query exactly as
    /// they will be sent (`scheme://authority/path?query`; a `#fragment` is
    /// dropped, as it is never sent).
    ///
    /// The URL is split, not parsed by a URL library: the path and query are
    /// signed byte for byte, percent-encoding untouched, with characters such
    /// as `{` `}` `|` `<` `>` `^`, quotes, backticks and backslashes as
    /// written; a percent-encoded host is not decoded (the authority is only
    /// lowercased and loses a default port). What a tessera-v1 verifier
    /// would reject is refused here with the same code,
    /// `invalid_field_value`: a path or query with a space, a control
    /// character or a non-ASCII character (percent-encode it), userinfo, an
    /// invalid host or a port above 65535.
    pub url: String,
    /// The header field lines in order, duplicates kept. Only the headers
    /// the signer covers matter; the others are ignored.
    #[uniffi(default = [])]
    pub headers: Vec<HttpHeader>,
    /// The whole body; absent or empty for a request without one.
    #[uniffi(default = None)]
    pub body: Option<Vec<u8>>,
}

/// Fields whose values are credentials, redacted in `Debug`.
const CREDENTIAL_FIELDS: [&str; 4] = [
    "signature",
    "authorization",
    "proxy-authorization",
    "cookie",
];

impl std::fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credential = CREDENTIAL_FIELDS
            .iter()
            .any(|name| self.name.eq_ignore_ascii_case(name));
        let value = if credential {
            "** redacted **"
        } else {
            &self.value
        };
        f.debug_struct("HttpHeader")
            .field("name", &self.name)
            .field("value", &value)
            .finish()
    }
}

/// What signing produced: the headers to set and the parameters used.
///
/// The `Signature` value is a credential for this one request until its
/// window ends: Rust's `Debug` redacts it (see [`HttpHeader`]), but the
/// record types UniFFI generates print every field (Kotlin's `toString`,
/// Swift's `description`), so do not log the whole record there.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedHeaders {
    /// `Content-Digest`, `Signature-Input` and `Signature` (lowercase names),
    /// in that order. Set them on the request, replacing any earlier values
    /// of the same names.
    pub headers: Vec<HttpHeader>,
    /// The fresh nonce of this signature; pass it to
    /// [`Signer::apply_skew_challenge`] if the server answers `clock_skew`.
    pub nonce: String,
    /// `created`, Unix seconds, clock offset included.
    pub created: i64,
    /// `expires`, Unix seconds, when the signer has a lifetime configured.
    pub expires: Option<i64>,
}

impl SignedHeaders {
    /// The value of header `name` (lowercase) among the signed headers.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    }
}

/// The header lines of an [`HttpRequest`] as tessera-core sees them.
struct HeaderLines<'a>(&'a [HttpHeader]);

impl Fields for HeaderLines<'_> {
    fn values<'s>(&'s self, name: &http::HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name.as_str()))
            .map(|h| h.value.as_bytes())
    }
}

/// Adds `names` to `builder`, covered when present or, with `required`, always.
fn cover(
    builder: tessera_client::SignerBuilder,
    names: &[String],
    required: bool,
) -> tessera_client::SignerBuilder {
    let names = names.iter().map(String::as_str);
    if required {
        builder.cover_all_strict(names)
    } else {
        builder.cover_all(names)
    }
}

/// Signs requests with one key (`hmac-sha256`, tessera-v1 profile).
///
/// Thread-safe: share one `Signer` across the app. It wraps a
/// [`tessera_client::Signer`], which holds the key id, the prepared secret
/// (zeroized on drop, never printed), the headers to cover, an optional
/// signature lifetime, and the clock offset learned from authenticated
/// `clock_skew` challenges (shared by every caller).
#[derive(Debug, uniffi::Object)]
pub struct Signer {
    inner: tessera_client::Signer,
}

#[uniffi::export]
impl Signer {
    /// A signer for `key_id` and `secret` (16 to 128 bytes).
    ///
    /// `covered_headers` are covered in addition to the mandatory
    /// `@method`, `@authority`, `@path`, `@query` and `content-digest`, in
    /// order, each when the request carries it (header lines match
    /// case-insensitively): a body-less GET without `content-type` is signed
    /// without it, and `Signature-Input` lists what was covered (the
    /// verifier's required components still set the floor), as the Rust
    /// `SignerBuilder::cover` does. With `covered_headers_required`, every
    /// request signed must carry them all, else `missing_component` (the
    /// Rust `SignerBuilder::cover_strict`). The names themselves must be
    /// written in lowercase, as `Signature-Input` lists them
    /// (`"content-type"`): they are never lowercased for you.
    /// `expires_after_secs` adds `expires = created + lifetime` to each
    /// signature.
    ///
    /// # Errors
    /// [`TesseraError::InvalidConfig`]: `invalid_parameter` for a bad key id,
    /// secret length, a secret that is hex text (32 or more ASCII hex
    /// digits: decode it first) or a zero lifetime; `malformed_signature` for a name
    /// with an uppercase letter (the detail names the lowercase form to use),
    /// a name that is not a field name, or too many names;
    /// `forbidden_component` for a header the profile forbids (`host`,
    /// `signature`, hop-by-hop, forwarding headers); `duplicate_component`
    /// for a header that is mandatory already or listed twice.
    #[uniffi::constructor(default(
        covered_headers = [],
        expires_after_secs = None,
        covered_headers_required = false
    ))]
    pub fn new(
        key_id: String,
        secret: SecretBytes,
        covered_headers: Vec<String>,
        expires_after_secs: Option<u32>,
        covered_headers_required: bool,
    ) -> Result<Arc<Self>, TesseraError> {
        // Both copies are zeroized on drop: `SecretBytes` and `SecretKey` wrap `Zeroizing`.
        let secret = secret.into_inner();
        let secret = SecretKey::from_bytes(&secret).map_err(TesseraError::config)?;
        refuse_hex_text(secret.expose_secret())?;
        // Spec §10 step 2: the secret, the components, then the key id. The
        // builder checks the components (the same `parse_cover`) only after
        // the key exists, so they are checked ahead of the key id here too.
        tessera_core::parse_cover(&covered_headers).map_err(TesseraError::config)?;
        let id = KeyId::new(key_id).map_err(TesseraError::config)?;
        let mut builder = cover(
            tessera_client::Signer::builder(SigningKey::new(id, &secret)),
            &covered_headers,
            covered_headers_required,
        );
        if let Some(secs) = expires_after_secs {
            builder = builder.expires_after(Duration::from_secs(secs.into()));
        }
        let inner = builder.build().map_err(client_err)?;
        Ok(Arc::new(Signer { inner }))
    }

    /// The key id this signer signs with.
    pub fn key_id(&self) -> String {
        self.inner.key_id().as_str().to_owned()
    }

    /// The covered header names (besides the mandatory components), in signed order (lowercase, as given).
    pub fn covered_headers(&self) -> Vec<String> {
        self.inner
            .covered_headers()
            .iter()
            .map(|h| h.name().to_owned())
            .collect()
    }

    /// Signs `request` with a fresh nonce at the current time (clock offset
    /// included). The body is hashed here; an absent body is the empty body.
    ///
    /// # Errors
    /// [`TesseraError::InvalidRequest`]: `invalid_field_value` for a URL that
    /// is not absolute `http`/`https` or whose authority, path or query the
    /// profile does not allow (see [`HttpRequest::url`]), a method that is
    /// not a token, or a covered value with control characters or octets
    /// above 0x7F; `missing_component` when a required covered header is absent
    /// (`covered_headers_required`); `authority_mismatch` for a `Host`
    /// header naming another authority than the URL (the server would
    /// verify against that `Host`).
    pub fn sign(&self, request: HttpRequest) -> Result<SignedHeaders, TesseraError> {
        let digest = BodyDigest::of(request.body.as_deref().unwrap_or_default());
        self.sign_fresh(&request, &digest)
    }

    /// Signs `request` for a body the caller streams, given its SHA-256
    /// (`body_sha256`, the 32 raw digest bytes). `request.body` must be
    /// absent. The digest is trusted as given: a wrong one makes the server
    /// answer `digest_mismatch`.
    ///
    /// # Errors
    /// As [`Signer::sign`]; `invalid_parameter` when the digest is not 32
    /// bytes or the request also carries a body.
    pub fn sign_with_digest(
        &self,
        request: HttpRequest,
        body_sha256: Vec<u8>,
    ) -> Result<SignedHeaders, TesseraError> {
        let digest = digest_from_bytes(&body_sha256)?;
        if request.body.as_ref().is_some_and(|b| !b.is_empty()) {
            return Err(TesseraError::request_code(
                ErrorCode::InvalidParameter,
                "give either the body or its digest, not both",
            ));
        }
        self.sign_fresh(&request, &digest)
    }

    /// FOR TESTS AND CONFORMANCE VECTORS ONLY: signs `request` with the given
    /// `created` time, `nonce` and optional `expires` instead of the clock and
    /// a fresh random nonce. Reusing a nonce gets requests rejected as
    /// `replayed`; production code calls [`Signer::sign`].
    ///
    /// # Errors
    /// As [`Signer::sign`]; `invalid_parameter` for a negative or out-of-range
    /// time, an `expires` not after `created`, or a nonce outside 22 to 64
    /// base64url characters.
    pub fn sign_at(
        &self,
        request: HttpRequest,
        created: i64,
        nonce: String,
        expires: Option<i64>,
    ) -> Result<SignedHeaders, TesseraError> {
        let info = fixed_params(created, nonce, expires)?;
        let digest = BodyDigest::of(request.body.as_deref().unwrap_or_default());
        let fields = HeaderLines(&request.headers);
        let view = request_view(&request, &fields)?;
        let signed = self
            .inner
            .sign_view_at(&view, &digest, &info)
            .map_err(client_err)?;
        Ok(signed_headers(&signed))
    }

    /// The signature base (the exact bytes MACed, as UTF-8 text) of `request`
    /// signed as `signed_headers` says (its nonce, `created`, `expires` and
    /// `Content-Digest`; the body digest is taken from its `content-digest`
    /// header when present, else from `request.body`).
    ///
    /// For debugging a `bad_signature` answer: compare it with the server's.
    /// It contains the covered header values (for example an
    /// `Authorization` token): do not log it in production.
    ///
    /// # Errors
    /// As [`Signer::sign_at`]; `digest_mismatch` when the `content-digest`
    /// value of `signed_headers` does not parse.
    pub fn signature_base(
        &self,
        request: HttpRequest,
        // Not `signed`: that is a C keyword, and the Swift bindings' C header would not compile.
        signed_headers: SignedHeaders,
    ) -> Result<String, TesseraError> {
        let signed = signed_headers;
        let digest = match signed.get("content-digest") {
            Some(value) => {
                BodyDigest::parse_header(value.as_bytes()).map_err(TesseraError::request)?
            }
            None => BodyDigest::of(request.body.as_deref().unwrap_or_default()),
        };
        let info = fixed_params(signed.created, signed.nonce, signed.expires)?;
        let fields = HeaderLines(&request.headers);
        let view = request_view(&request, &fields)?;
        let base = self
            .inner
            .signature_base(&view, &digest, &info)
            .map_err(client_err)?;
        Ok(String::from_utf8_lossy(base.as_bytes()).into_owned())
    }

    /// The current clock offset: server time minus local time, in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.inner.clock_offset()
    }

    /// Replaces the clock offset, for example with one saved by the previous
    /// run of the app.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.inner.set_clock_offset(seconds);
    }

    /// The time signatures are created at now: the system clock plus the
    /// offset, Unix seconds.
    pub fn now(&self) -> i64 {
        // At most 999999999999999, which fits an i64.
        i64::try_from(self.inner.now()).unwrap_or(i64::MAX)
    }

    /// Checks the `Tessera-Server-Time` challenge (`header_value`) of a
    /// `clock_skew` answer to the request signed with `sent_nonce`, adopts
    /// the server's time, and returns the new offset (server time minus
    /// local time, seconds). Sign the request again to retry it.
    ///
    /// The challenge's MAC is checked with this signer's key and must name
    /// this key and `sent_nonce`, so neither a forged header nor a challenge
    /// replayed from another request can move the clock.
    ///
    /// # Errors
    /// [`TesseraError::InvalidChallenge`]: `malformed_signature` when the
    /// value does not parse or names another key or nonce, `bad_signature`
    /// when the MAC does not verify. The offset is unchanged.
    pub fn apply_skew_challenge(
        &self,
        header_value: String,
        sent_nonce: String,
    ) -> Result<i64, TesseraError> {
        let nonce = Nonce::new(sent_nonce).map_err(TesseraError::challenge)?;
        // A value with control characters is no header value, so it cannot
        // be a challenge either.
        let value = http::HeaderValue::from_str(&header_value).map_err(|_| {
            TesseraError::challenge_code(
                ErrorCode::MalformedSignature,
                "the Tessera-Server-Time value is not a valid header value",
            )
        })?;
        let mut headers = http::HeaderMap::with_capacity(1);
        headers.insert(SERVER_TIME_HEADER, value);
        self.inner
            .apply_skew_challenge(&headers, &nonce)
            .map_err(client_err)
    }
}

impl Signer {
    /// Signs `request` through the client with a fresh nonce and `created`.
    fn sign_fresh(
        &self,
        request: &HttpRequest,
        digest: &BodyDigest,
    ) -> Result<SignedHeaders, TesseraError> {
        let signed = self
            .inner
            .sign(
                &request.method,
                request.url.as_str(),
                &HeaderLines(&request.headers),
                digest,
            )
            .map_err(client_err)?;
        Ok(signed_headers(&signed))
    }
}

/// The foreign record of what the client signed.
fn signed_headers(signed: &tessera_client::SignedHeaders) -> SignedHeaders {
    let info = signed.info();
    SignedHeaders {
        headers: signed
            .iter()
            .map(|(name, value)| HttpHeader {
                name: name.as_str().to_owned(),
                // The values are ASCII, made by structured-field serializers.
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect(),
        nonce: info.nonce.as_str().to_owned(),
        // Both are at most 999999999999999, which fits an i64.
        created: i64::try_from(info.created).unwrap_or(i64::MAX),
        expires: info.expires.map(|e| i64::try_from(e).unwrap_or(i64::MAX)),
    }
}

/// The `Content-Digest` value (`sha-256=:<base64>:`) of `body`.
#[uniffi::export]
pub fn content_digest(body: Vec<u8>) -> String {
    BodyDigest::of(&body).header_value().into_owned()
}

fn digest_from_bytes(bytes: &[u8]) -> Result<BodyDigest, TesseraError> {
    let digest: [u8; 32] = bytes.try_into().map_err(|_| {
        TesseraError::request_code(
            ErrorCode::InvalidParameter,
            format!(
                "the body digest must be 32 raw SHA-256 bytes, not {}",
                bytes.len()
            ),
        )
    })?;
    Ok(BodyDigest::from_sha256(digest))
}

fn fixed_params(
    created: i64,
    nonce: String,
    expires: Option<i64>,
) -> Result<SignedRequestInfo, TesseraError> {
    // Spec §10 step 2, in the verifier's order and with its codes: a time of
    // 16 digits is no sf-integer (`malformed_signature`); then a negative
    // time or a bad nonce (`invalid_parameter`).
    let too_large = |t: i64| u64::try_from(t).is_ok_and(|t| t > tessera_core::MAX_TIME);
    if too_large(created) || expires.is_some_and(too_large) {
        return Err(TesseraError::request_code(
            ErrorCode::MalformedSignature,
            "created and expires must be at most 999999999999999 (15 digits, the largest sf-integer)",
        ));
    }
    let time = |t: i64, what: &str| {
        u64::try_from(t).map_err(|_| {
            TesseraError::request_code(
                ErrorCode::InvalidParameter,
                format!("{what} must not be negative"),
            )
        })
    };
    let created = time(created, "created")?;
    let expires = expires.map(|e| time(e, "expires")).transpose()?;
    let nonce = Nonce::new(nonce).map_err(TesseraError::request)?;
    Ok(SignedRequestInfo::new(nonce, created, expires))
}

/// The view of `request` that is signed: its URL split verbatim by
/// [`Target::parse_url`] and checked by [`RequestView::new`], the same rules
/// a verifier applies to what it receives, after the Host rule
/// [`Signer::sign`] applies (a `Host` header naming another authority than
/// the URL is refused, as the verifier would use it instead).
fn request_view<'a>(
    request: &'a HttpRequest,
    fields: &'a HeaderLines<'a>,
) -> Result<RequestView<'a, HeaderLines<'a>>, TesseraError> {
    let target = Target::parse_url(&request.url).map_err(TesseraError::request)?;
    let view = RequestView::new(
        &request.method,
        target.scheme(),
        target.authority(),
        target.path(),
        target.query(),
        fields,
    )
    .map_err(TesseraError::request)?;
    // After the view's own checks, in the order `Signer::sign` applies them.
    tessera_core::check_host_matches_target(fields, target.scheme(), target.authority())
        .map_err(TesseraError::request)?;
    Ok(view)
}

#[cfg(test)]
mod platform_tests;
#[cfg(test)]
mod tests;
