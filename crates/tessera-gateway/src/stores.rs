//! Opening the key and nonce stores the configuration names, and probing
//! them for `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Clock, KeyId, Nonce, SystemClock};
use tessera_keys_sql::{MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{KeyStore, MemoryNonceStore, NonceRecord, NonceStore, RedisNonceStore};

use crate::config::{KeySource, NonceSource, Settings};

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The opened key store and how to probe it.
#[derive(Debug, Clone)]
pub struct Keys {
    /// For the verifier.
    pub store: Arc<dyn KeyStore>,
    /// The SQL store, when keys come from one (probe and cache statistics).
    pub sql: Option<Arc<SqlKeyStore>>,
    /// For the start-up line.
    pub description: String,
}

/// Opens the key store.
///
/// # Errors
/// A message saying which store and why, never a secret.
pub async fn open_keys(settings: &Settings) -> Result<Keys, String> {
    match &settings.keys {
        KeySource::File(path) => {
            let (store, count) = crate::keyfile::load(path)?;
            Ok(Keys {
                store: Arc::new(store),
                sql: None,
                description: format!("{count} key(s) from {}", path.display()),
            })
        }
        KeySource::Db {
            url,
            master_key_file,
            max_staleness,
        } => {
            let keyring = match master_key_file {
                Some(path) => MasterKeyring::from_file(path),
                None => MasterKeyring::from_env(),
            }
            .map_err(|e| format!("master key: {}", error_chain(&e)))?;
            let mut options = SqlKeyStoreOptions::default();
            options.max_staleness = *max_staleness;
            let store = SqlKeyStore::open(url, keyring, options)
                .await
                .map_err(|e| format!("key store {}: {}", redact(url), error_chain(&e)))?;
            let store = Arc::new(store);
            Ok(Keys {
                store: Arc::clone(&store) as Arc<dyn KeyStore>,
                sql: Some(store),
                description: format!("keys from {}", redact(url)),
            })
        }
    }
}

/// Opens the nonce store.
///
/// # Errors
/// A message saying which store and why.
pub async fn open_nonces(settings: &Settings) -> Result<(Arc<dyn NonceStore>, String), String> {
    match &settings.nonces {
        NonceSource::Memory => {
            // As the verifier's own default: long enough for the window, and
            // remembering from the next second (spec §14.1).
            let store = MemoryNonceStore::builder()
                .max_ttl_secs((2 * settings.window + 2).max(tessera_server::MAX_WINDOW_SECS))
                .remembers_since(SystemClock::new().now_unix().saturating_add(1))
                .build();
            Ok((
                Arc::new(store),
                "nonces in memory (one process only)".to_owned(),
            ))
        }
        NonceSource::Redis(url) => {
            let store = configure(RedisNonceStore::builder(url.clone()), settings)
                .connect()
                .await
                .map_err(|e| format!("nonce store: {e}"))?;
            Ok((Arc::new(store), format!("nonces in {}", redact(url))))
        }
        NonceSource::Cluster(nodes) => {
            let store = configure(RedisNonceStore::cluster_builder(nodes.clone()), settings)
                .connect()
                .await
                .map_err(|e| format!("nonce store (Redis Cluster): {e}"))?;
            let described: Vec<String> = nodes.iter().map(|n| redact(n)).collect();
            Ok((
                Arc::new(store),
                format!("nonces in the Redis Cluster of {}", described.join(" ")),
            ))
        }
    }
}

/// The configured prefix and timeout on a Redis store builder.
fn configure(
    mut builder: tessera_server::RedisNonceStoreBuilder,
    settings: &Settings,
) -> tessera_server::RedisNonceStoreBuilder {
    if let Some(prefix) = &settings.nonce_prefix {
        builder = builder.prefix(prefix.clone());
    }
    if let Some(timeout) = settings.nonce_timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(timeout) = settings.nonce_connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    builder
}

/// Whether the nonce store answers: records a fresh random pair under a
/// reserved key id that no key store issues, kept for two seconds.
pub async fn probe_nonces(store: &dyn NonceStore) -> Result<(), String> {
    let key_id = KeyId::new("gateway-readyz").map_err(|e| e.detail().to_owned())?;
    let nonce = Nonce::generate(&mut rand::rng());
    let now = SystemClock::new().now_unix();
    let record = NonceRecord::new(&key_id, &nonce, now, now, now + 2);
    match tokio::time::timeout(PROBE_TIMEOUT, store.record(record)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("nonce store: {e}")),
        Err(_) => Err("nonce store: no answer within 1 s".to_owned()),
    }
}

/// Whether the key store answers (a SQL store is queried; a file always is).
pub async fn probe_keys(keys: &Keys) -> Result<(), String> {
    let Some(sql) = &keys.sql else {
        return Ok(());
    };
    match tokio::time::timeout(PROBE_TIMEOUT, sql.change_counter()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("key store: {}", error_chain(&e))),
        Err(_) => Err("key store: no answer within 1 s".to_owned()),
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
