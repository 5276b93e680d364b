//! Measurements of the SQL key store, side by side in one run (bounded in
//! count and time):
//!
//! 1. verify with a warm cache, SQLite and PostgreSQL stores vs `MemoryKeyStore`
//!    (the same verifier, interleaved rounds);
//! 2. cold look-ups (cache off): p50 and p99 on SQLite and PostgreSQL;
//! 3. N keys in the table (default 1,000,000 real sealed rows, inserted with
//!    `issue_batch`): bulk and single issue throughput, and look-up latency,
//!    against the same at 1,000 keys;
//! 4. a flood of made-up key ids (badly tagged, and well-tagged ids of
//!    deleted keys) from one task for a few seconds: the database queries it
//!    causes per second, and real keys' verification latency meanwhile.
//!
//! ```text
//! cargo run --release -p tessera-keys-sql --example keystore_bench -- \
//!     [--keys 1000000] [--pg-keys N] [--postgres URL] [--rounds 7] [--batch 20000]
//! ```
//! PostgreSQL is measured when `--postgres` or TESSERA_TEST_POSTGRES_URL is given.
//!
//! `--profile-warm memory|sqlite N` only verifies N pre-signed requests with
//! a warm cache, for an instruction count that a busy machine cannot skew:
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*warm_verify_loop*' \
//!     target/release/examples/keystore_bench --profile-warm sqlite 5000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_keys_sql::{IssueRequest, MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{
    KeyMetadata, KeyStore, ManualClock, MemoryKeyStore, MemoryNonceStore, Verifier,
};

const T0: u64 = 1_700_000_000;
const HOST: &str = "api.example.com";

fn verifier(store: impl KeyStore + 'static) -> Verifier {
    Verifier::builder(store)
        .nonce_store(
            MemoryNonceStore::builder()
                .remembers_since(T0)
                .capacity(2_000_000)
                .per_key_capacity(1_000_000)
                .build(),
        )
        .clock(ManualClock::new(T0))
        .authority(HOST)
        .build()
        .expect("verifier")
}

fn signed(key_id: &KeyId, secret: &SecretKey) -> http::request::Parts {
    let key = SigningKey::new(key_id.clone(), secret);
    let nonce = Nonce::generate(&mut rand::rng());
    let (mut parts, ()) = http::Request::builder()
        .method("GET")
        .uri(format!("http://{HOST}/v1/orders?limit=5"))
        .body(())
        .unwrap()
        .into_parts();
    let view = RequestView::from_parts(&parts).unwrap();
    sign(
        &key,
        &view,
        &BodyDigest::of(b""),
        &SignOptions::new(T0, &nonce),
    )
    .unwrap()
    .apply_to(&mut parts.headers)
    .unwrap();
    parts
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ring() -> MasterKeyring {
    MasterKeyring::parse("c0ffee5a7e1d2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081920a1b")
        .unwrap()
}

async fn open(url: &str, cache: bool) -> SqlKeyStore {
    let mut o = SqlKeyStoreOptions::default().with_clock(ManualClock::new(T0));
    o.max_active_keys_per_owner = 1_000_000;
    o.max_lookups_per_second = 1_000_000;
    if !cache {
        o.cache_capacity = 0;
    }
    SqlKeyStore::open(url, ring(), o).await.expect("open")
}

/// Fills the table up to `total` keys, 10,000 per transaction; returns keys/s.
async fn fill(store: &SqlKeyStore, from: usize, total: usize) -> f64 {
    let start = Instant::now();
    let mut n = from;
    while n < total {
        let batch = (total - n).min(10_000);
        let requests: Vec<IssueRequest> = (n..n + batch)
            .map(|i| IssueRequest::new(format!("owner{}", i / 10), "bench").scopes(["read"]))
            .collect();
        store.issue_batch(&requests).await.expect("issue_batch");
        n += batch;
    }
    total.saturating_sub(from) as f64 / start.elapsed().as_secs_f64()
}

/// Single issues per second (one transaction each), over `n`.
async fn single_issues(store: &SqlKeyStore, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        store
            .issue(IssueRequest::new(format!("single{i}"), "bench"))
            .await
            .expect("issue");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Cold look-ups (the store's cache off) of `ids`, in random order: p50, p99.
async fn cold_lookups(store: &SqlKeyStore, ids: &[KeyId], n: usize) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let id = &ids[rand::random_range(0..ids.len())];
        let t = Instant::now();
        let found = store.resolve(id).await.expect("resolve");
        lat.push(t.elapsed());
        assert!(found.is_some());
    }
    lat.sort();
    (pct(&lat, 0.5), pct(&lat, 0.99))
}

struct Driver {
    name: &'static str,
    url: String,
    keys: usize,
    _dir: Option<tempfile::TempDir>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let keys: usize = arg("--keys").map_or(1_000_000, |v| v.parse().expect("--keys N"));
    let pg_keys: usize = arg("--pg-keys").map_or(keys, |v| v.parse().expect("--pg-keys N"));
    let pg_url = arg("--postgres").or_else(|| std::env::var("TESSERA_TEST_POSTGRES_URL").ok());
    // Section 1's interleaved rounds, and verifications per store per round.
    let rounds: usize = arg("--rounds").map_or(7, |v| v.parse().expect("--rounds N"));
    let batch: usize = arg("--batch").map_or(20_000, |v| v.parse().expect("--batch N"));
    assert!(
        rounds > 0 && batch > 0,
        "--rounds and --batch must be positive"
    );

    if let Some(store) = arg("--profile-warm") {
        let n: usize = args
            .iter()
            .position(|a| a == "--profile-warm")
            .and_then(|i| args.get(i + 2))
            .map_or(5_000, |v| v.parse().expect("--profile-warm STORE N"));
        return profile_warm(&store, n).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut drivers = vec![Driver {
        name: "sqlite",
        url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        keys,
        _dir: Some(dir),
    }];
    if let Some(base) = pg_url {
        // A fresh database beside the given one.
        use sqlx::Connection;
        let name = format!("bench_{}", hex::encode(rand::random::<[u8; 4]>()));
        let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        drivers.push(Driver {
            name: "postgres",
            url,
            keys: pg_keys,
            _dir: None,
        });
    } else {
        println!("(no --postgres URL or TESSERA_TEST_POSTGRES_URL: SQLite only)");
    }
    for d in &drivers {
        SqlKeyStore::migrate(&d.url).await.expect("migrate");
    }

    // 1. Warm verify vs MemoryKeyStore.
    println!(
        "== 1. verify with a warm cache (ns/verify, median of {rounds} interleaved rounds of {batch})"
    );
    let memory = Arc::new(MemoryKeyStore::new());
    let secret = SecretKey::generate().unwrap();
    // The same shape as the SQL store's ids (k1.<22>.<11>): the key id is
    // signed, parsed and hashed, so a shorter one would flatter memory.
    let mem_id = KeyId::new("k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAA").unwrap();
    memory.insert(mem_id.clone(), &secret, KeyMetadata::new("alice"));
    let mut contenders: Vec<(String, Verifier, KeyId, SecretKey)> = vec![(
        "memory".into(),
        verifier(Arc::clone(&memory)),
        mem_id,
        secret,
    )];
    for d in &drivers {
        let store = open(&d.url, true).await;
        let issued = store
            .issue(IssueRequest::new("alice", "bench"))
            .await
            .unwrap();
        let v = verifier(store.clone());
        for _ in 0..3 {
            let parts = signed(issued.key_id(), issued.expose_secret());
            v.verify_bytes(&parts, Bytes::new())
                .await
                .expect("verified");
        }
        assert!(store.stats().cache_hits >= 1, "warm");
        contenders.push((
            d.name.to_string(),
            v,
            issued.key_id().clone(),
            issued.expose_secret().clone(),
        ));
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _round in 0..rounds {
        for (i, (_, v, id, secret)) in contenders.iter().enumerate() {
            let requests: Vec<_> = (0..batch).map(|_| signed(id, secret)).collect();
            let start = Instant::now();
            for parts in &requests {
                v.verify_bytes(parts, Bytes::new()).await.expect("verified");
            }
            results[i].push(start.elapsed().as_nanos() as f64 / requests.len() as f64);
        }
    }
    let medians: Vec<f64> = results
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    for (i, (name, ..)) in contenders.iter().enumerate() {
        println!(
            "  {name:<9} {:>8.0} ns/verify  ({:+.1} % vs memory)",
            medians[i],
            (medians[i] / medians[0] - 1.0) * 100.0
        );
    }
    drop(contenders);

    // 2 and 3. Cold look-ups and size.
    for d in &drivers {
        println!(
            "== 2/3. {}: cold look-ups (cache off), issue throughput, {} keys",
            d.name, d.keys
        );
        let store = open(&d.url, false).await;
        let small = fill(&store, 0, 1_000).await;
        let ids: Vec<KeyId> = store
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key_id)
            .collect();
        let (p50, p99) = cold_lookups(&store, &ids, 5_000).await;
        let single_small = single_issues(&store, 200).await;
        println!(
            "  1k keys:  cold look-up p50 {p50:?} p99 {p99:?}; single issue {single_small:.0}/s; batch issue {small:.0}/s"
        );
        // 1,200 rows exist by now (the 1k set and the single issues).
        if d.keys > 1_200 {
            let filled_at = Instant::now();
            let bulk = fill(&store, 1_200, d.keys).await;
            println!(
                "  filled to {} keys in {:.1} s: batch issue (10,000 per transaction, sealed rows) {bulk:.0} keys/s",
                d.keys,
                filled_at.elapsed().as_secs_f64()
            );
        }
        // Look up keys spread over the whole table: the first 1k and a sample of the rest.
        let (p50, p99) = cold_lookups(&store, &ids, 5_000).await;
        let single_big = single_issues(&store, 200).await;
        println!(
            "  {} keys: cold look-up p50 {p50:?} p99 {p99:?}; single issue {single_big:.0}/s",
            d.keys
        );
        store.close().await;
    }

    // 4. Flood of made-up ids.
    for d in &drivers {
        println!(
            "== 4. {}: flood of made-up key ids from one task (3 s)",
            d.name
        );
        let mut o = SqlKeyStoreOptions::default().with_clock(ManualClock::new(T0));
        o.max_active_keys_per_owner = 1_000_000;
        let store = SqlKeyStore::open(&d.url, ring(), o).await.unwrap();
        // Well-tagged ids of keys that no longer exist: issued, then deleted by hand.
        let ghosts: Vec<KeyId> = store
            .issue_batch(
                &(0..20_000)
                    .map(|i| IssueRequest::new(format!("ghost{i}"), "bench"))
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.key_id().clone())
            .collect();
        {
            use sqlx::Connection;
            let sql = "DELETE FROM tessera_keys WHERE owner LIKE 'ghost%'";
            if d.name == "sqlite" {
                let mut c = sqlx::SqliteConnection::connect(&d.url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            } else {
                let mut c = sqlx::PgConnection::connect(&d.url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
        // Let the store see the 20,000 deletions first (more than one change
        // batch: it drops its whole cache once), so that this set-up step
        // does not evict the real key in the middle of the measurement.
        let invalidations = |s: &SqlKeyStore| {
            let st = s.stats();
            st.full_invalidations + st.remote_invalidations
        };
        let before_sync = invalidations(&store);
        let waited = Instant::now();
        while invalidations(&store) == before_sync && waited.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And one more poll period, for the rest of the change log.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let real = store
            .issue(IssueRequest::new("alice", "bench"))
            .await
            .unwrap();
        let v = verifier(store.clone());
        let real_id = real.key_id().clone();
        let real_secret = real.expose_secret().clone();
        let measure_real = |v: Verifier, until: Instant| {
            let (id, secret) = (real_id.clone(), real_secret.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut refused = 0usize;
                while Instant::now() < until {
                    let parts = signed(&id, &secret);
                    let t = Instant::now();
                    // A refusal (the look-up cap spent by the flood while
                    // the key was not cached) is counted and reported.
                    match v.verify_bytes(&parts, Bytes::new()).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(_) => refused += 1,
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                assert!(
                    !lat.is_empty(),
                    "no real request verified ({refused} refused)"
                );
                lat.sort();
                (lat.len(), pct(&lat, 0.5), pct(&lat, 0.99), refused)
            })
        };
        let quiet = measure_real(v.clone(), Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        let before = store.stats();
        let until = Instant::now() + Duration::from_secs(3);
        let real_task = measure_real(v.clone(), until);
        let flood = {
            let v = v.clone();
            let ghosts = ghosts.clone();
            tokio::spawn(async move {
                let fake_secret = SecretKey::generate().unwrap();
                let mut sent = 0u64;
                while Instant::now() < until {
                    let id = match sent % 3 {
                        // Looks like ours, wrong check tag.
                        0 => KeyId::new(format!(
                            "k1.{}.{}",
                            &hex::encode(rand::random::<[u8; 11]>())[..22],
                            &hex::encode(rand::random::<[u8; 6]>())[..11]
                        ))
                        .unwrap(),
                        // Made up.
                        1 => KeyId::new(format!("user-{}", rand::random::<u64>())).unwrap(),
                        // Well-tagged, deleted.
                        _ => ghosts[rand::random_range(0..ghosts.len())].clone(),
                    };
                    let parts = signed(&id, &fake_secret);
                    let _ = v.verify_bytes(&parts, Bytes::new()).await;
                    sent += 1;
                }
                sent
            })
        };
        let sent = flood.await.unwrap();
        let during = real_task.await.unwrap();
        let after = store.stats();
        println!(
            "  {sent} made-up requests ({:.0}/s): {} database look-ups ({:.0}/s; cap {}/s after a burst of as many), {} refused by the check tag, {} from the negative cache, {} over the look-up cap",
            sent as f64 / 3.0,
            after.db_lookups - before.db_lookups,
            (after.db_lookups - before.db_lookups) as f64 / 3.0,
            SqlKeyStoreOptions::default().max_lookups_per_second,
            after.tag_rejections - before.tag_rejections,
            after.negative_hits - before.negative_hits,
            after.rate_limited - before.rate_limited,
        );
        println!(
            "  real key: quiet p50 {:?} p99 {:?} ({} requests, {} refused); during the flood p50 {:?} p99 {:?} ({} requests, {} refused)",
            quiet.1, quiet.2, quiet.0, quiet.3, during.1, during.2, during.0, during.3
        );
        // Bounded as designed: 3 s at the cap plus one burst (and a little
        // for the flood's last requests past the 3 s).
        let cap = u64::from(SqlKeyStoreOptions::default().max_lookups_per_second);
        assert!(
            after.db_lookups - before.db_lookups <= cap * 4 + cap / 10,
            "the flood caused more database look-ups than the cap allows"
        );
        assert!(
            during.0 > 0,
            "no real request was verified during the flood"
        );
        store.close().await;
    }
}

/// `--profile-warm`: one store, warmed, then `n` verifications in
/// [`warm_verify_loop`] (the function callgrind is told to count).
async fn profile_warm(store: &str, n: usize) {
    let secret = SecretKey::generate().unwrap();
    let (v, id, secret, _dir) = match store {
        "memory" => {
            let memory = MemoryKeyStore::new();
            let id = KeyId::new("k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAA").unwrap();
            memory.insert(id.clone(), &secret, KeyMetadata::new("alice"));
            (verifier(memory), id, secret, None)
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            SqlKeyStore::migrate(&url).await.expect("migrate");
            let store = open(&url, true).await;
            let issued = store
                .issue(IssueRequest::new("alice", "bench"))
                .await
                .unwrap();
            let (id, secret) = (issued.key_id().clone(), issued.expose_secret().clone());
            (verifier(store), id, secret, Some(dir))
        }
        other => panic!("--profile-warm memory|sqlite, not {other}"),
    };
    for _ in 0..3 {
        v.verify_bytes(&signed(&id, &secret), Bytes::new())
            .await
            .expect("verified");
    }
    let requests: Vec<_> = (0..n).map(|_| signed(&id, &secret)).collect();
    warm_verify_loop(&v, &requests);
    println!("{store}: {n} warm verifications");
}

/// Synchronous (a warm verification never waits), so that it is one
/// function on the stack for callgrind's toggle.
#[inline(never)]
fn warm_verify_loop(v: &Verifier, requests: &[http::request::Parts]) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    for parts in requests {
        let mut verify = std::pin::pin!(v.verify_bytes(parts, Bytes::new()));
        match verify.as_mut().poll(&mut cx) {
            Poll::Ready(outcome) => {
                outcome.expect("verified");
            }
            Poll::Pending => panic!("a warm verification waited"),
        }
    }
}
