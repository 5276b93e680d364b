//! Keys held by the platform: the app's [`MacProvider`] computes the MAC
//! (Android Keystore through `javax.crypto.Mac`, iOS Keychain + CryptoKit,
//! Python's `hmac`), and the secret never crosses into Rust.
//!
//! Why a callback and not a two-phase `prepare()` → base, `finish(mac)` →
//! headers: with a callback the app cannot forget or reorder a step, cannot
//! finish a base with the MAC of another one, and the clock-skew challenge
//! (also a MAC) is checked by the same provider inside
//! [`Signer::apply_skew_challenge`] with no extra call. Everything else,
//! the base, the headers, the constant-time comparison of the challenge MAC,
//! stays in Rust, in the same code that signs with an in-Rust key
//! ([`tessera_core::MacKey`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{KeyId, MacError, MacKey, MAC_LEN};

use crate::{client_err, Signer, TesseraError};

/// Computes HMAC-SHA256 with a key the platform holds.
///
/// Implemented by the app (Kotlin: `JcaMacProvider` over `javax.crypto.Mac`;
/// Swift: `CryptoKitMacProvider`; Python: any object with a `mac` method).
/// The signer calls [`MacProvider::mac`] once per signed request, with the
/// signature base, and once per `clock_skew` challenge, with the challenge
/// message; it may call it from any thread, so the implementation must be
/// thread-safe (`javax.crypto.Mac` is not: create one per call).
#[uniffi::export(callback_interface)]
pub trait MacProvider: Send + Sync {
    /// The 32-byte HMAC-SHA256 tag of `message` under the platform key.
    ///
    /// # Errors
    /// [`MacProviderError::Failed`] when the platform cannot compute it (key
    /// deleted or invalidated, device locked, key store error). Any other
    /// exception the provider throws is reported the same way, with its
    /// text. That text (cut to 300 characters) becomes the error's
    /// `detail`, which apps log: keep key material and the message (it is
    /// the signature base) out of the provider's exceptions.
    ///
    /// Return the tag as the platform's byte type (`ByteArray`, `Data`,
    /// Python `bytes`): a Python provider that returns a `str` is not
    /// caught by UniFFI's generated code and signs garbage, which every
    /// verifier refuses as `bad_signature`.
    fn mac(&self, message: Vec<u8>) -> Result<Vec<u8>, MacProviderError>;
}

/// The error a [`MacProvider`] throws.
///
/// Kotlin: `MacProviderException.Failed(reason)`; Swift:
/// `MacProviderError.Failed(reason:)`; Python: `MacProviderError.Failed(reason)`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum MacProviderError {
    /// The platform could not compute the MAC.
    #[error("{reason}")]
    Failed {
        /// Why, safe to log: never key material.
        reason: String,
    },
}

/// An exception of another type thrown by the foreign provider, or a return
/// value UniFFI could not read: UniFFI hands either over as text, and it is
/// reported as a failure of the provider that says which it may be.
///
/// A Python provider interrupted by `KeyboardInterrupt` or `SystemExit`
/// (which are not `Exception`s) ends the callback with nothing returned;
/// UniFFI then reports only that the return buffer was empty.
impl From<uniffi::UnexpectedUniFFICallbackError> for MacProviderError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        MacProviderError::Failed {
            reason: format!(
                "it raised an exception other than MacProviderError, or returned no bytes (in Python, an interrupt such as KeyboardInterrupt ends the call this way): {}",
                e.reason
            ),
        }
    }
}

/// The most of a provider's own reason kept in an error: the text is the
/// app's (an exception message), so it is cut to a size fit for a log line.
const MAX_REASON_CHARS: usize = 300;

/// `reason` cut to [`MAX_REASON_CHARS`] characters, saying how much was cut.
fn bounded(reason: String) -> String {
    match reason.char_indices().nth(MAX_REASON_CHARS) {
        None => reason,
        Some((end, _)) => format!(
            "{}… ({} more bytes cut)",
            &reason[..end],
            reason.len() - end
        ),
    }
}

/// A [`MacKey`] whose MAC the foreign [`MacProvider`] computes.
struct PlatformKey {
    id: KeyId,
    provider: Box<dyn MacProvider>,
}

impl fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformKey")
            .field("id", &self.id)
            .field("provider", &"MacProvider")
            .finish()
    }
}

impl MacKey for PlatformKey {
    fn key_id(&self) -> &KeyId {
        &self.id
    }

    fn tag(&self, message: Vec<u8>) -> Result<[u8; MAC_LEN], MacError> {
        match self.provider.mac(message) {
            Ok(tag) => MacError::check_len(&tag),
            Err(MacProviderError::Failed { reason }) => Err(MacError::Failed {
                reason: bounded(reason),
            }),
        }
    }
}

#[uniffi::export]
impl Signer {
    /// A signer for `key_id` whose MAC `provider` computes: the secret stays
    /// in the platform's key store (Android Keystore, iOS Keychain) and
    /// never enters app or Rust memory.
    ///
    /// Rust builds each signature base and the headers exactly as
    /// [`Signer::new`] does with the secret; the provider only computes
    /// HMAC-SHA256 over the bytes it is given. It also computes the MAC a
    /// `clock_skew` challenge is checked against (compared in Rust, in
    /// constant time). `covered_headers`, `expires_after_secs` and `covered_headers_required` as for
    /// [`Signer::new`].
    ///
    /// # Errors
    /// As [`Signer::new`] (`invalid_parameter` for a bad key id, the
    /// covered-header codes). Later, [`TesseraError::MacFailed`] from
    /// every signing call when the provider fails or returns a tag that is
    /// not 32 bytes; nothing is signed then.
    #[uniffi::constructor(default(
        covered_headers = [],
        expires_after_secs = None,
        covered_headers_required = false
    ))]
    pub fn with_mac_provider(
        key_id: String,
        provider: Box<dyn MacProvider>,
        covered_headers: Vec<String>,
        expires_after_secs: Option<u32>,
        covered_headers_required: bool,
    ) -> Result<Arc<Self>, TesseraError> {
        // Spec §10 step 2 order, as `Signer::new`: the components, then the key id.
        tessera_core::parse_cover(&covered_headers).map_err(TesseraError::config)?;
        let id = KeyId::new(key_id).map_err(TesseraError::config)?;
        let mut builder = crate::cover(
            tessera_client::Signer::builder_with_key(Arc::new(PlatformKey { id, provider })),
            &covered_headers,
            covered_headers_required,
        );
        if let Some(secs) = expires_after_secs {
            builder = builder.expires_after(Duration::from_secs(secs.into()));
        }
        let inner = builder.build().map_err(client_err)?;
        Ok(Arc::new(Signer { inner }))
    }
}
