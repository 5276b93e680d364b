//! Signature-base construction from arbitrary request parts: never panics, and
//! a base that builds is deterministic and has one line per component plus
//! `@signature-params`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_core::{
    signature_base, BodyDigest, Component, KeyId, Nonce, RequestView, Scheme, SecretKey,
    SignOptions, SigningKey,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    http: bool,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a [u8])>,
    extra: Vec<&'a str>,
    body: &'a [u8],
    created: u64,
}

fuzz_target!(|input: Input<'_>| {
    let scheme = if input.http {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let Ok(view) = RequestView::new(
        input.method,
        scheme,
        input.authority,
        input.path,
        input.query,
        &input.headers[..],
    ) else {
        return;
    };
    let extra: Vec<Component> = input
        .extra
        .iter()
        .filter_map(|n| Component::field(n).ok())
        .collect();
    let Ok(key_id) = KeyId::new("fuzz-key") else {
        return;
    };
    let Ok(secret) = SecretKey::from_bytes(&[9; 32]) else {
        return;
    };
    let key = SigningKey::new(key_id, &secret);
    let Ok(nonce) = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA") else {
        return;
    };
    let opts = SignOptions::new(input.created, &nonce).cover(&extra);
    let digest = BodyDigest::of(input.body);
    if let Ok(base) = signature_base(&key, &view, &digest, &opts) {
        let again = signature_base(&key, &view, &digest, &opts).expect("deterministic");
        assert_eq!(base, again);
        let lines = base.as_bytes().split(|&b| b == b'\n').count();
        assert_eq!(lines, 5 + extra.len() + 1);
        let _ = base.redacted().to_string();
    }
});
