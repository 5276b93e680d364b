//! Bounded strings stored inline, so ids and nonces parsed from a request
//! need no allocation.

use arrayvec::ArrayString;

/// `text` in zero-filled inline storage (copies then carry no stale stack
/// bytes in the unused tail), or `None` when it is longer than `N` bytes.
pub(crate) fn inline_str<const N: usize>(text: &str) -> Option<ArrayString<N>> {
    let mut inline = ArrayString::zero_filled();
    inline.clear();
    inline.try_push_str(text).ok()?;
    Some(inline)
}
