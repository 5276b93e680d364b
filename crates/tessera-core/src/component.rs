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
/// is 16 bytes and a parsed signature's list of them is cheap to move.
#[derive(Clone)]
enum Name {
    /// `content-digest` or one of [`COMMONLY_COVERED`]: a static name,
    /// shared without allocating or counting references.
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
    // A `match` on the text: the compiler switches on the length first,
    // so at most a couple of names are compared byte by byte. A unit test
    // checks it against `COMMONLY_COVERED`.
    let index = match name {
        CONTENT_DIGEST => return Some(FieldName(Name::Known(&CONTENT_DIGEST_FIELD))),
        "content-type" => 0,
        "user-agent" => 1,
        "date" => 2,
        "accept" => 3,
        "authorization" => 4,
        "content-length" => 5,
        "content-encoding" => 6,
        "content-language" => 7,
        "cache-control" => 8,
        "if-match" => 9,
        "if-none-match" => 10,
        "origin" => 11,
        _ => return None,
    };
    COMMONLY_COVERED
        .get(index)
        .map(|known| FieldName(Name::Known(known)))
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

/// Standard fields that signers commonly cover. Each is a lowercase token
/// outside the forbidden list, so [`Component::field`] would accept it and
/// build this very name; finding it here first skips validating and
/// re-parsing the name on every verification.
static COMMONLY_COVERED: [HeaderName; 12] = [
    http::header::CONTENT_TYPE,
    http::header::USER_AGENT,
    http::header::DATE,
    http::header::ACCEPT,
    http::header::AUTHORIZATION,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_LANGUAGE,
    http::header::CACHE_CONTROL,
    http::header::IF_MATCH,
    http::header::IF_NONE_MATCH,
    http::header::ORIGIN,
];

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
        // `content-digest`, covered by every signature, and the commonly
        // covered names share a static name: no validation, no allocation.
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
    fn every_commonly_covered_name_is_known_by_its_own_text() {
        for name in &COMMONLY_COVERED {
            let found = known(name.as_str()).expect("known");
            assert!(
                matches!(found.0, Name::Known(k) if std::ptr::eq(k, name)),
                "{name} maps to another entry"
            );
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
        assert_eq!(std::mem::size_of::<Component>(), 16);
    }

    #[test]
    fn commonly_covered_names_match_the_general_path() {
        for name in &COMMONLY_COVERED {
            assert!(validate_field_name(name.as_str()).is_ok(), "{name}");
            let general = HeaderName::from_lowercase(name.as_str().as_bytes()).expect("valid");
            assert_eq!(&general, name);
            assert_eq!(
                Component::field(name.as_str()),
                Ok(Component::Field(FieldName(Name::Other(Arc::new(general)))))
            );
        }
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
