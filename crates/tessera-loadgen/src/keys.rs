//! The signers of a run: keys from a `tessera serve --keys` file (what
//! `tessera keygen --json` prints, in `{"keys":[...]}`).

use std::path::Path;

use serde::Deserialize;
use tessera_client::{SecretKey, Signer};
use zeroize::Zeroizing;

#[derive(Deserialize)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_id: String,
    secret_hex: Zeroizing<String>,
    #[serde(default)]
    revoked: bool,
}

/// The signers for the keys of `path`: the one named `key_id`, or every key
/// not revoked. Several keys spread the nonces over key ids, so a verifier's
/// per-key nonce cap is not what a long run measures.
pub(crate) fn load(path: &Path, key_id: Option<&str>) -> Result<Vec<Signer>, String> {
    let text = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| format!("cannot read keys file {}: {e}", path.display()))?,
    );
    let file: KeysFile = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "keys file {} is not valid: {e} (expected {{\"keys\":[{{\"key_id\",\"secret_hex\",...}}]}})",
            path.display()
        )
    })?;
    let mut signers = Vec::new();
    for entry in file.keys {
        if entry.revoked || key_id.is_some_and(|id| id != entry.key_id) {
            continue;
        }
        let secret = SecretKey::from_hex(&entry.secret_hex).map_err(|e| {
            format!(
                "keys file {}: key {:?}: invalid secret_hex: {}",
                path.display(),
                entry.key_id,
                e.detail()
            )
        })?;
        let signer = Signer::new(&entry.key_id, &secret)
            .map_err(|e| format!("keys file {}: key {:?}: {e}", path.display(), entry.key_id))?;
        signers.push(signer);
    }
    if signers.is_empty() {
        return Err(match key_id {
            Some(id) => format!("keys file {}: no usable key {id:?}", path.display()),
            None => format!("keys file {}: no usable key", path.display()),
        });
    }
    Ok(signers)
}
