//! Parsing a captured raw HTTP/1.1 request (head with `httparse`, body per `Content-Length`).
//!
//! The capture is the verifier's input, so it is taken as received: a method
//! or request-target that `httparse` refuses as a token but that stands in a
//! well-formed request line (`method SP target SP HTTP/1.x`) is handed to the
//! verifier, which refuses it with the profile's code in the spec's order
//! (`invalid_field_value`, spec §8.2, §8.4), as `tessera gateway` does; a
//! body shorter than `Content-Length` is kept and marked, so that it is
//! refused at step 7 as a server refuses a body it cannot read whole.

/// Most header lines accepted in a captured request.
const MAX_HEADERS: usize = 128;

/// A parsed request as received: nothing normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRequest {
    /// The method, as received (a token unless the verifier refuses it).
    pub(crate) method: Vec<u8>,
    /// The request target as received (origin-form `/path?query`, or absolute-form).
    pub(crate) target: Vec<u8>,
    /// The header lines in order, names as received.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The body (`Content-Length` bytes, or fewer when [`RawRequest::short_body`]).
    pub(crate) body: Vec<u8>,
    /// `Some(announced length)` when the capture ends before the body does.
    pub(crate) short_body: Option<usize>,
}

impl RawRequest {
    /// Every value of header `name` (case-insensitive), in order.
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses `bytes` as one HTTP/1.1 request.
///
/// # Errors
/// A one-line description when the head is incomplete or invalid, the body
/// is chunked, or anything but empty lines follows the request.
pub(crate) fn parse(bytes: &[u8]) -> Result<RawRequest, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let (head_len, method, target, headers) = match request.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => (
            n,
            request.method.unwrap_or_default().as_bytes().to_vec(),
            request.path.unwrap_or_default().as_bytes().to_vec(),
            owned(request.headers),
        ),
        Ok(httparse::Status::Partial) => return Err(incomplete_head()),
        Err(e) => match request_line_as_received(bytes) {
            Some(parsed) => parsed?,
            None => return Err(format!("not a valid HTTP/1.1 request: {e}")),
        },
    };
    let parsed = RawRequest {
        method,
        target,
        headers,
        body: Vec::new(),
        short_body: None,
    };
    if parsed.values("transfer-encoding").next().is_some() {
        return Err("chunked (Transfer-Encoding) bodies are not supported; capture the request with Content-Length".into());
    }
    let length = content_length(&parsed)?;
    let rest = &bytes[head_len..];
    if rest.len() < length {
        return Ok(RawRequest {
            body: rest.to_vec(),
            short_body: Some(length),
            ..parsed
        });
    }
    // Empty lines may follow (an editor's final newline; RFC 9112 §2.2 has
    // servers skip them before a request line); anything else is a second
    // request or stray bytes, which this verdict would say nothing about.
    let after = &rest[length..];
    if !after.iter().all(|&b| b == b'\r' || b == b'\n') {
        return Err(format!(
            "{} bytes follow the request (its body is the {length} bytes Content-Length announces): the file must hold one request; cut it after the body",
            after.len()
        ));
    }
    Ok(RawRequest {
        body: rest[..length].to_vec(),
        ..parsed
    })
}

fn incomplete_head() -> String {
    "the request head is incomplete (no blank line after the headers?)".into()
}

fn owned(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// A parsed head: its length, the method, the target and the fields.
type Head = (usize, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// The head whose request line `httparse` refused, when that line names a
/// defect the profile has a code for ([`tessera_core::RequestLine`], read as
/// `tessera gateway`'s head guard reads it) and its fields parse; `None` for
/// any other defect.
fn request_line_as_received(bytes: &[u8]) -> Option<Result<Head, String>> {
    let line = tessera_core::RequestLine::split(bytes)?;
    if !line.names_a_profile_defect() {
        return None;
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&bytes[line.fields_start..], &mut slots) {
        Ok(httparse::Status::Complete((n, headers))) => Some(Ok((
            line.fields_start + n,
            line.method.to_vec(),
            line.target.to_vec(),
            owned(headers),
        ))),
        Ok(httparse::Status::Partial) => Some(Err(incomplete_head())),
        Err(_) => None,
    }
}

/// The declared body length (0 when absent); every `Content-Length` must agree.
///
/// A value is one or more ASCII digits (RFC 9110 §8.6), around which only
/// spaces and tabs may stand: a sign, another character or an empty value is
/// refused, as an HTTP server refuses it, so that this offline check accepts
/// no request a server would not.
fn content_length(parsed: &RawRequest) -> Result<usize, String> {
    let mut lengths = parsed.values("content-length").map(|v| {
        let ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
        let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
        let digits = &v[start..end];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err("Content-Length is not a number (one or more digits 0-9)".to_owned());
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| "Content-Length is too large".to_owned())
    });
    match lengths.next() {
        None => Ok(0),
        Some(first) => {
            let first = first?;
            for other in lengths {
                if other? != first {
                    return Err("conflicting Content-Length headers".into());
                }
            }
            Ok(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_and_body() {
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabc\r\n";
        let r = parse(raw).expect("parses");
        assert_eq!(r.method, b"POST");
        assert_eq!(r.target, b"/a?b=1");
        assert_eq!(r.body, b"abc");
        assert_eq!(r.values("x-a").collect::<Vec<_>>(), vec![&b"1"[..], b"2"]);
    }

    #[test]
    fn bare_newlines_and_errors() {
        let r = parse(b"GET / HTTP/1.1\nHost: h\n\n").expect("LF-only lines parse");
        assert!(r.body.is_empty());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n").is_err());
        let short = parse(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc").expect("kept");
        assert_eq!(
            (short.body.as_slice(), short.short_body),
            (&b"abc"[..], Some(9))
        );
        assert!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").is_err());
        assert!(parse(b"NOT HTTP").is_err());
    }

    #[test]
    fn content_length_is_digits_only() {
        let with = |value: &str| {
            parse(format!("POST / HTTP/1.1\r\nContent-Length:{value}\r\n\r\nabc").as_bytes())
        };
        for ok in ["3", " 3 ", "\t3", "003"] {
            assert_eq!(with(ok).expect(ok).body, b"abc", "{ok:?}");
        }
        for bad in ["+3", "-3", "3a", "0x3", "", " ", "3 3", "3,3", "\u{ff}3"] {
            let e = with(bad).expect_err(bad);
            assert!(e.contains("Content-Length"), "{bad:?}: {e}");
        }
        assert!(with("99999999999999999999999").is_err());
    }

    #[test]
    fn anything_after_the_request_but_empty_lines_is_refused() {
        for (capture, follows) in [
            (
                &b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcEXTRA"[..],
                5,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\n\r\nPOST /admin HTTP/1.1\r\n\r\n",
                24,
            ),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\nx", 3),
        ] {
            let e = parse(capture).expect_err("a second request");
            assert!(e.starts_with(&format!("{follows} bytes follow")), "{e}");
        }
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\n").is_ok());
    }

    #[test]
    fn a_request_line_httparse_refuses_reaches_the_verifier_as_received() {
        let r =
            parse(b"\r\nGE@T /caf\xe9?q=\x7f HTTP/1.1\r\nHost: h\r\n\r\n").expect("as received");
        assert_eq!(r.method, b"GE@T");
        assert_eq!(r.target, b"/caf\xe9?q=\x7f");
        assert_eq!(r.values("host").collect::<Vec<_>>(), vec![&b"h"[..]]);
        // Not a request line at all, or a bad field: still malformed.
        for bad in [
            &b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"G\xe9T / FTP/1.1\r\nHost: h\r\n\r\n",
            b"G\xe9T / HTTP/1.1\r\nHo st: h\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
        ] {
            let e = parse(bad).expect_err("malformed");
            assert!(e.starts_with("not a valid HTTP/1.1 request"), "{e}");
        }
    }
}
