//! Who computes the MAC: a key prepared in Rust ([`SigningKey`]) or a key
//! the platform holds (Android Keystore, iOS Keychain), behind one trait.
//!
//! The signer builds the signature base the same way for both; only the
//! last step, HMAC-SHA256 over the base, differs. A [`SigningKey`] streams
//! the base straight into its prepared HMAC state (no buffer); any other
//! [`MacKey`] gets the whole base as one buffer, because a platform API
//! (`javax.crypto.Mac.doFinal`, CryptoKit's `HMAC.authenticationCode`) takes
//! the message whole.

use std::fmt;

use hmac::Mac;

use crate::key::{KeyId, SigningKey};

/// Length of an HMAC-SHA256 tag, bytes.
pub const MAC_LEN: usize = 32;

/// A key that computes HMAC-SHA256 tags under one key id.
///
/// Implemented by [`SigningKey`] (the secret prepared in Rust) and by keys
/// whose secret never leaves the platform's key store: the bindings'
/// `MacProvider` (`tessera-ffi`) hands the message to
/// `javax.crypto.Mac`/CryptoKit and checks the tag's length. The signer
/// ([`crate::sign_with_key`], `tessera_client::Signer`) and the client's
/// server-time check ([`crate::challenge::verify_server_time_with`]) take
/// any `MacKey`, so both kinds of key go through the same signing code.
pub trait MacKey: Send + Sync + fmt::Debug {
    /// The key id signatures made with this key name.
    fn key_id(&self) -> &KeyId;

    /// The HMAC-SHA256 tag of `message` under this key.
    ///
    /// The message is passed by value: a platform key sends it across an
    /// FFI boundary, which needs an owned buffer, so handing over the one
    /// the signer built saves a copy.
    ///
    /// # Errors
    /// [`MacError`] when the platform cannot compute the tag (the key was
    /// deleted, the device is locked, the key store failed) or returns a
    /// tag that is not 32 bytes. A [`SigningKey`] never fails.
    fn tag(&self, message: Vec<u8>) -> Result<[u8; MAC_LEN], MacError>;

    /// The prepared in-Rust key behind this `MacKey`, if there is one.
    ///
    /// The signer then streams the base into the prepared HMAC instead of
    /// buffering it and calling [`MacKey::tag`]; the result is the same.
    /// Platform keys keep the default, `None`.
    fn prepared(&self) -> Option<&SigningKey> {
        None
    }
}

impl MacKey for SigningKey {
    fn key_id(&self) -> &KeyId {
        SigningKey::key_id(self)
    }

    fn tag(&self, message: Vec<u8>) -> Result<[u8; MAC_LEN], MacError> {
        let mut mac = SigningKey::mac(self);
        mac.update(&message);
        Ok(mac.finalize().into_bytes().into())
    }

    fn prepared(&self) -> Option<&SigningKey> {
        Some(self)
    }
}

/// Why a [`MacKey`] produced no tag. Nothing was signed or sent.
///
/// The messages carry no key material and no message bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacError {
    /// The platform failed to compute the MAC; `reason` is its message.
    Failed {
        /// What the platform reported (an exception's text), safe to log.
        reason: String,
    },
    /// The platform returned a tag of `len` bytes instead of 32.
    WrongLength {
        /// The length returned.
        len: usize,
    },
}

impl MacError {
    /// Converts a platform's tag to the 32 bytes of an HMAC-SHA256 tag.
    ///
    /// # Errors
    /// [`MacError::WrongLength`] when `tag` is not 32 bytes long.
    pub fn check_len(tag: &[u8]) -> Result<[u8; MAC_LEN], MacError> {
        tag.try_into()
            .map_err(|_| MacError::WrongLength { len: tag.len() })
    }

    /// A stable short name for the failure: `mac_provider_failed` or
    /// `mac_wrong_length`. These are local codes of the client, never
    /// sent by a server (they are not tessera-v1 wire codes).
    pub fn code(&self) -> &'static str {
        match self {
            MacError::Failed { .. } => "mac_provider_failed",
            MacError::WrongLength { .. } => "mac_wrong_length",
        }
    }
}

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacError::Failed { reason } => {
                write!(f, "the MAC provider failed: {reason}")
            }
            MacError::WrongLength { len } => write!(
                f,
                "the MAC provider returned {len} bytes; an HMAC-SHA256 tag is {MAC_LEN}"
            ),
        }
    }
}

impl std::error::Error for MacError {}

/// Why [`crate::sign_with_key`] or
/// [`crate::challenge::verify_server_time_with`] failed: the request or
/// challenge was refused, or the key could not compute the MAC.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The inputs were refused, with a tessera-v1 code (as [`crate::sign`]).
    Refused(crate::Error),
    /// The [`MacKey`] produced no tag.
    Mac(MacError),
}

impl From<crate::Error> for SignError {
    fn from(e: crate::Error) -> Self {
        SignError::Refused(e)
    }
}

impl From<MacError> for SignError {
    fn from(e: MacError) -> Self {
        SignError::Mac(e)
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Refused(e) => e.fmt(f),
            SignError::Mac(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignError::Refused(e) => Some(e),
            SignError::Mac(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SecretKey;

    #[test]
    fn signing_key_mac_is_hmac_sha256() {
        let secret = [9u8; 32];
        let key = SigningKey::new(
            KeyId::new("k").expect("id"),
            &SecretKey::from_bytes(&secret).expect("secret"),
        );
        assert_eq!(
            key.tag(b"message".to_vec()),
            Ok(crate::rfc9421::hmac_sha256(&secret, b"message"))
        );
        assert!(key.prepared().is_some());
    }

    #[test]
    fn tag_length_is_checked() {
        assert_eq!(
            MacError::check_len(&[0; 31]),
            Err(MacError::WrongLength { len: 31 })
        );
        assert_eq!(MacError::check_len(&[1; 32]), Ok([1; 32]));
        assert_eq!(
            MacError::WrongLength { len: 20 }.to_string(),
            "the MAC provider returned 20 bytes; an HMAC-SHA256 tag is 32"
        );
    }

    /// A key computed "elsewhere": the same secret, without the prepared fast path.
    #[derive(Debug)]
    struct Platform(SigningKey);

    impl MacKey for Platform {
        fn key_id(&self) -> &KeyId {
            self.0.key_id()
        }
        fn tag(&self, message: Vec<u8>) -> Result<[u8; MAC_LEN], MacError> {
            self.0.tag(message)
        }
    }

    #[derive(Debug)]
    struct Failing(KeyId);

    impl MacKey for Failing {
        fn key_id(&self) -> &KeyId {
            &self.0
        }
        fn tag(&self, _: Vec<u8>) -> Result<[u8; MAC_LEN], MacError> {
            Err(MacError::Failed {
                reason: "key store locked".into(),
            })
        }
    }

    fn key() -> SigningKey {
        SigningKey::new(
            KeyId::new("k1").expect("id"),
            &SecretKey::from_bytes(&[3; 32]).expect("secret"),
        )
    }

    #[test]
    fn platform_path_gives_the_same_headers_and_checks_challenges() {
        use crate::challenge::{server_time_header, verify_server_time_with};
        use crate::{sign, sign_with_key, BodyDigest, Component, Nonce, RequestView, Scheme};
        let headers = [("content-type", "application/json")];
        let view = RequestView::new(
            "POST",
            Scheme::Https,
            "api.example.com",
            "/v1/orders",
            Some("?dry_run=1"),
            &headers[..],
        )
        .expect("view");
        let nonce = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").expect("nonce");
        let cover = [Component::field("content-type").expect("field")];
        let opts = crate::SignOptions::new(1_700_000_000, &nonce)
            .with_expires(Some(1_700_000_060))
            .cover(&cover);
        let body = BodyDigest::of(b"{}");
        let direct = sign(&key(), &view, &body, &opts).expect("sign");
        let platform = Platform(key());
        assert_eq!(
            sign_with_key(&platform, &view, &body, &opts).expect("sign"),
            direct
        );
        assert_eq!(sign_with_key(&key(), &view, &body, &opts), Ok(direct));
        let failing = Failing(KeyId::new("k1").expect("id"));
        assert!(matches!(
            sign_with_key(&failing, &view, &body, &opts),
            Err(SignError::Mac(MacError::Failed { .. }))
        ));
        // Refused inputs are refused before the key is asked.
        let bad = crate::SignOptions::new(10, &nonce).with_expires(Some(5));
        assert!(matches!(
            sign_with_key(&failing, &view, &body, &bad),
            Err(SignError::Refused(e)) if e.code() == crate::ErrorCode::InvalidParameter
        ));

        let header = server_time_header(&key(), &nonce, 1_700_000_123);
        assert_eq!(
            verify_server_time_with(header.as_bytes(), &platform, &nonce),
            Ok(1_700_000_123)
        );
        let forged = header.replace("time=1700000123", "time=1600000000");
        assert!(matches!(
            verify_server_time_with(forged.as_bytes(), &platform, &nonce),
            Err(SignError::Refused(e)) if e.code() == crate::ErrorCode::BadSignature
        ));
        let other = SigningKey::new(
            KeyId::new("k1").expect("id"),
            &SecretKey::from_bytes(&[4; 32]).expect("secret"),
        );
        assert!(matches!(
            verify_server_time_with(header.as_bytes(), &Platform(other), &nonce),
            Err(SignError::Refused(e)) if e.code() == crate::ErrorCode::BadSignature
        ));
        assert!(matches!(
            verify_server_time_with(header.as_bytes(), &failing, &nonce),
            Err(SignError::Mac(_))
        ));
    }
}
