//! Databases for the suite: a temporary SQLite file, or a fresh database in
//! a PostgreSQL cluster (TESSERA_TEST_POSTGRES_URL, or one started through
//! scripts/postgres.sh and stopped when this test process exits).
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use sqlx::Connection;
use tessera_core::{
    sign, BodyDigest, KeyId, Nonce, RequestView, SecretKey, SignOptions, SigningKey,
};
use tessera_keys_sql::{MasterKey, MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{ErrorCode, ManualClock, MemoryNonceStore, VerifiedIdentity, Verifier};

/// The tests' (manual) time.
pub const T0: u64 = 1_700_000_000;
pub const HOST: &str = "api.example.com";

pub fn master(version: u32, byte: u8) -> MasterKey {
    MasterKey::new(version, [byte; 32]).expect("master key")
}

pub fn ring(keys: &[(u32, u8)]) -> MasterKeyring {
    MasterKeyring::new(keys.iter().map(|&(v, b)| master(v, b))).expect("keyring")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Sqlite,
    Postgres,
}

/// One test's database.
pub struct Db {
    pub driver: Driver,
    pub url: String,
    /// The SQLite file (its -wal and -shm sit beside it).
    pub path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// A fresh, migrated database, or `None` (after printing SKIPPED) when
    /// PostgreSQL is not available here. Panics instead when
    /// TESSERA_REQUIRE_POSTGRES=1.
    pub async fn new(driver: Driver, test: &str) -> Option<Db> {
        let db = Db::empty(driver, test).await?;
        SqlKeyStore::migrate(&db.url).await.expect("migrate");
        Some(db)
    }

    /// A fresh database with no schema.
    pub async fn empty(driver: Driver, test: &str) -> Option<Db> {
        match driver {
            Driver::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("keys.db");
                Some(Db {
                    driver,
                    url: format!("sqlite://{}", path.display()),
                    path: Some(path),
                    _dir: Some(dir),
                })
            }
            Driver::Postgres => {
                let base = match postgres_base_url() {
                    Ok(url) => url,
                    Err(reason) => {
                        if std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                            panic!("PostgreSQL is required (TESSERA_REQUIRE_POSTGRES=1) but unavailable: {reason}");
                        }
                        // Straight to stderr: libtest hides println! of passing tests.
                        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
                        return None;
                    }
                };
                let name = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
                let mut admin = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("admin connection");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create database");
                admin.close().await.ok();
                let url = match base.rfind('/') {
                    Some(i) => format!("{}/{name}", &base[..i]),
                    None => unreachable!("a postgres URL has a path"),
                };
                Some(Db {
                    driver,
                    url,
                    path: None,
                    _dir: None,
                })
            }
        }
    }

    pub async fn open(&self, keyring: MasterKeyring, options: SqlKeyStoreOptions) -> SqlKeyStore {
        SqlKeyStore::open(&self.url, keyring, options)
            .await
            .expect("open the store")
    }

    /// Runs one statement directly on the database, as an attacker with
    /// write access (or an operator) would; returns rows affected.
    pub async fn exec(&self, sql: &str) -> u64 {
        self.try_exec(sql).await.expect(sql)
    }

    /// [`Db::exec`] that returns the database's refusal, as its text.
    pub async fn try_exec(&self, sql: &str) -> Result<u64, String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let result = match self.driver {
            Driver::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .map(|r| r.rows_affected())
            }
            Driver::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .map(|r| r.rows_affected())
            }
        };
        result.map_err(|e| e.to_string())
    }

    /// [`Db::exec`] on PostgreSQL in a session whose replication role is
    /// `replica` and whose search path is empty, as logical replication's
    /// apply workers write (name tables with their schema in `sql`).
    pub async fn exec_as_replica(&self, sql: &str) -> u64 {
        assert_eq!(self.driver, Driver::Postgres, "a PostgreSQL setting");
        let mut c = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect");
        for setting in [
            "SET session_replication_role = replica",
            "SET search_path = ''",
        ] {
            sqlx::query(setting).execute(&mut c).await.expect(setting);
        }
        let r = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .expect(sql);
        c.close().await.ok();
        r.rows_affected()
    }

    /// One integer from a query.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.driver {
            Driver::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_one(&mut c)
                    .await
                    .expect(sql);
                c.close().await.ok();
                v
            }
            Driver::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_one(&mut c)
                    .await
                    .expect(sql);
                c.close().await.ok();
                v
            }
        }
    }

    /// Everything the database holds, as bytes an attacker could read: the
    /// SQLite file with its -wal and -shm, or a `pg_dump` of the database.
    pub fn raw_contents(&self) -> Vec<(String, Vec<u8>)> {
        match self.driver {
            Driver::Sqlite => {
                let path = self.path.as_ref().expect("sqlite path");
                let mut out = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let p = PathBuf::from(format!("{}{suffix}", path.display()));
                    if let Ok(bytes) = std::fs::read(&p) {
                        out.push((p.display().to_string(), bytes));
                    }
                }
                assert!(!out.is_empty(), "the SQLite file exists");
                out
            }
            Driver::Postgres => {
                let pg_dump = postgres_bin()
                    .map(|b| b.join("pg_dump"))
                    .unwrap_or_else(|| PathBuf::from("pg_dump"));
                let output = Command::new(&pg_dump)
                    .arg("--dbname")
                    .arg(&self.url)
                    .arg("--no-owner")
                    .output()
                    .expect("run pg_dump");
                assert!(
                    output.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert!(output.stdout.len() > 1000, "a real dump");
                vec![("pg_dump".to_string(), output.stdout)]
            }
        }
    }
}

fn scripts_postgres() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

/// The newest /usr/lib/postgresql/*/bin.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

/// TESSERA_TEST_POSTGRES_URL, or a cluster this process starts once (and
/// scripts/postgres.sh stops when the process exits).
fn postgres_base_url() -> Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TESSERA_TEST_POSTGRES_URL") {
            if !url.is_empty() {
                return Ok(url);
            }
        }
        if postgres_bin().is_none() {
            return Err("no TESSERA_TEST_POSTGRES_URL and no PostgreSQL server in /usr/lib/postgresql/*/bin (run scripts/postgres.sh bin to install it)".into());
        }
        let output = Command::new("bash")
            .arg(scripts_postgres())
            .arg("start")
            .arg("--watch")
            .arg(std::process::id().to_string())
            .output()
            .map_err(|e| format!("cannot run scripts/postgres.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/postgres.sh start failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let url = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if url.starts_with("postgres://") {
            Ok(url)
        } else {
            Err(format!("scripts/postgres.sh printed no URL: {url:?}"))
        }
    })
    .clone()
}

/// A verifier over `store` at the manual clock, remembering nonces from T0.
pub fn verifier(store: &SqlKeyStore, clock: &ManualClock) -> Verifier {
    Verifier::builder(store.clone())
        .nonce_store(MemoryNonceStore::builder().remembers_since(T0).build())
        .clock(clock.clone())
        .authority(HOST)
        .build()
        .expect("verifier")
}

/// Signs a GET at `created` with `key_id`/`secret` and verifies it.
pub async fn send(
    verifier: &Verifier,
    key_id: &KeyId,
    secret: &SecretKey,
    created: u64,
) -> Result<VerifiedIdentity, ErrorCode> {
    let key = SigningKey::new(key_id.clone(), secret);
    let nonce = Nonce::generate(&mut rand::rng());
    let (mut parts, ()) = http::Request::builder()
        .method(http::Method::GET)
        .uri(format!("http://{HOST}/v1/orders?limit=5"))
        .body(())
        .expect("request")
        .into_parts();
    let options = SignOptions::new(created, &nonce);
    let view = RequestView::from_parts(&parts).expect("view");
    sign(&key, &view, &BodyDigest::of(b""), &options)
        .expect("signed")
        .apply_to(&mut parts.headers)
        .expect("headers");
    verifier
        .verify_bytes(&parts, Bytes::new())
        .await
        .map_err(|r| r.code())
}

/// A PostgreSQL cluster of one test's own (scripts/postgres.sh), which the
/// test may stop and start again; deleted on drop. `None` (after printing
/// SKIPPED) without PostgreSQL, a panic instead when TESSERA_REQUIRE_POSTGRES=1.
pub struct OwnCluster {
    pub url: String,
    pub dir: PathBuf,
}

impl OwnCluster {
    pub fn start(test: &str) -> Option<OwnCluster> {
        let skip = |reason: String| {
            if std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (TESSERA_REQUIRE_POSTGRES=1) but unavailable: {reason}"
                );
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            None
        };
        if postgres_bin().is_none() {
            return skip("no PostgreSQL server in /usr/lib/postgresql/*/bin".into());
        }
        let output = Command::new("bash")
            .arg(scripts_postgres())
            .arg("start")
            .arg("--watch")
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/postgres.sh");
        if !output.status.success() {
            return skip(format!(
                "scripts/postgres.sh start failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let url = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let dir = stderr
            .split("cluster in ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the cluster directory");
        Some(OwnCluster {
            url,
            dir: PathBuf::from(dir),
        })
    }

    fn script(&self, command: &str) {
        let status = Command::new("bash")
            .arg(scripts_postgres())
            .arg(command)
            .arg(&self.dir)
            .status()
            .expect("run scripts/postgres.sh");
        assert!(status.success(), "postgres.sh {command} failed");
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn pause(&self) {
        self.script("pause");
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        self.script("resume");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(scripts_postgres())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Runs each named case once per driver, as `sqlite::<case>` and
/// `postgres::<case>`: `async fn case(driver: Driver, test: &str)`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Driver::Sqlite, concat!("sqlite::", stringify!($case))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Driver::Postgres, concat!("postgres::", stringify!($case))).await;
                }
            )*
        }
    };
}

pub(crate) use suite;
