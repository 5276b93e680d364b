//! What can go wrong opening, administering or reading the store.

/// An error from [`SqlKeyStore`](crate::SqlKeyStore) or [`MasterKeyring`](crate::MasterKeyring).
///
/// Each message says what to fix. [`std::error::Error::source`] gives the
/// database or migration error behind the variants that wrap one. No variant
/// ever carries a secret or a master key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is neither `sqlite:` nor `postgres://`, or does not parse.
    #[error("invalid key database URL {url:?}: {reason} (expected sqlite://PATH[?mode=rwc] or postgres://USER@HOST[:PORT]/DATABASE)")]
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SQLite file does not exist and the URL does not ask to create it.
    #[error("the key database file {path:?} does not exist: run the migrations first (SqlKeyStore::migrate or `tessera keys migrate`), or add ?mode=rwc to the URL to create it")]
    SqliteFileMissing {
        /// The path from the URL.
        path: String,
    },
    /// The database could not be reached or refused the credentials.
    #[error("cannot connect to the key database {url}: check the host, port, database name and credentials")]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("applying the key store migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The schema is missing or older than this version of the crate expects.
    #[error("the key database schema is {state}: run SqlKeyStore::migrate (or `tessera keys migrate`), or open with SchemaPolicy::Migrate")]
    SchemaNotCurrent {
        /// `missing` or `outdated (migration N not applied)`.
        state: String,
    },
    /// A query failed (database down, timeout, constraint).
    #[error("key database query failed while trying to {action}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Neither `TESSERA_MASTER_KEY` nor `TESSERA_MASTER_KEY_FILE` is set.
    #[error("no master key: set TESSERA_MASTER_KEY to 64 hex characters (version 1), or TESSERA_MASTER_KEY_FILE to a file of `VERSION:HEX` lines")]
    MasterKeyMissing,
    /// The master key text or file is malformed.
    #[error("invalid master key: {reason}")]
    MasterKeyInvalid {
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// A master key version does not open the database's canary: the key is wrong.
    #[error("master key version {version} does not open this database's canary row: the key given for version {version} is not the one this database was sealed with (check TESSERA_MASTER_KEY / the key file)")]
    WrongMasterKey {
        /// The version whose key is wrong.
        version: u32,
    },
    /// Keys in the database are sealed under master key versions the keyring lacks.
    #[error("keys in this database are sealed under master key version(s) {versions:?}, which the keyring does not hold: add them to the key file (run `rewrap` before retiring an old version)")]
    MasterKeyVersionMissing {
        /// The versions needed but not held.
        versions: Vec<u32>,
    },
    /// Keys are sealed under a version that has no canary row (the row was deleted).
    #[error("keys are sealed under master key version {version}, but the database has no canary row for it, so the key cannot be checked at start-up (restore the canary from a backup)")]
    CanaryMissing {
        /// The version without a canary.
        version: u32,
    },
    /// The canary rows disagree or are malformed: the database was edited by hand.
    #[error("the master key canary rows are inconsistent ({reason}); the database was edited or mixed with another one")]
    CanaryCorrupt {
        /// What is inconsistent.
        reason: String,
    },
    /// A key's sealed secret does not open with its row: the row (or the
    /// ciphertext) was edited outside this store. The key is refused.
    #[error("the sealed secret of key {key_id} does not open: the row was altered outside the key store (ciphertext, key id, owner, client, scopes, validity, attributes or master key version); revoke and re-issue it")]
    SealBroken {
        /// The key id of the row.
        key_id: String,
    },
    /// A key's row exists but cannot be read: it was edited outside this
    /// store into something the store never writes. The key is refused.
    #[error("the row of key {key_id:?} cannot be read ({reason}): it was edited outside the key store; revoke and re-issue the key, or restore the row")]
    RowUnreadable {
        /// The key id column, as stored.
        key_id: String,
        /// What is wrong with the row.
        reason: &'static str,
    },
    /// No key with this id (or the id's check tag is wrong).
    #[error("unknown key id {key_id}")]
    UnknownKey {
        /// The key id asked for.
        key_id: String,
    },
    /// The key is revoked; it cannot be rotated.
    #[error("key {key_id} is revoked; issue a new one instead of rotating it")]
    KeyRevoked {
        /// The key id.
        key_id: String,
    },
    /// The key has expired; it cannot be rotated.
    #[error("key {key_id} has expired; issue a new one instead of rotating it")]
    KeyExpired {
        /// The key id.
        key_id: String,
    },
    /// The key was already rotated; rotating it again would give a second
    /// replacement that ends with the shortened old key.
    #[error("key {key_id} was already rotated: its replacement is {replaced_by}; rotate that one instead")]
    AlreadyRotated {
        /// The key id asked for.
        key_id: String,
        /// The key that replaced it.
        replaced_by: String,
    },
    /// The owner already has the maximum number of active keys.
    #[error("owner {owner:?} already has {active} active keys (limit {limit}): revoke one (or let one expire) before issuing another, or raise SqlKeyStoreOptions::max_active_keys_per_owner")]
    OwnerLimit {
        /// The owner.
        owner: String,
        /// Active keys counted.
        active: u64,
        /// The configured limit.
        limit: u32,
    },
    /// A request field is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The field.
        field: &'static str,
        /// What is expected.
        reason: String,
    },
    /// The operating system's random source failed, or tessera-core refused a generated value.
    #[error("cannot generate a key")]
    Generate(#[source] tessera_core::Error),
}

impl Error {
    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Database { action, source }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            field,
            reason: reason.into(),
        }
    }
}
