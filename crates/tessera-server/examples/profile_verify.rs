//! Server-side verification in a loop, for instruction counts under callgrind.
//!
//! ```text
//! cargo build --release -p tessera-server --example profile_verify
//! valgrind --tool=callgrind --toggle-collect='profile_verify::measured' \
//!     --callgrind-out-file=/tmp/cg.out target/release/examples/profile_verify 2000 get
//! callgrind_annotate /tmp/cg.out | head -40
//! ```
//!
//! Modes: `get` and `post` call `Verifier::verify_bytes` (GET with a query,
//! POST with a 1 KiB body); `layer-get` and `layer-post` call the
//! `VerifySignature` tower service around a trivial inner service and drive
//! its response future to completion. Every round verifies a request signed
//! just before (in batches of 64) with its own fresh nonce, against a
//! `MemoryKeyStore` and a `MemoryNonceStore` pre-filled with 300,000 live
//! nonces of 1,000 other keys; the manual clock advances one second per
//! 1,000 requests, as in the criterion benchmark, so entries expire as new
//! ones arrive. Signing and the pre-fill happen outside `measured`, the only
//! function callgrind collects with the `--toggle-collect` above, so
//! `Ir / rounds` is the cost of one verification: for `get` and `post` the
//! request head is borrowed (dropping the identity is included); the layer
//! modes take the request by value and drop it and the response inside. The program prints the rounds and the store size.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tessera_core::{
    sign, BodyDigest, Component, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_server::{
    KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, NonceRecord, Verifier,
    VerifySignature,
};
use tower_service::Service;

const NOW: u64 = 1_700_000_000;
const URI_GET: &str = "https://api.example.com/v1/users/123/orders?limit=50&cursor=abc%2Fdef";
const URI_POST: &str = "https://api.example.com/v1/users/123/orders";
const PREFILL: usize = 300_000;
const PREFILL_KEYS: usize = 1_000;
/// Requests signed ahead of verification.
const BATCH: usize = 64;
/// Verified requests per second of the manual clock (and of the pre-fill).
const RATE: usize = 1_000;

/// The work collected by callgrind: one verification, start to drop.
#[inline(never)]
fn measured(job: Job<'_>) {
    match job {
        Job::Bytes(verifier, parts, body) => {
            let verified = verifier
                .verify_bytes(parts, body)
                .now_or_never()
                .expect("in-memory stores complete synchronously");
            black_box(verified.expect("accepted"));
        }
        Job::Layer(service, request) => {
            let response = service
                .call(request)
                .now_or_never()
                .expect("in-memory stores complete synchronously")
                .expect("infallible");
            assert_eq!(response.status(), http::StatusCode::OK);
            black_box(response);
        }
    }
}

// Not boxed: a box would be freed inside `measured` and count against the layer.
#[allow(clippy::large_enum_variant)]
enum Job<'a> {
    Bytes(&'a Verifier, &'a http::request::Parts, Bytes),
    Layer(&'a mut Inner, Request<Full<Bytes>>),
}

type Inner = VerifySignature<
    tower::util::ServiceFn<
        fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
    >,
>;

fn handler(
    request: Request<Full<Bytes>>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    black_box(&request);
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2_000);
    let mode = args.next().unwrap_or_else(|| "get".to_owned());
    let (method, uri, body_len, layer) = match mode.as_str() {
        "get" => ("GET", URI_GET, 0, false),
        "post" => ("POST", URI_POST, 1024, false),
        "layer-get" => ("GET", URI_GET, 0, true),
        "layer-post" => ("POST", URI_POST, 1024, true),
        other => {
            eprintln!("unknown mode {other:?}: get, post, layer-get or layer-post");
            std::process::exit(2);
        }
    };
    let body = Bytes::from(
        (0..body_len)
            .map(|i| b"{\"k\":12345}"[i % 11])
            .collect::<Vec<u8>>(),
    );

    let secret = SecretKey::from_bytes(&[0x42; 32]).expect("secret");
    let id = KeyId::new("user-42-phone").expect("id");
    let keys = MemoryKeyStore::new();
    keys.insert(
        id.clone(),
        &secret,
        KeyMetadata::new("user-42").with_scopes(["read"]),
    );
    for i in 0..PREFILL_KEYS {
        let other = KeyId::new(format!("user-{i:04}-device")).expect("id");
        keys.insert(other, &secret, KeyMetadata::new(format!("user-{i}")));
    }
    let nonces = MemoryNonceStore::builder()
        .capacity(4_000_000)
        .per_key_capacity(4_000_000)
        .remembers_since(0)
        .build();
    prefill(&nonces);
    let live = nonces.len();
    let clock = ManualClock::new(NOW);
    let verifier = Verifier::builder(keys)
        .nonce_store(nonces)
        .clock(clock.clone())
        .authority("api.example.com")
        .build()
        .expect("verifier");

    let key = SigningKey::new(id, &secret);
    let extra = [
        Component::field("content-type").expect("field"),
        Component::field("user-agent").expect("field"),
    ];
    let digest = BodyDigest::of(&body);
    let mut rng = rand::rng();
    let mut service: Inner =
        VerifySignature::new(tower::service_fn(handler as fn(_) -> _), verifier.clone());
    let mut batch = Vec::with_capacity(BATCH);
    let mut done = 0;
    while done < rounds {
        // Signed in small batches just before they are verified, so the
        // requests are in cache as a server's just-parsed request would be.
        batch.clear();
        for _ in 0..BATCH.min(rounds - done) {
            done += 1;
            if done % RATE == 0 {
                clock.advance(1);
            }
            let (mut parts, ()) = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "api.example.com")
                .header("content-type", "application/json")
                .header("user-agent", "tessera-bench/1.0")
                .header("content-length", body.len())
                .body(())
                .expect("request")
                .into_parts();
            let nonce = Nonce::generate(&mut rng);
            let now = tessera_server::Clock::now_unix(&clock);
            let options = SignOptions::new(now, &nonce).cover(&extra);
            sign(
                &key,
                &RequestView::from_parts(&parts).expect("view"),
                &digest,
                &options,
            )
            .expect("sign")
            .apply_to(&mut parts.headers)
            .expect("apply");
            batch.push(parts);
        }
        for parts in batch.drain(..) {
            if layer {
                // The layer takes the request by value, as a server hands it over.
                let request = Request::from_parts(parts, Full::new(body.clone()));
                measured(Job::Layer(&mut service, request));
            } else {
                measured(Job::Bytes(&verifier, &parts, body.clone()));
            }
        }
    }
    println!("{mode}: {rounds} rounds verified; {live} live nonces before the first");
}

/// 1,000 nonces a second for the 300 seconds before `NOW`, from 1,000
/// other keys: the store holds what a steady 1,000 requests/s leave live.
fn prefill(store: &MemoryNonceStore) {
    let keys: Vec<KeyId> = (0..PREFILL_KEYS)
        .map(|i| KeyId::new(format!("user-{i:04}-device")).expect("id"))
        .collect();
    let mut rng = rand::rng();
    for i in 0..PREFILL {
        let now = NOW - 300 + (i / RATE) as u64;
        let nonce = Nonce::generate(&mut rng);
        let record = NonceRecord::new(&keys[i % PREFILL_KEYS], &nonce, now, now, now + 301);
        store.check_and_record(record).expect("room");
    }
    assert_eq!(store.len(), PREFILL);
}
