//! Request nonces: at least 128 random bits, base64url without padding.

use std::fmt;

use arrayvec::ArrayString;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{err, ErrorCode, Result};
use crate::inline::inline_str;

/// Shortest nonce accepted, in characters (16 bytes of base64url).
pub const MIN_NONCE_LEN: usize = 22;
/// Longest nonce accepted, in characters.
pub const MAX_NONCE_LEN: usize = 64;

/// A validated nonce: 22 to 64 characters of the base64url alphabet.
///
/// Stored inline, so generating or parsing one allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nonce(ArrayString<MAX_NONCE_LEN>);

/// Random bytes in a generated nonce (128 bits).
const GENERATED_NONCE_BYTES: usize = 16;
/// Their unpadded base64url length.
const GENERATED_NONCE_LEN: usize = 22;

impl Nonce {
    /// Validates and wraps a nonce string.
    ///
    /// # Errors
    /// `invalid_parameter` when the length or alphabet is wrong.
    pub fn new(nonce: impl AsRef<str>) -> Result<Self> {
        let nonce = nonce.as_ref();
        validate_nonce(nonce)?;
        match inline_str(nonce) {
            Some(inline) => Ok(Nonce(inline)),
            None => err(ErrorCode::InvalidParameter, "nonce is too long"),
        }
    }

    /// [`Nonce::new`] for a caller that does not need the error (the
    /// canonical-form shortcut, which leaves reporting to the `sfv` path):
    /// the same rules, answered as an `Option` so the value is returned
    /// without a `Result` to unwrap on the way.
    #[inline]
    pub(crate) fn new_if_valid(nonce: &str) -> Option<Self> {
        validate_nonce(nonce).ok()?;
        inline_str(nonce).map(Nonce)
    }

    /// Draws 16 bytes from `rng` and encodes them as a 22-character nonce.
    ///
    /// Pass a cryptographically secure generator seeded from the OS (for
    /// example `rand::rngs::ThreadRng`); the core never picks one itself.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; GENERATED_NONCE_BYTES];
        rng.fill_bytes(&mut bytes);
        let mut text = [0u8; GENERATED_NONCE_LEN];
        let encoded = URL_SAFE_NO_PAD.encode_slice(bytes, &mut text);
        match (
            encoded,
            std::str::from_utf8(&text).ok().and_then(inline_str),
        ) {
            (Ok(GENERATED_NONCE_LEN), Some(inline)) => Nonce(inline),
            _ => unreachable_nonce_encoding(),
        }
    }

    /// The nonce text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cold]
fn unreachable_nonce_encoding() -> ! {
    // 16 bytes are always 22 base64url (ASCII) characters, and 22 fit in 64.
    panic!("base64url encoding of a 16-byte nonce did not produce 22 characters")
}

pub(crate) fn validate_nonce(nonce: &str) -> Result<()> {
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len()) {
        return err(
            ErrorCode::InvalidParameter,
            format!("nonce must be {MIN_NONCE_LEN} to {MAX_NONCE_LEN} characters"),
        );
    }
    // Branch-free so it vectorizes; every byte is checked either way.
    let base64url = nonce.bytes().fold(true, |ok, b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
    });
    if !base64url {
        return err(
            ErrorCode::InvalidParameter,
            "nonce must use the base64url alphabet without padding",
        );
    }
    Ok(())
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Nonce").field(&self.0).finish()
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_nonces_validate_and_differ() {
        let mut rng = rand::rng();
        let a = Nonce::generate(&mut rng);
        let b = Nonce::generate(&mut rng);
        assert_eq!(a.as_str().len(), 22);
        assert!(Nonce::new(a.as_str()).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn bad_nonces_are_rejected() {
        for bad in [
            "short",
            &"a".repeat(65),
            "AAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAA+/",
        ] {
            assert_eq!(
                Nonce::new(bad).map_err(|e| e.code()),
                Err(ErrorCode::InvalidParameter)
            );
        }
    }
}
