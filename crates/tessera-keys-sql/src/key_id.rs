//! Key ids with a check tag: `k1.<22 random base64url>.<11 base64url tag>`.
//!
//! The tag is the first 64 bits of HMAC-SHA256 over the id's first two
//! parts, under a store-wide random check key (kept sealed in the canary
//! rows, so it outlives master key rotation). A made-up id fails the check
//! and is refused without a database query; guessing a tag takes 2^64 tries.
//! The check key only filters noise: an attacker holding it gains nothing but
//! the ability to make the store run a look-up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tessera_core::KeyId;
use zeroize::Zeroizing;

use crate::seal::ID_KEY_LEN;

const PREFIX: &str = "k1.";
const RANDOM_BYTES: usize = 16;
const RANDOM_CHARS: usize = 22;
const TAG_BYTES: usize = 8;
const TAG_CHARS: usize = 11;
const LABEL: &[u8] = b"tessera-keys-sql/v1 key id tag\0";

/// Makes and checks key ids.
#[derive(Clone)]
pub(crate) struct IdTagger {
    key: Zeroizing<[u8; ID_KEY_LEN]>,
}

impl std::fmt::Debug for IdTagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTagger(** redacted **)")
    }
}

impl IdTagger {
    pub(crate) fn new(key: Zeroizing<[u8; ID_KEY_LEN]>) -> Self {
        IdTagger { key }
    }

    fn tag(&self, body: &str) -> [u8; TAG_BYTES] {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(LABEL);
        mac.update(body.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// A fresh key id from the OS random source.
    pub(crate) fn generate(&self) -> Result<KeyId, Error> {
        let mut random = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut random).map_err(|_| Error::Random)?;
        let body = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&body));
        KeyId::new(format!("{body}.{tag}")).map_err(Error::Core)
    }

    /// Whether `key_id` is well formed and carries the right tag (constant time).
    pub(crate) fn check(&self, key_id: &KeyId) -> bool {
        let id = key_id.as_str();
        if id.len() != PREFIX.len() + RANDOM_CHARS + 1 + TAG_CHARS || !id.starts_with(PREFIX) {
            return false;
        }
        let (body, tag) = id.split_at(PREFIX.len() + RANDOM_CHARS);
        let Some(tag) = tag.strip_prefix('.') else {
            return false;
        };
        let mut given = [0u8; TAG_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(tag, &mut given) {
            Ok(TAG_BYTES) => {}
            _ => return false,
        }
        self.tag(body).ct_eq(&given).into()
    }
}

#[derive(Debug)]
pub(crate) enum Error {
    Random,
    Core(tessera_core::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_check_and_others_do_not() {
        let t = IdTagger::new(Zeroizing::new([1; ID_KEY_LEN]));
        let id = t.generate().expect("id");
        assert_eq!(id.as_str().len(), 37);
        assert!(t.check(&id));
        assert!(!IdTagger::new(Zeroizing::new([2; ID_KEY_LEN])).check(&id));
        let s = id.as_str();
        let mut flipped = s.to_string();
        let c = if s.ends_with('A') { "B" } else { "A" };
        flipped.replace_range(s.len() - 1.., c);
        for bad in [
            flipped.as_str(),
            "k1.x.y",
            "alice",
            &s[..36],
            &format!("{s}A"),
        ] {
            assert!(!t.check(&KeyId::new(bad).expect("key id")), "{bad}");
        }
    }
}
