//! [`SqlKeyStore`]: open, issue, rotate, revoke, list, rewrap, and the
//! [`KeyStore`] implementation the verifier uses.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use tessera_core::{KeyId, SecretKey, SigningKey};
use tessera_server::{KeyMetadata, KeyState, KeyStore, KeyStoreError, ResolvedKey};
use zeroize::Zeroizing;

use crate::db::{self, dual, key_columns, ConnectSettings, KeyRow, Parsed, Pool};
use crate::error::Error;
use crate::key_id::{self, IdTagger};
use crate::master::{MasterKey, MasterKeyring};
use crate::seal::{self, Binding, ID_KEY_LEN};
use crate::sync::{self, SyncState, Tasks};
use crate::types::{
    Expiry, IssueRequest, IssuedKey, KeyRecord, RewrapReport, SchemaPolicy, SqlKeyStoreOptions,
    StoreStats, UnreadableKey,
};

/// Longest owner, client, actor or scope accepted, in bytes.
const MAX_LABEL_LEN: usize = 256;
/// Most scopes on one key.
const MAX_SCOPES: usize = 64;
/// Longest canonical attributes object, in bytes.
const MAX_ATTRIBUTES_LEN: usize = 8 * 1024;

/// A [`KeyStore`] in SQLite or PostgreSQL, with secrets sealed at rest.
///
/// Cloning is cheap and shares the pool and caches: give one clone to the
/// [`Verifier`](tessera_server::Verifier) and keep one to issue and revoke.
/// See the [crate docs](crate) for the design.
#[derive(Clone)]
pub struct SqlKeyStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    keyring: MasterKeyring,
    tagger: IdTagger,
    pub(crate) options: SqlKeyStoreOptions,
    /// Keys whose MAC verified (filled only from `KeyStore::verified`).
    /// quick_cache, not moka: this is the one cache every request reads,
    /// and its hit must cost about what `MemoryKeyStore`'s map look-up does
    /// (the TTL is checked against `Cached::read_ms` on each hit instead).
    pub(crate) cache: quick_cache::sync::Cache<KeyId, Arc<Cached>>,
    /// Well-tagged key ids the database does not hold.
    pub(crate) negative: Cache<KeyId, ()>,
    /// The last read of each key from the database: `verified` caches only
    /// that very key object (not a copy an earlier request still holds),
    /// and only if no change of the key was seen since the read began
    /// (local, polled or notified); `resolve` answers from it for
    /// [`READ_REUSE`] so that a flood of requests naming a key that is not
    /// cached (revoked, expired, or whose MAC never verifies) reads the
    /// database once, not once per request.
    pub(crate) reads: Cache<KeyId, Arc<Read>>,
    /// Counts changes seen (local, polled or notified).
    pub(crate) epoch: AtomicU64,
    /// The epoch of each key's last change seen (kept 10 s: far longer than
    /// a read takes to reach `verified`).
    pub(crate) changed: Cache<KeyId, u64>,
    /// The epoch of the last "everything changed".
    pub(crate) all_changed: AtomicU64,
    /// When the store was opened (`now_ms` counts from here).
    pub(crate) origin: Instant,
    /// The wall clock when the store was opened, and the largest lead it
    /// has had over the monotonic clock since (`Inner::now_ms`).
    pub(crate) origin_wall: std::time::SystemTime,
    pub(crate) wall_lead_ms: AtomicU64,
    pub(crate) sync: SyncState,
    pub(crate) tasks: Tasks,
    /// PostgreSQL with notifications on.
    pub(crate) listens: bool,
    limiter: Mutex<Bucket>,
    /// Keys whose `last_used_at` was queued within the granularity period.
    touched: Cache<KeyId, ()>,
    pending_touches: Mutex<HashMap<KeyId, u64>>,
    pub(crate) counters: Counters,
}

/// How long a read is remembered (`Inner::reads`). Shorter than the 10 s
/// for which `Inner::changed` remembers a change: a read that began before
/// a change is then always seen as older than it, never as current after
/// the change was forgotten.
const READ_REUSE: Duration = Duration::from_secs(5);

/// One read of a key from the database.
pub(crate) struct Read {
    /// The change epoch when the read began.
    epoch: u64,
    /// When (`now_ms`) the read began.
    read_ms: u64,
    key: ResolvedKey,
}

/// A verified key and when (`now_ms`) it was read from the database.
pub(crate) struct Cached {
    key: ResolvedKey,
    read_ms: u64,
    /// When (`now_ms`) its `last_used_at` was last queued: a cache hit
    /// checks this instead of a second cache.
    touched_ms: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) reconciles: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) remote_invalidations: AtomicU64,
    pub(crate) full_invalidations: AtomicU64,
    pub(crate) log_resets: AtomicU64,
    unavailable: AtomicU64,
    db_lookups: AtomicU64,
    cache_hits: AtomicU64,
    recent_read_hits: AtomicU64,
    negative_hits: AtomicU64,
    tag_rejections: AtomicU64,
    rate_limited: AtomicU64,
    seal_failures: AtomicU64,
    last_used_writes: AtomicU64,
    pub(crate) overdue_polls: AtomicU64,
    pub(crate) file_replaced: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A token bucket: `rate` look-ups per second, bursts of up to `rate`.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl fmt::Debug for SqlKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = match self.inner.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        };
        f.debug_struct("SqlKeyStore")
            .field("driver", &driver)
            .field("keyring", &self.inner.keyring)
            .field("cached_keys", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

/// Writes an audit row inside the transaction `$tx`.
macro_rules! audit {
    ($tx:expr, $at:expr, $actor:expr, $action:expr, $key_id:expr, $owner:expr, $detail:expr) => {
        sqlx::query(
            "INSERT INTO tessera_key_audit (at, actor, action, key_id, owner, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($at)
        .bind($actor)
        .bind($action)
        .bind($key_id)
        .bind($owner)
        .bind($detail)
        .execute(&mut *$tx)
        .await
        .map_err(Error::db("write the audit row"))?
    };
}

/// Bumps the change counter inside the transaction `$tx`.
macro_rules! bump_changes {
    ($tx:expr) => {
        sqlx::query("UPDATE tessera_change_counter SET value = value + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await
            .map_err(Error::db("bump the change counter"))?
    };
}

/// PostgreSQL: takes the change-log lock at the start of a write
/// transaction (the trigger on `tessera_keys` takes it too, before drawing a
/// change seq), so every writer locks in the same order and seq order is
/// commit order. SQLite's `BEGIN IMMEDIATE` already serializes writers.
macro_rules! lock_changes {
    ($tx:expr, $d:expr) => {
        if $d == db::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7322, 1)")
                .execute(&mut *$tx)
                .await
                .map_err(Error::db("take the change-log lock"))?;
        }
    };
}

/// Inserts a new key row inside the transaction `$tx`.
macro_rules! insert_key {
    ($tx:expr, $row:expr) => {{
        let row: &NewRow = $row;
        sqlx::query(concat!(
            "INSERT INTO tessera_keys (",
            key_columns!(),
            ") VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, NULL, NULL, NULL, $8, $9, $10, $11)"
        ))
        .bind(row.key_id.as_str())
        .bind(&row.owner)
        .bind(&row.client)
        .bind(&row.scopes)
        .bind(row.not_before)
        .bind(row.not_after)
        .bind(row.created_at)
        .bind(row.master_version)
        .bind(&row.sealed)
        .bind(&row.attributes)
        .bind(&row.replaces)
        .execute(&mut *$tx)
        .await
        .map_err(Error::db("insert the key"))?
    }};
}

/// An issue, validated and sealed, ready for its transaction.
struct Prepared {
    key_id: KeyId,
    secret: SecretKey,
    row: NewRow,
    metadata: KeyMetadata,
    detail: String,
    now_db: i64,
}

/// A key row ready to insert.
struct NewRow {
    key_id: KeyId,
    owner: String,
    client: Option<String>,
    scopes: String,
    not_before: Option<i64>,
    not_after: Option<i64>,
    created_at: i64,
    master_version: i64,
    sealed: Vec<u8>,
    attributes: Option<String>,
    replaces: Option<String>,
}

impl SqlKeyStore {
    /// Creates the schema, or brings it up to date: the embedded migrations
    /// for the URL's driver. A missing SQLite file is created. Needs no
    /// master key. Safe to run while servers use the database.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::Connect`] or [`Error::Migrate`].
    pub async fn migrate(url: &str) -> Result<(), Error> {
        let defaults = SqlKeyStoreOptions::default();
        let pool = db::connect(
            url,
            ConnectSettings {
                max_connections: 1,
                acquire_timeout: defaults.acquire_timeout,
                busy_timeout: defaults.sqlite_busy_timeout,
                create: true,
            },
        )
        .await?;
        let result = db::migrate(&pool).await;
        dual!(&pool, |p, d| p.close().await);
        result
    }

    /// Opens the store at `url` (`sqlite://PATH`, `sqlite://PATH?mode=rwc`
    /// to create the file, or `postgres://...`).
    ///
    /// Checks, before anything is served: the schema is current (or applies
    /// it, with [`SchemaPolicy::Migrate`]); every master key version in the
    /// ring that has a canary row opens it; the current version has a canary
    /// (written now if missing); and every version that seals a key row is
    /// in the ring. A store that opens can open every key it holds.
    ///
    /// Starts a background task (on the current tokio runtime) that writes
    /// `last_used_at` in batches; it ends when the last clone is dropped.
    ///
    /// # Panics
    /// When called outside a tokio runtime (sqlx needs one too).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::SqliteFileMissing`], [`Error::Connect`],
    /// [`Error::SchemaNotCurrent`], [`Error::Migrate`],
    /// [`Error::WrongMasterKey`], [`Error::MasterKeyVersionMissing`],
    /// [`Error::CanaryMissing`], [`Error::CanaryCorrupt`], [`Error::Database`].
    pub async fn open(
        url: &str,
        keyring: MasterKeyring,
        options: SqlKeyStoreOptions,
    ) -> Result<SqlKeyStore, Error> {
        let pool = db::connect(
            url,
            ConnectSettings {
                max_connections: options.max_connections,
                acquire_timeout: options.acquire_timeout,
                busy_timeout: options.sqlite_busy_timeout,
                create: false,
            },
        )
        .await?;
        match options.schema {
            SchemaPolicy::Migrate => db::migrate(&pool).await?,
            SchemaPolicy::RequireCurrent => db::check_schema(&pool).await?,
        }
        db::check_triggers(&pool).await?;
        let now = db::db_time(options.clock.now_unix())?;
        let id_key = load_canaries(&pool, &keyring, now).await?;
        let tagger = IdTagger::new(id_key);
        let last_change = sync::last_change(&pool)
            .await
            .map_err(Error::db("read the key change log"))?;
        let listen = match &pool {
            Pool::Postgres(_) if options.listen_notifications => Some(
                <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url).map_err(
                    |e| Error::InvalidUrl {
                        url: db::redact_url(url),
                        reason: e.to_string(),
                    },
                )?,
            ),
            _ => None,
        };

        let o = &options;
        let inner = Arc::new(Inner {
            pool,
            keyring,
            tagger,
            cache: quick_cache::sync::Cache::new(
                usize::try_from(o.cache_capacity.max(1)).unwrap_or(usize::MAX),
            ),
            negative: Cache::builder()
                .max_capacity(o.negative_cache_capacity)
                .time_to_live(o.negative_cache_ttl)
                .build(),
            reads: Cache::builder()
                .max_capacity(o.negative_cache_capacity.max(1_000))
                .time_to_live(READ_REUSE)
                .build(),
            epoch: AtomicU64::new(0),
            changed: Cache::builder()
                .max_capacity(sync::CHANGES_REMEMBERED)
                .time_to_live(Duration::from_secs(10))
                .build(),
            all_changed: AtomicU64::new(0),
            origin: Instant::now(),
            origin_wall: std::time::SystemTime::now(),
            wall_lead_ms: AtomicU64::new(0),
            sync: SyncState::default(),
            tasks: Tasks::new(),
            listens: listen.is_some(),
            limiter: Mutex::new(Bucket {
                tokens: f64::from(o.max_lookups_per_second.max(1)),
                last: Instant::now(),
                rate: f64::from(o.max_lookups_per_second.max(1)),
            }),
            touched: Cache::builder()
                .max_capacity(o.cache_capacity)
                .time_to_live(o.last_used_granularity)
                .build(),
            pending_touches: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            options,
        });
        *inner
            .sync
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = last_change;
        spawn_flusher(&inner);
        sync::spawn(&inner, listen);
        Ok(SqlKeyStore { inner })
    }

    /// Issues a key: a fresh 32-byte secret from the OS random source and a
    /// checked key id, sealed and stored with an audit row, in one
    /// transaction that also enforces the per-owner limit.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad field, [`Error::OwnerLimit`] when
    /// the owner already has `max_active_keys_per_owner` active keys,
    /// [`Error::Generate`] or [`Error::Database`].
    pub async fn issue(&self, request: IssueRequest) -> Result<IssuedKey, Error> {
        let i = &*self.inner;
        let Prepared {
            key_id,
            secret,
            row,
            metadata,
            detail,
            now_db,
        } = self.prepare_issue(&request)?;
        let limit = i.options.max_active_keys_per_owner;
        dual!(&i.pool, |p, d| {
            let mut tx = p
                .begin_with(d.begin_write())
                .await
                .map_err(Error::db("begin the issue transaction"))?;
            lock_changes!(tx, d);
            if d == db::Dialect::Postgres {
                // Serializes issues for one owner, so the limit holds under concurrency.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7321))")
                    .bind(&request.owner)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::db("lock the owner"))?;
            }
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tessera_keys WHERE owner = $1 AND state = 'active' \
                 AND (not_after IS NULL OR not_after >= $2)",
            )
            .bind(&request.owner)
            .bind(now_db)
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::db("count the owner's active keys"))?;
            let active = u64::try_from(active).unwrap_or(0);
            if active >= u64::from(limit) {
                return Err(Error::OwnerLimit {
                    owner: request.owner.clone(),
                    active,
                    limit,
                });
            }
            insert_key!(tx, &row);
            audit!(
                tx,
                now_db,
                &request.actor,
                "issue",
                Some(key_id.as_str()),
                Some(&request.owner),
                Some(&detail)
            );
            bump_changes!(tx);
            tx.commit()
                .await
                .map_err(Error::db("commit the issue transaction"))?;
            Ok::<(), Error>(())
        })?;
        self.invalidate([key_id.clone()]);
        tracing::info!(key_id = %key_id, owner = %request.owner, actor = %request.actor, "tessera-keys-sql: key issued");
        Ok(IssuedKey {
            key_id,
            secret,
            metadata: Arc::new(metadata),
            replaces: None,
        })
    }

    /// Validates an issue request, generates the key and seals its row.
    fn prepare_issue(&self, request: &IssueRequest) -> Result<Prepared, Error> {
        let i = &*self.inner;
        check_label("owner", &request.owner)?;
        check_label("actor", &request.actor)?;
        if let Some(client) = &request.client {
            check_label("client", client)?;
        }
        if request.scopes.len() > MAX_SCOPES {
            return Err(Error::invalid(
                "scopes",
                format!("at most {MAX_SCOPES} scopes per key"),
            ));
        }
        for scope in &request.scopes {
            check_label("scope", scope)?;
            // Scopes are listed comma-separated (identity headers, `keys
            // list`): one holding a comma or a space would read as several.
            if scope.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(Error::invalid(
                    "scope",
                    format!("{scope:?} contains whitespace or a comma: give each scope on its own"),
                ));
            }
        }
        let attributes = match &request.attributes {
            None => None,
            Some(value @ serde_json::Value::Object(_)) => {
                let text = seal::canonical_json(value);
                if text.len() > MAX_ATTRIBUTES_LEN {
                    return Err(Error::invalid(
                        "attributes",
                        format!("at most {MAX_ATTRIBUTES_LEN} bytes of JSON"),
                    ));
                }
                Some(text)
            }
            Some(_) => return Err(Error::invalid("attributes", "must be a JSON object")),
        };
        let now = i.options.clock.now_unix();
        let not_after = match request.expiry {
            Expiry::Never => None,
            Expiry::After(ttl) if ttl.as_secs() == 0 => {
                return Err(Error::invalid("ttl", "must be at least one second"))
            }
            Expiry::After(ttl) => Some(now.saturating_add(ttl.as_secs())),
            Expiry::At(t) if t <= now => {
                return Err(Error::invalid("not_after", "is not in the future"))
            }
            Expiry::At(t) => Some(t),
        };
        let key_id = self.new_key_id()?;
        let secret = SecretKey::generate().map_err(Error::Generate)?;
        let (row, metadata) = self.seal_new_row(
            &key_id,
            &secret,
            &request.owner,
            request.client.as_deref(),
            &request.scopes,
            (now, not_after),
            attributes,
            request.attributes.clone(),
            None,
        )?;
        let now_db = db::db_time(now)?;
        let detail = serde_json::json!({
            "client": request.client,
            "scopes": request.scopes,
            "not_after": not_after,
            "master_version": row.master_version,
        })
        .to_string();
        Ok(Prepared {
            key_id,
            secret,
            row,
            metadata,
            detail,
            now_db,
        })
    }

    /// Issues many keys in one transaction (provisioning, imports,
    /// benchmarks): each is validated, generated and sealed as by
    /// [`SqlKeyStore::issue`], gets its own audit row, and counts towards
    /// its owner's limit. All or nothing.
    ///
    /// # Errors
    /// As [`SqlKeyStore::issue`]; nothing is issued on error.
    pub async fn issue_batch(&self, requests: &[IssueRequest]) -> Result<Vec<IssuedKey>, Error> {
        let i = &*self.inner;
        let prepared = requests
            .iter()
            .map(|r| self.prepare_issue(r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut per_owner: HashMap<&str, u64> = HashMap::new();
        for r in requests {
            *per_owner.entry(r.owner.as_str()).or_default() += 1;
        }
        let limit = i.options.max_active_keys_per_owner;
        let now_db = prepared.first().map_or(0, |p| p.now_db);
        dual!(&i.pool, |p, d| {
            let mut tx = p
                .begin_with(d.begin_write())
                .await
                .map_err(Error::db("begin the issue transaction"))?;
            lock_changes!(tx, d);
            for (owner, adding) in &per_owner {
                if d == db::Dialect::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7321))")
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::db("lock the owner"))?;
                }
                let active: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM tessera_keys WHERE owner = $1 AND state = 'active' \
                     AND (not_after IS NULL OR not_after >= $2)",
                )
                .bind(owner)
                .bind(now_db)
                .fetch_one(&mut *tx)
                .await
                .map_err(Error::db("count the owner's active keys"))?;
                let active = u64::try_from(active).unwrap_or(0);
                if active + adding > u64::from(limit) {
                    return Err(Error::OwnerLimit {
                        owner: (*owner).to_string(),
                        active,
                        limit,
                    });
                }
            }
            for (prep, request) in prepared.iter().zip(requests) {
                insert_key!(tx, &prep.row);
                audit!(
                    tx,
                    prep.now_db,
                    &request.actor,
                    "issue",
                    Some(prep.key_id.as_str()),
                    Some(&request.owner),
                    Some(&prep.detail)
                );
            }
            bump_changes!(tx);
            tx.commit()
                .await
                .map_err(Error::db("commit the issue transaction"))?;
            Ok::<(), Error>(())
        })?;
        self.invalidate(prepared.iter().map(|p| p.key_id.clone()));
        tracing::info!(
            count = prepared.len(),
            "tessera-keys-sql: keys issued in a batch"
        );
        Ok(prepared
            .into_iter()
            .map(|p| IssuedKey {
                key_id: p.key_id,
                secret: p.secret,
                metadata: Arc::new(p.metadata),
                replaces: None,
            })
            .collect())
    }

    /// Rotates a key: issues its replacement (same owner, client, scopes and
    /// attributes, and the same lifetime counted from now) and cuts the old
    /// key's `not_after` to now + `overlap`, so both verify during the
    /// overlap while installed apps move over. The per-owner limit does not
    /// apply (the old key is on its way out).
    ///
    /// # Errors
    /// [`Error::UnknownKey`], [`Error::KeyRevoked`], [`Error::KeyExpired`],
    /// [`Error::AlreadyRotated`],
    /// [`Error::SealBroken`] when the old row was altered, [`Error::RowUnreadable`] when it
    /// holds what the store never writes, [`Error::Database`].
    pub async fn rotate(
        &self,
        key_id: &KeyId,
        overlap: Duration,
        actor: &str,
    ) -> Result<IssuedKey, Error> {
        let i = &*self.inner;
        check_label("actor", actor)?;
        if !i.tagger.check(key_id) {
            return Err(Error::UnknownKey {
                key_id: key_id.to_string(),
            });
        }
        let now = i.options.clock.now_unix();
        let now_db = db::db_time(now)?;
        let new_id = self.new_key_id()?;
        let new_secret = SecretKey::generate().map_err(Error::Generate)?;
        let outcome = dual!(&i.pool, |p, d| {
            let mut tx = p
                .begin_with(d.begin_write())
                .await
                .map_err(Error::db("begin the rotate transaction"))?;
            lock_changes!(tx, d);
            let old: Option<KeyRow> = sqlx::query_as(d.pick(
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM tessera_keys WHERE key_id = $1"
                ),
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM tessera_keys WHERE key_id = $1 FOR UPDATE"
                ),
            ))
            .bind(key_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::db("read the key to rotate"))?;
            let Some(old) = old else {
                return Err(Error::UnknownKey {
                    key_id: key_id.to_string(),
                });
            };
            let (parsed, old_secret) = self.open_row(&old)?;
            if parsed.state == KeyState::Revoked {
                return Err(Error::KeyRevoked {
                    key_id: key_id.to_string(),
                });
            }
            if parsed.not_after.is_some_and(|t| now > t) {
                return Err(Error::KeyExpired {
                    key_id: key_id.to_string(),
                });
            }
            // Its not_after is already the first rotation's cut: a second
            // replacement would inherit that short life and die with it.
            let replaced_by: Option<(String,)> = sqlx::query_as(
                "SELECT key_id FROM tessera_keys WHERE replaces = $1 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(key_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::db("look for an earlier rotation"))?;
            if let Some((replaced_by,)) = replaced_by {
                return Err(Error::AlreadyRotated {
                    key_id: key_id.to_string(),
                    replaced_by,
                });
            }
            // The replacement lives as long as the old key was meant to.
            let lifetime = parsed.not_after.map(|t| {
                t.saturating_sub(parsed.not_before.unwrap_or(old.created_at.max(0) as u64))
            });
            let new_not_after = lifetime.map(|l| now.saturating_add(l.max(1)));
            let (row, metadata) = self.seal_new_row(
                &new_id,
                &new_secret,
                &parsed.owner,
                parsed.client.as_deref(),
                &parsed.scopes,
                (now, new_not_after),
                parsed.attributes_canonical.clone(),
                parsed.attributes.clone(),
                Some(key_id.as_str().to_string()),
            )?;
            // The old key's new end: re-sealed, since not_after is bound.
            let cut = now.saturating_add(overlap.as_secs());
            let old_not_after = Some(parsed.not_after.map_or(cut, |t| t.min(cut)));
            let old_binding = Binding {
                not_after: old_not_after,
                ..parsed.binding()
            };
            let master = i.keyring.current();
            let resealed = seal::seal_secret(master, &old_binding, &old_secret)
                .map_err(|_| Error::Generate(random_failed()))?;
            let updated = sqlx::query(
                "UPDATE tessera_keys SET not_after = $1, sealed_secret = $2, master_version = $3 \
                 WHERE key_id = $4 AND sealed_secret = $5",
            )
            .bind(old_not_after.map(db::db_time).transpose()?)
            .bind(&resealed)
            .bind(i64::from(master.version()))
            .bind(key_id.as_str())
            .bind(&old.sealed_secret)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("shorten the old key"))?;
            if updated.rows_affected() != 1 {
                return Err(Error::Database {
                    action: "shorten the old key (it changed during the rotation; retry)",
                    source: sqlx::Error::RowNotFound,
                });
            }
            insert_key!(tx, &row);
            let detail = serde_json::json!({
                "replaces": key_id.as_str(),
                "overlap_secs": overlap.as_secs(),
                "old_not_after": old_not_after,
                "not_after": new_not_after,
            })
            .to_string();
            audit!(
                tx,
                now_db,
                actor,
                "rotate",
                Some(new_id.as_str()),
                Some(&parsed.owner),
                Some(&detail)
            );
            bump_changes!(tx);
            tx.commit()
                .await
                .map_err(Error::db("commit the rotate transaction"))?;
            Ok::<_, Error>(metadata)
        });
        let metadata = outcome?;
        self.invalidate([key_id.clone()]);
        tracing::info!(key_id = %new_id, replaces = %key_id, actor, "tessera-keys-sql: key rotated");
        Ok(IssuedKey {
            key_id: new_id,
            secret: new_secret,
            metadata: Arc::new(metadata),
            replaces: Some(key_id.clone()),
        })
    }

    /// Revokes one key. Returns `true` if it was active, `false` if it was
    /// already revoked. Requests signed with it then get `key_revoked`
    /// (on this process at once; on other processes within milliseconds on
    /// PostgreSQL, within `change_poll_interval` on SQLite).
    ///
    /// # Errors
    /// [`Error::UnknownKey`] or [`Error::Database`].
    pub async fn revoke(&self, key_id: &KeyId, reason: &str, actor: &str) -> Result<bool, Error> {
        let i = &*self.inner;
        check_label("actor", actor)?;
        check_reason(reason)?;
        if !i.tagger.check(key_id) {
            return Err(Error::UnknownKey {
                key_id: key_id.to_string(),
            });
        }
        let now_db = db::db_time(i.options.clock.now_unix())?;
        let changed = revoke_key(&i.pool, now_db, key_id, reason, actor).await?;
        self.invalidate([key_id.clone()]);
        Ok(changed)
    }

    /// Revokes every active key of `owner` ("log out everywhere"); returns
    /// how many were revoked.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn revoke_owner(&self, owner: &str, reason: &str, actor: &str) -> Result<u64, Error> {
        let i = &*self.inner;
        check_label("actor", actor)?;
        check_reason(reason)?;
        let now_db = db::db_time(i.options.clock.now_unix())?;
        let revoked = revoke_owner_keys(&i.pool, now_db, owner, reason, actor).await?;
        self.invalidate(revoked.iter().filter_map(|id| KeyId::new(id).ok()));
        Ok(revoked.len() as u64)
    }

    /// The keys of `owner` (or every key, with `None`), oldest first:
    /// metadata only, never secrets. Rows that cannot be read (edited
    /// outside the store) are not listed here but by
    /// [`SqlKeyStore::list_unreadable`]; verifiers refuse their keys with
    /// `store_unavailable`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, Error> {
        let rows = self.fetch_rows(owner).await?;
        Ok(rows.iter().filter_map(|r| self.record(r).ok()).collect())
    }

    /// The rows of `owner` (or every row, with `None`) that cannot be read,
    /// oldest first, each with what is wrong with it: rows edited outside
    /// the store into something it never writes (a state other than
    /// `active` or `revoked`, scopes or attributes that are not JSON, a
    /// negative time). Their keys are refused with `store_unavailable`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn list_unreadable(&self, owner: Option<&str>) -> Result<Vec<UnreadableKey>, Error> {
        let rows = self.fetch_rows(owner).await?;
        Ok(rows.iter().filter_map(|r| self.record(r).err()).collect())
    }

    async fn fetch_rows(&self, owner: Option<&str>) -> Result<Vec<KeyRow>, Error> {
        dual!(&self.inner.pool, |p, d| {
            match owner {
                Some(owner) => {
                    sqlx::query_as(concat!(
                        "SELECT ",
                        key_columns!(),
                        " FROM tessera_keys WHERE owner = $1 ORDER BY created_at, key_id"
                    ))
                    .bind(owner)
                    .fetch_all(p)
                    .await
                }
                None => {
                    sqlx::query_as(concat!(
                        "SELECT ",
                        key_columns!(),
                        " FROM tessera_keys ORDER BY created_at, key_id"
                    ))
                    .fetch_all(p)
                    .await
                }
            }
        })
        .map_err(Error::db("list keys"))
    }

    /// One key's metadata, or `None` when unknown. Never the secret.
    ///
    /// # Errors
    /// [`Error::RowUnreadable`] when the key's row exists but cannot be
    /// read (edited outside the store); [`Error::Database`].
    pub async fn show(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        let row = self
            .fetch_row(key_id)
            .await
            .map_err(Error::db("show the key"))?;
        row.as_ref()
            .map(|r| {
                self.record(r).map_err(|unreadable| Error::RowUnreadable {
                    key_id: unreadable.key_id,
                    reason: unreadable.reason,
                })
            })
            .transpose()
    }

    /// Re-seals every key row (and the canary) under the current master key
    /// version, `rewrap_batch` rows per transaction, with one audit row per
    /// transaction. Safe while servers keep verifying: each row is replaced
    /// atomically, and a row still under an older version opens as long as
    /// that version is in the keyring. Once it returns a report that
    /// [`is_complete`](RewrapReport::is_complete) (every row read again
    /// after the pass is under the current version), older versions may be
    /// removed from every server's keyring.
    ///
    /// # Errors
    /// [`Error::Database`]; rows that do not open are listed in the report,
    /// not an error.
    pub async fn rewrap(&self, actor: &str) -> Result<RewrapReport, Error> {
        let i = &*self.inner;
        check_label("actor", actor)?;
        let master = i.keyring.current();
        let to_version = i64::from(master.version());
        let batch = i64::from(i.options.rewrap_batch.max(1));
        let mut report = RewrapReport {
            to_version: master.version(),
            rewrapped: 0,
            failed: Vec::new(),
            left_behind: Vec::new(),
        };
        // The last page read; none yet, so that the first page starts
        // before any row (a rowid may be 0 or negative, a key id empty).
        let mut after: Option<String> = None;
        loop {
            let now_db = db::db_time(i.options.clock.now_unix())?;
            let (done, last) = dual!(&i.pool, |p, d| {
                let mut tx = p
                    .begin_with(d.begin_write())
                    .await
                    .map_err(Error::db("begin a rewrap transaction"))?;
                lock_changes!(tx, d);
                // SQLite pages by rowid: a key id left by a hand edit as a
                // blob, or as text that is not UTF-8, has no name here that
                // sorts where the row does, and paging by the name brought
                // rows back in every batch, for ever.
                let rows: Vec<KeyRow> = sqlx::query_as(d.pick(
                    concat!(
                        "SELECT ",
                        key_columns!(),
                        ", CAST(rowid AS TEXT) AS page FROM tessera_keys \
                         WHERE master_version <> $1 \
                         AND ($2 IS NULL OR rowid > CAST($2 AS INTEGER)) \
                         ORDER BY rowid LIMIT $3"
                    ),
                    concat!(
                        "SELECT ",
                        key_columns!(),
                        ", key_id AS page FROM tessera_keys WHERE master_version <> $1 \
                         AND ($2::text IS NULL OR key_id > $2) ORDER BY key_id LIMIT $3 \
                         FOR UPDATE"
                    ),
                ))
                .bind(to_version)
                .bind(&after)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(Error::db("read keys to rewrap"))?;
                let mut count = 0u64;
                for row in &rows {
                    let (parsed, secret) = match self.open_row(row) {
                        Ok(opened) => opened,
                        Err(_) => {
                            report.failed.push(row.key_id.clone());
                            continue;
                        }
                    };
                    let sealed = seal::seal_secret(master, &parsed.binding(), &secret)
                        .map_err(|_| Error::Generate(random_failed()))?;
                    let updated = sqlx::query(
                        "UPDATE tessera_keys SET sealed_secret = $1, master_version = $2 \
                         WHERE key_id = $3 AND sealed_secret = $4",
                    )
                    .bind(&sealed)
                    .bind(to_version)
                    .bind(&row.key_id)
                    .bind(&row.sealed_secret)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::db("rewrap a key"))?;
                    // None: the row changed since it was read (the lock
                    // keeps other stores out, not hand edits) or its seal
                    // is not stored as the blob it compared equal to. Not
                    // done, so not reported done.
                    if updated.rows_affected() == 0 {
                        report.failed.push(row.key_id.clone());
                    }
                    count += updated.rows_affected();
                }
                if count > 0 {
                    let detail =
                        serde_json::json!({ "rewrapped": count, "to_version": to_version })
                            .to_string();
                    audit!(
                        tx,
                        now_db,
                        actor,
                        "rewrap",
                        None::<&str>,
                        None::<&str>,
                        Some(&detail)
                    );
                    bump_changes!(tx);
                }
                tx.commit()
                    .await
                    .map_err(Error::db("commit a rewrap transaction"))?;
                report.rewrapped += count;
                Ok::<_, Error>((
                    rows.len() < batch as usize,
                    rows.last().and_then(|r| r.page.clone()),
                ))
            })?;
            match last {
                Some(last) if after.as_ref() != Some(&last) => after = Some(last),
                // No progress: never expected, and a loop must not hang on
                // it; the check below names what is left.
                _ => break,
            }
            if done {
                break;
            }
        }
        // Read again: whatever is still under an older version and was not
        // named as a failure (written behind the pass while it ran) keeps
        // the report from being complete.
        let left: Vec<String> = dual!(&i.pool, |p, _d| {
            let rows = sqlx::query("SELECT key_id FROM tessera_keys WHERE master_version <> $1")
                .bind(to_version)
                .fetch_all(p)
                .await
                .map_err(Error::db("read keys left under an older version"))?;
            rows.iter()
                .map(|row| db::text_of(row, "key_id").map(|(id, _)| id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::db("read keys left under an older version"))
        })?;
        report.left_behind = left
            .into_iter()
            .filter(|id| !report.failed.contains(id))
            .collect();
        if report.is_complete() {
            // Canaries of versions no row needs any more: gone, so a leaked
            // retired master key opens nothing in a later dump.
            dual!(&i.pool, |p, d| {
                sqlx::query(
                    "DELETE FROM tessera_master_canary WHERE master_version <> $1 \
                     AND master_version NOT IN (SELECT DISTINCT master_version FROM tessera_keys)",
                )
                .bind(to_version)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(Error::db("remove retired canaries"))
            })?;
        } else {
            tracing::warn!(failed = ?report.failed, left_behind = ?report.left_behind, "tessera-keys-sql: rewrap left rows under an older version (failed: they do not open, altered outside the store; left_behind: written under an older version while it ran)");
        }
        tracing::info!(
            rewrapped = report.rewrapped,
            to_version = report.to_version,
            actor,
            "tessera-keys-sql: rewrap done"
        );
        Ok(report)
    }

    /// Writes the queued `last_used_at` times now (the background task does
    /// this every `last_used_flush_interval`). Returns how many rows it updated.
    ///
    /// # Errors
    /// [`Error::Database`]; the queued times are then dropped (they are
    /// advisory).
    pub async fn flush_last_used(&self) -> Result<u64, Error> {
        self.inner.flush_last_used().await
    }

    /// Stops the background tasks (change polling, the PostgreSQL listener,
    /// `last_used_at` batches), flushes `last_used_at` and closes the pool.
    /// Other clones stop working. Dropping the last clone also stops the
    /// tasks (without the final flush).
    pub async fn close(&self) {
        self.inner.tasks.shutdown.send_replace(true);
        if let Err(e) = self.inner.flush_last_used().await {
            tracing::warn!(error = %e, "tessera-keys-sql: last_used_at flush at close failed");
        }
        dual!(&self.inner.pool, |p, d| p.close().await);
    }

    /// Whether the store counts its database as unreachable right now:
    /// keys that are not cached are refused at once (`store_unavailable`)
    /// and cached keys only verify until `max_staleness`, until a poll of
    /// the database succeeds again. It stays true, until the store is
    /// opened again, once the SQLite file was replaced under it (see
    /// [`StoreStats::file_replaced`]). For readiness probes.
    pub fn is_database_down(&self) -> bool {
        self.inner.is_down()
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            db_lookups: get(&c.db_lookups),
            cache_hits: get(&c.cache_hits),
            recent_read_hits: get(&c.recent_read_hits),
            negative_hits: get(&c.negative_hits),
            tag_rejections: get(&c.tag_rejections),
            rate_limited: get(&c.rate_limited),
            seal_failures: get(&c.seal_failures),
            last_used_writes: get(&c.last_used_writes),
            reconciles: get(&c.reconciles),
            notifications: get(&c.notifications),
            remote_invalidations: get(&c.remote_invalidations),
            full_invalidations: get(&c.full_invalidations),
            log_resets: get(&c.log_resets),
            unavailable: get(&c.unavailable),
            overdue_polls: get(&c.overdue_polls),
            file_replaced: get(&c.file_replaced),
        }
    }

    /// The change counter, bumped by every issue, rotate, revoke and rewrap.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn change_counter(&self) -> Result<i64, Error> {
        dual!(&self.inner.pool, |p, d| {
            sqlx::query_scalar("SELECT value FROM tessera_change_counter WHERE id = 1")
                .fetch_one(p)
                .await
        })
        .map_err(Error::db("read the change counter"))
    }

    /// Whether `key_id` has the shape and check tag of a key this store
    /// issued. No database query.
    pub fn is_well_formed(&self, key_id: &KeyId) -> bool {
        self.inner.tagger.check(key_id)
    }

    fn new_key_id(&self) -> Result<KeyId, Error> {
        self.inner.tagger.generate().map_err(|e| match e {
            key_id::Error::Random => Error::Generate(random_failed()),
            key_id::Error::Core(e) => Error::Generate(e),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn seal_new_row(
        &self,
        key_id: &KeyId,
        secret: &SecretKey,
        owner: &str,
        client: Option<&str>,
        scopes: &BTreeSet<String>,
        (now, not_after): (u64, Option<u64>),
        attributes_canonical: Option<String>,
        attributes: Option<serde_json::Value>,
        replaces: Option<String>,
    ) -> Result<(NewRow, KeyMetadata), Error> {
        let master = self.inner.keyring.current();
        let binding = Binding {
            key_id: key_id.as_str(),
            owner,
            client,
            scopes,
            not_before: Some(now),
            not_after,
            attributes: attributes_canonical.as_deref(),
        };
        let sealed = seal::seal_secret(master, &binding, secret.expose_secret())
            .map_err(|_| Error::Generate(random_failed()))?;
        let mut metadata = KeyMetadata::new(owner)
            .with_scopes(scopes.iter().cloned())
            .with_not_before(now);
        metadata.client = client.map(str::to_string);
        metadata.not_after = not_after;
        metadata.attributes = attributes;
        let row = NewRow {
            key_id: key_id.clone(),
            owner: owner.to_string(),
            client: client.map(str::to_string),
            scopes: db::scopes_text(scopes),
            not_before: Some(db::db_time(now)?),
            not_after: not_after.map(db::db_time).transpose()?,
            created_at: db::db_time(now)?,
            master_version: i64::from(master.version()),
            sealed,
            attributes: attributes_canonical,
            replaces,
        };
        Ok((row, metadata))
    }

    /// Parses a row and opens its secret: [`Error::RowUnreadable`] when
    /// the row holds what this store never writes, [`Error::SealBroken`]
    /// unless it is exactly as this store wrote it.
    fn open_row(&self, row: &KeyRow) -> Result<(Parsed, Zeroizing<Vec<u8>>), Error> {
        let broken = || Error::SealBroken {
            key_id: row.key_id.clone(),
        };
        let parsed = row.parse().map_err(|reason| Error::RowUnreadable {
            key_id: row.key_id.clone(),
            reason,
        })?;
        let master = self
            .inner
            .keyring
            .get(parsed.master_version)
            .ok_or_else(broken)?;
        let secret = seal::open_secret(master, &parsed.binding(), &row.sealed_secret)
            .map_err(|_| broken())?;
        Ok((parsed, secret))
    }

    fn record(&self, row: &KeyRow) -> Result<KeyRecord, UnreadableKey> {
        let parsed = row.parse().map_err(|reason| UnreadableKey {
            key_id: row.key_id.clone(),
            owner: row.owner.clone(),
            reason,
        })?;
        let seal_intact = self.open_row(row).is_ok();
        let time = |t: Option<i64>| t.and_then(|t| u64::try_from(t).ok());
        Ok(KeyRecord {
            key_id: parsed.key_id.clone(),
            metadata: parsed.metadata(),
            created_at: u64::try_from(row.created_at).unwrap_or(0),
            revoked_at: time(row.revoked_at),
            revoke_reason: row.revoke_reason.clone(),
            last_used_at: time(row.last_used_at),
            master_version: parsed.master_version,
            replaces: row.replaces.as_deref().and_then(|r| KeyId::new(r).ok()),
            seal_intact,
        })
    }

    async fn fetch_row(&self, key_id: &KeyId) -> Result<Option<KeyRow>, sqlx::Error> {
        dual!(&self.inner.pool, |p, d| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tessera_keys WHERE key_id = $1"
            ))
            .bind(key_id.as_str())
            .fetch_optional(p)
            .await
        })
    }

    /// Drops cached entries after a local change, and keeps reads made
    /// before it from being cached by `verified`.
    fn invalidate(&self, key_ids: impl IntoIterator<Item = KeyId>) {
        for id in key_ids {
            self.inner.forget_key(id);
        }
    }
}

/// Revokes `key_id` in one transaction (the row, an audit row, the change
/// log) and logs it: `true` if it was active, `false` if already revoked.
/// [`SqlKeyStore::revoke`] and [`crate::SqlKeyAdmin::revoke`] share it.
pub(crate) async fn revoke_key(
    pool: &Pool,
    now_db: i64,
    key_id: &KeyId,
    reason: &str,
    actor: &str,
) -> Result<bool, Error> {
    let changed = dual!(pool, |p, d| {
        let mut tx = p
            .begin_with(d.begin_write())
            .await
            .map_err(Error::db("begin the revoke transaction"))?;
        lock_changes!(tx, d);
        // A hand edit may have left the owner a blob (SQLite), which must
        // not stop the revoke: read as text or bytes.
        let owner = sqlx::query(
            "UPDATE tessera_keys SET state = 'revoked', revoked_at = $2, revoke_reason = $3 \
                 WHERE key_id = $1 AND state = 'active' RETURNING owner",
        )
        .bind(key_id.as_str())
        .bind(now_db)
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::db("revoke the key"))?
        .map(|row| db::text_of(&row, "owner").map(|(owner, _)| owner))
        .transpose()
        .map_err(Error::db("revoke the key"))?;
        match owner {
            Some(owner) => {
                let detail = serde_json::json!({ "reason": reason }).to_string();
                audit!(
                    tx,
                    now_db,
                    actor,
                    "revoke",
                    Some(key_id.as_str()),
                    Some(&owner),
                    Some(&detail)
                );
                bump_changes!(tx);
                tx.commit()
                    .await
                    .map_err(Error::db("commit the revoke transaction"))?;
                Ok(true)
            }
            None => {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT key_id FROM tessera_keys WHERE key_id = $1")
                        .bind(key_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(Error::db("look the key up"))?;
                match exists {
                    Some(_) => Ok(false),
                    None => Err(Error::UnknownKey {
                        key_id: key_id.to_string(),
                    }),
                }
            }
        }
    })?;
    if changed {
        tracing::info!(key_id = %key_id, actor, reason, "tessera-keys-sql: key revoked");
    }
    Ok(changed)
}

/// Revokes every active key of `owner` in one transaction (the rows, an
/// audit row, the change log), logs it and returns their ids.
/// [`SqlKeyStore::revoke_owner`] and [`crate::SqlKeyAdmin::revoke_owner`]
/// share it.
pub(crate) async fn revoke_owner_keys(
    pool: &Pool,
    now_db: i64,
    owner: &str,
    reason: &str,
    actor: &str,
) -> Result<Vec<String>, Error> {
    let revoked = dual!(pool, |p, d| {
        let mut tx = p
            .begin_with(d.begin_write())
            .await
            .map_err(Error::db("begin the revoke transaction"))?;
        lock_changes!(tx, d);
        // A hand edit may have left an id a blob (SQLite), which must not
        // stop the revoke of the owner's other keys: read as text or bytes.
        let rows = sqlx::query(
            "UPDATE tessera_keys SET state = 'revoked', revoked_at = $2, revoke_reason = $3 \
                 WHERE owner = $1 AND state = 'active' RETURNING key_id",
        )
        .bind(owner)
        .bind(now_db)
        .bind(reason)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::db("revoke the owner's keys"))?;
        let ids = rows
            .iter()
            .map(|row| db::text_of(row, "key_id").map(|(id, _)| id))
            .collect::<Result<Vec<String>, _>>()
            .map_err(Error::db("revoke the owner's keys"))?;
        let detail = serde_json::json!({ "reason": reason, "revoked": ids }).to_string();
        audit!(
            tx,
            now_db,
            actor,
            "revoke_owner",
            None::<&str>,
            Some(owner),
            Some(&detail)
        );
        bump_changes!(tx);
        tx.commit()
            .await
            .map_err(Error::db("commit the revoke transaction"))?;
        Ok::<_, Error>(ids)
    })?;
    tracing::info!(
        owner,
        actor,
        reason,
        count = revoked.len(),
        "tessera-keys-sql: owner's keys revoked"
    );
    Ok(revoked)
}

fn random_failed() -> tessera_core::Error {
    // SecretKey::generate reports an OS RNG failure this way; reuse its error.
    match SecretKey::from_bytes(&[]) {
        Err(e) => e,
        Ok(_) => unreachable!("an empty secret is refused"),
    }
}

pub(crate) fn check_label(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LABEL_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A revocation reason: free text (it may be empty), kept in the row and
/// logged, so bounded and without control characters (which could forge
/// log lines or drive a terminal that prints it).
pub(crate) fn check_reason(reason: &str) -> Result<(), Error> {
    if reason.len() > MAX_REASON_LEN {
        return Err(Error::invalid(
            "reason",
            format!("at most {MAX_REASON_LEN} bytes"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(Error::invalid(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Longest revocation reason, in bytes.
const MAX_REASON_LEN: usize = 1024;

/// Reads the canary rows: checks every master key the ring holds against
/// its canary, writes the current version's canary if missing, checks that
/// every version sealing a key is held, and returns the key-id check key.
async fn load_canaries(
    pool: &Pool,
    keyring: &MasterKeyring,
    now: i64,
) -> Result<Zeroizing<[u8; ID_KEY_LEN]>, Error> {
    let read = |pool: &Pool| {
        let pool = pool.clone();
        async move {
            dual!(&pool, |p, d| {
                sqlx::query_as::<_, (i64, Vec<u8>)>(
                    "SELECT master_version, sealed FROM tessera_master_canary ORDER BY master_version",
                )
                .fetch_all(p)
                .await
            })
            .map_err(Error::db("read the master key canaries"))
        }
    };
    let current = keyring.current();
    let mut rows = read(pool).await?;
    if rows.is_empty() {
        // A new database only if it holds no key. Keys without any canary
        // row: the rows were deleted, or not copied with the keys; a new
        // check key would let any master key in, orphan every key (their
        // ids' tags no longer check: `unknown_key`) and lock the right
        // master key out once its canary is replaced.
        let sealed_under: Option<i64> = dual!(pool, |p, d| {
            // A version that is not an integer (a hand edit on SQLite) counts
            // as 0: keys remain either way.
            sqlx::query_scalar(d.pick(
                "SELECT MIN(CASE WHEN typeof(master_version) = 'integer' THEN master_version \
                 ELSE 0 END) FROM tessera_keys",
                "SELECT MIN(master_version) FROM tessera_keys",
            ))
            .fetch_one(p)
            .await
        })
        .map_err(Error::db("read the master key versions in use"))?;
        if let Some(version) = sealed_under {
            return Err(Error::CanaryMissing {
                version: u32::try_from(version).unwrap_or(0),
            });
        }
        // A new database: a fresh key-id check key, sealed under the current version.
        let mut id_key = Zeroizing::new([0u8; ID_KEY_LEN]);
        getrandom::fill(id_key.as_mut_slice()).map_err(|_| Error::Generate(random_failed()))?;
        let sealed =
            seal::seal_canary(current, &id_key).map_err(|_| Error::Generate(random_failed()))?;
        insert_canary(pool, current, sealed, now, Canary::First).await?;
        // Ours, or the one a process opening at the same time wrote first.
        rows = read(pool).await?;
    }
    let opened = open_canaries(&rows, keyring)?;
    let id_key = match opened {
        Some(k) => k,
        None => {
            let versions = rows
                .iter()
                .filter_map(|(v, _)| u32::try_from(*v).ok())
                .collect();
            return Err(Error::MasterKeyVersionMissing { versions });
        }
    };
    // Every version that seals a key must be held, and have a canary.
    let needed: Vec<i64> = dual!(pool, |p, d| {
        // A row whose version is not an integer (a hand edit on SQLite) is
        // unreadable, its key refused, and listed as such; the others open.
        sqlx::query_scalar(d.pick(
            "SELECT DISTINCT master_version FROM tessera_keys \
             WHERE typeof(master_version) = 'integer'",
            "SELECT DISTINCT master_version FROM tessera_keys",
        ))
        .fetch_all(p)
        .await
    })
    .map_err(Error::db("read the master key versions in use"))?;
    let mut missing: Vec<u32> = needed
        .iter()
        .filter_map(|v| u32::try_from(*v).ok())
        .filter(|v| keyring.get(*v).is_none())
        .collect();
    if needed.iter().any(|v| u32::try_from(*v).is_err()) {
        return Err(Error::CanaryCorrupt {
            reason: "a key row has an invalid master_version".into(),
        });
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(Error::MasterKeyVersionMissing { versions: missing });
    }
    // (The current version's canary is written below when missing.)
    for v in needed {
        if v != i64::from(current.version()) && !rows.iter().any(|(c, _)| *c == v) {
            return Err(Error::CanaryMissing {
                version: u32::try_from(v).unwrap_or(0),
            });
        }
    }
    // Only once every other check passed (an open that fails leaves no
    // canary behind): a new current version gets the same check key sealed
    // under it, read back (another process may have raced us with its own).
    let has_current =
        |rows: &[(i64, Vec<u8>)]| rows.iter().any(|(v, _)| *v == i64::from(current.version()));
    if !has_current(&rows) {
        let sealed =
            seal::seal_canary(current, &id_key).map_err(|_| Error::Generate(random_failed()))?;
        insert_canary(pool, current, sealed, now, Canary::NewVersion).await?;
        rows = read(pool).await?;
        if !has_current(&rows) {
            // Keys are sealed under this version already: its canary was
            // deleted, and one written now would vouch for whatever key
            // the ring holds for it.
            return Err(Error::CanaryMissing {
                version: current.version(),
            });
        }
        open_canaries(&rows, keyring)?;
    }
    Ok(id_key)
}

/// Which canary [`insert_canary`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Canary {
    /// A new database's: only while it holds no canary and no key.
    First,
    /// A new current version's: only while it has none and no key is
    /// sealed under it.
    NewVersion,
}

/// Writes `current`'s canary when `which` says it may, under the change-log
/// lock (PostgreSQL) or SQLite's write lock: a process opening a new
/// database at the same time may have written one first (with another
/// key-id check key, perhaps under another version), and keys sealed under
/// a version whose canary is gone mean it was deleted, which a new one
/// must not paper over.
async fn insert_canary(
    pool: &Pool,
    current: &MasterKey,
    sealed: Vec<u8>,
    now: i64,
    which: Canary,
) -> Result<(), Error> {
    let sql = match which {
        Canary::First => {
            "INSERT INTO tessera_master_canary (master_version, sealed, created_at) \
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM tessera_master_canary) \
             AND NOT EXISTS (SELECT 1 FROM tessera_keys)"
        }
        Canary::NewVersion => {
            "INSERT INTO tessera_master_canary (master_version, sealed, created_at) \
             SELECT $1, $2, $3 WHERE NOT EXISTS \
             (SELECT 1 FROM tessera_master_canary WHERE master_version = $1) \
             AND NOT EXISTS (SELECT 1 FROM tessera_keys WHERE master_version = $1)"
        }
    };
    dual!(pool, |p, d| {
        let mut tx = p
            .begin_with(d.begin_write())
            .await
            .map_err(Error::db("begin writing the master key canary"))?;
        lock_changes!(tx, d);
        sqlx::query(sql)
            .bind(i64::from(current.version()))
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("write the master key canary"))?;
        tx.commit()
            .await
            .map_err(Error::db("commit the master key canary"))
    })
}

/// Opens every canary whose version the ring holds; all must open and agree.
fn open_canaries(
    rows: &[(i64, Vec<u8>)],
    keyring: &MasterKeyring,
) -> Result<Option<Zeroizing<[u8; ID_KEY_LEN]>>, Error> {
    let mut id_key: Option<Zeroizing<[u8; ID_KEY_LEN]>> = None;
    for (version, sealed) in rows {
        let version = u32::try_from(*version).map_err(|_| Error::CanaryCorrupt {
            reason: format!("invalid master_version {version}"),
        })?;
        let Some(master) = keyring.get(version) else {
            continue;
        };
        let key =
            seal::open_canary(master, sealed).map_err(|_| Error::WrongMasterKey { version })?;
        match &id_key {
            Some(k) if k.as_slice() != key.as_slice() => {
                return Err(Error::CanaryCorrupt {
                    reason: format!("version {version} carries a different key-id check key"),
                })
            }
            Some(_) => {}
            None => id_key = Some(key),
        }
    }
    Ok(id_key)
}

fn spawn_flusher(strong: &Arc<Inner>) {
    let inner: Weak<Inner> = Arc::downgrade(strong);
    let mut shutdown = strong.tasks.shutdown.subscribe();
    let interval = strong
        .options
        .last_used_flush_interval
        .max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
            }
            let Some(inner) = inner.upgrade() else {
                break;
            };
            if let Err(e) = inner.flush_last_used().await {
                tracing::warn!(error = %e, "tessera-keys-sql: writing last_used_at failed; those times are dropped");
            }
        }
    });
}

impl Inner {
    async fn flush_last_used(&self) -> Result<u64, Error> {
        let pending = std::mem::take(
            &mut *self
                .pending_touches
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if pending.is_empty() {
            return Ok(0);
        }
        let mut written = 0u64;
        dual!(&self.pool, |p, d| {
            let mut tx = p
                .begin_with(d.begin_write())
                .await
                .map_err(Error::db("begin the last_used_at batch"))?;
            for (key_id, at) in &pending {
                let at = db::db_time(*at)?;
                let r = sqlx::query(
                    "UPDATE tessera_keys SET last_used_at = $1 WHERE key_id = $2 \
                     AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(at)
                .bind(key_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(Error::db("write last_used_at"))?;
                written += r.rows_affected();
            }
            tx.commit()
                .await
                .map_err(Error::db("commit the last_used_at batch"))?;
            Ok::<(), Error>(())
        })?;
        self.counters
            .last_used_writes
            .fetch_add(written, Ordering::Relaxed);
        Ok(written)
    }

    /// Queues `last_used_at` for a key served from the cache, at most once
    /// per `last_used_granularity` (an atomic on the entry: no look-up).
    fn touch_cached(&self, key_id: &KeyId, entry: &Cached) {
        let now = self.now_ms();
        let last = entry.touched_ms.load(Ordering::Relaxed);
        let period =
            u64::try_from(self.options.last_used_granularity.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < period
            || entry
                .touched_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.queue_touch(key_id);
    }

    /// Queues `last_used_at` for a key read from the database, unless it
    /// was queued within `last_used_granularity` (the key may have left the
    /// cache and come back).
    fn touch(&self, key_id: &KeyId) {
        if self.touched.contains_key(key_id) {
            return;
        }
        self.queue_touch(key_id);
    }

    fn queue_touch(&self, key_id: &KeyId) {
        self.touched.insert(key_id.clone(), ());
        let mut pending = self
            .pending_touches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Bounded: past the cache size, further touches wait for the next flush period.
        if (pending.len() as u64) < self.options.cache_capacity.max(1) {
            pending.insert(key_id.clone(), self.options.clock.now_unix());
        }
    }
}

#[async_trait]
impl KeyStore for SqlKeyStore {
    /// Verified-key cache → check tag (no query for a made-up id) → a read
    /// of the same key in the last 5 s → negative cache
    /// → database-down mark → rate-limited database look-up (with
    /// `lookup_timeout`).
    ///
    /// A row whose sealed secret does not open (altered in the database) is
    /// an error, so the verifier answers `store_unavailable` and logs it: the
    /// store cannot vouch for the row, and saying `unknown_key` would hide
    /// the tampering from operators.
    async fn resolve(&self, key_id: &KeyId) -> Result<Option<ResolvedKey>, KeyStoreError> {
        let i = &*self.inner;
        // The caches vouch for a key only as far as the polls keep them
        // current: a poller that fell behind (a paused process, a starved
        // runtime) may not have applied a revocation made a second ago. It
        // is woken and waited for, so that the revocation bound holds for
        // the requests that arrive when the process resumes.
        // Without such a poll in time (one failed, or none ran within
        // `lookup_timeout`), only what was read from the database within
        // the poll bound vouches for a key; anything older is read again
        // (the database is thought reachable). While the store is marked
        // down, the outage rules apply instead (`max_staleness`).
        let arrived = i.now_ms();
        let overdue = i.poll_overdue(arrived);
        let trust_caches = !overdue || i.await_poll(arrived).await || i.is_down();
        // The cache first: it holds only ids whose MAC verified (so their
        // check tag was right), and a hit then costs no tag HMAC.
        let now = if overdue { i.now_ms() } else { arrived };
        let vouches = |read_ms: u64| trust_caches || i.within_poll_bound(read_ms, now);
        // Once the database is known to be unreachable (perhaps only found
        // so by this very resolve), the outage rules apply: a cached key
        // confirmed within `max_staleness` is served.
        let cached_during_outage = || {
            let hit = i.cache.get(key_id)?;
            let now = i.now_ms();
            let ttl = u64::try_from(i.options.cache_ttl.as_millis()).unwrap_or(u64::MAX);
            (i.is_down()
                && now.saturating_sub(hit.read_ms) <= ttl
                && i.is_fresh_at(hit.read_ms, now))
            .then(|| {
                bump(&i.counters.cache_hits);
                hit.key.clone()
            })
        };
        if let Some(hit) = i.cache.get(key_id).filter(|hit| vouches(hit.read_ms)) {
            let ttl = u64::try_from(i.options.cache_ttl.as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(hit.read_ms) > ttl {
                // Past cache_ttl: read it again.
                i.cache.remove(key_id);
            } else if i.is_fresh_at(hit.read_ms, now) {
                bump(&i.counters.cache_hits);
                return Ok(Some(hit.key.clone()));
            }
            // Not confirmed within max_staleness (the database has not
            // answered a poll since): read it again, or fail closed.
        }
        if !i.tagger.check(key_id) {
            bump(&i.counters.tag_rejections);
            return Ok(None);
        }
        // A key read moments ago (one that is not cached: revoked, expired,
        // not yet valid, or whose MAC has not verified since): the same
        // answer, under the same rules as a cache hit, without spending the
        // look-up budget that every other uncached key needs. With the
        // cache off, every request reads the database.
        if i.options.cache_capacity > 0 {
            if let Some(read) = i.reads.get(key_id).filter(|read| vouches(read.read_ms)) {
                let now = i.now_ms();
                if i.unchanged_since(key_id, read.epoch) && i.is_fresh_at(read.read_ms, now) {
                    bump(&i.counters.recent_read_hits);
                    return Ok(Some(read.key.clone()));
                }
            }
        }
        if i.negative.contains_key(key_id) {
            bump(&i.counters.negative_hits);
            return Ok(None);
        }
        if i.is_down() {
            if let Some(key) = cached_during_outage() {
                return Ok(Some(key));
            }
            bump(&i.counters.unavailable);
            return Err(KeyStoreError::new(
                "the key database is unreachable (retrying in the background)",
            ));
        }
        if !i
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            bump(&i.counters.rate_limited);
            return Err(KeyStoreError::new(
                "key look-up rate limit reached (SqlKeyStoreOptions::max_lookups_per_second)",
            ));
        }
        let epoch = i.epoch.load(Ordering::SeqCst);
        let read_ms = i.now_ms();
        bump(&i.counters.db_lookups);
        let row = match tokio::time::timeout(i.options.lookup_timeout, self.fetch_row(key_id)).await
        {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => {
                if sync::is_unreachable(&e) {
                    i.mark_down();
                    if let Some(key) = cached_during_outage() {
                        return Ok(Some(key));
                    }
                }
                return Err(KeyStoreError::with_source("key look-up failed", e));
            }
            Err(_) => {
                i.mark_down();
                if let Some(key) = cached_during_outage() {
                    return Ok(Some(key));
                }
                return Err(KeyStoreError::new(format!(
                    "key look-up timed out after {} ms (SqlKeyStoreOptions::lookup_timeout)",
                    i.options.lookup_timeout.as_millis()
                )));
            }
        };
        let Some(row) = row else {
            i.negative.insert(key_id.clone(), ());
            return Ok(None);
        };
        match self.open_row(&row) {
            Ok((parsed, secret)) => {
                let secret = SecretKey::from_bytes(&secret).map_err(|_| {
                    bump(&i.counters.seal_failures);
                    KeyStoreError::new(format!("key {key_id}: stored secret has an invalid length"))
                })?;
                let key = ResolvedKey::new(
                    SigningKey::new(key_id.clone(), &secret),
                    Arc::new(parsed.metadata()),
                );
                i.reads.insert(
                    key_id.clone(),
                    Arc::new(Read {
                        epoch,
                        read_ms,
                        key: key.clone(),
                    }),
                );
                Ok(Some(key))
            }
            Err(Error::RowUnreadable { reason, .. }) => {
                tracing::warn!(key_id = %key_id, reason, "tessera-keys-sql: the key's row cannot be read (edited outside the store into something it never writes); refusing the key");
                Err(KeyStoreError::new(format!(
                    "key {key_id}: its row cannot be read ({reason})"
                )))
            }
            Err(_) => {
                bump(&i.counters.seal_failures);
                tracing::warn!(key_id = %key_id, "tessera-keys-sql: the key's sealed secret does not open with its row (row or ciphertext altered outside the store); refusing the key");
                Err(KeyStoreError::new(format!(
                    "key {key_id} failed its integrity check (row altered in the database)"
                )))
            }
        }
    }

    fn verified(&self, key_id: &KeyId, key: &ResolvedKey) {
        let i = &*self.inner;
        if let Some(hit) = i.cache.get(key_id) {
            // Served from this entry (the same allocation): nothing to cache.
            if std::ptr::eq(hit.key.key(), key.key()) {
                i.touch_cached(key_id, &hit);
                return;
            }
        }
        if i.options.cache_capacity > 0 {
            // Cache only the key object of the last read, and only if that
            // read began after the last change seen. A request that took
            // its copy before a revocation or rotation (from the cache or
            // an earlier read) and verifies after another request read the
            // changed row holds another object: it is not cached, so the
            // stale copy cannot come back for `cache_ttl`.
            if let Some(read) = i.reads.get(key_id) {
                if std::ptr::eq(read.key.key(), key.key()) && i.unchanged_since(key_id, read.epoch)
                {
                    i.cache.insert(
                        key_id.clone(),
                        Arc::new(Cached {
                            key: read.key.clone(),
                            read_ms: read.read_ms,
                            touched_ms: AtomicU64::new(i.now_ms()),
                        }),
                    );
                    // A change seen while inserting (forget_key records the
                    // change before it evicts): take the entry back out.
                    if !i.unchanged_since(key_id, read.epoch) {
                        i.cache.remove(key_id);
                    }
                    i.reads.invalidate(key_id);
                }
            }
        }
        i.touch(key_id);
    }
}
