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
    /// extensions (axum's `ConnectInfo<SocketAddr>` or one the server sets):
    /// an IPv4 address, or an IPv6 address's /64 (one budget per /64, the
    /// block one client is usually given).
    ClientIp,
    /// The `keyid` parameter of the `tessera` member of the request's
    /// `Signature-Input` (not verified yet: a claim).
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
        Claimed::KeyId => {
            // Field lines of one dictionary, joined as RFC 9110 §5.3 says.
            let mut joined = Vec::new();
            for value in request.headers().get_all("signature-input") {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(value.as_bytes());
            }
            claimed_key_id(&joined)
        }
    }
}

/// The peer's address: a `SocketAddr` the server put in the extensions, or
/// axum's `ConnectInfo<SocketAddr>`.
fn client_ip<B>(request: &Request<B>) -> Option<String> {
    let extensions = request.extensions();
    let addr = extensions.get::<SocketAddr>().copied();
    #[cfg(feature = "axum")]
    let addr = addr.or_else(|| {
        extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
    });
    addr.map(|addr| client_subject(addr.ip()))
}

/// The budget an address spends: an IPv4 address alone, an IPv6 address
/// with the rest of its /64 (what one client is usually given, so that it
/// cannot spread over 2^64 budgets).
fn client_subject(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The `keyid` parameter of the `tessera` member of a `Signature-Input`
/// dictionary (another member, placed first, names nothing here). Parsed
/// but not trusted: the verifier checks it.
fn claimed_key_id(value: &[u8]) -> Option<String> {
    let dict: sfv::Dictionary = sfv::Parser::new(value).parse().ok()?;
    let sfv::ListEntry::InnerList(member) = dict.get(tessera_core::LABEL)? else {
        return None;
    };
    let id = member.params.get("keyid")?.as_string()?.as_str();
    Some(id.to_owned()).filter(|id| !id.is_empty() && id.len() <= 128)
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
    use super::{claimed_key_id, client_subject};

    #[test]
    fn finds_the_claimed_key_id() {
        let v = br#"tessera=("@method");created=1;keyid="user-42";nonce="n";tag="tessera-v1""#;
        assert_eq!(claimed_key_id(v).as_deref(), Some("user-42"));
        assert_eq!(claimed_key_id(b"tessera=();created=1"), None);
        assert_eq!(claimed_key_id(b";keyid=\"\""), None);
        // Another member first (a decoy naming someone else's key) names
        // nothing: only the `tessera` member's parameter counts.
        let decoy = br#"a=();keyid="victim", tessera=("@method");keyid="me";nonce="n""#;
        assert_eq!(claimed_key_id(decoy).as_deref(), Some("me"));
        let quoted = br#"b=();nonce=";keyid=\"victim\"", tessera=();keyid="me""#;
        assert_eq!(claimed_key_id(quoted).as_deref(), Some("me"));
        assert_eq!(claimed_key_id(br#"a=();keyid="victim""#), None);
    }

    #[test]
    fn an_ipv6_client_spends_its_64s_budget() {
        let one = client_subject("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let other = client_subject("2001:db8:1:2:ffff:1:2:3".parse().expect("ip"));
        assert_eq!(one, other);
        assert_eq!(one, "2001:db8:1:2::/64");
        assert_ne!(one, client_subject("2001:db8:1:3::1".parse().expect("ip")));
        assert_eq!(
            client_subject("192.0.2.7".parse().expect("ip")),
            "192.0.2.7"
        );
        assert_eq!(
            client_subject("::ffff:192.0.2.7".parse().expect("ip")),
            "192.0.2.7"
        );
    }
}
