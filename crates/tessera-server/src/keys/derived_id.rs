//! The self-describing key id format of derived keys.
//!
//! ```text
//! d1.<owner>.<client>.<scopes>.<not_after>.<random>
//! ```
//!
//! | field       | content                                                        |
//! |-------------|----------------------------------------------------------------|
//! | `d1`        | format version                                                 |
//! | `owner`     | 1–48 characters of `A-Z a-z 0-9 _ -`                           |
//! | `client`    | 0–24 characters of the same set (empty: none recorded)         |
//! | `scopes`    | scopes joined by `+`, each 1–32 characters of `A-Z a-z 0-9 _ - :`; empty: none |
//! | `not_after` | Unix seconds, 1–12 decimal digits without leading zeros; empty: no expiry |
//! | `random`    | 16–32 characters of base64url, at least 96 random bits          |
//!
//! The whole id is at most 128 characters (the profile's key id limit).
//!
//! Metadata in a key id is safe to trust because the secret is derived from
//! the *whole* id: changing a scope or the expiry yields a different id
//! whose secret the client does not have, so its signatures fail with
//! `bad_signature`.

use std::collections::BTreeSet;

use tessera_core::{KeyId, MAX_KEY_ID_LEN};

use super::{KeyError, KeyMetadata};

/// Version prefix of derived key ids.
const PREFIX: &str = "d1";
const MAX_OWNER: usize = 48;
const MAX_CLIENT: usize = 24;
const MAX_SCOPE: usize = 32;
const MAX_TIME_DIGITS: usize = 12;
const MIN_RANDOM: usize = 16;
const MAX_RANDOM: usize = 32;

/// A parsed derived key id (`d1.<owner>.<client>.<scopes>.<not_after>.<random>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedKeyId {
    owner: String,
    client: Option<String>,
    scopes: BTreeSet<String>,
    not_after: Option<u64>,
    random: String,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn invalid(detail: impl Into<String>) -> KeyError {
    KeyError::InvalidField(detail.into())
}

fn check_name(what: &str, value: &str, min: usize, max: usize) -> Result<(), KeyError> {
    if !(min..=max).contains(&value.len()) || !value.bytes().all(is_name_byte) {
        return Err(invalid(format!(
            "{what} must be {min} to {max} characters of A-Z a-z 0-9 _ -"
        )));
    }
    Ok(())
}

fn check_scope(scope: &str) -> Result<(), KeyError> {
    if !(1..=MAX_SCOPE).contains(&scope.len())
        || !scope.bytes().all(|b| is_name_byte(b) || b == b':')
    {
        return Err(invalid(format!(
            "scope {scope:?} must be 1 to {MAX_SCOPE} characters of A-Z a-z 0-9 _ - :"
        )));
    }
    Ok(())
}

impl DerivedKeyId {
    /// Assembles a derived key id from its fields, validating each.
    ///
    /// # Errors
    /// [`KeyError::InvalidField`] when a field breaks the format or the id
    /// would exceed 128 characters.
    pub fn new(
        owner: &str,
        client: Option<&str>,
        scopes: &BTreeSet<String>,
        not_after: Option<u64>,
        random: &str,
    ) -> Result<Self, KeyError> {
        check_name("owner", owner, 1, MAX_OWNER)?;
        if let Some(client) = client {
            check_name("client", client, 1, MAX_CLIENT)?;
        }
        scopes.iter().try_for_each(|s| check_scope(s))?;
        if not_after.is_some_and(|t| t.to_string().len() > MAX_TIME_DIGITS) {
            return Err(invalid("not_after is out of range"));
        }
        check_name("random part", random, MIN_RANDOM, MAX_RANDOM)?;
        let id = DerivedKeyId {
            owner: owner.to_owned(),
            client: client.map(str::to_owned),
            scopes: scopes.clone(),
            not_after,
            random: random.to_owned(),
        };
        if id.to_string().len() > MAX_KEY_ID_LEN {
            return Err(invalid(format!(
                "the derived key id would exceed {MAX_KEY_ID_LEN} characters; use fewer or shorter scopes"
            )));
        }
        Ok(id)
    }

    /// Parses a key id; `None` when it is not a well-formed derived key id.
    pub fn parse(key_id: &KeyId) -> Option<Self> {
        let mut fields = key_id.as_str().split('.');
        let (
            Some(PREFIX),
            Some(owner),
            Some(client),
            Some(scopes),
            Some(not_after),
            Some(random),
            None,
        ) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        )
        else {
            return None;
        };
        let scopes: BTreeSet<String> = if scopes.is_empty() {
            BTreeSet::new()
        } else {
            scopes.split('+').map(str::to_owned).collect()
        };
        let not_after = match not_after {
            "" => None,
            digits => {
                // One spelling per time, so one key has exactly one id.
                if digits.len() > MAX_TIME_DIGITS
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || (digits.starts_with('0') && digits.len() > 1)
                {
                    return None;
                }
                Some(digits.parse().ok()?)
            }
        };
        let client = (!client.is_empty()).then_some(client);
        let parsed = DerivedKeyId::new(owner, client, &scopes, not_after, random).ok()?;
        // Reject ids whose scopes were not in canonical (sorted, unique) order.
        (parsed.to_string() == key_id.as_str()).then_some(parsed)
    }

    /// The id as a [`KeyId`].
    ///
    /// # Errors
    /// Never for a value built by [`DerivedKeyId::new`] or `parse`.
    pub fn to_key_id(&self) -> Result<KeyId, KeyError> {
        Ok(KeyId::new(self.to_string())?)
    }

    /// The metadata the id encodes (active; revocation is checked separately).
    pub fn metadata(&self) -> KeyMetadata {
        let mut metadata =
            KeyMetadata::new(self.owner.clone()).with_scopes(self.scopes.iter().cloned());
        metadata.client.clone_from(&self.client);
        metadata.not_after = self.not_after;
        metadata
    }

    /// The owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The client, if any.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The scopes.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.scopes
    }

    /// The expiry, if any.
    pub fn not_after(&self) -> Option<u64> {
        self.not_after
    }
}

impl std::fmt::Display for DerivedKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.",
            self.owner,
            self.client.as_deref().unwrap_or("")
        )?;
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(scope)?;
        }
        f.write_str(".")?;
        if let Some(t) = self.not_after {
            write!(f, "{t}")?;
        }
        write!(f, ".{}", self.random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn round_trip() {
        let id = DerivedKeyId::new(
            "user-42",
            Some("ios"),
            &scopes(&["write", "orders:read"]),
            Some(1_800_000_000),
            "AAAAAAAAAAAAAAAAAAAAAA",
        )
        .expect("valid");
        let text = id.to_string();
        assert_eq!(
            text,
            "d1.user-42.ios.orders:read+write.1800000000.AAAAAAAAAAAAAAAAAAAAAA"
        );
        let key_id = id.to_key_id().expect("key id");
        assert_eq!(DerivedKeyId::parse(&key_id), Some(id.clone()));
        let m = id.metadata();
        assert_eq!(m.owner, "user-42");
        assert_eq!(m.client.as_deref(), Some("ios"));
        assert!(m.has_scope("write"));
        assert_eq!(m.not_after, Some(1_800_000_000));

        let bare = DerivedKeyId::new("u", None, &BTreeSet::new(), None, "BBBBBBBBBBBBBBBB")
            .expect("valid");
        assert_eq!(bare.to_string(), "d1.u....BBBBBBBBBBBBBBBB");
        assert_eq!(
            DerivedKeyId::parse(&bare.to_key_id().expect("id")),
            Some(bare)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "d1.u....short",
            "d2.u....BBBBBBBBBBBBBBBB",
            "d1..x..1.BBBBBBBBBBBBBBBB",
            "d1.u.x.b+a.1.BBBBBBBBBBBBBBBB",
            "d1.u.x.a+a.1.BBBBBBBBBBBBBBBB",
            "d1.u.x.a.01.BBBBBBBBBBBBBBBB",
            "d1.u.x.a.1x.BBBBBBBBBBBBBBBB",
            "d1.u.x.a.1.BBBBBBBBBBBBBBBB.extra",
            "d1.u!.x.a.1.BBBBBBBBBBBBBBBB",
            "plain-key",
        ] {
            let key_id = KeyId::new(bad).expect("valid key id syntax");
            assert_eq!(DerivedKeyId::parse(&key_id), None, "{bad}");
        }
        let long_scopes: BTreeSet<String> = (0..6)
            .map(|i| format!("scope-number-{i:02}-abcdefghij"))
            .collect();
        assert!(DerivedKeyId::new("u", None, &long_scopes, None, "BBBBBBBBBBBBBBBB").is_err());
    }
}
