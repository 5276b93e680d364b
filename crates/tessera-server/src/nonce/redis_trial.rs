//! The start-up trial of the Redis nonce store: every command the store
//! sends later, sent once at connection, so that a Redis user without the
//! right to run one is refused there (`Refused`, with the permissions the
//! store needs) instead of every request failing closed afterwards.
//!
//! `PING` and `SET` on the epoch keys have already passed by then (the
//! connection and the epoch writes); this adds `SCRIPT LOAD` (a user that
//! may run a cached script but not load one would fail after the next
//! restart of Redis), the check script itself through `EVALSHA` (and the
//! `GET` and `SET` it runs) and `EXISTS`, on every primary of a cluster
//! (users are set node by node; as at connection, replicas need not
//! answer), and for one endpoint the epoch-raising script through `EVAL`.

use std::time::Duration;

use redis::RedisError;

use super::redis_cluster::key_slot;
use super::redis_connection::{start_up_failed, RedisConnection};
use super::redis_store::{
    epoch_key_of_tag, scrub_secret, RedisStoreError, RedisStoreErrorKind, CHECK_SCRIPT,
    RAISE_EPOCH_SCRIPT,
};

/// What the store's Redis user needs, for the error of a refused trial
/// (and the store's documentation says the same).
const NEEDED: &str = "+evalsha +eval +script|load +get +set +exists +ping \
                      (and +cluster|slots on a Redis Cluster, +config|get for the settings check)";

/// A trial pair's key lives this long, milliseconds.
const TRIAL_TTL_MS: u64 = 1000;

/// Runs the trial over `connection`; `since` is the epoch written at
/// start-up (what the check script writes should the tag's epoch have
/// vanished meanwhile), `within` the bound on each step.
pub(super) async fn run(
    connection: &RedisConnection,
    prefix: &str,
    target: &str,
    password: Option<&str>,
    since: u64,
    within: Duration,
) -> Result<(), RedisStoreError> {
    let failed = |what: &str, e: &RedisError| {
        let detail = scrub_secret(&e.to_string(), password);
        let mut message = format!("cannot use Redis at {target}: {what}: {detail}");
        if super::redis_connection::is_redis_refusal(e) {
            message.push_str(&format!(
                "; the nonce store's Redis user needs {NEEDED} on keys ~{prefix}:*"
            ));
        }
        start_up_failed(e, message)
    };
    let timed_out = |what: &str| {
        RedisStoreError::new(
            RedisStoreErrorKind::Connect,
            format!(
                "cannot use Redis at {target}: {what}: no answer within {} ms",
                within.as_millis()
            ),
        )
    };
    let mut connection = connection.clone();
    let tags = tokio::time::timeout(within, connection.hash_tag_per_primary())
        .await
        .map_err(|_| timed_out("CLUSTER SLOTS"))?
        .map_err(|e| failed("CLUSTER SLOTS", &e))?;
    let single = tags.is_none();
    let script = redis::Script::new(CHECK_SCRIPT);
    for tag in tags.unwrap_or_else(|| vec![0]) {
        let epoch_key = epoch_key_of_tag(prefix, u32::from(tag));
        // Loaded on this primary alone: the `redis` crate sends a `SCRIPT
        // LOAD` of its own to every node, replicas too, and waits for all.
        let load = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(CHECK_SCRIPT)
            .to_owned();
        let what = format!("SCRIPT LOAD of the check script on hash tag {tag:03x}");
        let slot = key_slot(epoch_key.as_bytes());
        tokio::time::timeout(within, connection.on_primary_of(slot, load))
            .await
            .map_err(|_| timed_out(&what))?
            .map_err(|e| failed(&what, &e))?;
        // A key no check can name (checks' keys end in a SHA-256), of its
        // own: one another instance's trial wrote would skip the `SET`.
        let key = format!(
            "{prefix}:{{{tag:03x}}}:trial:{:016x}",
            rand::random::<u64>()
        );
        let mut check = script.prepare_invoke();
        // Dated far after any epoch, so that the script reaches its `SET`.
        check
            .key(&key)
            .key(&epoch_key)
            .arg(TRIAL_TTL_MS)
            .arg(u64::from(u32::MAX))
            .arg(since);
        let what = format!("the check script (EVALSHA) on hash tag {tag:03x}");
        let reply = tokio::time::timeout(within, check.invoke_async::<(i64, u64)>(&mut connection))
            .await
            .map_err(|_| timed_out(&what))?
            .map_err(|e| failed(&what, &e))?;
        if reply.0 != 1 {
            return Err(RedisStoreError::new(
                RedisStoreErrorKind::Connect,
                format!(
                    "cannot use Redis at {target}: {what} answered {} for a new key, not 1",
                    reply.0
                ),
            ));
        }
        let exists = redis::cmd("EXISTS").arg(&key).to_owned();
        let what = format!("EXISTS on hash tag {tag:03x}");
        tokio::time::timeout(within, exists.query_async::<u64>(&mut connection))
            .await
            .map_err(|_| timed_out(&what))?
            .map_err(|e| failed(&what, &e))?;
    }
    if single {
        // The epoch raise after a settings change (one endpoint only),
        // asked to raise nothing: `since` 0 writes no epoch.
        let raise = redis::cmd("EVAL")
            .arg(RAISE_EPOCH_SCRIPT)
            .arg(1)
            .arg(epoch_key_of_tag(prefix, 0))
            .arg(0)
            .to_owned();
        let what = "the epoch script (EVAL)";
        tokio::time::timeout(within, raise.query_async::<i64>(&mut connection))
            .await
            .map_err(|_| timed_out(what))?
            .map_err(|e| failed(what, &e))?;
    }
    Ok(())
}
