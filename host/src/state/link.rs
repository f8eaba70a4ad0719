//! The connection to Redis: one server through a connection manager that reconnects on
//! its own, or a Redis Cluster through a cluster connection that reads the slot map from
//! the seed nodes and sends each call to the node holding its keys (following `MOVED` and
//! `ASK` redirections when slots move, as in a failover).

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// How the gateway reaches Redis.
pub enum Link {
    /// One server.
    Server(ConnectionManager),
    /// A cluster, connected on the first [`Link::connect`] that reaches a seed node.
    Cluster {
        client: ClusterClient,
        connection: OnceLock<ClusterConnection>,
    },
}

/// A handle for one call; cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// To one server.
    Server(ConnectionManager),
    /// To a cluster.
    Cluster(ClusterConnection),
}

impl Link {
    /// A link to `url` (with `cluster`, seed nodes separated by commas), calls bounded by
    /// `timeout`. Connects lazily: nothing is dialled here.
    pub fn new(url: &str, cluster: bool, timeout: Duration) -> anyhow::Result<Self> {
        if cluster {
            let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
            let client = ClusterClientBuilder::new(seeds)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()?;
            return Ok(Self::Cluster {
                client,
                connection: OnceLock::new(),
            });
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let client = redis::Client::open(url)?;
        Ok(Self::Server(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// Connects a cluster link that is not connected yet (reading the slot map from the
    /// first seed node that answers). Called from the control runtime, which then drives
    /// the connection; a server link connects on its own.
    pub async fn connect(&self) -> RedisResult<()> {
        if let Self::Cluster { client, connection } = self
            && connection.get().is_none()
        {
            let connected = client.get_async_connection().await?;
            // Another connect may have won the race; either connection serves.
            let _ = connection.set(connected);
        }
        Ok(())
    }

    /// A handle for one call; `None` while a cluster link is not connected yet.
    pub fn connection(&self) -> Option<Connection> {
        match self {
            Self::Server(manager) => Some(Connection::Server(manager.clone())),
            Self::Cluster { connection, .. } => connection.get().cloned().map(Connection::Cluster),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
