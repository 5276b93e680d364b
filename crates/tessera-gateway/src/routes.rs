//! Matching requests to configured routes: a method (or any) and a path
//! prefix or a pattern in which `*` stands for exactly one segment.

use http::Method;

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathMatch {
    /// The path starts with this prefix.
    Prefix(String),
    /// The path has the same segments; a `*` segment matches any one segment.
    Pattern(String),
}

impl PathMatch {
    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Pattern(pattern) => {
                let mut want = pattern.split('/');
                let mut got = path.split('/');
                loop {
                    match (want.next(), got.next()) {
                        (None, None) => return true,
                        (Some("*"), Some(segment)) if !segment.is_empty() => {}
                        (Some(w), Some(g)) if w == g => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

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
    /// Whether the request line matches.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && self.path.matches(path)
    }
}

/// Whether a request path is in the one form route rules are matched in:
/// no `.` or `..` segment, no empty segment (`//`), no backslash, and no
/// percent-encoded `.`, `/` or `\\`.
///
/// An upstream that normalizes such paths (many frameworks resolve dot
/// segments or merge slashes) would otherwise route `/public/../admin`
/// somewhere other than where the gateway matched it, past a route's scopes
/// or out of a public prefix. Such requests are refused instead.
pub fn is_canonical_path(path: &str) -> bool {
    if path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"]
        .iter()
        .any(|encoded| lower.contains(encoded))
    {
        return false;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return path == "*";
    };
    rest.is_empty()
        || rest
            .split('/')
            .enumerate()
            .all(|(i, segment)| match segment {
                "." | ".." => false,
                // A trailing slash is one empty last segment; others are `//`.
                "" => i == rest.split('/').count() - 1,
                _ => true,
            })
}

/// The first rule matching, if any.
pub fn first_match<'a>(
    rules: &'a [RouteRule],
    method: &Method,
    path: &str,
) -> Option<&'a RouteRule> {
    rules.iter().find(|r| r.matches(method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_star() {
        let p = PathMatch::Pattern("/v1/users/*/orders".into());
        assert!(p.matches("/v1/users/42/orders"));
        assert!(!p.matches("/v1/users//orders"));
        assert!(!p.matches("/v1/users/42/orders/7"));
        assert!(!p.matches("/v1/users/42"));
        assert!(PathMatch::Prefix("/health".into()).matches("/healthz"));
    }

    #[test]
    fn only_canonical_paths_are_matched() {
        for ok in ["/", "/a", "/a/b/", "/a.b/c..d", "/.well-known/x"] {
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
}
