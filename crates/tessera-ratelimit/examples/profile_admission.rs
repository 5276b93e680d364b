//! What the limiter adds to a verified GET, in instructions (repeatable
//! under callgrind, unlike times on a shared machine):
//!
//! ```text
//! cargo build --release -p tessera-ratelimit --example profile_admission
//! valgrind --tool=callgrind --toggle-collect='profile_admission::measured' \
//!     target/release/examples/profile_admission 2000 {plain|limited}
//! ```
//! Instructions divided by the count are the cost of one verify; the
//! difference between the two modes is the limiter's.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_ratelimit::{MemoryRateStore, Plan, RateLimiter};
use tessera_server::{KeyMetadata, ManualClock, MemoryKeyStore, MemoryNonceStore, Verifier};

const T0: u64 = 1_700_000_000;

#[inline(never)]
fn measured(verifier: &Verifier, requests: &[http::request::Parts]) {
    for parts in requests {
        let verified = verifier
            .verify_bytes(parts, Bytes::new())
            .now_or_never()
            .expect("in memory");
        black_box(verified.expect("accepted"));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let limited = args.next().as_deref() == Some("limited");
    let secret = SecretKey::from_bytes(&[7; 32]).expect("secret");
    let key = SigningKey::new(KeyId::new("profile-key").expect("id"), &secret);
    let keys = Arc::new(MemoryKeyStore::new());
    keys.insert(key.key_id().clone(), &secret, KeyMetadata::new("user"));
    let clock = ManualClock::new(T0);
    let mut builder = Verifier::builder(keys)
        .clock(clock.clone())
        .nonce_store(MemoryNonceStore::builder().remembers_since(0).build())
        .authority("api.example.com");
    if limited {
        let plan =
            Plan::new("default", "1000000/s".parse().expect("rate"), 1_000_000).expect("plan");
        builder = builder.admission(
            RateLimiter::builder(MemoryRateStore::default())
                .default_plan(plan)
                .clock(clock)
                .build(),
        );
    }
    let verifier = builder.build().expect("verifier");
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let (mut parts, ()) = http::Request::get("https://api.example.com/v1/me")
                .body(())
                .expect("request")
                .into_parts();
            let nonce = Nonce::generate(&mut rand::rng());
            sign(
                &key,
                &RequestView::from_parts(&parts).expect("view"),
                &BodyDigest::EMPTY,
                &SignOptions::new(T0, &nonce),
            )
            .expect("sign")
            .apply_to(&mut parts.headers)
            .expect("apply");
            parts
        })
        .collect();
    measured(&verifier, &requests);
}
