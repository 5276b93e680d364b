//! The start-up checks of a Redis that is to hold nonces: its eviction
//! policy and its persistence, read with `CONFIG GET` and judged the same
//! way for one endpoint and for each primary of a cluster.
//!
//! Both guard the same promise: a pair Redis has recorded is answered
//! `replayed` for as long as it lives, or else the store knows it forgot
//! (its epoch keys went with the pairs) and refuses what was signed before.
//! An eviction drops a live pair and keeps the epoch; so does a restart
//! from persistence that lost the last writes (an RDB snapshot, or an
//! append-only file not synced on every write): the restored epoch vouches
//! for pairs that are gone, and a replay of one is accepted once.

use super::redis_store::{RedisStoreError, RedisStoreErrorKind};

/// What the application accepts despite the risk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Allowed {
    /// An eviction policy other than `noeviction`.
    pub(super) evicting_policy: bool,
    /// Persistence that can restore epochs without the last pairs.
    pub(super) lossy_persistence: bool,
}

/// The settings read, one `CONFIG GET` each (Redis before 7 takes one name
/// per call).
pub(super) const SETTINGS: [&str; 7] = [
    "maxmemory-policy",
    "save",
    "appendonly",
    "appendfsync",
    "repl-diskless-sync",
    "repl-diskless-load",
    "rdb-del-sync-files",
];

/// `CONFIG GET <name>`.
pub(super) fn setting_query(name: &str) -> redis::Cmd {
    let mut query = redis::cmd("CONFIG");
    query.arg("GET").arg(name);
    query
}

/// The value in a reply to [`setting_query`] (`[name, value]`).
pub(super) fn value_in(reply: &[String]) -> Option<&str> {
    match reply {
        [_, value] => Some(value.as_str()),
        _ => None,
    }
}

/// One server's settings; `None` where a value could not be read (`CONFIG`
/// is often disabled on managed Redis).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) maxmemory_policy: Option<String>,
    pub(super) save: Option<String>,
    pub(super) appendonly: Option<String>,
    pub(super) appendfsync: Option<String>,
    pub(super) repl_diskless_sync: Option<String>,
    pub(super) repl_diskless_load: Option<String>,
    pub(super) rdb_del_sync_files: Option<String>,
}

impl Settings {
    /// Records the value read for `name` (one of [`SETTINGS`]).
    pub(super) fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match name {
            "maxmemory-policy" => self.maxmemory_policy = value,
            "save" => self.save = value,
            "appendonly" => self.appendonly = value,
            "appendfsync" => self.appendfsync = value,
            "repl-diskless-sync" => self.repl_diskless_sync = value,
            "repl-diskless-load" => self.repl_diskless_load = value,
            "rdb-del-sync-files" => self.rdb_del_sync_files = value,
            _ => {}
        }
    }
}

/// The verdict on one server (`node`: its address, for a cluster).
pub(super) fn judge(
    target: &str,
    node: Option<&str>,
    settings: &Settings,
    allowed: Allowed,
) -> Result<(), RedisStoreError> {
    judge_eviction_policy(
        target,
        node,
        settings.maxmemory_policy.as_deref(),
        allowed.evicting_policy,
    )?;
    judge_persistence(target, node, settings, allowed.lossy_persistence)
}

fn at(node: Option<&str>) -> String {
    node.map(|node| format!(" (node {node})"))
        .unwrap_or_default()
}

/// `noeviction` passes; another policy is an error unless `allow` (then a
/// warning); an unreadable one is a warning.
pub(super) fn judge_eviction_policy(
    target: &str,
    node: Option<&str>,
    policy: Option<&str>,
    allow: bool,
) -> Result<(), RedisStoreError> {
    let node_name = node.unwrap_or("");
    match policy {
        Some("noeviction") => Ok(()),
        Some(policy) if allow => {
            tracing::warn!(
                redis = %target,
                node = node_name,
                maxmemory_policy = %policy,
                "tessera: Redis may evict live nonces under memory pressure, letting replays through (allowed by configuration); set maxmemory-policy noeviction"
            );
            Ok(())
        }
        Some(policy) => Err(RedisStoreError::new(
            RedisStoreErrorKind::EvictionPolicy,
            format!(
                "refusing Redis at {target}{}: its maxmemory-policy is {policy}, which may \
                 evict live nonces and let replays through; set maxmemory-policy noeviction \
                 (or, if Redis can never reach maxmemory, allow it explicitly: allow_evicting_policy, \
                 in the gateway [nonce_store] allow_evicting_policy = true)",
                at(node)
            ),
        )),
        None => {
            tracing::warn!(
                redis = %target,
                node = node_name,
                "tessera: could not read Redis maxmemory-policy (CONFIG is disabled?); make sure it is noeviction, or evicted nonces let replays through"
            );
            Ok(())
        }
    }
}

/// What a restart of this Redis keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Persistence {
    /// Nothing (`save ""`, `appendonly no`): the epoch keys go with the
    /// pairs, and the store refuses what was signed before the loss.
    Off,
    /// Every acknowledged write (`appendonly yes`, `appendfsync always`).
    Lossless,
    /// The epoch keys without the last pairs: why.
    Lossy(String),
    /// The settings could not be read.
    Unknown,
}

/// Classifies `settings` (see [`Persistence`]). With `appendonly yes`
/// Redis restores from the append-only file and ignores snapshots.
pub(super) fn persistence(settings: &Settings) -> Persistence {
    match settings.appendonly.as_deref() {
        Some("yes") => match settings.appendfsync.as_deref() {
            Some("always") => Persistence::Lossless,
            Some(sync) => Persistence::Lossy(format!(
                "appendonly yes with appendfsync {sync} can lose the last writes in a restart \
                 while keeping the epoch keys"
            )),
            None => Persistence::Unknown,
        },
        Some(_) => match settings.save.as_deref() {
            Some(save) if save.trim().is_empty() => replication_files(settings),
            Some(save) => Persistence::Lossy(format!(
                "RDB snapshots are on (save \"{save}\"): a restart restores the epoch keys \
                 without the pairs recorded after the last snapshot"
            )),
            None => Persistence::Unknown,
        },
        None => Persistence::Unknown,
    }
}

/// Without snapshots or an append-only file, Redis still writes RDB files
/// for replication, and a restart loads one: the epoch keys without the
/// pairs recorded since. A primary writes one to feed a replica's full
/// resync unless it streams it (`repl-diskless-sync yes`); a replica writes
/// the one it receives unless it loads it from the socket, which only
/// `repl-diskless-load swapdb` does whatever the replica holds
/// (`on-empty-db` writes the file when the replica has data, the usual
/// case at a resync after a failover), and the node judged here may have
/// been a replica before a failover promoted it. `rdb-del-sync-files yes`
/// deletes both files once used.
fn replication_files(settings: &Settings) -> Persistence {
    let streamed = settings.repl_diskless_sync.as_deref();
    let loaded = settings.repl_diskless_load.as_deref();
    let deleted = settings.rdb_del_sync_files.as_deref();
    if deleted == Some("yes") {
        return Persistence::Off;
    }
    let primary_writes = streamed.map(|v| v != "yes");
    let replica_writes = loaded.map(|v| v != "swapdb");
    match (primary_writes, replica_writes, deleted) {
        (Some(false), Some(false), _) => Persistence::Off,
        (Some(true), _, Some(_)) => Persistence::Lossy(
            "snapshots are off, but a full resync of a replica writes an RDB file \
             (repl-diskless-sync no, rdb-del-sync-files no) that a restart loads: the epoch keys \
             without the pairs recorded since"
                .to_owned(),
        ),
        (_, Some(true), Some(_)) => Persistence::Lossy(format!(
            "snapshots are off, but as a replica this server keeps the RDB file of a full resync \
             (repl-diskless-load {}, rdb-del-sync-files no), which a restart after a failover \
             promoted it loads: the epoch keys without the pairs recorded since; set \
             rdb-del-sync-files yes",
            loaded.unwrap_or_default()
        )),
        _ => Persistence::Unknown,
    }
}

/// Persistence off or lossless passes; lossy is an error unless `allow`
/// (then a warning); unreadable is a warning.
fn judge_persistence(
    target: &str,
    node: Option<&str>,
    settings: &Settings,
    allow: bool,
) -> Result<(), RedisStoreError> {
    let node_name = node.unwrap_or("");
    match persistence(settings) {
        Persistence::Off | Persistence::Lossless => Ok(()),
        Persistence::Lossy(why) if allow => {
            tracing::warn!(
                redis = %target,
                node = node_name,
                "tessera: {why}, so after a restart a replay of those pairs is accepted once (allowed by configuration); turn persistence off (save \"\", appendonly no, rdb-del-sync-files yes) or make it lossless (appendonly yes, appendfsync always)"
            );
            Ok(())
        }
        Persistence::Lossy(why) => Err(RedisStoreError::new(
            RedisStoreErrorKind::Persistence,
            format!(
                "refusing Redis at {target}{}: {why}, so after a restart a replay of those pairs \
                 would be accepted once; turn persistence off (save \"\", appendonly no and \
                 rdb-del-sync-files yes: a restart then loses the epoch keys too, and the store refuses what was signed \
                 before it) or make it lossless (appendonly yes with appendfsync always), or \
                 accept the risk explicitly: allow_lossy_persistence, in the gateway \
                 [nonce_store] allow_lossy_persistence = true",
                at(node)
            ),
        )),
        Persistence::Unknown => {
            tracing::warn!(
                redis = %target,
                node = node_name,
                "tessera: could not read Redis persistence settings (CONFIG is disabled?); make sure a restart cannot restore the epoch keys without the last pairs (save \"\" and appendonly no, or appendonly yes with appendfsync always)"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(save: &str, appendonly: &str, appendfsync: &str) -> Settings {
        Settings {
            maxmemory_policy: Some("noeviction".to_owned()),
            save: Some(save.to_owned()),
            appendonly: Some(appendonly.to_owned()),
            appendfsync: Some(appendfsync.to_owned()),
            // Redis 7's replication defaults, but with the replica's
            // sync files deleted.
            repl_diskless_sync: Some("yes".to_owned()),
            repl_diskless_load: Some("disabled".to_owned()),
            rdb_del_sync_files: Some("yes".to_owned()),
        }
    }

    #[test]
    fn only_noeviction_passes_the_eviction_policy_check_unless_allowed() {
        assert!(judge_eviction_policy("redis://r", None, Some("noeviction"), false).is_ok());
        for policy in [
            "allkeys-lru",
            "volatile-lru",
            "volatile-ttl",
            "allkeys-random",
        ] {
            let refused =
                judge_eviction_policy("redis://r", Some("10.0.0.2:6379"), Some(policy), false)
                    .expect_err(policy);
            assert_eq!(refused.kind(), RedisStoreErrorKind::EvictionPolicy);
            let message = refused.to_string();
            assert!(
                message.contains(policy) && message.contains("10.0.0.2:6379"),
                "{message}"
            );
            assert!(
                message.contains("set maxmemory-policy noeviction"),
                "{message}"
            );
            assert!(judge_eviction_policy("redis://r", None, Some(policy), true).is_ok());
        }
        // Unreadable (CONFIG disabled): a warning, not a refusal.
        assert!(judge_eviction_policy("redis://r", None, None, false).is_ok());
    }

    #[test]
    fn only_persistence_that_keeps_every_pair_or_none_passes_unless_allowed() {
        let strict = Allowed::default();
        // Off, and lossless (an append-only file wins over snapshots).
        for ok in [
            settings("", "no", "everysec"),
            settings("  ", "no", "everysec"),
            settings("3600 1 300 100 60 10000", "yes", "always"),
        ] {
            assert!(judge("redis://r", None, &ok, strict).is_ok(), "{ok:?}");
        }
        // Redis's defaults (snapshots on), and an append-only file synced
        // once a second or by the kernel.
        for (lossy, names) in [
            (
                settings("3600 1 300 100 60 10000", "no", "everysec"),
                "save \"3600 1 300 100 60 10000\"",
            ),
            (settings("", "yes", "everysec"), "appendfsync everysec"),
            (settings("", "yes", "no"), "appendfsync no"),
        ] {
            let refused = judge("redis://r", Some("10.0.0.3:6379"), &lossy, strict)
                .expect_err("lossy persistence");
            assert_eq!(refused.kind(), RedisStoreErrorKind::Persistence);
            let message = refused.to_string();
            assert!(
                message.contains(names)
                    && message.contains("10.0.0.3:6379")
                    && message.contains("allow_lossy_persistence"),
                "{message}"
            );
            let allowed = Allowed {
                lossy_persistence: true,
                ..Allowed::default()
            };
            assert!(judge("redis://r", None, &lossy, allowed).is_ok());
        }
        // No snapshots, but a replica's full resync written to disk and kept
        // (Redis 6's defaults): refused; streamed or deleted afterwards: off.
        let mut resync = settings("", "no", "everysec");
        resync.rdb_del_sync_files = Some("no".to_owned());
        resync.repl_diskless_sync = Some("no".to_owned());
        let refused = judge("redis://r", None, &resync, strict).expect_err("resync file");
        assert!(
            refused.to_string().contains("repl-diskless-sync no"),
            "{refused}"
        );
        // Redis 7's defaults: the primary streams, but a replica keeps the
        // file it received, and a failover may promote that replica.
        resync.repl_diskless_sync = Some("yes".to_owned());
        let refused = judge("redis://r", None, &resync, strict).expect_err("replica's file");
        assert!(
            refused.to_string().contains("repl-diskless-load disabled")
                && refused.to_string().contains("rdb-del-sync-files yes"),
            "{refused}"
        );
        // `on-empty-db` loads from the socket only into an empty replica:
        // one that holds data writes the file.
        resync.repl_diskless_load = Some("on-empty-db".to_owned());
        assert!(matches!(persistence(&resync), Persistence::Lossy(_)));
        // Loaded from the socket on both sides, whatever the replica holds.
        resync.repl_diskless_load = Some("swapdb".to_owned());
        assert_eq!(persistence(&resync), Persistence::Off);
        resync.repl_diskless_load = Some("disabled".to_owned());
        resync.rdb_del_sync_files = Some("yes".to_owned());
        assert_eq!(persistence(&resync), Persistence::Off);
        resync.rdb_del_sync_files = None;
        assert_eq!(persistence(&resync), Persistence::Unknown);
        // Unreadable: a warning, not a refusal.
        assert_eq!(persistence(&Settings::default()), Persistence::Unknown);
        assert!(judge("redis://r", None, &Settings::default(), strict).is_ok());
        // The eviction policy is judged too.
        let mut evicting = settings("", "no", "everysec");
        evicting.maxmemory_policy = Some("allkeys-lru".to_owned());
        assert_eq!(
            judge("redis://r", None, &evicting, strict)
                .expect_err("evicting")
                .kind(),
            RedisStoreErrorKind::EvictionPolicy
        );
    }

    #[test]
    fn settings_are_taken_from_config_get_replies() {
        let mut read = Settings::default();
        for name in SETTINGS {
            let reply = vec![name.to_owned(), format!("value of {name}")];
            read.set(name, value_in(&reply));
        }
        assert_eq!(read.save.as_deref(), Some("value of save"));
        assert_eq!(
            read.maxmemory_policy.as_deref(),
            Some("value of maxmemory-policy")
        );
        read.set("appendonly", value_in(&[]));
        assert_eq!(read.appendonly, None, "an empty reply is unreadable");
    }
}
