//! A refused request and its `application/problem+json` response.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde::Serialize;
use tessera_core::challenge::SERVER_TIME_HEADER;
use tessera_core::{Error, ErrorCode, KeyId};

/// The default `WWW-Authenticate` realm.
pub const DEFAULT_REALM: &str = "tessera";

/// Media type of rejection bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The response field naming the code of a verifier's refusal (spec §12.2),
/// on every rejection. A client retries a `503 store_unavailable` or
/// `store_reset` only when the field is there, since the verifier refused
/// the request before the application saw it. So the application's own
/// answers must not carry it: [`crate::VerifySignatureLayer`] removes it
/// from the `503` and `429` answers of the service it wraps, and `tessera
/// gateway` from everything the upstream sends.
pub const ERROR_HEADER: &str = "tessera-error";

/// Why a request was refused: the spec's error code and detail, plus what
/// the response carries besides them.
///
/// Turn it into an HTTP response with [`Rejection::into_http_response`] (the
/// middleware does this), or, with the `axum` feature, return it from a
/// handler.
#[derive(Clone)]
pub struct Rejection {
    error: Error,
    realm: Arc<str>,
    // Boxed: rejections are the cold path, and a small Rejection keeps
    // `Result<_, Rejection>` cheap to move on the hot one.
    extras: Option<Box<Extras>>,
}

#[derive(Clone, Default)]
struct Extras {
    /// Inline storage makes a key id 132 bytes; it lives here, behind the box.
    key_id: Option<KeyId>,
    /// For logs only: never in the problem body.
    owner: Option<String>,
    server_time: Option<u64>,
    challenge: Option<String>,
    base_sha256: Option<String>,
    debug_base: Option<String>,
    headers: Option<http::HeaderMap>,
}

impl Rejection {
    /// A rejection for `error`, with the default realm and no extras.
    #[cold]
    #[inline(never)]
    pub fn new(error: Error) -> Self {
        Rejection {
            error,
            realm: Arc::from(DEFAULT_REALM),
            extras: None,
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn with_realm(mut self, realm: &Arc<str>) -> Self {
        self.realm = Arc::clone(realm);
        self
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn with_key_id(mut self, key_id: &KeyId) -> Self {
        self.extras.get_or_insert_with(Box::default).key_id = Some(key_id.clone());
        self
    }

    /// The owner of the request's key, for a refusal of a request whose
    /// signature verified (replayed, rate limited): who it was.
    #[cold]
    #[inline(never)]
    pub(crate) fn with_owner(mut self, owner: &str) -> Self {
        self.extras.get_or_insert_with(Box::default).owner = Some(owner.to_owned());
        self
    }

    pub(crate) fn with_server_time(mut self, now: u64, challenge: String) -> Self {
        let extras = self.extras.get_or_insert_with(Box::default);
        extras.server_time = Some(now);
        extras.challenge = Some(challenge);
        self
    }

    pub(crate) fn with_base(mut self, sha256: String, debug_base: Option<String>) -> Self {
        let extras = self.extras.get_or_insert_with(Box::default);
        extras.base_sha256 = Some(sha256);
        extras.debug_base = debug_base;
        self
    }

    /// Adds a header to the response (for example `Retry-After` on a
    /// `rate_limited` refusal). The problem's own headers (`Content-Type`,
    /// `Cache-Control`, `WWW-Authenticate`) cannot be replaced this way.
    #[must_use]
    pub fn with_header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.extras
            .get_or_insert_with(Box::default)
            .headers
            .get_or_insert_with(http::HeaderMap::new)
            .append(name, value);
        self
    }

    fn extras(&self) -> Option<&Extras> {
        self.extras.as_deref()
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// The underlying error (code and detail).
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The HTTP status for the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.error.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The key id named by the request, once it was parsed.
    pub fn key_id(&self) -> Option<&KeyId> {
        self.extras().and_then(|e| e.key_id.as_ref())
    }

    /// The owner of the key, on refusals after the signature verified
    /// (`replayed`, `rate_limited`, `store_reset`, …), for logs and metrics;
    /// it is never sent to the client.
    pub fn owner(&self) -> Option<&str> {
        self.extras().and_then(|e| e.owner.as_deref())
    }

    /// The server's time, sent with `clock_skew`.
    pub fn server_time(&self) -> Option<u64> {
        self.extras().and_then(|e| e.server_time)
    }

    /// The `Tessera-Server-Time` value, sent with `clock_skew` when the key was usable.
    pub fn server_time_challenge(&self) -> Option<&str> {
        self.extras().and_then(|e| e.challenge.as_deref())
    }

    /// Hex SHA-256 of the signature base the server computed, sent with
    /// `bad_signature` so a client can compare it with its own.
    pub fn base_sha256(&self) -> Option<&str> {
        self.extras().and_then(|e| e.base_sha256.as_deref())
    }

    /// The full signature base the server computed; only present when the
    /// verifier was built with `dangerous_debug_signature_base(true)`.
    pub fn debug_signature_base(&self) -> Option<&str> {
        self.extras().and_then(|e| e.debug_base.as_deref())
    }

    /// The `application/problem+json` body.
    pub fn problem_json(&self) -> Bytes {
        let code = self.error.code();
        let problem = Problem {
            kind: format!("urn:tessera:error:{}", code.as_str()),
            title: code.title(),
            status: code.http_status(),
            code: code.as_str(),
            detail: self.error.detail(),
            server_time: self.server_time(),
            base_sha256: self.base_sha256(),
            signature_base: self.debug_signature_base(),
        };
        // Serializing strings and integers into a Vec cannot fail; the
        // fallback keeps the status meaningful if it ever did.
        serde_json::to_vec(&problem)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(b"{}"))
    }

    /// The HTTP response: the status, the problem body, the code in
    /// [`ERROR_HEADER`], `WWW-Authenticate` on every 401, and
    /// `Tessera-Server-Time` when there is a challenge.
    ///
    /// The response's extensions hold the [`ErrorCode`], so that access
    /// logs and metrics further out can name the code of every refusal
    /// (only a 401 carries it in a header).
    pub fn into_http_response<B: From<Bytes>>(mut self) -> Response<B> {
        let mut response = Response::new(B::from(self.problem_json()));
        *response.status_mut() = self.status();
        response.extensions_mut().insert(self.error.code());
        let headers = response.headers_mut();
        if let Some(extra) = self.extras.as_mut().and_then(|e| e.headers.take()) {
            headers.extend(extra);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            ERROR_HEADER,
            HeaderValue::from_static(self.error.code().as_str()),
        );
        if self.status() == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                "Tessera realm=\"{}\", error=\"{}\"",
                self.realm,
                self.error.code().as_str()
            );
            // The realm is checked when the verifier is built, so this parses.
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
        if let Some(value) = self
            .server_time_challenge()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(SERVER_TIME_HEADER, value);
        }
        response
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_base: Option<&'a str>,
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("error", &self.error)
            .field("key_id", &self.key_id())
            .field("server_time", &self.server_time())
            .field("base_sha256", &self.base_sha256())
            .field(
                "debug_base",
                &self.debug_signature_base().map(|_| "** redacted **"),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Rejection::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::Refusal;

    #[test]
    fn problem_shape_and_headers() {
        let r = Rejection::new(Refusal::KeyExpired.into())
            .with_realm(&Arc::from("api"))
            .with_server_time(
                1_700_000_000,
                "time=1700000000, keyid=\"k\", nonce=\"n\", mac=:AA==:".into(),
            );
        let json: serde_json::Value = serde_json::from_slice(&r.problem_json()).expect("json");
        assert_eq!(json["type"], "urn:tessera:error:key_expired");
        assert_eq!(json["code"], "key_expired");
        assert_eq!(json["status"], 401);
        assert_eq!(json["server_time"], 1_700_000_000_u64);
        assert!(json.get("base_sha256").is_none());
        let response: Response<Bytes> = r.into_http_response();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Tessera realm=\"api\", error=\"key_expired\""
        );
        assert!(response.headers().contains_key(SERVER_TIME_HEADER));
        assert_eq!(response.headers()[ERROR_HEADER], "key_expired");

        let scope: Response<Bytes> = Rejection::new(
            Refusal::InsufficientScope {
                scope: "write".into(),
            }
            .into(),
        )
        .into_http_response();
        assert_eq!(scope.status(), 403);
        assert!(!scope.headers().contains_key(WWW_AUTHENTICATE));
    }
}
