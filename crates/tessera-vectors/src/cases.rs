//! The named cases. Everything here is fixed: keys, times, nonces and bodies,
//! so generating twice gives identical files.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use tessera_core::{normalize_authority, BodyDigest, ErrorCode, Target, LABEL};

use crate::check::{check, produce, Failure};
use crate::model::{Case, Expected, Generic, Key, Kind, Rejected, Request, Sign, Verifier};

/// `created` of most cases: 2023-11-14T22:13:20Z.
pub const CREATED: u64 = 1_700_000_000;
/// The verifier window of most cases.
pub const WINDOW: u64 = 300;
/// Id of the default key.
pub const KEY_ID: &str = "device-7f3a2c";
/// The default target.
const TARGET: &str = "https://api.example.com/v1/orders?limit=10";

/// RFC 9421 Appendix B.1.5 `test-shared-secret`, base64.
const RFC_SHARED_SECRET: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
/// RFC 9421 Appendix B.2.5 expected `Signature` value.
pub const RFC_B25_SIGNATURE: &str = "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:";

pub(crate) fn pattern_key(id: &str, len: usize, seed: u8) -> Key {
    let secret: Vec<u8> = (0..len)
        .map(|i| {
            u8::try_from(i % 256)
                .unwrap_or(0)
                .wrapping_mul(37)
                .wrapping_add(seed)
        })
        .collect();
    Key {
        id: id.to_owned(),
        secret_hex: hex::encode(secret),
    }
}

pub(crate) fn default_key() -> Key {
    pattern_key(KEY_ID, 32, 11)
}

/// A deterministic 22-character nonce derived from the case name.
pub(crate) fn nonce_for(name: &str) -> String {
    let digest = BodyDigest::of(format!("tessera-vectors nonce {name}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_bytes()[..16])
}

pub(crate) fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A positive case under construction.
#[derive(Clone)]
pub(crate) struct P {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) method: &'static str,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) key: Key,
    pub(crate) created: u64,
    pub(crate) nonce: Option<String>,
    pub(crate) expires: Option<u64>,
    pub(crate) extra: Vec<String>,
    pub(crate) now: Option<u64>,
    pub(crate) window: u64,
    pub(crate) authorities: Option<Vec<String>>,
    pub(crate) verifier_scheme: Option<String>,
    pub(crate) fixed_authority: Option<String>,
    pub(crate) store_since: Option<u64>,
}

pub(crate) fn pos(name: &'static str, description: &'static str) -> P {
    P {
        name,
        description,
        method: "GET",
        target: TARGET.to_owned(),
        headers: owned(&[("Accept", "application/json")]),
        body: Vec::new(),
        key: default_key(),
        created: CREATED,
        nonce: None,
        expires: None,
        extra: Vec::new(),
        now: None,
        window: WINDOW,
        authorities: None,
        verifier_scheme: None,
        fixed_authority: None,
        store_since: None,
    }
}

impl P {
    pub(crate) fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    pub(crate) fn target(mut self, target: &str) -> Self {
        self.target = target.to_owned();
        self
    }
    pub(crate) fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers = owned(headers);
        self
    }
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub(crate) fn json(self, body: &str) -> Self {
        self.header("Content-Type", "application/json")
            .body(body.as_bytes())
    }
    pub(crate) fn extra(mut self, extra: &[&str]) -> Self {
        self.extra = extra.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    pub(crate) fn key(mut self, key: Key) -> Self {
        self.key = key;
        self
    }
    pub(crate) fn created(mut self, created: u64) -> Self {
        self.created = created;
        self
    }
    pub(crate) fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.to_owned());
        self
    }
    pub(crate) fn expires(mut self, expires: u64) -> Self {
        self.expires = Some(expires);
        self
    }
    pub(crate) fn now(mut self, now: u64) -> Self {
        self.now = Some(now);
        self
    }
    /// A verifier whose nonce store remembers from `since` (spec §14.1).
    pub(crate) fn store_since(mut self, since: u64) -> Self {
        self.store_since = Some(since);
        self
    }
    pub(crate) fn window(mut self, window: u64) -> Self {
        self.window = window;
        self
    }
    pub(crate) fn authorities(mut self, authorities: &[&str]) -> Self {
        self.authorities = Some(authorities.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub(crate) fn setup_failure(&self, detail: String) -> Failure {
        Failure {
            case: self.name.to_owned(),
            stage: "setup",
            detail,
        }
    }

    /// The case without its expected outcome: request, key, signing inputs
    /// and verifier.
    pub(crate) fn skeleton(&self) -> Result<Case, Failure> {
        let authorities = match (&self.fixed_authority, &self.authorities) {
            (Some(_), _) => Vec::new(),
            (None, Some(authorities)) => authorities.clone(),
            (None, None) => {
                let target = Target::parse_url(&self.target)
                    .map_err(|e| self.setup_failure(e.to_string()))?;
                vec![normalize_authority(target.authority(), target.scheme())
                    .map_err(|e| self.setup_failure(e.to_string()))?
                    .into_owned()]
            }
        };
        let scheme = self.verifier_scheme.clone().unwrap_or_else(|| {
            self.target
                .split(':')
                .next()
                .unwrap_or("https")
                .to_ascii_lowercase()
        });
        Ok(Case {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            kind: Kind::TesseraV1,
            request: Request {
                method: self.method.to_owned(),
                target_uri: self.target.clone(),
                headers: self.headers.clone(),
                body_base64: STANDARD.encode(&self.body),
                http_version: None,
            },
            key: self.key.clone(),
            sign: Some(Sign {
                created: self.created,
                nonce: self.nonce.clone().unwrap_or_else(|| nonce_for(self.name)),
                expires: self.expires,
                extra_components: self.extra.clone(),
            }),
            rfc9421: None,
            verifier: Some(Verifier {
                now: self.now.unwrap_or(self.created + 30),
                window: self.window,
                authorities,
                scheme,
                fixed_authority: self.fixed_authority.clone(),
                store_since: self.store_since,
            }),
            expected: Expected::Rejected(Rejected {
                error: String::new(),
            }),
        })
    }

    /// The case with its expected outputs computed by `tessera_core`.
    pub(crate) fn build(self) -> Result<Case, Failure> {
        let mut case = self.skeleton()?;
        case.expected = Expected::Signed(produce(&case)?);
        Ok(case)
    }
}

/// A signed request being tampered with.
pub(crate) struct Wire {
    pub(crate) method: String,
    pub(crate) target_uri: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) verifier: Verifier,
    pub(crate) key: Key,
    pub(crate) problems: Vec<String>,
    /// `Some("2")`: received over HTTP/2.
    pub(crate) http_version: Option<String>,
}

impl Wire {
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub(crate) fn get(&self, name: &str) -> String {
        self.position(name)
            .map(|i| self.headers[i].1.clone())
            .unwrap_or_default()
    }

    /// Replaces the first line of `name` (appending when absent) and drops the others.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Some(i) => {
                self.headers[i].1 = value.to_owned();
                let mut seen = false;
                self.headers.retain(|(n, _)| {
                    if n.eq_ignore_ascii_case(name) {
                        let keep = !seen;
                        seen = true;
                        keep
                    } else {
                        true
                    }
                });
            }
            None => self.headers.push((name.to_owned(), value.to_owned())),
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub(crate) fn replace_in(&mut self, header: &str, from: &str, to: &str) {
        let value = self.get(header);
        if !value.contains(from) {
            self.problems
                .push(format!("{header} {value:?} does not contain {from:?}"));
            return;
        }
        self.set(header, &value.replacen(from, to, 1));
    }

    pub(crate) fn input(&mut self, from: &str, to: &str) {
        self.replace_in("signature-input", from, to);
    }
}

/// A negative case: `base` is signed, `tamper` changes what is received.
pub(crate) fn neg(
    name: &'static str,
    description: &'static str,
    base: P,
    error: ErrorCode,
    tamper: impl FnOnce(&mut Wire),
) -> Result<Case, Failure> {
    let mut case = received(name, description, base, tamper)?;
    case.expected = Expected::Rejected(Rejected {
        error: error.as_str().to_owned(),
    });
    Ok(case)
}

/// `base` signed, its three headers added, then changed by `tamper`: the
/// request as received, without an expected outcome yet.
pub(crate) fn received(
    name: &'static str,
    description: &'static str,
    base: P,
    tamper: impl FnOnce(&mut Wire),
) -> Result<Case, Failure> {
    let mut base = base;
    base.name = name;
    let signed = base.build()?;
    let Expected::Signed(out) = &signed.expected else {
        return Err(Failure {
            case: name.to_owned(),
            stage: "setup",
            detail: "the base was not signed".to_owned(),
        });
    };
    let mut headers = signed.request.headers.clone();
    headers.push((
        "Content-Digest".to_owned(),
        out.content_digest.clone().unwrap_or_default(),
    ));
    headers.push(("Signature-Input".to_owned(), out.signature_input.clone()));
    headers.push(("Signature".to_owned(), out.signature.clone()));
    let mut wire = Wire {
        method: signed.request.method.clone(),
        target_uri: signed.request.target_uri.clone(),
        headers,
        body: STANDARD
            .decode(&signed.request.body_base64)
            .unwrap_or_default(),
        verifier: signed.verifier.clone().unwrap_or(Verifier {
            now: CREATED,
            window: WINDOW,
            authorities: Vec::new(),
            scheme: "https".to_owned(),
            fixed_authority: None,
            store_since: None,
        }),
        key: signed.key.clone(),
        problems: Vec::new(),
        http_version: None,
    };
    tamper(&mut wire);
    if !wire.problems.is_empty() {
        return Err(Failure {
            case: name.to_owned(),
            stage: "setup",
            detail: wire.problems.join("; "),
        });
    }
    Ok(Case {
        name: name.to_owned(),
        description: description.to_owned(),
        kind: Kind::TesseraV1,
        request: Request {
            method: wire.method,
            target_uri: wire.target_uri,
            headers: wire.headers,
            body_base64: STANDARD.encode(&wire.body),
            http_version: wire.http_version,
        },
        key: wire.key,
        sign: signed.sign,
        rfc9421: None,
        verifier: Some(wire.verifier),
        expected: Expected::Rejected(Rejected {
            error: String::new(),
        }),
    })
}

fn rfc9421_b25() -> Result<Case, Failure> {
    let secret = STANDARD.decode(RFC_SHARED_SECRET).map_err(|e| Failure {
        case: "pos-rfc9421-b25-hmac".to_owned(),
        stage: "setup",
        detail: e.to_string(),
    })?;
    let mut case = Case {
        name: "pos-rfc9421-b25-hmac".to_owned(),
        description: "RFC 9421 Appendix B.2.5: HMAC-SHA256 with test-shared-secret over the B.2 test request, covering \"date\" \"@authority\" \"content-type\". A generic RFC 9421 signature, not a tessera-v1 one: it checks the base construction and the MAC against the RFC's published value.".to_owned(),
        kind: Kind::Rfc9421Generic,
        request: Request {
            method: "POST".to_owned(),
            target_uri: "https://example.com/foo?param=Value&Pet=dog".to_owned(),
            headers: owned(&[
                ("Host", "example.com"),
                ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("Content-Type", "application/json"),
                (
                    "Content-Digest",
                    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
                ),
                ("Content-Length", "18"),
            ]),
            body_base64: STANDARD.encode(br#"{"hello": "world"}"#),
            http_version: None,
        },
        key: Key {
            id: "test-shared-secret".to_owned(),
            secret_hex: hex::encode(secret),
        },
        sign: None,
        rfc9421: Some(Generic {
            label: "sig-b25".to_owned(),
            components: vec!["date".to_owned(), "@authority".to_owned(), "content-type".to_owned()],
            signature_params: r#"("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#
                .to_owned(),
        }),
        verifier: None,
        expected: Expected::Rejected(Rejected { error: String::new() }),
    };
    let signed = produce(&case)?;
    if signed.signature != RFC_B25_SIGNATURE {
        return Err(Failure {
            case: case.name,
            stage: "signature",
            detail: format!(
                "RFC 9421 B.2.5 expects {RFC_B25_SIGNATURE}, the core produced {}",
                signed.signature
            ),
        });
    }
    case.expected = Expected::Signed(signed);
    Ok(case)
}

/// A deterministic body of `len` bytes cycling through `0123456789abcdef`.
fn pattern_body(len: usize) -> Vec<u8> {
    b"0123456789abcdef"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn positive() -> Result<Vec<Case>, Failure> {
    let json = r#"{"item":"sku-1042","qty":2,"note":"gift wrap"}"#;
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let many = [
        "content-type",
        "accept",
        "accept-language",
        "cache-control",
        "date",
        "idempotency-key",
        "if-match",
        "user-agent",
        "x-request-id",
        "x-tenant",
    ];
    let many_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("Accept-Language", "en-GB, fr;q=0.8"),
        ("Cache-Control", "no-cache"),
        ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("Idempotency-Key", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("If-Match", "\"v7\""),
        ("User-Agent", "tessera-vectors/1"),
        ("X-Request-Id", "req-000042"),
        ("X-Tenant", "acme"),
    ];
    let extra_headers = [
        ("Content-Type", "application/json"),
        ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("X-Request-Id", "req-000042"),
    ];
    let specs = vec![
        pos("pos-basic-get", "A GET with a query and no body: the mandatory floor only."),
        pos("pos-spec-worked-example", "The worked example of spec/tessera-v1.md §8.9.")
            .target("https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef")
            .key(pattern_key("user-42-device-1", 32, 0x42))
            .created(1_700_000_000)
            .nonce("AAAAAAAAAAAAAAAAAAAAAA"),
        pos(
            "pos-store-since-equals-created",
            "The nonce store remembers from the second the signature was created (spec §14.1): accepted.",
        )
        .store_since(CREATED),
        pos("pos-root-path", "The root path `/` with no query.").target("https://api.example.com/"),
        pos("pos-empty-path", "A target URI with no path: `@path` is `/`.").target("https://api.example.com"),
        pos("pos-empty-path-with-query", "No path but a query: `@path` is `/`, `@query` is kept.")
            .target("https://api.example.com?limit=10"),
        pos("pos-trailing-slash", "A trailing slash is part of the path and kept.")
            .target("https://api.example.com/v1/orders/"),
        pos("pos-repeated-slashes", "Repeated slashes are kept as sent, not collapsed.")
            .target("https://api.example.com//v1///orders//42"),
        pos("pos-dot-segments", "Dot segments are signed literally, not removed.")
            .target("https://api.example.com/v1/./orders/../orders/42/."),
        pos("pos-pct-upper-hex", "Percent-encoding with uppercase hex is kept as sent.")
            .target("https://api.example.com/caf%C3%A9/men%C3%BC?q=%C3%A9t%C3%A9"),
        pos("pos-pct-lower-hex", "Percent-encoding with lowercase hex is kept as sent, not uppercased.")
            .target("https://api.example.com/caf%c3%a9/men%c3%bc?q=%c3%a9t%c3%a9"),
        pos("pos-pct-mixed-case-hex", "Mixed-case percent-encoding is kept byte for byte.")
            .target("https://api.example.com/a%2fb%2Fc?x=%2f%2F"),
        pos("pos-pct-encoded-slash", "`%2F` in a segment is not decoded into a path separator.")
            .target("https://api.example.com/files/a%2Fb%2Fc.txt"),
        pos("pos-double-encoded-slash", "`%252F` is kept double-encoded.")
            .target("https://api.example.com/files/a%252Fb?path=a%252Fb"),
        pos("pos-pct-encoded-unreserved", "Needlessly encoded unreserved characters (`%41`, `%7E`) are not decoded.")
            .target("https://api.example.com/%41%42c/%7Euser?q=%61"),
        pos("pos-plus-in-query", "`+` in the query is signed as `+`, not turned into a space; `%2B` stays encoded.")
            .target("https://api.example.com/search?q=a+b+c&r=c%2Bd&s=%20"),
        pos("pos-no-query", "No query: `@query` is `?`.").target("https://api.example.com/v1/orders"),
        pos("pos-empty-query", "A bare `?`: `@query` is `?`, the same as no query.")
            .target("https://api.example.com/v1/orders?"),
        pos("pos-repeated-query-keys", "Repeated query keys are kept in order, not merged or sorted.")
            .target("https://api.example.com/v1/orders?tag=b&tag=a&tag=b&limit=10"),
        pos("pos-query-unsorted", "Query parameters are not sorted.")
            .target("https://api.example.com/v1/orders?z=1&a=2&m=3"),
        pos("pos-query-empty-values", "Keys without values and empty values are kept as sent.")
            .target("https://api.example.com/v1/orders?flag&empty=&=v&&"),
        pos("pos-query-special-chars", "Sub-delimiters, `/`, `?`, `:` and `@` in the query are kept as sent.")
            .target("https://api.example.com/v1/q?a=b/c?d:e@f!$'()*,;=g"),
        pos("pos-utf8-pct-text", "UTF-8 text, percent-encoded, in path and query.")
            .target("https://api.example.com/%E6%9D%B1%E4%BA%AC/%F0%9F%98%80?city=%E6%9D%B1%E4%BA%AC&emoji=%F0%9F%98%80"),
        pos("pos-tilde-and-unreserved", "Unreserved characters `~ - . _` in path and query.")
            .target("https://api.example.com/~alice/a-b_c.d~e?x=~y&z=a-b_c.d"),
        pos("pos-braces-in-path", "`{`, `}`, `|` and `^` are accepted by http::Uri in a path and query and signed as sent.")
            .target("https://api.example.com/items/{id}/a|b^c?filter={x}&p=a|b"),
        pos("pos-long-query", "A long query string (about 2 KB).")
            .target(&format!(
                "https://api.example.com/v1/search?{}",
                (0..128).map(|i| format!("k{i}=v{i}")).collect::<Vec<_>>().join("&")
            )),
        pos("pos-nondefault-port", "A non-default port is part of `@authority`.")
            .target("https://api.example.com:8443/v1/orders?limit=10"),
        pos("pos-ipv6-literal", "An IPv6 literal authority, lowercased.")
            .target("https://[2001:DB8::1]/v1/orders?limit=10"),
        pos("pos-ipv6-literal-port", "An IPv6 literal with a non-default port.")
            .target("https://[2001:db8::1]:8443/v1/orders"),
        pos("pos-ipv4-literal", "An IPv4 literal authority with a port.")
            .target("http://192.0.2.10:8080/health"),
        pos("pos-uppercase-host", "An uppercase host is lowercased in `@authority`; path case is kept.")
            .target("https://API.Example.COM/V1/Orders?Limit=10"),
        pos("pos-https-default-port-dropped", "`:443` on https is dropped from `@authority`.")
            .target("https://api.example.com:443/v1/orders?limit=10"),
        pos("pos-http-default-port-dropped", "`:80` on http is dropped from `@authority`.")
            .target("http://api.example.com:80/v1/orders?limit=10"),
        pos("pos-http-port-443-kept", "`:443` on http is not the default and is kept.")
            .target("http://api.example.com:443/v1/orders"),
        pos("pos-https-port-80-kept", "`:80` on https is not the default and is kept.")
            .target("https://api.example.com:80/v1/orders"),
        pos("pos-empty-port", "An empty port (`host:`) is the default port (RFC 3986 §6.2.3) and is dropped.")
            .target("https://api.example.com:/v1/orders"),
        pos("pos-zero-padded-default-port", "`:0443` on https is port 443, the default, and is dropped.")
            .target("https://api.example.com:0443/v1/orders"),
        pos("pos-zero-padded-port", "A non-default port is kept as spelled, leading zeros included (RFC 9110 §4.2.3 only removes the default port).")
            .target("https://api.example.com:08443/v1/orders")
            .authorities(&["api.example.com:08443"]),
        pos("pos-http-scheme", "Plain http with no port.").target("http://api.example.com/v1/orders"),
        pos("pos-localhost", "A single-label host with a port.").target("http://localhost:3000/v1/orders"),
        pos("pos-header-leading-trailing-ws", "Leading and trailing spaces and tabs of a covered value are trimmed.")
            .header("X-Note", " \t  padded value \t ")
            .extra(&["x-note"]),
        pos("pos-header-inner-ws", "Inner whitespace of a covered value, spaces and tabs, is kept.")
            .header("X-Note", "a   b\tc \t d")
            .extra(&["x-note"]),
        pos("pos-header-empty-value", "A covered field with an empty value signs as empty.")
            .header("X-Empty", "")
            .extra(&["x-empty"]),
        pos("pos-header-whitespace-only", "A covered field of only whitespace signs as empty.")
            .header("X-Blank", "  \t ")
            .extra(&["x-blank"]),
        pos("pos-duplicate-header-fields", "Duplicate field lines are joined with `, ` in received order, each trimmed.")
            .header("X-Trace", "first")
            .header("Accept-Language", "en")
            .header("X-Trace", " second ")
            .header("X-Trace", "third,fourth")
            .extra(&["x-trace"]),
        pos("pos-duplicate-header-mixed-case", "Field names match case-insensitively when joining duplicates.")
            .header("X-Trace", "one")
            .header("x-trace", "two")
            .header("X-TRACE", "three")
            .extra(&["x-trace"]),
        pos("pos-header-quotes-commas", "Quotes, commas and semicolons in a covered value are signed as sent.")
            .header("X-Meta", "\"a, b\"; c=d, e")
            .extra(&["x-meta"]),
        pos("pos-header-uppercase-name", "A field sent with an uppercase name is covered by its lowercase name.")
            .header("X-REQUEST-ID", "req-UPPER")
            .extra(&["x-request-id"]),
        pos("pos-uncovered-headers-ignored", "Fields that are not covered (including Host and X-Forwarded-For) do not enter the base.")
            .header("Host", "api.example.com")
            .header("X-Forwarded-For", "198.51.100.7")
            .header("Via", "1.1 proxy"),
        pos("pos-empty-body-post", "A POST with an empty body: the constant empty-body digest.")
            .method("POST")
            .header("Content-Length", "0"),
        pos("pos-body-1mib", "A 1 MiB body (`0123456789abcdef` repeated).")
            .method("PUT")
            .target("https://api.example.com/v1/blobs/big")
            .header("Content-Type", "application/octet-stream")
            .body(pattern_body(1 << 20)),
        pos("pos-binary-body", "A binary body with every byte value.")
            .method("POST")
            .target("https://api.example.com/v1/blobs")
            .header("Content-Type", "application/octet-stream")
            .body(binary.clone()),
        pos("pos-json-body", "A JSON body with Content-Type covered.")
            .method("POST")
            .json(json)
            .extra(&["content-type"]),
        pos("pos-json-body-rfc9530", "The RFC 9530 example body `{\"hello\": \"world\"}`.")
            .method("POST")
            .target("https://example.com/foo")
            .json(r#"{"hello": "world"}"#),
        pos("pos-form-body", "A form-encoded body.")
            .method("POST")
            .target("https://api.example.com/v1/login")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(&b"user=alice&password=correct+horse%20battery"[..])
            .extra(&["content-type"]),
        pos("pos-utf8-body", "A UTF-8 text body.")
            .method("POST")
            .header("Content-Type", "text/plain; charset=utf-8")
            .body("東京 — café ✓\n".as_bytes()),
        pos("pos-extra-one", "One extra covered field.")
            .json(json)
            .method("POST")
            .extra(&["content-type"]),
        pos("pos-extra-order-a", "Three extra fields, in one order.")
            .method("POST")
            .headers(&extra_headers)
            .body(json.as_bytes())
            .extra(&["content-type", "date", "x-request-id"]),
        pos("pos-extra-order-b", "The same three fields in another order: a different base and signature.")
            .method("POST")
            .headers(&extra_headers)
            .body(json.as_bytes())
            .extra(&["x-request-id", "content-type", "date"]),
        pos("pos-extra-order-c", "The same three fields in a third order.")
            .method("POST")
            .headers(&extra_headers)
            .body(json.as_bytes())
            .extra(&["date", "x-request-id", "content-type"]),
        pos("pos-extra-many", "Ten extra covered fields.")
            .method("POST")
            .headers(&many_headers)
            .body(json.as_bytes())
            .extra(&many),
        pos("pos-extra-authorization", "An Authorization bearer token covered alongside the signature.")
            .header("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
            .extra(&["authorization"]),
        pos("pos-extra-content-length", "Content-Length covered.")
            .method("POST")
            .header("Content-Length", "46")
            .json(json)
            .extra(&["content-length", "content-type"]),
        pos("pos-expires", "`expires` present, 60 s after `created`.").expires(CREATED + 60),
        pos("pos-expires-at-now", "`expires` equal to the verifier's now is still valid.")
            .expires(CREATED + 30)
            .now(CREATED + 30),
        pos("pos-created-window-edge-past", "`created` exactly `window` seconds in the past is accepted.")
            .now(CREATED + WINDOW),
        pos("pos-created-ahead-edge", "`created` exactly 2 seconds ahead of the verifier's clock, the most step 4 accepts, is accepted.")
            .now(CREATED - tessera_core::MAX_AHEAD_SECS),
        pos("pos-created-ahead-small-window", "With a window of 1 second, `created` 1 second ahead is accepted: ahead is min(window, 2).")
            .now(CREATED - 1)
            .window(1),
        pos("pos-window-zero", "A zero window accepts only `created == now`.")
            .now(CREATED)
            .window(0),
        pos("pos-created-small", "A small `created` value (2001).")
            .created(1_000_000_000),
        pos("pos-method-get", "GET.").method("GET"),
        pos("pos-method-head", "HEAD.").method("HEAD"),
        pos("pos-method-post", "POST with a JSON body.").method("POST").json(json),
        pos("pos-method-put", "PUT with a JSON body.")
            .method("PUT")
            .target("https://api.example.com/v1/orders/42")
            .json(json),
        pos("pos-method-patch", "PATCH with a JSON merge-patch body.")
            .method("PATCH")
            .target("https://api.example.com/v1/orders/42")
            .header("Content-Type", "application/merge-patch+json")
            .body(&br#"{"qty":3}"#[..]),
        pos("pos-method-delete", "DELETE.").method("DELETE").target("https://api.example.com/v1/orders/42"),
        pos("pos-method-options", "OPTIONS.").method("OPTIONS").target("https://api.example.com/v1/orders"),
        pos("pos-method-trace", "TRACE.").method("TRACE").target("https://api.example.com/v1/orders"),
        pos("pos-method-connect", "CONNECT (signed as any other method).")
            .method("CONNECT")
            .target("https://api.example.com:443/"),
        pos("pos-method-extension", "An extension method token (`PROPFIND`), signed as sent.")
            .method("PROPFIND")
            .target("https://api.example.com/dav/"),
        pos("pos-key-16-bytes", "The shortest accepted secret, 16 bytes.").key(pattern_key("k16", 16, 5)),
        pos("pos-key-64-bytes", "A 64-byte secret (one SHA-256 block).").key(pattern_key("k64", 64, 9)),
        pos("pos-key-128-bytes", "The longest accepted secret, 128 bytes (hashed by HMAC first).")
            .key(pattern_key("k128", 128, 3)),
        pos("pos-keyid-max-length", "A 128-character key id.").key(pattern_key(&"k".repeat(128), 32, 17)),
        pos("pos-keyid-punctuation", "A key id with the punctuation the profile allows.")
            .key(pattern_key("user:42/device#1~!$%&'()*+,-.;<=>?@[]^_`{|}", 32, 23)),
        pos("pos-nonce-min-length", "A 22-character nonce.").nonce("AAAAAAAAAAAAAAAAAAAAAA"),
        pos("pos-nonce-max-length", "A 64-character nonce with `-` and `_`.")
            .nonce("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
        pos("pos-multiple-authorities", "The verifier serves several authorities; the received one is among them.")
            .target("https://eu.api.example.com/v1/orders")
            .authorities(&["api.example.com", "eu.api.example.com", "us.api.example.com"]),
        pos("pos-foreign-signature-alongside", "Another, non-tessera signature is present; the tessera-v1 one is selected by its tag.")
            .header("Signature-Input", r#"other=("@method");created=1700000000;keyid="someone-else""#)
            .header("Signature", "other=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"),
    ];
    let mut out = vec![rfc9421_b25()?];
    for spec in specs {
        out.push(spec.build()?);
    }
    Ok(out)
}

fn negative() -> Result<Vec<Case>, Failure> {
    use ErrorCode as E;
    let keyid = format!(";keyid=\"{KEY_ID}\"");
    let created = format!(";created={CREATED}");
    let base = || pos("", "");
    let covered = || {
        base()
            .header("X-Note", "hello")
            .header("Content-Type", "application/json")
            .method("POST")
            .body(&br#"{"qty":1}"#[..])
            .extra(&["content-type", "x-note"])
    };
    let other_key = pattern_key("device-unknown", 32, 99);
    let cases = vec![
        neg(
            "neg-missing-created",
            "`created` removed.",
            base(),
            E::MissingParameter,
            |w| w.input(&created, ""),
        ),
        neg(
            "neg-missing-keyid",
            "`keyid` removed.",
            base(),
            E::MissingParameter,
            |w| w.input(&keyid, ""),
        ),
        neg(
            "neg-missing-nonce",
            "`nonce` removed.",
            base().nonce("AAAAAAAAAAAAAAAAAAAAAA"),
            E::MissingParameter,
            |w| {
                w.input(";nonce=\"AAAAAAAAAAAAAAAAAAAAAA\"", "");
            },
        ),
        neg(
            "neg-missing-tag",
            "`tag` removed: no signature is a tessera-v1 one.",
            base(),
            E::MissingSignature,
            |w| {
                w.input(";tag=\"tessera-v1\"", "");
            },
        ),
        neg(
            "neg-wrong-tag",
            "`tag=\"tessera-v2\"`: no signature is a tessera-v1 one.",
            base(),
            E::MissingSignature,
            |w| {
                w.input("tag=\"tessera-v1\"", "tag=\"tessera-v2\"");
            },
        ),
        neg(
            "neg-unknown-parameter",
            "An unknown signature parameter.",
            base(),
            E::MalformedSignature,
            |w| {
                w.input(";tag=\"tessera-v1\"", ";tag=\"tessera-v1\";foo=1");
            },
        ),
        neg(
            "neg-duplicate-component",
            "`\"@path\"` covered twice.",
            base(),
            E::DuplicateComponent,
            |w| {
                w.input("\"@path\"", "\"@path\" \"@path\"");
            },
        ),
        neg(
            "neg-duplicate-field-component",
            "A field covered twice.",
            covered(),
            E::DuplicateComponent,
            |w| {
                w.input("\"x-note\"", "\"x-note\" \"x-note\"");
            },
        ),
        neg(
            "neg-floor-component-after-floor",
            "The floor in its canonical order, then `\"@method\"` again.",
            base(),
            E::DuplicateComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"@method\"");
            },
        ),
        neg(
            "neg-content-digest-after-floor",
            "The floor in its canonical order, then `\"content-digest\"` again.",
            base(),
            E::DuplicateComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"content-digest\"");
            },
        ),
        neg(
            "neg-forbidden-target-uri",
            "The derived component `@target-uri` is not allowed.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"@target-uri\"");
            },
        ),
        neg(
            "neg-forbidden-request-target",
            "The derived component `@request-target` is not allowed.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input(
                    "\"content-digest\"",
                    "\"content-digest\" \"@request-target\"",
                );
            },
        ),
        neg(
            "neg-forbidden-signature-params",
            "`@signature-params` may not be listed.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input(
                    "\"content-digest\"",
                    "\"content-digest\" \"@signature-params\"",
                );
            },
        ),
        neg(
            "neg-forbidden-sf-param",
            "A component with a parameter (`;sf`).",
            covered(),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-type\"", "\"content-type\";sf");
            },
        ),
        neg(
            "neg-forbidden-query-param",
            "`@query-param` with its `name` parameter.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input("\"@query\"", "\"@query\" \"@query-param\";name=\"limit\"");
            },
        ),
        neg(
            "neg-forbidden-host",
            "`host` may not be covered.",
            base().header("Host", "api.example.com"),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"host\"");
            },
        ),
        neg(
            "neg-forbidden-x-forwarded-for",
            "`x-forwarded-for` may not be covered.",
            base().header("X-Forwarded-For", "198.51.100.7"),
            E::ForbiddenComponent,
            |w| {
                w.input(
                    "\"content-digest\"",
                    "\"content-digest\" \"x-forwarded-for\"",
                );
            },
        ),
        neg(
            "neg-forbidden-signature",
            "`signature` may not be covered.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"signature\"");
            },
        ),
        neg(
            "neg-forbidden-signature-input",
            "`signature-input` may not be covered.",
            base(),
            E::ForbiddenComponent,
            |w| {
                w.input(
                    "\"content-digest\"",
                    "\"content-digest\" \"signature-input\"",
                );
            },
        ),
        neg(
            "neg-forbidden-hop-by-hop",
            "The hop-by-hop field `connection` may not be covered.",
            base().header("Connection", "keep-alive"),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"connection\"");
            },
        ),
        neg(
            "neg-forbidden-forwarded",
            "`forwarded` may not be covered.",
            base().header("Forwarded", "for=198.51.100.7"),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"forwarded\"");
            },
        ),
        neg(
            "neg-forbidden-via",
            "`via` may not be covered.",
            base().header("Via", "1.1 proxy"),
            E::ForbiddenComponent,
            |w| {
                w.input("\"content-digest\"", "\"content-digest\" \"via\"");
            },
        ),
        neg(
            "neg-uppercase-component",
            "Component names must be lowercase.",
            covered(),
            E::MalformedSignature,
            |w| {
                w.input("\"x-note\"", "\"X-Note\"");
            },
        ),
        neg(
            "neg-missing-floor-query",
            "`@query` not covered.",
            base(),
            E::MissingComponent,
            |w| w.input(" \"@query\"", ""),
        ),
        neg(
            "neg-missing-floor-content-digest",
            "`content-digest` not covered.",
            base(),
            E::MissingComponent,
            |w| {
                w.input(" \"content-digest\"", "");
            },
        ),
        neg(
            "neg-missing-floor-method",
            "`@method` not covered.",
            base(),
            E::MissingComponent,
            |w| w.input("\"@method\" ", ""),
        ),
        neg(
            "neg-created-too-old",
            "`created` one second beyond the window in the past.",
            base().now(CREATED + WINDOW + 1),
            E::ClockSkew,
            |_| {},
        ),
        neg(
            "neg-created-in-future",
            "`created` one second more than the window ahead of the verifier's clock (far beyond the 2 seconds step 4 accepts ahead).",
            base().now(CREATED - WINDOW - 1),
            E::ClockSkew,
            |_| {},
        ),
        neg(
            "neg-created-ahead-beyond",
            "`created` 3 seconds ahead of the verifier's clock: one second more than step 4 accepts ahead, though well within the window.",
            base().now(CREATED - tessera_core::MAX_AHEAD_SECS - 1),
            E::ClockSkew,
            |_| {},
        ),
        neg(
            "neg-created-ahead-small-window",
            "With a window of 1 second, `created` 2 seconds ahead: ahead is min(window, 2), so 1 second here.",
            base().now(CREATED - 2).window(1),
            E::ClockSkew,
            |_| {},
        ),
        neg(
            "neg-expires-passed",
            "`expires` one second in the past, `created` within the window.",
            base().expires(CREATED + 60).now(CREATED + 61),
            E::SignatureExpired,
            |_| {},
        ),
        neg(
            "neg-expires-before-created",
            "`expires` not after `created`.",
            base(),
            E::InvalidParameter,
            |w| {
                w.input(&created, &format!("{created};expires={}", CREATED - 1));
            },
        ),
        neg(
            "neg-created-negative",
            "A negative `created`.",
            base(),
            E::InvalidParameter,
            |w| w.input(&created, ";created=-1"),
        ),
        neg(
            "neg-created-string",
            "`created` as a string.",
            base(),
            E::MalformedSignature,
            |w| {
                w.input(&created, &format!(";created=\"{CREATED}\""));
            },
        ),
        neg(
            "neg-cr-in-covered-header",
            "A CR in a covered field value.",
            covered(),
            E::InvalidFieldValue,
            |w| w.set("X-Note", "hel\rlo"),
        ),
        neg(
            "neg-lf-in-covered-header",
            "An LF in a covered field value.",
            covered(),
            E::InvalidFieldValue,
            |w| w.set("X-Note", "hel\nlo"),
        ),
        neg(
            "neg-crlf-in-covered-header",
            "A CRLF in a covered field value (a field-injection attempt).",
            covered(),
            E::InvalidFieldValue,
            |w| {
                w.set("X-Note", "hello\r\nX-Admin: 1");
            },
        ),
        neg(
            "neg-nul-in-covered-header",
            "A NUL in a covered field value.",
            covered(),
            E::InvalidFieldValue,
            |w| w.set("X-Note", "hel\0lo"),
        ),
        neg(
            "neg-nonce-too-long",
            "A 65-character nonce.",
            base(),
            E::InvalidParameter,
            |w| {
                let n = nonce_for("neg-nonce-too-long");
                w.input(&n, &"N".repeat(65));
            },
        ),
        neg(
            "neg-nonce-too-short",
            "A 21-character nonce.",
            base(),
            E::InvalidParameter,
            |w| {
                let n = nonce_for("neg-nonce-too-short");
                w.input(&n, &"N".repeat(21));
            },
        ),
        neg(
            "neg-nonce-bad-char",
            "A nonce with `+` (standard base64, not base64url).",
            base(),
            E::InvalidParameter,
            |w| {
                let n = nonce_for("neg-nonce-bad-char");
                w.input(&n, "AAAAAAAAAAAAAAAAAAAA+/");
            },
        ),
        neg(
            "neg-keyid-too-long",
            "A 129-character key id.",
            base(),
            E::InvalidParameter,
            |w| {
                w.input(&keyid, &format!(";keyid=\"{}\"", "k".repeat(129)));
            },
        ),
        neg(
            "neg-keyid-bad-char",
            "A key id with a space.",
            base(),
            E::InvalidParameter,
            |w| {
                w.input(&keyid, ";keyid=\"device 7f3a2c\"");
            },
        ),
        neg(
            "neg-keyid-empty",
            "An empty key id.",
            base(),
            E::InvalidParameter,
            |w| w.input(&keyid, ";keyid=\"\""),
        ),
        neg(
            "neg-signature-not-base64",
            "The Signature byte sequence is not base64.",
            base(),
            E::MalformedSignature,
            |w| {
                w.set("Signature", "tessera=:not*base64!:");
            },
        ),
        neg(
            "neg-signature-wrong-length",
            "A 16-byte signature.",
            base(),
            E::MalformedSignature,
            |w| {
                w.set("Signature", "tessera=:AAAAAAAAAAAAAAAAAAAAAA==:");
            },
        ),
        neg(
            "neg-signature-too-long",
            "A 64-byte signature.",
            base(),
            E::MalformedSignature,
            |w| {
                w.set(
                    "Signature",
                    &format!("tessera=:{}:", STANDARD.encode([7u8; 64])),
                );
            },
        ),
        neg(
            "neg-signature-not-byte-sequence",
            "The Signature member is a string.",
            base(),
            E::MalformedSignature,
            |w| {
                w.set("Signature", "tessera=\"abc\"");
            },
        ),
        neg(
            "neg-signature-label-mismatch",
            "Signature has no member with the Signature-Input label.",
            base(),
            E::MalformedSignature,
            |w| {
                w.replace_in("signature", "tessera=", "other=");
            },
        ),
        neg(
            "neg-signature-input-not-dictionary",
            "Signature-Input is not a structured dictionary.",
            base(),
            E::MalformedSignature,
            |w| {
                w.set("Signature-Input", "tessera=(\"@method\"");
            },
        ),
        neg(
            "neg-alg-mismatch",
            "`alg=\"hmac-sha512\"`.",
            base(),
            E::AlgorithmMismatch,
            |w| {
                w.input(";tag=", ";alg=\"hmac-sha512\";tag=");
            },
        ),
        neg(
            "neg-alg-asymmetric",
            "`alg=\"ed25519\"`.",
            base(),
            E::AlgorithmMismatch,
            |w| {
                w.input(";tag=", ";alg=\"ed25519\";tag=");
            },
        ),
        neg(
            "neg-missing-signature-header",
            "Signature-Input without Signature.",
            base(),
            E::MalformedSignature,
            |w| w.remove("Signature"),
        ),
        neg(
            "neg-no-signature",
            "Neither Signature-Input nor Signature.",
            base(),
            E::MissingSignature,
            |w| {
                w.remove("Signature");
                w.remove("Signature-Input");
            },
        ),
        neg(
            "neg-two-tessera-signatures",
            "Two members tagged tessera-v1.",
            base(),
            E::MalformedSignature,
            |w| {
                let input = w.get("Signature-Input");
                let sig = w.get("Signature");
                w.headers.push((
                    "Signature-Input".to_owned(),
                    input.replacen("tessera=", "tessera2=", 1),
                ));
                w.headers.push((
                    "Signature".to_owned(),
                    sig.replacen("tessera=", "tessera2=", 1),
                ));
            },
        ),
        neg(
            "neg-wrong-digest",
            "Content-Digest of another body, signed so (the MAC verifies); the body is unchanged.",
            base().method("POST").body(&b"original"[..]),
            E::DigestMismatch,
            |w| {
                w.set("Content-Digest", &BodyDigest::of(b"other").header_value());
                w.remac();
            },
        ),
        neg(
            "neg-digest-replaced-after-signing",
            "Content-Digest of another body put in after signing: the MAC is checked before the body (step 6 before step 7), so `bad_signature`, not `digest_mismatch`.",
            base().method("POST").body(&b"original"[..]),
            E::BadSignature,
            |w| {
                w.set("Content-Digest", &BodyDigest::of(b"other").header_value());
            },
        ),
        neg(
            "neg-digest-sha512-only",
            "Content-Digest with only a sha-512 member, signed so.",
            base(),
            E::DigestMismatch,
            |w| {
                w.set("Content-Digest", "sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==:");
                w.remac();
            },
        ),
        neg(
            "neg-digest-malformed",
            "Content-Digest is not a dictionary, signed so.",
            base(),
            E::DigestMismatch,
            |w| {
                w.set("Content-Digest", "sha-256=not-a-byte-sequence(");
                w.remac();
            },
        ),
        neg(
            "neg-content-digest-obs-text",
            "Content-Digest holds octet 0xE9 (written U+00E9): the base cannot hold it, so building the base in step 6 refuses it (`invalid_field_value`) before the body is compared.",
            base(),
            E::InvalidFieldValue,
            |w| {
                w.set("Content-Digest", "sha-256=:caf\u{e9}:");
            },
        ),
        neg(
            "neg-missing-content-digest-header",
            "The covered Content-Digest field is absent.",
            base(),
            E::MissingComponent,
            |w| {
                w.remove("Content-Digest");
            },
        ),
        neg(
            "neg-covered-header-absent",
            "A covered extra field is absent from the request.",
            covered(),
            E::MissingComponent,
            |w| {
                w.remove("X-Note");
            },
        ),
        neg(
            "neg-unknown-key",
            "Signed with a key the verifier does not know.",
            base().key(other_key),
            E::UnknownKey,
            |w| {
                w.key = default_key();
            },
        ),
        neg(
            "neg-wrong-authority",
            "Received at an authority the verifier does not serve.",
            base(),
            E::AuthorityMismatch,
            |w| {
                w.target_uri = w
                    .target_uri
                    .replacen("api.example.com", "evil.example.net", 1);
            },
        ),
        neg(
            "neg-wrong-port",
            "Received at a port the verifier does not serve.",
            base(),
            E::AuthorityMismatch,
            |w| {
                w.target_uri = w
                    .target_uri
                    .replacen("api.example.com", "api.example.com:8443", 1);
            },
        ),
        neg(
            "neg-wrong-secret",
            "The verifier holds another secret under the same key id.",
            base(),
            E::BadSignature,
            |w| {
                w.key = pattern_key(KEY_ID, 32, 12);
            },
        ),
        neg(
            "neg-tampered-method",
            "Method changed from GET to DELETE.",
            base(),
            E::BadSignature,
            |w| w.method = "DELETE".to_owned(),
        ),
        neg(
            "neg-tampered-authority",
            "Authority changed to another one the verifier also serves.",
            base().authorities(&["api.example.com", "admin.example.com"]),
            E::BadSignature,
            |w| {
                w.target_uri = w
                    .target_uri
                    .replacen("api.example.com", "admin.example.com", 1);
            },
        ),
        neg(
            "neg-store-reset",
            "The nonce store remembers only from the second after `created` (it restarted or lost its contents; spec §14.1).",
            base().store_since(CREATED + 1),
            E::StoreReset,
            |_| {},
        ),
        neg(
            "neg-store-reset-after-bad-signature",
            "Path changed and the store remembers only from after `created`: the MAC is checked first (step 6 before step 8).",
            base().store_since(CREATED + 1),
            E::BadSignature,
            |w| {
                w.target_uri = w.target_uri.replacen("/v1/orders", "/v1/admin", 1);
            },
        ),
        neg(
            "neg-tampered-path",
            "Path changed.",
            base(),
            E::BadSignature,
            |w| {
                w.target_uri = w.target_uri.replacen("/v1/orders", "/v1/admin", 1);
            },
        ),
        neg(
            "neg-tampered-path-pct-case",
            "Percent-encoding case changed: no normalization, so the signature breaks.",
            base().target("https://api.example.com/files/a%2Fb"),
            E::BadSignature,
            |w| {
                w.target_uri = w.target_uri.replacen("%2F", "%2f", 1);
            },
        ),
        neg(
            "neg-tampered-query",
            "Query value changed.",
            base(),
            E::BadSignature,
            |w| {
                w.target_uri = w.target_uri.replacen("limit=10", "limit=1000", 1);
            },
        ),
        neg(
            "neg-tampered-query-removed",
            "Query removed.",
            base(),
            E::BadSignature,
            |w| {
                w.target_uri = w.target_uri.replacen("?limit=10", "", 1);
            },
        ),
        neg(
            "neg-tampered-covered-header",
            "A covered field value changed.",
            covered(),
            E::BadSignature,
            |w| w.set("X-Note", "goodbye"),
        ),
        neg(
            "neg-tampered-header-line-added",
            "Another line of a covered field appended.",
            covered(),
            E::BadSignature,
            |w| {
                w.headers.push(("X-Note".to_owned(), "injected".to_owned()));
            },
        ),
        neg(
            "neg-tampered-duplicate-order",
            "Duplicate lines of a covered field reordered.",
            base()
                .header("X-Trace", "a")
                .header("X-Trace", "b")
                .extra(&["x-trace"]),
            E::BadSignature,
            |w| {
                for (n, v) in &mut w.headers {
                    if n == "X-Trace" {
                        *v = if v == "a" {
                            "b".to_owned()
                        } else {
                            "a".to_owned()
                        };
                    }
                }
            },
        ),
        neg(
            "neg-tampered-body",
            "Body changed; Content-Digest left as signed.",
            covered(),
            E::DigestMismatch,
            |w| {
                w.body = br#"{"qty":100}"#.to_vec();
            },
        ),
        neg(
            "neg-tampered-body-and-signature",
            "Body changed and the Signature's first byte flipped: the MAC is checked before the body, so `bad_signature`.",
            covered(),
            E::BadSignature,
            |w| {
                w.body = br#"{"qty":100}"#.to_vec();
                let signature = w.get("Signature");
                let flipped = if signature.contains("=:A") {
                    signature.replacen("=:A", "=:B", 1)
                } else {
                    let at = signature.find("=:").map_or(0, |i| i + 2);
                    format!("{}A{}", &signature[..at], &signature[at + 1..])
                };
                w.set("Signature", &flipped);
            },
        ),
        neg(
            "neg-tampered-body-and-digest",
            "Body changed and Content-Digest recomputed to match.",
            covered(),
            E::BadSignature,
            |w| {
                w.body = br#"{"qty":100}"#.to_vec();
                w.set("Content-Digest", &BodyDigest::of(&w.body).header_value());
            },
        ),
        neg(
            "neg-tampered-created",
            "`created` moved one second later.",
            base(),
            E::BadSignature,
            |w| {
                w.input(&created, &format!(";created={}", CREATED + 1));
            },
        ),
        neg(
            "neg-tampered-expires-added",
            "`expires` added after signing.",
            base(),
            E::BadSignature,
            |w| {
                w.input(&keyid, &format!(";expires={}{keyid}", CREATED + 100));
            },
        ),
        neg(
            "neg-tampered-nonce",
            "The nonce replaced.",
            base(),
            E::BadSignature,
            |w| {
                let n = nonce_for("neg-tampered-nonce");
                w.input(&n, "BBBBBBBBBBBBBBBBBBBBBB");
            },
        ),
        neg(
            "neg-tampered-keyid",
            "The key id replaced with one the verifier does not know.",
            base(),
            E::UnknownKey,
            |w| {
                w.input(&keyid, ";keyid=\"device-000000\"");
            },
        ),
        neg(
            "neg-tampered-extra-dropped",
            "A covered extra field dropped from the list.",
            covered(),
            E::BadSignature,
            |w| {
                w.input(" \"x-note\"", "");
            },
        ),
        neg(
            "neg-tampered-signature-bit",
            "One bit of the MAC flipped.",
            base(),
            E::BadSignature,
            |w| {
                let sig = w.get("Signature");
                let mac = sig
                    .strip_prefix(&format!("{LABEL}=:"))
                    .and_then(|s| s.strip_suffix(':'))
                    .and_then(|s| STANDARD.decode(s).ok());
                match mac {
                    Some(mut mac) => {
                        mac[0] ^= 1;
                        w.set("Signature", &format!("{LABEL}=:{}:", STANDARD.encode(mac)));
                    }
                    None => w.problems.push("signature did not decode".to_owned()),
                }
            },
        ),
    ];
    cases.into_iter().collect()
}

/// Every case, in order: positive first, then negative. Each was checked
/// against `tessera_core` before being returned.
///
/// # Errors
/// The first case that could not be built or did not check.
pub fn all_cases() -> Result<Vec<Case>, Failure> {
    let mut cases = positive()?;
    cases.extend(negative()?);
    cases.extend(crate::conformance::cases()?);
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Failure {
            case: w[0].to_owned(),
            stage: "setup",
            detail: "two cases have this name".to_owned(),
        });
    }
    for case in &cases {
        check(case)?;
    }
    Ok(cases)
}
