//! The client's error type.

use tessera_core::ErrorCode;

/// Everything that can go wrong on the client side.
///
/// No variant carries key material, a MAC, a signature or a signature base:
/// the messages are safe to log.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The signer configuration is invalid (a bad key id, a forbidden covered
    /// header, an out-of-range lifetime).
    #[error("invalid signer configuration: {0}")]
    Config(#[source] ConfigError),
    /// The request could not be signed: a strictly covered header is missing
    /// (`missing_component`), a covered value contains control characters,
    /// the URL is not an absolute `http`/`https` URL or breaks the profile's
    /// rules (`invalid_field_value`).
    #[error("cannot sign the request: {0}")]
    Signing(#[source] tessera_core::Error),
    /// The body is a stream whose bytes are not known up front, and no
    /// precomputed digest was supplied. Tessera never sends such a request
    /// unsigned: buffer the body, or pass its SHA-256 with
    /// [`PrecomputedDigest`](crate::PrecomputedDigest) (middleware) or
    /// [`Signer::sign`](crate::Signer::sign).
    #[error(
        "the request body is a stream and no precomputed Content-Digest was given; \
         buffer the body or attach a PrecomputedDigest"
    )]
    StreamingBodyWithoutDigest,
    /// The response carries no `Tessera-Server-Time` challenge.
    #[error("the response has no Tessera-Server-Time challenge")]
    MissingChallenge,
    /// The `Tessera-Server-Time` challenge does not verify under this
    /// signer's key, or is bound to another key or request. Its time was
    /// not adopted.
    #[error("the Tessera-Server-Time challenge was refused: {0}")]
    InvalidChallenge(#[source] tessera_core::Error),
    /// The signer's key (a platform key, [`Signer::builder_with_key`](crate::Signer::builder_with_key))
    /// could not compute a MAC, or returned one that is not 32 bytes.
    /// Nothing was signed, so nothing can be sent; no clock was adopted.
    #[error("{0}")]
    Mac(#[source] tessera_core::MacError),
}

/// Why a signer configuration was refused.
///
/// Kept apart from [`ClientError::Signing`]: these come from the code that
/// builds the signer, never from a request. [`std::error::Error::source`]
/// gives the tessera-core error behind a refused value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The key id is not a valid tessera-v1 key id.
    #[error("the key id is invalid: {}", .0.detail())]
    KeyId(#[source] tessera_core::Error),
    /// A covered header name is refused, with the code a verifier would give
    /// the same name in a received list (not lowercase, not a field name,
    /// forbidden, mandatory already, listed twice, or too many).
    #[error("a covered header is refused: {}", .0.detail())]
    Cover(#[source] tessera_core::Error),
    /// The signature lifetime is under one second or longer than `max` seconds.
    #[error("the signature lifetime must be 1 to {max} seconds")]
    Lifetime {
        /// The longest lifetime accepted, seconds.
        max: u64,
    },
}

impl ConfigError {
    /// The tessera-v1 code the bindings report for this error: the refused
    /// value's code, or `invalid_parameter` for a lifetime.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::KeyId(e) | ConfigError::Cover(e) => e.code(),
            ConfigError::Lifetime { .. } => ErrorCode::InvalidParameter,
        }
    }

    /// A message that says what is wrong, including the refused value's detail.
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

impl ClientError {
    /// The tessera-v1 error code behind this error, where there is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Config(e) => Some(e.code()),
            ClientError::Signing(e) | ClientError::InvalidChallenge(e) => Some(e.code()),
            ClientError::StreamingBodyWithoutDigest
            | ClientError::MissingChallenge
            | ClientError::Mac(_) => None,
        }
    }
}
