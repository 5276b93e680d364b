//! The authenticated server-time challenge sent with `clock_skew` (spec §8).
//!
//! The server MACs its current time, the key id and the nonce of the rejected
//! request with the caller's key. The client checks the MAC and the nonce
//! before adopting the time, so neither a forged `Date` header nor a replayed
//! old challenge can move its clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;

use crate::error::{err, Error, ErrorCode, Result};
use crate::key::{KeyId, SigningKey};
use crate::mac_key::{MacKey, SignError};
use crate::nonce::Nonce;

/// Name of the response header that carries the challenge.
pub const SERVER_TIME_HEADER: &str = "tessera-server-time";

/// The first line of every challenge message (spec §8).
const SERVER_TIME_CONTEXT: &[u8] = b"tessera-v1 server-time\n";

fn challenge_mac(key: &SigningKey, nonce: &str, time: u64) -> crate::key::HmacSha256 {
    let mut mac = key.mac();
    mac.update(SERVER_TIME_CONTEXT);
    mac.update(key.key_id().as_str().as_bytes());
    mac.update(b"\n");
    mac.update(nonce.as_bytes());
    mac.update(b"\n");
    mac.update(time.to_string().as_bytes());
    mac
}

/// Builds the `Tessera-Server-Time` value for a request signed with `key` and `nonce`.
pub fn server_time_header(key: &SigningKey, nonce: &Nonce, time: u64) -> String {
    let tag = challenge_mac(key, nonce.as_str(), time)
        .finalize()
        .into_bytes();
    format!(
        "time={time}, keyid=\"{}\", nonce=\"{}\", mac=:{}:",
        key.key_id(),
        nonce,
        STANDARD.encode(tag)
    )
}

/// Checks a `Tessera-Server-Time` value against the key and the nonce of the
/// request just sent, and returns the authenticated server time.
///
/// # Errors
/// `malformed_signature` when the value cannot be parsed or names another key
/// or nonce; `bad_signature` when the MAC does not verify.
pub fn verify_server_time(value: &[u8], key: &SigningKey, sent_nonce: &Nonce) -> Result<u64> {
    let (time, tag) = parse_challenge(value, key.key_id(), sent_nonce)?;
    challenge_mac(key, sent_nonce.as_str(), time)
        .verify_slice(&tag)
        .map_err(|_| bad_challenge_mac())?;
    Ok(time)
}

/// [`verify_server_time`] for any [`MacKey`], a key the platform holds
/// included: the key computes the expected MAC over the challenge message,
/// and it is compared with the received one here, in constant time.
///
/// # Errors
/// [`SignError::Refused`] with the codes of [`verify_server_time`] (checked
/// before the key is asked for anything); [`SignError::Mac`] when the key
/// produced no MAC.
pub fn verify_server_time_with<K: MacKey + ?Sized>(
    value: &[u8],
    key: &K,
    sent_nonce: &Nonce,
) -> std::result::Result<u64, SignError> {
    let (time, tag) = parse_challenge(value, key.key_id(), sent_nonce)?;
    let expected = key.tag(challenge_message(key.key_id(), sent_nonce, time))?;
    // `ct_eq` on slices of different lengths is false without comparing bytes
    // (the length is not secret).
    if bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &tag[..])) {
        Ok(time)
    } else {
        Err(SignError::Refused(bad_challenge_mac()))
    }
}

/// The bytes [`challenge_mac`] feeds the HMAC, in one buffer.
fn challenge_message(key_id: &KeyId, nonce: &Nonce, time: u64) -> Vec<u8> {
    let mut time_text = itoa::Buffer::new();
    let time_text = time_text.format(time);
    let mut message = Vec::with_capacity(
        SERVER_TIME_CONTEXT.len() + key_id.as_str().len() + nonce.as_str().len() + 2 + 15,
    );
    message.extend_from_slice(SERVER_TIME_CONTEXT);
    message.extend_from_slice(key_id.as_str().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(nonce.as_str().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(time_text.as_bytes());
    message
}

fn bad_challenge_mac() -> Error {
    Error::new(
        ErrorCode::BadSignature,
        "the server-time challenge MAC does not verify",
    )
}

/// The time and received MAC of a challenge that names `key_id` and `sent_nonce`.
fn parse_challenge(value: &[u8], key_id: &KeyId, sent_nonce: &Nonce) -> Result<(u64, Vec<u8>)> {
    let dict: sfv::Dictionary = sfv::Parser::new(value).parse().map_err(|_| {
        Error::new(
            ErrorCode::MalformedSignature,
            "Tessera-Server-Time is not a dictionary",
        )
    })?;
    let item = |name: &str| match dict.get(name) {
        Some(sfv::ListEntry::Item(item)) => Ok(&item.bare_item),
        _ => err(
            ErrorCode::MalformedSignature,
            format!("Tessera-Server-Time lacks {name}"),
        ),
    };
    let time = item("time")?
        .as_integer()
        .and_then(|t| u64::try_from(i64::from(t)).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::MalformedSignature,
                "time must be a non-negative integer",
            )
        })?;
    let keyid = item("keyid")?.as_string().map(|s| s.as_str());
    let nonce = item("nonce")?.as_string().map(|s| s.as_str());
    let tag = item("mac")?.as_byte_sequence();
    if keyid != Some(key_id.as_str()) || nonce != Some(sent_nonce.as_str()) {
        return err(
            ErrorCode::MalformedSignature,
            "the challenge is for another key or another request",
        );
    }
    let Some(tag) = tag else {
        return err(ErrorCode::MalformedSignature, "mac must be a byte sequence");
    };
    Ok((time, tag.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyId, SecretKey};

    fn key(byte: u8) -> SigningKey {
        SigningKey::new(
            KeyId::new("k1").expect("id"),
            &SecretKey::from_bytes(&[byte; 32]).expect("secret"),
        )
    }

    #[test]
    fn round_trip_and_forgeries() {
        let nonce = Nonce::new("AAAAAAAAAAAAAAAAAAAAAA").expect("nonce");
        let other = Nonce::new("BBBBBBBBBBBBBBBBBBBBBB").expect("nonce");
        let header = server_time_header(&key(1), &nonce, 1_700_000_000);
        assert_eq!(
            verify_server_time(header.as_bytes(), &key(1), &nonce),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify_server_time(header.as_bytes(), &key(2), &nonce).map_err(|e| e.code()),
            Err(ErrorCode::BadSignature)
        );
        assert_eq!(
            verify_server_time(header.as_bytes(), &key(1), &other).map_err(|e| e.code()),
            Err(ErrorCode::MalformedSignature)
        );
        let forged = header.replace("time=1700000000", "time=1600000000");
        assert_eq!(
            verify_server_time(forged.as_bytes(), &key(1), &nonce).map_err(|e| e.code()),
            Err(ErrorCode::BadSignature)
        );
    }
}
