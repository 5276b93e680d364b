//! Whether a request line falls under a route rule (a method and a path
//! prefix or pattern), for the policies configured per route: the scopes a
//! gateway requires, the rate-limit plan a route spends from.
//!
//! A rule can be matched two ways:
//! - [`PathMatch::matches`]: exactly as written, and a prefix only up to a
//!   segment boundary (`/health` matches `/health/live`, not `/healthz`).
//!   For exemptions (a public route that needs no signature), which must
//!   never widen.
//! - [`PathMatch::covers`] and [`method_covers`]: also every other spelling
//!   that a common upstream framework routes to the same handler: ASCII case
//!   of the path and of the method, a trailing slash, a format suffix
//!   (`.json`) on the last segment, and `HEAD` for `GET`. For restrictions
//!   and budgets, so that respelling a request does not escape them.
//!
//! The rule lives here, once, so that a gateway's scope rules and a rate
//! limiter's routes agree on which requests a route names.

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
    /// Whether `path` matches exactly as written (case-sensitive, no other
    /// spelling); a prefix matches whole segments only: `/health` matches
    /// `/health` and `/health/live`, not `/healthz`.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_spelling(path, Fold::Exact)
    }

    /// Whether `path`, or a spelling of it that an upstream may route to the
    /// same handler, matches: ASCII case, one trailing slash (`/v1/admin`
    /// falls under the prefix `/v1/admin/`), and a format suffix on the last
    /// segment (Rails routes `/v1/orders.json` to the handler of
    /// `/v1/orders`), also before a trailing slash (`/v1/orders.json/`).
    pub fn covers(&self, path: &str) -> bool {
        any_spelling(path, |path| self.matches_spelling(path, Fold::AnySpelling))
    }

    fn matches_spelling(&self, path: &str, fold: Fold) -> bool {
        match self {
            PathMatch::Prefix(prefix) => prefix_matches(prefix, path, fold),
            PathMatch::Pattern(pattern) => {
                // `/v1/users/42/orders/` is `/v1/users/42/orders`.
                let path = match fold {
                    Fold::AnySpelling if path.len() > 1 => path.strip_suffix('/').unwrap_or(path),
                    _ => path,
                };
                let mut want = pattern.split('/');
                let mut got = path.split('/');
                loop {
                    match (want.next(), got.next()) {
                        (None, None) => return true,
                        (Some("*"), Some(segment)) if !segment.is_empty() => {}
                        (Some(w), Some(g)) if fold.same(w, g) => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// Whether `prefix` covers `path` in any spelling that may reach the same
/// handler (see [`PathMatch::covers`]), for callers that keep the prefix
/// as a plain string.
pub fn prefix_covers(prefix: &str, path: &str) -> bool {
    any_spelling(path, |path| prefix_matches(prefix, path, Fold::AnySpelling))
}

/// `matches` of `path` as written, of `path` without its format suffix, or
/// of `path` without one trailing slash and then its format suffix (Rails
/// removes a trailing slash before routing, so `/v1/orders.json/` reaches
/// the handler of `/v1/orders`).
fn any_spelling(path: &str, matches: impl Fn(&str) -> bool) -> bool {
    matches(path)
        || without_format_suffix(path).is_some_and(&matches)
        || path
            .strip_suffix('/')
            .and_then(without_format_suffix)
            .is_some_and(&matches)
}

fn prefix_matches(prefix: &str, path: &str, fold: Fold) -> bool {
    let starts = path
        .get(..prefix.len())
        .is_some_and(|head| fold.same(head, prefix));
    if fold == Fold::Exact {
        // An exemption ends at a segment boundary: `/health` exempts
        // `/health` and `/health/live`, never `/healthz` or `/health-admin`
        // (an exemption must never widen).
        return starts
            && (prefix.ends_with('/')
                || path.len() == prefix.len()
                || path.as_bytes().get(prefix.len()) == Some(&b'/'));
    }
    // Folded, the path with a `/` appended may start with the prefix
    // (compared in place).
    starts
        || (fold == Fold::AnySpelling
            && prefix
                .strip_suffix('/')
                .is_some_and(|bare| fold.same(bare, path)))
}

/// Whether a request with `method` may reach the handler of a rule for
/// `rule`: the same method in any ASCII case (Werkzeug, Django and Rack
/// upper-case the method before routing, and `http` keeps `get` as sent),
/// or `HEAD` for `GET` (frameworks answer HEAD with the GET handler).
pub fn method_covers(rule: &Method, method: &Method) -> bool {
    let method = method.as_str();
    rule.as_str().eq_ignore_ascii_case(method)
        || (*rule == Method::GET && method.eq_ignore_ascii_case("HEAD"))
}

/// `path` without the `.ext` that ends its last segment, if it has one
/// (a segment that starts with `.` has none).
fn without_format_suffix(path: &str) -> Option<&str> {
    let last = path.rfind('/').map_or(0, |i| i + 1);
    let dot = path[last..].rfind('.').filter(|&d| d > 0)?;
    Some(&path[..last + dot])
}

/// How loosely a path is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// Byte for byte.
    Exact,
    /// ASCII case and a trailing slash too.
    AnySpelling,
}

impl Fold {
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            Fold::Exact => a == b,
            Fold::AnySpelling => a.eq_ignore_ascii_case(b),
        }
    }
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
        assert!(PathMatch::Prefix("/health".into()).matches("/health/live"));
    }

    #[test]
    fn covers_every_spelling_and_matches_only_one() {
        let prefix = PathMatch::Prefix("/v1/admin/".into());
        let pattern = PathMatch::Pattern("/v1/users/*/orders".into());
        for path in [
            "/v1/admin/users",
            "/V1/Admin/users",
            "/v1/admin",
            "/v1/admin.json",
            "/v1/admin.json/",
            "/V1/ADMIN.JSON/",
            "/v1/admin/users.csv/",
        ] {
            assert!(prefix.covers(path), "{path}");
            assert!(prefix_covers("/v1/admin/", path), "{path}");
        }
        for path in [
            "/v1/users/42/orders",
            "/v1/users/42/orders/",
            "/v1/USERS/42/Orders.XML",
            "/v1/users/42/orders.json/",
            "/v1/users/42/ORDERS.JSON/",
        ] {
            assert!(pattern.covers(path), "{path}");
        }
        for (rule, path) in [
            (&prefix, "/v1/admin"),
            (&prefix, "/v1/Admin/users"),
            (&pattern, "/v1/users/42/orders/"),
            (&pattern, "/v1/users/42/orders.json"),
            (&pattern, "/v1/users/42/orders.json/"),
        ] {
            assert!(!rule.matches(path), "{path}");
        }
        assert!(!prefix.covers("/v1/adminx"));
        assert!(!prefix_covers("/v1/admin/", "/v1/adminx"));
        assert!(!pattern.covers("/v1/users/42/.orders"));
        assert!(!pattern.covers("/v1/users/42/orders/7"));
        assert!(!pattern.covers("/v1/users/42/orders.json/7"));
        assert!(!pattern.covers("/v1/users/42/.orders/"));
    }

    #[test]
    fn an_exempt_prefix_ends_at_a_segment_boundary_and_a_restriction_does_not() {
        let health = PathMatch::Prefix("/health".into());
        for path in ["/health", "/health/live", "/health/"] {
            assert!(health.matches(path), "{path}");
        }
        for path in ["/healthz", "/health-admin/users", "/health.json", "/healt"] {
            assert!(!health.matches(path), "{path}");
        }
        // A restriction keeps covering whatever starts with it.
        assert!(health.covers("/healthz"));
        assert!(health.covers("/Health-Admin"));
        let dir = PathMatch::Prefix("/v1/keys/".into());
        assert!(dir.matches("/v1/keys/issue"));
        assert!(!dir.matches("/v1/keys"));
    }

    #[test]
    fn methods_cover_their_spellings_and_get_covers_head() {
        let spelled = |m: &str| Method::from_bytes(m.as_bytes()).expect("a method token");
        assert!(method_covers(&Method::DELETE, &spelled("delete")));
        assert!(method_covers(&Method::GET, &spelled("head")));
        assert!(method_covers(&Method::GET, &Method::HEAD));
        assert!(!method_covers(&Method::HEAD, &Method::GET));
        assert!(!method_covers(&Method::POST, &Method::GET));
    }

    #[test]
    fn format_suffix_is_the_last_segments_extension() {
        assert_eq!(without_format_suffix("/a/b.c/d.json"), Some("/a/b.c/d"));
        assert_eq!(without_format_suffix("/a/b.c/d"), None);
        assert_eq!(without_format_suffix("/a/.hidden"), None);
        assert_eq!(without_format_suffix("/"), None);
    }
}
