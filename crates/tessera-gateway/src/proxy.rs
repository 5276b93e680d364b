//! The proxy path of one request: the guard's refusals, public routes,
//! verification with the shared [`Verifier`] (body read whole, under the
//! limit and the body deadline, its digest checked before anything is
//! forwarded), route scopes, then the upstream call on a pooled keep-alive
//! client with the response streamed back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, RETRY_AFTER, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tessera_server::{VerifiedIdentity, Verifier};

use crate::body_budget::{BodyBudget, Busy, ConnectionBudget, MeteredBody, Sender};
use crate::config::Settings;
use crate::deadline::DeadlineBody;
use crate::forward::{self, Forwarding, PeerFields};
use crate::guard::{BodyRefusal, HeadRefusal, HeadVerdict};
use crate::http2::Activity;
use crate::idle_body::IdleBody;
use crate::problem::problem;
use crate::routes::{first_match, first_scope_match, path_problem};
use crate::upstream::{LinkSlot, Upstream};
use crate::Body;

/// Everything the proxy path shares between requests.
#[derive(Debug)]
pub struct Proxy {
    /// None in unverified benchmark mode.
    verifier: Option<Verifier>,
    upstream: Upstream,
    settings: Settings,
    /// The guard's marker header.
    marker: HeaderName,
    /// The public scheme.
    proto: &'static str,
    metrics: Handles,
    /// Room for request bodies held in memory at once.
    bodies: BodyBudget,
}

/// Handles on the metrics every request records, looked up once rather
/// than per request (a look-up hashes the name and labels).
struct Handles {
    forwarded: metrics::Counter,
    verify_seconds: metrics::Histogram,
    upstream_seconds: metrics::Histogram,
}

impl Handles {
    /// Handles from the recorder installed now.
    fn new() -> Self {
        Handles {
            forwarded: metrics::counter!("gateway_requests_total", "outcome" => "forwarded", "code" => ""),
            verify_seconds: metrics::histogram!("gateway_verify_seconds"),
            upstream_seconds: metrics::histogram!("gateway_upstream_seconds"),
        }
    }
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handles")
    }
}

/// What the requests of one client connection share: who is calling, the
/// forwarding fields for that address, and the connection's own upstream
/// connection.
#[derive(Debug)]
pub struct ClientConn {
    /// The client's address.
    pub peer: SocketAddr,
    fields: PeerFields,
    link: Arc<LinkSlot>,
    /// Set by the connection's guard when it refuses a body.
    body_refusal: BodyRefusal,
    /// Set by the connection's guard when it refuses a head the profile
    /// names a code for.
    head_verdict: HeadVerdict,
    /// Requests in flight, for the idle watchdog of an HTTP/2 connection.
    activity: Option<Arc<Activity>>,
    /// The body bytes an HTTP/2 connection may hold at once.
    body_budget: Option<ConnectionBudget>,
}

impl ClientConn {
    /// The shared state of a new client connection from `peer`.
    pub fn new(peer: SocketAddr, body_refusal: BodyRefusal, head_verdict: HeadVerdict) -> Self {
        ClientConn {
            peer,
            fields: PeerFields::new(peer.ip()),
            link: Arc::default(),
            body_refusal,
            head_verdict,
            activity: None,
            body_budget: None,
        }
    }

    /// The shared state of a new HTTP/2 client connection from `peer` (no
    /// head guard; its requests are counted for the idle watchdog).
    pub fn http2(peer: SocketAddr) -> Self {
        ClientConn {
            activity: Some(Arc::default()),
            body_budget: Some(ConnectionBudget::default()),
            ..ClientConn::new(peer, BodyRefusal::default(), HeadVerdict::default())
        }
    }

    /// The requests of an HTTP/2 connection.
    pub fn activity(&self) -> Option<&Arc<Activity>> {
        self.activity.as_ref()
    }
}

/// What a request came to, for the log line and the metrics.
struct Outcome {
    outcome: &'static str,
    code: &'static str,
    key_id: Option<String>,
    owner: Option<String>,
    /// A rejection's detail (the same text as its problem body's `detail`).
    detail: Option<String>,
    /// A `bad_signature` rejection's `base_sha256`, to compare with
    /// `tessera base --sha256` without asking the client for the response.
    base_sha256: Option<String>,
    upstream: Option<Duration>,
}

impl Outcome {
    fn new(outcome: &'static str, code: &'static str) -> Self {
        Outcome {
            outcome,
            code,
            key_id: None,
            owner: None,
            detail: None,
            base_sha256: None,
            upstream: None,
        }
    }

    /// Records why a verification was rejected, for the log line: the
    /// detail and base hash the client gets too (never the base itself).
    fn explain(&mut self, rejection: &tessera_server::Rejection) {
        if tracing::enabled!(tracing::Level::INFO) {
            self.detail = Some(rejection.error().detail().to_owned());
            self.base_sha256 = rejection.base_sha256().map(str::to_owned);
        }
    }

    /// Records who asked, for the log line; only when that line is
    /// written (the copies are wasted otherwise).
    fn identify(&mut self, key_id: &str, owner: Option<&str>) {
        if tracing::enabled!(tracing::Level::INFO) {
            self.key_id = Some(key_id.to_owned());
            self.owner = owner.map(str::to_owned);
        }
    }
}

impl Proxy {
    /// A proxy forwarding to `settings.upstream`; `verifier` None turns
    /// verification off (benchmark mode only). Install the metrics recorder
    /// first: the handles of the per-request metrics are taken here.
    pub fn new(verifier: Option<Verifier>, settings: Settings, marker: HeaderName) -> Self {
        // The configuration admits only http:// upstreams with a host.
        let upstream = Upstream::new(
            settings.upstream.host().unwrap_or("localhost"),
            settings.upstream.port_u16().unwrap_or(80),
            settings.limits.upstream_connect_timeout,
            settings.limits.max_connections,
        );
        let proto = match settings.scheme {
            tessera_core::Scheme::Https => "https",
            _ => "http",
        };
        Proxy {
            verifier,
            upstream,
            marker,
            proto,
            metrics: Handles::new(),
            // Made again by a reload: bodies being read under the old proxy
            // keep their room in the old budget until they finish.
            bodies: BodyBudget::new(settings.body_limit),
            settings,
        }
    }

    /// Answers one request of the client connection `conn` (never an
    /// error: every failure is an answer).
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ClientConn>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let in_flight = conn.activity().map(Activity::begin);
        let method = request.method().clone();
        let path = tracing::enabled!(tracing::Level::INFO).then(|| request.uri().path().to_owned());
        let (response, outcome) = self.route(&conn, request).await;
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        match (outcome.outcome, outcome.code) {
            ("forwarded", "") => self.metrics.forwarded.increment(1),
            (kind, code) => {
                metrics::counter!("gateway_requests_total", "outcome" => kind, "code" => code)
                    .increment(1);
            }
        }
        if let Some(upstream) = outcome.upstream {
            self.metrics.upstream_seconds.record(upstream.as_secs_f64());
        }
        tracing::info!(
            method = %method,
            path = path.as_deref(),
            status,
            outcome = outcome.outcome,
            code = outcome.code,
            key_id = outcome.key_id.as_deref(),
            owner = outcome.owner.as_deref(),
            detail = outcome.detail.as_deref(),
            base_sha256 = outcome.base_sha256.as_deref(),
            peer = %conn.peer.ip(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_ms = outcome.upstream.map(|d| d.as_secs_f64() * 1000.0),
            "request"
        );
        Ok(match in_flight {
            // HTTP/2: the request counts as in flight until its response
            // body has been sent.
            Some(in_flight) => response.map(|body| crate::http2::counted(body, in_flight)),
            None => response,
        })
    }

    async fn route(
        &self,
        conn: &ClientConn,
        request: Request<Incoming>,
    ) -> (Response<Body>, Outcome) {
        if let Some(token) = request.headers().get(&self.marker) {
            if let Some(error) = conn.head_verdict.get() {
                // A defect the profile names: answered with its code, as a
                // verifier answers it (spec §8.4, §11.2 step 5), before any
                // other step, since the head cannot be routed.
                let rejection = tessera_server::Rejection::new(error.clone());
                let outcome = Outcome::new("rejected", rejection.code().as_str());
                let mut response = rejection.into_http_response::<Full<Bytes>>().map(boxed);
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                return (response, outcome);
            }
            let refusal =
                HeadRefusal::from_token(token.as_bytes()).unwrap_or(HeadRefusal::Malformed);
            let detail = refusal_detail(refusal, &self.settings);
            return (
                problem(refusal.status(), &detail, true),
                Outcome::new("refused", refusal.token()),
            );
        }
        // The guard lets only HTTP/1.1 heads with exactly one Host through;
        // checked again here so the rule does not depend on it. HTTP/2 has
        // no guard: its head size and field count are checked here.
        if request.version() == http::Version::HTTP_2 {
            if let Some(refusal) = http2_head_refusal(request.headers(), &self.settings) {
                return (
                    problem(
                        refusal.status(),
                        &refusal_detail(refusal, &self.settings),
                        true,
                    ),
                    Outcome::new("refused", refusal.token()),
                );
            }
        }
        if let Some(detail) = host_problem(
            request.version(),
            request.uri().authority(),
            request.headers(),
        ) {
            return (
                problem(StatusCode::BAD_REQUEST, detail, true),
                Outcome::new("refused", "host"),
            );
        }
        if request.method() == http::Method::CONNECT {
            return (
                problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the gateway does not open tunnels (CONNECT); send requests to it directly",
                    true,
                ),
                Outcome::new("refused", "connect"),
            );
        }
        if let Some(why) = path_problem(request.uri().path()) {
            return (
                problem(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "the request path is not in canonical form: {why} (path_not_canonical); send the path as the upstream should see it"
                    ),
                    true,
                ),
                Outcome::new("refused", "path_not_canonical"),
            );
        }
        if let Some(name) = forward::end_to_end_connection_option(request.headers()) {
            return (
                problem(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Connection names the field {name}, which is meant for every recipient; name only hop-by-hop options there (close, keep-alive, te, trailer, upgrade)"
                    ),
                    true,
                ),
                Outcome::new("refused", "connection_option"),
            );
        }
        let (parts, body) = request.into_parts();
        // The body's bytes are charged to the budgets as they arrive; the
        // room is kept until the answer is ready (the bytes are held until
        // they are forwarded).
        let public = first_match(&self.settings.public, &parts.method, parts.uri.path()).is_some();
        let sender = body_sender(public, &parts.headers, &body);
        let room = self.bodies.room(conn.body_budget.as_ref(), sender);
        let expired = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(
            MeteredBody::new(body, room.clone()),
            self.settings.limits.body_timeout,
            Arc::clone(&expired),
        );
        if public {
            // No signature binds a public request to an authority, so the
            // served authorities are checked here: an upstream that builds
            // links from Host (password-reset mails) must never see one the
            // gateway does not serve.
            if let Some(Err(refused)) = self.verifier.as_ref().map(|v| v.check_authority(&parts)) {
                return (
                    problem(
                        StatusCode::MISDIRECTED_REQUEST,
                        &format!(
                            "{}; send the request to an authority this gateway serves",
                            refused.error().detail()
                        ),
                        true,
                    ),
                    Outcome::new("refused", refused.code().as_str()),
                );
            }
        }
        let (identity, bytes) = match (&self.verifier, public) {
            (Some(verifier), false) => {
                let started = Instant::now();
                let verified = verifier.verify(&parts, body).await;
                self.metrics
                    .verify_seconds
                    .record(started.elapsed().as_secs_f64());
                match verified {
                    Ok((identity, bytes)) => (Some(identity), bytes),
                    Err(rejection) => {
                        if expired.load(Ordering::Acquire) {
                            return self.body_timeout();
                        }
                        if let Some(busy) = room.busy() {
                            return busy_with_bodies(busy, &rejection);
                        }
                        if let Some(why) = conn.body_refusal.get() {
                            return body_framing_refused(why);
                        }
                        let code = rejection.code().as_str();
                        if matches!(rejection.code(), tessera_core::ErrorCode::StoreUnavailable) {
                            metrics::counter!("gateway_store_errors_total").increment(1);
                        }
                        let mut outcome = Outcome::new("rejected", code);
                        if let Some(key_id) = rejection.key_id() {
                            outcome.identify(key_id.as_str(), rejection.owner());
                        }
                        outcome.explain(&rejection);
                        return (
                            rejection.into_http_response::<Full<Bytes>>().map(boxed),
                            outcome,
                        );
                    }
                }
            }
            _ if declared_over(&parts.headers, self.settings.body_limit) => {
                return (
                    self.body_too_large(),
                    Outcome::new("refused", "body_too_large"),
                );
            }
            _ => match Limited::new(body, self.settings.body_limit).collect().await {
                Ok(collected) => (None, collected.to_bytes()),
                Err(e) => {
                    if expired.load(Ordering::Acquire) {
                        return self.body_timeout();
                    }
                    if let Some(busy) = room.busy() {
                        return busy_with_bodies(busy, None);
                    }
                    if let Some(why) = conn.body_refusal.get() {
                        return body_framing_refused(why);
                    }
                    if e.is::<http_body_util::LengthLimitError>() {
                        return (
                            self.body_too_large(),
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
        if let Some(found) = crate::method_override::find(&parts.uri, &parts.headers, &bytes) {
            let detail = match found {
                crate::method_override::Found::Override(place) => format!(
                    "the request carries a method override (_method in its {place}), which frameworks such as Rails, Laravel and Symfony obey, while the gateway matched its routes on {}; send the request with the method it means",
                    parts.method
                ),
                crate::method_override::Found::Unreadable(why) => format!(
                    "the request body cannot be checked for a method override (_method): {why}"
                ),
            };
            return (
                problem(StatusCode::BAD_REQUEST, &detail, false),
                Outcome::new("refused", "method_override"),
            );
        }
        if let Some(identity) = &identity {
            if let Some(rule) =
                first_scope_match(&self.settings.routes, &parts.method, parts.uri.path())
            {
                for scope in &rule.scopes {
                    if let Err(rejection) = identity.require_scope(scope) {
                        let mut outcome = Outcome::new("rejected", rejection.code().as_str());
                        outcome.identify(identity.key_id().as_str(), Some(identity.owner()));
                        outcome.explain(&rejection);
                        return (
                            rejection.into_http_response::<Full<Bytes>>().map(boxed),
                            outcome,
                        );
                    }
                }
            }
        }
        let outcome = if public { "public" } else { "forwarded" };
        self.forward(conn, parts, bytes, identity.as_ref(), outcome)
            .await
    }

    fn body_too_large(&self) -> Response<Body> {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is over {} bytes",
                self.settings.body_limit
            ),
            true,
        )
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
        conn: &ClientConn,
        mut parts: http::request::Parts,
        bytes: Bytes,
        identity: Option<&VerifiedIdentity>,
        outcome: &'static str,
    ) -> (Response<Body>, Outcome) {
        let mut out = Outcome::new(outcome, "");
        if let Some(identity) = identity {
            out.identify(identity.key_id().as_str(), Some(identity.owner()));
        }
        let uri = match self.upstream_target(&parts.uri) {
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
        // RFC 9112 §3.2.2: a proxy given an absolute-form target replaces
        // Host with the target's authority, the one that was verified.
        if let Some(authority) = parts.uri.authority() {
            match HeaderValue::from_str(authority.as_str()) {
                Ok(value) => {
                    parts.headers.insert(HOST, value);
                }
                Err(_) => {
                    out.outcome = "refused";
                    out.code = "bad_target";
                    return (
                        problem(
                            StatusCode::BAD_REQUEST,
                            "the request target's authority cannot be sent as Host",
                            false,
                        ),
                        out,
                    );
                }
            }
        }
        forward::request_headers(
            &mut parts.headers,
            &Forwarding {
                peer: &conn.fields,
                // Per request: a reload may change the list.
                trusted: self
                    .settings
                    .trusted_proxies
                    .iter()
                    .any(|block| block.contains(conn.peer.ip())),
                proto: self.proto,
                identity_names: &self.settings.identity,
                identity,
                strip_signature: self.settings.strip_signature_headers,
                drop: &self.settings.drop_client_fields,
            },
        );
        parts.uri = uri;
        let client_version = match parts.version {
            http::Version::HTTP_2 => http::Version::HTTP_2,
            _ => http::Version::HTTP_11,
        };
        if parts.version == http::Version::HTTP_2 {
            forward::join_cookies(&mut parts.headers);
        }
        parts.version = http::Version::HTTP_11;
        if !bytes.is_empty()
            && (self.settings.upstream_close_after_body
                || closes_upstream(&parts.method, identity.is_some()))
        {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let request = Request::from_parts(parts, Full::new(bytes));
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.settings.limits.upstream_timeout,
            self.upstream.send(&conn.link, request),
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
            Ok(Ok(response)) if malformed_answer(&response) => {
                // Dropped unread: the upstream connection closes with it.
                drop(response);
                tracing::warn!("upstream answered 1xx to a request that asked for no upgrade, or framed its answer with both Content-Length and Transfer-Encoding");
                out.outcome = "upstream_error";
                out.code = "upstream_malformed";
                (
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "the upstream's answer could not be forwarded",
                        false,
                    ),
                    out,
                )
            }
            Ok(Ok(response)) => {
                let (mut head, body) = response.into_parts();
                // The answer is the gateway's, on the client's connection:
                // an upstream answering HTTP/1.0 must not make the client
                // read a 1.0 response (no keep-alive) on a 1.1 connection.
                head.version = client_version;
                forward::remove_hop_by_hop(&mut head.headers);
                // Only a verifier's refusal names its code there (spec
                // §12.2): the upstream's own answer, whatever it forwards,
                // must not look like one, or a client would retry a request
                // the upstream has acted on.
                head.headers.remove(tessera_server::ERROR_HEADER);
                if let Some(identity) = identity {
                    for (name, value) in identity.response_headers() {
                        head.headers.insert(name.clone(), value.clone());
                    }
                }
                // From here on the answer streams: an upstream that stops
                // sending is cut after the same timeout as for its head.
                let body =
                    IdleBody::new(body, self.settings.limits.upstream_timeout).boxed_unsync();
                (Response::from_parts(head, body), out)
            }
        }
    }

    /// The origin-form target the upstream gets: the upstream's base path
    /// joined with the request's path and query (shared, not copied, when
    /// the base has no path).
    fn upstream_target(&self, target: &Uri) -> Option<Uri> {
        let prefix = self.settings.upstream.path().trim_end_matches('/');
        let path_and_query = target.path_and_query()?;
        let target = path_and_query.as_str();
        if target.starts_with('/') {
            if prefix.is_empty() {
                return Some(Uri::from(path_and_query.clone()));
            }
            return Uri::try_from(format!("{prefix}{target}")).ok();
        }
        // An absolute-form target with an empty path (`http://host?a=1`):
        // its path is `/` (RFC 9112 §3.2.2), as the signature base had it.
        if target.starts_with('?') {
            return Uri::try_from(format!("{prefix}/{target}")).ok();
        }
        None
    }
}

/// Whether the upstream is asked to close its connection after a request
/// with a body (`Connection: close`, which RFC 9112 §9.6 says a server
/// honours without reading further requests from the connection): when no
/// key vouches for the request (a public route) or its method is one whose
/// handlers seldom read a body (anything but POST, PUT and PATCH), and
/// after every body with `upstream_close_after_body`. An upstream that
/// answers without reading a body it did not expect, on a kept-alive
/// connection, reads that body as the next request, which no one verified
/// or matched against the routes and whose identity fields its sender
/// wrote; closed, it never reads it.
fn closes_upstream(method: &http::Method, verified: bool) -> bool {
    !verified
        || !matches!(
            *method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        )
}

/// An upstream answer the gateway does not forward (502): an interim or
/// `101 (Switching Protocols)` answer reaching this far (the gateway asks
/// for no upgrade; it strips `Upgrade`), or one framed with both
/// `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3: a sign of
/// response splitting, to be handled as an error).
fn malformed_answer<B>(response: &Response<B>) -> bool {
    response.status().is_informational()
        || (response.headers().contains_key(CONTENT_LENGTH)
            && response.headers().contains_key(TRANSFER_ENCODING))
}

/// Why an HTTP/2 request's fields are refused: more of them than
/// `limits.max_headers`, or more bytes than `limits.max_header_bytes` as
/// HTTP/1.1 would carry them (name, `: `, value, CRLF each).
fn http2_head_refusal(headers: &http::HeaderMap, settings: &Settings) -> Option<HeadRefusal> {
    if headers.len() > settings.limits.max_headers {
        return Some(HeadRefusal::TooManyFields);
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (bytes > settings.limits.max_header_bytes).then_some(HeadRefusal::TooLarge)
}

/// Why the request's authority is refused: an HTTP/1.1 request needs
/// exactly one `Host`; an HTTP/2 request carries `:authority` (RFC 9113
/// §8.3.1), with a `Host` equal to it or none, or else exactly one `Host`.
fn host_problem(
    version: http::Version,
    authority: Option<&http::uri::Authority>,
    headers: &http::HeaderMap,
) -> Option<&'static str> {
    let mut hosts = headers.get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if version != http::Version::HTTP_2 {
        return (first.is_none() || second.is_some())
            .then_some("a request needs exactly one Host field");
    }
    match (authority, first, second) {
        (_, Some(_), Some(_)) => Some("a request needs at most one Host field"),
        (None, None, None) => Some("an HTTP/2 request needs :authority or a Host field"),
        (Some(authority), Some(host), None)
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Some("the Host field differs from :authority")
        }
        _ => None,
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
        HeadRefusal::BadLength => "the Content-Length is not a number, or is too large".to_owned(),
        HeadRefusal::BadTransferEncoding => {
            "only Transfer-Encoding: chunked (HTTP/1.1) is accepted".to_owned()
        }
        HeadRefusal::Host => "a request needs exactly one Host field".to_owned(),
        HeadRefusal::Target => {
            "the request target is not a valid URI without a fragment (expected /path?query, or http://host/path with a host, and no '#': a fragment is never sent)"
                .to_owned()
        }
        HeadRefusal::Malformed => "the request head is malformed".to_owned(),
    }
}

/// The answer to a body whose chunked framing the guard could not follow
/// (it stopped passing the body on; the connection closes).
/// `503` for a request whose body found no room (see [`BodyBudget`]); the
/// rest of its body is not read, so an HTTP/1.1 connection closes after it.
/// The answer to a request whose body found no room (`busy`); `verified`
/// is the verifier's rejection of a signed request (its body failed to
/// read), for the key id it names.
fn busy_with_bodies<'a>(
    busy: Busy,
    verified: impl Into<Option<&'a tessera_server::Rejection>>,
) -> (Response<Body>, Outcome) {
    if busy == Busy::Duplicate {
        // A copy of a signed request whose body is still being read: at
        // most one of the two could be accepted, and every client signs
        // each request afresh, so it is answered as the replay it is (spec
        // §11.2, step 6), and the connection closes (its body is unread).
        let replayed = tessera_server::Rejection::new(tessera_core::Refusal::Replayed.into());
        let mut outcome = Outcome::new("rejected", "replayed");
        if let Some(key_id) = verified.into().and_then(|r| r.key_id()) {
            outcome.identify(key_id.as_str(), None);
        }
        outcome.explain(&replayed);
        let mut response = replayed.into_http_response::<Full<Bytes>>().map(boxed);
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return (response, outcome);
    }
    let detail = match busy {
        Busy::Process => "the gateway holds as many request bodies as it may right now; retry shortly",
        Busy::Connection => "this HTTP/2 connection is already sending as many request body bytes as it may; wait for a body to finish, or use another connection",
        Busy::Public => "the gateway holds as many request bodies to public routes as it may right now; retry shortly",
        Busy::Key => "this key is already sending as many request body bytes as it may; wait for one of its bodies to finish",
        Busy::Duplicate => "a request with the same signature is already sending its body",
    };
    let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, detail, true);
    response
        .headers_mut()
        .insert(RETRY_AFTER, http::HeaderValue::from_static("1"));
    (response, Outcome::new("refused", "busy"))
}

/// Whose share of the body budget a request's body is charged to: the
/// public routes', or the key its signature names. The key id and nonce
/// are the claimed ones, read before verification; they are only used when
/// the body's first bytes arrive, which a signed request's body does only
/// once its MAC has verified under that key. A request without a body
/// charges nothing, so it is not parsed for one.
fn body_sender<B: http_body::Body>(public: bool, headers: &http::HeaderMap, body: &B) -> Sender {
    if public {
        return Sender::Public;
    }
    if body.is_end_stream() {
        return Sender::Unknown;
    }
    match tessera_core::ParsedSignature::from_fields(headers) {
        Ok(parsed) => Sender::Key {
            key_id: parsed.key_id().clone(),
            nonce: parsed.nonce().clone(),
        },
        Err(_) => Sender::Unknown,
    }
}

fn body_framing_refused(why: &str) -> (Response<Body>, Outcome) {
    (
        problem(
            StatusCode::BAD_REQUEST,
            &format!("the chunked request body was refused: {why}"),
            true,
        ),
        Outcome::new("refused", "bad_chunked_body"),
    )
}

/// Whether the request's `Content-Length` announces more than `limit`
/// bytes, so it can be refused before a byte of the body is read.
fn declared_over(headers: &http::HeaderMap, limit: usize) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Version};

    use super::host_problem;

    #[test]
    fn authority_rules_per_version() {
        let hosts = |values: &[&'static str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append(http::header::HOST, HeaderValue::from_static(v));
            }
            map
        };
        let authority: http::uri::Authority = "api.example.com".parse().expect("authority");
        let ok = |v, a, h: &[&'static str]| host_problem(v, a, &hosts(h)).is_none();
        // HTTP/1.1: exactly one Host, whatever the target.
        assert!(ok(Version::HTTP_11, None, &["api.example.com"]));
        assert!(ok(Version::HTTP_11, Some(&authority), &["other.example"]));
        assert!(!ok(Version::HTTP_11, None, &[]));
        assert!(!ok(Version::HTTP_11, Some(&authority), &[]));
        assert!(!ok(Version::HTTP_11, None, &["a", "a"]));
        // HTTP/2: :authority, with no Host or an equal one; or one Host.
        assert!(ok(Version::HTTP_2, Some(&authority), &[]));
        assert!(ok(Version::HTTP_2, Some(&authority), &["API.example.com"]));
        assert!(ok(Version::HTTP_2, None, &["api.example.com"]));
        assert!(!ok(Version::HTTP_2, Some(&authority), &["other.example"]));
        assert!(!ok(
            Version::HTTP_2,
            Some(&authority),
            &["api.example.com", "api.example.com"]
        ));
        assert!(!ok(Version::HTTP_2, None, &[]));
    }
}
