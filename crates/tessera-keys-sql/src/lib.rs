//! A SQL [`KeyStore`](tessera_server::KeyStore) for tessera-server: keys
//! that survive restarts and are shared by every replica, with their HMAC
//! secrets sealed at rest.
//!
//! # Where it sits
//!
//! `tessera-core` signs and checks; `tessera-server`'s
//! [`Verifier`](tessera_server::Verifier) looks keys up through the
//! [`KeyStore`](tessera_server::KeyStore) trait. This crate is one such
//! store, backed by **SQLite** (the embedded default: one file, WAL mode,
//! nothing to install) or **PostgreSQL** (many replicas), chosen by the URL.
//! It is its own crate, not a feature of tessera-server, because it brings
//! its own dependencies (sqlx with two drivers and a bundled SQLite, tokio,
//! AES-GCM, moka) that a server using the in-memory or derived stores should
//! never compile.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tessera_keys_sql::{IssueRequest, MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
//! use tessera_server::KeyStore;
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("keys.db").display());
//! // The master key lives outside the database: TESSERA_MASTER_KEY in
//! // production (MasterKeyring::from_env); a fixed one here.
//! let keyring = MasterKeyring::parse("c0ffee5a7e1d2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081920a1b")?;
//!
//! SqlKeyStore::migrate(&url).await?; // `tessera keys migrate`
//! let store = SqlKeyStore::open(&url, keyring, SqlKeyStoreOptions::default()).await?;
//!
//! let issued = store
//!     .issue(
//!         IssueRequest::new("user-42", "login-service")
//!             .client("ios")
//!             .scopes(["orders:read"])
//!             .ttl(Duration::from_secs(90 * 86_400))
//!             .attributes(serde_json::json!({ "plan": "pro" })),
//!     )
//!     .await?;
//! // Send issued.key_id() and issued.expose_secret() to the device, once.
//! let resolved = store.resolve(issued.key_id()).await?.expect("known");
//! assert_eq!(resolved.metadata().owner, "user-42");
//!
//! store.revoke(issued.key_id(), "device lost", "support:ann").await?;
//! let listed = store.list(Some("user-42")).await?;
//! assert_eq!(listed[0].metadata.state, tessera_server::KeyState::Revoked);
//! store.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Then `Verifier::builder(store.clone())` serves requests from it.
//!
//! # Why the secret itself is stored, encrypted
//!
//! A bearer API key can be stored as a hash: the server hashes what the
//! client presents and compares. An HMAC key never travels; the client
//! sends a MAC over the request, and the verifier must **recompute** that
//! MAC, which needs the secret itself. A hash of the secret is useless for
//! that, so the secret has to be recoverable by the verifier, and the
//! question is how to keep a database file, dump or backup from revealing it.
//!
//! The answer is envelope encryption: each secret is sealed with
//! AES-256-GCM under a **master key kept outside the database**
//! (`TESSERA_MASTER_KEY`, or a key file). A stolen database without the
//! master key reveals no secret. Master keys carry **versions**
//! ([`MasterKeyring`]): new secrets are sealed under the newest,
//! [`SqlKeyStore::rewrap`] re-seals every row under it while servers keep
//! running, and an old version can be retired once nothing uses it. Each
//! version has a sealed canary row, so a wrong or missing master key is a
//! clear error at start-up ([`Error::WrongMasterKey`],
//! [`Error::MasterKeyMissing`]) rather than a server refusing every request.
//!
//! # What is bound to a sealed secret
//!
//! Each secret is sealed with a fresh random 96-bit nonce, and its
//! associated data (authenticated, not encrypted) binds it to its row: a
//! domain-separation label, then, length-prefixed, the **key id, owner,
//! client, scopes** (sorted), **not_before, not_after, attributes**
//! (canonical JSON: keys sorted, no whitespace) and the **master key
//! version**. Editing any of these in the database, or copying a ciphertext
//! to another row, makes the secret fail to open.
//!
//! Not bound: `state`, `revoked_at`, `revoke_reason`, `last_used_at`,
//! `created_at`, `replaces`. Revoking must stay a plain `UPDATE`, possible
//! by hand in an emergency.
//!
//! A row that fails to open is **refused, fail closed**: `resolve` returns an
//! error, so the verifier answers `store_unavailable` (503) and the store
//! logs a warning naming the key id (never the secret). It is not treated as
//! `unknown_key`, which would let tampering pass for a client mistake; and it
//! is never accepted. [`KeyRecord::seal_intact`] shows such rows in
//! [`SqlKeyStore::list`].
//!
//! ## An attacker who can write to the database, but has no master key
//!
//! Can:
//! * deny service: revoke keys, delete rows, break ciphertexts (the keys
//!   then fail closed);
//! * **restore an earlier copy of a row** (from a backup or a log), which
//!   un-revokes a revoked key, or brings back an older `not_after` from
//!   before a rotation shortened it. Revocation state is not authenticated;
//!   protect the database's integrity, and watch the audit table;
//! * read owners, clients, scopes, attributes and times (they are not
//!   secret), and the audit table.
//!
//! Cannot:
//! * read any secret, from the live database, a dump or a backup;
//! * grant a key more scopes, change its owner, client or attributes,
//!   extend its expiry or move its validity window;
//! * move a secret to another key id or another owner, or make up a key;
//! * downgrade a row to another master key version.
//!
//! # Key ids and caching
//!
//! Key ids look like `k1.<22 random base64url>.<11-character check tag>`:
//! the tag is a truncated HMAC under a store-wide random key (kept sealed in
//! the canary rows), checked before anything else, so a made-up key id is
//! refused without a database query ([`StoreStats::tag_rejections`]).
//! Prepared keys are cached (bounded, with a TTL) only from
//! [`KeyStore::verified`](tessera_server::KeyStore::verified), once a MAC
//! has verified; well-tagged but unknown ids go to a bounded negative
//! cache; and database look-ups for cache misses are capped per second.
//! `last_used_at` is written at most once a minute per key, in batches, off
//! the request path.
//!
//! Revoked and expired keys still resolve, so clients get `key_revoked` and
//! `key_expired` rather than `unknown_key`.
//!
//! # Propagation and outages
//!
//! Every change to a key row, by any process or by hand, is logged in
//! `tessera_key_changes` by a trigger, in the same transaction. Each store
//! polls that log (`change_poll_interval`, 750 ms by default: the bound for
//! SQLite processes sharing a file) and drops the changed keys from its
//! caches. On PostgreSQL the trigger also sends `NOTIFY tessera_keys` with
//! the key id; a listener drops the key within milliseconds, and the poll
//! stays as the safety net (it catches up after a reconnect, and bounds a
//! listener that stopped receiving without an error). A `TRUNCATE` of the
//! key table, which fires no row trigger, is logged by a statement trigger
//! and drops every store's whole cache. So does a log that no longer holds
//! the last change a store read (a database restored from a backup, or the
//! log emptied by hand, whose new changes reuse seqs the store has passed;
//! [`StoreStats::log_resets`]). A storm of changes to more than half of the
//! 100,000 keys whose changes the store remembers for 10 s keeps every read
//! in flight out of the cache.
//!
//! When the database is unreachable, uncached keys get `store_unavailable`
//! at once (the store marks the database down and stops querying until a
//! poll succeeds), and cached keys keep verifying for at most
//! `max_staleness` (60 s by default) since the last successful poll, then
//! fail closed too. The store recovers by itself. The background tasks stop
//! on [`SqlKeyStore::close`] or when the last clone is dropped.
//!
//! # Schema
//!
//! Migrations per driver (`migrations/sqlite`, `migrations/postgres`) are
//! embedded and applied by [`SqlKeyStore::migrate`] (or at open with
//! [`SchemaPolicy::Migrate`]). Tables: `tessera_keys`, `tessera_key_audit`
//! (every issue, rotate, revoke and rewrap, in the same transaction, with
//! the caller's actor label), `tessera_master_canary` and
//! `tessera_change_counter` (bumped by every change the store makes) and
//! `tessera_key_changes` (the change log, filled by triggers, pruned after a
//! day except for its newest row).
#![forbid(unsafe_code)]

mod admin;
mod db;
mod error;
mod key_id;
mod master;
mod seal;
mod store;
mod sync;
mod types;

pub use admin::SqlKeyAdmin;
pub use error::Error;
pub use master::{MasterKey, MasterKeyring, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};
pub use store::SqlKeyStore;
/// `path` as messages show it, unless it looks like a key: [`tessera_server::redacted_path`].
pub use tessera_server::redacted_path;
pub use types::{
    Expiry, IssueRequest, IssuedKey, KeyRecord, RewrapReport, SchemaPolicy, SqlKeyStoreOptions,
    StoreStats, UnreadableKey,
};
