//! The Redis backend: `kv` maps onto plain commands, and each rate-limit decision is one
//! round trip through a Lua script, so that it is atomic across every gateway instance that
//! shares the server. A lazy connection manager reconnects on its own; each call is bounded
//! by the configured timeout.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script, SetExpiry, SetOptions};

use super::{Algorithm, RateDecision, RatePolicy, StateBackend, StateError, StateFuture};
use crate::config::RedisConfig;

/// `kv` and `limits` in a Redis server.
pub struct RedisBackend {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    take_script: Script,
    incr_script: Script,
}

impl RedisBackend {
    /// A backend for `config`. Connects lazily: a server that is down at startup is not an
    /// error, calls fail with `unavailable` until it is up. Must run inside a Tokio runtime,
    /// which then drives the connection.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        let url = config
            .url
            .resolve("state.redis.url")
            .map_err(anyhow::Error::msg)?;
        let url = String::from_utf8(url)?;
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            connection,
            prefix: config.key_prefix.clone(),
            timeout,
            take_script: Script::new(include_str!("scripts/take.lua")),
            incr_script: Script::new(include_str!("scripts/incr.lua")),
        })
    }

    /// Sends `PING`; used to tell when an unreachable server is back.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut connection = self.connection.clone();
        self.bounded(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one Redis call with the timeout, mapping errors to [`StateError`].
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if is_data_error(&e) => Err(StateError::Invalid(e.to_string())),
            Ok(Err(e)) => Err(StateError::Unavailable(format!("redis: {e}"))),
            Err(_) => Err(StateError::Unavailable(format!(
                "redis: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Errors that say the call does not fit the stored data (`incr` on text, a wrong type),
/// as opposed to Redis being unreachable or unwell.
fn is_data_error(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
            | redis::ErrorKind::UnexpectedReturnType
    ) && !e.is_io_error()
}

/// The expiry argument of `SET` for an optional TTL.
fn set_options(ttl: Option<Duration>, only_if_absent: bool) -> SetOptions {
    let mut options = SetOptions::default();
    if only_if_absent {
        options = options.conditional_set(redis::ExistenceCheck::NX);
    }
    if let Some(ttl) = ttl {
        options = options.with_expiration(SetExpiry::PX(ttl.as_millis().max(1) as u64));
    }
    options
}

impl StateBackend for RedisBackend {
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Vec<u8>>> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        Box::pin(self.bounded(async move { connection.get(key).await }))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, ()> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        Box::pin(self.bounded(async move {
            connection
                .set_options(key, value, set_options(ttl, false))
                .await
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        Box::pin(self.bounded(async move {
            let removed: u64 = connection.del(key).await?;
            Ok(removed > 0)
        }))
    }

    fn incr<'a>(&'a self, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateFuture<'a, i64> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        let ttl_ms = ttl.map_or(0, |t| t.as_millis().max(1) as u64);
        Box::pin(self.bounded(async move {
            self.incr_script
                .key(key)
                .arg(delta)
                .arg(ttl_ms)
                .invoke_async(&mut connection)
                .await
        }))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        Box::pin(self.bounded(async move {
            let stored: Option<String> = connection
                .set_options(key, value, set_options(ttl, true))
                .await?;
            Ok(stored.is_some())
        }))
    }

    fn take<'a>(
        &'a self,
        key: &'a str,
        policy: RatePolicy,
        cost: u64,
    ) -> StateFuture<'a, RateDecision> {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        let algorithm = match policy.algorithm {
            Algorithm::TokenBucket => 1,
            Algorithm::SlidingWindow => 2,
            Algorithm::FixedWindow => 3,
        };
        Box::pin(self.bounded(async move {
            let (allowed, remaining, reset_ms, retry_after_ms): (u8, u64, u64, u64) = self
                .take_script
                .key(key)
                .arg(algorithm)
                .arg(policy.limit)
                .arg(policy.window_ms)
                .arg(cost)
                .invoke_async(&mut connection)
                .await?;
            Ok(RateDecision {
                allowed: allowed == 1,
                remaining,
                reset_ms,
                retry_after_ms,
            })
        }))
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
