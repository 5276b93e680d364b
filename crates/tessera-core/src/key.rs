//! Key ids, secrets and the prepared HMAC state.

use std::fmt;

use arrayvec::ArrayString;
use hmac::{Hmac, KeyInit};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{err, ErrorCode, Result};
use crate::inline::inline_str;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Longest key id the profile accepts, in bytes.
pub const MAX_KEY_ID_LEN: usize = 128;
/// Shortest secret a verifier accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret a verifier accepts, in bytes.
pub const MAX_SECRET_LEN: usize = 128;
/// Length of secrets Tessera generates, in bytes.
pub const GENERATED_SECRET_LEN: usize = 32;

/// A validated key id: 1 to 128 visible ASCII characters other than `"` and `\`.
///
/// Stored inline (the length is bounded), so parsing one from a request
/// allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(ArrayString<MAX_KEY_ID_LEN>);

impl KeyId {
    /// Validates and wraps a key id.
    ///
    /// # Errors
    /// `invalid_parameter` when the id is empty, longer than 128 bytes, or
    /// contains a character outside 0x21–0x7E or one of `"` and `\`.
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        validate_key_id(id)?;
        match inline_str(id) {
            Some(inline) => Ok(KeyId(inline)),
            None => err(ErrorCode::InvalidParameter, "keyid is too long"),
        }
    }

    /// [`KeyId::new`] for a caller that does not need the error (the
    /// canonical-form shortcut, which leaves reporting to the `sfv` path):
    /// the same rules, answered as an `Option` so the value is returned
    /// without a `Result` to unwrap on the way.
    #[inline]
    pub(crate) fn new_if_valid(id: &str) -> Option<Self> {
        validate_key_id(id).ok()?;
        inline_str(id).map(KeyId)
    }

    /// The key id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn validate_key_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return err(
            ErrorCode::InvalidParameter,
            format!("keyid must be 1 to {MAX_KEY_ID_LEN} characters"),
        );
    }
    // Branch-free so it vectorizes; every byte is checked either way.
    let visible = id.bytes().fold(true, |ok, b| {
        ok & (0x21..=0x7e).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if !visible {
        return err(
            ErrorCode::InvalidParameter,
            "keyid may only contain visible ASCII other than '\"' and '\\'",
        );
    }
    Ok(())
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.0).finish()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        KeyId::new(s)
    }
}

/// Secret key bytes, zeroized on drop, never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

/// `invalid_parameter` unless `len` is 16 to 128: the message gives the
/// length received (a length is not secret) so a caller sees what to fix.
fn check_secret_len(len: usize) -> Result<()> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        return Ok(());
    }
    err(
        ErrorCode::InvalidParameter,
        format!("secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes, got {len}"),
    )
}

impl SecretKey {
    /// Wraps secret bytes (16 to 128 bytes).
    ///
    /// # Errors
    /// `invalid_parameter` when the length is outside 16..=128 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        check_secret_len(bytes.len())?;
        Ok(SecretKey(Zeroizing::new(bytes.to_vec())))
    }

    /// Takes ownership of secret bytes, zeroizing the input on failure too.
    ///
    /// # Errors
    /// As [`SecretKey::from_bytes`].
    pub fn from_vec(mut bytes: Vec<u8>) -> Result<Self> {
        if let Err(e) = check_secret_len(bytes.len()) {
            bytes.zeroize();
            return Err(e);
        }
        Ok(SecretKey(Zeroizing::new(bytes)))
    }

    /// Parses a hex-encoded secret.
    ///
    /// # Errors
    /// `invalid_parameter` when the text is not hex or the length is out of range.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            crate::Error::new(ErrorCode::InvalidParameter, "secret is not valid hex")
        })?);
        SecretKey::from_bytes(&bytes)
    }

    /// Generates a fresh 32-byte secret from the operating system's CSPRNG.
    ///
    /// This is the one place the core reads randomness itself: key issuance
    /// happens once per device, never on the signing path.
    ///
    /// # Errors
    /// `store_unavailable` is never returned; an OS RNG failure is reported
    /// as `invalid_parameter` with a detail saying so.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
        getrandom::fill(&mut bytes).map_err(|_| {
            crate::Error::new(
                ErrorCode::InvalidParameter,
                "the operating system random source failed",
            )
        })?;
        Ok(SecretKey(bytes))
    }

    /// Exposes the secret bytes. Keep the borrow short; never log it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Hex form of the secret, for issuing it once to its owner.
    pub fn expose_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&*self.0))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a secret is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(** redacted **)")
    }
}

/// A key id with its HMAC state prepared once, ready to sign or verify many requests.
///
/// Preparing the key (the HMAC inner and outer pads) costs about as much as
/// hashing a short message, so it is done when the key is loaded, not per
/// request. The prepared state is key material: it is zeroized on drop and
/// never printed.
#[derive(Clone)]
pub struct SigningKey {
    id: KeyId,
    mac: HmacSha256,
}

impl SigningKey {
    /// Prepares a key for signing and verifying.
    pub fn new(id: KeyId, secret: &SecretKey) -> Self {
        SigningKey {
            id,
            mac: prepare_mac(secret.expose_secret()),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// A fresh HMAC instance keyed with this key.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The prepared state itself, for a caller that copies it when it
    /// needs it ([`crate::base::BufferedMac`]).
    pub(crate) fn prepared_mac(&self) -> &HmacSha256 {
        &self.mac
    }
}

pub(crate) fn prepare_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the length bounds are enforced by SecretKey.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac_key(),
    }
}

#[cold]
fn unreachable_hmac_key() -> ! {
    // `Hmac::new_from_slice` never fails: HMAC hashes over-long keys and pads short ones.
    panic!("HMAC-SHA256 rejected a key length; hmac accepts every length")
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"** redacted **")
            .finish()
    }
}

/// Derives the 32-byte secret of `key_id` from a server master secret
/// (spec §5.6): HKDF-SHA256 with salt `"tessera-v1 derived key"` and the key id as info.
///
/// # Errors
/// `invalid_parameter` when the master secret is shorter than 32 bytes.
pub fn derive_secret(master: &SecretKey, key_id: &KeyId) -> Result<SecretKey> {
    if master.len() < 32 {
        return err(
            ErrorCode::InvalidParameter,
            "a derivation master secret must be at least 32 bytes",
        );
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"tessera-v1 derived key"), master.expose_secret());
    let mut out = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
    hk.expand(key_id.as_str().as_bytes(), &mut out)
        .map_err(|_| crate::Error::new(ErrorCode::InvalidParameter, "HKDF output too long"))?;
    SecretKey::from_bytes(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_rules() {
        assert!(KeyId::new("user-42.device_1:k~").is_ok());
        for bad in ["", "has space", "quote\"", "back\\slash", "tab\t", "é"] {
            assert_eq!(
                KeyId::new(bad).map_err(|e| e.code()),
                Err(ErrorCode::InvalidParameter),
                "{bad:?}"
            );
        }
        assert!(KeyId::new("k".repeat(128)).is_ok());
        assert!(KeyId::new("k".repeat(129)).is_err());
    }

    #[test]
    fn secrets_are_redacted_and_bounded() {
        // 32 distinct bytes, all >= 0x80: every 4-byte run is unique and
        // renders as 8 hex digits or four 3-digit numbers, nothing a Debug
        // output could contain by chance.
        let secret: [u8; 32] = std::array::from_fn(|i| 0x80 | ((i * 37 + 11) % 128) as u8);
        let s = SecretKey::from_bytes(&secret).expect("valid");
        let k = SigningKey::new(KeyId::new("k").expect("valid"), &s);
        let outputs = [
            ("SecretKey", format!("{s:?}"), format!("{s:#?}")),
            ("SigningKey", format!("{k:?}"), format!("{k:#?}")),
            (
                "prepared MAC",
                format!("{:?}", k.mac()),
                format!("{:#?}", k.mac()),
            ),
        ];
        assert_eq!(outputs[0].1, "SecretKey(** redacted **)");
        assert!(outputs[1].1.contains("** redacted **"), "{}", outputs[1].1);
        assert!(outputs[1].1.contains("\"k\""), "{}", outputs[1].1);
        // Every 4-byte run of the secret, as hex and as numbers.
        let runs: Vec<&[u8]> = secret.windows(4).collect();
        let hex_runs: Vec<String> = runs.iter().map(hex::encode).collect();
        let secret_hex = hex::encode(secret);
        let secret_list = format!("{secret:?}");
        for (what, plain, pretty) in &outputs {
            for text in [plain, pretty] {
                let lower = text.to_ascii_lowercase();
                assert!(!lower.contains(&secret_hex), "{what}: hex secret in {text}");
                assert!(!text.contains(&secret_list), "{what}: byte list in {text}");
                // Any layout (`{:?}`, `{:#?}`, other separators): the hex
                // digit runs and the sequence of numbers in the output.
                for run in &hex_runs {
                    assert!(!lower.contains(run.as_str()), "{what}: {run} in {text}");
                }
                let numbers: Vec<u32> = text
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse().ok())
                    .collect();
                for run in &runs {
                    let run: Vec<u32> = run.iter().map(|&b| u32::from(b)).collect();
                    assert!(
                        !numbers.windows(4).any(|w| w == run.as_slice()),
                        "{what}: bytes {run:?} in {text}"
                    );
                }
            }
        }
        assert!(SecretKey::from_bytes(&[0u8; 15]).is_err());
        assert!(SecretKey::from_bytes(&[0u8; 129]).is_err());
        assert_eq!(SecretKey::generate().expect("os rng").len(), 32);
    }

    /// The examples of spec §5.6 (computed there with an independent HKDF).
    #[test]
    fn derivation_matches_the_spec_examples() {
        let master: Vec<u8> = (0u8..32).collect();
        let master = SecretKey::from_bytes(&master).expect("valid");
        for (id, expected) in [
            (
                "user-42",
                "2189b2594ecc75f726e124ac81b79f37ec7bcbaeaeea5a0e7991c2f11b44eca4",
            ),
            (
                "d1.alice.phone.orders:read+orders:write.1893456000.q5Lx0sV6bQ2mTn8yZkP4wA",
                "066dda238add7e5b33f675094a7254f99e2a46cfdb9ce4a709ee406b45cc1f60",
            ),
        ] {
            let derived = derive_secret(&master, &KeyId::new(id).expect("valid")).expect("derive");
            assert_eq!(&*derived.expose_hex(), expected, "{id}");
        }
    }

    #[test]
    fn derivation_is_deterministic_and_keyed_by_id() {
        let master = SecretKey::from_bytes(&[1u8; 32]).expect("valid");
        let a = derive_secret(&master, &KeyId::new("a").expect("valid")).expect("derive");
        let a2 = derive_secret(&master, &KeyId::new("a").expect("valid")).expect("derive");
        let b = derive_secret(&master, &KeyId::new("b").expect("valid")).expect("derive");
        assert_eq!(a.expose_secret(), a2.expose_secret());
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
