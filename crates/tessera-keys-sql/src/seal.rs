//! Sealing secrets with AES-256-GCM, and the associated data that binds a
//! sealed secret to its row.

use std::collections::BTreeSet;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::master::MasterKey;

/// First byte of every sealed value: the layout below. A later layout gets a new byte.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Domain-separation labels: a sealed secret can never be opened as a
/// canary, or the reverse, whatever the bytes.
const SECRET_LABEL: &[u8] = b"tessera-keys-sql/v1 key secret\0";
const CANARY_LABEL: &[u8] = b"tessera-keys-sql/v1 master key canary\0";

/// The fields of a key row that its sealed secret is bound to.
///
/// Editing any of them in the database (or copying the ciphertext to another
/// row) makes the secret fail to open. `state`, `revoked_at`,
/// `revoke_reason`, `last_used_at`, `created_at` and `replaces` are not
/// bound: revoking must stay a plain `UPDATE`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) client: Option<&'a str>,
    pub(crate) scopes: &'a BTreeSet<String>,
    pub(crate) not_before: Option<u64>,
    pub(crate) not_after: Option<u64>,
    /// Canonical JSON of the attributes object (see [`canonical_json`]).
    pub(crate) attributes: Option<&'a str>,
}

impl Binding<'_> {
    /// The associated data: a label, then every field length-prefixed (or
    /// with a presence byte), then the master key version. No two distinct
    /// bindings encode to the same bytes.
    fn associated_data(&self, master_version: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(SECRET_LABEL);
        put_bytes(&mut out, self.key_id.as_bytes());
        put_bytes(&mut out, self.owner.as_bytes());
        put_opt_bytes(&mut out, self.client.map(str::as_bytes));
        put_u64(&mut out, self.scopes.len() as u64);
        // A BTreeSet iterates in sorted order: the canonical order.
        for scope in self.scopes {
            put_bytes(&mut out, scope.as_bytes());
        }
        put_opt_u64(&mut out, self.not_before);
        put_opt_u64(&mut out, self.not_after);
        put_opt_bytes(&mut out, self.attributes.map(str::as_bytes));
        out.extend_from_slice(&master_version.to_be_bytes());
        out
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_opt_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn put_opt_u64(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            put_u64(out, n);
        }
    }
}

/// The sealed value failed to open (wrong key, or altered data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenError;

/// `FORMAT_V1 || nonce (12) || ciphertext || tag (16)`, with a fresh random nonce.
fn seal_raw(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let cipher = cipher(master);
    // AES-GCM encryption fails only for plaintexts over 64 GiB.
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("AES-GCM seals any short plaintext"));
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn open_raw(
    master: &MasterKey,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
        return Err(OpenError);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    cipher(master)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError)
}

fn cipher(master: &MasterKey) -> Aes256Gcm {
    // The seal key is 32 bytes: always a valid AES-256 key.
    Aes256Gcm::new_from_slice(master.seal_key())
        .unwrap_or_else(|_| unreachable!("a 32-byte key fits AES-256"))
}

/// Seals a key secret under `master`, bound to `binding`.
pub(crate) fn seal_secret(
    master: &MasterKey,
    binding: &Binding<'_>,
    secret: &[u8],
) -> Result<Vec<u8>, getrandom::Error> {
    seal_raw(master, secret, &binding.associated_data(master.version()))
}

/// Opens a sealed key secret; fails unless `binding` and `master` are exactly
/// those it was sealed with.
pub(crate) fn open_secret(
    master: &MasterKey,
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    open_raw(master, sealed, &binding.associated_data(master.version()))
}

/// The known value at the start of every canary's plaintext.
const CANARY_MAGIC: &[u8; 16] = b"tessera-canary-1";
/// Length of the key-id check key the canary carries after the magic.
pub(crate) const ID_KEY_LEN: usize = 32;

fn canary_aad(version: u32) -> Vec<u8> {
    let mut aad = CANARY_LABEL.to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Seals the canary for `master`'s version: the known magic followed by the
/// store's key-id check key (so that key survives master key rotation).
pub(crate) fn seal_canary(
    master: &MasterKey,
    id_key: &[u8; ID_KEY_LEN],
) -> Result<Vec<u8>, getrandom::Error> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(CANARY_MAGIC.len() + ID_KEY_LEN));
    plaintext.extend_from_slice(CANARY_MAGIC);
    plaintext.extend_from_slice(id_key);
    seal_raw(master, &plaintext, &canary_aad(master.version()))
}

/// Opens a canary: `Ok(id_key)`, or an error when `master` is not the key it
/// was sealed with (or the row was altered).
pub(crate) fn open_canary(
    master: &MasterKey,
    sealed: &[u8],
) -> Result<Zeroizing<[u8; ID_KEY_LEN]>, OpenError> {
    let plaintext = open_raw(master, sealed, &canary_aad(master.version()))?;
    if plaintext.len() != CANARY_MAGIC.len() + ID_KEY_LEN || !plaintext.starts_with(CANARY_MAGIC) {
        return Err(OpenError);
    }
    let mut id_key = Zeroizing::new([0u8; ID_KEY_LEN]);
    id_key.copy_from_slice(&plaintext[CANARY_MAGIC.len()..]);
    Ok(id_key)
}

/// Canonical JSON: object keys sorted (by their UTF-8 bytes), no
/// whitespace, strings and numbers as serde_json writes them. The same value
/// always gives the same text, whatever the map order the serde_json build uses.
pub(crate) fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8, version: u32) -> MasterKey {
        MasterKey::new(version, [byte; 32]).expect("master")
    }

    #[test]
    fn sealed_secret_is_bound_to_every_field() {
        let m = master(7, 1);
        let scopes: BTreeSet<String> = ["read".to_string(), "write".to_string()].into();
        let base = Binding {
            key_id: "k1.a.b",
            owner: "alice",
            client: Some("ios"),
            scopes: &scopes,
            not_before: Some(10),
            not_after: Some(20),
            attributes: Some(r#"{"plan":"pro"}"#),
        };
        let sealed = seal_secret(&m, &base, &[9; 32]).expect("sealed");
        assert_eq!(&*open_secret(&m, &base, &sealed).expect("opens"), &[9; 32]);

        let other_scopes: BTreeSet<String> = ["read".to_string()].into();
        let variants = [
            Binding {
                key_id: "k1.a.c",
                ..base
            },
            Binding {
                owner: "mallory",
                ..base
            },
            Binding {
                client: None,
                ..base
            },
            Binding {
                client: Some("android"),
                ..base
            },
            Binding {
                scopes: &other_scopes,
                ..base
            },
            Binding {
                not_before: None,
                ..base
            },
            Binding {
                not_after: Some(21),
                ..base
            },
            Binding {
                not_after: None,
                ..base
            },
            Binding {
                attributes: None,
                ..base
            },
            Binding {
                attributes: Some(r#"{"plan":"max"}"#),
                ..base
            },
        ];
        for v in &variants {
            assert_eq!(open_secret(&m, v, &sealed), Err(OpenError), "{v:?}");
        }
        // Another version or key.
        assert!(open_secret(&master(7, 2), &base, &sealed).is_err());
        assert!(open_secret(&master(8, 1), &base, &sealed).is_err());
        // A flipped ciphertext bit.
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(open_secret(&m, &base, &flipped).is_err());
        // Nonces are fresh.
        assert_ne!(sealed, seal_secret(&m, &base, &[9; 32]).expect("again"));
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let scopes = BTreeSet::new();
        let a = Binding {
            key_id: "ab",
            owner: "c",
            client: None,
            scopes: &scopes,
            not_before: None,
            not_after: None,
            attributes: None,
        };
        let b = Binding {
            key_id: "a",
            owner: "bc",
            ..a
        };
        assert_ne!(a.associated_data(1), b.associated_data(1));
    }

    #[test]
    fn canary_round_trip_and_wrong_key() {
        let m = master(1, 3);
        let sealed = seal_canary(&m, &[5; ID_KEY_LEN]).expect("canary");
        assert_eq!(*open_canary(&m, &sealed).expect("opens"), [5; ID_KEY_LEN]);
        assert!(open_canary(&master(2, 3), &sealed).is_err());
        assert!(open_canary(&master(1, 4), &sealed).is_err());
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": [1, {"z": null, "a": "x"}], "a": 1.5 }"#).expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"a":1.5,"b":[1,{"a":"x","z":null}]}"#
        );
    }
}
