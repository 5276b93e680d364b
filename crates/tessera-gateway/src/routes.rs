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
