//! The Redis backend: `kv` reads map onto plain commands, writes that may create a key,
//! deletes and each rate-limit decision are one round trip through a Lua script, so that
//! they are atomic across every gateway instance that shares the server or cluster (the
//! writes also keep the namespace's entry quota). The [`RedisClient`] reconnects on its own; each
//! call is bounded by the configured timeout.
//!
//! Key layout under the configured prefix: `kv:{<namespace>}<name>` for values,
//! `kv-keys:{<namespace>}` for a namespace's index of keys, `rl:<namespace><name>` for rate
//! limiters, where `<namespace>` and `<name>` are length-prefixed as in [`Key::encoded`].
//! The braces are a Redis Cluster hash tag: a value and its namespace's index, which one
//! script updates together, always live in one slot; limiters, one key per script, spread
//! over the whole cluster.

use redis::{AsyncCommands, Script};

use super::{Algorithm, Key, RateDecision, RatePolicy, Reply, StateBackend, StateError, Ttl};
use crate::config::RedisConfig;
use crate::redis_link::{RedisClient, RedisFailure};

/// `kv` and `limits` in a Redis server or cluster.
pub struct RedisBackend {
    redis: RedisClient,
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
    /// A backend for `config` (see [`RedisClient::new`]).
    pub fn new(
        config: &RedisConfig,
        max_entries: u64,
        base_dir: &std::path::Path,
        workers: usize,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            redis: RedisClient::new(config, base_dir, workers)?,
            max_entries,
            take_script: Script::new(include_str!("scripts/take.lua")),
            incr_script: Script::new(with_index!("scripts/incr.lua")),
            set_script: Script::new(with_index!("scripts/set.lua")),
            delete_script: Script::new(include_str!("scripts/delete.lua")),
        })
    }

    /// Connects if need be, then sends `PING`; used at startup and to tell when an
    /// unreachable Redis is back.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.redis.ping().await.map_err(state_error)
    }

    /// Runs `op` as [`RedisClient::call`] does, its failure as a [`StateError`].
    async fn call<T, F, Fut>(&self, idempotent: bool, op: F) -> Result<T, StateError>
    where
        F: Fn(crate::redis_link::Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.redis.call(idempotent, op).await.map_err(state_error)
    }

    fn value_key(&self, key: Key<'_>) -> String {
        let name = key.name;
        format!(
            "{}kv:{}{}:{name}",
            self.redis.prefix(),
            tag(key),
            name.len()
        )
    }

    fn index_key(&self, key: Key<'_>) -> String {
        format!("{}kv-keys:{}", self.redis.prefix(), tag(key))
    }

    fn limiter_key(&self, key: Key<'_>) -> String {
        format!("{}rl:{}", self.redis.prefix(), key.encoded())
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
        Box::pin(async move {
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
        })
    }
}

/// The Redis Cluster hash tag of `key`'s namespace, `{<len>:<namespace>}`: the value keys
/// and the index of one namespace share it, so one slot holds them all.
fn tag(key: Key<'_>) -> String {
    format!("{{{}:{}}}", key.namespace.len(), key.namespace)
}

/// A Redis failure as the state API's: a script's quota refusal reads as the embedded
/// backend's does.
fn state_error(failure: RedisFailure) -> StateError {
    match failure {
        RedisFailure::Data(detail) => StateError::Invalid(detail),
        RedisFailure::Unavailable(reason) => StateError::Unavailable(reason),
    }
}

/// A TTL as the scripts take it: milliseconds, at least 1, or 0 for none.
fn ttl_ms(ttl: Ttl) -> u64 {
    ttl.map_or(0, |t| t.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}

impl StateBackend for RedisBackend {
    fn get<'a>(&'a self, key: Key<'a>) -> Reply<'a, Option<Vec<u8>>> {
        let key = self.value_key(key);
        Box::pin(async move {
            let key = &key;
            self.call(
                true,
                |mut connection| async move { connection.get(key).await },
            )
            .await
        })
    }

    fn set<'a>(&'a self, key: Key<'a>, value: Vec<u8>, ttl: Ttl) -> Reply<'a, ()> {
        let stored = self.run_set(key, value, ttl, false);
        Box::pin(async move { stored.await.map(drop) })
    }

    fn delete<'a>(&'a self, key: Key<'a>) -> Reply<'a, bool> {
        let (value_key, index_key) = (self.value_key(key), self.index_key(key));
        Box::pin(async move {
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
        })
    }

    fn incr<'a>(&'a self, key: Key<'a>, delta: i64, ttl: Ttl) -> Reply<'a, i64> {
        let (value_key, index_key) = (self.value_key(key), self.index_key(key));
        Box::pin(async move {
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
        })
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
        Box::pin(async move {
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
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
