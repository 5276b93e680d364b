//! Method overrides carried in the query or the body of a `POST`.
//!
//! Rails and Sinatra (Rack's `MethodOverride`), Laravel, Symfony and
//! Express's `method-override` treat a `POST` that carries a `_method`
//! parameter as the method it names: `POST /v1/admin/users/1` with
//! `_method=DELETE` reaches the DELETE handler. The gateway matched its
//! route rules on `POST`, so such a request could pass a DELETE rule's
//! scopes by. Override *fields* (`X-HTTP-Method-Override`, …) are removed
//! before forwarding (see [`crate::forward`]); the query and the body are
//! signed and cannot be edited, so a request that carries `_method` there is
//! refused instead.
//!
//! Where the frameworks look, and so where this looks:
//! - the query (Symfony, Express);
//! - a form body, `application/x-www-form-urlencoded`, or a `POST` without
//!   `Content-Type`, which Rack parses as a form;
//! - a `multipart/form-data` part named `_method`;
//! - a top-level `_method` member of a JSON object body (Laravel reads its
//!   input from a JSON body).

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Uri};
use memchr::memmem;

/// The parameter the frameworks read.
const PARAMETER: &str = "_method";

/// Where a `POST` carries a method override, if it does: `"query"`,
/// `"form body"`, `"multipart body"` or `"JSON body"`. Requests with
/// another method are never overridden.
pub fn find(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    // `method` rather than `_method`: a percent-encoded `%5Fmethod`
    // decodes to the parameter too. Most requests stop at this search.
    let mentions = |bytes: &[u8]| memmem::find(bytes, b"method").is_some();
    if uri
        .query()
        .is_some_and(|q| mentions(q.as_bytes()) && form_has_parameter(q.as_bytes()))
    {
        return Some("query");
    }
    if !mentions(body) {
        return None;
    }
    let media_type = headers
        .get(CONTENT_TYPE)
        .map(|v| {
            let v = v.as_bytes();
            let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end])
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match media_type.as_str() {
        "" | "application/x-www-form-urlencoded" => form_has_parameter(body).then_some("form body"),
        "multipart/form-data" => multipart_has_part(body).then_some("multipart body"),
        t if t == "application/json" || t.ends_with("+json") => {
            json_has_member(body).then_some("JSON body")
        }
        _ => None,
    }
}

/// Whether `application/x-www-form-urlencoded` text has a `_method` key.
fn form_has_parameter(form: &[u8]) -> bool {
    form_urlencoded::parse(form).any(|(key, _)| key == PARAMETER)
}

/// Whether a multipart body has a part named `_method`: a
/// `Content-Disposition` line with `name="_method"` (or unquoted).
fn multipart_has_part(body: &[u8]) -> bool {
    const FIELD: &[u8] = b"content-disposition:";
    body.split(|&b| b == b'\n').any(|line| {
        // Only part-header lines are copied (a file's own lines are not).
        if !line
            .get(..FIELD.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(FIELD))
        {
            return false;
        }
        let line = line.to_ascii_lowercase();
        memmem::find(&line, b"name=\"_method\"").is_some()
            || memmem::find(&line, b"name=_method").is_some_and(|at| {
                // Unquoted: the token ends at `;`, whitespace or the line's end.
                line.get(at + b"name=_method".len())
                    .is_none_or(|b| matches!(b, b';' | b' ' | b'\t' | b'\r'))
            })
    })
}

/// Whether a JSON object body has a top-level `_method` member.
fn json_has_member(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|object| object.contains_key(PARAMETER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(uri: &str, content_type: Option<&str>, body: &str) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        if let Some(t) = content_type {
            headers.insert(CONTENT_TYPE, t.parse().expect("content type"));
        }
        find(
            &Method::POST,
            &uri.parse().expect("uri"),
            &headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn overrides_are_found_where_frameworks_read_them() {
        assert_eq!(post("/a?_method=DELETE", None, ""), Some("query"));
        assert_eq!(post("/a?x=1&%5Fmethod=put", None, ""), Some("query"));
        assert_eq!(post("/a", None, "_method=DELETE"), Some("form body"));
        assert_eq!(
            post(
                "/a",
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                "a=1&_method=patch"
            ),
            Some("form body")
        );
        let multipart =
            "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n";
        assert_eq!(
            post("/a", Some("multipart/form-data; boundary=b"), multipart),
            Some("multipart body")
        );
        let unquoted =
            "--b\r\ncontent-disposition: form-data; name=_method\r\n\r\nDELETE\r\n--b--\r\n";
        assert_eq!(
            post("/a", Some("Multipart/Form-Data; boundary=b"), unquoted),
            Some("multipart body")
        );
        assert_eq!(
            post(
                "/a",
                Some("application/json"),
                r#"{"_method":"DELETE","a":1}"#
            ),
            Some("JSON body")
        );
        assert_eq!(
            post(
                "/a",
                Some("application/vnd.api+json"),
                r#"{"_method":"DELETE"}"#
            ),
            Some("JSON body")
        );
    }

    #[test]
    fn other_requests_pass() {
        // Another method, another parameter, or `_method` only as data.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().expect("type"));
        let uri: Uri = "/a?_method=DELETE".parse().expect("uri");
        assert_eq!(find(&Method::PUT, &uri, &headers, b""), None);
        assert_eq!(post("/a?method=x&x_method=y", None, "a=1"), None);
        assert_eq!(
            post(
                "/a",
                Some("application/json"),
                r#"{"note":"_method","x":{"_method":1}}"#
            ),
            None
        );
        assert_eq!(
            post("/a", Some("application/json"), "not json _method"),
            None
        );
        assert_eq!(post("/a", Some("text/plain"), "_method=DELETE"), None);
        let file = "--b\r\nContent-Disposition: form-data; name=\"_methods\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=_method_x\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(
            post("/a", Some("multipart/form-data; boundary=b"), file),
            None
        );
    }
}
