//! The response cache that caching filters store into (the `cache` host interface): a
//! memory level bounded by bytes, a Redis level shared by the fleet when the Redis state
//! backend is on, request coalescing, and purges. The values are opaque here: what is
//! stored, for how long and for which request is the filter's decision (RFC 9111 lives in
//! the `cache` plugin); the gateway keeps the bytes, the bounds and the waits, which no
//! filter instance can (a filter sees one request at a time and holds no memory that
//! outlives its instance).
//!
//! A key is a filter's name for an entry in its namespace (the namespace of its `kv`
//! keys); purges from the admin API name keys (or prefixes of keys) in every namespace.

mod fills;
mod memory;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

pub use shared::Purge;

use crate::config::CacheConfig;
use crate::redis_link::{RedisClient, RedisFailure};
use fills::{Fills, Turn};
use memory::MemoryLevel;
use shared::SharedLevel;

/// How entries are named across namespaces: `<namespace length>:<namespace><name>`.
mod names {
    /// The stored key of `name` in `namespace`.
    pub(super) fn key(namespace: &str, name: &str) -> String {
        format!("{}:{namespace}{name}", namespace.len())
    }

    /// The name part of a stored key.
    pub(super) fn name_of(key: &str) -> &str {
        let parsed = key.split_once(':').and_then(|(len, rest)| {
            let len: usize = len.parse().ok()?;
            rest.get(len..)
        });
        parsed.unwrap_or(key)
    }
}

/// How a turn at filling a key ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// The caller fills the key: it should `put` or `release` it.
    Lead,
    /// Another request filled it while the caller waited: the value.
    Filled(Bytes),
    /// Go on without filling (the filler gave up on the key, or did not fill it in time).
    Pass,
}

/// Why a cache call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// The shared level could not be reached.
    Unavailable(String),
    /// The call's arguments are over a bound.
    Invalid(String),
}

impl From<RedisFailure> for CacheError {
    fn from(failure: RedisFailure) -> Self {
        Self::Unavailable(failure.to_string())
    }
}

/// Counters of the cache, for metrics and the admin API.
#[derive(Debug, Default)]
struct Counters {
    memory_hits: AtomicU64,
    shared_hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    led: AtomicU64,
    waited: AtomicU64,
    passed: AtomicU64,
    shared_errors: AtomicU64,
}

/// What the admin API and the metrics show.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatus {
    /// Entries in memory.
    pub entries: usize,
    /// Bytes of the entries in memory (keys and values).
    pub bytes: usize,
    /// The memory level's bound.
    pub max_bytes: usize,
    /// Whether entries are shared in Redis too.
    pub shared: bool,
    /// Lookups answered from memory.
    pub memory_hits: u64,
    /// Lookups answered from Redis.
    pub shared_hits: u64,
    /// Lookups answered by neither.
    pub misses: u64,
    /// Entries stored.
    pub stores: u64,
    /// Turns at a key that led its fill.
    pub fills_led: u64,
    /// Turns answered by another request's fill after a wait.
    pub fills_waited: u64,
    /// Turns that went on without filling or waiting.
    pub fills_passed: u64,
    /// Keys being filled or passed now.
    pub filling: usize,
    /// Calls to the shared level that failed (the memory level answered alone).
    pub shared_errors: u64,
}

/// The response cache.
pub struct ResponseCache {
    memory: MemoryLevel,
    shared: Option<Arc<SharedLevel>>,
    fills: Fills,
    config: CacheConfig,
    counters: Counters,
}

impl ResponseCache {
    /// A cache bounded by `config`, sharing its entries through `redis` when given (and
    /// following the fleet's purges from then on).
    pub fn start(config: &CacheConfig, redis: Option<RedisClient>) -> Arc<Self> {
        let max_ttl = Duration::from_millis(config.max_ttl_ms);
        let cache = Arc::new(Self {
            memory: MemoryLevel::new(config.memory_bytes),
            shared: redis.map(|r| Arc::new(SharedLevel::new(r, max_ttl))),
            fills: Fills::new(
                config.max_fills,
                Duration::from_millis(config.fill_lease_ms),
            ),
            config: config.clone(),
            counters: Counters::default(),
        });
        if cache.shared.is_some() {
            tokio::spawn(shared::follow_purges(Arc::downgrade(&cache)));
        }
        cache
    }

    fn shared_client(&self) -> Option<Arc<SharedLevel>> {
        self.shared.clone()
    }

    /// The longest a fill may wait for another request's.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.config.max_wait_ms)
    }

    /// The value named `name` in `namespace`: from memory, else from Redis (then kept in
    /// memory too, for as long as Redis keeps it). A Redis that cannot be reached reads as
    /// a miss.
    pub async fn get(&self, namespace: &str, name: &str) -> Option<Bytes> {
        let key = names::key(namespace, name);
        if let Some(value) = self.memory.get(&key, Instant::now()) {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(value);
        }
        if let Some(shared) = &self.shared {
            match shared.get(&key).await {
                Ok(Some(found)) => {
                    self.counters.shared_hits.fetch_add(1, Ordering::Relaxed);
                    let expires = Instant::now() + found.ttl;
                    (self.memory).put(&key, found.value.clone(), expires);
                    return Some(found.value);
                }
                Ok(None) => {}
                Err(e) => self.shared_failed(&e),
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn shared_failed(&self, error: &RedisFailure) {
        self.counters.shared_errors.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %error, "cache: the shared level failed; memory answers alone");
    }

    /// `request`'s turn at filling `name`: `Lead` at once when nobody fills it; otherwise a
    /// wait of at most `wait` (and `cache.max_wait_ms`) for the filler, then the value it
    /// stored, or another turn (the filler gave up, or its lease lapsed), or `Pass`.
    pub async fn fill(&self, namespace: &str, name: &str, request: &str, wait: Duration) -> Fill {
        let key = names::key(namespace, name);
        let give_up = Instant::now() + wait.min(self.max_wait());
        loop {
            let waiting = match self.fills.turn(&key, request, Instant::now()) {
                Turn::Lead => {
                    self.counters.led.fetch_add(1, Ordering::Relaxed);
                    return Fill::Lead;
                }
                Turn::Pass => break,
                Turn::Wait(waiting) => waiting,
            };
            let done = waiting.done.notified();
            let mut done = std::pin::pin!(done);
            done.as_mut().enable();
            // The filler may have stored the value before this waiter was registered.
            if let Some(value) = self.get(namespace, name).await {
                self.counters.waited.fetch_add(1, Ordering::Relaxed);
                return Fill::Filled(value);
            }
            let until = give_up.min(waiting.until);
            if tokio::time::timeout_at(until.into(), done).await.is_err() && until == give_up {
                break;
            }
            if let Some(value) = self.get(namespace, name).await {
                self.counters.waited.fetch_add(1, Ordering::Relaxed);
                return Fill::Filled(value);
            }
            if Instant::now() >= give_up {
                break;
            }
        }
        self.counters.passed.fetch_add(1, Ordering::Relaxed);
        Fill::Pass
    }

    /// Stores `value` as `name` for `ttl` (in memory and Redis), and ends `request`'s fill
    /// of it, handing the value to the requests that wait.
    pub async fn put(
        &self,
        namespace: &str,
        (name, request): (&str, &str),
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let key = names::key(namespace, name);
        if value.len() > self.config.max_entry_bytes {
            self.fills.end(&key, request, None, Instant::now());
            return Err(CacheError::Invalid(format!(
                "an entry of {} bytes is over cache.max_entry_bytes ({})",
                value.len(),
                self.config.max_entry_bytes
            )));
        }
        let ttl = ttl.min(Duration::from_millis(self.config.max_ttl_ms));
        let stored_ms = crate::time::now_ms();
        (self.memory).put(&key, value.clone(), Instant::now() + ttl);
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
        // The waiters read it from memory: they need not wait for Redis.
        self.fills.end(&key, request, None, Instant::now());
        if let Some(shared) = &self.shared
            && let Err(e) = shared.put(&key, &value, stored_ms, ttl).await
        {
            self.shared_failed(&e);
            return Err(e.into());
        }
        Ok(())
    }

    /// Ends `request`'s fill of `name` without a value; for `pass` after, fills of it
    /// answer `Pass` at once.
    pub fn release(&self, namespace: &str, name: &str, request: &str, pass: Duration) {
        let key = names::key(namespace, name);
        let pass = (!pass.is_zero()).then_some(pass.min(self.max_wait() * 100));
        self.fills.end(&key, request, pass, Instant::now());
    }

    /// Removes `name` from both levels (a write made it stale, RFC 9111 §4.4); true if
    /// it was there.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<bool, CacheError> {
        let key = names::key(namespace, name);
        let in_memory = self.memory.remove(&key);
        match &self.shared {
            Some(shared) => Ok(shared.delete(&key).await? || in_memory),
            None => Ok(in_memory),
        }
    }

    /// Purges `purge` in every namespace, on every instance of the fleet; how many
    /// entries this instance held in memory.
    pub async fn purge(&self, purge: Purge) -> Result<usize, CacheError> {
        let removed = self.apply(&purge);
        if let Some(shared) = &self.shared {
            shared.purge(&purge).await?;
        }
        Ok(removed)
    }

    /// Drops the memory entries `purge` names; how many.
    fn apply(&self, purge: &Purge) -> usize {
        (self.memory).remove_matching(|key| purge.names(names::name_of(key)))
    }

    /// The cache's counters and usage now.
    pub fn status(&self) -> CacheStatus {
        let (entries, bytes) = self.memory.usage();
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        CacheStatus {
            entries,
            bytes,
            max_bytes: self.config.memory_bytes,
            shared: self.shared.is_some(),
            memory_hits: n(&c.memory_hits),
            shared_hits: n(&c.shared_hits),
            misses: n(&c.misses),
            stores: n(&c.stores),
            fills_led: n(&c.led),
            fills_waited: n(&c.waited),
            fills_passed: n(&c.passed),
            filling: self.fills.len(),
            shared_errors: n(&c.shared_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_over_the_bound_is_refused_and_its_fill_ended() {
        let config = CacheConfig {
            max_entry_bytes: 8,
            ..CacheConfig::default()
        };
        let cache = ResponseCache::start(&config, None);
        let wait = Duration::from_millis(10);
        assert_eq!(cache.fill("ns", "k", "r1", wait).await, Fill::Lead);
        let big = Bytes::from_static(b"123456789");
        let refused = cache
            .put("ns", ("k", "r1"), big, Duration::from_secs(60))
            .await;
        assert!(
            matches!(refused, Err(CacheError::Invalid(_))),
            "{refused:?}"
        );
        assert_eq!(cache.get("ns", "k").await, None);
        // The fill ended: the next request leads at once instead of waiting.
        assert_eq!(cache.fill("ns", "k", "r2", wait).await, Fill::Lead);
        let small = Bytes::from_static(b"1234");
        assert!(
            cache
                .put("ns", ("k", "r2"), small.clone(), Duration::from_secs(60))
                .await
                .is_ok()
        );
        assert_eq!(cache.get("ns", "k").await, Some(small));
        assert_eq!(cache.get("other", "k").await, None, "namespaces apart");
    }
}
