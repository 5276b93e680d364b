//! Matching requests to configured routes: a method (or any) and a path
//! prefix or a pattern in which `*` stands for exactly one segment.

use http::Method;

use tessera_server::route::method_covers;
pub use tessera_server::route::PathMatch;

/// A configured route: method, path and the scopes it requires.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// The method, or any.
    pub method: Option<Method>,
    /// The path.
    pub path: PathMatch,
    /// Scopes required (empty for public routes).
    pub scopes: Vec<String>,
}

impl RouteRule {
    /// Whether the request line matches exactly as written.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && self.path.matches(path)
    }

    /// Whether the request line, or a spelling of it that an upstream may
    /// route to the same handler, matches (see [`PathMatch::covers`] and
    /// [`method_covers`]).
    pub fn covers(&self, method: &Method, path: &str) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| method_covers(m, method))
            && self.path.covers(path)
    }
}

/// Whether a request path is in the one form route rules are matched in.
///
/// Refused: a `.` or `..` segment, an empty segment (`//`), a backslash, a
/// `;` (servlet containers drop `;…` from each segment), any byte that is
/// not visible ASCII, a `%` not followed by two hex digits, and an escape
/// that a decoding upstream would turn into something else the gateway did
/// not match: an unreserved character (`%61` is `a`), `/`, `\\`, `;`, `%` (a
/// second decoding would make it another escape), a control character, or
/// bytes that are not UTF-8 (overlong forms such as `%c0%ae`).
///
/// An upstream that normalizes such paths (many frameworks decode escapes,
/// resolve dot segments or merge slashes) would otherwise route
/// `/public/../admin` or `/v1/%61dmin` somewhere other than where the
/// gateway matched it, past a route's scopes or out of a public prefix.
/// Such requests are refused instead.
pub fn is_canonical_path(path: &str) -> bool {
    path_problem(path).is_none()
}

/// Why `path` is not in the canonical form [`is_canonical_path`] accepts,
/// in words a client can act on; `None` when it is.
pub fn path_problem(path: &str) -> Option<&'static str> {
    let bytes = path.as_bytes();
    if let Some(&b) = bytes.iter().find(|&&b| !matches!(b, b'!'..=b'~')) {
        return Some(if b >= 0x80 {
            "it has a byte that is not ASCII: send non-ASCII characters as %XX escapes of their UTF-8"
        } else {
            "it has a space or a control character: send it as a %XX escape"
        });
    }
    if bytes.contains(&b'\\') {
        return Some("it has a backslash, which upstreams read differently (some as '/')");
    }
    if bytes.contains(&b';') {
        return Some("it has a ';' (a path parameter), which upstreams read differently");
    }
    if bytes.contains(&b'%') {
        if let Some(why) = escape_problem(bytes) {
            return Some(why);
        }
    }
    let Some(rest) = path.strip_prefix('/') else {
        return (path != "*").then_some("it does not start with '/'");
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => {
                return Some(
                    "it has a '.' or '..' segment: send the path with dot segments resolved",
                )
            }
            // A trailing slash is one empty last segment; others are `//`.
            "" if segments.peek().is_some() => {
                return Some("it has an empty segment ('//'): send each '/' once")
            }
            _ => {}
        }
    }
    None
}

/// Why the escapes in `bytes` (visible ASCII) are not canonical: each must
/// be two hex digits that decode to a byte the gateway leaves escaped, and
/// the decoded path must be UTF-8. Only paths with a `%` get here.
fn escape_problem(bytes: &[u8]) -> Option<&'static str> {
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            decoded.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(byte) = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        else {
            return Some("it has a '%' that is not followed by two hex digits");
        };
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            return Some("it escapes a letter, digit or one of - . _ ~ (such as %61 for 'a'): send that character unescaped");
        }
        if b"/\\;%".contains(&byte) || byte < 0x20 || byte == 0x7f {
            return Some("it escapes '/', '\\', ';', '%' or a control character, which upstreams decode differently");
        }
        decoded.push(byte);
        i += 3;
    }
    std::str::from_utf8(&decoded)
        .is_err()
        .then_some("its escapes decode to bytes that are not UTF-8")
}

/// The first exemption (public route) matching the request exactly as
/// written: an exemption never widens to other spellings.
pub fn first_match<'a>(
    rules: &'a [RouteRule],
    method: &Method,
    path: &str,
) -> Option<&'a RouteRule> {
    rules.iter().find(|r| r.matches(method, path))
}

/// The first scope rule matching the request or a spelling of it that an
/// upstream may route to the same handler (ASCII case of the path and the
/// method, one trailing slash, `HEAD` for a `GET` rule): a restriction
/// applies to all of them.
pub fn first_scope_match<'a>(
    rules: &'a [RouteRule],
    method: &Method,
    path: &str,
) -> Option<&'a RouteRule> {
    rules.iter().find(|r| r.covers(method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_paths_are_matched() {
        for ok in [
            "/",
            "/a",
            "/a/b/",
            "/a.b/c..d",
            "/.well-known/x",
            "/a%20b",
            "/caf%C3%A9",
            "/a%3Fb",
            "/a%2Cb",
            "*",
        ] {
            assert!(is_canonical_path(ok), "{ok}");
        }
        for bad in [
            "/a/../b",
            "/a/./b",
            "/a/..",
            "//a",
            "/a//b",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a\\b",
            "a",
            "/v1/%61dmin",
            "/v1/admin;x/users",
            "/v1/keys/issue/..;/..;/admin",
            "/a/%252e%252e",
            "/a/%c0%ae%c0%ae",
            "/a/%u002e",
            "/a/%4",
            "/a/%zz",
            "/a/%00",
            "/a/%7F",
            "/a/\u{e9}",
            "/a/%3B",
        ] {
            assert!(!is_canonical_path(bad), "{bad}");
        }
    }

    #[test]
    fn method_must_match_when_given() {
        let rule = RouteRule {
            method: Some(Method::POST),
            path: PathMatch::Prefix("/".into()),
            scopes: vec![],
        };
        assert!(rule.matches(&Method::POST, "/x"));
        assert!(!rule.matches(&Method::GET, "/x"));
    }

    #[test]
    fn scope_rules_cover_other_spellings_and_exemptions_do_not() {
        let rules = [
            RouteRule {
                method: Some(Method::DELETE),
                path: PathMatch::Prefix("/v1/admin/".into()),
                scopes: vec!["admin".into()],
            },
            RouteRule {
                method: None,
                path: PathMatch::Pattern("/v1/users/*/orders".into()),
                scopes: vec!["write".into()],
            },
            RouteRule {
                method: Some(Method::GET),
                path: PathMatch::Prefix("/v1/reports".into()),
                scopes: vec!["reports".into()],
            },
        ];
        let scoped = |m: Method, p: &str| first_scope_match(&rules, &m, p).map(|r| &r.scopes[0]);
        let exact = |m: Method, p: &str| first_match(&rules, &m, p).map(|r| &r.scopes[0]);
        for (method, path, scope) in [
            (Method::DELETE, "/v1/admin/users/1", "admin"),
            (Method::DELETE, "/v1/Admin/users/1", "admin"),
            (Method::DELETE, "/V1/ADMIN/users/1", "admin"),
            (Method::DELETE, "/v1/admin", "admin"),
            (Method::POST, "/v1/users/42/orders", "write"),
            (Method::POST, "/v1/users/42/orders/", "write"),
            (Method::POST, "/v1/USERS/42/Orders/", "write"),
            (Method::GET, "/v1/reports/q", "reports"),
            (Method::HEAD, "/v1/reports/q", "reports"),
            // Frameworks that upper-case the method route these to the
            // DELETE and GET handlers.
            (lower("delete"), "/v1/admin/users/1", "admin"),
            (lower("Delete"), "/v1/admin/users/1", "admin"),
            (lower("get"), "/v1/reports/q", "reports"),
            (lower("head"), "/v1/reports/q", "reports"),
            // Rails routes a format suffix to the same handler, also
            // before a trailing slash (removed before routing).
            (Method::POST, "/v1/users/42/orders.json", "write"),
            (Method::POST, "/v1/users/42/Orders.XML", "write"),
            (Method::POST, "/v1/users/42/orders.json/", "write"),
            (Method::DELETE, "/v1/admin.json/", "admin"),
        ] {
            assert_eq!(
                scoped(method.clone(), path).map(String::as_str),
                Some(scope),
                "{method} {path}"
            );
        }
        assert_eq!(scoped(Method::GET, "/v1/admin/users/1"), None);
        assert_eq!(scoped(Method::POST, "/v1/users/42/orders/7"), None);
        assert_eq!(scoped(Method::POST, "/v1/reports/q"), None);
        // Exemptions stay exact.
        assert_eq!(exact(Method::DELETE, "/v1/Admin/users/1"), None);
        assert_eq!(exact(Method::DELETE, "/v1/admin"), None);
        assert_eq!(exact(Method::POST, "/v1/users/42/orders/"), None);
        assert_eq!(exact(Method::HEAD, "/v1/reports/q"), None);
        assert!(exact(Method::GET, "/v1/reports/q").is_some());
        assert_eq!(exact(lower("get"), "/v1/reports/q"), None);
        assert_eq!(exact(Method::POST, "/v1/users/42/orders.json"), None);
        assert_eq!(scoped(Method::POST, "/v1/users/42/.orders"), None);
        assert_eq!(scoped(lower("post"), "/v1/reports/q"), None);
    }

    /// A method as a client may spell it (`http` keeps extension methods as sent).
    fn lower(method: &str) -> Method {
        Method::from_bytes(method.as_bytes()).expect("a method token")
    }
}
