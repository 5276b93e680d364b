//! The connection under [`RedisNonceStore`](super::RedisNonceStore): one
//! Redis endpoint or a Redis Cluster, behind one `ConnectionLike` so the
//! check script is invoked the same way on both.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A multiplexed connection to one endpoint, or to every primary of a
/// cluster. Cloning shares the underlying sockets.
#[derive(Clone)]
pub(super) enum StoreConnection {
    /// One Redis (or a primary, or a cluster-aware proxy); reconnects by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the primary owning their key's slot;
    /// the client follows `MOVED`/`ASK` and refreshes its slot map.
    Cluster(ClusterConnection),
}

impl StoreConnection {
    /// True for a Redis Cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, StoreConnection::Cluster(_))
    }
}

impl ConnectionLike for StoreConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            StoreConnection::Single(c) => c.req_packed_command(cmd),
            StoreConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            StoreConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            StoreConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            StoreConnection::Single(c) => c.get_db(),
            StoreConnection::Cluster(c) => c.get_db(),
        }
    }
}
