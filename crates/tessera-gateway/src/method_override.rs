//! Method overrides carried in the query or the body.
//!
//! Rails and Sinatra (Rack's `MethodOverride`), Laravel, Symfony, Spring's
//! `HiddenHttpMethodFilter`, ASP.NET Core and Express's `method-override`
//! treat a request that carries a `_method` parameter as the method it
//! names: `POST /v1/admin/users/1` with `_method=DELETE` reaches the DELETE
//! handler. The gateway matches its route rules on the request's method, so
//! such a request could pass a DELETE rule's scopes by. Override *fields*
//! (`X-HTTP-Method-Override`, …) are removed before forwarding (see
//! [`crate::forward`]); the query and the body are signed and cannot be
//! edited, so a request that carries `_method` there is refused instead.
//!
//! Two independent reviews found spellings of the name that applications
//! decode to `_method` and a narrower check missed, so the check reads
//! names as the most lenient of them do, and refuses what it cannot read:
//! - every method, not only `POST` (Symfony and Laravel upper-case the
//!   method first; `method-override` can be set for any method);
//! - a name is the parameter when, after percent-decoding (and `+` as a
//!   space), cut at a NUL (PHP), without backslashes (Rack's multipart
//!   unescaping), its first segment between `[` and `]` (Express's `qs`,
//!   Rack and PHP read `[_method]`, `_method]` and `_method[]` as
//!   `_method`), without leading spaces, is `_method` in any ASCII case,
//!   with `.` or ` ` for `_` (PHP);
//! - the query is split on `;` as well as `&` (Rack 2);
//! - a body is read as the types its `Content-Type` lines name (all of
//!   them): a form (also when there is none, as Rack reads it), multipart
//!   (the heads of its parts: every `name` and `name*` parameter of
//!   `Content-Disposition`, as Rack's pattern finds them, and
//!   `Content-ID`, which Rack takes as a name; folded lines unfolded), or
//!   JSON (any type holding `json`, as Laravel decides; a UTF-8 BOM
//!   skipped, invalid UTF-8 replaced as Node does; top-level members,
//!   escapes decoded);
//! - such a body that cannot be read so is refused rather than passed: a
//!   `Content-Encoding` (Express inflates gzip bodies before parsing), a
//!   charset that is not ASCII-compatible (UTF-16 and the like), JSON that
//!   does not parse and mentions `method`.
//!
//! Bodies of other types (an image, `text/plain`) are not read: no
//! framework takes parameters from them.

use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Uri};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// The parameter the frameworks read.
const PARAMETER: &[u8] = b"_method";

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It carries `_method` in its `"query"`, `"form body"`,
    /// `"multipart body"` or `"JSON body"`.
    Override(&'static str),
    /// Its body is of a type applications read parameters from, but it
    /// cannot be checked: the reason, said to the client.
    Unreadable(&'static str),
}

/// Whether the request carries a method override, or a body that might
/// and cannot be checked.
pub fn find(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Option<Found> {
    if uri
        .query()
        .is_some_and(|q| form_has_parameter(q.as_bytes()))
    {
        return Some(Found::Override("query"));
    }
    let kinds = BodyKinds::of(headers);
    if !kinds.any() || body.is_empty() {
        return None;
    }
    if let Some(why) = unreadable(headers) {
        return Some(Found::Unreadable(why));
    }
    // Most bodies stop at this scan: a name that decodes to `_method`
    // holds `method` in some case, or an escape (`%`, `\u`).
    if !may_name_the_parameter(body) {
        return None;
    }
    if kinds.form && form_has_parameter(body) {
        return Some(Found::Override("form body"));
    }
    if kinds.multipart && multipart_has_part(body, kinds.boundary.as_deref()) {
        return Some(Found::Override("multipart body"));
    }
    if kinds.json {
        match json_has_member(body) {
            Some(true) => return Some(Found::Override("JSON body")),
            Some(false) => {}
            None => {
                return Some(Found::Unreadable(
                    "it is declared JSON but does not parse as JSON, so its member names cannot be read",
                ))
            }
        }
    }
    None
}

/// How applications may read a body, from every `Content-Type` line.
#[derive(Debug, Default)]
struct BodyKinds {
    form: bool,
    multipart: bool,
    json: bool,
    /// The multipart boundary, when exactly one line names one.
    boundary: Option<String>,
}

impl BodyKinds {
    fn of(headers: &HeaderMap) -> BodyKinds {
        let mut kinds = BodyKinds::default();
        let values: Vec<String> = headers
            .get_all(CONTENT_TYPE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
            .collect();
        if values.is_empty() {
            // Rack reads a body without a type as a form.
            kinds.form = true;
        }
        for value in &values {
            let media_type = value.split(';').next().unwrap_or("").trim();
            kinds.form |=
                media_type.is_empty() || media_type == "application/x-www-form-urlencoded";
            kinds.multipart |= value.contains("multipart/");
            kinds.json |= value.contains("json");
        }
        // The boundary in its own case (it is case-sensitive), when one
        // line names it.
        let mut lines = headers.get_all(CONTENT_TYPE).iter();
        if let (Some(value), None) = (lines.next(), lines.next()) {
            kinds.boundary = parameter(&String::from_utf8_lossy(value.as_bytes()), "boundary");
        }
        kinds
    }

    fn any(&self) -> bool {
        self.form || self.multipart || self.json
    }
}

/// The value of parameter `name` (lowercase) of a `Content-Type` value,
/// in the value's own case.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Why a body of a type applications read cannot be checked, if it cannot.
fn unreadable(headers: &HeaderMap) -> Option<&'static str> {
    let encoded = headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split(',')
            .any(|coding| !coding.trim().eq_ignore_ascii_case("identity"))
    });
    if encoded {
        return Some("it has a Content-Encoding, which some applications decode before reading parameters; send it unencoded");
    }
    let foreign_charset = headers.get_all(CONTENT_TYPE).iter().any(|v| {
        let value = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
        parameter(&value, "charset").is_some_and(|charset| !ascii_compatible(&charset))
    });
    foreign_charset.then_some(
        "its charset is not ASCII-compatible (such as UTF-16), so its parameter names cannot be read; send it as UTF-8",
    )
}

/// Charsets in which `_method` is the same bytes as in ASCII, and no
/// other bytes decode to it.
fn ascii_compatible(charset: &str) -> bool {
    matches!(
        charset,
        "utf-8"
            | "utf8"
            | "us-ascii"
            | "ascii"
            | "iso-8859-1"
            | "latin1"
            | "iso-8859-15"
            | "windows-1252"
            | "cp1252"
    )
}

/// Whether `bytes` could hold a name that decodes to `_method`.
fn may_name_the_parameter(bytes: &[u8]) -> bool {
    memchr::memchr(b'%', bytes).is_some()
        || memchr::memmem::find(bytes, b"\\u").is_some()
        || memchr::memchr2_iter(b'm', b'M', bytes).any(|at| {
            bytes
                .get(at + 1..at + 6)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(b"ethod"))
        })
}

/// Whether a name, as an application may decode it, is `_method`.
fn is_parameter(name: &[u8]) -> bool {
    // PHP cuts a name at a NUL.
    let name = name.split(|&b| b == 0).next().unwrap_or(name);
    // Rack unescapes backslashes in multipart names.
    let name: Vec<u8> = name.iter().copied().filter(|&b| b != b'\\').collect();
    // `qs`, Rack and PHP read `[_method]`, `_method]`, `_method[]` as `_method`.
    let Some(base) = name
        .split(|&b| b == b'[' || b == b']')
        .find(|segment| !segment.is_empty())
    else {
        return false;
    };
    // PHP drops leading spaces.
    let base = &base[base.iter().take_while(|&&b| b == b' ').count()..];
    base.len() == PARAMETER.len()
        && base.iter().zip(PARAMETER).all(|(&got, &want)| {
            // PHP reads `.` and ` ` in a name as `_`.
            got.eq_ignore_ascii_case(&want) || (want == b'_' && matches!(got, b'.' | b' '))
        })
}

/// Whether `application/x-www-form-urlencoded` text (a query or a form
/// body) has a `_method` key, splitting on `;` as well as `&`.
fn form_has_parameter(form: &[u8]) -> bool {
    form.split(|&b| b == b';')
        .any(|part| form_urlencoded::parse(part).any(|(key, _)| is_parameter(key.as_bytes())))
}

/// The header lines of a multipart body's parts, unfolded: those after a
/// `--boundary` line up to the part's empty line, or, without a boundary
/// to go by (or one that no line of the body starts), every line.
fn part_head_lines(body: &[u8], boundary: Option<&str>) -> Vec<Vec<u8>> {
    let delimiter = boundary.map(|b| format!("--{b}"));
    if let Some(delimiter) = &delimiter {
        let delimits = |line: &[u8]| line.starts_with(delimiter.as_bytes());
        if !body.split(|&b| b == b'\n').any(delimits) {
            return part_head_lines(body, None);
        }
    }
    let mut in_head = delimiter.is_none();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some(delimiter) = &delimiter {
            if line.starts_with(delimiter.as_bytes()) {
                in_head = true;
                continue;
            }
            if in_head && line.is_empty() {
                in_head = false;
                continue;
            }
        }
        if !in_head {
            continue;
        }
        match (line.first(), lines.last_mut()) {
            // A folded line continues the one before.
            (Some(b' ' | b'\t'), Some(previous)) => {
                previous.push(b' ');
                previous.extend_from_slice(line);
            }
            _ => lines.push(line.to_vec()),
        }
    }
    lines
}

/// Whether a multipart body has a part named `_method`.
fn multipart_has_part(body: &[u8], boundary: Option<&str>) -> bool {
    part_head_lines(body, boundary).iter().any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (trim(&line[..colon]), &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-id") {
            let id = trim(value);
            let id = id
                .strip_prefix(b"<")
                .and_then(|id| id.strip_suffix(b">"))
                .unwrap_or(id);
            return is_parameter(id);
        }
        name.eq_ignore_ascii_case(b"content-disposition")
            && names_in(value).any(|n| is_parameter(&n))
    })
}

/// Every value of a `name` or `name*` parameter in a `Content-Disposition`
/// value, found as a pattern would (inside quoted values too), not by
/// splitting on `;`. An unquoted value is read both as a token (Rack's
/// pattern stops at `"`, `[`, `/`, …) and up to `;` or whitespace (PHP).
fn names_in(value: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..value.len()).flat_map(move |at| {
        let texts = name_at(value, at).unwrap_or_default();
        texts.into_iter()
    })
}

/// The values of a `name` parameter starting at `value[at..]`, if one does.
fn name_at(value: &[u8], at: usize) -> Option<Vec<Vec<u8>>> {
    let rest = &value[at..];
    if !rest.get(..4)?.eq_ignore_ascii_case(b"name") {
        return None;
    }
    // Not the end of another word (`filename`).
    if at > 0 && value[at - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut rest = &rest[4..];
    let extended = rest.first() == Some(&b'*');
    if extended {
        rest = &rest[1..];
    }
    let rest = trim_start(trim_start(rest).strip_prefix(b"=")?);
    let texts = match rest.first() {
        Some(&quote @ (b'"' | b'\'')) => {
            let mut out = Vec::new();
            let mut bytes = rest[1..].iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' => out.extend(bytes.next()),
                    b if b == quote => break,
                    b => out.push(b),
                }
            }
            vec![out]
        }
        _ => {
            let until = |stop: &dyn Fn(u8) -> bool| -> Vec<u8> {
                rest.iter().take_while(|&&b| !stop(b)).copied().collect()
            };
            vec![
                until(&|b| b.is_ascii_whitespace() || b"()<>,;:\\\"/[]?=".contains(&b)),
                until(&|b| b.is_ascii_whitespace() || b == b';'),
            ]
        }
    };
    Some(if extended {
        // charset'language'percent-encoded
        texts
            .iter()
            .map(|text| percent_decode(text.rsplit(|&b| b == b'\'').next().unwrap_or(text)))
            .collect()
    } else {
        texts
    })
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    &bytes[bytes.iter().take_while(|b| b.is_ascii_whitespace()).count()..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end.max(start)]
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    // A form parser decodes a bare key exactly so (`+` aside, which RFC
    // 5987 does not use and which cannot make `_method`).
    form_urlencoded::parse(bytes)
        .next()
        .map(|(key, _)| key.into_owned().into_bytes())
        .unwrap_or_default()
}

/// Whether a JSON body has a top-level member named `_method` (keys
/// unescaped; a UTF-8 BOM skipped and invalid UTF-8 replaced, as Node
/// reads it): `None` when it does not parse as JSON.
fn json_has_member(body: &[u8]) -> Option<bool> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let text = String::from_utf8_lossy(body);
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    let found = match deserializer.deserialize_any(TopLevelKeys) {
        Ok(found) => found,
        Err(_) => return None,
    };
    deserializer.end().ok()?;
    Some(found)
}

/// Visits a JSON value's top-level keys, if it is an object, skipping
/// the values unparsed into memory.
struct TopLevelKeys;

impl<'de> Visitor<'de> for TopLevelKeys {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            found |= is_parameter(key.as_bytes());
            map.next_value::<IgnoredAny>()?;
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_string<E>(self, _: String) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        headers
    }

    fn check(uri: &str, content_type: Option<&str>, body: &[u8]) -> Option<Found> {
        let fields: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        find(&uri.parse().expect("uri"), &headers(&fields), body)
    }

    fn place(uri: &str, content_type: Option<&str>, body: &str) -> Option<&'static str> {
        match check(uri, content_type, body.as_bytes()) {
            Some(Found::Override(place)) => Some(place),
            Some(Found::Unreadable(why)) => panic!("unreadable: {why}"),
            None => None,
        }
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json");
    const MULTIPART: Option<&str> = Some("multipart/form-data; boundary=b");

    #[test]
    fn multipart_boundaries_keep_their_case() {
        // As browsers send them: a mixed-case boundary.
        let body = "------WebKitFormBoundaryAbC\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n------WebKitFormBoundaryAbC--\r\n";
        for content_type in [
            "multipart/form-data; boundary=----WebKitFormBoundaryAbC",
            "Multipart/Form-Data; Boundary=\"----WebKitFormBoundaryAbC\"",
            // A boundary no line starts: every line is read.
            "multipart/form-data; boundary=other",
        ] {
            assert_eq!(
                place("/a", Some(content_type), body),
                Some("multipart body"),
                "{content_type}"
            );
        }
    }

    fn part(disposition: &str) -> String {
        format!("--b\r\n{disposition}\r\n\r\nDELETE\r\n--b--\r\n")
    }

    #[test]
    fn overrides_are_found_where_frameworks_read_them() {
        assert_eq!(place("/a?_method=DELETE", None, ""), Some("query"));
        assert_eq!(place("/a?x=1&%5Fmethod=put", JSON, "{}"), Some("query"));
        assert_eq!(place("/a", None, "_method=DELETE"), Some("form body"));
        assert_eq!(
            place(
                "/a",
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                "a=1&_method=patch"
            ),
            Some("form body")
        );
        assert_eq!(
            place(
                "/a",
                MULTIPART,
                &part("Content-Disposition: form-data; name=\"_method\"")
            ),
            Some("multipart body")
        );
        assert_eq!(
            place("/a", JSON, r#"{"_method":"DELETE","a":1}"#),
            Some("JSON body")
        );
        assert_eq!(
            place(
                "/a",
                Some("application/vnd.api+json"),
                r#"{"_method":"DELETE"}"#
            ),
            Some("JSON body")
        );
    }

    /// Spellings two independent reviews got past earlier versions of this
    /// check, each shown to reach a DELETE handler in Express 4, PHP 8.2 or
    /// Rack 2.2 (or decoded so by Node's and Python's parsers).
    #[test]
    fn spellings_applications_decode_are_found() {
        for query in [
            "/a?_%6Dethod=DELETE",
            "/a?_meth%6Fd=DELETE",
            "/a?%5F%6D%65%74%68%6F%64=DELETE",
            "/a?.method=DELETE",
            "/a?+_method=DELETE",
            "/a?%20_method=DELETE",
            "/a?_METHOD=DELETE",
            "/a?_method[]=DELETE",
            "/a?x=1;_method=DELETE",
            "/a?[_method]=DELETE",
            "/a?_method]=DELETE",
            "/a?]_method=DELETE",
            "/a?_method%00=DELETE",
        ] {
            assert_eq!(place(query, None, ""), Some("query"), "{query}");
        }
        for form in [
            "_%6Dethod=DELETE",
            "%5B_method%5D=DELETE",
            "_method%00x=DELETE",
        ] {
            assert_eq!(place("/a", FORM, form), Some("form body"), "{form}");
        }
        for disposition in [
            "Content-Disposition: form-data; name='_method'",
            "Content-Disposition : form-data; name = \"_method\"",
            "content-disposition: form-data; NAME=\"_Method\"",
            "Content-Disposition: form-data; name*=UTF-8''%5Fmethod",
            "Content-Disposition: form-data; name=\".method\"",
            "Content-Disposition: form-data; name=\"_method\\u{0}x\"",
            "Content-Disposition: form-data; name=\"_\\\\method\"",
            "Content-Disposition: form-data;\r\n name=\"_method\"",
            "Content-Disposition: form-data; x=\"a; name=_method\"",
            "Content-Disposition: form-data; name=[_method]",
            "Content-Disposition: form-data\r\nContent-ID: <_method>",
        ] {
            let disposition = disposition.replace("\\u{0}", "\u{0}");
            assert_eq!(
                place("/a", MULTIPART, &part(&disposition)),
                Some("multipart body"),
                "{disposition:?}"
            );
        }
        for json in [
            r#"{"_\u006dethod":"DELETE"}"#,
            " {\"a\":[1,{\"b\":2}],\"_method\":\"DELETE\"}",
            "\u{feff}{\"_method\":\"DELETE\"}",
        ] {
            assert_eq!(place("/a", JSON, json), Some("JSON body"), "{json}");
        }
        // Laravel takes any type holding `/json` as JSON.
        assert_eq!(
            place("/a", Some("text/json"), r#"{"_method":"DELETE"}"#),
            Some("JSON body")
        );
        // Invalid UTF-8 in an earlier key: replaced, as Node does, and read on.
        let mut body = b"{\"a\xff\":1,\"_method\":\"DELETE\"}".to_vec();
        assert_eq!(check("/a", JSON, &body), Some(Found::Override("JSON body")));
        body.truncate(body.len() - 1);
        assert!(matches!(
            check("/a", JSON, &body),
            Some(Found::Unreadable(_))
        ));
    }

    #[test]
    fn bodies_that_cannot_be_read_are_refused() {
        let gzip = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
        ]);
        let uri: Uri = "/a".parse().expect("uri");
        assert!(matches!(
            find(&uri, &gzip, b"\x1f\x8b..."),
            Some(Found::Unreadable(_))
        ));
        let utf16 = headers(&[("content-type", "application/json; charset=utf-16le")]);
        assert!(matches!(
            find(&uri, &utf16, b"{\0}\0"),
            Some(Found::Unreadable(_))
        ));
        // An encoded body of a type no framework reads parameters from passes.
        let image = headers(&[("content-type", "image/png"), ("content-encoding", "gzip")]);
        assert_eq!(find(&uri, &image, b"\x1f\x8b...%..."), None);
        let identity = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ]);
        assert_eq!(find(&uri, &identity, b"{}"), None);
    }

    #[test]
    fn other_requests_pass() {
        // Other parameters, or `_method` only as data.
        assert_eq!(
            place(
                "/a?method=x&x_method=y&_methods=z&a[_method]=1",
                None,
                "a=1"
            ),
            None
        );
        assert_eq!(
            place("/a?q=_method&payment_method=card", None, "note=_method"),
            None
        );
        assert_eq!(
            place(
                "/a",
                JSON,
                r#"{"note":"_method","x":{"_method":1},"link":"/u?a=1&_method=delete"}"#
            ),
            None
        );
        assert_eq!(place("/a", JSON, r#"[{"_method":1}]"#), None);
        // A body of a type no framework reads parameters from.
        assert_eq!(place("/a", Some("text/plain"), "_method=DELETE"), None);
        assert_eq!(
            place(
                "/a",
                Some("text/html"),
                "<a href=\"?x=1&amp;_method=delete\">"
            ),
            None
        );
        // In a multipart body only the parts' heads are read, not their contents.
        let mail = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"_method\"\r\n\r\nContent-Disposition: form-data; name=_method\r\n--b--\r\n";
        assert_eq!(place("/a", MULTIPART, mail), None);
        let others = "--b\r\nContent-Disposition: form-data; name=\"_methods\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=_method_x\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(place("/a", MULTIPART, others), None);
        assert_eq!(
            check("/a", Some("application/octet-stream"), b"\x00\x01%binary"),
            None
        );
    }
}
