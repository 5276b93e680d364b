//! Signs a request, shows what was signed, verifies it, and shows a tampered
//! copy being rejected. Run: `cargo run -p tessera-core --example sign_and_verify`.

use tessera_core::{
    sign, signature_base, verify, BodyDigest, Component, KeyId, Nonce, Policy, ReceivedRequest,
    Refusal, RequestView, SecretKey, SignOptions, SigningKey,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Issued once at login: a key id and a 32-byte secret for this device.
    let secret = SecretKey::generate()?;
    let key = SigningKey::new(KeyId::new("user-42-phone-1")?, &secret);

    let body = br#"{"item":"book","qty":1}"#;
    let (mut parts, ()) = http::Request::post("https://api.example.com/v1/orders?dry_run=true")
        .header("content-type", "application/json")
        .body(())?
        .into_parts();

    let created = 1_700_000_000;
    let nonce = Nonce::generate(&mut rand::rng());
    let extra = [Component::field("content-type")?];
    let options = SignOptions::new(created, &nonce).cover(&extra);
    let view = RequestView::from_parts(&parts)?;
    let digest = BodyDigest::of(body);
    println!(
        "signature base:\n{}\n",
        signature_base(&key, &view, &digest, &options)?
    );
    let headers = sign(&key, &view, &digest, &options)?;
    headers.apply_to(&mut parts.headers)?;
    for (name, value) in headers.iter() {
        println!("{name}: {value}");
    }

    let authorities = ["api.example.com".to_owned()];
    let policy = Policy::new(created + 2, 300, &authorities);
    let lookup = |id: &KeyId| {
        if id == key.key_id() {
            Ok(key.clone())
        } else {
            Err(Refusal::UnknownKey)
        }
    };
    let verified = verify(
        &ReceivedRequest::from_parts(&parts),
        &digest,
        &policy,
        lookup,
    )?;
    println!(
        "\nverified: keyid={} nonce={}",
        verified.key_id(),
        verified.nonce()
    );

    let tampered = BodyDigest::of(br#"{"item":"book","qty":100}"#);
    match verify(
        &ReceivedRequest::from_parts(&parts),
        &tampered,
        &policy,
        lookup,
    ) {
        Err(e) => println!("tampered body rejected: {e}"),
        Ok(_) => return Err("the tampered body was accepted".into()),
    }
    Ok(())
}
