//! Opening the key and nonce stores the configuration names, and probing
//! them for `/readyz`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Clock, KeyId, Nonce, SecretKey, SystemClock};
use tessera_keys_sql::{Error as SqlKeyStoreError, MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{
    DerivedKeyStore, KeyError, KeyStore, MemoryKeyStore, MemoryNonceStore, NonceRecord, NonceStore,
    RedisNonceStore,
};
use zeroize::Zeroizing;

use tessera_ratelimit::{FailureMode, RateLimiter, RateStore, RedisRateStore};

use crate::config::{KeySource, NonceSource, RateLimits, RateStoreSource, Settings};
use crate::StartError;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The opened key store and how to probe it.
#[derive(Debug, Clone)]
pub struct Keys {
    /// For the verifier.
    pub store: Arc<dyn KeyStore>,
    /// The SQL store, when keys come from one (probe and cache statistics).
    pub sql: Option<Arc<SqlKeyStore>>,
    /// The keys file and the store loaded from it, when keys come from one:
    /// followed for changes, and read again by a reload (SIGHUP).
    pub file: Option<(Arc<MemoryKeyStore>, PathBuf)>,
    /// For the start-up line.
    pub description: String,
}

/// Opens the key store.
///
/// # Errors
/// A message saying which store and why, never a secret:
/// [`StartError::Invalid`] for a file, master key or database content
/// that does not load (as `--check` finds it), [`StartError::Unavailable`]
/// for a key database that does not answer.
pub async fn open_keys(settings: &Settings) -> Result<Keys, StartError> {
    for warning in key_warnings(settings) {
        tracing::warn!("{warning}");
    }
    match &settings.keys {
        KeySource::File(path) => {
            let (store, count) = tessera_server::load_keys_file(path)
                .map_err(|e| StartError::Invalid(e.to_string()))?;
            let store = Arc::new(store);
            // An edit of the file (a key revoked or removed) reaches
            // requests within FOLLOW_EVERY, with no restart or signal.
            tokio::spawn(tessera_server::follow_keys_file(
                Arc::clone(&store),
                path.clone(),
                tessera_server::FOLLOW_EVERY,
            ));
            Ok(Keys {
                store: Arc::clone(&store) as Arc<dyn KeyStore>,
                sql: None,
                file: Some((store, path.clone())),
                description: format!(
                    "{count} key(s) from {} (followed for changes)",
                    path.display()
                ),
            })
        }
        KeySource::Derived {
            master_file,
            revoked_file,
        } => {
            let (store, revoked) =
                load_derived(master_file, revoked_file.as_deref()).map_err(StartError::Invalid)?;
            let store = Arc::new(store);
            if let Some(path) = revoked_file {
                tokio::spawn(follow_revocations(Arc::clone(&store), path.clone()));
            }
            Ok(Keys {
                store,
                sql: None,
                file: None,
                description: format!(
                    "derived keys (d1.…) from the master secret in {}, {revoked} revoked",
                    master_file.display()
                ),
            })
        }
        KeySource::Db {
            url,
            master_key_file,
            max_staleness,
        } => {
            let store = Arc::new(open_sql(url, master_key_file.as_deref(), *max_staleness).await?);
            Ok(Keys {
                store: Arc::clone(&store) as Arc<dyn KeyStore>,
                sql: Some(store),
                file: None,
                description: format!("keys from {}", redact(url)),
            })
        }
    }
}

/// The SQL key store at `url`, opened with the master keyring from
/// `master_key_file` (`keys.master_key_file`) or else from the
/// environment: the database must exist, hold the schema, and its canary
/// row must open with the keyring.
///
/// # Errors
/// A message naming what failed and what to fix (the URL without its
/// password); never a key. [`StartError::Unavailable`] when the database
/// cannot be reached or a query fails, [`StartError::Invalid`] for the rest
/// (no master key, a wrong one, no schema, a missing SQLite file).
pub async fn open_sql(
    url: &str,
    master_key_file: Option<&Path>,
    max_staleness: Duration,
) -> Result<SqlKeyStore, StartError> {
    let keyring = match master_key_file {
        Some(path) => MasterKeyring::from_file(path).map_err(|e| {
            StartError::Invalid(format!(
                "keys.master_key_file {}: {}",
                tessera_keys_sql::redacted_path(path),
                error_chain(&e)
            ))
        })?,
        None => MasterKeyring::from_env().map_err(|e| {
            StartError::Invalid(format!(
                "master key: {} (or name a file of them in `keys.master_key_file`)",
                error_chain(&e)
            ))
        })?,
    };
    let mut options = SqlKeyStoreOptions::default();
    options.max_staleness = max_staleness;
    SqlKeyStore::open(url, keyring, options).await.map_err(|e| {
        let message = format!("keys.db {}: {}", redact(url), error_chain(&e));
        match e {
            SqlKeyStoreError::Connect { .. } | SqlKeyStoreError::Database { .. } => {
                StartError::Unavailable(message)
            }
            _ => StartError::Invalid(message),
        }
    })
}

/// The derived key store whose master secret is the hex in `path`
/// (`keys.derived_master_file`; at least 32 bytes, e.g. `openssl rand -hex
/// 32`), with the key ids listed in `revoked` (`keys.derived_revoked_file`)
/// revoked; returns it and the number of revoked ids.
///
/// # Errors
/// A message naming the configuration key, the file and what to fix;
/// never the secret or any part of it.
pub fn load_derived(
    path: &Path,
    revoked: Option<&Path>,
) -> Result<(DerivedKeyStore, usize), String> {
    let store = load_derived_master(path)?;
    let Some(revoked) = revoked else {
        return Ok((store, 0));
    };
    let list = read_revoked(revoked)?;
    // At start-up every line must name a key: a gateway does not start
    // with a list it cannot fully apply.
    if let Some(problem) = list.problems.into_iter().next() {
        return Err(problem);
    }
    let count = list.ids.len();
    store.revoke_all(list.ids);
    Ok((store, count))
}

/// Follows `keys.derived_revoked_file` while the gateway runs: when the
/// file changes, the ids it lists are revoked, so a leaked key is refused
/// within a second of being listed, without a restart. Revocation is
/// permanent: an id taken off the list stays revoked until the restart
/// (a derived key expires anyway). A file that can't be read or parsed is
/// reported and the revocations so far stay.
async fn follow_revocations(store: Arc<DerivedKeyStore>, path: PathBuf) {
    tessera_server::follow_file(&path, tessera_server::FOLLOW_EVERY, || {
        match read_revoked(&path) {
            Ok(list) => {
                // Every line that names a key is applied, whatever the
                // others hold: revoking more is the safe direction, and a
                // typo in one line must not keep a leaked key working.
                for problem in &list.problems {
                    tracing::error!(
                        error = %problem,
                        "keys.derived_revoked_file: a line names no key and was skipped; the other lines apply"
                    );
                }
                let fresh: Vec<KeyId> = list
                    .ids
                    .into_iter()
                    .filter(|id| !store.is_revoked(id))
                    .collect();
                if !fresh.is_empty() {
                    // Key ids are not secret: listed so that an operator can
                    // compare them with the ids issued.
                    let listed = fresh
                        .iter()
                        .map(KeyId::as_str)
                        .collect::<Vec<_>>()
                        .join(" ");
                    tracing::warn!(
                        newly_revoked = fresh.len(),
                        key_ids = %listed,
                        "keys.derived_revoked_file changed: keys revoked"
                    );
                    store.revoke_all(fresh);
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                "keys.derived_revoked_file changed but cannot be read; the revocations so far stay"
            ),
        }
    })
    .await;
}

/// A revocation file's key ids (each once), and what its other lines got
/// wrong.
struct RevocationList {
    ids: Vec<KeyId>,
    /// One sentence a line that names no key: file and line, never the
    /// line itself (a secret file named by mistake would be printed).
    problems: Vec<String>,
}

/// The key ids listed in a revocation file: one a line, `#` comments
/// (whole lines, or after an id and a space) and blank lines skipped, a
/// UTF-8 byte order mark ignored. Each must be a derived key id as issued:
/// only that spelling names a key, so another one (scopes in another
/// order, an owner alone) would be counted as revoked while the key it
/// meant still works.
///
/// # Errors
/// The file cannot be read.
fn read_revoked(revoked: &Path) -> Result<RevocationList, String> {
    let at = "keys.derived_revoked_file";
    let text = std::fs::read_to_string(revoked)
        .map_err(|e| format!("{at}: cannot read '{}': {e}", revoked.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut list = RevocationList {
        ids: Vec::new(),
        problems: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        // Key ids hold no whitespace: a `#` after some starts a comment.
        let line = line.trim();
        let line = match line.find(|c: char| c.is_ascii_whitespace()) {
            Some(end) if line[end..].trim_start().starts_with('#') => &line[..end],
            _ => line,
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = match KeyId::new(line) {
            Ok(id) if tessera_server::DerivedKeyId::parse(&id).is_some() => {
                if seen.insert(id.clone()) {
                    list.ids.push(id);
                }
                continue;
            }
            Ok(_) => "not a derived key id as issued (d1.OWNER.CLIENT.SCOPES.NOT_AFTER.RANDOM, scopes sorted and joined by +, no leading zeros); copy the whole id of each key to revoke (an owner's keys are revoked one id at a time)".to_owned(),
            Err(e) => format!("not a key id ({}); expected one key id a line, comments after a space and `#`", e.detail()),
        };
        list.problems.push(format!(
            "{at}: '{}' line {}: {problem}",
            revoked.display(),
            n + 1
        ));
    }
    Ok(list)
}

/// The derived key store of the master secret in `path`.
fn load_derived_master(path: &Path) -> Result<DerivedKeyStore, String> {
    let at = "keys.derived_master_file";
    // A master secret given where its file's path belongs is not echoed
    // into the log.
    let shown = tessera_keys_sql::redacted_path(path);
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{at}: cannot read '{shown}': {e}"))?,
    );
    let hex = text.trim();
    if hex.is_empty() {
        return Err(format!(
            "{at}: '{}' is empty (expected the master secret as hex, at least 64 digits, e.g. from `openssl rand -hex 32`)",
            shown
        ));
    }
    if hex.len() % 2 == 0 && hex.len() < 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{at}: the master secret in '{}' is {} bytes; at least 32 are required (64 hex digits, e.g. from `openssl rand -hex 32`)",
            shown,
            hex.len() / 2
        ));
    }
    let master = SecretKey::from_hex(hex).map_err(|_| {
        format!(
            "{at}: '{}' does not hold a hex secret (expected one line of 64 to {} hex digits, e.g. from `openssl rand -hex 32`)",
            shown,
            2 * tessera_core::MAX_SECRET_LEN
        )
    })?;
    let bytes = master.expose_secret();
    let spec_example = bytes.len() == 32 && bytes.iter().zip(0u8..).all(|(&b, i)| b == i);
    if bytes.iter().all(|&b| b == bytes[0]) || spec_example {
        return Err(format!(
            "{at}: the master secret in '{}' is a placeholder (one byte repeated, or the example of spec §5.6), not a random secret: anyone could derive every key from it (make one with `openssl rand -hex 32`)",
            shown
        ));
    }
    DerivedKeyStore::new(master).map_err(|e| match e {
        KeyError::MasterTooShort(len) => format!(
            "{at}: the master secret in '{}' is {len} bytes; at least 32 are required (64 hex digits, e.g. from `openssl rand -hex 32`)",
            shown
        ),
        other => format!("{at}: '{}': {other}", shown),
    })
}

/// What the key settings leave open, as sentences that say what to do:
/// secret files others can read ([`shared_secret_files`]), and derived keys
/// without a revocation list (spec §5.6: a derived key issued without an
/// expiry could then be stopped only by replacing the master secret).
/// Logged at start-up and printed by `--check`.
pub fn key_warnings(settings: &Settings) -> Vec<String> {
    let mut warnings = shared_secret_files(settings);
    if let KeySource::Derived {
        revoked_file: None, ..
    } = &settings.keys
    {
        warnings.push("derived keys are served without a revocation list (keys.derived_revoked_file, or --keys-derived-revoked): a leaked key cannot be refused before it expires; name a file (it may be empty) to be able to".to_owned());
    }
    warnings
}

/// The files of `settings` that hold secrets (the keys file's plaintext
/// secrets, the derived keys' master secret, the SQL store's master keys,
/// the TLS private key) and that their group or other users may read:
/// each as a sentence that says what to do. Checked at start-up (logged)
/// and by `--check` (printed).
pub fn shared_secret_files(settings: &Settings) -> Vec<String> {
    let from_env = std::env::var_os(tessera_keys_sql::MASTER_KEY_FILE_ENV).map(PathBuf::from);
    let mut files: Vec<(&str, &Path)> = Vec::new();
    match &settings.keys {
        KeySource::File(path) => files.push(("keys.file", path)),
        KeySource::Derived { master_file, .. } => {
            files.push(("keys.derived_master_file", master_file));
        }
        KeySource::Db {
            master_key_file: Some(path),
            ..
        } => files.push(("keys.master_key_file", path)),
        KeySource::Db { .. } => {
            if let Some(path) = &from_env {
                files.push((tessera_keys_sql::MASTER_KEY_FILE_ENV, path));
            }
        }
    }
    if let Some(tls) = &settings.tls {
        files.push(("tls.key", &tls.key));
    }
    files
        .into_iter()
        .filter_map(|(at, path)| {
            let mode = shared_mode(path)?;
            Some(format!(
                "{at} '{}' holds secrets and is readable by its group or other users (mode {mode:o}); chmod 600 it",
                path.display()
            ))
        })
        .collect()
}

/// The permission bits of `path` when its group or others may access it.
fn shared_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// An opened nonce store: the store, how the log names it, and the Unix
/// second from which it accepts a request signed now (its memory point,
/// spec §14.1; 0 for a Redis store, whose connection already waited).
pub type OpenedNonces = (Arc<dyn NonceStore>, String, u64);

/// Opens the nonce store.
///
/// # Errors
/// A message saying which store and why.
pub async fn open_nonces(settings: &Settings) -> Result<OpenedNonces, StartError> {
    match &settings.nonces {
        NonceSource::Memory => {
            // As the verifier's own default: long enough for the window, and
            // vouching from its memory point (spec §14.1).
            let since = tessera_core::memory_point(SystemClock::new().now_unix());
            let store = MemoryNonceStore::builder()
                .max_ttl_secs((2 * settings.window + 2).max(tessera_server::MAX_WINDOW_SECS))
                .remembers_since(since)
                .build();
            Ok((
                Arc::new(store),
                "nonces in memory (one process only)".to_owned(),
                since,
            ))
        }
        NonceSource::Redis(url) => {
            let store = configure(RedisNonceStore::builder(url.clone()), settings)
                .connect()
                .await
                .map_err(|e| nonce_store_error("nonce store", &e))?;
            Ok((Arc::new(store), format!("nonces in {}", redact(url)), 0))
        }
        NonceSource::Cluster(nodes) => {
            let store = configure(RedisNonceStore::cluster_builder(nodes.clone()), settings)
                .connect()
                .await
                .map_err(|e| nonce_store_error("nonce store (Redis Cluster)", &e))?;
            let described: Vec<String> = nodes.iter().map(|n| redact(n)).collect();
            Ok((
                Arc::new(store),
                format!("nonces in the Redis Cluster of {}", described.join(" ")),
                0,
            ))
        }
    }
}

/// A Redis nonce store that did not connect: only one that was not reached
/// may connect at a later start.
fn nonce_store_error(what: &str, e: &tessera_server::RedisStoreError) -> StartError {
    let message = format!("{what}: {e}");
    match e.kind() {
        tessera_server::RedisStoreErrorKind::Connect => StartError::Unavailable(message),
        _ => StartError::Invalid(message),
    }
}

/// How long connecting to the rate-limit Redis may take at start-up.
const RATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The rate limiter the configuration names, and its store for `/readyz`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// For the verifier (a clone shares the counters and the store).
    pub limiter: RateLimiter,
    /// The Redis store, when budgets live in Redis (probed by `/readyz`).
    pub redis: Option<RedisRateStore>,
    /// What the limiter does when its store fails.
    pub on_store_failure: FailureMode,
    /// For the start-up line.
    pub description: String,
}

/// Opens the rate-limit store and builds the limiter (`None` without `[rate_limit]`).
///
/// # Errors
/// A message naming the configuration key and why: an invalid plan, a Redis
/// that cannot be reached at start-up.
pub async fn open_rate_limit(settings: &Settings) -> Result<Option<RateLimit>, StartError> {
    let Some(rates) = &settings.rate_limit else {
        return Ok(None);
    };
    match &rates.store {
        RateStoreSource::Memory => Ok(Some(RateLimit {
            limiter: build_limiter(rates, tessera_ratelimit::MemoryRateStore::default())
                .map_err(StartError::Invalid)?,
            redis: None,
            on_store_failure: rates.on_store_failure,
            description: "rate limits in memory (one process only)".to_owned(),
        })),
        RateStoreSource::Redis(url) => {
            let timeout = rates
                .timeout
                .unwrap_or(tessera_ratelimit::DEFAULT_RATE_REDIS_TIMEOUT);
            let unanswered = || {
                format!(
                    "rate_limit.redis: {} did not answer within {} s",
                    redact(url),
                    RATE_CONNECT_TIMEOUT.as_secs()
                )
            };
            let failed = |e: tessera_ratelimit::RateStoreError| {
                let message = format!("rate_limit.redis: {}: {e}", redact(url));
                if e.is_permanent() {
                    StartError::Invalid(message)
                } else {
                    StartError::Unavailable(message)
                }
            };
            let store = match rates.on_store_failure {
                // Fail-open limits cost only the limits while their store
                // is down, at start-up too: the gateway starts, admits, and
                // the store connects when Redis answers.
                FailureMode::Open => {
                    let (store, unreached) = tokio::time::timeout(
                        RATE_CONNECT_TIMEOUT,
                        RedisRateStore::connect_in_background(url, &rates.prefix, timeout),
                    )
                    .await
                    .map_err(|_| unanswered())?
                    .map_err(failed)?;
                    if let Some(e) = unreached {
                        tracing::warn!(
                            "{}; starting without rate limits (on_store_failure = \"open\"): requests are admitted until it answers, tried again every second",
                            failed(e)
                        );
                    }
                    store
                }
                // Fail-closed limits would refuse every limited request: a
                // gateway that cannot decide does not start.
                _ => tokio::time::timeout(
                    RATE_CONNECT_TIMEOUT,
                    RedisRateStore::connect_with_timeout(url, &rates.prefix, timeout),
                )
                .await
                .map_err(|_| unanswered())?
                .map_err(failed)?,
            };
            Ok(Some(RateLimit {
                limiter: build_limiter(rates, store.clone()).map_err(StartError::Invalid)?,
                redis: Some(store),
                on_store_failure: rates.on_store_failure,
                description: format!("rate limits in {}", redact(url)),
            }))
        }
    }
}

/// The limiter of `rates` on `store`.
fn build_limiter(
    rates: &RateLimits,
    store: impl RateStore + 'static,
) -> Result<RateLimiter, String> {
    let mut limiter = RateLimiter::builder(store).on_store_failure(rates.on_store_failure);
    limiter = match rates.default {
        Some((rate, burst)) => limiter.default_plan(
            tessera_ratelimit::Plan::new("default", rate, burst)
                .map_err(|e| format!("rate_limit.rate: {e}"))?,
        ),
        None => limiter.without_default_plan(),
    };
    for (i, r) in rates.routes.iter().enumerate() {
        let plan = tessera_ratelimit::Plan::new(r.name.clone(), r.rate, r.burst)
            .map_err(|e| format!("rate_limit.routes[{i}]: {e}"))?;
        let mut route = tessera_ratelimit::Route::new(r.prefix.clone(), plan);
        if let Some(method) = &r.method {
            route = route.method(method.clone());
        }
        limiter = limiter.route(route);
    }
    if rates.per_owner {
        limiter = limiter.key_by(tessera_ratelimit::KeyBy::Owner);
    }
    Ok(limiter.build())
}

/// Whether the rate-limit Redis answers and decides
/// ([`RedisRateStore::check`]).
pub async fn probe_rate_store(store: &RedisRateStore) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, store.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("rate limit store: no answer within 1 s".to_owned()),
    }
}

/// The configured prefix, timeouts and eviction-policy choice on a Redis
/// store builder.
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
        .allow_evicting_policy(settings.nonce_allow_evicting_policy)
        .allow_lossy_persistence(settings.nonce_allow_lossy_persistence)
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
    if sql.is_database_down() {
        // Also when the query below would answer: a SQLite file replaced
        // under the store still answers from the old, unlinked file.
        return Err(
            "key store: the key database is unreachable, or its file was replaced (see the log)"
                .to_owned(),
        );
    }
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

/// `url` with any password replaced by `***`: [`tessera_server::redact_url`].
pub use tessera_server::redact_url as redact;
