//! The profile's stable error codes and the error type that carries them.

use std::fmt;

/// A stable tessera-v1 error code, as defined in `spec/tessera-v1.md` §7.
///
/// The string form ([`ErrorCode::as_str`]) is part of the wire contract: it
/// appears in `application/problem+json` responses and never changes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No `tag="tessera-v1"` signature was found on the request.
    MissingSignature,
    /// `Signature` or `Signature-Input` is not a valid structured field or breaks the profile's shape.
    MalformedSignature,
    /// A required signature parameter (`created`, `keyid`, `nonce`) is absent.
    MissingParameter,
    /// A signature parameter has the right type but a value the profile forbids.
    InvalidParameter,
    /// The `alg` parameter names an algorithm other than `hmac-sha256`.
    AlgorithmMismatch,
    /// A mandatory component is not covered, or a covered field is absent from the request.
    MissingComponent,
    /// A component the profile forbids is covered.
    ForbiddenComponent,
    /// The same component is covered twice.
    DuplicateComponent,
    /// A component value contains CR, LF, NUL or another forbidden byte.
    InvalidFieldValue,
    /// The key id is not known to the verifier.
    UnknownKey,
    /// The key has been revoked.
    KeyRevoked,
    /// The key is past its `not_after` time.
    KeyExpired,
    /// The key is before its `not_before` time.
    KeyNotYetValid,
    /// `created` lies outside the acceptance window, in the past or the future.
    ClockSkew,
    /// The signature's `expires` time has passed.
    SignatureExpired,
    /// The request's authority is not one the verifier serves.
    AuthorityMismatch,
    /// The body is larger than the verifier accepts.
    BodyTooLarge,
    /// `Content-Digest` does not match the body that was received.
    DigestMismatch,
    /// The MAC does not match the signature base.
    BadSignature,
    /// The (key id, nonce) pair was already used within the window.
    Replayed,
    /// The nonce store could not answer; the request is refused (fail closed).
    StoreUnavailable,
    /// The key lacks a scope the route requires.
    InsufficientScope,
}

impl ErrorCode {
    /// Every code, in the order of the specification's table.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::MissingSignature,
        ErrorCode::MalformedSignature,
        ErrorCode::MissingParameter,
        ErrorCode::InvalidParameter,
        ErrorCode::AlgorithmMismatch,
        ErrorCode::MissingComponent,
        ErrorCode::ForbiddenComponent,
        ErrorCode::DuplicateComponent,
        ErrorCode::InvalidFieldValue,
        ErrorCode::UnknownKey,
        ErrorCode::KeyRevoked,
        ErrorCode::KeyExpired,
        ErrorCode::KeyNotYetValid,
        ErrorCode::ClockSkew,
        ErrorCode::SignatureExpired,
        ErrorCode::AuthorityMismatch,
        ErrorCode::BodyTooLarge,
        ErrorCode::DigestMismatch,
        ErrorCode::BadSignature,
        ErrorCode::Replayed,
        ErrorCode::StoreUnavailable,
        ErrorCode::InsufficientScope,
    ];

    /// The stable snake_case string used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingSignature => "missing_signature",
            ErrorCode::MalformedSignature => "malformed_signature",
            ErrorCode::MissingParameter => "missing_parameter",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::AlgorithmMismatch => "algorithm_mismatch",
            ErrorCode::MissingComponent => "missing_component",
            ErrorCode::ForbiddenComponent => "forbidden_component",
            ErrorCode::DuplicateComponent => "duplicate_component",
            ErrorCode::InvalidFieldValue => "invalid_field_value",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::KeyRevoked => "key_revoked",
            ErrorCode::KeyExpired => "key_expired",
            ErrorCode::KeyNotYetValid => "key_not_yet_valid",
            ErrorCode::ClockSkew => "clock_skew",
            ErrorCode::SignatureExpired => "signature_expired",
            ErrorCode::AuthorityMismatch => "authority_mismatch",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::DigestMismatch => "digest_mismatch",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::Replayed => "replayed",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::InsufficientScope => "insufficient_scope",
        }
    }

    /// The HTTP status a verifier answers with for this code.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedSignature
            | ErrorCode::MissingParameter
            | ErrorCode::InvalidParameter
            | ErrorCode::AlgorithmMismatch
            | ErrorCode::MissingComponent
            | ErrorCode::ForbiddenComponent
            | ErrorCode::DuplicateComponent
            | ErrorCode::InvalidFieldValue => 400,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::StoreUnavailable => 503,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::MissingSignature
            | ErrorCode::UnknownKey
            | ErrorCode::KeyRevoked
            | ErrorCode::KeyExpired
            | ErrorCode::KeyNotYetValid
            | ErrorCode::ClockSkew
            | ErrorCode::SignatureExpired
            | ErrorCode::AuthorityMismatch
            | ErrorCode::DigestMismatch
            | ErrorCode::BadSignature
            | ErrorCode::Replayed => 401,
        }
    }

    /// A short fixed English title for problem responses.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::MissingSignature => "Request is not signed",
            ErrorCode::MalformedSignature => "Signature headers are malformed",
            ErrorCode::MissingParameter => "A required signature parameter is missing",
            ErrorCode::InvalidParameter => "A signature parameter has an invalid value",
            ErrorCode::AlgorithmMismatch => "Unsupported signature algorithm",
            ErrorCode::MissingComponent => "A required component is not covered or absent",
            ErrorCode::ForbiddenComponent => "A forbidden component is covered",
            ErrorCode::DuplicateComponent => "A component is covered twice",
            ErrorCode::InvalidFieldValue => "A component value contains forbidden characters",
            ErrorCode::UnknownKey => "Unknown key",
            ErrorCode::KeyRevoked => "Key revoked",
            ErrorCode::KeyExpired => "Key expired",
            ErrorCode::KeyNotYetValid => "Key not yet valid",
            ErrorCode::ClockSkew => "Request time outside the acceptance window",
            ErrorCode::SignatureExpired => "Signature expired",
            ErrorCode::AuthorityMismatch => "Request authority is not served here",
            ErrorCode::BodyTooLarge => "Request body too large",
            ErrorCode::DigestMismatch => "Content-Digest does not match the body",
            ErrorCode::BadSignature => "Signature does not match",
            ErrorCode::Replayed => "Request replayed",
            ErrorCode::StoreUnavailable => "Replay protection unavailable",
            ErrorCode::InsufficientScope => "Key lacks the required scope",
        }
    }

    /// Parses a wire code string back into an [`ErrorCode`].
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable [`ErrorCode`] and a human-readable detail.
///
/// The detail names the offending component or parameter but never contains
/// key material, MACs or signature bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    detail: String,
}

impl Error {
    /// Creates an error from a code and a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error {
            code,
            detail: detail.into(),
        }
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable detail (contains no secret material).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results carrying a tessera [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn err<T>(code: ErrorCode, detail: impl Into<String>) -> Result<T> {
    Err(Error::new(code, detail))
}
