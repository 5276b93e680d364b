//! Connections of their own to single nodes of a Redis Cluster, for the
//! nonce store's background probe.
//!
//! The probe asks one node whether it answers (`PING`) and what the
//! cluster's map is (`CLUSTER SLOTS`). Sent through the shared cluster
//! client by address, either question makes the `redis` crate, when it
//! holds no live connection to that node (the connection broke, or is being
//! made again), rebuild every connection from its seed nodes and hold every
//! request meanwhile: one silent node would stall every slot, and a dead
//! one would have the client reconnect to every node again and again. Each
//! question here goes over a connection of its own to the node, bounded by
//! the store's timeout for connecting and for the answer: one-shot for the
//! map, kept for as long as a node is watched ([`WatchLink`]), so that a
//! silent node's accept queue does not fill with the probe's attempts.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisError, Value};

use super::redis_down_slots::Node;
use super::redis_settings::Settings;
use super::redis_store::read_settings;

/// Opens one-question connections to nodes of one cluster.
#[derive(Clone)]
pub(super) struct NodeProbe {
    /// How the cluster's first seed is reached (scheme, user, password,
    /// TLS): every node is reached alike, at its own address.
    seed: Option<Arc<ConnectionInfo>>,
    /// The seeds' addresses, asked for the map when no other node is known.
    seeds: Arc<[Node]>,
    timeout: Duration,
}

impl NodeProbe {
    /// Nodes reached as the first of `seed_urls` is, each question bounded
    /// by `timeout`.
    pub(super) fn new(seed_urls: &[String], timeout: Duration) -> Self {
        let infos: Vec<ConnectionInfo> = seed_urls
            .iter()
            .filter_map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()).ok())
            .collect();
        let seeds = infos
            .iter()
            .filter_map(|info| match info.addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    Some((host.clone(), *port))
                }
                _ => None,
            })
            .collect();
        NodeProbe {
            seed: infos.into_iter().next().map(Arc::new),
            seeds,
            timeout,
        }
    }

    /// The seed nodes' addresses.
    pub(super) fn seeds(&self) -> &[Node] {
        &self.seeds
    }

    /// `PING` to `node`, over a connection of its own that is then closed.
    ///
    /// # Errors
    /// The node refused the connection or dropped it (dead), did not answer
    /// in time (silent), or refused the command.
    pub(super) async fn ping(&self, node: &Node) -> Result<(), RedisError> {
        let mut connection = self.open(node).await?;
        redis::cmd("PING")
            .query_async::<Value>(&mut connection)
            .await
            .map(drop)
    }

    /// `CLUSTER SLOTS`, asked of `node`.
    ///
    /// # Errors
    /// As [`NodeProbe::ping`].
    pub(super) async fn slots(&self, node: &Node) -> Result<Value, RedisError> {
        let mut connection = self.open(node).await?;
        redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut connection)
            .await
    }

    /// The eviction and persistence settings of `node`.
    ///
    /// # Errors
    /// As [`NodeProbe::ping`].
    pub(super) async fn settings(&self, node: &Node) -> Result<Settings, RedisError> {
        let mut connection = self.open(node).await?;
        read_settings(&mut connection).await
    }

    pub(super) async fn open(
        &self,
        (host, port): &Node,
    ) -> Result<MultiplexedConnection, RedisError> {
        let Some(seed) = &self.seed else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the cluster's first node URL does not parse",
            )));
        };
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let client = redis::Client::open(ConnectionInfo::clone(seed).set_addr(addr))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// The connection over which a watched node is asked, again and again,
/// whether it answers: opened once, and again only after an error other
/// than a timeout (a `PING` left waiting on a silent node is answered, with
/// the next one, when it wakes).
pub(super) struct WatchLink {
    node: Node,
    link: Option<MultiplexedConnection>,
}

impl WatchLink {
    /// A link to `node`, opened at the first [`WatchLink::ping`].
    pub(super) fn new(node: Node) -> Self {
        WatchLink { node, link: None }
    }

    /// `PING` to the node.
    ///
    /// # Errors
    /// As [`NodeProbe::ping`].
    pub(super) async fn ping(&mut self, probe: &NodeProbe) -> Result<(), RedisError> {
        let link = match &mut self.link {
            Some(link) => link,
            None => self.link.insert(probe.open(&self.node).await?),
        };
        let answer = redis::cmd("PING").query_async::<Value>(link).await;
        if answer.as_ref().is_err_and(|e| !e.is_timeout()) {
            self.link = None;
        }
        answer.map(drop)
    }
}
