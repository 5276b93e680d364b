//! HTTP-level limits of `tessera serve`, checked in front of the verifier:
//! the size and field count of the request head (431) and a deadline for
//! the whole request body (408).
//!
//! These refusals are about the HTTP exchange, not signature verdicts: their
//! `application/problem+json` bodies use type `about:blank` with the status
//! phrase as title and carry no tessera `code` member, so a client can never
//! mistake them for a `urn:tessera:error:*` rejection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use tessera_gateway::deadline::DeadlineBody;
use tessera_gateway::problem::problem_json;
use tessera_server::PROBLEM_JSON;

/// Bytes the HTTP parser accepts beyond twice `--max-header-bytes` before it
/// gives up on a head by itself (with an empty 431).
///
/// The parser must let heads somewhat over the limit through, or they would
/// never reach [`enforce`] and get the explained answer.
pub(crate) const PARSER_HEAD_SLACK: usize = 16 * 1024;

/// The limits [`enforce`] applies; see the `tessera serve` flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest request head, measured by [`head_size`].
    pub(crate) max_header_bytes: usize,
    /// Most header field lines in a request.
    pub(crate) max_headers: usize,
    /// Time the whole body has, from the moment the head is parsed.
    pub(crate) body_timeout: Duration,
}

impl Limits {
    /// The HTTP parser's own head size limit: twice ours plus
    /// [`PARSER_HEAD_SLACK`].
    pub(crate) fn parser_max_header_size(&self) -> usize {
        self.max_header_bytes
            .saturating_mul(2)
            .saturating_add(PARSER_HEAD_SLACK)
    }

    /// The HTTP parser's own field count limit: twice ours.
    pub(crate) fn parser_max_headers(&self) -> usize {
        self.max_headers.saturating_mul(2)
    }
}

/// Why a request was refused, attached to the refusal response so the
/// access log can say it.
#[derive(Debug, Clone)]
pub(crate) struct Refusal(pub(crate) String);

/// The size of a request head as [`enforce`] counts it: the request line
/// (`METHOD SP target SP HTTP/1.1 CRLF`) plus `name + value + 4` bytes
/// (`": "` and CRLF) per field line. That is the size of the head as sent
/// without optional whitespace, and it does not depend on how the parser
/// buffered it.
pub(crate) fn head_size(request: &Request) -> usize {
    let uri = request.uri();
    let target = if uri.scheme().is_some() {
        uri.to_string().len()
    } else {
        uri.path_and_query().map_or(1, |p| p.as_str().len())
    };
    let request_line = request.method().as_str().len() + 1 + target + 1 + "HTTP/1.1\r\n".len();
    request
        .headers()
        .iter()
        .fold(request_line, |sum, (name, value)| {
            sum.saturating_add(name.as_str().len() + value.len() + 4)
        })
}

/// Middleware: refuses heads over the limits with 431 and puts the body
/// under the deadline, turning a missed deadline into 408.
pub(crate) async fn enforce(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    let size = head_size(&request);
    if size > limits.max_header_bytes {
        return refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request head is {size} bytes; this server accepts at most {} (--max-header-bytes)",
                limits.max_header_bytes
            ),
        );
    }
    let fields = request.headers().len();
    if fields > limits.max_headers {
        return refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {fields} header fields; this server accepts at most {} (--max-headers)",
                limits.max_headers
            ),
        );
    }

    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody::new(
            body,
            limits.body_timeout,
            Arc::clone(&expired),
        ))
    });
    let response = next.run(request).await;
    // The verifier reports an unreadable body as a digest mismatch; the flag
    // tells the real reason apart.
    if expired.load(Ordering::Acquire) {
        return refusal(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive completely within {} s (--body-timeout)",
                limits.body_timeout.as_secs()
            ),
        );
    }
    response
}

/// A problem+json refusal (`type` `about:blank`) that closes the connection:
/// the rest of the request was not read, so the connection cannot be reused.
fn refusal(status: StatusCode, detail: String) -> Response {
    let body = problem_json(status, &detail);
    let mut response = (
        status,
        [
            (CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (CONNECTION, HeaderValue::from_static("close")),
        ],
        body,
    )
        .into_response();
    response.extensions_mut().insert(Refusal(detail));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_size_counts_the_request_line_and_each_field_line() {
        let request = Request::builder()
            .method("GET")
            .uri("/a?b=1")
            .header("host", "x")
            .header("x-pad", "abc")
            .body(Body::empty())
            .expect("request");
        // "GET /a?b=1 HTTP/1.1\r\n" + "host: x\r\n" + "x-pad: abc\r\n"
        assert_eq!(head_size(&request), 21 + 9 + 12);
    }

    #[test]
    fn the_parser_lets_heads_over_the_limit_through() {
        let limits = Limits {
            max_header_bytes: 16384,
            max_headers: 100,
            body_timeout: Duration::from_secs(30),
        };
        assert_eq!(limits.parser_max_header_size(), 2 * 16384 + 16384);
        assert_eq!(limits.parser_max_headers(), 200);
    }
}
