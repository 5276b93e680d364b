//! The JSON keys file, the same format as `tessera serve --keys`
//! (entries as `tessera keygen --json` prints them):
//!
//! ```json
//! {"keys":[{"key_id":"m1.…","secret_hex":"…","user":"alice","scopes":["read","write"],
//!           "not_after":null,"revoked":false}]}
//! ```

use std::path::Path;

use serde::Deserialize;
use tessera_core::{KeyId, SecretKey};
use tessera_server::{KeyMetadata, KeyState, MemoryKeyStore};
use zeroize::Zeroizing;

/// One key of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key_id: String,
    secret_hex: String,
    user: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    not_after: Option<u64>,
    #[serde(default)]
    revoked: bool,
}

impl Drop for KeyEntry {
    // The hex secret is wiped however the entry is dropped.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_hex);
    }
}

#[derive(Deserialize)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

/// Loads `path` into an in-memory key store; returns it and the key count.
///
/// # Errors
/// A message naming the file (and the key) and what is wrong; never a secret.
pub fn load(path: &Path) -> Result<(MemoryKeyStore, usize), String> {
    let text = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| format!("cannot read keys file '{}': {e}", path.display()))?,
    );
    let file: KeysFile = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "keys file '{}' is not valid: {e} (expected {{\"keys\":[{{\"key_id\",\"secret_hex\",\"user\",\"scopes\",\"not_after\",\"revoked\"}}]}})",
            path.display()
        )
    })?;
    let store = MemoryKeyStore::new();
    let count = file.keys.len();
    for entry in file.keys {
        let bad = |what: &str, detail: &str| {
            format!(
                "keys file '{}': key \"{}\": {what}: {detail}",
                path.display(),
                entry.key_id
            )
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
