//! The signature base (RFC 9421 §2.5) restricted to the tessera-v1 components.

use std::fmt;

use http::header::COOKIE;
use http::HeaderName;

use crate::component::{Component, CONTENT_DIGEST_FIELD};
use crate::error::{err, ErrorCode, Result};
use crate::key::HmacSha256;
use crate::request::{Fields, RequestView};

/// Where signature-base bytes go: straight into the HMAC when signing, or into a buffer for debugging.
pub(crate) trait BaseSink {
    fn put(&mut self, bytes: &[u8]);
}

/// Room for a typical base (a GET with a few extra headers is ~450 bytes),
/// so most requests reach the HMAC in a single `update`.
const MAC_BUFFER_LEN: usize = 512;

/// Feeds the HMAC in large batches: the base arrives as ~25 short pieces,
/// and per-call overhead in `update` would otherwise cost more than the
/// hashing itself.
///
/// It borrows the key's prepared state and copies it only once the bytes
/// are hashed (at [`BufferedMac::finish`], or when a long base spills
/// over): the copy is made where it is used, and the buffer is never
/// moved with a state inside it.
pub(crate) struct BufferedMac<'k> {
    key: &'k HmacSha256,
    /// The key's state with the spilled bytes hashed, once a base has
    /// outgrown the buffer.
    mac: Option<HmacSha256>,
    buf: [u8; MAC_BUFFER_LEN],
    len: usize,
}

impl<'k> BufferedMac<'k> {
    pub(crate) fn new(key: &'k HmacSha256) -> Self {
        BufferedMac {
            key,
            mac: None,
            buf: [0; MAC_BUFFER_LEN],
            len: 0,
        }
    }

    /// The key's state with every buffered byte hashed. The buffer is
    /// left empty.
    #[inline]
    pub(crate) fn finish(&mut self) -> HmacSha256 {
        let mut mac = match self.mac.take() {
            Some(mac) => mac,
            None => self.key.clone(),
        };
        hmac::Mac::update(&mut mac, &self.buf[..self.len]);
        self.len = 0;
        mac
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        let key = self.key;
        let mac = self.mac.get_or_insert_with(|| key.clone());
        hmac::Mac::update(mac, &self.buf[..self.len]);
        self.len = 0;
        if bytes.len() > MAC_BUFFER_LEN {
            hmac::Mac::update(mac, bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }
}

impl BaseSink for BufferedMac<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.spill(bytes),
        }
    }
}

impl BaseSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the base for `components` over `request`.
///
/// `content_digest` overrides the request's `Content-Digest` field (the signer
/// covers the value it is about to add). `params` is the serialized inner list
/// with parameters, the value of `"@signature-params"`.
pub(crate) fn write_base<'c, F: Fields + ?Sized, S: BaseSink>(
    sink: &mut S,
    request: &RequestView<'_, F>,
    components: impl IntoIterator<Item = &'c Component>,
    content_digest: Option<&[u8]>,
    params: &str,
) -> Result<()> {
    // Field lines of a covered `cookie` received over HTTP/1.1 (spec §8.6).
    let mut cookie_lines = 0;
    for component in components {
        // Each arm starts its line with a constant, which the compiler
        // copies inline instead of calling `memcpy` for a few bytes.
        match component {
            Component::Method => {
                sink.put(b"\"@method\": ");
                sink.put(request.method().as_bytes());
            }
            Component::Authority => {
                sink.put(b"\"@authority\": ");
                sink.put(request.authority().as_bytes());
            }
            Component::Path => {
                sink.put(b"\"@path\": ");
                sink.put(request.path().as_bytes());
            }
            Component::Query => {
                sink.put(b"\"@query\": ?");
                sink.put(request.query().unwrap_or("").as_bytes());
            }
            Component::Field(name) => {
                sink.put(b"\"");
                sink.put(name.as_str().as_bytes());
                sink.put(b"\": ");
                match content_digest {
                    Some(digest) if *name.header_name() == CONTENT_DIGEST_FIELD => sink.put(digest),
                    _ => {
                        let name = name.header_name();
                        if name != COOKIE {
                            write_field(sink, request.fields(), name, b", ")?;
                        } else if request.joins_cookie_crumbs() {
                            write_field(sink, request.fields(), name, b"; ")?;
                        } else {
                            cookie_lines = write_field(sink, request.fields(), name, b", ")?;
                        }
                    }
                }
            }
        }
        sink.put(b"\n");
    }
    // Once every covered field is in, as a signer checks it (spec §10 step
    // 6): the order of codes is the same on both sides.
    if cookie_lines > 1 {
        return Err(cookie_lines_error(cookie_lines));
    }
    sink.put(b"\"@signature-params\": ");
    sink.put(params.as_bytes());
    Ok(())
}

/// A covered `cookie` in `lines` field lines over HTTP/1.1 (spec §8.6, §10
/// step 6): a client sends one line (RFC 6265 §5.4). A signer refuses such a
/// request, and a verifier rejects it, with the same code: joined with `, `
/// like any field, several lines would verify where an application reads
/// them as separate cookies (a relay could split a signed `a=1, b=2`).
pub(crate) fn cookie_lines_error(lines: usize) -> crate::Error {
    crate::Error::new(
        ErrorCode::InvalidFieldValue,
        format!("the request has {lines} Cookie lines and cookie is covered: a covered cookie is one Cookie line, the cookies joined with \"; \" (RFC 6265 section 5.4)"),
    )
}

/// The field's lines, trimmed, joined with `separator` (`, `; `; ` for the
/// `cookie` crumbs of an HTTP/2 request, spec §8.6). Returns how many lines
/// it joined.
fn write_field<F: Fields + ?Sized, S: BaseSink>(
    sink: &mut S,
    fields: &F,
    name: &HeaderName,
    separator: &[u8],
) -> Result<usize> {
    let mut lines = 0;
    for raw in fields.values(name) {
        let value = trim_ows(raw);
        if has_forbidden_octet(value) {
            return err(
                ErrorCode::InvalidFieldValue,
                format!(
                    "field \"{name}\" contains a control character (CR, LF, NUL or other) or an octet above 0x7E (obs-text), which tessera-v1 does not sign"
                ),
            );
        }
        if lines > 0 {
            sink.put(separator);
        }
        sink.put(value);
        lines += 1;
    }
    if lines == 0 {
        return err(
            ErrorCode::MissingComponent,
            format!("covered field \"{name}\" is not present in the request"),
        );
    }
    Ok(lines)
}

/// Any byte below 0x20 other than HTAB, DEL, or any byte above 0x7F: the
/// signature base is US-ASCII (RFC 9421 §2.5), so obs-text is refused rather
/// than left for peers to decode as Latin-1 or UTF-8. Branch-free so it vectorizes.
fn has_forbidden_octet(value: &[u8]) -> bool {
    value.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b >= 0x7f)
    })
}

/// The value with leading and trailing SP and HTAB removed (RFC 9110 §5.5).
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The exact bytes that were (or would be) signed, for debugging mismatches.
///
/// `Display` writes the exact signed bytes (use [`SignatureBase::as_bytes`]
/// when a field value is not UTF-8). [`SignatureBase::redacted`] hides the
/// query and header values so the base can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureBase {
    bytes: Vec<u8>,
}

impl SignatureBase {
    pub(crate) fn build<'c, F: Fields + ?Sized>(
        request: &RequestView<'_, F>,
        components: impl IntoIterator<Item = &'c Component>,
        content_digest: Option<&[u8]>,
        params: &str,
    ) -> Result<Self> {
        let mut bytes = Vec::with_capacity(512);
        write_base(&mut bytes, request, components, content_digest, params)?;
        Ok(SignatureBase { bytes })
    }

    /// The exact signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Hex SHA-256 of the base, safe to show to a caller for comparison.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&self.bytes))
    }

    /// A form for logs: component names, method, authority, path and
    /// parameters are kept; the query and header values are replaced by their length.
    pub fn redacted(&self) -> RedactedSignatureBase<'_> {
        RedactedSignatureBase(self)
    }
}

impl fmt::Display for SignatureBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

impl fmt::Debug for SignatureBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignatureBase")
            .field(&self.redacted().to_string())
            .finish()
    }
}

/// The log-safe form of a [`SignatureBase`]; see [`SignatureBase::redacted`].
pub struct RedactedSignatureBase<'a>(&'a SignatureBase);

impl fmt::Display for RedactedSignatureBase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.bytes.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let text = String::from_utf8_lossy(line);
            let shown = [
                "\"@method\": ",
                "\"@authority\": ",
                "\"@path\": ",
                "\"@signature-params\": ",
            ]
            .iter()
            .any(|p| text.starts_with(p));
            match text.find("\": ") {
                Some(split) if !shown => {
                    let value_len = text.len() - split - 3;
                    write!(f, "{}\": <{value_len} bytes redacted>", &text[..split])?;
                }
                _ => f.write_str(&text)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::MANDATORY;
    use crate::request::Scheme;

    #[test]
    fn field_values_are_trimmed_and_joined() {
        let headers = [
            ("X-A", " one "),
            ("x-a", "\ttwo  three\t"),
            ("content-digest", "d"),
        ];
        let req =
            RequestView::new("GET", Scheme::Https, "h", "/", None, &headers[..]).expect("view");
        let comps = [Component::field("x-a").expect("field")];
        let base = SignatureBase::build(&req, &comps, None, "()").expect("base");
        assert_eq!(
            base.to_string(),
            "\"x-a\": one, two  three\n\"@signature-params\": ()"
        );
        assert_eq!(
            base.redacted().to_string(),
            "\"x-a\": <15 bytes redacted>\n\"@signature-params\": ()"
        );
    }

    #[test]
    fn control_characters_and_absent_fields_are_rejected() {
        let headers = [("x-a", "a\0b"), ("content-digest", "d")];
        let req =
            RequestView::new("GET", Scheme::Https, "h", "", None, &headers[..]).expect("view");
        let bad = [Component::field("x-a").expect("field")];
        assert_eq!(
            SignatureBase::build(&req, &bad, None, "()").map_err(|e| e.code()),
            Err(ErrorCode::InvalidFieldValue)
        );
        let absent = [Component::field("x-b").expect("field")];
        assert_eq!(
            SignatureBase::build(&req, &absent, None, "()").map_err(|e| e.code()),
            Err(ErrorCode::MissingComponent)
        );
        let base = SignatureBase::build(&req, &MANDATORY, None, "()").expect("base");
        assert!(base
            .to_string()
            .starts_with("\"@method\": GET\n\"@authority\": h\n\"@path\": /\n\"@query\": ?\n"));
    }
}
