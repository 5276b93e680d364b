#![allow(unsafe_code)]
//! Sign and verify cost against the floor: one raw HMAC-SHA256 over 512 bytes
//! with the key set up per call (the baseline of the targets).
//!
//! Run: `cargo bench -p tessera-core --bench sign_verify`.
//!
//! Besides criterion's timings it prints heap allocations per operation,
//! counted by a wrapping global allocator outside the timed loops, and a
//! table of ratios to the baseline measured in interleaved batches (see
//! [`interleaved_ratios`]): on a shared machine the host's speed drifts
//! between criterion's one-function-at-a-time runs, so those ratios are the
//! ones to compare with the targets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, ParsedSignature, Policy, ReceivedRequest,
    RequestView, SecretKey, SignOptions, SigningKey,
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

fn allocations_of(f: &mut dyn FnMut()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
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

/// One measured operation, with the ratio to the baseline it must stay under.
struct Operation<'a> {
    name: &'static str,
    target: Option<f64>,
    run: Box<dyn FnMut() + 'a>,
}

fn main() {
    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let key = SigningKey::new(KeyId::new("user-42-phone").expect("id"), &secret);
    let extra = [
        Component::field("content-type").expect("field"),
        Component::field("user-agent").expect("field"),
    ];
    let authorities = ["api.example.com".to_owned()];
    let policy = Policy::new(CREATED + 5, 300, &authorities);
    let baseline_input = [0x5au8; 512];

    let (get, get_body) = request("GET", true, 0);
    let (post, post_body) = request("POST", false, 1024);
    let sign_op = |parts: &'static http::request::Parts, body: &'static [u8]| {
        let (key, extra) = (&key, &extra);
        let mut rng = rand::rng();
        move || {
            let nonce = Nonce::generate(&mut rng);
            let opts = SignOptions::new(CREATED, &nonce).cover(extra);
            let view = RequestView::from_parts(parts).expect("view");
            black_box(sign(key, &view, &BodyDigest::of(body), &opts).expect("sign"));
        }
    };
    // The fixtures live for the whole run; leaking them lets the closures borrow them freely.
    let leak = |parts: http::request::Parts| -> &'static http::request::Parts {
        Box::leak(Box::new(parts))
    };
    let (get, post) = (leak(get), leak(post));
    let (get_body, post_body): (&'static [u8], &'static [u8]) = (
        Box::leak(get_body.into_boxed_slice()),
        Box::leak(post_body.into_boxed_slice()),
    );
    let signed = |parts: &'static http::request::Parts, body: &'static [u8]| {
        let mut signed = parts.clone();
        let nonce = Nonce::generate(&mut rand::rng());
        let opts = SignOptions::new(CREATED, &nonce).cover(&extra);
        sign(
            &key,
            &RequestView::from_parts(parts).expect("view"),
            &BodyDigest::of(body),
            &opts,
        )
        .expect("sign")
        .apply_to(&mut signed.headers)
        .expect("apply");
        leak(signed)
    };
    let verify_op = |signed: &'static http::request::Parts, body: &'static [u8]| {
        let (key, policy) = (&key, &policy);
        move || {
            let received = ReceivedRequest::from_parts(signed);
            let parsed = ParsedSignature::from_fields(received.fields()).expect("parse");
            parsed
                .verify_with_key(key, &received, &BodyDigest::of(body), policy)
                .expect("verify");
            black_box(parsed);
        }
    };
    let (signed_get, signed_post) = (signed(get, get_body), signed(post, post_body));

    let mut operations = [
        Operation {
            name: "baseline: HMAC-SHA256 512 B, key set up per call",
            target: None,
            run: Box::new(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(black_box(secret.expose_secret()))
                    .expect("any key length");
                mac.update(black_box(&baseline_input));
                black_box(mac.finalize().into_bytes());
            }),
        },
        Operation {
            name: "sign GET",
            target: Some(2.0),
            run: Box::new(sign_op(get, get_body)),
        },
        Operation {
            name: "verify GET",
            target: Some(2.5),
            run: Box::new(verify_op(signed_get, get_body)),
        },
        Operation {
            name: "sign POST 1KiB",
            target: Some(4.0),
            run: Box::new(sign_op(post, post_body)),
        },
        Operation {
            name: "verify POST 1KiB",
            target: None,
            run: Box::new(verify_op(signed_post, post_body)),
        },
    ];

    let mut criterion = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("tessera-core");
        for op in &mut operations {
            group.bench_function(op.name, |b| b.iter(&mut op.run));
        }
        group.finish();
    }
    for op in operations.iter_mut().skip(1) {
        println!(
            "allocations per {}: {}",
            op.name,
            allocations_of(&mut op.run)
        );
    }
    // `cargo test --benches` runs this binary without `--bench`: skip the long table then.
    if std::env::args().any(|a| a == "--bench") {
        interleaved_ratios(&mut operations);
    }
    criterion.final_summary();
}

/// Ratios to the baseline (the first operation) from interleaved batches.
///
/// Every round times one ~4 ms batch of each operation in turn, so all of
/// them see the same machine state; a round's ratios are taken within the
/// round, and the table shows their median (and quartiles) over the rounds.
fn interleaved_ratios(operations: &mut [Operation<'_>]) {
    const ROUNDS: usize = 41;
    const BATCH: Duration = Duration::from_millis(4);
    let batch_sizes: Vec<u32> = operations
        .iter_mut()
        .map(|op| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < BATCH {
                (op.run)();
                n += 1;
            }
            n.max(1)
        })
        .collect();
    let mut per_op_ns = vec![Vec::with_capacity(ROUNDS); operations.len()];
    for _ in 0..ROUNDS {
        for ((op, &n), samples) in operations.iter_mut().zip(&batch_sizes).zip(&mut per_op_ns) {
            let start = Instant::now();
            for _ in 0..n {
                (op.run)();
            }
            samples.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(n));
        }
    }
    let baseline = per_op_ns[0].clone();
    println!();
    println!("interleaved: {ROUNDS} rounds of ~4 ms batches per operation");
    println!(
        "{:<52} {:>10} {:>9} {:>17} {:>8}",
        "operation", "median ns", "× base", "× base IQR", "target"
    );
    for (op, samples) in operations.iter().zip(&per_op_ns) {
        let mut ratios: Vec<f64> = samples.iter().zip(&baseline).map(|(s, b)| s / b).collect();
        let ratio = quartiles(&mut ratios);
        let ns = quartiles(&mut samples.clone());
        let verdict = match op.target {
            Some(t) if ratio.1 <= t => format!("≤{t} ✓"),
            Some(t) => format!("≤{t} ✗"),
            None => String::new(),
        };
        println!(
            "{:<52} {:>10.0} {:>9.2} {:>8.2}–{:<8.2} {:>8}",
            op.name, ns.1, ratio.1, ratio.0, ratio.2, verdict
        );
    }
}

/// First quartile, median and third quartile.
fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}
