//! The parsed form of a received tessera-v1 signature: what steps 1 and 2
//! of verification produce (in [`crate::verify`], or through the
//! canonical-form shortcut of [`crate::canonical`]) and the later steps use.
//!
//! It has a module of its own so that dependencies inside the crate run one
//! way: `parsed` ← `canonical` ← `verify`.

use smallvec::SmallVec;

use crate::component::Component;
use crate::key::KeyId;
use crate::nonce::Nonce;
use crate::params::{write_signature_params, Param, ParamValues};

/// Components stored inline: the floor plus three extra fields need no allocation.
pub(crate) type ComponentList = SmallVec<[Component; 8]>;

/// Parameters in received order; the profile knows six.
pub(crate) type ParamOrder = SmallVec<[Param; 6]>;

/// The validated pieces of a received signature.
pub(crate) struct SignatureParts<'a> {
    pub(crate) label: &'a str,
    pub(crate) components: ComponentList,
    pub(crate) order: ParamOrder,
    pub(crate) created: u64,
    pub(crate) expires: Option<u64>,
    pub(crate) keyid: KeyId,
    pub(crate) nonce: Nonce,
    pub(crate) mac: [u8; 32],
}

/// Largest combined `Signature-Input` or `Signature` value accepted, in bytes.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 8192;

/// A tessera-v1 signature selected from a request and checked against the profile.
///
/// Produced by [`ParsedSignature::from_fields`] (steps 1–2 of the procedure);
/// the remaining steps are methods so a verifier can look the key up
/// asynchronously in between.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The label followed by the serialized `@signature-params` value: one
    /// allocation for both.
    pub(crate) label_and_params: String,
    pub(crate) label_len: usize,
    pub(crate) components: ComponentList,
    pub(crate) created: u64,
    pub(crate) expires: Option<u64>,
    pub(crate) keyid: KeyId,
    pub(crate) nonce: Nonce,
    pub(crate) mac: [u8; 32],
}

impl std::fmt::Debug for ParsedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedSignature")
            .field("label", &self.label())
            .field("components", &self.components)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("keyid", &self.keyid)
            .field("nonce", &self.nonce)
            .field("signature", &"** redacted **")
            .finish()
    }
}

impl ParsedSignature {
    /// Builds the signature from validated parts; the signed
    /// `@signature-params` value is the canonical serialization of the
    /// member as received, parameters in received order.
    #[inline]
    pub(crate) fn assemble(parts: SignatureParts<'_>) -> Self {
        let label = parts.label;
        let mut label_and_params =
            String::with_capacity(label.len() + 96 + 20 * parts.components.len());
        label_and_params.push_str(label);
        let values = ParamValues {
            created: parts.created,
            expires: parts.expires,
            keyid: parts.keyid.as_str(),
            nonce: parts.nonce.as_str(),
        };
        write_signature_params(
            &mut label_and_params,
            &parts.components,
            parts.order,
            &values,
        );
        ParsedSignature {
            label_len: label.len(),
            label_and_params,
            components: parts.components,
            created: parts.created,
            expires: parts.expires,
            keyid: parts.keyid,
            nonce: parts.nonce,
            mac: parts.mac,
        }
    }

    /// The parsed signature whose serialized parameters are `params`, as
    /// received: for the canonical-form shortcut, whose strict cursor only
    /// accepts text that is already the canonical serialization (so
    /// serializing `parts` again would give `params` byte for byte; unit
    /// tests and fuzzing check it).
    #[inline]
    pub(crate) fn from_canonical(parts: SignatureParts<'_>, params: &str) -> Self {
        let label = parts.label;
        let mut label_and_params = String::with_capacity(label.len() + params.len());
        label_and_params.push_str(label);
        label_and_params.push_str(params);
        let parsed = ParsedSignature {
            label_len: label.len(),
            label_and_params,
            components: parts.components,
            created: parts.created,
            expires: parts.expires,
            keyid: parts.keyid,
            nonce: parts.nonce,
            mac: parts.mac,
        };
        // The differential checks (`canonical_agreement`, the parse_headers
        // fuzz target) also compare the whole result with the `sfv` path.
        #[cfg(any(test, fuzzing))]
        {
            let mut again = String::with_capacity(params.len());
            let values = ParamValues {
                created: parsed.created,
                expires: parsed.expires,
                keyid: parsed.keyid.as_str(),
                nonce: parsed.nonce.as_str(),
            };
            write_signature_params(&mut again, &parsed.components, parts.order, &values);
            debug_assert_eq!(
                again, params,
                "the canonical cursor accepted a non-canonical form"
            );
        }
        parsed
    }

    /// The label the signature was found under.
    pub fn label(&self) -> &str {
        &self.label_and_params[..self.label_len]
    }

    /// The covered components, in signed order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// `created`, Unix seconds.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// `expires`, if present.
    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// The key id.
    pub fn key_id(&self) -> &KeyId {
        &self.keyid
    }

    /// The nonce.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The serialized `@signature-params` value.
    pub fn params(&self) -> &str {
        &self.label_and_params[self.label_len..]
    }
}
