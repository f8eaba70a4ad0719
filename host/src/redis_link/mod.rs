//! The gateway's way to Redis, shared by the state backend and the push store: a
//! [`Link`] in the shape the config names (one server, a cluster, a master found through
//! Sentinel), calls bounded by the configured timeout and tried again after a failover
//! only when that cannot apply them twice, and pub/sub connections for wake-ups.

mod link;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

pub use link::Connection;
use link::Link;

use crate::config::RedisConfig;

/// A Redis server, cluster or Sentinel-watched master, as the config names it.
pub struct RedisClient {
    link: Link,
    prefix: String,
    timeout: Duration,
}

/// Why a Redis call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisFailure {
    /// Redis answered that the call does not fit the data (a script's error, a wrong
    /// type); the text is the error's detail.
    Data(String),
    /// Redis could not be reached, or did not answer in time.
    Unavailable(String),
}

impl std::fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Data(detail) | Self::Unavailable(detail) => f.write_str(detail),
        }
    }
}

impl RedisClient {
    /// A client for `config`. Connects lazily: a server that is down at startup is not an
    /// error, calls fail with `Unavailable` until it is up. Must run inside a Tokio
    /// runtime. `base_dir` resolves a relative `ca_file`; a single server gets a
    /// connection per each of `workers` proxy worker threads.
    pub fn new(config: &RedisConfig, base_dir: &Path, workers: usize) -> anyhow::Result<Self> {
        let url = config
            .url
            .resolve("state.redis.url")
            .map_err(anyhow::Error::msg)?;
        let url = String::from_utf8(url)?;
        let roots = match &config.ca_file {
            Some(file) => {
                let path = base_dir.join(file);
                let pem = std::fs::read(&path)
                    .with_context(|| format!("state.redis.ca_file {}", path.display()))?;
                Some(pem)
            }
            None => None,
        };
        Ok(Self {
            link: Link::new(&url, config, roots, workers)?,
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
        })
    }

    /// The prefix of every key the gateway writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends `PING` (connecting first if need be); used at startup and to tell when an
    /// unreachable Redis is back.
    pub async fn ping(&self) -> Result<(), RedisFailure> {
        self.call(true, |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    /// Runs a Lua `script` with `keys` and `args` through [`Self::call`] (tried again after
    /// a failover as `idempotent` allows).
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        idempotent: bool,
        (keys, args): (&[String], &[&[u8]]),
    ) -> Result<T, RedisFailure> {
        self.call(idempotent, |mut connection| async move {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(*arg);
            }
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    /// Runs `op` on a connection within the timeout. If it could not reach its node or
    /// found it a replica, the link reconnects (a sentinel link finds the master again)
    /// and `op` is tried once more, when that cannot count twice: `op` is `idempotent`,
    /// or the error says it never reached a master (refused, or refused as a replica's).
    pub async fn call<T, F, Fut>(&self, idempotent: bool, op: F) -> Result<T, RedisFailure>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            // A cluster or sentinel link not connected yet (Redis was down at startup)
            // connects with the first call that needs it.
            self.link.connect().await?;
            let (number, connection) = self.link.connection()?;
            match op(connection).await {
                Err(e)
                    if unreachable(&e)
                        && self.link.reconnect(number).await?
                        && (idempotent || not_applied(&e)) =>
                {
                    let (_, connection) = self.link.connection()?;
                    op(connection).await
                }
                result => result,
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if is_data_error(&e) => Err(RedisFailure::Data(
                e.detail().map_or_else(|| e.to_string(), str::to_string),
            )),
            Ok(Err(e)) => Err(RedisFailure::Unavailable(format!("redis: {e}"))),
            Err(_) => Err(self.late()),
        }
    }

    /// A pub/sub connection to a node that sees every message published: the server, the
    /// master the sentinels name, or a cluster's seed node `attempt` (round robin over
    /// them; classic pub/sub reaches every node of a cluster).
    pub async fn pubsub(&self, attempt: usize) -> redis::RedisResult<redis::aio::PubSub> {
        let client = self.link.subscriber(attempt).await?;
        let connected = tokio::time::timeout(self.timeout, client.get_async_pubsub()).await;
        connected.map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))?
    }

    fn late(&self) -> RedisFailure {
        RedisFailure::Unavailable(format!(
            "redis: no answer within {} ms",
            self.timeout.as_millis()
        ))
    }
}

/// Errors that say the call does not fit the stored data (`incr` on text, a wrong type,
/// a script's refusal), as opposed to Redis being unreachable or unwell.
fn is_data_error(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
            | redis::ErrorKind::UnexpectedReturnType
    ) && !e.is_io_error()
}

/// Errors that say the call did not reach its node (refused, dropped, timed out) or that
/// the node is no master any more (`READONLY`): a failover may have moved the master.
fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || is_read_only(e)
}

/// Errors after which the call cannot have been applied: no connection was made, or a
/// replica refused the write. (A dropped connection or a timeout may follow a write the
/// master applied.)
fn not_applied(e: &redis::RedisError) -> bool {
    e.is_connection_refusal() || is_read_only(e)
}

fn is_read_only(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}
