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
//! The check is deliberately wider than any one framework, because what
//! matters is whether *some* application behind could read a `_method`:
//! - every method, not only `POST`: Symfony and Laravel upper-case the
//!   method first (so `post` counts), and `method-override` can be
//!   configured for any method;
//! - names are compared after the decoding a framework applies:
//!   percent-escapes and `+` in the query and in form bodies, `\u` escapes
//!   in JSON keys, RFC 5987 `name*=` in multipart parts; and after PHP's
//!   renaming (leading spaces dropped, `.` and ` ` read as `_`,
//!   `_method[…]` an array named `_method`), in any ASCII case;
//! - the query is split on `;` as well as `&` (Rack 2 splits on both);
//! - the body is read as a form, as multipart parts and, when it is a JSON
//!   object, for its top-level members, whatever its `Content-Type` says
//!   (Rack reads a body without one as a form, Laravel takes any type
//!   containing `/json` as JSON, Express's parsers can be set to any type).

use http::Uri;
use memchr::memmem;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// The parameter the frameworks read.
const PARAMETER: &[u8] = b"_method";

/// Where a request carries a method override, if it does: `"query"`,
/// `"form body"`, `"multipart body"` or `"JSON body"`.
pub fn find(uri: &Uri, body: &[u8]) -> Option<&'static str> {
    if uri
        .query()
        .is_some_and(|q| query_has_parameter(q.as_bytes()))
    {
        return Some("query");
    }
    // Most bodies stop here: a name that decodes to `_method` holds
    // `method` in some case, or an escape (`%`, `\u`).
    if !may_name_the_parameter(body) {
        return None;
    }
    if query_has_parameter(body) {
        return Some("form body");
    }
    if multipart_has_part(body) {
        return Some("multipart body");
    }
    if json_has_member(body) {
        return Some("JSON body");
    }
    None
}

/// Whether `bytes` could hold a name that decodes to `_method`.
fn may_name_the_parameter(bytes: &[u8]) -> bool {
    memchr::memchr(b'%', bytes).is_some()
        || memmem::find(bytes, b"\\u").is_some()
        || memchr::memchr2_iter(b'm', b'M', bytes).any(|at| {
            bytes
                .get(at + 1..at + 6)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(b"ethod"))
        })
}

/// Whether a name, as the application decodes it, is `_method`.
fn is_parameter(name: &[u8]) -> bool {
    // PHP: leading spaces are dropped, and `_method[]` or `_method[x]` is
    // an array named `_method` (an unmatched `[` becomes `_`).
    let name = &name[name.iter().take_while(|&&b| b == b' ').count()..];
    let base = name.split(|&b| b == b'[').next().unwrap_or(name);
    base.len() == PARAMETER.len()
        && base.iter().zip(PARAMETER).all(|(&got, &want)| {
            // PHP reads `.` and ` ` in a name as `_`.
            got.eq_ignore_ascii_case(&want) || (want == b'_' && matches!(got, b'.' | b' '))
        })
}

/// Whether `application/x-www-form-urlencoded` text (a query or a form
/// body) has a `_method` key, splitting on `;` as well as `&`.
fn query_has_parameter(form: &[u8]) -> bool {
    form.split(|&b| b == b';')
        .any(|part| form_urlencoded::parse(part).any(|(key, _)| is_parameter(key.as_bytes())))
}

/// Whether a multipart body has a part named `_method`: a
/// `Content-Disposition` line whose `name` (quoted with `"` or `'`,
/// unquoted, or RFC 5987 `name*=`) is the parameter.
fn multipart_has_part(body: &[u8]) -> bool {
    const FIELD: &[u8] = b"content-disposition";
    body.split(|&b| b == b'\n').any(|line| {
        let Some(rest) = line
            .get(..FIELD.len())
            .filter(|head| head.eq_ignore_ascii_case(FIELD))
            .map(|_| trim(&line[FIELD.len()..]))
        else {
            return false;
        };
        let Some(params) = rest.strip_prefix(b":") else {
            return false;
        };
        params.split(|&b| b == b';').any(|param| {
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                return false;
            };
            let (key, value) = (trim(&param[..eq]), trim(&param[eq + 1..]));
            if key.eq_ignore_ascii_case(b"name") {
                is_parameter(unquote(value))
            } else if key.eq_ignore_ascii_case(b"name*") {
                // charset'language'percent-encoded-name
                let encoded = value.rsplit(|&b| b == b'\'').next().unwrap_or(value);
                let decoded: Vec<u8> = percent_decode(encoded);
                is_parameter(&decoded)
            } else {
                false
            }
        })
    })
}

/// A value without the `"` or `'` around it, if it has them.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] | [b'\'', inner @ .., b'\''] => inner,
        _ => value,
    }
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

/// Whether a JSON object body has a top-level member named `_method`
/// (keys unescaped), counting members read before any syntax error.
fn json_has_member(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    if body.get(start) != Some(&b'{') {
        return false;
    }
    let found = std::cell::Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // The value is `found`; an error after a matching key keeps it.
    let _ = deserializer.deserialize_map(TopLevelKeys(&found));
    found.get()
}

/// Visits a JSON object's top-level keys, skipping the values unparsed
/// into memory.
struct TopLevelKeys<'a>(&'a std::cell::Cell<bool>);

impl<'de> Visitor<'de> for TopLevelKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if is_parameter(key.as_bytes()) {
                self.0.set(true);
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content type is not consulted: every body is read every way.
    fn check(uri: &str, content_type: Option<&str>, body: &str) -> Option<&'static str> {
        let _ = content_type;
        find(&uri.parse().expect("uri"), body.as_bytes())
    }

    #[test]
    fn overrides_are_found_where_frameworks_read_them() {
        assert_eq!(check("/a?_method=DELETE", None, ""), Some("query"));
        assert_eq!(check("/a?x=1&%5Fmethod=put", None, ""), Some("query"));
        assert_eq!(check("/a", None, "_method=DELETE"), Some("form body"));
        assert_eq!(
            check(
                "/a",
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                "a=1&_method=patch"
            ),
            Some("form body")
        );
        let multipart =
            "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n";
        assert_eq!(
            check("/a", Some("multipart/form-data; boundary=b"), multipart),
            Some("multipart body")
        );
        let unquoted =
            "--b\r\ncontent-disposition: form-data; name=_method\r\n\r\nDELETE\r\n--b--\r\n";
        assert_eq!(
            check("/a", Some("Multipart/Form-Data; boundary=b"), unquoted),
            Some("multipart body")
        );
        assert_eq!(
            check(
                "/a",
                Some("application/json"),
                r#"{"_method":"DELETE","a":1}"#
            ),
            Some("JSON body")
        );
        assert_eq!(
            check(
                "/a",
                Some("application/vnd.api+json"),
                r#"{"_method":"DELETE"}"#
            ),
            Some("JSON body")
        );
    }

    /// Spellings an independent review got past the first version of this
    /// check: each decodes (or PHP renames it) to `_method`.
    #[test]
    fn encoded_and_renamed_spellings_are_found() {
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
        ] {
            assert_eq!(check(query, None, ""), Some("query"), "{query}");
        }
        assert_eq!(check("/a", None, "_%6Dethod=DELETE"), Some("form body"));
        assert_eq!(
            check(
                "/a",
                Some("application/json"),
                r#"{"_\u006dethod":"DELETE"}"#
            ),
            Some("JSON body")
        );
        // Another media type: Laravel reads any type holding `/json`.
        assert_eq!(
            check(
                "/a",
                Some("text/json"),
                r#" {"a":[1,{"b":2}],"_method":"DELETE"}"#
            ),
            Some("JSON body")
        );
        assert_eq!(
            check("/a", Some("text/plain"), "_method=DELETE"),
            Some("form body")
        );
        for part in [
            "name='_method'",
            "name = \"_method\"",
            "NAME=\"_Method\"",
            "name*=UTF-8''%5Fmethod",
            "name=\".method\"",
        ] {
            let body = format!(
                "--b\r\nContent-Disposition : form-data; {part}\r\n\r\nDELETE\r\n--b--\r\n"
            );
            assert_eq!(
                check("/a", Some("multipart/form-data; boundary=b"), &body),
                Some("multipart body"),
                "{part}"
            );
        }
    }

    #[test]
    fn other_requests_pass() {
        // Another parameter, or `_method` only as data.
        assert_eq!(
            check("/a?method=x&x_method=y&_methods=z", None, "a=1"),
            None
        );
        assert_eq!(check("/a?q=_method", None, "note=_method"), None);
        assert_eq!(
            check(
                "/a",
                Some("application/json"),
                r#"{"note":"_method","x":{"_method":1}}"#
            ),
            None
        );
        assert_eq!(
            check("/a", Some("application/json"), "not json _method"),
            None
        );
        assert_eq!(
            check("/a", Some("application/json"), r#"[{"_method":1}]"#),
            None
        );
        let file = "--b\r\nContent-Disposition: form-data; name=\"_methods\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=_method_x; filename=\"_method\"\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(
            check("/a", Some("multipart/form-data; boundary=b"), file),
            None
        );
        assert_eq!(
            check("/a", Some("application/octet-stream"), "\u{0}\u{1}binary"),
            None
        );
    }
}
