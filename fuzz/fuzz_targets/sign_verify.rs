//! Sign then verify arbitrary valid requests: every signature that is produced
//! verifies, and flipping one body byte is always caught.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_core::{
    sign, verify, BodyDigest, Component, KeyId, Nonce, Policy, ReceivedRequest, RequestView,
    Scheme, SecretKey, SignOptions, SigningKey,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    extra: Vec<&'a str>,
    body: Vec<u8>,
    created: u32,
    secret: [u8; 32],
    flip: u16,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(view) = RequestView::new(
        input.method,
        Scheme::Https,
        input.authority,
        input.path,
        input.query,
        &input.headers[..],
    ) else {
        return;
    };
    let mut extra: Vec<Component> = Vec::new();
    for name in &input.extra {
        if let Ok(c) = Component::field(name) {
            if !extra.contains(&c) && !tessera_core::MANDATORY.contains(&c) {
                extra.push(c);
            }
        }
    }
    let Ok(secret) = SecretKey::from_bytes(&input.secret) else {
        return;
    };
    let Ok(id) = KeyId::new("fuzz") else { return };
    let key = SigningKey::new(id, &secret);
    let Ok(nonce) = Nonce::new("fuzzfuzzfuzzfuzzfuzzfu") else {
        return;
    };
    let created = u64::from(input.created);
    let opts = SignOptions::new(created, &nonce).cover(&extra);
    let Ok(signed) = sign(&key, &view, &BodyDigest::of(&input.body), &opts) else {
        return;
    };

    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .filter(|(n, _)| {
            !["signature", "signature-input", "content-digest"]
                .contains(&n.to_ascii_lowercase().as_str())
        })
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (n, v) in signed.iter() {
        headers.push((n.to_owned(), v.to_owned()));
    }
    let target = match input.query {
        Some(q) => format!("https://{}{}?{q}", input.authority, input.path),
        None => format!("https://{}{}", input.authority, input.path),
    };
    let received = ReceivedRequest::new(input.method.as_bytes(), target.as_bytes(), &headers[..]);
    let authorities = [view.authority().to_owned()];
    let policy = Policy::new(created, 300, &authorities);
    if let Err(e) = verify(&received, &BodyDigest::of(&input.body), &policy, |_| {
        Ok(key.clone())
    }) {
        // Only a covered header that was filtered out above (a duplicate
        // signature field name among the extras) may legitimately fail.
        assert!(
            matches!(e.code(), tessera_core::ErrorCode::MissingComponent),
            "own signature rejected: {e}"
        );
        return;
    }
    let mut body = input.body.clone();
    if body.is_empty() {
        body.push(0);
    } else {
        let i = usize::from(input.flip) % body.len();
        body[i] ^= 0x01;
    }
    assert!(verify(&received, &BodyDigest::of(&body), &policy, |_| Ok(
        key.clone()
    ))
    .is_err());
});
