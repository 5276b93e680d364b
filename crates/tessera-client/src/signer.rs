//! The [`Signer`]: key, clock, nonces, covered headers and the learned clock offset.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::challenge::{verify_server_time_with, SERVER_TIME_HEADER};
use tessera_core::{
    BodyDigest, Component, Fields, KeyId, MacKey, Nonce, RequestView, SecretKey, SignError,
    SignOptions, SignatureBase, SigningKey,
};

use crate::error::{ClientError, ConfigError};
use crate::signed::{SignedHeaders, SignedRequestInfo};
use crate::url::SignableUrl;
use tessera_core::{Clock, SystemClock};

/// One header a [`Signer`] was configured to cover, and whether a request
/// without it may still be signed; see [`SignerBuilder::cover`] and
/// [`SignerBuilder::cover_strict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredHeader {
    component: Component,
    strict: bool,
}

impl CoveredHeader {
    /// The header's name, lowercase, as `Signature-Input` lists it.
    pub fn name(&self) -> &str {
        self.component.name()
    }

    /// The header as a covered component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// `true` when a request without this header is refused
    /// (`missing_component`, [`SignerBuilder::cover_strict`]); `false` when
    /// it is then signed without covering it ([`SignerBuilder::cover`]).
    pub fn is_strict(&self) -> bool {
        self.strict
    }
}

struct Inner {
    /// The in-Rust key or a platform key: the same signing code for both.
    key: Arc<dyn MacKey>,
    clock: Box<dyn Clock>,
    /// The chosen headers, in signed order.
    covered: Box<[CoveredHeader]>,
    /// The same components, for requests that carry every one of them.
    all: Box<[Component]>,
    expires_after: Option<u64>,
    /// Server time minus local clock, seconds; shared by every clone.
    offset: AtomicI64,
}

/// Signs requests with one key.
///
/// A `Signer` holds the key id and prepared secret (zeroized on drop, never
/// printed), a [`Clock`], the headers the client chooses to cover (validated once, when
/// built), an optional signature lifetime, and the clock offset learned from
/// authenticated `clock_skew` challenges. Cloning is cheap (one `Arc`), and
/// every clone shares the offset, so one corrected request corrects all
/// concurrent and later ones.
///
/// Nonces come from `rand::rng()`, a user-space CSPRNG seeded from the
/// operating system, so signing costs no system call. Every call signs
/// afresh: a new nonce and a `created` read from the clock now.
///
/// # Signing methods
///
/// | method | input | result |
/// |---|---|---|
/// | [`Signer::sign_request`] | `&mut http::Request<B>`, body in memory | headers set on the request |
/// | `Signer::sign_reqwest` (feature `reqwest`) | `&mut reqwest::Request`, body in memory | headers set on the request |
/// | [`Signer::sign`] | method, absolute URL, headers, body digest | [`SignedHeaders`], nothing modified |
/// | [`Signer::sign_view`] | a [`RequestView`] with an explicit scheme and authority | [`SignedHeaders`], nothing modified |
///
/// [`Signer::sign`] and [`Signer::sign_view`] take the body as a
/// [`BodyDigest`]: [`BodyDigest::of`] for bytes in memory, a
/// [`BodyHasher`](tessera_core::BodyHasher) for a body you stream.
///
/// # Example
///
/// ```
/// use tessera_client::{KeyId, SecretKey, Signer, SigningKey};
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
            .field("covered", &self.inner.covered)
            .field("expires_after", &self.inner.expires_after)
            .field("offset", &self.clock_offset())
            .finish()
    }
}

/// Builds a [`Signer`]; see [`Signer::builder`].
///
/// ```
/// use std::time::Duration;
///
/// use tessera_client::{KeyId, SecretKey, Signer, SigningKey};
///
/// let key = SigningKey::new(KeyId::new("phone-1")?, &SecretKey::from_bytes(&[7; 32])?);
/// let signer = Signer::builder(key)
///     .cover("content-type")                   // covered when the request carries it
///     .cover_strict("x-request-id")            // every request must carry it
///     .expires_after(Duration::from_secs(60))  // adds `expires`
///     .build()?;
/// assert_eq!(signer.covered_headers().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct SignerBuilder {
    key: Arc<dyn MacKey>,
    clock: Box<dyn Clock>,
    covered: Vec<(String, bool)>,
    expires_after: Option<Duration>,
    offset: i64,
}

impl SignerBuilder {
    /// Reads the time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Covers header `name`, when the request carries it, in addition to the
    /// mandatory components (`@method`, `@authority`, `@path`, `@query`,
    /// `content-digest`).
    ///
    /// A request without the header is signed without covering it: the
    /// `Signature-Input` of each request lists exactly the components covered
    /// for it. So one signer covering `content-type` signs a body-less `GET`
    /// as well as a JSON `POST`. Which headers must be covered is the
    /// verifier's decision (tessera-server's `require_components`): a request
    /// that lacks a header the route requires is still rejected there with
    /// `missing_component`. Use [`SignerBuilder::cover_strict`] to refuse, on
    /// the client, to sign a request without the header.
    ///
    /// Only headers on the request when it is signed count: a header a
    /// client adds later (a `reqwest` client's default headers, which are
    /// added after middleware runs) is sent uncovered. Set such headers on
    /// the request itself, or use [`SignerBuilder::cover_strict`] to find
    /// where they are missing.
    ///
    /// `name` must be written in lowercase, as it appears in
    /// `Signature-Input` (`"content-type"`, not `"Content-Type"`): it is
    /// never lowercased for you, and [`SignerBuilder::build`] refuses a name
    /// with an uppercase letter (`malformed_signature`, with a message naming
    /// the lowercase form). The header itself may be spelled in any case on
    /// the request: field names match case-insensitively there.
    pub fn cover(mut self, name: &str) -> Self {
        self.covered.push((name.to_owned(), false));
        self
    }

    /// Covers header `name` on every request: a request without it is not
    /// signed ([`ClientError::Signing`] with `missing_component`, the code a
    /// verifier would answer). Otherwise as [`SignerBuilder::cover`].
    pub fn cover_strict(mut self, name: &str) -> Self {
        self.covered.push((name.to_owned(), true));
        self
    }

    /// Covers each of `names` when present; see [`SignerBuilder::cover`].
    pub fn cover_all<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.covered
            .extend(names.into_iter().map(|n| (n.to_owned(), false)));
        self
    }

    /// Covers each of `names` on every request; see
    /// [`SignerBuilder::cover_strict`].
    pub fn cover_all_strict<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.covered
            .extend(names.into_iter().map(|n| (n.to_owned(), true)));
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
    /// The covered names of [`SignerBuilder::cover`] and
    /// [`SignerBuilder::cover_strict`] form one list, in the order they were
    /// added, checked as a verifier checks a received list.
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
        // One rule for every signer: the list is checked in the verifier's
        // order, with its codes (spec §10 step 2).
        let names: Vec<&str> = self.covered.iter().map(|(n, _)| n.as_str()).collect();
        let all = tessera_core::parse_cover(&names)
            .map_err(|e| ClientError::Config(ConfigError::Cover(e)))?;
        let covered = all
            .iter()
            .zip(&self.covered)
            .map(|(component, &(_, strict))| CoveredHeader {
                component: component.clone(),
                strict,
            })
            .collect();
        let expires_after = match self.expires_after {
            None => None,
            Some(d) if d.as_secs() >= 1 && d.as_secs() <= tessera_core::MAX_TIME => {
                Some(d.as_secs())
            }
            Some(_) => {
                return Err(ClientError::Config(ConfigError::Lifetime {
                    max: tessera_core::MAX_TIME,
                }))
            }
        };
        Ok(Signer {
            inner: Arc::new(Inner {
                key: self.key,
                clock: self.clock,
                covered,
                all: all.into_boxed_slice(),
                expires_after,
                offset: AtomicI64::new(self.offset),
            }),
        })
    }
}

impl Signer {
    /// Starts building a signer for `key`, with the system clock, no chosen
    /// covered headers, no `expires` and a zero clock offset.
    pub fn builder(key: SigningKey) -> SignerBuilder {
        Signer::builder_with_key(Arc::new(key))
    }

    /// Starts building a signer for any [`MacKey`], for example a key whose
    /// secret the platform holds (Android Keystore, iOS Keychain) and which
    /// computes the MAC itself. Otherwise as [`Signer::builder`].
    ///
    /// The signer builds the signature base and serializes the headers as
    /// for a [`SigningKey`]; only the HMAC is the key's. The same key checks
    /// `clock_skew` challenges ([`Signer::apply_skew_challenge`]). A key that
    /// fails, or returns a tag that is not 32 bytes, makes signing fail with
    /// [`ClientError::Mac`]: nothing is returned, so nothing is sent.
    pub fn builder_with_key(key: Arc<dyn MacKey>) -> SignerBuilder {
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
        let id = KeyId::new(key_id).map_err(|e| ClientError::Config(ConfigError::KeyId(e)))?;
        Signer::builder(SigningKey::new(id, secret)).build()
    }

    /// The key id this signer signs with.
    pub fn key_id(&self) -> &KeyId {
        self.inner.key.key_id()
    }

    /// The headers this signer chooses to cover, in signed order.
    pub fn covered_headers(&self) -> &[CoveredHeader] {
        &self.inner.covered
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
        u64::try_from(t).unwrap_or(0).min(tessera_core::MAX_TIME)
    }

    /// A fresh nonce, `created` from the clock now, and `expires`.
    ///
    /// With a lifetime, `created` is held at `MAX_TIME - lifetime` at most,
    /// so that `expires` stays a time a signature can carry: a clock or an
    /// offset that far ahead (an authenticated challenge from a server with
    /// a broken clock, or `set_clock_offset`) then still gives signatures
    /// that go out, are answered `clock_skew` by a sane server, and let its
    /// challenge correct the offset, instead of every call failing locally.
    fn fresh_info(&self) -> SignedRequestInfo {
        let lifetime = self.inner.expires_after;
        let latest = tessera_core::MAX_TIME.saturating_sub(lifetime.unwrap_or(0));
        let created = self.now().min(latest);
        SignedRequestInfo::new(
            Nonce::generate(&mut rand::rng()),
            created,
            lifetime.map(|l| created.saturating_add(l)),
        )
    }

    /// The headers covered for a request with these fields: every chosen
    /// header it carries, and every strict one (an absent strict header
    /// makes signing fail with `missing_component`, at the step of the
    /// signing procedure where a verifier would find it missing).
    fn cover_for<F: Fields + ?Sized>(&self, fields: &F) -> Cow<'_, [Component]> {
        let present = |h: &CoveredHeader| match &h.component {
            Component::Field(name) => fields.values(name.header_name()).next().is_some(),
            _ => true,
        };
        if self.inner.covered.iter().all(present) {
            return Cow::Borrowed(&self.inner.all);
        }
        Cow::Owned(
            self.inner
                .covered
                .iter()
                .filter(|h| h.strict || present(h))
                .map(|h| h.component.clone())
                .collect(),
        )
    }

    /// Signs `view` with the parameters `info`.
    fn sign_with<F: Fields + ?Sized>(
        &self,
        view: &RequestView<'_, F>,
        body: &BodyDigest,
        info: SignedRequestInfo,
    ) -> Result<SignedHeaders, ClientError> {
        let cover = self.cover_for(view.fields());
        let options = SignOptions::new(info.created, &info.nonce)
            .with_expires(info.expires)
            .cover(&cover);
        let signed = tessera_core::sign_with_key(&*self.inner.key, view, body, &options).map_err(
            |e| match e {
                SignError::Refused(e) => ClientError::Signing(e),
                SignError::Mac(e) => ClientError::Mac(e),
                other => ClientError::Mac(tessera_core::MacError::Failed {
                    reason: other.to_string(),
                }),
            },
        )?;
        SignedHeaders::new(signed, info)
    }

    /// Signs a request given as a view, with a fresh nonce and the current
    /// time, and returns the headers; nothing is modified.
    ///
    /// The view names the scheme and authority explicitly
    /// ([`RequestView::new`]), so this is the method for a request whose
    /// URI is path-only, as written on the wire by hyper's connection-level
    /// client, and for header stores other than `http::HeaderMap` (any
    /// [`Fields`], for example a slice of `(name, value)` pairs). Every other
    /// signing method ends here.
    ///
    /// # Errors
    /// [`ClientError::Signing`]: `missing_component` when a strictly covered
    /// header is absent, `invalid_field_value` when a covered header value
    /// holds a control character or a non-ASCII octet.
    pub fn sign_view<F: Fields + ?Sized>(
        &self,
        view: &RequestView<'_, F>,
        body: &BodyDigest,
    ) -> Result<SignedHeaders, ClientError> {
        self.sign_with(view, body, self.fresh_info())
    }

    /// **For tests and conformance vectors only**: signs `view` with the
    /// given nonce, `created` and `expires` instead of a fresh nonce and the
    /// clock. A nonce used twice gets the second request rejected as
    /// `replayed`; production code calls [`Signer::sign_view`].
    ///
    /// # Errors
    /// As [`Signer::sign_view`]; `invalid_parameter` when `expires` is not
    /// after `created`, `malformed_signature` for a time above
    /// 999999999999999.
    pub fn sign_view_at<F: Fields + ?Sized>(
        &self,
        view: &RequestView<'_, F>,
        body: &BodyDigest,
        params: &SignedRequestInfo,
    ) -> Result<SignedHeaders, ClientError> {
        self.sign_with(view, body, params.clone())
    }

    /// Signs a request to `url` whose body has digest `body`, with a fresh
    /// nonce and the current time, and returns the headers to set; nothing
    /// is modified.
    ///
    /// This is the method for any HTTP stack: hyper, ureq or your own. Set
    /// the result with [`SignedHeaders::apply_to`] or
    /// [`SignedHeaders::apply_to_headers`] and send the request exactly as
    /// signed.
    ///
    /// * `method` is signed as given: methods are case-sensitive (RFC 9110
    ///   §9.1), so `get` is signed as `get`, not `GET`.
    /// * `url` is an absolute `http` or `https` URL ([`SignableUrl`]): an
    ///   [`http::Uri`], a string, or a `reqwest::Url`. Its scheme and
    ///   authority are the ones signed; a path-only URI is refused (see
    ///   [`SignableUrl`]). The path and query are signed as written.
    /// * `headers` is where covered headers are read: an `http::HeaderMap`
    ///   or any [`Fields`].
    /// * `body` is [`BodyDigest::of`] the body, [`BodyDigest::EMPTY`] for
    ///   none, or the result of a [`BodyHasher`](tessera_core::BodyHasher)
    ///   for a body you stream (it is trusted: a wrong one makes the server
    ///   answer `digest_mismatch`).
    ///
    /// # Example
    ///
    /// ```
    /// use tessera_client::{BodyDigest, SecretKey, Signer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let signer = Signer::new("k1", &SecretKey::from_bytes(&[1; 32])?)?;
    /// let body = br#"{"qty":1}"#;
    /// let (mut parts, body) = http::Request::post("https://api.example.com/v1/orders")
    ///     .body(body.to_vec())?
    ///     .into_parts();
    /// let signed = signer.sign(parts.method.as_str(), &parts.uri, &parts.headers, &BodyDigest::of(&body))?;
    /// signed.apply_to(&mut parts);
    /// assert_eq!(parts.headers["signature"], signed.signature());
    /// println!("{signed:?}"); // the signature itself is redacted
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Signing`]: `invalid_field_value` for a URL that is not
    /// absolute `http`/`https` or whose authority, path or query the profile
    /// does not allow, or a method that is not a token; `authority_mismatch`
    /// for a `Host` header that names another authority than the URL (sent
    /// directly, the server would verify against that `Host` and refuse the
    /// signature; see [`check_host_matches_target`](tessera_core::check_host_matches_target));
    /// otherwise as [`Signer::sign_view`].
    pub fn sign<U, F>(
        &self,
        method: &str,
        url: &U,
        headers: &F,
        body: &BodyDigest,
    ) -> Result<SignedHeaders, ClientError>
    where
        U: SignableUrl + ?Sized,
        F: Fields + ?Sized,
    {
        let parts = url.url_parts()?;
        let view = RequestView::new(
            method,
            parts.scheme,
            &parts.authority,
            parts.path,
            parts.query,
            headers,
        )
        .map_err(ClientError::Signing)?;
        // The request goes out in origin-form with the caller's `Host`, if
        // any, which the verifier would then sign in place of the URL's
        // authority: refused here, where the cause can be named.
        tessera_core::check_host_matches_target(headers, parts.scheme, &parts.authority)
            .map_err(ClientError::Signing)?;
        self.sign_view(&view, body)
    }

    /// Signs an `http::Request` whose whole body is in memory (`Vec<u8>`,
    /// `Bytes`, `String`, `&[u8]`, ...) in place: sets `Content-Digest`,
    /// `Signature-Input` and `Signature`, replacing earlier values, and
    /// returns the nonce and times used.
    ///
    /// The URI must be absolute, as for [`Signer::sign`]. For a body you
    /// stream, use [`Signer::sign`] with its digest.
    ///
    /// # Errors
    /// As [`Signer::sign`]. Nothing is set on the request then.
    pub fn sign_request<B: AsRef<[u8]>>(
        &self,
        request: &mut http::Request<B>,
    ) -> Result<SignedRequestInfo, ClientError> {
        let signed = self.sign(
            request.method().as_str(),
            request.uri(),
            request.headers(),
            &BodyDigest::of(request.body().as_ref()),
        )?;
        signed.apply_to_headers(request.headers_mut());
        Ok(signed.into_info())
    }

    /// The signature base a request signed with `params` covers, for
    /// debugging a `bad_signature` answer: compare its
    /// [`SignatureBase::sha256_hex`] with the server's, or print
    /// [`SignatureBase::redacted`].
    ///
    /// The view is the request as sent: [`RequestView::from_parts`] for an
    /// `http` request with an absolute URI, [`RequestView::new`] otherwise.
    /// The covered headers are chosen as when signing, so the same request
    /// gives the same list. The base contains header values; do not log its
    /// full form.
    ///
    /// # Errors
    /// As [`Signer::sign_view_at`].
    pub fn signature_base<F: Fields + ?Sized>(
        &self,
        view: &RequestView<'_, F>,
        body: &BodyDigest,
        params: &SignedRequestInfo,
    ) -> Result<SignatureBase, ClientError> {
        let cover = self.cover_for(view.fields());
        let options = SignOptions::new(params.created, &params.nonce)
            .with_expires(params.expires)
            .cover(&cover);
        tessera_core::signature_base(&*self.inner.key, view, body, &options)
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
    /// returned; sign the request again (fresh nonce, corrected `created`)
    /// to retry it, never resend the old signature.
    ///
    /// # Errors
    /// [`ClientError::MissingChallenge`] when the header is absent;
    /// [`ClientError::InvalidChallenge`] when it does not parse, names
    /// another key or request, or its MAC does not verify;
    /// [`ClientError::Mac`] when a platform key could not compute the MAC.
    /// The offset is unchanged in every case.
    pub fn apply_skew_challenge(
        &self,
        response_headers: &http::HeaderMap,
        sent_nonce: &Nonce,
    ) -> Result<i64, ClientError> {
        // The field value as RFC 9651 §4.2 reads it: every line, joined with
        // ", " (spec §13.3; a server sends one).
        let mut lines = response_headers.get_all(SERVER_TIME_HEADER).iter();
        let first = lines.next().ok_or(ClientError::MissingChallenge)?;
        let mut value = std::borrow::Cow::Borrowed(first.as_bytes());
        for line in lines {
            let joined = value.to_mut();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(line.as_bytes());
        }
        let server_time =
            verify_server_time_with(&value, &*self.inner.key, sent_nonce).map_err(|e| match e {
                SignError::Refused(e) => ClientError::InvalidChallenge(e),
                SignError::Mac(e) => ClientError::Mac(e),
                other => ClientError::Mac(tessera_core::MacError::Failed {
                    reason: other.to_string(),
                }),
            })?;
        let server_time =
            i64::try_from(server_time.min(tessera_core::MAX_TIME)).unwrap_or(i64::MAX);
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
