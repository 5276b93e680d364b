//! Connecting [`RedisNonceStore`](super::RedisNonceStore) to a Redis
//! Cluster: the node list (or a `redis+cluster://` URL), the start-up
//! checks, and the epoch keys of every tag, each written on the primary
//! that owns its slot.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{stream, StreamExt, TryStreamExt};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{RedisError, Value};

use super::redis_down_slots::Range;
use super::redis_settings::{judge, setting_query, value_in, Allowed, Settings, SETTINGS};
use super::redis_store::{
    epoch_key_of_tag, redact_url, scrub_secret, url_password, RedisStoreError, RedisStoreErrorKind,
    TAGS,
};

/// Epoch `SET NX` commands in flight at once when they go one by one (the
/// cluster connection multiplexes them over one socket per primary).
const EPOCH_WRITES_IN_FLIGHT: usize = 256;
/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The schemes of a cluster URL: `redis+cluster://[user:pass@]h1:p1,h2:p2`.
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// The node URLs of a `redis+cluster://` or `rediss+cluster://` URL, `None`
/// for any other URL.
///
/// `redis+cluster://:pw@h1:7000,h2:7001` gives `redis://:pw@h1:7000/` and
/// `redis://:pw@h2:7001/`. A path other than `/` or `/0` is refused: a
/// cluster has database 0 only.
pub(super) fn cluster_url_nodes(url: &str) -> Option<Result<Vec<String>, RedisStoreError>> {
    let (rest, node_scheme) = CLUSTER_SCHEMES
        .iter()
        .find_map(|(scheme, node)| Some((url.strip_prefix(scheme)?, *node)))?;
    let invalid = |why: &str| {
        RedisStoreError::new(
            RedisStoreErrorKind::InvalidUrl,
            format!(
                "invalid Redis Cluster URL {}: {why}",
                crate::redact_url(url)
            ),
        )
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !matches!(path, "" | "/" | "/0") {
        return Some(Err(invalid(
            "a cluster has database 0 only; give no path and no query",
        )));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|host| format!("{node_scheme}{userinfo}{host}/"))
        .collect();
    if hosts.split(',').any(str::is_empty) {
        return Some(Err(invalid("empty host in the node list")));
    }
    Some(Ok(nodes))
}

/// How the store names a cluster in errors and logs: its node URLs,
/// passwords replaced by `***`.
pub(super) fn cluster_target(nodes: &[String]) -> String {
    let shown: Vec<String> = nodes.iter().map(|n| redact_url(n)).collect();
    format!("Redis Cluster [{}]", shown.join(", "))
}

/// The password of the nodes (a cluster client uses one for all of them).
pub(super) fn cluster_password(nodes: &[String]) -> Option<String> {
    nodes.iter().find_map(|n| url_password(n))
}

/// Connects to the cluster of `nodes` and checks every primary answers
/// `PING`. `target` names the cluster in errors (passwords redacted);
/// `password` is scrubbed from the client's messages.
pub(super) async fn open(
    nodes: &[String],
    target: &str,
    password: Option<&str>,
    response_timeout: Duration,
    connect_timeout: Duration,
) -> Result<ClusterConnection, RedisStoreError> {
    let scrub = |e: &RedisError| scrub_secret(&e.to_string(), password);
    if nodes.is_empty() {
        return Err(RedisStoreError::new(
            RedisStoreErrorKind::InvalidUrl,
            "a Redis Cluster needs at least one node URL".to_owned(),
        ));
    }
    #[cfg(feature = "redis-tls")]
    super::redis_store::install_crypto_provider();
    let client = ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(connect_timeout)
        // Per attempt and overall (retries, MOVED/ASK redirections
        // included); the stores also put their own timeout around a call.
        .response_timeout(response_timeout)
        .retries(3)
        .min_retry_wait(20)
        .max_retry_wait(500)
        .build()
        .map_err(|e| {
            RedisStoreError::new(
                RedisStoreErrorKind::InvalidUrl,
                format!("invalid Redis Cluster {target}: {}", scrub(&e)),
            )
        })?;
    let connect_failed = |detail: String| {
        RedisStoreError::new(
            RedisStoreErrorKind::Connect,
            format!("cannot connect to {target}: {detail}"),
        )
    };
    let failed = |e: &redis::RedisError| {
        if super::redis_connection::is_redis_refusal(e) {
            RedisStoreError::new(
                RedisStoreErrorKind::Refused,
                format!("{target} refused the connection: {}", scrub(e)),
            )
        } else {
            connect_failed(scrub(e))
        }
    };
    let bounded = connect_timeout.saturating_mul(2);
    let mut connection = match tokio::time::timeout(bounded, client.get_async_connection()).await {
        Err(_) => return Err(connect_failed("timed out".to_owned())),
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            // The client reports one seed's error: a refusal from an
            // address no longer the cluster's while its nodes are down is
            // an outage that passes, not a configuration to fix.
            if super::redis_connection::is_redis_refusal(&e) {
                if let Some(seed) = unanswered_seed(nodes, connect_timeout).await {
                    return Err(connect_failed(format!(
                        "{}; and {seed} did not answer",
                        scrub(&e)
                    )));
                }
            }
            return Err(failed(&e));
        }
    };

    // PING goes to every primary and succeeds only if all of them answer:
    // a slot range without a reachable primary is noticed now, not as 503s.
    let pong = tokio::time::timeout(
        bounded,
        redis::cmd("PING").query_async::<String>(&mut connection),
    )
    .await
    .map_err(|_| connect_failed("PING timed out".to_owned()))?
    .map_err(|e| failed(&e))?;
    if pong != "PONG" {
        return Err(connect_failed(format!("unexpected PING reply {pong:?}")));
    }
    Ok(connection)
}

/// The first seed of `nodes` that does not answer (shown redacted), `None`
/// when every seed answers: when each of them refuses, the refusal is the
/// cluster's. Asked only after the cluster client was refused; the seeds
/// are tried at once, so this takes one connect attempt however many they
/// are. (A seed whose name does not resolve counts as not answering too:
/// a wrong password then reads as an outage, with the refusal in its
/// message, rather than an outage as a refusal that no restart retries.)
async fn unanswered_seed(nodes: &[String], connect_timeout: Duration) -> Option<String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(connect_timeout));
    let attempts = nodes.iter().map(|node| {
        let config = config.clone();
        async move {
            // The builder already took every node URL.
            let Ok(client) = redis::Client::open(node.as_str()) else {
                return true;
            };
            let attempt = tokio::time::timeout(
                connect_timeout.saturating_mul(2),
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await;
            match attempt {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => super::redis_connection::is_redis_refusal(&e),
                Err(_) => false,
            }
        }
    });
    let answered = futures_util::future::join_all(attempts).await;
    nodes
        .iter()
        .zip(answered)
        .find(|(_, answered)| !answered)
        .map(|(node, _)| redact_url(node))
}

/// The nonce store's start-up on a connected cluster: writes the epoch key
/// of every tag that has none, dated `since`, within `bound`.
pub(super) async fn prepare_nonce_keys(
    connection: &mut ClusterConnection,
    target: &str,
    password: Option<&str>,
    prefix: &str,
    since: u64,
    bound: Duration,
) -> Result<(), RedisStoreError> {
    let connect_failed = |detail: String| {
        RedisStoreError::new(
            RedisStoreErrorKind::Connect,
            format!("cannot connect to {target}: {detail}"),
        )
    };
    tokio::time::timeout(bound, write_missing_epochs(connection, prefix, since))
        .await
        .map_err(|_| connect_failed("timed out writing the epoch keys".to_owned()))?
        .map_err(|e| {
            super::redis_connection::start_up_failed(
                &e,
                format!(
                    "cannot connect to {target}: cannot write the epoch keys: {}",
                    scrub_secret(&e.to_string(), password)
                ),
            )
        })
}

/// Writes the epoch of every tag that has none (`SET NX`), each on the
/// primary owning the tag's slot: one pipeline per slot range of the slot
/// map from `CLUSTER SLOTS` (a range has one primary). Should the map change meanwhile (a `MOVED`
/// inside a pipeline), every tag is written again one command at a time,
/// which the client routes and redirects itself (`SET NX` is idempotent).
async fn write_missing_epochs(
    connection: &mut ClusterConnection,
    prefix: &str,
    since: u64,
) -> Result<(), RedisError> {
    match write_epochs_per_primary(connection, prefix, since).await {
        Ok(true) => return Ok(()),
        Ok(false) => {
            tracing::debug!("tessera: the cluster's slot map moved; epoch keys written one by one")
        }
        Err(e) => {
            tracing::debug!(kind = ?e.kind(), "tessera: epoch pipelines failed; epoch keys written one by one")
        }
    }
    write_epochs_one_by_one(connection, prefix, since).await
}

/// One pipeline per slot range; `Ok(false)` when a reply was an error or the
/// slot map did not cover every tag.
async fn write_epochs_per_primary(
    connection: &mut ClusterConnection,
    prefix: &str,
    since: u64,
) -> Result<bool, RedisError> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(connection)
        .await?;
    let ranges = slot_ranges(&reply);
    // (first slot of the range, pipeline, commands) per range.
    let mut by_primary: Vec<(u16, redis::Pipeline, usize)> = Vec::new();
    for tag in 0..TAGS {
        let key = epoch_key_of_tag(prefix, tag);
        let slot = key_slot(key.as_bytes());
        let Some(&(first, _)) = ranges.iter().find(|(lo, hi)| (*lo..=*hi).contains(&slot)) else {
            return Ok(false);
        };
        let index = match by_primary.iter().position(|(f, _, _)| *f == first) {
            Some(index) => index,
            None => {
                by_primary.push((first, redis::pipe(), 0));
                by_primary.len() - 1
            }
        };
        let (_, pipe, count) = &mut by_primary[index];
        pipe.cmd("SET").arg(key).arg(since).arg("NX");
        *count += 1;
    }
    for (first, pipe, count) in by_primary {
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(first, SlotAddr::Master));
        let replies = connection.route_pipeline(pipe, 0, count, route).await?;
        if replies.iter().any(|r| matches!(r, Value::ServerError(_))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One hash tag (`0..4096`, written as three lowercase hex digits between
/// braces, as the stores' keys are) per primary of the cluster's map
/// (`CLUSTER SLOTS`) that owns a slot of any such tag: a key under each
/// reaches every primary that any such key can reach, however fragmented
/// its slot ranges.
pub(super) async fn tag_per_primary(
    connection: &mut ClusterConnection,
) -> Result<Vec<u16>, RedisError> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(connection)
        .await?;
    let ranges = slot_map(&reply)
        .into_iter()
        .map(|(lo, hi, (host, port))| (lo, hi, format!("{host}:{port}")))
        .collect();
    Ok(tag_per_primary_of(ranges))
}

/// One tag per primary of `ranges` (`(first, last, primary)`), for
/// [`tag_per_primary`].
fn tag_per_primary_of(mut ranges: Vec<(u16, u16, String)>) -> Vec<u16> {
    ranges.sort_unstable_by_key(|(lo, _, _)| *lo);
    let mut tags: Vec<(String, u16)> = Vec::new();
    for tag in 0..4096u16 {
        let slot = key_slot(format!("{{{tag:03x}}}").as_bytes());
        let at = ranges.partition_point(|(lo, _, _)| *lo <= slot);
        let Some((_, hi, primary)) = at.checked_sub(1).map(|i| &ranges[i]) else {
            continue;
        };
        if slot <= *hi && !tags.iter().any(|(p, _)| p == primary) {
            tags.push((primary.clone(), tag));
        }
    }
    tags.into_iter().map(|(_, tag)| tag).collect()
}

/// The slot ranges of `CLUSTER SLOTS`, `(first, last)`.
fn slot_ranges(reply: &Value) -> Vec<(u16, u16)> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    let mut ranges = Vec::new();
    for entry in entries {
        if let Value::Array(fields) = entry {
            if let [Value::Int(lo), Value::Int(hi), ..] = fields.as_slice() {
                if let (Ok(lo), Ok(hi)) = (u16::try_from(*lo), u16::try_from(*hi)) {
                    ranges.push((lo, hi));
                }
            }
        }
    }
    ranges
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag
/// (the text between the first `{` and the next `}`, when not empty) or of
/// the whole key, modulo 16384.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(hashed) % SLOTS
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Every epoch key as its own command, many in flight at once.
async fn write_epochs_one_by_one(
    connection: &ClusterConnection,
    prefix: &str,
    since: u64,
) -> Result<(), RedisError> {
    stream::iter(0..TAGS)
        .map(Ok)
        .try_for_each_concurrent(EPOCH_WRITES_IN_FLIGHT, |tag| {
            let mut connection = connection.clone();
            let key = epoch_key_of_tag(prefix, tag);
            async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(since)
                    .arg("NX")
                    .query_async::<()>(&mut connection)
                    .await
            }
        })
        .await
}

/// Reads the eviction policy and persistence settings of every primary
/// and judges each (see [`redis_settings`](super::redis_settings)): one
/// that may evict live nonces or restore epochs without the last pairs
/// refuses the connection unless allowed.
pub(super) async fn check_settings(
    connection: &mut ClusterConnection,
    target: &str,
    allowed: Allowed,
) -> Result<(), RedisStoreError> {
    let mut by_node: HashMap<String, Settings> = HashMap::new();
    for name in SETTINGS {
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let reply = connection
            .route_command(setting_query(name), routing)
            .await
            .and_then(|v| {
                redis::from_redis_value::<HashMap<String, Vec<String>>>(v).map_err(Into::into)
            });
        let Ok(replies) = reply else {
            // One primary that refuses `CONFIG` fails the whole routed call:
            // ask each primary on its own, so the others are still checked.
            return check_primaries_one_by_one(connection, target, allowed).await;
        };
        for (node, reply) in replies {
            by_node.entry(node).or_default().set(name, value_in(&reply));
        }
    }
    for (node, settings) in &by_node {
        judge(target, Some(node), settings, allowed)?;
    }
    Ok(())
}

/// [`check_settings`] one primary at a time, each reached through the
/// first slot of a range it serves (`CLUSTER SLOTS`); a primary whose
/// settings cannot be read gets the warnings, the others their verdict.
async fn check_primaries_one_by_one(
    connection: &mut ClusterConnection,
    target: &str,
    allowed: Allowed,
) -> Result<(), RedisStoreError> {
    let slots: Result<Value, _> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(connection)
        .await;
    let Ok(slots) = slots else {
        return judge(target, None, &Settings::default(), allowed);
    };
    let mut seen: Vec<String> = Vec::new();
    for (first, node) in primaries(&slots) {
        if seen.contains(&node) {
            continue;
        }
        let mut settings = Settings::default();
        for name in SETTINGS {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                first,
                SlotAddr::Master,
            )));
            let reply = connection
                .route_command(setting_query(name), route)
                .await
                .and_then(|v| redis::from_redis_value::<Vec<String>>(v).map_err(Into::into));
            settings.set(name, reply.as_deref().ok().and_then(value_in));
        }
        judge(target, Some(&node), &settings, allowed)?;
        seen.push(node);
    }
    Ok(())
}

/// The first slot and the primary's `host:port` of each range in a
/// `CLUSTER SLOTS` reply.
fn primaries(reply: &Value) -> Vec<(u16, String)> {
    slot_map(reply)
        .into_iter()
        .map(|(lo, _, (host, port))| (lo, format!("{host}:{port}")))
        .collect()
}

/// [`slot_map`] without the ranges whose primary has no usable host:
/// with `cluster-preferred-endpoint-type unknown-endpoint` a node is named
/// `""` or `"?"` (or not at all), and cannot be reached by that name.
pub(super) fn named_slot_map(reply: &Value) -> Vec<Range> {
    let mut map = slot_map(reply);
    map.retain(|(_, _, (host, _))| !host.is_empty() && host != "?");
    map
}

/// The ranges of a `CLUSTER SLOTS` reply: first and last slot, and the
/// primary's host and port. Entries not in that form are left out.
pub(super) fn slot_map(reply: &Value) -> Vec<Range> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(fields) = entry else {
                return None;
            };
            let [Value::Int(lo), Value::Int(hi), Value::Array(primary), ..] = fields.as_slice()
            else {
                return None;
            };
            let host = match primary.first()? {
                Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                return None;
            };
            Some((
                u16::try_from(*lo).ok()?,
                u16::try_from(*hi).ok()?,
                (host, u16::try_from(*port).ok()?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's entry in a `CLUSTER SLOTS` reply.
    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn primaries_are_read_from_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![Value::Int(10923)]),
        ]);
        assert_eq!(
            primaries(&reply),
            vec![
                (0, "10.0.0.1:7000".to_owned()),
                (5461, "10.0.0.2:7001".to_owned())
            ]
        );
        assert!(primaries(&Value::Nil).is_empty());
    }

    #[test]
    fn the_slot_map_is_read_from_cluster_slots() {
        let range = |lo: i64, hi: i64, host: &str, port: i64| {
            Value::Array(vec![Value::Int(lo), Value::Int(hi), node(host, port)])
        };
        let reply = Value::Array(vec![
            range(0, 99, "10.0.0.1", 7000),
            range(100, 199, "10.0.0.2", 7001),
            Value::Array(vec![Value::Int(200)]),
            range(150, 160, "", 7002),
            range(150, 160, "?", 7002),
            range(200, 16383, "10.0.0.1", 7000),
        ]);
        let at = |host: &str, port: u16| (host.to_owned(), port);
        assert_eq!(
            named_slot_map(&reply),
            vec![
                (0, 99, at("10.0.0.1", 7000)),
                (100, 199, at("10.0.0.2", 7001)),
                (200, 16383, at("10.0.0.1", 7000)),
            ]
        );
        assert_eq!(slot_map(&reply).len(), 5, "unnamed nodes too");
        assert!(slot_map(&Value::Nil).is_empty());
    }

    #[test]
    fn cluster_urls() {
        let nodes = cluster_url_nodes("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001")
            .expect("cluster url")
            .expect("valid");
        assert_eq!(
            nodes,
            ["redis://:pw@10.0.0.1:7000/", "redis://:pw@10.0.0.2:7001/"]
        );
        let nodes = cluster_url_nodes("rediss+cluster://h1:1,h2:2/0")
            .expect("cluster url")
            .expect("valid");
        assert_eq!(nodes, ["rediss://h1:1/", "rediss://h2:2/"]);
        assert!(cluster_url_nodes("redis://h:1/").is_none());
        let e = cluster_url_nodes("redis+cluster://:hunter2@h1:1,h2:2/3")
            .expect("cluster url")
            .expect_err("db 3");
        assert_eq!(e.kind(), RedisStoreErrorKind::InvalidUrl);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = cluster_url_nodes("redis+cluster://h1:1,,h2:2")
            .expect("cluster url")
            .expect_err("empty host");
        assert_eq!(e.kind(), RedisStoreErrorKind::InvalidUrl);
    }

    #[test]
    fn slots_match_redis() {
        // The CRC16 check value, and slots from the Redis Cluster spec / CLUSTER KEYSLOT.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(
            key_slot(b"tessera:{abc}:since"),
            key_slot(b"tessera:{abc}:nonce:00")
        );
        let ranges = slot_ranges(&Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![]),
        ])]));
        assert_eq!(ranges, [(0, 5460)]);
    }

    #[test]
    fn one_tag_per_primary_however_fragmented_the_ranges() {
        // Every 8th slot of the first third moved to the second primary:
        // about 1,400 ranges, three primaries.
        let mut ranges = Vec::new();
        let mut lo = 0u16;
        while lo <= 5460 {
            let hi = (lo + 6).min(5460);
            ranges.push((lo, hi, "a".to_owned()));
            if hi < 5460 {
                ranges.push((hi + 1, hi + 1, "b".to_owned()));
            }
            lo = hi + 2;
        }
        ranges.push((5461, 10922, "b".to_owned()));
        ranges.push((10923, 16383, "c".to_owned()));
        let tags = tag_per_primary_of(ranges.clone());
        assert_eq!(tags.len(), 3, "{tags:?}");
        let owner = |tag: u16| {
            let slot = key_slot(format!("{{{tag:03x}}}").as_bytes());
            ranges
                .iter()
                .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
                .map(|(_, _, p)| p.clone())
        };
        let mut owners: Vec<_> = tags.iter().map(|t| owner(*t).expect("owned")).collect();
        owners.sort();
        assert_eq!(owners, ["a", "b", "c"]);
        // Unassigned slots are skipped: no key of theirs can be written.
        assert_eq!(tag_per_primary_of(vec![(0, 2000, "a".to_owned())]).len(), 1);
        assert!(tag_per_primary_of(Vec::new()).is_empty());
    }

    #[test]
    fn cluster_targets_hide_passwords() {
        let nodes = [
            "redis://:hunter2@h1:1/".to_owned(),
            "redis://:hunter2@h2:2/".to_owned(),
        ];
        let shown = cluster_target(&nodes);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("h2:2"), "{shown}");
        assert_eq!(cluster_password(&nodes).as_deref(), Some("hunter2"));
        // An invalid cluster URL is named without its password, also one
        // holding `/`, `?` or `#`.
        for url in [
            "redis+cluster://app:hunter2@h1:1,h2:2/9",
            "redis+cluster://:hunt/er2@h1:1",
            "redis+cluster://app:hunt#er2@h1:1",
            "redis+cluster://:hun?ter2@h1:1",
        ] {
            let Some(Err(e)) = cluster_url_nodes(url) else {
                panic!("{url} was taken");
            };
            let shown = e.to_string();
            assert!(!shown.contains("hunt") && !shown.contains("er2"), "{shown}");
        }
    }
}
