//! Versioned master keys, kept outside the database.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use tessera_server::redacted_path;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;

/// The environment variable holding the master key (64 hex characters =
/// version 1) or `VERSION:HEX` entries separated by commas or newlines.
pub const MASTER_KEY_ENV: &str = "TESSERA_MASTER_KEY";
/// The environment variable naming a file of `VERSION:HEX` lines.
pub const MASTER_KEY_FILE_ENV: &str = "TESSERA_MASTER_KEY_FILE";

/// HKDF info for the AES-256-GCM key that seals secrets and canaries.
const SEAL_INFO: &[u8] = b"tessera-keys-sql/v1 seal key";

/// One master key: 32 bytes and its version. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct MasterKey {
    version: u32,
    /// The AES-256-GCM key derived from the master key (HKDF-SHA256), so the
    /// master key itself is used for nothing else and could key other
    /// purposes later without reuse.
    seal_key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// A master key from its 32 bytes.
    ///
    /// # Errors
    /// [`Error::MasterKeyInvalid`] when `version` is 0.
    pub fn new(version: u32, mut bytes: [u8; 32]) -> Result<Self, Error> {
        if version == 0 {
            bytes.zeroize();
            return Err(invalid("master key versions start at 1"));
        }
        let hk = Hkdf::<Sha256>::new(None, &bytes);
        bytes.zeroize();
        let mut seal_key = Zeroizing::new([0u8; 32]);
        hk.expand(SEAL_INFO, seal_key.as_mut_slice())
            .map_err(|_| invalid("HKDF expand failed"))?;
        Ok(MasterKey { version, seal_key })
    }

    /// A master key from 64 hex characters.
    ///
    /// # Errors
    /// [`Error::MasterKeyInvalid`] when the text is not 64 hex characters,
    /// or is a placeholder rather than a random key: one byte repeated, or
    /// bytes counting up by one (`000102…1f`, the form of documentation
    /// examples).
    pub fn from_hex(version: u32, hex_text: &str) -> Result<Self, Error> {
        Self::from_hex_as(version, hex_text, Placeholder::Refuse)
    }

    /// [`MasterKey::from_hex`], with a placeholder refused or, for a version
    /// that no longer seals (an older one in a ring, kept to open and
    /// rewrap its rows), accepted with a warning: refusing it would leave
    /// no way off it.
    fn from_hex_as(version: u32, hex_text: &str, placeholder: Placeholder) -> Result<Self, Error> {
        let hex_text = hex_text.trim();
        if hex_text.len() != 64 {
            return Err(invalid(format!(
                "version {version}: expected 64 hex characters (32 bytes), got {} characters",
                hex_text.len()
            )));
        }
        // Zeroized on drop: `new` takes (and wipes) a copy, so this one
        // must not stay behind on the stack either.
        let mut bytes = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(hex_text, bytes.as_mut_slice()).is_err() {
            return Err(invalid(format!(
                "version {version}: not hexadecimal (expected 64 characters 0-9, a-f)"
            )));
        }
        if is_placeholder(&bytes) {
            match placeholder {
                Placeholder::Refuse => return Err(invalid(format!(
                    "version {version}: a placeholder (one byte repeated, or bytes counting up as in documentation examples), not a random key: anyone could open every secret sealed under it (make one with `openssl rand -hex 32`, add it as a newer version and run `tessera keys rewrap`)"
                ))),
                Placeholder::Warn => tracing::warn!(
                    version,
                    "tessera: master key version {version} is a placeholder (one byte repeated, or bytes counting up), accepted only because a newer version seals: rewrap (`tessera keys rewrap`) and drop it"
                ),
            }
        }
        MasterKey::new(version, *bytes)
    }

    /// The key's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn seal_key(&self) -> &[u8; 32] {
        &self.seal_key
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .field("key", &"** redacted **")
            .finish()
    }
}

/// The master keys a store may use, by version; the newest is current.
///
/// New secrets are sealed under the current (highest) version; a secret
/// sealed under an older version still opens while that version is in the
/// ring. [`SqlKeyStore::rewrap`](crate::SqlKeyStore::rewrap) moves every
/// row to the current version, after which older versions may be dropped.
///
/// Text forms, from [`MASTER_KEY_ENV`], [`MASTER_KEY_FILE_ENV`] or
/// [`MasterKeyring::parse`]:
///
/// ```text
/// # a single key: version 1 (64 hex digits, from `openssl rand -hex 32`)
/// 3f9c…64 hex digits…a1
///
/// # or versioned entries, one per line (or comma-separated); `#` starts a comment
/// 1:3f9c…64 hex digits…a1
/// 2:d04e…64 hex digits…7b
/// ```
#[derive(Clone)]
pub struct MasterKeyring {
    keys: BTreeMap<u32, MasterKey>,
}

impl MasterKeyring {
    /// A ring of the given keys.
    ///
    /// # Errors
    /// [`Error::MasterKeyInvalid`] when `keys` is empty or two keys share a version.
    pub fn new(keys: impl IntoIterator<Item = MasterKey>) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for key in keys {
            let version = key.version;
            if map.insert(version, key).is_some() {
                return Err(invalid(format!("version {version} is given twice")));
            }
        }
        if map.is_empty() {
            return Err(invalid("no master key given"));
        }
        Ok(MasterKeyring { keys: map })
    }

    /// Parses the text form (see the type's docs).
    ///
    /// # Errors
    /// [`Error::MasterKeyInvalid`] saying which entry is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        // A byte order mark some editors write is not part of the first entry.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Entries are separated by newlines or commas; `#` starts a comment.
        let entries: Vec<&str> = text
            .split(['\n', ','])
            .map(|entry| entry.split('#').next().unwrap_or("").trim())
            .filter(|entry| !entry.is_empty())
            .collect();
        // One bare key (comments and blank lines around it allowed) is version 1.
        if let [only] = entries.as_slice() {
            if !only.contains(':') {
                return MasterKeyring::new([MasterKey::from_hex(1, only)?]);
            }
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            // Messages name the entry by position and never quote its text:
            // a mistyped entry (`HEX:1`, `HEX:`) would put the key in a log.
            let number = index + 1;
            let Some((version, hex_text)) = entry.split_once(':') else {
                return Err(invalid(format!(
                    "entry {number}: expected VERSION:HEX (for example 2:<64 hex characters>)"
                )));
            };
            let version = version.trim();
            let version: u32 = match version.parse() {
                Ok(version) => version,
                Err(_) if version.len() > 10 => {
                    return Err(invalid(format!(
                        "entry {number}: the version before ':' is {} characters long, not a \
                         positive integer (is the entry written HEX:VERSION instead of VERSION:HEX?)",
                        version.len()
                    )))
                }
                Err(_) => {
                    return Err(invalid(format!(
                        "entry {number}: the version before ':' is not a positive integer"
                    )))
                }
            };
            parsed.push((version, hex_text));
        }
        // Only the newest version seals: an older one that is a
        // placeholder is let in (with a warning) to open and rewrap its
        // rows, or there would be no way off it.
        let current = parsed.iter().map(|(v, _)| *v).max().unwrap_or(0);
        let keys = parsed
            .into_iter()
            .map(|(version, hex_text)| {
                let placeholder = if version == current {
                    Placeholder::Refuse
                } else {
                    Placeholder::Warn
                };
                MasterKey::from_hex_as(version, hex_text, placeholder)
            })
            .collect::<Result<Vec<_>, _>>()?;
        MasterKeyring::new(keys)
    }

    /// Reads a file of `VERSION:HEX` lines (or one bare hex key).
    ///
    /// # Errors
    /// [`Error::MasterKeyInvalid`] when the file cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        warn_if_others_can_read(path);
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            invalid(format!(
                "cannot read master key file {}: {e}",
                redacted_path(path)
            ))
        })?);
        MasterKeyring::parse(&text)
    }

    /// From [`MASTER_KEY_ENV`] or [`MASTER_KEY_FILE_ENV`] (exactly one of them).
    ///
    /// # Errors
    /// [`Error::MasterKeyMissing`] when neither is set,
    /// [`Error::MasterKeyInvalid`] when both are set or the value is malformed.
    pub fn from_env() -> Result<Self, Error> {
        let inline = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
        let file = std::env::var_os(MASTER_KEY_FILE_ENV);
        match (inline, file) {
            (Some(_), Some(_)) => Err(invalid(format!(
                "both {MASTER_KEY_ENV} and {MASTER_KEY_FILE_ENV} are set; set only one"
            ))),
            (Some(text), None) => MasterKeyring::parse(&text),
            (None, Some(path)) => MasterKeyring::from_file(path),
            (None, None) => Err(Error::MasterKeyMissing),
        }
    }

    /// The current (newest) key, which seals everything written from now on.
    pub fn current(&self) -> &MasterKey {
        // `new` refuses an empty ring.
        self.keys
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a keyring is never empty"))
    }

    /// The key of `version`, if held.
    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        self.keys.get(&version)
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current().version)
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::MasterKeyInvalid {
        reason: reason.into(),
    }
}

/// Logs a warning when the master key file is readable by its group or by
/// others: whoever can read it can open every secret in the database.
#[cfg(unix)]
fn warn_if_others_can_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %redacted_path(path),
                mode = format_args!("{:o}", mode & 0o777),
                "tessera-keys-sql: the master key file is readable by its group or by others; restrict it to its owner (chmod 600)"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_path: &Path) {}

/// What [`MasterKey::from_hex_as`] does with a placeholder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Refuse,
    Warn,
}

/// One byte repeated, or bytes counting up by one from any start: what is
/// typed as an example, never what a random generator gives.
fn is_placeholder(bytes: &[u8; 32]) -> bool {
    bytes.iter().all(|&b| b == bytes[0])
        || bytes
            .iter()
            .zip(0u8..)
            .all(|(&b, i)| b == bytes[0].wrapping_add(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_as_a_path_is_not_echoed() {
        for key in [A.to_owned(), format!("1:{A}"), format!("/etc/{B}")] {
            let err = MasterKeyring::from_file(&key).expect_err("no such file");
            let text = err.to_string();
            assert!(text.contains("looks like a hex key"), "{text}");
            assert!(
                !text.contains(&A[8..40]) && !text.contains(&B[8..40]),
                "{text}"
            );
        }
        let err = MasterKeyring::from_file("/no/such/master.key").expect_err("no such file");
        assert!(err.to_string().contains("/no/such/master.key"), "{err}");
    }

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn placeholders_are_refused_and_a_byte_order_mark_is_not_part_of_the_key() {
        let counting: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        let counting_on: String = (0x20u8..0x40).map(|b| format!("{b:02x}")).collect();
        for placeholder in ["00".repeat(32), "5a".repeat(32), counting, counting_on] {
            for text in [placeholder.clone(), format!("1:{A}\n2:{placeholder}")] {
                let err = MasterKeyring::parse(&text).expect_err("placeholder");
                assert!(err.to_string().contains("placeholder"), "{err}");
                assert!(!err.to_string().contains(&placeholder[..16]), "{err}");
            }
        }
        // An older version that is a placeholder opens (to rewrap its rows
        // under the newer one); as the newest, it is refused.
        let ring = MasterKeyring::parse(&format!("1:{}\n2:{A}", "42".repeat(32))).expect("older");
        assert_eq!(ring.current().version(), 2);
        assert!(MasterKeyring::parse(&format!("1:{A}\n2:{}", "42".repeat(32))).is_err());
        let ring = MasterKeyring::parse(&format!("\u{feff}{A}\n")).expect("BOM");
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1]);
        let ring = MasterKeyring::parse(&format!("\u{feff}1:{A}\n2:{B}\n")).expect("BOM");
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn parses_bare_and_versioned_forms() {
        let ring = MasterKeyring::parse(A).expect("bare");
        assert_eq!(ring.current().version(), 1);
        let ring =
            MasterKeyring::parse(&format!("# keys\n1:{A}\n\n3:{B} # newest\n")).expect("versioned");
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(ring.current().version(), 3);
        let ring = MasterKeyring::parse(&format!("2:{B},1:{A}")).expect("commas");
        assert_eq!(ring.current().version(), 2);
        // One bare key with a comment line is still one bare key.
        let ring = MasterKeyring::parse(&format!("# prod key\n{A}\n")).expect("commented bare");
        assert_eq!(ring.versions().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn refuses_malformed_keys_without_echoing_them() {
        for bad in [
            "abc".to_string(),
            format!("1:{A}\n1:{B}"),
            format!("0:{A}"),
            format!("x:{A}"),
            format!("1:{}", &A[..62]),
            format!("1:{}zz", &A[..62]),
            String::new(),
            // Version and key swapped, or a trailing colon: the text before
            // the colon is the key itself.
            format!("{A}:1"),
            format!("{A}:"),
            format!(" {A}: "),
            format!("1:{A}\n{B}:2"),
            format!("1:{A}\n{B}"),
            format!("{}:{}", &A[..20], &B[..20]),
        ] {
            let err = MasterKeyring::parse(&bad).expect_err(&bad).to_string();
            // No run of 8 characters of either key appears in the message.
            for key in [A, B] {
                for start in 0..=key.len() - 8 {
                    assert!(!err.contains(&key[start..start + 8]), "{err}");
                }
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let ring = MasterKeyring::parse(A).expect("ring");
        let debug = format!("{ring:?} {:?}", ring.current());
        assert!(!debug.contains("0001"), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
