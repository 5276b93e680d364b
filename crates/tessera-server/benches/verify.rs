//! Verification through `Verifier::verify_bytes` with the in-memory key and
//! nonce stores, for the core benchmarks' GET and POST requests.
//!
//! Run: `cargo bench -p tessera-server --bench verify`.
//!
//! Every iteration verifies a freshly signed request (a new nonce each
//! time, signed outside the timed section), so the nonce store really
//! inserts; the manual clock advances one second per 1000 requests so
//! entries expire as they would in service.

use bytes::Bytes;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, Verifier};

const START: u64 = 1_700_000_000;
const URI: &str = "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef";

struct Fixture {
    verifier: Verifier,
    clock: ManualClock,
    key: SigningKey,
    extra: [Component; 2],
    counter: u64,
}

impl Fixture {
    fn new() -> Self {
        let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
        let id = KeyId::new("user-42-phone").expect("id");
        let keys = Arc::new(MemoryKeyStore::new());
        keys.insert(
            id.clone(),
            &secret,
            KeyMetadata::new("user-42").with_scopes(["read"]),
        );
        let clock = ManualClock::new(START);
        let nonces = MemoryNonceStore::builder()
            .capacity(4_000_000)
            .per_key_capacity(4_000_000)
            .build();
        let verifier = Verifier::builder(keys)
            .nonce_store(nonces)
            .clock(clock.clone())
            .authority("api.example.com")
            .build()
            .expect("verifier");
        Fixture {
            verifier,
            clock,
            key: SigningKey::new(id, &secret),
            extra: [
                Component::field("content-type").expect("field"),
                Component::field("user-agent").expect("field"),
            ],
            counter: 0,
        }
    }

    fn signed(&mut self, method: &str, body: &[u8]) -> http::request::Parts {
        self.counter += 1;
        if self.counter.is_multiple_of(1000) {
            self.clock.advance(1);
        }
        let (mut parts, ()) = http::Request::builder()
            .method(method)
            .uri(URI)
            .header("host", "api.example.com")
            .header("content-type", "application/json")
            .header("user-agent", "tessera-bench/1.0")
            .body(())
            .expect("request")
            .into_parts();
        let nonce = Nonce::generate(&mut rand::rng());
        let options = SignOptions::new(self.clock.now(), &nonce).cover(&self.extra);
        sign(
            &self.key,
            &RequestView::from_parts(&parts).expect("view"),
            &BodyDigest::of(body),
            &options,
        )
        .expect("sign")
        .apply_to(&mut parts.headers)
        .expect("apply");
        parts
    }
}

trait Now {
    fn now(&self) -> u64;
}

impl Now for ManualClock {
    fn now(&self) -> u64 {
        tessera_server::Clock::now_unix(self)
    }
}

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..1024).map(|i| b"{\"k\":12345}"[i % 11]).collect();
    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Elements(1));
    for (name, method, body) in [("get", "GET", &[][..]), ("post_1k", "POST", &body[..])] {
        let mut fixture = Fixture::new();
        let verifier = fixture.verifier.clone();
        group.bench_function(name, |b| {
            let body = Bytes::copy_from_slice(body);
            b.iter_batched(
                || (fixture.signed(method, &body), body.clone()),
                |(parts, body)| {
                    let verified = verifier
                        .verify_bytes(&parts, body)
                        .now_or_never()
                        .expect("in-memory stores complete synchronously");
                    black_box(verified.expect("accepted"))
                },
                // Small batches: the signed inputs stay in cache, as a server's
                // request would be right after parsing.
                BatchSize::NumIterations(64),
            );
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
    targets = bench
}
criterion_main!(benches);
