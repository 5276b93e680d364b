//! The store's suite, run on SQLite and on PostgreSQL: every case below is
//! one `async fn(Driver, &str)`, instantiated once per driver by `suite!`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{ring, send, suite, verifier, Db, Driver, T0};
use tessera_core::{KeyId, SecretKey};
use tessera_keys_sql::{
    Error, IssueRequest, SchemaPolicy, SqlKeyAdmin, SqlKeyStore, SqlKeyStoreOptions, StoreStats,
};
use tessera_server::{ErrorCode, KeyState, KeyStore, ManualClock};

fn options(clock: &ManualClock) -> SqlKeyStoreOptions {
    let mut o = SqlKeyStoreOptions::default().with_clock(clock.clone());
    // A look-up or poll slower than the default 500 ms on a loaded CI
    // machine would mark the database down for a moment and refuse
    // uncached keys: no test here is about that (propagation.rs is).
    o.lookup_timeout = Duration::from_secs(5);
    o
}

fn alice() -> IssueRequest {
    IssueRequest::new("alice", "test:issuer")
        .client("ios")
        .scopes(["orders:read", "orders:write"])
        .attributes(serde_json::json!({ "plan": "pro", "company": 42 }))
}

fn secret_of(issued: &tessera_keys_sql::IssuedKey) -> SecretKey {
    issued.expose_secret().clone()
}

suite!(
    issue_and_verify,
    rotate_with_overlap,
    revoke_one,
    revoke_owner,
    revoke_without_the_master_key,
    expiry,
    restart_keeps_keys,
    wrong_master_key_is_a_clear_error,
    rewrap_while_verifying,
    tampered_rows_are_refused,
    unreadable_rows_are_listed_with_their_reason,
    a_key_id_stored_as_a_blob_stops_neither_rewrap_nor_revoke,
    a_rewrap_reads_every_row_and_names_what_it_leaves,
    unbound_columns_are_plain_updates,
    per_owner_limit,
    per_owner_limit_under_concurrency,
    made_up_key_ids_cause_no_query,
    lookup_rate_limit,
    last_used_is_batched,
    secrets_never_in_the_database,
    open_errors_are_clear,
    issue_batch_is_all_or_nothing,
    a_copy_taken_before_a_revocation_is_never_cached,
    requests_naming_a_revoked_key_read_the_database_once,
    disabled_change_triggers_are_refused_and_migrate_restores_them,
    two_first_opens_with_different_keys_leave_one_check_key,
);

async fn issue_and_verify(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let issued = store
        .issue(alice().ttl(Duration::from_secs(3600)))
        .await
        .expect("issue");
    assert!(issued.key_id().as_str().starts_with("k1."));
    assert_eq!(issued.expose_secret().len(), 32);
    assert!(!format!("{issued:?}").contains(&hex::encode(issued.expose_secret().expose_secret())));

    // The store's own issue comes back through the change log (a
    // notification on PostgreSQL, the poll on SQLite) and drops the key
    // from the caches: waited for, so that the cache checks below see a
    // settled store.
    settle(&store, |s| s.notifications + s.remote_invalidations >= 1).await;
    let v = verifier(&store, &clock);
    let identity = send(&v, issued.key_id(), &secret_of(&issued), T0)
        .await
        .expect("verified");
    assert_eq!(identity.owner(), "alice");
    assert_eq!(identity.client(), Some("ios"));
    assert!(identity.has_scope("orders:write"));
    assert_eq!(
        identity.metadata().attributes,
        Some(serde_json::json!({ "company": 42, "plan": "pro" }))
    );
    assert_eq!(identity.metadata().not_after, Some(T0 + 3600));
    // The second request is served from the cache filled after the first MAC check.
    let before = store.stats();
    send(&v, issued.key_id(), &secret_of(&issued), T0)
        .await
        .expect("again");
    let after = store.stats();
    assert_eq!(after.db_lookups, before.db_lookups);
    assert_eq!(after.cache_hits, before.cache_hits + 1);
    // A wrong secret is refused (and the store is not the one refusing).
    let wrong = SecretKey::from_bytes(&[7; 32]).expect("secret");
    assert_eq!(
        send(&v, issued.key_id(), &wrong, T0).await.err(),
        Some(ErrorCode::BadSignature)
    );

    let shown = store
        .show(issued.key_id())
        .await
        .expect("show")
        .expect("known");
    assert_eq!(shown.metadata.owner, "alice");
    assert_eq!(shown.master_version, 1);
    assert!(shown.seal_intact);
    assert_eq!(shown.created_at, T0);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'issue'")
            .await,
        1
    );
    assert_eq!(store.change_counter().await.expect("counter"), 1);
}

async fn rotate_with_overlap(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let old = store
        .issue(alice().ttl(Duration::from_secs(30 * 86_400)))
        .await
        .expect("issue");
    let v = verifier(&store, &clock);
    send(&v, old.key_id(), &secret_of(&old), T0)
        .await
        .expect("old verifies");

    clock.set(T0 + 100);
    let new = store
        .rotate(old.key_id(), Duration::from_secs(600), "test:rotator")
        .await
        .expect("rotate");
    assert_eq!(new.replaces(), Some(old.key_id()));
    assert_ne!(new.key_id(), old.key_id());
    let m = new.metadata();
    assert_eq!(
        (m.owner.as_str(), m.client.as_deref()),
        ("alice", Some("ios"))
    );
    assert_eq!(m.scopes, old.metadata().scopes);
    assert_eq!(m.attributes, old.metadata().attributes);
    assert_eq!(
        m.not_after,
        Some(T0 + 100 + 30 * 86_400),
        "same lifetime, from now"
    );

    // Both verify during the overlap.
    send(&v, old.key_id(), &secret_of(&old), T0 + 100)
        .await
        .expect("old in overlap");
    send(&v, new.key_id(), &secret_of(&new), T0 + 100)
        .await
        .expect("new");
    let shown = store.show(old.key_id()).await.expect("show").expect("old");
    assert_eq!(shown.metadata.not_after, Some(T0 + 700));
    assert!(
        shown.seal_intact,
        "the old row was re-sealed with its new not_after"
    );
    let shown_new = store.show(new.key_id()).await.expect("show").expect("new");
    assert_eq!(shown_new.replaces.as_ref(), Some(old.key_id()));
    // Rotating the old key again would give a second replacement that ends
    // with the old key's shortened life: refused, naming the replacement.
    match store
        .rotate(old.key_id(), Duration::from_secs(600), "t")
        .await
    {
        Err(Error::AlreadyRotated {
            key_id,
            replaced_by,
        }) => {
            assert_eq!(key_id, old.key_id().as_str());
            assert_eq!(replaced_by, new.key_id().as_str());
        }
        other => panic!("expected AlreadyRotated, got {other:?}"),
    }

    // After the overlap the old key is expired, the new one fine.
    clock.set(T0 + 701);
    assert_eq!(
        send(&v, old.key_id(), &secret_of(&old), T0 + 701)
            .await
            .err(),
        Some(ErrorCode::KeyExpired)
    );
    send(&v, new.key_id(), &secret_of(&new), T0 + 701)
        .await
        .expect("new after overlap");
    // An expired key cannot be rotated again.
    assert!(matches!(
        store.rotate(old.key_id(), Duration::ZERO, "t").await,
        Err(Error::KeyExpired { .. })
    ));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'rotate'")
            .await,
        1
    );
}

async fn revoke_one(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let a = store.issue(alice()).await.expect("a");
    let b = store.issue(alice().client("android")).await.expect("b");
    let v = verifier(&store, &clock);
    send(&v, a.key_id(), &secret_of(&a), T0)
        .await
        .expect("a verifies (and is cached)");
    let counter = store.change_counter().await.expect("counter");

    // A reason is kept in the row and logged: control characters and
    // unbounded text are refused (nothing changes).
    for (reason, says) in [
        ("lost\u{1b}[2J", "control characters"),
        ("lost\nforged log line", "control characters"),
        (&"x".repeat(1025)[..], "at most 1024 bytes"),
    ] {
        let e = store
            .revoke(a.key_id(), reason, "support:ann")
            .await
            .expect_err("refused");
        assert!(e.to_string().contains(says), "{e}");
        let e = store
            .revoke_owner("alice", reason, "support:ann")
            .await
            .expect_err("refused");
        assert!(e.to_string().contains(says), "{e}");
    }
    assert_eq!(store.change_counter().await.expect("counter"), counter);

    assert!(store
        .revoke(a.key_id(), "device lost", "support:ann")
        .await
        .expect("revoke"));
    assert_eq!(store.change_counter().await.expect("counter"), counter + 1);
    // Revoked keys still resolve: the client hears key_revoked, not unknown_key.
    assert_eq!(
        send(&v, a.key_id(), &secret_of(&a), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    send(&v, b.key_id(), &secret_of(&b), T0)
        .await
        .expect("b unaffected");
    assert!(!store
        .revoke(a.key_id(), "again", "support:ann")
        .await
        .expect("already revoked"));
    let shown = store.show(a.key_id()).await.expect("show").expect("a");
    assert_eq!(shown.metadata.state, KeyState::Revoked);
    assert_eq!(shown.revoke_reason.as_deref(), Some("device lost"));
    assert_eq!(shown.revoked_at, Some(T0));
    assert!(matches!(
        store.rotate(a.key_id(), Duration::ZERO, "t").await,
        Err(Error::KeyRevoked { .. })
    ));
    // A made-up id is unknown, without a query.
    let fake = KeyId::new("k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAA").expect("id");
    assert!(matches!(
        store.revoke(&fake, "x", "t").await,
        Err(Error::UnknownKey { .. })
    ));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'revoke' AND actor = 'support:ann'")
            .await,
        1
    );
}

/// `SqlKeyAdmin` revokes with database access alone: the same transaction
/// as the store's (audit row, change log), so a running verifier that has
/// the key cached refuses it once the change reaches it.
async fn revoke_without_the_master_key(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let a = store.issue(alice()).await.expect("a");
    let kept = store.issue(alice().client("web")).await.expect("kept");
    let b = store
        .issue(IssueRequest::new("bob", "t").client("ios"))
        .await
        .expect("b");
    let v = verifier(&store, &clock);
    for k in [&a, &b] {
        send(&v, k.key_id(), &secret_of(k), T0)
            .await
            .expect("verifies (and is cached)");
    }
    let counter = store.change_counter().await.expect("counter");

    let admin = SqlKeyAdmin::open(&db.url, &options(&clock))
        .await
        .expect("opens without a master key");
    assert!(!format!("{admin:?}").contains(&db.url));
    let e = admin
        .revoke(a.key_id(), "lost\nforged log line", "support:ann")
        .await
        .expect_err("a control character is refused");
    assert!(e.to_string().contains("control characters"), "{e}");
    assert!(admin
        .revoke(a.key_id(), "device lost", "support:ann")
        .await
        .expect("revoke"));
    assert!(!admin
        .revoke(a.key_id(), "again", "support:ann")
        .await
        .expect("already revoked"));
    let fake = KeyId::new("k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAA").expect("id");
    assert!(matches!(
        admin.revoke(&fake, "x", "t").await,
        Err(Error::UnknownKey { .. })
    ));
    assert_eq!(
        admin
            .revoke_owner("bob", "log out everywhere", "support:ann")
            .await
            .expect("revoke bob"),
        1
    );
    admin.close().await;
    assert_eq!(store.change_counter().await.expect("counter"), counter + 2);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE actor = 'support:ann' AND action IN ('revoke', 'revoke_owner')")
            .await,
        2
    );

    // The running verifier had both keys cached: the change log reaches it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for k in [&a, &b] {
        loop {
            match send(&v, k.key_id(), &secret_of(k), T0).await {
                Err(ErrorCode::KeyRevoked) => break,
                other => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the revocation did not reach the verifier: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    send(&v, kept.key_id(), &secret_of(&kept), T0)
        .await
        .expect("alice's other key unaffected");
    let shown = store.show(a.key_id()).await.expect("show").expect("a");
    assert_eq!(shown.metadata.state, KeyState::Revoked);
    assert_eq!(shown.revoke_reason.as_deref(), Some("device lost"));
}

async fn revoke_owner(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut alices = Vec::new();
    for client in ["ios", "android", "web"] {
        alices.push(store.issue(alice().client(client)).await.expect("issue"));
    }
    let bob = store
        .issue(IssueRequest::new("bob", "t"))
        .await
        .expect("bob");
    let v = verifier(&store, &clock);
    for k in &alices {
        send(&v, k.key_id(), &secret_of(k), T0)
            .await
            .expect("verifies");
    }
    assert_eq!(
        store
            .revoke_owner("alice", "log out everywhere", "alice")
            .await
            .expect("revoke"),
        3
    );
    for k in &alices {
        assert_eq!(
            send(&v, k.key_id(), &secret_of(k), T0).await.err(),
            Some(ErrorCode::KeyRevoked)
        );
    }
    send(&v, bob.key_id(), &secret_of(&bob), T0)
        .await
        .expect("bob unaffected");
    assert_eq!(
        store
            .revoke_owner("alice", "again", "alice")
            .await
            .expect("none left"),
        0
    );
    assert!(store
        .list(Some("alice"))
        .await
        .expect("list")
        .iter()
        .all(|r| r.metadata.state == KeyState::Revoked));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'revoke_owner' AND owner = 'alice'")
            .await,
        2
    );
}

async fn expiry(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let k = store
        .issue(alice().ttl(Duration::from_secs(100)))
        .await
        .expect("issue");
    let at = store
        .issue(alice().not_after(T0 + 50))
        .await
        .expect("issue at");
    let v = verifier(&store, &clock);
    send(&v, k.key_id(), &secret_of(&k), T0)
        .await
        .expect("valid");
    clock.set(T0 + 100);
    send(&v, k.key_id(), &secret_of(&k), T0 + 100)
        .await
        .expect("valid through not_after");
    assert_eq!(
        send(&v, at.key_id(), &secret_of(&at), T0 + 100).await.err(),
        Some(ErrorCode::KeyExpired)
    );
    clock.set(T0 + 101);
    assert_eq!(
        send(&v, k.key_id(), &secret_of(&k), T0 + 101).await.err(),
        Some(ErrorCode::KeyExpired)
    );
    assert!(matches!(
        store.issue(alice().not_after(T0)).await,
        Err(Error::InvalidRequest {
            field: "not_after",
            ..
        })
    ));
}

async fn restart_keeps_keys(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let k = store.issue(alice()).await.expect("issue");
    let r = store.issue(alice().client("old")).await.expect("issue");
    store.revoke(r.key_id(), "x", "t").await.expect("revoke");
    send(&verifier(&store, &clock), k.key_id(), &secret_of(&k), T0)
        .await
        .expect("before");
    store.close().await;
    drop(store);

    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let v = verifier(&store, &clock);
    send(&v, k.key_id(), &secret_of(&k), T0)
        .await
        .expect("after restart");
    assert_eq!(
        send(&v, r.key_id(), &secret_of(&r), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    assert_eq!(store.list(None).await.expect("list").len(), 2);
}

async fn wrong_master_key_is_a_clear_error(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    store.issue(alice()).await.expect("issue");
    store.close().await;

    let err = SqlKeyStore::open(&db.url, ring(&[(1, 2)]), options(&clock))
        .await
        .expect_err("wrong key");
    assert!(
        matches!(err, Error::WrongMasterKey { version: 1 }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("does not open this database's canary"),
        "{err}"
    );
    // A newer key alone cannot open rows sealed under version 1.
    let err = SqlKeyStore::open(&db.url, ring(&[(2, 2)]), options(&clock))
        .await
        .expect_err("no v1");
    assert!(
        matches!(&err, Error::MasterKeyVersionMissing { versions } if versions == &[1]),
        "{err:?}"
    );
    // Right v1 but a wrong key for a version that has a canary.
    SqlKeyStore::open(&db.url, ring(&[(1, 1), (2, 2)]), options(&clock))
        .await
        .expect("adds v2 canary")
        .close()
        .await;
    let err = SqlKeyStore::open(&db.url, ring(&[(1, 1), (2, 3)]), options(&clock))
        .await
        .expect_err("wrong v2");
    assert!(
        matches!(err, Error::WrongMasterKey { version: 2 }),
        "{err:?}"
    );
    // The right keys still open.
    db.open(ring(&[(1, 1), (2, 2)]), options(&clock))
        .await
        .close()
        .await;

    // Every canary row deleted while keys remain: refused whatever the
    // master key, never taken for a new database (which would let a wrong
    // key in and orphan every key), and nothing written.
    db.exec("DELETE FROM tessera_master_canary").await;
    for keys in [ring(&[(1, 2)]), ring(&[(1, 1), (2, 2)])] {
        let err = SqlKeyStore::open(&db.url, keys, options(&clock))
            .await
            .expect_err("no canary");
        assert!(
            matches!(err, Error::CanaryMissing { version: 1 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("restore the canary"), "{err}");
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_master_canary")
            .await,
        0
    );
}

async fn rewrap_while_verifying(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut keys = Vec::new();
    for i in 0..7 {
        keys.push(
            store
                .issue(IssueRequest::new(format!("owner{i}"), "t"))
                .await
                .expect("issue"),
        );
    }
    store.close().await;

    // Version 2 added: old rows still open; new ones are sealed under 2.
    let mut opts = options(&clock);
    opts.rewrap_batch = 2;
    // No cache: every verification below reads (and opens) its row.
    opts.cache_capacity = 0;
    let store = db.open(ring(&[(1, 1), (2, 2)]), opts).await;
    let v = verifier(&store, &clock);
    send(&v, keys[0].key_id(), &secret_of(&keys[0]), T0)
        .await
        .expect("v1 row opens");
    let fresh = store
        .issue(IssueRequest::new("late", "t"))
        .await
        .expect("issue");
    assert_eq!(
        store
            .show(fresh.key_id())
            .await
            .expect("show")
            .expect("fresh")
            .master_version,
        2
    );

    // Verify every key in a loop while rewrap runs.
    let verifying = {
        let store = store.clone();
        let keys: Vec<(KeyId, SecretKey)> = keys
            .iter()
            .map(|k| (k.key_id().clone(), secret_of(k)))
            .collect();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..15 {
                let v = verifier(&store, &clock);
                for (id, secret) in &keys {
                    send(&v, id, secret, T0)
                        .await
                        .expect("verifies during rewrap");
                    ok += 1;
                }
            }
            ok
        })
    };
    let report = store.rewrap("test:ops").await.expect("rewrap");
    assert_eq!(verifying.await.expect("task"), 15 * 7);
    assert_eq!(report.to_version, 2);
    assert_eq!(report.rewrapped, 7);
    assert!(report.failed.is_empty());
    assert!(store
        .list(None)
        .await
        .expect("list")
        .iter()
        .all(|r| r.master_version == 2 && r.seal_intact));
    assert!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'rewrap'")
            .await
            >= 4
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_master_canary")
            .await,
        1,
        "v1 canary retired"
    );
    store.close().await;

    // Version 1 can now be dropped from the ring.
    let store = db.open(ring(&[(2, 2)]), options(&clock)).await;
    let v = verifier(&store, &clock);
    for k in &keys {
        send(&v, k.key_id(), &secret_of(k), T0)
            .await
            .expect("after rewrap, v2 only");
    }
    assert_eq!(
        store
            .rewrap("test:ops")
            .await
            .expect("nothing to do")
            .rewrapped,
        0
    );
}

async fn tampered_rows_are_refused(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let req = || alice().not_after(T0 + 1000);
    let donor = store.issue(req()).await.expect("donor");
    let d = donor.key_id().as_str().to_string();
    let garbage = match driver {
        Driver::Sqlite => "X'01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'",
        Driver::Postgres => {
            "'\\x01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea"
        }
    };
    // (what, statement with {id} for the victim's key id)
    let edits: Vec<(&str, String)> = vec![
        ("ciphertext copied from another row", format!(
            "UPDATE tessera_keys SET sealed_secret = (SELECT sealed_secret FROM tessera_keys WHERE key_id = '{d}') WHERE key_id = '{{id}}'")),
        ("ciphertext replaced", format!("UPDATE tessera_keys SET sealed_secret = {garbage} WHERE key_id = '{{id}}'")),
        ("owner", "UPDATE tessera_keys SET owner = 'mallory' WHERE key_id = '{id}'".into()),
        ("client", "UPDATE tessera_keys SET client = 'evil' WHERE key_id = '{id}'".into()),
        ("scopes", "UPDATE tessera_keys SET scopes = '[\"admin\",\"orders:read\",\"orders:write\"]' WHERE key_id = '{id}'".into()),
        ("not_after extended", "UPDATE tessera_keys SET not_after = not_after + 1000000 WHERE key_id = '{id}'".into()),
        ("not_after removed", "UPDATE tessera_keys SET not_after = NULL WHERE key_id = '{id}'".into()),
        ("not_before", "UPDATE tessera_keys SET not_before = not_before - 10 WHERE key_id = '{id}'".into()),
        ("attributes", "UPDATE tessera_keys SET attributes = '{\"company\":42,\"plan\":\"enterprise\"}' WHERE key_id = '{id}'".into()),
        ("attributes removed", "UPDATE tessera_keys SET attributes = NULL WHERE key_id = '{id}'".into()),
        ("master_version", "UPDATE tessera_keys SET master_version = 2 WHERE key_id = '{id}'".into()),
    ];
    let v = verifier(&store, &clock);
    for (what, sql) in &edits {
        let victim = store.issue(req()).await.expect("victim");
        let id = victim.key_id().as_str();
        assert_eq!(db.exec(&sql.replace("{id}", id)).await, 1, "{what}");
        let before = store.stats().seal_failures;
        let outcome = send(&v, victim.key_id(), &secret_of(&victim), T0).await;
        assert_eq!(
            outcome.err(),
            Some(ErrorCode::StoreUnavailable),
            "{what}: must be refused"
        );
        assert_eq!(store.stats().seal_failures, before + 1, "{what}");
        let shown = store
            .show(victim.key_id())
            .await
            .expect("show")
            .expect("row");
        assert!(!shown.seal_intact, "{what}");
        store
            .revoke(victim.key_id(), "tampered", "t")
            .await
            .expect("clean up");
    }

    // The key id moved: the victim's row (and secret) under the donor's id.
    let victim = store.issue(req()).await.expect("victim");
    let other = store.issue(req()).await.expect("other");
    let o = other.key_id().as_str();
    db.exec(&format!("DELETE FROM tessera_keys WHERE key_id = '{o}'"))
        .await;
    db.exec(&format!(
        "UPDATE tessera_keys SET key_id = '{o}' WHERE key_id = '{}'",
        victim.key_id()
    ))
    .await;
    for secret in [secret_of(&victim), secret_of(&other)] {
        assert_eq!(
            send(&v, other.key_id(), &secret, T0).await.err(),
            Some(ErrorCode::StoreUnavailable),
            "a row moved to another key id is refused"
        );
    }
    // Rewrap under a new version skips (and reports) every altered row,
    // never re-sealing one as valid; the untouched donor moves over.
    store.close().await;
    // A row claims version 2, which has no canary: as if its canary had
    // been deleted. No canary is written for it now (it would vouch for
    // whatever key the ring holds as version 2): the open is refused until
    // the row goes (or the canary is restored).
    let err = SqlKeyStore::open(&db.url, ring(&[(1, 1), (2, 2)]), options(&clock))
        .await
        .expect_err("keys under a version without its canary");
    assert!(
        matches!(err, Error::CanaryMissing { version: 2 }),
        "{err:?}"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_master_canary")
            .await,
        1
    );
    assert_eq!(
        db.exec("DELETE FROM tessera_keys WHERE master_version = 2")
            .await,
        1
    );
    let store = db.open(ring(&[(1, 1), (2, 2)]), options(&clock)).await;
    let report = store.rewrap("t").await.expect("rewrap");
    assert_eq!(report.rewrapped, 1, "{report:?}");
    // Every edited row but the one whose master_version was set to 2 (the
    // current version, so rewrap does not pick it up), plus the moved row.
    assert_eq!(report.failed.len(), edits.len() - 1 + 1, "{report:?}");
    assert!(report.failed.iter().any(|id| id == o), "{report:?}");
    assert!(!report.failed.contains(&d));
    let v = verifier(&store, &clock);
    send(&v, donor.key_id(), &secret_of(&donor), T0)
        .await
        .expect("donor intact");
    assert_eq!(
        send(&v, other.key_id(), &secret_of(&victim), T0)
            .await
            .err(),
        Some(ErrorCode::StoreUnavailable)
    );
    // Canaries stay while altered rows remain under version 1.
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_master_canary")
            .await,
        2
    );
}

/// Key ids left by hand edits on SQLite as a blob (before the type
/// triggers, or with them dropped) or as text that is not UTF-8: a rewrap
/// ends, naming each once as a failure, even one row per batch (paged by
/// key id, such rows once came back in every batch, for ever); revoking
/// the owner's keys revokes them all (an id returned as a blob once failed
/// the whole revoke). PostgreSQL's types refuse such edits.
async fn a_key_id_stored_as_a_blob_stops_neither_rewrap_nor_revoke(driver: Driver, test: &str) {
    if driver == Driver::Postgres {
        return;
    }
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(
            store
                .issue(IssueRequest::new("erin", "t"))
                .await
                .expect("issue"),
        );
    }
    store.close().await;
    let odd = keys[1].key_id().as_str().to_owned();
    db.exec("DROP TRIGGER tessera_keys_types_on_update").await;
    assert_eq!(
        db.exec(&format!(
            "UPDATE tessera_keys SET key_id = CAST(key_id AS BLOB) WHERE key_id = '{odd}'"
        ))
        .await,
        1
    );
    // Text, but not UTF-8: `k1.` and the byte 0xf8.
    assert_eq!(
        db.exec(&format!(
            "UPDATE tessera_keys SET key_id = CAST(X'6b312ef8' AS TEXT) WHERE key_id = '{}'",
            keys[3].key_id()
        ))
        .await,
        1
    );
    // Another broken row sorting before the blob, as in the loop found.
    assert_eq!(
        db.exec(&format!(
            "UPDATE tessera_keys SET sealed_secret = zeroblob(60) WHERE key_id = '{}'",
            keys[0].key_id()
        ))
        .await,
        1
    );

    let mut opts = options(&clock);
    opts.rewrap_batch = 1;
    let store = db.open(ring(&[(1, 1), (2, 2)]), opts).await;
    let report = tokio::time::timeout(Duration::from_secs(20), store.rewrap("test:ops"))
        .await
        .expect("the rewrap ends")
        .expect("rewrap");
    assert_eq!(report.rewrapped, 1, "{report:?}");
    let mut failed = report.failed.clone();
    failed.sort();
    let mut expected = vec![
        keys[0].key_id().as_str().to_owned(),
        odd.clone(),
        "k1.\u{fffd}".to_owned(),
    ];
    expected.sort();
    assert_eq!(failed, expected, "each broken row once");

    let revoked = store
        .revoke_owner("erin", "lost phone", "test:ops")
        .await
        .expect("revoke the owner's keys");
    assert_eq!(revoked, 4);
    let listed = store.list(Some("erin")).await.expect("list");
    assert!(
        listed
            .iter()
            .all(|k| k.metadata.state == tessera_server::KeyState::Revoked),
        "{listed:?}"
    );
}

/// Rows edited into something the store never writes (text that does not
/// parse, which the database's own checks let through): their keys are refused, `list`
/// leaves them out, `list_unreadable` names each with what is wrong, and
/// `show` says the row exists but cannot be read instead of "unknown".
/// A rewrap's first page starts before any row: a SQLite rowid of 0 or
/// below (a hand edit, or an insert naming the rowid) and a PostgreSQL key
/// id `''` were once never read, the rewrap reported success and the old
/// master key could never leave the keyring. After the pass the store reads
/// again what is left under an older version: a row written back behind
/// the pass (here by a trigger standing in for a restore from a backup
/// while the rewrap runs) makes the report incomplete.
async fn a_rewrap_reads_every_row_and_names_what_it_leaves(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(
            store
                .issue(IssueRequest::new("fay", "t"))
                .await
                .expect("issue"),
        );
    }
    store.close().await;
    let id = |i: usize| keys[i].key_id().as_str().to_owned();
    let copied = match driver {
        Driver::Sqlite => {
            for (i, rowid) in [(1, 0), (2, -7)] {
                let moved = format!(
                    "UPDATE tessera_keys SET rowid = {rowid} WHERE key_id = '{}'",
                    id(i)
                );
                assert_eq!(db.exec(&moved).await, 1);
            }
            None
        }
        Driver::Postgres => {
            // A copy of a row under the key id '' (its seal, bound to the
            // original id, does not open under this one).
            let copy = format!(
                "INSERT INTO tessera_keys (key_id, owner, client, scopes, state, not_before, \
                 not_after, created_at, master_version, sealed_secret) SELECT '', owner, client, \
                 scopes, state, not_before, not_after, created_at, master_version, sealed_secret \
                 FROM tessera_keys WHERE key_id = '{}'",
                id(1)
            );
            assert_eq!(db.exec(&copy).await, 1);
            Some(String::new())
        }
    };

    let store = db.open(ring(&[(1, 1), (2, 2)]), options(&clock)).await;
    let report = store.rewrap("test:ops").await.expect("rewrap");
    assert_eq!(report.rewrapped, 5, "{report:?}");
    assert_eq!(report.failed, copied.into_iter().collect::<Vec<_>>());
    assert!(report.left_behind.is_empty(), "{report:?}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_keys WHERE master_version = 1")
            .await,
        i64::from(driver == Driver::Postgres),
        "only the row that does not open"
    );
    store.close().await;
    if driver == Driver::Postgres {
        return;
    }

    // SQLite: key 0 is sealed under version 2 now; when the rewrap to
    // version 3 re-seals the last row, the trigger writes key 0 back as
    // it was under version 2, behind the pass.
    db.exec(&format!(
        "CREATE TABLE saved_seal AS SELECT sealed_secret FROM tessera_keys WHERE key_id = '{}'",
        id(0)
    ))
    .await;
    db.exec(&format!(
        "CREATE TRIGGER restore_behind AFTER UPDATE OF master_version ON tessera_keys \
         WHEN NEW.key_id = '{}' AND NEW.master_version = 3 BEGIN \
         UPDATE tessera_keys SET master_version = 2, \
         sealed_secret = (SELECT sealed_secret FROM saved_seal) WHERE key_id = '{}'; END",
        id(4),
        id(0)
    ))
    .await;
    let store = db.open(ring(&[(2, 2), (3, 3)]), options(&clock)).await;
    let report = store.rewrap("test:ops").await.expect("rewrap");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.left_behind, vec![id(0)], "{report:?}");
    assert!(!report.is_complete());
    // The key still opens (version 2 is in the keyring), and once the
    // trigger is gone a second rewrap completes.
    db.exec("DROP TRIGGER restore_behind").await;
    let report = store.rewrap("test:ops").await.expect("rewrap");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.rewrapped, 1);
    store.close().await;
}

async fn unreadable_rows_are_listed_with_their_reason(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let good = store.issue(alice()).await.expect("good");
    let bad_attributes = store.issue(alice()).await.expect("bad attributes");
    let bad_scopes = store
        .issue(IssueRequest::new("bob", "t"))
        .await
        .expect("bad scopes");
    let edits = [
        (
            &bad_attributes,
            "UPDATE tessera_keys SET attributes = '{\"plan\":' WHERE key_id = '{id}'",
        ),
        (
            &bad_scopes,
            "UPDATE tessera_keys SET scopes = 'read' WHERE key_id = '{id}'",
        ),
    ];
    for (key, sql) in edits {
        assert_eq!(
            db.exec(&sql.replace("{id}", key.key_id().as_str())).await,
            1
        );
    }
    let v = verifier(&store, &clock);
    for key in [&bad_attributes, &bad_scopes] {
        assert_eq!(
            send(&v, key.key_id(), &secret_of(key), T0).await.err(),
            Some(ErrorCode::StoreUnavailable)
        );
    }
    send(&v, good.key_id(), &secret_of(&good), T0)
        .await
        .expect("the untouched key verifies");

    let listed = store.list(None).await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.key_id.as_str()).collect::<Vec<_>>(),
        vec![good.key_id().as_str()]
    );
    let unreadable = store.list_unreadable(None).await.expect("list_unreadable");
    // Oldest first, then by key id: both were issued in the same second.
    let named: Vec<(&str, &str, &str)> = unreadable
        .iter()
        .map(|u| (u.key_id.as_str(), u.owner.as_str(), u.reason))
        .collect();
    let mut expected = vec![
        (
            bad_attributes.key_id().as_str(),
            "alice",
            "attributes is not JSON",
        ),
        (
            bad_scopes.key_id().as_str(),
            "bob",
            "scopes is not a JSON array of strings",
        ),
    ];
    expected.sort_unstable();
    assert_eq!(named, expected);
    assert_eq!(
        store.list_unreadable(Some("bob")).await.expect("bob").len(),
        1
    );
    match store.show(bad_attributes.key_id()).await {
        Err(Error::RowUnreadable { key_id, reason }) => {
            assert_eq!(key_id, bad_attributes.key_id().as_str());
            assert_eq!(reason, "attributes is not JSON");
        }
        other => panic!("expected RowUnreadable, got {other:?}"),
    }
    assert!(store.show(good.key_id()).await.expect("show").is_some());

    // A value of the wrong type in a column that is not even sealed would
    // make every read of the table fail (listing, rewrapping): refused by
    // the database, by its types on PostgreSQL and by triggers on SQLite.
    for sql in [
        "UPDATE tessera_keys SET last_used_at = 'never' WHERE key_id = '{id}'",
        "UPDATE tessera_keys SET master_version = 'one' WHERE key_id = '{id}'",
        "UPDATE tessera_keys SET not_after = '2030-01-01' WHERE key_id = '{id}'",
    ] {
        let sql = sql.replace("{id}", good.key_id().as_str());
        let refused = db.try_exec(&sql).await.expect_err(&sql);
        assert!(
            refused.contains("tessera_keys") || refused.contains("invalid input syntax"),
            "{sql}: {refused}"
        );
    }
    assert_eq!(store.list(None).await.expect("list").len(), 1);
    store.close().await;
}

async fn unbound_columns_are_plain_updates(driver: Driver, test: &str) {
    // Documented: revocation state is not sealed, so revoking by hand works,
    // and so does restoring an earlier copy of a row (un-revoking).
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    opts.cache_capacity = 0;
    let store = db.open(ring(&[(1, 1)]), opts).await;
    let k = store.issue(alice()).await.expect("issue");
    let v = verifier(&store, &clock);
    let id = k.key_id().as_str();
    db.exec(&format!(
        "UPDATE tessera_keys SET state = 'revoked', revoked_at = {T0} WHERE key_id = '{id}'"
    ))
    .await;
    assert_eq!(
        send(&v, k.key_id(), &secret_of(&k), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    db.exec(&format!("UPDATE tessera_keys SET state = 'active', revoked_at = NULL, last_used_at = 5, created_at = 1 WHERE key_id = '{id}'")).await;
    send(&v, k.key_id(), &secret_of(&k), T0)
        .await
        .expect("un-revoked by a plain update");
}

async fn per_owner_limit(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    opts.max_active_keys_per_owner = 3;
    let store = db.open(ring(&[(1, 1)]), opts).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        keys.push(store.issue(alice()).await.expect("issue"));
    }
    let short = store
        .issue(alice().ttl(Duration::from_secs(10)))
        .await
        .expect("third");
    let err = store.issue(alice()).await.expect_err("fourth");
    assert!(
        matches!(
            err,
            Error::OwnerLimit {
                active: 3,
                limit: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoke one"), "{err}");
    store
        .issue(IssueRequest::new("bob", "t"))
        .await
        .expect("other owners unaffected");
    // Revoked and expired keys do not count.
    store
        .revoke(keys[0].key_id(), "x", "t")
        .await
        .expect("revoke");
    store.issue(alice()).await.expect("after a revoke");
    clock.set(T0 + 11);
    drop(short);
    store.issue(alice()).await.expect("after an expiry");
    assert!(store.issue(alice()).await.is_err());
    // Rotation does not count against the limit.
    store
        .rotate(keys[1].key_id(), Duration::from_secs(60), "t")
        .await
        .expect("rotate at the limit");
}

async fn per_owner_limit_under_concurrency(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    opts.max_active_keys_per_owner = 4;
    let store = db.open(ring(&[(1, 1)]), opts).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.issue(alice()).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(Error::OwnerLimit { .. }) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(store.list(Some("alice")).await.expect("list").len(), 4);
}

async fn made_up_key_ids_cause_no_query(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    // Changes reach this store by a quick poller only, so that the test can
    // wait for them below (the listener has tests of its own).
    opts.change_poll_interval = Duration::from_millis(20);
    opts.listen_notifications = false;
    let store = db.open(ring(&[(1, 1)]), opts).await;
    let real = store.issue(alice()).await.expect("issue");
    let before = store.stats();
    let real_id = real.key_id().as_str();
    for i in 0..2000u32 {
        let fake = match i % 4 {
            0 => format!("k1.{}.AAAAAAAAAAA", &real_id[3..25]),
            1 => format!("k1.{:022}.{}", i, &real_id[26..]),
            2 => format!("user-{i}"),
            _ => format!("k1.{}", hex::encode(rand::random::<[u8; 16]>())),
        };
        let fake = KeyId::new(&fake).expect("id");
        assert!(store.resolve(&fake).await.expect("no error").is_none());
    }
    let after = store.stats();
    assert_eq!(
        after.db_lookups, before.db_lookups,
        "no query for made-up ids"
    );
    assert_eq!(after.tag_rejections, before.tag_rejections + 2000);
    // A well-tagged id whose row is gone: one look-up, then the negative cache.
    db.exec(&format!(
        "DELETE FROM tessera_keys WHERE key_id = '{real_id}'"
    ))
    .await;
    // Let the poller deliver the insert and the delete first: a change
    // arriving during the loop below drops the negative entry, as it must,
    // and costs a second look-up.
    let changes =
        u64::try_from(db.scalar("SELECT COUNT(*) FROM tessera_key_changes").await).expect("count");
    settle(&store, |s| s.remote_invalidations >= changes).await;
    let after = store.stats();
    for _ in 0..50 {
        assert!(store
            .resolve(real.key_id())
            .await
            .expect("no error")
            .is_none());
    }
    let last = store.stats();
    assert_eq!(last.db_lookups, after.db_lookups + 1);
    assert_eq!(last.negative_hits, after.negative_hits + 49);
}

/// Waits (at most 10 s) until the store's counters satisfy `done`.
async fn settle(store: &SqlKeyStore, done: impl Fn(&StoreStats) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&store.stats()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never saw the changes: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn lookup_rate_limit(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    // A bucket of 2 refilled at 2/s: 12 quick look-ups cannot all pass
    // unless they take over 5 s, however loaded the machine.
    opts.max_lookups_per_second = 2;
    let store = db.open(ring(&[(1, 1)]), opts).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            store
                .issue(IssueRequest::new(format!("o{i}"), "t"))
                .await
                .expect("issue")
                .key_id()
                .clone(),
        );
    }
    let started = std::time::Instant::now();
    let mut ok = 0;
    let mut limited = 0;
    for id in &ids {
        match store.resolve(id).await {
            Ok(Some(_)) => ok += 1,
            Err(e) => {
                assert!(e.to_string().contains("rate limit"), "{e}");
                limited += 1;
            }
            Ok(None) => panic!("known key"),
        }
    }
    if started.elapsed() < Duration::from_secs(5) {
        assert!(limited >= 1, "ok {ok}, limited {limited}");
    }
    assert!(ok >= 2, "the burst passes: ok {ok}");
    let stats: StoreStats = store.stats();
    assert_eq!(stats.rate_limited, limited);
    assert_eq!(stats.db_lookups, ok);
}

async fn last_used_is_batched(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let k = store.issue(alice()).await.expect("issue");
    let v = verifier(&store, &clock);
    send(&v, k.key_id(), &secret_of(&k), T0).await.expect("ok");
    assert_eq!(
        store
            .show(k.key_id())
            .await
            .expect("show")
            .expect("k")
            .last_used_at,
        None,
        "not on the request path"
    );
    assert_eq!(store.flush_last_used().await.expect("flush"), 1);
    assert_eq!(
        store
            .show(k.key_id())
            .await
            .expect("show")
            .expect("k")
            .last_used_at,
        Some(T0)
    );
    // More uses within the minute write nothing.
    for _ in 0..5 {
        send(&v, k.key_id(), &secret_of(&k), T0).await.expect("ok");
    }
    assert_eq!(store.flush_last_used().await.expect("flush"), 0);
    assert_eq!(store.stats().last_used_writes, 1);
    // last_used_at changes bump no counter and need no audit row.
    assert_eq!(store.change_counter().await.expect("counter"), 1);
}

async fn secrets_never_in_the_database(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 1)]), options(&clock)).await;
    let mut secrets = Vec::new();
    for i in 0..8 {
        let k = store
            .issue(alice().client(format!("device-{i}")))
            .await
            .expect("issue");
        secrets.push(secret_of(&k));
        if i % 3 == 0 {
            let r = store
                .rotate(k.key_id(), Duration::from_secs(60), "t")
                .await
                .expect("rotate");
            secrets.push(secret_of(&r));
        }
    }
    // While the store is open (SQLite: the -wal file holds the recent writes).
    let mut contents = db.raw_contents();
    store.close().await;
    // Rewrap under a second master key, so old and new ciphertexts are both in the files.
    let store = db.open(ring(&[(1, 1), (2, 2)]), options(&clock)).await;
    store.rewrap("t").await.expect("rewrap");
    contents.extend(db.raw_contents());
    store.close().await;
    contents.extend(db.raw_contents());
    if driver == Driver::Sqlite {
        assert!(
            contents
                .iter()
                .any(|(name, bytes)| name.ends_with("-wal") && !bytes.is_empty()),
            "the WAL was searched"
        );
    }
    for secret in &secrets {
        let raw = secret.expose_secret();
        let hex_lower = hex::encode(raw);
        let hex_upper = hex_lower.to_uppercase();
        for (name, bytes) in &contents {
            assert!(!contains(bytes, raw), "raw secret found in {name}");
            assert!(
                !contains(bytes, hex_lower.as_bytes()),
                "hex secret found in {name}"
            );
            assert!(
                !contains(bytes, hex_upper.as_bytes()),
                "HEX secret found in {name}"
            );
        }
    }
    // And the files do hold the keys (the search looks at the real data).
    let first_id = db.scalar("SELECT COUNT(*) FROM tessera_keys").await;
    assert_eq!(first_id as usize, secrets.len());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn open_errors_are_clear(driver: Driver, test: &str) {
    let Some(db) = Db::empty(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    match driver {
        Driver::Sqlite => {
            let err = SqlKeyStore::open(&db.url, ring(&[(1, 1)]), options(&clock))
                .await
                .expect_err("no file");
            assert!(matches!(err, Error::SqliteFileMissing { .. }), "{err:?}");
            assert!(err.to_string().contains("mode=rwc"), "{err}");
            let err = SqlKeyStore::open(
                &format!("{}?mode=rwc", db.url),
                ring(&[(1, 1)]),
                options(&clock),
            )
            .await
            .expect_err("no schema");
            assert!(matches!(err, Error::SchemaNotCurrent { .. }), "{err:?}");
            let err = SqlKeyStore::open("sqlite::memory:", ring(&[(1, 1)]), options(&clock))
                .await
                .expect_err("memory");
            assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
        }
        Driver::Postgres => {
            let err = SqlKeyStore::open(&db.url, ring(&[(1, 1)]), options(&clock))
                .await
                .expect_err("no schema");
            assert!(matches!(err, Error::SchemaNotCurrent { .. }), "{err:?}");
            let bad = db.url.replace("postgres@", "nobody:hunter2@");
            let err = SqlKeyStore::open(&bad, ring(&[(1, 1)]), options(&clock))
                .await
                .expect_err("bad user");
            assert!(matches!(err, Error::Connect { .. }), "{err:?}");
            assert!(
                !err.to_string().contains("hunter2"),
                "password redacted: {err}"
            );
            assert!(std::error::Error::source(&err).is_some());
            let closed = "postgres://postgres@127.0.0.1:1/postgres";
            let err = SqlKeyStore::open(closed, ring(&[(1, 1)]), options(&clock))
                .await
                .expect_err("closed port");
            assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        }
    }
    let err = SqlKeyStore::open("mysql://x/y", ring(&[(1, 1)]), options(&clock))
        .await
        .expect_err("scheme");
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    // With SchemaPolicy::Migrate, open creates the schema itself.
    let url = match driver {
        Driver::Sqlite => format!("{}?mode=rwc", db.url),
        Driver::Postgres => db.url.clone(),
    };
    let store = SqlKeyStore::open(
        &url,
        ring(&[(1, 1)]),
        options(&clock).with_schema(SchemaPolicy::Migrate),
    )
    .await
    .expect("open with migrate");
    store.issue(alice()).await.expect("issue");
    let _ = Arc::new(store);
}

async fn issue_batch_is_all_or_nothing(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut o = options(&clock);
    o.max_active_keys_per_owner = 3;
    let store = db.open(ring(&[(1, 1)]), o).await;
    let v = verifier(&store, &clock);
    let issued = store
        .issue_batch(&[alice(), alice(), IssueRequest::new("bob", "t")])
        .await
        .expect("batch");
    assert_eq!(issued.len(), 3);
    for k in &issued {
        send(&v, k.key_id(), &secret_of(k), T0)
            .await
            .expect("verified");
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tessera_key_audit WHERE action = 'issue'")
            .await,
        3
    );
    // Past alice's limit: nothing of the batch is issued.
    let err = store
        .issue_batch(&[IssueRequest::new("carol", "t"), alice(), alice()])
        .await
        .expect_err("over the limit");
    assert!(matches!(err, Error::OwnerLimit { .. }), "{err:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tessera_keys").await, 3);
}

/// A request took its copy of a key (here from the cache) before the key
/// was revoked; another request then read the revoked row and was refused
/// before its MAC (no `verified` for it). When the first request's MAC
/// verifies, its stale, active copy must not be cached: every later
/// request still sees the key revoked. (Rotation is the same case: the
/// stale copy would keep the old, longer `not_after`.)
async fn a_copy_taken_before_a_revocation_is_never_cached(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let store = db.open(ring(&[(1, 7)]), options(&clock)).await;
    let issued = store.issue(alice()).await.expect("issue");
    // The issue's own change-log entry, which drops the key, seen first.
    settle(&store, |s| s.notifications + s.remote_invalidations >= 1).await;
    let id = issued.key_id().clone();
    let first = store.resolve(&id).await.expect("resolve").expect("known");
    store.verified(&id, &first);
    let stale = store.resolve(&id).await.expect("resolve").expect("known");
    assert_eq!(stale.metadata().state, KeyState::Active);
    assert!(store.revoke(&id, "stolen", "test").await.expect("revoke"));
    // The revocation's own log entry seen too: arriving between the reads
    // below, it would drop the recent read that `later` is to reuse.
    settle(&store, |s| s.notifications + s.remote_invalidations >= 2).await;
    let read = store.resolve(&id).await.expect("resolve").expect("known");
    assert_eq!(read.metadata().state, KeyState::Revoked);
    store.verified(&id, &stale);
    let later = store.resolve(&id).await.expect("resolve").expect("known");
    assert_eq!(later.metadata().state, KeyState::Revoked);
    let v = verifier(&store, &clock);
    assert_eq!(
        send(&v, &id, &secret_of(&issued), T0).await.err(),
        Some(ErrorCode::KeyRevoked)
    );
    // The read that did see the revocation is what later requests get.
    let stats = store.stats();
    assert!(stats.recent_read_hits >= 1, "{stats:?}");
}

/// Requests naming a revoked key (its id is public, no secret needed) are
/// refused before their MAC, so the key is never cached: without reusing
/// the last read, each would spend a database look-up from the budget that
/// uncached valid keys need. One look-up serves them all, and a valid
/// uncached key still verifies.
async fn requests_naming_a_revoked_key_read_the_database_once(driver: Driver, test: &str) {
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    opts.max_lookups_per_second = 20;
    let store = db.open(ring(&[(1, 7)]), opts).await;
    let dead = store
        .issue(IssueRequest::new("mallory", "t"))
        .await
        .expect("issue");
    assert!(store.revoke(dead.key_id(), "x", "t").await.expect("revoke"));
    let victim = store.issue(alice()).await.expect("issue");
    let v = verifier(&store, &clock);
    let junk = SecretKey::from_bytes(&[9; 32]).expect("secret");
    let before = store.stats();
    for _ in 0..300 {
        assert_eq!(
            send(&v, dead.key_id(), &junk, T0).await.err(),
            Some(ErrorCode::KeyRevoked)
        );
    }
    // A real key id with a wrong signature: read once, then reused too.
    for _ in 0..100 {
        assert_eq!(
            send(&v, victim.key_id(), &junk, T0).await.err(),
            Some(ErrorCode::BadSignature)
        );
    }
    let after = store.stats();
    assert!(
        after.db_lookups - before.db_lookups <= 4,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.recent_read_hits - before.recent_read_hits >= 390,
        "{after:?}"
    );
    assert_eq!(after.rate_limited, before.rate_limited, "{after:?}");
    send(&v, victim.key_id(), &secret_of(&victim), T0)
        .await
        .expect("the valid key still verifies");
}

/// PostgreSQL: a store does not open while a change trigger is disabled
/// (no change would reach other replicas), and `migrate` puts both back to
/// firing for every session, which `ENABLE TRIGGER ALL` (the end of a
/// `pg_restore --disable-triggers`) does not.
async fn disabled_change_triggers_are_refused_and_migrate_restores_them(
    driver: Driver,
    test: &str,
) {
    if driver != Driver::Postgres {
        return;
    }
    let Some(db) = Db::new(driver, test).await else {
        return;
    };
    let clock = ManualClock::new(T0);
    let modes = "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'tessera_keys'::regclass \
                 AND NOT tgisinternal AND tgenabled = 'A'";
    assert_eq!(db.scalar(modes).await, 2);
    // Their functions find the log table by the schema itself, not by a
    // search path that depends on who calls them ("$user").
    let pinned = "SELECT COUNT(*) FROM pg_proc WHERE proname IN \
                  ('tessera_keys_changed', 'tessera_keys_truncated') \
                  AND proconfig @> ARRAY['search_path=pg_catalog, public, pg_temp']";
    assert_eq!(db.scalar(pinned).await, 2);
    db.exec("ALTER TABLE tessera_keys DISABLE TRIGGER ALL")
        .await;
    let err = SqlKeyStore::open(&db.url, ring(&[(1, 1)]), options(&clock))
        .await
        .expect_err("a disabled trigger");
    assert!(
        matches!(&err, Error::SchemaNotCurrent { state } if state.contains("tessera_keys_changed")),
        "{err:?}"
    );
    // As a restore leaves them: firing for ordinary sessions only. The
    // store opens (and warns); migrate restores the mode.
    db.exec("ALTER TABLE tessera_keys ENABLE TRIGGER ALL").await;
    assert_eq!(db.scalar(modes).await, 0);
    db.open(ring(&[(1, 1)]), options(&clock))
        .await
        .close()
        .await;
    SqlKeyStore::migrate(&db.url).await.expect("migrate");
    assert_eq!(db.scalar(modes).await, 2);
}

/// Two processes opening a new database at once with different master key
/// versions: one wins, the other is refused, and the database holds one
/// check key (two would leave no ring that opens it).
async fn two_first_opens_with_different_keys_leave_one_check_key(driver: Driver, test: &str) {
    for trial in 0..4 {
        let Some(db) = Db::new(driver, &format!("{test}-{trial}")).await else {
            return;
        };
        let clock = ManualClock::new(T0);
        let (one, two) = tokio::join!(
            SqlKeyStore::open(&db.url, ring(&[(1, 1)]), options(&clock)),
            SqlKeyStore::open(&db.url, ring(&[(2, 2)]), options(&clock)),
        );
        assert!(
            one.is_ok() != two.is_ok(),
            "trial {trial}: exactly one opens ({:?}, {:?})",
            one.as_ref().err(),
            two.as_ref().err()
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM tessera_master_canary")
                .await,
            1,
            "trial {trial}"
        );
        let winner = if one.is_ok() {
            ring(&[(1, 1)])
        } else {
            ring(&[(2, 2)])
        };
        for store in [one, two].into_iter().flatten() {
            store.close().await;
        }
        db.open(winner, options(&clock)).await.close().await;
    }
}
