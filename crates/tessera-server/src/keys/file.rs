//! The JSON keys file of `tessera serve --keys` and `tessera-gateway`
//! (`[keys] file`), whose entries `tessera keygen --json` prints:
//!
//! ```json
//! {"keys":[{"key_id":"m1.…","secret_hex":"…","user":"alice","scopes":["read","write"],
//!           "not_after":null,"revoked":false}]}
//! ```
//!
//! `user` is the key's owner ([`KeyFileEntry::owner`]); a file may also
//! spell it `owner`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_core::{KeyId, SecretKey};
use zeroize::Zeroizing;

use super::{KeyMetadata, KeyState, MemoryKeyStore};

/// One key of a keys file: what `tessera keygen --json` prints.
///
/// The hex secret is wiped from memory when the entry is dropped, and
/// hidden from `Debug`.
#[non_exhaustive]
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileEntry {
    /// The key id.
    pub key_id: String,
    /// The secret, hex.
    pub secret_hex: String,
    /// The owner the key acts for ([`KeyMetadata::owner`]). The file's
    /// field is `user` (what `keygen` writes); `owner` is accepted too.
    #[serde(rename = "user", alias = "owner")]
    pub owner: String,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Unix seconds after which the key is expired; `null` for never.
    #[serde(default)]
    pub not_after: Option<u64>,
    /// Whether the key is revoked (`key_revoked`). Absent means false; not
    /// printed by `keygen`.
    #[serde(default, skip_serializing)]
    pub revoked: bool,
}

impl KeyFileEntry {
    /// An active entry for `key_id` with the hex secret `secret_hex`, acting
    /// for `owner`, with no scopes and no expiry.
    pub fn new(
        key_id: impl Into<String>,
        secret_hex: impl Into<String>,
        owner: impl Into<String>,
    ) -> Self {
        KeyFileEntry {
            key_id: key_id.into(),
            secret_hex: secret_hex.into(),
            owner: owner.into(),
            scopes: Vec::new(),
            not_after: None,
            revoked: false,
        }
    }

    /// With these granted scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Expired after `not_after` (Unix seconds); `None` for never.
    #[must_use]
    pub fn with_not_after(mut self, not_after: Option<u64>) -> Self {
        self.not_after = not_after;
        self
    }
}

impl Drop for KeyFileEntry {
    // The hex secret is wiped however the entry is dropped.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_hex);
    }
}

impl fmt::Debug for KeyFileEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileEntry")
            .field("key_id", &self.key_id)
            .field("owner", &self.owner)
            .field("scopes", &self.scopes)
            .field("not_after", &self.not_after)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<KeyFileEntry>,
}

/// A keys file that cannot be loaded: the message names the file (and the
/// key) and what is wrong, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeysFileError {
    message: String,
}

/// Loads the keys file at `path` into a fresh in-memory key store; returns
/// it and the number of keys.
///
/// # Errors
/// [`KeysFileError`] when the file cannot be read, is not such a file, or
/// holds an invalid key id or secret.
pub fn load_keys_file(path: &Path) -> Result<(MemoryKeyStore, usize), KeysFileError> {
    let fail = |message: String| KeysFileError { message };
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| {
        fail(format!(
            "cannot read keys file '{}': {e}",
            crate::redacted_path(path)
        ))
    })?);
    // serde_json's messages give the line and column, never the value.
    let file: KeysFile = serde_json::from_slice(&text).map_err(|e| {
        fail(format!(
            "keys file '{}' is not valid: {e} (expected {{\"keys\":[{{\"key_id\",\"secret_hex\",\"user\" (or \"owner\"),\"scopes\",\"not_after\",\"revoked\"}}]}})",
            path.display()
        ))
    })?;
    let store = MemoryKeyStore::new();
    let count = file.keys.len();
    for entry in &file.keys {
        let bad = |what: &str, detail: &str| {
            fail(format!(
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
            KeyMetadata::new(entry.owner.clone()).with_scopes(entry.scopes.iter().cloned());
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

/// Loads the keys file at `path` again into `store`, replacing every key it
/// held ([`MemoryKeyStore::replace_all`]): a key removed from the file is
/// forgotten, one marked `"revoked": true` answers `key_revoked`. Returns
/// the number of keys.
///
/// # Errors
/// As [`load_keys_file`]; `store` then keeps the keys it had.
pub fn reload_keys_file(store: &MemoryKeyStore, path: &Path) -> Result<usize, KeysFileError> {
    let (fresh, count) = load_keys_file(path)?;
    store.replace_all(fresh);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "tessera-keys-file-{}-{name}.json",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn loads_keys_and_names_bad_ones_without_secrets() {
        let secret = "ab".repeat(32);
        let good = write(
            "good",
            &format!(
                r#"{{"keys":[{{"key_id":"k1","secret_hex":"{secret}","user":"alice","scopes":["read"]}},
                   {{"key_id":"k2","secret_hex":"{secret}","user":"bob","revoked":true,"not_after":5}}]}}"#
            ),
        );
        let (store, count) = load_keys_file(&good).expect("loads");
        assert_eq!(count, 2);
        drop(store);
        let bad = write(
            "bad",
            &format!(r#"{{"keys":[{{"key_id":"k 1","secret_hex":"{secret}","user":"a"}}]}}"#),
        );
        let e = load_keys_file(&bad).expect_err("bad id").to_string();
        assert!(e.contains("invalid key_id") && e.contains("\"k 1\""), "{e}");
        assert!(!e.contains(&secret), "{e}");
        let typo = write(
            "typo",
            &format!(
                r#"{{"keys":[{{"key_id":"k1","secret_hex":"{secret}","user":"a","scope":[]}}]}}"#
            ),
        );
        let e = load_keys_file(&typo)
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("unknown field `scope`"), "{e}");
        assert!(!e.contains(&secret), "{e}");
        for path in [good, bad, typo] {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn entries_print_as_keygen_json_without_revoked() {
        let entry = KeyFileEntry {
            key_id: "k1".to_owned(),
            secret_hex: "00".repeat(32),
            owner: "alice".to_owned(),
            scopes: vec!["read".to_owned()],
            not_after: None,
            revoked: false,
        };
        let json = serde_json::to_string(&entry).expect("json");
        assert!(!json.contains("revoked"), "{json}");
        assert!(json.contains(r#""user":"alice""#), "{json}");
        assert!(!format!("{entry:?}").contains("0000"));
    }

    #[test]
    fn the_owner_is_read_from_user_or_owner_but_not_both() {
        let secret = "ab".repeat(32);
        let entry = |field: &str| {
            serde_json::from_str::<KeyFileEntry>(&format!(
                r#"{{"key_id":"k1","secret_hex":"{secret}",{field}}}"#
            ))
        };
        assert_eq!(entry(r#""user":"alice""#).expect("user").owner, "alice");
        assert_eq!(entry(r#""owner":"bob""#).expect("owner").owner, "bob");
        let both = entry(r#""user":"alice","owner":"bob""#).expect_err("both");
        assert!(both.to_string().contains("duplicate field"), "{both}");
    }
}
