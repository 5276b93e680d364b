//! A request as a verifier received it, and step 5 of verification: which
//! authority goes into the base, and whether the method, path, query and
//! authority may be signed at all.
//!
//! Every verifier front end (the tower layer, the offline `tessera verify`,
//! the test vectors) goes through [`ReceivedRequest::view`], so they give the
//! same answer to the same bytes, in the order of spec §11.2.

use std::borrow::Cow;

use crate::error::{err, Error, ErrorCode, Result};
use crate::request::{
    check_method, check_path, check_query, normalize_authority, single_host, Fields, RequestView,
    Scheme,
};
use crate::target::RawTarget;

/// How a verifier decides the authority that goes into the base (spec §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorities<'a> {
    /// The received authority, normalized, must be one of these (normalized).
    Served(&'a [String]),
    /// This (normalized) authority is used for every request; `Host` is not
    /// read at all. Only for verifiers that every request reaches through a
    /// proxy that rewrites `Host`.
    Fixed(&'a str),
}

/// A received request before step 5 has looked at its method, target and
/// authority: nothing is rejected when it is built, so that the earlier
/// steps (the signature, the key, the time) report first, as the spec's
/// order requires.
#[derive(Debug, Clone)]
pub struct ReceivedRequest<'a, F: Fields + ?Sized> {
    method: &'a [u8],
    target: RawTarget<'a>,
    fields: &'a F,
    /// The method, path and query as text, when the request was built from
    /// `http` types that already hold them as `&str` (the same bytes as
    /// `method` and `target`): step 5 then skips converting them again.
    text: Option<Text<'a>>,
    /// Received over HTTP/2 or HTTP/3 ([`ReceivedRequest::over_http2`]).
    http2: bool,
}

/// The `http` method and URI a [`RawTarget::Split`] target was taken
/// from, which hold the method, path and query as text (two references:
/// the verifier keeps this across the body read, so it stays small).
#[derive(Debug, Clone, Copy)]
struct Text<'a> {
    method: &'a http::Method,
    uri: &'a http::Uri,
}

impl<'a, F: Fields + ?Sized> ReceivedRequest<'a, F> {
    /// A request from the bytes of its request line: the method and the
    /// request-target exactly as received (origin-form `/p?q`, absolute-form
    /// `https://h/p?q`, or anything else, which step 5 refuses).
    pub fn new(method: &'a [u8], request_target: &'a [u8], fields: &'a F) -> Self {
        ReceivedRequest {
            method,
            target: RawTarget::split(request_target),
            fields,
            text: None,
            http2: false,
        }
    }

    /// Marks the request as received over HTTP/2 or HTTP/3: its `cookie`
    /// lines are then one value joined with `; ` (spec §8.6,
    /// [`RequestView::with_cookie_crumbs`]). [`ReceivedRequest::from_parts`]
    /// sets it from the request's version.
    pub fn over_http2(mut self, yes: bool) -> Self {
        self.http2 = yes;
        self
    }

    /// The header fields.
    pub fn fields(&self) -> &'a F {
        self.fields
    }

    /// Step 5 (spec §11.2): the view whose authority goes into the base.
    ///
    /// The checks run in the spec's order: a missing received authority
    /// (`authority_mismatch`); then the number of `Host` lines, the method,
    /// the path and query and the authority's syntax (`invalid_field_value`);
    /// then membership in the served set (`authority_mismatch`). With
    /// [`Authorities::Fixed`], `Host` is not read and only the method, path
    /// and query are checked.
    ///
    /// # Errors
    /// `authority_mismatch`, `invalid_field_value`.
    ///
    /// The view borrows what the request borrows, not the request itself,
    /// so a caller may drop the request once the view is built (the
    /// verifier keeps only the view across its awaits).
    pub fn view<'s>(
        &self,
        scheme: Scheme,
        authorities: Authorities<'s>,
    ) -> Result<RequestView<'s, F>>
    where
        'a: 's,
    {
        let (target_authority, path, query) = match self.target {
            RawTarget::Split {
                authority,
                path,
                query,
            } => (authority, path, query),
            RawTarget::Unsignable(why) => {
                if let Authorities::Served(_) = authorities {
                    // The missing-authority check still comes first.
                    single_host(self.fields)?.ok_or_else(no_authority)?;
                }
                return err(ErrorCode::InvalidFieldValue, why);
            }
        };
        let received = match authorities {
            Authorities::Fixed(_) => None,
            Authorities::Served(_) => {
                // RFC 9112 §3.2: more than one Host line is a bad request,
                // whatever the form of the target.
                let host = single_host(self.fields)?;
                Some(match target_authority {
                    // RFC 9112 §3.2.2: an absolute-form target's authority
                    // wins over Host.
                    Some(authority) => authority,
                    None => host.ok_or_else(no_authority)?,
                })
            }
        };
        check_method(self.method)?;
        check_path(path)?;
        if let Some(query) = query {
            check_query(query)?;
        }
        // The checks above leave only ASCII: these conversions cannot fail.
        let (method, path, query) = match self.text {
            // The same bytes, already text.
            Some(text) => (text.method.as_str(), text.uri.path(), text.uri.query()),
            None => (
                ascii(self.method)?,
                ascii(path)?,
                query.map(ascii).transpose()?,
            ),
        };
        let authority = match (authorities, received) {
            (Authorities::Fixed(fixed), _) => {
                // The target's own authority is not used, but it is part of
                // the request-target as received, which must parse (spec
                // §11.2 step 5.3: a `#`, userinfo or an empty host there is
                // refused in this mode too). `Host` is still not read.
                if let Some(target_authority) = target_authority {
                    check_authority_syntax(target_authority, scheme)?;
                }
                Cow::Borrowed(fixed)
            }
            (Authorities::Served(served), Some(received)) => {
                let normal = check_authority_syntax(received, scheme)?;
                if !served.iter().any(|a| *a == *normal) {
                    return err(
                        ErrorCode::AuthorityMismatch,
                        format!("authority \"{normal}\" is not served here"),
                    );
                }
                normal
            }
            (Authorities::Served(_), None) => return Err(no_authority()),
        };
        Ok(
            RequestView::checked(method, authority, path, query, self.fields)
                .with_cookie_crumbs(self.http2),
        )
    }
}

/// A received authority checked and normalized as spec §8.3 says.
fn check_authority_syntax(received: &[u8], scheme: Scheme) -> Result<Cow<'_, str>> {
    let received = std::str::from_utf8(received).map_err(|_| {
        Error::new(
            ErrorCode::InvalidFieldValue,
            "the authority contains octets that are not ASCII",
        )
    })?;
    if is_plain_host(received) {
        // What `normalize_authority` returns for it, unchanged.
        Ok(Cow::Borrowed(received))
    } else {
        normalize_authority(received, scheme)
    }
}

impl<'a> ReceivedRequest<'a, http::HeaderMap> {
    /// A request as an `http` server (hyper, axum) hands it over: the URI
    /// carries the authority for absolute-form and HTTP/2 targets.
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        Self::from_head(&parts.method, &parts.uri, &parts.headers)
            .over_http2(parts.version >= http::Version::HTTP_2)
    }

    /// As [`ReceivedRequest::from_parts`], from the pieces of a request head.
    pub fn from_head(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
    ) -> Self {
        let mut text = None;
        let target = match (uri.scheme_str(), uri.authority()) {
            (None, Some(_)) => RawTarget::Unsignable(
                "an authority-form target (CONNECT) cannot be signed: @path needs an absolute path",
            ),
            (Some(s), _) if Scheme::parse(s).is_none() => {
                RawTarget::Unsignable("only http and https request targets can be signed")
            }
            (_, authority) => {
                text = Some(Text { method, uri });
                RawTarget::Split {
                    authority: authority.map(|a| a.as_str().as_bytes()),
                    path: uri.path().as_bytes(),
                    query: uri.query().map(str::as_bytes),
                }
            }
        };
        ReceivedRequest {
            method: method.as_str().as_bytes(),
            target,
            fields: headers,
            text,
            http2: false,
        }
    }
}

/// For a signer that sends the request in origin-form (a client without a
/// forward proxy, `curl`): refuses a `Host` line that names another
/// authority than the target URL's `authority`, both normalized as
/// `@authority` is (spec §10, "A `Host` line and the URL").
///
/// Sent in origin-form, the request reaches the verifier with that `Host`,
/// which step 5 puts in the base instead of the URL's authority, so the
/// signature could never be accepted; refusing it here names the cause
/// instead of leaving the server to answer `bad_signature`. No `Host` line,
/// or one that agrees, passes. The core signer does not call this: it
/// cannot know the form the request will go out in (in absolute-form the
/// target's authority is used and a proxy replaces `Host`).
///
/// # Errors
/// `authority_mismatch` when the two differ; `invalid_field_value` for more
/// than one `Host` line or a `Host` value outside the authority grammar
/// (what a verifier answers for the same request).
pub fn check_host_matches_target<F: Fields + ?Sized>(
    fields: &F,
    scheme: Scheme,
    authority: &str,
) -> Result<()> {
    let Some(host) = single_host(fields)? else {
        return Ok(());
    };
    let host = ascii(host)?;
    let received = normalize_authority(host, scheme)?;
    let target = normalize_authority(authority, scheme)?;
    if received == target {
        return Ok(());
    }
    err(
        ErrorCode::AuthorityMismatch,
        format!(
            "the Host header names `{received}` but the URL's authority is `{target}`: sent as it is, the server would verify the signature against the Host header and refuse it; remove the Host header or put that authority in the URL"
        ),
    )
}

/// A non-empty host of lowercase letters, digits, `.` and `-` only, without
/// a port: a valid reg-name that [`normalize_authority`] returns as it is
/// (no uppercase to fold, no port to drop), so the common case skips it.
fn is_plain_host(authority: &str) -> bool {
    !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn no_authority() -> Error {
    Error::new(
        ErrorCode::AuthorityMismatch,
        "the request names no authority (no Host header and no absolute-form target)",
    )
}

fn ascii(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorCode::InvalidFieldValue, "a request part is not ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_line_must_name_the_target_authority() {
        let check = |host: &[&str], authority: &str| {
            let fields: Vec<(&str, &str)> = host.iter().map(|h| ("Host", *h)).collect();
            check_host_matches_target(&fields[..], Scheme::Https, authority)
        };
        // Absent, equal, or equal once both are normalized.
        for (host, authority) in [
            (&[][..], "api.example.com"),
            (&["api.example.com"][..], "api.example.com"),
            (&["API.Example.com:443"][..], "api.example.com"),
            (&[" api.example.com:8443 "][..], "API.example.com:8443"),
            (&["[::1]:443"][..], "[::1]"),
        ] {
            assert_eq!(check(host, authority), Ok(()), "{host:?} {authority}");
        }
        // Another host or port: named, with the way out.
        for (host, authority) in [
            (&["evil.example"][..], "api.example.com"),
            (&["api.example.com:8443"][..], "api.example.com"),
            (&["api.example.com"][..], "api.example.com:8443"),
        ] {
            let e = check(host, authority).expect_err("differs");
            assert_eq!(e.code(), ErrorCode::AuthorityMismatch, "{host:?}");
            let detail = e.to_string();
            assert!(
                detail.contains("Host header") && detail.contains("remove the Host header"),
                "{detail}"
            );
        }
        // What a verifier refuses as a field value is refused the same way.
        for host in [
            &["a.example", "a.example"][..],
            &["bad host"][..],
            &["u@h"][..],
        ] {
            let e = check(host, "a.example").expect_err("refused");
            assert_eq!(e.code(), ErrorCode::InvalidFieldValue, "{host:?}");
        }
    }

    #[test]
    fn plain_hosts_are_already_normal() {
        for host in ["api.example.com", "a", "x-1.example", "127.0.0.1", "-."] {
            assert!(is_plain_host(host), "{host}");
            for scheme in [Scheme::Https, Scheme::Http] {
                let normal = normalize_authority(host, scheme).expect("valid");
                assert!(matches!(normal, Cow::Borrowed(h) if h == host), "{host}");
            }
        }
        for host in [
            "",
            "API.example.com",
            "a:443",
            "a:8080",
            "a_b",
            "[::1]",
            "a%41",
        ] {
            assert!(!is_plain_host(host), "{host}");
        }
    }
}
