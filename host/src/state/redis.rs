//! The Redis backend: `kv` reads map onto plain commands, writes that may create a key,
//! deletes and each rate-limit decision are one round trip through a Lua script, so that
//! they are atomic across every gateway instance that shares the server or cluster (the
//! writes also keep the namespace's entry quota). The [`Link`] reconnects on its own; each
//! call is bounded by the configured timeout.
//!
//! Key layout under the configured prefix: `kv:{<namespace>}<name>` for values,
//! `kv-keys:{<namespace>}` for a namespace's index of keys, `rl:<namespace><name>` for rate
//! limiters, where `<namespace>` and `<name>` are length-prefixed as in [`Key::encoded`].
//! The braces are a Redis Cluster hash tag: a value and its namespace's index, which one
//! script updates together, always live in one slot; limiters, one key per script, spread
//! over the whole cluster.

use std::time::Duration;

use anyhow::Context;

use redis::{AsyncCommands, Script};

use super::link::{Connection, Link};
use super::{Algorithm, Key, RateDecision, RatePolicy, Reply, StateBackend, StateError, Ttl};
use crate::config::RedisConfig;

/// `kv` and `limits` in a Redis server or cluster.
pub struct RedisBackend {
    link: Link,
    prefix: String,
    timeout: Duration,
    /// Live keys per namespace.
    max_entries: u64,
    take_script: Script,
    incr_script: Script,
    set_script: Script,
    delete_script: Script,
}

/// The scripts that may create a key start with the shared quota helpers.
macro_rules! with_index {
    ($file:literal) => {
        concat!(include_str!("scripts/index.lua"), include_str!($file))
    };
}

impl RedisBackend {
    /// A backend for `config`. Connects lazily: a server that is down at startup is not an
    /// error, calls fail with `unavailable` until it is up. Must run inside a Tokio runtime,
    /// which then drives the connection. `base_dir` resolves a relative `ca_file`; a single
    /// server gets a connection per each of `workers` proxy worker threads.
    pub fn new(
        config: &RedisConfig,
        max_entries: u64,
        base_dir: &std::path::Path,
        workers: usize,
    ) -> anyhow::Result<Self> {
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
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let link = Link::new(&url, config, roots, workers)?;
        Ok(Self {
            link,
            prefix: config.key_prefix.clone(),
            timeout,
            max_entries,
            take_script: Script::new(include_str!("scripts/take.lua")),
            incr_script: Script::new(with_index!("scripts/incr.lua")),
            set_script: Script::new(with_index!("scripts/set.lua")),
            delete_script: Script::new(include_str!("scripts/delete.lua")),
        })
    }

    /// Connects a cluster or sentinel link that is not connected yet, then sends `PING`;
    /// used at startup and to tell when an unreachable Redis is back.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.bounded(async {
            self.link.connect().await?;
            self.call(true, |mut connection| async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            })
            .await
        })
        .await
        .map(drop)
    }

    /// Runs `op` on a connection. If it could not reach its node or found it a replica, a
    /// sentinel link finds the master again (see [`Link::reconnect`]) and `op` is tried
    /// once more there, when that cannot count twice: `op` is `idempotent`, or the error
    /// says it never reached a master (refused, or refused as a replica's).
    async fn call<T, F, Fut>(&self, idempotent: bool, op: F) -> redis::RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
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
    }

    fn value_key(&self, key: Key<'_>) -> String {
        let name = key.name;
        format!("{}kv:{}{}:{name}", self.prefix, tag(key), name.len())
    }

    fn index_key(&self, key: Key<'_>) -> String {
        format!("{}kv-keys:{}", self.prefix, tag(key))
    }

    fn limiter_key(&self, key: Key<'_>) -> String {
        format!("{}rl:{}", self.prefix, key.encoded())
    }

    /// One run of the set script; true if stored.
    fn run_set<'a>(
        &'a self,
        key: Key<'a>,
        value: Vec<u8>,
        ttl: Ttl,
        only_if_absent: bool,
    ) -> Reply<'a, bool> {
        let (value_key, index_key) = (self.value_key(key), self.index_key(key));
        Box::pin(self.bounded(async move {
            let (value_key, index_key, value) = (&value_key, &index_key, &value);
            let stored = self
                .call(false, |mut connection| async move {
                    self.set_script
                        .key(value_key)
                        .key(index_key)
                        .arg(value)
                        .arg(ttl_ms(ttl))
                        .arg(u8::from(only_if_absent))
                        .arg(self.max_entries)
                        .invoke_async::<u8>(&mut connection)
                        .await
                })
                .await?;
            Ok(stored == 1)
        }))
    }

    /// Runs one Redis call with the timeout, mapping errors to [`StateError`].
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            // A quota refusal from a script reads as the embedded backend's does.
            Ok(Err(e)) if is_data_error(&e) => Err(StateError::Invalid(
                e.detail()
                    .filter(|detail| detail.starts_with("quota:"))
                    .map_or_else(|| e.to_string(), str::to_string),
            )),
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

/// The Redis Cluster hash tag of `key`'s namespace, `{<len>:<namespace>}`: the value keys
/// and the index of one namespace share it, so one slot holds them all.
fn tag(key: Key<'_>) -> String {
    format!("{{{}:{}}}", key.namespace.len(), key.namespace)
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

/// A TTL as the scripts take it: milliseconds, at least 1, or 0 for none.
fn ttl_ms(ttl: Ttl) -> u64 {
    ttl.map_or(0, |t| t.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}

impl StateBackend for RedisBackend {
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>> {
        let key = self.value_key(key);
        Box::pin(self.bounded(async move {
            let key = &key;
            self.call(
                true,
                |mut connection| async move { connection.get(key).await },
            )
            .await
        }))
    }

    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()> {
        let stored = self.run_set(key, value, ttl, false);
        Box::pin(async move { stored.await.map(drop) })
    }

    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool> {
        let (value_key, index_key) = (self.value_key(key), self.index_key(key));
        Box::pin(self.bounded(async move {
            let (value_key, index_key) = (&value_key, &index_key);
            let removed = self
                .call(false, |mut connection| async move {
                    self.delete_script
                        .key(value_key)
                        .key(index_key)
                        .invoke_async::<u8>(&mut connection)
                        .await
                })
                .await?;
            Ok(removed > 0)
        }))
    }

    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64> {
        let (value_key, index_key) = (self.value_key(key), self.index_key(key));
        Box::pin(self.bounded(async move {
            let (value_key, index_key) = (&value_key, &index_key);
            self.call(false, |mut connection| async move {
                self.incr_script
                    .key(value_key)
                    .key(index_key)
                    .arg(delta)
                    .arg(ttl_ms(ttl))
                    .arg(self.max_entries)
                    .invoke_async(&mut connection)
                    .await
            })
            .await
        }))
    }

    fn set_if_absent<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, bool> {
        self.run_set(key, value, ttl, true)
    }

    fn take<'a>(&'a self, key: Key<'a>, policy: RatePolicy, cost: u64) -> Reply<'a, RateDecision> {
        let key = self.limiter_key(key);
        let algorithm = match policy.algorithm {
            Algorithm::TokenBucket => 1,
            Algorithm::SlidingWindow => 2,
            Algorithm::FixedWindow => 3,
        };
        Box::pin(self.bounded(async move {
            let key = &key;
            let (allowed, remaining, reset_ms, retry_after_ms): (u8, u64, u64, u64) = self
                .call(false, |mut connection| async move {
                    self.take_script
                        .key(key)
                        .arg(algorithm)
                        .arg(policy.limit)
                        .arg(policy.window_ms)
                        .arg(cost)
                        .invoke_async(&mut connection)
                        .await
                })
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
