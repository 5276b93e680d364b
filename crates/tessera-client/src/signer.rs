//! The [`Signer`]: key, clock, nonces, covered headers and the learned clock offset.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::challenge::{verify_server_time, SERVER_TIME_HEADER};
use tessera_core::{
    BodyDigest, Component, Fields, KeyId, Nonce, RequestView, SecretKey, SignOptions,
    SignatureBase, SignedHeaders, SigningKey,
};

use crate::error::ClientError;
use tessera_core::{Clock, SystemClock};

/// Largest Unix time a structured-field integer can carry.
const MAX_TIME: u64 = 999_999_999_999_999;

/// What one signing produced, besides the headers: the nonce and times used.
///
/// Keep it if you may need to check a `clock_skew` challenge
/// ([`Signer::apply_skew_challenge`] needs the nonce) or to rebuild the
/// signature base for debugging ([`Signer::signature_base`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequestInfo {
    /// The fresh nonce this signature carries.
    pub nonce: Nonce,
    /// `created`, Unix seconds, with the clock offset applied.
    pub created: u64,
    /// `expires`, Unix seconds, when the signer has a lifetime configured.
    pub expires: Option<u64>,
}

struct Inner {
    key: SigningKey,
    clock: Box<dyn Clock>,
    extra: Box<[Component]>,
    expires_after: Option<u64>,
    /// Server time minus local clock, seconds; shared by every clone.
    offset: AtomicI64,
}

/// Signs requests with one key.
///
/// A `Signer` holds the key id and prepared secret (zeroized on drop, never
/// printed), a [`Clock`], the extra headers to cover (validated once, when
/// built), an optional signature lifetime, and the clock offset learned from
/// authenticated `clock_skew` challenges. Cloning is cheap (one `Arc`), and
/// every clone shares the offset, so one corrected request corrects all
/// concurrent and later ones.
///
/// Nonces come from `rand::rng()`, a user-space CSPRNG seeded from the
/// operating system, so signing costs no system call.
///
/// # Example
///
/// ```
/// use tessera_client::Signer;
/// use tessera_core::{KeyId, SecretKey, SigningKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = SigningKey::new(KeyId::new("user-42-phone")?, &SecretKey::from_bytes(&[7; 32])?);
/// let signer = Signer::builder(key).cover("content-type").build()?;
///
/// let mut request = http::Request::post("https://api.example.com/v1/orders")
///     .header("content-type", "application/json")
///     .body(br#"{"qty":1}"#.to_vec())?;
/// let info = signer.sign_request(&mut request)?;
/// assert!(request.headers().contains_key("signature"));
/// assert_eq!(info.nonce.as_str().len(), 22);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.inner.key)
            .field("clock", &self.inner.clock)
            .field("extra", &self.inner.extra)
            .field("expires_after", &self.inner.expires_after)
            .field("offset", &self.clock_offset())
            .finish()
    }
}

/// Builds a [`Signer`]; see [`Signer::builder`].
#[derive(Debug)]
#[must_use]
pub struct SignerBuilder {
    key: SigningKey,
    clock: Box<dyn Clock>,
    covered: Vec<String>,
    expires_after: Option<Duration>,
    offset: i64,
}

impl SignerBuilder {
    /// Reads the time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Covers header `name` in addition to the mandatory components
    /// (`@method`, `@authority`, `@path`, `@query`, `content-digest`).
    ///
    /// `name` must be written in lowercase, as it appears in
    /// `Signature-Input` (`"content-type"`, not `"Content-Type"`): it is
    /// never lowercased for you, and [`SignerBuilder::build`] refuses a name
    /// with an uppercase letter (`malformed_signature`, with a message naming
    /// the lowercase form). The header itself may be spelled in any case on
    /// the request: field names match case-insensitively there.
    ///
    /// A covered header must be present on every request this signer signs
    /// (set it on the request itself, not only as a `reqwest` client default
    /// header, which is added after middleware runs).
    pub fn cover(mut self, name: &str) -> Self {
        self.covered.push(name.to_owned());
        self
    }

    /// Covers each of `names` (lowercase); see [`SignerBuilder::cover`].
    pub fn cover_all<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.covered.extend(names.into_iter().map(str::to_owned));
        self
    }

    /// Adds `expires = created + lifetime` to every signature (whole seconds,
    /// at least one).
    pub fn expires_after(mut self, lifetime: Duration) -> Self {
        self.expires_after = Some(lifetime);
        self
    }

    /// Starts with a known clock offset (server time minus local time,
    /// seconds), for example one saved by the previous run of the app.
    pub fn clock_offset(mut self, seconds: i64) -> Self {
        self.offset = seconds;
        self
    }

    /// Validates the configuration and builds the signer.
    ///
    /// # Errors
    /// [`ClientError::Config`] when a covered name contains an uppercase
    /// letter or is not a valid field name (`malformed_signature`), is
    /// forbidden by the profile (`host`, `signature`, hop-by-hop and
    /// `x-forwarded-*` fields: `forbidden_component`), is mandatory already
    /// (`content-digest`) or listed twice (`duplicate_component`), when too
    /// many components are covered (`malformed_signature`), or when the
    /// lifetime is under one second (`invalid_parameter`).
    pub fn build(self) -> Result<Signer, ClientError> {
        let config =
            |code, detail: String| ClientError::Config(tessera_core::Error::new(code, detail));
        // One rule for every signer: the list is checked in the verifier's
        // order, with its codes (spec §10 step 2).
        let extra = tessera_core::parse_cover(&self.covered).map_err(ClientError::Config)?;
        let expires_after = match self.expires_after {
            None => None,
            Some(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_TIME => Some(d.as_secs()),
            Some(_) => {
                return Err(config(
                    tessera_core::ErrorCode::InvalidParameter,
                    "the signature lifetime must be at least one second".to_owned(),
                ))
            }
        };
        Ok(Signer {
            inner: Arc::new(Inner {
                key: self.key,
                clock: self.clock,
                extra: extra.into_boxed_slice(),
                expires_after,
                offset: AtomicI64::new(self.offset),
            }),
        })
    }
}

impl Signer {
    /// Starts building a signer for `key`, with the system clock, no extra
    /// covered headers, no `expires` and a zero clock offset.
    pub fn builder(key: SigningKey) -> SignerBuilder {
        SignerBuilder {
            key,
            clock: Box::new(SystemClock::new()),
            covered: Vec::new(),
            expires_after: None,
            offset: 0,
        }
    }

    /// A signer with the defaults of [`Signer::builder`] for a key id and secret.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the key id is invalid.
    pub fn new(key_id: &str, secret: &SecretKey) -> Result<Signer, ClientError> {
        let id = KeyId::new(key_id).map_err(ClientError::Config)?;
        Signer::builder(SigningKey::new(id, secret)).build()
    }

    /// The key id this signer signs with.
    pub fn key_id(&self) -> &KeyId {
        self.inner.key.key_id()
    }

    /// The extra covered header fields, in signed order.
    pub fn covered_headers(&self) -> &[Component] {
        &self.inner.extra
    }

    /// The current clock offset: server time minus local time, in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.inner.offset.load(Ordering::Relaxed)
    }

    /// Replaces the clock offset for this signer and all its clones.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.inner.offset.store(seconds, Ordering::Relaxed);
    }

    /// The time signatures are created at: the clock plus the offset, Unix seconds.
    pub fn now(&self) -> u64 {
        let local = i64::try_from(self.inner.clock.now_unix()).unwrap_or(i64::MAX);
        let t = local.saturating_add(self.clock_offset());
        u64::try_from(t).unwrap_or(0).min(MAX_TIME)
    }

    fn fresh_info(&self) -> SignedRequestInfo {
        let created = self.now();
        SignedRequestInfo {
            nonce: Nonce::generate(&mut rand::rng()),
            created,
            expires: self.inner.expires_after.map(|l| created.saturating_add(l)),
        }
    }

    /// Signs a view with fresh parameters; the caller applies the headers.
    ///
    /// Every public signing method ends here, including the reqwest
    /// middleware's path.
    pub(crate) fn sign_view<F: Fields + ?Sized>(
        &self,
        view: &RequestView<'_, F>,
        digest: &BodyDigest,
    ) -> Result<(SignedHeaders, SignedRequestInfo), ClientError> {
        let info = self.fresh_info();
        let options = SignOptions::new(info.created, &info.nonce)
            .with_expires(info.expires)
            .cover(&self.inner.extra);
        let headers = tessera_core::sign(&self.inner.key, view, digest, &options)
            .map_err(ClientError::Signing)?;
        Ok((headers, info))
    }

    /// Signs a request head whose body has digest `digest`: sets
    /// `Content-Digest`, `Signature-Input` and `Signature` on `headers`,
    /// replacing any earlier values.
    ///
    /// `uri` should be absolute (`https://host/path?query`); otherwise the
    /// authority is taken from `headers`' `Host`. The method, path and query
    /// are signed exactly as they will be sent: methods are case-sensitive
    /// (RFC 9110 §9.1), so an extension method `get` is signed as `get`, not
    /// `GET`, and percent-encoding is left as written.
    ///
    /// # Errors
    /// [`ClientError::Signing`] when the URI has no authority or an
    /// unsupported scheme, or a covered header is missing or invalid.
    pub fn sign_head(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &mut http::HeaderMap,
        digest: &BodyDigest,
    ) -> Result<SignedRequestInfo, ClientError> {
        let (signed, info) = {
            let view =
                RequestView::from_head(method, uri, headers).map_err(ClientError::Signing)?;
            self.sign_view(&view, digest)?
        };
        signed.apply_to(headers).map_err(ClientError::Signing)?;
        Ok(info)
    }

    /// Signs request `parts` whose whole body is `body`.
    ///
    /// # Errors
    /// As [`Signer::sign_head`].
    pub fn sign_parts(
        &self,
        parts: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<SignedRequestInfo, ClientError> {
        self.sign_parts_with_digest(parts, BodyDigest::of(body))
    }

    /// Signs request `parts` for a body the caller streams and has hashed
    /// already (for example with [`tessera_core::BodyHasher`] while writing
    /// it to disk).
    ///
    /// # Errors
    /// As [`Signer::sign_head`].
    pub fn sign_parts_with_digest(
        &self,
        parts: &mut http::request::Parts,
        digest: BodyDigest,
    ) -> Result<SignedRequestInfo, ClientError> {
        let http::request::Parts {
            method,
            uri,
            headers,
            ..
        } = parts;
        self.sign_head(method, uri, headers, &digest)
    }

    /// Signs an `http::Request` with an in-memory body (`Vec<u8>`, `Bytes`,
    /// `String`, `&[u8]`, ...).
    ///
    /// # Errors
    /// As [`Signer::sign_head`].
    pub fn sign_request<B: AsRef<[u8]>>(
        &self,
        request: &mut http::Request<B>,
    ) -> Result<SignedRequestInfo, ClientError> {
        let digest = BodyDigest::of(request.body().as_ref());
        let (signed, info) = {
            let view = RequestView::from_head(request.method(), request.uri(), request.headers())
                .map_err(ClientError::Signing)?;
            self.sign_view(&view, &digest)?
        };
        signed
            .apply_to(request.headers_mut())
            .map_err(ClientError::Signing)?;
        Ok(info)
    }

    /// The signature base a request signed with `info` covers, for debugging
    /// a `bad_signature` answer: compare its [`SignatureBase::sha256_hex`]
    /// with the server's, or print [`SignatureBase::redacted`].
    ///
    /// The base contains header values; do not log its full form.
    ///
    /// # Errors
    /// As [`Signer::sign_head`].
    pub fn signature_base(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        digest: &BodyDigest,
        info: &SignedRequestInfo,
    ) -> Result<SignatureBase, ClientError> {
        let view = RequestView::from_head(method, uri, headers).map_err(ClientError::Signing)?;
        let options = SignOptions::new(info.created, &info.nonce)
            .with_expires(info.expires)
            .cover(&self.inner.extra);
        tessera_core::signature_base(&self.inner.key, &view, digest, &options)
            .map_err(ClientError::Signing)
    }

    /// Checks the `Tessera-Server-Time` challenge of a `clock_skew` answer
    /// to the request signed with `sent_nonce`, and adopts the server's time.
    ///
    /// The challenge's MAC is checked with this signer's key and must name
    /// this key and `sent_nonce`, so neither a forged header nor a challenge
    /// replayed from another request can move the clock. A bare `Date`
    /// header is never trusted. On success the new offset (server time minus
    /// local time, seconds) is stored for this signer and all its clones and
    /// returned; sign the request again to retry it.
    ///
    /// # Errors
    /// [`ClientError::MissingChallenge`] when the header is absent;
    /// [`ClientError::InvalidChallenge`] when it does not parse, names
    /// another key or request, or its MAC does not verify. The offset is
    /// unchanged in both cases.
    pub fn apply_skew_challenge(
        &self,
        response_headers: &http::HeaderMap,
        sent_nonce: &Nonce,
    ) -> Result<i64, ClientError> {
        let value = response_headers
            .get(SERVER_TIME_HEADER)
            .ok_or(ClientError::MissingChallenge)?;
        let server_time = verify_server_time(value.as_bytes(), &self.inner.key, sent_nonce)
            .map_err(ClientError::InvalidChallenge)?;
        let server_time = i64::try_from(server_time.min(MAX_TIME)).unwrap_or(i64::MAX);
        let local = i64::try_from(self.inner.clock.now_unix()).unwrap_or(i64::MAX);
        let offset = server_time.saturating_sub(local);
        let previous = self.inner.offset.swap(offset, Ordering::Relaxed);
        tracing::debug!(
            key_id = %self.key_id(),
            previous_offset = previous,
            offset,
            "adopted the authenticated server time"
        );
        Ok(offset)
    }
}

/// The tessera-v1 error code of a rejection, read from its
/// `WWW-Authenticate: Tessera ..., error="<code>"` header.
///
/// Reading the header leaves the response body (the problem+json document)
/// unconsumed.
pub fn rejection_code(response_headers: &http::HeaderMap) -> Option<tessera_core::ErrorCode> {
    response_headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| auth_param(v, "Tessera", "error"))
        .and_then(|code| tessera_core::ErrorCode::from_code(&code))
}

/// Parameter `param` of challenge `scheme` in a `WWW-Authenticate` value
/// (RFC 9110 §11.6.1), unquoted.
fn auth_param(value: &str, scheme: &str, param: &str) -> Option<String> {
    let value = value.trim_start();
    let rest = value
        .get(..scheme.len())?
        .eq_ignore_ascii_case(scheme)
        .then(|| &value[scheme.len()..])?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t' | ',')).is_some() {}
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| !matches!(c, '=' | ',' | ' ' | '\t')) {
            name.push(c);
        }
        if name.is_empty() {
            return None;
        }
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        // No `=`: another challenge starts, and the parameters of ours are over.
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        let mut val = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => val.extend(chars.next()),
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !matches!(c, ',' | ' ' | '\t')) {
                val.push(c);
            }
        }
        if name.eq_ignore_ascii_case(param) {
            return Some(val);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_params() {
        let v = r#"Tessera realm="api, v1", error="clock_skew""#;
        assert_eq!(
            auth_param(v, "Tessera", "error").as_deref(),
            Some("clock_skew")
        );
        assert_eq!(
            auth_param(v, "Tessera", "realm").as_deref(),
            Some("api, v1")
        );
        assert_eq!(
            auth_param("tessera error=replayed", "Tessera", "error").as_deref(),
            Some("replayed")
        );
        assert_eq!(auth_param(r#"Bearer error="x""#, "Tessera", "error"), None);
        assert_eq!(auth_param("Tesserax error=x", "Tessera", "error"), None);
        assert_eq!(
            auth_param(
                r#"Tessera realm="a\"b", error = "bad_signature" "#,
                "Tessera",
                "error"
            )
            .as_deref(),
            Some("bad_signature")
        );
        assert_eq!(auth_param("Tessera", "Tessera", "error"), None);
    }
}
