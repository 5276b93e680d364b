//! The URLs [`Signer::sign`](crate::Signer::sign) accepts, and how each is
//! split into the scheme, authority, path and query that are signed.

use std::borrow::Cow;

use tessera_core::{Scheme, Target};

use crate::error::ClientError;

/// An absolute `http` or `https` URL, as [`Signer::sign`](crate::Signer::sign)
/// takes it: [`http::Uri`], a URL string (`str`, `String`) and, with the
/// `reqwest` feature, `reqwest::Url`.
///
/// The scheme and authority always come from the URL itself, never from a
/// `Host` header: a signer cannot tell whether a path-only URI (`/v1/me`,
/// what hyper's connection-level client writes on the wire) will go out over
/// `http` or `https`, and guessing wrong gives a signature that fails on a
/// verifier only for some ports. Such a URI is refused with
/// `invalid_field_value`; sign the absolute URL, or give the scheme and
/// authority explicitly to [`Signer::sign_view`](crate::Signer::sign_view)
/// through [`RequestView::new`](crate::RequestView::new).
///
/// The path and query are signed exactly as written (spec §8.10): no
/// decoding, no re-encoding. A string is split by
/// [`Target::parse_url`](tessera_core::Target::parse_url), without a URL
/// library; an [`http::Uri`] or `reqwest::Url` is signed as that library
/// will send it.
///
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait SignableUrl: sealed::Sealed {}

impl SignableUrl for http::Uri {}
impl SignableUrl for str {}
impl SignableUrl for String {}
#[cfg(feature = "reqwest")]
impl SignableUrl for reqwest::Url {}

pub(crate) mod sealed {
    use super::UrlParts;
    use crate::error::ClientError;

    /// The split itself; not part of the public API.
    pub trait Sealed {
        /// The parts of this URL that a signature covers.
        fn url_parts(&self) -> Result<UrlParts<'_>, ClientError>;
    }
}

/// The covered parts of a URL, borrowed from it where possible.
#[derive(Debug)]
pub struct UrlParts<'a> {
    pub(crate) scheme: Scheme,
    pub(crate) authority: Cow<'a, str>,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

impl sealed::Sealed for http::Uri {
    fn url_parts(&self) -> Result<UrlParts<'_>, ClientError> {
        Target::from_uri(self)
            .map(UrlParts::from)
            .map_err(ClientError::Signing)
    }
}

impl<'a> From<Target<'a>> for UrlParts<'a> {
    fn from(target: Target<'a>) -> Self {
        UrlParts {
            scheme: target.scheme(),
            authority: Cow::Borrowed(target.authority()),
            path: target.path(),
            query: target.query(),
        }
    }
}

impl sealed::Sealed for str {
    fn url_parts(&self) -> Result<UrlParts<'_>, ClientError> {
        Target::parse_url(self)
            .map(UrlParts::from)
            .map_err(ClientError::Signing)
    }
}

impl sealed::Sealed for String {
    fn url_parts(&self) -> Result<UrlParts<'_>, ClientError> {
        self.as_str().url_parts()
    }
}

#[cfg(feature = "reqwest")]
impl sealed::Sealed for reqwest::Url {
    /// `host[:port]` as reqwest sends it in `Host` (the port only when not
    /// the scheme's default; userinfo is never part of it), and the path and
    /// query already percent-encoded by the `url` crate.
    fn url_parts(&self) -> Result<UrlParts<'_>, ClientError> {
        let scheme = Scheme::of_url(self.scheme()).map_err(ClientError::Signing)?;
        // No host gives an empty authority, which signing refuses.
        let host = self.host_str().unwrap_or_default();
        let authority = match self.port() {
            None => Cow::Borrowed(host),
            Some(port) => Cow::Owned(format!("{host}:{port}")),
        };
        Ok(UrlParts {
            scheme,
            authority,
            path: self.path(),
            query: self.query(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;
    use tessera_core::ErrorCode;

    fn parts(p: &UrlParts<'_>) -> (Scheme, String, String, Option<String>) {
        (
            p.scheme,
            p.authority.to_string(),
            p.path.to_owned(),
            p.query.map(str::to_owned),
        )
    }

    #[test]
    fn uris_and_strings_split_alike() {
        for url in [
            "https://API.example.com:8443/a%2Fb/c?x=1&y",
            "http://h/",
            "http://h?q",
            "https://[::1]:9/p",
        ] {
            let uri: http::Uri = url.parse().expect("valid URI");
            let a = parts(&uri.url_parts().expect("absolute"));
            let b = parts(&url.url_parts().expect("absolute"));
            // http::Uri reports "/" for an empty path; both sign "/".
            assert_eq!((a.0, &a.1, &a.3), (b.0, &b.1, &b.3), "{url}");
        }
    }

    #[test]
    fn path_only_and_other_targets_are_refused_with_a_way_out() {
        for (uri, says) in [
            ("/v1/me?x=1", "RequestView::new"),
            ("*", "not absolute"),
            ("example.com:443", "CONNECT"),
            ("ftp://example.com/x", "only http:// and https://"),
        ] {
            let uri: http::Uri = uri.parse().expect("valid URI");
            let err = uri.url_parts().expect_err("refused");
            assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue));
            assert!(err.to_string().contains(says), "{err}");
        }
        let err = "/v1/me".url_parts().expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::InvalidFieldValue));
    }
}
