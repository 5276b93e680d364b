//! Several gateway instances behind one load balancer: one Redis for
//! nonces, one SQLite key database (administered with `tessera keys`).
//! A replay across instances is refused, a revocation reaches both, and a
//! Redis outage is a 503 that heals without a restart.
//!
//! Redis: a `redis-server` this test starts on a free port (the outage test
//! must stop and restart it, so TESSERA_TEST_REDIS_URL is not used here).
#![allow(clippy::unwrap_used)]

#[path = "../../tessera-server/tests/support/redis_cluster.rs"]
mod redis_cluster;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// A `redis-server` on `port`, without persistence.
fn redis(port: u16) -> Proc {
    spawn_redis(port).expect("redis-server is installed")
}

struct Db {
    url: String,
    master: String,
}

impl Db {
    fn new(dir: &Path) -> Db {
        let master: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let db = Db {
            url: format!("sqlite://{}", dir.join("keys.db").display()),
            master,
        };
        db.tessera(&["keys", "migrate", "--db", &db.url]);
        db
    }

    fn tessera(&self, args: &[&str]) -> String {
        let out = Command::new(tessera_cli())
            .args(args)
            .env("TESSERA_MASTER_KEY", &self.master)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tessera {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn issue(&self, owner: &str) -> Key {
        let json: serde_json::Value = serde_json::from_str(
            self.tessera(&[
                "keys", "issue", "--db", &self.url, "--owner", owner, "--scope", "read", "--json",
            ])
            .trim(),
        )
        .unwrap();
        Key {
            id: json["key_id"].as_str().unwrap().to_owned(),
            secret_hex: json["secret_hex"].as_str().unwrap().to_owned(),
        }
    }

    /// A gateway on this key database whose nonces live in the Redis on
    /// `redis_port`.
    fn gateway(
        &self,
        dir: &Path,
        upstream: &Upstream,
        redis_port: u16,
        authority: &str,
    ) -> Gateway {
        let redis = format!("redis://127.0.0.1:{redis_port}");
        self.gateway_with(dir, upstream, authority, &["--nonce-store", &redis])
    }

    /// A gateway on this key database with the in-memory nonce store.
    fn gateway_alone(&self, dir: &Path, upstream: &Upstream, authority: &str) -> Gateway {
        self.gateway_with(dir, upstream, authority, &[])
    }

    /// A gateway on this key database, serving `authority`, with an admin
    /// listener and the further arguments `more`.
    fn gateway_with(
        &self,
        dir: &Path,
        upstream: &Upstream,
        authority: &str,
        more: &[&str],
    ) -> Gateway {
        let url = upstream.url();
        let mut args = vec![
            "--upstream",
            &url,
            "--keys-db",
            &self.url,
            "--authority",
            authority,
            "--admin",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(more);
        Gateway::start_with_env(dir, &args, &[("TESSERA_MASTER_KEY", &self.master)])
    }

    fn revoke(&self, key: &Key) {
        self.tessera(&["keys", "revoke", "--db", &self.url, &key.id]);
    }
}

/// A key database in a fresh directory with one key of alice's, an
/// upstream, and one gateway on them with the in-memory nonce store.
fn alone_with_alice(
    test: &str,
    authority: &str,
) -> (std::path::PathBuf, Db, Key, Upstream, Gateway) {
    let dir = temp_dir(test);
    let db = Db::new(&dir);
    let alice = db.issue("alice");
    let upstream = Upstream::start(&dir);
    let gateway = db.gateway_alone(&dir, &upstream, authority);
    (dir, db, alice, upstream, gateway)
}

/// A GET of `path` signed with `key` for `authority`, sent to `addr`.
fn signed_get(addr: std::net::SocketAddr, key: &Key, authority: &str, path: &str) -> Reply {
    raw(
        addr,
        &signed(key, "GET", authority, path, b"", &[]),
        Duration::from_secs(30),
    )
    .unwrap()
}

/// A gateway given a Redis started with `redis_args` refuses to start,
/// with `reasons` in its error, and starts and verifies once the
/// configuration file says `allow = true`.
fn refused_at_start_up_unless_allowed(
    test: &str,
    redis_args: &[&str],
    reasons: &[&str],
    allow: &str,
) {
    let dir = temp_dir(test);
    let upstream = Upstream::start(&dir);
    let key = Key::random(&format!("{test}-1"));
    let keys = keys_file(&dir, &[(&key, "alice", &["read"], false)]);
    let port = free_port();
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut args = vec!["--dir", redis_dir.to_str().unwrap()];
    args.extend_from_slice(redis_args);
    let _redis = spawn_redis_with(port, &args).expect("redis-server is installed");
    let url = format!("redis://127.0.0.1:{port}");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--upstream", &upstream.url()])
        .args(["--keys", keys.to_str().unwrap(), "--nonce-store", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A setting no retry mends: an invalid configuration (2), as the
    // operator must change Redis or allow it.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for reason in reasons {
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
    assert!(out.stdout.is_empty(), "it never listened");
    // Allowed in the configuration file: it starts and verifies.
    let config = dir.join("allowed.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[nonce_store]\nredis = \"{url}\"\n{allow} = true\n",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&dir, &["--config", config.to_str().unwrap()]);
    let reply = send_signed(&gateway, &key, "GET", "/v1/ping", b"", &[]);
    assert_eq!(reply.status, 200, "{}", gateway.stderr());
    assert!(gateway.stderr().contains("allowed by configuration"));
}

/// A Redis whose eviction policy may drop live nonces is refused at
/// start-up, with the reason, unless the configuration allows it.
#[test]
fn a_redis_that_may_evict_nonces_is_refused_at_start_up() {
    refused_at_start_up_unless_allowed(
        "evicting-redis",
        &["--maxmemory-policy", "allkeys-lru"],
        &["maxmemory-policy is allkeys-lru", "noeviction"],
        "allow_evicting_policy",
    );
}

/// A Redis with RDB snapshots on (Redis's default `save` rules), whose
/// restart would bring back the epoch keys without the last pairs, is
/// refused at start-up with the reason, unless the configuration allows it.
#[test]
fn a_redis_whose_restart_can_lose_the_last_pairs_is_refused_at_start_up() {
    refused_at_start_up_unless_allowed(
        "snapshotting-redis",
        &["--save", "3600 1"],
        &["RDB snapshots are on", "allow_lossy_persistence"],
        "allow_lossy_persistence",
    );
}

#[test]
fn replicas_share_nonces_and_see_revocations() {
    let dir = temp_dir("replicas");
    let redis_port = free_port();
    let _redis = redis(redis_port);
    let db = Db::new(&dir);
    let alice = db.issue("alice");
    let upstream = Upstream::start(&dir);
    // Both replicas serve the public authority the load balancer answers on.
    let public = "api.example.test";
    let a = db.gateway(&dir, &upstream, redis_port, public);
    let b = db.gateway(&dir, &upstream, redis_port, public);

    let request = signed(&alice, "GET", public, "/v1/me", b"", &[]);
    let first = raw(a.addr, &request, Duration::from_secs(10)).unwrap();
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.echoed("tessera-owner"), ["alice"]);
    let replay = raw(b.addr, &request, Duration::from_secs(10)).unwrap();
    assert_eq!(replay.status, 401);
    assert_eq!(replay.json()["code"], "replayed");

    // A race of the same request on both: exactly one is accepted.
    let racing = signed(&alice, "GET", public, "/v1/race", b"", &[]);
    let (addr_a, addr_b) = (a.addr, b.addr);
    let (ra, rb) = (racing.clone(), racing);
    let ta = std::thread::spawn(move || raw(addr_a, &ra, Duration::from_secs(10)).unwrap().status);
    let tb = std::thread::spawn(move || raw(addr_b, &rb, Duration::from_secs(10)).unwrap().status);
    let mut statuses = [ta.join().unwrap(), tb.join().unwrap()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);

    // Revoked with the CLI: both replicas refuse it within the change poll.
    db.tessera(&[
        "keys",
        "revoke",
        "--db",
        &db.url,
        &alice.id,
        "--reason",
        "lost phone",
    ]);
    for gateway in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(15), || {
                let r = raw(
                    gateway.addr,
                    &signed(&alice, "GET", public, "/v1/after", b"", &[]),
                    Duration::from_secs(10),
                )
                .unwrap();
                r.status == 401 && r.json()["code"] == "key_revoked"
            }),
            "a replica kept accepting a revoked key"
        );
    }
    assert_eq!(
        upstream.paths().iter().filter(|p| *p == "/v1/race").count(),
        1
    );
}

#[test]
fn redis_outage_is_503_and_heals_without_restart() {
    let dir = temp_dir("outage");
    let redis_port = free_port();
    let mut redis_proc = redis(redis_port);
    let db = Db::new(&dir);
    let alice = db.issue("alice");
    let upstream = Upstream::start(&dir);
    let public = "api.example.test";
    let gateway = db.gateway(&dir, &upstream, redis_port, public);
    let admin = gateway.admin.unwrap();
    let get = |path: &str| signed_get(gateway.addr, &alice, public, path);
    assert_eq!(get("/before").status, 200);
    assert_eq!(admin_get(admin, "/readyz").status, 200);

    let _ = redis_proc.child.kill();
    let _ = redis_proc.child.wait();
    let down = get("/during");
    assert_eq!(down.status, 503, "{}", String::from_utf8_lossy(&down.body));
    assert_eq!(down.json()["code"], "store_unavailable");
    let ready = admin_get(admin, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(String::from_utf8_lossy(&ready.body).contains("nonce store"));
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).unwrap();
    assert!(metrics.contains("gateway_store_errors_total"), "{metrics}");

    let _redis = redis(redis_port);
    // A restarted (empty) Redis remembers from its new epoch: requests
    // signed from its memory point on pass again.
    assert!(
        eventually(Duration::from_secs(20), || get("/after").status == 200),
        "no recovery; stderr: {}",
        gateway.stderr()
    );
    assert_eq!(admin_get(admin, "/readyz").status, 200);
    assert!(!upstream.paths().contains(&"/during".to_owned()));
}

#[test]
fn replicas_on_a_redis_cluster_accept_a_raced_request_once() {
    let test = "replicas_on_a_redis_cluster_accept_a_raced_request_once";
    let Some(nodes) = redis_cluster::shared_cluster(test) else {
        return;
    };
    let dir = temp_dir("cluster");
    let db = Db::new(&dir);
    let keys: Vec<Key> = (0..4).map(|i| db.issue(&format!("user{i}"))).collect();
    let upstream = Upstream::start(&dir);
    let public = "api.example.test";
    let config = dir.join("cluster.toml");
    let node_list: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nauthorities = [\"{public}\"]\n[keys]\ndb = \"{}\"\n[nonce_store]\ncluster = [{}]\nprefix = \"gw{}\"\nconnect_timeout_ms = 20000\n",
            upstream.url(),
            db.url,
            node_list.join(", "),
            rand::random::<u32>()
        ),
    )
    .unwrap();
    let start = || {
        Gateway::start_with_env(
            &dir,
            &["--config", config.to_str().unwrap()],
            &[("TESSERA_MASTER_KEY", &db.master)],
        )
    };
    let (a, b) = (start(), start());
    // Several key ids, so that their nonces live on different primaries.
    for (i, key) in keys.iter().enumerate() {
        let racing = signed(key, "POST", public, &format!("/v1/race/{i}"), b"{}", &[]);
        let (addr_a, addr_b) = (a.addr, b.addr);
        let (ra, rb) = (racing.clone(), racing);
        let ta = std::thread::spawn(move || raw(addr_a, &ra, Duration::from_secs(10)).unwrap());
        let tb = std::thread::spawn(move || raw(addr_b, &rb, Duration::from_secs(10)).unwrap());
        let (x, y) = (ta.join().unwrap(), tb.join().unwrap());
        let mut statuses = [x.status, y.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 401],
            "{} / {}",
            String::from_utf8_lossy(&x.body),
            String::from_utf8_lossy(&y.body)
        );
        let refused = if x.status == 401 { &x } else { &y };
        assert_eq!(refused.json()["code"], "replayed");
    }
    let raced: Vec<String> = upstream.paths();
    assert_eq!(raced.len(), keys.len(), "{raced:?}");
}

/// A replica whose process was paused (SIGSTOP: a frozen container, a VM
/// paused or migrated) while a key was revoked refuses the key in the first
/// request it handles on resuming, though its last poll of the change log
/// (and so its cached copy of the key) is only seconds old: a cache whose
/// poller fell behind does not vouch for a key until a poll has run.
#[test]
fn a_replica_paused_during_a_revocation_refuses_the_key_on_resuming() {
    let public = "api.example.test";
    let (_dir, db, alice, upstream, gateway) = alone_with_alice("paused-replica", public);
    let addr = gateway.addr;
    let key = alice.clone();
    let get = move |path: &str| signed_get(addr, &key, public, path);
    // Verified twice: the key is in the verified-key cache.
    assert_eq!(get("/warm-1").status, 200);
    assert_eq!(get("/warm-2").status, 200);

    gateway.signal("STOP");
    db.revoke(&alice);
    std::thread::sleep(Duration::from_secs(2));
    // Signed after the revocation, waiting in the paused replica's socket.
    let waiting = std::thread::spawn(move || get("/after-revocation"));
    std::thread::sleep(Duration::from_millis(300));
    gateway.signal("CONT");
    let reply = waiting.join().unwrap();
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (401, serde_json::json!("key_revoked")),
        "stderr: {}",
        gateway.stderr()
    );
    assert!(!upstream.paths().contains(&"/after-revocation".to_owned()));
}

/// A SQLite key database restored by moving a backup over the file: the
/// running replica's connections still read the old, unlinked file, which
/// nobody writes any more, so it could never see a later revocation. It
/// notices at its next poll, says so in its log and fails closed (every
/// key `store_unavailable`, `/readyz` not ready) instead of going on with
/// keys it can no longer hear about.
#[test]
fn a_sqlite_file_moved_over_the_database_fails_closed() {
    let public = "api.example.test";
    let (dir, db, alice, upstream, gateway) = alone_with_alice("replaced-file", public);
    let admin = gateway.admin.unwrap();
    let get = |path: &str| signed_get(gateway.addr, &alice, public, path);
    assert_eq!(get("/before").status, 200);
    assert_eq!(get("/cached").status, 200);

    // "Restore" a copy by moving it over the database file. (The key was
    // issued before the gateway opened the file, by a process that was then
    // its only user and checkpointed it on closing: the file holds the key.)
    let file = dir.join("keys.db");
    let copy = dir.join("keys.db.restored");
    std::fs::copy(&file, &copy).unwrap();
    std::fs::rename(&copy, &file).unwrap();
    db.revoke(&alice);

    // Noticed at the next poll (750 ms): until then the key is still
    // within the revocation bound.
    assert!(
        eventually(Duration::from_secs(5), || {
            let reply = get("/after");
            reply.status == 503 && reply.json()["code"] == "store_unavailable"
        }),
        "the replica went on with a replaced database file; stderr: {}",
        gateway.stderr()
    );
    gateway.await_log("key database file was replaced", 1);
    assert_eq!(admin_get(admin, "/readyz").status, 503);
    // And it stays closed: no later poll of the old file counts as contact.
    std::thread::sleep(Duration::from_secs(2));
    let later = get("/later");
    assert_eq!(
        later.status,
        503,
        "{}",
        String::from_utf8_lossy(&later.body)
    );
    assert!(!upstream.paths().contains(&"/later".to_owned()));
}
