//! Loopback round trip through reqwest and axum: signed (client middleware +
//! server layer) against unsigned (plain client, same routes without the
//! layer), to measure the relative overhead of Tessera end to end.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_e2e::app::{start_unsigned, SignedApp};
use tessera_e2e::signed_client;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (signed_base, unsigned_base, signed, plain) = rt.block_on(async {
        let app = SignedApp::start().await;
        let unsigned = start_unsigned().await.unwrap();
        let signed = signed_client(app.signer());
        let plain = tessera_client::client_builder().build().unwrap();
        (
            app.base.clone(),
            format!("http://{unsigned}"),
            signed,
            plain,
        )
    });
    let path = "/v1/users/123/orders?limit=50&cursor=abc%2Fdef";

    let mut group = c.benchmark_group("round_trip");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let url = format!("{unsigned_base}{path}");
    group.bench_function("get_unsigned", |b| {
        b.to_async(&rt).iter(|| async {
            let r = plain
                .get(&url)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    // The reqwest-middleware wrapper alone, no middleware attached.
    let wrapped = reqwest_middleware::ClientBuilder::new(plain.clone()).build();
    group.bench_function("get_unsigned_middleware_wrapper", |b| {
        b.to_async(&rt).iter(|| async {
            let r = wrapped
                .get(&url)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    // Client-side cost alone: signed by the middleware, not verified.
    group.bench_function("get_signed_client_only", |b| {
        b.to_async(&rt).iter(|| async {
            let r = signed
                .get(&url)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    let url = format!("{signed_base}{path}");
    group.bench_function("get_signed", |b| {
        b.to_async(&rt).iter(|| async {
            let r = signed
                .get(&url)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    let body = vec![7u8; 16 * 1024];
    let url = format!("{unsigned_base}/v1/upload");
    group.bench_function("post_16KiB_unsigned", |b| {
        b.to_async(&rt).iter(|| async {
            let r = plain.post(&url).body(body.clone()).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    let url = format!("{signed_base}/v1/upload");
    group.bench_function("post_16KiB_signed", |b| {
        b.to_async(&rt).iter(|| async {
            let r = signed.post(&url).body(body.clone()).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
