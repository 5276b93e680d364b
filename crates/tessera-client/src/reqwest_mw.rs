//! The `reqwest` / `reqwest-middleware` integration.

use std::time::Duration;

use http::{Extensions, StatusCode};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use tessera_core::{BodyDigest, ErrorCode};

use crate::error::ClientError;
use crate::rate_limited::RateLimited;
use crate::signed::SignedRequestInfo;
use crate::signer::{rejection_code, Signer};
use crate::PrecomputedDigest;

/// Default number of redirects [`SignRequestMiddleware`] follows.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

impl Signer {
    /// Signs a `reqwest::Request` whose body is in memory, in place: sets
    /// `Content-Digest`, `Signature-Input` and `Signature`, replacing earlier
    /// values, and returns the nonce and times used. For users of a bare
    /// `reqwest::Client`; [`SignRequestMiddleware`] does this for every
    /// request it sends.
    ///
    /// The URL is signed exactly as reqwest will send it (`Url::path` and
    /// `Url::query`, already percent-encoded by the `url` crate). Covered
    /// headers must be on the request itself: client-wide default headers are
    /// added later, and would go out uncovered.
    ///
    /// Send the request with a client that does not follow redirects (see
    /// [`client_builder`]), and sign again for every retry.
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let signer = tessera_client::Signer::new("k1", &tessera_client::SecretKey::from_bytes(&[1; 32])?)?;
    /// let client = tessera_client::client_builder().build()?;
    /// let mut request = client.post("http://127.0.0.1:8080/v1/orders").body("{}").build()?;
    /// let info = signer.sign_reqwest(&mut request)?;
    /// // client.execute(request).await? ... keep `info.nonce` for a clock_skew challenge.
    /// # let _ = info; Ok(()) }
    /// ```
    ///
    /// A streaming body is refused; sign it with its digest instead:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let signer = tessera_client::Signer::new("k1", &tessera_client::SecretKey::from_bytes(&[1; 32])?)?;
    /// # let client = tessera_client::client_builder().build()?;
    /// # let mut request = client.post("http://127.0.0.1:8080/v1/upload").build()?;
    /// # let digest = tessera_client::BodyDigest::EMPTY;
    /// // `digest`: the SHA-256 of the stream, from a tessera_client::BodyHasher.
    /// let signed = signer.sign(request.method().as_str(), request.url(), request.headers(), &digest)?;
    /// signed.apply_to_headers(request.headers_mut());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::StreamingBodyWithoutDigest`] for a streaming body;
    /// otherwise as [`Signer::sign`]. Nothing is set on the request then.
    pub fn sign_reqwest(&self, request: &mut Request) -> Result<SignedRequestInfo, ClientError> {
        let digest = match request.body() {
            None => BodyDigest::EMPTY,
            Some(body) => match body.as_bytes() {
                Some(bytes) => BodyDigest::of(bytes),
                None => return Err(ClientError::StreamingBodyWithoutDigest),
            },
        };
        self.sign_reqwest_with(request, &digest)
    }

    /// Signs `request` for a body with digest `digest`, in place.
    fn sign_reqwest_with(
        &self,
        request: &mut Request,
        digest: &BodyDigest,
    ) -> Result<SignedRequestInfo, ClientError> {
        let signed = self.sign(
            request.method().as_str(),
            request.url(),
            request.headers(),
            digest,
        )?;
        signed.apply_to_headers(request.headers_mut());
        Ok(signed.into_info())
    }
}

/// The redirect policy a client that sends signed requests must use:
/// [`reqwest::redirect::Policy::none`].
///
/// reqwest follows redirects below the middleware stack, so every hop it
/// followed would carry the signature computed for the first URL: rejected
/// by the server for a new path (`bad_signature`), and leaked to another
/// origin for a cross-origin `Location`. With this policy the 3xx comes back
/// to [`SignRequestMiddleware`], which re-signs and follows same-origin
/// redirects itself.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::none()
}

/// A `reqwest::ClientBuilder` with [`redirect_policy`] set. Add TLS,
/// timeouts and the like as usual, but do not change the redirect policy.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(redirect_policy())
}

/// `reqwest-middleware` middleware that signs every request with a
/// [`Signer`], recovers once from clock skew, and follows redirects with a
/// fresh signature per hop.
///
/// # Every attempt is signed afresh
///
/// Each request this middleware sends, the first attempt, the retry after
/// `clock_skew` and every redirect hop, is signed anew from an unsigned copy
/// of the request: a new nonce and a `created` read from the clock at that
/// moment (spec §10). A signature is never sent twice; a copy would be
/// rejected as `replayed`. The middleware retries nothing else (no retry on
/// `503` or on connection errors): put retry middleware before it, as below,
/// so each of its attempts reaches the signer too.
///
/// # Order
///
/// Attach it **after** (inside) any retry middleware such as
/// `reqwest_retry::RetryTransientMiddleware`: middleware runs in attach order,
/// so every retry attempt then reaches the signer and gets a fresh nonce and
/// timestamp. Attached before the retry middleware, each retry would resend
/// the same nonce and be rejected as `replayed`.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tessera_client::{client_builder, SignRequestMiddleware, Signer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let signer = Signer::new("k1", &tessera_core::SecretKey::from_bytes(&[1; 32])?)?;
/// let client = ClientBuilder::new(client_builder().build()?)
///     // .with(RetryTransientMiddleware::new_with_policy(retry_policy)) // first: retries
///     .with(SignRequestMiddleware::new(signer)) // last: signs each attempt
///     .build();
/// # let _ = client; Ok(()) }
/// ```
///
/// # Bodies
///
/// In-memory bodies are hashed. A streaming body is refused with
/// [`ClientError::StreamingBodyWithoutDigest`] unless the request carries a
/// [`PrecomputedDigest`] extension
/// (`RequestBuilder::with_extension(PrecomputedDigest::new(digest))`); such a
/// request cannot be cloned, so it is neither retried after `clock_skew` nor
/// redirected (the 401 or 3xx is returned).
///
/// # Clock skew
///
/// On `401` with `WWW-Authenticate: Tessera ..., error="clock_skew"` the
/// middleware checks the `Tessera-Server-Time` challenge with
/// [`Signer::apply_skew_challenge`]. If it verifies, the offset is adopted
/// (by every clone of the signer) and the request is re-signed with a fresh
/// nonce and sent once more. A challenge that does not verify is logged at
/// `warn` and the 401 is returned untouched.
///
/// This happens at most once per call, redirects included (spec §13.3): a
/// later `clock_skew` for the same logical request, on the retry or on any
/// redirect hop, is returned to the caller without adopting its offset.
///
/// # Redirects
///
/// The client must not follow redirects itself (use [`client_builder`] or
/// [`redirect_policy`]). The middleware follows up to
/// [`DEFAULT_MAX_REDIRECTS`] hops ([`SignRequestMiddleware::max_redirects`]):
/// same-origin always, another origin only if allowed with
/// [`SignRequestMiddleware::allow_redirects_to`]; otherwise the 3xx is
/// returned untouched and nothing is sent to the other origin. Each hop is
/// signed afresh. `301`/`302`/`303` turn a non-`GET`/`HEAD` request into a
/// bodiless `GET`; `307`/`308` keep method and body. A cross-origin hop drops
/// `Authorization`, `Cookie` and `Proxy-Authorization`.
///
/// The [`SignedRequestInfo`] of the last signature sent is put in the
/// response's extensions.
#[derive(Debug, Clone)]
pub struct SignRequestMiddleware {
    signer: Signer,
    max_redirects: usize,
    allowed_origins: Vec<Origin>,
    rate_limit_wait: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default(),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        self.scheme == url.scheme()
            && Some(self.host.as_str()) == url.host_str()
            && self.port == url.port_or_known_default()
    }
}

impl SignRequestMiddleware {
    /// Signs with `signer`, follows up to [`DEFAULT_MAX_REDIRECTS`]
    /// same-origin redirects.
    pub fn new(signer: Signer) -> Self {
        SignRequestMiddleware {
            signer,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            allowed_origins: Vec::new(),
            rate_limit_wait: None,
        }
    }

    /// On `429 rate_limited` with a `Retry-After` of at most `cap`, waits
    /// that long and sends the request once more, signed afresh (off by
    /// default: the 429 is returned, with a [`RateLimited`] in the
    /// response's extensions). A longer `Retry-After`, a second 429 or a
    /// streaming body returns the 429.
    #[must_use]
    pub fn wait_on_rate_limit(mut self, cap: Duration) -> Self {
        self.rate_limit_wait = Some(cap);
        self
    }

    /// Follows at most `hops` redirects; `0` returns every 3xx to the caller.
    #[must_use]
    pub fn max_redirects(mut self, hops: usize) -> Self {
        self.max_redirects = hops;
        self
    }

    /// Also follows redirects to the origin (scheme, host, port) of `url`,
    /// signing them with the same key. Only do this for origins that verify
    /// this key: the signed request is sent there.
    #[must_use]
    pub fn allow_redirects_to(mut self, url: &Url) -> Self {
        if let Some(origin) = Origin::of(url) {
            if !self.allowed_origins.contains(&origin) {
                self.allowed_origins.push(origin);
            }
        }
        self
    }

    /// The signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    fn sign(
        &self,
        request: &mut Request,
        digest: Option<&BodyDigest>,
    ) -> reqwest_middleware::Result<SignedRequestInfo> {
        match digest {
            Some(d) => self.signer.sign_reqwest_with(request, d),
            None => self.signer.sign_reqwest(request),
        }
        .map_err(reqwest_middleware::Error::middleware)
    }

    /// Signs and sends once, retrying once after an authenticated
    /// `clock_skew` if `skew_budget` still allows it. Returns the response
    /// and a still-unsent copy of the request (for redirects), when the body
    /// could be cloned.
    ///
    /// `skew_budget` belongs to the logical request, across redirect hops
    /// (spec §13.3: at most one skew retry per request, and a second
    /// `clock_skew` is reported to the caller). It is spent as soon as a
    /// challenge verifies and its offset is adopted, retried or not.
    async fn send(
        &self,
        mut request: Request,
        digest: Option<&BodyDigest>,
        extensions: &mut Extensions,
        next: Next<'_>,
        skew_budget: &mut bool,
    ) -> reqwest_middleware::Result<(Response, Option<Request>)> {
        let mut spare = request.try_clone();
        let info = self.sign(&mut request, digest)?;
        let mut response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED
            || rejection_code(response.headers()) != Some(ErrorCode::ClockSkew)
        {
            response.extensions_mut().insert(info);
            return Ok((response, spare));
        }
        if !*skew_budget {
            tracing::warn!(
                key_id = %self.signer.key_id(),
                "a second clock_skew for the same request; not adjusting the clock again and not retrying"
            );
            response.extensions_mut().insert(info);
            return Ok((response, spare));
        }
        match self
            .signer
            .apply_skew_challenge(response.headers(), &info.nonce)
        {
            Ok(offset) => {
                *skew_budget = false;
                let Some(mut retry) = spare.take() else {
                    tracing::debug!(
                        key_id = %self.signer.key_id(),
                        offset,
                        "clock offset corrected; the request has a streaming body and is not retried"
                    );
                    response.extensions_mut().insert(info);
                    return Ok((response, None));
                };
                tracing::debug!(key_id = %self.signer.key_id(), offset, "retrying once after clock_skew");
                // Read the small problem document so the connection can be reused.
                let _ = response.bytes().await;
                spare = retry.try_clone();
                let info = self.sign(&mut retry, digest)?;
                let mut response = next.run(retry, extensions).await?;
                response.extensions_mut().insert(info);
                Ok((response, spare))
            }
            Err(error) => {
                tracing::warn!(
                    key_id = %self.signer.key_id(),
                    %error,
                    "refusing a clock_skew challenge that does not verify; not retrying"
                );
                response.extensions_mut().insert(info);
                Ok((response, spare))
            }
        }
    }

    /// The next hop for a redirect response, or `None` to hand the 3xx back.
    fn next_hop(&self, response: &Response, spare: Option<Request>) -> Option<(Request, bool)> {
        let status = response.status();
        let mut request = spare?;
        let location = response
            .headers()
            .get(http::header::LOCATION)?
            .to_str()
            .ok()?;
        let target = request.url().join(location).ok()?;
        if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
            return None;
        }
        let same_origin = Origin::of(request.url()).is_some_and(|o| o.matches(&target));
        if !same_origin && !self.allowed_origins.iter().any(|o| o.matches(&target)) {
            tracing::debug!(
                key_id = %self.signer.key_id(),
                status = status.as_u16(),
                "not following a redirect to another origin"
            );
            return None;
        }
        let mut body_dropped = false;
        match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => {
                if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
                    *request.method_mut() = http::Method::GET;
                }
                *request.body_mut() = None;
                body_dropped = true;
                let headers = request.headers_mut();
                for name in [
                    http::header::CONTENT_TYPE,
                    http::header::CONTENT_LENGTH,
                    http::header::CONTENT_ENCODING,
                    http::header::TRANSFER_ENCODING,
                ] {
                    headers.remove(name);
                }
            }
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {}
            _ => return None,
        }
        if !same_origin {
            let headers = request.headers_mut();
            for name in [
                http::header::AUTHORIZATION,
                http::header::COOKIE,
                http::header::PROXY_AUTHORIZATION,
                http::header::WWW_AUTHENTICATE,
            ] {
                headers.remove(name);
            }
        }
        *request.url_mut() = target;
        Some((request, body_dropped))
    }
}

#[async_trait::async_trait]
impl Middleware for SignRequestMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut digest = extensions.get::<PrecomputedDigest>().map(|d| d.digest());
        let mut request = request;
        let mut hops = 0;
        // One skew retry for the whole logical request, redirects included.
        let mut skew_budget = true;
        let mut rate_limit_budget = true;
        loop {
            let (mut response, mut spare) = self
                .send(
                    request,
                    digest.as_ref(),
                    extensions,
                    next.clone(),
                    &mut skew_budget,
                )
                .await?;
            if let Some(limited) = RateLimited::from_response(response.status(), response.headers())
            {
                let wait = limited.retry_after().filter(|wait| {
                    rate_limit_budget && self.rate_limit_wait.is_some_and(|cap| *wait <= cap)
                });
                match (wait, spare.take()) {
                    (Some(wait), Some(retry)) => {
                        rate_limit_budget = false;
                        tracing::debug!(key_id = %self.signer.key_id(), ?wait, "rate_limited; waiting, then retrying once signed afresh");
                        let _ = response.bytes().await;
                        tokio::time::sleep(wait).await;
                        request = retry;
                        continue;
                    }
                    (_, unused) => {
                        spare = unused;
                        response.extensions_mut().insert(limited);
                    }
                }
            }
            if !response.status().is_redirection() || hops >= self.max_redirects {
                return Ok(response);
            }
            let Some((next_request, body_dropped)) = self.next_hop(&response, spare) else {
                return Ok(response);
            };
            if body_dropped {
                digest = None;
            }
            hops += 1;
            request = next_request;
        }
    }
}
