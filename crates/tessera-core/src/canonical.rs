//! A shortcut for `Signature-Input` and `Signature` values that are exactly
//! the canonical serialization a tessera-v1 signer emits.
//!
//! On a small request the `sfv` parser costs more than the MAC itself. This
//! module does not parse structured fields: it *recognizes* the one form that
//! signers produce and hands everything else to the `sfv` path in
//! [`crate::verify`], which stays the parser of record and reports all errors.
//! It depends on [`crate::parsed`] only; the differential check against the
//! parser of record lives in `canonical_agreement`.
//!
//! A value is recognized only when all of this holds:
//! - it is one field line holding one dictionary member, split on the
//!   delimiters the canonical form must have;
//! - every piece passes the validators the `sfv` path applies to the same
//!   piece: `sfv`'s own key and string types, [`Component::parse`],
//!   coverage, [`KeyId::new`], [`Nonce::new`], the fixed `tag` and `alg`;
//! - serializing the pieces again gives the received bytes exactly.
//!
//! By RFC 9651, parsing the canonical serialization of some values yields
//! those values, so whenever the shortcut returns a signature, the `sfv` path
//! returns the same one. The cursor below is already strict enough that the
//! final comparison never rejects anything on its own today; it is the
//! backstop that keeps a looser cursor from changing any outcome. Unit tests,
//! a property test over edited headers and the `parse_headers` fuzz target
//! check the agreement.

use sfv::KeyRef;

use crate::component::{
    check_coverage, Component, CONTENT_DIGEST_FIELD, MANDATORY, MAX_COMPONENTS,
};
use crate::key::KeyId;
use crate::nonce::Nonce;
use crate::params::Param;
use crate::parsed::{
    ComponentList, ParamOrder, ParsedSignature, SignatureParts, MAX_SIGNATURE_HEADER_LEN,
};
use crate::sf::MAX_ITEMS;
use crate::TAG;

/// The signature in `input` (one `Signature-Input` line) and `signature`
/// (one `Signature` line), if both are in canonical tessera-v1 form and
/// valid; `None` sends the caller to the `sfv` path.
pub(crate) fn recognize(input: &[u8], signature: &[u8]) -> Option<ParsedSignature> {
    if input.len() > MAX_SIGNATURE_HEADER_LEN {
        return None;
    }
    // Every byte of the canonical form is printable ASCII other than `\\`
    // (strings that need escapes are not canonical here): checked once for
    // the whole value, in one pass the compiler vectorizes, so the cursor
    // below only searches for delimiters instead of testing every byte.
    if !printable_without_backslash(input) {
        return None;
    }
    let input = std::str::from_utf8(input).ok()?;
    let mut cursor = Cursor { input, at: 0 };
    let label = cursor.until(b'=')?;
    KeyRef::from_str(label).ok()?;
    cursor.expect(b'(')?;

    let mut components = ComponentList::new();
    // Every signer starts the list with the floor in this order: when the
    // bytes are exactly those five canonical strings, they are the five
    // components `Component::parse` would return for them, without scanning
    // and matching each name on its own.
    let mut more = true;
    let floor_first = cursor.rest().starts_with(FLOOR_ITEMS);
    if floor_first {
        cursor.at += FLOOR_ITEMS.len();
        components.extend(MANDATORY.iter().cloned());
        more = match cursor.next()? {
            b' ' => true,
            b')' => false,
            _ => return None,
        };
    }
    while more {
        if components.len() == MAX_ITEMS {
            return None;
        }
        components.push(Component::parse(cursor.string()?).ok()?);
        match cursor.next()? {
            b' ' => continue,
            b')' => more = false,
            _ => return None,
        }
    }
    let covered = if floor_first {
        extras_cover_nothing_twice(&components[MANDATORY.len()..])
            && components.len() <= MAX_COMPONENTS
    } else {
        check_coverage(&components).is_ok()
    };
    if !covered {
        return None;
    }

    let (mut created, mut expires, mut keyid, mut nonce, mut tagged) =
        (None, None, None, None, false);
    let mut order = ParamOrder::new();
    while !cursor.done() {
        cursor.expect(b';')?;
        let param = Param::from_key(cursor.until(b'=')?)?;
        if order.contains(&param) {
            return None;
        }
        match param {
            Param::Created => created = Some(cursor.integer()?),
            Param::Expires => expires = Some(cursor.integer()?),
            Param::KeyId => keyid = Some(KeyId::new_if_valid(cursor.string()?)?),
            Param::Nonce => nonce = Some(Nonce::new_if_valid(cursor.string()?)?),
            Param::Tag => tagged = cursor.string()? == TAG,
            Param::Alg => {
                if cursor.string()? != "hmac-sha256" {
                    return None;
                }
            }
        }
        order.push(param);
    }
    let created = created?;
    if !tagged || expires.is_some_and(|e| e <= created) {
        return None;
    }

    // Every token above was read by a cursor that accepts only the
    // canonical serialization (strings without escapes, integers without
    // leading zeros, single spaces, nothing after the last parameter), so
    // the received parameters are the serialization of what was parsed:
    // they are kept as they are rather than written again.
    let params = input.get(label.len() + 1..)?;
    Some(ParsedSignature::from_canonical(
        SignatureParts {
            label,
            components,
            order,
            created,
            expires,
            keyid: keyid?,
            nonce: nonce?,
            mac: mac(signature, label)?,
        },
        params,
    ))
}

/// What [`check_coverage`] accepts of a list that starts with the five
/// members of [`MANDATORY`], each once, followed by `extras`: no extra is
/// a member of the floor or equal to an earlier extra (the length limit is
/// checked apart). Anything else goes to the `sfv` path, which reports it.
fn extras_cover_nothing_twice(extras: &[Component]) -> bool {
    extras.iter().enumerate().all(|(i, c)| match c {
        Component::Field(name) => {
            *name.header_name() != CONTENT_DIGEST_FIELD && !extras[..i].contains(c)
        }
        Component::Method | Component::Authority | Component::Path | Component::Query => false,
    })
}

/// The canonical serialization of [`MANDATORY`] as the first items of an inner list.
const FLOOR_ITEMS: &str = "\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\"";

/// A position in a header value; every method returns `None` where the
/// canonical form does not continue as it expects.
struct Cursor<'a> {
    input: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.at == self.input.len()
    }

    /// The input not consumed yet.
    fn rest(&self) -> &'a str {
        self.input.get(self.at..).unwrap_or("")
    }

    fn next(&mut self) -> Option<u8> {
        let byte = *self.input.as_bytes().get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// The text up to `end` (consumed, not returned). [`recognize`] has
    /// already checked that the whole value is printable ASCII without
    /// `\\`, which no canonical key or unescaped string holds.
    fn until(&mut self, end: u8) -> Option<&'a str> {
        let start = self.at;
        let len = self
            .input
            .as_bytes()
            .get(start..)?
            .iter()
            .position(|&b| b == end)?;
        self.at = start + len + 1;
        self.text(start, start + len)
    }

    /// An sf-string that needs no escaping: `"…"` holding printable ASCII
    /// other than `"` and `\`.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.until(b'"')
    }

    /// A non-negative sf-integer in canonical form: 1 to 15 digits, no
    /// leading zero, ending the value or followed by `;`. The value is
    /// accumulated as the digits are read (15 digits cannot overflow).
    fn integer(&mut self) -> Option<u64> {
        let bytes = self.input.as_bytes();
        let start = self.at;
        let mut value = 0u64;
        while let Some(&digit) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            if self.at - start == 15 {
                return None;
            }
            value = value * 10 + u64::from(digit - b'0');
            self.at += 1;
        }
        let leading_zero = self.at - start > 1 && bytes.get(start) == Some(&b'0');
        (self.at > start && !leading_zero).then_some(value)
    }

    fn text(&self, start: usize, end: usize) -> Option<&'a str> {
        self.input.get(start..end)
    }
}

/// True when every byte is printable ASCII (`' '..='~'`) other than `\\`.
///
/// No early exit: a branch-free pass over a few hundred bytes costs less
/// than a test per byte with a branch each.
fn printable_without_backslash(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & (b' '..=b'~').contains(&b) & (b != b'\\')
    })
}

/// The 32-byte MAC from a `Signature` line that is exactly `label=:<base64>:`,
/// the base64 in canonical padded form.
fn mac(signature: &[u8], label: &str) -> Option<[u8; 32]> {
    let encoded = signature
        .strip_prefix(label.as_bytes())?
        .strip_prefix(b"=:")?
        .strip_suffix(b":")?;
    if encoded.len() != 44 {
        return None;
    }
    decode_mac(encoded)
}

/// Values of the standard base64 alphabet; `0xff` for every other byte.
const BASE64_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// 44 characters of canonical padded standard base64 (43 of the alphabet,
/// then `=`, the last character's two unused bits zero) as 32 bytes.
///
/// Accepts exactly what the `base64` crate's strict `STANDARD` engine
/// (canonical padding, no trailing bits) decodes to 32 bytes from 44
/// characters, with the same result (a unit test compares the two): a
/// subset of what the sfv path's lenient decoder accepts, with the same
/// bytes. Written out because the generic decoder costs more than the rest
/// of the shortcut's parsing of `Signature`.
fn decode_mac(encoded: &[u8]) -> Option<[u8; 32]> {
    let (quads, &[c0, c1, c2, b'=']) = encoded.split_last_chunk::<4>()? else {
        return None;
    };
    if quads.len() != 40 {
        return None;
    }
    let mut out = [0u8; 32];
    // Any byte outside the alphabet sets the high bit of `invalid`.
    let mut invalid = 0u8;
    for (chunk, bytes) in quads.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let mut word = 0u32;
        for &c in chunk {
            let v = BASE64_VALUES[usize::from(c)];
            invalid |= v;
            word = word << 6 | u32::from(v & 0x3f);
        }
        bytes.copy_from_slice(&word.to_be_bytes()[1..]);
    }
    let (v0, v1, v2) = (
        BASE64_VALUES[usize::from(c0)],
        BASE64_VALUES[usize::from(c1)],
        BASE64_VALUES[usize::from(c2)],
    );
    invalid |= v0 | v1 | v2;
    // The last character's two low bits encode nothing and must be zero.
    if invalid & 0x80 != 0 || v2 & 0x03 != 0 {
        return None;
    }
    let word = u32::from(v0) << 12 | u32::from(v1) << 6 | u32::from(v2);
    out[30] = (word >> 10) as u8;
    out[31] = (word >> 2) as u8;
    Some(out)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    /// The strict decoder this module used before `decode_mac`.
    fn reference(encoded: &[u8]) -> Option<[u8; 32]> {
        let mut mac = [0u8; 33];
        match base64::engine::general_purpose::STANDARD.decode_slice(encoded, &mut mac) {
            Ok(32) => <[u8; 32]>::try_from(&mac[..32]).ok(),
            _ => None,
        }
    }

    #[test]
    fn decode_mac_agrees_with_the_strict_base64_engine() {
        let macs: [[u8; 32]; 4] = [
            [0; 32],
            [0xff; 32],
            std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11)),
            std::array::from_fn(|i| 255 - (i as u8).wrapping_mul(91)),
        ];
        let mut checked = 0;
        for mac in macs {
            let encoded = base64::engine::general_purpose::STANDARD.encode(mac);
            assert_eq!(encoded.len(), 44);
            assert_eq!(decode_mac(encoded.as_bytes()), Some(mac));
            // Every single-byte edit, at every position.
            for at in 0..44 {
                for byte in 0..=255u8 {
                    let mut edited = encoded.clone().into_bytes();
                    edited[at] = byte;
                    assert_eq!(decode_mac(&edited), reference(&edited), "{at} {byte}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4 * 44 * 256);
        for bad in [&b""[..], b"=", &[b'A'; 43], &[b'A'; 45], &[b'A'; 44]] {
            assert_eq!(decode_mac(bad), reference(bad));
        }
    }

    #[test]
    fn extras_after_the_floor_are_checked_as_check_coverage_checks_them() {
        let names = [
            "content-type",
            "user-agent",
            "content-digest",
            "@method",
            "@authority",
            "@path",
            "@query",
            "x-request-id",
        ];
        let parsed: Vec<Component> = names
            .iter()
            .map(|n| Component::parse(n).expect("component"))
            .collect();
        let mut lists: Vec<Vec<Component>> = vec![vec![]];
        for a in &parsed {
            lists.push(vec![a.clone()]);
            for b in &parsed {
                lists.push(vec![a.clone(), b.clone()]);
                for c in &parsed {
                    lists.push(vec![a.clone(), b.clone(), c.clone()]);
                }
            }
        }
        for extras in lists {
            let mut all: Vec<Component> = MANDATORY.to_vec();
            all.extend(extras.iter().cloned());
            assert_eq!(
                extras_cover_nothing_twice(&extras) && all.len() <= MAX_COMPONENTS,
                check_coverage(&all).is_ok(),
                "{extras:?}"
            );
        }
    }

    #[test]
    fn floor_items_are_the_mandatory_components_in_canonical_form() {
        let serialized: Vec<String> = MANDATORY
            .iter()
            .map(|c| format!("\"{}\"", c.name()))
            .collect();
        assert_eq!(serialized.join(" "), FLOOR_ITEMS);
        for component in &MANDATORY {
            assert_eq!(
                Component::parse(component.name()).ok().as_ref(),
                Some(component)
            );
        }
    }
}
