//! Signs and verifies the benchmark GET in a loop, for profiling under callgrind:
//! `valgrind --tool=callgrind target/release/examples/profile_sign`.

use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, ParsedSignature, Policy, RequestView, SecretKey,
    SignOptions, SigningKey,
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
            .map_err(|_| {
                tessera_core::Error::new(tessera_core::ErrorCode::InvalidFieldValue, "request")
            })?
            .into_parts();
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy {
        now: 1_700_000_005,
        window: 300,
        authorities: &authorities,
    };
    let mut rng = rand::rng();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let mut signed = parts.clone();
    for _ in 0..rounds {
        let nonce = Nonce::generate(&mut rng);
        let opts = SignOptions {
            created: 1_700_000_000,
            expires: None,
            nonce: &nonce,
            extra: &extra,
        };
        let headers = sign(
            &key,
            &RequestView::from_parts(&parts)?,
            &BodyDigest::EMPTY,
            &opts,
        )?;
        headers.apply_to(&mut signed.headers)?;
        let view = RequestView::from_parts(&signed)?;
        let parsed = ParsedSignature::from_fields(view.fields())?;
        parsed.verify_with_key(&key, &view, &BodyDigest::EMPTY, &policy)?;
    }
    Ok(())
}
