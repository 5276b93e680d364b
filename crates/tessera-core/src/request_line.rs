//! The request line of an HTTP/1.x head, read as received, for verifiers
//! that read the head themselves (`tessera gateway`'s head guard, the
//! offline `tessera verify`).
//!
//! An HTTP parser such as httparse refuses a method that is not a token or
//! a target holding an octet outside visible ASCII as a malformed head,
//! while this profile names both defects (`invalid_field_value`, spec §8.2,
//! §8.4, §8.5). A verifier that reads the head must answer with the code,
//! so it needs the line's parts even when its parser refuses them: every
//! such verifier takes them from here, and so answers the same bytes alike.

use crate::request::is_tchar;

/// The parts of a request line: `method SP request-target SP HTTP-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestLine<'a> {
    /// The method as received (possibly empty, or not a token).
    pub method: &'a [u8],
    /// The request-target as received.
    pub target: &'a [u8],
    /// The version as received (it starts with `HTTP/`).
    pub version: &'a [u8],
    /// Offset in the head where the field lines start (after the line's LF).
    pub fields_start: usize,
}

impl<'a> RequestLine<'a> {
    /// The request line at the start of `head`, after any empty lines (CRLF
    /// or LF, which RFC 9112 §2.2 lets a server skip; a bare CR is not one):
    /// `None` unless it ends with LF (a CR before it is dropped) and splits
    /// at SP into exactly three parts, the last starting with `HTTP/`.
    pub fn split(head: &'a [u8]) -> Option<Self> {
        let skipped = Self::empty_lines(head);
        let rest = &head[skipped..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let mut parts = line.split(|&b| b == b' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !version.starts_with(b"HTTP/") {
            return None;
        }
        Some(RequestLine {
            method,
            target,
            version,
            fields_start: skipped + end + 1,
        })
    }

    /// The length of the empty lines (CRLF or LF) at the start of `head`.
    pub fn empty_lines(head: &[u8]) -> usize {
        let mut at = 0;
        loop {
            match &head[at..] {
                [b'\n', ..] => at += 1,
                [b'\r', b'\n', ..] => at += 2,
                _ => return at,
            }
        }
    }

    /// Whether `head`, whose request line has no LF yet, may still turn out to
    /// be a line that [`RequestLine::split`] takes: at most two SP so far, and
    /// a third part, if any, that starts like `HTTP/`. A reader that must
    /// answer with the profile's code whatever the segmentation waits for the
    /// rest of such a line, and refuses any other at once.
    pub fn may_become_one(head: &[u8]) -> bool {
        let rest = &head[Self::empty_lines(head)..];
        // The version so far, and whatever follows a third SP.
        let mut parts = rest.split(|&b| b == b' ').skip(2);
        match (parts.next(), parts.next()) {
            (_, Some(_)) => false,
            (Some(version), None) => {
                let n = version.len().min(5);
                version[..n] == b"HTTP/"[..n]
            }
            (None, None) => true,
        }
    }

    /// Whether the line holds a defect this profile names with a code: a
    /// method that is not a token (spec §8.2) or a target with an octet
    /// outside visible ASCII (spec §8.4, §8.5). Such a line goes to the
    /// verifier's step 5 even though an HTTP parser refuses it; any other
    /// line an HTTP parser refuses is a malformed head.
    pub fn names_a_profile_defect(&self) -> bool {
        self.method.is_empty()
            || !self.method.iter().all(|&b| is_tchar(b))
            || !self.target.iter().all(|&b| (0x21..=0x7e).contains(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::RequestLine;

    #[test]
    fn splits_after_empty_lines_and_names_profile_defects() {
        let line =
            RequestLine::split(b"\r\n\nGE@T /caf\xe9 HTTP/1.2\r\nHost: h\r\n\r\n").expect("a line");
        assert_eq!(
            (line.method, line.target, line.version),
            (&b"GE@T"[..], &b"/caf\xe9"[..], &b"HTTP/1.2"[..])
        );
        assert_eq!(
            &b"\r\n\nGE@T /caf\xe9 HTTP/1.2\r\nHost: h\r\n\r\n"[line.fields_start..],
            b"Host: h\r\n\r\n"
        );
        assert!(line.names_a_profile_defect());
        for (head, defect) in [
            (&b"GET /a HTTP/1.1\n"[..], false),
            (b" /a HTTP/1.1\r\n", true),
            (b"GET /a\tb HTTP/1.1\r\n", true),
            (b"GET /a\rb HTTP/1.1\r\n", true),
            (b"G\xe9T /a HTTP/1.1\r\n", true),
            (b"GET  HTTP/1.1\r\n", false),
        ] {
            let line = RequestLine::split(head).expect("a line");
            assert_eq!(line.names_a_profile_defect(), defect, "{head:?}");
        }
        // A bare CR is not an empty line: it stays in the method.
        let line = RequestLine::split(b"\rGET /a HTTP/1.1\r\n\r\n").expect("a line");
        assert_eq!(line.method, b"\rGET");
        assert!(line.names_a_profile_defect());
        for (partial, may) in [
            (&b"GE@T /caf"[..], true),
            (b"\r\nGE@T", true),
            (b"GE@T /a HT", true),
            (b"GE@T /a HTTP/1", true),
            (b"GE@T /a XTTP", false),
            (b"GE@T /a HTTP/1.1 x", false),
            (b"\x16\x03\x01 a b c", false),
        ] {
            assert_eq!(RequestLine::may_become_one(partial), may, "{partial:?}");
        }
        for head in [
            &b"GET /a HTTP/1.1"[..],
            b"GET /a b HTTP/1.1\r\n",
            b"GET /a\r\n",
            b"GET /a FTP/1.1\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(RequestLine::split(head), None, "{head:?}");
        }
    }
}
