//! `MemoryNonceStore` throughput with two threads recording fresh pairs.
//!
//! Run: `cargo bench -p tessera-server --bench nonce_store`; criterion's
//! `thrpt` line is the number of checks per second across both threads.
//!
//! Each thread records its own pre-generated nonces under 64 key ids. After
//! every pass over its nonces, the time jumps past the window so the next
//! pass inserts fresh entries again; the cost of expiring the previous pass
//! is part of the measurement.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera_core::{KeyId, Nonce};
use tessera_server::{MemoryNonceStore, NonceRecord};

const THREADS: usize = 2;
const PER_THREAD: usize = 200_000;
const KEYS: usize = 64;
const WINDOW: u64 = 300;

fn bench(c: &mut Criterion) {
    let keys: Arc<Vec<KeyId>> = Arc::new(
        (0..KEYS)
            .map(|i| KeyId::new(format!("user-{i}-phone")).expect("id"))
            .collect(),
    );
    let nonces: Arc<Vec<Vec<Nonce>>> = Arc::new(
        (0..THREADS)
            .map(|_| {
                (0..PER_THREAD)
                    .map(|_| Nonce::generate(&mut rand::rng()))
                    .collect()
            })
            .collect(),
    );
    let store = Arc::new(
        MemoryNonceStore::builder()
            .capacity(4 * THREADS * PER_THREAD)
            .per_key_capacity(THREADS * PER_THREAD)
            .remembers_since(0)
            .build(),
    );
    let mut group = c.benchmark_group("memory_nonce_store");
    group.throughput(Throughput::Elements(1));
    let mut now = 1_700_000_000u64;
    group.bench_function("record_2_threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = (iters as usize).div_ceil(THREADS);
            let barrier = Arc::new(Barrier::new(THREADS + 1));
            let start_now = now;
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (store, keys, nonces, barrier) = (
                        Arc::clone(&store),
                        Arc::clone(&keys),
                        Arc::clone(&nonces),
                        Arc::clone(&barrier),
                    );
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mine = &nonces[t];
                        for i in 0..per_thread {
                            let pass = (i / PER_THREAD) as u64;
                            // Each pass happens after the previous one expired.
                            let now = start_now + pass * (2 * WINDOW + 2);
                            let record = NonceRecord::new(
                                &keys[i % KEYS],
                                &mine[i % PER_THREAD],
                                now,
                                now,
                                now + WINDOW + 1,
                            );
                            black_box(store.check_and_record(record).expect("room"));
                        }
                    })
                })
                .collect();
            barrier.wait();
            let started = Instant::now();
            for t in threads {
                t.join().expect("thread");
            }
            let elapsed = started.elapsed();
            // The next sample starts after everything recorded here expired.
            let passes = per_thread.div_ceil(PER_THREAD) as u64;
            now = start_now + (passes + 1) * (2 * WINDOW + 2);
            elapsed
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
