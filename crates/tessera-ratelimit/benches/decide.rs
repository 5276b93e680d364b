//! In-memory decisions, and what the limiter adds to a verified request,
//! measured side by side in one run.
//!
//! Run: `cargo bench -p tessera-ratelimit --bench decide`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_ratelimit::{MemoryRateStore, Plan, RateLimiter, Subject};
use tessera_server::{KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, Verifier};

const T0: u64 = 1_700_000_000;

fn decisions(c: &mut Criterion) {
    let plan = Plan::new("default", "1000000/s".parse().expect("rate"), 1_000_000).expect("plan");
    let store = MemoryRateStore::default();
    let ids: Vec<String> = (0..100_000).map(|i| format!("key-{i}")).collect();
    let mut group = c.benchmark_group("memory_decide");
    group.throughput(Throughput::Elements(1));
    let mut now = T0 * 1_000_000;
    group.bench_function("one_hot_subject", |b| {
        b.iter(|| {
            now += 1;
            black_box(store.decide_now(Subject::new("key", "hot"), &plan, 1, now))
        })
    });
    let mut i = 0usize;
    group.bench_function("100k_subjects", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            now += 1;
            black_box(store.decide_now(Subject::new("key", &ids[i]), &plan, 1, now))
        })
    });
    group.finish();
}

fn verifier(
    admission: bool,
    clock: &ManualClock,
    key: &SigningKey,
    secret: &SecretKey,
) -> Verifier {
    let keys = Arc::new(MemoryKeyStore::new());
    keys.insert(key.key_id().clone(), secret, KeyMetadata::new("user"));
    let builder = Verifier::builder(keys)
        .clock(clock.clone())
        .nonce_store(
            MemoryNonceStore::builder()
                .capacity(4_000_000)
                .per_key_capacity(4_000_000)
                .remembers_since(0)
                .build(),
        )
        .authority("api.example.com");
    let builder = if admission {
        builder.admission(
            RateLimiter::builder(MemoryRateStore::default())
                .default_plan(
                    Plan::new("default", "1000000/s".parse().expect("rate"), 1_000_000)
                        .expect("plan"),
                )
                // The system clock: the budget refills as the bench runs.
                .build(),
        )
    } else {
        builder
    };
    builder.build().expect("verifier")
}

fn signed(key: &SigningKey, created: u64) -> http::request::Parts {
    let (mut parts, ()) = http::Request::get("https://api.example.com/v1/me")
        .body(())
        .expect("request")
        .into_parts();
    let nonce = Nonce::generate(&mut rand::rng());
    sign(
        key,
        &RequestView::from_parts(&parts).expect("view"),
        &BodyDigest::EMPTY,
        &SignOptions::new(created, &nonce),
    )
    .expect("sign")
    .apply_to(&mut parts.headers)
    .expect("apply");
    parts
}

fn verified_request(c: &mut Criterion) {
    let secret = SecretKey::from_bytes(&[7; 32]).expect("secret");
    let key = SigningKey::new(KeyId::new("bench-key").expect("id"), &secret);
    let mut group = c.benchmark_group("verify_get");
    group.throughput(Throughput::Elements(1));
    for (name, admission) in [("without_limiter", false), ("with_memory_limiter", true)] {
        let clock = ManualClock::new(T0);
        let v = verifier(admission, &clock, &key, &secret);
        group.bench_function(name, |b| {
            b.iter_batched(
                || signed(&key, T0),
                |parts| {
                    black_box(
                        v.verify_bytes(&parts, Bytes::new())
                            .now_or_never()
                            .expect("in memory")
                            .expect("accepted"),
                    )
                },
                BatchSize::NumIterations(64),
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = decisions, verified_request
}
criterion_main!(benches);
