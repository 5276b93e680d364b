//! Property tests: sign→verify round trips, single-component tampering,
//! arbitrary signature headers never panicking, and `@authority` normalization.
#![allow(missing_docs, clippy::unwrap_used, clippy::too_many_arguments)]

use proptest::prelude::*;
use tessera_core::{
    normalize_authority, sign, verify, BodyDigest, Component, ErrorCode, KeyId, Nonce,
    ParsedSignature, Policy, ReceivedRequest, RequestView, Scheme, SecretKey, SignOptions,
    SigningKey,
};

type Headers = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Case {
    method: String,
    authority: String,
    path: String,
    query: Option<String>,
    headers: Headers,
    extra: Vec<String>,
    body: Vec<u8>,
    created: u64,
    nonce: String,
    keyid: String,
    secret: Vec<u8>,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$&'*+.^_`|~-]{1,12}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,8}", 0..6).prop_map(
        |segments| {
            if segments.is_empty() {
                "/".to_owned()
            } else {
                format!("/{}", segments.join("/"))
            }
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            Just("PUT".to_owned()),
            Just("DELETE".to_owned()),
            token()
        ],
        (
            "[a-z0-9-]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}",
            prop::option::of(1u16..),
        ),
        path(),
        prop::option::of("([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}){0,40}"),
        prop::collection::vec(
            (
                "x-[a-z]{1,6}",
                "[ \\t]{0,2}[!-~]([ !-~\\t]{0,20}[!-~])?[ \\t]{0,2}",
            ),
            0..4,
        ),
        prop::collection::vec(any::<u8>(), 0..300),
        0u64..4_000_000_000,
        "[A-Za-z0-9_-]{22,64}",
        "[!#-\\[\\]-~]{1,40}",
        prop::collection::vec(any::<u8>(), 16..80),
    )
        .prop_map(
            |(method, (host, port), path, query, headers, body, created, nonce, keyid, secret)| {
                let authority = match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                };
                let mut extra: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
                extra.sort();
                extra.dedup();
                Case {
                    method,
                    authority,
                    path,
                    query,
                    headers,
                    extra,
                    body,
                    created,
                    nonce,
                    keyid,
                    secret,
                }
            },
        )
}

struct Signed {
    headers: Headers,
    key: SigningKey,
    authority: String,
}

fn sign_case(c: &Case) -> Signed {
    let key = SigningKey::new(
        KeyId::new(c.keyid.clone()).unwrap(),
        &SecretKey::from_bytes(&c.secret).unwrap(),
    );
    let extra: Vec<Component> = c
        .extra
        .iter()
        .map(|n| Component::field(n).unwrap())
        .collect();
    let nonce = Nonce::new(c.nonce.clone()).unwrap();
    let view = RequestView::new(
        &c.method,
        Scheme::Https,
        &c.authority,
        &c.path,
        c.query.as_deref(),
        &c.headers[..],
    )
    .unwrap();
    let opts = SignOptions::new(c.created, &nonce).cover(&extra);
    let out = sign(&key, &view, &BodyDigest::of(&c.body), &opts).unwrap();
    let mut headers = c.headers.clone();
    for (name, value) in out.iter() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    Signed {
        headers,
        key,
        authority: view.authority().to_owned(),
    }
}

fn check(
    c: &Case,
    s: &Signed,
    method: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
    headers: &Headers,
    body: &[u8],
) -> Result<(), ErrorCode> {
    let target = match query {
        Some(q) => format!("https://{authority}{path}?{q}"),
        None => format!("https://{authority}{path}"),
    };
    let received = ReceivedRequest::new(method.as_bytes(), target.as_bytes(), &headers[..]);
    let authorities = [normalize_authority(&s.authority, Scheme::Https)
        .map_err(|e| e.code())?
        .into_owned()];
    let policy = Policy::new(c.created + 7, 300, &authorities);
    verify(&received, &BodyDigest::of(body), &policy, |_| {
        Ok(s.key.clone())
    })
    .map(|_| ())
    .map_err(|e| e.code())
}

fn with_input(headers: &Headers, f: impl Fn(&str) -> String) -> Headers {
    headers
        .iter()
        .map(|(n, v)| {
            if n == "signature-input" {
                (n.clone(), f(v))
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect()
}

/// Hosts of every shape the grammar allows (letters of both cases, escapes
/// with either hex case, IP literals) and some it does not, with or without a port.
fn authority() -> impl Strategy<Value = String> {
    let reg_name = "([A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?){0,12}";
    let ip_literal =
        "\\[([0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}\\]|\\[[vV][0-9A-F]\\.[a-zA-Z:]{1,4}\\]";
    let port = "(:[0-9]{0,5})?";
    (prop_oneof![reg_name, ip_literal], port).prop_map(|(host, port)| host + &port)
}

proptest! {
    /// The normal form is lowercase throughout (escapes included) and a fixed
    /// point, so two spellings of one host always give one `@authority`.
    #[test]
    fn normalized_authorities_are_lowercase_and_stable(
        raw in authority(),
        https in any::<bool>(),
    ) {
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        if let Ok(normal) = normalize_authority(&raw, scheme) {
            prop_assert!(!normal.bytes().any(|b| b.is_ascii_uppercase()), "{raw:?} -> {normal:?}");
            let again = normalize_authority(&normal, scheme);
            prop_assert_eq!(again.as_deref(), Ok(&*normal));
            let shouted = raw.to_ascii_uppercase();
            let upper = normalize_authority(&shouted, scheme);
            prop_assert_eq!(upper.as_deref(), Ok(&*normal), "case changes nothing but case");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_round_trips(c in case()) {
        let s = sign_case(&c);
        prop_assert_eq!(check(&c, &s, &c.method, &s.authority, &c.path, c.query.as_deref(), &s.headers, &c.body), Ok(()));
    }

    #[test]
    fn any_single_tamper_fails(c in case(), which in 0usize..9, byte in any::<u8>()) {
        let s = sign_case(&c);
        let q = c.query.as_deref();
        let h = &s.headers;
        let outcome = match which {
            0 => check(&c, &s, &format!("{}X", c.method), &s.authority, &c.path, q, h, &c.body),
            1 => check(&c, &s, &c.method, &format!("other.{}", s.authority), &c.path, q, h, &c.body),
            2 => check(&c, &s, &c.method, &s.authority, &format!("{}/x", c.path.trim_end_matches('/')), q, h, &c.body),
            3 => {
                let tampered = match q { Some(q) => format!("{q}&t=1"), None => "t=1".to_owned() };
                check(&c, &s, &c.method, &s.authority, &c.path, Some(&tampered), h, &c.body)
            }
            4 => {
                if c.headers.is_empty() { return Ok(()); }
                let name = &c.headers[0].0;
                let tampered: Headers = h.iter().map(|(n, v)| if n == name { (n.clone(), format!("{v}z")) } else { (n.clone(), v.clone()) }).collect();
                check(&c, &s, &c.method, &s.authority, &c.path, q, &tampered, &c.body)
            }
            5 => {
                let mut body = c.body.clone();
                if body.is_empty() { body.push(byte) } else { let i = byte as usize % body.len(); body[i] ^= 1 | byte; }
                check(&c, &s, &c.method, &s.authority, &c.path, q, h, &body)
            }
            6 => {
                let tampered = with_input(h, |v| v.replace(&format!("created={}", c.created), &format!("created={}", c.created + 1)));
                check(&c, &s, &c.method, &s.authority, &c.path, q, &tampered, &c.body)
            }
            7 => {
                let other = if c.nonce.starts_with('A') { c.nonce.replacen('A', "B", 1) } else { format!("A{}", &c.nonce[1..]) };
                let tampered = with_input(h, |v| v.replace(&format!("nonce=\"{}\"", c.nonce), &format!("nonce=\"{other}\"")));
                check(&c, &s, &c.method, &s.authority, &c.path, q, &tampered, &c.body)
            }
            _ => {
                let tampered = with_input(h, |v| v.replace(&format!("keyid=\"{}\"", c.keyid), &format!("keyid=\"{}x\"", &c.keyid[..c.keyid.len().min(100)])));
                check(&c, &s, &c.method, &s.authority, &c.path, q, &tampered, &c.body)
            }
        };
        prop_assert!(outcome.is_err(), "tamper {} was accepted", which);
    }

    #[test]
    fn arbitrary_signature_headers_never_panic(input in prop::collection::vec(any::<u8>(), 0..400), sig in prop::collection::vec(any::<u8>(), 0..200), printable in "[ -~]{0,300}") {
        for si in [input.as_slice(), printable.as_bytes()] {
            let headers: Vec<(String, Vec<u8>)> = vec![
                ("signature-input".to_owned(), si.to_vec()),
                ("signature".to_owned(), sig.clone()),
                ("content-digest".to_owned(), sig.clone()),
            ];
            let _ = ParsedSignature::from_fields(&headers[..]);
        }
    }

    #[test]
    fn plausible_signature_inputs_never_panic(
        comps in prop::collection::vec("\"[@a-z-]{0,12}\"(;[a-z]{1,3})?", 0..8),
        params in prop::collection::vec((prop_oneof![Just("created"), Just("expires"), Just("keyid"), Just("nonce"), Just("tag"), Just("alg"), Just("zz")], prop_oneof!["-?[0-9]{1,16}", "\"[ -!#-\\[\\]-~]{0,70}\"", "\\?[01]", ":[A-Za-z0-9+/=]{0,48}:"]), 0..8),
        mac in ":[A-Za-z0-9+/=]{0,48}:",
    ) {
        let mut input = format!("tessera=({})", comps.join(" "));
        for (k, v) in &params { input.push_str(&format!(";{k}={v}")); }
        input.push_str(";tag=\"tessera-v1\"");
        let headers: Vec<(String, String)> = vec![("signature-input".to_owned(), input), ("signature".to_owned(), format!("tessera={mac}"))];
        let _ = ParsedSignature::from_fields(&headers[..]);
    }
}
