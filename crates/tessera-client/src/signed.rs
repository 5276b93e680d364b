//! [`SignedHeaders`]: what one signing computed, ready to set on a request.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use tessera_core::Nonce;

use crate::error::ClientError;

static CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");
static SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
static SIGNATURE: HeaderName = HeaderName::from_static("signature");

/// The parameters of one signature: its nonce, `created` and `expires`.
///
/// Every signing method returns them. Keep them while the request is in
/// flight if you may need to check a `clock_skew` challenge
/// ([`Signer::apply_skew_challenge`](crate::Signer::apply_skew_challenge)
/// needs the nonce) or to rebuild the signature base for debugging
/// ([`Signer::signature_base`](crate::Signer::signature_base)).
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

impl SignedRequestInfo {
    /// Parameters with this nonce and these times, for
    /// [`Signer::signature_base`](crate::Signer::signature_base) and
    /// [`Signer::sign_view_at`](crate::Signer::sign_view_at) (for example
    /// read back from a request that was sent, or fixed by a test vector).
    pub fn new(nonce: Nonce, created: u64, expires: Option<u64>) -> Self {
        SignedRequestInfo {
            nonce,
            created,
            expires,
        }
    }
}

/// The three headers one signing computed, and the parameters it used.
///
/// Returned by [`Signer::sign`](crate::Signer::sign) and
/// [`Signer::sign_view`](crate::Signer::sign_view), which never modify a
/// request, so any HTTP stack can send them: set them with
/// [`SignedHeaders::apply_to`] (`http::request::Parts`, as hyper and ureq
/// use) or [`SignedHeaders::apply_to_headers`] (any `http::HeaderMap`, such
/// as `reqwest::Request::headers_mut`), or copy the `(name, value)` pairs of
/// [`SignedHeaders::iter`] into your own request type.
///
/// The `Signature` value is marked sensitive (`HeaderValue::is_sensitive`),
/// so `http`'s `Debug` and HTTP/2 header compression leave it out, and this
/// type's `Debug` prints it as `** redacted **`: a signature stays valid for
/// the whole acceptance window.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "the headers do nothing until they are set on the request"]
pub struct SignedHeaders {
    content_digest: HeaderValue,
    signature_input: HeaderValue,
    signature: HeaderValue,
    info: SignedRequestInfo,
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("content_digest", &self.content_digest)
            .field("signature_input", &self.signature_input)
            .field("signature", &"** redacted **")
            .field("info", &self.info)
            .finish()
    }
}

impl SignedHeaders {
    /// Converts what tessera-core produced into header values.
    pub(crate) fn new(
        signed: tessera_core::SignedHeaders,
        info: SignedRequestInfo,
    ) -> Result<Self, ClientError> {
        let [(_, content_digest), (_, signature_input), (_, signature)] =
            signed.header_values().map_err(ClientError::Signing)?;
        Ok(SignedHeaders {
            content_digest,
            signature_input,
            signature,
            info,
        })
    }

    /// The `Content-Digest` value: `sha-256=:<base64>:` of the body.
    pub fn content_digest(&self) -> &HeaderValue {
        &self.content_digest
    }

    /// The `Signature-Input` value: `tessera=(<covered components>);created=..;keyid=..;nonce=..;tag="tessera-v1"`.
    ///
    /// It lists the components actually covered: the mandatory floor, then
    /// the signer's chosen headers that this request carries (see
    /// [`SignerBuilder::cover`](crate::SignerBuilder::cover)).
    pub fn signature_input(&self) -> &HeaderValue {
        &self.signature_input
    }

    /// The `Signature` value: `tessera=:<base64 MAC>:`. Marked sensitive.
    pub fn signature(&self) -> &HeaderValue {
        &self.signature
    }

    /// The nonce, `created` and `expires` of this signature.
    pub fn info(&self) -> &SignedRequestInfo {
        &self.info
    }

    /// The nonce, `created` and `expires` of this signature, by value.
    pub fn into_info(self) -> SignedRequestInfo {
        self.info
    }

    /// The three `(name, value)` pairs, lowercase names, in the order they
    /// are usually sent: `content-digest`, `signature-input`, `signature`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static HeaderName, &HeaderValue)> {
        [
            (&CONTENT_DIGEST, &self.content_digest),
            (&SIGNATURE_INPUT, &self.signature_input),
            (&SIGNATURE, &self.signature),
        ]
        .into_iter()
    }

    /// Sets the three headers on a request head, replacing any earlier
    /// values of the same names (a stale signature or digest included).
    ///
    /// Send the request exactly as signed: same method, same path and query
    /// octets, same authority, same covered header values, and this body.
    pub fn apply_to(&self, parts: &mut http::request::Parts) {
        self.apply_to_headers(&mut parts.headers);
    }

    /// Sets the three headers on `headers`, replacing any earlier values of
    /// the same names; see [`SignedHeaders::apply_to`].
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }
}
