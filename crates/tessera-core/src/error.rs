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
    /// `created` is older than the window, or further ahead of the clock than
    /// min(window, 2) seconds.
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
    /// The nonce store remembers pairs only from a time after the signature
    /// was created (it restarted or was emptied); sign again and resend.
    StoreReset,
    /// The key lacks a scope the route requires.
    InsufficientScope,
    /// The key (or its owner, or the client) is over its request budget; retry after `Retry-After`.
    RateLimited,
}

impl ErrorCode {
    /// Every code, in the order of the specification's table.
    pub const ALL: [ErrorCode; 24] = [
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
        ErrorCode::StoreReset,
        ErrorCode::InsufficientScope,
        ErrorCode::RateLimited,
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
            ErrorCode::StoreReset => "store_reset",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RateLimited => "rate_limited",
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
            ErrorCode::StoreUnavailable | ErrorCode::StoreReset => 503,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::RateLimited => 429,
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
            ErrorCode::StoreReset => "Replay store was reset after the request was signed",
            ErrorCode::InsufficientScope => "Key lacks the required scope",
            ErrorCode::RateLimited => "Too many requests",
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
    /// Creates an error from a code and a detail message. Crate-private:
    /// outside this crate, errors come from the profile's own checks or from
    /// a [`Refusal`], so nothing can forge, say, a `bad_signature` result.
    // Cold: built only on the refusal path, so the code that builds it is
    // placed away from the accepted path (fewer instruction cache lines
    // touched per verified request).
    #[cold]
    #[inline(never)]
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
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

/// What a verifier learned at a step that tessera-core does not perform
/// itself: from its key store, its nonce store, the body it read, or the
/// route's scope check.
///
/// A verifier states the fact; this crate turns it into the [`Error`] with
/// the profile's code and a fixed detail (`Error::from(refusal)`). Results
/// of the signature's own checks (`malformed_signature`, `clock_skew`,
/// `digest_mismatch`, `bad_signature` and the rest) can only come from
/// tessera-core's checks, never from a `Refusal`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The key store has no key with the signature's key id (`unknown_key`).
    UnknownKey,
    /// The key store marks the key revoked (`key_revoked`).
    KeyRevoked,
    /// The key's `not_after` time has passed (`key_expired`).
    KeyExpired,
    /// The key's `not_before` time has not come yet (`key_not_yet_valid`).
    KeyNotYetValid,
    /// The key store could not answer (`store_unavailable`).
    KeyStoreUnavailable,
    /// The nonce store already holds the (key id, nonce) pair (`replayed`).
    Replayed,
    /// The nonce store is at its total capacity (`store_unavailable`).
    NonceStoreFull,
    /// The key has as many live nonces as the store allows one key: it sends
    /// faster than replay protection holds for one key (`rate_limited`).
    NonceStoreKeyFull,
    /// The nonce store could not answer (`store_unavailable`).
    NonceStoreUnavailable,
    /// The rate-limit store could not answer, and the limits fail closed
    /// (`store_unavailable`): an outage, not the client's rate.
    RateLimitStoreUnavailable,
    /// The nonce store remembers pairs only from Unix second `since`, after
    /// the signature was created: it may have forgotten this one (`store_reset`).
    StoreReset {
        /// The first second the store remembers.
        since: u64,
    },
    /// The body is longer than the verifier accepts (`body_too_large`).
    BodyTooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// The body could not be read whole, so its digest cannot match (`digest_mismatch`).
    BodyUnreadable,
    /// The key lacks a scope the route requires (`insufficient_scope`).
    InsufficientScope {
        /// The missing scope.
        scope: String,
    },
    /// A route requires a scope but no verifier ran before it (`insufficient_scope`).
    NoVerifiedIdentity,
    /// A rate limit refused the request (`rate_limited`).
    RateLimited {
        /// The policy's name, as in the `RateLimit-Policy` header.
        policy: String,
        /// Whole seconds until the request would be allowed (`Retry-After`).
        retry_after: u64,
    },
}

impl Refusal {
    /// The error code this refusal is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::UnknownKey => ErrorCode::UnknownKey,
            Refusal::KeyRevoked => ErrorCode::KeyRevoked,
            Refusal::KeyExpired => ErrorCode::KeyExpired,
            Refusal::KeyNotYetValid => ErrorCode::KeyNotYetValid,
            Refusal::KeyStoreUnavailable
            | Refusal::NonceStoreFull
            | Refusal::NonceStoreUnavailable
            | Refusal::RateLimitStoreUnavailable => ErrorCode::StoreUnavailable,
            Refusal::NonceStoreKeyFull => ErrorCode::RateLimited,
            Refusal::Replayed => ErrorCode::Replayed,
            Refusal::StoreReset { .. } => ErrorCode::StoreReset,
            Refusal::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            Refusal::BodyUnreadable => ErrorCode::DigestMismatch,
            Refusal::InsufficientScope { .. } | Refusal::NoVerifiedIdentity => {
                ErrorCode::InsufficientScope
            }
            Refusal::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }
}

/// The rule of spec §14.1: a nonce store that remembers every pair only
/// from Unix second `since` refuses a signature created before it (it may
/// have recorded the pair and forgotten it).
///
/// # Errors
/// [`Refusal::StoreReset`] when `created < since`.
pub fn check_remembered(created: u64, since: u64) -> Result<(), Refusal> {
    if created < since {
        Err(Refusal::StoreReset { since })
    } else {
        Ok(())
    }
}

/// The memory point of a nonce store that starts remembering (or finds it
/// has forgotten) during Unix second `now` (spec §14.1): the first
/// `created` it can vouch for.
///
/// A request accepted before then was checked at step 4 at second `now` or
/// earlier, so its `created` is at most `now + MAX_AHEAD_SECS`; every such
/// signature lies before `now + 1 + MAX_AHEAD_SECS` and is refused.
pub fn memory_point(now: u64) -> u64 {
    now.saturating_add(1 + crate::MAX_AHEAD_SECS)
}

/// How long a store that starts at `now` (time since the Unix epoch) has
/// until its [`memory_point`]: a server that announces itself only then
/// accepts the first request anyone signs afterwards.
pub fn until_memory_point(now: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(memory_point(now.as_secs())).saturating_sub(now)
}

impl From<Refusal> for Error {
    #[cold]
    #[inline(never)]
    fn from(refusal: Refusal) -> Self {
        let code = refusal.code();
        let detail: std::borrow::Cow<'static, str> = match refusal {
            Refusal::UnknownKey => "the key id is not known".into(),
            Refusal::KeyRevoked => "the key has been revoked".into(),
            Refusal::KeyExpired => "the key is past its not_after time".into(),
            Refusal::KeyNotYetValid => "the key is before its not_before time".into(),
            Refusal::KeyStoreUnavailable => "the key store is unavailable; retry later".into(),
            Refusal::Replayed => "this key id and nonce were already used".into(),
            Refusal::NonceStoreFull => {
                "replay protection is at capacity (nonce store full); retry later".into()
            }
            Refusal::NonceStoreKeyFull => "this key sends faster than its share of replay \
                 protection holds (per-key nonce capacity); slow down and retry in a second"
                .into(),
            Refusal::NonceStoreUnavailable => {
                "replay protection is unavailable; retry later".into()
            }
            Refusal::RateLimitStoreUnavailable => "the rate-limit store is unavailable and \
                 requests it cannot count are refused (fail closed); retry later"
                .into(),
            Refusal::StoreReset { since } => format!(
                "the replay store remembers requests from {since} on and this signature was \
                 created before that; sign the request again and resend it"
            )
            .into(),
            Refusal::BodyTooLarge { limit } => {
                format!("the request body exceeds {limit} bytes").into()
            }
            Refusal::BodyUnreadable => {
                "the request body could not be read whole, so its digest cannot match".into()
            }
            Refusal::InsufficientScope { scope } => {
                format!("this operation requires the scope \"{scope}\"").into()
            }
            Refusal::NoVerifiedIdentity => "the request has no verified identity (is \
                 VerifySignatureLayer installed outside RequireScopeLayer?)"
                .into(),
            Refusal::RateLimited {
                policy,
                retry_after,
            } => {
                format!("over the request budget of policy \"{policy}\"; retry in {retry_after} s")
                    .into()
            }
        };
        Error::new(code, detail)
    }
}

/// Shorthand for results carrying a tessera [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cold]
#[inline(never)]
pub(crate) fn err<T>(code: ErrorCode, detail: impl Into<String>) -> Result<T> {
    Err(Error::new(code, detail))
}
