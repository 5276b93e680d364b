//! The two drivers behind one store: pools, URLs, migrations and rows.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tessera_core::KeyId;
use tessera_server::{KeyMetadata, KeyState};

use crate::error::Error;
use crate::seal::{canonical_json, Binding};

pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
pub(crate) static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A pool of either driver. Every operation is written once, in a
/// `dual!` block that the compiler type-checks for each driver.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool and `$d` to its [`Dialect`].
macro_rules! dual {
    ($pool:expr, |$p:ident, $d:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => {
                #[allow(unused_variables)]
                let $d = $crate::db::Dialect::Sqlite;
                $body
            }
            $crate::db::Pool::Postgres($p) => {
                #[allow(unused_variables)]
                let $d = $crate::db::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use dual;

/// Where the two SQL dialects differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A write transaction's opening statement. SQLite takes the write lock
    /// at once (`IMMEDIATE`), so read-then-write transactions never fail with
    /// SQLITE_BUSY half-way; PostgreSQL locks rows (`FOR UPDATE`) or takes an
    /// advisory lock per owner instead, and reads after taking it: at READ
    /// COMMITTED, named here so that a server whose default isolation is
    /// higher does not give those reads a snapshot from before the lock.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
        }
    }

    pub(crate) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// The columns of `tessera_keys`, in [`KeyRow`] order.
macro_rules! key_columns {
    () => {
        "key_id, owner, client, scopes, state, not_before, not_after, created_at, revoked_at, \
         revoke_reason, last_used_at, master_version, sealed_secret, attributes, replaces"
    };
}
pub(crate) use key_columns;

/// A `tessera_keys` row as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRow {
    pub(crate) key_id: String,
    pub(crate) owner: String,
    pub(crate) client: Option<String>,
    pub(crate) scopes: String,
    pub(crate) state: String,
    pub(crate) not_before: Option<i64>,
    pub(crate) not_after: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) revoke_reason: Option<String>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) master_version: i64,
    pub(crate) sealed_secret: Vec<u8>,
    pub(crate) attributes: Option<String>,
    pub(crate) replaces: Option<String>,
    /// Where a rewrap resumes after this row (`page`, when selected): its
    /// rowid on SQLite, its key id on PostgreSQL.
    pub(crate) page: Option<String>,
    /// The first column whose value is not of the type this store writes
    /// there (a row edited by hand, `'yesterday'` in an integer column of
    /// SQLite): the row is unreadable, and the column's field is left empty.
    pub(crate) mistyped: Option<&'static str>,
}

/// Reads a row column by column, so that a value of another type than the
/// store writes makes that row unreadable, not the whole query: one row
/// edited by hand must not stop `keys list`, a rewrap, or the look-ups of
/// every other key. A key id that is not text is named by its bytes.
impl<'r, R> sqlx::FromRow<'r, R> for KeyRow
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        use sqlx::{TypeInfo, ValueRef};
        let mut mistyped = None;
        let mut read = ColumnReader {
            row,
            mistyped: &mut mistyped,
        };
        let (key_id, text) = text_of(row, "key_id")?;
        if !text {
            read.mistyped.get_or_insert("key_id");
        }
        // SQLite decodes text as bytes too; a sealed secret stored as text
        // would open, yet never match the blob a rewrap compares it with.
        let sealed_type = row
            .try_get_raw("sealed_secret")?
            .type_info()
            .name()
            .to_owned();
        if !matches!(sealed_type.as_str(), "BLOB" | "BYTEA") {
            read.mistyped.get_or_insert("sealed_secret");
        }
        let key_row = KeyRow {
            key_id,
            owner: read.get("owner").unwrap_or_default(),
            client: read.get("client").flatten(),
            scopes: read.get("scopes").unwrap_or_default(),
            state: read.get("state").unwrap_or_default(),
            not_before: read.get("not_before").flatten(),
            not_after: read.get("not_after").flatten(),
            created_at: read.get("created_at").unwrap_or_default(),
            revoked_at: read.get("revoked_at").flatten(),
            revoke_reason: read.get("revoke_reason").flatten(),
            last_used_at: read.get("last_used_at").flatten(),
            master_version: read.get("master_version").unwrap_or_default(),
            sealed_secret: read.get("sealed_secret").unwrap_or_default(),
            attributes: read.get("attributes").flatten(),
            replaces: read.get("replaces").flatten(),
            page: row.try_get("page").ok(),
            mistyped: None,
        };
        Ok(KeyRow {
            mistyped,
            ..key_row
        })
    }
}

/// A text column of a row (`key_id`, `owner`), and whether it is text: a
/// hand edit may have left bytes there (SQLite), read lossily so that the
/// row can be named.
pub(crate) fn text_of<'r, R>(row: &'r R, column: &'r str) -> Result<(String, bool), sqlx::Error>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok((text, true)),
        Err(_) => {
            let bytes = row.try_get::<Vec<u8>, _>(column)?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), false))
        }
    }
}

/// One row's columns, decoded one at a time.
struct ColumnReader<'a, 'r, R> {
    row: &'r R,
    mistyped: &'a mut Option<&'static str>,
}

impl<'r, R> ColumnReader<'_, 'r, R>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
{
    /// The column's value, or `None` (noted as the row's first mistyped
    /// column) when it does not decode as `T`.
    fn get<T>(&mut self, column: &'static str) -> Option<T>
    where
        T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        match self.row.try_get::<T, _>(column) {
            Ok(value) => Some(value),
            Err(_) => {
                self.mistyped.get_or_insert(column);
                None
            }
        }
    }
}

/// A row's fields, parsed. Failing to parse means the row was edited by
/// hand into something this store never writes: the key is refused.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) key_id: KeyId,
    pub(crate) owner: String,
    pub(crate) client: Option<String>,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) state: KeyState,
    pub(crate) not_before: Option<u64>,
    pub(crate) not_after: Option<u64>,
    pub(crate) attributes: Option<serde_json::Value>,
    pub(crate) attributes_canonical: Option<String>,
    pub(crate) master_version: u32,
}

/// Why a row with a value of another type in `column` is unreadable.
fn mistyped_reason(column: &'static str) -> &'static str {
    match column {
        "owner" => "owner is not text",
        "client" => "client is not text or NULL",
        "scopes" => "scopes is not text",
        "state" => "state is not text",
        "not_before" => "not_before is not an integer or NULL",
        "not_after" => "not_after is not an integer or NULL",
        "created_at" => "created_at is not an integer",
        "revoked_at" => "revoked_at is not an integer or NULL",
        "revoke_reason" => "revoke_reason is not text or NULL",
        "last_used_at" => "last_used_at is not an integer or NULL",
        "master_version" => "master_version is not an integer",
        "sealed_secret" => "sealed_secret is not a blob",
        "key_id" => "key_id is not text",
        "attributes" => "attributes is not text or NULL",
        "replaces" => "replaces is not text or NULL",
        _ => "a column holds a value of another type than the store writes",
    }
}

impl KeyRow {
    /// The row's fields, or why they cannot be read (a row edited by hand
    /// into something this store never writes).
    pub(crate) fn parse(&self) -> Result<Parsed, &'static str> {
        if let Some(column) = self.mistyped {
            return Err(mistyped_reason(column));
        }
        let key_id = KeyId::new(&self.key_id).map_err(|_| "the key id is not a valid key id")?;
        let scopes: Vec<String> = serde_json::from_str(&self.scopes)
            .map_err(|_| "scopes is not a JSON array of strings")?;
        let state = match self.state.as_str() {
            "active" => KeyState::Active,
            "revoked" => KeyState::Revoked,
            _ => return Err("state is neither 'active' nor 'revoked'"),
        };
        let time = |t: Option<i64>| match t {
            None => Ok(None),
            Some(t) => u64::try_from(t).map(Some),
        };
        let (attributes, attributes_canonical) = match &self.attributes {
            None => (None, None),
            Some(text) => {
                let value: serde_json::Value =
                    serde_json::from_str(text).map_err(|_| "attributes is not JSON")?;
                let canonical = canonical_json(&value);
                (Some(value), Some(canonical))
            }
        };
        Ok(Parsed {
            key_id,
            owner: self.owner.clone(),
            client: self.client.clone(),
            scopes: scopes.into_iter().collect(),
            state,
            not_before: time(self.not_before).map_err(|_| "not_before is negative")?,
            not_after: time(self.not_after).map_err(|_| "not_after is negative")?,
            attributes,
            attributes_canonical,
            master_version: u32::try_from(self.master_version)
                .map_err(|_| "master_version is out of range")?,
        })
    }
}

impl Parsed {
    pub(crate) fn binding(&self) -> Binding<'_> {
        Binding {
            key_id: self.key_id.as_str(),
            owner: &self.owner,
            client: self.client.as_deref(),
            scopes: &self.scopes,
            not_before: self.not_before,
            not_after: self.not_after,
            attributes: self.attributes_canonical.as_deref(),
        }
    }

    pub(crate) fn metadata(&self) -> KeyMetadata {
        let mut m = KeyMetadata::new(self.owner.clone())
            .with_scopes(self.scopes.iter().cloned())
            .with_state(self.state);
        m.client.clone_from(&self.client);
        m.not_before = self.not_before;
        m.not_after = self.not_after;
        m.attributes.clone_from(&self.attributes);
        m
    }
}

/// The canonical text of a scope set: a JSON array, sorted.
pub(crate) fn scopes_text(scopes: &BTreeSet<String>) -> String {
    serde_json::Value::from(scopes.iter().cloned().collect::<Vec<_>>()).to_string()
}

/// Unix seconds for a column.
pub(crate) fn db_time(t: u64) -> Result<i64, Error> {
    i64::try_from(t).map_err(|_| Error::invalid("time", "beyond the year 292 billion"))
}

/// The URL with every password replaced by `***`, for messages
/// ([`tessera_server::redact_url`]). Text that is not a key database URL at
/// all is not shown: it may be a secret pasted where the URL belongs.
pub(crate) fn redact_url(url: &str) -> String {
    if is_sqlite(url) || is_postgres(url) {
        tessera_server::redact_url(url)
    } else {
        "(not shown: it starts with neither sqlite: nor postgres://)".to_owned()
    }
}

/// A SQLite URL's query parameters, names lowercased, both decoded.
fn sqlite_params(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.to_ascii_lowercase(), value.into_owned()))
        .collect()
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connection settings taken from the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectSettings {
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) busy_timeout: Duration,
    /// Create a missing SQLite file (migrate does; open only with `?mode=rwc`).
    pub(crate) create: bool,
}

pub(crate) async fn connect(url: &str, settings: ConnectSettings) -> Result<Pool, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let connect_error = |source| Error::Connect {
        url: redact_url(url),
        source,
    };
    if is_sqlite(url) {
        // An SQLite URI filename carries parameters of its own, which the
        // checks below would not see.
        let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
        if path
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
        {
            return Err(invalid(
                "SQLite URI filenames (file:…) are refused: name the database file by its path"
                    .into(),
            ));
        }
        // The parameters as sqlx reads them: decoded (`immut%61ble` is
        // `immutable`).
        let params = sqlite_params(url);
        if url.contains(":memory:")
            || params
                .iter()
                .any(|(name, value)| name == "mode" && value.eq_ignore_ascii_case("memory"))
        {
            return Err(invalid(
                "in-memory SQLite databases are not supported (each pooled connection would see its own); use a file".into(),
            ));
        }
        if params
            .iter()
            .any(|(name, _)| name == "immutable" || name == "vfs")
        {
            return Err(invalid(
                "`immutable` and `vfs` are refused: the store must see what other processes write (a revocation) through SQLite's locking, which they turn off".into(),
            ));
        }
        let mut options =
            SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        // The file name as sqlx decoded it (`%66ile:` is `file:`).
        if options
            .get_filename()
            .to_str()
            .and_then(|name| name.get(..5))
            .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
        {
            return Err(invalid(
                "SQLite URI filenames (file:…) are refused: name the database file by its path"
                    .into(),
            ));
        }
        let has_mode = url.contains("mode=");
        if settings.create && !has_mode {
            options = options.create_if_missing(true);
        }
        let creates = url.contains("mode=rwc") || (settings.create && !has_mode);
        let path = options.get_filename().to_path_buf();
        if !creates && !path.exists() {
            return Err(Error::SqliteFileMissing {
                path: path.display().to_string(),
            });
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a revocation reported done survives an OS crash or a
            // power cut (NORMAL may roll back the last commits in WAL mode).
            // The verifier's only frequent write is the batched
            // `last_used_at`.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Pool::Sqlite(pool))
    } else if is_postgres(url) {
        let options = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        // One direct connection first: the pool would only report a timeout,
        // where this gives the real cause (refused, unknown host, bad
        // password, no such database).
        match tokio::time::timeout(
            settings.acquire_timeout,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => return Err(connect_error(sqlx::Error::PoolTimedOut)),
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Pool::Postgres(pool))
    } else {
        Err(invalid(
            "expected sqlite://PATH or postgres://USER@HOST/DATABASE".into(),
        ))
    }
}

pub(crate) async fn migrate(pool: &Pool) -> Result<(), Error> {
    dual!(pool, |p, d| {
        let migrator = d.pick_migrator();
        migrator.run(p).await.map_err(Error::Migrate)
    })?;
    if let Pool::Postgres(p) = pool {
        // Again on every run, not once as a migration: `pg_restore
        // --disable-triggers` (and any `ENABLE TRIGGER ALL`) puts the
        // triggers back to firing for ordinary sessions only. Only when
        // needed: it takes the table's owner.
        for (name, mode) in trigger_modes(p).await? {
            if mode != "A" && CHANGE_TRIGGERS.contains(&name.as_str()) {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE tessera_keys ENABLE ALWAYS TRIGGER {name}"
                )))
                .execute(p)
                .await
                .map_err(|source| Error::Database {
                    action: "make the change triggers fire for every session",
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// The triggers that log changes to key rows.
const CHANGE_TRIGGERS: [&str; 2] = ["tessera_keys_changed", "tessera_keys_truncated"];

/// Each trigger of the key table and its `tgenabled` mode.
async fn trigger_modes(p: &sqlx::PgPool) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as(
        "SELECT tgname::text, tgenabled::text FROM pg_trigger \
         WHERE tgrelid = 'tessera_keys'::regclass AND NOT tgisinternal",
    )
    .fetch_all(p)
    .await
    .map_err(|source| Error::Database {
        action: "read the change triggers",
        source,
    })
}

/// PostgreSQL: the change triggers must fire, or no change reaches another
/// replica before its cache entry expires: a disabled one (left by a
/// restore with `--disable-triggers` that did not finish, or by hand) is
/// refused; one that fires for ordinary sessions only (after `ENABLE
/// TRIGGER ALL`) misses what logical replication applies, and is warned
/// about.
pub(crate) async fn check_triggers(pool: &Pool) -> Result<(), Error> {
    let Pool::Postgres(p) = pool else {
        return Ok(());
    };
    let modes = trigger_modes(p).await?;
    for name in CHANGE_TRIGGERS {
        match modes.iter().find(|(n, _)| n == name).map(|(_, m)| m.as_str()) {
            Some("A") => {}
            Some("O" | "R") => tracing::warn!(
                trigger = name,
                "tessera: the key change trigger does not fire for every session (changes applied by logical replication are not logged); run `tessera keys migrate` to restore it"
            ),
            _ => {
                return Err(Error::SchemaNotCurrent {
                    state: format!(
                        "not current (the change trigger {name} is disabled or missing: no change would reach other replicas)"
                    ),
                })
            }
        }
    }
    Ok(())
}

impl Dialect {
    fn pick_migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATOR,
            Dialect::Postgres => &POSTGRES_MIGRATOR,
        }
    }
}

/// Fails unless every embedded migration has been applied.
pub(crate) async fn check_schema(pool: &Pool) -> Result<(), Error> {
    let applied: Result<Vec<i64>, sqlx::Error> = dual!(pool, |p, d| {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(p)
            .await
    });
    let applied: HashSet<i64> = match applied {
        Ok(v) => v.into_iter().collect(),
        // No migrations table: the schema was never created.
        Err(sqlx::Error::Database(_)) => {
            return Err(Error::SchemaNotCurrent {
                state: "missing".into(),
            })
        }
        Err(source) => {
            return Err(Error::Database {
                action: "read the applied migrations",
                source,
            })
        }
    };
    let migrator = match pool {
        Pool::Sqlite(_) => &SQLITE_MIGRATOR,
        Pool::Postgres(_) => &POSTGRES_MIGRATOR,
    };
    for m in migrator.iter() {
        if m.migration_type.is_down_migration() {
            continue;
        }
        if !applied.contains(&m.version) {
            return Err(Error::SchemaNotCurrent {
                state: format!("outdated (migration {} not applied)", m.version),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        for (url, shown) in [
            (
                "postgres://tess@127.0.0.1:1/db?password=S3cretPw",
                "postgres://tess@127.0.0.1:1/db?password=***",
            ),
            (
                "postgres://tess:S3/cretPw@127.0.0.1:1/db",
                "postgres://tess:***@127.0.0.1:1/db",
            ),
            (
                "postgres://tess:S3cr#etPw@127.0.0.1:1/db",
                "postgres://tess:***@127.0.0.1:1/db",
            ),
            (
                "postgresql://tess@h/db?sslmode=require&sslpassword=S3cretPw",
                "postgresql://tess@h/db?sslmode=require&sslpassword=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        // A master key where the URL belongs is not echoed.
        let pasted = "27b722d490c7a93a2fa25bf0f764c18cc8093711efc79732d5429f9101a7eedb";
        assert!(!redact_url(pasted).contains(pasted));
    }

    /// One connection, short waits, no file created.
    fn test_settings() -> ConnectSettings {
        ConnectSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(1),
            create: false,
        }
    }

    /// Every way a bad URL is refused names it without its password.
    #[tokio::test]
    async fn refused_urls_never_show_a_password() {
        let settings = test_settings();
        for url in [
            "postgres://tess:S3/cretPw@127.0.0.1:1/db",
            "postgres://tess:S3cr#etPw@127.0.0.1:1/db",
            "postgres://tess@127.0.0.1:1/db?password=S3cretPw",
            "S3cretPw",
        ] {
            let Err(e) = connect(url, settings).await else {
                panic!("{url} connected");
            };
            let text = e.to_string();
            assert!(
                !text.contains("S3cretPw")
                    && !text.contains("S3/cretPw")
                    && !text.contains("S3cr#etPw"),
                "{text}"
            );
        }
    }

    /// Parameters that turn SQLite's locking or change detection off are
    /// refused: revocations written by another process would not be seen.
    #[tokio::test]
    async fn sqlite_urls_that_hide_other_writers_are_refused() {
        let dir = std::env::temp_dir().join(format!("tessera-immutable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keys.db");
        std::fs::write(&file, b"").expect("file");
        let settings = test_settings();
        for query in [
            "immutable=true",
            "immutable=1&mode=ro",
            "vfs=unix-none",
            "mode=ro&VFS=unix-dotfile",
            "immut%61ble=1",
            "mode=ro&v%66s=unix-none",
        ] {
            let url = format!("sqlite://{}?{query}", file.display());
            match connect(&url, settings).await {
                Err(Error::InvalidUrl { reason, .. }) => {
                    assert!(reason.contains("immutable"), "{reason}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        let url = format!("sqlite://file:{}%3Fimmutable=1?mode=rwc", file.display());
        match connect(&url, settings).await {
            Err(Error::InvalidUrl { reason, .. }) => assert!(reason.contains("file:"), "{reason}"),
            other => panic!("{url}: {other:?}"),
        }
        let url = format!("sqlite://%66ile:{}%3Fmode=memory?mode=rwc", file.display());
        match connect(&url, settings).await {
            Err(Error::InvalidUrl { reason, .. }) => {
                assert!(reason.contains("file:"), "{reason}")
            }
            other => panic!("{url}: {other:?}"),
        }
        let url = format!("sqlite://{}?mode=m%65mory", file.display());
        match connect(&url, settings).await {
            Err(Error::InvalidUrl { reason, .. }) => {
                assert!(reason.contains("in-memory"), "{reason}")
            }
            other => panic!("mode=m%65mory: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
