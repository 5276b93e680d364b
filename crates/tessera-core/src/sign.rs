//! Producing the `Signature-Input`, `Signature` and `Content-Digest` headers.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;

use crate::base::{write_base, BaseSink, BufferedMac, SignatureBase};
use crate::component::{Component, MANDATORY};
use crate::digest::BodyDigest;
use crate::error::{err, ErrorCode, Result};
use crate::key::{KeyId, SigningKey};
use crate::mac_key::{MacKey, SignError, MAC_LEN};
use crate::nonce::Nonce;
use crate::params::{signer_order, write_signature_params, ParamValues};
use crate::request::{Fields, RequestView};
use crate::LABEL;

/// The largest `created` or `expires` a signature can carry: the largest
/// structured-field integer (15 digits, RFC 9651 §3.3.1).
pub const MAX_TIME: u64 = 999_999_999_999_999;

/// The per-request inputs to signing. Time and nonce come from the caller:
/// the core reads no clock and no randomness.
///
/// ```
/// # use tessera_core::{Component, Nonce, SignOptions};
/// let nonce = Nonce::new("q8Zl1mVQm0yD9kR3tW5xCA")?;
/// let cover = [Component::field("content-type")?];
/// let options = SignOptions::new(1_700_000_000, &nonce)
///     .with_expires(Some(1_700_000_060))
///     .cover(&cover);
/// # Ok::<(), tessera_core::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct SignOptions<'a> {
    /// `created`, Unix seconds.
    pub created: u64,
    /// Optional `expires`, Unix seconds; must be after `created`.
    pub expires: Option<u64>,
    /// A fresh nonce.
    pub nonce: &'a Nonce,
    /// Header fields covered in addition to the mandatory floor, lowercase,
    /// in order (see [`crate::parse_cover`]).
    pub cover: &'a [Component],
}

impl<'a> SignOptions<'a> {
    /// Options for a signature created at `created` with `nonce`, no
    /// `expires` and nothing covered beyond the floor.
    pub fn new(created: u64, nonce: &'a Nonce) -> Self {
        SignOptions {
            created,
            expires: None,
            nonce,
            cover: &[],
        }
    }

    /// Sets (or clears) `expires`.
    #[must_use]
    pub fn with_expires(mut self, expires: Option<u64>) -> Self {
        self.expires = expires;
        self
    }

    /// Covers these header fields after the floor, in this order.
    #[must_use]
    pub fn cover(mut self, fields: &'a [Component]) -> Self {
        self.cover = fields;
        self
    }
}

/// The headers a signed request carries. `Debug` hides the signature: it
/// stays valid for the whole acceptance window.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Value of `Signature-Input`.
    pub signature_input: String,
    /// Value of `Signature`.
    pub signature: String,
    /// Value of `Content-Digest`.
    pub content_digest: Cow<'static, str>,
}

impl std::fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("signature_input", &self.signature_input)
            .field("signature", &"** redacted **")
            .field("content_digest", &self.content_digest)
            .finish()
    }
}

impl SignedHeaders {
    /// The three `(name, value)` pairs, in the order they are usually sent.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("content-digest", &*self.content_digest),
            ("signature-input", self.signature_input.as_str()),
            ("signature", self.signature.as_str()),
        ]
        .into_iter()
    }

    /// Sets the three headers on `headers`, replacing earlier values; the
    /// `Signature` value is marked sensitive so `http`'s `Debug` hides it.
    ///
    /// # Errors
    /// Never in practice: every value is ASCII produced by a structured-field serializer.
    pub fn apply_to(&self, headers: &mut http::HeaderMap) -> Result<()> {
        for (name, value) in self.header_values()? {
            headers.insert(name, value);
        }
        Ok(())
    }

    /// The three headers as `http` values (`Content-Digest`,
    /// `Signature-Input`, `Signature`), the `Signature` value marked
    /// sensitive so `http`'s `Debug` hides it.
    ///
    /// # Errors
    /// `invalid_field_value` when a value was changed to one that is not a
    /// valid header value (never for values [`sign`] produced).
    pub fn header_values(&self) -> Result<[(http::HeaderName, http::HeaderValue); 3]> {
        let value = |name: &'static str, value: &str| {
            let mut value = http::HeaderValue::from_str(value).map_err(|_| {
                crate::Error::new(
                    ErrorCode::InvalidFieldValue,
                    format!("the {name} value is not a valid header value"),
                )
            })?;
            value.set_sensitive(name == "signature");
            Ok::<_, crate::Error>((http::HeaderName::from_static(name), value))
        };
        Ok([
            value("content-digest", &self.content_digest)?,
            value("signature-input", &self.signature_input)?,
            value("signature", &self.signature)?,
        ])
    }
}

impl SignOptions<'_> {
    /// Checks the inputs as spec §10 step 2 says, before any request is
    /// looked at: `created` and `expires` (`invalid_parameter`), and the extra
    /// components (`duplicate_component` for a floor component or a repeat,
    /// `malformed_signature` for more than 32 in all). [`sign`] checks them
    /// too; call this first to refuse in the spec's order.
    ///
    /// # Errors
    /// As above.
    pub fn check(&self) -> Result<()> {
        check_options(self)
    }
}

fn check_options(opts: &SignOptions<'_>) -> Result<()> {
    // The verifier's order (spec §11.2, step 2): components, then parameters.
    crate::component::check_cover(opts.cover)?;
    // An integer of 16 digits is not an sf-integer: a verifier could not even
    // parse the header, so it is refused with the verifier's code.
    if opts.created > MAX_TIME || opts.expires.is_some_and(|e| e > MAX_TIME) {
        return err(
            ErrorCode::MalformedSignature,
            "created and expires must be at most 999999999999999 (15 digits, the largest sf-integer)",
        );
    }
    if let Some(expires) = opts.expires {
        if expires <= opts.created {
            return err(ErrorCode::InvalidParameter, "expires must be after created");
        }
    }
    Ok(())
}

/// Serializes the `Signature-Input` value: `tessera=(...);created=..;keyid=..;nonce=..;tag=..`.
fn signature_input(key_id: &KeyId, opts: &SignOptions<'_>) -> String {
    let mut out = String::with_capacity(160 + 24 * opts.cover.len());
    out.push_str(LABEL);
    out.push('=');
    let values = ParamValues {
        created: opts.created,
        expires: opts.expires,
        keyid: key_id.as_str(),
        nonce: opts.nonce.as_str(),
    };
    write_signature_params(
        &mut out,
        MANDATORY.iter().chain(opts.cover),
        signer_order(opts.expires),
        &values,
    );
    out
}

fn params_of(signature_input: &str) -> &str {
    &signature_input[LABEL.len() + 1..]
}

/// Signs a request: returns the `Signature-Input`, `Signature` and `Content-Digest` values.
///
/// The base is streamed straight into the prepared HMAC; the only heap
/// allocations are the two header strings (plus the digest string for
/// non-empty bodies). For a key the platform holds, see [`sign_with_key`].
///
/// # Errors
/// `invalid_parameter` for out-of-range times, `duplicate_component` for bad
/// extra components, `missing_component` when a covered extra field is absent,
/// `invalid_field_value` when a covered value contains control characters.
pub fn sign<F: Fields + ?Sized>(
    key: &SigningKey,
    request: &RequestView<'_, F>,
    body: &BodyDigest,
    opts: &SignOptions<'_>,
) -> Result<SignedHeaders> {
    sign_into(
        key.key_id(),
        request,
        body,
        opts,
        BufferedMac::new(key.prepared_mac()),
        |mut mac| Ok(mac.finish().finalize().into_bytes().into()),
    )
}

/// Signs a request with any [`MacKey`]: a [`SigningKey`], or a key the
/// platform holds (the bindings' `MacProvider`).
///
/// The headers are byte for byte those [`sign`] gives for the same secret
/// and inputs: the same code builds the signature base and serializes the
/// headers. A key with a prepared in-Rust state ([`MacKey::prepared`])
/// goes through [`sign`]; any other gets the whole base in one buffer (one
/// allocation of about 512 bytes) and returns the tag.
///
/// # Errors
/// [`SignError::Refused`] as [`sign`], checked before the key is asked for
/// anything; [`SignError::Mac`] when the key produced no tag (nothing is
/// returned then, so nothing can be sent).
pub fn sign_with_key<K: MacKey + ?Sized, F: Fields + ?Sized>(
    key: &K,
    request: &RequestView<'_, F>,
    body: &BodyDigest,
    opts: &SignOptions<'_>,
) -> std::result::Result<SignedHeaders, SignError> {
    if let Some(prepared) = key.prepared() {
        return sign(prepared, request, body, opts).map_err(SignError::Refused);
    }
    sign_into(
        key.key_id(),
        request,
        body,
        opts,
        Vec::with_capacity(BASE_CAPACITY),
        |base| key.tag(base).map_err(SignError::Mac),
    )
}

/// Room for a typical base, so that the buffer of [`sign_with_key`] rarely grows.
const BASE_CAPACITY: usize = 512;

/// The one signing procedure: checks the options, writes the base into
/// `sink`, has `tag` turn the sink into the MAC, and serializes the headers.
fn sign_into<F, S, E>(
    key_id: &KeyId,
    request: &RequestView<'_, F>,
    body: &BodyDigest,
    opts: &SignOptions<'_>,
    mut sink: S,
    tag: impl FnOnce(S) -> std::result::Result<[u8; MAC_LEN], E>,
) -> std::result::Result<SignedHeaders, E>
where
    F: Fields + ?Sized,
    S: BaseSink,
    E: From<crate::Error>,
{
    check_options(opts)?;
    let content_digest = body.header_value();
    let signature_input = signature_input(key_id, opts);
    write_base(
        &mut sink,
        request,
        MANDATORY.iter().chain(opts.cover),
        Some(content_digest.as_bytes()),
        params_of(&signature_input),
    )?;
    check_cookie_lines(request, opts.cover)?;
    let tag = tag(sink)?;
    let mut signature = String::with_capacity(LABEL.len() + 48);
    signature.push_str(LABEL);
    signature.push_str("=:");
    STANDARD.encode_string(tag, &mut signature);
    signature.push(':');
    Ok(SignedHeaders {
        signature_input,
        signature,
        content_digest,
    })
}

/// The signature base [`sign`] (or [`sign_with_key`]) would MAC for these
/// inputs, for debugging. Only the key id of `key` is used.
///
/// # Errors
/// As [`sign`].
pub fn signature_base<K: MacKey + ?Sized, F: Fields + ?Sized>(
    key: &K,
    request: &RequestView<'_, F>,
    body: &BodyDigest,
    opts: &SignOptions<'_>,
) -> Result<SignatureBase> {
    check_options(opts)?;
    let content_digest = body.header_value();
    let signature_input = signature_input(key.key_id(), opts);
    let base = SignatureBase::build(
        request,
        MANDATORY.iter().chain(opts.cover),
        Some(content_digest.as_bytes()),
        params_of(&signature_input),
    )?;
    check_cookie_lines(request, opts.cover)?;
    Ok(base)
}

/// Spec §10, step 6, once the base is built: a covered `cookie` goes out
/// as one line. The base refuses several received over HTTP/1.1 already;
/// this also refuses them in a view marked as HTTP/2, whose crumbs the
/// base joins with `; `: a signer sends one line whatever the protocol.
fn check_cookie_lines<F: Fields + ?Sized>(
    request: &RequestView<'_, F>,
    cover: &[Component],
) -> Result<()> {
    let covers_cookie = cover.iter().any(
        |c| matches!(c, Component::Field(name) if *name.header_name() == http::header::COOKIE),
    );
    if covers_cookie {
        let lines = request.fields().values(&http::header::COOKIE).count();
        if lines > 1 {
            return Err(crate::base::cookie_lines_error(lines));
        }
    }
    Ok(())
}
