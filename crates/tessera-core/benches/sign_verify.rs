#![allow(unsafe_code)]
//! Sign and verify cost against the floor: one raw HMAC-SHA256 over 512 bytes
//! with the key set up per call (the baseline of the targets).
//!
//! Run: `cargo bench -p tessera-core --bench sign_verify`.
//! Besides criterion's timings it prints heap allocations per operation,
//! counted by a wrapping global allocator outside the timed loops.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, ParsedSignature, Policy, RequestView, SecretKey,
    SignOptions, SigningKey,
};

struct CountingAlloc;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// A counting wrapper around the system allocator; benchmarks only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_of<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(f());
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const CREATED: u64 = 1_700_000_000;

fn request(method: &str, query: bool, body_len: usize) -> (http::request::Parts, Vec<u8>) {
    let uri = if query {
        "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef"
    } else {
        "https://api.example.com/v1/users/123/orders"
    };
    let (parts, ()) = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "tessera-bench/1.0")
        .body(())
        .expect("valid request")
        .into_parts();
    let body = (0..body_len).map(|i| b"{\"k\":12345}"[i % 11]).collect();
    (parts, body)
}

fn bench(c: &mut Criterion) {
    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let key = SigningKey::new(KeyId::new("user-42-phone").expect("id"), &secret);
    let extra = [
        Component::field("content-type").expect("field"),
        Component::field("user-agent").expect("field"),
    ];
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy {
        now: CREATED + 5,
        window: 300,
        authorities: &authorities,
    };
    let mut rng = rand::rng();

    let baseline_input = [0x5au8; 512];
    let mut group = c.benchmark_group("tessera-core");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("baseline: HMAC-SHA256 512 B, key set up per call", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(secret.expose_secret()))
                .expect("any key length");
            mac.update(black_box(&baseline_input));
            black_box(mac.finalize().into_bytes())
        })
    });

    for (name, method, query, body_len) in [
        ("GET", "GET", true, 0usize),
        ("POST 1KiB", "POST", false, 1024),
    ] {
        let (parts, body) = request(method, query, body_len);
        let sign_once = |rng: &mut rand::rngs::ThreadRng| {
            let nonce = Nonce::generate(rng);
            let opts = SignOptions {
                created: CREATED,
                expires: None,
                nonce: &nonce,
                extra: &extra,
            };
            let view = RequestView::from_parts(&parts).expect("view");
            sign(&key, &view, &BodyDigest::of(&body), &opts).expect("sign")
        };
        group.bench_function(format!("sign {name}"), |b| b.iter(|| sign_once(&mut rng)));
        let allocs = allocations_of(|| sign_once(&mut rng));
        println!("allocations per sign {name}: {allocs}");

        let mut signed = parts.clone();
        sign_once(&mut rng)
            .apply_to(&mut signed.headers)
            .expect("apply");
        let verify_once = || {
            let view = RequestView::from_parts(&signed).expect("view");
            let parsed = ParsedSignature::from_fields(view.fields()).expect("parse");
            parsed
                .verify_with_key(&key, &view, &BodyDigest::of(&body), &policy)
                .expect("verify");
            parsed
        };
        group.bench_function(format!("verify {name}"), |b| b.iter(verify_once));
        println!(
            "allocations per verify {name}: {}",
            allocations_of(verify_once)
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
