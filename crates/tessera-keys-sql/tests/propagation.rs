//! Change propagation between stores (each with its own pool, as separate
//! server processes would have) and behaviour while the database is down.
//! The multi-process version of these tests is in tessera-cli's tests.

mod support;

use std::time::{Duration, Instant};

use support::{ring, send, suite, verifier, Db, Driver, OwnCluster, T0};
use tessera_core::ErrorCode;
use tessera_keys_sql::{IssueRequest, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{KeyState, KeyStore, ManualClock};

fn options(clock: &ManualClock) -> SqlKeyStoreOptions {
    let mut o = SqlKeyStoreOptions::default().with_clock(clock.clone());
    // A poll slower than the default 500 ms on a loaded CI machine would
    // mark the database down and refuse uncached keys for a moment: the
    // tests here are about propagation, so they give it time (the outage
    // test sets its own).
    o.lookup_timeout = Duration::from_secs(5);
    o
}

suite!(
    changes_reach_another_store,
    emptying_the_table_reaches_another_store,
    a_copy_taken_before_a_remote_revocation_is_never_cached,
    a_change_log_restored_to_earlier_seqs_still_reaches_another_store,
    background_tasks_stop_on_close,
);

/// How long another store may keep accepting a revoked key once the change
/// is committed: PostgreSQL 1 s (notifications, or the 750 ms poll), SQLite the 750 ms poll plus a
/// second for the poll itself and scheduling on a loaded machine.
fn bound(driver: Driver) -> Duration {
    match driver {
        Driver::Postgres => Duration::from_secs(1),
        Driver::Sqlite => Duration::from_millis(1750),
    }
}

/// Sends freshly signed requests to `v` every 20 ms until one is refused
/// with `code`; returns how long that took from `since`.
async fn until_refused(
    v: &tessera_server::Verifier,
    issued: &tessera_keys_sql::IssuedKey,
    code: ErrorCode,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        match send(v, issued.key_id(), issued.expose_secret(), T0).await {
            Ok(_) => {}
            Err(c) if c == code => return since.elapsed(),
            Err(other) => panic!("unexpected {other:?} while waiting for {code:?}"),
        }
        assert!(
            since.elapsed() < limit + Duration::from_secs(5),
            "still accepted after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Verifies through `v` until `store` answers from its cache (a change
/// notified while a key is read keeps that read out of the cache).
async fn warm(
    v: &tessera_server::Verifier,
    store: &SqlKeyStore,
    issued: &tessera_keys_sql::IssuedKey,
) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = store.stats().cache_hits;
        send(v, issued.key_id(), issued.expose_secret(), T0)
            .await
            .expect("verified");
        if store.stats().cache_hits > hits {
            return;
        }
        assert!(Instant::now() < until, "never cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two stores on one database, each with its own pool (as two server
/// processes would have), and a verifier over the second.
struct Pair {
    db: Db,
    a: SqlKeyStore,
    b: SqlKeyStore,
    vb: tessera_server::Verifier,
}

async fn pair(driver: Driver, test: &str) -> Option<Pair> {
    let db = Db::new(driver, test).await?;
    let clock = ManualClock::new(T0);
    let a = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let b = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let vb = verifier(&b, &clock);
    Some(Pair { db, a, b, vb })
}

async fn changes_reach_another_store(driver: Driver, test: &str) {
    let Some(Pair { db, a, b, vb }) = pair(driver, test).await else {
        return;
    };
    let limit = bound(driver);

    // Revoke through A while B has the key cached.
    let k1 = a
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k1).await;
    // Timed from the commit: the write's own time is not propagation.
    a.revoke(k1.key_id(), "lost", "t").await.expect("revoke");
    let start = Instant::now();
    let delay = until_refused(&vb, &k1, ErrorCode::KeyRevoked, start, limit).await;
    eprintln!("{test}: B refused the key revoked by A after {delay:?}");
    assert!(delay <= limit, "{delay:?} > {limit:?}");

    // An edit by hand (no store involved) propagates too: the trigger logs it.
    let k2 = a.issue(IssueRequest::new("bob", "t")).await.expect("issue");
    warm(&vb, &b, &k2).await;
    let sql = format!(
        "UPDATE tessera_keys SET state = 'revoked' WHERE key_id = '{}'",
        k2.key_id()
    );
    assert_eq!(db.exec(&sql).await, 1);
    let start = Instant::now();
    let delay = until_refused(&vb, &k2, ErrorCode::KeyRevoked, start, limit).await;
    eprintln!("{test}: B refused the key revoked by hand after {delay:?}");
    assert!(delay <= limit, "{delay:?} > {limit:?}");

    // A row replaced by hand, revoked in the copy: SQLite's INSERT OR
    // REPLACE deletes the old row without firing the delete trigger, so the
    // log holds an insert of a key id that B has cached (PostgreSQL's
    // upsert is logged as an update).
    let k4 = a
        .issue(IssueRequest::new("dave", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k4).await;
    let columns = "key_id, owner, client, scopes, state, not_before, not_after, created_at, \
                   revoked_at, revoke_reason, last_used_at, master_version, sealed_secret, \
                   attributes, replaces";
    let copy = columns.replacen("state", "'revoked'", 1);
    let sql = match driver {
        Driver::Sqlite => format!(
            "INSERT OR REPLACE INTO tessera_keys ({columns}) SELECT {copy} FROM tessera_keys \
             WHERE key_id = '{}'",
            k4.key_id()
        ),
        Driver::Postgres => format!(
            "INSERT INTO tessera_keys ({columns}) SELECT {copy} FROM tessera_keys \
             WHERE key_id = '{}' ON CONFLICT (key_id) DO UPDATE SET state = EXCLUDED.state",
            k4.key_id()
        ),
    };
    assert_eq!(db.exec(&sql).await, 1);
    let start = Instant::now();
    let delay = until_refused(&vb, &k4, ErrorCode::KeyRevoked, start, limit).await;
    eprintln!("{test}: B refused the key replaced by hand after {delay:?}");
    assert!(delay <= limit, "{delay:?} > {limit:?}");

    if driver == Driver::Postgres {
        // A change applied where ordinary triggers do not fire (a logical
        // replication apply worker, `pg_restore --disable-triggers`: the
        // session's replication role is `replica`) is logged too.
        let k5 = a
            .issue(IssueRequest::new("erin", "t"))
            .await
            .expect("issue");
        // Cached after B has read the issue's own log entry (which drops
        // the key once more), so that only the revocation's can drop it.
        warm(&vb, &b, &k5).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        warm(&vb, &b, &k5).await;
        let sql = format!(
            "UPDATE public.tessera_keys SET state = 'revoked' WHERE key_id = '{}'",
            k5.key_id()
        );
        assert_eq!(db.exec_as_replica(&sql).await, 1);
        let start = Instant::now();
        let delay = until_refused(&vb, &k5, ErrorCode::KeyRevoked, start, limit).await;
        eprintln!("{test}: B refused the key revoked as a replica after {delay:?}");
        assert!(delay <= limit, "{delay:?} > {limit:?}");
    }

    // Revoke everywhere (revoke_owner) reaches B's cache as well.
    let k3 = a
        .issue(IssueRequest::new("carol", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k3).await;
    assert_eq!(
        a.revoke_owner("carol", "logout", "t")
            .await
            .expect("revoke"),
        1
    );
    let start = Instant::now();
    let delay = until_refused(&vb, &k3, ErrorCode::KeyRevoked, start, limit).await;
    assert!(delay <= limit, "{delay:?} > {limit:?}");

    // last_used_at batches are not changes: they log nothing.
    let before = db.scalar("SELECT COUNT(*) FROM tessera_key_changes").await;
    b.flush_last_used().await.expect("flush");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_changes").await,
        before
    );
    let stats = b.stats();
    assert!(stats.reconciles > 0, "{stats:?}");
    match driver {
        // Notified within milliseconds (the poll may not even have run since).
        Driver::Postgres => assert!(stats.notifications >= 3, "{stats:?}"),
        Driver::Sqlite => assert!(stats.remote_invalidations >= 3, "{stats:?}"),
    }
    a.close().await;
    b.close().await;
}

/// Every row removed at once: `TRUNCATE` on PostgreSQL fires no row trigger
/// (a statement trigger logs it instead), `DELETE` without a condition on
/// SQLite fires one per row. Either way another store stops accepting its
/// cached keys within the bound.
async fn emptying_the_table_reaches_another_store(driver: Driver, test: &str) {
    let Some(Pair { db, a, b, vb }) = pair(driver, test).await else {
        return;
    };
    let limit = bound(driver);
    let k = a
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k).await;
    let sql = match driver {
        Driver::Postgres => "TRUNCATE tessera_keys CASCADE",
        Driver::Sqlite => "DELETE FROM tessera_keys",
    };
    db.exec(sql).await;
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tessera_keys").await, 0);
    let start = Instant::now();
    let delay = until_refused(&vb, &k, ErrorCode::UnknownKey, start, limit).await;
    eprintln!("{test}: B refused a key of the emptied table after {delay:?}");
    assert!(delay <= limit, "{delay:?} > {limit:?}");
    a.close().await;
    b.close().await;
}

/// A request on replica B took its copy of a key (from B's cache) before A
/// revoked it; B then drops the key and another request reads the revoked
/// row (refused before its MAC, so `verified` is not called for it). When
/// the first request's MAC verifies, its stale, active copy must not go
/// back into B's cache: B keeps refusing the key.
async fn a_copy_taken_before_a_remote_revocation_is_never_cached(driver: Driver, test: &str) {
    // `_db` kept: dropping it deletes a SQLite database's directory.
    let Some(Pair { db: _db, a, b, vb }) = pair(driver, test).await else {
        return;
    };
    let k = a
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k).await;
    let stale = b
        .resolve(k.key_id())
        .await
        .expect("resolve")
        .expect("known");
    assert_eq!(stale.metadata().state, KeyState::Active);
    a.revoke(k.key_id(), "stolen", "t").await.expect("revoke");
    let start = Instant::now();
    until_refused(&vb, &k, ErrorCode::KeyRevoked, start, bound(driver)).await;
    b.verified(k.key_id(), &stale);
    let now = b
        .resolve(k.key_id())
        .await
        .expect("resolve")
        .expect("known");
    assert_eq!(now.metadata().state, KeyState::Revoked);
    // And through the verifier, now and after the next polls.
    assert_eq!(
        send(&vb, k.key_id(), k.expose_secret(), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        send(&vb, k.key_id(), k.expose_secret(), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    a.close().await;
    b.close().await;
}

/// The change log restored from a backup (or emptied by hand, its
/// sequence reset): the changes made since then reuse seqs that another
/// store has already passed. That store notices that the last row it saw is
/// gone, drops its whole cache and polls on from the log's newest row, so a
/// revocation made after the restore still reaches it within the bound. B
/// listens for no notifications here: on PostgreSQL they would deliver the
/// revocation whatever the seqs, and the poll is what this is about.
async fn a_change_log_restored_to_earlier_seqs_still_reaches_another_store(
    driver: Driver,
    test: &str,
) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let a = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut polls_only = options(&clock);
    polls_only.listen_notifications = false;
    let b = db.open(ring(&[(1, 1)]), polls_only).await;
    let vb = verifier(&b, &clock);
    let limit = bound(Driver::Sqlite);

    let k1 = a
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    let k2 = a.issue(IssueRequest::new("bob", "t")).await.expect("issue");
    a.revoke(k2.key_id(), "lost", "t").await.expect("revoke");
    // B has seen seq 3 (k1, k2 issued, k2 revoked) once a poll began after
    // it, and then caches k1 (a poll that reads k1's issue drops it).
    let polls = b.stats().reconciles;
    let until = Instant::now() + Duration::from_secs(10);
    while b.stats().reconciles < polls + 2 {
        assert!(Instant::now() < until, "B stopped polling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    warm(&vb, &b, &k1).await;
    let reset = match driver {
        Driver::Postgres => {
            "SELECT setval(pg_get_serial_sequence('tessera_key_changes', 'seq'), 1, false)"
        }
        Driver::Sqlite => "UPDATE sqlite_sequence SET seq = 0 WHERE name = 'tessera_key_changes'",
    };
    db.exec("DELETE FROM tessera_key_changes").await;
    db.exec(reset).await;
    a.revoke(k1.key_id(), "stolen", "t").await.expect("revoke");
    assert_eq!(
        db.scalar("SELECT MAX(seq) FROM tessera_key_changes").await,
        1,
        "the revocation reuses seq 1"
    );
    let start = Instant::now();
    let delay = until_refused(&vb, &k1, ErrorCode::KeyRevoked, start, limit).await;
    eprintln!("{test}: B refused a key revoked after the log was reset after {delay:?}");
    assert!(delay <= limit, "{delay:?} > {limit:?}");
    let stats = b.stats();
    assert!(stats.log_resets >= 1, "{stats:?}");

    // And B polls on from there: the next change is seen as any other.
    let k3 = a
        .issue(IssueRequest::new("carol", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k3).await;
    a.revoke(k3.key_id(), "lost", "t").await.expect("revoke");
    let start = Instant::now();
    let delay = until_refused(&vb, &k3, ErrorCode::KeyRevoked, start, limit).await;
    assert!(delay <= limit, "{delay:?} > {limit:?}");
    a.close().await;
    b.close().await;
}

async fn background_tasks_stop_on_close(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut o = options(&clock);
    o.change_poll_interval = Duration::from_millis(50);
    let store = db.open(ring(&[(1, 1)]), o.clone()).await;
    let until = Instant::now() + Duration::from_secs(10);
    while store.stats().reconciles < 2 {
        assert!(
            Instant::now() < until,
            "the poller never ran: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    let after_close = store.stats().reconciles;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.stats().reconciles, after_close, "the poller stopped");
    drop(store);

    if driver == Driver::Postgres {
        // Dropping the last clone (no close) ends the listener: its
        // connection leaves pg_stat_activity.
        let listeners = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'LISTEN%'";
        let store = db.open(ring(&[(1, 1)]), o).await;
        let until = Instant::now() + Duration::from_secs(5);
        while db.scalar(listeners).await != 1 {
            assert!(Instant::now() < until, "the listener never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(store);
        let until = Instant::now() + Duration::from_secs(5);
        while db.scalar(listeners).await != 0 {
            assert!(Instant::now() < until, "the listener outlived the store");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The database stopped and started again under a running store: uncached
/// keys get store_unavailable at once, cached keys keep verifying until
/// max_staleness and then fail closed, and everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_and_recovery() {
    let test = "postgres_outage_and_recovery";
    let Some(cluster) = OwnCluster::start(test) else {
        return;
    };
    SqlKeyStore::migrate(&cluster.url).await.expect("migrate");
    let clock = ManualClock::new(T0);
    let mut o = options(&clock);
    o.max_staleness = Duration::from_secs(3);
    o.change_poll_interval = Duration::from_millis(500);
    // The default: how fast a stalled database is noticed is part of the test.
    o.lookup_timeout = SqlKeyStoreOptions::default().lookup_timeout;
    let store = SqlKeyStore::open(&cluster.url, ring(&[(1, 1)]), o)
        .await
        .expect("open");
    let v = verifier(&store, &clock);
    let cached = store
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    let uncached = store
        .issue(IssueRequest::new("bob", "t"))
        .await
        .expect("issue");
    warm(&v, &store, &cached).await;

    // Stopping PostgreSQL may take a while on a loaded machine: the cached
    // key's 3 s run from its last confirmation, before the stop began.
    let pausing = Instant::now();
    cluster.pause();
    let down_at = Instant::now();
    // Uncached: refused at once (no pool timeout), every time.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(
            send(&v, uncached.key_id(), uncached.expose_secret(), T0)
                .await
                .err(),
            Some(ErrorCode::StoreUnavailable)
        );
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
    }
    // Cached: served until max_staleness since the last confirmation...
    send(&v, cached.key_id(), cached.expose_secret(), T0)
        .await
        .expect("cached key served during the outage");
    let stale = loop {
        match send(&v, cached.key_id(), cached.expose_secret(), T0).await {
            Ok(_) => {}
            Err(ErrorCode::StoreUnavailable) => break pausing.elapsed(),
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(10),
            "never failed closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{test}: the cached key failed closed {stale:?} after the stop began (max_staleness 3 s)"
    );
    // At least max_staleness less the poll interval and a poll's own time
    // (the last confirmation may be that much older than the stop); at most
    // max_staleness plus the time the stop itself took and a margin.
    assert!(stale >= Duration::from_millis(2_000), "{stale:?}");
    assert!(
        stale <= (down_at - pausing) + Duration::from_millis(3_700),
        "{stale:?}, the stop took {:?}",
        down_at - pausing
    );
    assert!(store.stats().unavailable >= 5);

    cluster.resume();
    let up_at = Instant::now();
    loop {
        let a = send(&v, cached.key_id(), cached.expose_secret(), T0).await;
        let b = send(&v, uncached.key_id(), uncached.expose_secret(), T0).await;
        if a.is_ok() && b.is_ok() {
            break;
        }
        assert!(
            up_at.elapsed() < Duration::from_secs(10),
            "no recovery: {:?} {:?}",
            a.err(),
            b.err()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{test}: recovered {:?} after the restart", up_at.elapsed());
    // Changes flow again (the listener reconnected).
    let other = SqlKeyStore::open(&cluster.url, ring(&[(1, 1)]), options(&clock))
        .await
        .expect("open");
    other
        .revoke(cached.key_id(), "lost", "t")
        .await
        .expect("revoke");
    let start = Instant::now();
    let delay = until_refused(
        &v,
        &cached,
        ErrorCode::KeyRevoked,
        start,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        delay <= Duration::from_secs(1) + Duration::from_millis(500),
        "{delay:?}"
    );
    other.close().await;
    store.close().await;
}

/// A store whose runtime was starved (or whose process was paused) while
/// another process revoked a cached key: when it resumes, its poller is
/// behind, and the first request naming the key must not be answered from
/// the cache before a poll has run. Each case runs on a single-threaded
/// runtime that the test blocks, so that neither the poller nor (on
/// PostgreSQL) the listener can run until the request is being verified.
async fn a_starved_poller_does_not_vouch_for_a_cached_key(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let b = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let vb = verifier(&b, &clock);
    let k = b
        .issue(IssueRequest::new("alice", "t"))
        .await
        .expect("issue");
    warm(&vb, &b, &k).await;

    // Revoked by another process while this runtime is blocked.
    let sql = format!(
        "UPDATE tessera_keys SET state = 'revoked' WHERE key_id = '{}'",
        k.key_id()
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            assert_eq!(runtime.block_on(db.exec(&sql)), 1);
        });
    });
    // Still blocked, well past two poll intervals.
    std::thread::sleep(Duration::from_secs(2));

    let first = send(&vb, k.key_id(), k.expose_secret(), T0).await;
    assert_eq!(first.err(), Some(ErrorCode::KeyRevoked), "{:?}", b.stats());
    assert!(b.stats().overdue_polls >= 1, "{:?}", b.stats());
    b.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_a_starved_poller_does_not_vouch_for_a_cached_key() {
    a_starved_poller_does_not_vouch_for_a_cached_key(
        Driver::Sqlite,
        "sqlite_a_starved_poller_does_not_vouch_for_a_cached_key",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_a_starved_poller_does_not_vouch_for_a_cached_key() {
    a_starved_poller_does_not_vouch_for_a_cached_key(
        Driver::Postgres,
        "postgres_a_starved_poller_does_not_vouch_for_a_cached_key",
    )
    .await;
}
