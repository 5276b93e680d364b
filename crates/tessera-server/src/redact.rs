//! Store URLs in messages: every password replaced by `***`. One rule for
//! every store the workspace opens (the Redis nonce and rate-limit stores,
//! the SQL key store, the gateway's start-up lines), so that no entry point
//! echoes a credential another one hides.

/// `url` with any password replaced by `***`: the one in its userinfo
/// (`user:password@`) and the query parameters that carry one (`pass` and
/// `password` for Redis, `password` and `sslpassword` for PostgreSQL).
/// Written by hand rather than with a URL parser, so that what a parser
/// refuses (a `redis+cluster://` list of hosts, a mistyped scheme) is
/// redacted too.
pub fn redact_url(url: &str) -> String {
    if !has_scheme(url) {
        // No `scheme:` at all: not a URL but, as likely as not, a secret
        // given where the URL belongs (a password, a master key).
        return "(not shown: it is not a URL)".to_owned();
    }
    // Parameters first, on the text as given: hiding the userinfo may take
    // the `?` that starts them with it.
    redact_userinfo(&redact_params(url))
}

/// Whether `url` starts with an RFC 3986 scheme followed by `//` (every
/// store URL has an authority, or `sqlite:` a path): `word:secret` is not
/// taken for one.
fn has_scheme(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, rest)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && (rest.starts_with("//") || scheme.eq_ignore_ascii_case("sqlite"))
    })
}

/// `url` with the password of its userinfo (`user:password@`) replaced,
/// erring on the side of hiding more: everything from the first `:` of the
/// userinfo to the last `@` of the URL goes, so a password holding `?`,
/// `/`, `&`, `=` or `@` is hidden whole (with, when a query value holds an
/// `@`, the host and path before it). Without `://` (a mistyped
/// separator), the userinfo is taken to start at the beginning.
fn redact_userinfo(url: &str) -> String {
    let after = url.find("://").map_or(0, |scheme| scheme + 3);
    let Some(at) = url.rfind('@').filter(|&at| at >= after) else {
        return url.to_owned();
    };
    match url[after..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..after + colon], &url[at..]),
        // A Redis user name alone authenticates nothing: it is a password
        // written without its `:` (redis-rs reads it as a user name and
        // Redis then answers NOAUTH). A PostgreSQL user alone is common
        // (trust, peer or .pgpass) and stays, to say who failed.
        // (Only an `@` in the authority: one in the query belongs to a value.)
        None if url
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("redis"))
            && !url[after..at].contains(['/', '?', '#']) =>
        {
            format!("{}***{}", &url[..after], &url[at..])
        }
        None => url.to_owned(),
    }
}

/// `url` with the value of every query parameter that carries a password
/// replaced, wherever it stands (an `@` or a `?` elsewhere in the URL does
/// not hide a parameter).
fn redact_params(url: &str) -> String {
    let Some(query) = url.find('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..query]);
    // Each step starts at a delimiter (`?` or `&`) and copies it and the
    // parameter after it, up to the next delimiter.
    let mut at = query;
    while at < url.len() {
        // Only `&` separates parameters (a `?` in a value is part of it).
        let end = url[at + 1..].find('&').map_or(url.len(), |i| i + at + 1);
        out.push_str(&url[at..=at]);
        let pair = &url[at + 1..end];
        match pair.split_once('=') {
            Some((name, _)) if carries_password(name) => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
        at = end;
    }
    out
}

/// Whether a URL query parameter named `name` (percent-encoded or not)
/// holds a password.
fn carries_password(name: &str) -> bool {
    let mut decoded = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            match std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(byte) => decoded.push(byte),
                // Not an escape: kept as written.
                None => {
                    decoded.push(b);
                    decoded.extend_from_slice(&hex);
                }
            }
        } else {
            decoded.push(b);
        }
    }
    ["pass", "password", "sslpassword"]
        .iter()
        .any(|secret| decoded.eq_ignore_ascii_case(secret.as_bytes()))
}

/// `path` as messages show it, unless its file name looks like a hex key
/// (32 or more hex digits, after a `VERSION:` or not): a secret given where
/// the path of its file belongs (`--master-key-file HEX`,
/// `TESSERA_MASTER_KEY_FILE=HEX` for `TESSERA_MASTER_KEY`, `--secret-file
/// HEX`, `--keys HEX`) is not echoed into a terminal or a log.
pub fn redacted_path(path: &std::path::Path) -> std::borrow::Cow<'_, str> {
    let looks_like_a_key = path.file_name().is_some_and(|name| {
        let name = name.as_encoded_bytes();
        let hex = match name.iter().position(|&b| b == b':') {
            Some(colon) if name[..colon].iter().all(u8::is_ascii_digit) => &name[colon + 1..],
            _ => name,
        };
        hex.len() >= 32 && hex.iter().all(u8::is_ascii_hexdigit)
    });
    if looks_like_a_key {
        std::borrow::Cow::Borrowed(
            "(a path that looks like a hex key, not shown: put the key in a file, chmod 600, and name that file)",
        )
    } else {
        path.to_string_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url as redact;

    #[test]
    fn redact_hides_every_password_form() {
        for (url, shown) in [
            (
                "redis://:hunter2@127.0.0.1:6379",
                "redis://:***@127.0.0.1:6379",
            ),
            ("redis://app:hunter2@h:6379/0", "redis://app:***@h:6379/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "redis+unix:///s?password=hunter2",
                "redis+unix:///s?password=***",
            ),
            (
                "redis+cluster://u:hunter2@h1:7000,h2:7000",
                "redis+cluster://u:***@h1:7000,h2:7000",
            ),
            ("reddis://:hunter2@h:6379", "reddis://:***@h:6379"),
            (
                "postgres://gw@db/keys?sslmode=require&PASSWORD=hunter2&sslpassword=hunter2",
                "postgres://gw@db/keys?sslmode=require&PASSWORD=***&sslpassword=***",
            ),
            ("redis://:ab?cd@h:6379", "redis://:***@h:6379"),
            ("redis://:a/b@c@h:6379/0", "redis://:***@h:6379/0"),
            (
                "redis+unix:///s?pa%73s=hunter2",
                "redis+unix:///s?pa%73s=***",
            ),
            // An `@` in the query (Azure-style user names) hides nothing.
            (
                "postgres://db.example.com/keys?user=admin@srv&password=hunter2",
                "postgres://db.example.com/keys?user=admin@srv&password=***",
            ),
            (
                "postgres://db/keys?password=hunter2&user=a@b",
                "postgres://db/keys?password=***&user=a@b",
            ),
            // A query value holding `@`: the host and path go too (more
            // hidden, never less).
            (
                "postgres://gw:hunter2@db/keys?application_name=a@b&password=hunter2",
                "postgres://gw:***@b&password=***",
            ),
            // Passwords holding `?` with `=`, `&`, `/` or `@`.
            ("redis://u:p?a=b@host", "redis://u:***@host"),
            ("redis://u:ab?c/d@host:6379/0", "redis://u:***@host:6379/0"),
            ("redis://u:p&q?z@h", "redis://u:***@h"),
            ("redis://u:a@b?c@h", "redis://u:***@h"),
            (
                "postgres://u:s3cr@t?x&y@db/keys",
                "postgres://u:***@db/keys",
            ),
            // A mistyped separator after the scheme, or none at all.
            ("redis:/u:hunter2@h", "(not shown: it is not a URL)"),
            ("redis//u:hunter2@h", "(not shown: it is not a URL)"),
            ("u:hunter2@h:6379", "(not shown: it is not a URL)"),
            ("app:hunter2", "(not shown: it is not a URL)"),
            ("sqlite:keys.db", "sqlite:keys.db"),
            (
                "redis+unix:///s?db=1&client=a@b&pass=hunter2",
                "redis+unix:///s?db=1&client=a@b&pass=***",
            ),
            ("redis://h:6379", "redis://h:6379"),
            // A `?` inside a password parameter's value.
            (
                "postgres://tess@h:1/db?password=S3cr?etPw&sslmode=require",
                "postgres://tess@h:1/db?password=***&sslmode=require",
            ),
            // Text that is no URL at all: a secret given in its place.
            (
                "27b722d490c7a93a2fa25bf0f764c18cc8093711efc79732d5429f9101a7eedb",
                "(not shown: it is not a URL)",
            ),
            ("hunter2", "(not shown: it is not a URL)"),
            ("1:hunter2", "(not shown: it is not a URL)"),
            // A password written without its `:`.
            ("redis://hunter2@h:6379/0", "redis://***@h:6379/0"),
            ("rediss://hunter2@h:6379", "rediss://***@h:6379"),
            ("postgres://gw@db/keys", "postgres://gw@db/keys"),
            ("sqlite://keys.db?mode=rwc", "sqlite://keys.db?mode=rwc"),
        ] {
            let redacted = redact(url);
            assert_eq!(redacted, shown);
            assert!(!redacted.contains("hunter2"), "{redacted}");
        }
    }
}
