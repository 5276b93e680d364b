//! Where limited keys' state lives: the [`RateStore`] trait and its errors.

use async_trait::async_trait;

use crate::gcra::Decision;
use crate::plan::Plan;

/// What a budget is counted against: the plan's name and a caller-chosen
/// subject (a key id, an owner, a client address), kept apart by plan so
/// one subject may be limited by several plans.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subject<'a> {
    /// What the subject is (`key`, `owner`, `ip`, ...): part of the stored key.
    pub kind: &'a str,
    /// The subject itself.
    pub id: &'a str,
}

impl<'a> Subject<'a> {
    /// The subject `id` of kind `kind` (`"key"`, `"owner"`, `"ip"`, ...).
    pub const fn new(kind: &'a str, id: &'a str) -> Self {
        Subject { kind, id }
    }
}

/// Keeps the GCRA state of every limited subject and decides atomically.
///
/// One operation, atomic per subject and plan: read the state, run
/// [`crate::decide`], store the new state when allowed. Of concurrent
/// decisions for one subject, each sees the state the previous one left.
#[async_trait]
pub trait RateStore: std::fmt::Debug + Send + Sync {
    /// Decides a request of `cost` for `subject` under `plan` at `now_micros`.
    ///
    /// # Errors
    /// When the store cannot answer (unreachable, timed out, full); the
    /// limiter then allows or refuses as its [`crate::FailureMode`] says.
    async fn decide(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<Decision, RateStoreError>;

    /// Gives back a request of `cost` that [`RateStore::decide`] allowed for
    /// `subject` under `plan` ([`crate::refund`]): the verifier
    /// refused it afterwards at the nonce step (a replayed copy, a store
    /// outage), so it spends nothing. Nothing happens when the subject has
    /// no state left.
    ///
    /// The default keeps the charge, for stores that cannot give it back.
    ///
    /// # Errors
    /// When the store cannot be reached; the charge then stays.
    async fn refund(
        &self,
        subject: Subject<'_>,
        plan: &Plan,
        cost: u32,
        now_micros: u64,
    ) -> Result<(), RateStoreError> {
        let _ = (subject, plan, cost, now_micros);
        Ok(())
    }
}

/// A rate store could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit store: {message}")]
pub struct RateStoreError {
    message: String,
    permanent: bool,
}

impl RateStoreError {
    /// An error with a message that says what failed (no secrets).
    pub fn new(message: impl Into<String>) -> Self {
        RateStoreError {
            message: message.into(),
            permanent: false,
        }
    }

    /// An error no retry can mend until the configuration changes: an
    /// invalid store URL, credentials the store refuses.
    pub fn permanent(message: impl Into<String>) -> Self {
        RateStoreError {
            message: message.into(),
            permanent: true,
        }
    }

    /// What failed, without the `rate limit store: ` that `Display` puts
    /// first.
    #[cfg(feature = "redis")]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is a [`RateStoreError::permanent`] error.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}
