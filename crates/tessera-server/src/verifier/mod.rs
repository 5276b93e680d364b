//! The verification procedure (spec §6), steps 1 to 8.

pub(crate) mod body;
mod builder;
mod log_throttle;

pub use log_throttle::LogThrottle;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::HeaderMap;
use http_body::Body;
use tessera_core::challenge::server_time_header;
use tessera_core::{
    Authorities, Component, Error, ErrorCode, ParsedSignature, ReceivedRequest, Refusal,
    RequestView, Scheme,
};

pub use builder::{BuildError, VerifierBuilder, DEFAULT_BODY_LIMIT, MAX_WINDOW_SECS};

use crate::admission::{Admission, AdmissionRequest, Admitted};
use crate::identity::VerifiedIdentity;
use crate::keys::{KeyStore, ResolvedKey};
use crate::nonce::{NonceOutcome, NonceRecord, NonceStore};
use crate::rejection::Rejection;
use crate::BoxError;
use tessera_core::Clock;

/// Verifies tessera-v1 signed requests.
///
/// Cheap to clone (one `Arc`); share one verifier between all routes that
/// use the same configuration.
///
/// The procedure is ordered and the first failure wins:
///
/// 1. and 2. parse `Signature-Input` / `Signature` and enforce the profile
///    (plus the components this verifier requires);
/// 3. look the key up: `unknown_key`, `key_revoked`, `key_expired`, `key_not_yet_valid`;
/// 4. `created` at most the window old and min(window, 2) s ahead of the
///    server clock (`clock_skew`), `expires` not passed;
/// 5. the received authority is one this verifier serves (`authority_mismatch`),
///    or the configured fixed authority is used;
/// 6. check the MAC in constant time (`bad_signature`): it covers the
///    `Content-Digest` field, so no byte of the body is read before it;
///    then an admission policy may refuse a request it already knows it
///    will refuse, such as one from a key over its rate limit
///    (`rate_limited`), before the body is read;
/// 7. read the body under the limit (`body_too_large`), hash it, compare with
///    `Content-Digest` (`digest_mismatch`);
/// 8. re-read the clock, re-check the window and the key's validity period
///    (a slow body may have outlasted either), and only then record
///    (key id, nonce) in the nonce store (`replayed`, `store_unavailable`).
///
/// Step 9 (scopes) belongs to the route: see [`crate::RequireScopeLayer`]
/// and [`VerifiedIdentity::require_scope`].
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<dyn KeyStore>,
    nonces: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    window: u64,
    scheme: Scheme,
    authority: AuthorityPolicy,
    body_limit: usize,
    required: Vec<Component>,
    realm: Arc<str>,
    debug_base: bool,
    admission: Option<Arc<dyn Admission>>,
    /// Logs of the nonce store's refusals (full or unreachable), of a key
    /// at its nonce cap (apart, so one key's flood cannot hide an outage),
    /// of `store_reset` and of key store failures: at most one line a
    /// second each.
    store_logs: log_throttle::LogThrottle,
    key_cap_logs: log_throttle::LogThrottle,
    reset_logs: log_throttle::LogThrottle,
    key_store_logs: log_throttle::LogThrottle,
}

#[derive(Debug)]
enum AuthorityPolicy {
    /// Normalized authorities the received one must match.
    Served(Vec<String>),
    /// The normalized public authority used in every base.
    Fixed(String),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Verifier")
            .field("keys", &i.keys)
            .field("nonces", &i.nonces)
            .field("clock", &i.clock)
            .field("window", &i.window)
            .field("scheme", &i.scheme)
            .field("authority", &i.authority)
            .field("body_limit", &i.body_limit)
            .field("required", &i.required)
            .field("realm", &i.realm)
            .field("debug_base", &i.debug_base)
            .field("admission", &i.admission)
            .finish()
    }
}

impl Verifier {
    /// Starts configuring a verifier that looks keys up in `keys`. The key
    /// store comes first because a verifier without one cannot be built.
    pub fn builder(keys: impl KeyStore + 'static) -> VerifierBuilder {
        VerifierBuilder::new(Arc::new(keys))
    }

    /// The Unix second (on this verifier's clock) from which a request
    /// signed now is accepted: a new verifier's memory nonce store vouches
    /// only for signatures created from its memory point on (the second
    /// after it was created, plus the 2 s a signature may be dated ahead;
    /// spec §14.1), and refuses earlier ones with `store_reset`, since a
    /// process before this one may have accepted them. `0` for a store that
    /// has no such point here (a Redis store learns its own from Redis).
    ///
    /// A server announces itself, or joins a load balancer, once
    /// [`Verifier::is_ready`]: about three seconds after start with a memory
    /// store.
    pub fn ready_at(&self) -> u64 {
        let i = &*self.inner;
        i.nonces.remembers_from(i.clock.now_unix())
    }

    /// Whether a request signed now is accepted as far as the nonce store's
    /// memory point goes ([`Verifier::ready_at`]). Poll it before serving:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let verifier = tessera_server::Verifier::builder(tessera_server::MemoryKeyStore::new())
    /// #     .authority("api.example.com")
    /// #     .build()?;
    /// while !verifier.is_ready() {
    ///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    /// }
    /// // Bind the listener, or report healthy, from here on.
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_ready(&self) -> bool {
        self.inner.clock.now_unix() >= self.ready_at()
    }

    /// The acceptance window, seconds.
    pub fn window(&self) -> u64 {
        self.inner.window
    }

    /// The body size limit, bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// The `WWW-Authenticate` realm.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Verifies a request head and its streamed body.
    ///
    /// The body is read under the size limit and hashed as it arrives; the
    /// collected bytes are returned so the caller can hand them on.
    ///
    /// # Errors
    /// A [`Rejection`] carrying the first failing step's error code.
    pub async fn verify<B>(
        &self,
        parts: &Parts,
        body: B,
    ) -> Result<(VerifiedIdentity, Bytes), Rejection>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let result = self
            .run::<_, Inline>(parts, body::Input::Stream(body))
            .await;
        self.trace(&result);
        result
    }

    /// As [`Verifier::verify`], for a body already in memory. The body is
    /// hashed where it is; nothing is copied.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub async fn verify_bytes(
        &self,
        parts: &Parts,
        body: Bytes,
    ) -> Result<VerifiedIdentity, Rejection> {
        // `run` directly rather than through `verify`: one future less to
        // nest (each level copies the whole state when it is built).
        let result = self
            .run::<http_body_util::Empty<Bytes>, Inline>(parts, body::Input::Bytes(body))
            .await;
        self.trace(&result);
        result.map(|(identity, _)| identity)
    }

    /// Step 5 alone, for a request that carries no signature (a gateway's
    /// public route): whether it names an authority this verifier serves,
    /// by the rule that applies to signed requests (the absolute-form
    /// target's authority, else the one `Host`). With a fixed authority,
    /// every request passes.
    ///
    /// # Errors
    /// A [`Rejection`] with `authority_mismatch`, or `invalid_field_value`
    /// when the request has more than one `Host` or a malformed target.
    pub fn check_authority(&self, parts: &Parts) -> Result<(), Rejection> {
        let received = ReceivedRequest::from_parts(parts);
        self.view(&received).map(drop).map_err(|e| self.reject(e))
    }

    /// [`Verifier::verify`] without the tracing of its outcome (see
    /// [`Verifier::trace`]): callers that build their own future around it
    /// (the tower layer) call it directly, one nested future less.
    ///
    /// `P` holds the parsed signature (about 600 bytes) across the awaits:
    /// [`Inline`] keeps it in the future, `Box<ParsedSignature>` on the
    /// heap, for callers that box the future themselves (a boxed state
    /// under about 1 KiB stays on the allocator's fast path).
    pub(crate) async fn run<B, P>(
        &self,
        parts: &Parts,
        body: body::Input<B>,
    ) -> Result<(VerifiedIdentity, Bytes), Rejection>
    where
        B: Body,
        B::Error: Into<BoxError>,
        P: From<ParsedSignature> + std::ops::Deref<Target = ParsedSignature>,
    {
        let i = &*self.inner;
        // Steps 1-2.
        let parsed = match ParsedSignature::from_fields(&parts.headers) {
            Ok(parsed) => P::from(parsed),
            Err(e) => return Err(self.reject(e)),
        };
        let reject = |e: Error| self.reject(e).with_key_id(parsed.key_id());
        parsed.require(&i.required).map_err(reject)?;

        // Step 3.
        let now = i.clock.now_unix();
        let resolved = self.resolve(&parsed, now).await.map_err(reject)?;
        let key = resolved.key();

        // Step 4.
        self.check_time(&parsed, &resolved, now)?;

        // Step 5. The received request is a temporary: only the view is
        // kept across the awaits below, so the boxed state stays small.
        let view = self
            .view(&ReceivedRequest::from_parts(parts))
            .map_err(reject)?;
        // Only a hint (spec §11.2, "Why after the MAC"): the store changes
        // nothing and reads no recorded pair, but the memory the step 8
        // check will read loads while the MAC and the body are checked. Not
        // earlier: a request naming an unknown key, out of its window or
        // for another authority never gets this far.
        i.nonces.prefetch(parsed.key_id(), parsed.nonce());

        // Steps 6 (the MAC) and 7 (the body and its digest), in that order:
        // the MAC covers the `Content-Digest` field, not the body, so a
        // request that does not carry a valid MAC is refused before a byte
        // of its body is read or hashed.
        // Once the MAC is valid the key id is not made up, so the key store
        // may cache the key (`KeyStore::verified`), whatever comes next.
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Matched here rather than in an async method of `Input`: one
        // nested future less in the state.
        let bytes = match body {
            // Already in memory (the upload is over) and no admission
            // policy: hashed first, so that one call checks the MAC and
            // then the digest with one `Content-Digest` lookup. Errors are
            // still reported in the spec's order: a body over the limit is
            // refused only once the MAC has verified.
            body::Input::Bytes(bytes) if i.admission.is_none() => {
                match body::in_memory(bytes, i.body_limit, declared) {
                    Ok((bytes, digest)) => {
                        let checked = parsed.check_mac_and_digest(key, &view, &digest);
                        // `digest_mismatch` comes only after the MAC verified.
                        let mac_verified = checked
                            .as_ref()
                            .err()
                            .is_none_or(|e| e.code() == ErrorCode::DigestMismatch);
                        if mac_verified {
                            i.keys.verified(parsed.key_id(), &resolved);
                        }
                        self.mac_outcome(&parsed, &view, checked)?;
                        bytes
                    }
                    Err(refusal) => {
                        self.mac_outcome(&parsed, &view, parsed.verify_mac(key, &view))?;
                        i.keys.verified(parsed.key_id(), &resolved);
                        return Err(reject(refusal.into()));
                    }
                }
            }
            // With an admission policy, in the streamed order, so that a
            // request gets the same answer from `verify` and `verify_bytes`:
            // the MAC, then the policy's refusal known before the body,
            // then the body.
            body::Input::Bytes(bytes) => {
                self.mac_outcome(&parsed, &view, parsed.verify_mac(key, &view))?;
                i.keys.verified(parsed.key_id(), &resolved);
                self.refuse_before_body(&parsed, &resolved, parts)?;
                let (bytes, digest) = body::in_memory(bytes, i.body_limit, declared)
                    .map_err(|refusal| reject(refusal.into()))?;
                parsed
                    .check_digest(&parts.headers, &digest)
                    .map_err(reject)?;
                bytes
            }
            body::Input::Stream(body) => {
                self.mac_outcome(&parsed, &view, parsed.verify_mac(key, &view))?;
                i.keys.verified(parsed.key_id(), &resolved);
                // A key already over its budget is refused here, before a
                // byte of its body is read (spec §12.5).
                self.refuse_before_body(&parsed, &resolved, parts)?;
                let (bytes, digest) = body::collect(body, i.body_limit, declared)
                    .await
                    .map_err(|refusal| reject(refusal.into()))?;
                parsed
                    .check_digest(&parts.headers, &digest)
                    .map_err(reject)?;
                bytes
            }
        };

        // Step 8. The time is read again: reading a slow body may have taken
        // the request out of its window, and the nonce store may already have
        // forgotten pairs that old. The key's validity period is checked
        // again with the same reading: it may have ended during the upload.
        let now = i.clock.now_unix();
        self.check_time(&parsed, &resolved, now)?;
        recheck_key(&resolved, now).map_err(reject)?;
        // Admission (rate limits) before the nonce is recorded: a refused
        // request consumes no nonce.
        let (admitted, now) = match &i.admission {
            None => (Admitted::plain(), now),
            Some(admission) => {
                // A copy of a request already recorded is refused before it
                // is charged: the charge of a replay is given back after the
                // record, but until then it holds the budget, and a flood of
                // copies would keep the key's budget spent (spec §12.5). Read
                // only; the record below is still the atomic check.
                if i.nonces.recorded(parsed.key_id(), parsed.nonce()).await == Some(true) {
                    return Err(
                        reject(Refusal::Replayed.into()).with_owner(&resolved.metadata().owner)
                    );
                }
                let admitted = admission
                    .admit(admission_request(&parsed, &resolved, parts))
                    .await
                    .map_err(|r| {
                        r.with_realm(&i.realm)
                            .with_key_id(parsed.key_id())
                            .with_owner(&resolved.metadata().owner)
                    })?;
                // Admission may have waited on its own store: the nonce
                // store dates a new epoch from the time it is asked (spec
                // §14.1), so it gets a fresh reading.
                (admitted, i.clock.now_unix())
            }
        };
        let expires_at = parsed.created().saturating_add(i.window).saturating_add(1);
        let record = NonceRecord::new(
            parsed.key_id(),
            parsed.nonce(),
            parsed.created(),
            now,
            expires_at,
        );
        let outcome = match i.nonces.record_now(record) {
            Some(outcome) => outcome,
            None => i.nonces.record(record).await,
        };
        if let Some(rejection) = self.nonce_refusal(&parsed, outcome) {
            // Not kept across the await below: the boxed state stays small.
            drop(admitted);
            if let Some(admission) = &i.admission {
                // Refused at the nonce step: the admission's charge is given
                // back, so replayed copies of a captured request spend
                // nothing from the key's budget (spec §12.5).
                admission
                    .refund(admission_request(&parsed, &resolved, parts))
                    .await;
            }
            return Err(rejection.with_owner(&resolved.metadata().owner));
        }

        let identity = VerifiedIdentity::new(
            parsed.key_id(),
            resolved.into_metadata(),
            parsed.created(),
            parsed.nonce(),
            admitted.headers,
        );
        Ok((identity, bytes))
    }

    /// Step 8's answer for a nonce store's `outcome`: `None` when the pair
    /// was fresh, else the rejection (`replayed`, `store_reset` with
    /// `Retry-After`, `rate_limited` for a key at its nonce cap,
    /// `store_unavailable`).
    fn nonce_refusal(
        &self,
        parsed: &ParsedSignature,
        outcome: Result<NonceOutcome, crate::nonce::NonceStoreError>,
    ) -> Option<Rejection> {
        let reject = |e: Error| self.reject(e).with_key_id(parsed.key_id());
        Some(match outcome {
            Ok(NonceOutcome::Fresh) => return None,
            Ok(NonceOutcome::Replayed) => reject(Refusal::Replayed.into()),
            Ok(NonceOutcome::Forgotten { since }) => {
                if let Some(left_out) = self.inner.reset_logs.admit() {
                    tracing::info!(key_id = %parsed.key_id(), created = parsed.created(), since, left_out, "tessera: the nonce store remembers pairs only from a time after this signature was created; refusing it with store_reset (left_out: such refusals not logged since the previous line)");
                }
                // The store vouches for signatures created from `since` on:
                // a client that signs again before then is refused again.
                // Counted from `created`, the client's own clock, so that a
                // client behind the verifier's clock waits long enough.
                let wait = since.saturating_sub(parsed.created()).max(1);
                reject(Refusal::StoreReset { since }.into())
                    .with_header(http::header::RETRY_AFTER, http::HeaderValue::from(wait))
            }
            Err(e) => {
                // The kind says which limit was hit (total capacity or the
                // key's cap); neither the nonce nor a secret is logged.
                let refusal = match e.kind() {
                    crate::nonce::NonceStoreErrorKind::Full => Refusal::NonceStoreFull,
                    // One key too fast is a rate limit, not an outage.
                    crate::nonce::NonceStoreErrorKind::KeyFull => {
                        if let Some(left_out) = self.inner.key_cap_logs.admit() {
                            tracing::warn!(key_id = %parsed.key_id(), error = %e, left_out, "tessera: a key reached its per-key nonce capacity; refusing it with rate_limited (left_out: such refusals not logged since the previous line)");
                        }
                        return Some(reject(Refusal::NonceStoreKeyFull.into()).with_header(
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from_static("1"),
                        ));
                    }
                    _ => Refusal::NonceStoreUnavailable,
                };
                if let Some(left_out) = self.inner.store_logs.admit() {
                    tracing::warn!(key_id = %parsed.key_id(), kind = ?e.kind(), error = %e, left_out, "tessera: nonce store refused the request; refusing it with store_unavailable (left_out: nonce store refusals not logged since the previous line)");
                }
                reject(refusal.into())
            }
        })
    }

    /// Between steps 6 and 7: the admission policy's refusal known before
    /// the body is read ([`Admission::refuse_before_body`]), if any.
    fn refuse_before_body(
        &self,
        parsed: &ParsedSignature,
        resolved: &ResolvedKey,
        parts: &Parts,
    ) -> Result<(), Rejection> {
        let Some(admission) = &self.inner.admission else {
            return Ok(());
        };
        admission
            .refuse_before_body(admission_request(parsed, resolved, parts))
            .map_err(|r| {
                r.with_realm(&self.inner.realm)
                    .with_key_id(parsed.key_id())
                    .with_owner(&resolved.metadata().owner)
            })
    }

    /// Step 6's outcome (the MAC alone, or the MAC then the digest) as a
    /// rejection, with the hash of the base the verifier computed when the
    /// MAC did not match (and the base itself when configured to show it).
    fn mac_outcome(
        &self,
        parsed: &ParsedSignature,
        view: &RequestView<'_, HeaderMap>,
        outcome: Result<(), Error>,
    ) -> Result<(), Rejection> {
        let Err(e) = outcome else {
            return Ok(());
        };
        let mut rejection = self.reject(e).with_key_id(parsed.key_id());
        if rejection.code() == ErrorCode::BadSignature {
            if let Ok(base) = parsed.signature_base(view) {
                tracing::debug!(key_id = %parsed.key_id(), base = %base.redacted(), "tessera: signature base the server computed");
                let debug = self.inner.debug_base.then(|| base.to_string());
                rejection = rejection.with_base(base.sha256_hex(), debug);
            }
        }
        Err(rejection)
    }

    /// Step 3: looks the key up and checks it is usable at `now`.
    async fn resolve(&self, parsed: &ParsedSignature, now: u64) -> Result<ResolvedKey, Error> {
        let keys = &self.inner.keys;
        let answer = match keys.resolve_now(parsed.key_id()) {
            Some(answer) => answer,
            None => keys.resolve(parsed.key_id()).await,
        };
        let resolved = match answer {
            Ok(Some(resolved)) => resolved,
            Ok(None) => return Err(Refusal::UnknownKey.into()),
            Err(e) => {
                if let Some(left_out) = self.inner.key_store_logs.admit() {
                    tracing::warn!(key_id = %parsed.key_id(), error = %e, left_out, "tessera: key store failed; refusing the request (left_out: such failures not logged since the previous line)");
                }
                return Err(Refusal::KeyStoreUnavailable.into());
            }
        };
        resolved.metadata().check_usable(now)?;
        Ok(resolved)
    }

    fn check_time(
        &self,
        parsed: &ParsedSignature,
        resolved: &ResolvedKey,
        now: u64,
    ) -> Result<(), Rejection> {
        parsed.check_time(now, self.inner.window).map_err(|e| {
            let clock_skew = e.code() == ErrorCode::ClockSkew;
            let rejection = self.reject(e).with_key_id(parsed.key_id());
            if clock_skew {
                // The key is known and usable here, so the client can
                // authenticate the time and correct its clock.
                rejection
                    .with_server_time(now, server_time_header(resolved.key(), parsed.nonce(), now))
            } else {
                rejection
            }
        })
    }

    /// Step 5: the view whose authority goes into the base (one rule for
    /// every verifier: [`ReceivedRequest::view`]).
    fn view<'a>(
        &'a self,
        request: &ReceivedRequest<'a, HeaderMap>,
    ) -> Result<RequestView<'a, HeaderMap>, Error> {
        let i = &*self.inner;
        let authorities = match &i.authority {
            AuthorityPolicy::Fixed(fixed) => Authorities::Fixed(fixed),
            AuthorityPolicy::Served(served) => Authorities::Served(served),
        };
        request.view(i.scheme, authorities)
    }

    #[cold]
    #[inline(never)]
    fn reject(&self, error: Error) -> Rejection {
        Rejection::new(error).with_realm(&self.inner.realm)
    }

    pub(crate) fn trace(&self, result: &Result<(VerifiedIdentity, Bytes), Rejection>) {
        match result {
            Ok((identity, _)) => tracing::debug!(
                outcome = "accepted",
                key_id = %identity.key_id(),
                owner = identity.owner(),
                "tessera: request verified"
            ),
            Err(rejection) => tracing::debug!(
                outcome = "rejected",
                code = rejection.code().as_str(),
                key_id = rejection.key_id().map(|k| k.as_str()),
                detail = rejection.error().detail(),
                "tessera: request rejected"
            ),
        }
    }
}

/// What an admission policy sees of a request (built where it is needed, so
/// that the verification state does not hold it across awaits).
fn admission_request<'a>(
    parsed: &'a ParsedSignature,
    resolved: &'a ResolvedKey,
    parts: &'a Parts,
) -> AdmissionRequest<'a> {
    AdmissionRequest {
        key_id: parsed.key_id(),
        metadata: resolved.metadata(),
        method: &parts.method,
        path: parts.uri.path(),
    }
}

/// A [`ParsedSignature`] held inline, for [`Verifier::run`].
pub(crate) struct Inline(ParsedSignature);

impl From<ParsedSignature> for Inline {
    #[inline]
    fn from(parsed: ParsedSignature) -> Self {
        Inline(parsed)
    }
}

impl std::ops::Deref for Inline {
    type Target = ParsedSignature;

    #[inline]
    fn deref(&self) -> &ParsedSignature {
        &self.0
    }
}

/// Step 8, before the nonce is recorded: the key resolved at step 3 must
/// still be usable at `now` (the clock reading of the step 8 time re-check).
///
/// This catches a `not_after` (or, with a clock stepping back, a
/// `not_before`) crossed while a slow body was read. It checks the metadata
/// resolved at step 3: a revocation made in the store during the upload is
/// only seen if the store's metadata snapshot already says so.
fn recheck_key(resolved: &ResolvedKey, now: u64) -> Result<(), Error> {
    Ok(resolved.metadata().check_usable(now)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_core::{ErrorCode, KeyId, SecretKey, SigningKey};

    use super::recheck_key;
    use crate::keys::{KeyMetadata, KeyState, ResolvedKey};

    fn resolved(metadata: KeyMetadata) -> ResolvedKey {
        let id = KeyId::new("k").expect("id");
        let secret = SecretKey::from_bytes(&[1; 32]).expect("secret");
        ResolvedKey::new(SigningKey::new(id, &secret), Arc::new(metadata))
    }

    #[test]
    fn recheck_refuses_a_key_that_expired_during_the_body_read() {
        let key = resolved(KeyMetadata::new("o").with_not_after(100));
        assert!(recheck_key(&key, 100).is_ok());
        assert_eq!(
            recheck_key(&key, 101).map_err(|e| e.code()),
            Err(ErrorCode::KeyExpired)
        );
        let revoked = resolved(KeyMetadata::new("o").with_state(KeyState::Revoked));
        assert_eq!(
            recheck_key(&revoked, 0).map_err(|e| e.code()),
            Err(ErrorCode::KeyRevoked)
        );
    }
}
