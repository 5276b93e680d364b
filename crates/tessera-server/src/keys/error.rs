//! Why a key could not be issued or derived: configuration and input
//! errors, kept apart from verification results.

/// A key could not be issued, derived or described.
///
/// These are mistakes in what the application asked for (an empty owner, a
/// scope the derived id format cannot hold, a short master secret), never the
/// outcome of verifying a request, so they carry no tessera-v1 error code of
/// their own. [`KeyError::source`](std::error::Error::source) gives the
/// tessera-core error behind [`KeyError::Core`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key request names no owner.
    #[error("the owner must not be empty")]
    EmptyOwner,
    /// A field does not fit the derived key id format; the message says what is expected.
    #[error("invalid derived key id: {0}")]
    InvalidField(String),
    /// A derivation master secret is shorter than 32 bytes.
    #[error("a derivation master secret must be at least 32 bytes, got {0}")]
    MasterTooShort(usize),
    /// tessera-core refused the key id or the secret, or the random source failed.
    #[error("cannot make the key")]
    Core(#[source] tessera_core::Error),
}

impl From<tessera_core::Error> for KeyError {
    fn from(error: tessera_core::Error) -> Self {
        KeyError::Core(error)
    }
}
