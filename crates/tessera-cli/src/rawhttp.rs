//! Parsing a captured raw HTTP/1.1 request (head with `httparse`, body per `Content-Length`).

/// Most header lines accepted in a captured request.
const MAX_HEADERS: usize = 128;

/// A parsed request as received: nothing normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRequest {
    /// The method token.
    pub(crate) method: String,
    /// The request target as received (origin-form `/path?query`, or absolute-form).
    pub(crate) target: String,
    /// The header lines in order, names as received.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The body (`Content-Length` bytes).
    pub(crate) body: Vec<u8>,
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
/// is chunked, or the body is shorter than `Content-Length`.
pub(crate) fn parse(bytes: &[u8]) -> Result<RawRequest, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("the request head is incomplete (no blank line after the headers?)".into())
        }
        Err(e) => return Err(format!("not a valid HTTP/1.1 request: {e}")),
    };
    let method = request.method.unwrap_or_default().to_owned();
    let target = request.path.unwrap_or_default().to_owned();
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let parsed = RawRequest {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if parsed.values("transfer-encoding").next().is_some() {
        return Err("chunked (Transfer-Encoding) bodies are not supported; capture the request with Content-Length".into());
    }
    let length = content_length(&parsed)?;
    let rest = &bytes[head_len..];
    if rest.len() < length {
        return Err(format!(
            "the body has {} bytes but Content-Length says {length}",
            rest.len()
        ));
    }
    Ok(RawRequest {
        body: rest[..length].to_vec(),
        ..parsed
    })
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
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcEXTRA";
        let r = parse(raw).expect("parses");
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.body, b"abc");
        assert_eq!(r.values("x-a").collect::<Vec<_>>(), vec![&b"1"[..], b"2"]);
    }

    #[test]
    fn bare_newlines_and_errors() {
        let r = parse(b"GET / HTTP/1.1\nHost: h\n\n").expect("LF-only lines parse");
        assert!(r.body.is_empty());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n").is_err());
        assert!(parse(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc").is_err());
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
}
