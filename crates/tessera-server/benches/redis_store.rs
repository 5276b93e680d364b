//! `RedisNonceStore` against a local redis-server: what the shared store
//! costs compared with `MemoryNonceStore`.
//!
//! Run: `cargo bench -p tessera-server --features redis --bench redis_store`
//!
//! Redis comes from `TESSERA_TEST_REDIS_URL` or a child `redis-server` on a
//! free loopback port, as in the tests (`tests/support/redis_server.rs`);
//! without either the benchmark prints "skipped" and exits.
//!
//! Reported, each for the in-memory store and for Redis:
//!
//! 1. `record()` latency alone, one call at a time: p50/p99 per call.
//! 2. `record()` throughput and latency with 64 tasks sharing one store
//!    (one multiplexed `ConnectionManager`): calls per second, p50/p99.
//! 3. Full verifications (`Verifier::verify_bytes`, pre-signed requests, a
//!    fresh nonce each) with 64 concurrent tasks: verifications per second.
//!
//! Bounded: 20,032 operations per measurement, loopback only, and every
//! measurement gives up after 120 s.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, NonceOutcome, NonceRecord,
    NonceStore, RedisNonceStore, Verifier,
};

const START: u64 = 1_700_000_000;
const TASKS: usize = 64;
const PER_TASK: usize = 313;
/// 64 x 313 = 20,032 operations per concurrent measurement.
const TOTAL: usize = TASKS * PER_TASK;
const SEQUENTIAL: usize = 5_000;
const KEYS: usize = 64;
const LIMIT: Duration = Duration::from_secs(120);
const URI: &str = "https://api.example.com/v1/users/123/orders?limit=50";

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let Some(redis) = redis_server::shared("redis_store bench") else {
        return;
    };
    let url = redis.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&url));
}

async fn run(url: &str) {
    let redis: Arc<dyn NonceStore> = Arc::new(
        RedisNonceStore::builder(url)
            .prefix(format!("tessera-bench-{:016x}", rand::random::<u64>()))
            // Queueing 64 tasks on 2 shared cores must not read as an outage.
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("connect to redis"),
    );
    let memory: Arc<dyn NonceStore> = Arc::new(
        MemoryNonceStore::builder()
            .capacity(4 * TOTAL + 64)
            .remembers_since(0)
            .build(),
    );
    let keys: Arc<Vec<KeyId>> = Arc::new(
        (0..KEYS)
            .map(|i| KeyId::new(format!("user-{i}-phone")).expect("id"))
            .collect(),
    );
    println!("redis_store bench: redis at {url}");
    println!("{TOTAL} operations per concurrent measurement, {TASKS} tasks, 2 runtime workers\n");

    println!("record() alone, one call at a time ({SEQUENTIAL} calls):");
    let m = sequential(Arc::clone(&memory), &keys).await;
    let r = sequential(Arc::clone(&redis), &keys).await;
    m.print("memory");
    r.print("redis");
    println!(
        "  added by redis: p50 {:.1} us, p99 {:.1} us\n",
        micros(r.p50.saturating_sub(m.p50)),
        micros(r.p99.saturating_sub(m.p99))
    );

    println!("record() with {TASKS} concurrent tasks over one store ({TOTAL} calls):");
    let m = concurrent_records(Arc::clone(&memory), &keys).await;
    let r = concurrent_records(Arc::clone(&redis), &keys).await;
    m.print("memory");
    r.print("redis");
    println!();

    println!("Verifier::verify_bytes with {TASKS} concurrent tasks ({TOTAL} verifications):");
    let m = verifications(Arc::new(
        MemoryNonceStore::builder().remembers_since(0).build(),
    ))
    .await;
    let r = verifications(Arc::clone(&redis)).await;
    m.print("memory");
    r.print("redis");
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
        latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
            latencies[i]
        };
        Stats {
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    fn print(&self, name: &str) {
        println!(
            "  {name:<7} {:>10.0} /s   p50 {:>8.1} us   p99 {:>8.1} us   max {:>8.1} us",
            self.per_sec,
            micros(self.p50),
            micros(self.p99),
            micros(self.max)
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn nonces(n: usize) -> Vec<Nonce> {
    (0..n).map(|_| Nonce::generate(&mut rand::rng())).collect()
}

async fn sequential(store: Arc<dyn NonceStore>, keys: &[KeyId]) -> Stats {
    let nonces = nonces(SEQUENTIAL);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for (i, nonce) in nonces.iter().enumerate() {
        let record = NonceRecord::new(&keys[i % keys.len()], nonce, START, START, START + 301);
        let t = Instant::now();
        let outcome = store.record(record).await.expect("store answers");
        latencies.push(t.elapsed());
        assert_eq!(outcome, NonceOutcome::Fresh);
        assert!(started.elapsed() < LIMIT, "time limit");
    }
    Stats::new(latencies, started.elapsed())
}

async fn concurrent_records(store: Arc<dyn NonceStore>, keys: &Arc<Vec<KeyId>>) -> Stats {
    let per_task = PER_TASK;
    let work: Vec<Vec<Nonce>> = (0..TASKS).map(|_| nonces(per_task)).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let tasks: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(t, nonces)| {
            let (store, keys, barrier) =
                (Arc::clone(&store), Arc::clone(keys), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let begun = Instant::now();
                let mut latencies = Vec::with_capacity(nonces.len());
                for (i, nonce) in nonces.iter().enumerate() {
                    let key = &keys[(t + i) % keys.len()];
                    let record = NonceRecord::new(key, nonce, START, START, START + 301);
                    let at = Instant::now();
                    let outcome = store.record(record).await.expect("store answers");
                    latencies.push(at.elapsed());
                    assert_eq!(outcome, NonceOutcome::Fresh);
                    assert!(begun.elapsed() < LIMIT, "time limit");
                }
                latencies
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(TOTAL);
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    Stats::new(latencies, started.elapsed())
}

async fn verifications(nonces: Arc<dyn NonceStore>) -> Stats {
    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let id = KeyId::new("user-42-phone").expect("id");
    let keys = Arc::new(MemoryKeyStore::new());
    keys.insert(id.clone(), &secret, KeyMetadata::new("user-42"));
    let verifier = Verifier::builder(keys)
        .nonce_store(nonces)
        .clock(ManualClock::new(START))
        .authority("api.example.com")
        .build()
        .expect("verifier");
    let key = SigningKey::new(id, &secret);
    // Signed outside the timed section, a fresh nonce each.
    let per_task = PER_TASK;
    let work: Vec<Vec<http::request::Parts>> = (0..TASKS)
        .map(|_| (0..per_task).map(|_| signed(&key)).collect())
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let tasks: Vec<_> = work
        .into_iter()
        .map(|requests| {
            let (verifier, barrier) = (verifier.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let begun = Instant::now();
                let mut latencies = Vec::with_capacity(requests.len());
                for parts in &requests {
                    let at = Instant::now();
                    let verified = verifier.verify_bytes(parts, Bytes::new()).await;
                    latencies.push(at.elapsed());
                    if let Err(rejection) = verified {
                        panic!("rejected: {:?}", rejection.code());
                    }
                    assert!(begun.elapsed() < LIMIT, "time limit");
                }
                latencies
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(TOTAL);
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    Stats::new(latencies, started.elapsed())
}

fn signed(key: &SigningKey) -> http::request::Parts {
    let nonce = Nonce::generate(&mut rand::rng());
    let (mut parts, ()) = http::Request::get(URI)
        .body(())
        .expect("request")
        .into_parts();
    let options = SignOptions::new(START, &nonce);
    let view = RequestView::from_parts(&parts).expect("view");
    sign(key, &view, &BodyDigest::EMPTY, &options)
        .expect("signed")
        .apply_to(&mut parts.headers)
        .expect("headers");
    parts
}
