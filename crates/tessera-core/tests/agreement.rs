//! Signer and verifier accept exactly the same requests: request targets,
//! authorities, methods, covered names and field values are built from the
//! spec's grammar, every octet class included, and each request is signed
//! and verified. Either it is signable and verifies, or both refuse it with
//! the same code (`tessera_core::agreement`).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tessera_core::agreement::{sign_and_verify_agree, Attempt};

/// One octet of a path or query, from every class the spec distinguishes.
fn target_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::char::range('!', '~'),            // visible ASCII, `?` and `#` included
        1 => Just(' '),
        1 => prop::char::range('\u{0}', '\u{1f}'),   // controls
        1 => Just('\u{7f}'),
        1 => prop::char::range('\u{80}', '\u{ff}'),  // not ASCII
        1 => Just('%'),
    ]
}

fn target_part() -> impl Strategy<Value = String> {
    prop::collection::vec(target_char(), 0..12).prop_map(|c| c.into_iter().collect())
}

fn authority() -> impl Strategy<Value = String> {
    let reg_name = "([A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?|[ \"<>\\\\^`{|}@/]|\u{e9}){0,10}";
    let ipv6 =
        "\\[([0-9A-Fa-f]{0,4}:){1,8}[0-9A-Fa-f]{0,5}(\\.[0-9]{1,3}){0,3}(%25[a-z0-9]{1,3})?\\]?";
    let ip_future = "\\[[vV][0-9A-Fa-f]{0,2}\\.[a-zA-Z0-9:]{0,4}\\]";
    let ipv4 = "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}";
    let port = "(:[0-9]{0,7}|:[0-9a-z]{1,3}|:)?";
    (
        prop_oneof![4 => reg_name, 2 => ipv6, 1 => ip_future, 1 => ipv4],
        port,
    )
        .prop_map(|(host, port)| host + &port)
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z!#$%&'*+.^_`|~0-9-]{1,8}",
        1 => "[A-Z]{1,3}[ \"(),/:;<=>?@\\[\\]{}\u{e9}][A-Z]{0,3}",
        1 => Just(String::new()),
    ]
}

/// A field value with octets from every class: visible ASCII, SP, HTAB,
/// controls, DEL and obs-text.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            1 => Just(b'\t'),
            1 => 0u8..0x20,
            1 => Just(0x7fu8),
            1 => 0x80u8..=0xff,
        ],
        0..10,
    )
}

fn cover_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("x-a".to_owned()),
        1 => Just("X-A".to_owned()),
        1 => Just("x-absent".to_owned()),
        1 => Just("host".to_owned()),
        1 => Just("content-digest".to_owned()),
        1 => Just("@method".to_owned()),
        1 => Just("@target-uri".to_owned()),
        1 => Just("x-b".to_owned()),
        1 => "[a-z][a-z0-9!#$%&'*+.^_`|~-]{0,6}",
        1 => "[A-Za-z@ ,;][a-z]{0,3}",
    ]
}

/// Usually a short list; sometimes one long enough to pass the 32-component limit.
fn cover() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        18 => prop::collection::vec(cover_name(), 0..4),
        1 => prop::collection::vec(cover_name(), 26..30),
        1 => prop::collection::vec(cover_name(), 58..62),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn signer_and_verifier_agree(
        https in any::<bool>(),
        authority in authority(),
        path in target_part(),
        query in prop::option::of(target_part()),
        method in method(),
        a in field_value(),
        b in field_value(),
        cover in cover(),
        origin_form in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..8),
        hosts in prop::collection::vec(authority(), 0..3),
    ) {
        let scheme = if https { "https" } else { "http" };
        let slash = if path.starts_with('/') || path.is_empty() { "" } else { "/" };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{scheme}://{authority}{slash}{path}{query}");
        let mut headers = vec![("X-A".to_owned(), a), ("x-b".to_owned(), b)];
        // Sometimes the request brings Host lines of its own, even two.
        headers.extend(hosts.into_iter().map(|h| ("Host".to_owned(), h.into_bytes())));
        let attempt = Attempt {
            method: &method,
            url: &url,
            headers: &headers,
            cover: &cover,
            body: &body,
            origin_form,
        };
        if let Err(disagreement) = sign_and_verify_agree(&attempt) {
            prop_assert!(false, "{url:?} {method:?}: {disagreement}");
        }
    }
}

/// The octet classes one by one, so each is exercised on every run.
#[test]
fn each_octet_class_agrees() {
    for octet in 0u8..=0xff {
        let c = char::from(octet);
        for url in [
            format!("https://api.example.com/a{c}b"),
            format!("https://api.example.com/a?b{c}c"),
            format!("https://api.ex{c}ample.com/a"),
        ] {
            for origin_form in [false, true] {
                let headers = vec![("X-A".to_owned(), vec![b'v', octet])];
                let attempt = Attempt {
                    method: "get",
                    url: &url,
                    headers: &headers,
                    cover: &["x-a".to_owned()],
                    body: b"",
                    origin_form,
                };
                if let Err(d) = sign_and_verify_agree(&attempt) {
                    panic!("octet 0x{octet:02x} in {url:?}: {d}");
                }
            }
        }
    }
}
