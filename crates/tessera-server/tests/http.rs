//! The verifier behind a real axum server, driven by reqwest over loopback.

mod support;

use std::sync::Arc;

use http::{HeaderValue, Method};
use support::{Harness, Spec, PUBLIC, T0};
use tessera_core::challenge::verify_server_time;
use tessera_server::MemoryNonceStore;

#[tokio::test]
async fn accepts_get_post_put_delete() {
    let h = Harness::standard().await;
    for method in [Method::GET, Method::DELETE] {
        let reply = h.send(&Spec::new(method.clone(), &h.local).signed()).await;
        reply.assert_ok();
        assert_eq!(reply.json["method"], method.as_str());
        assert_eq!(reply.json["owner"], "alice");
        assert_eq!(reply.json["client"], "test-app");
        assert_eq!(reply.json["key_id"], "alice");
    }
    let body = br#"{"item":"book","qty":2}"#;
    for method in [Method::POST, Method::PUT] {
        let reply = h
            .send(&Spec::new(method.clone(), &h.local).body(body).signed())
            .await;
        reply.assert_ok();
        assert_eq!(reply.json["method"], method.as_str());
        // The handler receives the body the verifier buffered.
        assert_eq!(reply.json["body"], r#"{"item":"book","qty":2}"#);
    }
    // Signed for the public authority and sent with that Host.
    h.send(&Spec::new(Method::GET, PUBLIC).signed())
        .await
        .assert_ok();
}

#[tokio::test]
async fn tampered_method_is_bad_signature() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    *request.method_mut() = Method::DELETE;
    let reply = h.send(&request).await;
    reply.assert_problem(401, "bad_signature");
    assert_eq!(reply.json["base_sha256"].as_str().map(str::len), Some(64));
    assert!(
        reply.json.get("signature_base").is_none(),
        "debug base is off by default"
    );
}

#[tokio::test]
async fn tampered_authority_is_bad_signature() {
    let h = Harness::standard().await;
    // Signed for api.example.com, delivered as 127.0.0.1:<port>: both served.
    let mut request = Spec::new(Method::GET, PUBLIC).signed();
    request.headers_mut().insert(
        http::header::HOST,
        HeaderValue::from_str(&h.local).expect("host"),
    );
    h.send(&request).await.assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn tampered_path_is_bad_signature() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    *request.uri_mut() = format!(
        "http://{}/v1/users/124/orders?limit=50&cursor=abc%2Fdef",
        h.local
    )
    .parse()
    .expect("uri");
    h.send(&request).await.assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn tampered_query_is_bad_signature() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    *request.uri_mut() = format!(
        "http://{}/v1/users/123/orders?limit=5000&cursor=abc%2Fdef",
        h.local
    )
    .parse()
    .expect("uri");
    h.send(&request).await.assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn tampered_covered_header_is_bad_signature() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    request
        .headers_mut()
        .insert("user-agent", HeaderValue::from_static("evil/1"));
    h.send(&request).await.assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn uncovered_header_may_change() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    request
        .headers_mut()
        .insert("x-request-id", HeaderValue::from_static("abc"));
    h.send(&request).await.assert_ok();
}

#[tokio::test]
async fn tampered_body_is_digest_mismatch() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::POST, &h.local)
        .body(br#"{"qty":1}"#)
        .signed();
    *request.body_mut() = br#"{"qty":9}"#.to_vec();
    h.send(&request)
        .await
        .assert_problem(401, "digest_mismatch");
}

#[tokio::test]
async fn swapped_body_and_digest_is_bad_signature() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::POST, &h.local)
        .body(br#"{"qty":1}"#)
        .signed();
    // The attacker replaces the body and recomputes Content-Digest, but the
    // digest is covered by the MAC.
    let swapped = br#"{"qty":9}"#;
    *request.body_mut() = swapped.to_vec();
    let digest = tessera_core::BodyDigest::of(swapped).header_value();
    request.headers_mut().insert(
        "content-digest",
        HeaderValue::from_str(&digest).expect("digest"),
    );
    h.send(&request).await.assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn replay_is_rejected() {
    let h = Harness::standard().await;
    let request = Spec::new(Method::POST, &h.local).body(b"{}").signed();
    h.send(&request).await.assert_ok();
    h.send(&request).await.assert_problem(401, "replayed");
    h.clock.advance(299);
    h.send(&request).await.assert_problem(401, "replayed");
}

#[tokio::test]
async fn too_old_is_clock_skew_with_authenticated_server_time() {
    let h = Harness::standard().await;
    let (request, nonce) = Spec::new(Method::GET, &h.local).created(T0 - 301).sign();
    let reply = h.send(&request).await;
    reply.assert_problem(401, "clock_skew");
    assert_eq!(reply.json["server_time"], T0);
    let challenge = reply.headers["tessera-server-time"].as_bytes();
    let key = support::signing_key("alice");
    assert_eq!(verify_server_time(challenge, &key, &nonce), Ok(T0));
}

#[tokio::test]
async fn too_far_in_the_future_is_clock_skew() {
    // A store that remembers a whole window back, so the old edge is
    // tested against the window and not against the store's start.
    let h = Harness::start(|b, local| {
        b.authority(local).authority(PUBLIC).nonce_store(
            MemoryNonceStore::builder()
                .remembers_since(T0 - 300)
                .build(),
        )
    })
    .await;
    // Ahead of the clock, only MAX_AHEAD_SECS (2 s) are accepted, however
    // wide the window (spec §11.2, step 4).
    let ahead = tessera_core::MAX_AHEAD_SECS;
    for created in [T0 + ahead + 1, T0 + 60, T0 + 300, T0 + 301] {
        let reply = h
            .send(&Spec::new(Method::GET, &h.local).created(created).signed())
            .await;
        reply.assert_problem(401, "clock_skew");
        assert!(reply.headers.contains_key("tessera-server-time"));
        assert!(
            reply.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("in the future") && d.contains("at most 2s ahead")),
            "{}",
            reply.json
        );
    }
    // The edges are inside: 2 s ahead, a whole window old.
    h.send(
        &Spec::new(Method::GET, &h.local)
            .created(T0 + ahead)
            .signed(),
    )
    .await
    .assert_ok();
    h.send(&Spec::new(Method::GET, &h.local).created(T0 - 300).signed())
        .await
        .assert_ok();
}

/// A new process has an empty memory store: a request signed before it
/// started may have been accepted by the process before, so it is refused
/// with the retryable `store_reset`, and the same request signed again passes.
#[tokio::test]
async fn a_request_signed_before_the_verifier_started_is_store_reset() {
    // A store that learns its start at the first check, like any new one.
    let h = Harness::start(|b, local| {
        b.authority(local)
            .authority(PUBLIC)
            .nonce_store(MemoryNonceStore::new())
    })
    .await;
    let early = Spec::new(Method::GET, &h.local).created(T0 - 1).signed();
    let reply = h.send(&early).await;
    reply.assert_problem(503, "store_reset");
    // The memory point: the next second, plus the 2 s a signature may be
    // dated ahead (spec §14.1); `Retry-After` says how long after
    // `created` (the client's clock) a new signature is accepted.
    let since = T0 + 1 + tessera_core::MAX_AHEAD_SECS;
    assert!(
        reply.json["detail"].as_str().is_some_and(
            |d| d.contains(&since.to_string()) && d.contains("sign the request again")
        ),
        "{}",
        reply.json
    );
    assert_eq!(
        reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("4"),
        "{:?}",
        reply.headers
    );
    // Refused without being recorded: still refused, never `replayed`.
    h.send(&early).await.assert_problem(503, "store_reset");
    // Created in the second the store started, or dated ahead into the
    // next two (as by a client whose clock runs 2 s fast): a process before
    // may have accepted it, so it is refused too.
    for created in T0..since {
        h.clock.set(created);
        h.send(&Spec::new(Method::GET, &h.local).created(created).signed())
            .await
            .assert_problem(503, "store_reset");
    }
    // From the memory point on, requests pass.
    h.clock.set(since);
    h.send(&Spec::new(Method::GET, &h.local).created(since).signed())
        .await
        .assert_ok();
}

/// The verifier's clock ran far ahead (the default memory store expired
/// the buckets it passed) and was then corrected: a captured request still
/// within its window on the corrected clock is never accepted a second
/// time; it gets the retryable `store_reset`, and a request signed now passes.
#[tokio::test]
async fn a_clock_corrected_back_after_running_ahead_never_reopens_a_replay() {
    let h = Harness::standard().await;
    let captured = Spec::new(Method::GET, &h.local).signed();
    h.send(&captured).await.assert_ok();
    h.send(&captured).await.assert_problem(401, "replayed");
    // An hour ahead (a bad NTP step); clients follow the authenticated
    // clock-skew challenge and sign with the verifier's time. Enough
    // requests that every shard of the store expires what it passed
    // (one shard of 32 misses all 512 with a chance of about 1e-7; it
    // would then answer `replayed`, which is safe too).
    h.clock.set(T0 + 3_600);
    for _ in 0..512 {
        h.send(
            &Spec::new(Method::GET, &h.local)
                .created(T0 + 3_600)
                .signed(),
        )
        .await
        .assert_ok();
    }
    // Corrected: 20 s after the captured request was signed.
    h.clock.set(T0 + 20);
    let reply = h.send(&captured).await;
    reply.assert_problem(503, "store_reset");
    assert!(
        reply.headers.contains_key("retry-after"),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn key_lookup_failures() {
    let h = Harness::standard().await;
    for (key, code) in [
        ("nobody", "unknown_key"),
        ("revoked", "key_revoked"),
        ("expired", "key_expired"),
        ("future", "key_not_yet_valid"),
    ] {
        let reply = h
            .send(&Spec::new(Method::GET, &h.local).key(key).signed())
            .await;
        reply.assert_problem(401, code);
        // No time challenge for keys that are not usable.
        assert!(!reply.headers.contains_key("tessera-server-time"), "{key}");
    }
}

#[tokio::test]
async fn key_checks_come_before_the_time_check() {
    let h = Harness::standard().await;
    let reply = h
        .send(
            &Spec::new(Method::GET, &h.local)
                .key("revoked")
                .created(T0 - 1000)
                .signed(),
        )
        .await;
    reply.assert_problem(401, "key_revoked");
}

#[tokio::test]
async fn revocation_takes_effect_immediately() {
    let h = Harness::standard().await;
    h.send(&Spec::new(Method::GET, &h.local).signed())
        .await
        .assert_ok();
    h.keys.revoke(&support::key_id("alice"));
    h.send(&Spec::new(Method::GET, &h.local).signed())
        .await
        .assert_problem(401, "key_revoked");
}

#[tokio::test]
async fn scope_guard() {
    let h = Harness::standard().await;
    let reply = h
        .send(
            &Spec::new(Method::POST, &h.local)
                .path("/admin")
                .body(b"{}")
                .signed(),
        )
        .await;
    reply.assert_problem(403, "insufficient_scope");
    let reply = h
        .send(
            &Spec::new(Method::POST, &h.local)
                .path("/admin")
                .key("admin")
                .body(b"{}")
                .signed(),
        )
        .await;
    reply.assert_ok();
    assert_eq!(reply.json["owner"], "root");
}

#[tokio::test]
async fn unserved_authority_is_authority_mismatch() {
    let h = Harness::standard().await;
    h.send(&Spec::new(Method::GET, "evil.example").signed())
        .await
        .assert_problem(401, "authority_mismatch");
}

#[tokio::test]
async fn fixed_authority_ignores_rewritten_host() {
    let h = Harness::start(|b, _| b.fixed_authority(PUBLIC)).await;
    // Signed for the public name; the "proxy" delivers it with the loopback Host.
    let mut request = Spec::new(Method::GET, PUBLIC).signed();
    request.headers_mut().insert(
        http::header::HOST,
        HeaderValue::from_str(&h.local).expect("host"),
    );
    h.send(&request).await.assert_ok();
    // A request signed for the internal name does not match the public base.
    h.send(&Spec::new(Method::GET, &h.local).signed())
        .await
        .assert_problem(401, "bad_signature");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let h = Harness::standard().await;
    let body = vec![b'x'; 8192];
    h.send(&Spec::new(Method::POST, &h.local).body(&body).signed())
        .await
        .assert_problem(413, "body_too_large");
    // Exactly at the limit is fine.
    let body = vec![b'y'; 4096];
    h.send(&Spec::new(Method::POST, &h.local).body(&body).signed())
        .await
        .assert_ok();
}

#[tokio::test]
async fn malformed_and_missing_signatures() {
    let h = Harness::standard().await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    request.headers_mut().insert(
        "signature-input",
        HeaderValue::from_static("tessera=(\"@method\";created=1"),
    );
    h.send(&request)
        .await
        .assert_problem(400, "malformed_signature");

    let mut request = Spec::new(Method::GET, &h.local).signed();
    request
        .headers_mut()
        .insert("signature", HeaderValue::from_static("tessera=:AAAA:"));
    h.send(&request)
        .await
        .assert_problem(400, "malformed_signature");

    let mut request = Spec::new(Method::GET, &h.local).signed();
    request.headers_mut().remove("signature-input");
    request.headers_mut().remove("signature");
    h.send(&request)
        .await
        .assert_problem(401, "missing_signature");

    let mut request = Spec::new(Method::GET, &h.local).signed();
    request.headers_mut().remove("content-digest");
    h.send(&request)
        .await
        .assert_problem(400, "missing_component");
}

#[tokio::test]
async fn required_component_must_be_covered() {
    let h =
        Harness::start(|b, local| b.authority(local).require_components(["content-type"])).await;
    let mut spec = Spec::new(Method::POST, &h.local).body(b"{}");
    spec.extra.clear();
    h.send(&spec.signed())
        .await
        .assert_problem(400, "missing_component");
    h.send(&Spec::new(Method::POST, &h.local).body(b"{}").signed())
        .await
        .assert_ok();
}

#[tokio::test]
async fn debug_mode_returns_the_signature_base() {
    let h =
        Harness::start(|b, local| b.authority(local).dangerous_debug_signature_base(true)).await;
    let mut request = Spec::new(Method::GET, &h.local).signed();
    *request.method_mut() = Method::DELETE;
    let reply = h.send(&request).await;
    reply.assert_problem(401, "bad_signature");
    let base = reply.json["signature_base"].as_str().expect("debug base");
    assert!(base.starts_with("\"@method\": DELETE\n"), "{base}");
    assert!(base.contains("\"@signature-params\": "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_accept_exactly_one() {
    let h = Arc::new(Harness::standard().await);
    let request = Arc::new(
        Spec::new(Method::POST, &h.local)
            .body(b"{\"race\":1}")
            .signed(),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (h, request, barrier) =
                (Arc::clone(&h), Arc::clone(&request), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                h.send(&request).await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let reply = task.await.expect("task");
        if reply.status == 200 {
            accepted += 1;
        } else {
            reply.assert_problem(401, "replayed");
        }
    }
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn full_nonce_store_fails_closed() {
    let store = MemoryNonceStore::builder()
        .capacity(1)
        .remembers_since(T0)
        .build();
    let h = Harness::start(move |b, local| b.authority(local).nonce_store(store)).await;
    h.send(&Spec::new(Method::GET, &h.local).signed())
        .await
        .assert_ok();
    h.send(&Spec::new(Method::GET, &h.local).signed())
        .await
        .assert_problem(503, "store_unavailable");
    // A replay of nothing new is still a replay, and a bad MAC never reaches the store.
    let mut request = Spec::new(Method::GET, &h.local).signed();
    *request.method_mut() = Method::DELETE;
    h.send(&request).await.assert_problem(401, "bad_signature");
}

/// RFC 9112 §3.2 and spec §11.2 step 5, through hyper, axum and the tower
/// layer: the same answers as the core and `tessera verify` give.
#[tokio::test]
async fn host_lines_and_target_forms_over_real_http() {
    let h = Harness::standard().await;
    let path = support::PATH;
    let request = Spec::new(Method::GET, PUBLIC).signed();
    h.send_raw(&request, path, &[PUBLIC]).await.assert_ok();
    // A second, forged Host after a valid one: 400, never accepted.
    h.send_raw(&request, path, &[PUBLIC, "evil.example"])
        .await
        .assert_problem(400, "invalid_field_value");
    h.send_raw(&request, path, &[PUBLIC, PUBLIC])
        .await
        .assert_problem(400, "invalid_field_value");
    // No authority at all.
    h.send_raw(&request, path, &[])
        .await
        .assert_problem(401, "authority_mismatch");
    // Absolute-form: the target's authority is used, Host is ignored.
    let absolute = format!("http://{PUBLIC}{path}");
    let fresh = Spec::new(Method::GET, PUBLIC).signed();
    h.send_raw(&fresh, &absolute, &["evil.example"])
        .await
        .assert_ok();
    // Time is checked before the target (step 4 before step 5).
    let old = Spec::new(Method::GET, PUBLIC).created(T0 - 1000).signed();
    h.send_raw(&old, path, &[PUBLIC, "evil.example"])
        .await
        .assert_problem(401, "clock_skew");
}
