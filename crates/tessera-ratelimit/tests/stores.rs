//! The same exactness suite on every store: the in-memory one, and the Redis
//! script against a real redis-server (feature `redis`), so that both give
//! exactly the decisions of [`tessera_ratelimit::decide`].

use tessera_ratelimit::{Decision, MemoryRateStore, Plan, Rate, RateStore, Subject};

const T0: u64 = 1_700_000_000_000_000;

fn plan(name: &str, rate: &str, burst: u32) -> Plan {
    Plan::new(name, rate.parse::<Rate>().expect("rate"), burst).expect("plan")
}

fn key(id: &str) -> Subject<'_> {
    Subject::new("key", id)
}

async fn at(store: &dyn RateStore, who: &str, plan: &Plan, cost: u32, now: u64) -> Decision {
    store
        .decide(key(who), plan, cost, now)
        .await
        .expect("the store answers")
}

/// Burst, then exactly one request per interval; refusals cost nothing;
/// costs; a cost above the burst; many keys at once; window edges.
async fn exactness(store: &dyn RateStore, tag: &str) {
    let writes = plan("writes", "10/s", 20);
    let alice = format!("{tag}-alice");
    for i in 0..20 {
        let d = at(store, &alice, &writes, 1, T0).await;
        assert!(d.allowed, "burst request {i}");
        assert_eq!(d.remaining, 19 - i);
    }
    let refused = at(store, &alice, &writes, 1, T0).await;
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_micros, Some(100_000));
    assert_eq!(refused.reset_micros, 2_000_000);
    for _ in 0..50 {
        assert!(!at(store, &alice, &writes, 1, T0 + 50_000).await.allowed);
    }
    assert!(!at(store, &alice, &writes, 1, T0 + 99_999).await.allowed);
    assert!(at(store, &alice, &writes, 1, T0 + 100_000).await.allowed);
    assert!(!at(store, &alice, &writes, 1, T0 + 100_000).await.allowed);
    let mut allowed = 0;
    for ms in (200..10_000).step_by(25) {
        if at(store, &alice, &writes, 1, T0 + ms * 1_000).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 98, "one per 100 ms from 0.2 s to 9.9 s");

    // Costs above one, and one the burst can never hold.
    let bob = format!("{tag}-bob");
    assert_eq!(at(store, &bob, &writes, 10, T0).await.remaining, 10);
    assert_eq!(at(store, &bob, &writes, 10, T0).await.remaining, 0);
    assert_eq!(
        at(store, &bob, &writes, 10, T0).await.retry_after_micros,
        Some(1_000_000)
    );
    let never = at(store, &bob, &writes, 21, T0 + 10_000_000).await;
    assert!(!never.allowed);
    assert_eq!(never.retry_after_micros, None);

    // Many keys at once: each has its own budget.
    let reads = plan("reads", "100/m", 2);
    for i in 0..200 {
        let who = format!("{tag}-user-{i}");
        assert!(at(store, &who, &reads, 1, T0).await.allowed);
        assert!(at(store, &who, &reads, 1, T0).await.allowed);
        assert!(!at(store, &who, &reads, 1, T0).await.allowed);
    }
    // Another plan for the same subject is another budget.
    assert!(at(store, &alice, &reads, 1, T0).await.allowed);

    // Per-minute and per-hour edges.
    let carol = format!("{tag}-carol");
    let slow = plan("slow", "100/m", 1);
    assert!(at(store, &carol, &slow, 1, T0).await.allowed);
    assert!(!at(store, &carol, &slow, 1, T0 + 599_999).await.allowed);
    assert!(at(store, &carol, &slow, 1, T0 + 600_000).await.allowed);
    let hourly = plan("hourly", "1000/h", 1000);
    let dave = format!("{tag}-dave");
    for _ in 0..1000 {
        assert!(at(store, &dave, &hourly, 1, T0).await.allowed);
    }
    let d = at(store, &dave, &hourly, 1, T0).await;
    assert_eq!(d.retry_after_micros, Some(3_600_000));
    assert_eq!(d.reset_micros, 3_600_000_000);

    // A refund gives back exactly what one allowed request took; one
    // without state (never charged, or back to a full burst) changes nothing.
    let erin = format!("{tag}-erin");
    let small = plan("small", "1/m", 2);
    for _ in 0..2 {
        assert!(at(store, &erin, &small, 1, T0).await.allowed);
    }
    assert!(!at(store, &erin, &small, 1, T0).await.allowed);
    store
        .refund(key(&erin), &small, 1, T0)
        .await
        .expect("refund");
    assert!(at(store, &erin, &small, 1, T0).await.allowed);
    assert!(!at(store, &erin, &small, 1, T0).await.allowed);
    store
        .refund(key(&erin), &small, 2, T0)
        .await
        .expect("refund");
    assert_eq!(at(store, &erin, &small, 1, T0).await.remaining, 1);
    let frank = format!("{tag}-frank");
    store
        .refund(key(&frank), &small, 5, T0)
        .await
        .expect("refund");
    assert_eq!(at(store, &frank, &small, 1, T0).await.remaining, 1);
}

#[tokio::test]
async fn memory_store_is_exact() {
    exactness(&MemoryRateStore::default(), "memory").await;
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_subjects_and_frees_idle_ones() {
    // 6,400 subjects: 100 in each of the 64 shards.
    let store = MemoryRateStore::new(6_400);
    let p = plan("p", "1/s", 1);
    let mut full = None;
    for i in 0..10_000 {
        if let Err(e) = store.decide_now(key(&i.to_string()), &p, 1, T0) {
            full = Some((i, e));
            break;
        }
    }
    let (n, e) = full.expect("bounded");
    // The first shard to fill refuses; the others were nearly full.
    assert!((3_200..=6_400).contains(&n), "held {n}");
    assert!(e.to_string().contains("full"), "{e}");
    // A second later every subject is back to a full burst: room again.
    assert!(store.decide_now(key("late"), &p, 1, T0 + 1_000_000).is_ok());
}

#[cfg(feature = "redis")]
#[path = "../../tessera-server/tests/support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_is_exact_and_shared() {
    use tessera_ratelimit::RedisRateStore;
    let Some(redis) = redis_server::shared("redis_store_is_exact_and_shared") else {
        return;
    };
    let prefix = format!("tessera-rl-test-{:016x}", rand_u64());
    let store = RedisRateStore::connect(&redis.url(), &prefix)
        .await
        .expect("connect");
    // On a simulated clock: the caller's `now`.
    exactness(&store.clone().with_caller_clock(), "redis").await;

    // Two replicas (two connections) share one budget.
    let other = RedisRateStore::connect(&redis.url(), &prefix)
        .await
        .expect("second replica");
    let p = plan("shared", "1/s", 3);
    share_one_budget(&store, &other, &p).await;

    // Keys hold hashes, not ids, in one hash slot, and expire when idle.
    let name = store.key_for(key("erin"), &p);
    assert!(!name.contains("erin"), "{name}");
    assert!(name.starts_with(&format!("{prefix}:{{")), "{name}");
    let mut conn = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("inspect");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!((1..=3_001).contains(&pttl), "PTTL {pttl}");
}

#[cfg(feature = "redis")]
#[path = "../../tessera-server/tests/support/redis_cluster.rs"]
mod redis_cluster;

/// The same suite on a real three-primary Redis Cluster: one replica
/// connects with a `redis+cluster://` URL, another with the node list;
/// they share budgets, and subjects spread over every primary (the hash
/// tag keeps each decision in one slot).
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_cluster_store_is_exact_shared_and_spread() {
    use std::time::Duration;
    use tessera_ratelimit::RedisRateStore;
    use tessera_server::RedisConnection;
    let test = "redis_cluster_store_is_exact_shared_and_spread";
    let Some(nodes) = redis_cluster::shared_cluster(test) else {
        return;
    };
    let url = redis_cluster::cluster_url(&nodes);
    let prefix = format!("tessera-rl-cluster-{:016x}", rand_u64());
    let store = RedisRateStore::connect(&url, &prefix)
        .await
        .expect("connect with a redis+cluster:// URL")
        // Generous: 2 shared cores, a cluster and the other tests.
        .with_timeout(Duration::from_secs(1));
    exactness(&store.clone().with_caller_clock(), "redis-cluster").await;

    let connection =
        RedisConnection::open_cluster(&nodes, Duration::from_secs(1), Duration::from_secs(2))
            .await
            .expect("connect with the node list");
    assert!(connection.is_cluster());
    let other = RedisRateStore::new(connection, &prefix).with_timeout(Duration::from_secs(1));
    let p = plan("shared", "1/s", 3);
    share_one_budget(&store, &other, &p).await;
    let t = T0 + 100_000_000;

    // 300 subjects land on every primary.
    for i in 0..300 {
        assert!(at(&store, &format!("spread-{i}"), &p, 1, t).await.allowed);
    }
    for node in &nodes {
        let mut conn = redis::Client::open(node.as_str())
            .expect("node url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a node");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        assert!(
            keys.len() > 30,
            "{node} holds {} of 300 subjects",
            keys.len()
        );
    }

    // A cluster URL with a database is refused with a clear error.
    let err = RedisRateStore::connect(&format!("{url}/3"), &prefix)
        .await
        .expect_err("a cluster has database 0 only");
    assert!(err.to_string().contains("database 0"), "{err}");
}

/// `a` and `b` spend one budget of `p` (a burst of 3) for subject "erin".
#[cfg(feature = "redis")]
async fn share_one_budget(a: &dyn RateStore, b: &dyn RateStore, p: &Plan) {
    let t = T0 + 100_000_000;
    assert!(at(a, "erin", p, 1, t).await.allowed);
    assert!(at(b, "erin", p, 1, t).await.allowed);
    assert!(at(a, "erin", p, 1, t).await.allowed);
    assert!(!at(b, "erin", p, 1, t).await.allowed);
}

#[cfg(feature = "redis")]
fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()) << 32
}

/// A decision timeout above one second takes effect: a Redis that answers
/// after 1.5 s is waited for under a 4 s timeout (the connection's own
/// bound once cut every command at 1 s).
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_decision_timeout_above_one_second_takes_effect() {
    use std::time::{Duration, Instant};
    use tessera_ratelimit::RedisRateStore;
    let test = "a_decision_timeout_above_one_second_takes_effect";
    let Some(redis) = redis_server::RedisServer::spawn(test) else {
        return;
    };
    let store = RedisRateStore::connect_with_timeout(
        &redis.url(),
        "tessera-rl-slow",
        Duration::from_secs(4),
    )
    .await
    .expect("connect");
    let p = plan("slow-redis", "10/s", 10);
    assert!(at(&store, "ann", &p, 1, T0).await.allowed);
    redis.pause(true);
    let resume = std::thread::spawn({
        let pid = redis.pid().expect("running");
        move || {
            std::thread::sleep(Duration::from_millis(1500));
            let status = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
    });
    let started = Instant::now();
    let answered = store.decide(key("ann"), &p, 1, T0).await;
    resume.join().expect("resumed");
    assert!(
        answered.is_ok_and(|d| d.allowed),
        "the answer after {:?} was given up on",
        started.elapsed()
    );
}

/// Replicas share Redis's clock as they share the budget: one whose clock
/// is 200 s ahead gets no second burst, and the arrival time it is told is
/// on its own clock (its refusals are remembered for the plan's time, not
/// the skew's).
#[cfg(feature = "redis")]
#[tokio::test]
async fn replicas_with_skewed_clocks_share_one_budget_on_redis_time() {
    use std::time::{SystemTime, UNIX_EPOCH};
    use tessera_ratelimit::RedisRateStore;
    let test = "replicas_with_skewed_clocks_share_one_budget_on_redis_time";
    let Some(redis) = redis_server::shared(test) else {
        return;
    };
    let prefix = format!("tessera-rl-skew-{:016x}", rand_u64());
    let on_time = RedisRateStore::connect(&redis.url(), &prefix)
        .await
        .expect("connect");
    let ahead = RedisRateStore::connect(&redis.url(), &prefix)
        .await
        .expect("second replica");
    let now = || {
        u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_micros(),
        )
        .expect("fits")
    };
    let skew = 200_000_000;
    let p = plan("skewed", "1/m", 2);
    assert!(at(&on_time, "gina", &p, 1, now()).await.allowed);
    assert!(at(&on_time, "gina", &p, 1, now()).await.allowed);
    let asked_at = now() + skew;
    let refused = at(&ahead, "gina", &p, 1, asked_at).await;
    assert!(
        !refused.allowed,
        "a replica ahead by 200 s got a second burst"
    );
    // Two requests of a 1/m plan: back to a full burst within 2 minutes
    // of the replica's own now, whatever its skew.
    let until = refused.tat.saturating_sub(asked_at);
    assert!(
        (60_000_000..=120_000_000).contains(&until),
        "tat {until} µs ahead of the replica's clock"
    );
    // The other way round: a replica behind spends from the same budget.
    let hal_at = now() + skew;
    assert!(at(&ahead, "hal", &p, 1, hal_at).await.allowed);
    assert!(at(&ahead, "hal", &p, 1, hal_at).await.allowed);
    assert!(!at(&on_time, "hal", &p, 1, now()).await.allowed);
}

/// A store started while Redis was down says why it still cannot decide
/// with the latest reason: once Redis answers but its user may not write
/// the store's keys, the refusal, not the first "connection refused"; and
/// `check` (what a readiness probe calls) says the same. Once the
/// permission is granted, the store decides.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_started_in_the_background_reports_the_latest_reason() {
    use std::time::{Duration, Instant};
    use tessera_ratelimit::RedisRateStore;
    let test = "a_store_started_in_the_background_reports_the_latest_reason";
    // The default user may touch keys under `other:` only.
    let Some(mut redis) = redis_server::RedisServer::spawn_with(
        test,
        &["--user", "default", "on", "nopass", "~other:*", "+@all"],
    ) else {
        return;
    };
    redis.stop();
    let prefix = "tessera-rl-bg";
    let (store, first) =
        RedisRateStore::connect_in_background(&redis.url(), prefix, Duration::from_secs(1))
            .await
            .expect("starts while Redis is down");
    let first = first.expect("the first attempt failed").to_string();
    assert!(first.to_lowercase().contains("refused"), "{first}");
    redis.start();

    let p = plan("bg", "10/s", 10);
    let decide = || async { store.decide(key("ann"), &p, 1, T0).await };
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let error = decide().await.expect_err("not decided yet").to_string();
        if error.contains("no permissions") {
            break error;
        }
        assert!(Instant::now() < deadline, "still the first reason: {error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!reason.contains("Connection refused"), "{reason}");
    let checked = store.check().await.expect_err("cannot decide").to_string();
    assert!(checked.contains("no permissions"), "{checked}");

    // Granted: the background task connects within about a second.
    let granted = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "ACL",
            "SETUSER",
            "default",
            "~*",
        ])
        .output()
        .expect("redis-cli");
    assert!(granted.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while decide().await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.check().await.expect("decides");
}
