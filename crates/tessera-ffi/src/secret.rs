//! [`SecretBytes`]: a byte-array argument whose FFI transfer buffer is zeroized.

use uniffi::{Lift, RustBuffer, TypeId};
use zeroize::{Zeroize, Zeroizing};

use crate::UniFfiTag;

/// Secret bytes received from foreign code.
///
/// On the foreign side this is an ordinary byte array (`ByteArray`, `Data`,
/// `bytes`): its type metadata is that of `Vec<u8>`, so the generated
/// bindings are identical. The difference is on the Rust side: UniFFI's
/// built-in `Vec<u8>` lift frees the transfer buffer without clearing it,
/// leaving a copy of the secret in freed heap memory. This lift copies the
/// bytes straight into a [`Zeroizing`] vector and zeroizes the transfer
/// buffer (its whole capacity) before freeing it.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// The bytes, still zeroized on drop.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

fn read(buf: &mut &[u8]) -> uniffi::Result<SecretBytes> {
    // The wire format of a byte sequence: a big-endian i32 count, then the bytes.
    let Some((len, rest)) = buf.split_first_chunk::<4>() else {
        uniffi::deps::anyhow::bail!("secret: buffer too short for its length");
    };
    let len = usize::try_from(i32::from_be_bytes(*len))?;
    if rest.len() < len {
        uniffi::deps::anyhow::bail!("secret: buffer shorter than its length");
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(&rest[..len]);
    *buf = &rest[len..];
    Ok(SecretBytes(out))
}

// SAFETY: the FFI type and the serialized form are exactly those of
// `Vec<u8>` (a RustBuffer holding an i32 count and the bytes), whose type
// metadata this type reuses, so the foreign bindings write what this reads.
unsafe impl Lift<UniFfiTag> for SecretBytes {
    type FfiType = RustBuffer;

    fn try_lift(v: RustBuffer) -> uniffi::Result<Self> {
        let mut transfer = v.destroy_into_vec();
        let result = {
            let mut buf = transfer.as_slice();
            read(&mut buf).and_then(|secret| {
                if buf.is_empty() {
                    Ok(secret)
                } else {
                    Err(uniffi::deps::anyhow::anyhow!(
                        "secret: junk data left in buffer"
                    ))
                }
            })
        };
        // Clears the length-prefixed copy and any spare capacity.
        transfer.zeroize();
        result
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<Self> {
        read(buf)
    }
}

impl TypeId<UniFfiTag> for SecretBytes {
    const TYPE_ID_META: uniffi::MetadataBuffer = <Vec<u8> as TypeId<UniFfiTag>>::TYPE_ID_META;
}
