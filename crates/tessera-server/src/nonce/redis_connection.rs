//! [`RedisConnection`]: one Redis endpoint or a Redis Cluster behind one
//! `ConnectionLike`, opened from the URLs the nonce store accepts, so every
//! Redis-backed store (nonces here, rate limits in tessera-ratelimit)
//! takes the same URLs and invokes its script the same way on both.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::redis_cluster;
use super::redis_down_slots::{Node, Range};
use super::redis_node_probe::NodeProbe;
use super::redis_store::{
    redact_url, scrub_secret, url_password, RedisStoreError, RedisStoreErrorKind,
};

/// A multiplexed connection to one Redis endpoint, or to every primary of a
/// Redis Cluster. Cloning shares the underlying sockets, so any number of
/// tasks use one `RedisConnection` at once (commands are pipelined on the
/// socket; there is no pool to size).
///
/// [`RedisNonceStore`](super::RedisNonceStore) holds one; other stores open
/// theirs with [`RedisConnection::open`], so a deployment writes the same
/// URL for each.
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    /// How errors and logs name the target: passwords replaced by `***`.
    target: Arc<str>,
    /// A cluster's nodes asked one by one, each over a connection of its own.
    probe: Option<NodeProbe>,
}

#[derive(Clone)]
enum Link {
    /// One Redis (or a primary, or a cluster-aware proxy); reconnects by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the primary owning their key's slot;
    /// the client follows `MOVED`/`ASK` and refreshes its slot map.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("target", &self.target)
            .field("cluster", &self.is_cluster())
            .finish()
    }
}

impl RedisConnection {
    /// Opens a connection to `url` and checks that Redis answers `PING`
    /// (with a cluster: every primary).
    ///
    /// `url` is any URL [`RedisNonceStore::builder`](super::RedisNonceStore::builder)
    /// takes: `redis://[user:password@]host:port/db`, `rediss://…` (feature
    /// `redis-tls`), `redis+unix:///path`, or
    /// `redis+cluster://[user:password@]host1:port1,host2:port2` for a
    /// Redis Cluster. `response_timeout` bounds each command once
    /// connected; `connect_timeout` each connection attempt. A single
    /// endpoint reconnects by itself (a few quick attempts with capped
    /// backoff per command), so a Redis that comes back is used again
    /// without a restart.
    ///
    /// # Errors
    /// [`RedisStoreErrorKind::InvalidUrl`] for a URL that does not parse;
    /// [`RedisStoreErrorKind::Connect`] when Redis cannot be reached or does
    /// not answer in time; [`RedisStoreErrorKind::Refused`] when it refuses
    /// the credentials or the `PING`. Messages name
    /// the URL with its password replaced by `***`.
    pub async fn open(
        url: &str,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisStoreError> {
        if let Some(nodes) = redis_cluster::cluster_url_nodes(url) {
            return Self::open_cluster(&nodes?, response_timeout, connect_timeout).await;
        }
        let target = redact_url(url);
        let password = url_password(url);
        let (manager, _probe) = open_single(
            url,
            &target,
            password.as_deref(),
            response_timeout,
            connect_timeout,
        )
        .await?;
        Ok(Self::single(manager, target))
    }

    /// Opens a connection to the Redis Cluster that `nodes` belong to
    /// (`redis://host:port/` each, with the password if any; the client
    /// learns the other nodes from them) and checks every primary answers
    /// `PING`.
    ///
    /// # Errors
    /// As [`RedisConnection::open`].
    pub async fn open_cluster(
        nodes: &[String],
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisStoreError> {
        let target = redis_cluster::cluster_target(nodes);
        let password = redis_cluster::cluster_password(nodes);
        let connection = redis_cluster::open(
            nodes,
            &target,
            password.as_deref(),
            response_timeout,
            connect_timeout,
        )
        .await?;
        Ok(Self::cluster(connection, target, nodes, response_timeout))
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// For a Redis Cluster, one hash tag (`0..4096`, written as three
    /// lowercase hex digits between braces in a key) per primary of its map
    /// (`CLUSTER SLOTS`), so that keys under them reach every primary
    /// (permissions and settings are set node by node); `None` for one
    /// Redis.
    ///
    /// # Errors
    /// `CLUSTER SLOTS` failed.
    pub async fn hash_tag_per_primary(&self) -> Result<Option<Vec<u16>>, RedisError> {
        match &self.link {
            Link::Single(_) => Ok(None),
            Link::Cluster(connection) => redis_cluster::tag_per_primary(&mut connection.clone())
                .await
                .map(Some),
        }
    }

    /// Sends `PING` to the primary that owns hash slot `slot` (to the one
    /// Redis, for a single endpoint).
    ///
    /// # Errors
    /// The primary did not answer, or refused.
    pub(super) async fn ping_primary_of(&self, slot: u16) -> Result<(), RedisError> {
        self.on_primary_of(slot, redis::cmd("PING")).await.map(drop)
    }

    /// Sends `command` to the primary that owns hash slot `slot` (to the
    /// one Redis, for a single endpoint), and returns its reply.
    ///
    /// # Errors
    /// The primary did not answer, or refused.
    pub(super) async fn on_primary_of(
        &self,
        slot: u16,
        command: redis::Cmd,
    ) -> Result<Value, RedisError> {
        match &self.link {
            Link::Single(manager) => command.query_async(&mut manager.clone()).await,
            Link::Cluster(connection) => {
                connection
                    .clone()
                    .route_command(
                        command,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                            slot,
                            SlotAddr::Master,
                        ))),
                    )
                    .await
            }
        }
    }

    /// The cluster's map (`CLUSTER SLOTS`, the ranges of nodes it names by
    /// a host), asked of every node of `nodes` at once, each over a
    /// connection of its own (the first answer wins: one of them may be the
    /// node that does not answer), or of the seed nodes when `nodes` is
    /// empty. Empty for a single endpoint.
    ///
    /// # Errors
    /// No node asked answered.
    pub(super) async fn cluster_map(&self, nodes: &[Node]) -> Result<Vec<Range>, RedisError> {
        let Some(probe) = &self.probe else {
            return Ok(Vec::new());
        };
        // Each node over a connection of its own (see `NodeProbe`); the
        // seeds when no other node is known.
        let nodes = if nodes.is_empty() {
            probe.seeds()
        } else {
            nodes
        };
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let asked = nodes.iter().map(|node| Box::pin(probe.slots(node)));
        let reply = futures_util::future::select_ok(asked).await?.0;
        Ok(redis_cluster::named_slot_map(&reply))
    }

    /// Reads `key`, sent as any command on `key` is: to the primary that
    /// owns its slot, following `MOVED` (a node that does not own the slot
    /// cannot answer for it, as any node answers `PING`). `GET` because the
    /// check script runs it on the same keys, so a user the store works
    /// with may run it; a refusal proves nothing (any node refuses before
    /// it redirects) and counts as no answer.
    ///
    /// # Errors
    /// The owner did not answer.
    pub(super) async fn owner_answers(&self, key: &str) -> Result<(), RedisError> {
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut self.clone())
            .await
            .map(drop)
    }

    /// Sends `PING` to `node` itself (not to whichever node the client
    /// would pick for a slot whose primary it has no connection to), over a
    /// connection of its own (see `NodeProbe`).
    ///
    /// # Errors
    /// The node refused or dropped the connection, did not answer, or
    /// refused the command.
    pub(super) async fn ping_node(&self, node: &Node) -> Result<(), RedisError> {
        match &self.probe {
            Some(probe) => probe.ping(node).await,
            None => self.ping_primary_of(0).await,
        }
    }

    /// A cluster's probe of single nodes; `None` for one endpoint.
    pub(super) fn node_probe(&self) -> Option<&NodeProbe> {
        self.probe.as_ref()
    }

    /// The target as errors and logs name it: the URL (or the cluster's
    /// node URLs) with passwords replaced by `***`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Reads and judges the eviction and persistence settings again, as at
    /// start-up: `None` when one endpoint's settings could not be read (it
    /// did not answer, or refuses `CONFIG`). A cluster's primaries
    /// (`primaries`, from its map) are asked at once, each over a
    /// connection of its own (see `NodeProbe`: sent through the cluster
    /// client to every primary, the question would make the `redis` crate
    /// reconnect every node when one of them has a broken connection), and
    /// judged one by one, an unreadable one as acceptable; without a map
    /// naming them, `None`.
    pub(super) async fn recheck_settings(
        &self,
        target: &str,
        allowed: super::redis_settings::Allowed,
        primaries: &[Node],
    ) -> Option<Result<(), RedisStoreError>> {
        match (&self.link, &self.probe) {
            (Link::Single(manager), _) => {
                let settings = super::redis_store::read_settings(&mut manager.clone())
                    .await
                    .ok()?;
                Some(super::redis_settings::judge(
                    target, None, &settings, allowed,
                ))
            }
            (Link::Cluster(_), Some(probe)) if !primaries.is_empty() => {
                let read = futures_util::future::join_all(
                    primaries.iter().map(|node| probe.settings(node)),
                )
                .await;
                for (node, settings) in primaries.iter().zip(read) {
                    if let Ok(settings) = settings {
                        let name = format!("{}:{}", node.0, node.1);
                        if let Err(e) =
                            super::redis_settings::judge(target, Some(&name), &settings, allowed)
                        {
                            return Some(Err(e));
                        }
                    }
                }
                Some(Ok(()))
            }
            // No map naming primaries by address: unreadable, the verdict
            // stays (asked through the cluster client, every primary at
            // once, the question could stall every slot).
            (Link::Cluster(_), _) => None,
        }
    }

    pub(super) fn single(manager: ConnectionManager, target: String) -> Self {
        RedisConnection {
            link: Link::Single(manager),
            target: target.into(),
            probe: None,
        }
    }

    /// A cluster connection; `nodes` are its seed URLs, `timeout` bounds
    /// each question its probe asks one node.
    pub(super) fn cluster(
        connection: ClusterConnection,
        target: String,
        nodes: &[String],
        timeout: Duration,
    ) -> Self {
        RedisConnection {
            link: Link::Cluster(connection),
            target: target.into(),
            probe: Some(NodeProbe::new(nodes, timeout)),
        }
    }
}

/// Connects to one endpoint: a plain probe connection first, which must
/// answer `PING` within `connect_timeout` (a prompt, clear error when Redis
/// is unreachable or refuses the credentials, instead of the connection
/// manager's retries), then the self-reconnecting manager. The probe is
/// returned for start-up work that may take longer than one command's
/// `response_timeout`; drop it afterwards.
pub(super) async fn open_single(
    url: &str,
    target: &str,
    password: Option<&str>,
    response_timeout: Duration,
    connect_timeout: Duration,
) -> Result<(ConnectionManager, MultiplexedConnection), RedisStoreError> {
    #[cfg(feature = "redis-tls")]
    super::redis_store::install_crypto_provider();
    let scrub = |e: &RedisError| scrub_secret(&e.to_string(), password);
    let client = Client::open(url).map_err(|e| {
        RedisStoreError::new(
            RedisStoreErrorKind::InvalidUrl,
            format!("invalid Redis URL {target}: {}", scrub(&e)),
        )
    })?;
    let connect_failed = |detail: String| {
        RedisStoreError::new(
            RedisStoreErrorKind::Connect,
            format!("cannot connect to Redis at {target}: {detail}"),
        )
    };
    // Answered, but refused: not something a later attempt would change.
    let failed = |e: &RedisError| {
        if is_redis_refusal(e) {
            RedisStoreError::new(
                RedisStoreErrorKind::Refused,
                format!("Redis at {target} refused the connection: {}", scrub(e)),
            )
        } else {
            connect_failed(scrub(e))
        }
    };
    let probe_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(connect_timeout));
    let mut probe = client
        .get_multiplexed_async_connection_with_config(&probe_config)
        .await
        .map_err(|e| failed(&e))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut probe)
        .await
        .map_err(|e| failed(&e))?;
    if pong != "PONG" {
        return Err(connect_failed(format!("unexpected PING reply {pong:?}")));
    }

    // Reconnection: a few quick attempts with capped backoff; once they
    // are used up, the next command starts a new round, so the connection
    // recovers by itself whenever Redis comes back.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500))
        .set_number_of_retries(3);
    let manager = tokio::time::timeout(
        connect_timeout.saturating_mul(2),
        ConnectionManager::new_with_config(client, config),
    )
    .await
    .map_err(|_| connect_failed("timed out".to_owned()))?
    .map_err(|e| failed(&e))?;
    Ok((manager, probe))
}

/// A failure of start-up work (writing the epoch keys) as the error a
/// caller acts on: `Refused` when Redis answered and refused, which a later
/// attempt would not change, and `Connect` for anything that may pass.
pub(super) fn start_up_failed(e: &RedisError, message: String) -> RedisStoreError {
    let kind = if is_redis_refusal(e) {
        RedisStoreErrorKind::Refused
    } else {
        RedisStoreErrorKind::Connect
    };
    RedisStoreError::new(kind, message)
}

/// Whether Redis answered and refused the credentials or the command
/// (`NOAUTH`, `WRONGPASS`, `NOPERM`): an error no retry mends until the
/// configuration changes. A cluster client wraps the refusal of its first
/// connections in an I/O error ("Failed to create initial connections"),
/// so its text is read too.
pub fn is_redis_refusal(e: &RedisError) -> bool {
    // The last: Redis 7.0's error for a command a script runs that its user
    // may not (`ERR The user executing the script can't run this command`,
    // or `can't access at least one of the keys`).
    const REFUSALS: [&str; 5] = [
        "AuthenticationFailed",
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "The user executing the script can't",
    ];
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || e.detail()
            .is_some_and(|detail| REFUSALS.iter().any(|r| detail.contains(r)))
        || REFUSALS.iter().any(|r| e.to_string().contains(r))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.link {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.link {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::{ErrorKind, RedisError};

    use super::is_redis_refusal;

    #[test]
    fn a_refusal_is_told_from_an_outage_also_when_a_cluster_wraps_it() {
        let wrapped = RedisError::from((
            ErrorKind::Io,
            "Failed to create initial connections",
            "Password authentication failed - AuthenticationFailed".to_owned(),
        ));
        assert!(is_redis_refusal(&wrapped));
        let direct = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(is_redis_refusal(&direct));
        let outage = RedisError::from((
            ErrorKind::Io,
            "Failed to create initial connections",
            "Connection refused (os error 111)".to_owned(),
        ));
        assert!(!is_redis_refusal(&outage));
    }
}
