//! The keys file of `tessera serve`, whose entries `tessera keygen --json` prints.
//!
//! ```json
//! {"keys":[{"key_id":"m1.…","secret_hex":"…","user":"alice","scopes":["read","write"],
//!           "not_after":null,"revoked":false}]}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_core::{KeyId, SecretKey};
use tessera_server::{KeyMetadata, KeyState, MemoryKeyStore};
use zeroize::Zeroizing;

use crate::error::CliError;

/// One key: what `keygen --json` prints and what the keys file lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyEntry {
    /// The key id.
    pub(crate) key_id: String,
    /// The secret, hex.
    pub(crate) secret_hex: String,
    /// The user the key acts for.
    pub(crate) user: String,
    /// Granted scopes.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// Unix seconds after which the key is expired; `null` for never.
    #[serde(default)]
    pub(crate) not_after: Option<u64>,
    /// Whether the key is revoked (`key_revoked`). Absent means false.
    #[serde(default, skip_serializing)]
    pub(crate) revoked: bool,
}

#[derive(Deserialize)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

/// Loads `path` into a fresh in-memory key store; returns it and the number of keys.
pub(crate) fn load(path: &Path) -> Result<(MemoryKeyStore, usize), CliError> {
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::runtime(format!("cannot read keys file '{}': {e}", path.display()))
    })?);
    let file: KeysFile = serde_json::from_slice(&text).map_err(|e| {
        CliError::runtime(format!(
            "keys file '{}' is not valid: {e} (expected {{\"keys\":[{{\"key_id\",\"secret_hex\",\"user\",\"scopes\",\"not_after\",\"revoked\"}}]}})",
            path.display()
        ))
    })?;
    let store = MemoryKeyStore::new();
    let count = file.keys.len();
    for entry in file.keys {
        let bad = |what: &str, detail: &str| {
            CliError::runtime(format!(
                "keys file '{}': key \"{}\": {what}: {detail}",
                path.display(),
                entry.key_id
            ))
        };
        let key_id =
            KeyId::new(entry.key_id.as_str()).map_err(|e| bad("invalid key_id", e.detail()))?;
        let secret = SecretKey::from_hex(&entry.secret_hex)
            .map_err(|e| bad("invalid secret_hex", e.detail()))?;
        let mut metadata =
            KeyMetadata::new(entry.user.clone()).with_scopes(entry.scopes.iter().cloned());
        if let Some(t) = entry.not_after {
            metadata = metadata.with_not_after(t);
        }
        if entry.revoked {
            metadata = metadata.with_state(KeyState::Revoked);
        }
        store.insert(key_id, &secret, metadata);
    }
    Ok((store, count))
}
