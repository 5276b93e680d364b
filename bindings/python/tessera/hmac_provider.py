"""A `MacProvider` on Python's `hmac` module: the platform-MAC mode without a platform.

Python has no hardware key store to hand the key to, so this provider is what a
Keystore or Keychain provider is on a phone: the object that computes
HMAC-SHA256 for `tessera_ffi.Signer.with_mac_provider`, keeping the key on the
Python side (for example a key loaded from a secrets manager, an HSM client or
a KMS wrapper with the same `mac` method).

Writing your own provider (any object with ``mac(message: bytes) -> bytes``):

- Return ``bytes``, 32 of them. UniFFI's generated code does not check the type
  of a callback's return value: a ``str`` of 32 characters is passed on as the
  first 32 bytes of its internal form, and the signature made from it is one
  every verifier refuses (``bad_signature``).
- Raise ``MacProviderError.Failed(reason)`` when the key cannot be used. Any
  other ``Exception`` is reported the same way, with its ``repr``. The text
  becomes ``TesseraError.detail`` (cut to 300 characters), which apps log: keep
  key material and the message (the signature base) out of it.
  ``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception``s: UniFFI prints
  "Exception ignored on calling ctypes callback", the interrupt is lost, and
  signing fails with ``mac_provider_failed`` ("... returned no bytes ...").
- Do not keep a reference from the provider to its own signer: the signer holds
  the provider through UniFFI's handle map, which Python's cycle collector does
  not see, so the pair would never be freed.

A secret given to ``tessera_ffi.Signer(key_id, secret)`` must be ``bytes``
(UniFFI's generated code refuses ``bytearray`` and ``memoryview`` with
"wrong type"); ``bytes`` cannot be cleared, so clear your own ``bytearray``
after passing ``bytes(buf)``, or keep the key here, in a provider.
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

