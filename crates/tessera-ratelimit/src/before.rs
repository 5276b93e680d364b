//! An optional limit *before* verification, on what an unauthenticated
//! request claims (its client address, the key id in `Signature-Input`), to
//! shield the verifier and the key store from floods. Off unless installed.
//!
//! It never replaces the limit after verification (spec §12.5): a claimed
//! key id is not authenticated, so a flood under someone else's key id
//! spends *that* budget here; keep these plans generous, meant to stop
//! floods, not to meter users.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tessera_core::Refusal;
use tessera_server::Rejection;
use tower_layer::Layer;
use tower_service::Service;

use crate::limiter::{MicroClock, SystemMicroClock};
use crate::plan::Plan;
use crate::store::{RateStore, Subject};

/// What an unauthenticated request is limited by.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The peer's IP address, from a `SocketAddr` in the request's
    /// extensions (axum's `ConnectInfo<SocketAddr>` or one the server sets).
    ClientIp,
    /// The `keyid` parameter the request's `Signature-Input` claims.
    KeyId,
}

/// A [`Layer`] that limits requests before they are verified; install it
/// outside `VerifySignatureLayer`.
#[derive(Debug, Clone)]
pub struct LimitBeforeVerifyLayer {
    inner: Arc<Before>,
}

#[derive(Debug)]
struct Before {
    store: Arc<dyn RateStore>,
    plan: Plan,
    by: Claimed,
    clock: Arc<dyn MicroClock>,
    /// A failing store fails every request: one log line a second.
    store_logs: tessera_server::LogThrottle,
}

impl LimitBeforeVerifyLayer {
    /// Limits each `by` subject to `plan`, in `store`.
    pub fn new(store: impl RateStore + 'static, plan: Plan, by: Claimed) -> Self {
        LimitBeforeVerifyLayer {
            inner: Arc::new(Before {
                store: Arc::new(store),
                plan,
                by,
                clock: Arc::new(SystemMicroClock),
                store_logs: tessera_server::LogThrottle::new(),
            }),
        }
    }
}

impl<S> Layer<S> for LimitBeforeVerifyLayer {
    type Service = LimitBeforeVerify<S>;

    fn layer(&self, inner: S) -> LimitBeforeVerify<S> {
        LimitBeforeVerify {
            inner,
            before: Arc::clone(&self.inner),
        }
    }
}

/// The service of [`LimitBeforeVerifyLayer`].
#[derive(Debug, Clone)]
pub struct LimitBeforeVerify<S> {
    inner: S,
    before: Arc<Before>,
}

/// The claimed subject of `request`, if it has one.
fn claimed<B>(by: Claimed, request: &Request<B>) -> Option<String> {
    match by {
        Claimed::ClientIp => client_ip(request),
        Claimed::KeyId => request
            .headers()
            .get_all("signature-input")
            .iter()
            .find_map(|v| claimed_key_id(v.as_bytes()))
            .map(str::to_owned),
    }
}

/// The peer's address: a `SocketAddr` the server put in the extensions, or
/// axum's `ConnectInfo<SocketAddr>`.
fn client_ip<B>(request: &Request<B>) -> Option<String> {
    let extensions = request.extensions();
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(addr.ip().to_string());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip().to_string());
    }
    None
}

/// The first `keyid="..."` in a `Signature-Input` value: a scan, not a
/// parse (nothing is trusted here; the verifier parses).
fn claimed_key_id(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    let start = text.find(";keyid=\"")? + ";keyid=\"".len();
    let rest = &text[start..];
    let end = rest.find('"')?;
    Some(&rest[..end]).filter(|id| !id.is_empty() && id.len() <= 128)
}

impl<S, B, ResBody> Service<Request<B>> for LimitBeforeVerify<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let before = Arc::clone(&self.before);
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(id) = claimed(before.by, &request) else {
                return inner.call(request).await;
            };
            let kind = match before.by {
                Claimed::ClientIp => "ip",
                Claimed::KeyId => "claimed-key",
            };
            let decision = before
                .store
                .decide(
                    Subject { kind, id: &id },
                    &before.plan,
                    1,
                    before.clock.now_micros(),
                )
                .await;
            match decision {
                Ok(d) if !d.allowed => {
                    let retry = d
                        .retry_after_micros
                        .unwrap_or(d.reset_micros)
                        .div_ceil(1_000_000)
                        .max(1);
                    Ok(Rejection::new(
                        Refusal::RateLimited {
                            policy: before.plan.name().to_owned(),
                            retry_after: retry,
                        }
                        .into(),
                    )
                    .with_header(http::header::RETRY_AFTER, HeaderValue::from(retry))
                    .into_http_response())
                }
                // Allowed, or the store failed: this shield fails open, and
                // the verifier's own checks still run.
                Ok(_) => inner.call(request).await,
                Err(e) => {
                    if let Some(left_out) = before.store_logs.admit() {
                        tracing::warn!(error = %e, left_out, "tessera: pre-verification rate limit store failed; letting the request through to the verifier (left_out: such failures not logged since the previous line)");
                    }
                    inner.call(request).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::claimed_key_id;

    #[test]
    fn finds_the_claimed_key_id() {
        let v = br#"tessera=("@method");created=1;keyid="user-42";nonce="n";tag="tessera-v1""#;
        assert_eq!(claimed_key_id(v), Some("user-42"));
        assert_eq!(claimed_key_id(b"tessera=();created=1"), None);
        assert_eq!(claimed_key_id(b";keyid=\"\""), None);
    }
}
