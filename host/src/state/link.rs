//! The connection to Redis: one server through a connection manager that reconnects on
//! its own, or a Redis Cluster through a cluster connection that reads the slot map from
//! the seed nodes and sends each call to the node holding its keys.
//!
//! A cluster connection follows `MOVED` and `ASK` redirections, but keeps dialling a
//! master that is gone; when a master fails over to its replica, only a new slot map sends
//! its slots to the new master. So a call that cannot reach its node has the link read the
//! slot map again ([`Link::reconnect`]), once per failed connection, however many calls
//! failed on it.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// How the gateway reaches Redis.
pub enum Link {
    /// One server.
    Server(ConnectionManager),
    /// A cluster.
    Cluster(ClusterLink),
}

/// A cluster's client and its current connection, numbered so that a connection that
/// failed is replaced once.
pub struct ClusterLink {
    client: ClusterClient,
    current: ArcSwapOption<(u64, ClusterConnection)>,
    replacing: tokio::sync::Mutex<()>,
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
            return Ok(Self::Cluster(ClusterLink {
                client,
                current: ArcSwapOption::empty(),
                replacing: tokio::sync::Mutex::new(()),
            }));
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

    /// Connects a cluster link that has no connection yet (a server link connects on its
    /// own).
    pub async fn connect(&self) -> RedisResult<()> {
        match self {
            Self::Cluster(cluster) if cluster.current.load().is_none() => {
                cluster.replace(None).await
            }
            _ => Ok(()),
        }
    }

    /// A handle for one call and its connection's number; `None` while a cluster link is
    /// not connected.
    pub fn connection(&self) -> Option<(u64, Connection)> {
        match self {
            Self::Server(manager) => Some((0, Connection::Server(manager.clone()))),
            Self::Cluster(cluster) => cluster
                .current
                .load()
                .as_deref()
                .map(|(number, connection)| (*number, Connection::Cluster(connection.clone()))),
        }
    }

    /// After a call on connection `failed` could not reach its node: a cluster reads its
    /// slot map again through a new connection (unless another call did so already), so
    /// that slots a failover moved reach their new master. True if the call may be tried
    /// again.
    pub async fn reconnect(&self, failed: u64) -> RedisResult<bool> {
        match self {
            Self::Server(_) => Ok(false),
            Self::Cluster(cluster) => cluster.replace(Some(failed)).await.map(|()| true),
        }
    }
}

impl ClusterLink {
    /// Replaces connection `failed` (or sets the first one) with a new one, read from the
    /// seed nodes; a no-op if another call has replaced it already.
    async fn replace(&self, failed: Option<u64>) -> RedisResult<()> {
        let _one_at_a_time = self.replacing.lock().await;
        let now = self.current.load().as_deref().map(|(number, _)| *number);
        if now != failed {
            return Ok(());
        }
        let connection = self.client.get_async_connection().await?;
        let number = now.map_or(0, |n| n + 1);
        self.current.store(Some(Arc::new((number, connection))));
        Ok(())
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
