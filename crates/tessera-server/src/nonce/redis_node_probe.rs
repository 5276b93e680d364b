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
//! question here opens a connection of its own to the node, bounded by the
//! store's timeout for connecting and for the answer, and closes it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisError, Value};

use super::redis_down_slots::Node;

/// Opens one-question connections to nodes of one cluster.
#[derive(Clone)]
pub(super) struct NodeProbe {
    /// How the cluster's first seed is reached (scheme, user, password,
    /// TLS): every node is reached alike, at its own address.
    seed: Option<Arc<ConnectionInfo>>,
    timeout: Duration,
}

impl NodeProbe {
    /// Nodes reached as `seed_url` is, each question bounded by `timeout`.
    pub(super) fn new(seed_url: &str, timeout: Duration) -> Self {
        let seed = redis::IntoConnectionInfo::into_connection_info(seed_url)
            .ok()
            .map(Arc::new);
        NodeProbe { seed, timeout }
    }

    /// `PING` to `node`.
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

    async fn open(&self, (host, port): &Node) -> Result<MultiplexedConnection, RedisError> {
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
