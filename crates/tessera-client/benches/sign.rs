//! Signing cost of the reference GET through the path the middleware uses
//! (`Signer::sign_reqwest`), next to the plain `http::Request` path.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_client::{KeyId, SecretKey, Signer, SigningKey};

const URL: &str = "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef";

fn signer() -> Signer {
    let key = SigningKey::new(
        KeyId::new("user-42-phone").unwrap(),
        &SecretKey::from_bytes(&[7; 32]).unwrap(),
    );
    Signer::builder(key)
        .cover_all(["content-type", "user-agent"])
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let signer = signer();
    let client = reqwest::Client::new();
    let mut req = client
        .get(URL)
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "tessera-bench/1.0")
        .build()
        .unwrap();
    c.bench_function("client/sign_reqwest_core_get", |b| {
        b.iter(|| black_box(signer.sign_reqwest(black_box(&mut req)).unwrap()))
    });

    let mut http_req = http::Request::get(URL)
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "tessera-bench/1.0")
        .body(Vec::<u8>::new())
        .unwrap();
    c.bench_function("client/sign_http_request_core_get", |b| {
        b.iter(|| black_box(signer.sign_request(black_box(&mut http_req)).unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
