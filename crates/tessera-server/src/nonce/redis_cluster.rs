//! Connecting [`RedisNonceStore`](super::RedisNonceStore) to a Redis
//! Cluster: the node list (or a `redis+cluster://` URL), the start-up
//! checks, and the epoch keys of every tag, each written on the primary
//! that owns its slot.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{stream, StreamExt, TryStreamExt};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::RedisError;

use super::redis_store::{
    epoch_key_of_tag, redact_url, scrub_secret, url_password, RedisStoreError, RedisStoreErrorKind,
    TAGS,
};

/// Epoch `SET NX` commands in flight at once at connection (the cluster
/// connection multiplexes them over one socket per primary).
const EPOCH_WRITES_IN_FLIGHT: usize = 256;

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
                redact_cluster_url(url)
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

/// A `redis+cluster://` URL with its password replaced by `***`.
fn redact_cluster_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<unparseable Redis URL>".to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
        }
        None => url.to_owned(),
    }
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

/// The settings [`connect`] needs from the builder.
pub(super) struct ClusterSettings<'a> {
    pub(super) nodes: &'a [String],
    pub(super) target: &'a str,
    pub(super) password: Option<&'a str>,
    pub(super) prefix: &'a str,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
}

/// Connects to the cluster, checks every primary answers `PING`, warns
/// about eviction policies, and writes the epoch key of every tag that has
/// none, dated `since`.
pub(super) async fn connect(
    settings: &ClusterSettings<'_>,
    since: u64,
) -> Result<ClusterConnection, RedisStoreError> {
    let scrub = |e: &RedisError| scrub_secret(&e.to_string(), settings.password);
    if settings.nodes.is_empty() {
        return Err(RedisStoreError::new(
            RedisStoreErrorKind::InvalidUrl,
            "a Redis Cluster needs at least one node URL".to_owned(),
        ));
    }
    let client = ClusterClient::builder(settings.nodes.iter().map(String::as_str))
        .connection_timeout(settings.connect_timeout)
        // Per attempt and overall (retries, MOVED/ASK redirections
        // included); the check also has its own timeout around it.
        .response_timeout(settings.timeout)
        .retries(3)
        .min_retry_wait(20)
        .max_retry_wait(500)
        .build()
        .map_err(|e| {
            RedisStoreError::new(
                RedisStoreErrorKind::InvalidUrl,
                format!("invalid Redis Cluster {}: {}", settings.target, scrub(&e)),
            )
        })?;
    let connect_failed = |detail: String| {
        RedisStoreError::new(
            RedisStoreErrorKind::Connect,
            format!("cannot connect to {}: {detail}", settings.target),
        )
    };
    let bounded = settings.connect_timeout.saturating_mul(2);
    let mut connection = tokio::time::timeout(bounded, client.get_async_connection())
        .await
        .map_err(|_| connect_failed("timed out".to_owned()))?
        .map_err(|e| connect_failed(scrub(&e)))?;

    // PING goes to every primary and succeeds only if all of them answer:
    // a slot range without a reachable primary is noticed now, not as 503s.
    let pong = tokio::time::timeout(
        bounded,
        redis::cmd("PING").query_async::<String>(&mut connection),
    )
    .await
    .map_err(|_| connect_failed("PING timed out".to_owned()))?
    .map_err(|e| connect_failed(scrub(&e)))?;
    if pong != "PONG" {
        return Err(connect_failed(format!("unexpected PING reply {pong:?}")));
    }
    check_eviction_policies(&mut connection, settings.target).await;
    tokio::time::timeout(
        bounded,
        write_missing_epochs(&connection, settings.prefix, since),
    )
    .await
    .map_err(|_| connect_failed("timed out writing the epoch keys".to_owned()))?
    .map_err(|e| connect_failed(format!("cannot write the epoch keys: {}", scrub(&e))))?;
    Ok(connection)
}

/// Writes the epoch of every tag that has none (`SET NX`), each on the
/// primary owning the tag's slot. A pipeline would have to stay within one
/// slot, so these are single commands, many in flight at once.
async fn write_missing_epochs(
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

/// Warns about each primary that may evict live nonces. `CONFIG` is often
/// disabled on managed clusters; then the check is skipped.
async fn check_eviction_policies(connection: &mut ClusterConnection, target: &str) {
    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let mut config_get = redis::cmd("CONFIG");
    config_get.arg("GET").arg("maxmemory-policy");
    let reply = connection
        .route_command(config_get, routing)
        .await
        .and_then(|v| {
            redis::from_redis_value::<HashMap<String, Vec<String>>>(v).map_err(Into::into)
        });
    let Ok(by_node) = reply else {
        tracing::debug!(redis = %target, "tessera: could not read Redis maxmemory-policy");
        return;
    };
    for (node, reply) in by_node {
        match reply.as_slice() {
            [_, policy] if policy == "noeviction" => {}
            [_, policy] => tracing::warn!(
                redis = %target,
                node = %node,
                maxmemory_policy = %policy,
                "tessera: Redis may evict live nonces under memory pressure, letting replays through; set maxmemory-policy noeviction"
            ),
            _ => {
                tracing::debug!(redis = %target, node = %node, "tessera: could not read Redis maxmemory-policy")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cluster_targets_hide_passwords() {
        let nodes = [
            "redis://:hunter2@h1:1/".to_owned(),
            "redis://:hunter2@h2:2/".to_owned(),
        ];
        let shown = cluster_target(&nodes);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("h2:2"), "{shown}");
        assert_eq!(cluster_password(&nodes).as_deref(), Some("hunter2"));
        let shown = redact_cluster_url("redis+cluster://app:hunter2@h1:1,h2:2/9");
        assert_eq!(shown, "redis+cluster://app:***@h1:1,h2:2/9");
    }
}
