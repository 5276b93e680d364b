//! Splitting a URL (signer side) or a received request-target (verifier
//! side) into the parts a signature covers, byte for byte.
//!
//! Nothing here decodes, re-encodes or validates: the split is purely
//! syntactic, so that the path and query reach the signature base exactly as
//! written. The octet rules are checked once, in one place, by
//! [`crate::RequestView::new`] (signer) and step 5 of verification, which
//! share [`crate::check_path`], [`crate::check_query`] and
//! [`crate::normalize_authority`]. A URL library is not used on purpose: they
//! refuse characters a verifier accepts (`"` `<` `>` `\` `^` `` ` `` `{` `}`
//! `|`), decode percent-encoded hosts, or re-encode paths.

use crate::error::{err, ErrorCode, Result};
use crate::request::Scheme;

/// The parts of an absolute `http` or `https` URL that a signature covers,
/// exactly as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Splits `scheme://authority/path?query#fragment` (RFC 3986 §3).
    ///
    /// The scheme must be `http` or `https` (any case). The fragment, which
    /// is never sent, is dropped. The authority, path and query are returned
    /// verbatim and checked when the request view is built: see
    /// [`crate::RequestView::new`].
    ///
    /// # Errors
    /// `invalid_field_value` when the URL is not absolute or its scheme is
    /// neither `http` nor `https`.
    pub fn parse_url(url: &'a str) -> Result<Self> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return err(
                ErrorCode::InvalidFieldValue,
                "the URL must be absolute: http://host/path or https://host/path",
            );
        };
        let scheme = Scheme::of_url(scheme)?;
        let without_fragment = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = without_fragment
            .find(['/', '?'])
            .unwrap_or(without_fragment.len());
        let (authority, path_and_query) = without_fragment.split_at(authority_end);
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        Ok(Target {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// The parts of an absolute `http` or `https` [`http::Uri`], as the
    /// `http` crate will send them.
    ///
    /// A path-only URI (origin-form, `/v1/me`, what hyper's connection-level
    /// client writes) is refused rather than completed from `Host`: a signer
    /// cannot tell whether it will go out over `http` or `https`, and a wrong
    /// guess gives a signature that fails only for some ports. Name the
    /// scheme and authority with [`crate::RequestView::new`] instead.
    ///
    /// # Errors
    /// `invalid_field_value` when the URI is not absolute, is authority-form
    /// (CONNECT), or its scheme is neither `http` nor `https`.
    pub fn from_uri(uri: &'a http::Uri) -> Result<Self> {
        let Some(scheme) = uri.scheme_str() else {
            return err(
                ErrorCode::InvalidFieldValue,
                if uri.authority().is_some() {
                    "an authority-form target (CONNECT) cannot be signed"
                } else if uri.path().starts_with('/') {
                    "the URI is path-only (origin-form, as hyper's connection-level client \
                     sends it) and names no scheme or authority: sign the absolute URL \
                     (https://host/path?query), or name the scheme and authority with \
                     RequestView::new(method, Scheme::Https, host, path, query, &headers)"
                } else {
                    "the URI is not absolute: sign an http:// or https:// URL"
                },
            );
        };
        let scheme = Scheme::of_url(scheme)?;
        let Some(authority) = uri.authority() else {
            return err(ErrorCode::InvalidFieldValue, "the URI has no authority");
        };
        Ok(Target {
            scheme,
            authority: authority.as_str(),
            path: uri.path(),
            query: uri.query(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The authority as written (not normalized).
    pub fn authority(&self) -> &'a str {
        self.authority
    }

    /// The raw path; empty when the URL has none (it is signed as `/`).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The raw query without `?`; `Some("")` for a bare `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }
}

/// A received request-target (RFC 9112 §3.2), split without judging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawTarget<'a> {
    /// Origin-form (`/path?query`) or absolute-form (`http://host/path?query`).
    Split {
        /// The authority of an absolute-form target (or HTTP/2 `:authority`).
        authority: Option<&'a [u8]>,
        /// The raw path, possibly empty for absolute-form.
        path: &'a [u8],
        /// The raw query without `?`.
        query: Option<&'a [u8]>,
    },
    /// Asterisk-form, authority-form, a relative path or a scheme other
    /// than http(s): nothing tessera-v1 can sign.
    Unsignable(&'static str),
}

impl<'a> RawTarget<'a> {
    /// Splits the request-target bytes of a request line.
    pub(crate) fn split(target: &'a [u8]) -> Self {
        if target.first() == Some(&b'/') {
            let (path, query) = split_query(target);
            return RawTarget::Split {
                authority: None,
                path,
                query,
            };
        }
        if target == b"*" {
            return RawTarget::Unsignable(
                "an asterisk-form target (*) cannot be signed: @path needs an absolute path",
            );
        }
        let Some(colon) = target.windows(3).position(|w| w == b"://") else {
            return RawTarget::Unsignable(
                "the request target is neither origin-form (/path) nor absolute-form (http://host/path)",
            );
        };
        let scheme = &target[..colon];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return RawTarget::Unsignable("only http and https request targets can be signed");
        }
        let rest = &target[colon + 3..];
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let (path, query) = split_query(&rest[end..]);
        RawTarget::Split {
            authority: Some(&rest[..end]),
            path,
            query,
        }
    }
}

fn split_query(path_and_query: &[u8]) -> (&[u8], Option<&[u8]>) {
    match path_and_query.iter().position(|&b| b == b'?') {
        Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
        None => (path_and_query, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_verbatim() {
        let t = Target::parse_url("HTTPS://Api.Ex%61mple.com:8443/a/{b}|\"c\"?q=<x>&r=`^`#frag")
            .expect("splits");
        assert_eq!(t.scheme(), Scheme::Https);
        assert_eq!(t.authority(), "Api.Ex%61mple.com:8443");
        assert_eq!(t.path(), "/a/{b}|\"c\"");
        assert_eq!(t.query(), Some("q=<x>&r=`^`"));
        let bare = Target::parse_url("http://h?").expect("splits");
        assert_eq!((bare.path(), bare.query()), ("", Some("")));
        let none = Target::parse_url("http://h#x?y").expect("splits");
        assert_eq!((none.path(), none.query()), ("", None));
        assert!(Target::parse_url("ftp://h/").is_err());
        assert!(Target::parse_url("/relative").is_err());
    }

    #[test]
    fn request_targets_split_verbatim() {
        assert_eq!(
            RawTarget::split(b"/a?b?c"),
            RawTarget::Split {
                authority: None,
                path: b"/a",
                query: Some(b"b?c")
            }
        );
        assert_eq!(
            RawTarget::split(b"http://h:1?q"),
            RawTarget::Split {
                authority: Some(b"h:1"),
                path: b"",
                query: Some(b"q")
            }
        );
        for unsignable in [&b"*"[..], b"h:443", b"a/b", b"ftp://h/", b""] {
            assert!(
                matches!(RawTarget::split(unsignable), RawTarget::Unsignable(_)),
                "{unsignable:?}"
            );
        }
    }
}
