//! RFC 9530 `Content-Digest` with `sha-256`, covered on every request.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{err, ErrorCode, Result};
use crate::sf::ByteMember;

/// `Content-Digest` of the empty body; a constant, so bodiless requests hash nothing.
pub const EMPTY_BODY_CONTENT_DIGEST: &str =
    "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";

const HEADER_VALUE_PREFIX: &[u8] = b"sha-256=:";
/// The prefix, 44 base64 characters for 32 bytes, and the closing `:`.
const HEADER_VALUE_LEN: usize = 9 + 44 + 1;

const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The SHA-256 digest of a request body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BodyDigest([u8; 32]);

impl BodyDigest {
    /// The digest of the empty body.
    pub const EMPTY: BodyDigest = BodyDigest(EMPTY_SHA256);

    /// Hashes a whole body.
    pub fn of(body: &[u8]) -> Self {
        if body.is_empty() {
            return BodyDigest::EMPTY;
        }
        BodyDigest(Sha256::digest(body).into())
    }

    /// Wraps a digest computed elsewhere (for example while streaming a large body).
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        BodyDigest(digest)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `Content-Digest` field value, `sha-256=:<base64>:`.
    pub fn header_value(&self) -> Cow<'static, str> {
        if self.0 == EMPTY_SHA256 {
            return Cow::Borrowed(EMPTY_BODY_CONTENT_DIGEST);
        }
        Cow::Owned(
            self.encode_header_value()
                .iter()
                .map(|&b| char::from(b))
                .collect(),
        )
    }

    /// Whether `value` is exactly [`BodyDigest::header_value`], without allocating.
    pub fn is_header_value(&self, value: &[u8]) -> bool {
        if self.0 == EMPTY_SHA256 {
            return value == EMPTY_BODY_CONTENT_DIGEST.as_bytes();
        }
        value == self.encode_header_value()
    }

    /// The canonical RFC 9651 dictionary `sha-256=:<base64>:` (standard
    /// alphabet, padded), as a structured-field serializer writes it.
    fn encode_header_value(&self) -> [u8; HEADER_VALUE_LEN] {
        let mut out = [0u8; HEADER_VALUE_LEN];
        out[..HEADER_VALUE_PREFIX.len()].copy_from_slice(HEADER_VALUE_PREFIX);
        let written = STANDARD.encode_slice(self.0, &mut out[HEADER_VALUE_PREFIX.len()..]);
        debug_assert_eq!(written.ok(), Some(44), "32 bytes are 44 base64 characters");
        out[HEADER_VALUE_LEN - 1] = b':';
        out
    }

    /// Parses a `Content-Digest` field value and returns its `sha-256` member.
    ///
    /// # Errors
    /// `digest_mismatch` when the value is not a dictionary or lacks a
    /// 32-byte `sha-256` member.
    pub fn parse_header(value: &[u8]) -> Result<Self> {
        match crate::sf::parse_byte_member(value, "sha-256") {
            Ok(ByteMember::Bytes(d)) => Ok(BodyDigest(d)),
            Ok(ByteMember::WrongShape) => err(
                ErrorCode::DigestMismatch,
                "Content-Digest sha-256 is not a 32-byte byte sequence",
            ),
            Ok(ByteMember::Absent) => err(
                ErrorCode::DigestMismatch,
                "Content-Digest has no sha-256 member",
            ),
            Err(_) => err(
                ErrorCode::DigestMismatch,
                "Content-Digest is not a valid dictionary",
            ),
        }
    }
}

/// Hashes a body incrementally, for verifiers that stream it.
#[derive(Clone, Default, Debug)]
pub struct BodyHasher(Sha256);

impl BodyHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        BodyHasher(Sha256::new())
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> BodyDigest {
        BodyDigest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_constant_matches_sha256() {
        assert_eq!(BodyDigest(Sha256::digest(b"").into()), BodyDigest::EMPTY);
        let mut h = BodyHasher::new();
        h.update(b"");
        assert_eq!(h.finish().header_value(), EMPTY_BODY_CONTENT_DIGEST);
    }

    #[test]
    fn header_round_trip() {
        // RFC 9530 §2 example: {"hello": "world"}
        let d = BodyDigest::of(b"{\"hello\": \"world\"}");
        assert_eq!(
            d.header_value(),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        assert_eq!(BodyDigest::parse_header(d.header_value().as_bytes()), Ok(d));
        assert!(d.is_header_value(d.header_value().as_bytes()));
        assert!(!d.is_header_value(b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=: "));
        assert!(BodyDigest::EMPTY.is_header_value(EMPTY_BODY_CONTENT_DIGEST.as_bytes()));
        assert!(!BodyDigest::EMPTY.is_header_value(d.header_value().as_bytes()));
        // The canonical form matches what the sfv serializer writes.
        let mut sfv_form = String::new();
        let mut dict = sfv::DictSerializer::with_buffer(&mut sfv_form);
        dict.bare_item(sfv::key_ref("sha-256"), &d.as_bytes()[..]);
        let _ = dict.finish();
        assert_eq!(d.header_value(), sfv_form);
        assert_eq!(
            BodyDigest::parse_header(b"sha-512=:AAAA:").map_err(|e| e.code()),
            Err(ErrorCode::DigestMismatch)
        );
    }
}
