//! Following a file: acting on it again whenever it changes, so that an
//! operator's edit (a key revoked in the keys file) takes effect in a
//! running server within a fraction of a second, with no restart or signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{reload_keys_file, MemoryKeyStore};

/// How often [`follow_keys_file`]'s callers check their file, as the
/// `tessera` command and the gateway do: a revocation written to the file
/// reaches requests within this time.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Calls `on_change` each time the file at `path` changes, checking every
/// `every`: its modification time or length differs from the last check's
/// (a file replaced by a rename counts, and so does one that appears or
/// disappears). Never returns: run it in a spawned task.
pub async fn follow_file(path: &Path, every: Duration, mut on_change: impl FnMut()) {
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(path);
    loop {
        tokio::time::sleep(every).await;
        let now = stamp(path);
        if now != seen {
            seen = now;
            on_change();
        }
    }
}

/// Keeps `store` equal to the keys file at `path`: each time the file
/// changes ([`follow_file`]) it is loaded again and replaces every key
/// ([`reload_keys_file`]), so a key marked `"revoked": true`, removed or
/// added takes effect within `every`. A file that cannot be loaded (a
/// half-written edit, a typo) is logged as an error naming the file and
/// the fault, never a secret, and the keys loaded before stay until the
/// next change. Never returns: spawn it.
pub async fn follow_keys_file(store: Arc<MemoryKeyStore>, path: PathBuf, every: Duration) {
    follow_file(&path, every, || match reload_keys_file(&store, &path) {
        Ok(count) => tracing::warn!(
            keys = count,
            file = %path.display(),
            "tessera: the keys file changed; its keys replace the ones loaded before"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "tessera: the keys file changed but cannot be used; the keys loaded before stay"
        ),
    })
    .await;
}
