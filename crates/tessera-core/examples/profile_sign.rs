//! Signs and verifies the benchmark GET in a loop, for profiling:
//! `perf record -g target/release/examples/profile_sign [rounds] [sign|verify|parse|both]`
//! (`parse` runs only `ParsedSignature::from_fields`)
//! (or under `valgrind --tool=callgrind`, where sha2 falls back to software SHA-256).

use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, ParsedSignature, Policy, ReceivedRequest,
    RequestView, SecretKey, SignOptions, SigningKey,
};

fn main() -> Result<(), tessera_core::Error> {
    let key = SigningKey::new(
        KeyId::new("user-42-phone")?,
        &SecretKey::from_bytes(&[0x42; 32])?,
    );
    let extra = [
        Component::field("content-type")?,
        Component::field("user-agent")?,
    ];
    let (parts, ()) =
        http::Request::get("https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef")
            .header("host", "api.example.com")
            .header("content-type", "application/json")
            .header("user-agent", "tessera-bench/1.0")
            .body(())
            .expect("a valid request")
            .into_parts();
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy::new(1_700_000_005, 300, &authorities);
    let mut rng = rand::rng();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "both".to_owned());
    let (sign_each, verify_each) = match mode.as_str() {
        "sign" => (true, false),
        "verify" | "parse" => (false, true),
        _ => (true, true),
    };
    let parse_only = mode == "parse";
    let mut signed = parts.clone();
    for round in 0..rounds {
        // In verify mode the request is signed once and then only verified.
        if sign_each || round == 0 {
            let nonce = Nonce::generate(&mut rng);
            let opts = SignOptions::new(1_700_000_000, &nonce).cover(&extra);
            let headers = sign(
                &key,
                &RequestView::from_parts(&parts)?,
                &BodyDigest::EMPTY,
                &opts,
            )?;
            headers.apply_to(&mut signed.headers)?;
        }
        if verify_each {
            let received = ReceivedRequest::from_parts(&signed);
            let parsed = ParsedSignature::from_fields(received.fields())?;
            if parse_only {
                std::hint::black_box(parsed);
                continue;
            }
            parsed.verify_with_key(&key, &received, &BodyDigest::EMPTY, &policy)?;
        }
    }
    Ok(())
}
