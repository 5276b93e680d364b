//! A borrowed view of the parts of a request that a signature covers.

use std::borrow::Cow;

use http::header::HOST;
use http::HeaderName;

use crate::error::{err, ErrorCode, Result};

/// The URI scheme, which decides the default port dropped from `@authority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `https`, default port 443.
    #[default]
    Https,
    /// `http`, default port 80.
    Http,
}

impl Scheme {
    /// Parses `http` or `https` (case-insensitive).
    pub fn parse(s: &str) -> Option<Scheme> {
        if s.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else if s.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }

    /// The scheme of a URL to be signed: `http` or `https` (any case).
    ///
    /// # Errors
    /// `invalid_field_value` for any other scheme.
    pub fn of_url(s: &str) -> Result<Scheme> {
        Scheme::parse(s).ok_or_else(|| {
            crate::Error::new(
                ErrorCode::InvalidFieldValue,
                "only http:// and https:// URLs can be signed",
            )
        })
    }

    /// `"https"` or `"http"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    fn default_port(self) -> &'static str {
        match self {
            Scheme::Https => "443",
            Scheme::Http => "80",
        }
    }
}

/// Normalizes an authority for `@authority`: lowercase, default port removed.
///
/// Borrows when the input is already normal, which is the common case.
///
/// # Errors
/// `invalid_field_value` for an empty authority, userinfo, or bytes outside
/// the authority grammar.
pub fn normalize_authority(authority: &str, scheme: Scheme) -> Result<Cow<'_, str>> {
    if authority.is_empty() {
        return err(ErrorCode::InvalidFieldValue, "the request has no authority");
    }
    if authority.contains('@') {
        return err(
            ErrorCode::InvalidFieldValue,
            "userinfo is not allowed in the authority",
        );
    }
    let (host_end, has_uppercase) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) if is_ip_literal(&authority[1..i]) => (
                i + 1,
                authority[..i].bytes().any(|b| b.is_ascii_uppercase()),
            ),
            _ => {
                return err(
                    ErrorCode::InvalidFieldValue,
                    "invalid IP literal in the authority",
                )
            }
        }
    } else {
        match scan_reg_name(authority.as_bytes()) {
            Some(scan) => scan,
            None => {
                return err(
                    ErrorCode::InvalidFieldValue,
                    "the authority contains invalid characters",
                )
            }
        }
    };
    let host = &authority[..host_end];
    if host.is_empty() {
        return err(ErrorCode::InvalidFieldValue, "the authority has no host");
    }
    let port = match &authority[host_end..] {
        "" => None,
        rest => match rest.strip_prefix(':') {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p),
            _ => {
                return err(
                    ErrorCode::InvalidFieldValue,
                    "the authority's port is not a number",
                )
            }
        },
    };
    // RFC 3986 allows any run of digits; a TCP port is at most 65535, and URL
    // libraries refuse more, so a larger one could never have been sent.
    if let Some(p) = port {
        let digits = p.trim_start_matches('0');
        if digits.len() > 5 || digits.parse::<u32>().is_ok_and(|n| n > 65_535) {
            return err(
                ErrorCode::InvalidFieldValue,
                "the authority's port is larger than 65535",
            );
        }
    }
    // RFC 9110 §4.2.3 / RFC 3986 §6.2.3: an empty port and the scheme's
    // default port (whatever its leading zeros) mean no port. Any other port
    // is kept as spelled, as other RFC 9421 implementations do.
    let canonical_port = match port {
        None | Some("") => None,
        Some(p) if p.trim_start_matches('0') == scheme.default_port() => None,
        Some(p) => Some(p),
    };
    let normal = !has_uppercase
        && canonical_port.map_or(host_end == authority.len(), |p| {
            authority[host_end + 1..] == *p
        });
    if normal {
        return Ok(Cow::Borrowed(authority));
    }
    let mut out = host.to_ascii_lowercase();
    if let Some(p) = canonical_port {
        out.push(':');
        out.push_str(p);
    }
    Ok(Cow::Owned(out))
}

/// RFC 3986 `unreserved` and `sub-delims`: the bytes a `reg-name` may hold besides `%HH`.
const REG_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// Scans an RFC 3986 `reg-name` (or IPv4) host up to the port separator in
/// one pass: unreserved, sub-delims and well-formed percent-encodings.
/// Returns where the host ends and whether it has uppercase letters, or
/// `None` when a byte is outside the grammar.
fn scan_reg_name(authority: &[u8]) -> Option<(usize, bool)> {
    let mut has_uppercase = false;
    let mut i = 0;
    while i < authority.len() {
        match authority[i] {
            b':' => break,
            b'%' => {
                let hex = authority.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                // The whole host is lowercased, hex digits of escapes included.
                has_uppercase |= hex.iter().any(u8::is_ascii_uppercase);
                i += 3;
            }
            b if REG_NAME_BYTES[usize::from(b)] => {
                has_uppercase |= b.is_ascii_uppercase();
                i += 1;
            }
            _ => return None,
        }
    }
    Some((i, has_uppercase))
}

/// The inside of an RFC 3986 IP-literal: an IPv6 address or `v<hex>.<chars>`.
fn is_ip_literal(inner: &str) -> bool {
    if let Some(future) = inner.strip_prefix(['v', 'V']) {
        return future.split_once('.').is_some_and(|(ver, rest)| {
            !ver.is_empty()
                && ver.bytes().all(|b| b.is_ascii_hexdigit())
                && !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b))
        });
    }
    inner.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Where the header fields of a request come from.
pub trait Fields {
    /// Every value of field `name` in the order received; names match case-insensitively.
    fn values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]>;
}

impl Fields for http::HeaderMap {
    fn values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

/// An ordered list of `(name, value)` pairs with duplicates kept, as in the test vectors.
impl<N: AsRef<str>, V: AsRef<[u8]>> Fields for [(N, V)] {
    fn values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.iter()
            .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name.as_str()))
            .map(|(_, v)| v.as_ref())
    }
}

/// The covered parts of a request, borrowed.
#[derive(Debug, Clone)]
pub struct RequestView<'a, F: Fields + ?Sized> {
    method: &'a str,
    authority: Cow<'a, str>,
    path: &'a str,
    query: Option<&'a str>,
    fields: &'a F,
    /// Received over HTTP/2 or HTTP/3: `cookie` lines are joined with `; `.
    cookie_crumbs: bool,
}

impl<'a, F: Fields + ?Sized> RequestView<'a, F> {
    /// Builds a view from raw parts.
    ///
    /// `authority` is normalized here; `path` and `query` are used exactly as
    /// given (raw, as sent on the wire). An empty path means `/`.
    ///
    /// # Errors
    /// `invalid_field_value` when the method is not a token, `fields` hold
    /// more than one `Host` line, the authority is invalid, or the path or
    /// query hold an octet outside visible ASCII (or `#`).
    pub fn new(
        method: &'a str,
        scheme: Scheme,
        authority: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        fields: &'a F,
    ) -> Result<Self> {
        check_method(method.as_bytes())?;
        // A request with two Host lines is refused by every verifier (RFC
        // 9112 §3.2), whichever authority it was signed for.
        single_host(fields)?;
        check_path(path.as_bytes())?;
        if let Some(query) = query {
            check_query(query.as_bytes())?;
        }
        Ok(Self::checked(
            method,
            normalize_authority(authority, scheme)?,
            path,
            query,
            fields,
        ))
    }

    /// A view of a request given as a URL string, the way a signer takes
    /// it: [`crate::Target::parse_url`] splits the URL verbatim (spec §8.10),
    /// then [`RequestView::new`] checks every part.
    ///
    /// # Errors
    /// As [`crate::Target::parse_url`] and [`RequestView::new`].
    pub fn from_url(method: &'a str, url: &'a str, fields: &'a F) -> Result<Self> {
        let target = crate::Target::parse_url(url)?;
        Self::new(
            method,
            target.scheme(),
            target.authority(),
            target.path(),
            target.query(),
            fields,
        )
    }

    /// A view of parts that already passed [`check_method`], [`check_path`],
    /// [`check_query`] and [`normalize_authority`].
    pub(crate) fn checked(
        method: &'a str,
        authority: Cow<'a, str>,
        path: &'a str,
        query: Option<&'a str>,
        fields: &'a F,
    ) -> Self {
        RequestView {
            method,
            authority,
            path: if path.is_empty() { "/" } else { path },
            query,
            fields,
            cookie_crumbs: false,
        }
    }

    /// Marks the request as received over HTTP/2 or HTTP/3, where a
    /// `Cookie` may arrive split into several field lines ("crumbs") that
    /// the protocol defines as one value joined with `; ` (RFC 9113
    /// §8.2.3, RFC 9114 §4.2.1): the `cookie` component then joins its
    /// lines with `; ` instead of `, ` (spec §8.6), which is the value an
    /// HTTP/1.1 signer sent and signed as one line.
    pub fn with_cookie_crumbs(mut self, over_http2: bool) -> Self {
        self.cookie_crumbs = over_http2;
        self
    }

    /// Whether `cookie` lines are joined with `; ` (see
    /// [`RequestView::with_cookie_crumbs`]).
    pub fn joins_cookie_crumbs(&self) -> bool {
        self.cookie_crumbs
    }

    /// Replaces the authority (already normalized), as a verifier does with its configured value.
    pub fn with_authority(mut self, authority: &'a str) -> Self {
        self.authority = Cow::Borrowed(authority);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        self.method
    }

    /// The normalized authority.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The raw path (`/` when empty).
    pub fn path(&self) -> &str {
        self.path
    }

    /// The raw query without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.query
    }

    /// The header fields.
    pub fn fields(&self) -> &F {
        self.fields
    }
}

impl<'a> RequestView<'a, http::HeaderMap> {
    /// A view of an `http` request head, for signing. The URI must be
    /// absolute (`https://host/path`): see [`crate::Target::from_uri`] for
    /// why a path-only URI is refused.
    ///
    /// # Errors
    /// `invalid_field_value` when the URI is not absolute, or a part of it
    /// breaks the profile's rules (as [`RequestView::new`]).
    pub fn from_parts(parts: &'a http::request::Parts) -> Result<Self> {
        Self::from_head(&parts.method, &parts.uri, &parts.headers)
    }

    /// As [`RequestView::from_parts`], from the separate pieces of a request head.
    ///
    /// # Errors
    /// As [`RequestView::from_parts`].
    pub fn from_head(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
    ) -> Result<Self> {
        let target = crate::Target::from_uri(uri)?;
        RequestView::new(
            method.as_str(),
            target.scheme(),
            target.authority(),
            target.path(),
            target.query(),
            headers,
        )
    }
}

/// Checks a method: an RFC 9110 token, signed exactly as sent (case kept).
///
/// # Errors
/// `invalid_field_value`.
pub fn check_method(method: &[u8]) -> Result<()> {
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return err(
            ErrorCode::InvalidFieldValue,
            "the method is not a valid token",
        );
    }
    Ok(())
}

/// Octets allowed in a path or query besides `/`-start and `?`: visible
/// ASCII (0x21 to 0x7E) other than `#`.
const fn target_octet_ok(b: u8) -> bool {
    (b > b' ') & (b < 0x7f) & (b != b'#')
}

/// Checks a raw path as it goes on the wire (spec §8.4): empty (meaning
/// `/`), or `/` followed by visible ASCII other than `?` and `#`.
///
/// # Errors
/// `invalid_field_value`, saying which octet is wrong and where.
pub fn check_path(path: &[u8]) -> Result<()> {
    if !path.is_empty() && path[0] != b'/' {
        return err(
            ErrorCode::InvalidFieldValue,
            "the path must start with '/': asterisk-form (*), authority-form and relative targets cannot be signed",
        );
    }
    // Branch-free so it vectorizes: paths are the longest covered values.
    let bad = path
        .iter()
        .fold(false, |bad, &b| bad | !target_octet_ok(b) | (b == b'?'));
    if bad {
        return bad_target_octet("path", path, |b| target_octet_ok(b) && b != b'?');
    }
    Ok(())
}

/// Checks a raw query (without its `?`): visible ASCII other than `#`.
///
/// # Errors
/// `invalid_field_value`, saying which octet is wrong and where.
pub fn check_query(query: &[u8]) -> Result<()> {
    if query
        .iter()
        .fold(false, |bad, &b| bad | !target_octet_ok(b))
    {
        return bad_target_octet("query", query, target_octet_ok);
    }
    Ok(())
}

#[cold]
fn bad_target_octet(part: &str, bytes: &[u8], ok: impl Fn(u8) -> bool) -> Result<()> {
    let (at, b) = bytes
        .iter()
        .enumerate()
        .find(|(_, &b)| !ok(b))
        .map_or((0, 0), |(i, &b)| (i, b));
    let what = match b {
        b' ' => "a space".to_owned(),
        b'#' => "'#' (a fragment is never sent)".to_owned(),
        b'?' => "'?'".to_owned(),
        0x80.. => format!("octet 0x{b:02x}, which is not ASCII (percent-encode it)"),
        _ => format!("control octet 0x{b:02x}"),
    };
    err(
        ErrorCode::InvalidFieldValue,
        format!(
            "the {part} contains {what} at offset {at}; only visible ASCII other than '#' is allowed"
        ),
    )
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The value of the only `Host` line, trimmed of SP and HTAB; `None`
/// without one.
///
/// # Errors
/// `invalid_field_value` for more than one `Host` line (RFC 9112 §3.2).
pub(crate) fn single_host<F: Fields + ?Sized>(fields: &F) -> Result<Option<&[u8]>> {
    let mut hosts = fields.values(&HOST);
    let first = hosts.next();
    if hosts.next().is_some() {
        return err(
            ErrorCode::InvalidFieldValue,
            "the request has more than one Host line",
        );
    }
    Ok(first.map(crate::base::trim_ows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_normalization() {
        let n = |a, s| normalize_authority(a, s).map(|c| c.into_owned());
        assert_eq!(
            n("API.Example.com:443", Scheme::Https).as_deref(),
            Ok("api.example.com")
        );
        assert_eq!(
            n("api.example.com:443", Scheme::Http).as_deref(),
            Ok("api.example.com:443")
        );
        assert_eq!(
            n("api.example.com:80", Scheme::Http).as_deref(),
            Ok("api.example.com")
        );
        assert_eq!(
            n("api.example.com:8443", Scheme::Https).as_deref(),
            Ok("api.example.com:8443")
        );
        assert_eq!(
            n("[2001:DB8::1]:443", Scheme::Https).as_deref(),
            Ok("[2001:db8::1]")
        );
        assert_eq!(
            n("[2001:db8::1]:8443", Scheme::Https).as_deref(),
            Ok("[2001:db8::1]:8443")
        );
        assert_eq!(
            n("example%4Ecom", Scheme::Https).as_deref(),
            Ok("example%4ecom")
        );
        assert_eq!(n("%E1:8443", Scheme::Https).as_deref(), Ok("%e1:8443"));
        assert!(n("ab%4", Scheme::Https).is_err());
        assert!(n("user@host", Scheme::Https).is_err());
        assert!(n("", Scheme::Https).is_err());
        assert!(n("[::1", Scheme::Https).is_err());
        assert!(matches!(
            normalize_authority("a.b", Scheme::Https),
            Ok(Cow::Borrowed(_))
        ));
    }
}
