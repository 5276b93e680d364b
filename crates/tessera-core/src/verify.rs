//! Parsing a received tessera-v1 signature and the pure verification steps.

use std::borrow::Cow;

use hmac::Mac;
use http::HeaderName;

use crate::base::{trim_ows, write_base, BufferedMac, SignatureBase};
use crate::canonical;
use crate::component::{
    check_coverage, Component, CONTENT_DIGEST_FIELD, SIGNATURE_FIELD, SIGNATURE_INPUT_FIELD,
};
use crate::digest::BodyDigest;
use crate::error::{err, Error, ErrorCode, Refusal, Result};
use crate::key::{KeyId, SigningKey};
use crate::nonce::Nonce;
use crate::params::Param;
use crate::parsed::{
    ComponentList, ParamOrder, ParsedSignature, SignatureParts, MAX_SIGNATURE_HEADER_LEN,
};
use crate::received::{Authorities, ReceivedRequest};
use crate::request::{Fields, RequestView, Scheme};
use crate::sf::{self, ByteMember};
use crate::TAG;

/// The time and authority rules a verifier applies.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The verifier's current time, Unix seconds (fractions truncated).
    pub now: u64,
    /// How far `created` may lie before `now`, seconds; after `now`, at most
    /// the smaller of this and [`crate::MAX_AHEAD_SECS`].
    pub window: u64,
    /// The public scheme, which decides the default port of the authority.
    pub scheme: Scheme,
    /// How the authority that goes into the base is chosen.
    pub authorities: Authorities<'a>,
}

impl<'a> Policy<'a> {
    /// A verifier serving `authorities` (normalized) over https.
    pub fn new(now: u64, window: u64, authorities: &'a [String]) -> Self {
        Policy {
            now,
            window,
            scheme: Scheme::Https,
            authorities: Authorities::Served(authorities),
        }
    }

    /// A verifier that puts the one (normalized) `authority` in every base
    /// and never reads `Host` (spec §11.2, step 5, fixed authority).
    pub fn fixed(now: u64, window: u64, authority: &'a str) -> Self {
        Policy {
            now,
            window,
            scheme: Scheme::Https,
            authorities: Authorities::Fixed(authority),
        }
    }

    /// The same policy with another public scheme.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }
}

/// All field lines of `name` joined with ", " (RFC 9110 §5.3); borrows when there is one line.
fn combined<'f, F: Fields + ?Sized>(
    fields: &'f F,
    name: &HeaderName,
) -> Result<Option<Cow<'f, [u8]>>> {
    let mut out: Option<Cow<'f, [u8]>> = None;
    for v in fields.values(name) {
        // Field values exclude surrounding OWS (RFC 9110 §5.5); empty lines
        // are joined like any other (RFC 9651 §4.2), so they do not parse.
        let v = trim_ows(v);
        match &mut out {
            None => out = Some(Cow::Borrowed(v)),
            Some(buf) => {
                let buf = buf.to_mut();
                buf.extend_from_slice(b", ");
                buf.extend_from_slice(v);
            }
        }
        if out
            .as_ref()
            .is_some_and(|b| b.len() > MAX_SIGNATURE_HEADER_LEN)
        {
            return err(
                ErrorCode::MalformedSignature,
                format!("{name} is longer than {MAX_SIGNATURE_HEADER_LEN} bytes"),
            );
        }
    }
    Ok(out)
}

/// The value of `name` when the request has exactly one line of it.
fn single_line<'f, F: Fields + ?Sized>(fields: &'f F, name: &HeaderName) -> Option<&'f [u8]> {
    let mut values = fields.values(name);
    let first = values.next()?;
    values.next().is_none().then_some(trim_ows(first))
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::MalformedSignature, detail)
}

impl ParsedSignature {
    /// Steps 1 and 2: parses `Signature-Input` and `Signature`, selects the
    /// member tagged `tessera-v1`, and enforces the profile.
    ///
    /// # Errors
    /// `missing_signature`, `malformed_signature`, `missing_parameter`,
    /// `invalid_parameter`, `algorithm_mismatch`, `forbidden_component`,
    /// `duplicate_component`, `missing_component`.
    pub fn from_fields<F: Fields + ?Sized>(fields: &F) -> Result<Self> {
        let one_line_each =
            single_line(fields, &SIGNATURE_INPUT_FIELD).zip(single_line(fields, &SIGNATURE_FIELD));
        if let Some((input, signature)) = one_line_each {
            if let Some(parsed) = canonical::recognize(input, signature) {
                return Ok(parsed);
            }
        }
        Self::from_fields_through_sfv(fields)
    }

    /// Steps 1 and 2 through the `sfv` parser, for any header values.
    pub(crate) fn from_fields_through_sfv<F: Fields + ?Sized>(fields: &F) -> Result<Self> {
        let Some(input) = combined(fields, &SIGNATURE_INPUT_FIELD)? else {
            return err(
                ErrorCode::MissingSignature,
                "the request has no Signature-Input",
            );
        };
        let mut members = sf::InputMembers::new();
        sf::parse_signature_input(&input, &mut members).map_err(|e| {
            malformed(format!(
                "Signature-Input is not a structured-field dictionary: {e}"
            ))
        })?;
        let mut tagged = members.iter().filter(|m| {
            m.is_inner_list
                && m.param("tag")
                    .and_then(|t| t.as_string())
                    .is_some_and(|t| t.as_str() == TAG)
        });
        let Some(member) = tagged.next() else {
            return err(
                ErrorCode::MissingSignature,
                "no signature is tagged \"tessera-v1\"",
            );
        };
        if tagged.next().is_some() {
            return err(
                ErrorCode::MalformedSignature,
                "more than one tessera-v1 signature",
            );
        }
        let label = member.label.as_str();

        let Some(signature) = combined(fields, &SIGNATURE_FIELD)? else {
            return err(
                ErrorCode::MalformedSignature,
                "Signature-Input without Signature",
            );
        };
        let mac = match sf::parse_byte_member(&signature, label).map_err(|e| {
            malformed(format!(
                "Signature is not a structured-field dictionary: {e}"
            ))
        })? {
            ByteMember::Bytes(mac) => mac,
            ByteMember::WrongShape => {
                return err(
                    ErrorCode::MalformedSignature,
                    "the signature is not a 32-byte byte sequence",
                )
            }
            ByteMember::Absent => {
                return err(
                    ErrorCode::MalformedSignature,
                    format!("Signature has no member \"{label}\""),
                )
            }
        };

        let mut components = ComponentList::with_capacity(member.items.len());
        for item in &member.items {
            let Some(name) = &item.name else {
                return err(
                    ErrorCode::MalformedSignature,
                    "component identifiers must be strings",
                );
            };
            if item.has_params {
                return err(
                    ErrorCode::ForbiddenComponent,
                    format!(
                        "component \"{}\" has parameters, which tessera-v1 does not allow",
                        name.as_str()
                    ),
                );
            }
            components.push(Component::parse(name.as_str())?);
        }
        check_coverage(&components)?;

        let (mut created, mut expires, mut keyid, mut nonce) = (None, None, None, None);
        // Received order of the (deduplicated) parameters: the signed
        // `@signature-params` value keeps it.
        let mut order = ParamOrder::new();
        for (key, value) in &member.params {
            let wrong_type = || malformed(format!("parameter {} has the wrong type", key.as_str()));
            let Some(param) = Param::from_key(key.as_str()) else {
                return err(
                    ErrorCode::MalformedSignature,
                    format!("unknown parameter \"{}\"", key.as_str()),
                );
            };
            match param {
                Param::Created => created = Some(value.as_integer().ok_or_else(wrong_type)?),
                Param::Expires => expires = Some(value.as_integer().ok_or_else(wrong_type)?),
                Param::KeyId => keyid = Some(value.as_string().ok_or_else(wrong_type)?.as_str()),
                Param::Nonce => nonce = Some(value.as_string().ok_or_else(wrong_type)?.as_str()),
                Param::Tag => {}
                Param::Alg => {
                    let name = value.as_string().ok_or_else(wrong_type)?;
                    if name.as_str() != "hmac-sha256" {
                        return err(
                            ErrorCode::AlgorithmMismatch,
                            "alg must be \"hmac-sha256\" when present",
                        );
                    }
                }
            }
            order.push(param);
        }
        let created = created
            .ok_or_else(|| Error::new(ErrorCode::MissingParameter, "created is required"))?;
        let keyid =
            keyid.ok_or_else(|| Error::new(ErrorCode::MissingParameter, "keyid is required"))?;
        let nonce =
            nonce.ok_or_else(|| Error::new(ErrorCode::MissingParameter, "nonce is required"))?;
        let created = u64::try_from(i64::from(created))
            .map_err(|_| Error::new(ErrorCode::InvalidParameter, "created must not be negative"))?;
        let expires = match expires {
            None => None,
            Some(e) => match u64::try_from(i64::from(e)) {
                Ok(e) if e > created => Some(e),
                _ => return err(ErrorCode::InvalidParameter, "expires must be after created"),
            },
        };
        let keyid = KeyId::new(keyid)?;
        let nonce = Nonce::new(nonce)?;

        Ok(Self::assemble(SignatureParts {
            label,
            components,
            order,
            created,
            expires,
            keyid,
            nonce,
            mac,
        }))
    }

    /// Step 4: `created` at most `window` seconds before `now` and at most
    /// `min(window, MAX_AHEAD_SECS)` after it, and not past `expires`.
    ///
    /// # Errors
    /// `clock_skew`, `signature_expired`.
    pub fn check_time(&self, now: u64, window: u64) -> Result<()> {
        let ahead = window.min(crate::MAX_AHEAD_SECS);
        if self.created > now.saturating_add(ahead) {
            return err(
                ErrorCode::ClockSkew,
                format!(
                    "created is {}s in the future; at most {ahead}s ahead is accepted",
                    self.created - now
                ),
            );
        }
        if now.saturating_sub(self.created) > window {
            return err(
                ErrorCode::ClockSkew,
                format!(
                    "created is {}s in the past; the window is {window}s",
                    now - self.created
                ),
            );
        }
        if let Some(expires) = self.expires {
            if now > expires {
                return err(
                    ErrorCode::SignatureExpired,
                    "the signature's expires time has passed",
                );
            }
        }
        Ok(())
    }

    /// Step 2, with a verifier's own floor: every component in `required`
    /// is covered (spec §11.1, required components).
    ///
    /// # Errors
    /// `missing_component`, naming the first component that is not covered.
    pub fn require(&self, required: &[Component]) -> Result<()> {
        match required.iter().find(|r| !self.components().contains(r)) {
            None => Ok(()),
            Some(missing) => err(
                ErrorCode::MissingComponent,
                format!("this route requires \"{}\" to be covered", missing.name()),
            ),
        }
    }

    /// Step 7: the received body's digest equals the covered `Content-Digest`.
    ///
    /// # Errors
    /// `missing_component` when the field is absent, `digest_mismatch` otherwise.
    pub fn check_digest<F: Fields + ?Sized>(&self, fields: &F, body: &BodyDigest) -> Result<()> {
        checked_digest_line(fields, body).map(|_| ())
    }

    /// The base this signature covers over `request`, for diagnostics.
    ///
    /// # Errors
    /// `missing_component`, `invalid_field_value`.
    pub fn signature_base<F: Fields + ?Sized>(
        &self,
        request: &RequestView<'_, F>,
    ) -> Result<SignatureBase> {
        SignatureBase::build(request, &self.components, None, self.params())
    }

    /// Step 6: recomputes the MAC over `request` and compares it in constant time.
    /// It does not need the body: the base holds the `Content-Digest` field
    /// as received, which step 7 then compares with the body.
    ///
    /// # Errors
    /// `missing_component`, `invalid_field_value`, `bad_signature`.
    pub fn verify_mac<F: Fields + ?Sized>(
        &self,
        key: &SigningKey,
        request: &RequestView<'_, F>,
    ) -> Result<()> {
        self.verify_mac_over(key, request, None)
    }

    /// Steps 6 and 7 in order, for a body already read: [`ParsedSignature::verify_mac`]
    /// over `request`, then [`ParsedSignature::check_digest`] over its
    /// fields, with the same errors in the same order (a request whose MAC
    /// and body are both wrong is `bad_signature`). `Content-Digest` is
    /// looked up once: the line found equal to the canonical value of the
    /// body's digest goes into the base as it is.
    ///
    /// # Errors
    /// `missing_component`, `invalid_field_value`, `bad_signature`,
    /// `digest_mismatch`.
    pub fn check_mac_and_digest<F: Fields + ?Sized>(
        &self,
        key: &SigningKey,
        request: &RequestView<'_, F>,
        body: &BodyDigest,
    ) -> Result<()> {
        // Looked up first, reported second: digests are public, so
        // comparing one before the MAC tells a forger nothing.
        let digest = checked_digest_line(request.fields(), body);
        let line = digest.as_ref().ok().copied().flatten();
        self.verify_mac_over(key, request, line)?;
        digest.map(drop)
    }

    /// Step 6, with the `Content-Digest` value that goes into the base
    /// when the caller already read it (one line, checked by
    /// [`checked_digest_line`]).
    fn verify_mac_over<F: Fields + ?Sized>(
        &self,
        key: &SigningKey,
        request: &RequestView<'_, F>,
        content_digest: Option<&[u8]>,
    ) -> Result<()> {
        let mut mac = BufferedMac::new(key.prepared_mac());
        write_base(
            &mut mac,
            request,
            &self.components,
            content_digest,
            self.params(),
        )?;
        mac.finish().verify_slice(&self.mac).map_err(|_| {
            Error::new(
                ErrorCode::BadSignature,
                "the signature does not match the request",
            )
        })
    }

    /// Steps 4 to 7 for a key that was already looked up and found usable,
    /// in the spec's order: time, then the request's method, target and
    /// authority, then the MAC, then the body digest. Returns the view the
    /// base was computed over.
    ///
    /// # Errors
    /// `clock_skew`, `signature_expired`, `authority_mismatch`,
    /// `invalid_field_value`, `missing_component`, `bad_signature`,
    /// `digest_mismatch`.
    pub fn verify_with_key<'r, F: Fields + ?Sized>(
        &self,
        key: &SigningKey,
        request: &'r ReceivedRequest<'_, F>,
        body: &BodyDigest,
        policy: &Policy<'r>,
    ) -> Result<RequestView<'r, F>> {
        self.check_time(policy.now, policy.window)?;
        let view = request.view(policy.scheme, policy.authorities)?;
        self.check_mac_and_digest(key, &view, body)?;
        Ok(view)
    }
}

/// Step 7: the received body's digest equals the covered `Content-Digest`.
/// Returns the field's one line when it is exactly the canonical
/// serialization of `body` (the line the base then holds, as is), `None`
/// when the field matched in another form.
fn checked_digest_line<'f, F: Fields + ?Sized>(
    fields: &'f F,
    body: &BodyDigest,
) -> Result<Option<&'f [u8]>> {
    let mut values = fields.values(&CONTENT_DIGEST_FIELD);
    let Some(first) = values.next() else {
        return err(
            ErrorCode::MissingComponent,
            "the request has no Content-Digest field",
        );
    };
    let first = trim_ows(first);
    let claimed = match values.next() {
        None if first.len() > MAX_SIGNATURE_HEADER_LEN => {
            return err(ErrorCode::DigestMismatch, "Content-Digest is too long");
        }
        None => {
            // A value identical to the canonical serialization of the
            // body's digest is a dictionary whose sha-256 member is that
            // digest: no need to parse it. (Digests are public; this
            // comparison leaks nothing.)
            if body.is_header_value(first) {
                return Ok(Some(first));
            }
            BodyDigest::parse_header(first)?
        }
        Some(_) => {
            let joined = combined(fields, &CONTENT_DIGEST_FIELD)
                .map_err(|_| Error::new(ErrorCode::DigestMismatch, "Content-Digest is too long"))?
                .unwrap_or_default();
            BodyDigest::parse_header(&joined)?
        }
    };
    if subtle::ConstantTimeEq::ct_eq(&claimed.as_bytes()[..], &body.as_bytes()[..]).into() {
        Ok(None)
    } else {
        err(
            ErrorCode::DigestMismatch,
            "Content-Digest does not match the received body",
        )
    }
}

/// The whole pure procedure (steps 1 to 7) with a synchronous key lookup.
///
/// `lookup` maps a key id to a usable key, or says why there is none
/// ([`Refusal::UnknownKey`], [`Refusal::KeyRevoked`], ...).
/// Replay protection (step 8) needs a nonce store and is the caller's job.
///
/// # Errors
/// Any code of steps 1 to 7.
pub fn verify<F: Fields + ?Sized>(
    request: &ReceivedRequest<'_, F>,
    body: &BodyDigest,
    policy: &Policy<'_>,
    lookup: impl FnOnce(&KeyId) -> Result<SigningKey, Refusal>,
) -> Result<ParsedSignature> {
    let parsed = ParsedSignature::from_fields(request.fields())?;
    let key = lookup(parsed.key_id())?;
    parsed.verify_with_key(&key, request, body, policy)?;
    Ok(parsed)
}
