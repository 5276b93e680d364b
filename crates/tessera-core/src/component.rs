//! Covered components: the mandatory floor, extra fields, and what is forbidden.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;

use crate::error::{err, ErrorCode, Result};

/// Most components one signature may cover.
pub const MAX_COMPONENTS: usize = 32;

/// One covered component of a tessera-v1 signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Component {
    /// `"@method"`: the request method as sent.
    Method,
    /// `"@authority"`: host and port, lowercased, default port removed.
    Authority,
    /// `"@path"`: the raw path as sent.
    Path,
    /// `"@query"`: `?` followed by the raw query as sent.
    Query,
    /// A header field, by its (lowercase) name, for example `content-digest`.
    Field(FieldName),
}

/// The name of a covered header field, checked against the profile: a
/// lowercase field-name token that may be covered. Only [`Component::field`]
/// and [`Component::parse`] make one, so every [`Component::Field`] is valid
/// and signers need not check it again per request. It is an `http` name, so
/// verifiers look fields up without parsing it again.
#[derive(Clone)]
pub struct FieldName(Name);

/// Where a field name is kept. A pointer either way, so that a component
/// is two words (16 bytes on 64-bit targets) and a parsed signature's list
/// of them is cheap to move.
#[derive(Clone)]
enum Name {
    /// `content-digest` or a standard name that may be covered (see
    /// [`known_field`]): a static name, shared without allocating or
    /// counting references.
    Known(&'static HeaderName),
    /// Any other name, shared by reference count.
    Other(Arc<HeaderName>),
}

impl FieldName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        self.header_name().as_str()
    }

    /// The name as an `http` header name.
    pub fn header_name(&self) -> &HeaderName {
        match &self.0 {
            Name::Known(name) => name,
            Name::Other(name) => name,
        }
    }
}

/// The static name spelled `name`, if there is one.
fn known(name: &str) -> Option<FieldName> {
    known_field(name).map(|name| FieldName(Name::Known(name)))
}

/// Declares [`known_field`] over a list of field names and the `http`
/// names they spell, so the text and the name are written once, side by
/// side.
macro_rules! known_fields {
    ($($text:literal => $name:expr,)*) => {
        /// The static `http` name for `content-digest` and for every
        /// standard field name that may be covered (the standard names
        /// `http` defines, less the forbidden ones); `None` for any other
        /// text. A `match` on the text: the compiler switches on the length
        /// first, so a few names at most are compared byte by byte.
        fn known_field(name: &str) -> Option<&'static HeaderName> {
            Some(match name {
                CONTENT_DIGEST => &CONTENT_DIGEST_FIELD,
                $($text => {
                    static NAME: HeaderName = $name;
                    &NAME
                })*
                _ => return None,
            })
        }

        /// The texts [`known_field`] knows besides `content-digest`.
        #[cfg(test)]
        const KNOWN_FIELD_TEXTS: &[&str] = &[$($text,)*];
    };
}

known_fields! {
    "accept" => http::header::ACCEPT,
    "accept-charset" => http::header::ACCEPT_CHARSET,
    "accept-encoding" => http::header::ACCEPT_ENCODING,
    "accept-language" => http::header::ACCEPT_LANGUAGE,
    "accept-ranges" => http::header::ACCEPT_RANGES,
    "access-control-allow-credentials" => http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    "access-control-allow-headers" => http::header::ACCESS_CONTROL_ALLOW_HEADERS,
    "access-control-allow-methods" => http::header::ACCESS_CONTROL_ALLOW_METHODS,
    "access-control-allow-origin" => http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
    "access-control-expose-headers" => http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
    "access-control-max-age" => http::header::ACCESS_CONTROL_MAX_AGE,
    "access-control-request-headers" => http::header::ACCESS_CONTROL_REQUEST_HEADERS,
    "access-control-request-method" => http::header::ACCESS_CONTROL_REQUEST_METHOD,
    "age" => http::header::AGE,
    "allow" => http::header::ALLOW,
    "alt-svc" => http::header::ALT_SVC,
    "authorization" => http::header::AUTHORIZATION,
    "cache-control" => http::header::CACHE_CONTROL,
    "cache-status" => http::header::CACHE_STATUS,
    "cdn-cache-control" => http::header::CDN_CACHE_CONTROL,
    "content-disposition" => http::header::CONTENT_DISPOSITION,
    "content-encoding" => http::header::CONTENT_ENCODING,
    "content-language" => http::header::CONTENT_LANGUAGE,
    "content-length" => http::header::CONTENT_LENGTH,
    "content-location" => http::header::CONTENT_LOCATION,
    "content-range" => http::header::CONTENT_RANGE,
    "content-security-policy" => http::header::CONTENT_SECURITY_POLICY,
    "content-security-policy-report-only" => http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
    "content-type" => http::header::CONTENT_TYPE,
    "cookie" => http::header::COOKIE,
    "dnt" => http::header::DNT,
    "date" => http::header::DATE,
    "etag" => http::header::ETAG,
    "expect" => http::header::EXPECT,
    "expires" => http::header::EXPIRES,
    "from" => http::header::FROM,
    "if-match" => http::header::IF_MATCH,
    "if-modified-since" => http::header::IF_MODIFIED_SINCE,
    "if-none-match" => http::header::IF_NONE_MATCH,
    "if-range" => http::header::IF_RANGE,
    "if-unmodified-since" => http::header::IF_UNMODIFIED_SINCE,
    "last-modified" => http::header::LAST_MODIFIED,
    "link" => http::header::LINK,
    "location" => http::header::LOCATION,
    "max-forwards" => http::header::MAX_FORWARDS,
    "origin" => http::header::ORIGIN,
    "pragma" => http::header::PRAGMA,
    "public-key-pins" => http::header::PUBLIC_KEY_PINS,
    "public-key-pins-report-only" => http::header::PUBLIC_KEY_PINS_REPORT_ONLY,
    "range" => http::header::RANGE,
    "referer" => http::header::REFERER,
    "referrer-policy" => http::header::REFERRER_POLICY,
    "refresh" => http::header::REFRESH,
    "retry-after" => http::header::RETRY_AFTER,
    "sec-websocket-accept" => http::header::SEC_WEBSOCKET_ACCEPT,
    "sec-websocket-extensions" => http::header::SEC_WEBSOCKET_EXTENSIONS,
    "sec-websocket-key" => http::header::SEC_WEBSOCKET_KEY,
    "sec-websocket-protocol" => http::header::SEC_WEBSOCKET_PROTOCOL,
    "sec-websocket-version" => http::header::SEC_WEBSOCKET_VERSION,
    "server" => http::header::SERVER,
    "set-cookie" => http::header::SET_COOKIE,
    "strict-transport-security" => http::header::STRICT_TRANSPORT_SECURITY,
    "upgrade-insecure-requests" => http::header::UPGRADE_INSECURE_REQUESTS,
    "user-agent" => http::header::USER_AGENT,
    "vary" => http::header::VARY,
    "warning" => http::header::WARNING,
    "www-authenticate" => http::header::WWW_AUTHENTICATE,
    "x-content-type-options" => http::header::X_CONTENT_TYPE_OPTIONS,
    "x-dns-prefetch-control" => http::header::X_DNS_PREFETCH_CONTROL,
    "x-frame-options" => http::header::X_FRAME_OPTIONS,
    "x-xss-protection" => http::header::X_XSS_PROTECTION,
}

/// Equal names are equal wherever they are kept.
impl PartialEq for FieldName {
    fn eq(&self, other: &Self) -> bool {
        self.header_name() == other.header_name()
    }
}

impl Eq for FieldName {}

impl std::hash::Hash for FieldName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.header_name().hash(state);
    }
}

impl fmt::Debug for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldName({:?})", self.as_str())
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Name of the body digest field, covered on every request.
pub const CONTENT_DIGEST: &str = "content-digest";

/// `Content-Digest` as a typed field name.
pub(crate) static CONTENT_DIGEST_FIELD: HeaderName = HeaderName::from_static(CONTENT_DIGEST);
/// `Signature-Input` as a typed field name.
pub(crate) static SIGNATURE_INPUT_FIELD: HeaderName = HeaderName::from_static("signature-input");
/// `Signature` as a typed field name.
pub(crate) static SIGNATURE_FIELD: HeaderName = HeaderName::from_static("signature");

/// The components every tessera-v1 signature covers, in the order signers emit them.
pub static MANDATORY: [Component; 5] = [
    Component::Method,
    Component::Authority,
    Component::Path,
    Component::Query,
    Component::Field(FieldName(Name::Known(&CONTENT_DIGEST_FIELD))),
];

/// Header fields that may never be covered: intermediaries change them, or
/// they are the signature itself.
const FORBIDDEN_FIELDS: [&str; 14] = [
    "signature",
    "signature-input",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "forwarded",
    "via",
];

impl Component {
    /// The component identifier as it appears in the signature base, without quotes.
    pub fn name(&self) -> &str {
        match self {
            Component::Method => "@method",
            Component::Authority => "@authority",
            Component::Path => "@path",
            Component::Query => "@query",
            Component::Field(name) => name.as_str(),
        }
    }

    /// Parses a component identifier (the content of the sf-string) and applies the profile rules.
    ///
    /// # Errors
    /// `forbidden_component` for derived components outside the floor and for
    /// forbidden fields; `malformed_signature` for names that are not lowercase
    /// field-name tokens.
    pub fn parse(name: &str) -> Result<Component> {
        match name {
            "@method" => return Ok(Component::Method),
            "@authority" => return Ok(Component::Authority),
            "@path" => return Ok(Component::Path),
            "@query" => return Ok(Component::Query),
            _ => {}
        }
        if name.starts_with('@') {
            return err(
                ErrorCode::ForbiddenComponent,
                format!("derived component \"{name}\" is not allowed by tessera-v1"),
            );
        }
        Component::field(name)
    }

    /// A header-field component; `name` must already be lowercase.
    ///
    /// # Errors
    /// As [`Component::parse`].
    pub fn field(name: &str) -> Result<Component> {
        // `content-digest`, covered by every signature, and the standard
        // names share a static name: no validation, no allocation. Only
        // a custom name is validated and kept behind an `Arc`.
        if let Some(known) = known(name) {
            return Ok(Component::Field(known));
        }
        validate_field_name(name)?;
        HeaderName::from_lowercase(name.as_bytes())
            .map(|name| Component::Field(FieldName(Name::Other(Arc::new(name)))))
            .or_else(|_| {
                err(
                    ErrorCode::MalformedSignature,
                    format!("component \"{name}\" is not a field name"),
                )
            })
    }
}

/// The profile's rules for a covered field name, without allocating.
pub(crate) fn validate_field_name(name: &str) -> Result<()> {
    if !name.is_empty() && name.bytes().all(|b| is_lower_tchar(b.to_ascii_lowercase())) {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            // One rule for every API: names are never lowercased silently,
            // so what the caller wrote is what `Signature-Input` lists.
            return err(
                ErrorCode::MalformedSignature,
                format!(
                    "component \"{name}\" must be written in lowercase: use \"{}\"",
                    name.to_ascii_lowercase()
                ),
            );
        }
    } else {
        return err(
            ErrorCode::MalformedSignature,
            format!(
                "component \"{}\" is not a lowercase field name",
                name.escape_default()
            ),
        );
    }
    if FORBIDDEN_FIELDS.contains(&name) || name.starts_with("x-forwarded-") {
        return err(
                ErrorCode::ForbiddenComponent,
                format!("field \"{name}\" may not be covered: intermediaries change it or it is the signature itself"),
            );
    }
    Ok(())
}

fn is_lower_tchar(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.name())
    }
}

/// Checks a whole component list: no duplicates, the floor present, within the size limit.
/// Parses the additional components a signer is asked to cover (after the
/// floor), checking them in the order a verifier checks the list it
/// receives (spec §9.4 and §7.5), so both refuse a list with the same code:
/// a list over the parse limit of 64 items (`malformed_signature`), each
/// name in turn (`malformed_signature`, `forbidden_component`), then the
/// count of 32 (`malformed_signature`), then repeats, a floor component
/// included (`duplicate_component`).
///
/// # Errors
/// As above.
pub fn parse_cover<S: AsRef<str>>(names: &[S]) -> Result<Vec<Component>> {
    // A list this long would not even parse at a verifier (spec §9.4), which
    // reports that before looking at any name.
    if MANDATORY.len() + names.len() > crate::sf::MAX_ITEMS {
        return err(
            ErrorCode::MalformedSignature,
            format!("at most {MAX_COMPONENTS} components may be covered"),
        );
    }
    let extra = names
        .iter()
        .map(|name| Component::parse(name.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    check_cover(&extra)?;
    Ok(extra)
}

/// The list checks of [`parse_cover`] for parsed components.
pub(crate) fn check_cover(extra: &[Component]) -> Result<()> {
    if MANDATORY.len() + extra.len() > MAX_COMPONENTS {
        return err(
            ErrorCode::MalformedSignature,
            format!("at most {MAX_COMPONENTS} components may be covered"),
        );
    }
    for (i, c) in extra.iter().enumerate() {
        if MANDATORY.contains(c) || extra[..i].contains(c) {
            return err(
                ErrorCode::DuplicateComponent,
                format!(
                    "component \"{}\" is covered twice: it is mandatory already or listed twice",
                    c.name()
                ),
            );
        }
    }
    Ok(())
}

pub(crate) fn check_coverage(components: &[Component]) -> Result<()> {
    if components.len() > MAX_COMPONENTS {
        return err(
            ErrorCode::MalformedSignature,
            format!("at most {MAX_COMPONENTS} components may be covered"),
        );
    }
    // One bit per member of the floor, in MANDATORY order.
    let mut covered = 0u8;
    for (i, c) in components.iter().enumerate() {
        let floor_bit = match c {
            Component::Method => Some(0),
            Component::Authority => Some(1),
            Component::Path => Some(2),
            Component::Query => Some(3),
            Component::Field(name) if *name.header_name() == CONTENT_DIGEST_FIELD => Some(4),
            Component::Field(_) => None,
        };
        let duplicate = match floor_bit {
            Some(bit) => {
                let seen = covered & 1 << bit != 0;
                covered |= 1 << bit;
                seen
            }
            None => components[..i].contains(c),
        };
        if duplicate {
            return err(
                ErrorCode::DuplicateComponent,
                format!("component \"{}\" is covered twice", c.name()),
            );
        }
    }
    if let Some(missing) = MANDATORY
        .iter()
        .enumerate()
        .find_map(|(bit, c)| (covered & 1 << bit == 0).then_some(c))
    {
        return err(
            ErrorCode::MissingComponent,
            format!("component \"{}\" must be covered", missing.name()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_rules() {
        assert_eq!(Component::parse("@query"), Ok(Component::Query));
        assert_eq!(
            Component::parse("content-digest"),
            // Equal to a name kept apart from the static table.
            Ok(Component::Field(FieldName(Name::Other(Arc::new(
                CONTENT_DIGEST_FIELD.clone()
            )))))
        );
        for (name, code) in [
            ("@target-uri", ErrorCode::ForbiddenComponent),
            ("@signature-params", ErrorCode::ForbiddenComponent),
            ("x-forwarded-for", ErrorCode::ForbiddenComponent),
            ("signature", ErrorCode::ForbiddenComponent),
            ("host", ErrorCode::ForbiddenComponent),
            ("transfer-encoding", ErrorCode::ForbiddenComponent),
            ("Content-Type", ErrorCode::MalformedSignature),
            ("", ErrorCode::MalformedSignature),
            ("a b", ErrorCode::MalformedSignature),
        ] {
            assert_eq!(
                Component::parse(name).map_err(|e| e.code()),
                Err(code),
                "{name}"
            );
        }
    }

    #[test]
    fn every_known_name_is_spelled_by_its_own_text_and_may_be_covered() {
        for &text in KNOWN_FIELD_TEXTS.iter().chain([CONTENT_DIGEST].iter()) {
            let found = known(text).expect("known");
            assert!(matches!(found.0, Name::Known(_)), "{text}");
            assert_eq!(found.as_str(), text);
            // `Component::field` takes a known name without validating it,
            // so the table must hold only names the profile accepts: no
            // forbidden field, nothing but lowercase tokens.
            assert!(validate_field_name(text).is_ok(), "{text}");
            let general = HeaderName::from_lowercase(text.as_bytes()).expect("valid");
            assert_eq!(found.header_name(), &general);
            // Equal to the same name kept apart from the table.
            assert_eq!(found, FieldName(Name::Other(Arc::new(general))));
        }
        for forbidden in FORBIDDEN_FIELDS {
            assert!(known(forbidden).is_none(), "{forbidden}");
        }
        let found = known(CONTENT_DIGEST).expect("known");
        assert!(matches!(found.0, Name::Known(k) if std::ptr::eq(k, &CONTENT_DIGEST_FIELD)));
        assert!(known("x-request-id").is_none());
        assert!(
            known("Content-Type").is_none(),
            "only lowercase text is known"
        );
        // A name outside the table is kept apart, and equal to itself.
        let other = Component::field("x-request-id").expect("valid");
        assert!(matches!(
            &other,
            Component::Field(FieldName(Name::Other(_)))
        ));
        assert_eq!(other, Component::field("x-request-id").expect("valid"));
        assert_eq!(
            std::mem::size_of::<Component>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn coverage_floor_and_duplicates() {
        assert!(check_coverage(&MANDATORY).is_ok());
        assert_eq!(
            check_coverage(&MANDATORY[..4]).map_err(|e| e.code()),
            Err(ErrorCode::MissingComponent)
        );
        let mut dup = MANDATORY.to_vec();
        dup.push(Component::Path);
        assert_eq!(
            check_coverage(&dup).map_err(|e| e.code()),
            Err(ErrorCode::DuplicateComponent)
        );
    }
}
