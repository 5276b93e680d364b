//! HTTP-level refusals of the gateway itself (431, 400, 408, 502, 504):
//! `application/problem+json` with `type` `about:blank`, the status phrase
//! as `title` and no tessera `code` member, so a client never mistakes them
//! for a signature verdict (those are the verifier's own responses).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use tessera_server::PROBLEM_JSON;

use crate::Body;

/// An RFC 9457 problem in the same member order as the verifier's.
#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
}

/// The problem+json document of an HTTP-level refusal: `type`
/// `about:blank`, the status phrase as `title`, and `detail`.
pub fn problem_json(status: StatusCode, detail: &str) -> String {
    serde_json::to_string(&Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
    })
    // Strings and an integer always serialize; the fallback keeps the status meaningful.
    .unwrap_or_else(|_| String::from("{}"))
}

/// A problem+json response; `close` adds `Connection: close` (the rest of
/// the request was not read, so the connection cannot be reused).
pub fn problem(status: StatusCode, detail: &str, close: bool) -> Response<Body> {
    let body = problem_json(status, detail);
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A complete body.
pub fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
