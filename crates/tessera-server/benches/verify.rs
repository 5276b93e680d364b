//! Verification through `Verifier::verify_bytes` with the in-memory key and
//! nonce stores, for the core benchmarks' GET and POST requests, next to the
//! floor it is measured against: one HMAC-SHA256 over 512 bytes.
//!
//! Run: `cargo bench -p tessera-server --bench verify`.
//!
//! The group `verifier` holds, measured in the same run:
//! - `hmac_sha256_512_key_per_call`, the baseline of the targets
//!   (the key set up on every call, as in the core benchmark), and
//!   `hmac_sha256_512_prekeyed` (the key state prepared once, as a
//!   `SigningKey` holds it);
//! - `get` and `post_1k`: one `verify_bytes` each.
//!
//! Every iteration verifies a freshly signed request (a new nonce each
//! time, signed outside the timed section), so the nonce store really
//! inserts. The store starts with 300,000 live nonces of 1,000 other keys,
//! recorded as a steady 1,000 requests per second over the 300 seconds
//! before the start; the manual clock then advances one second per 1,000
//! verified requests, so entries expire as they are added and the store
//! stays at about 300,000 live nonces.
//!
//! After criterion's runs it prints the ratios to the baseline from
//! interleaved batches (see [`interleaved_ratios`]): on a shared machine the
//! host's speed drifts between criterion's one-function-at-a-time runs, so
//! those ratios are the ones to compare with the target (verify GET ≤ 3×).
//! Allocations per verification are asserted by
//! `tests/allocations.rs` (a counting allocator would slow the timed runs).

use bytes::Bytes;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, NonceRecord, Verifier,
};

const START: u64 = 1_700_000_000;
const URI: &str = "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef";
/// Live nonces in the store when the benchmark starts.
const PREFILL: usize = 300_000;
/// Verified requests per second of the manual clock (and of the pre-fill).
const RATE: u64 = 1_000;
const SECRET: [u8; 32] = [0x42; 32];

struct Fixture {
    verifier: Verifier,
    clock: ManualClock,
    key: SigningKey,
    extra: [Component; 2],
    counter: u64,
}

impl Fixture {
    fn new() -> Self {
        let secret = SecretKey::from_bytes(&SECRET).expect("secret");
        let id = KeyId::new("user-42-phone").expect("id");
        let keys = MemoryKeyStore::new();
        keys.insert(
            id.clone(),
            &secret,
            KeyMetadata::new("user-42").with_scopes(["read"]),
        );
        let clock = ManualClock::new(START);
        let nonces = MemoryNonceStore::builder()
            .capacity(4_000_000)
            .per_key_capacity(4_000_000)
            .remembers_since(0)
            .build();
        prefill(&nonces);
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
        if self.counter.is_multiple_of(RATE) {
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
        let now = tessera_server::Clock::now_unix(&self.clock);
        let options = SignOptions::new(now, &nonce).cover(&self.extra);
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

/// `RATE` nonces a second for the 300 seconds before `START`, round-robin
/// over 1,000 other keys.
fn prefill(store: &MemoryNonceStore) {
    let keys: Vec<KeyId> = (0..1_000)
        .map(|i| KeyId::new(format!("user-{i:04}-device")).expect("id"))
        .collect();
    let mut rng = rand::rng();
    for i in 0..PREFILL {
        let now = START - 300 + i as u64 / RATE;
        let nonce = Nonce::generate(&mut rng);
        let record = NonceRecord::new(&keys[i % keys.len()], &nonce, now, now, now + 301);
        store.check_and_record(record).expect("room");
    }
    assert_eq!(store.len(), PREFILL);
}

fn verify(verifier: &Verifier, parts: &http::request::Parts, body: Bytes) {
    let verified = verifier
        .verify_bytes(parts, body)
        .now_or_never()
        .expect("in-memory stores complete synchronously");
    black_box(verified.expect("accepted"));
}

fn hmac_key_per_call(input: &[u8; 512]) {
    let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&SECRET)).expect("any key length");
    mac.update(black_box(input));
    black_box(mac.finalize().into_bytes());
}

fn hmac_prekeyed(key: &Hmac<Sha256>, input: &[u8; 512]) {
    let mut mac = black_box(key).clone();
    mac.update(black_box(input));
    black_box(mac.finalize().into_bytes());
}

fn post_body() -> Bytes {
    (0..1024).map(|i| b"{\"k\":12345}"[i % 11]).collect()
}

fn bench(c: &mut Criterion) {
    let input = [0x5au8; 512];
    let prekeyed = Hmac::<Sha256>::new_from_slice(&SECRET).expect("any key length");
    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hmac_sha256_512_key_per_call", |b| {
        b.iter(|| hmac_key_per_call(&input))
    });
    group.bench_function("hmac_sha256_512_prekeyed", |b| {
        b.iter(|| hmac_prekeyed(&prekeyed, &input))
    });
    for (name, method, body) in [
        ("get", "GET", Bytes::new()),
        ("post_1k", "POST", post_body()),
    ] {
        let mut fixture = Fixture::new();
        let verifier = fixture.verifier.clone();
        group.bench_function(name, |b| {
            // `iter_batched_ref`: the request is dropped outside the timed
            // section, as it belongs to the server, not to the verifier
            // (freeing its header map and URI costs about 100 ns).
            b.iter_batched_ref(
                || (fixture.signed(method, &body), body.clone()),
                |(parts, body)| verify(&verifier, parts, std::mem::take(body)),
                // Small batches: the signed inputs stay in cache, as a server's
                // request would be right after parsing.
                BatchSize::NumIterations(64),
            );
        });
    }
    group.finish();
    // `cargo test --benches` runs this binary without `--bench`: skip the table then.
    if std::env::args().any(|a| a == "--bench") {
        interleaved_ratios();
    }
}

/// Ratios to the baseline (HMAC-SHA256 over 512 B, key per call) from
/// interleaved batches.
///
/// Every round (41, or as many as `TESSERA_BENCH_ROUNDS` says) signs 256
/// fresh GET and 256 fresh POST requests (untimed), then times in turn a
/// batch of 256 baseline MACs, 256 pre-keyed MACs, the 256 GET and the 256
/// POST verifications; a round's ratios are taken within the round, and the
/// table shows their median and quartiles.
fn interleaved_ratios() {
    const BATCH: usize = 256;
    // More rounds narrow the spread when comparing two builds.
    let rounds: usize = std::env::var("TESSERA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(41);
    let input = [0x5au8; 512];
    let prekeyed = Hmac::<Sha256>::new_from_slice(&SECRET).expect("any key length");
    let mut get = Fixture::new();
    let mut post = Fixture::new();
    let body = post_body();
    let names = [
        "baseline: HMAC-SHA256 512 B, key per call",
        "HMAC-SHA256 512 B, pre-keyed",
        "verify_bytes GET",
        "verify_bytes POST 1 KiB",
    ];
    let targets = [None, None, Some(3.0), None];
    let mut ns: [Vec<f64>; 4] = Default::default();
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e9 / BATCH as f64
    };
    for _ in 0..rounds {
        let gets: Vec<_> = (0..BATCH).map(|_| get.signed("GET", &[])).collect();
        let posts: Vec<_> = (0..BATCH).map(|_| post.signed("POST", &body)).collect();
        ns[0].push(time(&mut || {
            for _ in 0..BATCH {
                hmac_key_per_call(&input);
            }
        }));
        ns[1].push(time(&mut || {
            for _ in 0..BATCH {
                hmac_prekeyed(&prekeyed, &input);
            }
        }));
        ns[2].push(time(&mut || {
            for parts in &gets {
                verify(&get.verifier, parts, Bytes::new());
            }
        }));
        ns[3].push(time(&mut || {
            for parts in &posts {
                verify(&post.verifier, parts, body.clone());
            }
        }));
    }
    println!();
    println!("interleaved: {rounds} rounds of {BATCH}-operation batches, nonce store at ~{PREFILL} live nonces");
    println!(
        "{:<44} {:>10} {:>9} {:>17} {:>8}",
        "operation", "median ns", "× base", "× base IQR", "target"
    );
    for i in 0..4 {
        let mut ratios: Vec<f64> = ns[i].iter().zip(&ns[0]).map(|(s, b)| s / b).collect();
        let ratio = quartiles(&mut ratios);
        let median_ns = quartiles(&mut ns[i].clone()).1;
        let verdict = match targets[i] {
            Some(t) if ratio.1 <= t => format!("≤{t} ✓"),
            Some(t) => format!("≤{t} ✗"),
            None => String::new(),
        };
        println!(
            "{:<44} {:>10.0} {:>9.2} {:>8.2}–{:<8.2} {:>8}",
            names[i], median_ns, ratio.1, ratio.0, ratio.2, verdict
        );
    }
}

/// First quartile, median and third quartile.
fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
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
