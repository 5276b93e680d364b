//! Requests, results and settings of the store.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Clock, KeyId, SecretKey, SystemClock};
use tessera_server::KeyMetadata;

/// When a new key stops being valid.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// Valid until revoked.
    #[default]
    Never,
    /// Valid for this long from issue (whole seconds).
    After(Duration),
    /// Valid until this Unix time (inclusive).
    At(u64),
}

/// What to issue: for whom, to which client, with which scopes, attributes
/// and lifetime, and who asks.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct IssueRequest {
    /// The user or service account the key acts for (already authenticated
    /// by the application).
    pub owner: String,
    /// The app or device receiving the key.
    pub client: Option<String>,
    /// Scopes to grant.
    pub scopes: BTreeSet<String>,
    /// When the key expires.
    pub expiry: Expiry,
    /// A JSON object handed back with the verified identity (a company or
    /// plan id, say). Never secret.
    pub attributes: Option<serde_json::Value>,
    /// Who issues it, for the audit table (a user name, `login-service`, ...).
    pub actor: String,
}

impl IssueRequest {
    /// A key for `owner`, issued by `actor`, with no scopes and no expiry.
    pub fn new(owner: impl Into<String>, actor: impl Into<String>) -> Self {
        IssueRequest {
            owner: owner.into(),
            client: None,
            scopes: BTreeSet::new(),
            expiry: Expiry::Never,
            attributes: None,
            actor: actor.into(),
        }
    }

    /// Names the client (app or device).
    #[must_use]
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Adds scopes.
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Valid for `ttl` from issue.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expiry = Expiry::After(ttl);
        self
    }

    /// Valid until the Unix time `not_after` (inclusive).
    #[must_use]
    pub fn not_after(mut self, not_after: u64) -> Self {
        self.expiry = Expiry::At(not_after);
        self
    }

    /// Attaches the application's JSON object.
    #[must_use]
    pub fn attributes(mut self, attributes: serde_json::Value) -> Self {
        self.attributes = Some(attributes);
        self
    }
}

/// A freshly issued key: the only time its secret leaves the store.
///
/// The secret is reachable only through [`IssuedKey::expose_secret`]; it is
/// zeroized on drop and hidden from `Debug`. The type is not `Clone`.
pub struct IssuedKey {
    pub(crate) key_id: KeyId,
    pub(crate) secret: SecretKey,
    pub(crate) metadata: Arc<KeyMetadata>,
    pub(crate) replaces: Option<KeyId>,
}

impl IssuedKey {
    /// The key id the device signs with.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The metadata recorded for the key.
    pub fn metadata(&self) -> &KeyMetadata {
        &self.metadata
    }

    /// The key this one replaces, when it came from [`SqlKeyStore::rotate`](crate::SqlKeyStore::rotate).
    pub fn replaces(&self) -> Option<&KeyId> {
        self.replaces.as_ref()
    }

    /// The secret. Send it to the device over the authenticated response
    /// that issued it, then drop this value; never log or store it.
    pub fn expose_secret(&self) -> &SecretKey {
        &self.secret
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key_id", &self.key_id)
            .field("secret", &"** redacted **")
            .field("metadata", &self.metadata)
            .field("replaces", &self.replaces)
            .finish()
    }
}

/// A key as [`SqlKeyStore::list`](crate::SqlKeyStore::list) and
/// [`SqlKeyStore::show`](crate::SqlKeyStore::show) describe it: metadata and
/// bookkeeping, never the secret.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The key id.
    pub key_id: KeyId,
    /// Owner, client, scopes, validity, state and attributes.
    pub metadata: KeyMetadata,
    /// When it was issued (Unix seconds).
    pub created_at: u64,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// Last verified use, to the minute (written in batches; may lag by the flush interval).
    pub last_used_at: Option<u64>,
    /// The master key version its secret is sealed under.
    pub master_version: u32,
    /// The key it replaced by rotation.
    pub replaces: Option<KeyId>,
    /// Whether the sealed secret opens with this row: false means the row
    /// was altered outside the store, and the verifier refuses the key.
    pub seal_intact: bool,
}

/// A key row that cannot be read: edited outside the store into something
/// it never writes ([`SqlKeyStore::list_unreadable`](crate::SqlKeyStore::list_unreadable)).
/// Verifiers refuse its key with `store_unavailable`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableKey {
    /// The key id column, as stored (it may itself be what is wrong).
    pub key_id: String,
    /// The owner column, as stored.
    pub owner: String,
    /// What is wrong with the row.
    pub reason: &'static str,
}

/// What [`SqlKeyStore::rewrap`](crate::SqlKeyStore::rewrap) did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// The master key version every row is now sealed under.
    pub to_version: u32,
    /// Rows re-sealed.
    pub rewrapped: u64,
    /// Rows that could not be opened (altered outside the store); left as they were.
    pub failed: Vec<String>,
    /// Rows found still under an older version once the pass was over,
    /// other than those in `failed`: written under an older version while
    /// the rewrap ran (restored from a backup, or by a store whose keyring
    /// had not moved on yet). Run the rewrap again.
    pub left_behind: Vec<String>,
}

impl RewrapReport {
    /// Whether every row is now sealed under [`RewrapReport::to_version`]:
    /// only then may older versions leave the keyrings.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.left_behind.is_empty()
    }
}

/// Counters since the store was opened, for monitoring and tests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Key look-ups sent to the database by [`KeyStore::resolve`](tessera_server::KeyStore::resolve).
    pub db_lookups: u64,
    /// Resolves answered from the verified-key cache.
    pub cache_hits: u64,
    /// Resolves answered from a read of the same key made in the last
    /// seconds, for keys not in the cache (revoked, expired, not yet valid,
    /// or whose MAC has not verified since): a flood of requests naming such
    /// a key reads the database once, not once per request.
    pub recent_read_hits: u64,
    /// Resolves answered `unknown` from the negative cache.
    pub negative_hits: u64,
    /// Key ids refused because their check tag was wrong (no query made).
    pub tag_rejections: u64,
    /// Resolves refused because the look-up rate limit was reached.
    pub rate_limited: u64,
    /// Rows whose sealed secret did not open (altered rows).
    pub seal_failures: u64,
    /// `last_used_at` updates written.
    pub last_used_writes: u64,
    /// Successful polls of the change log.
    pub reconciles: u64,
    /// PostgreSQL notifications received (one per changed key and transaction).
    pub notifications: u64,
    /// Changed keys read from the change log (each dropped from the caches).
    pub remote_invalidations: u64,
    /// Times the whole cache was dropped (too many changes at once, the
    /// log not read for longer than `max_staleness`, or a log reset).
    pub full_invalidations: u64,
    /// Times the change log no longer held the last row this store saw (a
    /// database restored from a backup, or the log emptied by hand): the
    /// whole cache was dropped and polling went on from the log's newest row.
    pub log_resets: u64,
    /// Resolves refused at once because the database was known to be unreachable.
    pub unavailable: u64,
    /// Resolves that found the poller behind (its last successful poll
    /// more than two `change_poll_interval`s old, the database not known to
    /// be down) and waited for a poll; without one in time they trusted
    /// only what was read from the database within two intervals.
    pub overdue_polls: u64,
    /// Polls that found the SQLite file replaced under the open store (a
    /// backup restored by moving a file over it): the store then refuses
    /// every key until it is opened again.
    pub file_replaced: u64,
}

/// Whether [`SqlKeyStore::open`](crate::SqlKeyStore::open) applies the migrations.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaPolicy {
    /// Refuse to open unless every embedded migration has been applied (the
    /// default: schema changes are a deliberate step, `tessera keys migrate`).
    #[default]
    RequireCurrent,
    /// Apply missing migrations at open (convenient for an embedded SQLite file).
    Migrate,
}

/// Settings of a [`SqlKeyStore`](crate::SqlKeyStore). Start from
/// [`SqlKeyStoreOptions::default`] and change fields.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct SqlKeyStoreOptions {
    /// Whether opening applies the migrations.
    pub schema: SchemaPolicy,
    /// Verified keys kept in memory (entries); 0 turns the cache off (every
    /// request reads the database). Default 100,000.
    pub cache_capacity: u64,
    /// The longest a verified key stays cached, changed or not. Changes
    /// reach the cache through the change log (`change_poll_interval`) and,
    /// on PostgreSQL, notifications; this is only a backstop. Keep it above
    /// `max_staleness`, or cached keys stop outliving a database outage.
    /// Default 10 minutes.
    pub cache_ttl: Duration,
    /// Unknown (but well-tagged) key ids remembered. Default 10,000.
    pub negative_cache_capacity: u64,
    /// How long an unknown key id is remembered. Default 60 s.
    pub negative_cache_ttl: Duration,
    /// Active (unrevoked, unexpired) keys one owner may hold. Default 20.
    pub max_active_keys_per_owner: u32,
    /// Database look-ups per second for cache misses (a token bucket with a
    /// one-second burst); beyond it, resolves fail with `store_unavailable`.
    /// A key read in the last 5 s is answered from that read (under the
    /// same rules as a cache hit) instead of spending the budget again, so
    /// requests naming a revoked or expired key, or a real key id with a
    /// wrong signature, cost one look-up per key per 5 s, not one per
    /// request (one per key per two `change_poll_interval`s while the
    /// change-log polls are failing or behind). Default 1,000.
    pub max_lookups_per_second: u32,
    /// How often used keys' `last_used_at` is written. Default 15 s.
    pub last_used_flush_interval: Duration,
    /// A key's `last_used_at` is written at most once per this period. Default 60 s.
    pub last_used_granularity: Duration,
    /// Connections in the pool. Default 8.
    pub max_connections: u32,
    /// How long to wait for a pooled connection (and for the first connect). Default 3 s.
    pub acquire_timeout: Duration,
    /// How long a key look-up or a change-log poll may take; past it the
    /// request gets `store_unavailable` and the database is marked down
    /// (uncached keys are then refused at once until a poll succeeds).
    /// Default 500 ms.
    pub lookup_timeout: Duration,
    /// How often the change log is polled for keys changed by other
    /// processes (issue, rotate, revoke, rewrap, or an edit by hand). On
    /// SQLite this bounds how long another process keeps accepting a revoked
    /// key. On PostgreSQL notifications do that within milliseconds and the
    /// poll is a safety net (it runs every 250 ms while the listener is
    /// disconnected), which also bounds a listener that stops receiving
    /// without an error (a stuck backend, a half-open connection, a pooler
    /// that drops notifications). Default 750 ms, so that a change reaches
    /// every replica within a second either way.
    pub change_poll_interval: Duration,
    /// PostgreSQL: LISTEN for change notifications. Default true.
    pub listen_notifications: bool,
    /// How long a cached key keeps verifying without a successful poll of
    /// the database (an outage): past it the key is read again, and refused
    /// (`store_unavailable`) while the database cannot answer. Default 60 s.
    pub max_staleness: Duration,
    /// SQLite's `busy_timeout`: how long a writer waits for the lock. Default 5 s.
    pub sqlite_busy_timeout: Duration,
    /// Rows re-sealed per transaction by `rewrap`. Default 100.
    pub rewrap_batch: u32,
    /// The clock for `created_at`, `not_before`, `not_after` and expiry checks.
    pub clock: Arc<dyn Clock>,
}

impl Default for SqlKeyStoreOptions {
    fn default() -> Self {
        SqlKeyStoreOptions {
            schema: SchemaPolicy::RequireCurrent,
            cache_capacity: 100_000,
            cache_ttl: Duration::from_secs(600),
            negative_cache_capacity: 10_000,
            negative_cache_ttl: Duration::from_secs(60),
            max_active_keys_per_owner: 20,
            max_lookups_per_second: 1_000,
            last_used_flush_interval: Duration::from_secs(15),
            last_used_granularity: Duration::from_secs(60),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            lookup_timeout: Duration::from_millis(500),
            change_poll_interval: Duration::from_millis(750),
            listen_notifications: true,
            max_staleness: Duration::from_secs(60),
            sqlite_busy_timeout: Duration::from_secs(5),
            rewrap_batch: 100,
            clock: Arc::new(SystemClock::new()),
        }
    }
}

impl SqlKeyStoreOptions {
    /// Uses `clock` (a `ManualClock` in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets [`SqlKeyStoreOptions::schema`].
    #[must_use]
    pub fn with_schema(mut self, schema: SchemaPolicy) -> Self {
        self.schema = schema;
        self
    }
}
