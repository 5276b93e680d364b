//! Memory cost of the in-memory nonce store, measured from process RSS, and
//! what a full store tells the client.
//!
//! Run the measurements alone, in release mode, so nothing else allocates
//! meanwhile:
//! `cargo test -p tessera-server --release --test memory -- --ignored --nocapture --exact bytes_per_nonce`
//! (`scripts/test` runs that on Linux, with `--profile smoke`, release without
//! link-time optimization, and fails unless the test ran and passed), and
//! `cargo test -p tessera-server --release --test memory -- --ignored --nocapture --exact full_default_store`
//! for the memory budget of the default store at full capacity.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    ErrorCode, KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, NonceOutcome,
    NonceRecord, NonceStoreErrorKind, Verifier,
};

const LIVE: usize = 1_000_000;
const KEYS: usize = 1_000;
const NOW: u64 = 1_700_000_000;

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

#[test]
#[ignore = "measurement: run alone in release mode (see the file header)"]
fn bytes_per_nonce() {
    let keys: Vec<KeyId> = (0..KEYS)
        .map(|i| KeyId::new(format!("user-{i:04}-device")).expect("id"))
        .collect();
    let before = rss_bytes();
    let store = MemoryNonceStore::builder()
        .capacity(2 * LIVE)
        .remembers_since(0)
        .build();
    let mut text = String::with_capacity(32);
    for i in 0..LIVE {
        use std::fmt::Write;
        text.clear();
        write!(text, "{i:0>22}").expect("write");
        let nonce = Nonce::new(text.as_str()).expect("nonce");
        // Expiries spread over the whole 601-second window, as in real traffic.
        let expires = NOW + 1 + (i as u64 % 601);
        let outcome = store
            .check_and_record(NonceRecord::new(&keys[i % KEYS], &nonce, NOW, NOW, expires))
            .expect("room");
        assert_eq!(outcome, NonceOutcome::Fresh);
    }
    let after = rss_bytes();
    assert_eq!(store.len(), LIVE);
    let rss_per = (after - before) as f64 / LIVE as f64;
    let heap_per = store.approximate_heap_bytes() as f64 / LIVE as f64;
    println!("live nonces: {LIVE}");
    println!(
        "RSS delta:   {} bytes = {rss_per:.1} B/nonce",
        after - before
    );
    println!("heap (capacity accounting): {heap_per:.1} B/nonce");
    // 59 B/nonce with 16-byte entries; about 36 B with 8-byte fingerprints
    // (at this size the per-(key, bucket) counts and the tables' headroom
    // weigh more than at full load; see `full_default_store`).
    assert!(
        rss_per <= 44.0,
        "{rss_per:.1} B/nonce exceeds the 44 B target"
    );
    // A measurement that saw nothing (RSS not growing, no tables) is broken,
    // not good news: every live nonce keeps at least its 8-byte keyed hash.
    assert!(
        rss_per >= 8.0 && heap_per >= 8.0,
        "implausibly small: {rss_per:.1} B/nonce RSS, {heap_per:.1} B/nonce heap"
    );
}

/// Live nonces per second the default store must sustain (issue target).
const TARGET_RATE: usize = 20_000;
/// Seconds a pair stays live with the default 300 s window: 301 s plus up
/// to one 4-second expiry bucket.
const RETENTION: usize = 305;
/// The memory budget of the default store at full capacity (measured:
/// about 156 MB RSS, 21 B per live nonce).
const BUDGET_BYTES: usize = 165_000_000;

#[test]
#[ignore = "measurement: run alone in release mode (see the file header)"]
fn full_default_store() {
    let keys: Vec<KeyId> = (0..KEYS)
        .map(|i| KeyId::new(format!("user-{i:04}-device")).expect("id"))
        .collect();
    let before = rss_bytes();
    // The defaults, remembering from the start (no earlier process).
    let store = MemoryNonceStore::builder().remembers_since(0).build();
    assert!(
        store.capacity() >= TARGET_RATE * RETENTION * 6 / 5,
        "the default capacity {} leaves less than 20% margin over {TARGET_RATE}/s",
        store.capacity()
    );
    let mut text = String::with_capacity(32);
    let mut i = 0usize;
    // Fill until the store refuses: live traffic expires over the next 301 s.
    let full = loop {
        use std::fmt::Write;
        text.clear();
        write!(text, "{i:0>22}").expect("write");
        let nonce = Nonce::new(text.as_str()).expect("nonce");
        let expires = NOW + 1 + (i as u64 % 301);
        match store.check_and_record(NonceRecord::new(&keys[i % KEYS], &nonce, NOW, NOW, expires)) {
            Ok(outcome) => assert_eq!(outcome, NonceOutcome::Fresh),
            Err(e) => break e,
        }
        i += 1;
    };
    assert_eq!(full.kind(), NonceStoreErrorKind::Full);
    let after = rss_bytes();
    let len = store.len();
    let rss = after - before;
    println!(
        "capacity {}, live nonces when full: {len}",
        store.capacity()
    );
    println!(
        "RSS delta:   {rss} bytes = {:.1} B/nonce",
        rss as f64 / len as f64
    );
    println!(
        "heap (capacity accounting): {} bytes = {:.1} B/nonce",
        store.approximate_heap_bytes(),
        store.approximate_heap_bytes() as f64 / len as f64
    );
    // Shards fill unevenly by a few hundred entries at most.
    assert!(len >= store.capacity() / 100 * 99, "{len}");
    assert!(
        rss <= BUDGET_BYTES,
        "{rss} bytes exceeds the {BUDGET_BYTES}-byte budget"
    );
}

/// A verifier over `nonces` with one key, and a signer for it.
fn verifier(nonces: MemoryNonceStore, clock: &ManualClock) -> (Verifier, SigningKey) {
    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let id = KeyId::new("capacity-test").expect("id");
    let keys = Arc::new(MemoryKeyStore::new());
    keys.insert(id.clone(), &secret, KeyMetadata::new("user"));
    let verifier = Verifier::builder(keys)
        .nonce_store(nonces)
        .clock(clock.clone())
        .authority("api.example.com")
        .build()
        .expect("verifier");
    (verifier, SigningKey::new(id, &secret))
}

/// Verifies a freshly signed GET; the rejection's code and detail if refused.
fn send(verifier: &Verifier, key: &SigningKey, clock: &ManualClock) -> Option<(ErrorCode, String)> {
    let (mut parts, ()) = http::Request::builder()
        .uri("https://api.example.com/v1/things")
        .header("host", "api.example.com")
        .body(())
        .expect("request")
        .into_parts();
    let nonce = Nonce::generate(&mut rand::rng());
    let now = tessera_server::Clock::now_unix(clock);
    sign(
        key,
        &RequestView::from_parts(&parts).expect("view"),
        &BodyDigest::of(b""),
        &SignOptions::new(now, &nonce),
    )
    .expect("sign")
    .apply_to(&mut parts.headers)
    .expect("apply");
    let result = verifier
        .verify_bytes(&parts, Bytes::new())
        .now_or_never()
        .expect("in-memory stores complete synchronously");
    result
        .err()
        .map(|r| (r.code(), r.error().detail().to_owned()))
}

#[test]
fn full_store_and_full_key_say_which() {
    let clock = ManualClock::new(NOW);
    let (v, key) = verifier(
        MemoryNonceStore::builder()
            .capacity(1)
            .remembers_since(NOW)
            .build(),
        &clock,
    );
    assert_eq!(send(&v, &key, &clock), None);
    let (code, detail) = send(&v, &key, &clock).expect("refused");
    assert_eq!(code, ErrorCode::StoreUnavailable);
    assert!(detail.contains("at capacity"), "{detail}");
    assert!(detail.contains("nonce store full"), "{detail}");

    let (v, key) = verifier(
        MemoryNonceStore::builder()
            .per_key_capacity(2)
            .remembers_since(NOW)
            .build(),
        &clock,
    );
    assert_eq!(send(&v, &key, &clock), None);
    assert_eq!(send(&v, &key, &clock), None);
    // One key too fast is a rate limit (429), not an outage (503).
    let (code, detail) = send(&v, &key, &clock).expect("refused");
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(detail.contains("per-key nonce capacity"), "{detail}");
    // Once the key's nonces expire (window 300 s + 1, 4-second buckets),
    // it is served again.
    clock.advance(310);
    assert_eq!(send(&v, &key, &clock), None);
}
