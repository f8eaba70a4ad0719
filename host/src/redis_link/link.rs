//! The connection to Redis, in one of three shapes:
//!
//! - one server, through a connection manager per proxy worker thread (created on that
//!   thread, so that its driver runs on the worker's runtime and a call never hops to
//!   another thread and back), each reconnecting on its own;
//! - a Redis Cluster, through a cluster connection that reads the slot map from the seed
//!   nodes, sends each call to the node holding its keys and follows the cluster's
//!   redirections and failovers;
//! - a master found through Redis Sentinel. Its connection does not follow a failover, so
//!   a call that cannot reach the master, or finds it turned replica, has the link ask the
//!   sentinels again ([`Link::reconnect`]), once per failed connection however many calls
//!   failed on it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};

use crate::config::RedisConfig;

/// How the gateway reaches Redis.
pub enum Link {
    /// One server.
    Server(ServerLink),
    /// A cluster, connected on the first [`Link::connect`] that reaches a seed node.
    Cluster {
        client: ClusterClient,
        connection: OnceLock<ClusterConnection>,
        /// The seed nodes, for pub/sub connections.
        seeds: Vec<redis::Client>,
    },
    /// The master the sentinels name.
    Sentinel(Arc<SentinelLink>),
}

/// One server: its client, and a connection manager per worker thread, made on first use.
pub struct ServerLink {
    client: redis::Client,
    config: ConnectionManagerConfig,
    per_worker: Box<[OnceLock<ConnectionManager>]>,
}

impl ServerLink {
    /// The calling worker's connection manager (made now, on the worker's runtime, if this
    /// is its first call).
    fn manager(&self) -> RedisResult<ConnectionManager> {
        let slot = &self.per_worker[crate::worker::index() % self.per_worker.len()];
        if let Some(manager) = slot.get() {
            return Ok(manager.clone());
        }
        let made =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())?;
        Ok(slot.get_or_init(|| made).clone())
    }
}

/// The sentinels and the current master connection, numbered so that a connection that
/// failed is replaced once; the control runtime, which asks the sentinels and drives the
/// master connection.
pub struct SentinelLink {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    current: ArcSwapOption<(u64, MultiplexedConnection)>,
    control: tokio::runtime::Handle,
}

/// A handle for one call; cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// To one server.
    Server(ConnectionManager),
    /// To a cluster.
    Cluster(ClusterConnection),
    /// To the master the sentinels named.
    Sentinel(MultiplexedConnection),
}

impl Link {
    /// A link to `url` as `config` describes it (with `cluster`, seed nodes separated by
    /// commas; with `sentinel_master`, sentinels separated by commas), calls bounded by its
    /// timeout; `roots` (PEM) replace the system's CA roots for `rediss://` URLs; a server
    /// gets a connection per each of `workers` proxy worker threads and one for the rest.
    /// Connects lazily: nothing is dialled here.
    pub fn new(
        url: &str,
        config: &RedisConfig,
        roots: Option<Vec<u8>>,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        let tls = roots.map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        // The combinations the shapes do not support were refused with the config
        // (`RedisConfig::validate`).
        match (config.cluster, config.sentinel_master.as_deref()) {
            (true, _) => {
                let seeds = (urls.iter())
                    .map(|url| match &tls {
                        Some(tls) => redis::Client::build_with_tls(*url, tls.clone()),
                        None => redis::Client::open(*url),
                    })
                    .collect::<RedisResult<_>>()?;
                let mut builder = ClusterClientBuilder::new(urls)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1);
                if let Some(tls) = tls {
                    builder = builder.certs(tls);
                }
                Ok(Self::Cluster {
                    client: builder.build()?,
                    connection: OnceLock::new(),
                    seeds,
                })
            }
            (false, Some(master)) => {
                let sentinels = sentinel_client(&urls, master, tls)?;
                Ok(Self::Sentinel(Arc::new(SentinelLink {
                    sentinels: tokio::sync::Mutex::new(sentinels),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout)),
                    current: ArcSwapOption::empty(),
                    control: tokio::runtime::Handle::current(),
                })))
            }
            (false, None) => {
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(timeout);
                let client = match tls {
                    Some(tls) => redis::Client::build_with_tls(url, tls)?,
                    None => redis::Client::open(url)?,
                };
                Ok(Self::Server(ServerLink {
                    client,
                    config: manager,
                    per_worker: (0..=workers).map(|_| OnceLock::new()).collect(),
                }))
            }
        }
    }

    /// Connects a cluster or sentinel link that has no connection yet (a server link
    /// connects on its own); the runtime of the first caller (at startup, the control
    /// runtime) drives the connection.
    pub async fn connect(&self) -> RedisResult<()> {
        match self {
            Self::Server(_) => Ok(()),
            Self::Cluster {
                client, connection, ..
            } => {
                if connection.get().is_none() {
                    let connected = client.get_async_connection().await?;
                    // Another connect may have won the race; either connection serves.
                    let _ = connection.set(connected);
                }
                Ok(())
            }
            // Boxed, as below: a cold path that would make every caller's future deeper.
            Self::Sentinel(sentinel) if sentinel.current.load().is_none() => {
                Box::pin(sentinel.replace(None)).await
            }
            Self::Sentinel(_) => Ok(()),
        }
    }

    /// A handle for one call and its connection's number; an error while a cluster or
    /// sentinel link is not connected.
    pub fn connection(&self) -> RedisResult<(u64, Connection)> {
        let connection = match self {
            Self::Server(server) => return Ok((0, Connection::Server(server.manager()?))),
            Self::Cluster { connection, .. } => connection
                .get()
                .map(|connection| (0, Connection::Cluster(connection.clone()))),
            Self::Sentinel(sentinel) => sentinel
                .current
                .load()
                .as_deref()
                .map(|(number, master)| (*number, Connection::Sentinel(master.clone()))),
        };
        connection.ok_or_else(|| (redis::ErrorKind::Io, "not connected yet").into())
    }

    /// A client for pub/sub: the server, a cluster's seed node `attempt` (round robin),
    /// or the master the sentinels name now.
    pub async fn subscriber(&self, attempt: usize) -> RedisResult<redis::Client> {
        match self {
            Self::Server(server) => Ok(server.client.clone()),
            Self::Cluster { seeds, .. } => Ok(seeds[attempt % seeds.len()].clone()),
            Self::Sentinel(sentinel) => sentinel.sentinels.lock().await.async_get_client().await,
        }
    }

    /// After a call on connection `failed` could not reach its node or found it a replica:
    /// a server link's manager reconnects on its own (true: the call may be tried again);
    /// a cluster connection has retried already (false); a sentinel link asks the
    /// sentinels for the master again and connects to it (unless another call did so
    /// already).
    ///
    /// The search runs on the control runtime, in a task of its own: a caller that stops
    /// waiting (its deadline) does not cancel it — a master that hangs rather than refuses
    /// is replaced all the same, bounded by the connection timeouts — and the new master
    /// connection is driven there.
    pub async fn reconnect(&self, failed: u64) -> RedisResult<bool> {
        let sentinel = match self {
            Self::Server(_) => return Ok(true),
            Self::Cluster { .. } => return Ok(false),
            Self::Sentinel(sentinel) => sentinel,
        };
        let sentinel = sentinel.clone();
        let search = sentinel
            .control
            .clone()
            .spawn(async move { sentinel.replace(Some(failed)).await });
        match search.await {
            Ok(found) => found.map(|()| true),
            Err(e) => Err((
                redis::ErrorKind::Io,
                "the master search ended",
                e.to_string(),
            )
                .into()),
        }
    }
}

/// A client of the sentinels at `urls` for the master `master`. The first URL's user,
/// password and database are the sentinels' and the master's; `rediss://` URLs speak TLS
/// to the sentinels and to the master they name, verified against `tls` (else the
/// system's roots).
fn sentinel_client(
    urls: &[&str],
    master: &str,
    tls: Option<TlsCertificates>,
) -> anyhow::Result<SentinelClient> {
    let infos = (urls.iter())
        .map(|url| url.into_connection_info())
        .collect::<RedisResult<Vec<_>>>()
        .context("state.redis.url")?;
    let first = infos[0].redis_settings().clone();
    let secure = matches!(infos[0].addr(), ConnectionAddr::TcpTls { .. });
    let addrs = infos.iter().map(|info| info.addr().clone());
    let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
        .set_client_to_redis_db(first.db());
    if let Some(user) = first.username() {
        builder = builder
            .set_client_to_redis_username(user)
            .set_client_to_sentinel_username(user);
    }
    if let Some(password) = first.password() {
        builder = builder
            .set_client_to_redis_password(password)
            .set_client_to_sentinel_password(password);
    }
    if secure {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(tls) = tls {
            builder = builder
                .set_client_to_redis_certificates(tls.clone())
                .set_client_to_sentinel_certificates(tls);
        }
    }
    Ok(builder.build()?)
}

impl SentinelLink {
    /// Replaces connection `failed` (or sets the first one) with one to the master the
    /// sentinels name now; a no-op if another call has replaced it already.
    async fn replace(&self, failed: Option<u64>) -> RedisResult<()> {
        let mut sentinels = self.sentinels.lock().await;
        let now = self.current.load().as_deref().map(|(number, _)| *number);
        if now != failed {
            return Ok(());
        }
        let master = sentinels
            .get_async_connection_with_config(&self.config)
            .await?;
        let number = now.map_or(0, |n| n + 1);
        self.current.store(Some(Arc::new((number, master))));
        Ok(())
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
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
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}
