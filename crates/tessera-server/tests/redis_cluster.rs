//! `RedisNonceStore` on a real three-primary Redis Cluster on loopback:
//! replays across two verifiers, a race across two connections, nonces of
//! different key ids on different primaries, a primary killed under a
//! running verifier, and a primary paused (its slots fail at once once one
//! check timed out, the others go on).
//!
//! The cluster comes from `TESSERA_TEST_REDIS_CLUSTER` (node URLs, space
//! separated) or from `scripts/redis-cluster.sh start`, run by the test
//! process (stopped when it exits). The tests that kill or pause a primary
//! start their own. Without a cluster the tests print a skip and pass, except
//! with `TESSERA_REQUIRE_REDIS_CLUSTER=1` or `CI=true`, where they fail.
#![cfg(feature = "redis")]

#[path = "support/redis_acl.rs"]
mod redis_acl;
#[path = "support/redis_cluster.rs"]
mod redis_cluster_support;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use redis_acl::{set_user, without, NONCE_STORE_RIGHTS};
use redis_cluster_support::{own_cluster, shared_cluster};
use support::{key_id, secret, Harness, Spec, PUBLIC, T0};
use tessera_core::{KeyId, Nonce, SigningKey};
use tessera_server::{
    KeyMetadata, NonceOutcome, NonceRecord, NonceStore, NonceStoreErrorKind, RedisNonceStore,
};

fn unique_prefix(test: &str) -> String {
    format!("tessera-cluster-{test}-{:016x}", rand::random::<u64>())
}

/// A store on the cluster whose epochs are dated T0, like the harness's
/// requests.
async fn store(nodes: &[String], prefix: &str) -> RedisNonceStore {
    // Generous: 2 shared cores, several servers and a cluster.
    store_with_timeout(nodes, prefix, Duration::from_secs(2)).await
}

async fn store_with_timeout(nodes: &[String], prefix: &str, timeout: Duration) -> RedisNonceStore {
    RedisNonceStore::cluster_builder(nodes.iter().cloned())
        .prefix(prefix)
        .clock(support::store_clock())
        .timeout(timeout)
        .connect()
        .await
        .expect("connect to the cluster")
}

/// For the tests that stop a primary: a store with `timeout`, `count` key
/// ids (`name-0`...), the node owning each and the node owning the most,
/// and one nonce of each key id recorded.
async fn stopping_setup(
    nodes: &[String],
    name: &str,
    count: usize,
    timeout: Duration,
) -> (RedisNonceStore, Vec<KeyId>, Vec<usize>, usize) {
    let nonces = store_with_timeout(nodes, &unique_prefix(name), timeout).await;
    let key_ids: Vec<KeyId> = (0..count).map(|i| key_id(&format!("{name}-{i}"))).collect();
    let (owner, victim) = owners(nodes, &nonces, key_ids.iter()).await;
    for key_id in &key_ids {
        assert_eq!(
            record_new(&nonces, key_id).await.0.ok(),
            Some(NonceOutcome::Fresh)
        );
    }
    (nonces, key_ids, owner, victim)
}

/// Records a new nonce of `key_id` (created at T0), and how long it took.
async fn record_new(
    nonces: &RedisNonceStore,
    key_id: &KeyId,
) -> (
    Result<NonceOutcome, tessera_server::NonceStoreError>,
    Duration,
) {
    let nonce = Nonce::generate(&mut rand::rng());
    let started = std::time::Instant::now();
    let outcome = nonces
        .record(NonceRecord::new(key_id, &nonce, T0, T0, T0 + 301))
        .await;
    (outcome, started.elapsed())
}

async fn server(nonces: RedisNonceStore) -> Harness {
    Harness::start(move |b, local| {
        b.authority(local)
            .authority(PUBLIC)
            .nonce_store(nonces.clone())
    })
    .await
}

/// A plain (not cluster-aware) connection to one node.
async fn node_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("node url")
        .get_multiplexed_async_connection()
        .await
        .expect("node connection")
}

/// The keys under `prefix` that `url`'s node itself holds.
async fn keys_on_node(url: &str, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut node_connection(url).await)
        .await
        .expect("KEYS")
}

/// A key id the harness knows, and a signer for it.
fn extra_key(h: &[&Harness], name: &str) -> SigningKey {
    for harness in h {
        harness.keys.insert(
            key_id(name),
            &secret(7),
            KeyMetadata::new(name).with_scopes(["read"]),
        );
    }
    SigningKey::new(key_id(name), &secret(7))
}

/// Which node (an index into `nodes`) owns each key id's tag, the one that
/// holds its epoch key, and the victim: the node owning the most of them
/// (asserted not all).
async fn owners<'k>(
    nodes: &[String],
    nonces: &RedisNonceStore,
    key_ids: impl Iterator<Item = &'k KeyId>,
) -> (Vec<usize>, usize) {
    let mut owner = Vec::new();
    for key_id in key_ids {
        let epoch = nonces.epoch_key_for(key_id);
        let mut holder = None;
        for (n, node) in nodes.iter().enumerate() {
            let exists: Result<i64, _> = redis::cmd("EXISTS")
                .arg(&epoch)
                .query_async(&mut node_connection(node).await)
                .await;
            // A node that does not own the slot answers MOVED.
            if exists == Ok(1) {
                holder = Some(n);
            }
        }
        owner.push(holder.expect("a node holds the epoch key"));
    }
    let victim = (0..nodes.len())
        .max_by_key(|n| owner.iter().filter(|o| *o == n).count())
        .expect("nodes");
    assert!(
        owner.iter().any(|o| *o != victim),
        "all {} key ids on one node",
        owner.len()
    );
    (owner, victim)
}

fn signed_with(key: &SigningKey) -> http::Request<Vec<u8>> {
    let mut spec = Spec::new(Method::POST, PUBLIC).body(b"{\"cluster\":1}");
    spec.key = key.clone();
    spec.signed()
}

#[tokio::test]
async fn replay_to_another_verifier_is_rejected() {
    let Some(nodes) = shared_cluster("replay_to_another_verifier_is_rejected") else {
        return;
    };
    let prefix = unique_prefix("instances");
    let a = server(store(&nodes, &prefix).await).await;
    // The second verifier connects through a `redis+cluster://` URL naming
    // one seed node only: the client finds the other primaries itself.
    let seed = nodes[1]
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let other = RedisNonceStore::builder(format!("redis+cluster://{seed}"))
        .prefix(&prefix)
        .clock(support::store_clock())
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect with a redis+cluster URL");
    assert!(
        other.url().starts_with("Redis Cluster ["),
        "{}",
        other.url()
    );
    let b = server(other).await;

    let request = Spec::new(Method::POST, PUBLIC).body(b"{\"n\":1}").signed();
    a.send(&request).await.assert_ok();
    b.send(&request).await.assert_problem(401, "replayed");
    a.send(&request).await.assert_problem(401, "replayed");

    let request = Spec::new(Method::GET, PUBLIC).signed();
    b.send(&request).await.assert_ok();
    a.send(&request).await.assert_problem(401, "replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_across_two_connections_accepts_exactly_one() {
    let Some(nodes) = shared_cluster("race_across_two_connections_accepts_exactly_one") else {
        return;
    };
    let prefix = unique_prefix("race");
    let servers = Arc::new([
        server(store(&nodes, &prefix).await).await,
        server(store(&nodes, &prefix).await).await,
    ]);
    let keys: Vec<SigningKey> = (0..5)
        .map(|i| extra_key(&[&servers[0], &servers[1]], &format!("racer-{i}")))
        .collect();
    // One round per key id, so the rounds hit different slots.
    for (round, key) in keys.iter().enumerate() {
        let request = Arc::new(signed_with(key));
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

#[tokio::test]
async fn nonces_of_different_key_ids_spread_over_the_primaries() {
    let Some(nodes) = shared_cluster("nonces_spread_over_the_primaries") else {
        return;
    };
    let prefix = unique_prefix("spread");
    let store = store(&nodes, &prefix).await;

    // Every node holds the epoch keys of its own slots: 4096 in all, once each.
    let mut epochs = HashSet::new();
    for node in &nodes {
        let held: Vec<String> = keys_on_node(node, &prefix).await;
        assert!(
            held.iter().all(|k| k.ends_with(":since")),
            "{node}: {held:?}"
        );
        assert!(!held.is_empty(), "{node} holds no epoch key");
        for key in held {
            assert!(epochs.insert(key.clone()), "{key} on two nodes");
        }
    }
    assert_eq!(epochs.len(), 4096);

    // (nonce key, epoch key) -> (key id, nonce)
    let mut recorded = BTreeMap::new();
    for i in 0..64 {
        let key = key_id(&format!("spread-{i}"));
        let nonce = Nonce::generate(&mut rand::rng());
        let record = NonceRecord::new(&key, &nonce, T0, T0, T0 + 301);
        assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));
        recorded.insert(
            store.key_for(&key, &nonce),
            (store.epoch_key_for(&key), key, nonce),
        );
    }

    let mut found = 0;
    for node in &nodes {
        let mut conn = node_connection(node).await;
        let held: HashSet<String> = keys_on_node(node, &prefix).await.into_iter().collect();
        let nonces: Vec<&String> = held.iter().filter(|k| k.contains(":nonce:")).collect();
        assert!(
            !nonces.is_empty(),
            "{node} holds none of the 64 nonces: they did not spread"
        );
        for key in nonces {
            let (epoch, _, _) = recorded.get(key).expect("a key this test recorded");
            // The pair and its tag's epoch: one slot, so one node.
            assert!(held.contains(epoch), "{key} on {node} without {epoch}");
            let slots: (u16, u16) = redis::pipe()
                .cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(epoch)
                .query_async(&mut conn)
                .await
                .expect("CLUSTER KEYSLOT");
            assert_eq!(slots.0, slots.1, "{key} and {epoch}");
            found += 1;
        }
    }
    assert_eq!(found, recorded.len());

    // A second store (another verifier) sees each pair as replayed.
    let other = self::store(&nodes, &prefix).await;
    for (_, key, nonce) in recorded.values() {
        let record = NonceRecord::new(key, nonce, T0, T0, T0 + 301);
        assert_eq!(
            other.record(record).await.ok(),
            Some(NonceOutcome::Replayed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_fails_its_slots_closed() {
    let Some(nodes) = own_cluster("killed_primary_fails_its_slots_closed") else {
        return;
    };
    let prefix = unique_prefix("kill");

    // One primary with RDB snapshots on (Redis's default): a restart of it
    // would bring back its epoch keys without its last pairs, so the store
    // refuses the cluster and names that node, until snapshots are off.
    let config_set = |node: String, value: &'static str| async move {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("save")
            .arg(value)
            .query_async(&mut node_connection(&node).await)
            .await
            .expect("CONFIG SET save");
    };
    config_set(nodes[1].clone(), "3600 1").await;
    let refused = RedisNonceStore::cluster_builder(nodes.iter().cloned())
        .prefix(&prefix)
        .clock(support::store_clock())
        .connect()
        .await
        .expect_err("a primary with snapshots is refused");
    assert_eq!(
        refused.kind(),
        tessera_server::RedisStoreErrorKind::Persistence
    );
    let port = nodes[1]
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    assert!(
        refused.to_string().contains(&format!(":{port})")),
        "names the node: {refused}"
    );
    config_set(nodes[1].clone(), "").await;

    let nonces = RedisNonceStore::cluster_builder(nodes.iter().cloned())
        .prefix(&prefix)
        .clock(support::store_clock())
        // Generous, as in the other cluster tests: 48 checks run at once
        // while the client drops the dead node, on 2 shared cores; the
        // victim's slots fail on the closed connection, not on this timeout.
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect");
    let h = server(nonces.clone()).await;
    let keys: Vec<SigningKey> = (0..24)
        .map(|i| extra_key(&[&h], &format!("victim-{i}")))
        .collect();

    let (owner, victim) = owners(&nodes, &nonces, keys.iter().map(SigningKey::key_id)).await;

    // Accepted before the kill.
    let before: Vec<_> = keys.iter().map(signed_with).collect();
    for request in &before {
        h.send(request).await.assert_ok();
    }

    let mut victim_conn = node_connection(&nodes[victim]).await;
    let _: Result<(), _> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut victim_conn)
        .await;

    // Right away (well within cluster-node-timeout, 15 s): the victim's
    // slots fail closed, the others go on. New requests and replays alike.
    let replies = futures_util::future::join_all(keys.iter().zip(&before).map(|(key, old)| {
        let h = &h;
        async move {
            let fresh = signed_with(key);
            (h.send(&fresh).await, h.send(old).await)
        }
    }))
    .await;
    for (i, (fresh, replay)) in replies.into_iter().enumerate() {
        if owner[i] == victim {
            fresh.assert_problem(503, "store_unavailable");
            replay.assert_problem(503, "store_unavailable");
        } else {
            fresh.assert_ok();
            replay.assert_problem(401, "replayed");
        }
    }

    // At the store level too: an Unavailable error, never Fresh.
    let lost = keys
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.key_id().clone())
        .expect("a key id on the victim");
    let nonce = Nonce::generate(&mut rand::rng());
    let error = nonces
        .record(NonceRecord::new(&lost, &nonce, T0, T0, T0 + 301))
        .await
        .expect_err("the slot's primary is gone");
    assert_eq!(error.kind(), NonceStoreErrorKind::Unavailable, "{error}");

    // From then on its slots are refused at once, by the mark, for as long
    // as it is gone: the probe pings the dead node itself (a PING routed
    // by slot went to another node, which answered, and the marks came
    // and went many times a second).
    let settled = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let nonce = Nonce::generate(&mut rand::rng());
        let error = nonces
            .record(NonceRecord::new(&lost, &nonce, T0, T0, T0 + 301))
            .await
            .expect_err("the slot's primary is gone");
        if error.to_string().contains("the primary of hash slot") {
            break;
        }
        assert!(std::time::Instant::now() < settled, "not marked: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(33)).await;
        let nonce = Nonce::generate(&mut rand::rng());
        let error = nonces
            .record(NonceRecord::new(&lost, &nonce, T0, T0, T0 + 301))
            .await
            .expect_err("the slot's primary is gone");
        assert!(
            error.to_string().contains("the primary of hash slot"),
            "the mark came off while the node is dead: {error}"
        );
    }
}

/// The process id of the redis-server behind `url` (`INFO server`).
async fn node_pid(url: &str) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut node_connection(url).await)
        .await
        .expect("INFO server");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("process_id in INFO server")
}

/// Pauses process `pid` (`SIGSTOP`) and resumes it (`SIGCONT`) when
/// dropped, however the test ends.
struct Paused(u32);

impl Paused {
    fn new(pid: u32) -> Self {
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid}: {status}");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_primary_fails_its_slots_at_once() {
    let Some(nodes) = own_cluster("paused_primary_fails_its_slots_at_once") else {
        return;
    };
    let timeout = Duration::from_millis(1500);
    let (nonces, key_ids, owner, victim) = stopping_setup(&nodes, "paused", 24, timeout).await;
    let check = |key_id| record_new(&nonces, key_id);

    // Paused, not killed: connections stay open and nothing answers, as
    // with a primary that drops packets. Resumed well within
    // cluster-node-timeout (15 s), so the cluster itself notices nothing.
    let paused = Paused::new(node_pid(&nodes[victim]).await);
    let on_victim: Vec<&KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == victim)
        .map(|(k, _)| k)
        .collect();

    // The first check of the victim's slots waits its timeout.
    let (first, waited) = check(on_victim[0]).await;
    let error = first.expect_err("the primary is paused");
    assert_eq!(error.kind(), NonceStoreErrorKind::Unavailable, "{error}");
    assert!(waited >= timeout / 2, "waited {waited:?}");

    // Then every slot of that primary fails at once, once the probe has
    // read the cluster's map (within three timeouts), others go on.
    let deadline = std::time::Instant::now() + timeout * 4;
    loop {
        let (outcome, took) = check(on_victim[on_victim.len() - 1]).await;
        assert!(outcome.is_err(), "a paused primary's slot gave {outcome:?}");
        if took < timeout / 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the victim's other slots still wait ({took:?})"
        );
    }
    for (key_id, o) in key_ids.iter().zip(&owner) {
        let (outcome, took) = check(key_id).await;
        if *o == victim {
            let error = outcome.expect_err("paused");
            assert_eq!(error.kind(), NonceStoreErrorKind::Unavailable);
            assert!(
                error.to_string().contains("the primary of hash slot"),
                "says it failed at once: {error}"
            );
            assert!(took < timeout / 10, "{key_id}: refused after {took:?}");
        } else {
            assert_eq!(outcome.ok(), Some(NonceOutcome::Fresh), "{key_id}");
        }
    }

    // Resumed: the probe clears the marks within a few of its 100 ms
    // intervals (plus the settings re-check).
    drop(paused);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for key_id in &on_victim {
        loop {
            match check(key_id).await.0 {
                Ok(outcome) => {
                    assert_eq!(outcome, NonceOutcome::Fresh, "{key_id}");
                    break;
                }
                Err(e) => assert!(
                    std::time::Instant::now() < deadline,
                    "{key_id} still refused after the primary resumed: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One command on one node (not cluster-aware).
async fn on_node<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query_async(&mut node_connection(url).await)
        .await
        .unwrap_or_else(|e| panic!("{args:?} on {url}: {e}"))
}

/// A check that times out on a primary the client's map still names for a
/// slot that has moved marks no healthy primary down: the slot moved to a
/// node that answers, so only that slot is refused at once, and the
/// primaries that answer go on serving all their other slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_client_map_marks_no_healthy_primary() {
    let Some(nodes) = own_cluster("a_stale_client_map_marks_no_healthy_primary") else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let (nonces, key_ids, owner, _) = stopping_setup(&nodes, "stale", 48, timeout).await;

    // Move the slot of key 0's tag from its primary V to another, H,
    // behind the client's back (it never touches that slot meanwhile).
    let (v, moved) = (owner[0], &key_ids[0]);
    let h = (0..nodes.len())
        .find(|n| *n != v && owner.contains(n))
        .expect("another primary owning some of the key ids");
    let slot: i64 = on_node(
        &nodes[v],
        &["CLUSTER", "KEYSLOT", &nonces.epoch_key_for(moved)],
    )
    .await;
    let slot = slot.to_string();
    let v_id: String = on_node(&nodes[v], &["CLUSTER", "MYID"]).await;
    let h_id: String = on_node(&nodes[h], &["CLUSTER", "MYID"]).await;
    let h_port = nodes[h]
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let () = on_node(
        &nodes[h],
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &v_id],
    )
    .await;
    let () = on_node(
        &nodes[v],
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &h_id],
    )
    .await;
    let keys: Vec<String> = on_node(&nodes[v], &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]).await;
    for key in &keys {
        let _: redis::Value = on_node(
            &nodes[v],
            &["MIGRATE", "127.0.0.1", &h_port, key, "0", "5000"],
        )
        .await;
    }
    for node in &nodes {
        let () = on_node(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &h_id]).await;
    }

    let paused = Paused::new(node_pid(&nodes[v]).await);
    // Sent to V by the stale map: it waits its timeout and fails closed.
    record_new(&nonces, moved)
        .await
        .0
        .expect_err("sent to the paused node");
    // Time for the probe: map read, V's successor for the slot pinged.
    tokio::time::sleep(timeout * 2).await;
    for (key_id, o) in key_ids.iter().zip(&owner).skip(1) {
        if *o == h {
            assert_eq!(
                record_new(&nonces, key_id).await.0.ok(),
                Some(NonceOutcome::Fresh),
                "{key_id} on the healthy primary that took the slot"
            );
        }
    }
    assert!(
        record_new(&nonces, moved).await.0.is_err(),
        "still sent to the paused node"
    );
    drop(paused);
    // V answers again (MOVED for the slot): the client learns the new map.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while record_new(&nonces, moved).await.0.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the moved slot stays refused after V resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A dead primary's slots handed to another (as a failover does) serve
/// again, without the dead node coming back: the probe watching it reads
/// the map again and lets the checks through, and the client, whose
/// connection to the dead node is broken, learns the new owner. The tags
/// moved have lost their epochs with the node, so what was signed before
/// is refused with store_reset (`Forgotten`), never accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primarys_slots_given_to_another_serve_again() {
    let Some(nodes) = own_cluster("a_dead_primarys_slots_given_to_another_serve_again") else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let (nonces, victim, heir, slots, lost) = handover_setup(&nodes, "handover", timeout).await;
    let mut victim_conn = node_connection(&nodes[victim]).await;
    let _: Result<(), _> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut victim_conn)
        .await;
    until_marked(&nonces, &lost).await;

    hand_over(&nodes, victim, heir, &slots).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match record_new(&nonces, &lost).await.0 {
            Ok(outcome) => {
                assert!(
                    matches!(outcome, NonceOutcome::Forgotten { .. }),
                    "its tag's epoch died with the node: {outcome:?}"
                );
                break;
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the slots handed over are still refused: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The slots node `victim` owns, as node `asked` sees them (its line of
/// CLUSTER NODES: `first-last` or `slot` after the eighth field).
async fn slots_of(nodes: &[String], victim: usize, asked: usize) -> Vec<u16> {
    let victim_id: String = on_node(&nodes[victim], &["CLUSTER", "MYID"]).await;
    let table: String = on_node(&nodes[asked], &["CLUSTER", "NODES"]).await;
    let line = table
        .lines()
        .find(|line| line.starts_with(&victim_id))
        .expect("the victim in CLUSTER NODES");
    let slots: Vec<u16> = line
        .split_whitespace()
        .skip(8)
        .flat_map(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let first: u16 = first.parse().expect("slot");
            let last: u16 = last.parse().expect("slot");
            first..=last
        })
        .collect();
    assert!(!slots.is_empty(), "the victim owns slots: {line}");
    slots
}

/// Gives `slots` to node `heir` on every node but `victim` (stopped), as a
/// failover does.
async fn hand_over(nodes: &[String], victim: usize, heir: usize, slots: &[u16]) {
    let heir_id: String = on_node(&nodes[heir], &["CLUSTER", "MYID"]).await;
    for (n, node) in nodes.iter().enumerate() {
        if n == victim {
            continue;
        }
        let mut pipe = redis::pipe();
        for slot in slots {
            pipe.cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(*slot)
                .arg("NODE")
                .arg(&heir_id)
                .ignore();
        }
        let () = pipe
            .query_async(&mut node_connection(node).await)
            .await
            .expect("CLUSTER SETSLOT");
    }
    let _: redis::Value = on_node(&nodes[heir], &["CLUSTER", "BUMPEPOCH"]).await;
}

/// A primary that is only silent (paused) keeps its slots refused even when
/// the map gives them to another: the client would go on sending it their
/// checks, which it could answer `Fresh` when it wakes, just before it
/// learns it was replaced and drops what it wrote (a nonce then accepted
/// twice). Its marks stay until it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_primarys_slots_stay_refused_when_given_to_another() {
    let Some(nodes) = own_cluster("a_silent_primarys_slots_stay_refused_when_given_to_another")
    else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let (nonces, victim, heir, slots, lost) = handover_setup(&nodes, "silent", timeout).await;
    let paused = Paused::new(node_pid(&nodes[victim]).await);
    until_marked(&nonces, &lost).await;
    hand_over(&nodes, victim, heir, &slots).await;
    // Past the probe's map re-reads (every second) and the settings
    // re-check a let-go would run first (it waits for the paused node).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..100 {
        let error = record_new(&nonces, &lost)
            .await
            .0
            .expect_err("still paused");
        assert!(
            error.to_string().contains("the primary of hash slot"),
            "let go while its primary is only silent: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(paused);
}

/// For the tests that hand a stopped primary's slots to another:
/// [`stopping_setup`], the heir (another node), the victim's slots, and a
/// key id on the victim.
async fn handover_setup(
    nodes: &[String],
    name: &str,
    timeout: Duration,
) -> (RedisNonceStore, usize, usize, Vec<u16>, KeyId) {
    let (nonces, key_ids, owner, victim) = stopping_setup(nodes, name, 24, timeout).await;
    let heir = (0..nodes.len())
        .find(|n| *n != victim)
        .expect("another node");
    let slots = slots_of(nodes, victim, heir).await;
    let lost = key_ids
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.clone())
        .expect("a key id on the victim");
    (nonces, victim, heir, slots, lost)
}

/// Waits (at most 5 s) until the checks of `key_id` are refused by the
/// down mark of its slot.
async fn until_marked(nonces: &RedisNonceStore, key_id: &KeyId) {
    let marked = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let error = record_new(nonces, key_id)
            .await
            .0
            .expect_err("its primary is stopped");
        if error.to_string().contains("the primary of hash slot") {
            return;
        }
        assert!(std::time::Instant::now() < marked, "never marked: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Users and their rights are set node by node: with the documented rights
/// (and `+cluster|slots`) on every node the store connects and checks on
/// every primary; a user that lacks `EVALSHA` on one primary only is
/// refused at connection (`Refused`, naming what it needs, never the
/// password), not on each check whose slot that primary owns.
#[tokio::test]
async fn a_user_without_a_right_on_one_primary_is_refused_at_connection() {
    let test = "a_user_without_a_right_on_one_primary_is_refused_at_connection";
    let Some(nodes) = shared_cluster(test) else {
        return;
    };
    let prefix = unique_prefix("acl");
    let suffix = format!("{:08x}", rand::random::<u32>());
    let (all, part) = (format!("acl-all-{suffix}"), format!("acl-part-{suffix}"));
    let mut rights = NONCE_STORE_RIGHTS.to_vec();
    rights.push("+cluster|slots");
    for (i, node) in nodes.iter().enumerate() {
        let admin = node_connection(node).await;
        set_user(&admin, &all, &prefix, &rights).await;
        let partial = if i == 1 {
            without(&rights, "+evalsha")
        } else {
            rights.clone()
        };
        set_user(&admin, &part, &prefix, &partial).await;
    }
    let as_user = |user: &str| -> Vec<String> {
        nodes
            .iter()
            .map(|n| n.replace("redis://", &format!("redis://{user}:pw-{user}@")))
            .collect()
    };
    let connect = |user: &str| {
        RedisNonceStore::cluster_builder(as_user(user))
            .prefix(&prefix)
            .clock(support::store_clock())
            .timeout(Duration::from_secs(2))
            .connect()
    };

    let store = connect(&all)
        .await
        .expect("the documented rights are enough");
    // Key ids on every primary.
    for i in 0..32 {
        let id = key_id(&format!("acl-{i}"));
        let nonce = Nonce::generate(&mut rand::rng());
        let record = NonceRecord::new(&id, &nonce, T0, T0, T0 + 301);
        assert_eq!(store.record(record).await.ok(), Some(NonceOutcome::Fresh));
        assert_eq!(
            store.record(record).await.ok(),
            Some(NonceOutcome::Replayed)
        );
    }

    // Primaries that forgot the script (restarted, or promoted replicas,
    // which Redis does not copy scripts to): loaded again, slot by slot.
    for node in &nodes {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut node_connection(node).await)
            .await
            .expect("SCRIPT FLUSH");
    }
    for i in 0..32 {
        let id = key_id(&format!("acl-{i}"));
        assert_eq!(
            record_new(&store, &id).await.0.ok(),
            Some(NonceOutcome::Fresh)
        );
    }

    let e = connect(&part)
        .await
        .expect_err("a user without EVALSHA on one primary is refused");
    assert_eq!(
        e.kind(),
        tessera_server::RedisStoreErrorKind::Refused,
        "{e}"
    );
    assert!(e.to_string().contains("needs +evalsha +eval"), "{e}");
    assert!(!e.to_string().contains(&format!("pw-{part}")), "{e}");

    for node in &nodes {
        let _: () = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&all)
            .arg(&part)
            .query_async(&mut node_connection(node).await)
            .await
            .expect("ACL DELUSER");
    }
}

/// A primary that falls silent is failed over while this verifier's first
/// check of its slots waits. The probe then reads a map that names the
/// heir (which answers), but the client, whose map is older, goes on
/// sending those slots' checks to the silent node: that node is the one
/// held (every slot it owned by the remembered map), so that it cannot
/// answer `Fresh`, on waking, for a nonce the heir has already accepted
/// (review 16; it did before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failed_over_while_silent_is_held_by_the_map_the_client_uses() {
    let Some(nodes) =
        own_cluster("a_primary_failed_over_while_silent_is_held_by_the_map_the_client_uses")
    else {
        return;
    };
    let timeout = Duration::from_millis(2000);
    let Failover {
        first,
        prefix,
        on,
        victim,
        heir,
        slots,
    } = failover_setup(&nodes, "failedover", timeout).await;
    let on_victim = &on[victim];

    let paused = Paused::new(node_pid(&nodes[victim]).await);
    // A check of one of its slots is on its way to the silent node...
    let waiting = {
        let (first, k) = (first.clone(), on_victim[0].clone());
        tokio::spawn(async move { record_new(&first, &k).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...when it is failed over (as a replica's promotion does).
    hand_over(&nodes, victim, heir, &slots).await;
    // Another verifier instance, started after the failover (its map names
    // the heir), accepts a nonce of another key id on those slots.
    let twice = on_victim[2].clone();
    let nonce = accepted_after_failover(&nodes, victim, &prefix, timeout, &twice).await;
    let (outcome, took) = waiting.await.expect("task");
    eprintln!("the first check of a victim slot: {took:?}: {outcome:?}");
    assert!(outcome.is_err());
    // Time for its probe: map read (the heir owns the slot, and answers).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The same nonce through the first verifier, in flight to the silent
    // node when it wakes.
    checked_again_on_waking(&first, &twice, &nonce, paused).await;
}

/// `total_connections_received` of one node (INFO stats).
async fn connections_received(url: &str) -> u64 {
    let info: String = on_node(url, &["INFO", "stats"]).await;
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received")
}

/// While a killed primary is watched, its probe asks it over connections
/// of its own: sent through the cluster client by address to a node the
/// client holds no connection to, a `PING` made the `redis` crate
/// reconnect the whole client to its seed nodes, every probe round (new
/// connections to the healthy primaries, every slot's checks held
/// meanwhile; review 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_dead_primary_does_not_reconnect_the_whole_client() {
    let Some(nodes) = own_cluster("a_watched_dead_primary_does_not_reconnect_the_whole_client")
    else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let (nonces, key_ids, owner, victim) = stopping_setup(&nodes, "deadwatch", 24, timeout).await;
    let healthy = (0..nodes.len()).find(|n| *n != victim).expect("healthy");
    let lost = key_ids
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.clone())
        .expect("on the victim");
    let fine: Vec<KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == healthy)
        .map(|(k, _)| k.clone())
        .collect();
    let before_kill = connections_received(&nodes[healthy]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = connections_received(&nodes[healthy]).await - before_kill;
    let _: Result<(), _> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut node_connection(&nodes[victim]).await)
        .await;
    until_marked(&nonces, &lost).await;
    let start = connections_received(&nodes[healthy]).await;
    // 3 s of checks on a healthy primary's slots meanwhile.
    let mut slowest = Duration::ZERO;
    let mut failed = 0;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        for key_id in &fine {
            let (outcome, took) = record_new(&nonces, key_id).await;
            slowest = slowest.max(took);
            failed += usize::from(outcome.is_err());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let made = connections_received(&nodes[healthy]).await - start;
    eprintln!(
        "healthy node: {idle} connections in 2 s before the kill (test's own INFO calls included), \
         {made} in 3 s while the dead primary is watched; healthy checks: slowest {slowest:?}, {failed} failed"
    );
    assert!(
        made < 10,
        "{made} new connections to a healthy primary in 3 s while a dead one is watched"
    );
}

/// A silent primary V is watched (its slots held by probe P1). V is failed
/// over to H, which then stalls briefly (a check of one of H's own slots
/// times out): its probe P2 reads the new map, in which H owns V's old
/// slots as well, finds H silent and watches it over those too. H answers
/// again and P2 ends: V's old slots stay held, since V is still silent and
/// the client still sends them to V. (With one mark per slot, P2 took P1's
/// over and cleared them, and V, waking, answered `Fresh` for a nonce the
/// heir had accepted; review 17.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_heirs_watch_does_not_free_a_silent_primarys_slots() {
    let Some(nodes) = own_cluster("an_heirs_watch_does_not_free_a_silent_primarys_slots") else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let Failover {
        first,
        prefix,
        on,
        victim,
        heir,
        slots,
    } = failover_setup(&nodes, "heirwatch", timeout).await;
    let on_victim = &on[victim];
    let on_heir = &on[heir];
    assert!(!on_heir.is_empty(), "a key id on the heir");

    // V falls silent; a check of one of its slots times out: V is watched.
    let paused_victim = Paused::new(node_pid(&nodes[victim]).await);
    until_marked(&first, &on_victim[0]).await;
    // V is failed over to H.
    hand_over(&nodes, victim, heir, &slots).await;
    let twice = on_victim[2].clone();
    let nonce = accepted_after_failover(&nodes, victim, &prefix, timeout, &twice).await;
    // Still refused through the first verifier: V is watched.
    let e = first
        .record(NonceRecord::new(&twice, &nonce, T0, T0, T0 + 301))
        .await
        .expect_err("V's slot is held");
    assert!(e.to_string().contains("the primary of hash slot"), "{e}");

    // H stalls for a moment: a check of one of its own slots times out,
    // and its probe finds H silent and watches it.
    {
        let _paused_heir = Paused::new(node_pid(&nodes[heir]).await);
        until_marked(&first, &on_heir[0]).await;
        // Past its probe's PING to H (one timeout): H is watched.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // H answers again; its probe re-checks the settings (bounded by 5 s,
    // V in the client's map is silent) and finishes.
    let cleared = std::time::Instant::now();
    loop {
        let e = first
            .record(NonceRecord::new(
                &on_victim[1],
                &Nonce::generate(&mut rand::rng()),
                T0,
                T0,
                T0 + 301,
            ))
            .await;
        let held = matches!(&e, Err(e) if e.to_string().contains("the primary of hash slot"));
        if !held {
            eprintln!(
                "a slot of the silent V is no longer held {:?} after H resumed: {e:?}",
                cleared.elapsed()
            );
            break;
        }
        if cleared.elapsed() > Duration::from_secs(12) {
            eprintln!("V's slots still held 12 s after H resumed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The heir's nonce through the first verifier, in flight when V wakes.
    checked_again_on_waking(&first, &twice, &nonce, paused_victim).await;
}

/// A watched silent primary whose client connection then breaks (a TCP
/// timeout or a reset by a middlebox; here `ss -K`): the healthy
/// primaries' slots go on serving for 14 s, across the store's own settings
/// re-check (every 10 s). Sent through the cluster client, a probe's
/// `PING` by address (review 16) and the re-check's `CONFIG GET` to every
/// primary (review 17) found no connection to the silent node, and the
/// `redis` crate reconnected the whole client to its seeds, the silent one
/// included, holding every check meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_primarys_broken_connection_stalls_no_other_slot() {
    let Some(nodes) = own_cluster("a_silent_primarys_broken_connection_stalls_no_other_slot")
    else {
        return;
    };
    let timeout = Duration::from_millis(250);
    let (nonces, key_ids, owner, victim) =
        stopping_setup(&nodes, "recheckbroken", 24, timeout).await;
    let lost = key_ids
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.clone())
        .expect("on the victim");
    let fine: Vec<KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o != victim)
        .map(|(k, _)| k.clone())
        .collect();
    let port = nodes[victim]
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let paused = Paused::new(node_pid(&nodes[victim]).await);
    until_marked(&nonces, &lost).await;
    let status = std::process::Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &format!(":{port}")])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ss -K (iproute2)");
    assert!(status.success(), "ss -K: {status}");
    let started = std::time::Instant::now();
    let mut last_failure = None;
    let (mut failed, mut total) = (0, 0);
    let mut failures: Vec<(Duration, String)> = Vec::new();
    let window: u64 = 14;
    let mut failed_seconds = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(window) {
        for key_id in &fine {
            let (outcome, _) = record_new(&nonces, key_id).await;
            total += 1;
            if let Err(e) = outcome {
                failed += 1;
                failed_seconds.insert(started.elapsed().as_secs());
                last_failure = Some(started.elapsed());
                if failures.len() < 3 {
                    failures.push((started.elapsed(), e.to_string()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sockets = |args: &[&str]| -> String {
        let out = std::process::Command::new("ss")
            .args(args)
            .output()
            .expect("ss");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let fin_wait = sockets(&[
        "-tanH",
        "state",
        "fin-wait-2",
        "dport",
        "=",
        &format!(":{port}"),
    ]);
    let listen = sockets(&["-ltnH", "sport", "=", &format!(":{port}")]);
    eprintln!(
        "to the silent node after {window} s: {} sockets in FIN-WAIT-2; its listen socket (Recv-Q = connections waiting to be accepted): {}",
        fin_wait.lines().count(),
        listen.trim()
    );
    drop(paused);
    eprintln!("seconds (since the break) with failures: {failed_seconds:?}");
    eprintln!("healthy primaries' checks over {window} s: {failed} of {total} failed; last failure at {last_failure:?}; first: {failures:?}");
    assert_eq!(
        failed, 0,
        "healthy slots refused because one primary is silent"
    );
}

/// The store's last map is not the client's map (review 17). V falls
/// silent with a request of this verifier pending on it (here `recorded`,
/// an EXISTS; in production the 10 s settings re-check's CONFIG GET), and
/// is failed over to H. An unrelated probe (a check of W's slot that timed
/// out while W answered PING: `CLIENT PAUSE WRITE`) reads the fresh map and
/// remembers it. Then a check of a V slot times out: its probe asks every
/// owner any map seen named for the slot, V among them, and holds V's
/// slots, which the client goes on sending to V. (Asking only the owner by
/// the last map and the new one, both H, it held nothing of V, and V,
/// waking, answered `Fresh` for a nonce the heir had accepted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_read_after_the_failover_does_not_hide_the_silent_primary() {
    let Some(nodes) = own_cluster("a_map_read_after_the_failover_does_not_hide_the_silent_primary")
    else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let Failover {
        first,
        prefix,
        on,
        victim,
        heir,
        slots,
    } = failover_setup(&nodes, "mapafter", timeout).await;
    let on_victim = &on[victim];
    let third = (0..nodes.len())
        .find(|n| *n != victim && *n != heir)
        .expect("third");
    let on_third = &on[third];
    assert!(!on_third.is_empty(), "a key id on the third node");

    let paused = Paused::new(node_pid(&nodes[victim]).await);
    // A request of this verifier pending on V before the failover.
    let pending = {
        let (first, k) = (first.clone(), on_victim[0].clone());
        let n = Nonce::generate(&mut rand::rng());
        tokio::spawn(async move { first.recorded(&k, &n).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    hand_over(&nodes, victim, heir, &slots).await;
    let twice = on_victim[2].clone();
    let nonce = accepted_after_failover(&nodes, victim, &prefix, timeout, &twice).await;
    assert_eq!(pending.await.expect("task"), None);
    // W stalls writes for a moment (it answers PING): one check of W's
    // slot times out, and its probe remembers the fresh map.
    let _: () = on_node(&nodes[third], &["CLIENT", "PAUSE", "1500", "WRITE"]).await;
    let (outcome, took) = record_new(&first, &on_third[0]).await;
    eprintln!("a check of W's slot during CLIENT PAUSE WRITE: {took:?}: {outcome:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A check of one of V's slots times out now.
    let (outcome, took) = record_new(&first, &on_victim[1]).await;
    eprintln!("a check of another V slot: {took:?}: {outcome:?}");
    assert!(outcome.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The heir's nonce through this verifier, in flight when V wakes.
    checked_again_on_waking(&first, &twice, &nonce, paused).await;
}

/// For the tests that fail a silent primary over: a store with `timeout`
/// on `nodes` (prefix `name-…`), 24 key ids with one nonce each recorded,
/// the key ids on each node, the node owning the most (the victim, with at
/// least three) and another node (its heir).
struct Failover {
    first: RedisNonceStore,
    prefix: String,
    on: Vec<Vec<KeyId>>,
    victim: usize,
    heir: usize,
    /// The victim's slots, to hand over to the heir.
    slots: Vec<u16>,
}

async fn failover_setup(nodes: &[String], name: &str, timeout: Duration) -> Failover {
    let prefix = unique_prefix(name);
    let first = store_with_timeout(nodes, &prefix, timeout).await;
    let key_ids: Vec<KeyId> = (0..24).map(|i| key_id(&format!("{name}-{i}"))).collect();
    let (owner, victim) = owners(nodes, &first, key_ids.iter()).await;
    for key_id in &key_ids {
        assert_eq!(
            record_new(&first, key_id).await.0.ok(),
            Some(NonceOutcome::Fresh)
        );
    }
    let on: Vec<Vec<KeyId>> = (0..nodes.len())
        .map(|node| {
            key_ids
                .iter()
                .zip(&owner)
                .filter(|(_, o)| **o == node)
                .map(|(k, _)| k.clone())
                .collect()
        })
        .collect();
    assert!(
        on[victim].len() >= 3,
        "{} key ids on the victim",
        on[victim].len()
    );
    let heir = (0..nodes.len()).find(|n| *n != victim).expect("heir");
    let slots = slots_of(nodes, victim, heir).await;
    Failover {
        first,
        prefix,
        on,
        victim,
        heir,
        slots,
    }
}

/// A nonce of `key_id` accepted through another verifier, started after
/// `victim` was failed over (its seeds are the other nodes, so its map
/// names the heir).
async fn accepted_after_failover(
    nodes: &[String],
    victim: usize,
    prefix: &str,
    timeout: Duration,
    key_id: &KeyId,
) -> Nonce {
    let others: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != victim)
        .map(|(_, u)| u.clone())
        .collect();
    let second = store_with_timeout(&others, prefix, timeout).await;
    let nonce = Nonce::generate(&mut rand::rng());
    assert_eq!(
        second
            .record(NonceRecord::new(key_id, &nonce, T0, T0, T0 + 301))
            .await
            .ok(),
        Some(NonceOutcome::Fresh),
        "accepted by the heir through the second verifier"
    );
    nonce
}

/// Checks `nonce` of `key_id`, which the heir accepted, through `first`,
/// in flight when the silent old primary (`paused`) wakes: it must not be
/// accepted a second time.
async fn checked_again_on_waking(
    first: &RedisNonceStore,
    key_id: &KeyId,
    nonce: &Nonce,
    paused: Paused,
) {
    let in_flight = {
        let (first, key_id, nonce) = (first.clone(), key_id.clone(), nonce.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = first
                .record(NonceRecord::new(&key_id, &nonce, T0, T0, T0 + 301))
                .await;
            (outcome, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(paused);
    let (outcome, took) = in_flight.await.expect("task");
    eprintln!("the heir's nonce, checked again through the first verifier: {took:?}: {outcome:?}");
    assert_ne!(
        outcome.as_ref().ok(),
        Some(&NonceOutcome::Fresh),
        "a nonce accepted twice: by the heir (another verifier), then by the woken old primary"
    );
}

/// A healthy primary that lost the script (restarted empty, a promoted
/// replica: Redis 7 does not copy scripts to replicas; here `SCRIPT FLUSH`)
/// while another primary is silent with its connection broken: the healthy
/// slots go on serving. The `redis` crate's own load, on `NOSCRIPT`, went
/// to every node through the shared client and stalled every check
/// (review 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_loaded_again_stalls_no_healthy_slot() {
    let Some(nodes) = own_cluster("a_script_loaded_again_stalls_no_healthy_slot") else {
        return;
    };
    let timeout = Duration::from_millis(250);
    let (nonces, key_ids, owner, victim) = stopping_setup(&nodes, "noscript", 24, timeout).await;
    let lost = key_ids
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.clone())
        .expect("on the victim");
    let flushed = (0..nodes.len())
        .find(|n| *n != victim && owner.contains(n))
        .expect("another owner");
    let port = nodes[victim]
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let paused = Paused::new(node_pid(&nodes[victim]).await);
    until_marked(&nonces, &lost).await;
    let status = std::process::Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &format!(":{port}")])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ss -K (iproute2)");
    assert!(status.success(), "ss -K: {status}");
    let _: String = on_node(&nodes[flushed], &["SCRIPT", "FLUSH"]).await;
    let started = std::time::Instant::now();
    let mut per_node: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
    let mut first_errors: Vec<(Duration, usize, String)> = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        for (key_id, o) in key_ids.iter().zip(&owner) {
            if *o == victim {
                continue;
            }
            let (outcome, _) = record_new(&nonces, key_id).await;
            let entry = per_node.entry(*o).or_default();
            entry.1 += 1;
            if let Err(e) = outcome {
                entry.0 += 1;
                if first_errors.len() < 4 {
                    first_errors.push((started.elapsed(), *o, e.to_string()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(paused);
    eprintln!("victim {victim}, flushed {flushed}; per node (failed, total): {per_node:?}; first errors: {first_errors:?}");
    let failed: u32 = per_node.values().map(|(f, _)| f).sum();
    assert!(failed <= 1, "healthy slots refused: {per_node:?}");
}

/// `recorded` (the read-only EXISTS the verifier sends before
/// admission, on every request when rate limits are configured) does not
/// wait on a held slot's silent primary: it answers at once, as the check
/// does (it waited the whole timeout; review 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_of_a_held_slot_answers_at_once() {
    let Some(nodes) = own_cluster("recorded_of_a_held_slot_answers_at_once") else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let (nonces, key_ids, owner, victim) =
        stopping_setup(&nodes, "recordedheld", 24, timeout).await;
    let lost = key_ids
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == victim)
        .map(|(k, _)| k.clone())
        .expect("on the victim");
    let paused = Paused::new(node_pid(&nodes[victim]).await);
    until_marked(&nonces, &lost).await;
    let mut took = Vec::new();
    for _ in 0..3 {
        let nonce = Nonce::generate(&mut rand::rng());
        let started = std::time::Instant::now();
        let answer = nonces.recorded(&lost, &nonce).await;
        took.push((started.elapsed(), answer));
    }
    let (check, check_took) = record_new(&nonces, &lost).await;
    drop(paused);
    eprintln!(
        "recorded() of a held slot: {took:?}; record(): {check_took:?} {:?}",
        check.err().map(|e| e.to_string())
    );
    assert!(
        took.iter().all(|(t, _)| *t < Duration::from_millis(200)),
        "recorded() waited on a held slot's silent primary: {took:?}"
    );
}

/// The maps the store read are not the client's map (review 18). Slots are
/// resharded from X to V after connection (the client learns V from a
/// `MOVED`; no probe reads that map). V falls silent and is failed over to
/// H before this verifier's first check of those slots times out: its
/// probe asks X (the only owner any map it read named) and H (the fresh
/// map's), and both answer; the ranges it then asks through the client by
/// slot find V's, which are held. (Before, nothing of V was held, and V,
/// waking, answered `Fresh` for a nonce the heir had accepted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharded_slots_silent_new_owner_is_held() {
    let Some(nodes) = own_cluster("a_resharded_slots_silent_new_owner_is_held") else {
        return;
    };
    let timeout = Duration::from_millis(2000);
    let prefix = unique_prefix("resharded");
    let first = store_with_timeout(&nodes, &prefix, timeout).await;
    let key_ids: Vec<KeyId> = (0..24).map(|i| key_id(&format!("resharded-{i}"))).collect();
    let (owner, x) = owners(&nodes, &first, key_ids.iter()).await;
    let on_x: Vec<KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == x)
        .map(|(k, _)| k.clone())
        .take(3)
        .collect();
    assert_eq!(on_x.len(), 3);
    let v = (0..nodes.len()).find(|n| *n != x).expect("v");
    let h = (0..nodes.len()).find(|n| *n != x && *n != v).expect("h");
    let mut moved: Vec<u16> = Vec::new();
    for k in &on_x {
        let slot: i64 = on_node(&nodes[x], &["CLUSTER", "KEYSLOT", &first.epoch_key_for(k)]).await;
        moved.push(u16::try_from(slot).expect("slot"));
    }
    moved.sort();
    moved.dedup();
    // Resharding X -> V after connection (X learns it by gossip, and drops
    // its keys of those slots).
    hand_over(&nodes, x, v, &moved).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Another instance writes the missing epochs (now on V).
    let _writer = store_with_timeout(&nodes, &prefix, timeout).await;
    // The first verifier's client learns V from X's MOVED.
    for k in &on_x {
        assert_eq!(
            record_new(&first, k).await.0.ok(),
            Some(NonceOutcome::Fresh)
        );
    }
    let v_slots = slots_of(&nodes, v, h).await;
    let paused = Paused::new(node_pid(&nodes[v]).await);
    let waiting = {
        let (first, k) = (first.clone(), on_x[0].clone());
        tokio::spawn(async move { record_new(&first, &k).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    hand_over(&nodes, v, h, &v_slots).await;
    let twice = on_x[2].clone();
    let nonce = accepted_after_failover(&nodes, v, &prefix, timeout, &twice).await;
    let (outcome, took) = waiting.await.expect("task");
    eprintln!("first check of a V slot: {took:?}: {outcome:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    checked_again_on_waking(&first, &twice, &nonce, paused).await;
}

/// A dead candidate is watched only when none is silent (review 18). A
/// (connection refused, its slots all resharded to B after connection) is
/// first in `owners_seen`; B, their owner now, is silent: B is watched.
/// (Watching A, let go within about a second as dead and owning nothing,
/// left B's slots, which the client sends to silent B, no longer refused
/// at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_old_owner_does_not_unhold_the_silent_one() {
    let Some(nodes) = own_cluster("a_dead_old_owner_does_not_unhold_the_silent_one") else {
        return;
    };
    let timeout = Duration::from_millis(1000);
    let prefix = unique_prefix("deadold");
    let first = store_with_timeout(&nodes, &prefix, timeout).await;
    let key_ids: Vec<KeyId> = (0..24).map(|i| key_id(&format!("deadold-{i}"))).collect();
    let (owner, a) = owners(&nodes, &first, key_ids.iter()).await;
    let b = (0..nodes.len()).find(|n| *n != a).expect("b");
    let on_a: Vec<KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == a)
        .map(|(k, _)| k.clone())
        .collect();
    let slots_a = slots_of(&nodes, a, b).await;
    hand_over(&nodes, a, b, &slots_a).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _writer = store_with_timeout(&nodes, &prefix, timeout).await;
    for k in &on_a {
        let _ = record_new(&first, k).await; // the client learns B by MOVED
    }
    let pid_a = node_pid(&nodes[a]).await;
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid_a.to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused = Paused::new(node_pid(&nodes[b]).await);
    until_marked(&first, &on_a[0]).await;
    // Past A's let-go (dead, owning nothing: map re-read every second).
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let mut slow = Vec::new();
    for k in &on_a {
        let (outcome, took) = record_new(&first, k).await;
        if took >= Duration::from_millis(500) {
            slow.push((took, outcome.err().map(|e| e.to_string())));
        }
    }
    drop(paused);
    eprintln!(
        "checks of silent B's slots (of {}) that waited the timeout: {slow:?}",
        on_a.len()
    );
    assert!(
        slow.is_empty(),
        "silent B's slots not held: {} waited",
        slow.len()
    );
}

/// Slots resharded out of the middle of X's range to V after connection
/// (the client learns V by `MOVED`), V silent, and its slots handed back:
/// the moved ones to X (so that no range the store saw starts at them) and
/// its own to H. With `first_too`, H's first slot also went to V and back,
/// so that the new map gives H one range starting at a slot the client
/// still sends to V. The sweep through the client holds exactly the moved
/// slots: V, waking, does not answer `Fresh` for a nonce X accepted (it
/// did when only the first slot of each range was asked), and H's healthy
/// slots are not held (they were, for as long as V stayed silent; review
/// 19).
async fn moved_slots_inside_a_range(test: &str, first_too: bool) {
    let Some(nodes) = own_cluster(test) else {
        return;
    };
    let timeout = Duration::from_millis(2000);
    let prefix = unique_prefix("insidemoved");
    let first = store_with_timeout(&nodes, &prefix, timeout).await;
    let key_ids: Vec<KeyId> = (0..24)
        .map(|i| key_id(&format!("insidemoved-{i}")))
        .collect();
    let (owner, x) = owners(&nodes, &first, key_ids.iter()).await;
    let mut on_x: Vec<(KeyId, u16)> = Vec::new();
    for (k, o) in key_ids.iter().zip(&owner) {
        if *o != x {
            continue;
        }
        let slot: i64 = on_node(&nodes[x], &["CLUSTER", "KEYSLOT", &first.epoch_key_for(k)]).await;
        let slot = u16::try_from(slot).expect("slot");
        if !on_x.iter().any(|(_, s)| *s == slot) {
            on_x.push((k.clone(), slot));
        }
    }
    assert!(on_x.len() >= 3, "three distinct slots on X");
    on_x.truncate(3);
    let x_slots_before = slots_of(&nodes, x, x).await;
    let v = (0..nodes.len()).find(|n| *n != x).expect("v");
    let h = (0..nodes.len()).find(|n| *n != x && *n != v).expect("h");
    let moved: Vec<u16> = on_x.iter().map(|(_, s)| *s).collect();
    assert!(
        moved.iter().all(|s| *s != x_slots_before[0]),
        "no moved slot first of X's range"
    );
    let v_own = slots_of(&nodes, v, h).await;
    let h_first = slots_of(&nodes, h, h).await[0];
    let on_h: Vec<KeyId> = key_ids
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o == h)
        .map(|(k, _)| k.clone())
        .collect();
    hand_over(&nodes, x, v, &moved).await;
    if first_too {
        // Finding 3: H's first slot resharded to V too (redis-cli reshard
        // moves the source's lowest slots first).
        hand_over(&nodes, h, v, &[h_first]).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _writer = store_with_timeout(&nodes, &prefix, timeout).await;
    for (k, _) in &on_x {
        assert_eq!(
            record_new(&first, k).await.0.ok(),
            Some(NonceOutcome::Fresh),
            "written on V"
        );
    }
    let paused = Paused::new(node_pid(&nodes[v]).await);
    let waiting = {
        let (first, k) = (first.clone(), on_x[0].0.clone());
        tokio::spawn(async move { record_new(&first, &k).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // V's failover: the moved slots back to X, V's own range to H.
    if first_too {
        // H's first slot back to H (a failover of V to H would do the same).
        hand_over(&nodes, v, h, &[h_first]).await;
    }
    hand_over(&nodes, v, x, &moved).await;
    hand_over(&nodes, v, h, &v_own).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let twice = on_x[2].0.clone();
    let nonce = accepted_after_failover(&nodes, v, &prefix, timeout, &twice).await;
    let (outcome, took) = waiting.await.expect("task");
    eprintln!("first check of a moved slot: {took:?}: {outcome:?}");
    // Let the probe finish its pings (one timeout) and hold what it found.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    if first_too {
        let mut refused = Vec::new();
        for k in &on_h {
            let (outcome, took) = record_new(&first, k).await;
            if let Err(e) = outcome {
                refused.push((took, e.to_string()));
            }
        }
        drop(paused);
        eprintln!(
            "H's key ids (H healthy) while V is silent: {} of {} refused: {:?}",
            refused.len(),
            on_h.len(),
            refused.first()
        );
        assert!(
            refused.is_empty(),
            "healthy H slots refused while V is silent"
        );
        return;
    }
    checked_again_on_waking(&first, &twice, &nonce, paused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_moved_inside_a_range_are_held() {
    moved_slots_inside_a_range("slots_moved_inside_a_range_are_held", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_merged_on_a_healthy_primary_is_not_held() {
    moved_slots_inside_a_range("a_range_merged_on_a_healthy_primary_is_not_held", true).await;
}
