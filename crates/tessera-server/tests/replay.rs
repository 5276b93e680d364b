//! Replay-window properties, with real threads and a manual clock.

mod support;

use bytes::Bytes;
use std::sync::{Arc, Barrier};

use futures_util::FutureExt;
use http::Method;
use proptest::prelude::*;
use support::{key_store, Spec, T0};
use tessera_core::ErrorCode;
use tessera_server::{ManualClock, MemoryNonceStore, Verifier};

fn verifier(clock: &ManualClock) -> Verifier {
    Verifier::builder(key_store())
        .nonce_store(
            MemoryNonceStore::builder()
                .remembers_since(T0 - 300)
                .build(),
        )
        .clock(clock.clone())
        .authority("api.example.com")
        .build()
        .expect("verifier")
}

/// Every store involved answers immediately, so one poll completes a verification.
fn verify_now(verifier: &Verifier, request: &http::Request<Vec<u8>>) -> Result<(), ErrorCode> {
    let (parts, body) = request.clone().into_parts();
    verifier
        .verify_bytes(&parts, Bytes::from(body.clone()))
        .now_or_never()
        .expect("in-memory stores complete synchronously")
        .map(|_| ())
        .map_err(|r| r.code())
}

#[test]
fn sixty_four_threads_race_and_exactly_one_wins() {
    for round in 0..20 {
        let clock = ManualClock::new(T0);
        let verifier = verifier(&clock);
        let request = Arc::new(
            Spec::new(Method::POST, "api.example.com")
                .body(b"{\"n\":1}")
                .signed(),
        );
        let barrier = Arc::new(Barrier::new(64));
        let threads: Vec<_> = (0..64)
            .map(|_| {
                let (verifier, request, barrier) =
                    (verifier.clone(), Arc::clone(&request), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    verify_now(&verifier, &request)
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "round {round}: {results:?}");
        assert!(results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(ErrorCode::Replayed))));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Accepted once at T0 (when `created` is at most the window old and at
    /// most `MAX_AHEAD_SECS` ahead; `clock_skew` otherwise); every later
    /// replay is `replayed` while `created` is inside the window and
    /// `clock_skew` after it, never accepted.
    #[test]
    fn a_replay_is_never_accepted(offset in -300i64..=300, mut later in prop::collection::vec(0u64..1500, 1..24)) {
        let clock = ManualClock::new(T0);
        let verifier = verifier(&clock);
        let created = T0.checked_add_signed(offset).expect("in range");
        let request = Spec::new(Method::GET, "api.example.com").created(created).signed();
        if created > T0 + tessera_core::MAX_AHEAD_SECS {
            prop_assert_eq!(verify_now(&verifier, &request), Err(ErrorCode::ClockSkew));
            return Ok(());
        }
        prop_assert_eq!(verify_now(&verifier, &request), Ok(()));
        // Other traffic keeps the store busy (and sweeping) meanwhile.
        later.sort_unstable();
        for delay in later {
            let now = T0 + delay;
            clock.set(now);
            let noise = Spec::new(Method::GET, "api.example.com").created(now).signed();
            prop_assert_eq!(verify_now(&verifier, &noise), Ok(()));
            let expected = if now <= created + 300 { ErrorCode::Replayed } else { ErrorCode::ClockSkew };
            prop_assert_eq!(verify_now(&verifier, &request), Err(expected), "now = created + {}", now - created);
        }
    }
}

#[test]
fn replay_is_rejected_for_the_whole_window_then_clock_skew() {
    let clock = ManualClock::new(T0);
    let verifier = verifier(&clock);
    // Signed at the future edge (the most step 4 accepts ahead):
    // remembered longest (until created + 301).
    let created = T0 + tessera_core::MAX_AHEAD_SECS;
    let request = Spec::new(Method::GET, "api.example.com")
        .created(created)
        .signed();
    assert_eq!(verify_now(&verifier, &request), Ok(()));
    for now in T0..=created + 300 {
        clock.set(now);
        assert_eq!(
            verify_now(&verifier, &request),
            Err(ErrorCode::Replayed),
            "now = {now}"
        );
    }
    for now in created + 301..created + 2000 {
        clock.set(now);
        assert_eq!(
            verify_now(&verifier, &request),
            Err(ErrorCode::ClockSkew),
            "now = {now}"
        );
    }
}
