"""A `MacProvider` on Python's `hmac` module: the platform-MAC mode without a platform.

Python has no hardware key store to hand the key to, so this provider is what a
Keystore or Keychain provider is on a phone: the object that computes
HMAC-SHA256 for `tessera_ffi.Signer.with_mac_provider`, keeping the key on the
Python side (for example a key loaded from a secrets manager, an HSM client or
a KMS wrapper with the same `mac` method).
"""
import hashlib
import hmac


class HmacProvider:
    """HMAC-SHA256 under `key` (bytes), computed by `hmac` for the Rust signer.

    ``Signer.with_mac_provider(key_id, HmacProvider(secret), ["content-type"])``
    signs exactly as ``Signer(key_id, secret, ["content-type"])``; the secret
    never crosses into Rust. Any exception raised here makes signing fail with
    ``TesseraError.MacFailed`` (code ``mac_provider_failed``): nothing is signed.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes):
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError("the HMAC key must be bytes")
        self._key = bytes(key)

    def mac(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "HmacProvider(<key redacted>)"

