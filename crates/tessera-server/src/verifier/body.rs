//! Step 7: reading the body under the size limit while hashing it.

use std::pin::pin;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tessera_core::{BodyDigest, BodyHasher, Refusal};

use crate::BoxError;

/// Reads `body` completely, refusing more than `limit` bytes, and returns the
/// bytes (to hand on to the application) with their SHA-256.
///
/// `declared` is the `Content-Length`, if any: a body announced as too large
/// is refused before a byte is read.
pub(crate) async fn collect<B>(
    body: B,
    limit: usize,
    declared: Option<u64>,
) -> Result<(Bytes, BodyDigest), Refusal>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit64) || body.size_hint().lower() > limit64 {
        return Err(too_large(limit));
    }
    let mut body = pin!(body);
    let mut hasher = BodyHasher::new();
    let mut collected = Collected::Empty;
    let mut len = 0usize;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // The digest cannot match a body that was not received whole.
                let e: BoxError = e.into();
                tracing::debug!(error = %e, "tessera: the request body could not be read");
                return Err(Refusal::BodyUnreadable);
            }
        };
        // Trailers are not covered by the signature and are dropped.
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        len = len.saturating_add(chunk.len());
        if len > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        collected.push(chunk);
    }
    let digest = if len == 0 {
        BodyDigest::EMPTY
    } else {
        hasher.finish()
    };
    Ok((collected.into_bytes(), digest))
}

/// The body [`crate::Verifier`]'s procedure reads: streamed, or already
/// in memory ([`crate::Verifier::verify_bytes`]).
pub(crate) enum Input<B> {
    Stream(B),
    Bytes(Bytes),
}

/// [`collect`] for a body already in memory: the same checks (the
/// declared length, then the length) and the same digest, without going
/// through frames.
pub(crate) fn in_memory(
    bytes: Bytes,
    limit: usize,
    declared: Option<u64>,
) -> Result<(Bytes, BodyDigest), Refusal> {
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit64) || bytes.len() > limit {
        return Err(too_large(limit));
    }
    let digest = if bytes.is_empty() {
        BodyDigest::EMPTY
    } else {
        BodyDigest::of(&bytes)
    };
    Ok((bytes, digest))
}

fn too_large(limit: usize) -> Refusal {
    Refusal::BodyTooLarge {
        limit: u64::try_from(limit).unwrap_or(u64::MAX),
    }
}

/// Avoids copying in the common case of a body that arrives in one chunk.
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Collected::Empty) {
            Collected::Empty => Collected::One(chunk),
            Collected::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + chunk.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&chunk);
                Collected::Many(buf)
            }
            Collected::Many(mut buf) => {
                buf.extend_from_slice(&chunk);
                Collected::Many(buf)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Collected::Empty => Bytes::new(),
            Collected::One(bytes) => bytes,
            Collected::Many(buf) => buf.freeze(),
        }
    }
}
