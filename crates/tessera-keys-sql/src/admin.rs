//! [`SqlKeyAdmin`]: revocation without the master key.

use std::fmt;

use tessera_core::KeyId;

use crate::db::{self, ConnectSettings, Pool};
use crate::error::Error;
use crate::store::{check_label, check_reason, revoke_key, revoke_owner_keys};
use crate::types::SqlKeyStoreOptions;

/// Revokes keys in a key database without holding the master key.
///
/// Revoking changes no sealed secret, so the person who handles a lost
/// device or a leaked key needs only database access, not the key that
/// opens every secret. A revocation made here is the same transaction as
/// [`SqlKeyStore::revoke`](crate::SqlKeyStore::revoke) (the row, an audit
/// row, the change log), so every verifier learns it the same way.
///
/// Issuing, rotating, listing (which checks each seal) and serving need
/// [`SqlKeyStore`](crate::SqlKeyStore) and the master key.
///
/// ```no_run
/// # async fn lost_device() -> Result<(), tessera_keys_sql::Error> {
/// use tessera_keys_sql::{SqlKeyAdmin, SqlKeyStoreOptions};
///
/// let admin = SqlKeyAdmin::open("sqlite://keys.db", &SqlKeyStoreOptions::default()).await?;
/// let revoked = admin.revoke_owner("alice", "device lost", "on-call").await?;
/// println!("revoked {revoked} key(s)");
/// admin.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqlKeyAdmin {
    pool: Pool,
    options: SqlKeyStoreOptions,
}

impl fmt::Debug for SqlKeyAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlKeyAdmin").finish_non_exhaustive()
    }
}

impl SqlKeyAdmin {
    /// Connects to the database at `url`, whose schema must be current
    /// (`tessera keys migrate`). Uses the connection settings and the
    /// clock of `options`; nothing else of them applies here.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::SqliteFileMissing`],
    /// [`Error::Connect`], [`Error::SchemaNotCurrent`], [`Error::Database`].
    pub async fn open(url: &str, options: &SqlKeyStoreOptions) -> Result<SqlKeyAdmin, Error> {
        let pool = db::connect(
            url,
            ConnectSettings {
                max_connections: options.max_connections.min(2),
                acquire_timeout: options.acquire_timeout,
                busy_timeout: options.sqlite_busy_timeout,
                create: false,
            },
        )
        .await?;
        db::check_schema(&pool).await?;
        Ok(SqlKeyAdmin {
            pool,
            options: options.clone(),
        })
    }

    /// Revokes one key, as [`SqlKeyStore::revoke`](crate::SqlKeyStore::revoke)
    /// does: `true` if it was active, `false` if it was already revoked.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad actor or reason,
    /// [`Error::UnknownKey`] when the database does not hold the key,
    /// [`Error::Database`].
    pub async fn revoke(&self, key_id: &KeyId, reason: &str, actor: &str) -> Result<bool, Error> {
        check_label("actor", actor)?;
        check_reason(reason)?;
        let now_db = db::db_time(self.options.clock.now_unix())?;
        revoke_key(&self.pool, now_db, key_id, reason, actor).await
    }

    /// Revokes every active key of `owner`, as
    /// [`SqlKeyStore::revoke_owner`](crate::SqlKeyStore::revoke_owner) does;
    /// returns how many were revoked.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad actor or reason, [`Error::Database`].
    pub async fn revoke_owner(&self, owner: &str, reason: &str, actor: &str) -> Result<u64, Error> {
        check_label("actor", actor)?;
        check_reason(reason)?;
        let now_db = db::db_time(self.options.clock.now_unix())?;
        let revoked = revoke_owner_keys(&self.pool, now_db, owner, reason, actor).await?;
        Ok(revoked.len() as u64)
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        db::dual!(&self.pool, |p, _d| p.close().await);
    }
}
