//! The proxy path of one request: the guard's refusals, public routes,
//! verification with the shared [`Verifier`] (body read whole, under the
//! limit and the body deadline, its digest checked before anything is
//! forwarded), route scopes, then the upstream call on a pooled keep-alive
//! client with the response streamed back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, RETRY_AFTER};
use http::{HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tessera_server::{VerifiedIdentity, Verifier};

use crate::config::Settings;
use crate::deadline::DeadlineBody;
use crate::forward::{self, Forwarding};
use crate::guard::HeadRefusal;
use crate::problem::problem;
use crate::routes::{first_match, is_canonical_path};
use crate::Body;

/// Everything the proxy path shares between requests.
#[derive(Debug)]
pub struct Proxy {
    /// None in unverified benchmark mode.
    verifier: Option<Verifier>,
    client: Client<HttpConnector, Full<Bytes>>,
    settings: Settings,
    /// The guard's marker header.
    marker: HeaderName,
    /// The public scheme.
    proto: &'static str,
}

/// What a request came to, for the log line and the metrics.
struct Outcome {
    outcome: &'static str,
    code: &'static str,
    key_id: Option<String>,
    owner: Option<String>,
    upstream: Option<Duration>,
}

impl Outcome {
    fn new(outcome: &'static str, code: &'static str) -> Self {
        Outcome {
            outcome,
            code,
            key_id: None,
            owner: None,
            upstream: None,
        }
    }
}

impl Proxy {
    /// A proxy forwarding to `settings.upstream`; `verifier` None turns
    /// verification off (benchmark mode only).
    pub fn new(verifier: Option<Verifier>, settings: Settings, marker: HeaderName) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.limits.upstream_connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let proto = match settings.scheme {
            tessera_core::Scheme::Https => "https",
            _ => "http",
        };
        Proxy {
            verifier,
            client,
            settings,
            marker,
            proto,
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let (response, outcome) = self.route(peer, request).await;
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        metrics::counter!("gateway_requests_total", "outcome" => outcome.outcome, "code" => outcome.code)
            .increment(1);
        if let Some(upstream) = outcome.upstream {
            metrics::histogram!("gateway_upstream_seconds").record(upstream.as_secs_f64());
        }
        tracing::info!(
            method = %method,
            path = %path,
            status,
            outcome = outcome.outcome,
            code = outcome.code,
            key_id = outcome.key_id.as_deref(),
            owner = outcome.owner.as_deref(),
            peer = %peer.ip(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_ms = outcome.upstream.map(|d| d.as_secs_f64() * 1000.0),
            "request"
        );
        response
    }

    async fn route(
        &self,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> (Response<Body>, Outcome) {
        if let Some(token) = request.headers().get(&self.marker) {
            let refusal =
                HeadRefusal::from_token(token.as_bytes()).unwrap_or(HeadRefusal::Malformed);
            let detail = refusal_detail(refusal, &self.settings);
            return (
                problem(refusal.status(), &detail, true),
                Outcome::new("refused", refusal.token()),
            );
        }
        // The guard lets only heads with exactly one Host through; checked
        // again here so the rule does not depend on it.
        if request.headers().get_all(HOST).iter().count() != 1 {
            return (
                problem(
                    StatusCode::BAD_REQUEST,
                    "a request needs exactly one Host field",
                    true,
                ),
                Outcome::new("refused", "host"),
            );
        }
        if !is_canonical_path(request.uri().path()) {
            return (
                problem(
                    StatusCode::BAD_REQUEST,
                    "the request path has a dot segment, an empty segment, a backslash or an encoded '.', '/' or '\\'; send it in its canonical form",
                    true,
                ),
                Outcome::new("refused", "path_not_canonical"),
            );
        }
        let (parts, body) = request.into_parts();
        let expired = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(
            body,
            self.settings.limits.body_timeout,
            Arc::clone(&expired),
        );
        let public = first_match(&self.settings.public, &parts.method, parts.uri.path()).is_some();
        let (identity, bytes) = match (&self.verifier, public) {
            (Some(verifier), false) => {
                let started = Instant::now();
                let verified = verifier.verify(&parts, body).await;
                metrics::histogram!("gateway_verify_seconds")
                    .record(started.elapsed().as_secs_f64());
                match verified {
                    Ok((identity, bytes)) => (Some(identity), bytes),
                    Err(rejection) => {
                        if expired.load(Ordering::Acquire) {
                            return self.body_timeout();
                        }
                        let code = rejection.code().as_str();
                        if matches!(rejection.code(), tessera_core::ErrorCode::StoreUnavailable) {
                            metrics::counter!("gateway_store_errors_total").increment(1);
                        }
                        let mut outcome = Outcome::new("rejected", code);
                        outcome.key_id = rejection.key_id().map(|k| k.as_str().to_owned());
                        return (
                            rejection.into_http_response::<Full<Bytes>>().map(boxed),
                            outcome,
                        );
                    }
                }
            }
            _ => match Limited::new(body, self.settings.body_limit).collect().await {
                Ok(collected) => (None, collected.to_bytes()),
                Err(e) => {
                    if expired.load(Ordering::Acquire) {
                        return self.body_timeout();
                    }
                    if e.is::<http_body_util::LengthLimitError>() {
                        return (
                            problem(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                &format!(
                                    "the request body is over {} bytes",
                                    self.settings.body_limit
                                ),
                                true,
                            ),
                            Outcome::new("refused", "body_too_large"),
                        );
                    }
                    return (
                        problem(
                            StatusCode::BAD_REQUEST,
                            "the request body could not be read",
                            true,
                        ),
                        Outcome::new("refused", "body_unreadable"),
                    );
                }
            },
        };
        if let Some(identity) = &identity {
            if let Some(rule) = first_match(&self.settings.routes, &parts.method, parts.uri.path())
            {
                for scope in &rule.scopes {
                    if let Err(rejection) = identity.require_scope(scope) {
                        let mut outcome = Outcome::new("rejected", rejection.code().as_str());
                        outcome.key_id = Some(identity.key_id().as_str().to_owned());
                        outcome.owner = Some(identity.owner().to_owned());
                        return (
                            rejection.into_http_response::<Full<Bytes>>().map(boxed),
                            outcome,
                        );
                    }
                }
            }
        }
        let outcome = if public { "public" } else { "forwarded" };
        self.forward(peer, parts, bytes, identity.as_ref(), outcome)
            .await
    }

    fn body_timeout(&self) -> (Response<Body>, Outcome) {
        (
            problem(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive completely within {} s",
                    self.settings.limits.body_timeout.as_secs()
                ),
                true,
            ),
            Outcome::new("refused", "body_timeout"),
        )
    }

    async fn forward(
        &self,
        peer: SocketAddr,
        mut parts: http::request::Parts,
        bytes: Bytes,
        identity: Option<&VerifiedIdentity>,
        outcome: &'static str,
    ) -> (Response<Body>, Outcome) {
        let mut out = Outcome::new(outcome, "");
        if let Some(identity) = identity {
            out.key_id = Some(identity.key_id().as_str().to_owned());
            out.owner = Some(identity.owner().to_owned());
        }
        let uri = match self.upstream_uri(&parts.uri) {
            Some(uri) => uri,
            None => {
                out.outcome = "refused";
                out.code = "bad_target";
                return (
                    problem(
                        StatusCode::BAD_REQUEST,
                        "the request target cannot be forwarded",
                        false,
                    ),
                    out,
                );
            }
        };
        let trusted = self
            .settings
            .trusted_proxies
            .iter()
            .any(|block| block.contains(peer.ip()));
        forward::request_headers(
            &mut parts.headers,
            &Forwarding {
                peer: peer.ip(),
                trusted,
                proto: self.proto,
                identity_names: &self.settings.identity,
                identity,
                strip_signature: self.settings.strip_signature_headers,
            },
        );
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let request = Request::from_parts(parts, Full::new(bytes));
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.settings.limits.upstream_timeout,
            self.client.request(request),
        )
        .await;
        out.upstream = Some(started.elapsed());
        match sent {
            Err(_) => {
                out.outcome = "upstream_error";
                out.code = "upstream_timeout";
                (
                    problem(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "the upstream did not answer within {} s",
                            self.settings.limits.upstream_timeout.as_secs()
                        ),
                        false,
                    ),
                    out,
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                out.outcome = "upstream_error";
                out.code = "upstream_unavailable";
                let mut response = problem(
                    StatusCode::BAD_GATEWAY,
                    "the upstream could not be reached",
                    false,
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, http::HeaderValue::from_static("1"));
                (response, out)
            }
            Ok(Ok(response)) => {
                let (mut head, body) = response.into_parts();
                forward::remove_hop_by_hop(&mut head.headers);
                if let Some(identity) = identity {
                    for (name, value) in identity.response_headers() {
                        head.headers.insert(name.clone(), value.clone());
                    }
                }
                let body = body.map_err(crate::BoxError::from).boxed_unsync();
                (Response::from_parts(head, body), out)
            }
        }
    }

    /// The upstream URI for a request target: the upstream's base path
    /// joined with the origin-form path and query.
    fn upstream_uri(&self, target: &Uri) -> Option<Uri> {
        let base = &self.settings.upstream;
        let prefix = base.path().trim_end_matches('/');
        let path_and_query = target.path_and_query()?.as_str();
        if !path_and_query.starts_with('/') {
            return None;
        }
        Uri::builder()
            .scheme(base.scheme()?.clone())
            .authority(base.authority()?.clone())
            .path_and_query(format!("{prefix}{path_and_query}"))
            .build()
            .ok()
    }
}

fn boxed(body: Full<Bytes>) -> Body {
    body.map_err(|never| match never {}).boxed_unsync()
}

fn refusal_detail(refusal: HeadRefusal, settings: &Settings) -> String {
    match refusal {
        HeadRefusal::TooLarge => format!(
            "the request head is over {} bytes (limits.max_header_bytes)",
            settings.limits.max_header_bytes
        ),
        HeadRefusal::TooManyFields => format!(
            "the request has more than {} header fields (limits.max_headers)",
            settings.limits.max_headers
        ),
        HeadRefusal::LengthAndChunked => {
            "Content-Length and Transfer-Encoding together are refused (request smuggling)"
                .to_owned()
        }
        HeadRefusal::DoubledLength => {
            "more than one Content-Length is refused (request smuggling)".to_owned()
        }
        HeadRefusal::BadLength => "the Content-Length is not a number".to_owned(),
        HeadRefusal::BadTransferEncoding => {
            "only Transfer-Encoding: chunked (HTTP/1.1) is accepted".to_owned()
        }
        HeadRefusal::Host => "a request needs exactly one Host field".to_owned(),
        HeadRefusal::Malformed => "the request head is malformed".to_owned(),
    }
}
