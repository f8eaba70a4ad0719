//! `[cache]`: the bounds of the response cache that caching filters store into (the `cache`
//! host interface, granted as `cache`). Changing it needs a restart.

use anyhow::bail;
use serde::Deserialize;

/// The response cache's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of entries (keys and values) kept in memory; the least recently used go
    /// first beyond it (default 64 MiB).
    pub memory_bytes: usize,
    /// The largest entry stored (default 2 MiB; at most `memory_bytes / 16`, the share of
    /// one of the memory level's shards).
    pub max_entry_bytes: usize,
    /// The longest an entry is kept, whatever a filter asks (default 1 day).
    pub max_ttl_ms: u64,
    /// The longest a request waits for another's fill of the same key (default 5 s;
    /// nginx's `proxy_cache_lock_timeout`); then it goes upstream itself.
    pub max_wait_ms: u64,
    /// How long a fill may take before the next request fills the key instead (default
    /// 30 s): a filler that never comes back holds its key no longer.
    pub fill_lease_ms: u64,
    /// Keys being filled at once (default 10 000); beyond them requests do not wait.
    pub max_fills: usize,
    /// Whether entries are shared in Redis too when `state.backend = "redis"` (default
    /// true): an entry one instance stored is a hit on every instance.
    pub shared: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            max_entry_bytes: 2 << 20,
            max_ttl_ms: 86_400_000,
            max_wait_ms: 5_000,
            fill_lease_ms: 30_000,
            max_fills: 10_000,
            shared: true,
        }
    }
}

impl CacheConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.memory_bytes < 1 << 20 {
            bail!("cache.memory_bytes must be at least 1 MiB");
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.memory_bytes / 16 {
            bail!("cache.max_entry_bytes must be between 1 and cache.memory_bytes / 16");
        }
        if self.max_ttl_ms == 0 || self.fill_lease_ms == 0 || self.max_fills == 0 {
            bail!("cache.max_ttl_ms, cache.fill_lease_ms and cache.max_fills must be at least 1");
        }
        if self.max_wait_ms > 60_000 {
            bail!("cache.max_wait_ms must be at most 60000");
        }
        Ok(())
    }
}
