//! Memory cost of the in-memory nonce store, measured from process RSS.
//!
//! Run alone, in release mode, so nothing else allocates meanwhile:
//! `cargo test -p tessera-server --release --test memory -- --ignored --nocapture --exact bytes_per_nonce`
//! (`scripts/test` runs exactly that on Linux and fails unless the test ran and passed).

use tessera_core::{KeyId, Nonce};
use tessera_server::{MemoryNonceStore, NonceOutcome, NonceRecord};

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
    let store = MemoryNonceStore::builder().capacity(2 * LIVE).build();
    let mut text = String::with_capacity(32);
    for i in 0..LIVE {
        use std::fmt::Write;
        text.clear();
        write!(text, "{i:0>22}").expect("write");
        let nonce = Nonce::new(text.as_str()).expect("nonce");
        // Expiries spread over the whole 601-second window, as in real traffic.
        let expires = NOW + 1 + (i as u64 % 601);
        let outcome = store
            .check_and_record(NonceRecord::new(&keys[i % KEYS], &nonce, NOW, expires))
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
    assert!(
        rss_per <= 96.0,
        "{rss_per:.1} B/nonce exceeds the 96 B target"
    );
    // A measurement that saw nothing (RSS not growing, no tables) is broken,
    // not good news: every live nonce keeps at least its 8-byte keyed hash.
    assert!(
        rss_per >= 8.0 && heap_per >= 8.0,
        "implausibly small: {rss_per:.1} B/nonce RSS, {heap_per:.1} B/nonce heap"
    );
}
