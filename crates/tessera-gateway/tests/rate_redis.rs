//! Rate limits kept in Redis (`[rate_limit] redis = URL`): two gateway
//! instances sharing one Redis share one budget per key, and a
//! fail-closed limiter whose Redis is gone refuses and says so in
//! `/readyz` and `/metrics`; a fail-open one starts while its Redis is
//! down and limits once it answers.
//!
//! Redis: `TESSERA_TEST_REDIS_URL` (as the tessera-server Redis tests), else
//! a `redis-server` this test starts on a free loopback port. Without
//! either the tests print "skipped: no redis-server" and pass, except under
//! `CI=true`, where a missing Redis fails them. The outage test always
//! starts its own `redis-server` (it stops it). The cluster test uses
//! `TESSERA_TEST_REDIS_CLUSTER` or starts one (tessera-server's
//! tests/support/redis_cluster.rs).
#![allow(clippy::unwrap_used)]

#[path = "../../tessera-server/tests/support/redis_cluster.rs"]
mod redis_cluster;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

const URL_VAR: &str = "TESSERA_TEST_REDIS_URL";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing Redis: a panic in CI, a skip message otherwise.
fn skip(test: &str) {
    let msg =
        format!("skipped: no redis-server ({test}): set {URL_VAR} or put redis-server on PATH");
    assert!(!in_ci(), "CI=true and Redis is missing: {msg}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// A `redis-server` child on a free port (`None` when none is installed).
fn spawn_redis_anywhere() -> Option<(Proc, u16)> {
    let port = free_port();
    spawn_redis(port).map(|proc| (proc, port))
}

/// The shared Redis URL, and the server this test started (if it did).
fn shared_redis(test: &str) -> Option<(String, Option<Proc>)> {
    if let Ok(url) = std::env::var(URL_VAR) {
        if !url.is_empty() {
            return Some((url, None));
        }
    }
    match spawn_redis_anywhere() {
        Some((proc, port)) => Some((format!("redis://127.0.0.1:{port}/0"), Some(proc))),
        None => {
            skip(test);
            None
        }
    }
}

/// A configuration file: keys file, upstream, budgets in `redis`.
fn config(dir: &Path, name: &str, keys: &Path, upstream: &Upstream, rate_limit: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "upstream = \"{}\"\n[keys]\nfile = \"{}\"\n[rate_limit]\n{rate_limit}",
            upstream.url(),
            keys.display()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn assert_limited(reply: &Reply) {
    assert_eq!(
        reply.status,
        429,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["code"], "rate_limited");
    let retry: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
}

#[test]
fn two_gateways_on_one_redis_share_one_budget() {
    let Some((url, _redis)) = shared_redis("two_gateways_on_one_redis_share_one_budget") else {
        return;
    };
    two_gateways_share_one_budget(&url);
}

/// The same on a real three-primary Redis Cluster, named by a
/// `redis+cluster://` URL.
#[test]
fn two_gateways_on_one_redis_cluster_share_one_budget() {
    let test = "two_gateways_on_one_redis_cluster_share_one_budget";
    let Some(nodes) = redis_cluster::shared_cluster(test) else {
        return;
    };
    two_gateways_share_one_budget(&redis_cluster::cluster_url(&nodes));
}

/// Two gateways with budgets in the Redis at `url`: a burst of 3 spent
/// across both, then 429 on either, never forwarded.
fn two_gateways_share_one_budget(url: &str) {
    let dir = temp_dir("rate-redis");
    // A fresh key id and prefix per run: a shared Redis may hold old budgets.
    let run = rand::random::<u32>();
    let alice = Key::random(&format!("alice-{run}"));
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let config = config(
        &dir,
        "rate.toml",
        &keys,
        &upstream,
        &format!("rate = \"3/m\"\nburst = 3\nredis = \"{url}\"\nprefix = \"gwtest{run}\"\n"),
    );
    let start = || Gateway::start(&dir, &["--config", &config, "--admin", "127.0.0.1:0"]);
    let (a, b) = (start(), start());

    // Three requests across both instances spend the shared burst of 3 ...
    for (i, gateway) in [&a, &b, &a].into_iter().enumerate() {
        let reply = send_signed(gateway, &alice, "GET", &format!("/v1/ok/{i}"), b"", &[]);
        assert_eq!(
            reply.status,
            200,
            "request {i}: {}; stderr: {}",
            String::from_utf8_lossy(&reply.body),
            gateway.stderr()
        );
    }
    // ... so the next one is refused on either, and never forwarded.
    assert_limited(&send_signed(&b, &alice, "GET", "/v1/over/b", b"", &[]));
    assert_limited(&send_signed(&a, &alice, "GET", "/v1/over/a", b"", &[]));
    assert_eq!(upstream.paths(), ["/v1/ok/0", "/v1/ok/1", "/v1/ok/2"]);

    let admin = b.admin.unwrap();
    assert_eq!(admin_get(admin, "/readyz").status, 200);
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).unwrap();
    // The limiter's own counter (tessera-ratelimit, through the metrics
    // facade) reaches the gateway's exporter; no store errors.
    assert!(
        !metrics.contains("tessera_rate_limit_decisions_total{outcome=\"store_error\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_rate_limit_decisions_total{outcome=\"limited\"} 1"),
        "{metrics}"
    );
}

#[test]
fn fail_closed_limits_refuse_while_redis_is_down() {
    let Some((redis, port)) = spawn_redis_anywhere() else {
        skip("fail_closed_limits_refuse_while_redis_is_down");
        return;
    };
    let dir = temp_dir("rate-redis-down");
    let alice = Key::random("alice-closed");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    // The flags name the store and the failure mode over the file's budgets.
    let config = config(&dir, "closed.toml", &keys, &upstream, "rate = \"100/s\"\n");
    let store = format!("redis://127.0.0.1:{port}/0");
    let gateway = Gateway::start(
        &dir,
        &[
            "--config",
            &config,
            "--rate-limit-store",
            &store,
            "--rate-limit-on-store-failure",
            "closed",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let admin = gateway.admin.unwrap();
    assert_eq!(
        send_signed(&gateway, &alice, "GET", "/before", b"", &[]).status,
        200
    );
    assert_eq!(admin_get(admin, "/readyz").status, 200);

    drop(redis);
    let down = send_signed(&gateway, &alice, "GET", "/during", b"", &[]);
    // 503 store_unavailable: an outage, not the client's rate.
    assert_eq!(down.status, 503, "{}", String::from_utf8_lossy(&down.body));
    assert!(
        String::from_utf8_lossy(&down.body).contains("store_unavailable"),
        "{}",
        String::from_utf8_lossy(&down.body)
    );
    assert_eq!(down.header("retry-after"), Some("1"));
    let ready = admin_get(admin, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(
        String::from_utf8_lossy(&ready.body).contains("rate limit store"),
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    let metrics = String::from_utf8(admin_get(admin, "/metrics").body).unwrap();
    assert!(
        metrics.contains("tessera_rate_limit_decisions_total{outcome=\"store_error\"}"),
        "{metrics}"
    );
    // One log line a second, not one a request.
    for i in 0..20 {
        let path = format!("/during/{i}");
        assert_eq!(
            send_signed(&gateway, &alice, "GET", &path, b"", &[]).status,
            503
        );
    }
    let logged = gateway.stderr().matches("rate limit store failed").count();
    assert!((1..=3).contains(&logged), "{logged} lines for 21 failures");
    assert!(!upstream.paths().contains(&"/during".to_owned()));
}

/// Fail-open limits cost only the limits while their Redis is down, at
/// start-up too: the gateway starts and admits, and limits apply once Redis
/// answers. Fail-closed limits, which would refuse every request, do not start.
#[test]
fn fail_open_limits_start_while_redis_is_down_and_apply_once_it_answers() {
    let port = free_port();
    let dir = temp_dir("rate-redis-late");
    let alice = Key::random("alice-late");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let store = format!("redis://127.0.0.1:{port}/0");
    let config = config(
        &dir,
        "late.toml",
        &keys,
        &upstream,
        &format!("rate = \"1/m\"\nburst = 1\nredis = \"{store}\"\n"),
    );
    let closed = Command::new(BIN)
        .args([
            "--config",
            &config,
            "--rate-limit-on-store-failure",
            "closed",
        ])
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
    assert!(
        String::from_utf8_lossy(&closed.stderr).contains(&format!("127.0.0.1:{port}")),
        "{closed:?}"
    );

    let gateway = Gateway::start(&dir, &["--config", &config, "--admin", "127.0.0.1:0"]);
    assert!(
        gateway.stderr().contains("starting without rate limits"),
        "{}",
        gateway.stderr()
    );
    for path in ["/down/1", "/down/2", "/down/3"] {
        let reply = send_signed(&gateway, &alice, "GET", path, b"", &[]);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let ready = admin_get(gateway.admin.unwrap(), "/readyz");
    assert_eq!(ready.status, 200);
    assert!(
        String::from_utf8_lossy(&ready.body).contains("degraded"),
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    let Some(_redis) = spawn_redis(port) else {
        skip("fail_open_limits_start_while_redis_is_down_and_apply_once_it_answers");
        return;
    };
    // Connected within about a second: the budget of 1 is spent, then refused.
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(10), || {
            n += 1;
            let reply = send_signed(&gateway, &alice, "GET", &format!("/up/{n}"), b"", &[]);
            reply.status == 429
        }),
        "limits never applied after Redis came up: {}",
        gateway.stderr()
    );
    assert!(gateway.stderr().contains("the rate limit store answers"));
    assert_eq!(
        admin_get(gateway.admin.unwrap(), "/readyz").body,
        b"ready\n"
    );
}

/// A Redis that answers and refuses (a wrong password) is a configuration
/// to fix, not an outage to ride out: even fail-open limits do not start
/// (exit 2), for rate limits and nonces alike, and the password is not shown.
#[test]
fn a_redis_that_refuses_the_password_stops_the_start() {
    let port = free_port();
    let Some(_redis) = spawn_redis_with(port, &["--requirepass", "right-pw"]) else {
        skip("a_redis_that_refuses_the_password_stops_the_start");
        return;
    };
    let dir = temp_dir("rate-redis-refused");
    let alice = Key::random("alice-refused");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{port}/0");
    let config = config(
        &dir,
        "refused.toml",
        &keys,
        &upstream,
        &format!("rate = \"1/m\"\nredis = \"{wrong}\"\non_store_failure = \"open\"\n"),
    );
    for extra in [vec![], vec!["--nonce-store", wrong.as_str()]] {
        let out = Command::new(BIN)
            .args(["--config", &config])
            .args(&extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("refused"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("wrong-pw"), "{extra:?}: {stderr}");
    }
}

/// A Redis user that may connect (`PING`) but not run the limits' scripts,
/// or not every command in them (Redis 7.0 words that refusal as an `ERR`),
/// would leave fail-open limits admitting everything for good: the start
/// makes a trial decision and refund, and a refusal stops it (exit 2).
#[test]
fn a_redis_user_that_may_not_run_the_scripts_stops_the_start() {
    let port = free_port();
    // redis-server takes a directive's words as separate arguments.
    #[rustfmt::skip]
    let users = [
        "--user", "pinger", "on", ">pinger-pw", "~*", "+@connection",
        "--user", "notime", "on", ">notime-pw", "~*", "+@connection", "+evalsha", "+eval",
        "+script|load", "+get", "+set", "+del",
        "--user", "reader", "on", ">reader-pw", "~*", "+@connection", "+@read", "+@scripting",
    ];
    let Some(_redis) = spawn_redis_with(port, &users) else {
        skip("a_redis_user_that_may_not_run_the_scripts_stops_the_start");
        return;
    };
    let dir = temp_dir("rate-redis-noperm");
    let alice = Key::random("alice-noperm");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    for (user, refused) in [
        ("pinger", "no permissions"),
        ("notime", "can't run this command"),
        ("reader", "can't run this command"),
    ] {
        let url = format!("redis://{user}:{user}-pw@127.0.0.1:{port}/0");
        for mode in ["open", "closed"] {
            let config = config(
                &dir,
                &format!("noperm-{user}-{mode}.toml"),
                &keys,
                &upstream,
                &format!("rate = \"1/m\"\nredis = \"{url}\"\non_store_failure = \"{mode}\"\n"),
            );
            let stderr = refused_start(&config, &format!("{user}, {mode}"));
            assert!(
                stderr.contains("refused") && stderr.contains(refused),
                "{user}, {mode}: {stderr}"
            );
            assert!(
                !stderr.contains(&format!("{user}-pw")),
                "{user}, {mode}: {stderr}"
            );
        }
    }
}

/// The nonce store's Redis user likewise: one that may write the epoch
/// keys but not run the check script (`EVALSHA`), or not `EXISTS`, would
/// fail every signed request with 503; the start tries each command the
/// store sends and stops (exit 2), naming what the user needs.
#[test]
fn a_nonce_store_user_without_a_right_stops_the_start() {
    let port = free_port();
    #[rustfmt::skip]
    let users = [
        "--user", "noevalsha", "on", ">noevalsha-pw", "~*", "+@connection", "+get", "+set",
        "+exists", "+eval", "+script|load",
        "--user", "noexists", "on", ">noexists-pw", "~*", "+@connection", "+get", "+set",
        "+evalsha", "+eval", "+script|load",
    ];
    let Some(_redis) = spawn_redis_with(port, &users) else {
        skip("a_nonce_store_user_without_a_right_stops_the_start");
        return;
    };
    let dir = temp_dir("nonce-redis-noperm");
    let alice = Key::random("alice-nonce-noperm");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    for (user, command) in [("noevalsha", "evalsha"), ("noexists", "exists")] {
        let url = format!("redis://{user}:{user}-pw@127.0.0.1:{port}/0");
        let config = config(
            &dir,
            &format!("nonce-noperm-{user}.toml"),
            &keys,
            &upstream,
            &format!("rate = \"100/s\"\n[nonce_store]\nredis = \"{url}\"\n"),
        );
        let stderr = refused_start(&config, user);
        assert!(
            stderr.contains(command) && stderr.contains("needs +evalsha +eval"),
            "{user}: {stderr}"
        );
        assert!(!stderr.contains(&format!("{user}-pw")), "{user}: {stderr}");
    }
}

/// Runs the gateway on `config`, which must stop it at start with exit 2;
/// its standard error.
fn refused_start(config: &str, label: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["--config", config])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A gateway that starts would serve until killed.
    let exited = eventually(Duration::from_secs(15), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(exited, "{label}: the gateway started: {stderr}");
    assert_eq!(out.status.code(), Some(2), "{label}: {stderr}");
    stderr
}

/// A Redis Cluster's users are set node by node: a user that may run the
/// limits' scripts on one primary but not on the others stops the start
/// (exit 2), whichever primary owns the first hash tag (the trial runs on
/// every primary).
#[test]
fn a_cluster_user_refused_on_some_primaries_stops_the_start() {
    let test = "a_cluster_user_refused_on_some_primaries_stops_the_start";
    let Some(nodes) = redis_cluster::shared_cluster(test) else {
        return;
    };
    let user = format!("lim{}", rand::random::<u32>());
    let cli = |node: &str, args: &[&str]| -> String {
        let host_port = node.trim_start_matches("redis://").trim_end_matches('/');
        let (host, port) = host_port.rsplit_once(':').unwrap();
        let out = Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Allowed everything everywhere, then refused TIME on every primary
    // but the one owning tag {000}, the one a single trial would use.
    for node in &nodes {
        let pw = format!(">{user}-pw");
        let ok = cli(
            node,
            &["ACL", "SETUSER", &user, "on", &pw, "~*", "&*", "+@all"],
        );
        assert_eq!(ok.trim(), "OK", "{node}: {ok}");
    }
    let mut owners = 0;
    for node in &nodes {
        if cli(node, &["GET", "probe{000}"]).contains("MOVED") {
            cli(node, &["ACL", "SETUSER", &user, "-time"]);
        } else {
            owners += 1;
        }
    }
    assert_eq!(owners, 1, "one primary owns {{000}}");

    let dir = temp_dir("rate-redis-cluster-acl");
    let alice = Key::random("alice-cluster-acl");
    let keys = keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let upstream = Upstream::start(&dir);
    let hosts = redis_cluster::cluster_url(&nodes);
    let url = hosts.replacen(
        "redis+cluster://",
        &format!("redis+cluster://{user}:{user}-pw@"),
        1,
    );
    let config = config(
        &dir,
        "cluster-acl.toml",
        &keys,
        &upstream,
        &format!("rate = \"1/m\"\nredis = \"{url}\"\non_store_failure = \"open\"\n"),
    );
    let stderr = refused_start(&config, "cluster");
    assert!(stderr.contains("can't run this command"), "{stderr}");
    assert!(!stderr.contains(&format!("{user}-pw")), "{stderr}");
    for node in &nodes {
        cli(node, &["ACL", "DELUSER", &user]);
    }
}
