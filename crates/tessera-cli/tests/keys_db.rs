//! `tessera keys` and `tessera serve --keys-db`, with real processes: the
//! CLI round trip on SQLite, revocation reaching two serving processes
//! (SQLite file and PostgreSQL), and a PostgreSQL outage under a server.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{cli_signed_get, raw_get, serve_with, temp_dir, tessera_env, text, Server};

const MASTER: &str = "8c3f0a5e1b2d4c6f8a9b0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f4051";

fn env() -> [(&'static str, &'static str); 1] {
    [("TESSERA_MASTER_KEY", MASTER)]
}

/// `tessera keys ...` with the test master key; panics unless it succeeds.
fn keys(args: &[&str]) -> String {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    let out = tessera_env(&all, &env());
    assert!(
        out.status.success(),
        "tessera {all:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `keys issue` for the owner jay with `attributes`.
fn issue_for_jay<'a>(db: &'a str, attributes: &'a str) -> [&'a str; 8] {
    [
        "keys",
        "issue",
        "--db",
        db,
        "--owner",
        "jay",
        "--attributes",
        attributes,
    ]
}

/// A key issued with `tessera keys issue --json`, its secret in a file.
struct Issued {
    json: Value,
    id: String,
    secret_hex: String,
    secret_file: PathBuf,
}

fn issue(db: &str, dir: &Path, owner: &str) -> Issued {
    let out = keys(&[
        "issue", "--db", db, "--owner", owner, "--client", "test", "--scope", "read", "--ttl",
        "1d", "--json",
    ]);
    let json: Value = serde_json::from_str(out.trim()).unwrap();
    // The same fields as `rotate --json`: `replaces` is null for a first key.
    assert_eq!(json.get("replaces"), Some(&Value::Null), "{json}");
    let id = json["key_id"].as_str().unwrap().to_owned();
    let secret_hex = json["secret_hex"].as_str().unwrap().to_owned();
    let secret_file = dir.join(format!("{owner}.hex"));
    std::fs::write(&secret_file, &secret_hex).unwrap();
    Issued {
        json,
        id,
        secret_hex,
        secret_file,
    }
}

/// Signature headers for GET http://ADDR/v1/me, signed now, in-process
/// (fast enough to poll every 20 ms), as raw header lines.
fn signed_headers(addr: std::net::SocketAddr, key: &Issued) -> String {
    use tessera_core::{
        sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
    };
    let secret = SecretKey::from_hex(&key.secret_hex).unwrap();
    let signing = SigningKey::new(KeyId::new(key.id.as_str()).unwrap(), &secret);
    let (mut parts, ()) = http::Request::builder()
        .method("GET")
        .uri(format!("http://{addr}/v1/me"))
        .body(())
        .unwrap()
        .into_parts();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nonce = Nonce::generate(&mut rand::rng());
    let view = RequestView::from_parts(&parts).unwrap();
    sign(
        &signing,
        &view,
        &BodyDigest::of(b""),
        &SignOptions::new(now, &nonce),
    )
    .unwrap()
    .apply_to(&mut parts.headers)
    .unwrap();
    let mut out = String::new();
    for (name, value) in &parts.headers {
        out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    out
}

/// Headers from `tessera sign --secret-file` (the CLI path a user takes).
fn cli_signed_headers(addr: std::net::SocketAddr, key: &Issued) -> String {
    cli_signed_get(&format!("http://{addr}/v1/me"), &key.id, &key.secret_file)
}

/// The tessera error code of an answer, or "ok".
fn code(answer: &(u16, String)) -> String {
    if answer.0 == 200 {
        return "ok".into();
    }
    serde_json::from_str::<Value>(&answer.1)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("status {} {}", answer.0, answer.1))
}

fn get(server: &Server, key: &Issued) -> String {
    code(&raw_get(
        server.addr,
        "/v1/me",
        &signed_headers(server.addr, key),
    ))
}

#[test]
fn keys_cli_issue_list_show_revoke_and_serve() {
    let dir = temp_dir("keys-cli");
    let db = format!("sqlite://{}", dir.join("keys.db").display());
    assert!(keys(&["migrate", "--db", &db]).contains("migrated"));
    let alice = issue(&db, &dir, "alice");
    // keygen's field names, usable as a `serve --keys` entry.
    for field in ["key_id", "secret_hex", "user", "scopes", "not_after"] {
        assert!(alice.json.get(field).is_some(), "{field} in {}", alice.json);
    }
    assert_eq!(alice.json["user"], "alice");
    assert_eq!(alice.json["scopes"], serde_json::json!(["read"]));
    let bob = issue(&db, &dir, "bob");

    // list and show never print secrets.
    let listed = keys(&["list", "--db", &db]);
    let listed_json = keys(&["list", "--db", &db, "--json"]);
    let shown = keys(&["show", "--db", &db, &alice.id, "--json"]);
    for out in [&listed, &listed_json, &shown] {
        assert!(out.contains(&alice.id), "{out}");
        assert!(!out.contains(&alice.secret_hex), "a secret printed: {out}");
        assert!(!out.contains(&bob.secret_hex), "a secret printed: {out}");
    }
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["seal_intact"], true);
    // `--scope` takes a comma-separated list, as `keygen --scopes` does.
    let both = keys(&[
        "issue",
        "--db",
        &db,
        "--owner",
        "erin",
        "--scope",
        "read,write",
        "--scope",
        "admin",
        "--json",
    ]);
    let both: Value = serde_json::from_str(both.trim()).unwrap();
    assert_eq!(
        both["scopes"],
        serde_json::json!(["admin", "read", "write"]),
        "{both}"
    );
    // A rate-limit plan the limiter could not read is refused at issue time
    // (else the key would silently get the default budget).
    for bad in [
        r#"{"rate_limit":{"rate":"fast"}}"#,
        r#"{"rate_limit":{"rate":"1/m","burst":"x"}}"#,
        r#"{"rate_limit":{"rate":"1/m","brust":5}}"#,
        r#"{"rate_limit":7}"#,
    ] {
        let out = tessera_env(&issue_for_jay(&db, bad), &env());
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--attributes") && err.contains("rate"),
            "{bad}: {err}"
        );
    }
    keys(&issue_for_jay(&db, r#"{"rate_limit":"1/m"}"#)[1..]);
    // A key past its not_after is listed as expired, as a verifier finds it.
    let short = keys(&[
        "issue", "--db", &db, "--owner", "dave", "--client", "test", "--scope", "read", "--ttl",
        "1s", "--json",
    ]);
    let short: Value = serde_json::from_str(short.trim()).unwrap();
    let short_id = short["key_id"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let shown: Value =
        serde_json::from_str(keys(&["show", "--db", &db, &short_id, "--json"]).trim()).unwrap();
    assert_eq!(shown["state"], "expired", "{shown}");
    let listed = keys(&["list", "--db", &db]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&short_id) && l.contains("  expired  ")),
        "{listed}"
    );

    let server = serve_with(&dir, &["--keys-db", &db, "--quiet"], &env());
    let (status, body) = raw_get(
        server.addr,
        "/v1/me",
        &cli_signed_headers(server.addr, &alice),
    );
    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["user"], "alice");
    assert_eq!(get(&server, &bob), "ok");

    // Revoked through the CLI, without the master key (whoever handles a
    // lost device need not hold it): this server refuses at once... within
    // the poll.
    let revoked = tessera_env(
        &[
            "keys", "revoke", "--db", &db, &alice.id, "--reason", "lost", "--actor", "test",
        ],
        &[],
    );
    assert!(
        revoked.status.success() && text(&revoked.stdout).contains("revoked"),
        "revoke without a master key: {}",
        text(&revoked.stderr)
    );
    let until = Instant::now() + Duration::from_secs(4);
    while get(&server, &alice) != "key_revoked" {
        assert!(Instant::now() < until, "still accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(keys(&["revoke", "--db", &db, "--owner", "bob"]).contains("revoked 1 key(s)"));
    let shown: Value =
        serde_json::from_str(keys(&["show", "--db", &db, &alice.id, "--json"]).trim()).unwrap();
    assert_eq!(shown["state"], "revoked");
    assert_eq!(shown["revoke_reason"], "lost");
    // The text form shows what `list` leaves out.
    let shown = keys(&["show", "--db", &db, &alice.id]);
    assert!(shown.contains("revoke_reason:  lost"), "{shown}");
    assert!(shown.contains("revoked_at:     20"), "{shown}");
    // An owner with nothing left to revoke (or a misspelled one) is said so.
    let none = keys(&["revoke", "--db", &db, "--owner", "nobody"]);
    assert!(
        none.contains("revoked nothing") && none.contains("spelled"),
        "{none}"
    );

    // rotate prints the new secret once; rewrap reports.
    let carol = issue(&db, &dir, "carol");
    let rotated = keys(&[
        "rotate",
        "--db",
        &db,
        &carol.id,
        "--overlap",
        "1h",
        "--json",
    ]);
    let rotated: Value = serde_json::from_str(rotated.trim()).unwrap();
    assert_eq!(rotated["replaces"], carol.id.as_str());
    assert_eq!(rotated["secret_hex"].as_str().unwrap().len(), 64);
    assert!(keys(&["rewrap", "--db", &db]).contains("rewrapped"));

    // Usage errors exit 2, run-time errors 1, each one clear line.
    let usage = [
        vec!["keys", "revoke", "--db", db.as_str()],
        vec!["keys", "issue", "--db", db.as_str()],
        vec![
            "keys",
            "issue",
            "--db",
            db.as_str(),
            "--owner",
            "x",
            "--ttl",
            "soon",
        ],
        vec!["keys", "list", "--db", "mysql://x/y"],
        vec!["serve", "--keys", "k.json", "--keys-db", db.as_str()],
        vec!["serve", "--master-key-file", "f"],
        // Flags of the SQL store with a keys file: refused, not ignored.
        vec!["serve", "--keys", "k.json", "--master-key-file", "f"],
        vec!["serve", "--keys", "k.json", "--max-staleness", "7"],
    ];
    for args in usage {
        let out = tessera_env(&args, &env());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).starts_with("tessera: error: "),
            "{}",
            text(&out.stderr)
        );
    }
    let no_master = tessera_env(&["keys", "list", "--db", &db], &[]);
    assert_eq!(no_master.status.code(), Some(2));
    assert!(text(&no_master.stderr).contains("TESSERA_MASTER_KEY"));
    let wrong_master = tessera_env(
        &["keys", "list", "--db", &db],
        &[(
            "TESSERA_MASTER_KEY",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        )],
    );
    assert_eq!(wrong_master.status.code(), Some(1));
    assert!(text(&wrong_master.stderr).contains("does not open this database's canary"));
    let missing = format!("sqlite://{}", dir.join("none.db").display());
    let out = tessera_env(&["serve", "--keys-db", &missing], &env());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("keys migrate"),
        "{}",
        text(&out.stderr)
    );
    let out = tessera_env(&["keys", "show", "--db", &db, "k1.nope"], &env());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown key id"));
    // A master key file works as well as the environment.
    let file = dir.join("master.key");
    std::fs::write(&file, format!("1:{MASTER}\n")).unwrap();
    let out = tessera_env(
        &[
            "keys",
            "list",
            "--db",
            &db,
            "--master-key-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Where the PostgreSQL tests get a cluster of their own (they stop it):
/// scripts/postgres.sh, deleted on drop.
struct Cluster {
    url: String,
    dir: PathBuf,
}

/// A row edited by hand into text the store never writes: `keys list`
/// shows it as unreadable with the reason (and warns), `--json` gives its
/// state as `unreadable`, `keys show` says the row cannot be read instead of
/// calling the key unknown.
#[test]
fn keys_list_and_show_name_rows_that_cannot_be_read() {
    let dir = temp_dir("keys-unreadable");
    let path = dir.join("keys.db");
    let db = format!("sqlite://{}", path.display());
    keys(&["migrate", "--db", &db]);
    let good = issue(&db, &dir, "alice");
    let bad = issue(&db, &dir, "bob");
    let mistyped = issue(&db, &dir, "carol");
    let text_seal = issue(&db, &dir, "dave");
    // The later edits put text where the store writes an integer or a
    // blob, which the store's triggers refuse: a database edited before
    // they existed, so they are dropped for the edits and put back.
    let update_trigger = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../tessera-keys-sql/migrations/sqlite/\
             20270101000001_tessera_keys_types_of_changed_columns.sql",
    ))
    .unwrap();
    let update_trigger = &update_trigger[update_trigger
        .find("CREATE TRIGGER tessera_keys_types_on_update")
        .unwrap()..];
    let edits = [
        format!(
            "UPDATE tessera_keys SET scopes = 'read' WHERE key_id = '{}'",
            bad.id
        ),
        "DROP TRIGGER tessera_keys_types_on_update".to_owned(),
        format!(
            "UPDATE tessera_keys SET created_at = 'yesterday' WHERE key_id = '{}'",
            mistyped.id
        ),
        format!(
            "UPDATE tessera_keys SET sealed_secret = CAST(sealed_secret AS TEXT) \
             WHERE key_id = '{}'",
            text_seal.id
        ),
        update_trigger.to_owned(),
    ];
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
            for edit in edits {
                let done = sqlx::query(sqlx::AssertSqlSafe(edit.clone()))
                    .execute(&mut c)
                    .await
                    .unwrap();
                assert!(
                    !edit.starts_with("UPDATE") || done.rows_affected() == 1,
                    "{edit}"
                );
            }
        });

    let out = tessera_env(&["keys", "list", "--db", &db], &env());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&good.id) && l.contains("  active  ")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l
            == format!(
                "{}  unreadable  user=bob reason=scopes is not a JSON array of strings",
                bad.id
            )),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l
            == format!(
                "{}  unreadable  user=carol reason=created_at is not an integer",
                mistyped.id
            )),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l
            == format!(
                "{}  unreadable  user=dave reason=sealed_secret is not a blob",
                text_seal.id
            )),
        "{listed}"
    );
    assert!(
        text(&out.stderr).contains("3 row(s) cannot be read"),
        "{}",
        text(&out.stderr)
    );
    let json = keys(&["list", "--db", &db, "--json"]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{json}");
    let row = |id: &str| rows.iter().find(|r| r["key_id"] == id).unwrap();
    assert_eq!(row(&bad.id)["state"], "unreadable");
    assert_eq!(
        row(&bad.id)["unreadable_reason"],
        "scopes is not a JSON array of strings"
    );
    assert_eq!(
        row(&mistyped.id)["unreadable_reason"],
        "created_at is not an integer"
    );

    // A verifier refuses the unreadable key alone.
    let server = serve_with(&dir, &["--keys-db", &db, "--quiet"], &env());
    assert_eq!(get(&server, &good), "ok");
    assert_eq!(get(&server, &mistyped), "store_unavailable");
    assert_eq!(get(&server, &text_seal), "store_unavailable");
    assert_eq!(get(&server, &good), "ok");
    server.log_line(
        "its row cannot be read (created_at is not an integer)",
        Duration::from_secs(2),
    );

    // With the type triggers in place, a row holding a mistyped value can
    // still be revoked: they judge the columns an update changes.
    keys(&["revoke", "--db", &db, &mistyped.id]);

    let shown = tessera_env(&["keys", "show", "--db", &db, &bad.id], &env());
    assert!(!shown.status.success());
    let err = text(&shown.stderr);
    assert!(
        err.contains("cannot be read (scopes is not a JSON array of strings)")
            && !err.contains("unknown key"),
        "{err}"
    );
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

impl Cluster {
    fn start(test: &str) -> Option<Cluster> {
        let required = std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() == Ok("1");
        let installed =
            std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|mut d| d.next().is_some());
        if !installed {
            assert!(
                !required,
                "PostgreSQL is required (TESSERA_REQUIRE_POSTGRES=1) but not installed"
            );
            eprintln!("SKIPPED {test}: no PostgreSQL server installed (scripts/postgres.sh bin installs it)");
            return None;
        }
        let out = Command::new("bash")
            .arg(script())
            .args(["start", "--watch", &std::process::id().to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postgres.sh start: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        let dir = stderr
            .split("cluster in ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap();
        Some(Cluster {
            url: text(&out.stdout).trim().to_owned(),
            dir: PathBuf::from(dir),
        })
    }

    fn run(&self, command: &str) {
        let status = Command::new("bash")
            .arg(script())
            .arg(command)
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "postgres.sh {command}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// Two `tessera serve --keys-db` processes on one database; five rounds of:
/// issue, both accept, revoke through `tessera keys revoke`, poll both every
/// 20 ms with freshly signed requests until each answers key_revoked.
/// Returns each server's delays (from the revoke command's exit).
fn propagation(db: &str, dir: &Path, label: &str, bound: Duration) -> Vec<Duration> {
    keys(&["migrate", "--db", db]);
    let a = serve_with(dir, &["--keys-db", db, "--quiet"], &env());
    let b = serve_with(dir, &["--keys-db", db, "--quiet"], &env());
    let mut delays = Vec::new();
    for round in 0..5 {
        let key = issue(db, dir, &format!("user{round}"));
        for server in [&a, &b] {
            let until = Instant::now() + Duration::from_secs(5);
            // Twice: the second answer comes from the cache.
            while get(server, &key) != "ok" || get(server, &key) != "ok" {
                assert!(Instant::now() < until, "a new key never accepted");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let started = Instant::now();
        keys(&["revoke", "--db", db, &key.id, "--actor", "test"]);
        let revoked = Instant::now();
        let mut pending = vec![("A", &a), ("B", &b)];
        let mut round_delays = Vec::new();
        while !pending.is_empty() {
            pending.retain(|(name, server)| {
                let answer = get(server, &key);
                match answer.as_str() {
                    "ok" => true,
                    "key_revoked" => {
                        let delay = revoked.elapsed();
                        round_delays.push(format!("{name} {delay:?}"));
                        delays.push(delay);
                        false
                    }
                    other => panic!("server {name}: unexpected {other}"),
                }
            });
            assert!(
                revoked.elapsed() < bound + Duration::from_secs(5),
                "{label}: still accepted {:?} after the revoke",
                revoked.elapsed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{label} round {round}: revoke command took {:?}; refused after: {}",
            revoked - started,
            round_delays.join(", ")
        );
    }
    delays.sort();
    eprintln!(
        "{label}: {} delays, min {:?}, median {:?}, max {:?}",
        delays.len(),
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    for d in &delays {
        assert!(
            *d <= bound,
            "{label}: a server accepted a revoked key for {d:?} (bound {bound:?})"
        );
    }
    delays
}

#[test]
fn revocation_reaches_two_servers_on_one_sqlite_file() {
    let dir = temp_dir("keys-prop-sqlite");
    let db = format!("sqlite://{}", dir.join("keys.db").display());
    // The default poll is 2 s; the margin covers the poll itself, probing
    // at 20 ms and a busy machine.
    propagation(&db, &dir, "sqlite", Duration::from_secs(3));
}

#[test]
fn revocation_reaches_two_servers_on_one_postgres_database() {
    let Some(cluster) = Cluster::start("revocation_reaches_two_servers_on_one_postgres_database")
    else {
        return;
    };
    let dir = temp_dir("keys-prop-pg");
    propagation(&cluster.url, &dir, "postgres", Duration::from_secs(1));
}

/// The database stopped under a running server and started again: uncached
/// keys get 503 store_unavailable at once, a cached key keeps working until
/// --max-staleness, and the server recovers without a restart.
#[test]
fn postgres_stopped_and_restarted_under_a_server() {
    let Some(cluster) = Cluster::start("postgres_stopped_and_restarted_under_a_server") else {
        return;
    };
    let dir = temp_dir("keys-outage");
    let db = cluster.url.clone();
    keys(&["migrate", "--db", &db]);
    let server = serve_with(
        &dir,
        &["--keys-db", &db, "--quiet", "--max-staleness", "3"],
        &env(),
    );
    let cached = issue(&db, &dir, "alice");
    let uncached = issue(&db, &dir, "bob");
    // Issuing logs a change of the key, and the poller (every 750 ms, on
    // top of NOTIFY) drops a key from the cache when it reads its change:
    // had that poll come after the reads below, the key would be uncached
    // when the database stops. Two intervals and some margin.
    std::thread::sleep(Duration::from_millis(2_000));
    let mut last_ok = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(&server, &cached), "ok");
        last_ok = Instant::now();
    }

    // Stopping PostgreSQL may take a while on a loaded machine; the cached
    // key's staleness runs from its last confirmation, at the latest the
    // last answer before the stop.
    let pausing = Instant::now();
    cluster.run("pause");
    let down = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(&server, &uncached), "store_unavailable");
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "slow refusal: {:?}",
            t.elapsed()
        );
    }
    // The verifier says why, in the server's log (not only `-> 503`).
    server.log_line("tessera: key store failed", Duration::from_secs(2));
    let failed_closed = loop {
        match get(&server, &cached).as_str() {
            "ok" => {}
            "store_unavailable" => break Instant::now(),
            other => panic!("{other}"),
        }
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "never failed closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // At least most of --max-staleness after the last answer before the
    // stop, and at most all of it after the stop.
    let stale = failed_closed - last_ok;
    let after_stop = failed_closed - pausing;
    eprintln!(
        "outage: the cached key failed closed {after_stop:?} after the stop began, {stale:?} after \
         its last answer before it (--max-staleness 3)"
    );
    assert!(
        stale >= Duration::from_millis(1_500)
            && after_stop <= (down - pausing) + Duration::from_millis(3_800),
        "{stale:?}, the stop took {:?}",
        down - pausing
    );

    cluster.run("resume");
    let up = Instant::now();
    while get(&server, &cached) != "ok" || get(&server, &uncached) != "ok" {
        assert!(up.elapsed() < Duration::from_secs(10), "no recovery");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("outage: recovered {:?} after the restart", up.elapsed());
}
