//! `RedisNonceStore` against a real redis-server on loopback: two axum
//! servers sharing one Redis, a race across both, Redis stopped, paused and
//! restarted under running verifiers, key expiry, and connection errors.
//!
//! Redis comes from `TESSERA_TEST_REDIS_URL` or a child `redis-server`; see
//! `support/redis_server.rs`. Tests that stop Redis always use their own.
#![cfg(feature = "redis")]

#[path = "support/redis_acl.rs"]
mod redis_acl;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use redis_acl::{set_user, without, NONCE_STORE_RIGHTS};
use redis_server::RedisServer;
use support::{key_id, Harness, Spec, PUBLIC, T0};
use tessera_core::Nonce;
use tessera_server::{
    NonceOutcome, NonceRecord, NonceStore, NonceStoreErrorKind, RedisNonceStore,
    RedisStoreErrorKind,
};

/// A prefix of its own per test (and per run), so tests sharing one Redis
/// never see each other's keys.
fn unique_prefix(test: &str) -> String {
    format!("tessera-test-{test}-{:016x}", rand::random::<u64>())
}

/// The store's epochs are dated T0 (see `support::store_clock`), so the
/// harness's requests, signed at T0, are remembered.
async fn store(url: &str, test: &str) -> RedisNonceStore {
    RedisNonceStore::builder(url)
        .prefix(unique_prefix(test))
        .clock(support::store_clock())
        .connect()
        .await
        .expect("connect to redis")
}

/// A server whose verifier uses `nonces` (and serves `api.example.com`).
async fn server(nonces: RedisNonceStore) -> Harness {
    Harness::start(move |b, local| {
        b.authority(local)
            .authority(PUBLIC)
            .nonce_store(nonces.clone())
    })
    .await
}

/// A second connection for looking at Redis directly.
async fn inspect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("inspection connection")
}

#[tokio::test]
async fn store_records_each_pair_once() {
    let Some(redis) = redis_server::shared("store_records_each_pair_once") else {
        return;
    };
    let store = store(&redis.url(), "pairs").await;
    let alice = key_id("alice");
    let bob = key_id("bob");
    let nonce = Nonce::generate(&mut rand::rng());
    let record = |k| NonceRecord::new(k, &nonce, T0, T0, T0 + 301);
    // The read-only look-up the verifier makes before charging a budget.
    assert_eq!(store.recorded(&alice, &nonce).await, Some(false));
    assert_eq!(
        store.record(record(&alice)).await.ok(),
        Some(NonceOutcome::Fresh)
    );
    assert_eq!(store.recorded(&alice, &nonce).await, Some(true));
    assert_eq!(store.recorded(&bob, &nonce).await, Some(false));
    assert_eq!(
        store.record(record(&alice)).await.ok(),
        Some(NonceOutcome::Replayed)
    );
    // The same nonce under another key id is another pair.
    assert_eq!(
        store.record(record(&bob)).await.ok(),
        Some(NonceOutcome::Fresh)
    );
    // A second connection (another instance) sees the same entries.
    let other = RedisNonceStore::builder(redis.url())
        .clock(support::store_clock())
        .prefix(
            store
                .key_for(&alice, &nonce)
                .split(":{")
                .next()
                .expect("prefix"),
        )
        .connect()
        .await
        .expect("second store");
    assert_eq!(
        other.record(record(&bob)).await.ok(),
        Some(NonceOutcome::Replayed)
    );
}

#[tokio::test]
async fn replay_to_another_instance_is_rejected() {
    let Some(redis) = redis_server::shared("replay_to_another_instance_is_rejected") else {
        return;
    };
    let prefix = unique_prefix("instances");
    let connect = || async {
        RedisNonceStore::builder(redis.url())
            .clock(support::store_clock())
            .prefix(prefix.clone())
            .connect()
            .await
            .expect("connect")
    };
    // Two servers, two verifiers, two Redis connections, one Redis.
    let a = server(connect().await).await;
    let b = server(connect().await).await;
    assert_ne!(a.addr, b.addr);

    let request = Spec::new(Method::POST, PUBLIC).body(b"{\"n\":1}").signed();
    a.send(&request).await.assert_ok();
    b.send(&request).await.assert_problem(401, "replayed");
    a.send(&request).await.assert_problem(401, "replayed");

    let request = Spec::new(Method::GET, PUBLIC).signed();
    b.send(&request).await.assert_ok();
    a.send(&request).await.assert_problem(401, "replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_64_across_two_instances_accepts_exactly_one() {
    let Some(redis) = redis_server::shared("race_of_64_across_two_instances") else {
        return;
    };
    let prefix = unique_prefix("race");
    let connect = || async {
        RedisNonceStore::builder(redis.url())
            .clock(support::store_clock())
            .prefix(prefix.clone())
            // Generous: 64 requests arrive at once on 2 shared cores.
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("connect")
    };
    let servers = Arc::new([server(connect().await).await, server(connect().await).await]);
    for round in 0..5 {
        let request = Arc::new(
            Spec::new(Method::POST, PUBLIC)
                .body(b"{\"race\":true}")
                .signed(),
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (servers, request, barrier) = (
                    Arc::clone(&servers),
                    Arc::clone(&request),
                    Arc::clone(&barrier),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    let reply = servers[i % 2].send(&request).await;
                    (reply.status, reply.json["code"].as_str().map(str::to_owned))
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            match task.await.expect("task") {
                (StatusCode::OK, _) => accepted += 1,
                (StatusCode::UNAUTHORIZED, Some(code)) if code == "replayed" => {}
                other => panic!("round {round}: unexpected reply {other:?}"),
            }
        }
        assert_eq!(accepted, 1, "round {round}");
    }
}

/// The PTTL of `key`, milliseconds.
async fn pttl_of(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}

#[tokio::test]
async fn keys_carry_the_window_ttl_and_expire() {
    let Some(redis) = redis_server::shared("keys_carry_the_window_ttl_and_expire") else {
        return;
    };
    let url = redis.url();
    let mut conn = inspect(&url).await;

    // The epochs written at connection are the memory point of the
    // clock's reading plus 2 (a second for the writes to land, a second of
    // margin between instances' clocks): T0 for `support::store_clock()`.
    let nonces = store(&url, "ttl").await;
    let some_key = nonces.key_for(&key_id("alice"), &Nonce::generate(&mut rand::rng()));
    let (tag, _) = some_key.split_once(":nonce:").expect("nonce key layout");
    let epoch: u64 = redis::cmd("GET")
        .arg(format!("{tag}:since"))
        .query_async(&mut conn)
        .await
        .expect("GET epoch");
    assert_eq!(epoch, T0);

    // The default window: remembered for created + 300 + 1 - now = 301 s,
    // plus the second that covers verifier clocks up to a second apart.
    let h = server(nonces.clone()).await;
    let (request, nonce) = Spec::new(Method::GET, PUBLIC).sign();
    h.send(&request).await.assert_ok();
    let key = nonces.key_for(&key_id("alice"), &nonce);
    let pttl = pttl_of(&mut conn, &key).await;
    assert!((301_001..=302_000).contains(&pttl), "PTTL {pttl} for {key}");

    // Accepted while the verifier's clock runs 298 s ahead of `created`:
    // still the whole retention from `created`, not the 3 s left on the
    // fast clock, so a replay after the clock is corrected finds the pair.
    h.clock.set(T0 + 298);
    let (request, nonce) = Spec::new(Method::GET, PUBLIC).created(T0).sign();
    h.send(&request).await.assert_ok();
    let key = nonces.key_for(&key_id("alice"), &nonce);
    let pttl = pttl_of(&mut conn, &key).await;
    assert!((301_001..=302_000).contains(&pttl), "PTTL {pttl} for {key}");
    h.clock.set(T0 + 10);
    h.send(&request).await.assert_problem(401, "replayed");
    h.clock.set(T0);

    // A 1 s window: TTL 2 s (3 with the margin); afterwards Redis holds
    // nothing for the nonce.
    let nonces = store(&url, "expiry").await;
    let prefix = nonces
        .key_for(&key_id("alice"), &nonce)
        .split(":{")
        .next()
        .expect("prefix")
        .to_owned();
    let h = Harness::start({
        let nonces = nonces.clone();
        move |b, local| b.authority(local).window(1).nonce_store(nonces)
    })
    .await;
    let (request, nonce) = Spec::new(Method::GET, &h.local).sign();
    h.send(&request).await.assert_ok();
    h.send(&request).await.assert_problem(401, "replayed");
    let key = nonces.key_for(&key_id("alice"), &nonce);
    let pttl = pttl_of(&mut conn, &key).await;
    assert!((2_001..=3_000).contains(&pttl), "PTTL {pttl} for {key}");

    let deadline = Instant::now() + Duration::from_secs(7);
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        if exists == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{key} still exists");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    // Only the 4096 epoch keys stay, one per tag, without a TTL.
    assert!(
        left.iter().all(|k| k.ends_with(":since")),
        "left over: {left:?}"
    );
    assert_eq!(left.len(), 4096);
}

/// Sends `requests` (all accepted before) again; every one must be refused
/// with `store_reset`, none accepted and none `replayed` (they are not
/// recorded), once the verifier reaches Redis again.
async fn resend_all_refused(h: &Harness, requests: &[http::Request<Vec<u8>>]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut refused = 0;
    for request in requests {
        loop {
            let reply = h.send(request).await;
            assert_ne!(
                reply.status,
                StatusCode::OK,
                "a replay was accepted: {}",
                reply.json
            );
            if reply.json["code"] == "store_unavailable" && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            reply.assert_problem(503, "store_reset");
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, requests.len());
    // Refused without being recorded, so again `store_reset`, not `replayed`.
    h.send(&requests[0])
        .await
        .assert_problem(503, "store_reset");
}

/// 200 requests accepted at `T0`: half dated `T0`, half dated the most
/// step 4 accepts ahead of the verifier's clock (a client whose clock runs
/// 2 s fast), which a store that lost them must refuse as well.
async fn accept_200(h: &Harness) -> Vec<http::Request<Vec<u8>>> {
    let mut accepted = Vec::new();
    for i in 0..200 {
        let created = T0
            + if i % 2 == 0 {
                0
            } else {
                tessera_core::MAX_AHEAD_SECS
            };
        let request = Spec::new(Method::GET, PUBLIC).created(created).signed();
        h.send(&request).await.assert_ok();
        accepted.push(request);
    }
    accepted
}

/// After the loss, the epoch is the memory point of `T0 + 1 + 1` (spec
/// §14.1: the check that writes it may run up to its 250 ms timeout after
/// `T0` was read, and instances' clocks may be a second apart): a request
/// signed the second before it is still refused, one signed at it is
/// accepted, and replay protection holds for it.
async fn signed_after_the_memory_point_passes(h: &Harness) {
    let since = T0 + 3 + tessera_core::MAX_AHEAD_SECS;
    h.clock.set(since - 1);
    let early = Spec::new(Method::GET, PUBLIC).created(since - 1).signed();
    let reply = h.send(&early).await;
    reply.assert_problem(503, "store_reset");
    assert_eq!(
        reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    h.clock.set(since);
    let fresh = Spec::new(Method::GET, PUBLIC).created(since).signed();
    h.send(&fresh).await.assert_ok();
    h.send(&fresh).await.assert_problem(401, "replayed");
}

/// 200 requests accepted, then Redis loses everything (`FLUSHALL`) while
/// the verifier runs: all 200, sent again at once (the same second), are
/// refused with `store_reset`. A request signed after the loss is accepted,
/// and replay protection holds for it.
#[tokio::test]
async fn flushall_refuses_every_request_accepted_before() {
    let Some(redis) = RedisServer::spawn("flushall_refuses_every_request_accepted_before") else {
        return;
    };
    let nonces = store(&redis.url(), "flush").await;
    let h = server(nonces).await;
    let accepted = accept_200(&h).await;
    let mut conn = inspect(&redis.url()).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    resend_all_refused(&h, &accepted).await;

    signed_after_the_memory_point_passes(&h).await;
}

/// The same after a Redis without persistence is restarted empty, under a
/// running verifier (the measured fault: 200 of 200 were accepted again).
#[tokio::test]
async fn redis_restarted_empty_refuses_every_request_accepted_before() {
    let Some(mut redis) =
        RedisServer::spawn("redis_restarted_empty_refuses_every_request_accepted_before")
    else {
        return;
    };
    let nonces = store(&redis.url(), "amnesia").await;
    let h = server(nonces).await;
    let accepted = accept_200(&h).await;
    redis.stop();
    redis.start();
    resend_all_refused(&h, &accepted).await;

    signed_after_the_memory_point_passes(&h).await;
}

#[tokio::test]
async fn redis_stopped_fails_closed_and_restarted_recovers() {
    let Some(mut redis) = RedisServer::spawn("redis_stopped_fails_closed_and_restarted_recovers")
    else {
        return;
    };
    let nonces = store(&redis.url(), "restart").await;
    let h = server(nonces.clone()).await;
    h.send(&Spec::new(Method::GET, PUBLIC).signed())
        .await
        .assert_ok();

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = h.send(&Spec::new(Method::GET, PUBLIC).signed()).await;
        reply.assert_problem(503, "store_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "failed closed, but slowly: {:?}",
            started.elapsed()
        );
    }

    // Known to be down: checks fail at once, without waiting for the
    // connection's reconnect attempts (a quarter of a second each before).
    let alice = key_id("alice");
    let mut took = Vec::with_capacity(200);
    for _ in 0..200 {
        let nonce = Nonce::generate(&mut rand::rng());
        let started = Instant::now();
        let e = nonces
            .record(NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301))
            .await
            .expect_err("Redis is down");
        took.push(started.elapsed());
        assert_eq!(e.kind(), NonceStoreErrorKind::Unavailable);
        assert!(e.to_string().contains("down"), "{e}");
    }
    took.sort();
    let (median, slowest) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!(
        "200 checks while Redis was known to be down: median {median:?}, slowest {slowest:?}"
    );
    // The median is the claim (no network wait: well under 1 ms); the
    // slowest only has to stay below one reconnect attempt (250 ms), since a
    // loaded machine may preempt the test thread during any single check.
    assert!(
        median < Duration::from_millis(1),
        "checks waited (median {median:?}) for a Redis known to be down"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "a check waited {slowest:?} for a Redis known to be down"
    );

    // Down for longer than the connection manager's retry budget.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.send(&Spec::new(Method::GET, PUBLIC).signed())
        .await
        .assert_problem(503, "store_unavailable");

    // Same port, no restart of the verifier.
    redis.start();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(15);
    let mut reset = false;
    loop {
        let now = tessera_server::Clock::now_unix(&h.clock);
        let reply = h
            .send(&Spec::new(Method::GET, PUBLIC).created(now).signed())
            .await;
        if reply.status == StatusCode::OK {
            break;
        }
        if reply.json["code"] == "store_reset" {
            // The restarted Redis is empty: the check that found its epoch
            // missing dated a new one at the memory point of now + 2 (its
            // timeout rounded up, plus the clock margin).
            reset = true;
            h.clock.advance(1);
            continue;
        }
        reply.assert_problem(503, "store_unavailable");
        assert!(Instant::now() < deadline, "the verifier did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reset, "the empty Redis was not noticed");
    eprintln!("recovered {:?} after the restart", restarted.elapsed());
    // And replay protection works again.
    let now = tessera_server::Clock::now_unix(&h.clock);
    let request = Spec::new(Method::GET, PUBLIC).created(now).signed();
    h.send(&request).await.assert_ok();
    h.send(&request).await.assert_problem(401, "replayed");
}

#[tokio::test]
async fn unresponsive_redis_times_out_and_fails_closed() {
    let Some(redis) = RedisServer::spawn("unresponsive_redis_times_out_and_fails_closed") else {
        return;
    };
    let nonces = RedisNonceStore::builder(redis.url())
        .clock(support::store_clock())
        .prefix(unique_prefix("paused"))
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .expect("connect");
    let h = server(nonces.clone()).await;
    h.send(&Spec::new(Method::GET, PUBLIC).signed())
        .await
        .assert_ok();

    // Accepts connections (the kernel does) but never answers.
    redis.pause(true);
    let started = Instant::now();
    let nonce = Nonce::generate(&mut rand::rng());
    let alice = key_id("alice");
    let e = nonces
        .record(NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301))
        .await
        .expect_err("timed out");
    assert_eq!(e.kind(), NonceStoreErrorKind::Unavailable);
    assert!(e.to_string().contains("200 ms"), "{e}");
    let reply = h.send(&Spec::new(Method::GET, PUBLIC).signed()).await;
    reply.assert_problem(503, "store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    redis.pause(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = h.send(&Spec::new(Method::GET, PUBLIC).signed()).await;
        if reply.status == StatusCode::OK {
            break;
        }
        reply.assert_problem(503, "store_unavailable");
        assert!(Instant::now() < deadline, "the verifier did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_start_up_error() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/3");
    let started = Instant::now();
    let e = RedisNonceStore::connect(&url)
        .await
        .expect_err("nothing there");
    assert_eq!(e.kind(), RedisStoreErrorKind::Connect);
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("redis://:***@127.0.0.1:{port}/3")),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!format!("{e:?}").contains("hunter2"));
    assert!(started.elapsed() < Duration::from_secs(5));

    // `rediss://` without the TLS feature is refused up front.
    #[cfg(not(feature = "redis-tls"))]
    {
        let e = RedisNonceStore::connect("rediss://:hunter2@127.0.0.1:1/")
            .await
            .expect_err("no tls");
        assert_eq!(e.kind(), RedisStoreErrorKind::InvalidUrl);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

/// A connection to the Redis at `url`, after checking that it holds no key
/// (a refused connection writes nothing).
async fn nothing_written(url: &str) -> redis::aio::MultiplexedConnection {
    let mut conn = inspect(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(keys.is_empty(), "{keys:?}");
    conn
}

/// The store records a fresh pair.
async fn records_a_pair(store: &RedisNonceStore) {
    let (alice, nonce) = (key_id("alice"), Nonce::generate(&mut rand::rng()));
    let record = NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301);
    assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));
}

/// `CONFIG SET name value` over `conn`.
async fn config_set(conn: &redis::aio::MultiplexedConnection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(&mut conn.clone())
        .await
        .expect("CONFIG SET");
}

#[tokio::test]
async fn a_redis_that_may_evict_nonces_is_refused_unless_allowed() {
    let Some(redis) = RedisServer::spawn_with(
        "a_redis_that_may_evict_nonces_is_refused_unless_allowed",
        &["--maxmemory-policy", "volatile-lru"],
    ) else {
        return;
    };
    let refused = RedisNonceStore::builder(redis.url())
        .prefix(unique_prefix("evicting"))
        .clock(support::store_clock())
        .connect()
        .await
        .expect_err("an evicting policy is refused");
    assert_eq!(refused.kind(), RedisStoreErrorKind::EvictionPolicy);
    let message = refused.to_string();
    assert!(
        message.contains("volatile-lru") && message.contains("noeviction"),
        "{message}"
    );
    let conn = nothing_written(&redis.url()).await;
    // Allowed explicitly: it connects and works.
    let allowed = RedisNonceStore::builder(redis.url())
        .prefix(unique_prefix("evicting"))
        .clock(support::store_clock())
        .allow_evicting_policy(true)
        .connect()
        .await
        .expect("allowed explicitly");
    records_a_pair(&allowed).await;
    // Back to noeviction: the default builder connects.
    config_set(&conn, "maxmemory-policy", "noeviction").await;
    store(&redis.url(), "evicting").await;
}

/// A Redis whose restart can bring back the epoch keys without the last
/// pairs (RDB snapshots, on by default in Redis; an append-only file synced
/// once a second) would accept a replay of a lost pair once: refused at
/// connection unless allowed. Persistence off, or an append-only file
/// synced on every write, connects.
#[tokio::test]
async fn a_redis_whose_restart_can_restore_epochs_without_pairs_is_refused_unless_allowed() {
    let dir =
        std::env::temp_dir().join(format!("tessera-redis-persistence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let dir_arg = dir.display().to_string();
    let Some(redis) = RedisServer::spawn_with(
        "a_redis_whose_restart_can_restore_epochs_without_pairs_is_refused_unless_allowed",
        &["--dir", &dir_arg, "--save", "3600 1"],
    ) else {
        return;
    };
    let connect = |allow: bool| {
        RedisNonceStore::builder(redis.url())
            .prefix(unique_prefix("persistence"))
            .clock(support::store_clock())
            .allow_lossy_persistence(allow)
            .connect()
    };
    let refused = connect(false).await.expect_err("snapshots are refused");
    assert_eq!(refused.kind(), RedisStoreErrorKind::Persistence);
    let message = refused.to_string();
    assert!(
        message.contains("save \"3600 1\"") && message.contains("allow_lossy_persistence"),
        "{message}"
    );
    let conn = nothing_written(&redis.url()).await;
    // Allowed explicitly: it connects and works.
    records_a_pair(&connect(true).await.expect("allowed explicitly")).await;
    // An append-only file synced once a second: refused too.
    config_set(&conn, "save", "").await;
    config_set(&conn, "appendonly", "yes").await;
    config_set(&conn, "appendfsync", "everysec").await;
    let refused = connect(false).await.expect_err("everysec is refused");
    assert_eq!(refused.kind(), RedisStoreErrorKind::Persistence);
    assert!(
        refused.to_string().contains("appendfsync everysec"),
        "{refused}"
    );
    // Synced on every write: nothing acknowledged is lost, it connects.
    config_set(&conn, "appendfsync", "always").await;
    connect(false).await.expect("lossless persistence");
    // And persistence off, as the tests run it.
    config_set(&conn, "appendonly", "no").await;
    connect(false).await.expect("no persistence");
    // Without the replication files deleted (Redis's default): as a
    // replica this server would keep its last full resync's RDB file, and
    // load it when it restarts after a failover promoted it.
    config_set(&conn, "rdb-del-sync-files", "no").await;
    let refused = connect(false)
        .await
        .expect_err("a replica's resync file is refused");
    assert_eq!(refused.kind(), RedisStoreErrorKind::Persistence);
    assert!(
        refused.to_string().contains("repl-diskless-load disabled"),
        "{refused}"
    );
    config_set(&conn, "repl-diskless-load", "on-empty-db").await;
    connect(false)
        .await
        .expect_err("on-empty-db writes the file into a replica with data");
    config_set(&conn, "repl-diskless-load", "swapdb").await;
    connect(false)
        .await
        .expect("resyncs streamed and loaded from the socket");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Redis Cluster's client reports one seed's error: a seed that refuses
/// the password while another does not answer is an outage that may pass
/// (`Connect`, retried), whichever seed comes first; only when every seed
/// refuses is the refusal the configuration's (`Refused`, not retried).
#[tokio::test]
async fn a_cluster_seed_that_refuses_while_another_is_down_is_an_outage() {
    let test = "a_cluster_seed_that_refuses_while_another_is_down_is_an_outage";
    let Some(one) = RedisServer::spawn_with(test, &["--requirepass", "other-pw"]) else {
        return;
    };
    let Some(two) = RedisServer::spawn_with(test, &["--requirepass", "other-pw"]) else {
        return;
    };
    let down = redis_server::free_port();
    let connect = |seeds: String| async move {
        RedisNonceStore::builder(format!("redis+cluster://:wrong-pw@{seeds}"))
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .await
            .expect_err("no seed takes the password")
    };
    for seeds in [
        format!("127.0.0.1:{},127.0.0.1:{down}", one.port),
        format!("127.0.0.1:{down},127.0.0.1:{}", one.port),
    ] {
        let e = connect(seeds.clone()).await;
        assert_eq!(e.kind(), RedisStoreErrorKind::Connect, "{seeds}: {e}");
        assert!(e.to_string().contains("did not answer"), "{seeds}: {e}");
        assert!(!e.to_string().contains("wrong-pw"), "{seeds}: {e}");
    }
    let every = format!("127.0.0.1:{},127.0.0.1:{}", one.port, two.port);
    let e = connect(every).await;
    assert_eq!(e.kind(), RedisStoreErrorKind::Refused, "{e}");
}

#[tokio::test]
async fn password_is_passed_through_and_never_shown() {
    let Some(redis) = RedisServer::spawn_with(
        "password_is_passed_through_and_never_shown",
        &["--requirepass", "s3cret-pw"],
    ) else {
        return;
    };
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}/", redis.port);
    let e = RedisNonceStore::connect(&wrong)
        .await
        .expect_err("wrong password");
    // Answered and refused: no later attempt would do better.
    assert_eq!(e.kind(), RedisStoreErrorKind::Refused);
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    assert!(e.to_string().contains(":***@"), "{e}");
    let none = format!("redis://127.0.0.1:{}/", redis.port);
    let e = RedisNonceStore::connect(&none)
        .await
        .expect_err("no password");
    assert_eq!(e.kind(), RedisStoreErrorKind::Refused, "{e}");

    let right = format!("redis://:s3cret-pw@127.0.0.1:{}/2", redis.port);
    let store = RedisNonceStore::builder(&right)
        .clock(support::store_clock())
        .prefix(unique_prefix("auth"))
        .connect()
        .await
        .expect("right password");
    assert!(!format!("{store:?}").contains("s3cret-pw"));
    assert!(!store.url().contains("s3cret-pw"));
    let nonce = Nonce::generate(&mut rand::rng());
    let alice = key_id("alice");
    let record = NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301);
    assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));
    assert_eq!(
        store.record(record).await.ok(),
        Some(NonceOutcome::Replayed)
    );
    // The entry landed in database 2.
    let mut conn = inspect(&right).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(store.key_for(&alice, &nonce))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 1);
}

/// A Redis restarted under a running store with settings that start-up
/// refuses (RDB snapshots on: a later restart would bring the epoch keys
/// back without the last pairs, and a replay of one would be accepted): the
/// store reads the settings again when the probe finds Redis back, refuses
/// every check until they are put back, and then verifies again by itself.
#[tokio::test]
async fn a_redis_restarted_with_lossy_persistence_is_refused_until_fixed() {
    let Some(mut redis) =
        RedisServer::spawn("a_redis_restarted_with_lossy_persistence_is_refused_until_fixed")
    else {
        return;
    };
    let nonces = store(&redis.url(), "resettings").await;
    let alice = key_id("alice");
    let record = |nonce: &Nonce| {
        let nonce = nonce.clone();
        let (nonces, alice) = (nonces.clone(), alice.clone());
        async move {
            nonces
                .record(NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301))
                .await
        }
    };
    let first = Nonce::generate(&mut rand::rng());
    assert_eq!(record(&first).await.ok(), Some(NonceOutcome::Fresh));

    redis.stop();
    redis.set_extra(&["--save", "3600 1"]);
    redis.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        let outcome = record(&Nonce::generate(&mut rand::rng())).await;
        match outcome {
            Err(e) if e.to_string().contains("settings") => break e,
            Err(_) => {}
            Ok(answer) => panic!("a Redis with snapshots on answered {answer:?}"),
        }
        assert!(Instant::now() < deadline, "never refused for its settings");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refusal.kind(), NonceStoreErrorKind::Unavailable);

    // Put back (persistence off): the periodic re-read notices.
    let mut admin = inspect(&redis.url()).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("save")
        .arg("")
        .query_async(&mut admin)
        .await
        .expect("config set");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = record(&Nonce::generate(&mut rand::rng())).await;
        if outcome.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never accepted again: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The snapshot case: Redis switched to RDB snapshots while the store runs
/// (a `CONFIG SET`, before the periodic re-read notices), took a snapshot
/// holding the epochs, recorded one more pair, and then restarted from that
/// snapshot: its epochs vouch for a pair it no longer has. The store refuses
/// checks while the settings are lossy, and when they are put back it moves
/// every epoch forward, so the lost pair's request is refused with
/// `store_reset` instead of being accepted a second time.
#[tokio::test]
async fn a_restart_from_a_snapshot_never_lets_a_lost_pair_through() {
    let dir = std::env::temp_dir().join(format!(
        "tessera-redis-snapshot-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("redis dir");
    let dir_arg = dir.to_str().expect("utf-8 path").to_owned();
    let Some(mut redis) = RedisServer::spawn_with(
        "a_restart_from_a_snapshot_never_lets_a_lost_pair_through",
        &["--dir", &dir_arg],
    ) else {
        return;
    };
    let clock = support::store_clock();
    let nonces = RedisNonceStore::builder(redis.url())
        .prefix(unique_prefix("snapshot"))
        .clock(clock.clone())
        .connect()
        .await
        .expect("connect");
    let alice = key_id("alice");
    let record = |nonce: &Nonce| {
        let (nonces, alice, nonce) = (nonces.clone(), alice.clone(), nonce.clone());
        async move {
            nonces
                .record(NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301))
                .await
        }
    };
    let mut admin = inspect(&redis.url()).await;
    let config_set = |value: &'static str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("save")
            .arg(value)
            .to_owned()
    };

    // Snapshots switched on behind the store's back, one taken, then a pair
    // recorded that the snapshot does not hold.
    let () = config_set("3600 1")
        .query_async(&mut admin)
        .await
        .expect("config set");
    let _: String = redis::cmd("SAVE")
        .query_async(&mut admin)
        .await
        .expect("save");
    let lost = Nonce::generate(&mut rand::rng());
    assert_eq!(record(&lost).await.ok(), Some(NonceOutcome::Fresh));

    // Restarted from the snapshot, with snapshots still on.
    redis.stop();
    redis.set_extra(&["--dir", &dir_arg, "--save", "3600 1"]);
    redis.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match record(&lost).await {
            Err(e) if e.to_string().contains("settings") => break,
            Err(_) => {}
            Ok(answer) => panic!("a Redis with snapshots on answered {answer:?}"),
        }
        assert!(Instant::now() < deadline, "never refused for its settings");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Put back a minute later: the lost pair's request is refused, not
    // accepted again.
    clock.advance(60);
    let mut admin = inspect(&redis.url()).await;
    let () = config_set("")
        .query_async(&mut admin)
        .await
        .expect("config set");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if let Ok(answer) = record(&lost).await {
            break answer;
        }
        assert!(Instant::now() < deadline, "never answered again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        matches!(answer, NonceOutcome::Forgotten { .. }),
        "the lost pair's request was answered {answer:?}"
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the rights the documentation lists, and nothing else, the store
/// connects and checks, also once Redis has forgotten its scripts; without
/// any one of them, the connection is refused (`Refused`, naming what the
/// user needs, never the password) instead of every check failing closed
/// afterwards.
#[tokio::test]
async fn the_documented_rights_are_enough_and_each_is_needed() {
    let test = "the_documented_rights_are_enough_and_each_is_needed";
    let Some(redis) = RedisServer::spawn(test) else {
        return;
    };
    let admin = inspect(&redis.url()).await;
    let prefix = unique_prefix("acl");
    let url = |user: &str| format!("redis://{user}:pw-{user}@127.0.0.1:{}/", redis.port);
    let connect = |user: String| {
        let prefix = prefix.clone();
        async move {
            RedisNonceStore::builder(url(&user))
                .clock(support::store_clock())
                .prefix(prefix)
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await
        }
    };

    set_user(&admin, "all", &prefix, &NONCE_STORE_RIGHTS).await;
    let store = connect("all".to_owned())
        .await
        .expect("the documented rights are enough");
    let alice = key_id("alice");
    let nonce = Nonce::generate(&mut rand::rng());
    let record = NonceRecord::new(&alice, &nonce, T0, T0, T0 + 301);
    assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));
    assert_eq!(
        store.record(record).await.ok(),
        Some(NonceOutcome::Replayed)
    );
    assert_eq!(store.recorded(&alice, &nonce).await, Some(true));
    // A restarted Redis has no scripts: the store loads its own again.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin.clone())
        .await
        .expect("SCRIPT FLUSH");
    let other = Nonce::generate(&mut rand::rng());
    let record = NonceRecord::new(&alice, &other, T0, T0, T0 + 301);
    assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));

    for (i, missing) in NONCE_STORE_RIGHTS.iter().enumerate() {
        let user = format!("without-{i}");
        let rights = without(&NONCE_STORE_RIGHTS, missing);
        set_user(&admin, &user, &prefix, &rights).await;
        let e = connect(user.clone())
            .await
            .expect_err("a user without one of the rights is refused at connection");
        assert_eq!(
            e.kind(),
            RedisStoreErrorKind::Refused,
            "without {missing}: {e}"
        );
        assert!(!e.to_string().contains(&format!("pw-{user}")), "{e}");
        if *missing != "+ping" && *missing != "+set" {
            // Refused by the trial (PING and the epoch writes come before).
            assert!(
                e.to_string().contains("needs +evalsha +eval"),
                "without {missing}: {e}"
            );
        }
    }
}
