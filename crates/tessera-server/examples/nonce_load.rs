//! Sustained load on the default in-memory nonce store, through the real
//! verifier: `Verifier::verify_bytes` with `MemoryNonceStore::new()` (the
//! store the verifier builds by default), a `MemoryKeyStore` of 1,000 keys
//! and the system clock, at a fixed offered rate.
//!
//! ```text
//! cargo run --release -p tessera-server --example nonce_load -- [--seconds 300] [--rate 20000] [--keys 1000]
//! ```
//!
//! A signer thread signs requests (GET, a fresh nonce each, `created` = the
//! current time, keys round-robin) at most a fraction of a second ahead; the
//! main thread verifies request `i` at `start + i / rate`. The store is never
//! swept by hand: it expires entries only as requests arrive, as in service.
//! The run passes (exit 0) only if every request is accepted, so no
//! `store_unavailable` at all. It reports totals, the achieved rate, verify
//! latency, peak RSS and the store's size at the end; a progress line every
//! 10 seconds goes to stderr.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    ErrorCode, KeyMetadata, MemoryKeyStore, MemoryNonceStore, SystemClock, Verifier,
};

const URI: &str = "https://api.example.com/v1/orders?limit=50";
const BATCH: usize = 256;

struct Options {
    seconds: u64,
    rate: u64,
    keys: usize,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 300,
        rate: 20_000,
        keys: 1_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = |args: &mut dyn Iterator<Item = String>| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&arg))
        };
        match arg.as_str() {
            "--seconds" => o.seconds = value(&mut args).max(1),
            "--rate" => o.rate = value(&mut args).max(1),
            "--keys" => o.keys = usize::try_from(value(&mut args)).unwrap_or(1).max(1),
            _ => usage(&arg),
        }
    }
    o
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "nonce_load: bad argument {arg:?}; usage: nonce_load [--seconds N] [--rate R] [--keys K]"
    );
    std::process::exit(2)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `VmHWM` (peak RSS) and `VmRSS`, bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Latency histogram: 10 ns steps to 100 µs, then 10 µs steps to 100 ms.
struct Histogram {
    fine: Vec<u64>,
    coarse: Vec<u64>,
    over: u64,
    max_ns: u64,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            fine: vec![0; 10_000],
            coarse: vec![0; 10_000],
            over: 0,
            max_ns: 0,
            count: 0,
        }
    }

    fn record(&mut self, ns: u64) {
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        if ns < 100_000 {
            self.fine[(ns / 10) as usize] += 1;
        } else if ns < 100_000_000 {
            self.coarse[(ns / 10_000) as usize] += 1;
        } else {
            self.over += 1;
        }
    }

    /// The upper bound of the bucket holding quantile `q`, in µs.
    fn quantile_us(&self, q: f64) -> f64 {
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.fine.iter().enumerate() {
            seen += n;
            if seen >= target {
                return (i as f64 + 1.0) * 0.01;
            }
        }
        for (i, n) in self.coarse.iter().enumerate() {
            seen += n;
            if seen >= target {
                return (i as f64 + 1.0) * 10.0;
            }
        }
        self.max_ns as f64 / 1000.0
    }
}

fn secret(i: usize) -> SecretKey {
    let mut bytes = [0x5a_u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SecretKey::from_bytes(&bytes).expect("secret")
}

fn key_id(i: usize) -> KeyId {
    KeyId::new(format!("load-{i:05}-device")).expect("key id")
}

/// Signs `total` requests in batches, never more than the channel's bound
/// ahead of the verifier.
fn signer(keys: Vec<SigningKey>, total: u64) -> Receiver<Vec<http::request::Parts>> {
    let (tx, rx) = sync_channel::<Vec<http::request::Parts>>(16);
    thread::spawn(move || {
        let mut rng = rand::rng();
        let mut n = 0u64;
        while n < total {
            let len = (total - n).min(BATCH as u64) as usize;
            let mut batch = Vec::with_capacity(len);
            for _ in 0..len {
                let key = &keys[(n % keys.len() as u64) as usize];
                n += 1;
                let (mut parts, ()) = http::Request::builder()
                    .method("GET")
                    .uri(URI)
                    .header("host", "api.example.com")
                    .body(())
                    .expect("request")
                    .into_parts();
                let nonce = Nonce::generate(&mut rng);
                sign(
                    key,
                    &RequestView::from_parts(&parts).expect("view"),
                    &BodyDigest::of(b""),
                    &SignOptions::new(unix_now(), &nonce),
                )
                .expect("sign")
                .apply_to(&mut parts.headers)
                .expect("apply");
                batch.push(parts);
            }
            if tx.send(batch).is_err() {
                return;
            }
        }
    });
    rx
}

fn main() {
    let o = options();
    let total = o.seconds * o.rate;
    let keys = Arc::new(MemoryKeyStore::new());
    let mut signing = Vec::with_capacity(o.keys);
    for i in 0..o.keys {
        let (id, secret) = (key_id(i), secret(i));
        keys.insert(id.clone(), &secret, KeyMetadata::new(format!("user-{i}")));
        signing.push(SigningKey::new(id, &secret));
    }
    // The store `Verifier::builder` creates when none is given (same limits,
    // vouching from its memory point, as that one does).
    let store = Arc::new(
        MemoryNonceStore::builder()
            .remembers_since(tessera_core::memory_point(unix_now()))
            .build(),
    );
    let verifier = Verifier::builder(Arc::clone(&keys))
        .nonce_store(Arc::clone(&store))
        .clock(SystemClock::new())
        .authority("api.example.com")
        .build()
        .expect("verifier");
    // A new store refuses signatures created before its memory point
    // (store_reset, spec §14.1): start the load then, as a server announces
    // itself only then.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    thread::sleep(tessera_core::until_memory_point(now));
    println!(
        "nonce_load: offered {} requests/s for {} s ({} requests), {} keys, store {:?}",
        o.rate, o.seconds, total, o.keys, store
    );

    let batches = signer(signing, total);
    let body = Bytes::new();
    let mut hist = Histogram::new();
    let (mut accepted, mut unavailable, mut other) = (0u64, 0u64, 0u64);
    let mut max_lag = Duration::ZERO;
    let mut n = 0u64;
    let start = Instant::now();
    let mut next_report = 10;
    let period_ns = 1e9 / o.rate as f64;
    for batch in batches {
        for parts in batch {
            let due = start + Duration::from_nanos((n as f64 * period_ns) as u64);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            } else {
                max_lag = max_lag.max(now - due);
            }
            let t = Instant::now();
            let result = verifier
                .verify_bytes(&parts, body.clone())
                .now_or_never()
                .expect("in-memory stores complete synchronously");
            hist.record(t.elapsed().as_nanos() as u64);
            n += 1;
            match result {
                Ok(_) => accepted += 1,
                Err(r) if r.code() == ErrorCode::StoreUnavailable => {
                    if unavailable == 0 {
                        eprintln!("first store_unavailable at request {n}: {r:?}");
                    }
                    unavailable += 1;
                }
                Err(r) => {
                    if other == 0 {
                        eprintln!("first other rejection at request {n}: {r:?}");
                    }
                    other += 1;
                }
            }
            let elapsed = start.elapsed().as_secs();
            if elapsed >= next_report {
                next_report += 10;
                let (peak, rss) = rss();
                eprintln!(
                    "[{elapsed:>4} s] {n} requests ({:.0}/s), store_unavailable {unavailable}, len {}, heap {:.1} MB, RSS {:.1} MB (peak {:.1} MB)",
                    n as f64 / start.elapsed().as_secs_f64(),
                    store.len(),
                    mb(store.approximate_heap_bytes() as u64),
                    mb(rss),
                    mb(peak),
                );
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let (peak, rss) = rss();
    let len = store.len();
    let heap = store.approximate_heap_bytes();
    println!("wall-clock:        {wall:.1} s");
    println!("total requests:    {n}");
    println!("accepted:          {accepted}");
    println!("store_unavailable: {unavailable}");
    println!("other rejections:  {other}");
    println!("achieved rate:     {:.0} requests/s", n as f64 / wall);
    println!("max schedule lag:  {:.1} ms", max_lag.as_secs_f64() * 1e3);
    println!(
        "verify latency:    p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        hist.quantile_us(0.50),
        hist.quantile_us(0.99),
        hist.quantile_us(0.999),
        hist.max_ns as f64 / 1000.0
    );
    println!(
        "peak RSS:          {:.1} MB (now {:.1} MB)",
        mb(peak),
        mb(rss)
    );
    println!(
        "store at end:      len {len} of capacity {}, approximate_heap_bytes {heap} ({:.1} MB, {:.1} B/live nonce)",
        store.capacity(),
        mb(heap as u64),
        heap as f64 / len.max(1) as f64
    );
    let ok = n == total && accepted == total;
    println!("result:            {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
