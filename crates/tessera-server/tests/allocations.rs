#![allow(unsafe_code)]
//! Heap allocations per verification, counted by a wrapping global
//! allocator: `Verifier::verify_bytes` of a GET (and a POST with a 1 KiB
//! body) with the in-memory key and nonce stores must make at most
//! [`MAX_ALLOCATIONS`] allocations per request on average, with the nonce
//! store holding 300,000 live nonces.
//!
//! Counts are per thread, so tests running in parallel do not disturb each
//! other. The average over many requests includes the nonce store's
//! amortized growth (its expiry lists grow by a quarter when full).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, NonceRecord, Verifier,
};

/// The budget for one `verify_bytes` of a GET.
const MAX_ALLOCATIONS: f64 = 4.0;
const NOW: u64 = 1_700_000_000;
const REQUESTS: usize = 2_000;

struct CountingAlloc;

thread_local! {
    // `const` and without a destructor: using it inside the allocator never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread's slot may already be gone while it exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// A counting wrapper around the system allocator; this test only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A verifier over a store pre-filled with 300,000 live nonces of 1,000
/// other keys, and `count` requests signed with fresh nonces.
fn setup(method: &str, body: &Bytes, count: usize) -> (Verifier, Vec<http::request::Parts>) {
    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let id = KeyId::new("user-42-phone").expect("id");
    let keys = MemoryKeyStore::new();
    keys.insert(
        id.clone(),
        &secret,
        KeyMetadata::new("user-42").with_scopes(["read"]),
    );
    let nonces = MemoryNonceStore::builder()
        .capacity(4_000_000)
        .per_key_capacity(4_000_000)
        .remembers_since(0)
        .build();
    let others: Vec<KeyId> = (0..1_000)
        .map(|i| KeyId::new(format!("user-{i:04}-device")).expect("id"))
        .collect();
    let mut rng = rand::rng();
    for i in 0..300_000u64 {
        let now = NOW - 300 + i / 1_000;
        let nonce = Nonce::generate(&mut rng);
        let record = NonceRecord::new(&others[(i % 1_000) as usize], &nonce, now, now, now + 301);
        nonces.check_and_record(record).expect("room");
    }
    let verifier = Verifier::builder(keys)
        .nonce_store(nonces)
        .clock(ManualClock::new(NOW))
        .authority("api.example.com")
        .build()
        .expect("verifier");
    let key = SigningKey::new(id, &secret);
    let extra = [
        Component::field("content-type").expect("field"),
        Component::field("user-agent").expect("field"),
    ];
    let uri = "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef";
    let requests = (0..count)
        .map(|_| {
            let (mut parts, ()) = http::Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "api.example.com")
                .header("content-type", "application/json")
                .header("user-agent", "tessera-bench/1.0")
                .body(())
                .expect("request")
                .into_parts();
            let nonce = Nonce::generate(&mut rng);
            let options = SignOptions::new(NOW, &nonce).cover(&extra);
            sign(
                &key,
                &RequestView::from_parts(&parts).expect("view"),
                &BodyDigest::of(body),
                &options,
            )
            .expect("sign")
            .apply_to(&mut parts.headers)
            .expect("apply");
            parts
        })
        .collect();
    (verifier, requests)
}

/// Allocations of each verification (the identity dropped inside).
fn per_request(method: &str, body: Bytes) -> Vec<usize> {
    let (verifier, requests) = setup(method, &body, REQUESTS + 1);
    let mut counts = Vec::with_capacity(REQUESTS + 1);
    for parts in &requests {
        let before = allocations();
        let verified = verifier
            .verify_bytes(parts, body.clone())
            .now_or_never()
            .expect("in-memory stores complete synchronously");
        assert!(verified.is_ok(), "{verified:?}");
        drop(verified);
        counts.push(allocations() - before);
    }
    // The first request may initialize lazily (tracing call sites).
    counts.remove(0);
    counts
}

fn check(name: &str, counts: &[usize]) {
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    println!("{name}: allocations per verify_bytes: mean {mean:.3}, median {median}, max {max}");
    assert!(
        mean <= MAX_ALLOCATIONS && median as f64 <= MAX_ALLOCATIONS,
        "{name}: {mean:.3} allocations per verification on average (median {median}); the budget is {MAX_ALLOCATIONS}"
    );
}

#[test]
fn verify_bytes_get_allocates_at_most_four_times() {
    check("GET", &per_request("GET", Bytes::new()));
}

#[test]
fn verify_bytes_post_allocates_at_most_four_times() {
    let body: Bytes = (0..1024).map(|i| b"{\"k\":12345}"[i % 11]).collect();
    check("POST 1 KiB", &per_request("POST", body));
}
